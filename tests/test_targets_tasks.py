"""Targets for other tasks (issue #19): multi-label and single-logit heads, segmentation
(``region_score``), detection (``box_score``), any output read once by the engine."""

from __future__ import annotations

import pytest
import torch
from models import LinearNet, PixelSegmenter, Unreadable, make_tiny
from torch import nn

import deepinside
from deepinside import box_score, class_score, region_score
from deepinside.engine import input_gradient
from deepinside.methods import get_method
from deepinside.targets import parse_target

torch.set_num_threads(1)


def _autograd(fn, x: torch.Tensor) -> torch.Tensor:
    leaf = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(leaf), leaf)
    return g


def test_multi_label_and_single_logit_heads_need_no_new_target():
    """An index is that label's logit; class_score sums labels; weights=[-1] is the other class
    of a one-logit binary head. Against autograd by hand."""
    net = LinearNet(size=8, classes=4)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    both, _, _ = input_gradient(net, x, class_score([1, 3]), fast=False)
    torch.testing.assert_close(both, _autograd(lambda v: net(v)[:, [1, 3]].sum(), x))
    one = LinearNet(size=8, classes=1)
    neg, _, _ = input_gradient(one, x, class_score([0], weights=[-1]), fast=False)
    pos, _, _ = input_gradient(one, x, 0, fast=False)
    torch.testing.assert_close(neg, -pos)
    torch.testing.assert_close(pos, _autograd(lambda v: one(v)[:, 0].sum(), x))


def test_region_score_is_autograd_of_the_masked_sum_and_zero_outside_the_mask():
    seg = PixelSegmenter(classes=3)
    x = torch.randn(2, 3, 12, 10, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(12, 10, dtype=torch.bool)
    mask[3:7, 2:6] = True
    for fast in (False, True):
        g, t, out = input_gradient(seg, x, region_score(2, mask), fast=fast)
        want = _autograd(lambda v: (seg(v)["out"][:, 2] * mask).sum(), x)
        torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-6)
        assert out.shape == (2, 3, 12, 10) and callable(t)
    assert (g[:, :, ~mask] == 0).all() and (g[:, :, mask] != 0).any()
    per_image = torch.stack([mask, ~mask]).float()  # one mask per image
    g2, _, _ = input_gradient(seg, x, region_score(1, per_image), fast=False)
    assert (g2[0][:, ~mask] == 0).all() and (g2[1][:, mask] == 0).all()


def test_a_class_target_on_a_segmenter_and_an_unreadable_output_are_one_line():
    seg = PixelSegmenter()
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"target 1 .* needs class logits Tensor\[B, K\], but "
                       r"the model returns Tensor\[1, 3, 8, 8\]; aim with a callable"):
        deepinside.saliency(seg, x, target=1)
    with pytest.raises(ValueError, match="needs class logits"):
        get_method("rise")(seg, x, region_score(0, torch.ones(8, 8)), masks=4)
    with pytest.raises(ValueError, match="returned str, which holds no tensor that a target can "
                       "read"):
        deepinside.saliency(Unreadable(), x)
    clf = deepinside.load_model(seg, output=lambda o: o["out"].mean(dim=(2, 3)))
    assert deepinside.forward_logits(clf, x).shape == (1, 3)  # output= reads logits out of it


def test_a_target_callable_gets_the_raw_output_when_it_is_not_logits():
    class Named(nn.Module):
        def __init__(self):
            super().__init__()
            self.seg = PixelSegmenter()

        def forward(self, x):
            return {"mask_logits": self.seg(x)["out"], "extra": 1}

    seen = []

    def score(out):
        seen.append(type(out))
        return out["mask_logits"][:, 0].sum(dim=(1, 2))

    g, _, _ = input_gradient(Named(), torch.randn(2, 3, 6, 6), score)
    assert seen and all(t is dict for t in seen) and g.shape == (2, 3, 6, 6)


@pytest.mark.slow
def test_torchvision_segmentation_every_gradient_and_cam_method():
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(0)
    seg = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(64, 64)
    mask[16:40, 8:30] = 1
    target = region_score(1, mask)
    g, _, _ = input_gradient(seg, x, target, fast=False)
    want = _autograd(lambda v: (seg(v)["out"][:, 1] * mask).sum(), x)
    torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
    for method in ("gradient", "integrated_gradients", "gradcam", "layercam"):
        m = get_method(method)(seg, x, target, **({"steps": 2} if "integ" in method else {}))
        assert m.shape == (2, 64, 64) and torch.isfinite(m).all(), method


