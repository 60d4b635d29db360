"""deepinside.fastmodel: the frozen, batch-norm-folded, channels-last copy the engine runs."""

from __future__ import annotations

import copy

import torch
from models import make_tiny
from torch import nn

from deepinside.engine import input_gradient
from deepinside.fastmodel import fast_copy, fold_batchnorm, has_hooks


def test_fold_batchnorm_is_exact_and_replaces_the_norms():
    model = make_tiny()
    probe = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    net = fold_batchnorm(copy.deepcopy(model), probe)
    assert isinstance(net.bn1, nn.Identity) and isinstance(net.bn2, nn.Identity)
    assert net.conv2.bias is not None  # the norm's shift went into a new bias
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_norm_whose_input_is_not_the_convolutions_output_is_not_folded():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4)).eval()
    with torch.no_grad():
        net[2].running_mean.uniform_(-1, 1)
    folded = fold_batchnorm(net, torch.randn(1, 3, 6, 6))
    assert isinstance(folded[2], nn.BatchNorm2d)


def test_fast_copy_is_frozen_cached_and_none_for_a_hooked_model():
    model = make_tiny()
    x = torch.randn(2, 3, 8, 8)
    net = fast_copy(model, x)
    assert net is not model and not any(p.requires_grad for p in net.parameters())
    assert fast_copy(model, x) is net  # cached while the weights are unchanged
    with torch.no_grad():
        model.fc.weight.mul_(2.0)  # an in-place update invalidates it
    assert fast_copy(model, x) is not net
    handle = model.conv1.register_forward_hook(lambda *a: None)
    try:
        assert has_hooks(model) and fast_copy(model, x) is None  # the hook must run: no copy
    finally:
        handle.remove()
    assert not has_hooks(model)


class _Aliasing(torch.nn.Module):
    """Relies on an in-place activation changing its input: out of place would change it."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.act = torch.nn.ReLU(inplace=True)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        h = self.conv(x)
        self.act(h)  # the result is ignored: only the aliasing applies the ReLU
        return self.fc(h.mean(dim=(2, 3)))


def test_fast_copy_runs_activations_out_of_place_unless_aliasing_matters():
    from deepinside.fastmodel import fast_copy

    model = make_tiny()
    x = torch.randn(2, 3, 8, 8)
    net = fast_copy(model, x)
    assert model.relu.inplace and not net.relu.inplace  # the caller's module is untouched
    aliasing = _Aliasing().eval()
    assert fast_copy(aliasing, x).act.inplace  # undone: the output would change
    torch.testing.assert_close(input_gradient(aliasing, x, 1)[0],
                               input_gradient(aliasing, x, 1, fast=False)[0])
