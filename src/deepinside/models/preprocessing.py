"""How a photo becomes the tensor a classifier expects: resize, crop, normalise.

:class:`Preprocessing` is the classification transform of timm and torchvision (shorter side
resized, centre crop, mean and standard deviation), or a Hugging Face image processor run as it
is (``Preprocessing.from_processor``), so a model sees exactly the inputs it was trained on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from PIL import Image
from torch import Tensor

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes the tensor a classifier expects.

    Args:
        input_size: (height, width) of the network input.
        resize_size: the shorter side is resized to this before the centre crop (classification).
        interpolation: ``"bilinear"``, ``"bicubic"``, ``"nearest"`` or ``"lanczos"``.
        mean: per-channel mean subtracted from pixels in [0, 1].
        std: per-channel standard deviation the pixels are divided by.
        processor: a Hugging Face image processor that makes the classification input itself
            (see :meth:`from_processor`); ``None`` for the transform above.
    """

    input_size: tuple[int, int] = (224, 224)
    resize_size: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    processor: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATIONS:
            allowed = sorted(_INTERPOLATIONS)
            raise ValueError(f"interpolation must be one of {allowed}, got {self.interpolation!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need three values each, std > 0")

    def resize(self, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        """Resize a PIL image to ``size`` = (height, width) with this interpolation."""
        return image.resize((size[1], size[0]), _INTERPOLATIONS[self.interpolation])

    def to_tensor(self, image: Image.Image, crop: bool = True) -> Tensor:
        """Turn an RGB photo into a normalised ``Tensor[3, H, W]``.

        Args:
            image: an RGB PIL image.
            crop: ``True`` for the classification transform (shorter side to ``resize_size``,
                centre crop ``input_size``; with a ``processor``, exactly what it does);
                ``False`` resizes the whole photo to ``input_size`` so that a map covers all
                of it (a ``processor`` then only rescales and normalises it).
        """
        if self.processor is not None:
            return self._processed(image.convert("RGB"), crop)
        if crop:
            w, h = image.size
            s = self.resize_size / min(w, h)
            nh, nw = max(self.input_size[0], round(h * s)), max(self.input_size[1], round(w * s))
            image = self.resize(image, (nh, nw))
            top, left = (nh - self.input_size[0]) // 2, (nw - self.input_size[1]) // 2
            image = image.crop(
                (left, top, left + self.input_size[1], top + self.input_size[0])
            )
        else:
            image = self.resize(image, self.input_size)
        x = torch.from_numpy(_pil_to_array(image)).permute(2, 0, 1).float().div_(255.0)
        return self.normalize(x)

    def _processed(self, image: Image.Image, crop: bool) -> Tensor:
        if crop:
            out = self.processor(images=image, return_tensors="pt")
        else:
            out = self.processor(images=self.resize(image, self.input_size), do_resize=False,
                                 do_center_crop=False, return_tensors="pt")
        return out["pixel_values"][0].float()

    def to_dict(self) -> dict:
        """The fields as JSON-able values (a processor as its own JSON configuration), for
        records of a run (``config.json``)."""
        out: dict = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "processor"}
        if self.processor is not None:
            to_json = getattr(self.processor, "to_json_string", None)
            out["processor"] = json.loads(to_json()) if callable(to_json) else repr(
                self.processor)
        return out

    def normalize(self, x: Tensor) -> Tensor:
        """Pixels in [0, 1], ``Tensor[..., 3, H, W]`` -> network input space."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: Tensor) -> Tensor:
        """Network input space -> pixels (in [0, 1] for a real photo), ``Tensor[..., 3, H, W]``."""
        mean, std = self._stats(x)
        return x * std + mean

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        kw = {"device": x.device, "dtype": x.dtype}
        return (
            torch.tensor(self.mean, **kw).view(3, 1, 1),
            torch.tensor(self.std, **kw).view(3, 1, 1),
        )

    @classmethod
    def from_timm(cls, config: Mapping) -> Preprocessing:
        """Build from a timm data config (``timm.data.resolve_data_config``)."""
        h, w = config["input_size"][-2:]
        crop_pct = config.get("crop_pct") or 0.875
        return cls(
            input_size=(int(h), int(w)),
            resize_size=int(math.floor(min(h, w) / crop_pct)),
            interpolation=config.get("interpolation", "bicubic"),
            mean=tuple(config.get("mean", IMAGENET_MEAN)),
            std=tuple(config.get("std", IMAGENET_STD)),
        )

    @classmethod
    def from_processor(cls, processor: Any) -> Preprocessing:
        """Run a Hugging Face image processor (``AutoImageProcessor``) as the preprocessing.

        Classification inputs are exactly the processor's; for maps of whole photos the photo
        is resized to the processor's output size and then rescaled and normalised by it. The
        mean and standard deviation (for baselines and class models) are the processor's.
        """
        size = _processor_size(processor)
        mean = tuple(float(v) for v in (getattr(processor, "image_mean", None) or (0, 0, 0)))
        std = tuple(float(v) for v in (getattr(processor, "image_std", None) or (1, 1, 1)))
        if not getattr(processor, "do_normalize", True):
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        resample = getattr(processor, "resample", None)
        names = {int(v): k for k, v in _INTERPOLATIONS.items()}
        interp = names.get(int(getattr(resample, "value", resample)), "bilinear") if (
            resample is not None) else "bilinear"
        return cls(input_size=size, resize_size=max(size), interpolation=interp,
                   mean=mean, std=std, processor=processor)  # type: ignore[arg-type]


def _processor_size(processor: Any) -> tuple[int, int]:
    """(height, width) of what a Hugging Face image processor outputs."""
    def get(d: Any, key: str) -> Any:
        return d.get(key) if isinstance(d, Mapping) else getattr(d, key, None)

    def hw(d: Any) -> tuple[int, int] | None:
        if isinstance(d, int):
            return d, d
        if d is None:
            return None
        if get(d, "height") and get(d, "width"):
            return int(get(d, "height")), int(get(d, "width"))
        if get(d, "shortest_edge"):
            return int(get(d, "shortest_edge")), int(get(d, "shortest_edge"))
        return None

    crop = hw(getattr(processor, "crop_size", None)) if getattr(
        processor, "do_center_crop", False) else None
    size = crop or hw(getattr(processor, "size", None))
    if size is None:
        raise ValueError(f"cannot tell the output size of {type(processor).__name__}")
    return size


def _pil_to_array(image: Image.Image):
    import numpy as np

    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
