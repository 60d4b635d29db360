"""``deepinside paper``: the page, its numbers, its figures, and resuming (deepinside.report)."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import data_dir

from deepinside.evaluate.metrics_run import summarize_metrics
from deepinside.report.page import render_page
from deepinside.report.sections import metrics_section


class _Page(HTMLParser):
    """Collects image sources and checks that every opened element is closed in order."""

    VOID = {"meta", "img", "br", "link", "hr", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def check_page(out: Path) -> _Page:
    text = (out / "index.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and "http://" not in text.replace(
        "https://arxiv.org", "")  # nothing loaded from elsewhere
    page = _Page()
    page.feed(text)
    assert not page.errors and not page.stack
    assert page.images and all((out / src).is_file() for src in page.images)
    return page


@pytest.mark.slow
def test_quick_report_on_demo_photos_from_the_command_line(tmp_path):
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "deepinside", "paper", "--quick", "-o", out],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[5/6] Beyond the paper" in done.stderr  # progress per section
    assert "[6/6] Methods scored by metrics" in done.stderr
    page = check_page(out)
    assert len(page.images) == 5  # two class-model grids, evolution, saliency, localisation
    report = json.loads((out / "report.json").read_text())
    s = report["sections"]
    assert report["quick"] and "Quick report" in (out / "index.html").read_text()
    assert "no dataset with boxes" in s["localization"]["skipped"]
    assert "skipped" in s["methods"] and "skipped" in s["metrics"]
    assert s["deconvnet"]["conv_maxpool_network"]["without_relu"]["max_abs_difference"] == 0.0
    assert s["deconvnet"]["conv_maxpool_network"]["with_relu"]["relative"] > 0.01
    modes = s["class_models"]["modes"]
    assert set(modes) == {"paper", "lucid"} and modes["paper"]["steps"] == 40
    own = modes["paper"]["probability"]["efficientnet_lite0"]
    assert len(own) == 4 and sum(own) / 4 > 0.5  # the paper's images convince their model


@pytest.mark.slow
def test_report_numbers_are_evaluate_localization_s_and_a_rerun_reuses(tmp_path, lite0):
    root = data_dir()
    if root is None:
        pytest.skip("imagenet-val-300 not found (set DEEPINSIDE_DATA)")
    from deepinside.evaluate.datasets import read_dataset
    from deepinside.report import paper_report

    records = read_dataset(root)[0][:6]
    out = tmp_path / "report"
    first = paper_report(lite0, out, records=records, dataset=str(root), quick=True,
                         say=lambda m: None)
    check_page(out)
    table = first["sections"]["localization"]["table"]
    done = subprocess.run([sys.executable, "-m", "deepinside", "evaluate", "localization", "-d",
                           str(root), "-n", "6", "-r", "paper", "-j", "0", "-o",
                           str(tmp_path / "eval")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-1500:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    for key in ("gt_known_loc_acc", "top1_loc_acc", "top5_loc_err", "pointing_game"):
        assert table["paper"][key] == summary[key]
    assert table["paper"]["baselines"] == summary["baselines"]
    assert first["accuracy"]["top1"] == summary["top1_cls_acc"]
    rows = first["sections"]["methods"]["rows"]
    assert [r["method"] for r in rows] == ["gradient", "guided_backprop", "gradcam"]
    # the metrics table is its run's summary; each mean is its lines' mean
    metrics = first["sections"]["metrics"]
    run = out / "eval" / "metrics-quick"
    assert metrics["run"] == "eval/metrics-quick" and metrics["n_photos"] == 4
    assert {k: v for k, v in metrics.items() if k != "seconds"} == metrics_section(
        json.loads((run / "summary.json").read_text()), "eval/metrics-quick")
    lines = [json.loads(x) for x in (run / "per_image.jsonl").read_text().splitlines()]
    assert len(lines) == 4 * 3
    sparse = next(r for r in metrics["rows"] if r["metric"] == "sparseness")
    for m in metrics["methods"]:
        vals = [d["scores"]["sparseness"] for d in lines if d["method"] == m]
        assert sparse["methods"][m]["mean"] == pytest.approx(sum(vals) / 4, abs=1e-4)
    # an interrupted report: one section's result lost, the page not written
    (out / "cache" / "methods.json").unlink()
    (out / "index.html").unlink()
    again = paper_report(lite0, out, records=records, dataset=str(root), quick=True,
                         say=lambda m: None)
    s = again["sections"]
    assert all(s[k].get("reused") for k in ("class_models", "saliency", "deconvnet",
                                             "localization", "metrics"))
    def untimed(rs):
        return [{k: v for k, v in r.items() if k != "ms_per_image"} for r in rs]

    assert not s["methods"].get("reused") and untimed(s["methods"]["rows"]) == untimed(rows)
    check_page(out)
    # a finished metrics run shown instead: only the metrics section is computed again, and a
    # run inside the report's folder is named as the page links it
    shown = paper_report(lite0, out, records=records, dataset=str(root), quick=True,
                         say=lambda m: None, metrics_run=run)["sections"]
    assert all(shown[k].get("reused") for k in ("class_models", "saliency", "deconvnet",
                                                 "localization", "methods"))
    assert not shown["metrics"].get("reused")
    assert {k: v for k, v in shown["metrics"].items() if k != "seconds"} == {
        k: v for k, v in metrics.items() if k != "seconds"}


def test_page_renders_every_section_from_report_json():
    probs = {"m0": [0.9, 0.8], "m1": [0.1, 0.3]}
    corr = {"mean": 0.5, "min": 0.1, "max": 0.9}
    scores = {"gt_known_loc_acc": 0.7, "top1_loc_acc": 0.6, "top5_loc_err": 0.3}
    loc = {**scores, "n_images": 5, "pointing_game": 0.9, "top1_cls_acc": 0.8,
           "top5_cls_acc": 0.9, "baselines": {"whole_image": scores, "centred_box": scores}}
    report = {
        "title": "T", "paper": "P, https://arxiv.org/abs/1312.6034", "model": "m0",
        "dataset": "d", "n_photos": 5, "quick": False, "seconds": 12.0,
        "versions": {"deepinside": "0"}, "machine": {"system": "s", "cpu": "c", "cpus": 2,
                                                     "cuda": None},
        "accuracy": {"top1": 0.8, "top5": 0.9},
        "sections": {
            "class_models": {"classes": [{"class": 1, "name": "goose"},
                                         {"class": 2, "name": "lemon <b>"}],
                             "modes": {"paper": {"steps": 2, "seconds": 1, "figure": "f/a.png",
                                                 "probability": probs,
                                                 "evolution": {"class": "goose",
                                                               "figure": "f/e.png",
                                                               "steps": [1, 2]}},
                                       "lucid": {"steps": 2, "seconds": 1, "figure": "f/b.png",
                                                 "probability": probs}}},
            "saliency": {"figure": "f/s.png", "photos": [{"photo": "x", "name": "goose",
                                                          "prob": 0.5}]},
            "deconvnet": {"n_photos": 2, "model": {"deconvnet_vs_gradient": corr,
                                                   "deconvnet_vs_guided_backprop": corr},
                          "conv_maxpool_network": {"without_relu": {"max_abs_difference": 0.0},
                                                   "with_relu": {"relative": 0.5}}},
            "localization": {"figure": "f/l.png", "paper_top5_loc_err": 0.464,
                             "table": {"paper": loc, "default": loc}},
            "metrics": metrics_section(summarize_metrics(
                [{"key": f"k{i}", "record_hash": "h", "method": m, "map_ms": 2.0,
                  "scores": {"sparseness": v[i], "pointing_game": 1.0}}
                 for m, v in (("gradient", [0.9, 0.8, 0.85, 0.95]),
                              ("gradcam", [0.1, 0.2, 0.15, 0.05])) for i in range(4)],
                ["gradient", "gradcam"], ["sparseness", "pointing_game"]), "eval/metrics"),
            "methods": {"n_photos": 5, "rows": [{"method": "gradient", "pointing": 0.9,
                                                 "gt_known_loc": 0.5, "deletion_auc": 0.1,
                                                 "insertion_auc": 0.4,
                                                 "randomization_corr": 0.05,
                                                 "ms_per_image": 30.0}]},
        },
    }
    html = render_page(report)
    page = _Page()
    page.feed(html)
    assert not page.errors and not page.stack
    assert page.images == ["f/a.png", "f/e.png", "f/b.png", "f/s.png", "f/l.png"]
    assert "lemon &lt;b&gt;" in html and "46.4%" in html and "30.0%" in html
    assert "mean probability of 0.85" in html  # the generating model on its paper images
    # the metrics table: mean ± 95% half-width, the significantly better method in bold
    assert "<b>0.875 &plusmn; 0.103</b>" in html and "0.125 &plusmn; 0.103" in html
    assert "sparseness: gradient better than gradcam (p = 0.0014)" in html
    assert "pointing_game: " not in html  # equal everywhere: no test, no difference


@pytest.mark.slow
def test_the_page_in_a_real_browser_at_desktop_and_phone_width(tmp_path, lite0):
    from browser import chromium

    from deepinside.report import paper_report

    out = tmp_path / "report"
    paper_report(lite0, out, quick=True, say=lambda m: None)
    with chromium() as browser:
        for width, height in ((1280, 900), (390, 844)):
            page = browser.new_page(viewport={"width": width, "height": height})
            problems: list[str] = []
            page.on("console", lambda m, seen=problems: seen.append(m.text)
                    if m.type == "error" else None)
            page.on("pageerror", lambda e, seen=problems: seen.append(str(e)))
            page.goto((out / "index.html").resolve().as_uri())
            page.wait_for_load_state("load", timeout=60_000)
            page.wait_for_function("() => [...document.images].every(i => i.complete)",
                                   timeout=60_000)
            broken = page.evaluate("() => [...document.images].filter(i => !i.complete || "
                                   "i.naturalWidth === 0).map(i => i.src)")
            assert broken == [] and problems == []
            # nothing wider than the screen (tables scroll inside themselves)
            assert page.evaluate("() => document.documentElement.scrollWidth") <= width
            assert page.locator("h2").count() == 6
            page.close()


def test_paper_metrics_run_without_a_summary_is_a_one_line_error(tmp_path, capsys):
    from deepinside.cli import main

    rc = main(["paper", "--metrics-run", str(tmp_path), "--out", str(tmp_path / "out"),
               "--model", "models:tiny_classifier"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no summary.json there" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "index.html").exists()
