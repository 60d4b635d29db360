"""Figures: heat maps, overlays, boxes and grids (NumPy and Matplotlib, no screen needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

__all__ = ["heatmap", "normalize_map", "overlay", "save_figure", "save_png", "to_uint8"]


def normalize_map(m: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """Scale a non-negative map to [0, 1], clipping at a high percentile (robust to outliers)."""
    m = np.asarray(m, dtype=np.float32)
    top = float(np.percentile(m, percentile)) if m.size else 0.0
    if not np.isfinite(top) or top <= 0:
        top = float(m.max()) if m.size and float(m.max()) > 0 else 1.0
    return np.clip(m / top, 0.0, 1.0)


def heatmap(m: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """A map (H, W) as an RGB heat map, uint8 (H, W, 3)."""
    rgba = plt.get_cmap(cmap)(normalize_map(m))
    return (rgba[..., :3] * 255 + 0.5).astype(np.uint8)


def to_uint8(photo: Image.Image | np.ndarray) -> np.ndarray:
    """A photo as uint8 (H, W, 3)."""
    a = np.asarray(photo)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    return a[..., :3]


def overlay(photo: Image.Image | np.ndarray, m: np.ndarray, alpha: float = 0.6,
            cmap: str = "jet") -> np.ndarray:
    """The heat map blended over the photo where the map is strong, uint8 (H, W, 3)."""
    p = to_uint8(photo).astype(np.float32)
    n = normalize_map(m)[..., None]
    h = heatmap(m, cmap).astype(np.float32)
    w = alpha * n
    return (p * (1 - w) + h * w + 0.5).clip(0, 255).astype(np.uint8)


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
