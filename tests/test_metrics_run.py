"""``evaluate compare --metrics``: a resumable run with per-photo lines, intervals and
significance, refusing another run's folder and a locked one."""

from __future__ import annotations

import json
import math

import pytest
from models import tiny_classifier
from PIL import Image

from deepinside.evaluate.datasets import Record
from deepinside.evaluate.metrics_run import compare_metrics, metrics_table, summarize_metrics
from deepinside.evaluate.rundir import RunLockedError, RunMismatchError, locked

METRICS = "sparseness,pointing_game,faithfulness_correlation"


def _records(tmp_path, labels=(1, 99, 2, 3)):
    recs = []
    for i, label in enumerate(labels):
        Image.new("RGB", (40, 30), (60 * i, 90, 30 + 40 * i)).save(tmp_path / f"p{i}.png")
        recs.append(Record(tmp_path / f"p{i}.png", label, [(5.0, 5.0, 30.0, 25.0)],
                           key=f"p{i}.png"))
    return recs


def test_a_run_writes_lines_resumes_after_a_kill_and_refuses_other_runs(tmp_path):
    clf = tiny_classifier()
    records = _records(tmp_path)
    methods = ["gradient", "gradcam"]
    said = []
    one_go = compare_metrics(clf, records, tmp_path / "a", methods, METRICS, batch_size=2,
                             show_progress=False, on_problem=lambda p, why: said.append(why))
    lines = [json.loads(x) for x in (tmp_path / "a" / "per_image.jsonl").read_text().splitlines()]
    assert len(lines) == 3 * 2 + 1 and said == ["label 99 is not a class of the model (0..5)"]
    assert one_go["n_images"] == 3 and one_go["n_failed"] == 1
    for m in methods:
        vals = [d["scores"]["sparseness"] for d in lines if d.get("method") == m]
        assert one_go["methods"][m]["sparseness"]["mean"] == pytest.approx(sum(vals) / 3)
        assert one_go["methods"][m]["sparseness"]["ci95"] > 0
    # killed after three lines, in the middle of the fourth: resumed, nothing lost or doubled
    b = tmp_path / "b"
    b.mkdir()
    (b / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    text = (tmp_path / "a" / "per_image.jsonl").read_text().splitlines(keepends=True)
    (b / "per_image.jsonl").write_text("".join(text[:3]) + text[3][:10])
    resumed = compare_metrics(clf, records, b, methods, METRICS, batch_size=2,
                              show_progress=False)
    again = [json.loads(x) for x in (b / "per_image.jsonl").read_text().splitlines()]
    assert sorted((d["key"], d.get("method")) for d in again) == sorted(
        (d["key"], d.get("method")) for d in lines)
    for s in (resumed, one_go):  # the same numbers; only the timings differ
        for row in s["methods"].values():
            row.pop("map_ms")
            row.pop("metric_ms")
    assert resumed == one_go
    with pytest.raises(RunMismatchError, match="metrics"):
        compare_metrics(clf, records, b, methods, "sparseness", show_progress=False)
    with locked(b), pytest.raises(RunLockedError):
        compare_metrics(clf, records, b, methods, METRICS, show_progress=False)
    assert "sparseness (higher)" in metrics_table(resumed)


def test_summary_intervals_and_significance_by_hand():
    a = [0.9, 0.8, 0.85, 0.95]
    b = [0.1, 0.2, 0.15, 0.05]
    c = [0.12, 0.18, 0.16, 0.06]
    rows = [{"key": f"k{i}", "record_hash": "h", "method": m, "map_ms": 1.0,
             "scores": {"sparseness": v[i]}}
            for m, v in (("A", a), ("B", b), ("C", c)) for i in range(4)]
    s = summarize_metrics(rows, ["A", "B", "C"], ["sparseness"])
    sd = math.sqrt(sum((x - 0.875) ** 2 for x in a) / 3)
    assert s["methods"]["A"]["sparseness"]["mean"] == pytest.approx(0.875)
    assert s["methods"]["A"]["sparseness"]["ci95"] == pytest.approx(3.182446 * sd / 2, rel=1e-5)
    pairs = {(p["a"], p["b"]): p["better"] for p in s["significant"]["sparseness"]}
    assert pairs.get(("A", "B")) == "A" and pairs.get(("A", "C")) == "A"
    assert ("B", "C") not in pairs  # close, and B / C alternate: not significant
    assert "A better than B" in metrics_table(s) and "0.875 ± " in metrics_table(s)
