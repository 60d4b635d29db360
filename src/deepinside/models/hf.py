"""``hf:<folder>`` and ``hf:<org>/<name>``: Hugging Face image classifiers, offline.

A folder written by ``model.save_pretrained(DIR)`` and ``processor.save_pretrained(DIR)`` is
loaded with ``AutoModelForImageClassification`` and ``AutoImageProcessor``
(``local_files_only=True``); a hub id only from the local cache, never downloaded. The
preprocessing is the model's own image processor and the class names its ``config.id2label``.
The forward returns a ``ModelOutput``; the engine reads its ``.logits``.

Needs ``transformers`` (``pip install 'deepinside[hf]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .classifier import Classifier
from .errors import ModelLoadError
from .preprocessing import Preprocessing
from .registry import register_loader
from .weights import load_state_dict_file, load_strict

__all__ = ["hf_class_names", "hf_preprocessing", "is_hf_model", "load_hf", "timm_inside"]


def is_hf_model(module: nn.Module) -> bool:
    """Whether ``module`` is a ``transformers`` model (it has a config with ``id2label``)."""
    return isinstance(getattr(getattr(module, "config", None), "id2label", None), dict)


def hf_class_names(module: nn.Module) -> list[str] | None:
    """The class names of ``config.id2label`` in index order, if it names every class."""
    config = module.config  # type: ignore[attr-defined]
    labels = {int(k): str(v) for k, v in config.id2label.items()}
    n = int(getattr(config, "num_labels", len(labels)))
    if sorted(labels) != list(range(n)):
        return None
    return [labels[i] for i in range(n)]


def timm_inside(module: nn.Module) -> nn.Module:
    """The timm model inside a Hugging Face ``TimmWrapper`` (its ``timm_model``), else
    ``module``: it declares the patch grid, the prefix tokens and its data config."""
    inner = getattr(module, "timm_model", None)
    return inner if isinstance(inner, nn.Module) else module


def hf_preprocessing(module: nn.Module, processor: Any = None) -> Preprocessing:
    """The processor's preprocessing, or without one, a timm model's own (``TimmWrapper``),
    else the config's input size with ImageNet statistics."""
    if processor is not None:
        return Preprocessing.from_processor(processor)
    inner = timm_inside(module)
    if inner is not module:
        from timm.data import resolve_data_config

        return Preprocessing.from_timm(resolve_data_config({}, model=inner))
    size = getattr(module.config, "image_size", 224)  # type: ignore[attr-defined]
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return Preprocessing(input_size=(h, w), resize_size=max(h, w))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@register_loader("hf", "a Hugging Face image classifier: a save_pretrained folder, or a hub id "
                 "from the local cache (offline)")
def load_hf(spec: str, weights: str | None, num_classes: int | None = None) -> Classifier:
    """A ``transformers`` image classifier with its processor and ``id2label`` names.

    Raises:
        ModelLoadError: no transformers, a folder that is not a Hugging Face image classifier,
            a hub id not in the local cache, a processor that cannot be loaded.
    """
    try:
        from transformers import AutoImageProcessor, AutoModelForImageClassification
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise ModelLoadError("hf: models need transformers: pip install 'deepinside[hf]'"
                             ) from None
    path = Path(spec).expanduser()
    local = path.exists()
    if local and not path.is_dir():
        raise ModelLoadError(f"hf:{spec} is a file; give the folder model.save_pretrained wrote")
    if local and not (path / "config.json").is_file():
        raise ModelLoadError(f"{spec} is not a Hugging Face model folder (it has no config.json; "
                             "write one with model.save_pretrained(folder))")
    if not local and (spec.startswith((".", "/", "~")) or spec.count("/") != 1):
        raise ModelLoadError(f"hf:{spec}: no such folder (a hub id is <org>/<name>)")
    source = str(path) if local else spec
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # no "Some weights were not used" chatter
    hf_logging.disable_progress_bar()  # nor a "Loading weights" bar per model
    try:
        try:
            model = AutoModelForImageClassification.from_pretrained(source,
                                                                    local_files_only=True)
        except ValueError as e:
            raise ModelLoadError(f"hf:{spec} is not an image classifier "
                                 f"(AutoModelForImageClassification: {_first_line(e)})") from None
        except OSError as e:
            if not local:
                raise ModelLoadError(
                    f"hf:{spec} is not in the local Hugging Face cache and deepinside never "
                    f"downloads (fetch it once with `hf download {spec}`, or give a "
                    "save_pretrained folder)") from None
            raise ModelLoadError(f"cannot load the model in {spec}: {_first_line(e)}") from None
        try:
            processor = AutoImageProcessor.from_pretrained(source, local_files_only=True)
        except (OSError, ValueError) as e:
            processor = None  # a TimmWrapper saved without one: timm's data config
            if timm_inside(model) is model:
                raise ModelLoadError(f"hf:{spec} has no usable image processor "
                                     f"({_first_line(e)}); save it beside the model with "
                                     "processor.save_pretrained(folder)") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    if weights is not None:
        load_strict(model, load_state_dict_file(weights), f"weights file {weights}")
    n = int(model.config.num_labels)
    if num_classes is not None and num_classes != n:
        raise ModelLoadError(f"--num-classes {num_classes} does not match hf:{spec}, whose head "
                             f"has {n} classes (config.num_labels)")
    names = hf_class_names(model) or [f"class {i}" for i in range(n)]
    return Classifier(model, hf_preprocessing(model, processor), names, f"hf:{spec}")
