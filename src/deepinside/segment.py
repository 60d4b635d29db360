"""Saliency map -> segment -> component -> box: the segmentation half of localisation.

NumPy and OpenCV only (no torch at import, so a GrabCut worker starts fast);
:mod:`deepinside.localize` computes the maps and re-exports everything here.

Simonyan, Vedaldi & Zisserman (2013), section 6 (https://arxiv.org/abs/1312.6034): a classifier
trained with image labels only can localise objects. The class saliency map seeds a GrabCut
colour segmentation (Rother et al. 2004, https://doi.org/10.1145/1015706.1015720): foreground
seeds above the 95% quantile of the map, background seeds below its 30% quantile, the rest
"probable". The largest connected component of the foreground is the object; its bounding box is
the answer.

Every constant is a field of :class:`Recipe`. Named recipes live in :data:`RECIPES`:

- ``"paper"``: the paper's recipe, literally (gradient map, q95 / q30 seeds, GrabCut 5
  iterations, largest component).
- ``"default"``: the best recipe measured on ImageNet validation photos (see
  ``docs/localization.md``): the geometric mean of a Grad-CAM map (Selvaraju et al. 2017,
  https://arxiv.org/abs/1610.02391) of the last convolutional layer and the paper's gradient
  map blurred (sigma 4% of the photo's side), thresholded at 30% of its range, the largest
  connected component. ``"gradcam-30"`` is the same without the gradient.
- ``"default-band"``: the default's map, but the box is the mean of the boxes cut at 9
  thresholds from 10% to 50% of the map's range (no single tuned level; its box moves less when
  the map's statistics change, but with efficientnet_lite0 it scores 0.02 below the default,
  see ``docs/localization.md``).
- ``"paper-energy"`` (the paper's, boxing the components that hold 80% of the map's energy
  instead of the largest one) and ``"gradcam-20"`` (the common Grad-CAM localisation: 20% of
  the maximum), for comparison.

Boxes are ``(x0, y0, x1, y1)`` in the photo's own pixels, continuous coordinates: a mask whose
pixels span columns ``a..b`` gives ``x0 = a``, ``x1 = b + 1``; the whole photo is
``(0, 0, width, height)``.

Degenerate inputs give a defined result, never a crash: a flat (or non-finite) map, a foreground
that comes out empty, or an image too small for GrabCut's colour models give the whole-photo box
(the "no information" answer) with a ``note`` saying why; a one-pixel photo gives its one pixel.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .registry import Registry

__all__ = ["GMM_COMPONENTS", "RECIPES", "Box", "Recipe", "blur_map", "get_recipe", "mask_to_box",
           "segment_map"]

Box = tuple[float, float, float, float]
GMM_COMPONENTS = 5  # OpenCV's GrabCut fits 5-component mixtures: it needs >= 5 samples per side


@dataclass(frozen=True)
class Recipe:
    """How a saliency map becomes a box. Every constant of the pipeline is a field.

    Attributes:
        name: for display.
        method: the attribution method (a name of :func:`deepinside.methods.get_method`) used
            when :func:`localize` is not given one.
        flip: average the map with the (mirrored back) map of the mirrored photo.
        smooth: Gaussian blur of the map, sigma as a fraction of the photo's shorter side
            (0: none).
        segment: ``"grabcut"`` (seeded colour segmentation) or ``"threshold"`` (the map itself).
        fg_quantile: GrabCut: pixels above this quantile of the map are sure foreground.
        bg_quantile: GrabCut: pixels below this quantile are sure background.
        middle: GrabCut: label of the pixels in between, ``"probable_background"`` or
            ``"probable_foreground"``.
        iterations: GrabCut iterations.
        max_side: GrabCut runs on a copy whose longer side is at most this many pixels (the mask
            is scaled back); 0 means always at full size.
        threshold: ``"threshold"`` segmentation: foreground where the map is at least this
            fraction of its maximum.
        component: ``"largest"`` (the paper: the largest connected component of the foreground)
            or ``"energy"`` (the fewest components, by map energy, that hold ``energy`` of the
            foreground's energy; the box covers them all).
        energy: see ``component``.
        combine: a second method name (``""``: none). Its map, blurred by ``combine_smooth``,
            multiplies the first one: the map is the geometric mean of the two (each scaled to
            maximum 1), the coarse class-discriminative map gated by the fine one, as Guided
            Grad-CAM does (Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391).
        combine_smooth: Gaussian sigma of the second map, a fraction of the shorter side.
        cut: ``"threshold"`` segmentation: ``"fixed"`` (cut at ``threshold``) or ``"band"``
            (cut at ``band_levels`` evenly spaced thresholds from ``band[0]`` to ``band[1]`` of
            the range, pick the component at each, and return the mean of their boxes; the
            mask is the one of the middle level).
        band: see ``cut``.
        band_levels: see ``cut``.
    """

    name: str = "custom"
    method: str = "gradient"
    flip: bool = False
    smooth: float = 0.0
    segment: Literal["grabcut", "threshold"] = "grabcut"
    fg_quantile: float = 0.95
    bg_quantile: float = 0.30
    middle: Literal["probable_background", "probable_foreground"] = "probable_background"
    iterations: int = 5
    max_side: int = 512
    threshold: float = 0.2
    component: Literal["largest", "energy"] = "largest"
    energy: float = 0.8
    combine: str = ""
    combine_smooth: float = 0.04
    cut: Literal["fixed", "band"] = "fixed"
    band: tuple[float, float] = (0.1, 0.5)
    band_levels: int = 9

    def __post_init__(self) -> None:
        if self.segment not in ("grabcut", "threshold"):
            raise ValueError(f"segment must be 'grabcut' or 'threshold', got {self.segment!r}")
        if self.middle not in ("probable_background", "probable_foreground"):
            raise ValueError(f"middle must be 'probable_background' or 'probable_foreground', "
                             f"got {self.middle!r}")
        if self.component not in ("largest", "energy"):
            raise ValueError(f"component must be 'largest' or 'energy', got {self.component!r}")
        if not 0.0 <= self.bg_quantile <= self.fg_quantile <= 1.0:
            raise ValueError("need 0 <= bg_quantile <= fg_quantile <= 1")
        if not 0.0 <= self.threshold <= 1.0 or not 0.0 < self.energy <= 1.0:
            raise ValueError("threshold must be in [0, 1] and energy in (0, 1]")
        if self.cut not in ("fixed", "band"):
            raise ValueError(f"cut must be 'fixed' or 'band', got {self.cut!r}")
        if (len(self.band) != 2 or not 0.0 <= self.band[0] <= self.band[1] <= 1.0
                or self.band_levels < 1):
            raise ValueError("band must be (lo, hi) with 0 <= lo <= hi <= 1, band_levels >= 1")
        if self.iterations < 1 or self.smooth < 0 or self.max_side < 0 or self.combine_smooth < 0:
            raise ValueError("iterations must be >= 1, smooth >= 0, max_side >= 0")

    def replace(self, **changes: object) -> Recipe:
        """A copy with some fields changed (unknown field names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)


RECIPES: Registry[Recipe] = Registry("recipe")
for _r in (
    Recipe(name="paper"),
    Recipe(name="paper-energy", component="energy"),
    Recipe(name="gradcam-20", method="gradcam", segment="threshold", threshold=0.2),
    Recipe(name="gradcam-30", method="gradcam", segment="threshold", threshold=0.3),
    Recipe(name="default", method="gradcam", combine="gradient", combine_smooth=0.04,
           segment="threshold", threshold=0.3),
    Recipe(name="default-band", method="gradcam", combine="gradient", combine_smooth=0.04,
           segment="threshold", cut="band", band=(0.1, 0.5), band_levels=9),
):
    RECIPES.register(_r.name, _r)


def get_recipe(recipe: str | Recipe, **overrides: object) -> Recipe:
    """A recipe by name (see :data:`RECIPES`) or as given, with fields overridden.

    Raises:
        KeyError: unknown name (with the closest names). TypeError: neither name nor Recipe.
    """
    if isinstance(recipe, str):
        recipe = RECIPES.get(recipe)
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a name or a Recipe, got {type(recipe).__name__}")
    return recipe.replace(**overrides) if overrides else recipe


# ----------------------------------------------------------------------------- map -> box


def mask_to_box(mask: np.ndarray) -> Box | None:
    """The tight box ``(x0, y0, x1, y1)`` (continuous pixel edges) of a boolean mask (H, W).

    Returns ``None`` for an empty mask.
    """
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return None
    return (float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1))


