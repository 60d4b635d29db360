"""The engine, the only place a network is called: eval mode, fast copy, gradients, layers."""

from __future__ import annotations

import inspect

import pytest
import torch
from models import Exploding, TinyFeatures, make_tiny, tiny_classifier

from deepinside.engine import (
    capture_layer,
    eval_mode,
    forward_logits,
    input_gradient,
    network,
)
from deepinside.fastmodel import fast_copy
from deepinside.targets import class_score


def _flags(m):
    return [(n, x.training) for n, x in m.named_modules()]


@pytest.mark.parametrize("fast", [False, True])
def test_forward_logits_no_grad_and_flags_restored(fast):
    model = make_tiny().train()
    model.bn1.eval()  # a mixed state must come back exactly
    before = _flags(model)
    x = torch.randn(3, 3, 8, 8, requires_grad=True)
    out = forward_logits(model, x, fast=fast)
    assert not out.requires_grad and out.shape == (3, 5)
    assert _flags(model) == before and x.grad is None
    with torch.no_grad(), eval_mode(model):
        torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-5)
    assert _flags(model) == before


def test_network_context_checks_logits_and_restores_on_error():
    model = Exploding().train()
    before = _flags(model)
    with pytest.raises(RuntimeError, match="boom"), network(model, torch.zeros(1, 3, 8, 8)) as f:
        f(torch.zeros(1, 3, 8, 8))
    assert _flags(model) == before
    # a map Tensor[B, 3, H, W] is an output for target callables; a class target says so
    with pytest.raises(ValueError, match=r"top-1 class .* needs class logits Tensor\[B, K\], "
                       r"but the model returns Tensor\[1, 3, 4, 4\]"):
        input_gradient(torch.nn.Identity(), torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize("fast", [False, True])
def test_top_k_gradients_from_one_forward_equal_one_class_at_a_time(fast):
    model = make_tiny()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1)) if not fast else None
    grad, t, logits = input_gradient(model, x, "top3", fast=fast)
    if handle is not None:
        handle.remove()
        assert len(calls) == 1  # one forward pass for the three classes
    assert grad.shape == (2, 3, 3, 8, 8) and t.shape == (2, 3)
    assert t.tolist() == logits.topk(3).indices.tolist()
    for j in range(3):
        one, _, _ = input_gradient(model, x, t[:, j], fast=fast)
        torch.testing.assert_close(grad[:, j], one, rtol=1e-5, atol=1e-6)


def test_callable_target_is_the_gradient_of_its_score():
    model = make_tiny(dtype=torch.float64)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    g, t, _ = input_gradient(model, x, class_score([1, 4], weights=[2.0, -1.0]), fast=False)
    g1, _, _ = input_gradient(model, x, 1, fast=False)
    g4, _, _ = input_gradient(model, x, 4, fast=False)
    torch.testing.assert_close(g, 2 * g1 - g4)
    assert callable(t)


def test_capture_layer_leaves_no_hook_and_refuses_top_k():
    clf = tiny_classifier()
    x = torch.randn(2, 3, 32, 32)
    cap = capture_layer(clf, x, [1, 2], layer="features.3")
    assert cap.name == "features.3" and cap.activations.shape == cap.gradients.shape
    assert cap.targets.tolist() == [1, 2]
    with pytest.raises(ValueError, match="one target per image"):
        capture_layer(clf, x, "top2")
    with pytest.raises(ValueError, match="no layer of the model matches"):
        capture_layer(clf, x, layer="featurez.9")
    assert not any(m._forward_hooks for m in clf.module.modules())


def test_capture_layer_gradient_by_hand():
    # logits = head(mean(features(x))): dS_c/dA = w_c / (h * w) at every position
    net = TinyFeatures().eval()
    x = torch.randn(1, 3, 32, 32)
    cap = capture_layer(net, x, 2, layer="features", fast=False)
    h, w = cap.activations.shape[-2:]
    expect = (net.head.weight[2] / (h * w)).view(1, -1, 1, 1).expand_as(cap.gradients)
    torch.testing.assert_close(cap.gradients, expect.detach())


def test_non_finite_inputs_and_logits_are_errors_that_name_the_image():
    import deepinside

    model = make_tiny()
    x = torch.randn(3, 3, 8, 8)
    x[2, 1, 4, 4] = float("nan")
    for fn in (deepinside.saliency, forward_logits, lambda m, i: input_gradient(m, i)):
        with pytest.raises(ValueError, match="image 2 of the batch has non-finite pixels"):
            fn(model, x)
    x[2] = 0.0
    x[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="image 1"):
        deepinside.get_method("gradcam")(model, x)

    class Overflow(torch.nn.Module):
        def forward(self, z):
            out = z.flatten(1)[:, :4] * 1e39  # inf in float32 for the second image
            out[0] = 0.0
            return out

    with pytest.raises(ValueError, match="non-finite logits .* image 1"):
        forward_logits(Overflow(), torch.ones(2, 3, 4, 4))


