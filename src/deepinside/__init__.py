"""deepinside: what an image classifier looks at, and what it has learned.

Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks: Visualising Image
Classification Models and Saliency Maps" (https://arxiv.org/abs/1312.6034), and beyond.

The public names below are imported on first use (PEP 562), so ``import deepinside`` is cheap
and a process that needs only NumPy and OpenCV (a GrabCut worker) never loads torch.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "audit": "audit",
    "ClassModelResult": "classmodel",
    "class_model": "classmodel",
    "Visualization": "classmodel",
    "top_photos": "classmodel",
    "visualize": "classmodel",
    "deletion_insertion": "metrics.perturbation",
    "randomization_test": "metrics.perturbation",
    "ImageLoadError": "images",
    "as_photos": "images",
    "expand_inputs": "images",
    "iter_photo_batches": "images",
    "load_image": "images",
    "photo_maps": "photomaps",
    "photos_to_batch": "images",
    "forward_photos": "photomaps",
    "model_batch": "images",
    "resize_maps": "ops",
    "RECIPES": "localize",
    "Localization": "localize",
    "Recipe": "localize",
    "localize": "localize",
    "get_metric": "metrics",
    "list_metrics": "metrics",
    "register_metric": "metrics",
    "get_method": "methods",
    "list_methods": "methods",
    "register_method": "methods",
    "Classifier": "models",
    "ModelLoadError": "models",
    "Preprocessing": "models",
    "imagenet_class_names": "models",
    "list_loaders": "models",
    "list_models": "models",
    "read_class_names": "models",
    "load_model": "models",
    "load_state_dict_file": "models",
    "register_model": "models",
    "capture_layer": "engine",
    "forward_logits": "engine",
    "input_gradient": "engine",
    "box_score": "targets",
    "class_score": "targets",
    "parse_target": "targets",
    "region_score": "targets",
    "resolve_targets": "targets",
    "reduce_channels": "ops",
    "saliency": "methods.gradient",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


class _Package(types.ModuleType):
    """Keeps ``deepinside.saliency`` and ``deepinside.localize`` the functions.

    Importing a submodule binds it as an attribute of the package; where a public function has
    the submodule's name, the function wins (the submodule stays in ``sys.modules``). As in
    0.1, ``import deepinside.saliency as s`` therefore gives the function; the module is
    ``importlib.import_module("deepinside.saliency")``.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _EXPORTS:
            self.__dict__.pop(name, None)  # resolved again, as the function, on next access
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
