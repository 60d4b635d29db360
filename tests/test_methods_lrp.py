"""LRP: equal to zennit 0.5 with the same composite, conservation, every rectifier kind, no
module patched."""

from __future__ import annotations

import pytest
import torch
from models import ACTS, ORIGINAL_RELU, BiasFreeNet
from torch import nn

import deepinside
from deepinside.fastmodel import has_hooks

zennit = pytest.importorskip("zennit")


def _random_batch_norms(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def _zennit(model, x, t, composite):
    with composite.context(model) as m:
        xi = x.clone().requires_grad_(True)
        out = m(xi)
        rows = torch.arange(len(t))
        go = torch.zeros_like(out)
        go[rows, t] = out.detach()[rows, t]  # the output relevance: the target's logit
        (r,) = torch.autograd.grad(out, xi, go)
    return r


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg16_bn", "resnet18"])
def test_lrp_equals_zennit_with_the_same_composite(arch):
    torchvision = pytest.importorskip("torchvision")
    from zennit.composites import EpsilonAlpha2Beta1Flat, EpsilonGammaBox, EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    torch.manual_seed(0)
    model = _random_batch_norms(getattr(torchvision.models, arch)(num_classes=10)).double()
    canon = VGGCanonizer if arch.startswith("vgg") else ResNetCanonizer
    x = torch.randn((1, 3, 32, 32), generator=torch.Generator().manual_seed(2)).double()
    t = torch.tensor([3])
    composites = {  # VGG: its usual composite only (the rules are the same code; time)
        "epsilon_gamma_box": EpsilonGammaBox(low=-3.0, high=3.0, canonizers=[canon()]),
    }
    if arch == "resnet18":
        composites["epsilon_plus_flat"] = EpsilonPlusFlat(canonizers=[canon()])
        composites["epsilon_alpha2_beta1_flat"] = EpsilonAlpha2Beta1Flat(canonizers=[canon()])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, composite in composites.items():
        ours = deepinside.get_method("lrp")(model, x, t, composite=name, low=-3.0, high=3.0,
                                           reduce="none")
        ref = _zennit(model, x, t, composite)
        err = float((ours - ref).abs().max() / ref.abs().max())  # float64: far below
        assert err < 1e-4, (name, err)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not has_hooks(model)


@pytest.mark.parametrize("act", ACTS)
def test_lrp_epsilon_conserves_relevance_for_every_rectifier_kind(act):
    net = BiasFreeNet(act).eval()
    x = torch.randn((3, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    logits = deepinside.forward_logits(net, x, fast=False)
    t = logits.argmax(dim=1)
    for fast in (False, True):
        r = deepinside.get_method("lrp")(net, x, t, composite="epsilon", fast=fast)
        torch.testing.assert_close(r.sum(dim=(1, 2)), logits[torch.arange(3), t],
                                   rtol=1e-4, atol=1e-5)
    assert torch.nn.functional.relu is ORIGINAL_RELU
    if act in ("relu_module", "relu_inplace", "functional", "tensor_method", "relu_"):
        same = deepinside.get_method("lrp")(BiasFreeNet("relu_module").eval(), x, t)
        torch.testing.assert_close(deepinside.get_method("lrp")(net, x, t), same)


def test_lrp_batched_equals_one_by_one_and_leaves_the_input_alone():
    net = BiasFreeNet().eval()
    x = torch.randn((3, 3, 16, 16), generator=torch.Generator().manual_seed(1))
    x.requires_grad_(False)
    whole = deepinside.get_method("lrp")(net, x, 1)
    one = torch.cat([deepinside.get_method("lrp")(net, x[i:i + 1], 1) for i in range(3)])
    torch.testing.assert_close(whole, one, rtol=1e-5, atol=1e-7)
    assert not x.requires_grad and x.grad is None
    with pytest.raises(ValueError, match="did you mean epsilon_plus_flat"):
        deepinside.get_method("lrp")(net, x, 1, composite="epsilon_plus_flt")
    with pytest.raises(ValueError, match="alpha - beta = 1"):
        deepinside.get_method("lrp")(net, x, 1, composite="alpha_beta", alpha=1.0, beta=1.0)
