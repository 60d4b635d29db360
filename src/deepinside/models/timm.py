"""``timm:<name>``: any timm model, with its pretrained weights (through timm's own download,
or its local cache offline) or a local state dict whose head may have its own class count."""

from __future__ import annotations

import contextlib
import sys

from ..registry import did_you_mean
from .class_names import numbered_class_names
from .classifier import Classifier
from .errors import ModelLoadError
from .hub import hub_offline_unless_reachable
from .preprocessing import Preprocessing
from .registry import register_loader
from .weights import choose_classes, load_state_dict_file, load_strict

__all__ = ["load_timm"]


@register_loader("timm", "any timm model: pretrained (hub or local cache), or with weights=FILE")
def load_timm(name: str, weights: str | None, num_classes: int | None = None) -> Classifier:
    """A timm model, frozen later by :func:`~deepinside.models.load_model`.

    Raises:
        ModelLoadError: unknown name, weights unavailable offline, a file that does not match.
    """
    import timm

    if not timm.is_model(name):
        raise ModelLoadError(f"timm has no model {name!r}{did_you_mean(name, timm.list_models())}")
    extra = {} if num_classes is None else {"num_classes": num_classes}
    if weights is not None:  # a local file: no hub, no network (not even a DNS look-up)
        state = load_state_dict_file(weights)
        model = timm.create_model(name, pretrained=False)
        source = f"weights file {weights}"
        n = choose_classes(state, model.pretrained_cfg.get("classifier"), num_classes, source)
        if n is not None and n != model.num_classes:
            model = timm.create_model(name, pretrained=False, num_classes=n)
        load_strict(model, state, source)
    else:
        try:
            with hub_offline_unless_reachable("huggingface.co"), contextlib.redirect_stdout(
                sys.stderr  # keep stdout for results (--json)
            ):
                model = timm.create_model(name, pretrained=True, **extra)
        except Exception as e:  # noqa: BLE001 - hub, network and cache errors alike
            raise ModelLoadError(
                f"pretrained weights for timm:{name} are not available offline and could not "
                f"be downloaded ({type(e).__name__}); pass a local file with weights=..."
            ) from None
    from timm.data import resolve_data_config

    pre = Preprocessing.from_timm(resolve_data_config({}, model=model))
    return Classifier(model, pre, numbered_class_names(model.num_classes), f"timm:{name}")
