"""Helpers the attribution methods share: targets, baselines, chunks of a batch."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..fastmodel import fast_copy
from ..models import Classifier
from ..saliency import Target, check_images, eval_mode, module_of, resolve_targets

__all__ = ["baseline_images", "chunks", "forward_logits", "gaussian_blur", "targets_and_logits"]


def forward_logits(model: Classifier | nn.Module, images: Tensor, fast: bool = True) -> Tensor:
    """Logits ``Tensor[B, K]`` without gradients, in eval mode (caller's flags restored)."""
    module = module_of(model)
    with torch.no_grad(), eval_mode(module):
        net = fast_copy(module, images) if fast else None
        if net is None:
            out = module(images)
        else:
            out = net(images.contiguous(memory_format=torch.channels_last))
    if not isinstance(out, Tensor) or out.dim() != 2:
        raise ValueError("the model must return logits Tensor[B, K]")
    return out


def targets_and_logits(
    model: Classifier | nn.Module, images: Tensor, target: Target, fast: bool = True
) -> tuple[Tensor, Tensor]:
    """Resolve ``target`` on the clean images: ``(targets Tensor[B], logits Tensor[B, K])``."""
    check_images(images)
    logits = forward_logits(model, images.detach(), fast)
    return resolve_targets(target, logits), logits


def chunks(n: int, size: int | None) -> Iterator[slice]:
    """Slices covering ``range(n)`` in pieces of at most ``size`` (all at once if None)."""
    if size is not None and size < 1:
        raise ValueError("batch_size must be at least 1")
    step = n if size is None else size
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``Tensor[B, C, H, W]`` (reflect padding), same shape."""
    if sigma <= 0:
        return images.clone()
    r = max(1, int(3.0 * sigma + 0.5))
    r = min(r, images.shape[-1] - 1, images.shape[-2] - 1)
    ax = torch.arange(-r, r + 1, device=images.device, dtype=images.dtype)
    k = torch.exp(-0.5 * (ax / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    x = F.pad(images, (r, r, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def baseline_images(
    model: Classifier | nn.Module, images: Tensor, baseline: str | float | Tensor
) -> Tensor:
    """A reference input for each image, ``Tensor[B, C, H, W]``.

    Args:
        baseline: ``"zero"`` (zeros in the model's input space: the data set's mean colour for
            a normalised model), ``"black"`` / ``"white"`` (pixels 0 / 1, needs a
            :class:`Classifier` to normalise), ``"mean"`` (each image's own mean colour),
            ``"blur"`` (a strong Gaussian blur, sigma = width / 16), a number, or a tensor
            broadcastable to the images.
    """
    if isinstance(baseline, Tensor):
        return baseline.to(images).expand_as(images).clone()
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(images, float(baseline))
    if baseline == "zero":
        return torch.zeros_like(images)
    if baseline in ("black", "white"):
        if not isinstance(model, Classifier):
            raise ValueError(f"baseline={baseline!r} needs a Classifier (its normalisation)")
        fill = 0.0 if baseline == "black" else 1.0
        return model.preprocessing.normalize(torch.full_like(images, fill))
    if baseline == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images).clone()
    if baseline == "blur":
        return gaussian_blur(images, images.shape[-1] / 16.0)
    raise ValueError(
        "baseline must be 'zero', 'black', 'white', 'mean', 'blur', a number or a tensor, "
        f"got {baseline!r}"
    )


def accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` takes a keyword argument called ``name``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
