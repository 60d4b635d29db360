"""The photo pipeline: inputs -> checked photos -> batches -> maps at each photo's own size.

Every photo becomes an 8-bit RGB ``PIL.Image`` with its EXIF orientation applied. Grey, palette,
alpha (composited over white), CMYK and 16-bit modes are converted. Decompression bombs, corrupt,
truncated, empty and non-image files raise :class:`ImageLoadError` whose message names the file.

- :func:`expand_inputs`: files, directories and glob patterns -> files.
- :func:`open_photo` / :func:`as_photos`: a path, a PIL image or a uint8 array -> RGB photo.
- :func:`iter_photo_batches`: any inputs (or dataset records) -> batches of loaded photos; each
  input that fails is reported once as ``(input, reason)`` through one callback, and the others
  go on. The command line, the evaluation runner and ``evaluate compare`` all read through it.
- :func:`photos_to_batch`: photos -> ``Tensor[B, 3, H, W]`` at the model's input size.
- :func:`model_batch`: the same on the model's device and in its dtype.
- :func:`resize_maps_to`: maps -> arrays at each photo's size (``photo_maps``, in
  :mod:`deepinside.photomaps`, puts these together with a method).
"""

from __future__ import annotations

import glob
import io
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from ._lazy import deprecated_names
from .models import Classifier, Preprocessing
from .ops import resize_maps

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageLoadError",
    "ImageTooLargeError",
    "PhotoBatch",
    "as_photos",
    "decode_image",
    "expand_inputs",
    "iter_photo_batches",
    "load_image",
    "demo_photos",
    "open_photo",
    "model_batch",
    "photos_to_batch",
    "resize_maps",
]

OnFailure = Callable[[object, str], None]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
MAX_PIXELS = 89_478_485  # Pillow's own threshold for a decompression-bomb warning


class ImageLoadError(ValueError):
    """A file could not be read as a photo; the message names the file and the reason."""


class ImageTooLargeError(ImageLoadError):
    """A photo has more pixels than allowed (a possible decompression bomb)."""


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read a photo as 8-bit RGB with its EXIF orientation applied.

    Args:
        path: the file.
        max_pixels: larger images are refused as possible decompression bombs.

    Returns:
        An RGB ``PIL.Image`` fully loaded in memory.

    Raises:
        ImageLoadError: missing, empty, non-image, corrupt or truncated file;
            :class:`ImageTooLargeError` for too many pixels.
    """
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a directory")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file")
    return _decode(path, str(path), max_pixels)


def decode_image(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """:func:`load_image` for the bytes of a file (an upload); messages begin with ``name``."""
    if not data:
        raise ImageLoadError(f"{name}: empty file")
    return _decode(io.BytesIO(data), name, max_pixels)


def _decode(source: Path | io.BytesIO, name: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns between its own two thresholds; the size check below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageTooLargeError(
                    f"{name}: {w}x{h} pixels exceeds the limit of {max_pixels} "
                    "(possible decompression bomb)"
                )
            if w == 0 or h == 0:
                raise ImageLoadError(f"{name}: image has no pixels")
            im.load()
            im = ImageOps.exif_transpose(im)
            return to_rgb(im)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file (or an unsupported format)") from None
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{name}: refused, possible decompression bomb ({e})") from None
    except PermissionError:
        raise ImageLoadError(f"{name}: cannot read it (permission denied)") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason.lower():
            reason = f"truncated file ({reason})"
        raise ImageLoadError(f"{name}: corrupt image: {reason}") from None


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


def model_batch(
    model: Classifier,
    photos: Sequence[Image.Image],
    *,
    crop: bool,
    device: torch.device | str | None = None,
) -> Tensor:
    """Photos as the model's input: :func:`photos_to_batch` with its preprocessing, on its
    device (or ``device``) and in its dtype, ``Tensor[B, 3, H, W]``.

    Args:
        crop: ``False`` (maps: the whole photo is resized), ``True`` (classification: resize
            and centre crop); no default, so every caller says which.
    """
    dev = torch.device(device) if device is not None else model.device
    return photos_to_batch(photos, model.preprocessing, crop=crop).to(dev, model.dtype)


def resize_maps_to(maps: Tensor, photos: Sequence[Image.Image]) -> list[np.ndarray]:
    """Maps ``Tensor[N, (k,) h, w]`` -> float32 arrays at each photo's ``(height, width)``."""
    out = []
    for photo, m in zip(photos, maps.detach().float()):
        m = m if m.dim() == 3 else m[None]
        a = resize_maps(m, (photo.height, photo.width)).cpu().numpy()
        out.append(np.ascontiguousarray(a if maps.dim() == 4 else a[0], dtype=np.float32))
    return out


