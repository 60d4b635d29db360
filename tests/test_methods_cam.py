"""The CAM family beyond Grad-CAM: Score-CAM, Layer-CAM, HiResCAM, XGrad-CAM, Eigen-CAM and
Ablation-CAM, against pytorch-grad-cam on the same layer and targets of a ReLU network."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from models import tiny_classifier
from torch import nn

from deepinside.fastmodel import has_hooks
from deepinside.methods import get_method, list_methods

torch.set_num_threads(1)

CAMS = ["scorecam", "layercam", "hirescam", "xgradcam", "eigencam", "ablationcam"]
LAYER = "features.5"  # the second ReLU: Tensor[B, 8, 16, 16], non-negative


class ConcatSkip(nn.Module):
    """conv-ReLU, conv-ReLU (the layer), then the head sees the layer concatenated with the
    first feature map: the part above the layer needs the lower tensor at the same batch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.low = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.mid = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(10, 5)

    def forward(self, x):
        low = self.low(x)
        return self.head(torch.cat([self.mid(low), low], dim=1).mean(dim=(2, 3)))


def _images(b=3, size=32, seed=2):
    return torch.randn((b, 3, size, size), generator=torch.Generator().manual_seed(seed))


def _unit(m: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1], as pytorch-grad-cam's output (its only post-processing)."""
    lo = m.amin(dim=(1, 2), keepdim=True)
    return (m - lo) / (m.amax(dim=(1, 2), keepdim=True) - lo).clamp(min=1e-30)


def _reference(name: str, net: nn.Module, layer: nn.Module, x, t):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = {"scorecam": pgc.ScoreCAM, "layercam": pgc.LayerCAM, "hirescam": pgc.HiResCAM,
           "xgradcam": pgc.XGradCAM, "eigencam": pgc.EigenCAM,
           "ablationcam": pgc.AblationCAM}[name]
    kwargs = {"batch_size": 3} if name == "ablationcam" else {}
    with cls(model=net, target_layers=[layer], **kwargs) as cam:
        return torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c))
                                                             for c in t]))


def test_registry_lists_the_cams_with_their_papers():
    methods = list_methods()
    for name in CAMS:
        assert name in methods and methods[name].paper and methods[name].fn is get_method(name)


@pytest.mark.parametrize("name", [n for n in CAMS if n != "eigencam"])
def test_agrees_with_pytorch_grad_cam(name):
    pytest.importorskip("pytorch_grad_cam")
    clf = tiny_classifier()
    clf.module.features[4].bias[[2, 5]] = -100.0  # two dead channels: Score-CAM and
    x = _images()                                 # Ablation-CAM treat them apart
    assert (clf.module.features(x)[:, [2, 5]] == 0).all()
    ref_net = copy.deepcopy(clf.module).requires_grad_(True)  # pytorch-grad-cam calls backward
    t = torch.tensor([0, 3, 5])
    want = _reference(name, ref_net, ref_net.features[5], x, t)
    got = get_method(name)(clf, x, t, layer=LAYER)
    assert got.shape == want.shape == (3, 32, 32)
    assert float(want.amax(dim=(1, 2)).min()) > 0.99  # a map, not all zeros
    torch.testing.assert_close(_unit(got), want, rtol=0, atol=1e-5)


def test_hirescam_sums_to_the_score_before_global_average_pooling():
    clf = tiny_classifier()  # features -> spatial mean -> linear head
    x = _images()
    t = torch.tensor([0, 3, 5])
    cam = get_method("hirescam")(clf, x, t, layer=LAYER, relu=False, upsample_to_input=False)
    with torch.no_grad():
        logits = clf.module(x)
    want = logits.gather(1, t[:, None])[:, 0] - clf.module.head.bias[t]
    torch.testing.assert_close(cam.sum(dim=(1, 2)), want, rtol=1e-4, atol=1e-5)


def test_eigencam_agrees_with_pytorch_grad_cam_up_to_the_sign_of_the_singular_vector():
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    clf = tiny_classifier()
    x = _images()
    act = clf.module.features(x).detach()  # the layer's output, computed independently
    theirs = torch.from_numpy(get_2d_projection(act.numpy()))
    raw = get_method("eigencam")(clf, x, layer=LAYER, relu=False, upsample_to_input=False)
    sign = torch.sign((raw * theirs).sum(dim=(1, 2)))[:, None, None]
    assert (sign != 0).all()
    scale = float(theirs.abs().max())
    torch.testing.assert_close(raw, sign * theirs, rtol=0, atol=1e-5 * scale)
    # Our sign: the larger lobe of the map is positive (Bro et al. 2008, issue #17).
    assert ((raw.sign() * raw**2).sum(dim=(1, 2)) > 0).all()
    # The rest of the pipeline as pytorch-grad-cam's: rectify, scale, resize, scale again.
    want = _unit(torch.from_numpy(scale_cam_image(np.maximum((sign * theirs).numpy(), 0),
                                                  (32, 32))))
    got = get_method("eigencam")(clf, x, 4, layer=LAYER)  # any target: the same map
    torch.testing.assert_close(_unit(got), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["scorecam", "ablationcam"])
def test_many_pass_methods_report_progress_and_clean_up_after_an_error(name):
    clf = tiny_classifier()
    x = _images(2)
    calls = []
    get_method(name)(clf, x, layer=LAYER, batch_size=3, progress=lambda d, n: calls.append((d, n)))
    assert calls[-1] == (16, 16) and len(calls) >= 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    def boom(done, total):
        raise RuntimeError("stop")

    clf.module.train()
    with pytest.raises(RuntimeError, match="stop"):
        get_method(name)(clf, x, layer=LAYER, batch_size=3, progress=boom)
    assert not has_hooks(clf.module) and all(m.training for m in clf.module.modules())


