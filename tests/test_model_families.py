"""Every model family users bring, with every registered method (issue #12, item 2).

timm ViT, DeiT (distilled: two prefix tokens), Swin (channels-last maps), ConvNeXt; torchvision
ResNet, VGG, MobileNet v2 / v3. Each is the smallest variant, built with random weights (no
download), seeded, its batch-norm statistics estimated on random images so that activations
have the scale of a trained network (torchvision's MobileNets otherwise saturate every ReLU6
and their gradients vanish to 1e-11). VGG11 keeps its convolutional features and the shape of
its classifier (Linear-ReLU-Dropout twice, then Linear) with 256 hidden units instead of 4096,
so that it builds in a fraction of a second instead of allocating 500 MB.

The models are left in training mode with ``requires_grad`` weights, as a user who just built
one would hand it over; every call must leave them exactly so.
"""

from __future__ import annotations

import functools
import inspect
import socket
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

import deepinside
from deepinside.engine import capture_layer, default_layer, eval_mode
from deepinside.fastmodel import fast_copy
from deepinside.methods import get_method, list_methods

timm = pytest.importorskip("timm")
tvm = pytest.importorskip("torchvision.models")

torch.set_num_threads(1)


@dataclass(frozen=True)
class Family:
    build: Callable[[], nn.Module]
    size: int  # input side
    default: str  # the layer default_layer must choose
    narrow: str  # a layer with few channels, for methods that run one pass per channel


def _vgg11() -> nn.Module:
    m = tvm.vgg11(weights=None, num_classes=10, init_weights=False)
    m.classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 256), nn.ReLU(True), nn.Dropout(),
        nn.Linear(256, 256), nn.ReLU(True), nn.Dropout(), nn.Linear(256, 10))
    for mod in m.modules():  # torchvision's own initialisation of VGG
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, 0, 0.01)
            nn.init.zeros_(mod.bias)
    return m


def _coat(name: str, **kwargs) -> nn.Module:
    """timm's CoaT in small: a class token, convolutions inside its blocks (the position
    encodings, one shared by the blocks of a stage and named outside them), and with parallel
    blocks one norm per scale before attention (norm12, norm13, norm14)."""
    return timm.create_model(name, pretrained=False, img_size=64, num_classes=10,
                             embed_dims=(32, 32, 32, 32), serial_depths=(1, 1, 1, 1),
                             num_heads=8, mlp_ratios=(2, 2, 2, 2), **kwargs)


def _swin_v2() -> nn.Module:
    """torchvision's Swin v2 in small: its relative-position MLP (Linear, in-place ReLU,
    Linear) runs on a table of coordinates, on the weights alone."""
    from torchvision.models.swin_transformer import (
        PatchMergingV2,
        SwinTransformer,
        SwinTransformerBlockV2,
    )

    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                           window_size=[4, 4], block=SwinTransformerBlockV2,
                           downsample_layer=PatchMergingV2, num_classes=10)


FAMILIES = {
    "vit": Family(lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False,
                                            img_size=32, num_classes=10),
                  32, "blocks.11.norm1", "blocks.11.norm1"),
    "deit_distilled": Family(lambda: timm.create_model("deit_tiny_distilled_patch16_224",
                                                       pretrained=False, img_size=32,
                                                       num_classes=10),
                             32, "blocks.11.norm1", "blocks.11.norm1"),
    "swin": Family(lambda: timm.create_model("swin_tiny_patch4_window7_224", pretrained=False,
                                             img_size=64, window_size=4, num_classes=10),
                   64, "layers.3.blocks.1.norm1", "layers.0.blocks.1.norm1"),
    "convnext": Family(lambda: timm.create_model("convnext_atto", pretrained=False,
                                                 num_classes=10),
                       64, "stages", "stages.0.blocks.1.norm"),
    "coat_lite": Family(lambda: _coat("coat_lite_tiny"), 64, "serial_blocks4.0.norm1",
                        "serial_blocks4.0.norm1"),
    "coat": Family(lambda: _coat("coat_tiny", parallel_depth=1), 64,
                   "parallel_blocks.0.norm14", "parallel_blocks.0.norm14"),
    "swin_v2_tv": Family(_swin_v2, 32, "permute", "features.0"),
    "resnet18": Family(lambda: tvm.resnet18(weights=None, num_classes=10), 64, "layer4", "layer1"),
    "vgg11": Family(_vgg11, 64, "features", "features.2"),
    "mobilenet_v2": Family(lambda: tvm.mobilenet_v2(weights=None, num_classes=10),
                           64, "features", "features.1"),
    "mobilenet_v3_small": Family(lambda: tvm.mobilenet_v3_small(weights=None, num_classes=10),
                                 64, "features", "features.0"),
}


