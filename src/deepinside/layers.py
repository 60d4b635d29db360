"""Which layer of a network: by name, by pattern, or the last feature map by default.

Layers are named as in ``named_modules()``; a glob pattern picks the last match and a name that
matches nothing is an error with the closest names (timm's ``attention_extract`` does the
same). Vision transformers' token outputs ``Tensor[B, N, C]`` become a grid
``Tensor[B, C, h, w]`` without their class and register tokens (:func:`to_grid`).
"""

from __future__ import annotations

import fnmatch
import math
import weakref

import torch
from torch import Tensor, nn

from .registry import did_you_mean

__all__ = ["Layer", "default_layer", "find_layer", "to_grid"]

Layer = None | str | nn.Module

_DEFAULTS: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


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

    from .engine import eval_mode

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
    raise ValueError(f"no layer of the model matches {layer!r}{did_you_mean(layer, names, n=5)}")


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
