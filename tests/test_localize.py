"""Tests of deepinside.localize: map -> GrabCut / threshold -> component -> box."""

from __future__ import annotations

import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from models import TinyFeatures, tiny_classifier
from PIL import Image

from deepinside.evaluate.metrics import box_iou
from deepinside.localize import (
    RECIPES,
    Recipe,
    get_recipe,
    localize,
    mask_to_box,
    segment_map,
)
from deepinside.methods import get_method


def synthetic_scene(seed: int, size: int = 180):
    """A red textured square (50..130) on a blue-green blocky texture; a map peaked on a part.

    The map decays with the distance from (75, 75), a point in the square's upper-left quarter,
    so its top 5% covers only a disc of radius ~22 px inside the square.
    """
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (size // 6, size // 6, 3)).astype(np.uint8)
    bg = cv2.resize(blocks, (size, size), interpolation=cv2.INTER_NEAREST)
    img = (bg * 0.5 + np.array([0, 90, 60])).clip(0, 255).astype(np.uint8)
    x0, y0, x1, y1 = 50, 50, 130, 130
    obj = np.array([220, 40, 40]) + rng.normal(0, 12, (y1 - y0, x1 - x0, 3))
    img[y0:y1, x0:x1] = obj.clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    m = np.exp(-np.hypot(xx - 75, yy - 75) / 25) + 0.01 * rng.random((size, size))
    return img, m.astype(np.float32), (x0, y0, x1, y1)


def test_mask_to_box_uses_pixel_edges():
    mask = np.zeros((10, 20), dtype=bool)
    mask[2:5, 3:9] = True  # rows 2..4, columns 3..8
    assert mask_to_box(mask) == (3.0, 2.0, 9.0, 5.0)
    assert mask_to_box(np.zeros((4, 4), dtype=bool)) is None
    assert mask_to_box(np.ones((1, 1), dtype=bool)) == (0.0, 0.0, 1.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_grabcut_recovers_whole_object_from_a_partial_peak(seed):
    img, m, gt = synthetic_scene(seed)
    top = m >= np.quantile(m, 0.95)
    assert box_iou(mask_to_box(top), gt) < 0.4  # the seeds alone cover a small part
    mask, box, note = segment_map(img, m, "paper", seed=0)
    assert note == ""
    assert box_iou(box, gt) > 0.8
    assert mask.shape == m.shape and mask.dtype == bool


def test_grabcut_is_reproducible_with_a_seed():
    img, m, _ = synthetic_scene(3)
    m = m + 0.3 * np.random.default_rng(0).random(m.shape).astype(np.float32)  # harder map
    a = segment_map(img, m, "paper", seed=7)
    b = segment_map(img, m, "paper", seed=7)
    assert a[1] == b[1] and np.array_equal(a[0], b[0])


def test_largest_component_vs_energy_components():
    img = np.zeros((40, 60, 3), dtype=np.uint8)
    m = np.zeros((40, 60), dtype=np.float32)
    m[5:15, 5:25] = 1.0  # large, weak-ish blob: 200 px, energy 200
    m[25:30, 40:50] = 3.0  # small, strong blob: 50 px, energy 150
    largest = get_recipe("default", threshold=0.2, component="largest")
    assert segment_map(img, m, largest)[1] == (5.0, 5.0, 25.0, 15.0)
    both = largest.replace(component="energy", energy=0.8)  # 200 < 0.8 * 350: needs both
    assert segment_map(img, m, both)[1] == (5.0, 5.0, 50.0, 30.0)
    one = largest.replace(component="energy", energy=0.5)  # 200 >= 0.5 * 350
    assert segment_map(img, m, one)[1] == (5.0, 5.0, 25.0, 15.0)


def test_threshold_is_a_fraction_of_the_maps_range():
    img = np.zeros((10, 10, 3), dtype=np.uint8)
    m = np.tile(np.arange(10, dtype=np.float32), (10, 1))  # 0..9 along x
    rec = get_recipe("default", threshold=0.5)  # >= 4.5: columns 5..9
    assert segment_map(img, m, rec)[1] == (5.0, 0.0, 10.0, 10.0)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_degenerate_maps_give_defined_results(recipe):
    img = np.full((30, 40, 3), 128, dtype=np.uint8)
    for flat in (np.zeros((30, 40)), np.full((30, 40), 5.0), np.full((30, 40), np.nan)):
        mask, box, note = segment_map(img, flat, recipe)
        assert box == (0.0, 0.0, 40.0, 30.0) and mask.all() and note == "flat map"
    mask, box, note = segment_map(np.zeros((1, 1, 3), np.uint8), np.ones((1, 1)), recipe)
    assert box == (0.0, 0.0, 1.0, 1.0) and note == "one-pixel image"
    one_row = np.arange(7, dtype=np.float32)[None]
    mask, box, _ = segment_map(np.zeros((1, 7, 3), np.uint8), one_row, recipe)
    assert 0 <= box[0] < box[2] <= 7 and box[1:4:2] == (0.0, 1.0)


def test_too_few_seeds_for_grabcut_falls_back_to_the_seeds():
    m = np.arange(9, dtype=np.float32).reshape(3, 3)
    mask, box, note = segment_map(np.zeros((3, 3, 3), np.uint8), m, "paper")
    assert "too few seeds" in note and box == (2.0, 2.0, 3.0, 3.0)


def test_empty_foreground_gives_the_whole_photo(monkeypatch):
    L = importlib.import_module("deepinside.segment")  # the segmentation (localize re-exports it)

    monkeypatch.setattr(L, "_grabcut", lambda photo, m, r, s: (np.zeros(m.shape, bool), ""))
    img, m, _ = synthetic_scene(0)
    mask, box, note = segment_map(img, m, "paper")
    assert note == "empty foreground" and box == (0.0, 0.0, 180.0, 180.0) and mask.all()


def test_combined_map_is_the_geometric_mean_of_unit_max_maps(monkeypatch):
    L = importlib.import_module("deepinside.localize")  # the package re-exports localize()

    a = np.zeros((20, 30), np.float32)
    a[5:15, 5:25] = 4.0
    b = np.zeros((20, 30), np.float32)
    b[10, 10] = 2.0
    given = {"first": a, "second": b}

    def fake(model, photos, targets, method, batch_size=16):
        return [given[method]], torch.zeros(1, dtype=torch.long), torch.zeros(1, 3)

    monkeypatch.setattr(importlib.import_module("deepinside.photomaps"), "photo_maps", fake)
    rec = get_recipe("default", method="first", combine="second", combine_smooth=0.0)
    [m], _ = L.recipe_maps(None, [None], [0], rec)
    expect = np.sqrt((a / 4.0) * (b / 2.0))
    assert np.allclose(m, expect) and m.max() == pytest.approx(1.0)
    blurred = rec.replace(combine_smooth=0.1)  # sigma = 0.1 * 20 px, normalised to max 1
    [m2], _ = L.recipe_maps(None, [None], [0], blurred)
    g = cv2.GaussianBlur(b, (0, 0), 2.0, borderType=cv2.BORDER_REFLECT)
    assert np.allclose(m2, np.sqrt((a / 4.0) * (g / g.max())), atol=1e-6)


def test_band_cut_is_the_mean_of_the_fixed_cuts_boxes():
    # two blobs joined by a ridge at 35% of the peak: low cuts box both, high cuts the strong one
    img = np.zeros((60, 100, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:60, :100]
    strong = np.exp(-((xx - 25) ** 2 + (yy - 30) ** 2) / (2 * 8.0 ** 2))
    weak = 0.6 * np.exp(-((xx - 70) ** 2 + (yy - 30) ** 2) / (2 * 8.0 ** 2))
    ridge = 0.35 * ((xx > 25) & (xx < 70) & (abs(yy - 30) < 3))
    m = np.maximum.reduce([strong, weak, ridge]).astype(np.float32)
    band = get_recipe("default-band")
    assert (band.cut, band.band, band.band_levels) == ("band", (0.1, 0.5), 9)
    levels = np.linspace(0.1, 0.5, 9)
    fixed = [segment_map(img, m, band.replace(cut="fixed", threshold=float(t)))[1]
             for t in levels]
    mask, box, note = segment_map(img, m, band)
    assert box == pytest.approx(tuple(np.mean(fixed, axis=0))) and note == ""
    # the loose cuts join the two blobs, the tight ones keep the strong one: the band's box
    # lies between the two, and its mask is the middle level's (30%: both blobs)
    assert fixed[0][2] > 75 and fixed[-1][2] < 40
    assert fixed[-1][2] < box[2] < fixed[0][2]
    assert mask_to_box(mask) == fixed[4]
    # the peak's blob decides where the box starts, the weak blob only how far it reaches
    assert box[0] == pytest.approx(np.mean([b[0] for b in fixed])) and box[0] < 20


def test_band_cut_moves_less_than_a_fixed_cut_when_the_map_sharpens():
    # a blob on a plateau: squaring the map (a sharper map of the same photo) moves the 30% cut
    # from the plateau's box to the blob's; the band's box moves less
    img = np.zeros((80, 80, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:80, :80]
    m = np.maximum(np.exp(-np.hypot(xx - 40, yy - 40) / 10),
                   0.4 * ((abs(xx - 40) < 30) & (abs(yy - 40) < 30))).astype(np.float32)
    fixed, band = get_recipe("default"), get_recipe("default-band")
    moved_fixed = 1 - box_iou(segment_map(img, m, fixed)[1], segment_map(img, m ** 2, fixed)[1])
    moved_band = 1 - box_iou(segment_map(img, m, band)[1], segment_map(img, m ** 2, band)[1])
    assert moved_fixed > 0.9 and moved_band < moved_fixed - 0.15  # 0.95 and 0.76


def test_recipe_validation():
    with pytest.raises(ValueError):
        Recipe(fg_quantile=0.2, bg_quantile=0.5)
    with pytest.raises(ValueError):
        Recipe(segment="watershed")
    with pytest.raises(ValueError, match="cut must be"):
        Recipe(cut="otsu")
    for bad in ((0.5, 0.1), (0.1, 1.5), (0.1,)):
        with pytest.raises(ValueError, match="band"):
            Recipe(cut="band", band=bad)
    with pytest.raises(ValueError, match="band"):
        Recipe(cut="band", band_levels=0)
    with pytest.raises(KeyError, match="unknown recipe"):
        get_recipe("papper")
    with pytest.raises(TypeError):
        get_recipe("paper", no_such_field=1)
    assert get_recipe("paper").method == "gradient"
    assert (get_recipe("paper").fg_quantile, get_recipe("paper").bg_quantile) == (0.95, 0.30)
    assert get_recipe("paper").iterations == 5 and get_recipe("paper").component == "largest"


def test_map_shape_must_match_photo():
    with pytest.raises(ValueError, match="differs"):
        segment_map(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 5)))


# ----------------------------------------------------------------------------- with a model


def test_gradcam_of_a_batch_norm_layer_matches_pytorch_grad_cam():
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    clf = tiny_classifier()
    x = torch.randn(3, 3, 32, 32)
    targets = [1, 4, 2]
    ours = get_method("gradcam")(clf, x, targets, layer="features.4")
    layer = clf.module.features[4]
    net = TinyFeatures()
    net.load_state_dict(clf.module.state_dict())
    net.eval()
    with GradCAM(model=net, target_layers=[net.features[4]]) as cam:
        ref = cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(t) for t in targets])
    for a, b in zip(ours.numpy(), ref):
        a = (a - a.min()) / max(a.max() - a.min(), 1e-7)
        assert np.allclose(a, b, atol=2e-3)
    assert not layer._forward_hooks  # the hook is gone


