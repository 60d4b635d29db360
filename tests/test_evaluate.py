"""Tests of deepinside.evaluate: metrics by hand, every reader, the resumable parallel runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import data_dir  # one place knows where the dev photos are
from PIL import Image

from deepinside.evaluate import metrics as M
from deepinside.evaluate.datasets import DatasetError, read_dataset
from deepinside.evaluate.runner import MP_CONTEXT, RunMismatchError, run_localization
from deepinside.evaluate.scoring import summarize
from deepinside.evaluate.tables import localization_table

# ----------------------------------------------------------------------------- metrics


def test_box_arithmetic():
    assert M.box_area((1, 2, 4, 6)) == 12
    assert M.box_intersection((0, 0, 2, 2), (1, 0, 3, 2)) == 2
    assert M.box_iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(2 / 6)
    assert M.box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert M.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert M.box_iou((0, 0, 1, 1), (1, 0, 2, 1)) == 0.0  # touching edges
    assert M.box_iou((0, 0, 4, 4), (1, 1, 3, 3)) == pytest.approx(4 / 16)
    assert M.box_iou((1, 1, 1, 1), (1, 1, 1, 1)) == 0.0  # empty union
    assert M.max_iou((0, 0, 2, 2), [(5, 5, 6, 6), (0, 0, 2, 4)]) == pytest.approx(0.5)
    assert M.max_iou(None, [(0, 0, 1, 1)]) == 0.0
    with pytest.raises(ValueError):
        M.box_area((2, 0, 1, 1))
    with pytest.raises(ValueError):
        M.box_iou((0, 0, 1), (0, 0, 1, 1))
    assert M.centred_box(200, 100, 0.5, 0.4) == (50, 30, 150, 70)


def test_localisation_hits_on_hand_made_cases():
    gt = [(10, 10, 50, 50), (60, 60, 100, 100)]
    good = (62, 60, 100, 100)  # IoU 0.95 with the second box
    half = (10, 10, 50, 30)  # IoU exactly 0.5 with the first box
    assert M.gt_known_hit(good, gt) and M.gt_known_hit(half, gt)
    assert not M.gt_known_hit((10, 10, 50, 29), gt)
    # ILSVRC top-5: the true class (7) is the 4th guess with a good box -> no error
    preds = [(1, good), (2, good), (3, good), (7, good), (9, good)]
    assert M.top5_loc_error(preds, 7, gt) == 0
    assert not M.top1_loc_hit(preds, 7, gt)
    # right box, wrong classes -> error; right class, bad box -> error
    assert M.top5_loc_error([(c, good) for c in (1, 2, 3, 4, 5)], 7, gt) == 1
    assert M.top5_loc_error([(7, (0, 0, 5, 5)), (1, good)], 7, gt) == 1
    # the true class as 6th guess does not count
    assert M.top5_loc_error([(c, good) for c in (1, 2, 3, 4, 5, 7)], 7, gt) == 1
    assert M.top1_loc_hit([(7, good), (1, None)], 7, gt)
    assert not M.top1_loc_hit([(7, None)], 7, gt)


def test_pointing_game_within_15_px():
    gt = [(100, 100, 150, 150)]
    assert M.pointing_hit((120, 130), gt)  # inside
    assert M.pointing_hit((85, 120), gt)  # 15 px left of the box
    assert not M.pointing_hit((84.9, 120), gt)
    assert M.pointing_hit((150 + 9, 150 + 12), gt)  # 15 px diagonally (9-12-15)
    assert not M.pointing_hit((150 + 9.1, 150 + 12.1), gt)
    m = np.zeros((20, 30))
    m[4, 7] = 1.0
    assert M.map_peak(m) == (7.5, 4.5)


def test_energy_in_boxes():
    m = np.zeros((10, 10))
    m[2, 3] = 3.0  # centre (3.5, 2.5): inside (3, 2, 5, 5)
    m[8, 8] = 1.0  # outside
    m[0, 0] = -5.0  # negative values do not count
    assert M.energy_in_boxes(m, [(3, 2, 5, 5)]) == pytest.approx(0.75)
    assert M.energy_in_boxes(m, [(3, 2, 5, 5), (8, 8, 9, 9)]) == pytest.approx(1.0)
    assert M.energy_in_boxes(np.zeros((4, 4)), [(0, 0, 4, 4)]) == 0.0


def row(key, label, top5, box, gt, w=100, h=100, point=(50, 50), energy=0.5):
    hit = M.gt_known_hit(box, gt)
    preds = [(c, box if c == label else None) for c in top5]
    return {"key": key, "label": label, "top5": top5, "width": w, "height": h, "gt_boxes": gt,
            "box": box, "iou": M.max_iou(box, gt), "hit": hit,
            "top1_hit": M.top1_loc_hit(preds, label, gt),
            "top5_err": M.top5_loc_error(preds, label, gt), "point": point,
            "pointing_hit": M.pointing_hit(point, gt), "energy_in_box": energy, "note": "",
            "seconds": {"map": 0.1, "segment": 0.2}}


def test_summary_on_hand_made_rows():
    rows = [
        # top-1 right, box right
        row("a", 1, [1, 2, 3, 4, 5], (0, 0, 100, 100), [(0, 0, 100, 100)], energy=1.0),
        # true class 4th, box right: GT-known hit, top-5 hit, not top-1
        row("b", 7, [1, 2, 3, 7, 5], (20, 20, 80, 80), [(20, 20, 80, 80)], energy=0.0),
        # top-1 right, box wrong
        row("c", 3, [3, 1, 2, 4, 5], (0, 0, 10, 10), [(50, 50, 100, 100)], point=(0, 0)),
        # true class not in top 5, box right
        row("d", 9, [1, 2, 3, 4, 5], (0, 0, 50, 50), [(0, 0, 50, 50)]),
    ]
    s = summarize(rows)
    assert s["n_images"] == 4
    assert s["gt_known_loc_acc"] == pytest.approx(3 / 4)
    assert s["top1_loc_acc"] == pytest.approx(1 / 4)
    assert s["top1_loc_err"] == pytest.approx(3 / 4)  # the ILSVRC top-1 error: 1 - top-1 loc
    assert s["top5_loc_err"] == pytest.approx(2 / 4)
    assert s["pointing_game"] == pytest.approx(3 / 4)
    assert s["energy_in_box"] == pytest.approx(0.5)
    assert s["top1_cls_acc"] == pytest.approx(2 / 4) and s["top5_cls_acc"] == pytest.approx(3 / 4)
    whole = s["baselines"]["whole_image"]  # IoU 1, 0.36, 0.25, 0.25 -> only "a" hits
    assert whole == {"gt_known_loc_acc": 0.25, "top1_loc_acc": 0.25, "top1_loc_err": 0.75,
                     "top5_loc_err": 0.75}
    cb = s["baselines"]["centred_box"]  # mean size (1+.6+.5+.5)/4 = 0.65 -> (17.5, 82.5)
    assert cb["relative_size"] == pytest.approx([0.65, 0.65])
    # IoU with a: .4225; b: .36/.4225=.852; c: 32.5^2/(4225+2500-1056.25)=.186; d: .186
    assert cb["gt_known_loc_acc"] == 0.25 and cb["top1_loc_acc"] == 0.0
    assert s["baselines"]["centre_point"]["pointing_game"] == pytest.approx(1.0)
    table = localization_table(s).splitlines()
    assert table[0].split()[:8] == ["GT-known", "loc", "top-1", "loc", "err", "top-5", "loc",
                                    "err"]
    assert table[1].split()[1:4] == ["0.750", "0.750", "0.500"]  # GT-known, top-1 / top-5 err
    assert table[2].split()[2:5] == ["0.250", "0.750", "0.750"]  # whole-image box
    assert summarize(rows[::-1]) == s


# ----------------------------------------------------------------------------- readers


def photo(path: Path, size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path


def test_json_reader_with_malformed_records(tmp_path):
    photo(tmp_path / "img/a.jpg")
    photo(tmp_path / "img/b.jpg")
    items = [
        {"file": "img/a.jpg", "label": 3, "boxes_xyxy": [[1, 2, 30, 20], [0, 0, 5, 5]]},
        {"file": "img/b.jpg", "label": "4", "boxes": [[1, 1, 2, 2]]},
        {"file": "img/a.jpg", "boxes_xyxy": [[1, 2, 3, 4]]},  # no label
        {"file": "img/a.jpg", "label": 1, "boxes_xyxy": [[5, 2, 3, 4]]},  # inverted
        {"file": "img/a.jpg", "label": 1, "boxes_xyxy": [[1, 2, "x", 4]]},  # junk number
        {"file": "img/a.jpg", "label": -1, "boxes_xyxy": [[1, 2, 3, 4]]},  # bad label
        {"file": "img/a.jpg", "label": 1, "boxes_xyxy": []},  # no box
        {"file": "img/zz.jpg", "label": 1, "boxes_xyxy": [[1, 2, 3, 4]]},  # missing photo
        "not a record",
    ]
    (tmp_path / "annotations.json").write_text(json.dumps(items))
    records, problems = read_dataset(tmp_path)
    assert [(r.path.name, r.label, r.boxes) for r in records] == [
        ("a.jpg", 3, [(1, 2, 30, 20), (0, 0, 5, 5)]), ("b.jpg", 4, [(1, 1, 2, 2)])]
    assert [w.rsplit("[", 1)[1] for w, _ in problems] == [f"{i}]" for i in range(2, 9)]
    assert any("not found" in why for _, why in problems)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read JSON"):
        read_dataset(tmp_path / "bad.json")
    (tmp_path / "none.json").write_text(json.dumps(items[2:]))
    with pytest.raises(DatasetError, match="no usable record"):
        read_dataset(tmp_path / "none.json")
    with pytest.raises(DatasetError, match="no such"):
        read_dataset(tmp_path / "missing")


VOC = """<annotation><folder>VOC</folder><filename>{name}</filename>
<size><width>40</width><height>30</height><depth>3</depth></size>{objects}</annotation>"""
OBJ = "<object><name>{cls}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>" \
      "<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"


def xml(path: Path, name: str, objects) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(VOC.format(name=name, objects="".join(OBJ.format(cls=c, b=b)
                                                         for c, b in objects)))


def test_xml_reader_ilsvrc_and_voc(tmp_path):
    # ILSVRC layout: val/*.xml, images elsewhere; names are WordNet ids
    root = tmp_path / "ilsvrc"
    photo(root / "images/ILSVRC2012_val_00000001.JPEG")
    photo(root / "images/ILSVRC2012_val_00000002.JPEG")
    xml(root / "val/ILSVRC2012_val_00000001.xml", "ILSVRC2012_val_00000001",
        [("n01440764", (1, 2, 20, 25)), ("n01440764", (3, 3, 9, 9))])
    xml(root / "val/ILSVRC2012_val_00000002.xml", "ILSVRC2012_val_00000002",
        [("n01443537", (0, 0, 40, 30))])
    xml(root / "val/ILSVRC2012_val_00000003.xml", "ILSVRC2012_val_00000003",
        [("n01443537", (0, 0, 4, 3))])  # no photo
    xml(root / "val/ILSVRC2012_val_00000004.xml", "ILSVRC2012_val_00000001",
        [("n99999999", (0, 0, 4, 3))])  # unknown class
    (root / "val/broken.xml").write_text("<annotation><object>")
    records, problems = read_dataset(root)
    assert [(r.label, r.boxes) for r in records] == [
        (0, [(1, 2, 20, 25), (3, 3, 9, 9)]), (1, [(0, 0, 40, 30)])]
    assert records[0].path.name == "ILSVRC2012_val_00000001.JPEG"
    assert sorted(Path(w).name for w, _ in problems) == [
        "ILSVRC2012_val_00000003.xml", "ILSVRC2012_val_00000004.xml", "broken.xml"]
    # VOC layout with class names from classes.txt; other classes' boxes are not the label's
    voc = tmp_path / "voc"
    (voc).mkdir()
    (voc / "classes.txt").write_text("cat\ndog\n")
    photo(voc / "JPEGImages/x.jpg")
    xml(voc / "Annotations/x.xml", "x.jpg", [("dog", (1, 1, 10, 10)), ("cat", (2, 2, 5, 5)),
                                              ("dog", (20, 5, 30, 25))])
    xml(voc / "Annotations/y.xml", "x.jpg", [("dog", (10, 1, 1, 10))])  # inverted box
    records, problems = read_dataset(voc)
    assert [(r.label, r.boxes) for r in records] == [(1, [(1, 1, 10, 10), (20, 5, 30, 25)])]
    assert len(problems) == 1 and "inverted" in problems[0][1]


def test_csv_reader(tmp_path):
    photo(tmp_path / "a.png")
    photo(tmp_path / "b.png")
    (tmp_path / "boxes.csv").write_text(textwrap.dedent("""\
        file,label,x0,y0,x1,y1
        a.png,2,1,1,10,10
        a.png,2,5,5,20,20
        b.png,3,0,0,40,30
        b.png,4,0,0,4,3
        a.png,2,1,1,oops,10
        c.png,1,0,0,4,3
        ,1,0,0,4,3
        """))
    records, problems = read_dataset(tmp_path / "boxes.csv")
    assert [(r.path.name, r.label, r.boxes) for r in records] == [
        ("a.png", 2, [(1, 1, 10, 10), (5, 5, 20, 20)]), ("b.png", 3, [(0, 0, 40, 30)])]
    assert [w.rsplit(":", 1)[1] for w, _ in problems] == ["5", "6", "7", "8"]
    (tmp_path / "alt.csv").write_text("image,label,xmin,ymin,xmax,ymax\nb.png,0,1,2,3,4\n")
    records, _ = read_dataset(tmp_path / "alt.csv")
    assert records[0].boxes == [(1, 2, 3, 4)]
    (tmp_path / "bad.csv").write_text("name,cls\nx,1\n")
    with pytest.raises(DatasetError, match="header"):
        read_dataset(tmp_path / "bad.csv")


def test_reads_the_real_dev_set():
    root = data_dir()
    if root is None:
        pytest.skip("imagenet-val-300 not found (set DEEPINSIDE_DATA)")
    records, problems = read_dataset(root)
    assert len(records) == 300 and problems == []
    assert sum(len(r.boxes) for r in records) == 408
    assert all(r.path.is_file() and 0 <= r.label < 1000 for r in records)
    assert all(0 <= b[0] < b[2] <= 227 and 0 <= b[1] < b[3] <= 227
               for r in records for b in r.boxes)


# ----------------------------------------------------------------------------- runner


def synthetic_dataset(root: Path, n: int = 6) -> Path:
    """Photos of a red square at various places on a textured background, as a JSON dataset."""
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        img = (rng.random((48, 64, 3)) * 80 + np.array([0, 80, 60])).astype(np.uint8)
        x0, y0 = 4 + 7 * i % 40, 6 + 3 * i % 22  # on the 64 x 48 photo, whatever n
        img[y0:y0 + 20, x0:x0 + 16] = (220, 40, 40)
        Image.fromarray(img).save(root / f"p{i}.png")
        items.append({"file": f"p{i}.png", "label": i % 3,
                      "boxes_xyxy": [[x0, y0, x0 + 16, y0 + 20]]})
    (root / "annotations.json").write_text(json.dumps(items))
    return root / "annotations.json"


def tiny():
    from models import tiny_classifier

    return tiny_classifier(6)


def without_timing(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "seconds_per_image"}


@pytest.mark.parametrize("recipe", ["paper", "default"])
def test_resume_gives_the_same_summary(tmp_path, recipe):
    records, _ = read_dataset(synthetic_dataset(tmp_path))
    clf = tiny()
    once = run_localization(clf, records, tmp_path / "once", recipe=recipe, workers=0,
                            batch_size=4, show_progress=False)
    assert once["n_images"] == 6 and 0 <= once["gt_known_loc_acc"] <= 1
    # an interrupted run: two whole lines, then a line torn by the interruption
    out = tmp_path / "resumed"
    run_localization(clf, records[:2], out, recipe=recipe, workers=0, show_progress=False)
    lines = (out / "per_image.jsonl").read_text().splitlines(keepends=True)
    (out / "per_image.jsonl").write_text("".join(lines) + lines[0][:25])
    resumed = run_localization(clf, records, out, recipe=recipe, workers=0, batch_size=4,
                               show_progress=False)
    assert without_timing(resumed) == without_timing(once)
    assert len((out / "per_image.jsonl").read_text().splitlines()) == 6
    assert json.loads((out / "summary.json").read_text()) == resumed
    a = sorted((out / "per_image.jsonl").read_text().splitlines())
    b = sorted((tmp_path / "once/per_image.jsonl").read_text().splitlines())
    strip = [lambda s: {k: v for k, v in json.loads(s).items() if k != "seconds"}]
    assert [strip[0](x) for x in a] == [strip[0](x) for x in b]
    with pytest.raises(RunMismatchError):
        run_localization(clf, records, out, recipe="paper-energy", workers=0,
                         show_progress=False)


def test_workers_are_spawned_and_import_no_torch():
    assert MP_CONTEXT in ("spawn", "forkserver")  # a fork after torch's threads can hang
    code = ("import sys, deepinside, deepinside.evaluate.scoring as s; "
            "print(sorted(m for m in ('torch', 'deepinside.engine') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"  # what a GrabCut worker loads: NumPy and OpenCV only


def test_worker_exits_when_its_parent_dies(tmp_path):
    code = textwrap.dedent("""
        import os, sys, time
        from deepinside.evaluate.scoring import init_worker
        if os.fork() == 0:          # the worker: watches the process that started it
            init_worker(os.getppid())
            open(sys.argv[1], "w").write(str(os.getpid()))
            time.sleep(60)
            os._exit(0)
        time.sleep(1.0)             # the parent dies first
        os._exit(0)
    """)
    pid_file = tmp_path / "pid"
    subprocess.run([sys.executable, "-c", code, str(pid_file)], timeout=60, check=True)
    pid = int(pid_file.read_text())
    for _ in range(40):  # the watcher polls twice a second
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.25)
    os.kill(pid, 9)
    pytest.fail("the worker outlived its parent")


PARALLEL = """
import json, sys, torch
torch.set_num_threads(2)
a = torch.randn(600, 600)
for _ in range(20):  # start torch's intra-op (OpenMP) threads before the workers exist
    a = torch.tanh(a @ a)
