"""Score-CAM (Wang et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine import network
from ..models import Classifier
from ..targets import Target, need_logits, take, target_scores
from ._common import Progress, chunks
from ._registry import register_method
from .cam import Layer, LayerCapture, weighted_cam

__all__ = ["scorecam"]



@register_method(
    "scorecam",
    "Score-CAM: maps weighted by the softmax of the scores of the image masked by each map",
    "Wang et al. 2020, https://arxiv.org/abs/1910.01279",
    cost="slow", order=140,
)
def scorecam(
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
    """``relu(sum_k w_k A_k)`` with ``w = softmax_k(S_c(X * s(up(A_k))))``, for a batch.

    Each channel ``A_k`` of the layer is upsampled to the input (bilinear, corners aligned, as
    pytorch-grad-cam), scaled to [0, 1] (a constant channel masks everything), and multiplies
    the image; ``S_c`` of each masked image, through a softmax over the channels, is the
    channel's weight. The paper subtracts a baseline image's score first, which the softmax
    ignores; it scores with softmax probabilities, pytorch-grad-cam with logits (the default
    here; pass a target callable such as ``lambda z: z.softmax(-1)[:, c]`` for the paper's).
    One forward pass per image and channel, in batches of ``batch_size`` masked images (pairs
    of all images of the batch and channels, so memory stays bounded); the channels that are
    constant (often half of a rectified last layer) all give the same all-zero image, which
    runs once.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ``None`` (top-1), an ``int``, a sequence / ``Tensor[B]`` of ints, or a callable
            on the logits (one target per image; resolved on the clean images).
        layer: ``None`` (the last feature map), a ``named_modules()`` name or pattern, or a
            submodule (see :func:`deepinside.layers.find_layer`).
        batch_size: masked images per forward pass (``None``: all at once).
        progress: ``progress(done, total)`` after each forward pass, in masked images.
        relu: rectify the weighted sum (the paper).
        upsample_to_input: resize the map bilinearly to ``H, W``; ``False`` keeps ``h, w``.
        fast: use the batch-norm-folded private copy.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, h, w]`` without upsampling), not normalised.
    """
    def weights(cap: LayerCapture) -> Tensor:
        return _score_weights(model, images, cap, batch_size, progress, fast)

    return weighted_cam(model, images, target, weights, layer=layer, relu=relu,
                        upsample_to_input=upsample_to_input, fast=fast)


def _score_weights(
    model: Classifier | nn.Module,
    images: Tensor,
    cap: LayerCapture,
    batch_size: int | None,
    progress: Progress | None,
    fast: bool,
) -> Tensor:
    """``softmax_k(S_c(X * s(up(A_k))))``: ``Tensor[B, C, 1, 1]``."""
    act, t = cap.activations, cap.targets
    b, c = act.shape[:2]
    size = tuple(images.shape[-2:])
    x = images.detach()
    flat = act.flatten(0, 1)  # [B * C, h, w]
    varies = flat.amax(dim=(1, 2)) > flat.amin(dim=(1, 2))
    scores = torch.empty(b * c, device=act.device, dtype=act.dtype)
    with network(model, x, fast=fast) as logits_of, torch.no_grad():
        still = (~varies).nonzero()[:, 0]
        if len(still):  # a constant map masks everything: one all-zero image for them all
            zero = logits_of(torch.zeros_like(x[:1]))
            if isinstance(t, Tensor):
                s0 = target_scores(take(t, still // c), need_logits(zero, "score-cam").expand(
                    len(still), -1))
            else:  # a callable scores every image alike
                s0 = target_scores(t, zero).expand(len(still))
            scores[still] = s0.to(act.dtype)
            if progress is not None:
                progress(len(still), b * c)
        moving = varies.nonzero()[:, 0]
        for sl in chunks(len(moving), batch_size) if len(moving) else ():
            idx = moving[sl]
            img = idx // c
            up = F.interpolate(flat[idx, None], size=size, mode="bilinear", align_corners=True)
            lo = up.amin(dim=(2, 3), keepdim=True)
            span = up.amax(dim=(2, 3), keepdim=True) - lo
            mask = torch.where(span > 0, (up - lo) / torch.where(span > 0, span, 1.0), 0.0)
            logits = logits_of(x[img] * mask.to(x.dtype))
            scores[idx] = target_scores(take(t, img), logits).to(act.dtype)
            if progress is not None:
                progress(len(still) + sl.stop, b * c)
    return scores.view(b, c).softmax(dim=1)[:, :, None, None]