def _calibrate_batchnorm(m: nn.Module, size: int) -> None:
    bns = [b for b in m.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for b in bns:
        b.momentum = None  # cumulative average
    m.train()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        m(torch.randn((8, 3, size, size), generator=g))
    for b in bns:
        b.momentum = 0.1


@dataclass
class Built:
    name: str
    family: Family
    model: nn.Module
    images: Tensor  # Tensor[2, 3, size, size]
    targets: Tensor  # Tensor[2]


def _snapshot(m: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in m.state_dict().items()},
        "training": [(n, s.training) for n, s in m.named_modules()],
        "requires_grad": [(n, p.requires_grad) for n, p in m.named_parameters()],
        "hooks": [
            (n, len(s._forward_hooks), len(s._forward_pre_hooks), len(s._backward_hooks),
             len(s._backward_pre_hooks))
            for n, s in m.named_modules()
        ],
    }


def _assert_unchanged(m: nn.Module, before: dict) -> None:
    now = _snapshot(m)
    assert now["training"] == before["training"]
    assert now["requires_grad"] == before["requires_grad"]
    assert now["hooks"] == before["hooks"]
    assert now["state"].keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(now["state"][k], v), k
    assert all(p.grad is None for p in m.parameters())


@functools.cache
def _model(name: str) -> nn.Module:
    """The family's model, built once for the whole file (every test leaves it unchanged)."""
    fam = FAMILIES[name]
    torch.manual_seed(0)
    m = fam.build()
    _calibrate_batchnorm(m, fam.size)
    m.train()  # as a user hands over a freshly built model: training mode, trainable weights
    next(iter(m.children())).eval()  # and one submodule in another mode
    return m


def _images(name: str) -> Tensor:
    size = FAMILIES[name].size
    return torch.randn((2, 3, size, size), generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module", params=list(FAMILIES))
def built(request) -> Built:
    name = request.param
    return Built(name, FAMILIES[name], _model(name), _images(name), torch.tensor([3, 7]))


def _named_params(fn: Callable) -> set[str]:
    return {n for n, p in inspect.signature(fn).parameters.items()
            if p.kind is not p.VAR_KEYWORD}


def _options(fn: Callable, fam: Family) -> tuple[dict, bool]:
    """Cheap options the method takes by name, and whether it runs one pass per channel."""
    params = _named_params(fn)
    cheap = {"samples": 2, "steps": 2, "window": fam.size // 2, "stride": fam.size // 2,
             "masks": 16, "iterations": 3, "step": 2, "sigma": 4.0, "max_blur": 3.0}
    opts = {k: v for k, v in cheap.items() if k in params}
    per_channel = {"layer", "batch_size"} <= params
    if per_channel:
        opts["layer"] = fam.narrow  # B * C forward passes: a layer with few channels
    return opts, per_channel


def _close(a: Tensor, b: Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()) + 1e-12)


def _same_up_to_rounding(a: Tensor, b: Tensor) -> None:
    """Equal maps up to float rounding, as the exactness test on the default model allows: a
    pre-activation within rounding of a ReLU / ReLU6 kink (or a max-pooling near-tie) may fall
    on the other side when the order of operations changes (folded batch norm, channels_last,
    another batch size), which moves a part of the map by a few percent. Per image: 99.9% of
    the pixels within 5% of the map's largest magnitude, and a correlation above 0.999."""
    assert a.shape == b.shape
    for x, y in zip(a.double(), b.double(), strict=True):
        scale = float(y.abs().max())
        if scale == 0:
            assert float(x.abs().max()) == 0
            continue
        err = (x - y).abs().flatten() / scale
        assert float(err.quantile(0.999)) < 0.05, float(err.max())
        if float(err.max()) > 1e-4:
            assert float(torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1]) > 0.999


