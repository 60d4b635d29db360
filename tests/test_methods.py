"""Attribution methods: hand-computed rules, completeness, oracles (Captum, pytorch-grad-cam)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from models import ACTS, Scale, SmoothNet, ToyNet, activation, bounds
from torch import nn

from deepinside.engine import default_layer, input_gradient
from deepinside.fastmodel import has_hooks
from deepinside.layers import find_layer
from deepinside.methods import get_method, list_methods
from deepinside.methods.integrated_gradients import path_points
from deepinside.methods.occlusion import window_starts

torch.set_num_threads(1)

@pytest.fixture(scope="module")
def photo_batch(lite0):
    """Four photos that ship with scikit-image / Matplotlib, as a lite0 input batch."""
    from deepinside.cli.demo import demo_photos
    from deepinside.images import photos_to_batch

    torch.set_num_threads(1)
    photos = [p for _, p in demo_photos()][:4]
    return photos_to_batch(photos, lite0.preprocessing, crop=True)


def _images(b=3, size=16, seed=1):
    return torch.randn((b, 3, size, size), generator=torch.Generator().manual_seed(seed)) * 2


def _rule(kind: str, rule: str, z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The backward pass through one rectifier, by hand (paper, section 4)."""
    lo, hi = bounds(kind)
    if kind == "none":
        return r
    if rule == "gradient":
        return r * ((z > lo) & (z < hi))
    if rule == "deconvnet":
        return r * (r > 0)
    return r * ((z > lo) & (z < hi)) * (r > 0)  # guided


def _by_hand(net: ToyNet, x: torch.Tensor, target: torch.Tensor, rule: str) -> torch.Tensor:
    """Backward pass layer by layer: each linear piece by its own vector-Jacobian product."""
    x = x.clone().requires_grad_(True)
    z1 = net.conv1(x)
    p1_in = z1.detach().requires_grad_(True)
    a1 = activation("none", p1_in)  # placeholder; rectifier applied by hand
    with torch.no_grad():
        _, a1v, _, z2v, _, _ = net.stages(x.detach())
    a1 = a1v.clone().requires_grad_(True)
    p1 = F.max_pool2d(a1, 2)
    p1_leaf = p1.detach().requires_grad_(True)
    z2 = net.conv2(p1_leaf)
    with torch.no_grad():
        a2v = activation(net.act, z2.detach().clone())
    a2 = a2v.clone().requires_grad_(True)
    logits = net.fc(F.max_pool2d(a2, 2).flatten(1))
    r = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), a2)[0]
    r = _rule(net.act, rule, z2v, r)
    r = torch.autograd.grad(z2, p1_leaf, r)[0]
    r = torch.autograd.grad(p1, a1, r)[0]  # max-pooling switches
    r = _rule(net.act, rule, z1.detach(), r)
    return torch.autograd.grad(z1, x, r)[0]


# ----------------------------------------------------------------------------- registry


def test_registry_lists_every_method_with_a_paper():
    names = set(list_methods())
    assert {"gradient", "gradient_x_input", "deconvnet", "guided_backprop", "smoothgrad",
            "integrated_gradients", "gradcam", "gradcam_pp", "occlusion"} <= names
    for info in list_methods().values():
        assert info.description and "http" in info.paper
    with pytest.raises(KeyError, match="gradcam"):
        get_method("gradcm")


# ----------------------------------------------------------------------------- section 4


@pytest.mark.parametrize("fast", [False, True])
def test_deconvnet_equals_gradient_without_relu(fast):
    net = ToyNet("none").eval()
    x = _images()
    g = get_method("gradient")(net, x, 2, reduce="none", fast=fast)
    d = get_method("deconvnet")(net, x, 2, reduce="none", fast=fast)
    gb = get_method("guided_backprop")(net, x, 2, reduce="none", fast=fast)
    assert torch.equal(d, g) and torch.equal(gb, g)


