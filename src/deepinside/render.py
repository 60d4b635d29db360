"""Every figure: heat maps, overlays, labels, boxes and masks, grids (NumPy, Pillow, Matplotlib;
no screen needed). The command line, the demo and the evaluation draw only through here.

Maps are drawn in one of four signs (Captum's ``visualize_image_attr`` sign modes):
``"absolute"`` (magnitudes, the inferno look, 0 to the 99.5th percentile), ``"positive"`` /
``"negative"`` (the part of that sign, as magnitudes) and ``"all"`` (a diverging colour map
centred on 0, ``RdBu_r``: red for evidence for the class, blue against, symmetric limits at the
99.5th percentile of ``|map|``). :func:`colourize` returns the colours with the limit used, so
a colour bar (:func:`with_colour_bar`, or the per-panel bars of :func:`save_map_grid`) can show
the values in the map's own units (logits for most attribution methods).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

__all__ = [
    "COLOURS",
    "SIGNS",
    "colour_bar",
    "colourize",
    "map_limit",
    "save_map_grid",
    "sign_part",
    "signed_overlay",
    "with_colour_bar",
    "draw_localizations",
    "grid_image",
    "heatmap",
    "label_image",
    "normalize_map",
    "overlay",
    "save_figure",
    "save_gif",
    "save_png",
    "to_uint8",
    "uint8_images",
]

COLOURS = [(255, 64, 64), (64, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255)]


def normalize_map(m: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """Scale a non-negative map to [0, 1], clipping at a high percentile (robust to outliers)."""
    m = np.asarray(m, dtype=np.float32)
    top = float(np.percentile(m, percentile)) if m.size else 0.0
    if not np.isfinite(top) or top <= 0:
        top = float(m.max()) if m.size and float(m.max()) > 0 else 1.0
    return np.clip(m / top, 0.0, 1.0)


def _lut(cmap: str) -> np.ndarray:
    """A colormap's 256 colours as uint8 RGB, ``(N, 3)``."""
    cm = plt.get_cmap(cmap)
    return (cm(np.arange(cm.N))[:, :3] * 255 + 0.5).astype(np.uint8)


def heatmap(m: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """A map (H, W) as an RGB heat map, uint8 (H, W, 3).

    The colours are Matplotlib's (the same as ``cmap(normalize_map(m))``), looked up in a
    table of 256 colours, so a 50-megapixel map costs bytes, not doubles, per pixel.
    """
    lut = _lut(cmap)
    n = np.nan_to_num(normalize_map(m), copy=False)
    n *= len(lut)  # as Matplotlib's Colormap.__call__: floor(x * N), N -> N - 1
    idx = np.minimum(n.astype(np.int32), len(lut) - 1)
    return lut[idx]


def to_uint8(photo: Image.Image | np.ndarray) -> np.ndarray:
    """A photo as uint8 (H, W, 3)."""
    a = np.asarray(photo)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    return a[..., :3]


def overlay(photo: Image.Image | np.ndarray, m: np.ndarray, alpha: float = 0.6,
            cmap: str = "jet") -> np.ndarray:
    """The heat map blended over the photo where the map is strong, uint8 (H, W, 3).

    Blended a band of rows at a time, so a large photo needs no float copy of itself.
    """
    p = to_uint8(photo)
    n = normalize_map(m)
    h = heatmap(m, cmap)
    out = np.empty_like(h)
    for r in range(0, out.shape[0], 256):
        w = alpha * n[r:r + 256, :, None]
        rows = p[r:r + 256].astype(np.float32) * (1 - w) + h[r:r + 256].astype(np.float32) * w
        out[r:r + 256] = (rows + 0.5).clip(0, 255).astype(np.uint8)
    return out


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 (H, W, 3) array as a PNG."""
    Image.fromarray(array).save(path)
    return Path(path)


def save_figure(
    rows: Sequence[Sequence[np.ndarray]],
    path: str | Path,
    titles: Sequence[Sequence[str]] | None = None,
    row_labels: Sequence[str] | None = None,
    cell: float = 3.0,
) -> Path:
    """A grid of images (rows x columns) with optional titles per cell and a text per row.

    Args:
        rows: images, uint8 (H, W, 3) or float (H, W) maps, row by row.
        path: the PNG to write.
        titles: one title per cell.
        row_labels: text placed to the right of each row (e.g. top-5 labels).
        cell: inches per cell.
    """
    nr = len(rows)
    nc = max(len(r) for r in rows)
    extra = 1 if row_labels else 0
    fig, axes = plt.subplots(
        nr, nc + extra, figsize=(cell * (nc + 1.3 * extra), cell * nr), squeeze=False
    )
    for i, row in enumerate(rows):
        for j in range(nc + extra):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(row):
                img = row[j]
                ax.imshow(img, cmap="inferno" if img.ndim == 2 else None)
                if titles and j < len(titles[i]):
                    ax.set_title(titles[i][j], fontsize=9)
            elif row_labels and j == nc:
                ax.text(0.0, 0.5, row_labels[i], fontsize=9, va="center", family="monospace")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def uint8_images(images) -> list[np.ndarray]:
    """``Tensor[N, 3, H, W]`` in [0, 1] -> a list of uint8 (H, W, 3) arrays."""
    a = (images.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5)
    return list(a.astype(np.uint8))


def label_image(img: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` on a black band in the top-left corner of an image (uint8 H, W, 3)."""
    from PIL import ImageDraw

    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    box = d.textbbox((4, 4), text)
    d.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=(0, 0, 0))
    d.text((4, 4), text, fill=(255, 255, 255))
    return np.asarray(im)


