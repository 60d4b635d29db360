"""``load_model``: a classifier by name, from a folder, from a factory, or from a module."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .class_names import check_class_names, imagenet_class_names, read_class_names
from .classifier import Classifier
from .errors import ModelLoadError
from .factory import is_factory, load_factory
from .hf import hf_class_names, hf_preprocessing, is_hf_model
from .preprocessing import Preprocessing
from .registry import LOADERS, MODELS
from .weights import load_state_dict_file, load_strict

__all__ = ["load_model"]

ClassNames = Sequence[str] | str | Path


def _freeze(module: nn.Module, device: torch.device | str | None) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module.to(device or "cpu")


def _names(class_names: ClassNames, num_classes: int | None) -> list[str]:
    if isinstance(class_names, (str, Path)):
        return check_class_names(read_class_names(class_names), num_classes,
                                 f"class names file {class_names}")
    return check_class_names(class_names, num_classes, "class_names")


def _from_module(module: nn.Module, weights: str | None, device, preprocessing,
                 class_names, num_classes: int | None, name: str) -> Classifier:
    if weights is not None:
        load_strict(module, load_state_dict_file(weights), f"weights file {weights}")
    if device is not None and any(
        t.device != torch.device(device) for t in (*module.parameters(), *module.buffers())
    ):
        module = copy.deepcopy(module).to(device)  # the caller's module stays where it is
    if is_hf_model(module):
        n = int(module.config.num_labels)  # type: ignore[union-attr]
        names = hf_class_names(module) or [f"class {i}" for i in range(n)]
        pre = preprocessing or hf_preprocessing(module)
        if num_classes is not None and num_classes != n:
            raise ModelLoadError(f"num_classes={num_classes}, but the model has {n} classes "
                                 "(config.num_labels)")
        num_classes = n
    else:
        names = (imagenet_class_names() if num_classes in (None, 1000)
                 else [f"class {i}" for i in range(num_classes)])
        pre = preprocessing or Preprocessing()
    if class_names is not None:
        names = _names(class_names, num_classes)
    return Classifier(module, pre, names, name)


def load_model(
    name: str | nn.Module = "efficientnet_lite0",
    weights: str | Path | None = None,
    device: torch.device | str | None = None,
    *,
    preprocessing: Preprocessing | None = None,
    class_names: ClassNames | None = None,
    num_classes: int | None = None,
    output: Callable[[Any], Any] | None = None,
) -> Classifier:
    """Load a classifier, frozen and in eval mode, with its preprocessing and class names.

    Args:
        name: a registered name (``list_models()``; default ``"efficientnet_lite0"``),
            ``"timm:<name>"``, ``"torchvision:<name>"``, ``"hf:<folder>"`` (a Hugging Face
            ``save_pretrained`` folder) or ``"hf:<org>/<name>"`` (from the local cache only),
            ``"package.module:factory"`` (a function returning an ``nn.Module`` or a
            :class:`Classifier`), or an ``nn.Module`` (a ``transformers`` model too).
        weights: a local ``.safetensors``/``.pt``/``.pth`` state dict that replaces the
            pretrained weights (loaded strictly, ``weights_only=True``). For ``timm:`` /
            ``torchvision:`` names and the built-in models, its head may have another number
            of classes: the model is built with the checkpoint's.
        device: where the model lives (default: the CPU).
        preprocessing: how photos become the inputs (default: the model's own; for an
            ``nn.Module``, ImageNet's 224 crop of a 256 resize, ImageNet mean and std).
        class_names: a list of names, one per class, or a file of them (one name a line, a
            JSON list, or a JSON ``{index: name}``); checked against the number of classes.
            Default: the model's own (ImageNet's for a 1000-class head, ``id2label`` for a
            Hugging Face model, ``"class <i>"`` otherwise).
        num_classes: build the head with this many classes (checked against a checkpoint).
        output: ``f(raw output) -> Tensor[B, K]`` (or what a target callable reads), applied
            after each forward pass; default: a tensor as it is, the first tensor of a tuple,
            ``logits`` (else ``out``) of a mapping or a Hugging Face ``ModelOutput``.

    Returns:
        A :class:`Classifier`. For a named model, the module is a new one owned by the
        classifier. An ``nn.Module`` from the caller is used as it is, not copied, frozen or
        moved (the attribution functions leave it exactly as they found it), except that
        ``weights`` are loaded into it, and with a ``device`` it is not on, the classifier
        gets a copy on that device.

    Raises:
        ModelLoadError: unknown name, missing weights package, unavailable download, a
            weights file that is not a matching state dict, a head that matches no
            ``num_classes``, class names of another count; one line each.
    """
    if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) < 1):
        raise ModelLoadError(f"num_classes must be at least 1, got {num_classes}")
    if isinstance(name, nn.Module):
        clf = _from_module(name, None if weights is None else str(weights), device,
                           preprocessing, class_names, num_classes, type(name).__name__)
        clf.output = output
        return clf
    if not isinstance(name, str):
        raise ModelLoadError(f"model must be a name or an nn.Module, got {type(name).__name__}")
    weights = str(weights) if weights is not None else None
    prefix, sep, spec = name.partition(":")
    if sep and prefix in LOADERS:
        loader, _ = LOADERS[prefix]
        clf = loader(spec, weights, num_classes)
    elif sep and is_factory(name):
        built = load_factory(name, num_classes)
        if isinstance(built, nn.Module):
            clf = _from_module(built, weights, None, preprocessing, None, num_classes, name)
        else:
            clf = built
            if weights is not None:
                load_strict(clf.module, load_state_dict_file(weights), f"weights file {weights}")
    else:
        try:
            build, _ = MODELS.get(name)
        except KeyError as e:
            raise ModelLoadError(str(e).strip("'\"")) from None
        clf = build(weights) if num_classes is None else build(weights, num_classes=num_classes)
    _freeze(clf.module, device)
    if preprocessing is not None:
        clf.preprocessing = preprocessing
    if class_names is not None:
        clf.class_names = _names(class_names, len(clf.class_names))
    if output is not None:
        clf.output = output
    return clf