sys.path.insert(0, sys.argv[2])
from test_evaluate import synthetic_dataset, tiny
from deepinside.evaluate.datasets import read_dataset
from deepinside.evaluate.runner import run_localization
from pathlib import Path
root = Path(sys.argv[1])
records, _ = read_dataset(synthetic_dataset(root))
s2 = run_localization(tiny(), records, root / "w2", recipe="paper", workers=2, batch_size=2,
                      show_progress=False)
s0 = run_localization(tiny(), records, root / "w0", recipe="paper", workers=0,
                      show_progress=False)
s2.pop("seconds_per_image"); s0.pop("seconds_per_image")
print(json.dumps({"same": s2 == s0, "n": s2["n_images"]}))
"""


def test_parallel_workers_after_torch_threads_ran(tmp_path):
    """GrabCut in 2 worker processes started after torch's threads ran: must neither hang
    (a fork after OpenMP threads can deadlock) nor differ from the in-process result."""
    try:
        done = subprocess.run([sys.executable, "-c", PARALLEL, str(tmp_path),
                               str(Path(__file__).parent)],
                              capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("the parallel evaluation hung (workers deadlocked?)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"same": True, "n": 6}


@pytest.mark.slow
def test_cli_on_the_dev_set(tmp_path):
    root = data_dir()
    if root is None:
        pytest.skip("imagenet-val-300 not found (set DEEPINSIDE_DATA)")
    from deepinside.cli import main

    out = tmp_path / "eval"
    status = main(["evaluate", "localization", "--dataset", str(root), "--limit", "8",
                   "--workers", "0", "--out", str(out), "--recipe", "paper"])
    assert status == 0
    s = json.loads((out / "summary.json").read_text())
    for key in ("n_images", "gt_known_loc_acc", "top1_loc_acc", "top5_loc_err",
                "pointing_game", "energy_in_box", "baselines"):
        assert key in s
    assert s["n_images"] == 8
    assert s["top1_loc_acc"] <= s["gt_known_loc_acc"] <= 1
    assert 1 - s["top5_loc_err"] <= s["gt_known_loc_acc"]
    assert len((out / "per_image.jsonl").read_text().splitlines()) == 8