# ----------------------------------------------------------------------------- inputs


def open_photo(item: str | Path | Image.Image | np.ndarray) -> Image.Image:
    """One photo from a path (read by :func:`load_image`), a PIL image or a uint8 array.

    Raises:
        ImageLoadError: unreadable file, or an array that is not an (H, W) / (H, W, 3|4) image.
        TypeError: anything else.
    """
    if isinstance(item, (str, Path)):
        return load_image(item)
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if isinstance(item, np.ndarray):
        a = item
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)) or 0 in a.shape:
            raise ImageLoadError(f"array of shape {a.shape} is not an image (H, W) or "
                                 "(H, W, 1 | 3 | 4)")
        if a.dtype == np.bool_:
            a = a.astype(np.uint8) * 255
        elif a.dtype != np.uint8:
            if not np.issubdtype(a.dtype, np.number):
                raise ImageLoadError(f"array of {a.dtype} is not an image")
            if not np.isfinite(a).all():
                raise ImageLoadError("array has non-finite values (NaN or infinity)")
            if np.issubdtype(a.dtype, np.floating) and a.min() >= 0 and a.max() <= 1:
                a = a * 255.0  # floats in [0, 1], as scikit-image and Matplotlib use them
            a = np.clip(np.round(a), 0, 255).astype(np.uint8)
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[..., 0]
        return to_rgb(Image.fromarray(np.ascontiguousarray(a)))
    raise TypeError(f"a photo must be a path, a PIL image or a uint8 array, got {type(item)}")


def as_photos(images: object) -> list[Image.Image]:
    """A photo or a sequence of photos (paths, PIL images, uint8 arrays) -> RGB photos.

    Raises:
        ValueError: no photos. ImageLoadError / TypeError: as :func:`open_photo`.
    """
    if isinstance(images, (Image.Image, np.ndarray, str, Path)):
        images = [images]
    photos = [open_photo(im) for im in images]  # type: ignore[union-attr]
    if not photos:
        raise ValueError("no images given")
    return photos


@dataclass
class PhotoBatch:
    """Photos loaded together.

    Attributes:
        items: the inputs whose photos loaded (paths, or the caller's records).
        photos: their RGB photos, in the same order.
        failed: how many inputs failed since the previous batch (each already reported).
    """

    items: list = field(default_factory=list)
    photos: list[Image.Image] = field(default_factory=list)
    failed: int = 0

    @property
    def paths(self) -> list:
        """The items (alias for batches of paths)."""
        return self.items


def iter_photo_batches(
    items: Iterable,
    batch_size: int,
    on_failure: OnFailure | None = None,
    *,
    source: Callable[[object], object] | None = None,
) -> Iterator[PhotoBatch]:
    """Load photos in batches; an input that fails is reported and skipped, the others go on.

    Args:
        items: paths, PIL images, arrays, or records holding one (see ``source``).
        batch_size: photos per batch (the last may be smaller).
        on_failure: called with ``(item, reason)`` for each photo that cannot be read.
        source: what to open for an item (default: the item itself), e.g. ``lambda r: r.path``.

    Yields:
        :class:`PhotoBatch`; a batch may be empty when only failures happened since the last
        one (its ``failed`` count lets a progress bar advance).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batch = PhotoBatch()
    for item in items:
        src = item if source is None else source(item)
        try:
            photo = open_photo(src)  # type: ignore[arg-type]
        except (ImageLoadError, TypeError) as e:
            reason = str(e)
            if isinstance(src, (str, Path)):
                reason = reason.removeprefix(f"{src}: ")
            if on_failure is not None:
                on_failure(src if isinstance(src, (str, Path)) else item, reason)
            batch.failed += 1
            if not batch.items:
                yield batch
                batch = PhotoBatch()
            continue
        batch.items.append(item)
        batch.photos.append(photo)
        if len(batch.items) == batch_size:
            yield batch
            batch = PhotoBatch()
    if batch.items or batch.failed:
        yield batch


def demo_photos() -> list[tuple[str, Image.Image]]:
    """Photos that ship with installed packages (scikit-image, matplotlib), never ImageNet's."""
    import matplotlib.cbook as cbook
    from skimage import data

    photos = [(n, Image.fromarray(getattr(data, n)()).convert("RGB"))
              for n in ("chelsea", "coffee", "astronaut", "rocket")]
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(("grace_hopper", Image.open(f).convert("RGB")))
    return photos


# Moved in 0.2.0 (see CHANGELOG.md); the old names work for one release.
__getattr__ = deprecated_names(__name__, {"photo_maps": "deepinside.photomaps:photo_maps"})
