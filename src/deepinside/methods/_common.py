"""Helpers the attribution methods share: the clean targets, baselines, chunks of a batch."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from ..engine import forward_logits
from ..filters import gaussian_blur
from ..models import Classifier
from ..targets import ScoreFn, Target, resolve_targets

__all__ = ["Progress", "accepts", "baseline_images", "chunks", "one_target_per_image",
           "sample_sum", "targets_and_logits"]

# ``progress(done, total)``: the many-pass methods report after each pass.
Progress = Callable[[int, int], None]


def targets_and_logits(
    model: Classifier | nn.Module, images: Tensor, target: Target, fast: bool = True
) -> tuple[Tensor | ScoreFn, Tensor]:
    """Resolve ``target`` on the clean images: ``(targets Tensor[B], logits Tensor[B, K])``.

    Methods that run many perturbed copies explain the class of the clean image.

    Raises:
        ValueError: a ``"top<k>"`` target (these methods take one target per image; the photo
            pipeline repeats the images for top-k).
    """
    logits = forward_logits(model, images.detach(), fast=fast)  # checks the images
    return one_target_per_image(resolve_targets(target, logits, model)), logits


def one_target_per_image(t: Tensor | ScoreFn, method: str = "this method") -> Tensor | ScoreFn:
    """``t`` (resolved targets) unless it holds several per image (``"top<k>"``).

    Raises:
        ValueError: ``Tensor[B, k]`` targets; the photo pipeline repeats the images for top-k.
    """
    if isinstance(t, Tensor) and t.dim() != 1:
        raise ValueError(f"{method} explains one target per image; for top-k use "
                         "deepinside.photo_maps (it repeats the images)")
    return t


def chunks(n: int, size: int | None) -> Iterator[slice]:
    """Slices covering ``range(n)`` in pieces of at most ``size`` (all at once if None)."""
    if size is not None and size < 1:
        raise ValueError("batch_size must be at least 1")
    step = n if size is None else size
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def sample_sum(
    images: int,
    samples: int,
    batch_size: int | None,
    device: torch.device,
    draw: Callable[[Tensor, Tensor], Tensor],
    *,
    samples_first: bool = False,
    progress: Progress | None = None,
) -> Tensor:
    """``sum_s draw(i, s)`` for each image ``i``: the one loop of the sampling methods
    (Integrated Gradients, GradientSHAP, SmoothGrad, RISE).

    The pairs (image, sample) run in chunks of ``batch_size`` over the flat index ``k``
    (image ``k // samples``, sample ``k % samples``; with ``samples_first``, sample
    ``k // images`` and image ``k % images``, so a chunk needs few distinct samples), and all
    images of a batch share each pass. ``draw(image_index Tensor[n], sample_index Tensor[n])
    -> Tensor[n, ...]`` computes a chunk; its rows are added to their image's row
    (``index_add_``); ``progress(done, total)`` after each chunk, in pairs.

    Returns:
        ``Tensor[images, ...]``.
    """
    total: Tensor | None = None
    n = images * samples
    for sl in chunks(n, batch_size):
        idx = torch.arange(sl.start, sl.stop, device=device)
        if samples_first:
            si, bi = idx // images, idx % images
        else:
            bi, si = idx // samples, idx % samples
        part = draw(bi, si)
        if total is None:
            total = part.new_zeros((images, *part.shape[1:]))
        total.index_add_(0, bi, part)
        if progress is not None:
            progress(sl.stop, n)
    assert total is not None, "no samples"
    return total


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