@pytest.mark.parametrize("method", sorted(list_methods()))
def test_every_method_on_every_family(built, method):
    """Runs; Tensor[B, H, W], finite, not all zero; batched == one by one; fast == exact;
    nothing of the model changed. Methods that run one pass per channel of a layer (they take
    ``layer`` and ``batch_size``: Score-CAM, Ablation-CAM) run once, on a layer with few
    channels (``Family.narrow``), for time."""
    fn = get_method(method)
    opts, per_channel = _options(fn, built.family)
    m, x, t = built.model, built.images, built.targets
    before = _snapshot(m)
    x_before = x.clone()
    whole = fn(m, x, t, **opts)
    _assert_unchanged(m, before)
    assert torch.equal(x, x_before) and not x.requires_grad
    assert whole.shape == (2, built.family.size, built.family.size)
    assert torch.isfinite(whole).all()
    if "layer" not in _named_params(fn):  # a rectified CAM may be all zero on random weights
        assert whole.abs().amax() > 0
    if per_channel:  # B * C passes: their batching is tested on toy models (test_methods*)
        _assert_unchanged(m, before)
        return
    for i in (0, 1):
        _same_up_to_rounding(fn(m, x[i : i + 1], int(t[i]), **opts), whole[i : i + 1])
    # LRP is left out of fast == exact: its map depends on the canonisation (batch norm merged
    # into the convolution by the fast copy, or passed through unmerged, as zennit's with and
    # without its canonizer). Its own tests (test_methods_lrp.py) check conservation with and
    # without the fast copy, and equality with zennit with its canonizer.
    if "fast" in _named_params(fn) and method != "lrp":
        _same_up_to_rounding(whole, fn(m, x, t, fast=False, **opts))
    _assert_unchanged(m, before)


def test_default_layer_per_family(built):
    m, x = built.model, built.images
    assert default_layer(m, x) == built.family.default
    cap = capture_layer(m, x, built.targets)
    assert cap.name == built.family.default
    assert cap.activations.shape == cap.gradients.shape and cap.activations.shape[0] == 2
    assert cap.activations.shape[2] * cap.activations.shape[3] > 1
    assert (cap.gradients != 0).any(dim=1).all()  # every position reaches the class score
    cam = get_method("gradcam")(m, x, built.targets, relu=False)
    assert (cam.abs().amax(dim=(1, 2)) > 0).all()


def test_rectifier_rules_act_where_the_family_has_rectifiers(built):
    """Guided backprop differs from the gradient on ReLU / ReLU6 networks; on the GELU
    transformers (no rectifier on the input's path; Swin v2's ReLU acts on its position
    table) it is the gradient itself."""
    m, x, t = built.model, built.images, built.targets
    grad = get_method("gradient")(m, x, t)
    guided = get_method("guided_backprop")(m, x, t)
    has_relu = _rectifies_the_input(m, x)
    if has_relu:
        assert not torch.allclose(guided, grad, rtol=1e-3, atol=1e-6)
    else:
        _close(guided, grad)


def _rectifies_the_input(m: nn.Module, x: Tensor) -> bool:
    """Whether a ReLU / ReLU6 module of ``m`` acts on something that depends on ``x``."""
    seen = []
    hooks = [s.register_forward_hook(lambda _m, a, _o: seen.append(a[0].requires_grad))
             for s in m.modules() if isinstance(s, (nn.ReLU, nn.ReLU6))]
    frozen = [p for p in m.parameters() if p.requires_grad]
    try:
        for p in frozen:
            p.requires_grad_(False)
        with eval_mode(m):
            m(x.clone().requires_grad_(True))
    finally:
        for h in hooks:
            h.remove()
        for p in frozen:
            p.requires_grad_(True)
    return any(seen)


def test_the_fast_copy_folds_every_batch_norm(built):
    """So that "fast == exact" above is not vacuous: on ResNet and the MobileNets the private
    copy has no batch norm left and runs channels_last; the caller's model keeps its own."""
    m, x = built.model, built.images
    before = _snapshot(m)
    with eval_mode(m):
        net = fast_copy(m, x)
    assert net is not None and net is not m
    bns = [s for s in m.modules() if isinstance(s, nn.modules.batchnorm._BatchNorm)]
    assert not any(isinstance(s, nn.modules.batchnorm._BatchNorm) for s in net.modules())
    assert len(bns) == {"resnet18": 20, "mobilenet_v2": 52, "mobilenet_v3_small": 34}.get(
        built.name, 0)
    assert all(p.is_contiguous(memory_format=torch.channels_last)
               for p in net.parameters() if p.dim() == 4)
    _assert_unchanged(m, before)


