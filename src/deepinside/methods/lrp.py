"""Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019), zennit's rules.

The class score ``S_c`` (the logit) is the relevance at the output; each layer hands it down to
its inputs by a rule; the input's relevance is the map (signed: evidence for and against).
Rules of a linear layer ``z = f(x; w, b)`` (a convolution or a dense layer; zennit's
``rules.py``, with its stabiliser ``stab(z) = z + eps * sign(z)``, sign(0) = 1):

- ``epsilon``: ``R_x = x * f^T(R / stab(z))`` (Bach et al. 2015, LRP-epsilon);
- ``z_plus``: positive contributions only, ``x+ w+`` and ``x- w-`` (Montavon et al. 2017);
- ``alpha_beta``: ``alpha`` times the positive and ``beta`` times the negative contributions
  (``alpha - beta = 1``; Bach et al. 2015);
- ``gamma``: positive weights boosted by ``gamma`` for positive outputs, negative ones for
  negative outputs (Montavon et al. 2019);
- ``flat``: relevance spread uniformly over the receptive field (Lapuschkin et al. 2019);
- ``w_square``: in proportion to ``w**2`` (Montavon et al. 2017);
- ``z_box``: for inputs bounded by ``low`` and ``high`` (Montavon et al. 2017), the first layer
  on pixels.

Rectifiers (every kind :mod:`.relu_rules` knows: ReLU, ReLU6, Hardtanh, as modules, functions,
in place) and the other activation functions (SiLU, GELU, LeakyReLU, ELU, Hardswish) pass the
relevance unchanged, as zennit's ``Pass``; additions of two activations of the same shape (skip
connections; in place too, ``x += y`` and ``x.add_(y)`` still writing into ``x``) and average
pooling (modules, functions, and ``mean`` of a 4-d activation, timm's fast global pooling)
split it in proportion to their inputs (zennit's ``Norm``, its ``Sum`` canonizer); max pooling
passes it to the maximum (the gradient). Batch norm is folded into the convolution before it
by the engine's private copy (:mod:`deepinside.fastmodel`, the ``fast=True`` default; zennit's
``SequentialMergeBatchNorm`` canonizer); an unfolded batch norm passes the relevance
unchanged, as zennit's composites do.

Transformers and ConvNeXt (Ali et al. 2022, "XAI for Transformers: Better Explanations
through Conservative Propagation", https://arxiv.org/abs/2202.07304): a layer norm is
propagated with its standard deviation held constant (the LN-rule: the epsilon rule through
the centring, which conserves; the plain gradient of a layer norm sums to zero along
constants and removed the whole relevance), a group norm with each group's, an instance
norm with each image's and channel's (one from running statistics is an affine map per
channel and passes the relevance as batch norm does), an RMS norm with its root mean square
(the relevance then passes unchanged), and the attention weights of
``scaled_dot_product_attention`` or of a ``softmax`` are held constant (the AH-rule: the
relevance flows through the values). An activation plus a constant (a position embedding) is
split like a skip connection, the constant's share absorbed as a bias's. zennit has no rule for
these; on networks without them (VGG, ResNet) the maps equal zennit's.

Composites choose a rule per layer, as zennit's of the same names: ``epsilon_plus_flat``,
``epsilon_gamma_box``, ``epsilon_alpha2_beta1_flat``, ``epsilon_plus``,
``epsilon_alpha2_beta1``; a rule's name applies that rule to every layer.

As :mod:`.relu_rules`, the rules live in a :class:`torch.overrides.TorchFunctionMode` active
only during the call: no module is patched and no hook registered.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..engine import input_gradient
from ..models import Classifier
from ..ops import Reduce, reduce_channels
from ..targets import Target
from ._registry import register_method
from .relu_rules import _parse

__all__ = ["COMPOSITES", "RULES", "lrp", "lrp_rules"]

RULES = ("epsilon", "gamma", "alpha_beta", "z_plus", "flat", "w_square", "z_box")


@dataclass(frozen=True)
class Composite:
    """Which rule each layer gets (zennit's layer maps).

    Attributes:
        conv: the rule of convolutions.
        linear: the rule of dense layers.
        first: the rule of the first layer (in forward order) of the kinds ``first_kinds``.
        first_kinds: ``("conv",)`` or ``("conv", "linear")``.
    """

    conv: str
    linear: str
    first: str | None = None
    first_kinds: tuple[str, ...] = ("conv", "linear")


COMPOSITES: dict[str, Composite] = {
    "epsilon_plus_flat": Composite("z_plus", "epsilon", "flat"),
    "epsilon_gamma_box": Composite("gamma", "epsilon", "z_box", ("conv",)),
    "epsilon_alpha2_beta1_flat": Composite("alpha_beta", "epsilon", "flat"),
    "epsilon_plus": Composite("z_plus", "epsilon"),
    "epsilon_alpha2_beta1": Composite("alpha_beta", "epsilon"),
    **{rule: Composite(rule, rule) for rule in RULES},
}

_CONVS = {F.conv1d, F.conv2d, F.conv3d}
_INPLACE_ADDS = {Tensor.add_, Tensor.__iadd__}
_ADDS = {torch.add, Tensor.add, Tensor.__add__, Tensor.__radd__, *_INPLACE_ADDS}
_POOLS = {"avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
          "adaptive_avg_pool2d", "adaptive_avg_pool3d"}
_ACTIVATIONS = {F.silu, F.gelu, F.leaky_relu, F.elu, F.hardswish}
_SOFTMAXES = {F.softmax, torch.softmax, Tensor.softmax}


def _broadcastable(a: Tensor, b: Tensor) -> bool:
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        return False
    return True


def _fixed_divisor(x: Tensor, dims: tuple[int, ...], eps: float, *, centre: bool) -> Tensor:
    """``x`` (centred over ``dims`` if ``centre``) divided by its standard deviation (or root
    mean square) over ``dims`` held constant: a linear map of ``x``."""
    xd = x.detach()
    if centre:
        spread = xd.var(dim=dims, keepdim=True, unbiased=False)
        x = x - x.mean(dim=dims, keepdim=True)
    else:
        spread = xd.pow(2).mean(dim=dims, keepdim=True)
    return x / torch.sqrt(spread + eps)


def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None, shape=None) -> Tensor:
    """``y * weight + bias`` (each viewed as ``shape`` if given; ``None``: left out), the
    parameters held constant."""
    if weight is not None:
        y = y * (weight.detach() if shape is None else weight.detach().view(shape))
    if bias is not None:
        y = y + (bias.detach() if shape is None else bias.detach().view(shape))
    return y


def _layer_norm_fixed_scale(x: Tensor, shape, weight: Tensor | None, bias: Tensor | None,
                            eps: float | None = None) -> Tensor:
    """``F.layer_norm`` with its standard deviation held constant (Ali et al. 2022's LN-rule):
    a linear map of ``x``, so the epsilon rule through it conserves relevance."""
    y = _fixed_divisor(x, tuple(range(-len(shape), 0)), 1e-5 if eps is None else eps,
                       centre=True)
    return _affine(y, weight, bias)


def _group_norm_fixed_scale(x: Tensor, groups: int, weight: Tensor | None,
                            bias: Tensor | None, eps: float | None = None) -> Tensor:
    """``F.group_norm`` of ``x: Tensor[N, C, *]`` with each group's standard deviation held
    constant (the LN-rule per group)."""
    y = _fixed_divisor(x.reshape(x.shape[0], groups, -1), (-1,), 1e-5 if eps is None else eps,
                       centre=True)
    return _affine(y.reshape(x.shape), weight, bias, (1, -1) + (1,) * (x.dim() - 2))


def _rms_norm_fixed_scale(x: Tensor, shape, weight: Tensor | None,
                          eps: float | None = None) -> Tensor:
    """``F.rms_norm`` with its root mean square held constant (the LN-rule without the
    centring): each element scaled by a constant, so the relevance passes unchanged."""
    if eps is None:  # as F.rms_norm: the machine epsilon of float32, or of float64
        eps = torch.finfo(torch.float64 if x.dtype == torch.float64 else torch.float32).eps
    return _affine(_fixed_divisor(x, tuple(range(-len(shape), 0)), eps, centre=False),
                   weight, None)


def _instance_norm_fixed_scale(x: Tensor, running_mean=None, running_var=None,
                               weight: Tensor | None = None, bias: Tensor | None = None,
                               use_input_stats: bool | None = None, momentum=None,
                               eps: float | None = None) -> Tensor:
    """``F.instance_norm`` of ``x: Tensor[N, C, *]`` from the input's statistics, with each
    channel's standard deviation held constant (the LN-rule per image and channel; a group
    norm with one channel per group). With running statistics it is not called: that norm is
    an affine map per channel, passed as batch norm is."""
    y = _fixed_divisor(x, tuple(range(2, x.dim())), 1e-5 if eps is None else eps, centre=True)
    return _affine(y, weight, bias, (1, -1) + (1,) * (x.dim() - 2))


# Normalisations propagated with their divisor held constant (the LN-rule): the names of
# their arguments, and the linear map they are then.
_NORMS: dict[Callable, tuple[tuple[str, ...], Callable[..., Tensor]]] = {
    F.layer_norm: (("input", "normalized_shape", "weight", "bias", "eps"),
                   _layer_norm_fixed_scale),
    F.group_norm: (("input", "num_groups", "weight", "bias", "eps"), _group_norm_fixed_scale),
    F.rms_norm: (("input", "normalized_shape", "weight", "eps"), _rms_norm_fixed_scale),
    F.instance_norm: (("input", "running_mean", "running_var", "weight", "bias",
                       "use_input_stats", "momentum", "eps"), _instance_norm_fixed_scale),
}


def _running_stats(func: Callable, args: tuple, kwargs: dict) -> bool:
    """Whether ``func(*args, **kwargs)`` is an instance norm from running statistics (eval,
    ``track_running_stats``): an affine map per channel, as batch norm in eval."""
    if func is not F.instance_norm:
        return False
    return _args(args, kwargs, _NORMS[func][0])[0][5] is False


def _attention_fixed_weights(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
                             dropout_p: float = 0.0, is_causal: bool = False,
                             scale: float | None = None, enable_gqa: bool = False) -> Tensor:
    """``F.scaled_dot_product_attention`` (eval: no dropout) with its attention weights held
    constant (Ali et al. 2022's AH-rule): relevance flows to the values only."""
    if enable_gqa and k.shape[-3] != q.shape[-3]:  # grouped query attention: shared k, v
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
        v = v.repeat_interleave(q.shape[-3] // v.shape[-3], dim=-3)
    s = q.detach() @ k.detach().transpose(-2, -1) * (q.shape[-1] ** -0.5 if scale is None
                                                     else scale)
    if is_causal:
        n, m = s.shape[-2:]
        s = s.masked_fill(~torch.ones(n, m, dtype=torch.bool, device=s.device).tril(), -math.inf)
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, -math.inf) if attn_mask.dtype == torch.bool else s + attn_mask
    return s.softmax(dim=-1) @ v


def _stab(z: Tensor, eps: float) -> Tensor:
    """zennit's ``stabilize``: ``z + eps * sign(z)`` with sign(0) = 1."""
    return z + ((z == 0).to(z) + z.sign()) * eps


def _pos(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.clamp(min=0)


def _neg(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.clamp(max=0)


def _relevance(rule: str, op: Callable, x: Tensor, w: Tensor, b: Tensor | None, g: Tensor,
               opts: dict) -> Tensor:
    """The relevance of ``x`` from the relevance ``g`` of ``op(x, w, b)`` by ``rule``."""
    eps = opts["stabilizer"]

    def grads(inputs, params, outs_to_go):
        ins = [i.detach().requires_grad_(True) for i in inputs]
        outs = [op(i, pw, pb) for i, (pw, pb) in zip(ins, params)]
        return ins, torch.autograd.grad(outs, ins, grad_outputs=outs_to_go(outs))

    if rule == "epsilon":
        (xi,), (gx,) = grads([x], [(w, b)], lambda o: [g / _stab(o[0], opts["epsilon"])])
        return xi * gx
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    if rule == "z_plus":
        ins, gs = grads([xp, xn], [(_pos(w), _pos(b)), (_neg(w), None)],
                        lambda o: [g / _stab(o[0] + o[1], eps)] * 2)
        return ins[0] * gs[0] + ins[1] * gs[1]
    if rule == "alpha_beta":
        alpha, beta = opts["alpha"], opts["beta"]
        ins, gs = grads(
            [xp, xn, xp, xn],
            [(_pos(w), _pos(b)), (_neg(w), None), (_neg(w), _neg(b)), (_pos(w), None)],
            lambda o: [g / _stab(o[0] + o[1], eps)] * 2 + [g / _stab(o[2] + o[3], eps)] * 2)
        return (alpha * (ins[0] * gs[0] + ins[1] * gs[1])
                - beta * (ins[2] * gs[2] + ins[3] * gs[3]))
    if rule == "gamma":
        gm = opts["gamma"]

        def up(t, part):
            return None if t is None else t + gm * part(t)

        with torch.no_grad():
            z = op(x, w, b)
        ins, gs = grads(
            [xp, xn, xp, xn],
            [(up(w, _pos), up(b, _pos)), (up(w, _neg), None), (up(w, _neg), up(b, _neg)),
             (up(w, _pos), None)],
            lambda o: [(z > 0) * g / _stab(o[0] + o[1], eps)] * 2
            + [(z < 0) * g / _stab(o[2] + o[3], eps)] * 2)
        return sum(i * gi for i, gi in zip(ins, gs))
    if rule in ("flat", "w_square"):
        pw, pb = ((torch.ones_like(w), None) if rule == "flat"
                  else (w * w, None if b is None else b * b))
        _, (gx,) = grads([torch.ones_like(x)], [(pw, pb)], lambda o: [g / _stab(o[0], eps)])
        return gx
    if rule == "z_box":
        low = opts["low"].to(x).expand_as(x)
        high = opts["high"].to(x).expand_as(x)
        ins, gs = grads([x, low, high], [(w, b), (_pos(w), _pos(b)), (_neg(w), _neg(b))],
                        lambda o: [g / _stab(o[0] - o[1] - o[2], eps)] * 3)
        return ins[0] * gs[0] - ins[1] * gs[1] - ins[2] * gs[2]
    raise ValueError(f"unknown LRP rule {rule!r}; choose one of {', '.join(RULES)}")


class _Layer(torch.autograd.Function):
    """``op(x, w, b)`` forward; the rule's relevance backward (to ``x`` only)."""

    @staticmethod
    def forward(ctx, x, w, b, op, rule, opts, mode):  # type: ignore[override]
        ctx.op, ctx.rule, ctx.opts, ctx.mode = op, rule, opts, mode
        ctx.save_for_backward(x, w, b)
        z = op(x, w, b)
        # F.linear on tokens Tensor[B, N, C] returns a view, which a later in-place
        # activation may not modify: hand over a tensor of its own
        return z.clone() if z._is_view() else z

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x, w, b = ctx.saved_tensors
        with ctx.mode.bypassed(), torch.enable_grad():
            r = _relevance(ctx.rule, ctx.op, x, w.detach(), None if b is None else b.detach(),
                           g, ctx.opts)
        return r, None, None, None, None, None, None


class _Norm(torch.autograd.Function):
    """``op(*xs)`` forward; backward ``x_i * d op / d x_i (R / stab(z))`` (zennit's Norm)."""

    @staticmethod
    def forward(ctx, op, mode, eps, *xs):  # type: ignore[override]
        ctx.op, ctx.mode, ctx.eps = op, mode, eps
        ctx.save_for_backward(*xs)
        return op(*xs)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        xs = ctx.saved_tensors
        with ctx.mode.bypassed(), torch.enable_grad():
            ins = [x.detach().requires_grad_(True) for x in xs]
            z = ctx.op(*ins)
            grads = torch.autograd.grad(z, ins, g / _stab(z.detach(), ctx.eps))
        return (None, None, None, *(x * gx for x, gx in zip(ins, grads)))


class _Pass(torch.autograd.Function):
    """``op(x)`` forward (in place when asked); the relevance passes unchanged backward."""

    @staticmethod
    def forward(ctx, x, op, inplace):  # type: ignore[override]
        if inplace:
            ctx.mark_dirty(x)
        return op(x)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g, None, None


def _args(args: tuple, kwargs: dict, names: tuple[str, ...]) -> tuple[list, dict]:
    """The first ``len(names)`` arguments by position or name, and the rest as keywords."""
    first = [args[i] if i < len(args) else kwargs.get(n) for i, n in enumerate(names)]
    rest = {k: v for k, v in kwargs.items() if k not in names}
    return first, rest


class _LRPMode(TorchFunctionMode):
    def __init__(self, composite: Composite, opts: dict) -> None:
        super().__init__()
        self.composite = composite
        self.opts = opts
        self.first_seen = composite.first is None
        self._bypass = False

    @contextlib.contextmanager
    def bypassed(self) -> Iterator[None]:
        self._bypass, before = True, self._bypass
        try:
            yield
        finally:
            self._bypass = before

    def _layer_rule(self, kind: str) -> str:
        if not self.first_seen and kind in self.composite.first_kinds:
            self.first_seen = True
            return self.composite.first  # type: ignore[return-value]
        return self.composite.conv if kind == "conv" else self.composite.linear

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._bypass or not torch.is_grad_enabled():  # e.g. the fast copy's probe passes
            return func(*args, **kwargs)
        if func in _CONVS or func is F.linear:
            (x, w, b), rest = _args(args, kwargs, ("input", "weight", "bias"))
            extra = tuple(args[3:])
            rule = self._layer_rule("linear" if func is F.linear else "conv")
            return _Layer.apply(x, w, b, lambda x_, w_, b_: func(x_, w_, b_, *extra, **rest),
                                rule, self.opts, self)
        if func in _ADDS and len(args) >= 2 and not {"alpha", "out"} & kwargs.keys():
            a, c = args[0], args[1]
            if (isinstance(a, Tensor) and isinstance(c, Tensor) and a.is_floating_point()
                    and c.is_floating_point() and (a.requires_grad or c.requires_grad)
                    and _broadcastable(a, c)):
                # a skip connection, or an activation plus a constant (a position embedding):
                # split in proportion; a constant's share is absorbed, as a bias's
                if func not in _INPLACE_ADDS:
                    return _Norm.apply(torch.add, self, self.opts["stabilizer"], a, c)
                if torch.broadcast_shapes(a.shape, c.shape) == a.shape:
                    # in place (x.add_(y) with its result unused, x += y with x shared): the
                    # split sum written into x; the split reads copies of x and y, which
                    # the write leaves intact for the backward pass
                    with self.bypassed():
                        a_, c_ = a.clone(), c.clone()
                    z = _Norm.apply(torch.add, self, self.opts["stabilizer"], a_, c_)
                    with self.bypassed():
                        return a.copy_(z)
        if func in _NORMS and not _running_stats(func, args, kwargs):
            # the LN-rule: a linear map with the divisor held constant
            names, fixed = _NORMS[func]
            (x, *params), _ = _args(args, kwargs, names)
            return _Norm.apply(lambda x_: fixed(x_, *params), self, self.opts["stabilizer"], x)
        if func is F.scaled_dot_product_attention:
            with self.bypassed():
                return _attention_fixed_weights(*args, **kwargs)
        if func in _SOFTMAXES:  # attention weights written out (q @ k.T).softmax(-1) @ v
            with self.bypassed():
                return func(*args, **kwargs).detach()
        x = args[0] if args else kwargs.get("input", kwargs.get("self"))
        if not isinstance(x, Tensor):
            return func(*args, **kwargs)
        rest = {k: v for k, v in kwargs.items() if k not in ("input", "self")}
        tail = tuple(args[1:])
        if getattr(func, "__name__", "") in _POOLS or (
                func in (torch.mean, Tensor.mean) and x.requires_grad and x.dim() == 4):
            return _Norm.apply(lambda x_: func(x_, *tail, **rest), self,
                               self.opts["stabilizer"], x)
        if func in (F.batch_norm, F.instance_norm) or (func in _ACTIVATIONS
                                                       and not kwargs.get("inplace")):
            return _Pass.apply(x, lambda x_: func(x_, *tail, **rest), False)
        parsed = _parse(func, args, kwargs)
        if parsed is not None:
            lo, hi, inplace = parsed
            top = None if hi == math.inf else hi
            return _Pass.apply(x, (lambda t: t.clamp_(lo, top)) if inplace
                               else (lambda t: t.clamp(lo, top)), inplace)
        return func(*args, **kwargs)


def _bounds(model: Classifier | nn.Module, images: Tensor, low, high) -> tuple[Tensor, Tensor]:
    """z-box bounds ``Tensor[1 | B, C, 1 | H, 1 | W]``: given, or the pixel range [0, 1] in the
    model's input space (a Classifier), or the batch's smallest / largest value per channel."""
    def as_t(v, fallback):
        if v is None:
            return fallback
        t = torch.as_tensor(v, dtype=images.dtype, device=images.device)
        return t.view(1, -1, 1, 1) if t.dim() == 1 else t

    if isinstance(model, Classifier):
        lo = model.preprocessing.normalize(torch.zeros_like(images[:1, :, :1, :1]))
        hi = model.preprocessing.normalize(torch.ones_like(images[:1, :, :1, :1]))
    else:
        lo = images.amin(dim=(0, 2, 3), keepdim=True)
        hi = images.amax(dim=(0, 2, 3), keepdim=True)
    return as_t(low, lo), as_t(high, hi)


@contextlib.contextmanager
def lrp_rules(composite: str = "epsilon_plus_flat", **opts) -> Iterator[_LRPMode]:
    """Within this block, the backward pass of every layer follows ``composite``'s rules.

    Args:
        composite: a name of :data:`COMPOSITES` (or of a rule, for every layer).
        **opts: ``epsilon``, ``gamma``, ``alpha``, ``beta``, ``stabilizer``, ``low``,
            ``high`` (tensors).

    Raises:
        ValueError: an unknown composite, or ``alpha - beta != 1``.
    """
    if composite not in COMPOSITES:
        from ..registry import did_you_mean

        raise ValueError(f"unknown LRP composite {composite!r}{did_you_mean(composite, COMPOSITES)}"
                         f"; choose one of {', '.join(COMPOSITES)}")
    full = {"epsilon": 1e-6, "gamma": 0.25, "alpha": 2.0, "beta": 1.0, "stabilizer": 1e-6}
    full.update(opts)
    if full["alpha"] < 0 or full["beta"] < 0 or abs(full["alpha"] - full["beta"] - 1) > 1e-12:
        raise ValueError("alpha and beta must be non-negative with alpha - beta = 1, got "
                         f"alpha={full['alpha']}, beta={full['beta']}")
    with _LRPMode(COMPOSITES[composite], full) as mode:
        yield mode


@register_method(
    "lrp",
    "layer-wise relevance propagation: the logit handed down layer by layer by zennit's "
    "rules (composite epsilon_plus_flat by default); signed",
    "Bach et al. 2015, https://doi.org/10.1371/journal.pone.0130140; Montavon et al. 2019, "
    "https://doi.org/10.1007/978-3-030-28954-6_10",
    signed=True, order=75, report="full",
)
def lrp(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    composite: str = "epsilon_plus_flat",
    epsilon: float = 1e-6,
    gamma: float = 0.25,
    alpha: float = 2.0,
    beta: float = 1.0,
    low: float | Tensor | None = None,
    high: float | Tensor | None = None,
    reduce: Reduce = "sum",
    fast: bool = True,
) -> Tensor:
    """LRP relevance of the class score, for a batch (one forward and one backward pass).

    The output relevance is the target's logit, so with the epsilon rule and no biases the
    map sums to the logit (conservation). Equal to zennit's ``Gradient`` attributor with the
    composite of the same name and its batch-norm canonizer, given ``attr_output`` = the
    one-hot target times the logit.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        target: ``None`` (top-1), an ``int``, a class name, or one class per image.
        composite: ``epsilon_plus_flat`` (default), ``epsilon_gamma_box``,
            ``epsilon_alpha2_beta1_flat``, ``epsilon_plus``, ``epsilon_alpha2_beta1``, or a
            rule name (``epsilon``, ``gamma``, ``alpha_beta``, ``z_plus``, ``flat``,
            ``w_square``, ``z_box``) for every layer.
        epsilon: the epsilon rule's stabiliser.
        gamma: the gamma rule's boost.
        alpha, beta: the alpha-beta rule's weights (``alpha - beta = 1``).
        low, high: the z-box bounds of the input (numbers, per-channel sequences or tensors
            broadcastable to the images); default: pixels 0 and 1 in the input space of a
            :class:`Classifier`, else the batch's range per channel.
        reduce: channel reduction; ``"sum"`` keeps the sign and the conservation.
        fast: run the batch-norm-folded private copy (batch norm merged into its convolution).

    Returns:
        ``Tensor[B, H, W]`` signed relevance (``Tensor[B, C, H, W]`` with ``reduce="none"``).
    """
    lo, hi = _bounds(model, images, low, high)
    with lrp_rules(composite, epsilon=epsilon, gamma=gamma, alpha=alpha, beta=beta, low=lo,
                   high=hi):
        rel, _, _ = input_gradient(model, images, target, fast=fast,
                                   score=lambda logits: logits * logits.detach())
    return reduce_channels(rel, reduce)
