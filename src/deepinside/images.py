"""Reading photos safely, finding them on disk, batching them, and resizing maps back.

Every photo becomes an 8-bit RGB ``PIL.Image`` with its EXIF orientation applied. Grey, palette,
alpha (composited over white), CMYK and 16-bit modes are converted. Decompression bombs, corrupt,
truncated, empty and non-image files raise :class:`ImageLoadError` whose message names the file.
"""

from __future__ import annotations

import glob
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from .models import Preprocessing

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageLoadError",
    "expand_inputs",
    "load_image",
    "photos_to_batch",
    "resize_maps",
]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
MAX_PIXELS = 89_478_485  # Pillow's own threshold for a decompression-bomb warning


class ImageLoadError(ValueError):
    """A file could not be read as a photo; the message names the file and the reason."""


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read a photo as 8-bit RGB with its EXIF orientation applied.

    Args:
        path: the file.
        max_pixels: larger images are refused as possible decompression bombs.

    Returns:
        An RGB ``PIL.Image`` fully loaded in memory.

    Raises:
        ImageLoadError: missing, empty, non-image, corrupt or truncated file, or too many pixels.
    """
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a directory")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            # Pillow warns between its own two thresholds; the size check below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageLoadError(
                    f"{path}: {w}x{h} pixels exceeds the limit of {max_pixels} "
                    "(possible decompression bomb)"
                )
            if w == 0 or h == 0:
                raise ImageLoadError(f"{path}: image has no pixels")
            im.load()
            im = ImageOps.exif_transpose(im)
            return to_rgb(im)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image file (or an unsupported format)") from None
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{path}: refused, possible decompression bomb ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason.lower():
            reason = f"truncated file ({reason})"
        raise ImageLoadError(f"{path}: corrupt image: {reason}") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (alpha composited over white, 16-bit scaled)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        if im.mode == "F":
            lo, hi = float(a.min()), float(a.max())
            a, top = a - lo, max(hi - lo, 1e-12)
        a8 = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(a8).convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


def expand_inputs(items: Iterable[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files, directories (their image files, sorted) and glob patterns.

    Returns:
        ``(paths, problems)``: the files found, in order and without repeats, and, for each
        input that matched nothing, ``(input, reason)``.
    """
    found: list[Path] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        s = str(item)
        p = Path(s)
        if p.is_dir():
            files = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not files:
                problems.append((s, "directory holds no image files"))
            found.extend(files)
        elif p.exists():
            found.append(p)
        elif glob.has_magic(s):
            files = sorted(Path(f) for f in glob.glob(s, recursive=True) if Path(f).is_file())
            if not files:
                problems.append((s, "pattern matches no file"))
            found.extend(files)
        else:
            problems.append((s, "no such file"))
    seen: set[Path] = set()
    unique = [f for f in found if not (f.resolve() in seen or seen.add(f.resolve()))]
    return unique, problems


def photos_to_batch(
    photos: Sequence[Image.Image], preprocessing: Preprocessing, crop: bool = False
) -> Tensor:
    """Stack photos into a normalised ``Tensor[B, 3, H, W]`` at the model's input size.

    Args:
        photos: RGB PIL images of any sizes.
        preprocessing: the model's preprocessing.
        crop: ``False`` (saliency): the whole photo is resized to the input size, so the map
            covers all of it. ``True`` (classification): resize and centre crop.
    """
    if not photos:
        raise ValueError("no photos given")
    return torch.stack([preprocessing.to_tensor(p, crop=crop) for p in photos])


def resize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize maps ``Tensor[B, h, w]`` to ``size`` = (H, W) bilinearly -> ``Tensor[B, H, W]``."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