def test_a_layer_holding_a_folded_convolution_but_not_its_batch_norm_runs_unfolded():
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)), nn.BatchNorm2d(4),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 8, 8)
    fast = capture_layer(net, x, 0, layer="0", fast=True)
    slow = capture_layer(net, x, 0, layer="0", fast=False)
    torch.testing.assert_close(fast.activations, slow.activations)
    torch.testing.assert_close(fast.gradients, slow.gradients)


@pytest.mark.parametrize("fast", [False, True])
def test_amp_bf16_on_cpu_is_close_and_keeps_the_input_dtype(fast):
    """bf16 autocast (what ``amp`` does on a GPU, here on the CPU) runs and stays close, but
    not within the exactness tolerance: ReLU kinks flip at bf16 rounding, so single pixels move
    by up to half the map's maximum (seeds 0-4: 99th percentile 2-20%). Asserted here: a
    correlation above 0.95 with the float32 gradient."""
    model = make_tiny()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    exact, t, _ = input_gradient(model, x, [0, 2, 4], fast=fast)
    grad, _, logits = input_gradient(model, x, t, fast=fast, amp=torch.bfloat16)
    assert grad.dtype == logits.dtype == torch.float32
    corr = torch.corrcoef(torch.stack([grad.flatten(), exact.flatten()]))[0, 1]
    assert float(corr) > 0.95
    with pytest.raises(ValueError, match="amp"):
        input_gradient(model, x, t, amp=torch.float64)
    out = forward_logits(model, x, amp=torch.bfloat16, fast=fast)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, forward_logits(model, x, fast=fast), rtol=0.05, atol=0.05)


def test_compiled_falls_back_to_eager_when_torch_compile_fails(monkeypatch):
    import deepinside.engine as engine

    model = make_tiny()
    x = torch.randn(2, 3, 8, 8)
    exact, _, _ = input_gradient(model, x, 1)

    def broken_at_call(net, **_kw):
        def run(_x):
            raise RuntimeError("no C++ compiler")
        return run

    for fake in (broken_at_call, lambda net, **_kw: (_ for _ in ()).throw(RuntimeError("x"))):
        engine._COMPILED.clear()
        monkeypatch.setattr(torch, "compile", fake)
        with pytest.warns(UserWarning, match="eager"):
            grad, _, _ = input_gradient(model, x, 1, compiled=True)
        torch.testing.assert_close(grad, exact)
        grad, _, _ = input_gradient(model, x, 1, compiled=True)  # remembered: no retry
    engine._COMPILED.clear()


def test_compiled_copy_is_made_once_and_used(monkeypatch):
    import deepinside.engine as engine

    engine._COMPILED.clear()
    made = []

    def fake_compile(net, **kw):
        made.append(kw)
        return net  # an identity "compiler": the path, not inductor, is under test

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setenv("DEEPINSIDE_COMPILE", "1")
    model = make_tiny()
    x = torch.randn(2, 3, 8, 8)
    for _ in range(2):
        input_gradient(model, x, 1)  # compiled=None follows the environment
    assert made == [{"dynamic": False}]
    input_gradient(model, x, 1, compiled=False)
    assert len(made) == 1
    engine._COMPILED.clear()


@pytest.mark.slow
def test_real_torch_compile_gives_the_eager_gradient():
    """Inductor itself (needs a C++ compiler; seconds to minutes the first time)."""
    import deepinside.engine as engine

    model = make_tiny()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    exact, _, _ = input_gradient(model, x, 1)
    for _ in range(2):  # the second call reuses the compiled copy
        grad, _, _ = input_gradient(model, x, 1, compiled=True)
        torch.testing.assert_close(grad, exact, rtol=1e-5, atol=1e-6)
    ran_compiled = any(v is not None for v in engine._COMPILED.values())
    engine._COMPILED.clear()
    if not ran_compiled:
        pytest.skip("torch.compile failed here; the eager fallback gave the gradient")


# ----------------------------------------------------------------------------- trace, layers


def test_trace_lists_each_layer_with_its_output_shape_in_the_order_forwards_finish():
    from deepinside.engine import trace

    net = make_tiny()
    net.train()
    x = torch.randn(3, 3, 8, 8)
    traced = trace(net, x)
    assert [(n, s) for n, _, s in traced] == [
        ("conv1", (1, 6, 8, 8)), ("bn1", (1, 6, 8, 8)), ("relu", (1, 6, 8, 8)),
        ("pool", (1, 6, 4, 4)), ("conv2", (1, 8, 4, 4)), ("bn2", (1, 8, 4, 4)),
        ("act2", (1, 8, 4, 4)), ("fc", (1, 5))]
    assert all(m is net.get_submodule(n) for n, m, _ in traced)
    assert net.training and not any(m._forward_hooks for m in net.modules())


