"""Image-specific class saliency, exactly as Simonyan, Vedaldi & Zisserman (2013), section 3.

Paper: https://arxiv.org/abs/1312.6034

The class score S_c is the *unnormalised* logit of class c. Its gradient with respect to the
input, w = dS_c/dI, computed by one backward pass, ranks the pixels by how much a small change
would change the score. The map is M_ij = max_k |w_{k,ij}| over the colour channels k.

This module also holds the gradient core that the other attribution methods share:
:func:`resolve_targets` and :func:`input_gradient`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from .fastmodel import fast_copy
from .images import photos_to_batch, resize_maps
from .models import Classifier

__all__ = [
    "Target",
    "eval_mode",
    "input_gradient",
    "photo_maps",
    "reduce_channels",
    "resolve_targets",
    "saliency",
]

Target = None | int | Sequence[int] | Tensor
Reduce = Literal["max_abs", "sum_abs", "sum", "none"]


def module_of(model: Classifier | nn.Module) -> nn.Module:
    """The ``nn.Module`` inside a :class:`Classifier` (or the module itself)."""
    if isinstance(model, Classifier):
        return model.module
    if isinstance(model, nn.Module):
        return model
    raise TypeError(f"model must be a deepinside Classifier or an nn.Module, got {type(model)}")


def check_images(images: Tensor) -> None:
    """Check that ``images`` is a floating ``Tensor[B, C, H, W]`` with B >= 1."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a Tensor[B, C, H, W], got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be a Tensor[B, C, H, W], got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point, got {images.dtype}")


