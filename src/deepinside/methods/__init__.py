"""Attribution methods by name.

Every method has the call shape of :func:`deepinside.saliency`::

    f(model, images: Tensor[B, C, H, W], target=None, **options) -> Tensor[B, H, W]

``get_method(name)`` returns it; ``list_methods()`` describes them (``deepinside methods``).
The paper's gradient map is registered as ``"gradient"``; every other method lives in a
submodule of its own (``gradient_x_input``, ``deconvnet``, ``guided_backprop``, ``smoothgrad``,
``integrated_gradients``, ``gradcam``, ``gradcam_pp``, ``occlusion``, ``rise``,
``extremal_perturbation``, ``deeplift``, ``gradient_shap``; the CAM family's ``scorecam``,
``layercam``, ``hirescam``, ``xgradcam``, ``eigencam``, ``ablationcam``), with the shared parts
in ``relu_rules`` (backward rules of rectifiers), ``cam`` (what the CAM family does with a
layer) and ``_common``. Every method calls the network through :mod:`deepinside.engine` only.

A new method is one small file here that decorates its function with :func:`register_method`
and is imported at the bottom of this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..registry import Registry
from ..saliency import saliency

__all__ = ["METHODS", "SIGNED", "MethodInfo", "get_method", "is_signed", "list_methods",
           "register_method", "signed_options"]


@dataclass(frozen=True)
class MethodInfo:
    """A registered attribution method."""

    name: str
    fn: Callable
    description: str
    paper: str


METHODS: Registry[MethodInfo] = Registry("method")


def register_method(name: str, description: str, paper: str) -> Callable[[Callable], Callable]:
    """Register ``fn(model, images, target=None, **options) -> Tensor[B, H, W]`` under ``name``."""
    return METHODS.decorator(name, lambda fn: MethodInfo(name, fn, description, paper))


def get_method(name: str) -> Callable:
    """The method registered under ``name``.

    Raises:
        KeyError: unknown name; the message offers close matches.
    """
    return METHODS.get(name).fn


def list_methods(pattern: str | None = None) -> dict[str, MethodInfo]:
    """The registered methods by name (those matching a glob ``pattern`` if one is given)."""
    return {n: METHODS[n] for n in METHODS.list(pattern)}


# Methods whose map carries a sign (evidence for and against the class): their output, or
# their ``reduce="sum"``, is signed. (To become ``MethodInfo.signed``.)
SIGNED = frozenset({"gradient_x_input", "integrated_gradients", "deeplift", "gradient_shap",
                    "lrp", "occlusion"})


def is_signed(name: str) -> bool:
    """Whether the method's map can carry a sign (see :data:`SIGNED`)."""
    return METHODS.get(name).name in SIGNED


def signed_options(name: str, sign: str) -> dict:
    """The options that make the method's map keep its sign for drawing in ``sign``.

    ``{"reduce": "sum"}`` for a signed method with a ``reduce`` option drawn in any sign but
    ``"absolute"`` (their default ``"sum_abs"`` drops it); else nothing.
    """
    from ._common import accepts

    if sign != "absolute" and is_signed(name) and accepts(get_method(name), "reduce"):
        return {"reduce": "sum"}
    return {}


register_method(
    "gradient",
    "the paper's saliency: max over colour channels of |dS_c/dI|",
    "Simonyan, Vedaldi & Zisserman 2013, https://arxiv.org/abs/1312.6034",
)(saliency)


# Each submodule registers its method on import.
from . import (  # noqa: E402, F401
    ablationcam,
    deconvnet,
    deeplift,
    eigencam,
    extremal_perturbation,
    gradcam,
    gradcam_pp,
    gradient_shap,
    gradient_x_input,
    guided_backprop,
    hirescam,
    integrated_gradients,
    layercam,
    lrp,
    occlusion,
    rise,
    scorecam,
    smoothgrad,
    xgradcam,
)
