"""The photos of a data set that excite a unit most, each with its patch and its saliency.

The Distill article's layout (Olah et al. 2017, https://distill.pub/2017/feature-
visualization/, "dataset examples"): beside the image that maximises a unit, the photos that
activate it most. A photo's value is the objective on it, preprocessed as the model's photos
are (resize and centre crop): for :func:`~.objectives.channel`, the spatial mean of the
channel, as Lucent's ``channel``. The search streams over the data set in batches and keeps
only the ``k`` best in a heap, so its memory does not grow with the data set; the ``k`` are
loaded again at the end for their patch and saliency.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..engine import check_images, layer_network
from ..filters import gaussian_blur
from ..images import OnFailure, iter_photo_batches, photos_to_batch
from ..models import Classifier
from ..targets import need_logits
from .objectives import Activations, Objective

__all__ = ["TopPhoto", "top_photos", "unit_gradient", "unit_values"]


def _evaluate_all(model, objectives: Sequence[Objective], images: Tensor, grad: bool,
                  fast: bool = True) -> list[tuple[Tensor, Tensor | None, Tensor | None]]:
    """Per objective: (values ``Tensor[B]``, spatial map ``Tensor[B, h, w]`` or None,
    d values / d images or None); one forward pass for all of them."""
    check_images(images)
    for obj in objectives:
        if obj.images not in (None, 1):
            raise ValueError(f"{obj} is for {obj.images} images; a photo's value needs one "
                             "objective for every photo")
    x = images.detach()
    b = x.shape[0]
    layers = tuple(dict.fromkeys(n for obj in objectives for n in obj.layers))
    logits = any(obj.logits for obj in objectives)
    out = []
    with layer_network(model, x, layers, fast=fast, logits=logits) as net, \
            torch.set_grad_enabled(grad):
        if grad:
            x = x.clone().requires_grad_(True)
        lg, grids = net(x)
        if logits:
            lg = need_logits(lg, "a unit that reads the class logits")
        acts = Activations(lg, grids, torch.zeros(b, dtype=torch.long, device=x.device), 1)
        for i, obj in enumerate(objectives):
            values = obj(acts)
            spatial = obj.spatial(acts)
            g = None
            if grad:
                (g,) = torch.autograd.grad(values.sum(), x, retain_graph=i < len(objectives) - 1)
            out.append((values.detach(), None if spatial is None else spatial.detach(), g))
    return out


def _evaluate(model, objective: Objective, images: Tensor, grad: bool, fast: bool = True):
    """(values ``Tensor[B]``, spatial map ``Tensor[B, h, w]`` or None, d values / d images)."""
    return _evaluate_all(model, [objective], images, grad, fast)[0]


def unit_values(model: Classifier | nn.Module, objective: Objective, images: Tensor, *,
                fast: bool = True) -> Tensor:
    """The objective on each image: ``Tensor[B]`` (no gradient; the forward stops at the last
    layer the objective reads).

    Args:
        model: a :class:`Classifier` or an ``nn.Module``.
        objective: one objective for every image (no per-image arguments).
        images: ``Tensor[B, 3, H, W]`` in the model's normalised input space.
    """
    return _evaluate(model, objective, images, grad=False, fast=fast)[0]


def unit_gradient(model: Classifier | nn.Module, objective: Objective, images: Tensor, *,
                  fast: bool = True) -> tuple[Tensor, Tensor]:
    """The gradient of the objective with respect to each image, and the objective.

    The unit's saliency (Simonyan et al. 2013, section 3, https://arxiv.org/abs/1312.6034, with
    a unit in place of the class score) is the maximum over colour channels of its magnitude.

    Returns:
        ``(gradient Tensor[B, 3, H, W], values Tensor[B])``.
    """
    values, _, g = _evaluate(model, objective, images, grad=True, fast=fast)
    return g.to(images.dtype), values


@dataclass
class TopPhoto:
    """One of the photos that excite a unit most.

    Attributes:
        item: the input it came from (a path, or what was passed).
        value: the objective on it.
        image: the photo as the model saw it (resized and centre-cropped), ``uint8[H, W, 3]``.
        box: the patch ``(x0, y0, x1, y1)`` in ``image``'s pixels: a square around where the
            unit is most active (the peak of :meth:`Objective.spatial`, else of the saliency).
        saliency: ``float32[H, W]``, max over colours of |d objective / d pixel|.
    """

    item: object
    value: float
    image: np.ndarray
    box: tuple[int, int, int, int]
    saliency: np.ndarray

    @property
    def patch(self) -> np.ndarray:
        """The patch of ``image`` inside ``box``: ``uint8[h, w, 3]``."""
        x0, y0, x1, y1 = self.box
        return self.image[y0:y1, x0:x1]


def _box(peak_map: Tensor, size: tuple[int, int], side: int) -> tuple[int, int, int, int]:
    """A square of ``side`` pixels centred on the peak of ``peak_map`` (``[h, w]``)."""
    h, w = peak_map.shape
    H, W = size
    i = int(peak_map.flatten().float().argmax())
    cy, cx = (i // w + 0.5) * H / h, (i % w + 0.5) * W / w
    side = max(1, min(side, H, W))
    y0 = int(round(min(max(cy - side / 2, 0), H - side)))
    x0 = int(round(min(max(cx - side / 2, 0), W - side)))
    return (x0, y0, x0 + side, y0 + side)


def top_photos(
    model: Classifier,
    objective: Objective | Sequence[Objective],
    photos: Iterable,
    k: int = 9,
    *,
    batch_size: int = 16,
    on_failure: OnFailure | None = None,
    progress: Callable[[int], None] | None = None,
    fast: bool = True,
) -> list[TopPhoto] | list[list[TopPhoto]]:
    """The ``k`` photos with the highest objective, best first, with patch and saliency.

    Args:
        model: the classifier (its preprocessing: resize and centre crop, as for classifying).
        objective: a unit (:mod:`deepinside.classmodel.objectives`), one for every photo; or a
            list of units, searched in the same pass over the photos (one forward pass per
            batch for all of them).
        photos: paths, PIL images or arrays (an iterator is consumed once, in batches).
        k: how many to keep.
        batch_size: photos per forward pass.
        on_failure: called with ``(item, reason)`` for a photo that cannot be read (skipped).
        progress: called with the number of photos done after each batch.

    Returns:
        Up to ``k`` :class:`TopPhoto`, highest value first (ties: the earlier photo first);
        for a list of units, one such list per unit.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    single = isinstance(objective, Objective)
    objectives = [objective] if single else list(objective)
    if not objectives or not all(isinstance(o, Objective) for o in objectives):
        raise TypeError(f"objective must be a deepinside Objective (or a list of them), got "
                        f"{type(objective).__name__}")
    heaps: list[list[tuple[float, int, object]]] = [[] for _ in objectives]  # the k best
    order = 0
    for b in iter_photo_batches(photos, batch_size, on_failure):
        if b.photos:
            x = photos_to_batch(b.photos, model.preprocessing, crop=True)
            results = _evaluate_all(model, objectives, x.to(model.device, model.dtype),
                                    grad=False, fast=fast)
            for heap, (values, _, _) in zip(heaps, results):
                for j, (item, v) in enumerate(zip(b.items, values.float().cpu().tolist())):
                    entry = (v, -(order + j), item)  # (value, -order, item)
                    if len(heap) < k:
                        heapq.heappush(heap, entry)
                    else:
                        heapq.heappushpop(heap, entry)
            order += len(b.items)
        if progress is not None:
            progress(len(b.photos) + b.failed)
    found = [_details(model, obj, [item for _, _, item in sorted(heap, reverse=True)], fast)
             for obj, heap in zip(objectives, heaps)]
    return found[0] if single else found


def _details(model: Classifier, objective: Objective, items: list, fast: bool) -> list[TopPhoto]:
    """The photos of ``items`` (loaded again) with their value, patch and saliency."""
    if not items:
        return []
    loaded = [p for b in iter_photo_batches(items, len(items)) for p in b.photos]
    x = photos_to_batch(loaded, model.preprocessing, crop=True).to(model.device, model.dtype)
    values, spatial, grad = _evaluate(model, objective, x, grad=True, fast=fast)
    sal = grad.abs().amax(dim=1).float().cpu()  # Tensor[k, H, W]
    size = tuple(x.shape[-2:])
    out = []
    pixels = model.preprocessing.denormalize(x.float().cpu()).clamp(0, 1)
    for i, item in enumerate(items):
        if spatial is not None:
            h = spatial.shape[-2]
            side = int(min(max(4 * size[0] / h, size[0] / 8), size[0] / 2))
            box = _box(spatial[i].cpu(), size, side)
        else:
            box = _box(gaussian_blur(sal[i][None, None], 4.0)[0, 0], size, size[0] // 2)
        img = (pixels[i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        out.append(TopPhoto(item, float(values[i]), img, box, sal[i].numpy()))
    return out