# ----------------------------------------------------------------------------- tokens, layouts


def _output_of(m: nn.Module, name: str, x: Tensor) -> Tensor:
    out = []
    h = m.get_submodule(name).register_forward_hook(lambda _m, _a, o: out.append(o))
    was = m.training
    try:
        m.eval()
        with torch.no_grad():
            m(x)
    finally:
        h.remove()
        m.train(was)
    return out[0]


@pytest.mark.parametrize("family, layer, prefix", [
    ("vit", "blocks.11.norm1", 1), ("deit_distilled", "blocks.11.norm1", 2),
    ("deit_distilled", "patch_embed", 0)])
def test_tokens_lose_their_prefix_and_lie_on_the_patch_grid(family, layer, prefix):
    m = _model(family)
    assert m.num_prefix_tokens == (2 if family == "deit_distilled" else 1)
    x = torch.randn(2, 3, 32, 32)
    tokens = _output_of(m, layer, x)
    cap = capture_layer(m, x, 0, layer=layer)
    want = tokens[:, prefix:].reshape(2, 2, 2, -1).permute(0, 3, 1, 2)
    torch.testing.assert_close(cap.activations, want)


@pytest.mark.parametrize("kwargs, size, grid, prefix", [
    ({"dynamic_img_size": True}, (48, 80), (3, 5), 1),  # another input size, not square
    ({"reg_tokens": 4, "no_embed_class": True}, (32, 32), (2, 2), 5),  # register tokens
])
def test_token_grids_follow_the_input_and_the_model(kwargs, size, grid, prefix):
    torch.manual_seed(0)
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=2,
                          num_classes=10, **kwargs).eval()
    assert m.num_prefix_tokens == prefix
    x = torch.randn(2, 3, *size)
    assert default_layer(m, x) == "blocks.1.norm1"
    tokens = _output_of(m, "blocks.1.norm1", x)
    cap = capture_layer(m, x, 0)
    want = tokens[:, prefix:].reshape(2, *grid, -1).permute(0, 3, 1, 2)
    torch.testing.assert_close(cap.activations, want)


def test_swin_channels_last_maps_are_permuted():
    m = _model("swin")
    x = torch.randn(2, 3, 64, 64)
    for layer, side in (("layers.3.blocks.1.norm1", 2), ("layers.1", 8), ("norm", 2)):
        out = _output_of(m, layer, x)
        assert out.shape == (2, side, side, out.shape[-1])  # Tensor[B, h, w, C]
        cap = capture_layer(m, x, 0, layer=layer)
        torch.testing.assert_close(cap.activations, out.permute(0, 3, 1, 2))
        assert cap.gradients.shape == cap.activations.shape


def test_convnext_channels_last_inside_its_blocks():
    """convnext_atto runs its MLP as 1x1 convolutions (LayerNorm2d, channels first); with
    ``conv_mlp=False`` (the larger ConvNeXts) a block permutes to channels last inside."""
    torch.manual_seed(0)
    m = timm.create_model("convnext_atto", pretrained=False, num_classes=10, conv_mlp=False)
    x = torch.randn(2, 3, 64, 64)
    assert default_layer(m, x) == "stages"
    for layer, channels in (("stages.1.blocks.0.norm", 80), ("stages.1.blocks.0.mlp.fc1", 320),
                            ("stages.1.blocks.0.mlp.act", 320)):
        out = _output_of(m, layer, x)  # nn.LayerNorm / nn.Linear / GELU on Tensor[B, h, w, C]
        assert out.shape == (2, 8, 8, channels)
        cap = capture_layer(m, x, 0, layer=layer)
        torch.testing.assert_close(cap.activations, out.permute(0, 3, 1, 2))
    cap = capture_layer(m, x, 0, layer="stages.1.blocks.0.conv_dw")  # channels first
    torch.testing.assert_close(cap.activations, _output_of(m, "stages.1.blocks.0.conv_dw", x))


