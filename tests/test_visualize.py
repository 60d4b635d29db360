"""Feature visualisation of units: objectives, visualize, top photos (deepinside.classmodel)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from models import make_tiny
from torch import nn

from deepinside.classmodel import (
    channel,
    class_logit,
    class_model,
    direction,
    diversity,
    layer,
    mode_defaults,
    neuron,
    rival_logits,
    top_photos,
    unit_gradient,
    unit_values,
    visualize,
)
from deepinside.classmodel.objectives import Activations, gram_similarity
from deepinside.models import Classifier, Preprocessing


def tiny_stages(m, x):
    """TinyCNN by hand: (output of act2 ``Tensor[B, 8, h, w]``, output of conv1, logits)."""
    z1 = F.conv2d(x, m.conv1.weight, m.conv1.bias, padding=1)
    bn1 = (z1 - m.bn1.running_mean[:, None, None]) / torch.sqrt(
        m.bn1.running_var[:, None, None] + m.bn1.eps) * m.bn1.weight[:, None, None] \
        + m.bn1.bias[:, None, None]
    p = F.max_pool2d(F.relu(bn1), 2)
    z2 = F.conv2d(p, m.conv2.weight, padding=1)
    bn2 = (z2 - m.bn2.running_mean[:, None, None]) / torch.sqrt(
        m.bn2.running_var[:, None, None] + m.bn2.eps) * m.bn2.weight[:, None, None] \
        + m.bn2.bias[:, None, None]
    a2 = F.relu6(bn2)
    return a2, z1, F.linear(a2.mean(dim=(2, 3)), m.fc.weight, m.fc.bias)


V = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.3, 0.0, -0.2, 1.0])
OBJECTIVES = {
    "channel": (channel("act2", 3), lambda a2, z1, lg: a2[:, 3].mean(dim=(1, 2))),
    "neuron": (neuron("act2", 5, x=1, y=2), lambda a2, z1, lg: a2[:, 5, 2, 1]),
    "neuron centre": (neuron("act2", 5), lambda a2, z1, lg: a2[:, 5, 4, 4]),
    "layer": (layer("act2"), lambda a2, z1, lg: a2.pow(2).mean(dim=(1, 2, 3))),
    "direction": (direction("act2", V),
                  lambda a2, z1, lg: (a2 * V[None, :, None, None]).sum(1).mean(dim=(1, 2))),
    "class": (class_logit(2), lambda a2, z1, lg: lg[:, 2]),
    "rivals": (class_logit(2) - rival_logits(2),
               lambda a2, z1, lg: lg[:, 2] - (lg.sum(1) - lg[:, 2]) / 4),
    "sum": (channel("act2", 3) - 0.5 * class_logit(1) + layer("conv1") / 3,
            lambda a2, z1, lg: a2[:, 3].mean(dim=(1, 2)) - 0.5 * lg[:, 1]
            + z1.pow(2).mean(dim=(1, 2, 3)) / 3),
}


@pytest.mark.parametrize("name", list(OBJECTIVES))
@pytest.mark.parametrize("fast", [True, False])
def test_objective_gradient_equals_autograd_on_the_expression(name, fast):
    m = make_tiny(4, dtype=torch.float64)
    obj, expr = OBJECTIVES[name]
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grad, values = unit_gradient(m, obj, x, fast=fast)
    xr = x.clone().requires_grad_(True)
    want = expr(*tiny_stages(m, xr))
    (want_grad,) = torch.autograd.grad(want.sum(), xr)
    torch.testing.assert_close(values, want.detach(), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(grad, want_grad, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(unit_values(m, obj, x, fast=fast), want.detach(), rtol=1e-6,
                               atol=1e-8)
    assert all(p.grad is None for p in m.parameters())
    assert all(not mod._forward_hooks for mod in m.modules())


def test_per_image_arguments_and_bad_units():
    acts = Activations(torch.arange(12.0).view(2, 6), {}, torch.tensor([0, 1]), 2)
    torch.testing.assert_close(class_logit([4, 1])(acts), torch.tensor([4.0, 7.0]))
    assert class_logit([4, 1]).images == 2 and class_logit(3).images is None
    with pytest.raises(ValueError, match="3 images"):
        class_logit([1, 2, 3]) + channel("x", [1, 2])
    m = make_tiny()
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="8 channels"):
        unit_values(m, channel("act2", 8), x)
    with pytest.raises(ValueError, match="outside"):
        unit_values(m, neuron("act2", 0, x=9, y=0), x)
    with pytest.raises(ValueError, match="act22"):
        unit_values(m, channel("act22", 0), x)  # the close names are offered
    with pytest.raises(ValueError, match="act2"):
        (channel("act2", 0) + layer("act22")).check(m)  # before any work
    channel("act2", 0).check(m)


def _diversity_value(act, weight=1.0):
    return diversity("L", weight)(Activations(None, {"L": act}, torch.arange(act.shape[0]) % 2,
                                              2))


def test_diversity_is_zero_for_identical_images_and_grows_as_they_differ():
    a = torch.zeros(1, 4, 6, 6)
    a[0, 0, :3], a[0, 1, :3] = 1.0, 2.0  # channels 0 and 1 fire together, top half
    c = torch.zeros(1, 4, 6, 6)
    c[0, 2, 3:], c[0, 3, 3:] = 1.5, -1.0  # channels 2 and 3, bottom half
    assert _diversity_value(torch.cat([a, a])).abs().max() < 1e-6
    values = [float(_diversity_value(torch.cat([a, (1 - t) * a + t * c]))[0])
              for t in (0.0, 0.2, 0.5, 0.8, 1.0)]
    assert values[0] < 1e-6 and all(u < v for u, v in zip(values, values[1:]))
    assert abs(values[-1] - 1.0) < 1e-6  # orthogonal styles: similarity 0
    torch.testing.assert_close(_diversity_value(torch.cat([a, c]), 3.0), torch.full((2,), 3.0))


def test_diversity_gradient_equals_lucids_expression():
    # Lucid: for each image, the sum over the others of <G_i/|G_i|, G_j/|G_j|>; two copies
    act = torch.randn(6, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    act.requires_grad_(True)
    ours = gram_similarity(act, 3)
    grams = [(a.reshape(4, -1) @ a.reshape(4, -1).T).flatten() for a in act]
    grams = [gr / gr.norm() for gr in grams]
    want = torch.stack([sum(grams[i] @ grams[j] for j in range(3 * (i // 3), 3 * (i // 3) + 3)
                            if j != i) / 2 for i in range(6)])
    torch.testing.assert_close(ours, want)
    g1, = torch.autograd.grad((ours * torch.arange(6.0)).sum(), act)
    g2, = torch.autograd.grad((want * torch.arange(6.0)).sum(), act)
    torch.testing.assert_close(g1, g2)


PRE = Preprocessing(input_size=(16, 16), resize_size=18)


def test_visualize_raises_a_channel():
    m = make_tiny(2)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    k = int(tiny_stages(m, x)[0].mean(dim=(0, 2, 3)).argmax())  # a channel that is alive
    still = {"shift": 0, "scale": (1.0, 1.0), "rotate": 0, "color_jitter": 0, "noise": 0,
             "blur": 0, "octaves": ((1.0, 1.0),)}  # no transforms: the ascent alone
    r = visualize(m, channel("act2", k), steps=40, size=16, **still)
    assert r.images.shape == (1, 3, 16, 16) and r.objective.shape == (40, 1)
    assert (r.objective[1:] >= r.objective[:-1] - 1e-3).float().mean() > 0.9
    assert r.objective[-1] > r.objective[0] + 0.1
    torch.testing.assert_close(r.values, unit_values(m, channel("act2", k), r.raw), rtol=1e-4,
                               atol=1e-5)
    three = visualize(m, channel("act2", k) + diversity("act2", 5.0), batch=3, steps=4, size=16)
    assert three.images.shape[0] == 3 and r.options["objective"] == f"channel('act2', {k})"
    with pytest.raises(TypeError, match="class_model"):
        visualize(m, channel("act2", 1), steps=1, rivals=4)
    with pytest.raises(TypeError, match="Objective"):
        visualize(m, "act2:1", steps=1)


def test_class_model_is_visualize_of_the_class_objective():
    clf = Classifier(make_tiny(1), PRE, [f"c{i}" for i in range(5)])
    a = class_model(clf, [0, 3], steps=5, seed=3)
    obj = class_logit([0, 3]) - rival_logits([0, 3])
    opts = {k: v for k, v in mode_defaults("lucid").items() if k not in ("other", "rivals")}
    b = visualize(clf, obj, **{**opts, "steps": 5}, seed=3)  # the class model's options
    assert mode_defaults("lucid", units=True)["octaves"] == ((1.0, 1.0),)
    torch.testing.assert_close(a.images, b.images)
    assert a.classes.tolist() == [0, 3]
    two = class_model(clf, [0, 3], steps=3, seeds=2)  # the best of two starts per class
    assert two.images.shape == (2, 3, 16, 16) and two.objective.shape == (3, 2)
    assert not torch.equal(two.images[0], two.images[1])


def test_a_unit_stops_the_forward_pass_at_its_layer():
    m = make_tiny(0)
    net = nn.Sequential()
    net.add_module("conv1", m.conv1)
    net.add_module("bn1", m.bn1)
    net.add_module("relu", nn.ReLU())
    net.add_module("boom", nn.Module())  # calling it raises: no forward
    r = visualize(net, channel("relu", 2), steps=3, size=16, fast=False)  # (the fast copy's
    # batch-norm folding traces the whole network once)
    assert torch.isfinite(r.images).all()


def _timm(arch, **kw):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model(arch, pretrained=False, num_classes=10, img_size=64, **kw).eval()


def _output(m, name, x):
    out = []
    h = m.get_submodule(name).register_forward_hook(lambda _m, _a, o: out.append(o))
    try:
        with torch.no_grad():
            m(x)
    finally:
        h.remove()
    return out[0]


@pytest.mark.parametrize("family", ["vit", "swin"])
def test_units_of_a_vit_and_a_swin(family):
    if family == "vit":
        m = _timm("vit_tiny_patch16_224", depth=2)
        unit, tokens = "blocks.1", lambda o: o[:, 1:].reshape(-1, 4, 4, o.shape[-1])  # 4 x 4
    else:
        m = _timm("swin_tiny_patch4_window7_224", window_size=4, embed_dim=24, depths=(1, 1),
                  num_heads=(1, 2))
        unit, tokens = "layers.1", lambda o: o  # channels last, 8 x 8
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    grid = tokens(_output(m, unit, x))  # [B, h, w, C] by hand
    torch.testing.assert_close(unit_values(m, channel(unit, 5), x), grid[..., 5].mean((1, 2)),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(unit_values(m, neuron(unit, 7, x=1, y=2), x), grid[:, 2, 1, 7],
                               rtol=1e-4, atol=1e-5)
    pre = Preprocessing(input_size=(64, 64), resize_size=73)
    clf = Classifier(m, pre, [f"class {i}" for i in range(10)], family)
    r = visualize(clf, channel(unit, 5) + diversity(unit, 1.0), batch=2, steps=3, copies=1)
    assert r.images.shape == (2, 3, 64, 64) and torch.isfinite(r.objective).all()
    assert all(p.grad is None for p in m.parameters())


class _Known(nn.Module):
    """Channel 0 of ``feat`` is the red input channel: a photo's value is known exactly."""

    def __init__(self):
        super().__init__()
        self.feat = nn.Conv2d(3, 2, 1, bias=False)
        self.head = nn.Linear(2, 3)
        with torch.no_grad():
            self.feat.weight.zero_()
            self.feat.weight[0, 0] = 1.0
            self.feat.weight[1, 1] = 1.0

    def forward(self, x):
        return self.head(self.feat(x).mean(dim=(2, 3)))


