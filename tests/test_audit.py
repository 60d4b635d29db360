"""The audit: a photo's line, a class's suspicion (against the formula worked by hand), the erase
check on a model whose answer is known, audit.json's fields, and a small audit end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from models import corner_classifier
from PIL import Image

from deepinside.audit import erase as E
from deepinside.audit import suspicion as SU
from deepinside.audit.page import audit_json
from deepinside.audit.records import AuditRecord, photo_record

W = H = 64


def blob(cx: float, cy: float, size: int = 64) -> np.ndarray:
    ys, xs = np.mgrid[:size, :size] + 0.5
    return np.exp(-((xs - cx * size) ** 2 + (ys - cy * size) ** 2) / (2 * (0.06 * size) ** 2))


def line(key: str, m: np.ndarray, box, label: int = 0, pred: int = 0) -> AuditRecord:
    return photo_record(key, "h", label, [pred, 1 - pred], m, None if pred == label else m,
                        [box] if box else [])


def test_photo_record_pools_and_measures():
    m = blob(0.75, 0.25)
    r = photo_record("a", "h", 3, [5, 3], m, m * 2, [(32, 0, 64, 32)])
    assert r.grid().shape == (16, 16) and r.grid().max() == pytest.approx(1.0)
    assert r.peak == pytest.approx([0.75, 0.25], abs=1 / 64)
    assert r.energy_in_box > 0.9 and r.pointing_hit is True
    assert r.pred_map is not None and not r.correct
    back = AuditRecord.from_json(json.loads(json.dumps(r.to_json())))
    assert back.to_json() == r.to_json()
    np.testing.assert_array_equal(back.grid(), r.grid())
    none = photo_record("b", "h", 3, [3], m, None, [])
    assert none.energy_in_box is None and none.pointing_hit is None and none.correct


def test_suspicion_of_a_stamp_and_of_objects():
    rng = np.random.default_rng(0)
    stamp = [line(f"s{i}", blob(0.9, 0.9) + 0.05 * rng.random((H, W)), (10, 10, 40, 40))
             for i in range(8)]
    a = SU.class_audit(0, "stamped", stamp)
    top = max(a.clusters, key=lambda c: c.suspicion)
    assert top.peak == pytest.approx((0.9, 0.9), abs=1 / 16)
    # by hand: every peak at the corner (fixed = 1); the energy off the box
    off = np.mean([1 - r.energy_in_box for r in stamp if r.key in top.keys])
    assert top.fixed == 1.0
    assert top.suspicion == pytest.approx(top.share * 1.0 * off)
    assert a.suspicion > 0.5
    # objects that move, each map on its own object's box: low
    objects = []
    for i in range(8):
        cx, cy = rng.uniform(0.25, 0.75, 2)
        objects.append(line(f"o{i}", blob(cx, cy), (W * cx - 12, H * cy - 12, W * cx + 12,
                                                    H * cy + 12)))
    b = SU.class_audit(1, "objects", objects)
    assert b.suspicion < 0.2 < a.suspicion
    assert b.energy_in_box > 0.5 and b.pointing == 1.0


def test_lone_photo_is_no_habit():
    a = SU.class_audit(0, "one", [line("x", blob(0.9, 0.9), (0, 0, 10, 10))])
    assert a.n == 1 and a.k == 1 and a.clusters[0].fixed == 0.0 and a.suspicion == 0.0


def test_flag_needs_enough_photos_and_a_larger_region_drop():
    c = SU.ClusterAudit(["a"], 1.0, np.ones((2, 2)), (0.5, 0.5), 1, 1, 1, ["a"])
    c.set_erase([2.0, 3.0], [0.0, 0.0])
    assert not c.flagged  # two photos are not enough
    c.set_erase([2.0, 3.0, 1.0], [0.0, 0.0, 0.0])
    assert c.flagged and c.erase_region_drop == pytest.approx(2.0)
    c.set_erase([0.1, 0.1, 0.1], [1.0, 1.0, 1.0])
    assert not c.flagged


def test_hot_region_and_peak():
    g = np.zeros((4, 4))
    g[3, 2], g[0, 0] = 1.0, 0.6
    assert SU.grid_peak(g) == (2.5 / 4, 3.5 / 4)
    np.testing.assert_array_equal(np.argwhere(SU.hot_region(g)), [[0, 0], [3, 2]])


def test_erase_masks_region_less_boxes():
    region = np.zeros((4, 4), bool)
    region[2:, 2:] = True  # the bottom-right quarter
    reg, obj = E.erase_masks([region], [[(32, 32, 48, 64)]], [(64, 64)], (16, 16))
    assert reg.shape == obj.shape == (1, 1, 16, 16)
    # the box covers x in [8, 12) at the input's scale: removed from the region
    assert obj[0, 0, 8:, 8:12].all() and not obj[0, 0, :8].any()
    assert reg[0, 0, 8:, 12:].all() and not reg[0, 0, :, :12].any()


def test_erase_drops_on_a_model_that_reads_a_corner():
    clf = corner_classifier()
    rng = np.random.default_rng(1)
    photos = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
              for _ in range(3)]
    corner = np.zeros((2, 2), bool)
    corner[1, 1] = True
    box = [(8.0, 8.0, 24.0, 24.0)]  # the centre quarter
    reg, obj = E.erase_drops(clf, photos, [0] * 3, [corner] * 3, [box] * 3)
    # class 0 reads the bottom-right quarter: erasing the corner less the box moves it by the
    # mean, over that quarter, of (photo - blurred photo) outside the box; erasing the box
    # moves it by the same over the box's part of the quarter
    from deepinside.filters import gaussian_blur
    from deepinside.images import photos_to_batch

    x = photos_to_batch(photos, clf.preprocessing)
    diff = (x - gaussian_blur(x, E.BLUR * 32))[:, :, 16:, 16:]
    inbox = torch.zeros(16, 16, dtype=torch.bool)
    inbox[:8, :8] = True  # pixels 16..23 of the input are in the box
    want_reg = (diff * ~inbox).mean(dim=(1, 2, 3)).double().numpy()
    want_obj = (diff * inbox).mean(dim=(1, 2, 3)).double().numpy()
    np.testing.assert_allclose(reg, want_reg, atol=1e-5)
    np.testing.assert_allclose(obj, want_obj, atol=1e-5)
    # a region the class does not read moves nothing
    reg0, _ = E.erase_drops(clf, photos, [0] * 3, [corner[::-1, ::-1]] * 3,
                            [[(0.0, 0.0, 1.0, 1.0)]] * 3)
    np.testing.assert_allclose(reg0, 0.0, atol=1e-6)
    # photos of several classes and regions in one pass: each as alone
    mixed_r, mixed_o = E.erase_drops(clf, photos, [0, 1, 0], [corner, corner[::-1], corner],
                                     [box] * 3, batch_size=2)
    for i, (lab, reg_i) in enumerate(zip([0, 1, 0], [corner, corner[::-1], corner])):
        one_r, one_o = E.erase_drops(clf, photos[i:i + 1], [lab], [reg_i], [box])
        np.testing.assert_allclose([mixed_r[i], mixed_o[i]], [one_r[0], one_o[0]], atol=1e-6)


def test_erase_drops_equal_the_three_rows_a_photo_computed_alone_and_skip_empty_masks(
        monkeypatch):
    """Against the check written out: per photo, the photo, its hot region less its boxes and
    its boxes blurred (OpenCV's blur), three rows of one forward pass; an erasure whose mask is
    empty (photo 1: its region lies in its box) is not run, and its drop is 0."""
    import cv2
    from models import tiny_classifier

    import deepinside.engine
    from deepinside.engine import forward_logits
    from deepinside.images import model_batch

    clf = tiny_classifier()
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 255, (hh, ww, 3), dtype=np.uint8))
              for hh, ww in ((30, 40), (32, 32), (64, 50), (36, 36))]
    cells = [np.zeros((4, 4), bool) for _ in photos]
    cells[0][:2, :2] = cells[1][1:3, 1:3] = cells[2][2:, 2:] = True
    cells[3][:] = True
    boxes = [[(10.0, 8.0, 30.0, 22.0)], [(0.0, 0.0, 32.0, 32.0)], [(30.0, 40.0, 36.0, 52.0)],
             [(2.0, 2.0, 6.0, 6.0), (20.0, 20.0, 30.0, 30.0)]]
    labels = [0, 3, 5, 1]
    blur = 0.2  # sigma 6.4 px on the 32 px input: 39 taps, the blur's matrix products
    rows = []

    def counted(model, images, **kw):
        rows.append(len(images))
        return forward_logits(model, images, **kw)

    monkeypatch.setattr(deepinside.engine, "forward_logits", counted)
    reg, obj = E.erase_drops(clf, photos, labels, cells, boxes, blur=blur, batch_size=3)
    assert rows == [3 + 2 + 3, 1 + 1 + 1]  # photo 1's region row left out
    monkeypatch.undo()
    want_r, want_o = [], []
    for p, c, b, lab in zip(photos, cells, boxes, labels):
        x = model_batch(clf, [p], crop=False)
        sigma = blur * 32
        k = 2 * max(1, int(3 * sigma + 0.5)) + 1
        soft = torch.from_numpy(cv2.GaussianBlur(x[0].permute(1, 2, 0).numpy(), (k, k), sigma,
                                                 borderType=cv2.BORDER_REFLECT_101))
        soft = soft.permute(2, 0, 1)[None]
        r, o = E.erase_masks([c], [b], [p.size], (32, 32))
        logits = forward_logits(clf, torch.cat([x, x * (1 - r) + soft * r,
                                                x * (1 - o) + soft * o]))[:, lab].double()
        want_r.append(float(logits[0] - logits[1]) if r.any() else 0.0)
        want_o.append(float(logits[0] - logits[2]))
    assert want_r[1] == 0.0 and reg[1] == 0.0
    assert min(abs(v) for v in want_r[:1] + want_r[2:] + want_o) > 1e-4  # drops of 5e-4 to 0.08
    np.testing.assert_allclose(reg, want_r, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(obj, want_o, rtol=1e-3, atol=1e-7)


def test_audit_json_has_exactly_the_fields():
    rng = np.random.default_rng(0)
    lines = [line(f"s{i}", blob(0.9, 0.9) + 0.05 * rng.random((H, W)), (10, 10, 40, 40))
             for i in range(5)]
    a = SU.class_audit(2, "two", lines)
    a.clusters[0].set_erase([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    b = SU.class_audit(1, "one", lines[:2])
    out = audit_json([b, a], {"model": "m", "method": "gradcam"})
    assert [c["class"] for c in out["classes"]] == [2, 1]  # flagged / more suspicious first
    c = out["classes"][0]
    assert set(c) == {"class", "name", "n", "accuracy", "energy_in_box", "pointing",
                      "suspicion", "flagged", "clusters"}
    assert c["flagged"] is True
    assert set(c["clusters"][0]) == {"share", "peak", "erase_region_drop", "erase_object_drop",
                                     "examples"}
    assert c["clusters"][0]["peak"] == pytest.approx([0.9, 0.9], abs=1 / 16)
    json.dumps(out)


def toy_dataset(root, n: int = 12, classes: int = 3) -> Path:
    """``n`` random 40 x 40 photos, labels cycling through ``classes``, one box each."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            root / "img" / f"p{i:02d}.png")
        rows.append({"file": f"img/p{i:02d}.png", "label": i % classes,
                     "boxes_xyxy": [[5, 5, 25 + i % 10, 30]]})
    (root / "annotations.json").write_text(json.dumps(rows))
    return root / "annotations.json"


def test_audit_writes_streams_resumes_and_refuses(tmp_path, monkeypatch):
    import re

    from models import tiny_classifier

    import deepinside
    from deepinside.audit import analysis
    from deepinside.evaluate.rundir import RunLockedError, RunMismatchError, locked

    clf = tiny_classifier()
    data = toy_dataset(tmp_path / "data")
    out = tmp_path / "audit"
    first = deepinside.audit(clf, data, out, batch_size=4, show_progress=False)
    lines = (out / "per_image.jsonl").read_text().splitlines()
    assert len(lines) == 12 and first["n_photos"] == 12
    assert sorted(c["class"] for c in first["classes"]) == [0, 1, 2]
    assert json.loads((out / "audit.json").read_text()) == first
    page = (out / "index.html").read_text()
    assert "http://" not in page and "https://cdn" not in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs and all((out / s).is_file() for s in srcs)
    # killed after 5 photos (a torn sixth line): the resumed audit computes the other 7 only,
    # and says the same
    (out / "per_image.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    done = []
    stage = analysis.audit_batch

    def counting(model, items, *args, **kw):
        done.extend(r.key for r in items)
        return stage(model, items, *args, **kw)

    monkeypatch.setattr(analysis, "audit_batch", counting)
    again = deepinside.audit(clf, data, out, batch_size=4, show_progress=False)
    assert len(done) == 7
    assert again == first
    # another method into the same folder is refused; so is a second writer
    with pytest.raises(RunMismatchError, match="method"):
        deepinside.audit(clf, data, out, method="gradient", show_progress=False)
    with locked(out), pytest.raises(RunLockedError):
        deepinside.audit(clf, data, out, show_progress=False)


def test_audit_classes_and_limit(tmp_path):
    from models import tiny_classifier

    import deepinside

    clf = tiny_classifier()
    data = toy_dataset(tmp_path / "data")
    r = deepinside.audit(clf, data, tmp_path / "a", classes=["class1"], limit=3,
                         show_progress=False)
    assert [c["class"] for c in r["classes"]] == [1] and r["n_photos"] == 3
    with pytest.raises(ValueError, match="unknown class"):
        deepinside.audit(clf, data, tmp_path / "b", classes=["nope"], show_progress=False)


def test_cli_audit(tmp_path, capsys):
    from deepinside.cli import main

    data = toy_dataset(tmp_path / "data")
    out = tmp_path / "cli"
    rc = main(["audit", "--dataset", str(data), "--model", "models:tiny_classifier",
               "--out", str(out), "--batch-size", "4", "--classes", "0,2"])
    assert rc == 0
    said = capsys.readouterr().out
    assert said.startswith("8 photos, 2 classes, ")
    assert json.loads((out / "audit.json").read_text())["n_photos"] == 8
    assert main(["audit", "--dataset", str(data), "--model", "models:tiny_classifier",
                 "--out", str(out), "--batch-size", "4", "--classes", "0,2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((out / "audit.json").read_text())
    assert main(["audit", "--dataset", str(data), "--model", "models:tiny_classifier",
                 "--out", str(out), "--method", "gradient"]) == 2  # another audit there
    assert main(["audit", "--dataset", str(data), "--model", "models:tiny_classifier",
                 "--method", "gradcamm"]) == 2  # did you mean


@pytest.mark.slow
def test_audit_on_ray_writes_the_same_lines(tmp_path):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    import os

    from models import tiny_classifier

    import deepinside

    tests = Path(__file__).resolve().parent
    os.environ["PYTHONPATH"] = os.pathsep.join(
        dict.fromkeys([str(tests.parent / "src"), str(tests)]
                      + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    clf = tiny_classifier()
    data = toy_dataset(tmp_path / "data", n=8)
    local = deepinside.audit(clf, data, tmp_path / "local", batch_size=4, show_progress=False)
    ray.init(num_cpus=2, object_store_memory=150 * 1024**2, include_dashboard=False,
             log_to_driver=False)
    try:
        remote = deepinside.audit(clf, data, tmp_path / "ray", batch_size=4, backend="ray",
                                  show_progress=False)
    finally:
        ray.shutdown()

    def strip(path):
        rows = [json.loads(x) for x in (path / "per_image.jsonl").read_text().splitlines()]
        return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows),
                      key=lambda r: r["key"])

    assert strip(tmp_path / "ray") == strip(tmp_path / "local")
    assert remote["classes"] == local["classes"]


def test_audit_of_a_path_with_a_malformed_record_reports_it_and_goes_on(tmp_path):
    from models import tiny_classifier

    import deepinside

    data = toy_dataset(tmp_path / "data", n=6)
    rows = json.loads(data.read_text())
    data.write_text(json.dumps(rows + [{"file": "img/p00.png", "label": "not a class"}]))
    said = []
    result = deepinside.audit(tiny_classifier(), data, tmp_path / "audit", batch_size=4,
                              show_progress=False, on_problem=lambda p, why: said.append(p))
    assert len(said) == 1  # the malformed record, said once
    assert result["n_photos"] == 6 and result["n_failed"] == 0
