"""The paper's saliency map (section 3.1): exactness, batching, no side effects, oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import Exploding, make_tiny
from torch import nn

import deepinside
from deepinside.engine import input_gradient
from deepinside.ops import reduce_channels
from deepinside.targets import resolve_targets


def numerical_gradient(model: nn.Module, x: torch.Tensor, c: int, eps: float = 1e-6):
    g = torch.zeros_like(x)
    flat = x.reshape(-1)
    with torch.no_grad():
        for i in range(flat.numel()):
            xp, xm = flat.clone(), flat.clone()
            xp[i] += eps
            xm[i] -= eps
            fp = model(xp.view_as(x))[0, c]
            fm = model(xm.view_as(x))[0, c]
            g.view(-1)[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize("fast", [False, True])
def test_matches_finite_differences(fast):
    model = make_tiny(dtype=torch.float64)
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for c in (0, 3):
        expected = numerical_gradient(model, x, c).abs().amax(dim=1)
        got = deepinside.saliency(model, x, c, fast=fast)
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_linear_model_map_is_max_abs_weight():
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 5, 7))
    x = torch.randn(2, 3, 4, 5)
    m = deepinside.saliency(lin, x, [2, 6])
    w = lin[1].weight.detach().view(7, 3, 4, 5)
    torch.testing.assert_close(m[0], w[2].abs().amax(0))
    torch.testing.assert_close(m[1], w[6].abs().amax(0))


def test_logit_not_softmax():
    """S_c is the unnormalised score: the map of a linear model ignores the other classes."""
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.randn(1, 3, 2, 2)
    g, _, _ = input_gradient(lin, x, 1)
    torch.testing.assert_close(g.view(-1), lin[1].weight[1].detach())


@pytest.mark.parametrize("fast", [False, True])
def test_batch_equals_one_by_one(tiny, fast):
    x = torch.randn(5, 3, 16, 16)
    targets = [0, 4, 2, 2, 1]
    batch = deepinside.saliency(tiny, x, targets, fast=fast)
    single = torch.cat([deepinside.saliency(tiny, x[i : i + 1], t, fast=fast)
                        for i, t in enumerate(targets)])
    torch.testing.assert_close(batch, single, rtol=1e-5, atol=1e-6)
    # top-1 targets by default: the same as asking for the argmax explicitly
    top1 = tiny(x).argmax(1)
    torch.testing.assert_close(deepinside.saliency(tiny, x, fast=fast),
                               deepinside.saliency(tiny, x, top1, fast=fast))


def test_fast_copy_follows_weight_changes(tiny):
    x = torch.randn(2, 3, 16, 16)
    before = deepinside.saliency(tiny, x, 1)
    with torch.no_grad():
        tiny.conv1.weight.mul_(-2.0)  # an in-place update, as an optimiser step makes
    after = deepinside.saliency(tiny, x, 1)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, deepinside.saliency(tiny, x, 1, fast=False),
                               rtol=1e-5, atol=1e-6)


def _state(model: nn.Module):
    return (
        [(n, p.requires_grad, None if p.grad is None else p.grad.clone())
         for n, p in model.named_parameters()],
        [(n, m.training) for n, m in model.named_modules()],
        {k: v.clone() for k, v in model.state_dict().items()},
        [(n, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
         for n, m in model.named_modules()],
    )


def _assert_same_state(a, b):
    assert [x[:2] for x in a[0]] == [x[:2] for x in b[0]]
    for (_, _, ga), (_, _, gb) in zip(a[0], b[0]):
        assert (ga is None and gb is None) or torch.equal(ga, gb)
    assert a[1] == b[1] and a[3] == b[3]
    assert all(torch.equal(a[2][k], b[2][k]) for k in a[2])


@pytest.mark.parametrize("fast", [False, True])
def test_no_side_effects(tiny, fast):
    tiny.train()  # the caller's model in training mode, with a mixed requires_grad
    tiny.bn2.eval()
    tiny.conv2.weight.requires_grad_(False)
    tiny.fc.weight.grad = torch.ones_like(tiny.fc.weight)
    x = torch.randn(3, 3, 16, 16)
    x_copy = x.clone()
    before = _state(tiny)
    m = deepinside.saliency(tiny, x, fast=fast)
    _assert_same_state(before, _state(tiny))
    assert not x.requires_grad and x.grad is None and torch.equal(x, x_copy)
    assert m.shape == (3, 16, 16) and (m >= 0).all()
    # computed in eval mode: the same as for the model put in eval mode by hand
    expected = deepinside.saliency(make_tiny().eval(), x, fast=False)
    torch.testing.assert_close(m, expected, rtol=1e-5, atol=1e-6)


def test_input_requires_grad_is_kept():
    model = make_tiny()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    deepinside.saliency(model, x)
    assert x.requires_grad and x.grad is None


@pytest.mark.parametrize("fast", [False, True])
def test_state_restored_after_error(fast):
    model = Exploding().train()
    before = _state(model)
    with pytest.raises(RuntimeError, match="boom"):
        deepinside.saliency(model, torch.randn(1, 3, 8, 8), fast=fast)
    _assert_same_state(before, _state(model))
    tiny = make_tiny().train()
    before = _state(tiny)
    with pytest.raises(ValueError, match="out of range"):
        deepinside.saliency(tiny, torch.randn(1, 3, 8, 8), 99, fast=fast)
    _assert_same_state(before, _state(tiny))


def test_model_with_user_hooks_runs_them_and_keeps_them(tiny):
    seen = []
    h = tiny.conv1.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    try:
        deepinside.saliency(tiny, torch.randn(2, 3, 8, 8))
        assert seen == [2]  # the caller's own module ran, once
        assert len(tiny.conv1._forward_hooks) == 1
    finally:
        h.remove()


def test_no_weight_gradients_requested(tiny):
    """Only d/dI is asked of autograd: no parameter ever receives a gradient."""
    for p in tiny.parameters():
        p.requires_grad_(True)
    deepinside.saliency(tiny, torch.randn(2, 3, 8, 8), fast=False)
    assert all(p.grad is None for p in tiny.parameters())


def test_targets_and_errors(tiny):
    logits = torch.randn(3, 5)
    assert resolve_targets(None, logits).tolist() == logits.argmax(1).tolist()
    assert resolve_targets(2, logits).tolist() == [2, 2, 2]
    assert resolve_targets([0, 1, 4], logits).tolist() == [0, 1, 4]
    assert resolve_targets(torch.tensor([4, 3, 2]), logits).tolist() == [4, 3, 2]
    assert resolve_targets(np.int64(1), logits).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="3 targets|got 2 targets"):
        resolve_targets([0, 1], logits)
    with pytest.raises(ValueError, match="out of range"):
        resolve_targets(5, logits)
    with pytest.raises(ValueError, match="out of range"):
        resolve_targets([0, -1, 2], logits)
    with pytest.raises(TypeError):
        resolve_targets(torch.tensor([0.5, 1.0, 2.0]), logits)
    with pytest.raises(TypeError):
        resolve_targets(True, logits)
    with pytest.raises(ValueError, match=r"Tensor\[B, C, H, W\]"):
        deepinside.saliency(tiny, torch.randn(3, 8, 8))
    with pytest.raises(TypeError):
        deepinside.saliency(tiny, torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty"):
        deepinside.saliency(tiny, torch.zeros(0, 3, 8, 8))


def test_reduce_options(tiny):
    x = torch.randn(2, 3, 8, 8)
    g, _, _ = input_gradient(tiny, x, 1)
    none = deepinside.saliency(tiny, x, 1, reduce="none")
    torch.testing.assert_close(none, g)
    torch.testing.assert_close(reduce_channels(g, "sum_abs"), g.abs().sum(1))
    torch.testing.assert_close(reduce_channels(g, "sum"), g.sum(1))
    with pytest.raises(ValueError):
        reduce_channels(g, "mean")


def test_dtype_follows_input():
    model = make_tiny()  # float32 weights
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    assert deepinside.saliency(model, x).dtype == torch.float64


@pytest.mark.slow
def test_equals_captum_on_default_model(lite0, dev_data):
    from captum.attr import Saliency

    root, ann = dev_data
    photos = [deepinside.load_image(root / r["file"]) for r in ann[:6]]
    x = deepinside.photos_to_batch(photos, lite0.preprocessing)
    t = torch.tensor([r["label"] for r in ann[:6]])
    ref = Saliency(lite0.module).attribute(x, target=t, abs=True).amax(1)
    exact = deepinside.saliency(lite0, x, t, fast=False)
    torch.testing.assert_close(exact, ref, rtol=0, atol=1e-6 * float(ref.max()))
    fast = deepinside.saliency(lite0, x, t)
    err = (fast - ref).abs() / ref.amax(dim=(1, 2), keepdim=True)
    # Exact up to float rounding: a few pixels move where a ReLU6 unit sits within rounding
    # of its kink (float64 against float32 of the plain model shows the same).
    assert float(err.flatten().quantile(0.9999)) < 0.01
    assert float(np.corrcoef(fast.flatten(), ref.flatten())[0, 1]) > 0.9999


@pytest.mark.slow
def test_default_model_top1_on_dev_photos(lite0, dev_data):
    root, ann = dev_data
    correct = 0
    for i in range(0, len(ann), 50):
        recs = ann[i : i + 50]
        x = deepinside.photos_to_batch([deepinside.load_image(root / r["file"]) for r in recs],
                                       lite0.preprocessing, crop=True)
        with torch.no_grad():
            pred = lite0(x).argmax(1)
        correct += sum(int(p) == r["label"] for p, r in zip(pred, recs))
    assert correct / len(ann) >= 0.80


@pytest.mark.slow
def test_saliency_energy_concentrates_in_true_boxes(lite0, dev_data):
    """On photos whose boxes cover less than half the image, the map's energy share inside the
    true-class boxes is well above the share of area they cover."""
    root, ann = dev_data
    energy, area = [], []
    recs = []
    for r in ann:
        mask = np.zeros((r["height"], r["width"]), bool)
        for x0, y0, x1, y1 in r["boxes_xyxy"]:
            mask[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = True
        if mask.mean() < 0.5:
            recs.append((r, mask))
    assert len(recs) >= 50
    for i in range(0, len(recs), 32):
        chunk = recs[i : i + 32]
        photos = [deepinside.load_image(root / r["file"]) for r, _ in chunk]
        maps, _, _ = deepinside.photo_maps(lite0, photos, [r["label"] for r, _ in chunk])
        for m, (_, mask) in zip(maps, chunk):
            assert m.shape == mask.shape
            energy.append(float(m[mask].sum() / m.sum()))
            area.append(float(mask.mean()))
    assert np.mean(energy) > 1.3 * np.mean(area)
    assert np.mean(np.array(energy) > np.array(area)) > 0.75


def test_fast_copy_follows_swapped_submodules(tiny):
    x = torch.randn(2, 3, 16, 16)
    deepinside.saliency(tiny, x, 1)
    tiny.act2 = nn.Tanh()  # no parameter changes, only the architecture
    torch.testing.assert_close(deepinside.saliency(tiny, x, 1),
                               deepinside.saliency(tiny, x, 1, fast=False), rtol=1e-5, atol=1e-6)


def test_folding_is_exact_on_tiny_model(tiny):
    from deepinside.fastmodel import fast_copy

    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    net = fast_copy(tiny, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # both folded
    with torch.no_grad():
        torch.testing.assert_close(net(x), tiny.double()(x))


def test_deepinside_saliency_is_the_function_and_the_old_module_names_warn():
    import importlib

    import deepinside.methods.gradient as gradient
    import deepinside.ops as ops

    assert deepinside.saliency is gradient.saliency
    assert deepinside.get_method("gradient") is gradient.saliency
    old = importlib.import_module("deepinside.saliency")  # the deprecated module
    assert deepinside.saliency is gradient.saliency  # the import did not shadow the function
    for name, new in [("reduce_channels", ops.reduce_channels), ("saliency", gradient.saliency),
                      ("Reduce", ops.Reduce)]:
        with pytest.warns(DeprecationWarning, match=f"deepinside.saliency.{name} is deprecated"):
            assert getattr(old, name) is new
