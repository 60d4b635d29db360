"""Deletion / insertion curves and the model-parameter randomisation test."""

from __future__ import annotations

import pytest
import torch
from models import SumNet

from deepinside.evaluate.faithfulness import (
    cascade_layers,
    deletion_insertion,
    randomization_test,
    spearman,
)
from deepinside.fastmodel import has_hooks
from deepinside.methods import get_method

torch.set_num_threads(1)


def test_deletion_and_insertion_by_hand():
    net = SumNet().eval()
    h = w = 4
    x = torch.ones(2, 1, h, w)
    maps = torch.arange(h * w, dtype=torch.float32).view(1, h, w).repeat(2, 1, 1)
    maps[1] = maps[1].flip(-1)
    c = deletion_insertion(net, x, maps, 0, steps=4, baseline=0.0, score="logit", fast=False,
                           batch_size=3)
    torch.testing.assert_close(c.fractions, torch.tensor([0, 0.25, 0.5, 0.75, 1.0]))
    want = torch.tensor([16.0, 12, 8, 4, 0])
    torch.testing.assert_close(c.deletion, want.repeat(2, 1))
    torch.testing.assert_close(c.insertion, want.flip(0).repeat(2, 1))
    # trapezoid: 0.25 * (16/2 + 12 + 8 + 4 + 0/2) = 8
    torch.testing.assert_close(c.deletion_auc, torch.tensor([8.0, 8.0]))
    torch.testing.assert_close(c.insertion_auc, torch.tensor([8.0, 8.0]))


def test_deletion_removes_the_most_salient_pixels_first():
    net = SumNet().eval()
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, :2] = 5.0  # the evidence: two pixels
    good = x[:, 0].clone()
    bad = -good
    kw = {"steps": 8, "baseline": 0.0, "score": "logit", "fast": False}
    cg = deletion_insertion(net, x, good, 0, **kw)
    cb = deletion_insertion(net, x, bad, 0, **kw)
    assert float(cg.deletion[0, 1]) == 0.0  # 2 of 16 pixels: all the evidence is gone
    assert cg.deletion_auc < cb.deletion_auc and cg.insertion_auc > cb.insertion_auc


def test_curves_batched_equals_one_by_one(tiny):
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    maps = get_method("gradient")(tiny, x)
    whole = deletion_insertion(tiny, x, maps, steps=5, batch_size=4)
    for i in range(3):
        one = deletion_insertion(tiny, x[i : i + 1], maps[i : i + 1], steps=5, batch_size=None)
        torch.testing.assert_close(whole.deletion[i : i + 1], one.deletion, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(whole.insertion[i : i + 1], one.insertion, rtol=1e-4,
                                   atol=1e-6)
    assert torch.equal(whole.deletion[:, 0], whole.insertion[:, -1])  # both the clean image


def test_curves_check_their_inputs(tiny):
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="maps"):
        deletion_insertion(tiny, x, torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="modes"):
        deletion_insertion(tiny, x, torch.rand(2, 16, 16), modes=("erase",))
    small = deletion_insertion(tiny, x, torch.rand(2, 4, 4), steps=2, modes=("insertion",))
    assert small.deletion is None and small.insertion.shape == (2, 3)


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 40), generator=g).float()
    b = a + torch.randint(0, 3, (3, 40), generator=g).float()
    got = spearman(a, b)
    for i in range(3):
        want = stats.spearmanr(a[i].numpy(), b[i].numpy()).statistic
        assert abs(float(got[i]) - want) < 1e-6
    assert float(spearman(a[:1], a[:1])) == pytest.approx(1.0)
    assert float(spearman(a[:1], -a[:1])) == pytest.approx(-1.0)
    assert float(spearman(a[:1], torch.zeros(1, 40))) == 0.0


def test_cascade_goes_from_the_top(tiny):
    assert cascade_layers(tiny) == ["fc", "bn2", "conv2", "bn1", "conv1"]


def test_randomization_leaves_the_caller_alone(tiny):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    rng = torch.get_rng_state()
    r = randomization_test(tiny, x, method="gradient", points=3)
    assert all(torch.equal(v, tiny.state_dict()[k]) for k, v in state.items())
    assert torch.equal(rng, torch.get_rng_state()) and not has_hooks(tiny)
    assert r.layers == ["bn2", "conv2", "conv1"]  # after 2, 3 and 5 of 5 layers
    assert r.correlation.shape == (3, 2)
    again = randomization_test(tiny, x, method="gradient", points=3)
    torch.testing.assert_close(r.correlation, again.correlation)  # seeded
    with pytest.warns(DeprecationWarning, match="by position is deprecated") as caught:
        old = randomization_test(tiny, x, "gradient", r.targets, points=3)  # 0.1's order
    torch.testing.assert_close(old.correlation, r.correlation)
    assert caught[0].filename == __file__  # the warning points at the caller
    # a value given both ways is Python's own error, not a silent choice of one of them
    with pytest.raises(TypeError, match="multiple values for argument 'method'"):
        randomization_test(tiny, x, "gradient_x_input", method="gradient")
    with pytest.raises(TypeError, match="multiple values for argument 'target'"):
        randomization_test(tiny, x, "gradient", 0, target=1)
    with pytest.raises(TypeError, match=r"randomization_test\(\) takes at most 4 positional"):
        randomization_test(tiny, x, "gradient", 0, 3)


