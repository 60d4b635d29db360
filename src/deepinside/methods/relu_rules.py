"""Backward rules for rectifiers: the gradient, Zeiler & Fergus's deconvnet, guided backprop.

Section 4 of Simonyan et al. (https://arxiv.org/abs/1312.6034) shows that the deconvnet
reconstruction is the gradient except at a ReLU: where backprop passes the signal R through
where the *forward input* was positive, ``R * (x > 0)``, the deconvnet passes it where the
*signal itself* is positive, ``R * (R > 0)``. Guided backprop (Springenberg et al. 2014,
https://arxiv.org/abs/1412.6806) applies both masks, ``R * (x > 0) * (R > 0)``.

A rectifier here is any clipping nonlinearity ``clamp(x, lo, hi)``: ``relu`` (lo = 0, hi =
inf), ``relu6`` (0, 6) and ``hardtanh`` (lo, hi), as modules (``nn.ReLU``, ``nn.ReLU6``,
``nn.Hardtanh``), as functions (``F.relu``, ``torch.relu``, ``Tensor.relu``, ``F.relu6``,
``F.hardtanh``) and in place (``inplace=True``, ``relu_``, ``hardtanh_``). Its gradient mask is
``lo < x < hi``; the deconvnet ignores that mask entirely and keeps ``R > 0``; guided backprop
keeps ``(lo < x < hi) * (R > 0)``.

The rules are applied by a :class:`torch.overrides.TorchFunctionMode` that is active only
inside :func:`rectifier_rule`: nothing is patched and no hook is registered, so nothing can be
left behind, even when an error is raised. Other activations (SiLU, GELU) keep their gradient.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..engine import input_gradient
from ..models import Classifier
from ..ops import Reduce, reduce_channels
from ..targets import Target
from ._registry import register_method

__all__ = ["Rule", "rectifier_rule", "rule_map", "rule_method"]

Rule = Literal["deconvnet", "guided"]


class _Rectify(torch.autograd.Function):
    """``clamp(x, lo, hi)`` forward; the chosen rule backward."""

    @staticmethod
    def forward(ctx, x: Tensor, lo: float, hi: float, rule: str, inplace: bool) -> Tensor:  # type: ignore[override]
        ctx.rule = rule
        if rule == "guided":
            mask = x > lo
            if hi != math.inf:
                mask &= x < hi
            ctx.save_for_backward(mask)
        if inplace:
            ctx.mark_dirty(x)
            return x.clamp_(lo, hi) if hi != math.inf else x.clamp_(min=lo)
        return x.clamp(lo, hi) if hi != math.inf else x.clamp(min=lo)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        r = grad.clamp(min=0)  # R * (R > 0)
        if ctx.rule == "guided":
            (mask,) = ctx.saved_tensors
            r = r * mask
        return r, None, None, None, None


def _arg(args: tuple, kwargs: dict, i: int, name: str, default):
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


# relu functions -> whether the function itself works in place (else its ``inplace`` argument says)
_RELUS = {F.relu: False, torch.relu: False, torch.Tensor.relu: False,
          F.relu_: True, torch.relu_: True, torch.Tensor.relu_: True}


def _parse(func, args: tuple, kwargs: dict) -> tuple[float, float, bool] | None:
    if func in _RELUS:
        inplace = _RELUS[func] or bool(_arg(args, kwargs, 1, "inplace", False))
        return 0.0, math.inf, inplace
    if func is F.relu6:
        return 0.0, 6.0, bool(_arg(args, kwargs, 1, "inplace", False))
    if func is F.hardtanh or func is F.hardtanh_:
        lo = float(_arg(args, kwargs, 1, "min_val", -1.0))
        hi = float(_arg(args, kwargs, 2, "max_val", 1.0))
        inplace = func is F.hardtanh_ or bool(_arg(args, kwargs, 3, "inplace", False))
        return lo, hi, inplace
    return None


class _RuleMode(TorchFunctionMode):
    def __init__(self, rule: Rule) -> None:
        super().__init__()
        self.rule = rule

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        parsed = _parse(func, args, kwargs)
        x = args[0] if args else kwargs.get("input", kwargs.get("self"))
        if parsed is None or not isinstance(x, Tensor):
            return func(*args, **kwargs)
        lo, hi, inplace = parsed
        return _Rectify.apply(x, lo, hi, self.rule, inplace)


@contextlib.contextmanager
def rectifier_rule(rule: Rule) -> Iterator[_RuleMode]:
    """Within this block, every rectifier uses ``rule`` in its backward pass.

    Args:
        rule: ``"deconvnet"`` (``R * (R > 0)``) or ``"guided"`` (``R * (lo < x < hi) * (R > 0)``).

    Yields:
        The active mode.
    """
    if rule not in ("deconvnet", "guided"):
        raise ValueError(f"rule must be 'deconvnet' or 'guided', got {rule!r}")
    mode = _RuleMode(rule)
    with mode:
        yield mode


def rule_map(
    rule: Rule,
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    reduce: Reduce = "max_abs",
    fast: bool = True,
) -> Tensor:
    """The input gradient with every rectifier following ``rule``, reduced over channels.

    One forward and one backward pass for the batch (:func:`deepinside.engine.input_gradient`).
    """
    with rectifier_rule(rule):
        grad, _, _ = input_gradient(model, images, target, fast=fast)
    return reduce_channels(grad, reduce)


_ARGS = """

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        target: ``None`` (top-1), an ``int``, or a sequence / ``Tensor[B]`` of ints.
        reduce: channel reduction; ``"max_abs"`` (the paper's) by default.
        fast: use the batch-norm-folded private copy (see :func:`input_gradient`).

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, C, H, W]`` with ``reduce="none"``).
    """


def rule_method(
    name: str, rule: Rule, description: str, paper: str, doc: str, **facts: object
) -> Callable[..., Tensor]:
    """Register the map of the gradient whose rectifiers follow ``rule`` under ``name``.

    Returns ``f(model, images, target=None, *, reduce="max_abs", fast=True) -> Tensor[B, H,
    W]`` with ``doc`` (what it computes) followed by the arguments. ``facts``: those of
    :func:`~deepinside.methods.register_method`.
    """

    def method(
        model: Classifier | nn.Module,
        images: Tensor,
        target: Target = None,
        *,
        reduce: Reduce = "max_abs",
        fast: bool = True,
    ) -> Tensor:
        return rule_map(rule, model, images, target, reduce=reduce, fast=fast)

    method.__name__ = method.__qualname__ = name
    method.__module__ = sys._getframe(1).f_globals.get("__name__", __name__)  # the caller's
    method.__doc__ = doc.rstrip() + _ARGS
    return register_method(name, description, paper, **facts)(method)  # type: ignore[arg-type]
