"""What the CAM family shares: finding the layer, its activations and their gradients.

The activations of one layer are captured by a forward hook (registered for one call, removed
in ``finally``) that hands the rest of the network a copy of a fresh leaf tensor; the gradient
of the class scores is then taken with respect to that leaf only, so the backward pass stops
at the layer and no weight gradient is computed. Vision transformers' token outputs
``Tensor[B, N, C]`` are reshaped to a grid ``Tensor[B, C, h, w]`` without their class and
register tokens.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..fastmodel import fast_copy
from ..models import Classifier
from ..saliency import Target, check_images, eval_mode, module_of, resolve_targets

__all__ = ["LayerCapture", "capture_layer", "find_layer", "default_layer"]

Layer = None | str | nn.Module

_DEFAULTS: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


@dataclass
class LayerCapture:
    """A layer's activations and the gradient of each image's class score with respect to them.

    Attributes:
        name: the layer's ``named_modules()`` name.
        activations: ``Tensor[B, C, h, w]`` (tokens already reshaped to a grid).
        gradients: ``Tensor[B, C, h, w]``, d S_c / d activations.
        targets: ``Tensor[B]`` classes.
        logits: ``Tensor[B, K]``.
    """

    name: str
    activations: Tensor
    gradients: Tensor
    targets: Tensor
    logits: Tensor


def _is_grid(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and shape[2] * shape[3] > 1


def _is_tokens(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and shape[1] >= 4


def default_layer(module: nn.Module, images: Tensor) -> str:
    """The last feature map of ``module`` on inputs like ``images``: its ``named_modules()`` name.

    For a convolutional network: the last module, in the order their forwards finish, whose
    output is ``Tensor[B, C, h, w]`` with ``h * w > 1``. For a vision transformer (token
    outputs after the last such map): the last block's ``norm1`` (the input of its attention,
    as pytorch-grad-cam advises), else the last module with token outputs. Cached per module
    and input shape.
    """
    key = tuple(images.shape[1:])
    cache = _DEFAULTS.setdefault(module, {})
    if key in cache:
        return cache[key]
    order: list[tuple[str, tuple[int, ...]]] = []
    handles = []

    def hook(name):
        def fn(_m, _args, out):
            if isinstance(out, Tensor):
                order.append((name, tuple(out.shape)))

        return fn

    try:
        for name, m in module.named_modules():
            if name:
                handles.append(m.register_forward_hook(hook(name)))
        with torch.no_grad(), eval_mode(module):
            module(images[:1].detach())
    finally:
        for h in handles:
            h.remove()
    grids = [i for i, (_, s) in enumerate(order) if _is_grid(s)]
    tokens = [i for i, (_, s) in enumerate(order) if _is_tokens(s)]
    if tokens and (not grids or tokens[-1] > grids[-1]):
        names = [order[i][0] for i in tokens]
        blocks = [n for n in names if fnmatch.fnmatch(n, "*blocks.*.norm1")]
        name = blocks[-1] if blocks else names[-1]
    elif grids:
        name = order[grids[-1]][0]
    else:
        raise ValueError("found no layer with a spatial feature map; pass layer=NAME")
    cache[key] = name
    return name


def find_layer(module: nn.Module, layer: Layer) -> str:
    """A layer's ``named_modules()`` name from a name, a glob pattern or the module itself.

    A pattern (``"blocks.6.*"``, ``"layer4*"``) that matches several names means the last of
    them in ``named_modules()`` order.

    Raises:
        ValueError: nothing matches (the message lists close names).
    """
    names = [n for n, _ in module.named_modules() if n]
    if isinstance(layer, nn.Module):
        for n, m in module.named_modules():
            if m is layer and n:
                return n
        raise ValueError("layer is not a submodule of the model")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a name, a pattern or a submodule, got {type(layer)}")
    if layer in names:
        return layer
    matches = [n for n in names if fnmatch.fnmatchcase(n, layer)]
    if matches:
        return matches[-1]
    close = difflib.get_close_matches(layer, names, n=5)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise ValueError(f"no layer of the model matches {layer!r}{hint}")


def _net_for(module: nn.Module, name: str, images: Tensor, fast: bool) -> nn.Module:
    """The private fast copy if the layer's output is the same there, else the module itself."""
    if not fast:
        return module
    net = fast_copy(module, images)
    if net is None:
        return module
    try:
        sub = net.get_submodule(name)
    except AttributeError:
        return module  # e.g. a child of a batch norm that folding replaced
    orig = module.get_submodule(name)
    if isinstance(sub, nn.Conv2d) and not torch.equal(
        sub.weight, orig.weight.to(sub.weight.device, sub.weight.dtype)
    ):
        return module  # a convolution with a batch norm folded into it: different output
    return net