def test_top_photos_are_the_true_top_k_streamed(tmp_path):
    import numpy as np
    from PIL import Image

    pre = Preprocessing(input_size=(16, 16), resize_size=18)
    clf = Classifier(_Known(), pre, ["a", "b", "c"])
    reds = [(37 * i) % 251 for i in range(14)]  # distinct, in no order
    paths = []
    for i, r in enumerate(reds):
        p = tmp_path / f"{i:02d}.png"
        Image.fromarray(np.full((20, 30, 3), (r, 90, 200), np.uint8)).save(p)
        paths.append(p)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    failed, done = [], []
    items = iter([*paths[:5], tmp_path / "broken.png", *paths[5:]])  # consumed once
    top = top_photos(clf, channel("feat", 0), items, k=4, batch_size=3,
                     on_failure=lambda item, why: failed.append(item), progress=done.append)
    want = sorted(range(14), key=lambda i: -reds[i])[:4]
    assert [t.item for t in top] == [paths[i] for i in want]
    mean, std = pre.mean[0], pre.std[0]
    for t, i in zip(top, want):
        assert abs(t.value - (reds[i] / 255 - mean) / std) < 1e-4
        assert t.image.shape == (16, 16, 3) and t.saliency.shape == (16, 16)
        x0, y0, x1, y1 = t.box
        assert 0 <= x0 < x1 <= 16 and 0 <= y0 < y1 <= 16 and t.patch.shape[:2] == (y1 - y0,
                                                                                     x1 - x0)
    assert failed == [tmp_path / "broken.png"] and sum(done) == 15
    # several units in one pass: each its own top-k (channel 1 is the constant green)
    both = top_photos(clf, [channel("feat", 0), -channel("feat", 0)], paths, k=2, batch_size=5)
    assert [t.item for t in both[0]] == [paths[i] for i in want[:2]]
    assert [t.item for t in both[1]] == [paths[i] for i in sorted(range(14),
                                                                  key=lambda i: reds[i])[:2]]


