"""The erase check: does the model really use a cluster's hot region, more than the object?

Each photo is resized to the model's input (no crop, as for its map); the region to erase is
replaced by the same photo blurred with a Gaussian of standard deviation :data:`BLUR` times the
input's larger side (heavy enough that a small stamp or a watermark is gone, while the colours
stay those of the photo: no grey patch, which would be evidence of its own). The drop of the
class's logit (``forward_logits``, through the engine) is reported for two erasures of each
photo: the cluster's hot region less the object's boxes, and the object's boxes. The photo and
its two erasures share a forward pass (with other photos'); an erasure whose mask is empty (a
hot region inside the boxes) is not run: its drop is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["BLUR", "erase_drops", "erase_masks"]

BLUR = 0.1  # the blur's sigma, as a share of the input's larger side


def erase_masks(regions: Sequence[np.ndarray], boxes: Sequence[Sequence[Sequence[float]]],
                sizes: Sequence[tuple[int, int]], shape: tuple[int, int]
                ) -> tuple[Tensor, Tensor]:
    """The two masks of the erase check at the input size ``shape = (H, W)``.

    Args:
        regions: per photo, bool ``(h, w)`` cells of the photo (its cluster's hot region).
        boxes: per photo, its true boxes ``(x0, y0, x1, y1)`` in its own pixels.
        sizes: per photo, its ``(width, height)``.
        shape: the model's input ``(H, W)``.

    Returns:
        ``(region less boxes, boxes)``, float ``Tensor[N, 1, H, W]`` of 0 and 1.
    """
    h, w = shape
    ys = torch.arange(h, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(w, dtype=torch.float32)[None, :] + 0.5
    reg, obj = [], []
    for region, bs, (pw, ph) in zip(regions, boxes, sizes):
        cells = torch.as_tensor(np.asarray(region, dtype=np.float32))[None, None]
        grid = F.interpolate(cells, size=(h, w), mode="nearest")[0, 0] > 0.5
        m = torch.zeros(h, w, dtype=torch.bool)
        for x0, y0, x1, y1 in bs:  # the photo's pixels -> the input's (resized, no crop)
            sx, sy = w / pw, h / ph
            m |= (xs >= x0 * sx) & (xs <= x1 * sx) & (ys >= y0 * sy) & (ys <= y1 * sy)
        reg.append(grid & ~m)
        obj.append(m)
    if not reg:
        return torch.zeros(0, 1, h, w), torch.zeros(0, 1, h, w)
    return torch.stack(reg)[:, None].float(), torch.stack(obj)[:, None].float()


def erase_drops(model, photos: Sequence, labels: Sequence[int], regions: Sequence[np.ndarray],
                boxes: Sequence[Sequence[Sequence[float]]], *, blur: float = BLUR,
                batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The class logit's drop per photo when its hot region, less the boxes, is blurred, and
    when its boxes are.

    Args:
        model: a :class:`deepinside.Classifier`.
        photos: RGB PIL images.
        labels: per photo, the class whose logit is watched.
        regions: per photo, bool ``(h, w)`` cells of the photo to erase (its cluster's hot
            region).
        boxes: per photo, its true boxes in its own pixels (at least one each).
        blur: the blur's sigma as a share of the input's larger side.
        batch_size: photos per forward pass (photos of several clusters and classes share a
            pass).

    Returns:
        ``(region_drops, object_drops)``: float64 arrays ``(N,)``, ``logit(photo) -
        logit(erased photo)``.
    """
    from ..engine import forward_logits
    from ..filters import gaussian_blur
    from ..images import model_batch

    region_drops, object_drops = [], []
    for start in range(0, len(photos), batch_size):
        end = start + batch_size
        chunk = list(photos[start:end])
        x = model_batch(model, chunk, crop=False)
        h, w = x.shape[-2:]
        soft = gaussian_blur(x, blur * max(h, w))
        reg, obj = (m.to(x.device, x.dtype) for m in erase_masks(
            regions[start:end], boxes[start:end], [p.size for p in chunk], (h, w)))
        # an empty mask erases nothing: its drop is 0, and its photo is not run again
        has_r, has_o = (m.flatten(1).amax(1) > 0 for m in (reg, obj))
        batch = torch.cat([x, (x * (1 - reg) + soft * reg)[has_r],
                           (x * (1 - obj) + soft * obj)[has_o]])
        lab = torch.as_tensor(list(labels[start:end]), device=x.device)
        cls = torch.cat([lab, lab[has_r], lab[has_o]])
        logits = forward_logits(model, batch).gather(1, cls[:, None])[:, 0].double().cpu()
        n, nr = len(chunk), int(has_r.sum())
        for drops, has, erased in ((region_drops, has_r, logits[n:n + nr]),
                                   (object_drops, has_o, logits[n + nr:])):
            d = torch.zeros(n, dtype=torch.float64)
            d[has.cpu()] = logits[:n][has.cpu()] - erased
            drops.append(d.numpy())
    if not region_drops:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(region_drops), np.concatenate(object_drops)