@pytest.mark.parametrize("kind", ACTS)
@pytest.mark.parametrize("rule", ["gradient", "deconvnet", "guided_backprop"])
def test_each_rule_matches_the_hand_computed_backward(kind, rule):
    net = ToyNet(kind, scale=3.0 if kind == "relu6" else 1.0).eval()
    x = _images()
    t = torch.tensor([0, 3, 4])
    got = get_method(rule)(net, x, t, reduce="none", fast=False)
    want = _by_hand(net, x, t, "guided" if rule == "guided_backprop" else rule)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    if kind == "relu6":  # the upper clip is exercised
        with torch.no_grad():
            assert (net.stages(x)[3] > 6).any()
    if rule != "gradient":  # the rule changes the result
        assert not torch.allclose(got, _by_hand(net, x, t, "gradient"))


def test_rules_apply_on_the_real_default_model_with_relu6(lite0, photo_batch):
    x = photo_batch[:2]
    g = get_method("gradient")(lite0, x, reduce="none")
    gb = get_method("guided_backprop")(lite0, x, reduce="none")
    d = get_method("deconvnet")(lite0, x, reduce="none")
    assert (g - gb).abs().max() > 1e-3 * g.abs().max()
    assert (g - d).abs().max() > 1e-3 * g.abs().max()


# ----------------------------------------------------------------------------- IG


def test_path_points_integrate_polynomials():
    for rule in ("gausslegendre", "riemann_trapezoid", "riemann_middle"):
        a, w = path_points(8, rule)
        assert abs(w.sum() - 1) < 1e-12
        assert abs((w * a).sum() - 0.5) < 1e-12  # linear functions exactly
    a, w = path_points(4, "gausslegendre")
    assert abs((w * a**7).sum() - 1 / 8) < 1e-12  # Gauss-Legendre: degree 2n - 1 exactly


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_completeness_improves_with_steps(rule):
    net = SmoothNet().eval()
    x = _images(2, 8)
    ig = get_method("integrated_gradients")
    with torch.no_grad():
        gap = (net(x) - net(torch.zeros_like(x)))[torch.arange(2), torch.tensor([1, 2])]
    errs = []
    for steps in (4, 16, 64):
        a = ig(net, x, [1, 2], steps=steps, rule=rule, reduce="none", fast=False)
        errs.append(float((a.sum(dim=(1, 2, 3)) - gap).abs().max()))
    assert errs[2] < errs[0]
    assert errs[2] < 1e-3 * float(gap.abs().max())


def test_integrated_gradients_baselines():
    from deepinside.methods._common import baseline_images
    from deepinside.models import Classifier

    net = SmoothNet().eval()
    x = _images(2, 8)
    ref = torch.full_like(x, 0.5)
    with torch.no_grad():
        gap = (net(x) - net(ref))[:, 0]
    a = get_method("integrated_gradients")(net, x, 0, baseline=0.5, steps=32, reduce="sum")
    torch.testing.assert_close(a.sum(dim=(1, 2)), gap, rtol=1e-3, atol=1e-4)
    clf = Classifier(net, class_names=["a", "b", "c"])
    black = baseline_images(clf, x, "black")
    torch.testing.assert_close(clf.preprocessing.denormalize(black), torch.zeros_like(x),
                               atol=1e-6, rtol=0)
    mean = baseline_images(net, x, "mean")
    torch.testing.assert_close(mean[:, :, 0, 0], x.mean(dim=(2, 3)))
    blur = baseline_images(net, x, "blur")
    assert blur.shape == x.shape and blur.std() < x.std()
    with pytest.raises(ValueError, match="Classifier"):
        baseline_images(net, x, "black")
    with pytest.raises(ValueError, match="baseline"):
        baseline_images(net, x, "grey")


def test_integrated_gradients_completeness_relu_net():
    net = ToyNet("relu_module").eval()
    x = _images(2)
    with torch.no_grad():
        gap = (net(x) - net(torch.zeros_like(x)))[:, 1]
    errs = []
    for steps in (4, 256):
        a = get_method("integrated_gradients")(net, x, 1, steps=steps, reduce="sum",
                                               rule="riemann_trapezoid", fast=False)
        errs.append(float((a.sum(dim=(1, 2)) - gap).abs().max()))
    assert errs[1] < errs[0] and errs[1] < 0.02 * float(gap.abs().max())


def test_reduce_options():
    net = ToyNet().eval()
    x = _images(2)
    full = get_method("gradient_x_input")(net, x, reduce="none")
    assert full.shape == x.shape
    torch.testing.assert_close(get_method("gradient_x_input")(net, x, reduce="sum"), full.sum(1))
    torch.testing.assert_close(get_method("gradient_x_input")(net, x), full.abs().sum(1))
    grad = input_gradient(net, x, fast=False)[0]
    torch.testing.assert_close(full, grad * x, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="reduce"):
        get_method("guided_backprop")(net, x, reduce="max")