@pytest.mark.slow
def test_cli_visualize_writes_images_top_photos_and_json(tmp_path, dev_data, capsys):
    import json

    import numpy as np

    from deepinside.cli import main

    root, records = dev_data
    data = tmp_path / "data"
    data.mkdir()
    for r in records[:5]:
        src = root / r["file"]
        (data / src.name).write_bytes(src.read_bytes())
    direction_file = tmp_path / "v.npy"
    np.save(direction_file, np.eye(40, dtype=np.float32)[3])
    out = tmp_path / "v"
    base = ["visualize", "--steps", "2", "--size", "64", "--out", str(out)]
    assert main([*base, "--unit", "blocks.2:3", "--dataset", str(data), "--top", "3"]) == 0
    rec = json.loads((out / "unit.json").read_text())
    assert rec["objective"] == "channel('blocks.2', 3)" and len(rec["values"]) == 1
    values = [t["value"] for t in rec["top"]]
    assert len(values) == 3 and values == sorted(values, reverse=True)
    assert {"unit.png", "grid.png", "top.png", "top_1_patch.png", "top_3_saliency.png"} <= {
        p.name for p in out.iterdir()}
    assert main([*base, "--unit", "blocks.2:3"]) == 2  # no silent overwrite
    # a direction along channel 3 is that channel: the same image
    assert main([*base[:-1], str(tmp_path / "d"), "--layer", "blocks.2", "--direction",
                 str(direction_file)]) == 0
    d = json.loads((tmp_path / "d" / "unit.json").read_text())
    assert abs(d["values"][0] - rec["values"][0]) < 1e-3 * abs(rec["values"][0]) + 1e-4
    assert main([*base[:-1], str(tmp_path / "n"), "--neuron", "blocks.2:3:1:1",
                 "--diversity", "2"]) == 0
    assert {"unit_0.png", "unit_1.png"} <= {p.name for p in (tmp_path / "n").iterdir()}
    capsys.readouterr()
    assert main([*base, "--overwrite", "--unit", "blocks.99:3"]) == 2
    assert "blocks" in capsys.readouterr().err
    assert main([*base, "--overwrite", "--direction", str(direction_file), "--unit", "x:1"]) == 2


