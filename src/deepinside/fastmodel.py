"""A private, faster copy of a frozen model for input gradients.

Attribution needs only gradients with respect to the input, never with respect to the weights,
and the model is evaluated in eval mode. That allows exact rewrites that a training framework
cannot make:

- batch normalisation in eval mode is an affine map, folded into the convolution before it;
- weights that never need a gradient do not make autograd keep their inputs;
- ``channels_last`` memory format, which oneDNN convolutions on the CPU prefer;
- in-place activations (``ReLU6(inplace=True)``) run out of place: autograd must clone the
  input of an in-place activation whose backward needs it, which costs a copy per activation
  (on efficientnet_lite0 at batch 16 on a loaded 2-core CPU, 0.46x instead of 0.49x of the
  naive saliency time, median of six interleaved A/B runs; faster in five of them).

The caller's module is never touched: the rewrites are made on a deep copy, cached per module,
device and dtype, and rebuilt when a parameter or buffer of the original changes (in-place
updates bump a tensor's version counter). A rewrite is kept only if the copy's outputs match the
original's on a random input; otherwise the plain copy is used.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from collections import Counter
from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["fast_copy", "fold_batchnorm", "has_hooks", "out_of_place", "same_output"]

_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def has_hooks(module: nn.Module) -> bool:
    """Whether any submodule carries forward or backward hooks (a copy would run them too)."""
    for m in module.modules():
        for attr in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
        ):
            if getattr(m, attr, None):
                return True
    return False


def _fingerprint(module: nn.Module) -> tuple:
    """Changes when a weight is updated in place or replaced, or a submodule is swapped."""
    tensors = tuple(
        (name, t.data_ptr(), t._version, tuple(t.shape), t.dtype, t.device)
        for name, t in (*module.named_parameters(), *module.named_buffers())
    )
    return tensors, tuple((name, id(m)) for name, m in module.named_modules())


def fast_copy(module: nn.Module, example: Tensor) -> nn.Module | None:
    """A frozen, eval-mode, batch-norm-folded, ``channels_last`` copy of ``module``.

    Args:
        module: the caller's model (left untouched).
        example: an input ``Tensor[B, C, H, W]``; the copy lives on its device and dtype and
            the rewrite is checked on a random tensor of its shape.

    Returns:
        The cached copy, or ``None`` when no safe copy can be made (hooks on the module, a
        module that cannot be deep-copied); then the caller should use the module itself.
    """
    if has_hooks(module):
        return None
    key = (example.device, example.dtype)
    fp = _fingerprint(module)
    entries = _CACHE.setdefault(module, {})
    hit = entries.get(key)
    if hit is not None and hit[0] == fp:
        return hit[1]  # the copy, or None: no safe copy of this module
    try:
        net = copy.deepcopy(module)
    except Exception:  # noqa: BLE001 - e.g. modules holding unpicklable state
        return None
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    for m in recomputing(net):
        m.grad_checkpointing = False
    net = net.to(device=example.device, dtype=example.dtype)
    if example.dim() == 4:
        probe = torch.randn(
            (1, *example.shape[1:]),
            generator=torch.Generator().manual_seed(0),
            dtype=torch.float32,
        ).to(device=example.device, dtype=example.dtype)
        try:
            net = fold_batchnorm(net, probe)
            net = out_of_place(net, probe)
            net = net.to(memory_format=torch.channels_last)
        except Exception:  # noqa: BLE001 - a model the rewrites cannot probe: run it as it is
            entries[key] = (fp, None)
            return None
    entries[key] = (fp, net)
    return net


def recomputing(module: nn.Module) -> list[nn.Module]:
    """The submodules that recompute their forward pass in the backward one: timm's
    ``grad_checkpointing``, set by ``set_grad_checkpointing()`` and active in eval mode too."""
    return [m for m in module.modules() if getattr(m, "grad_checkpointing", None) is True]


def dataclass_fields(out: object) -> dict[str, object] | None:
    """A dataclass instance's fields by name; ``None`` for anything else, a Hugging Face
    ``ModelOutput`` included (a dataclass that is already a mapping)."""
    if dataclasses.is_dataclass(out) and not isinstance(out, (type, Mapping)):
        return {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
    return None


def _tensors(out: object) -> list[Tensor] | None:
    """The tensors of an output (a tensor, nested tuples / lists / mappings such as a Hugging
    Face ``ModelOutput`` / dataclasses), in order; ``None`` if it holds anything else."""
    if isinstance(out, Tensor):
        return [out]
    fields = dataclass_fields(out)
    if fields is not None:
        out = fields
    items = list(out.values()) if isinstance(out, Mapping) else (
        list(out) if isinstance(out, (tuple, list)) else None)
    if items is None:
        return None
    found: list[Tensor] = []
    for item in items:
        sub = _tensors(item)
        if sub is None:
            return None
        found += sub
    return found


def same_output(out: object, reference: object, rtol: float) -> bool:
    """Whether two outputs hold tensors of the same shapes, equal within ``rtol`` of the
    reference's largest magnitude (any output: tensors, tuples, mappings, ``ModelOutput``)."""
    a, b = _tensors(out), _tensors(reference)
    if a is None or b is None or len(a) != len(b) or not b:
        return False
    for x, y in zip(a, b):
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if not x.is_floating_point():
            if not torch.equal(x, y):
                return False
            continue
        if x.numel() and float((x - y).abs().max()) > rtol * float(y.abs().max()) + 1e-6:
            return False
    return True