def test_smoothgrad_is_the_mean_over_noisy_gradients():
    net = ToyNet().eval()
    x = _images(2)
    sg = get_method("smoothgrad")(net, x, 1, samples=1, noise=0.0, reduce="none", fast=False)
    torch.testing.assert_close(sg, input_gradient(net, x, 1, fast=False)[0])
    a = get_method("smoothgrad")(net, x, 1, samples=6, noise=0.2, batch_size=5)
    b = get_method("smoothgrad")(net, x, 1, samples=6, noise=0.2, batch_size=None)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    gb = get_method("smoothgrad")(net, x, 1, base="guided_backprop", samples=2)
    assert gb.shape == (2, 16, 16)
    with pytest.raises(ValueError):
        get_method("smoothgrad")(net, x, base="smoothgrad")


def test_occlusion_by_hand():
    net = ToyNet().eval()
    x = _images(1)
    assert window_starts(16, 6, 4) == [0, 4, 8, 10]
    m = get_method("occlusion")(net, x, 3, window=8, stride=8, fast=False)
    with torch.no_grad():
        clean = net(x)[0, 3]
        for y0 in (0, 8):
            for x0 in (0, 8):
                xo = x.clone()
                xo[..., y0 : y0 + 8, x0 : x0 + 8] = 0
                drop = clean - net(xo)[0, 3]
                torch.testing.assert_close(m[0, y0 : y0 + 8, x0 : x0 + 8],
                                           drop.expand(8, 8), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- CAM


def test_gradcam_by_hand_and_layers():
    net = ToyNet().eval()
    x = _images(2)
    assert default_layer(net, x) == "conv2"  # the last module with a spatial output
    cam = get_method("gradcam")(net, x, 1, layer="conv1", upsample_to_input=False, fast=False)
    xx = x.clone()
    a = net.conv1(xx)
    a_leaf = a.detach().requires_grad_(True)
    a1 = F.relu(a_leaf)
    out = net.fc(F.max_pool2d(F.relu(net.conv2(F.max_pool2d(a1, 2))), 2).flatten(1))
    g = torch.autograd.grad(out[:, 1].sum(), a_leaf)[0]
    want = (g.mean((2, 3), keepdim=True) * a_leaf).sum(1).clamp(min=0)
    torch.testing.assert_close(cam, want.detach(), rtol=1e-5, atol=1e-6)
    assert find_layer(net, "conv*") == "conv2"
    assert find_layer(net, net.conv1) == "conv1"
    with pytest.raises(ValueError, match="no layer .* matches 'cnov9'.*conv"):
        get_method("gradcam")(net, x, layer="cnov9")
    with pytest.raises(ValueError, match="no layer"):
        get_method("gradcam_pp")(net, x, layer="blocks.*")


def test_gradcam_on_a_timm_vision_transformer():
    timm = pytest.importorskip("timm")
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64).eval()
    x = _images(2, 64)
    assert default_layer(vit, x) == "blocks.11.norm1"
    for name in ("gradcam", "gradcam_pp"):
        cam = get_method(name)(vit, x)
        assert cam.shape == (2, 64, 64) and torch.isfinite(cam).all() and cam.max() > 0
        small = get_method(name)(vit, x, layer="blocks.5.norm1", upsample_to_input=False)
        assert small.shape == (2, 4, 4)


# ----------------------------------------------------------------------------- oracles


def _torchvision_relu_net(arch: str):
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return getattr(tv.models, arch)(weights=None, num_classes=10).eval()


@pytest.mark.parametrize("arch", ["vgg11", "resnet18"])
def test_guided_backprop_and_deconvnet_agree_with_captum(arch):
    attr = pytest.importorskip("captum.attr")
    net = _torchvision_relu_net(arch)
    size = 64 if arch == "resnet18" else 32
    x = _images(2, size)
    t = torch.tensor([3, 7])
    if arch == "resnet18":  # Captum's backward hooks cannot take in-place ReLUs
        ref_net = _torchvision_relu_net(arch)
        for m in ref_net.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
    else:
        ref_net = net
    for ours, theirs in (("guided_backprop", attr.GuidedBackprop),
                         ("deconvnet", attr.Deconvolution)):
        want = theirs(ref_net).attribute(x.clone(), target=t)
        got = get_method(ours)(net, x, t, reduce="none")
        scale = float(want.abs().max())
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4 * scale)
        assert not has_hooks(net)


