"""Which layer of a network: by name, by pattern, or the last feature map by default.

Layers are named as in ``named_modules()``; a glob pattern picks the last match and a name that
matches nothing is an error with the closest names (timm's ``attention_extract`` does the
same). A layer's output becomes a grid ``Tensor[B, C, h, w]`` (:func:`to_grid`) from any of the
three layouts the model families use:

- ``Tensor[B, C, h, w]``: convolutional networks (ResNet, VGG, MobileNet, ConvNeXt's stages);
- ``Tensor[B, h, w, C]``, channels last: Swin (timm and torchvision) and the insides of
  ConvNeXt's blocks (its ``LayerNorm`` and ``Linear`` layers);
- tokens ``Tensor[B, N, C]``: vision transformers (ViT, DeiT), whose class, distillation and
  register tokens (timm's ``num_prefix_tokens``) are dropped before the patch tokens are laid on
  the patch grid.

A layer whose output is none of these (logits, a pooled vector, a 1 x 1 map, attention windows
batched with the images) is an error that names the layer, says why and suggests the default.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Sequence

from torch import Tensor, nn

from ._lazy import deprecated_names
from .models.hf import timm_inside  # a TimmWrapper's timm model declares its grid
from .registry import did_you_mean

__all__ = ["Layer", "find_layer", "last_feature_map", "layer_layout", "to_grid"]

Layer = None | str | nn.Module

# Modules that pass a feature map on unchanged or resample it: never the default layer.
_SKIPPED = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
            nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d, nn.Softmax)

# The norm before a transformer block's attention: timm / torchvision Swin, torchvision ViT,
# Hugging Face ViT, DeiT, BEiT, Swin, PVT; timm CoaT's parallel blocks norm each scale k
# before attention (norm12, norm13, norm14).
_ATTN_NORMS = re.compile(r"norm1\d?|ln_1|layernorm_before|layer_norm_1")

_NEED = ("need Tensor[B, C, h, w], channels-last Tensor[B, h, w, C] or tokens Tensor[B, N, C] "
         "on the patch grid")


def _channels(m: nn.Module | None) -> int | None:
    """The number of output channels a module declares, if it declares one."""
    if isinstance(m, nn.Conv2d):
        return m.out_channels
    if isinstance(m, nn.modules.batchnorm._NormBase):
        return m.num_features
    if isinstance(m, nn.GroupNorm):
        return m.num_channels
    if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1:
        return int(m.normalized_shape[0])  # nn.LayerNorm: last dim; timm's LayerNorm2d: dim 1
    if isinstance(m, nn.Linear):
        return m.out_features  # applied to the last dim
    return None


def _on_grid(h: int, w: int, image_size: Sequence[int]) -> bool:
    """Whether ``h x w`` can be a feature map of an ``H x W`` image (similar strides)."""
    if h < 1 or w < 1:
        return False
    sh, sw = int(image_size[0]) / h, int(image_size[1]) / w
    return max(sh, sw) <= 1.5 * min(sh, sw)


def _token_grids(net: nn.Module, image_size: Sequence[int] | None) -> list[tuple[int, int]]:
    """Patch grids the model declares or its patch size implies for this image size."""
    grids: list[tuple[int, int]] = []
    pe = getattr(timm_inside(net), "patch_embed", None)
    patch = getattr(pe, "patch_size", None)
    if image_size is not None and isinstance(patch, Sequence) and len(patch) == 2:
        ph, pw = int(patch[0]), int(patch[1])
        grids += [(image_size[0] // ph, image_size[1] // pw),
                  (-(-image_size[0] // ph), -(-image_size[1] // pw))]
    grid = getattr(pe, "grid_size", None)
    if isinstance(grid, Sequence) and len(grid) == 2:
        grids.append((int(grid[0]), int(grid[1])))
    hf = getattr(getattr(net, "config", None), "patch_size", None)  # Hugging Face ViT, DeiT, BEiT
    if image_size is not None and isinstance(hf, int) and hf > 0:
        grids.append((image_size[0] // hf, image_size[1] // hf))
    return grids


def _prefix_and_grid(
    net: nn.Module, n: int, image_size: Sequence[int] | None = None
) -> tuple[int, int, int]:
    """``(prefix tokens, h, w)`` with ``prefix + h * w == n``.

    The model's own ``num_prefix_tokens`` (timm: 1 for ViT, 2 for distilled DeiT, 1 + k with
    k register tokens) and patch grid come first; otherwise the smallest prefix (at most 16)
    that leaves a grid of the image's aspect ratio (square without an image size).

    Raises:
        ValueError: no such grid.
    """
    own = getattr(timm_inside(net), "num_prefix_tokens", None)
    known = isinstance(own, int) and own >= 0
    prefixes = ([int(own)] if known else []) + list(range(17))
    for p in (prefixes[:1] + [0]) if known else prefixes:  # unknown prefix: the patch grid tells
        for h, w in _token_grids(net, image_size):
            if h * w == n - p and h * w > 1:
                return p, h, w
    ratio = image_size[0] / image_size[1] if image_size is not None else 1.0
    for p in prefixes:
        m = n - p
        if m < 2:
            break
        best = None
        for h in range(1, math.isqrt(m) + 1):
            if m % h:
                continue
            for hh, ww in ((h, m // h), (m // h, h)):
                err = abs(math.log(hh / ww / ratio))
                if err < math.log(1.5) and (best is None or err < best[0]):
                    best = (err, hh, ww)
        if best is not None:
            return p, best[1], best[2]
    raise ValueError(f"{n} tokens cannot be laid on a patch grid")


def layer_layout(
    net: nn.Module,
    shape: Sequence[int],
    image_size: Sequence[int] | None = None,
    module: nn.Module | None = None,
) -> str:
    """How a layer's output of ``shape`` holds a feature map: ``"NCHW"``, ``"NHWC"``, ``"NLC"``.

    A 4-D output is channels-first or channels-last by the channel count its module declares
    (convolutions, norms, linear layers); otherwise by which pair of dimensions has the aspect
    ratio of the ``image_size`` (``H, W``); when both do, channels-first unless the model says
    ``output_fmt == "NHWC"`` (timm's Swin); when neither does, channels-first.

    Args:
        net: the whole model (for ``num_prefix_tokens``, ``patch_embed``, ``output_fmt``).
        shape: the output's shape, batch first.
        image_size: the input's ``(H, W)``.
        module: the layer itself (its declared channel count decides a 4-D layout).

    Raises:
        ValueError: the output is not a spatial map; the message says why.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        if shape[1] < 2:
            raise ValueError(f"it holds {shape[1]} token(s), not a map")
        try:
            _prefix_and_grid(net, shape[1], image_size)
        except ValueError as e:
            raise ValueError(f"its {shape[1]} tokens cannot be laid on the patch grid") from e
        return "NLC"
    if len(shape) != 4:
        what = "a vector per image (logits or pooled features)" if len(shape) == 2 else (
            f"a {len(shape)}-D tensor")
        raise ValueError(f"it is {what}, not a spatial map")
    c = _channels(module)
    if c is not None and (shape[1] == c) != (shape[3] == c):
        layout = "NCHW" if shape[1] == c else "NHWC"
    else:
        size = image_size if image_size is not None else (1, 1)  # square
        first, last = _on_grid(shape[2], shape[3], size), _on_grid(shape[1], shape[2], size)
        if first and last:
            layout = "NHWC" if getattr(timm_inside(net), "output_fmt", None) == "NHWC" else (
                "NCHW")
        else:
            layout = "NHWC" if last and not first else "NCHW"  # neither: PyTorch's convention
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    if h * w < 2:
        raise ValueError("it is a 1 x 1 map: there is nothing to localise")
    return layout


def _spatial(net: nn.Module, module: nn.Module, shape: tuple[int, ...], image_size) -> str | None:
    try:
        return layer_layout(net, shape, image_size, module)
    except ValueError:
        return None


def last_feature_map(
    module: nn.Module,
    traced: Sequence[tuple[str, nn.Module, tuple[int, ...]]],
    image_size: Sequence[int],
) -> str:
    """The default layer of ``module`` from a trace of one image's forward pass.

    ``traced`` holds ``(name, submodule, output shape)`` in the order the forwards finish
    (:func:`deepinside.engine.trace`). The last module whose output is a spatial map (see
    :func:`layer_layout`; modules that only pass a map on or pool it, such as
    ``nn.Identity``, dropout and adaptive pooling, are skipped): ``layer4`` on a ResNet,
    ``features`` on VGG and MobileNet, ``stages`` on ConvNeXt. When that map is made of tokens
    or is channels-last (a transformer's tail: ViT, DeiT, Swin), the last block's ``norm1``
    instead, the input of its attention, as pytorch-grad-cam advises (in a ViT the patch
    tokens after the last block no longer reach the class token): the last one after the
    last convolution that runs outside a block's attention (a block's own convolutions,
    CoaT's and CvT's position encodings, PVT's spatial reduction, do not count).

    Raises:
        ValueError: the model has no layer with a spatial map.
    """
    size = tuple(image_size)
    found: list[tuple[int, str, str]] = []  # (trace index, name, layout), as forwards finish
    for i, (name, m, shape) in enumerate(traced):
        if isinstance(m, _SKIPPED) or not shape or shape[0] != 1:
            continue
        layout = _spatial(module, m, tuple(shape), size)
        if layout is not None:
            found.append((i, name, layout))
    if not found:
        raise ValueError(
            "found no layer with a spatial feature map, which the layer (CAM) methods need "
            f"(each layer's output is none of: {_NEED.removeprefix('need ')}); pass layer=NAME, "
            "or use a method that needs no layer (e.g. gradient, integrated_gradients, "
            "occlusion)")
    _, name, layout = found[-1]
    if layout != "NCHW":
        inside = _attention_blocks(traced)
        last_conv = max((i for i, _, lay in found if lay == "NCHW" and not inside(i)),
                        default=-1)
        blocks = [n for i, n, _ in found
                  if i > last_conv and _ATTN_NORMS.fullmatch(n.rpartition(".")[2])]
        if blocks:
            name = blocks[-1]
    return name


def _attention_blocks(traced: Sequence[tuple[str, nn.Module, tuple[int, ...]]]):
    """Whether trace index ``i`` falls inside the forward of a transformer block, from its
    attention norm to the block's end (its own entry, else its last submodule's): the
    convolutions a block runs on its tokens (CoaT's and CvT's position encodings, PVT's
    spatial reduction), even through a module named outside it (CoaT's shared ``crpe``), are
    not a convolutional stage after it."""
    spans = []
    for i, (name, _, _) in enumerate(traced):
        block, _, leaf = name.rpartition(".")
        if block and _ATTN_NORMS.fullmatch(leaf):
            ends = [j for j in range(i + 1, len(traced))
                    if traced[j][0] == block or traced[j][0].startswith(block + ".")]
            if ends:
                spans.append((i, ends[-1]))
    return lambda i: any(a < i < b for a, b in spans)


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


def to_grid(
    net: nn.Module,
    t: Tensor,
    *,
    layer: str | None = None,
    image_size: Sequence[int] | None = None,
    batch: int | None = None,
) -> Tensor:
    """A layer's output as a grid ``Tensor[B, C, h, w]`` (see :func:`layer_layout`).

    Tokens lose their prefix (class, distillation, register) tokens and are laid on the patch
    grid; channels-last maps are permuted; channels-first maps are returned as they are.

    Args:
        net: the model the output comes from.
        t: the output.
        layer: its ``named_modules()`` name (its declared channel count decides a 4-D layout;
            named in errors).
        image_size: the input's ``(H, W)``.
        batch: the number of images; an output with another first dimension is an error.

    Raises:
        ValueError: the output is not a spatial map of each image; the message names the
            layer, its output's shape and why.
    """
    name = repr(layer) if layer is not None else "the layer"
    shape = "Tensor[" + ", ".join(str(s) for s in t.shape) + "]"
    if batch is not None and (t.dim() == 0 or t.shape[0] != batch):
        raise ValueError(
            f"layer {name} outputs {shape}, whose first dimension is not the batch of {batch} "
            "images (e.g. Swin's window attention works on windows); use its block or the "
            "block's norm1")
    module = net.get_submodule(layer) if layer is not None else None
    try:
        layout = layer_layout(net, tuple(t.shape), image_size, module)
    except ValueError as e:
        raise ValueError(f"layer {name} outputs {shape}: {e} ({_NEED})") from None
    if layout == "NCHW":
        return t
    if layout == "NHWC":
        return t.permute(0, 3, 1, 2)
    p, h, w = _prefix_and_grid(net, t.shape[1], image_size)
    return t[:, p:].reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)


# Moved in 0.2.0 (see CHANGELOG.md); the old names work for one release.
__getattr__ = deprecated_names(__name__, {"default_layer": "deepinside.engine:default_layer"})