def blur_map(m: np.ndarray, smooth: float) -> np.ndarray:
    """Gaussian blur of a map (H, W), sigma = ``smooth`` times its shorter side (reflect border).

    The one blur of maps as NumPy arrays (OpenCV); tensors use
    :func:`deepinside.filters.gaussian_blur`.
    """
    import cv2

    sigma = smooth * min(m.shape) if m.size > 1 else 0.0
    if sigma <= 0:
        return m
    return cv2.GaussianBlur(m, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def _prepare_map(m: np.ndarray, recipe: Recipe) -> np.ndarray:
    m = np.nan_to_num(np.asarray(m, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return blur_map(m, recipe.smooth)


def _grabcut(photo: np.ndarray, m: np.ndarray, recipe: Recipe, seed: int) -> tuple[np.ndarray, str]:
    """Foreground mask (H, W) from GrabCut seeded by quantiles of the map."""
    import cv2

    qf = float(np.quantile(m, recipe.fg_quantile))
    qb = float(np.quantile(m, recipe.bg_quantile))
    fg = m > qf
    if not fg.any():  # ties at the top: take the top value itself
        fg = m >= qf
    bg = (m < qb) & ~fg
    if not bg.any():
        bg = (m <= qb) & ~fg
    middle = cv2.GC_PR_BGD if recipe.middle == "probable_background" else cv2.GC_PR_FGD
    labels = np.full(m.shape, middle, dtype=np.uint8)
    labels[fg] = cv2.GC_FGD
    labels[bg] = cv2.GC_BGD
    n_fg = int(np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).sum())
    if n_fg < GMM_COMPONENTS or labels.size - n_fg < GMM_COMPONENTS:
        return fg, "too few seeds for GrabCut; foreground = the top seeds"
    h, w = m.shape
    scale = 1.0
    if recipe.max_side and max(h, w) > recipe.max_side:
        scale = recipe.max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
        n_fg = int(np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).sum())
        if n_fg < GMM_COMPONENTS or labels.size - n_fg < GMM_COMPONENTS:  # lost in the resize
            return fg, "too few seeds for GrabCut; foreground = the top seeds"
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(int(seed))
    cv2.grabCut(np.ascontiguousarray(photo, dtype=np.uint8), labels, None, bgd, fgd,
                recipe.iterations, cv2.GC_INIT_WITH_MASK)
    out = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if scale != 1.0:
        out = cv2.resize(out.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return out, ""


def _pick_components(fg: np.ndarray, m: np.ndarray, recipe: Recipe) -> np.ndarray:
    import cv2

    n, comp, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if n <= 2:
        return comp == 1
    if recipe.component == "largest":
        return comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    weight = m - float(m.min())
    energy = np.bincount(comp.ravel(), weights=weight.ravel().astype(np.float64), minlength=n)[1:]
    if energy.sum() <= 0:
        return comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    order = np.argsort(-energy, kind="stable")
    cum = np.cumsum(energy[order])
    k = int(np.searchsorted(cum, recipe.energy * cum[-1] * (1 - 1e-9))) + 1
    return np.isin(comp, order[:k] + 1)


def _band_cut(m: np.ndarray, recipe: Recipe, lo: float, hi: float,
              whole: Box) -> tuple[np.ndarray, Box, str]:
    """The mean of the boxes cut at ``recipe.band_levels`` thresholds of the map's range.

    One fixed cut is a constant tuned on some photos; the best cut varies from photo to photo.
    Averaging the box edges over a band of cuts (each the chosen component at that level) gives
    a box between the loose low cuts and the tight high ones, and a small change of the map
    moves it little. Levels whose foreground is empty are skipped.
    """
    levels = np.linspace(recipe.band[0], recipe.band[1], recipe.band_levels)
    boxes, masks = [], []
    for t in levels:
        fg = m >= lo + float(t) * (hi - lo)
        if not fg.any():
            continue
        mask = _pick_components(fg, m, recipe)
        boxes.append(mask_to_box(mask))
        masks.append(mask)
    if not boxes:
        return np.ones(m.shape, dtype=bool), whole, "empty foreground"
    box = tuple(float(v) for v in np.mean(np.asarray(boxes, dtype=np.float64), axis=0))
    return masks[len(masks) // 2], box, ""  # type: ignore[return-value]


def segment_map(
    photo: np.ndarray, saliency_map: np.ndarray, recipe: Recipe | str = "paper", seed: int = 0
) -> tuple[np.ndarray, Box, str]:
    """Turn one saliency map into an object mask and its box (numpy and OpenCV only).

    Args:
        photo: the photo, uint8 (H, W, 3).
        saliency_map: float (H, W), the photo's own size; higher means more salient.
        recipe: a :class:`Recipe` or its name.
        seed: OpenCV's random seed for GrabCut's initialisation (``cv2.setRNGSeed``), so that
            a result is reproducible.

    Returns:
        ``(mask bool (H, W), box (x0, y0, x1, y1), note)``; ``note`` is empty unless a
        degenerate case chose the result (flat map, empty foreground, too few seeds).
    """
    recipe = get_recipe(recipe)
    photo = np.asarray(photo)
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    if photo.ndim != 3 or photo.shape[2] < 3:
        raise ValueError(f"photo must be (H, W, 3), got shape {photo.shape}")
    photo = photo[..., :3]
    if photo.dtype != np.uint8:
        photo = np.clip(photo, 0, 255).astype(np.uint8)
    h, w = photo.shape[:2]
    if tuple(np.shape(saliency_map)) != (h, w):
        raise ValueError(f"map shape {np.shape(saliency_map)} differs from photo's {(h, w)}")
    whole: Box = (0.0, 0.0, float(w), float(h))
    full = np.ones((h, w), dtype=bool)
    if h * w <= 1:
        return full, whole, "one-pixel image"
    m = _prepare_map(saliency_map, recipe)
    lo, hi = float(m.min()), float(m.max())
    if not hi - lo > 1e-12 * max(abs(hi), abs(lo), 1e-30):
        return full, whole, "flat map"
    if recipe.segment == "threshold" and recipe.cut == "band":
        return _band_cut(m, recipe, lo, hi, whole)
    if recipe.segment == "grabcut":
        fg, note = _grabcut(photo, m, recipe, seed)
    else:
        fg, note = m >= lo + recipe.threshold * (hi - lo), ""
    if not fg.any():
        return full, whole, "empty foreground"
    mask = _pick_components(fg, m, recipe)
    box = mask_to_box(mask)
    assert box is not None
    return mask, box, note


def _unit_max(m: np.ndarray) -> np.ndarray:
    top = float(np.max(m)) if m.size else 0.0
    return m / top if top > 0 and np.isfinite(top) else m
