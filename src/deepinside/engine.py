"""The only place a network is called.

Every method, class models, faithfulness, localisation and classification run the model through
this module, so what a call does to the model is decided once:

- the whole module runs in eval mode, and each submodule's own train/eval flag is restored
  afterwards, also when an error is raised (:func:`eval_mode`); no parameter requires a
  gradient during the call, each one's flag restored afterwards (:func:`frozen`);
- by default a private copy with batch norm folded into the convolutions and ``channels_last``
  memory runs instead of the caller's module (:mod:`deepinside.fastmodel`; exact up to float
  rounding); ``fast=False`` runs the module itself;
- the inputs are never modified and keep their ``requires_grad`` (the network gets a copy, so
  a model that scales its input in place, ``x.mul_(...)``, works too); gradients are taken with
  ``torch.autograd.grad`` with respect to the input (or one layer's output) only, so no weight
  gradient is computed and no ``.grad`` is written;
- hooks are registered for one call and removed in ``finally``;
- results follow the device and dtype of the inputs; the logits are checked (``Tensor[B, K]``).

Functions: :func:`forward_logits` (no gradient), :func:`input_gradient` (one backward pass,
dS/dI), :func:`capture_layer` (a layer's activations and dS/dA, for the CAM family),
:func:`network`, the context the others are built on, for loops that call the network many
times (class models), and :func:`layer_network`, its twin that also hands over the outputs of
chosen layers with their graph (feature visualisation of channels and neurons).

Two opt-in speed options of :func:`network`, :func:`forward_logits` and :func:`input_gradient`
(off by default; the defaults are exact up to float rounding):

- ``amp=torch.float16`` or ``torch.bfloat16`` runs the forward (and so the backward) under
  ``torch.autocast`` on the input's device; logits and gradients come back in the input's
  dtype. Meant for GPUs. Half precision moves the map: on efficientnet_lite0 on the CPU with
  bf16 the map correlates about 0.94 with the float32 map (99.99th percentile difference about
  23% of the map's maximum), outside the 1% that the exactness tests allow. Not measured on a
  GPU (float16 keeps three more mantissa bits than bfloat16);
- ``compiled=True`` (or ``DEEPINSIDE_COMPILE=1``) runs the fast copy through ``torch.compile``,
  compiled once per copy and cached; if compiling or running the compiled copy fails, the
  eager copy runs instead (a warning says so once; a failure that only the compiled backward
  raises is not caught). On the CPU of our benchmark it did not pay
  off: minutes of compile time and a slower steady state than eager (see
  ``benchmarks/bench_saliency.py``).

Targets (what to explain) are resolved by :mod:`deepinside.targets`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .fastmodel import dataclass_fields, fast_copy, recomputing
from .layers import Layer, find_layer, last_feature_map, to_grid
from .models import Classifier
from .targets import ScoreFn, Target, describe_output, resolve_targets, target_scores

__all__ = [
    "LayerCapture",
    "capture_layer",
    "check_images",
    "detach_output",
    "default_layer",
    "eval_mode",
    "forward_logits",
    "frozen",
    "input_gradient",
    "layer_network",
    "layer_replaced",
    "module_of",
    "network",
    "shift_undone",
    "read_output",
    "trace",
]


def module_of(model: Classifier | nn.Module) -> nn.Module:
    """The ``nn.Module`` inside a :class:`Classifier` (or the module itself)."""
    if isinstance(model, Classifier):
        return model.module
    if isinstance(model, nn.Module):
        return model
    raise TypeError(f"model must be a deepinside Classifier or an nn.Module, got {type(model)}")


def _first_bad(t: Tensor) -> int | None:
    """Index of the first example of ``t`` with a NaN or an infinity, or ``None``."""
    bad = ~torch.isfinite(t.detach()).reshape(t.shape[0], -1).all(dim=1)
    return int(bad.nonzero()[0, 0]) if bool(bad.any()) else None


def check_images(images: Tensor) -> None:
    """Check that ``images`` is a finite floating ``Tensor[B, C, H, W]`` with B >= 1.

    Raises:
        TypeError / ValueError: what is wrong, naming the first bad image of the batch.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a Tensor[B, C, H, W], got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be a Tensor[B, C, H, W], got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point, got {images.dtype}")
    i = _first_bad(images)
    if i is not None:
        raise ValueError(f"image {i} of the batch has non-finite pixels (NaN or infinity)")


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode; restore each one's own flag afterwards, even on error."""
    flags = [(m, m.training) for m in module.modules()]
    try:
        module.eval()
        yield module
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Within this block no parameter of ``module`` requires a gradient and no timm block
    recomputes its forward pass in the backward one (``grad_checkpointing`` off); each flag is
    restored afterwards, even on error.

    Only input gradients are taken, so no weight needs one; and with trainable weights, a
    computation on the weights alone (Swin v2's relative-position MLP) would join the graph,
    where the attribution rules (DeepLIFT, LRP) would take it for the input's. timm checkpoints
    in eval mode too (``set_grad_checkpointing()``), and a recomputation runs without the
    rules: torch refuses it (``CheckpointError``).
    """
    flags = [p for p in module.parameters() if p.requires_grad]
    recompute = recomputing(module)
    try:
        for p in flags:
            p.requires_grad_(False)
        for m in recompute:
            m.grad_checkpointing = False
        yield module
    finally:
        for p in flags:
            p.requires_grad_(True)
        for m in recompute:
            m.grad_checkpointing = True


def _default_output(out: object) -> object:
    """A tensor as it is; the first tensor of a tuple / list; ``logits`` (else ``out``) of a
    mapping, a Hugging Face ``ModelOutput`` or a dataclass (its fields as a mapping); anything
    else as it is (for target callables)."""
    if isinstance(out, Tensor):
        return out
    fields = dataclass_fields(out)
    if fields is not None:
        out = fields
    if isinstance(out, Mapping):
        for key in ("logits", "out"):
            if isinstance(out.get(key), Tensor):
                return out[key]
        return out
    if isinstance(out, (tuple, list)):
        return next((o for o in out if isinstance(o, Tensor)), out)
    return out


def _holds_tensor(out: object) -> bool:
    if isinstance(out, Tensor):
        return True
    if isinstance(out, Mapping):
        return any(_holds_tensor(v) for v in out.values())
    if isinstance(out, (tuple, list)):
        return any(_holds_tensor(v) for v in out)
    return False


def read_output(out: object, output: Callable[[object], object] | None = None) -> object:
    """What the network returned, read once: class logits ``Tensor[B, K]`` where there are.

    ``output`` (a :class:`Classifier`'s, from ``load_model(..., output=f)``) extracts them;
    by default a tensor is taken as it is, a tuple's or list's first tensor, a mapping's,
    ``ModelOutput``'s or dataclass's ``logits`` (else ``out``); any other output (a segmentation map
    ``Tensor[B, K, H, W]``, a detector's list of dicts) is kept for target callables
    (:func:`deepinside.region_score`, :func:`deepinside.box_score`).

    Raises:
        ValueError: the output holds no tensor at all, or non-finite logits; one line naming
            its type and what would work.
    """
    got = output(out) if output is not None else _default_output(out)
    if not _holds_tensor(got):
        raise ValueError(
            f"the model returned {describe_output(got)}, which holds no tensor that a target "
            "can read: return logits Tensor[B, K] (or a tuple, mapping or ModelOutput holding "
            "them as 'logits' or 'out'), or pass load_model(..., output=f) to extract them")
    if isinstance(got, Tensor) and got.dim() >= 1:
        i = _first_bad(got)
        if i is not None:
            what = "logits" if got.dim() == 2 else "outputs"
            raise ValueError(f"the model returned non-finite {what} (NaN or infinity) for image "
                             f"{i} of the batch")
    return got


def detach_output(out: object) -> object:
    """``out`` with every tensor in it detached (tensors, lists, tuples, mappings)."""
    if isinstance(out, Tensor):
        return out.detach()
    if isinstance(out, Mapping):
        return {k: detach_output(v) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return type(out)(detach_output(v) for v in out) if isinstance(out, list) else tuple(
            detach_output(v) for v in out)
    return out


def _reader(model: Classifier | nn.Module) -> Callable[[object], object] | None:
    return model.output if isinstance(model, Classifier) else None


AMP_DTYPES = (torch.float16, torch.bfloat16)


def _autocast(x: Tensor, amp: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``amp`` on ``x``'s device, or nothing when ``amp`` is ``None``."""
    if amp is None:
        return contextlib.nullcontext()
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be None, torch.float16 or torch.bfloat16, got {amp!r}")
    return torch.autocast(device_type=x.device.type, dtype=amp)


def compile_default() -> bool:
    """Whether ``compiled=None`` means on: ``DEEPINSIDE_COMPILE`` is ``1``, ``true`` or ``yes``."""
    return os.environ.get("DEEPINSIDE_COMPILE", "").strip().lower() in {"1", "true", "yes"}


# fast copy -> its torch.compile wrapper, or None once compiling it has failed
_COMPILED: weakref.WeakKeyDictionary[nn.Module, Callable[[Tensor], object] | None] = (
    weakref.WeakKeyDictionary())


def _run_compiled(net: nn.Module, x: Tensor) -> object:
    """``net(x)`` through ``torch.compile(net)`` (made once per copy); eager if that fails."""
    if net not in _COMPILED:
        try:
            _COMPILED[net] = torch.compile(net, dynamic=False)
        except Exception as e:  # noqa: BLE001 - e.g. no compiler backend on this platform
            warnings.warn(f"torch.compile is unavailable ({e}); running eagerly", stacklevel=3)
            _COMPILED[net] = None
    run = _COMPILED[net]
    if run is None:
        return net(x)
    try:
        return run(x)
    except Exception as e:  # noqa: BLE001 - compile errors surface at the first call
        out = net(x)  # a genuine error of the model is raised here, by the eager copy
        warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); running eagerly",
                      stacklevel=3)
        _COMPILED[net] = None
        return out


@contextlib.contextmanager
def network(
    model: Classifier | nn.Module,
    example: Tensor,
    *,
    fast: bool = True,
    amp: torch.dtype | None = None,
    compiled: bool | None = None,
) -> Iterator[Callable[[Tensor], Tensor]]:
    """Within this block, a function ``logits(x Tensor[B, C, H, W]) -> Tensor[B, K]``.

    The function returns the model's output read by :func:`read_output`: the class logits
    ``Tensor[B, K]``, or, for a model without them (segmentation, detection), its output.

    The model is in eval mode for the whole block (flags restored at its end). With ``fast``,
    the function runs the private folded ``channels_last`` copy made for the device and dtype
    of ``example`` (when no safe copy can be made, e.g. the model carries hooks, the module
    itself). Gradients flow to ``x`` as usual; the copy's weights never need one.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        example: an input like those to come (device, dtype and shape of one image).
        fast: use the private copy.
        amp: ``torch.float16`` / ``torch.bfloat16``: run under ``torch.autocast`` on the
            input's device (the logits come back in the input's dtype); ``None``: no autocast.
        compiled: run the fast copy through ``torch.compile`` (eager if that fails); ``None``
            follows ``DEEPINSIDE_COMPILE``. No effect without a fast copy.
    """
    module = module_of(model)
    reader = _reader(model)
    _autocast(example, amp)  # checks amp before the model is touched
    use_compile = compile_default() if compiled is None else compiled
    with eval_mode(module), frozen(module):
        net = fast_copy(module, example) if fast else None

        def logits(x: Tensor) -> Tensor:
            with _autocast(x, amp):
                # a copy: some models scale their input in place (x.mul_(...), x /= 255),
                # which must touch neither the caller's tensor nor a gradient leaf
                if net is None:
                    out = module(x.clone())
                elif use_compile:
                    out = _run_compiled(net, x.clone(memory_format=torch.channels_last))
                else:
                    out = net(x.clone(memory_format=torch.channels_last))
            out = read_output(out, reader)
            return out if amp is None or not isinstance(out, Tensor) else out.to(x.dtype)

        yield logits


def forward_logits(
    model: Classifier | nn.Module,
    images: Tensor,
    *,
    fast: bool = True,
    amp: torch.dtype | None = None,
    compiled: bool | None = None,
) -> Tensor:
    """Logits ``Tensor[B, K]`` without gradients, in eval mode (the caller's flags restored).

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's normalised input space.
        fast: use the batch-norm-folded private copy.
        amp, compiled: see :func:`network` (off by default).
    """
    check_images(images)
    with torch.no_grad(), network(model, images, fast=fast, amp=amp,
                                  compiled=compiled) as logits:
        return logits(images.detach())


def input_gradient(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    fast: bool = True,
    score: ScoreFn | None = None,
    amp: torch.dtype | None = None,
    compiled: bool | None = None,
) -> tuple[Tensor, Tensor | ScoreFn, Tensor]:
    """Gradient of each example's class score with respect to its input, one forward pass.

    One backward pass for a target per example; for ``"top<k>"`` targets (``Tensor[B, k]``),
    one forward pass and ``k`` backward passes through the same graph.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's normalised input space.
        target: see :mod:`deepinside.targets` (names need a :class:`Classifier`).
        fast: run the private batch-norm-folded ``channels_last`` copy of the model (exact up
            to float rounding; see :mod:`deepinside.fastmodel`). ``False`` runs the module.
        score: optional map from logits ``Tensor[B, K]`` to the scores ``Tensor[B, K]`` whose
            target entries are differentiated (default: the logits themselves).
        amp: ``torch.float16`` / ``torch.bfloat16`` runs the forward and backward under
            autocast (for GPUs; not exact, see the module docstring); ``None``: off.
        compiled: run the fast copy through ``torch.compile`` (see :func:`network`).

    Returns:
        ``(gradient, targets, logits)``: ``Tensor[B, C, H, W]`` (``Tensor[B, k, C, H, W]`` for
        top-k targets), the resolved targets (``Tensor[B]`` / ``Tensor[B, k]`` of classes, or
        the target callable) and ``Tensor[B, K]``; on the device and in the dtype of
        ``images``.
    """
    check_images(images)
    x = images.detach()  # a new tensor object: the caller's keeps its requires_grad
    if fast:
        x = x.contiguous(memory_format=torch.channels_last)  # the leaf the fast copy takes as is
    with network(model, x, fast=fast, amp=amp, compiled=compiled) as logits_of, \
            torch.enable_grad():
        x.requires_grad_(True)
        logits = logits_of(x)
        t = resolve_targets(target, logits, model, batch=x.shape[0])
        s = target_scores(t, logits if score is None else score(logits), batch=x.shape[0])
        if not s.requires_grad:  # e.g. no detection overlaps the box: the score is a constant
            grad = torch.zeros_like(x) if s.dim() == 1 else torch.zeros(
                (x.shape[0], s.shape[1], *x.shape[1:]), device=x.device, dtype=x.dtype)
        elif s.dim() == 1:
            (grad,) = torch.autograd.grad(s.sum(), x)
        else:
            k = s.shape[1]
            grads = [torch.autograd.grad(s[:, j].sum(), x, retain_graph=j < k - 1)[0]
                     for j in range(k)]
            grad = torch.stack(grads, dim=1)
    grad = grad.contiguous().to(dtype=images.dtype)
    return grad, t, detach_output(logits)


_DEFAULTS: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def trace(module: nn.Module, images: Tensor) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """The layers of ``module`` and their output shapes on the first image of ``images``.

    One forward pass of the first image twice (a batch of two) in eval mode without gradients
    (flags restored); a hook per named submodule, registered for this call, records ``(name,
    submodule, output shape)`` for one image in the order the forwards finish (a module that
    runs twice appears twice). Outputs that are not tensors, or whose first dimension does not
    follow the batch (a relative-position bias table, as in Hugging Face's Swin), are left out.
    """
    traced: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    handles = []

    def hook(name: str):
        def fn(m, _args, out):
            if isinstance(out, Tensor) and out.dim() and out.shape[0] == 2:
                traced.append((name, m, (1, *out.shape[1:])))

        return fn

    try:
        for name, m in module.named_modules():
            if name:
                handles.append(m.register_forward_hook(hook(name)))
        with torch.no_grad(), eval_mode(module):
            module(torch.cat([images[:1].detach()] * 2))
    finally:
        for h in handles:
            h.remove()
    return traced


def default_layer(module: nn.Module, images: Tensor) -> str:
    """The last feature map of ``module`` on inputs like ``images``: its ``named_modules()`` name.

    :func:`trace` read by :func:`deepinside.layers.last_feature_map` (see there for the rule);
    cached per module and input shape.

    Raises:
        ValueError: the model has no layer with a spatial map.
    """
    key = tuple(images.shape[1:])
    cache = _DEFAULTS.setdefault(module, {})
    if key not in cache:
        cache[key] = last_feature_map(module, trace(module, images), images.shape[-2:])
    return cache[key]


@dataclass
class LayerCapture:
    """A layer's activations and the gradient of each image's class score with respect to them.

    Attributes:
        name: the layer's ``named_modules()`` name.
        activations: ``Tensor[B, C, h, w]`` (tokens laid on their grid without the prefix
            tokens, channels-last maps permuted: :func:`deepinside.layers.to_grid`).
        gradients: ``Tensor[B, C, h, w]``, d S_c / d activations (``None`` when captured
            without gradients).
        targets: ``Tensor[B]`` classes (or the target callable).
        logits: ``Tensor[B, K]``.
        output: the layer's output as the layer gave it (any layout), detached.
    """

    name: str
    activations: Tensor
    gradients: Tensor | None
    targets: Tensor | ScoreFn
    logits: Tensor
    output: Tensor | None = None


_SAME_LAYER: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _layer_output(net: nn.Module, name: str, x: Tensor) -> Tensor | None:
    out: list[Tensor] = []
    handle = net.get_submodule(name).register_forward_hook(
        lambda _m, _a, o: out.append(o.detach()) if isinstance(o, Tensor) else None)
    try:
        with torch.no_grad():
            net(x.clone())  # a model may scale its input in place
    finally:
        handle.remove()
    return out[-1] if out else None


def _net_for_layer(module: nn.Module, name: str, images: Tensor, fast: bool) -> nn.Module:
    """The private fast copy if the layer's output is the same there, else the module itself.

    Folding a batch norm into a convolution changes the output of any layer that holds the
    convolution but not the batch norm; whether it does is checked once per copy and layer, on
    a random input, and remembered.
    """
    if not fast:
        return module
    net = fast_copy(module, images)
    if net is None:
        return module
    try:
        net.get_submodule(name)
    except AttributeError:
        return module  # e.g. a child of a batch norm that folding replaced
    same = _SAME_LAYER.setdefault(net, {})
    if name not in same:
        probe = torch.randn((1, *images.shape[1:]), generator=torch.Generator().manual_seed(0))
        probe = probe.to(device=images.device, dtype=images.dtype)
        a = _layer_output(module, name, probe)
        b = _layer_output(net, name, probe.contiguous(memory_format=torch.channels_last))
        same[name] = (a is not None and b is not None and a.shape == b.shape
                      and bool(torch.allclose(a, b, rtol=1e-3,
                                              atol=1e-3 * float(a.abs().max()) + 1e-6)))
    return net if same[name] else module


def capture_layer(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    layer: Layer = None,
    fast: bool = True,
    gradients: bool = True,
) -> LayerCapture:
    """One forward and one backward pass (down to the layer only) for a batch.

    The layer's output is handed to the rest of the network as a copy of a fresh leaf tensor
    (a forward hook registered for this call only); the gradient of the class scores is taken
    with respect to that leaf, so the backward pass stops at the layer and computes no weight
    gradient (pytorch-grad-cam's ``activations_and_gradients.py`` without its module hooks).

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: one class per example (see :mod:`deepinside.targets`; not ``"top<k>"``).
        layer: ``None`` (:func:`default_layer`), a ``named_modules()`` name,
            a glob pattern, or a submodule.
        fast: use the batch-norm-folded private copy when the layer's output is unchanged there.
        gradients: ``False``: the forward pass only (``gradients`` is ``None``).

    Raises:
        ValueError: the layer cannot give a map (its output is not a spatial map of each
            image, or the class scores reach it only through prefix tokens); the message names
            the layer, its output's shape, why, and the default layer.
    """
    check_images(images)
    module = module_of(model)
    x = images.detach()
    with eval_mode(module), frozen(module):
        name = default_layer(module, x) if layer is None else find_layer(module, layer)
        net = _net_for_layer(module, name, x, fast)
        if net is not module:
            x = x.contiguous(memory_format=torch.channels_last)
        leaves: list[Tensor] = []

        def hook(_m, _args, out):
            if not isinstance(out, Tensor):
                raise ValueError(f"layer {name!r} returns {type(out).__name__}, not a tensor; "
                                 "pass layer= one of its submodules (or another layer)")
            leaf = out.detach().requires_grad_(True)
            leaves.append(leaf)
            return leaf.clone()  # later in-place operations must not touch the leaf

        handle = net.get_submodule(name).register_forward_hook(hook)
        try:
            with torch.set_grad_enabled(gradients):
                logits = read_output(net(x.clone()), _reader(model))  # see network()
                if not leaves:
                    raise ValueError(f"layer {name!r} did not run in the forward pass")
                t = resolve_targets(target, logits, model, batch=x.shape[0])
                s = target_scores(t, logits, batch=x.shape[0])
                if s.dim() != 1:
                    raise ValueError("layer methods explain one target per image; for top-k "
                                     "use deepinside.photo_maps (it repeats the images)")
                act, grad = leaves[-1], None
                if gradients:  # a constant score (no detection on the box): zero gradient
                    (grad,) = (torch.autograd.grad(s.sum(), act, allow_unused=True)
                               if s.requires_grad else (torch.zeros_like(act),))
        finally:
            handle.remove()
    output = act.detach()
    grid = {"layer": name, "image_size": tuple(images.shape[-2:]), "batch": images.shape[0]}
    try:
        act = to_grid(net, output, **grid)
    except ValueError as e:
        raise ValueError(f"{e}; {_layer_hint(module, x, name)}") from None
    grad = _grid_gradient(net, module, x, name, grad, grid) if gradients else None
    return LayerCapture(name, act.contiguous().to(images.dtype),
                        grad.contiguous().to(images.dtype) if grad is not None else None,
                        t, detach_output(logits), output)


def _grid_gradient(net: nn.Module, module: nn.Module, x: Tensor, name: str,
                   grad: Tensor | None, grid: dict) -> Tensor:
    """The layer's gradient on the grid; an error if the scores do not reach its map."""
    if grad is None:
        raise ValueError(f"the class scores do not depend on layer {name!r}")
    on_grid = to_grid(net, grad, **grid)
    if grad.dim() == 3 and bool((grad != 0).any()) and not bool((on_grid != 0).any()):
        raise ValueError(
            f"the class scores depend on layer {name!r} only through its class (prefix) "
            f"tokens: the gradient on its patch tokens is zero, so its map would be empty; "
            f"{_layer_hint(module, x, name)}")
    return on_grid


@contextlib.contextmanager
def layer_replaced(
    model: Classifier | nn.Module, example: Tensor, layer: str
) -> Iterator[Callable[[Tensor, Tensor], Tensor]]:
    """Within this block, ``logits(x, output) -> Tensor[n, K]``: the network on ``x`` with
    ``layer``'s output replaced by ``output`` (``n`` rows: the part above the layer runs on
    them, whatever the batch of ``x``).

    The module itself runs (a forward hook on the caller's layer, registered for the block
    and removed at its end), in eval mode, without gradients. For Ablation-CAM's passes.

    Raises:
        ValueError: the layer returns no tensor.
    """
    module = module_of(model)
    replace: list[Tensor] = []

    def hook(_m, _args, out):
        if not isinstance(out, Tensor):
            raise ValueError(f"layer {layer!r} returns {type(out).__name__}, not a tensor")
        return replace[0] if replace else None

    with network(model, example, fast=False) as logits_of, torch.no_grad():
        handle = module.get_submodule(layer).register_forward_hook(hook)
        try:

            def logits(x: Tensor, output: Tensor) -> Tensor:
                replace[:] = [output]
                try:
                    return logits_of(x)
                finally:
                    replace.clear()

            yield logits
        finally:
            handle.remove()


class _Unshift(nn.Module):
    """``net(x - shift)``: the network that sees shifted inputs as the original saw them."""

    def __init__(self, net: nn.Module, shift: float) -> None:
        super().__init__()
        self.net = net
        self.shift = shift

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x - self.shift)


