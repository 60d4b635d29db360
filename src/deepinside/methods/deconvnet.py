"""Zeiler & Fergus's deconvnet as a backward rule (Simonyan et al. 2013, section 4)."""

from __future__ import annotations

from .relu_rules import rule_method

__all__ = ["deconvnet"]

deconvnet = rule_method(
    "deconvnet",
    "deconvnet",
    "deconvnet reconstruction: backprop with ReLUs passing only positive signals, R*(R>0)",
    "Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901 (as a gradient: "
    "Simonyan et al. 2013, section 4)",
    """The deconvnet reconstruction of the class score, for a batch.

    The backward pass of the gradient, except that each rectifier (ReLU, ReLU6, Hardtanh, as
    modules, functions or in place) passes ``R * (R > 0)`` instead of ``R * (x > 0)``; max
    pooling uses the forward's switches, as the gradient does (paper, section 4). On a network
    without rectifiers it equals the gradient.
    """,
    order=10, report="full",
)