def _prefix_and_grid(net: nn.Module, n: int) -> tuple[int, int, int]:
    grid = getattr(getattr(net, "patch_embed", None), "grid_size", None)
    if grid is not None:
        h, w = int(grid[0]), int(grid[1])
        if 0 <= n - h * w <= 16:
            return n - h * w, h, w
    for p in range(0, 17):
        s = math.isqrt(max(n - p, 0))
        if s > 1 and s * s == n - p:
            return p, s, s
    raise ValueError(f"cannot reshape {n} tokens to a square grid")


def to_grid(net: nn.Module, t: Tensor) -> Tensor:
    """Tokens ``Tensor[B, N, C]`` -> ``Tensor[B, C, h, w]`` without prefix tokens; 4-D as is."""
    if t.dim() == 4:
        return t
    if t.dim() != 3:
        raise ValueError(f"the layer's output has shape {tuple(t.shape)}; need a feature map")
    p, h, w = _prefix_and_grid(net, t.shape[1])
    return t[:, p:].reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)


def capture_layer(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    layer: Layer = None,
    fast: bool = True,
) -> LayerCapture:
    """One forward and one backward pass (down to the layer only) for a batch.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints.
        layer: ``None`` (:func:`default_layer`), a ``named_modules()`` name, a glob pattern,
            or a submodule.
        fast: use the batch-norm-folded private copy when the layer's output is unchanged there.
    """
    check_images(images)
    module = module_of(model)
    x = images.detach()
    with eval_mode(module):
        name = default_layer(module, x) if layer is None else find_layer(module, layer)
        net = _net_for(module, name, x, fast)
        if net is not module:
            x = x.contiguous(memory_format=torch.channels_last)
        leaves: list[Tensor] = []

        def hook(_m, _args, out):
            if not isinstance(out, Tensor):
                raise ValueError(f"layer {name!r} returns {type(out).__name__}, not a tensor")
            leaf = out.detach().requires_grad_(True)
            leaves.append(leaf)
            return leaf.clone()  # later in-place operations must not touch the leaf

        handle = net.get_submodule(name).register_forward_hook(hook)
        try:
            with torch.enable_grad():
                logits = net(x)
                if not isinstance(logits, Tensor) or logits.dim() != 2:
                    raise ValueError("the model must return logits Tensor[B, K]")
                if not leaves:
                    raise ValueError(f"layer {name!r} did not run in the forward pass")
                t = resolve_targets(target, logits)
                score = logits.gather(1, t[:, None]).sum()
                act = leaves[-1]
                (grad,) = torch.autograd.grad(score, act, allow_unused=True)
        finally:
            handle.remove()
    if grad is None:
        raise ValueError(f"the class scores do not depend on layer {name!r}")
    act = to_grid(net, act.detach()).contiguous().to(images.dtype)
    grad = to_grid(net, grad).contiguous().to(images.dtype)
    return LayerCapture(name, act, grad, t, logits.detach())


def upsample(cam: Tensor, size: tuple[int, int]) -> Tensor:
    """``Tensor[B, h, w]`` -> ``Tensor[B, H, W]``, bilinear (half-pixel centres, as OpenCV)."""
    if tuple(cam.shape[-2:]) == tuple(size):
        return cam
    return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
