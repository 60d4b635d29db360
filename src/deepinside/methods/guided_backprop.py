"""Guided backpropagation (Springenberg et al. 2014)."""

from __future__ import annotations

from .relu_rules import rule_method

__all__ = ["guided_backprop"]

guided_backprop = rule_method(
    "guided_backprop",
    "guided",
    "guided backprop: ReLUs pass the gradient where both input and signal are positive",
    "Springenberg et al. 2014, https://arxiv.org/abs/1412.6806",
    """Guided backpropagation of the class score, for a batch.

    Each rectifier (ReLU, ReLU6, Hardtanh; modules, functions, in place) passes
    ``R * (lo < x < hi) * (R > 0)``: the gradient's mask and the deconvnet's together.
    """,
    order=20, report="quick",
)