def test_ablationcam_runs_only_from_the_layer_up():
    clf = tiny_classifier()
    x = _images(2)
    first = clf.module.features[0]
    sizes: list[int] = []
    handle = first.register_forward_hook(lambda _m, a, _o: sizes.append(a[0].shape[0]))
    try:
        rows: list[int] = []
        head = clf.module.head.register_forward_hook(lambda _m, a, _o: rows.append(a[0].shape[0]))
        try:
            get_method("ablationcam")(clf, x, layer=LAYER, batch_size=4)
        finally:
            head.remove()
    finally:
        handle.remove()
    # one pass of the batch (and the default-layer / probe passes), then one image per chunk
    assert max(sizes[1:]) == 1 and sizes.count(2) == 1
    assert sum(rows[1:]) >= 2 * (8 + 1)  # every ablated copy went through the head


def test_ablationcam_falls_back_to_whole_passes_when_the_head_needs_lower_tensors():
    pytest.importorskip("pytorch_grad_cam")
    net = ConcatSkip().eval()
    x = _images(2, 16)
    t = torch.tensor([1, 3])
    ref = copy.deepcopy(net)
    want = _reference("ablationcam", ref, ref.mid[1], x, t)
    sizes: list[int] = []
    handle = net.low.register_forward_hook(lambda _m, a, _o: sizes.append(a[0].shape[0]))
    try:
        got = get_method("ablationcam")(net, x, t, layer="mid.1", batch_size=4)
    finally:
        handle.remove()
    assert 4 in sizes  # whole passes of four copies after the one-image pass failed
    torch.testing.assert_close(_unit(got), want, rtol=0, atol=1e-5)


def test_the_cams_run_on_a_vision_transformer():
    timm = pytest.importorskip("timm")
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64).eval()
    x = _images(2, 64)
    for name in CAMS:
        kw = {"batch_size": 96} if name in ("scorecam", "ablationcam") else {}
        cam = get_method(name)(vit, x, **kw)
        assert cam.shape == (2, 64, 64) and torch.isfinite(cam).all(), name


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of ``Tensor[B, C, h, w]`` (ConvNeXt's): every location's
    channels have mean 0, as a ViT's or Swin's ``norm1`` tokens."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class NormNet(nn.Module):
    """Patch embedding (conv-BN-GELU), a channel LayerNorm (the layer), pooling, linear. The
    fast copy folds the batch norm, so its LayerNorm output differs from the module's in the
    last bits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.embed = nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), nn.BatchNorm2d(16), nn.GELU())
        self.norm = LayerNorm2d(16)
        self.head = nn.Linear(16, 5)
        with torch.no_grad():
            self.embed[1].running_mean.uniform_(-0.2, 0.2)
            self.embed[1].running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        return self.head(self.norm(self.embed(x)).mean(dim=(2, 3)))


def _object_photos(b=8, size=32, seed=5):
    """Noise with a bright 8 x 8 square (two by two tokens) at a different place in each photo;
    returns the photos and the square's token mask ``Tensor[B, 8, 8]``."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn((b, 3, size, size), generator=g)
    mask = torch.zeros((b, size // 4, size // 4), dtype=torch.bool)
    for i in range(b):
        r, c = (int(v) for v in torch.randint(0, size // 4 - 1, (2,), generator=g))
        x[i, :, 4 * r:4 * r + 8, 4 * c:4 * c + 8] += 2.0
        mask[i, r:r + 2, c:c + 2] = True
    return x, mask


def test_eigencam_sign_on_a_layernorm_layer_is_the_same_for_the_fast_copy_and_any_channel_order():
    """Issue #17: on a LayerNorm output the loadings of the principal component sum to 0, so a
    rule based on that sum is rounding noise. The larger lobe of the map is positive instead:
    the same map from the module and its folded copy, from the channels in any order, and the
    object (a small, distinct group of locations) on the positive side."""
    from deepinside.methods.eigencam import principal_projection

    net = NormNet().eval()
    x, mask = _object_photos()
    act = net.norm(net.embed(x)).detach()  # [B, 16, 8, 8]
    assert act.mean(dim=1).abs().max() < 1e-5  # every location's channels have mean 0
    exact = get_method("eigencam")(net, x, layer="norm", relu=False, upsample_to_input=False,
                                   fast=False)
    fast = get_method("eigencam")(net, x, layer="norm", relu=False, upsample_to_input=False,
                                  fast=True)
    scale = float(exact.abs().max())
    torch.testing.assert_close(fast, exact, rtol=0, atol=1e-4 * scale)
    torch.testing.assert_close(principal_projection(act), exact, rtol=0, atol=1e-4 * scale)
    for seed in range(4):
        perm = torch.randperm(16, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(principal_projection(act[:, perm]), exact, rtol=0,
                                   atol=1e-4 * scale)
    inside = (exact * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))
    assert (inside > 0).all(), inside


def test_eigencam_orientation_is_the_larger_lobe_and_breaks_ties_at_the_largest_value():
    from deepinside.methods.eigencam import orientation

    p = torch.tensor([[3.0, -1.0, -1.0, -1.0],  # one large positive, three small: 9 > 3
                      [-3.0, 1.0, 1.0, 1.0],  # its negative: flip
                      [1.0, -1.0, 2.0, -2.0],  # symmetric: the first largest |p| (2.0) decides
                      [-2.0, 1.0, 2.0, -1.0],  # symmetric: the first largest is -2.0: flip
                      [0.0, 0.0, 0.0, 0.0]])  # no map: +1
    assert orientation(p).tolist() == [1.0, -1.0, 1.0, -1.0, 1.0]
    torch.testing.assert_close(orientation(-p[:4]), -orientation(p[:4]))
