"""LRP: equal to zennit 0.5 with the same composite, conservation, every rectifier kind, no
module patched."""

from __future__ import annotations

import copy

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


def _assert_conserves(net: nn.Module, x: torch.Tensor, t: torch.Tensor) -> None:
    """LRP-epsilon's map of ``net`` (bias-free) sums to the target's logit, and a photo alone
    equals it in the batch; in float64 (a copy of the net), so that float32's rounding in the
    sums is not what is measured."""
    net, x = copy.deepcopy(net).double(), x.double()
    logits = deepinside.forward_logits(net, x, fast=False)
    r = deepinside.get_method("lrp")(net, x, t, composite="epsilon")
    torch.testing.assert_close(r.sum(dim=(1, 2)), logits[torch.arange(len(x)), t], rtol=1e-4,
                               atol=1e-5)
    one = torch.cat([deepinside.get_method("lrp")(net, x[i:i + 1], int(t[i]),
                                                  composite="epsilon") for i in range(len(x))])
    torch.testing.assert_close(one, r, rtol=1e-4, atol=1e-6)


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


class _TinyTransformer(nn.Module):
    """Patch embedding, a position embedding, one pre-norm attention block and MLP with skip
    connections, a final LayerNorm and a linear head; no biases (LayerNorm without its shift),
    so the epsilon rule must conserve relevance exactly."""

    def __init__(self, sdpa: bool) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.sdpa = sdpa
        self.embed = nn.Conv2d(3, 8, 4, stride=4, bias=False)
        self.pos = nn.Parameter(torch.randn(1, 16, 8, generator=g) * 0.5)
        self.norm1 = nn.LayerNorm(8, bias=False)
        self.qkv = nn.Linear(8, 24, bias=False)
        self.proj = nn.Linear(8, 8, bias=False)
        self.norm2 = nn.LayerNorm(8, bias=False)
        self.fc1, self.fc2 = nn.Linear(8, 16, bias=False), nn.Linear(16, 8, bias=False)
        self.norm = nn.LayerNorm(8, bias=False)
        self.head = nn.Linear(8, 5, bias=False)
        with torch.no_grad():  # every weight from the seeded generator, not the global one
            for m in (self.embed, self.qkv, self.proj, self.fc1, self.fc2, self.head):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * fan_in ** -0.5)
            for m in (self.norm1, self.norm2, self.norm):
                m.weight.copy_(torch.rand(8, generator=g) + 0.5)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = x + self.pos  # a constant added: its share is absorbed, as a bias's
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        if self.sdpa:
            a = nn.functional.scaled_dot_product_attention(q, k, v)
        else:
            a = (q @ k.transpose(-2, -1) * 8 ** -0.5).softmax(dim=-1) @ v
        x = x + self.proj(a)
        x = x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))
        return self.head(self.norm(x).mean(dim=1))


@pytest.mark.parametrize("sdpa", [True, False])
def test_lrp_on_a_transformer_holds_layernorm_scales_and_attention_weights_constant(sdpa):
    """Ali et al. 2022 (LN- and AH-rules): with the norms' scales and the attention weights
    held constant the network is piecewise linear in what carries relevance, so the epsilon
    rule conserves it; the position embedding takes its share. Without the rules the
    LayerNorm's gradient removes the relevance's sum (it is zero along constants)."""
    net = _TinyTransformer(sdpa).eval()
    x = torch.randn((3, 3, 16, 16), generator=torch.Generator().manual_seed(1))
    logits = deepinside.forward_logits(net, x, fast=False)
    t = logits.argmax(dim=1)
    r = deepinside.get_method("lrp")(net, x, t, composite="epsilon", reduce="none")
    # the relevance that reaches the patch embedding's output (what flows backward under the
    # rules is relevance); the bias-free convolution below it must conserve that
    with torch.no_grad():
        e = net.embed(x).flatten(2).transpose(1, 2)
    with deepinside.methods.lrp.lrp_rules("epsilon"):
        xe = e.clone().requires_grad_(True)
        h = xe + net.pos
        q, k, v = net.qkv(net.norm1(h)).chunk(3, dim=-1)
        a = (q @ k.transpose(-2, -1) * 8 ** -0.5).softmax(dim=-1) @ v
        h = h + net.proj(a)
        h = h + net.fc2(nn.functional.gelu(net.fc1(net.norm2(h))))
        out = net.head(net.norm(h).mean(dim=1))
        score = out[torch.arange(3), t]
        (g,) = torch.autograd.grad(score, xe, score.detach())
    at_embedding = g.sum(dim=(1, 2))
    torch.testing.assert_close(r.sum(dim=(1, 2, 3)), at_embedding, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(at_embedding, logits[torch.arange(3), t], rtol=1e-2)  # pos's share
    no_pos = _TinyTransformer(sdpa).eval()
    with torch.no_grad():
        no_pos.pos.zero_()
    _assert_conserves(no_pos, x, t)


def test_attention_with_fixed_weights_computes_what_sdpa_computes():
    """The AH-rule's forward is scaled_dot_product_attention's, for each of its options."""
    from deepinside.methods.lrp import _attention_fixed_weights

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 5, 8, generator=g) for _ in range(3))
    mask = torch.rand(5, 5, generator=g) > 0.3
    mask[:, 0] = True  # every query sees a key
    bias = torch.randn(5, 5, generator=g)
    kv2 = (torch.randn(2, 2, 5, 8, generator=g), torch.randn(2, 2, 5, 8, generator=g))
    sdpa = nn.functional.scaled_dot_product_attention
    for args, kwargs in [((q, k, v), {}), ((q, k, v), {"is_causal": True}),
                         ((q, k, v), {"attn_mask": mask}), ((q, k, v), {"attn_mask": bias}),
                         ((q, k, v), {"scale": 0.3}), ((q, *kv2), {"enable_gqa": True})]:
        torch.testing.assert_close(_attention_fixed_weights(*args, **kwargs),
                                   sdpa(*args, **kwargs), rtol=1e-5, atol=1e-6)