def resolve_targets(target: Target, logits: Tensor) -> Tensor:
    """Turn a target specification into class indices ``Tensor[B]`` (long, on the logits' device).

    Args:
        target: ``None`` (each example's top-1 prediction), an ``int`` for every example, or a
            sequence / ``Tensor[B]`` of ints, one per example.
        logits: ``Tensor[B, K]``.

    Raises:
        ValueError / TypeError: wrong length, out of range, or not integers.
    """
    b, k = logits.shape[0], logits.shape[-1]
    if target is None:
        return logits.detach().argmax(dim=-1)
    if isinstance(target, bool):
        raise TypeError("target must be an int, a sequence of ints or a Tensor[B], not a bool")
    if isinstance(target, (int, np.integer)):
        t = torch.full((b,), int(target), dtype=torch.long, device=logits.device)
    else:
        if isinstance(target, Tensor):
            if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
                raise TypeError(f"target tensor must hold integers, got {target.dtype}")
            t = target.detach().reshape(-1).to(device=logits.device, dtype=torch.long)
        else:
            items = list(target)
            if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in items):
                raise TypeError("target must be an int, a sequence of ints or a Tensor[B]")
            t = torch.tensor(items, dtype=torch.long, device=logits.device)
        if t.numel() != b:
            raise ValueError(f"got {t.numel()} targets for a batch of {b}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
        raise ValueError(f"target class out of range 0..{k - 1}: {t.tolist()}")
    return t


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode; restore each one's own flag afterwards, even on error."""
    flags = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        yield module
    finally:
        for m, flag in flags:
            m.training = flag


def input_gradient(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    fast: bool = True,
    score: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradient of each example's class logit with respect to its input, one backward pass.

    The model runs in eval mode (the caller's flags are restored afterwards). No weight
    gradient is computed, nothing is written to any ``.grad``, and the caller's tensors keep
    their ``requires_grad``.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's normalised input space.
        target: see :func:`resolve_targets`.
        fast: run a private batch-norm-folded ``channels_last`` copy of the model (exact up to
            float rounding; see :mod:`deepinside.fastmodel`). ``False`` runs the module itself.
        score: optional map from logits ``Tensor[B, K]`` to the scores ``Tensor[B, K]`` whose
            target entries are differentiated (default: the logits themselves).

    Returns:
        ``(gradient Tensor[B, C, H, W], targets Tensor[B], logits Tensor[B, K])``, on the
        device and in the dtype of ``images``.
    """
    check_images(images)
    module = module_of(model)
    with eval_mode(module):
        net = fast_copy(module, images) if fast else None
        x = images.detach()  # a new tensor object: the caller's keeps its requires_grad
        if net is None:
            net = module
        else:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        with torch.enable_grad():
            logits = net(x)
            if not isinstance(logits, Tensor) or logits.dim() != 2:
                raise ValueError("the model must return logits Tensor[B, K]")
            t = resolve_targets(target, logits)
            s = logits if score is None else score(logits)
            selected = s.gather(1, t[:, None]).sum()
            (grad,) = torch.autograd.grad(selected, x)
    grad = grad.contiguous().to(dtype=images.dtype)
    return grad, t, logits.detach()


def reduce_channels(attr: Tensor, reduce: Reduce = "max_abs") -> Tensor:
    """Reduce ``Tensor[B, C, H, W]`` over channels.

    Args:
        reduce: ``"max_abs"`` (the paper: max over channels of the absolute value),
            ``"sum_abs"``, ``"sum"``, or ``"none"`` (keep ``Tensor[B, C, H, W]``).
    """
    if reduce == "max_abs":
        return attr.abs().amax(dim=1)
    if reduce == "sum_abs":
        return attr.abs().sum(dim=1)
    if reduce == "sum":
        return attr.sum(dim=1)
    if reduce == "none":
        return attr
    raise ValueError(f"reduce must be 'max_abs', 'sum_abs', 'sum' or 'none', got {reduce!r}")


def saliency(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    reduce: Reduce = "max_abs",
    fast: bool = True,
) -> Tensor:
    """The paper's image-specific class saliency map, for a whole batch at once.

    M_ij = max over colour channels of |dS_c/dI| at the image, with S_c the class logit
    (Simonyan et al. 2013, https://arxiv.org/abs/1312.6034, section 3.1). One forward and one
    backward pass for the batch.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, 3, H, W]`` in the model's normalised input space.
        target: ``None`` (each image's top-1 class), an ``int``, or a sequence / ``Tensor[B]``
            of ints.
        reduce: channel reduction; the paper's is ``"max_abs"``.
        fast: use the exact batch-norm-folded ``channels_last`` copy (see :func:`input_gradient`).

    Returns:
        ``Tensor[B, H, W]`` (or ``Tensor[B, C, H, W]`` with ``reduce="none"``), non-negative,
        on the device and in the dtype of ``images``.

    Example:
        >>> clf = deepinside.load_model()                     # doctest: +SKIP
        >>> x = clf.preprocessing.to_tensor(photo)[None]       # doctest: +SKIP
        >>> m = deepinside.saliency(clf, x)                    # Tensor[1, 224, 224]
    """
    grad, _, _ = input_gradient(model, images, target, fast=fast)
    return reduce_channels(grad, reduce)


MapFn = Callable[..., Tensor]


def photo_maps(
    model: Classifier,
    photos: Sequence[Image.Image],
    target: Target = None,
    *,
    method: MapFn = saliency,
    batch_size: int = 16,
    device: torch.device | str | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[np.ndarray], Tensor, Tensor]:
    """Maps for whole photos, each resized back to the photo's own height and width.

    Each photo is resized (no crop) to the model's input size, so the map covers the whole
    photo; the map is then resized bilinearly to the photo's size.

    Args:
        model: the classifier (its preprocessing is used).
        photos: RGB PIL images.
        target: as for :func:`saliency`, one per photo.
        method: ``f(model, images, target) -> Tensor[B, H, W]``; the paper's saliency by default.
        batch_size: photos per forward/backward pass.
        device: where the inputs go (default: the model's device).
        progress: called with the number of photos done after each batch.

    Returns:
        ``(maps, targets, logits)``: float32 arrays of shape (height, width), one per photo,
        the class each map explains ``Tensor[N]``, and the logits ``Tensor[N, K]`` of the
        resized photos (one extra forward pass without gradients per batch).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    dev = torch.device(device) if device is not None else model.device
    if target is not None and not isinstance(target, (int, np.integer)):
        target = torch.as_tensor(target if not isinstance(target, Tensor) else target.cpu())
        if target.numel() != len(photos):
            raise ValueError(f"got {target.numel()} targets for {len(photos)} photos")
    maps: list[np.ndarray] = []
    targets: list[Tensor] = []
    all_logits: list[Tensor] = []
    for start in range(0, len(photos), batch_size):
        chunk = photos[start : start + batch_size]
        x = photos_to_batch(chunk, model.preprocessing, crop=False).to(dev, model.dtype)
        t = target[start : start + len(chunk)] if isinstance(target, Tensor) else target
        with torch.no_grad(), eval_mode(model.module):
            logits = model(x)
        t = resolve_targets(t, logits)
        m = method(model, x, t).detach().float()
        for photo, mi in zip(chunk, m):
            maps.append(resize_maps(mi[None], (photo.height, photo.width))[0].cpu().numpy())
        targets.append(t.cpu())
        all_logits.append(logits.float().cpu())
        if progress is not None:
            progress(len(chunk))
    return maps, torch.cat(targets), torch.cat(all_logits)