def test_units_of_a_hugging_face_vit_saved_and_loaded_from_its_folder(tmp_path):
    """A transformers ViTForImageClassification (tiny config, save_pretrained, loaded by
    deepinside as ``hf:FOLDER``; nothing from the hub): a channel and a neuron on its 4 x 4
    token grid read the layer's tokens as the model's own hidden states give them, their
    gradients reach the input, and the ascent raises each of them."""
    transformers = pytest.importorskip("transformers")
    from hf_models import save

    import deepinside

    folder = save("vit", tmp_path / "vit")
    clf = deepinside.load_model(f"hf:{folder}")
    unit = "vit.layers.1"  # the second encoder block: tokens [B, 1 + 4 * 4, 16]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    own = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():  # the hidden states after block 1, the class token dropped
        tokens = own(pixel_values=x, output_hidden_states=True).hidden_states[2][:, 1:]
    grid = tokens.reshape(2, 4, 4, -1)  # [B, row, column, C]: patches in row-major order
    ch, nr = channel(unit, 5), neuron(unit, 7, x=1, y=2)
    torch.testing.assert_close(unit_values(clf, ch, x), grid[..., 5].mean((1, 2)), rtol=1e-4,
                               atol=1e-5)
    torch.testing.assert_close(unit_values(clf, nr, x), grid[:, 2, 1, 7], rtol=1e-4,
                               atol=1e-5)
    for objective in (ch, nr):
        g, _ = unit_gradient(clf, objective, x)
        assert torch.isfinite(g).all() and (g.abs().amax(dim=(1, 2, 3)) > 0).all()
        still = {"shift": 0, "scale": (1.0, 1.0), "rotate": 0}  # the ascent alone
        r = visualize(clf, objective, steps=12, **still)
        assert r.images.shape == (1, 3, 32, 32) and torch.isfinite(r.objective).all()
        assert r.objective[-1, 0] > r.objective[0, 0] + 0.05, str(objective)
        torch.testing.assert_close(r.values, unit_values(clf, objective, r.raw), rtol=1e-4,
                                   atol=1e-5)
    assert all(p.grad is None for p in clf.module.parameters())


def test_parse_unit_is_the_one_grammar_of_the_command_line_and_the_server():
    from deepinside.classmodel import parse_unit

    assert parse_unit("blocks.5:17") == ("blocks.5", 17, None, None)
    assert parse_unit("a:b:3") == ("a:b", 3, None, None)  # numbers from the right
    assert parse_unit("blocks.5:17:3:4", position=True) == ("blocks.5", 17, 3, 4)
    assert parse_unit("blocks.5:17:3:4") == ("blocks.5:17:3", 4, None, None)
    for text, position, said in [("blocks.5", False, "must be LAYER:CHANNEL, e.g."),
                                 (":3", True, "must be LAYER:CHANNEL or LAYER:CHANNEL:X:Y"),
                                 ("b:-1", False, "the channel must be a whole number"),
                                 ("b:1:x:2", True, "x must be a whole number")]:
        with pytest.raises(ValueError, match=said):
            parse_unit(text, position=position)
