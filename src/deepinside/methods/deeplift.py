"""DeepLIFT with the rescale rule (Shrikumar, Greenside & Kundaje 2017).

DeepLIFT explains ``S_c(x) - S_c(x')`` for a reference input ``x'``. Each elementwise
nonlinearity ``y = f(z)`` passes back the multiplier ``(f(z) - f(z')) / (z - z')`` instead of
its derivative ``f'(z)`` (the *rescale rule*; where ``z = z'`` the derivative is kept, and for
smooth functions wherever ``|z - z'| <= eps``, as Captum does); linear layers (convolutions,
batch norm in eval mode, pooling by averaging, linear layers) keep their gradient. The
attribution is ``(x - x') * m`` where ``m`` is the product of the multipliers along the
backward pass. With only elementwise nonlinearities, the attributions sum to
``S_c(x) - S_c(x')`` exactly (summation-to-delta).

The input and its reference run through the network as one batch ``[x; x']``; a
:class:`torch.overrides.TorchFunctionMode`, active only inside the call, replaces each
elementwise nonlinearity by an autograd function that sees both halves and applies the
rescale rule in the backward pass (as :mod:`deepinside.methods.relu_rules`: nothing is patched,
no hook is registered). Max pooling keeps its gradient (Captum applies a rule of its own to
``nn.MaxPool`` modules).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..engine import detach_output, input_gradient
from ..models import Classifier
from ..ops import Reduce, reduce_channels
from ..targets import Target, resolve_targets, take, target_scores
from ._common import baseline_images, chunks, one_target_per_image, targets_and_logits
from ._registry import register_method

__all__ = ["deeplift", "rescale_rule"]

# elementwise nonlinearities -> (out-of-place function, whether the call itself is in place)
_FUNCS: dict[Callable, tuple[Callable, bool]] = {
    F.relu: (F.relu, False), torch.relu: (torch.relu, False), Tensor.relu: (torch.relu, False),
    F.relu_: (torch.relu, True), torch.relu_: (torch.relu, True),
    Tensor.relu_: (torch.relu, True),
    F.relu6: (F.relu6, False), F.hardtanh: (F.hardtanh, False), F.hardtanh_: (F.hardtanh, True),
    torch.sigmoid: (torch.sigmoid, False), Tensor.sigmoid: (torch.sigmoid, False),
    torch.tanh: (torch.tanh, False), Tensor.tanh: (torch.tanh, False),
    F.silu: (F.silu, False), F.gelu: (F.gelu, False), F.elu: (F.elu, False),
    F.leaky_relu: (F.leaky_relu, False), F.softplus: (F.softplus, False),
    F.hardswish: (F.hardswish, False), F.hardsigmoid: (F.hardsigmoid, False),
    F.mish: (F.mish, False),
}
_PIECEWISE = {F.relu, torch.relu, F.relu6, F.hardtanh, F.leaky_relu}
# position of the ``inplace`` argument after the input, where a function has one
_INPLACE_AT = {F.relu: 0, F.relu6: 0, F.silu: 0, F.hardswish: 0, F.hardsigmoid: 0, F.mish: 0,
               F.hardtanh: 2, F.elu: 1, F.leaky_relu: 1}


class _RescaleMode(TorchFunctionMode):
    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        entry = _FUNCS.get(func)
        x = args[0] if args else kwargs.get("input", kwargs.get("self"))
        if entry is None or not isinstance(x, Tensor) or not x.requires_grad:
            return func(*args, **kwargs)  # e.g. the private copy's probe, without gradient
        plain, inplace = entry
        opts = {k: v for k, v in kwargs.items() if k not in ("input", "self", "inplace")}
        inplace = inplace or bool(kwargs.get("inplace", False))
        rest = list(args[1:])
        at = _INPLACE_AT.get(func)
        if at is not None and len(rest) > at:
            inplace = inplace or bool(rest.pop(at))
        if x.shape[0] % 2:
            raise ValueError("the rescale rule needs a batch [inputs; references] of even size")

        def fn(z: Tensor) -> Tensor:
            return plain(z, *rest, **opts)

        # the mode is not active here (PyTorch pops it while it handles a call)
        return _Rescale.apply(x, fn, inplace, self.eps, plain in _PIECEWISE)


class _Rescale(torch.autograd.Function):
    """``f(z)`` forward; the rescale multiplier of each input / reference pair backward.

    The multiplier ``(f(z) - f(z')) / (z - z')`` is computed in the forward pass, where both
    halves are at hand, and is the only tensor kept for the backward pass (half the batch).
    """

    @staticmethod
    def forward(ctx, z: Tensor, fn: Callable, inplace: bool, eps: float,  # type: ignore[override]
                piecewise: bool) -> Tensor:
        h = z.shape[0] // 2
        dz = z[:h] - z[h:]
        y = fn(z)
        m = (y[:h] - y[h:]).div_(dz)
        if piecewise:
            # a piecewise-linear f gives the exact slope for any z != z'; only z = z' (0 / 0)
            # needs the derivative
            small = None if bool(torch.isfinite(m).all()) else dz == 0
        else:
            small = dz.abs() <= eps
            small = small if bool(small.any()) else None
        if small is not None:  # the derivative where input and reference (nearly) agree
            with torch.enable_grad():
                zz = z[:h][small].detach().requires_grad_(True)
                (local,) = torch.autograd.grad(fn(zz), zz, torch.ones_like(zz))
            m = m.masked_scatter_(small, local)
        ctx.save_for_backward(m)
        if inplace:
            ctx.mark_dirty(z)
            return z.copy_(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (m,) = ctx.saved_tensors
        return (grad.unflatten(0, (2, m.shape[0])) * m).flatten(0, 1), None, None, None, None


@contextlib.contextmanager
def rescale_rule(eps: float = 1e-10) -> Iterator[TorchFunctionMode]:
    """Within this block, elementwise nonlinearities follow DeepLIFT's rescale rule backward.

    Every batch that goes through the network with gradients must be ``[inputs; references]``
    (``Tensor[2B, ...]``): the first half is paired with the second. Calls on tensors that do
    not require gradients are left as they are.

    Args:
        eps: below this ``|z - z'|`` the derivative ``f'(z)`` is used (Captum's default).
    """
    mode = _RescaleMode(eps)
    with mode:
        yield mode


@register_method(
    "deeplift",
    "DeepLIFT (rescale rule): (x - x') times multipliers (f(z) - f(z')) / (z - z') backward",
    "Shrikumar, Greenside & Kundaje 2017, https://arxiv.org/abs/1704.02685",
    signed=True, order=60,
)
def deeplift(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    baseline: str | float | Tensor = "zero",
    reduce: Reduce = "sum_abs",
    eps: float = 1e-10,
    batch_size: int | None = 32,
    fast: bool = True,
) -> Tensor:
    """DeepLIFT attributions of ``S_c(x) - S_c(x')`` for a batch.

    Each chunk of images runs with its references in one forward and one backward pass
    (``2 * batch_size`` examples). Completeness: with ``reduce="sum"`` and summed over pixels,
    the result equals ``S_c(x) - S_c(x')`` when every nonlinearity is elementwise.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``;
            nothing in it may mix the examples of a batch (eval-mode batch norm is fine).
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        target: ``None`` (top-1 of the image), an ``int``, or a sequence / ``Tensor[B]``.
        baseline: the reference x' (see :func:`baseline_images`; default the input-space
            zero, Captum's default).
        reduce: channel reduction; ``"sum_abs"`` by default, ``"sum"`` keeps signs,
            ``"none"`` gives Captum's per-channel attributions.
        eps: below this ``|z - z'|`` a nonlinearity passes its derivative.
        batch_size: images per pass (None: all at once).
        fast: use the batch-norm-folded private copy.

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, C, H, W]`` with ``reduce="none"``).
    """
    x = images.detach()
    ref = baseline_images(model, x, baseline)
    mult = torch.empty_like(x)
    b = x.shape[0]
    if batch_size is not None and batch_size < b:
        t, _ = targets_and_logits(model, images, target, fast)
    for sl in chunks(b, batch_size):
        if batch_size is not None and batch_size < b:
            tt = take(t, torch.arange(sl.start, sl.stop, device=x.device))
        else:  # one pass: the targets are resolved on the images' half of its logits
            tt = target
        with rescale_rule(eps):
            grad, _, _ = input_gradient(model, torch.cat([x[sl], ref[sl]]),
                                        _pair_scores(tt, model), fast=fast)
        mult[sl] = grad[: sl.stop - sl.start]
    return reduce_channels((x - ref) * mult, reduce)


def _pair_scores(target: Target, model: Classifier | nn.Module) -> Callable[[Tensor], Tensor]:
    """A target callable for a batch ``[inputs; references]``, ``Tensor[2B]``: the targets
    resolved on the inputs' half of the logits, each input's class taken in both halves."""

    def scores(logits: Tensor) -> Tensor:
        h = logits.shape[0] // 2
        t = one_target_per_image(resolve_targets(target, detach_output(logits[:h]), model),
                                 "deeplift")
        return torch.cat([target_scores(t, logits[:h]), target_scores(t, logits[h:])])

    return scores
