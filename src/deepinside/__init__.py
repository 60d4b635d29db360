"""deepinside: what an image classifier looks at, and what it has learned.

Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks: Visualising Image
Classification Models and Saliency Maps" (https://arxiv.org/abs/1312.6034), and beyond.
"""

from .images import ImageLoadError, expand_inputs, load_image, photos_to_batch, resize_maps
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
    "ImageLoadError",
    "ModelLoadError",
    "Preprocessing",
    "__version__",
    "expand_inputs",
    "imagenet_class_names",
    "input_gradient",
    "list_models",
    "load_image",
    "load_model",
    "load_state_dict_file",
    "photo_maps",
    "photos_to_batch",
    "reduce_channels",
    "register_model",
    "resize_maps",
    "resolve_targets",
    "saliency",
]