def test_gradcam_removes_its_hook_on_error():
    clf = tiny_classifier()
    with pytest.raises(ValueError):
        get_method("gradcam")(clf, torch.randn(1, 3, 32, 32), target=99, layer="features.4")
    assert not any(m._forward_hooks for m in clf.module.modules())


@pytest.mark.parametrize("recipe", ["paper", "default", "default-band"])
def test_localize_top_k_and_targets(recipe):
    clf = tiny_classifier()
    img, _, _ = synthetic_scene(0)
    flags = [(m, m.training) for m in clf.module.modules()]
    out = localize(clf, [img, img[:120]], top_k=3, recipe=recipe)
    assert [len(r) for r in out] == [3, 3]
    with torch.no_grad():
        x = clf.preprocessing.to_tensor(Image.fromarray(img), crop=False)
        expect = clf(x[None]).topk(3).indices[0].tolist()
    assert [loc.class_index for loc in out[0]] == expect
    for row, (h, w) in zip(out, [(180, 180), (120, 180)]):
        for loc in row:
            x0, y0, x1, y1 = loc.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert loc.mask.shape == (h, w) and loc.saliency.shape == (h, w)
            assert loc.name == clf.short_name(loc.class_index)
            assert set(loc.to_dict()) == {"class", "name", "prob", "logit", "box", "note"}
    given = localize(clf, [img, img], target=[2, 5], recipe=recipe)
    assert [[loc.class_index for loc in r] for r in given] == [[2], [5]]
    assert all(m.training == f for m, f in flags)
    assert not any(p.requires_grad for p in clf.module.parameters())
    assert not any(m._forward_hooks for m in clf.module.modules())


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_localize_draws_and_writes_boxes(tmp_path, capsys):
    import json

    from deepinside.cli import main

    for i in range(2):
        Image.fromarray(synthetic_scene(i)[0]).save(tmp_path / f"s{i}.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    status = main(["localize", str(tmp_path / "s0.png"), str(tmp_path / "s1.png"),
                   str(tmp_path / "junk.png"), "--top-k", "2", "--recipe", "paper",
                   "--out", str(out), "--json"])
    assert status == 1  # one bad input
    printed = json.loads(capsys.readouterr().out)
    assert json.loads((out / "boxes.json").read_text()) == printed
    assert [Path(r["image"]).name for r in printed] == ["s0.png", "s1.png"]
    for r in printed:
        assert len(r["localizations"]) == 2
        for loc in r["localizations"]:
            x0, y0, x1, y1 = loc["box"]
            assert 0 <= x0 < x1 <= 180 and 0 <= y0 < y1 <= 180 and loc["name"]
        drawn = np.asarray(Image.open(out / f"{Path(r['image']).stem}_localize.png"))
        assert drawn.shape == (180, 180, 3)
    assert main(["localize", str(tmp_path / "s0.png"), "--out", str(out)]) == 2  # no overwrite