def draw_localizations(photo: Image.Image, locs: Sequence) -> np.ndarray:
    """The photo with each localisation's mask tinted and its box labelled, uint8 (H, W, 3).

    Args:
        photo: the RGB photo.
        locs: :class:`deepinside.Localization` objects (``mask``, ``box``, ``name``, ``prob``),
            best first; each gets the next colour of :data:`COLOURS`.
    """
    from PIL import ImageDraw, ImageFont

    a = np.asarray(photo.convert("RGB"), dtype=np.float32)
    for i, loc in reversed(list(enumerate(locs))):
        c = np.array(COLOURS[i % len(COLOURS)], dtype=np.float32)
        a[loc.mask] = 0.6 * a[loc.mask] + 0.4 * c
    im = Image.fromarray(a.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    width = max(2, round(min(im.size) / 150))
    try:
        font = ImageFont.load_default(size=max(10, round(min(im.size) / 22)))
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    for i, loc in enumerate(locs):
        c = COLOURS[i % len(COLOURS)]
        x0, y0, x1, y1 = loc.box
        d.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=c, width=width)
        text = f"{loc.name} {loc.prob:.2f}"
        tb = d.textbbox((x0 + width + 2, y0 + width + 2), text, font=font)
        d.rectangle((tb[0] - 2, tb[1] - 2, tb[2] + 2, tb[3] + 2), fill=(0, 0, 0))
        d.text((x0 + width + 2, y0 + width + 2), text, fill=c, font=font)
    return np.asarray(im)


def grid_image(images: Sequence[np.ndarray], labels: Sequence[str],
               columns: int | None = None) -> np.ndarray:
    """Images (uint8 (H, W, 3), same size) in a grid with a label under each; uint8 array."""
    from PIL import ImageDraw, ImageFont

    n = len(images)
    cols = columns or min(n, 5)
    rows = (n + cols - 1) // cols
    h, w = images[0].shape[:2]
    pad, band = 4, 20
    canvas = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + band + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, (img, label) in enumerate(zip(images, labels)):
        r, c = divmod(i, cols)
        x0, y0 = pad + c * (w + pad), pad + r * (h + band + pad)
        canvas.paste(Image.fromarray(img), (x0, y0))
        text = label
        while text and draw.textlength(text, font=font) > w:
            text = text[:-1]
        tw = draw.textlength(text, font=font)
        draw.text((x0 + (w - tw) / 2, y0 + h + 4), text, fill="black", font=font)
    return np.asarray(canvas)


def save_gif(frames: Sequence[np.ndarray], path: str | Path, duration_ms: int = 400) -> Path:
    """Write uint8 (H, W, 3) frames as a looping GIF."""
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return Path(path)


# ----------------------------------------------------------------------------- signed maps

SIGNS = ("absolute", "positive", "negative", "all")
DIVERGING = "RdBu_r"
MAGNITUDE = "inferno"


def sign_part(m: np.ndarray, sign: str) -> np.ndarray:
    """The part of a map a sign mode draws: ``|m|``, ``max(m, 0)``, ``max(-m, 0)`` or ``m``.

    Raises:
        ValueError: an unknown sign.
    """
    m = np.nan_to_num(np.asarray(m, dtype=np.float32))
    if sign == "absolute":
        return np.abs(m)
    if sign == "positive":
        return np.clip(m, 0.0, None)
    if sign == "negative":
        return np.clip(-m, 0.0, None)
    if sign == "all":
        return m
    raise ValueError(f"sign must be one of {', '.join(SIGNS)}, got {sign!r}")


def map_limit(m: np.ndarray, percentile: float = 99.5) -> float:
    """The colour scale's limit: the ``percentile`` of ``|m|`` (its maximum if that is 0; 1 for
    an all-zero map), as :func:`normalize_map` scales magnitudes."""
    a = np.abs(np.nan_to_num(np.asarray(m, dtype=np.float32)))
    top = float(np.percentile(a, percentile)) if a.size else 0.0
    if not np.isfinite(top) or top <= 0:
        top = float(a.max()) if a.size and float(a.max()) > 0 else 1.0
    return top