def test_default_layer_reads_the_trace_and_the_old_name_still_works():
    import deepinside.layers as layers
    from deepinside.engine import default_layer

    net = make_tiny()
    x = torch.randn(1, 3, 8, 8)
    assert default_layer(net, x) == "act2"  # the last spatial map (fc's output is not one)
    with pytest.warns(DeprecationWarning, match="deepinside.engine.default_layer"):
        old = layers.default_layer
    assert old is default_layer


def test_layer_replaced_runs_the_part_above_the_layer_on_the_given_output():
    from deepinside.engine import layer_replaced

    net = make_tiny()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        a = net.act2(net.bn2(net.conv2(net.pool(net.relu(net.bn1(net.conv1(x[:1])))))))
    replaced = torch.cat([a, torch.zeros_like(a), 2 * a])  # three rows from one image
    with layer_replaced(net, x[:1], "act2") as logits_of:
        out = logits_of(x[:1], replaced)
    torch.testing.assert_close(out, net.fc(replaced.mean(dim=(2, 3))))
    assert not any(m._forward_hooks for m in net.modules())


class _ScalesInPlace(torch.nn.Module):
    """A network that scales its input in place first (``x.mul_(2)``, as models that
    normalise with ``x.sub_(mean).div_(std)`` or ``x /= 255``), or out of place."""

    def __init__(self, in_place: bool) -> None:
        super().__init__()
        self.in_place = in_place
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        x = x.mul_(2.0) if self.in_place else x * 2.0
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


@pytest.mark.parametrize("fast", [False, True])
def test_a_model_that_scales_its_input_in_place(fast):
    """Every method gives the map of the same network written out of place, and the caller's
    images are left alone (the network gets a copy; a gradient leaf cannot be modified in
    place, and the CAM methods' forward pass modified the caller's tensor)."""
    from deepinside.methods import get_method, list_methods

    torch.manual_seed(0)
    net, plain = _ScalesInPlace(True).eval(), _ScalesInPlace(False).eval()
    plain.load_state_dict(net.state_dict())
    x = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    x0 = x.clone()
    opts = {"samples": 2, "steps": 2, "masks": 8, "iterations": 2, "window": 4, "stride": 4}
    for name in sorted(list_methods()):
        fn = get_method(name)
        params = inspect.signature(fn).parameters
        kw = {k: v for k, v in opts.items() if k in params}
        if "fast" in params:
            kw["fast"] = fast
        got = fn(net, x, torch.tensor([0, 2]), **kw)
        assert torch.equal(x, x0), name
        torch.testing.assert_close(got, fn(plain, x, torch.tensor([0, 2]), **kw), msg=name)
    torch.testing.assert_close(forward_logits(net, x, fast=fast), forward_logits(plain, x))
    assert torch.equal(x, x0)
    with eval_mode(net):  # the batch norm is folded: the probes are copies too
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast_copy(net, x).modules())


def test_a_timm_model_with_gradient_checkpointing_gives_the_same_maps():
    """timm checkpoints blocks in eval mode too (set_grad_checkpointing()); recomputed in the
    backward pass without the methods' rules, torch refused them (CheckpointError). The engine
    switches it off for a call (and back on): the maps of the plain model, flags kept."""
    import copy

    timm = pytest.importorskip("timm")
    from deepinside.methods import get_method

    torch.manual_seed(0)
    for name, size in (("resnet18", 32), ("vit_tiny_patch16_224", 32)):
        kw = {"img_size": size, "depth": 2} if name.startswith("vit") else {}
        plain = timm.create_model(name, pretrained=False, num_classes=10, **kw).eval()
        ckpt = copy.deepcopy(plain)
        ckpt.set_grad_checkpointing(True)
        flags = [n for n, m in ckpt.named_modules() if getattr(m, "grad_checkpointing", 0)]
        x = torch.randn((2, 3, size, size), generator=torch.Generator().manual_seed(1))
        for method in ("guided_backprop", "deconvnet", "lrp", "deeplift", "gradcam"):
            for fast in (True, False):
                torch.testing.assert_close(get_method(method)(ckpt, x, 1, fast=fast),
                                           get_method(method)(plain, x, 1, fast=fast),
                                           msg=f"{name} {method} fast={fast}")
        assert flags and flags == [n for n, m in ckpt.named_modules()
                                   if getattr(m, "grad_checkpointing", 0)]
