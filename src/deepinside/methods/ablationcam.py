"""Ablation-CAM (Desai & Ramaswamy 2020)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..engine import capture_layer, check_images, layer_replaced, module_of
from ..layers import Layer, layer_layout
from ..models import Classifier
from ..targets import Target, target_scores
from ._common import Progress, chunks, one_target_per_image
from ._registry import register_method
from .cam import cam_tail

__all__ = ["ablationcam"]



@register_method(
    "ablationcam",
    "Ablation-CAM: maps weighted by the relative drop of the score when each one is zeroed",
    "Desai & Ramaswamy 2020, WACV, https://openaccess.thecvf.com/content_WACV_2020/papers/"
    "Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_"
    "Localization_WACV_2020_paper.pdf",
    cost="moderate", order=150,
)
def ablationcam(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    layer: Layer = None,
    batch_size: int | None = 64,
    progress: Progress | None = None,
    relu: bool = True,
    upsample_to_input: bool = True,
    fast: bool = True,
) -> Tensor:
    """``relu(sum_k w_k A_k)`` with ``w_k = (y_c - y_c^k) / y_c``, for a batch.

    ``y_c^k`` is the class score when channel ``k`` of the layer is set to zero (the paper's
    eq. 2-3); channels that are zero everywhere are skipped (ablating them changes nothing).
    The layer's output is recorded in one forward pass of the batch (the engine's
    :func:`~deepinside.engine.capture_layer`, without gradients); then, for each image, the
    network runs only from the layer up: :func:`~deepinside.engine.layer_replaced`
    replaces the layer's output of a one-image pass by ``n`` ablated copies, so the part below
    the layer runs once per ``n`` channels instead of ``n`` times (pytorch-grad-cam reruns the
    whole network for every channel). The first pass also carries the unablated copy, whose
    score ``y_c`` must equal the clean one; when it does not (a network whose upper part
    combines the layer with lower tensors in a way that needs equal batches) or the pass
    fails, every copy reruns the whole network. pytorch-grad-cam ablates with ``min - 1e7``
    instead of 0 when the layer has values below 0; here it is always 0, as in the paper.
    Token layers (vision transformers, ``Tensor[B, N, C]``) ablate the last dimension.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ``None`` (top-1), an ``int``, a sequence / ``Tensor[B]`` of ints, or a callable
            on the logits (one target per image).
        layer: ``None`` (the last feature map), a ``named_modules()`` name or pattern, or a
            submodule (see :func:`deepinside.layers.find_layer`).
        batch_size: ablated copies per forward pass (``None``: all channels of an image).
        progress: ``progress(done, total)`` after each forward pass, in ablated channels.
        relu: rectify the weighted sum (the paper).
        upsample_to_input: resize the map bilinearly to ``H, W``; ``False`` keeps ``h, w``.
        fast: accepted for the common call shape; the passes need a hook on the caller's
            layer, so they run the module itself (the folded copy would save little: only the
            part above the layer runs per channel).

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, h, w]`` without upsampling), not normalised.

    Raises:
        ValueError: ``"top<k>"`` targets, or a layer that returns no tensor.
    """
    del fast  # see above
    check_images(images)
    module = module_of(model)
    x = images.detach()
    cap = capture_layer(model, x, target, layer=layer, fast=False, gradients=False)
    t = one_target_per_image(cap.targets, "ablationcam")
    act = cap.output
    assert act is not None
    last = layer_layout(module, act.shape, x.shape[-2:], module.get_submodule(cap.name)) != "NCHW"
    with layer_replaced(model, x, cap.name) as logits_of:
        weights = _ablation_weights(logits_of, x, act, last, t, cap.logits, batch_size, progress)
    grid = cap.activations.to(act.dtype)
    cam = (weights.to(grid.dtype)[:, :, None, None] * grid).sum(dim=1)
    return cam_tail(cam.to(images.dtype), images, relu, upsample_to_input)


def _ablation_weights(
    logits_of: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    act: Tensor,
    channels_last: bool,
    t: Tensor | Callable,
    clean: Tensor,
    batch_size: int | None,
    progress: Progress | None,
) -> Tensor:
    """``(y_c - y_c^k) / y_c`` per image and channel: ``Tensor[B, C]``.

    A channel that is zero everywhere is left out: ablating it changes nothing, and its
    weight (0 here) multiplies zeros in the map.
    """
    tokens = channels_last  # Tensor[B, N, C] or Tensor[B, h, w, C]: channels on the last dim
    b, c = act.shape[0], act.shape[-1] if tokens else act.shape[1]
    inner = [1] * (act.dim() - 2)
    if tokens:
        def view(k):
            return k.view(len(k), *inner, c)
    else:
        def view(k):
            return k.view(len(k), c, *inner)
    from_layer: bool | None = None  # run only from the layer up; decided on the first pass
    weights = torch.zeros(b, c, dtype=act.dtype, device=act.device)
    for i in range(b):
        live = (act[i].reshape(-1, c).ne(0).any(dim=0) if tokens
                else act[i].flatten(1).ne(0).any(dim=1))
        chans = live.nonzero()[:, 0]
        # row 0: nothing ablated; row j: channel chans[j - 1]
        cols = torch.cat([chans.new_full((1,), -1), chans])
        scores = torch.empty(len(cols), dtype=act.dtype, device=act.device)
        for sl in chunks(len(cols), batch_size) if len(chans) else ():
            n = sl.stop - sl.start
            keep = torch.ones(n, c, dtype=act.dtype, device=act.device)
            rows = (cols[sl] >= 0).nonzero()[:, 0]
            keep[rows, cols[sl][rows]] = 0
            ablated = act[i : i + 1] * view(keep)
            if from_layer is None:
                out = _from_layer(logits_of, x[i : i + 1], ablated,
                                  clean[i] if isinstance(clean, Tensor) else None, n)
                from_layer = out is not None
            elif from_layer:
                out = logits_of(x[i : i + 1], ablated)
            if not from_layer:
                out = logits_of(x[i : i + 1].expand(n, *x.shape[1:]), ablated)
            scores[sl] = target_scores(t[i : i + 1].expand(n) if isinstance(t, Tensor) else t,
                                       out, batch=n).to(act.dtype)
            if progress is not None:
                progress(i * c + c - len(chans) + sl.stop - 1, b * c)
        if len(chans):
            weights[i, chans] = (scores[0] - scores[1:]) / scores[0]
        elif progress is not None:
            progress((i + 1) * c, b * c)
    return weights


def _from_layer(
    logits_of: Callable[[Tensor, Tensor], Tensor], xi: Tensor, ablated: Tensor,
    clean: Tensor | None, n: int,
) -> Tensor | None:
    """The logits ``Tensor[n, K]`` of a one-image pass whose layer output is replaced by ``n``
    copies, if that works: ``n`` rows, the first (unablated) one equal to the clean logits
    ``Tensor[K]``; else ``None``."""
    try:
        out = logits_of(xi, ablated)
    except Exception:  # noqa: BLE001 - e.g. a shape check of the model (Hugging Face's PVT
        return None  # reshapes each stage to the batch of its input): rerun it whole
    if clean is None or not isinstance(out, Tensor):  # an output we cannot compare: go slow
        return None
    tol = 1e-4 * float(clean.abs().max()) + 1e-6
    ok = out.shape[0] == n and bool(torch.allclose(out[0], clean, rtol=1e-4, atol=tol))
    return out if ok else None
