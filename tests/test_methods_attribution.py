"""RISE, extremal perturbation, DeepLIFT and GradientSHAP: oracles (Captum, the formulas written
out directly), properties. (Batched equals one by one and the caller's model untouched: the
contract suite over every method, test_method_contracts.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from models import ACTS, SmoothNet, ToyNet, activation, tiny_classifier
from torch import nn

from deepinside.methods import get_method, list_methods
from deepinside.methods.extremal_perturbation import SmoothMask, _perturb, blur_pyramid
from deepinside.methods.gradient_shap import shap_draws
from deepinside.methods.rise import rise_masks

torch.set_num_threads(1)

METHODS = ["rise", "extremal_perturbation", "deeplift", "gradient_shap"]  # of this file


def _images(b=3, size=16, seed=1):
    return torch.randn((b, 3, size, size), generator=torch.Generator().manual_seed(seed))


class ActNet(nn.Module):
    """conv -> act -> conv -> act -> global mean -> linear: every nonlinearity elementwise."""

    def __init__(self, act: str):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.act = act
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1, stride=2)
        self.fc = nn.Linear(8, 4)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.7)

    def forward(self, x):
        h = activation(self.act, self.conv1(x))
        h = activation(self.act, self.conv2(h))
        return self.fc(h.mean(dim=(2, 3)))


def test_registry_lists_this_files_methods_with_their_arxiv_papers():
    methods = list_methods()
    for name in METHODS:
        assert name in methods and "arxiv.org/abs/" in methods[name].paper


# ----------------------------------------------------------------------------- DeepLIFT


@pytest.mark.parametrize("fast", [False, True])
def test_deeplift_equals_captum_on_a_relu_network(fast):
    from captum.attr import DeepLift

    clf = tiny_classifier()  # conv-BN-ReLU twice, mean, linear (nn.ReLU modules)
    x = _images(3, 32, seed=2)
    ref = _images(3, 32, seed=3) * 0.5
    t = torch.tensor([0, 2, 5])
    theirs = DeepLift(clf.module).attribute(x, baselines=ref, target=t).detach()
    ours = get_method("deeplift")(clf, x, t, baseline=ref, reduce="none", fast=fast)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6 * float(theirs.abs().max()))
    # after the channel reduction too
    torch.testing.assert_close(get_method("deeplift")(clf, x, t, baseline=ref, fast=fast),
                               theirs.abs().sum(1), rtol=1e-4, atol=1e-6)
    # no target: each image's top-1 class, resolved on the images (not on the references)
    top1 = clf.module(x).argmax(1)
    torch.testing.assert_close(
        get_method("deeplift")(clf, x, baseline=ref, reduce="none", fast=fast),
        DeepLift(clf.module).attribute(x, baselines=ref, target=top1).detach(),
        rtol=1e-4, atol=1e-6 * float(theirs.abs().max()))
    # and it is not the gradient times (input - baseline): the rescale rule changed something
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(clf.module(xg).gather(1, t[:, None]).sum(), xg)
    assert not torch.allclose(ours, (x - ref) * g, atol=1e-2 * float(theirs.abs().max()))


@pytest.mark.parametrize("kind", ACTS)
def test_deeplift_sums_to_the_score_difference_for_every_rectifier(kind):
    net = ActNet(kind).eval()
    x = _images(3) * 2
    ref = torch.full_like(x, -0.3)
    t = torch.tensor([1, 3, 0])
    a = get_method("deeplift")(net, x, t, baseline=ref, reduce="sum")
    delta = (net(x) - net(ref)).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(a.sum(dim=(1, 2)), delta.detach(), rtol=1e-4, atol=1e-5)


def test_deeplift_sums_to_the_score_difference_with_tanh():
    net = SmoothNet()  # torch.tanh, called as a function (Captum handles nn.Tanh modules only)
    x = _images(2, 8) * 2
    a = get_method("deeplift")(net, x, 2, reduce="sum")
    delta = (net(x) - net(torch.zeros_like(x)))[:, 2]
    torch.testing.assert_close(a.sum(dim=(1, 2)), delta.detach(), rtol=1e-4, atol=1e-5)


def test_deeplift_sums_to_the_score_difference_on_the_default_model(lite0):
    # efficientnet_lite0: ReLU6 modules inside timm's BatchNormAct2d, in place, in the folded
    # copy; Captum's DeepLift would keep their gradient (and miss the sum)
    from deepinside.engine import forward_logits
    from deepinside.methods._common import baseline_images

    x = _images(1, 224, seed=8)
    ref = baseline_images(lite0, x, "black")
    a = get_method("deeplift")(lite0, x, [7], baseline="black", reduce="sum")
    delta = forward_logits(lite0, x)[0, 7] - forward_logits(lite0, ref)[0, 7]
    torch.testing.assert_close(a.sum(), delta, rtol=1e-3, atol=1e-4)


# ----------------------------------------------------------------------------- GradientSHAP


def _shap_by_hand(net, x, t, baselines, index, noise, alpha):
    """The expectation written out, one draw at a time: draw k of image b at flat k*b..."""
    out = torch.zeros_like(x)
    n = index.shape[1]
    for b in range(x.shape[0]):
        for s in range(n):
            xb = x[b] + noise[b, s]
            base = baselines[index[b, s]]
            point = (base + alpha[b, s] * (xb - base)).requires_grad_(True)
            (g,) = torch.autograd.grad(net(point[None])[0, t[b]], point)
            out[b] += (xb - base) * g / n
    return out


def test_gradient_shap_is_captums_formula_with_captums_draws():
    from captum.attr import GradientShap

    net = ToyNet("relu_module").eval()
    x, t = _images(2), torch.tensor([1, 4])
    baselines = _images(3, seed=5) * 0.5
    n, std = 4, 0.2
    np.random.seed(7)
    torch.manual_seed(7)
    theirs = GradientShap(net).attribute(x, baselines, n_samples=n, stdevs=std, target=t)
    # Captum's draws, in its order: baseline indices (NumPy), noise (torch), points (NumPy);
    # example i of the expanded batch is image i // n, sample i % n
    np.random.seed(7)
    torch.manual_seed(7)
    index = torch.as_tensor(np.random.choice(3, n * 2)).view(2, n)
    noise = torch.normal(0, torch.tensor(std).repeat((2 * n, *x.shape[1:]))).view(2, n,
                                                                                 *x.shape[1:])
    alpha = torch.as_tensor(np.random.uniform(0.0, 1.0, 2 * n), dtype=x.dtype).view(2, n)
    oracle = _shap_by_hand(net, x, t, baselines, index, noise, alpha)
    torch.testing.assert_close(theirs.detach(), oracle, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fast", [False, True])
def test_gradient_shap_is_the_formula_with_its_own_draws(fast):
    net = ToyNet("relu_module").eval()
    x, t = _images(2), torch.tensor([1, 4])
    baselines = _images(3, seed=5) * 0.5
    n, std = 6, 0.2
    ours = get_method("gradient_shap")(net, x, t, baselines=baselines, samples=n, noise=std,
                                       seed=3, reduce="none", batch_size=5, fast=fast)
    d = shap_draws(n, 3, tuple(x.shape[1:]), std, seed=3)  # the same draws for every image
    oracle = _shap_by_hand(net, x, t, baselines, d.index.expand(2, n),
                           d.noise.expand(2, *d.noise.shape), d.alpha.expand(2, n))
    torch.testing.assert_close(ours, oracle, rtol=1e-4, atol=1e-6)
    state = torch.random.get_rng_state()
    again = get_method("gradient_shap")(net, x, t, baselines=baselines, samples=n, noise=std,
                                        seed=3, reduce="none", fast=fast)
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator untouched
    torch.testing.assert_close(again, ours, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- RISE


@pytest.mark.parametrize("score", ["probability", "logit"])
def test_rise_is_its_formula_with_the_same_masks(score):
    clf = tiny_classifier()
    x, t = _images(3, 32, seed=4), torch.tensor([0, 3, 5])
    n, p = 50, 0.4
    calls = []
    state = torch.random.get_rng_state()
    ours = get_method("rise")(clf, x, t, masks=n, grid=5, p=p, score=score, batch_size=17,
                              progress=lambda d, total: calls.append((d, total)))
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator untouched
    masks = rise_masks(n, (32, 32), grid=5, p=p)
    assert masks.shape == (n, 1, 32, 32) and masks.min() >= 0 and masks.max() <= 1
    oracle = torch.zeros(3, 32, 32)
    for b in range(3):
        for i in range(n):
            y = clf.module(x[b : b + 1] * masks[i : i + 1])
            s = y.softmax(1)[0, t[b]] if score == "probability" else y[0, t[b]]
            oracle[b] += s.detach() * masks[i, 0]
    oracle /= n * p
    torch.testing.assert_close(ours, oracle, rtol=1e-4, atol=1e-5 * float(oracle.abs().max()))
    assert calls[-1] == (3 * n, 3 * n) and len(calls) == -(-3 * n // 17)


def test_rise_masks_keep_about_p_of_the_image_and_are_seeded():
    m = rise_masks(400, (56, 40), grid=7, p=0.3, seed=1)
    assert abs(float(m.mean()) - 0.3) < 0.03
    assert torch.equal(m, rise_masks(400, (56, 40), grid=7, p=0.3, seed=1))
    assert not torch.equal(m, rise_masks(400, (56, 40), grid=7, p=0.3, seed=2))


# ------------------------------------------------------------------------ extremal perturbation


class RegionNet(nn.Module):
    """logit 0 = mean of x^2 over the top-left quarter-side square; logit 1 = 0."""

    def forward(self, x):
        s = (x[:, :, :8, :8] ** 2).mean(dim=(1, 2, 3)) * 10
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_extremal_perturbation_finds_the_region_with_the_target_area():
    net = RegionNet()
    x = _images(2, 32, seed=6) * 2  # noise: blurring lowers x^2 everywhere
    area = 0.1
    opts = {"area": area, "iterations": 300, "step": 2, "sigma": 4.0, "max_blur": 4.0,
            "jitter": False}
    m = get_method("extremal_perturbation")(net, x, 0, **opts)
    assert m.shape == (2, 32, 32) and m.min() >= 0 and m.max() <= 1
    inside, outside = m[:, :8, :8].mean(dim=(1, 2)), m.clone()
    outside[:, :8, :8] = float("nan")
    assert (inside > 0.5).all() and (inside > 4 * outside.nanmean(dim=(1, 2))).all()
    # the area constraint is on the mask with its margin of sigma pixels (as TorchRay): kept
    # pixels all inside the image cover between `area` and area * 40^2 / 32^2 of it
    a = m.mean(dim=(1, 2))
    assert (a > area - 0.02).all() and (a < area * 40**2 / 32**2 + 0.02).all()
    # the preserved region keeps the score far above the fully blurred image
    pyr = blur_pyramid(x, 8, 4.0)
    kept = net(_perturb(pyr, m[:, None]))[:, 0]
    blurred = net(pyr[:, 0])[:, 0]
    assert (kept > blurred + 0.5 * (net(x)[:, 0] - blurred)).all()


def _torchray_weights(shape, step, sigma):
    """The bump weights of TorchRay's MaskGenerator, written out as its formula, loop by loop."""
    margin, pad, rad = sigma, 1 + math.ceil(2 * sigma / step), 1 + math.ceil(sigma / step)
    k = 2 * rad + 1
    mid = [math.ceil(z / step) + 2 * pad - k + 1 for z in shape]
    out = [step * z - step + 1 for z in mid]
    w = torch.zeros(1, k * k, *out)
    uy, ux = torch.meshgrid(torch.arange(out[0]), torch.arange(out[1]), indexing="ij")
    for ky in range(k):
        for kx in range(k):
            iy = torch.floor(uy * mid[0] / (step * mid[0])) + ky - pad
            ix = torch.floor(ux * mid[1] / (step * mid[1])) + kx - pad
            d = torch.sqrt((uy - margin - step * iy) ** 2 + (ux - margin - step * ix) ** 2)
            w[0, ky * k + kx] = torch.exp(-2 * ((d / sigma - 0.5).clamp(min=0) ** 2))
    return w


