"""What an explanation sends to be seen: the map in a sign, its overlay and its colour scale.

Signs as the command line's ``--sign`` (Captum's ``visualize_image_attr`` sign modes):
``absolute`` (magnitudes, today's look), ``positive`` / ``negative`` (the part of that sign, as
magnitudes), ``all`` (a diverging colour map centred on 0: red for the class, blue against).
Everything is drawn by :mod:`deepinside.render`; here it is only chosen and packed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .photos import png
from .problems import Problem

__all__ = ["SIGNS", "overlay_and_scale", "read_sign", "shown_map"]

SIGNS = ("absolute", "positive", "negative", "all")
RAMP = 256  # colours of the colour bar's image


def read_sign(text: str | None, default: str, field: str = "sign") -> str:
    """A request's sign (empty or ``auto``: ``default``, the method's
    :attr:`~deepinside.methods.MethodInfo.default_sign`), or a 422 :class:`Problem` naming
    ``field``."""
    value = (text or "").strip().lower()
    if value in ("", "auto"):
        return default
    if value not in SIGNS:
        raise Problem(422, "Bad request", f"{field}: must be one of {', '.join(SIGNS)} (or "
                                          f"auto), got {(text or '')[:40]!r}")
    return value


def shown_map(m: np.ndarray, sign: str) -> np.ndarray:
    """The part of a map that ``map.png`` shows (non-negative): its positive part for ``all``
    (as before signs), else :func:`deepinside.render.sign_part`."""
    from deepinside.render import sign_part

    return np.clip(m, 0, None) if sign == "all" else sign_part(m, sign)


def overlay_and_scale(photo: Image.Image, m: np.ndarray, sign: str) -> tuple[np.ndarray, dict]:
    """The map (H, W, with its sign) over the photo, uint8 (H, W, 3), and its colour scale.

    ``absolute`` keeps today's overlay (:func:`deepinside.render.overlay`, ``jet``); the other
    signs blend :func:`deepinside.render.colourize` 's colours (``RdBu_r`` for ``all``,
    ``inferno`` else) in proportion to the value (:func:`deepinside.render.signed_overlay`).

    Returns:
        ``(overlay, scale)``; ``scale`` = ``{"sign", "low", "high", "cmap", "max_abs",
        "bar_png"}``: the values at the bottom and top of the colour bar (``[-limit, limit]``
        for ``all``, else ``[0, limit]``: a part's magnitude), in the map's units; ``bar_png``
        the bar's colours, a base64 PNG 1 pixel wide, ``high`` at the top.
    """
    from deepinside.render import colourize, overlay, sign_part, signed_overlay

    if sign == "absolute":
        _, limit, _ = colourize(m, sign)
        cmap, blend = "jet", overlay(photo, np.abs(m))  # overlay's own colours and limit
    else:
        _, limit, cmap = colourize(m, sign)
        blend = signed_overlay(photo, m, sign, limit)
    low = -limit if sign == "all" else 0.0
    ramp = np.linspace(limit, low, RAMP, dtype=np.float32)[:, None]
    bar, _, _ = colourize(ramp, "all" if sign == "all" else "absolute", limit, cmap)
    return blend, {"sign": sign, "low": low, "high": limit, "cmap": cmap,
                   "max_abs": float(np.abs(sign_part(m, sign)).max()) if m.size else 0.0,
                   "bar_png": png(np.ascontiguousarray(bar))}