@pytest.mark.slow
def test_torchvision_detection_box_score():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    det = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None,
                                                num_classes=3).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        [found] = det(x)
    assert len(found["boxes"]), "random weights still detect something"
    box, label = found["boxes"][0], int(found["labels"][0])
    g, _, out = input_gradient(det, x, box_score(box, label), fast=False)

    def chosen(v):  # the detection of that label overlapping the box most, by hand
        [d] = det(v)
        from torchvision.ops import box_iou

        iou = box_iou(box[None], d["boxes"].detach())[0]
        iou[d["labels"] != label] = -1
        return d["scores"][iou.argmax()]

    torch.testing.assert_close(g, _autograd(chosen, x), rtol=1e-4, atol=1e-7)
    assert isinstance(out, list) and set(out[0]) >= {"boxes", "labels", "scores"}
    far = box_score([0.0, 0.0, 1.0, 1.0], label)  # overlaps nothing: score 0, map 0
    m = deepinside.saliency(det, x, target=far)
    assert torch.isfinite(m).all() and float(m.abs().max()) == 0
    cam = get_method("gradcam")(det, x, box_score(box, label), layer="backbone.body.12")
    assert cam.shape == (1, 64, 64) and torch.isfinite(cam).all()


def test_parse_target_reads_the_command_lines_text():
    clf = deepinside.load_model(make_tiny(), class_names=["tabby, tabby cat", "tiger cat", "fox",
                                                           "hen", "goldfish"])
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0]])
    assert parse_target(None, clf) is None and parse_target(" ", clf) is None
    assert parse_target("3", clf) == 3 and parse_target("hen", clf) == 3
    assert parse_target("tabby, tabby cat", clf) == 0  # a whole description is one class
    assert parse_target("top2", clf) == "top2"
    both = parse_target("tiger cat, hen", clf)
    assert both.classes == [1, 3] and float(both(logits)) == 5.0
    assert parse_target("1,3", clf).classes == [1, 3]
    for bad, match in (("7", "out of range"), ("tabbby", "did you mean"), ("top0", "at least 1"),
                       ("hen, zebra", "unknown class 'zebra'")):
        with pytest.raises(ValueError, match=match):
            parse_target(bad, clf)


def test_any_output_is_read_once_and_the_fast_copy_never_trips_on_it():
    """Batch-norm networks returning a mapping with a string in it, or a tuple with a list: the
    logits are read (``logits``, the first tensor) and the fast copy checks such an output (or
    falls back to the module) instead of crashing."""

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = make_tiny()

        def forward(self, x):
            return {"logits": self.net(x), "note": "a string beside the logits"}

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = make_tiny()

        def forward(self, x):
            return (self.net(x), [self.net(x) * 2])

    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    for model in (Odd(), Pair()):
        exact = deepinside.forward_logits(model, x, fast=False)
        assert exact.shape == (2, 5)
        torch.testing.assert_close(deepinside.forward_logits(model, x), exact, rtol=1e-4,
                                   atol=1e-5)
        torch.testing.assert_close(deepinside.saliency(model, x),
                                   deepinside.saliency(model, x, fast=False), rtol=1e-3,
                                   atol=1e-5)


def test_a_dataclass_output_is_read_by_its_logits_field_and_the_batch_norm_folded():
    """A forward returning a dataclass (features and logits) is read as a mapping of its
    fields: its ``logits``, the map of the network that returns them alone, and the fast copy
    folds the batch norm (it compares such outputs)."""
    from dataclasses import dataclass

    from deepinside.engine import eval_mode
    from deepinside.fastmodel import fast_copy

    @dataclass
    class Out:
        features: torch.Tensor
        logits: torch.Tensor

    class WithFeatures(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = make_tiny()

        def forward(self, x):
            return Out(x.mean(dim=(2, 3)), self.net(x))

    model = WithFeatures().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(deepinside.forward_logits(model, x, fast=False), model.net(x))
    for method in ("gradient", "gradcam", "lrp"):
        torch.testing.assert_close(deepinside.get_method(method)(model, x, 1, fast=False),
                                   deepinside.get_method(method)(model.net, x, 1, fast=False))
    with eval_mode(model):
        net = fast_copy(model, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