def shift_undone(model: Classifier | nn.Module, shift: float) -> Classifier | nn.Module:
    """A model that gives on ``x + shift`` what ``model`` gives on ``x`` (a wrapper around the
    same module, ``net(x - shift)``; a Classifier keeps its classes and preprocessing).

    Kindermans et al. 2019 (https://arxiv.org/abs/1711.00867) fold the shift into the first
    layer's bias; this is what that folding computes where it is exact, for any first layer.
    For the input-invariance metric.
    """
    wrapper = _Unshift(module_of(model), float(shift))
    if isinstance(model, Classifier):
        return dataclasses.replace(model, module=wrapper)
    return wrapper


def _layer_hint(module: nn.Module, images: Tensor, name: str) -> str:
    """``pass layer=...``, naming the default layer when it is another one."""
    try:
        default = default_layer(module, images)
    except ValueError:
        return "pass layer= a layer with a spatial feature map"
    if default == name:
        return "pass layer= another layer with a spatial feature map"
    return f"pass layer= a layer with a spatial feature map, e.g. {default!r} (the default)"


class _Enough(Exception):
    """Raised by a hook once every wanted layer has run and the logits are not needed."""


@contextlib.contextmanager
def layer_network(
    model: Classifier | nn.Module,
    example: Tensor,
    layers: Sequence[Layer],
    *,
    fast: bool = True,
    logits: bool = True,
) -> Iterator[Callable[[Tensor], tuple[object, dict[str, Tensor]]]]:
    """Within this block, ``f(x) -> (logits, {layer: Tensor[B, C, h, w]})`` with gradients.

    As :func:`network`, and the outputs of ``layers`` as grids (:func:`~deepinside.layers.
    to_grid`: tokens on the patch grid, channels-last maps permuted), still attached to the
    graph, so that an objective on them can be differentiated with respect to ``x``. Hooks
    are registered for the block and removed at its end. With ``logits=False`` the forward
    pass stops as soon as every layer has run (the logits are ``None``): a shallow unit costs
    a shallow pass.

    Args:
        model: a :class:`Classifier` or an ``nn.Module``.
        example: an input like those to come.
        layers: names, glob patterns or submodules; the dict is keyed by them as given.
        fast: the private folded copy when every layer's output is the same there.
        logits: whether the logits are needed.

    Raises:
        ValueError: a layer matches nothing, or its output is not a spatial map of each image
            (the message names it and why).
    """
    module = module_of(model)
    reader = _reader(model)
    with eval_mode(module), frozen(module):
        names = {key: find_layer(module, key) for key in layers}
        net = module
        if fast and names:
            nets = {_net_for_layer(module, n, example, fast) for n in names.values()}
            net = nets.pop() if len(nets) == 1 else module
        elif fast:
            net = fast_copy(module, example) or module
        wanted = set(names.values())
        seen: dict[str, Tensor] = {}

        def hook_for(name: str):
            def hook(_m, _args, out):
                if not isinstance(out, Tensor):
                    raise ValueError(f"layer {name!r} returns {type(out).__name__}, not a "
                                     "tensor; name one of its submodules")
                seen[name] = out
                if not logits and wanted <= seen.keys():
                    raise _Enough

            return hook

        handles = [net.get_submodule(n).register_forward_hook(hook_for(n)) for n in wanted]
        try:

            def run(x: Tensor) -> tuple[object, dict[str, Tensor]]:
                seen.clear()
                xin = x.clone() if net is module else x.clone(  # see network()
                    memory_format=torch.channels_last)
                out = None
                with contextlib.suppress(_Enough):
                    out = read_output(net(xin), reader)
                missing = wanted - seen.keys()
                if missing:
                    raise ValueError(f"layer {sorted(missing)[0]!r} did not run in the forward "
                                     "pass")
                grids = {key: to_grid(net, seen[n], layer=n, image_size=tuple(x.shape[-2:]),
                                      batch=x.shape[0]) for key, n in names.items()}
                return out, grids

            yield run
        finally:
            for h in handles:
                h.remove()
