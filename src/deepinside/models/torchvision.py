"""``torchvision:<name>``: a torchvision classifier, with its pretrained weights (torchvision's
download) or a local state dict whose head may have its own class count."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Sequence

from torch import nn

from ..registry import did_you_mean
from .class_names import numbered_class_names
from .classifier import Classifier
from .errors import ModelLoadError
from .preprocessing import Preprocessing
from .registry import register_loader
from .weights import choose_classes, load_state_dict_file, load_strict

__all__ = ["load_torchvision"]


def _head(model: nn.Module) -> tuple[str | None, int | None]:
    """The name and class count of the last linear layer (torchvision's classifier heads), or
    without one, of the last convolution (SqueezeNet's 1 x 1 convolution)."""
    for kind, size in ((nn.Linear, "out_features"), (nn.Conv2d, "out_channels")):
        last = [(n, getattr(m, size)) for n, m in model.named_modules() if isinstance(m, kind)]
        if last:
            return last[-1]
    return None, None


def _build(tvm, name: str, **kwargs) -> nn.Module:
    """An architecture to load weights into (GoogLeNet's and Inception's warning about their
    random initialisation silenced: the weights replace it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The default weight initialization", FutureWarning)
        return tvm.get_model(name, weights=None, **kwargs)


def _aux(keys) -> bool:
    """Whether state-dict keys hold auxiliary heads (GoogLeNet's aux1 / aux2, Inception v3's
    AuxLogits)."""
    return any(k.split(".", 1)[0].lower().startswith("aux") for k in keys)


@register_loader("torchvision", "a torchvision classifier: pretrained (download), or with "
                 "weights=FILE")
def load_torchvision(name: str, weights: str | None,
                     num_classes: int | None = None) -> Classifier:
    """A torchvision classifier, frozen later by :func:`~deepinside.models.load_model`.

    Raises:
        ModelLoadError: unknown name, weights unavailable offline, a file that does not match.
    """
    from torchvision import models as tvm

    if name not in tvm.list_models():
        hint = did_you_mean(name, tvm.list_models())
        raise ModelLoadError(f"torchvision has no model {name!r}{hint}")
    wenum = tvm.get_model_weights(name).DEFAULT
    if weights is None:
        if num_classes not in (None, len(wenum.meta["categories"])):
            raise ModelLoadError(f"torchvision:{name}'s pretrained head has "
                                 f"{len(wenum.meta['categories'])} classes, not {num_classes}; "
                                 "give weights= with your head")
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
        model = _build(tvm, name)
        # a model trained with aux_logits=False has no auxiliary heads to load
        kwargs = {"aux_logits": False} if _aux(model.state_dict()) and not _aux(state) else {}
        source = f"weights file {weights}"
        head, own = _head(model)
        n = choose_classes(state, head, num_classes, source)
        if kwargs or (n is not None and n != own):
            model = _build(tvm, name, **kwargs, **({} if n is None else {"num_classes": n}))
        load_strict(model, state, source)
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
    categories = list(wenum.meta["categories"])
    n = _head(model)[1]
    names = categories if n in (None, len(categories)) else numbered_class_names(n)
    return Classifier(model, pre, names, f"torchvision:{name}")