def colourize(m: np.ndarray, sign: str = "absolute", limit: float | None = None,
              cmap: str | None = None) -> tuple[np.ndarray, float, str]:
    """A map as colours, uint8 (H, W, 3), with the limit and colour map used.

    Args:
        m: the map (H, W), signed or not.
        sign: one of :data:`SIGNS`.
        limit: the value drawn at full colour (default :func:`map_limit` of the drawn part);
            pass the same limit to several maps for one shared scale.
        cmap: a Matplotlib colour map (default ``RdBu_r`` for ``"all"``, else ``inferno``).

    Returns:
        ``(rgb, limit, cmap)``: the scale is ``[-limit, limit]`` for ``"all"``, else
        ``[0, limit]``.
    """
    part = sign_part(m, sign)
    limit = float(limit) if limit else map_limit(part)
    cmap = cmap or (DIVERGING if sign == "all" else MAGNITUDE)
    lut = _lut(cmap)
    if sign == "all":
        v = np.clip(part / limit, -1.0, 1.0) * 0.5 + 0.5
    else:
        v = np.clip(part / limit, 0.0, 1.0)
    idx = np.minimum((v * len(lut)).astype(np.int32), len(lut) - 1)
    return lut[idx], limit, cmap


def signed_overlay(photo: Image.Image | np.ndarray, m: np.ndarray, sign: str = "all",
                   limit: float | None = None, alpha: float = 0.7) -> np.ndarray:
    """The map's colours blended over the photo in proportion to ``|part| / limit``, uint8."""
    rgb, limit, _ = colourize(m, sign, limit)
    w = alpha * np.clip(np.abs(sign_part(m, sign)) / limit, 0.0, 1.0)[..., None]
    p = to_uint8(photo).astype(np.float32)
    return (p * (1 - w) + rgb.astype(np.float32) * w + 0.5).clip(0, 255).astype(np.uint8)


def _label(v: float) -> str:
    return f"{v:.3g}"


def colour_bar(height: int, low: float, high: float, cmap: str, width: int = 16) -> np.ndarray:
    """A vertical colour bar from ``high`` (top) to ``low`` with five value labels, uint8."""
    from PIL import ImageDraw, ImageFont

    height = max(int(height), 40)
    lut = _lut(cmap)
    ramp = np.linspace(1.0, 0.0, height)
    idx = np.minimum((ramp * len(lut)).astype(np.int32), len(lut) - 1)
    font = ImageFont.load_default()
    labels = [_label(low + (high - low) * f) for f in (1.0, 0.75, 0.5, 0.25, 0.0)]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = int(max(probe.textlength(t, font=font) for t in labels)) + 8
    canvas = Image.new("RGB", (width + 6 + text_w, height), "white")
    canvas.paste(Image.fromarray(np.repeat(lut[idx][:, None], width, axis=1)), (0, 0))
    d = ImageDraw.Draw(canvas)
    for f, text in zip((0.0, 0.25, 0.5, 0.75, 1.0), labels):
        y = min(height - 11, max(0, round(f * (height - 1)) - 5))
        d.line((width, round(f * (height - 1)), width + 4, round(f * (height - 1))),
               fill="black")
        d.text((width + 6, y), text, fill="black", font=font)
    return np.asarray(canvas)


def with_colour_bar(img: np.ndarray, low: float, high: float, cmap: str) -> np.ndarray:
    """``img`` (uint8 H, W, 3) with a colour bar of its values on the right."""
    bar = colour_bar(img.shape[0], low, high, cmap)
    h = max(img.shape[0], bar.shape[0])
    out = np.full((h, img.shape[1] + 4 + bar.shape[1], 3), 255, dtype=np.uint8)
    out[: img.shape[0], : img.shape[1]] = img
    out[: bar.shape[0], img.shape[1] + 4:] = bar
    return out


def save_map_grid(
    path: str | Path,
    photo: Image.Image | np.ndarray,
    maps: Sequence[tuple[str, np.ndarray, str]],
    *,
    shared_scale: bool = False,
    columns: int = 5,
    title: str | None = None,
    cell: float = 2.6,
) -> Path:
    """Many maps of one photo in a grid a person can read, each with its colour bar.

    Args:
        path: the PNG to write.
        photo: the photo (drawn in the first cell).
        maps: ``(title, map (H, W), sign)`` per panel; the map is blended over the photo
            (:func:`signed_overlay`).
        shared_scale: one limit for every panel of the same sign kind (``"all"`` or not): the
            largest of their limits; else each panel has its own.
        columns: panels per row.
        title: a title for the figure.
        cell: inches per panel.
    """
    limits = [map_limit(sign_part(m, s)) for _, m, s in maps]
    if shared_scale:
        top = {kind: max([lim for lim, (_, _, s) in zip(limits, maps) if (s == "all") == kind],
                         default=1.0) for kind in (True, False)}
        limits = [top[s == "all"] for _, _, s in maps]
    n = len(maps) + 1
    cols = min(columns, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols * 1.2, cell * rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    axes[0][0].imshow(to_uint8(photo))
    axes[0][0].set_title("photo", fontsize=9)
    for i, ((name, m, sign), limit) in enumerate(zip(maps, limits), start=1):
        ax = axes[i // cols][i % cols]
        _, limit, cmap = colourize(m, sign, limit)
        ax.imshow(signed_overlay(photo, m, sign, limit))
        ax.set_title(name if sign == "absolute" else f"{name} ({sign})", fontsize=9)
        low = -limit if sign == "all" else 0.0
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(low, limit))
        bar = fig.colorbar(sm, ax=ax, fraction=0.046, pad=0.02)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