def _conv_bn_pairs(net: nn.Module, probe: Tensor) -> list[tuple[str, str]]:
    """(conv name, batch-norm name) where the BN's input is exactly that conv's output."""
    modules = dict(net.named_modules())
    outputs: dict[int, tuple[str, Tensor]] = {}
    calls: Counter[str] = Counter()
    pairs: list[tuple[str, str]] = []
    handles = []

    def conv_hook(name):
        def hook(_m, _args, out):
            calls[name] += 1
            outputs[id(out)] = (name, out)

        return hook

    def bn_hook(name):
        def hook(_m, args):
            calls[name] += 1
            src = outputs.get(id(args[0]))
            if src is not None and src[1] is args[0]:
                pairs.append((src[0], name))

        return hook

    try:
        for name, m in modules.items():
            if isinstance(m, nn.Conv2d):  # subclasses (timm's Conv2dSame) too: checked below
                handles.append(m.register_forward_hook(conv_hook(name)))
            elif isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
                handles.append(m.register_forward_pre_hook(bn_hook(name)))
        with torch.no_grad():
            net(probe.clone())  # a model may scale its input in place
    finally:
        for h in handles:
            h.remove()
    used = Counter(c for c, _ in pairs)
    return [(c, b) for c, b in pairs if calls[c] == 1 and calls[b] == 1 and used[c] == 1]


def _replace(net: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    setattr(parent, child, new)


def fold_batchnorm(net: nn.Module, probe: Tensor, rtol: float = 1e-3) -> nn.Module:
    """Fold eval-mode batch norms into the convolutions that feed them, in place on ``net``.

    Only pairs where the normalisation's input is exactly the convolution's output, each module
    called once per forward, are folded. The result is kept only if its output on ``probe``
    matches the unfolded output within ``rtol`` of its largest magnitude; otherwise an
    unfolded copy is returned.

    Args:
        net: a private copy of a model (it is modified).
        probe: an input ``Tensor[1, C, H, W]`` of the right shape.
    """
    pairs = _conv_bn_pairs(net, probe)
    if not pairs:
        return net
    with torch.no_grad():
        reference = net(probe.clone())  # a model may scale its input in place
    backup = copy.deepcopy(net)
    with torch.no_grad():
        for conv_name, bn_name in pairs:
            conv = net.get_submodule(conv_name)
            bn = net.get_submodule(bn_name)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else (
                1.0 / torch.sqrt(bn.running_var + bn.eps)
            )
            shift = -bn.running_mean * scale
            if bn.affine:
                shift = shift + bn.bias
            w = conv.weight * scale.view(-1, *([1] * (conv.weight.dim() - 1)))
            b = shift if conv.bias is None else conv.bias * scale + shift
            conv.weight = nn.Parameter(w, requires_grad=False)
            conv.bias = nn.Parameter(b, requires_grad=False)
            _replace(net, bn_name, _after_batchnorm(bn))
        out = net(probe.clone())
    return net if same_output(out, reference, rtol) else backup


def out_of_place(net: nn.Module, probe: Tensor, rtol: float = 1e-5) -> nn.Module:
    """Turn off the ``inplace`` flag of every submodule that has one, in place on ``net``.

    In-place activations save little when the input gradient is wanted: autograd clones their
    input first (``aten::clone`` under ``aten::hardtanh_`` in a profile). Out of place, the
    peak memory of a saliency call on efficientnet_lite0 at batch 16 rises by about 5%
    (867 to 905-917 MiB). The rewrite is undone if the output on ``probe`` changes (a module
    that relied on the aliasing).

    Args:
        net: a private copy of a model (it is modified).
        probe: an input ``Tensor[1, C, H, W]`` of the right shape.
    """
    flagged = [m for m in net.modules() if getattr(m, "inplace", None) is True]
    if not flagged:
        return net
    with torch.no_grad():
        reference = net(probe.clone())  # an in-place first layer would change the probe
        for m in flagged:
            m.inplace = False
        out = net(probe.clone())
    if not same_output(out, reference, rtol):
        for m in flagged:
            m.inplace = True
    return net


def _after_batchnorm(bn: nn.BatchNorm2d) -> nn.Module:
    """What is left of a batch norm once its affine map is folded away."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    drop, act = getattr(bn, "drop", None), getattr(bn, "act", None)
    if type(bn).__name__ == "BatchNormAct2d" and isinstance(drop, nn.Module) and isinstance(
        act, nn.Module
    ):
        return nn.Sequential(drop, act)  # timm: normalise, then drop, then activate
    # Unknown subclass: keep it, as an identity normalisation.
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)
    if bn.affine:
        bn.weight.fill_(1.0)
        bn.bias.zero_()
    return bn