def test_cli_evaluate_usage_errors(tmp_path, capsys):
    from deepinside.cli import build_parser, main

    parser = build_parser()
    args = parser.parse_args(["evaluate", "localization", "--dataset", "x", "--workers", "2"])
    assert args.workers == 2 and args.recipe == "default"
    assert main(["evaluate", "localization", "--dataset", str(tmp_path / "none")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["evaluate", "localization", "--dataset", "x", "--limit", "0"]) == 2


@pytest.mark.slow
def test_band_recipe_localises_real_photos(dev_data, lite0):
    """End to end on the first 16 dev photos (sorted by file), their true classes and boxes:
    measured 13 of 16 boxes at IoU >= 0.5 (default: 13, the whole-photo box: 9)."""
    from deepinside.evaluate.metrics import gt_known_hit
    from deepinside.images import load_image

    root, records = dev_data
    records = sorted(records, key=lambda r: r["file"])[:16]
    photos = [load_image(root / r["file"]) for r in records]
    out = localize(lite0, photos, target=[r["label"] for r in records], recipe="default-band")
    hits = [gt_known_hit(loc.box, [tuple(b) for b in r["boxes_xyxy"]])
            for [loc], r in zip(out, records)]
    whole = [gt_known_hit((0, 0, r["width"], r["height"]), [tuple(b) for b in r["boxes_xyxy"]])
             for r in records]
    assert sum(hits) >= 12 and sum(hits) > sum(whole)
    for [loc], photo in zip(out, photos):  # the box is the band cut of the returned map
        assert loc.box == segment_map(np.asarray(photo), loc.saliency, "default-band")[1]


def test_images_is_the_deprecated_name_of_photos():
    from models import tiny_classifier

    import deepinside

    clf = tiny_classifier()
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8))
    [[new]] = deepinside.localize(clf, photos=[photo], recipe="gradcam-30")
    with pytest.warns(DeprecationWarning, match="photos=") as caught:
        [[old]] = deepinside.localize(clf, images=[photo], recipe="gradcam-30")
    assert old.box == new.box and old.class_index == new.class_index
    assert caught[0].filename == __file__  # the warning points at the caller
    with pytest.raises(TypeError, match="needs photos"):
        deepinside.localize(clf)
    with pytest.warns(DeprecationWarning, match="by position is deprecated") as caught:
        [[pos]] = deepinside.localize(clf, [photo], 1, new.class_index, None, "gradcam-30")
    assert pos.box == new.box and pos.class_index == new.class_index  # 0.1's order
    assert caught[0].filename == __file__
    # a value given both ways is Python's own error, not a silent choice of one of them
    with pytest.raises(TypeError, match=r"localize\(\) got multiple values for argument 'top_k'"):
        deepinside.localize(clf, [photo], 5, top_k=3)
    with pytest.raises(TypeError, match="multiple values for argument 'recipe'"):
        deepinside.localize(clf, [photo], 1, None, None, "paper", recipe="gradcam-30")
    with pytest.raises(TypeError, match=r"localize\(\) takes at most 6 positional arguments"):
        deepinside.localize(clf, [photo], 1, None, None, "gradcam-30", 0)