@pytest.mark.slow
def test_integrated_gradients_agrees_with_captum_on_the_default_model(lite0, photo_batch):
    attr = pytest.importorskip("captum.attr")
    x = photo_batch[:2]
    t = torch.tensor([1, 500])
    want = attr.IntegratedGradients(lite0.module).attribute(
        x, target=t, n_steps=8, method="gausslegendre", internal_batch_size=16)
    ig = get_method("integrated_gradients")
    exact = ig(lite0, x, t, steps=8, reduce="none", fast=False)
    scale = float(want.abs().max())
    torch.testing.assert_close(exact, want, rtol=1e-3, atol=1e-5 * scale)
    # The batch-norm-folded copy rounds differently; a rounding change can flip a ReLU6 mask
    # at a few pixels, so it is compared as a whole.
    fast = ig(lite0, x, t, steps=8, reduce="none")
    assert float((fast - want).norm() / want.norm()) < 1e-2


@pytest.mark.slow
def test_gradcam_agrees_with_captum_and_pytorch_grad_cam_on_the_default_model(
    lite0, photo_batch
):
    attr = pytest.importorskip("captum.attr")
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = photo_batch[:3]
    t = [1, 500, 281]
    layer = lite0.module.bn2
    assert default_layer(lite0.module, x) == "bn2"
    want = attr.LayerGradCam(lite0.module, layer).attribute(
        x, target=torch.tensor(t), relu_attributions=True)[:, 0]
    got = get_method("gradcam")(lite0, x, t, upsample_to_input=False)
    torch.testing.assert_close(got, want.detach(), rtol=1e-3, atol=1e-4 * float(want.max()))

    targets = [ClassifierOutputTarget(c) for c in t]
    # Logits scaled by 1000 so that the 1e-6 pytorch-grad-cam adds in Grad-CAM++'s
    # denominator is negligible (gradients ~1e-3 on lite0; see gradcam_pp's docstring).
    scaled = nn.Sequential(lite0.module, Scale(1000.0)).eval()
    ref_net = copy.deepcopy(scaled).requires_grad_(True)  # it needs .backward()
    for ours, theirs in (("gradcam", pgc.GradCAM), ("gradcam_pp", pgc.GradCAMPlusPlus)):
        with theirs(model=ref_net, target_layers=[ref_net[0].bn2]) as cam:
            ref = torch.from_numpy(cam(input_tensor=x, targets=targets))
        m = get_method(ours)(scaled, x, t, layer="0.bn2")
        lo = m.amin(dim=(1, 2), keepdim=True)
        m = (m - lo) / (m.amax(dim=(1, 2), keepdim=True) - lo + 1e-7)
        torch.testing.assert_close(m, ref, rtol=0, atol=2e-3)


# ----------------------------------------------------------------------------- CLI


def test_methods_command_lists_every_method_with_its_paper(capsys):
    from deepinside.cli import main

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name, info in list_methods().items():
        assert name in out and info.paper in out
    assert main(["methods", "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(list_methods())


@pytest.mark.slow
def test_demo_figure_has_every_method(lite0, tmp_path, monkeypatch):
    from PIL import Image

    from deepinside.cli import methods as cli_methods
    from deepinside.cli.demo import DemoContext
    from deepinside.cli.methods import demo
    from deepinside.methods import method_names

    monkeypatch.setattr(cli_methods, "DEMO_OPTIONS", {  # the figure, not the methods' cost
        "rise": {"masks": 40}, "extremal_perturbation": {"iterations": 4},
        "scorecam": {"layer": "blocks.1"}})

    photo = Image.new("RGB", (64, 48), (120, 80, 40))
    ctx = DemoContext(lite0, [("flat", photo)], tmp_path)
    [path] = demo(ctx)
    assert path.is_file() and path.stat().st_size > 0
    assert set(method_names()) == set(list_methods())
