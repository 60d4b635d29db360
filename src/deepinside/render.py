"""Every figure: heat maps, overlays, labels, boxes and masks, grids (NumPy, Pillow, Matplotlib;
no screen needed). The command line, the demo and the evaluation draw only through here."""

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