@pytest.mark.parametrize("family, layer, match", [
    ("resnet18", "fc", r"layer 'fc' outputs Tensor\[2, 10\]: it is a vector per image.*"
                       r"e\.g\. 'layer4' \(the default\)"),
    ("resnet18", "avgpool", r"layer 'avgpool' outputs Tensor\[2, 512, 1, 1\]: it is a 1 x 1 "
                            r"map.*'layer4'"),
    ("vit", "norm", r"depend on layer 'norm' only through its class \(prefix\) tokens.*"
                    r"'blocks\.11\.norm1' \(the default\)"),
    ("swin", "layers.0.blocks.0.attn", r"layer 'layers\.0\.blocks\.0\.attn' outputs "
                                       r"Tensor\[32, 16, 96\].*not the batch of 2 images"),
    ("swin", "head.fc", r"'head\.fc'.*not a spatial map.*'layers\.3\.blocks\.1\.norm1'"),
])
def test_a_layer_that_cannot_be_used_is_a_clear_error(family, layer, match):
    m, x = _model(family), _images(family)
    with pytest.raises(ValueError, match=match):
        get_method("gradcam")(m, x, layer=layer)
    assert all(not s._forward_hooks for s in m.modules())


# ----------------------------------------------------------------------------- load_model


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to reach the network fails the test."""
    def refuse(*_a, **_k):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("spec", [
    "timm:vit_tiny_patch16_224", "timm:deit_tiny_distilled_patch16_224",
    "timm:swin_tiny_patch4_window7_224", "timm:convnext_atto", "torchvision:resnet18",
    "torchvision:mobilenet_v2", "torchvision:mobilenet_v3_small",
])
def test_load_model_with_a_local_state_dict_offline(spec, tmp_path, offline):
    # (torchvision:vgg11 takes the same path; its 500 MB state dict is left out for time.)
    lib, name = spec.split(":")
    torch.manual_seed(0)
    ref = timm.create_model(name, pretrained=False) if lib == "timm" else tvm.get_model(name)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.01)  # not the state a fresh model would have
    path = tmp_path / "w.pth"
    torch.save(ref.state_dict(), path)
    clf = deepinside.load_model(spec, weights=path)
    assert clf.name == spec and len(clf.class_names) == 1000
    assert not clf.module.training
    assert not any(p.requires_grad for p in clf.module.parameters())
    got = clf.module.state_dict()
    assert got.keys() == ref.state_dict().keys()
    assert all(torch.equal(got[k], v) for k, v in ref.state_dict().items())
    h, w = clf.preprocessing.input_size
    cam = get_method("gradcam")(clf, torch.randn(1, 3, h, w))
    assert cam.shape == (1, h, w) and torch.isfinite(cam).all()


@pytest.mark.parametrize("spec, kwargs", [
    ("torchvision:googlenet", {"aux_logits": False, "init_weights": False}),
    ("torchvision:inception_v3", {"aux_logits": False, "init_weights": False}),
    ("torchvision:squeezenet1_1", {}),  # the head is a 1 x 1 convolution
    ("torchvision:mnasnet0_5", {}),  # refuses a state dict without its version metadata
    ("timm:deit_tiny_distilled_patch16_224", {}),  # two heads: ("head", "head_dist")
])
def test_load_model_with_a_fine_tuned_head_offline(spec, kwargs, tmp_path, offline):
    """A 10-class model as users train them (GoogLeNet and Inception v3 without their
    auxiliary heads) saved with torch.save(model.state_dict()) loads by name with its head."""
    lib, name = spec.split(":")
    torch.manual_seed(0)
    ref = (timm.create_model(name, pretrained=False, num_classes=10) if lib == "timm"
           else tvm.get_model(name, weights=None, num_classes=10, **kwargs))
    path = tmp_path / "w.pth"
    torch.save(ref.state_dict(), path)
    clf = deepinside.load_model(spec, weights=path)
    assert clf.class_names == [f"class {i}" for i in range(10)]
    got = clf.module.state_dict()
    assert got.keys() == ref.state_dict().keys()
    assert all(torch.equal(got[k], v) for k, v in ref.state_dict().items())
