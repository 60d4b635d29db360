"""deepinside: what an image classifier looks at, and what it has learned.

Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks: Visualising Image
Classification Models and Saliency Maps" (https://arxiv.org/abs/1312.6034), and beyond.
"""

from .classmodel import ClassModelResult, class_model
from .evaluate.faithfulness import deletion_insertion, randomization_test
from .images import ImageLoadError, expand_inputs, load_image, photos_to_batch, resize_maps
from .localize import RECIPES, Localization, Recipe, localize
from .methods import get_method, list_methods, register_method
from .models import (
    Classifier,
    ModelLoadError,
    Preprocessing,
    imagenet_class_names,
    list_models,
    load_model,
    load_state_dict_file,
    register_model,
)
from .saliency import input_gradient, photo_maps, reduce_channels, resolve_targets, saliency

__version__ = "0.1.0"

__all__ = [
    "Classifier",
    "ClassModelResult",
    "ImageLoadError",
    "Localization",
    "ModelLoadError",
    "Preprocessing",
    "Recipe",
    "RECIPES",
    "__version__",
    "class_model",
    "deletion_insertion",
    "expand_inputs",
    "get_method",
    "imagenet_class_names",
    "input_gradient",
    "list_methods",
    "list_models",
    "load_image",
    "load_model",
    "load_state_dict_file",
    "localize",
    "photo_maps",
    "photos_to_batch",
    "randomization_test",
    "reduce_channels",
    "register_method",
    "register_model",
    "resize_maps",
    "resolve_targets",
    "saliency",
]