class _NormNet(nn.Module):
    """conv - GroupNorm, RMSNorm or InstanceNorm2d - ReLU - mean - linear, no biases (the
    norm's shift zero), so the epsilon rule must conserve relevance with the norm's divisor
    held constant."""

    def __init__(self, norm: str) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.norm = {"group": lambda: nn.GroupNorm(2, 6), "rms": lambda: nn.RMSNorm([6, 8, 8]),
                     "instance": lambda: nn.InstanceNorm2d(6, affine=True)}[norm]()
        self.fc = nn.Linear(6, 4, bias=False)
        with torch.no_grad():
            for p in (self.conv.weight, self.fc.weight):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            self.norm.weight.copy_(torch.rand(self.norm.weight.shape, generator=g) + 0.5)
            if norm != "rms":
                self.norm.bias.zero_()

    def forward(self, x):
        return self.fc(nn.functional.relu(self.norm(self.conv(x))).mean(dim=(2, 3)))


@pytest.mark.parametrize("norm", ["group", "rms", "instance"])
def test_lrp_holds_the_divisor_of_group_rms_and_instance_norms_constant(norm):
    """The LN-rule (Ali et al. 2022) for nn.GroupNorm, nn.RMSNorm and nn.InstanceNorm2d: the
    forward pass is the
    plain one, the map sums to the logit, a photo alone equals it in the batch. The plain
    gradient of a norm is zero along its input (scale-invariant), so without the rule the map
    of the RMS norm sums to 0, the group norm's to little."""
    from deepinside.methods.lrp import lrp_rules

    net = _NormNet(norm).eval()
    x = torch.randn((3, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    logits = deepinside.forward_logits(net, x, fast=False)
    with lrp_rules("epsilon"):
        torch.testing.assert_close(net(x.clone().requires_grad_(True)), logits)
    _assert_conserves(net, x, logits.argmax(dim=1))


def test_lrp_passes_an_instance_norm_with_running_statistics_as_a_batch_norm():
    """nn.InstanceNorm2d(track_running_stats=True) in eval is an affine map per channel: the
    forward pass under the rules is the plain one and the relevance passes it unchanged, as
    through an unfolded batch norm with the same statistics (the two maps are equal)."""
    from deepinside.methods.lrp import lrp_rules

    def net(norm: nn.Module) -> nn.Module:
        torch.manual_seed(0)
        conv, fc = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.Linear(6, 4, bias=False)
        with torch.no_grad():
            norm.running_mean.copy_(torch.randn(6))
            norm.running_var.copy_(torch.rand(6) + 0.5)
            norm.weight.copy_(torch.rand(6) + 0.5)
            norm.bias.copy_(torch.randn(6))
        return nn.Sequential(conv, norm, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             fc).eval()

    inst = net(nn.InstanceNorm2d(6, affine=True, track_running_stats=True))
    bn = net(nn.BatchNorm2d(6))
    x = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    logits = deepinside.forward_logits(inst, x, fast=False)
    torch.testing.assert_close(logits, deepinside.forward_logits(bn, x, fast=False))
    with lrp_rules("epsilon"):
        torch.testing.assert_close(inst(x.clone().requires_grad_(True)), logits)
    lrp = deepinside.get_method("lrp")
    torch.testing.assert_close(lrp(inst, x, 1, composite="epsilon", fast=False),
                               lrp(bn, x, 1, composite="epsilon", fast=False))


class _InPlaceAdds(nn.Module):
    """Two bias-free convolutions summed (a skip connection), a position embedding added, a
    ReLU and a bias-free linear head; each addition written as ``how`` says: ``"plus"``
    (``x = x + y``), ``"add_"`` (``x.add_(y)``, its result unused) or ``"iadd"`` (``x += y``,
    read through another name)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.how = how
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(3, 4, 1, bias=False)
        self.pos = nn.Parameter(torch.randn(1, 4, 8, 8, generator=g) * 0.5)
        self.fc = nn.Linear(4 * 8 * 8, 3, bias=False)
        with torch.no_grad():
            for p in (self.conv1.weight, self.conv2.weight, self.fc.weight):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        h, skip = self.conv1(x), self.conv2(x)
        if self.how == "plus":
            h = h + skip
            h = h + self.pos
        elif self.how == "add_":
            h.add_(skip)
            h.add_(self.pos)
        else:
            out = h
            out += skip
            out += self.pos
        return self.fc(nn.functional.relu(h).flatten(1))


@pytest.mark.parametrize("how", ["add_", "iadd"])
def test_lrp_keeps_an_in_place_addition_in_place(how):
    """An addition written in place gets the addition's rule (split in proportion) and stays
    in place: the forward pass under the rules is the plain one (``h.add_(y)`` with its result
    unused lost the addition), the map is that of the same network written ``h = h + y``, and
    without the position embedding it sums to the logit (also a photo alone)."""
    from deepinside.methods.lrp import lrp_rules

    net, plus = _InPlaceAdds(how).eval(), _InPlaceAdds("plus").eval()
    x = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(1))
    logits = deepinside.forward_logits(net, x, fast=False)
    torch.testing.assert_close(logits, deepinside.forward_logits(plus, x, fast=False))
    with lrp_rules("epsilon"):
        torch.testing.assert_close(net(x.clone().requires_grad_(True)), logits)
    t = logits.argmax(dim=1)
    lrp = deepinside.get_method("lrp")
    r = lrp(net, x, t, composite="epsilon", reduce="none")
    torch.testing.assert_close(r, lrp(plus, x, t, composite="epsilon", reduce="none"))
    with torch.no_grad():
        net.pos.zero_()
    _assert_conserves(net, x, t)


class _TokenMLP(nn.Module):
    """Patches to tokens ``Tensor[B, N, C]``, a linear layer on the tokens (its bias zero, so
    that the map conserves the logit) and a ReLU (``how``: a module in place,
    ``F.relu(inplace=True)``, ``relu_``, out of place), the tokens averaged, a bias-free head:
    a ViT's MLP in small."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.embed = nn.Conv2d(3, 8, 4, stride=4, bias=False)
        self.fc = nn.Linear(8, 8)  # with a bias, F.linear on tokens returns a view
        nn.init.zeros_(self.fc.bias)
        self.act = nn.ReLU(inplace=how == "module")
        self.head = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        h = self.fc(self.embed(x).flatten(2).transpose(1, 2))
        if self.how == "functional":
            h = nn.functional.relu(h, inplace=True)
        elif self.how == "relu_":
            h = h.relu_()
        else:
            h = self.act(h)
        return self.head(h.mean(dim=1))


@pytest.mark.parametrize("how", ["module", "functional", "relu_"])
def test_lrp_takes_an_in_place_activation_after_a_linear_layer_on_tokens(how):
    """F.linear with a bias on tokens returns a view, which an in-place ReLU may not modify under a
    custom autograd function: the rules hand over a tensor of their own. With trainable
    weights (the user's model as built) and without the private copy (where the module's
    ``inplace`` flag stays on), the map is that of the out-of-place network and sums to the
    logit."""
    torch.manual_seed(0)
    net, plain = _TokenMLP(how), _TokenMLP("plain")
    plain.load_state_dict(net.state_dict())
    x = torch.randn((2, 3, 16, 16), generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 2])
    lrp = deepinside.get_method("lrp")
    for fast in (False, True):
        r = lrp(net, x, t, composite="epsilon", fast=fast)
        torch.testing.assert_close(r, lrp(plain, x, t, composite="epsilon", fast=fast))
    assert all(p.requires_grad for p in net.parameters()) and net.training
    _assert_conserves(net, x, t)
