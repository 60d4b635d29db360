"""Weakly supervised object localisation from saliency maps: photos -> maps -> boxes.

Simonyan, Vedaldi & Zisserman (2013), section 6 (https://arxiv.org/abs/1312.6034): a classifier
trained with image labels only can localise objects. :func:`recipe_maps` computes the maps a
:class:`Recipe` segments (through :func:`deepinside.photo_maps`), :func:`localize` is the
public verb. The segmentation itself (recipes, GrabCut, thresholds, components, boxes) is
NumPy and OpenCV only and lives in :mod:`deepinside.segment`, re-exported here; this module too
loads no torch at import, so a GrabCut worker that imports it starts fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._lazy import deprecated_positional
from .segment import (
    GMM_COMPONENTS,
    RECIPES,
    Box,
    Recipe,
    _unit_max,
    blur_map,
    get_recipe,
    mask_to_box,
    segment_map,
)

__all__ = [
    "GMM_COMPONENTS",
    "RECIPES",
    "Box",
    "Localization",
    "Recipe",
    "get_recipe",
    "localize",
    "blur_map",
    "mask_to_box",
    "recipe_maps",
    "segment_map",
]


def recipe_maps(
    model, photos: Sequence, targets, recipe: Recipe, method: str | Callable | None = None, *,
    batch_size: int = 16,
) -> tuple[list[np.ndarray], object]:
    """The maps a recipe segments, at each photo's own size (the photo pipeline's maps).

    The recipe's method (or ``method``) for the given classes; with ``recipe.flip`` averaged
    with the (mirrored back) map of the mirrored photo, each scaled to maximum 1; with
    ``recipe.combine``, the geometric mean with the second method's map, blurred by
    ``recipe.combine_smooth``.

    Args:
        model: a :class:`deepinside.Classifier`.
        photos: RGB PIL images.
        targets: one class per photo (``Tensor[N]`` or a sequence of ints), or ``None`` (top-1).
        recipe: the :class:`Recipe`.
        method: a method name or ``f(model, images, target) -> Tensor[B, H, W]``.
        batch_size: photos per pass.

    Returns:
        ``(maps, logits)``: float32 arrays (height, width), one per photo, and the logits
        ``Tensor[N, K]`` of the (unmirrored) resized photos.
    """
    from PIL import ImageOps

    from .photomaps import photo_maps

    photos = list(photos)
    mirrored = [ImageOps.mirror(p) for p in photos] if recipe.flip else []

    def maps_of(name, classes):
        maps, t, logits = photo_maps(model, photos, classes, method=name, batch_size=batch_size)
        if recipe.flip:
            back, _, _ = photo_maps(model, mirrored, t, method=name, batch_size=batch_size)
            maps = [0.5 * (_unit_max(a) + _unit_max(b[:, ::-1])) for a, b in zip(maps, back)]
        return [np.ascontiguousarray(m, dtype=np.float32) for m in maps], t, logits

    maps, t, logits = maps_of(method or recipe.method, targets)
    if recipe.combine:
        other, _, _ = maps_of(recipe.combine, t)
        maps = [np.sqrt(np.clip(_unit_max(a), 0, None)
                        * np.clip(_unit_max(blur_map(b, recipe.combine_smooth)), 0, None))
                .astype(np.float32) for a, b in zip(maps, other)]
    return maps, logits


# ----------------------------------------------------------------------------- public verb


@dataclass
class Localization:
    """One class localised in one photo.

    Attributes:
        class_index: the class.
        name: its short name.
        prob: its softmax probability for the (whole, resized) photo.
        logit: its class score.
        box: ``(x0, y0, x1, y1)`` in the photo's pixels.
        mask: bool (H, W), the chosen foreground.
        saliency: float (H, W), the map that was segmented (before smoothing).
        note: why a degenerate case decided the result, or ``""``.
    """

    class_index: int
    name: str
    prob: float
    logit: float
    box: Box
    mask: np.ndarray = field(repr=False)
    saliency: np.ndarray = field(repr=False)
    note: str = ""

    def to_dict(self) -> dict:
        """JSON-ready fields (no arrays)."""
        return {"class": self.class_index, "name": self.name, "prob": self.prob,
                "logit": self.logit, "box": list(self.box), "note": self.note}


@deprecated_positional(2, ("top_k", "target", "method", "recipe"),
                       note="in the next release target becomes the third positional argument")
def localize(
    model,
    photos=None,
    *,
    target=None,
    top_k: int = 1,
    method: str | None = None,
    recipe: str | Recipe = "default",
    seed: int = 0,
    batch_size: int = 16,
    **overrides: object,
) -> list[list[Localization]]:
    """Localise the top-k classes (or given classes) of photos; boxes in each photo's pixels.

    Simonyan et al. 2013, section 6 (https://arxiv.org/abs/1312.6034) with ``recipe="paper"``.

    Args:
        model: a :class:`deepinside.Classifier`.
        photos: a photo or a sequence of photos: PIL images, uint8 arrays (H, W, 3) or paths
            (``images=``: deprecated since 0.2.0; ``images`` is a normalised tensor elsewhere).
        target: ``None`` (the top-k classes), a class (index or name) for every photo, one per
            photo, or ``"top<k>"`` (see :mod:`deepinside.targets`).
        top_k: how many of each photo's top classes to localise (ignored with ``target``).
        method: attribution method name (default: the recipe's; ``"gradient"`` for the paper).
        recipe: a name of :data:`RECIPES` or a :class:`Recipe`.
        seed: GrabCut's random seed (``cv2.setRNGSeed``).
        batch_size: photos per forward/backward pass.
        **overrides: recipe fields to change, e.g. ``fg_quantile=0.9``.

    0.1's positional ``top_k, target, method, recipe`` after the photos still work, with a
    ``DeprecationWarning`` (since 0.2.0; a value also given by keyword is a ``TypeError``). In
    the next release ``target`` becomes the third positional argument, as in
    :func:`deepinside.saliency` (it cannot change in place: an int there is a ``top_k`` in 0.1
    and a class now).

    Returns:
        Per photo, a list of :class:`Localization`, best class first.

    Example:
        >>> clf = deepinside.load_model()                                   # doctest: +SKIP
        >>> [[loc]] = localize(clf, load_image("cat.jpg"), recipe="paper")  # doctest: +SKIP
        >>> loc.box                                                          # doctest: +SKIP
        (12.0, 30.0, 190.0, 214.0)
    """
    import torch

    from .images import as_photos
    from .photomaps import forward_photos
    from .targets import resolve_targets

    photos = _photos_argument(photos, overrides)
    rec = get_recipe(recipe, **overrides)
    method = method or rec.method
    photos = as_photos(photos)
    n = len(photos)
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    logits = torch.cat([
        forward_photos(model, photos[i:i + batch_size], crop=False)[1].float().cpu()
        for i in range(0, n, batch_size)
    ])
    classes = resolve_targets(f"top{top_k}" if target is None else target, logits, model)
    if not isinstance(classes, torch.Tensor):
        raise TypeError("localize needs classes (an int, a name, one per photo or top-k), "
                        "not a callable")
    classes = classes.reshape(n, -1)
    probs = torch.softmax(logits, dim=1)
    flat_photos = [photos[i] for i in range(n) for _ in range(classes.shape[1])]
    maps, _ = recipe_maps(model, flat_photos, classes.reshape(-1), rec, method,
                          batch_size=batch_size)
    out: list[list[Localization]] = []
    for i in range(n):
        row = []
        for j in range(classes.shape[1]):
            c = int(classes[i, j])
            m = maps[i * classes.shape[1] + j]
            mask, box, note = segment_map(np.asarray(photos[i]), m, rec, seed)
            name = model.short_name(c) if hasattr(model, "short_name") else f"class {c}"
            row.append(Localization(c, name, float(probs[i, c]), float(logits[i, c]), box, mask,
                                    m, note))
        out.append(row)
    return out


def _photos_argument(photos: object, overrides: dict) -> object:
    """``photos``, or 0.1's ``images=`` keyword (taken out of ``overrides``, with a
    ``DeprecationWarning``)."""
    if "images" in overrides:
        warnings.warn("localize(images=...) is deprecated since 0.2.0; use photos=",
                      DeprecationWarning, stacklevel=4)  # caller, decorator, localize, here
        photos = overrides.pop("images")
    if photos is None:
        raise TypeError("localize() needs photos")
    return photos
