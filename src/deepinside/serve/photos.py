"""Photos in (checked by content, size and pixel count) and PNGs out, as base64 text."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from .problems import Problem
from .worker import Limits

__all__ = ["check_upload", "decode_photo", "map_f32", "map_png", "png"]


def png(array: np.ndarray) -> str:
    """A uint8 / uint16 array as a base64 PNG."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)  # fast; ~10% larger
    return base64.b64encode(buf.getvalue()).decode()


def map_png(m: np.ndarray) -> str:
    """A map as a base64 16-bit grey PNG, scaled to its maximum."""
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    top = float(m.max()) if m.size else 0.0
    scaled = np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)
    return png((scaled * 65535 + 0.5).astype(np.uint16))


def map_f32(m: np.ndarray) -> str:
    """A map's own values (H, W), with their sign, as base64 float32 little-endian, row-major:
    what a browser reads with ``new Float32Array(bytes)``, no image decoder needed."""
    return base64.b64encode(np.ascontiguousarray(m, dtype="<f4").tobytes()).decode()


def _sniff(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_upload(data: bytes, limits: Limits, what: str = "image") -> str:
    """The image type of an upload (``"png"``, ...), or a 413 / 415 / 422 :class:`Problem`."""
    if not data:
        raise Problem(422, "Empty image", f"{what}: the uploaded file is empty")
    if len(data) > limits.max_body:
        raise Problem(413, "Image too large", f"{what}: the file has {len(data)} bytes; at "
                                              f"most {limits.max_body} are accepted")
    kind = _sniff(data)
    if kind is None:
        raise Problem(415, "Unsupported image type",
                      f"{what}: the file is not a JPEG, PNG, WebP or GIF image")
    return kind


def decode_photo(data: bytes, limits: Limits, what: str = "image") -> Image.Image:
    """Bytes of an upload -> an RGB photo (the photo pipeline's ``decode_image``), or a
    :class:`Problem` (413 / 415 / 422)."""
    from ..images import ImageLoadError, ImageTooLargeError, decode_image

    kind = check_upload(data, limits, what)
    try:
        return decode_image(data, what, limits.max_pixels)  # a GIF's first frame
    except ImageTooLargeError as e:
        raise Problem(413, "Image has too many pixels", str(e)) from None
    except ImageLoadError as e:
        reason = str(e).removeprefix(f"{what}: ")
        raise Problem(422, "Unreadable image", f"{what}: the {kind.upper()} file cannot be "
                                               f"decoded ({reason})") from None