def test_randomization_flags_a_map_that_ignores_the_model(tiny):
    def edges(model, images, target=None, fast=True):  # depends on the image only
        return (images[..., 1:, :] - images[..., :-1, :]).abs().sum(1)

    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    r = randomization_test(tiny, x, method=edges, points=2)
    torch.testing.assert_close(r.correlation, torch.ones(2, 2))


@pytest.mark.slow
def test_gradient_decorrelates_once_the_real_model_is_randomised(lite0):
    from deepinside.cli.demo import demo_photos
    from deepinside.images import photos_to_batch

    torch.set_num_threads(1)
    x = photos_to_batch([p for _, p in demo_photos()][:2], lite0.preprocessing)
    r = randomization_test(lite0, x, method="gradient", points=2)
    assert float(r.final.abs().max()) < 0.3
    assert float(r.correlation[0].mean()) > float(r.final.mean())
    c = deletion_insertion(lite0, x, get_method("gradcam")(lite0, x), steps=8)
    c_rand = deletion_insertion(lite0, x, torch.rand(2, 224, 224, generator=torch.Generator()
                                                     .manual_seed(0)), steps=8)
    assert float(c.insertion_auc.mean()) > float(c_rand.insertion_auc.mean())


def test_compare_table_format():
    from deepinside.evaluate.compare import MethodScores
    from deepinside.evaluate.tables import methods_table

    s = MethodScores("gradcam")
    s.add("pointing", [1.0, 0.0, 1.0, 1.0])
    s.add("pointing", [0.0])
    assert s.pointing == pytest.approx(3 / 5)
    s.images, s.ms_per_image = 5, 12.3
    table = methods_table([s])
    assert table.splitlines()[2].startswith("| gradcam | 5 | 60.0 |")
    assert "nan" in table  # what was not measured says so


@pytest.mark.slow
def test_compare_on_real_photos_with_boxes(lite0, dev_data, tmp_path):
    import json

    from deepinside.evaluate.compare import compare_methods
    from deepinside.evaluate.datasets import read_dataset

    root, ann = dev_data
    records, problems = read_dataset(root)
    assert not problems and len(records) == len(ann)
    torch.set_num_threads(1)
    rows = compare_methods(lite0, records[:2], ["gradcam", "gradient"], batch_size=2, steps=4)
    for r in rows:
        assert r.images == 2
        for v in (r.pointing, r.gt_known_loc):
            assert v in (0.0, 0.5, 1.0)
        assert 0 <= r.deletion_auc <= 1 and 0 <= r.insertion_auc <= 1
        assert -1 <= r.randomization_corr <= 1 and r.ms_per_image > 0
    # An unreadable photo is reported, not fatal.
    (tmp_path / "images").mkdir()
    for where in (tmp_path, tmp_path / "images"):
        (where / "broken.JPEG").write_bytes(b"not a JPEG")
    (tmp_path / "annotations.json").write_text(json.dumps([{**ann[0], "file": "broken.JPEG"}]))
    failures = []
    records_bad, _ = read_dataset(tmp_path)
    rows = compare_methods(lite0, records_bad, ["gradient"], on_failure=lambda p, w:
                           failures.append(p))
    assert len(failures) == 1 and rows[0].images == 0


@pytest.mark.slow
def test_evaluate_compare_command(dev_data, capsys):
    from deepinside.cli import main

    root, _ = dev_data
    torch.set_num_threads(1)
    code = main(["evaluate", "compare", "--dataset", str(root), "--limit", "1",
                 "--methods", "gradcam", "--steps", "2", "--no-randomization"])
    out = capsys.readouterr().out
    assert code == 0 and "| gradcam | 1 |" in out and "pointing game" in out
    assert main(["evaluate", "compare", "--dataset", str(root), "--methods", "gradcm"]) == 2
    assert "did you mean gradcam" in capsys.readouterr().err


def test_compare_skips_a_label_the_model_does_not_have(tmp_path):
    from models import tiny_classifier
    from PIL import Image

    from deepinside.evaluate.compare import compare_methods
    from deepinside.evaluate.datasets import Record

    for i in range(3):
        Image.new("RGB", (40, 30), (80 * i, 20, 20)).save(tmp_path / f"p{i}.png")
    records = [Record(tmp_path / f"p{i}.png", label, [(5.0, 5.0, 30.0, 25.0)])
               for i, label in enumerate([1, 99, 2])]
    said = []
    [row] = compare_methods(tiny_classifier(), records, ["gradient"], deletion=False,
                            randomization=False,
                            on_failure=lambda p, why: said.append((p.name, why)))
    assert row.images == 2 and said == [("p1.png", "label 99 is not a class of the model "
                                                   "(0..5)")]


def test_score_prob_is_the_deprecated_spelling_of_probability():
    net = SumNet().eval()
    x = torch.rand(2, 1, 4, 4)
    maps = torch.rand(2, 4, 4)
    kw = {"steps": 4, "baseline": 0.0, "fast": False}
    new = deletion_insertion(net, x, maps, 0, score="probability", **kw)
    with pytest.warns(DeprecationWarning, match='score="probability"'):
        old = deletion_insertion(net, x, maps, 0, score="prob", **kw)
    torch.testing.assert_close(old.deletion, new.deletion)
    with pytest.raises(ValueError, match="score must be"):
        deletion_insertion(net, x, maps, 0, score="probabilty", **kw)