def test_smooth_mask_is_a_smooth_max_of_bumps():
    gen = SmoothMask((28, 30), 7, 21.0, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(gen.weight, _torchray_weights((28, 30), 7, 21.0))
    assert gen.shape_in == (4, 5)
    ones, _ = gen(torch.ones(1, 1, 4, 5))
    assert ones.min() > 0.95  # all kept: a soft max of bumps, nearly 1
    zeros, _ = gen(torch.zeros(1, 1, 4, 5))
    assert zeros.abs().max() == 0
    one = torch.zeros(1, 1, 4, 5)
    one[0, 0, 1, 2] = 1.0  # one bump, centred at the margin (21) + (7 * 1, 7 * 2)
    _, full = gen(one)
    ys, xs = torch.nonzero(full[0, 0] > 0.5, as_tuple=True)
    assert abs(ys.float().mean() - 28) < 1 and abs(xs.float().mean() - 35) < 1
    assert full.max() > 0.99 and full[0, 0, 28, 35 + 30] < 0.1  # flat top, then falls off


def test_pyramid_and_perturbation_pick_the_levels():
    x = _images(2, 16)
    pyr = blur_pyramid(x, levels=5, max_blur=3.0)
    assert pyr.shape == (2, 5, 3, 16, 16) and torch.equal(pyr[:, -1], x)
    torch.testing.assert_close(_perturb(pyr, torch.ones(2, 1, 16, 16)), x)
    torch.testing.assert_close(_perturb(pyr, torch.zeros(2, 1, 16, 16)), pyr[:, 0])
    half = _perturb(pyr, torch.full((2, 1, 16, 16), 0.625))  # 0.625 * 4 = level 2.5
    torch.testing.assert_close(half, 0.5 * (pyr[:, 2] + pyr[:, 3]))
