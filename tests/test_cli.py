"""The `deepinside` command: classify, saliency, demo; bad inputs never stop a batch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data

from deepinside.cli import main


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(data.chelsea()).save(d / "cat.jpg")
    Image.fromarray(data.coffee()).resize((150, 100)).save(d / "coffee.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (d / "empty.png").write_bytes(b"")
    return d


def test_classify_json(photos, capsys):
    rc = main(["classify", str(photos / "cat.jpg"), str(photos / "coffee.png"), "--json",
               "--top-k", "3"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["image"] for r in out] == [str(photos / "cat.jpg"),
                                                     str(photos / "coffee.png")]
    top = out[0]["top"]
    assert len(top) == 3 and set(top[0]) == {"class", "name", "prob", "logit"}
    assert top[0]["prob"] >= top[1]["prob"] >= top[2]["prob"]
    assert "cat" in top[0]["name"].lower()  # an Egyptian / tabby / tiger cat
    assert out[1]["top"][0]["name"] in ("espresso", "cup", "coffee mug")


def test_saliency_writes_outputs_and_reports_bad_inputs(photos, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["saliency", str(photos), str(photos / "missing.jpg"), "--out", str(out),
               "--batch-size", "1"])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [x for x in err.splitlines() if x.startswith("deepinside: ")]
    assert len(lines) == 3 and "Traceback" not in err
    assert any("broken.jpg" in x for x in lines) and any("empty.png" in x for x in lines)
    assert any("missing.jpg" in x for x in lines)
    for stem, (h, w) in {"cat": (300, 451), "coffee": (100, 150)}.items():
        m = np.load(out / f"{stem}_saliency.npy")
        assert m.dtype == np.float32 and m.shape == (h, w) and (m >= 0).all() and m.max() > 0
        pw, ph = Image.open(out / f"{stem}_saliency.png").size
        assert ph == h and pw > w  # the map, then its colour bar
        assert Image.open(out / f"{stem}_overlay.png").size == (w, h)
    # A second run refuses to overwrite, unless asked.
    before = (out / "cat_saliency.npy").stat().st_mtime_ns
    old_map = np.load(out / "cat_saliency.npy")
    rc = main(["saliency", str(photos / "cat.jpg"), "--out", str(out), "--target", "lemon"])
    assert rc == 1 and "--overwrite" in capsys.readouterr().err
    assert (out / "cat_saliency.npy").stat().st_mtime_ns == before
    rc = main(["saliency", str(photos / "cat.jpg"), "--out", str(out), "--target", "lemon",
               "--overwrite"])
    assert rc == 0
    assert not np.array_equal(np.load(out / "cat_saliency.npy"), old_map)  # lemon, not cat


def test_saliency_keeps_the_sign_of_signed_methods(photos, tmp_path):
    out = tmp_path / "signed"
    cat = str(photos / "cat.jpg")
    assert main(["saliency", cat, "--method", "gradient_x_input", "--out", str(out)]) == 0
    m = np.load(out / "cat_saliency.npy")
    assert (m < 0).any() and (m > 0).any()  # auto: a signed method is drawn with its sign
    png = np.asarray(Image.open(out / "cat_saliency.png").convert("RGB"))[:, : m.shape[1]]
    # red (for) where the map is strongly positive, blue (against) where strongly negative
    hi, lo = m > np.percentile(m, 99.9), m < np.percentile(m, 0.1)
    assert png[hi][:, 0].mean() > png[hi][:, 2].mean()
    assert png[lo][:, 2].mean() > png[lo][:, 0].mean()
    out2 = tmp_path / "absolute"
    assert main(["saliency", cat, str(photos / "coffee.png"), "--method", "gradient_x_input",
                 "--sign", "absolute", "--shared-scale", "--out", str(out2)]) == 0
    assert (np.load(out2 / "cat_saliency.npy") >= 0).all()


def test_unknown_class_and_model_are_one_line_errors(photos, capsys):
    assert main(["saliency", str(photos / "cat.jpg"), "--target", "flamingoo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "flamingo" in err
    assert main(["classify", str(photos / "cat.jpg"), "--model", "nonsense"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "deepinside", "--version"], capture_output=True,
                       text=True, check=True)
    assert r.stdout.startswith("deepinside ")


def test_a_reader_that_goes_away_is_no_traceback():
    """``deepinside methods | head -1``: the pipe closes before the output is written; as for
    other Unix tools, nothing on stderr and the status of a command stopped by SIGPIPE."""
    p = subprocess.Popen([sys.executable, "-m", "deepinside", "methods", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # before the interpreter has even started: every write meets EPIPE
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=120) == 141 and err == ""


@pytest.mark.slow
def test_demo_runs_offline(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    fig = tmp_path / "demo" / "saliency.png"
    assert fig.is_file() and Image.open(fig).size[0] > 600


@pytest.mark.parametrize("args", [
    ["classify", "x.png", "-b", "0"], ["classify", "x.png", "-b", "-3"],
    ["classify", "x.png", "--top-k", "0"], ["saliency", "x.png", "--batch-size", "two"],
    ["localize", "x.png", "--top-k", "0"], ["evaluate", "localization", "-d", "x", "-j", "-1"],
    ["classmodel", "-c", "1", "--size", "4"], ["classmodel", "-c", "1", "--snapshots", "-1"],
])
def test_bad_numbers_are_usage_errors(args, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err


def test_every_subcommand_has_its_own_module():
    from deepinside.cli import COMMANDS, build_parser, command_modules

    assert [m.__name__.rsplit(".", 1)[1] for m in command_modules()] == list(COMMANDS)
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(COMMANDS)


def test_models_json_lists_the_same_models_as_the_table(capsys):
    import json

    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["name"] in table and r["description"] in table for r in rows)


def test_every_dataset_flag_has_the_short_form():
    from deepinside.cli import build_parser

    parser = build_parser()
    for args in (["evaluate", "localization"], ["evaluate", "compare"], ["paper"]):
        ns = parser.parse_args([*args, "-d", "some/folder"])
        assert ns.dataset == "some/folder"


def test_a_flag_has_the_same_short_flag_in_every_subcommand():
    import argparse
    import collections

    from deepinside.cli import build_parser

    shorts: dict[str, dict[str, tuple]] = collections.defaultdict(dict)

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub, sp in a.choices.items():
                    walk(sp, f"{name} {sub}".strip())
            for long in (o for o in a.option_strings if o.startswith("--")):
                shorts[long][name] = tuple(o for o in a.option_strings if not o.startswith("--"))

    walk(build_parser(), "")
    assert len(shorts) > 30
    differ = {f: d for f, d in shorts.items() if len(set(d.values())) > 1}
    assert not differ, differ


def test_the_methods_grid_draws_an_unsigned_method_absolute_and_says_so(tmp_path, monkeypatch):
    """``methods.png`` in sign "negative": the signed methods in that sign (with the options
    that keep it), the unsigned ones (magnitudes: no negative part) absolute, named so."""
    from models import tiny_classifier

    import deepinside.methods
    import deepinside.render
    from deepinside.cli.demo import DemoContext
    from deepinside.cli.methods import demo

    grids = []
    monkeypatch.setattr(deepinside.methods, "method_names",
                        lambda: ("gradient", "gradcam", "gradient_x_input", "occlusion"))
    monkeypatch.setattr(deepinside.render, "save_map_grid",
                        lambda path, photo, panels, **kw: grids.append(panels) or path)
    ctx = DemoContext(tiny_classifier(), [("flat", Image.new("RGB", (40, 32), (90, 60, 30)))],
                      tmp_path)
    demo(ctx, sign="negative")
    demo(ctx)  # auto: each at its own default, nothing to say
    negative, auto = ({title: sign for title, _, sign in panels} for panels in grids)
    assert negative == {"gradient (absolute: no sign)": "absolute",
                        "gradcam (absolute: no sign)": "absolute",
                        "gradient_x_input": "negative", "occlusion": "negative"}
    gxi = next(m for title, m, _ in grids[0] if title == "gradient_x_input")
    assert (gxi < 0).any()  # reduce="sum": the sign kept, not the default sum of magnitudes
    assert auto == {"gradient": "absolute", "gradcam": "absolute", "gradient_x_input": "all",
                    "occlusion": "all"}


def test_demo_sign_and_shared_scale_reach_the_methods_grid(tmp_path, monkeypatch):
    """``deepinside demo --sign positive --shared-scale``: the methods grid draws in that sign
    on one scale (the other figures are left out here: only the flags' path is checked)."""
    from models import tiny_classifier

    import deepinside.cli.classmodel
    import deepinside.cli.demo
    import deepinside.cli.localize
    import deepinside.methods
    import deepinside.render

    calls = []
    monkeypatch.setattr(deepinside.cli.demo, "model_from_args", lambda args: tiny_classifier())
    for other in (deepinside.cli.classmodel, deepinside.cli.localize):
        monkeypatch.setattr(other, "demo", lambda ctx: [])
    monkeypatch.setattr(deepinside.methods, "method_names", lambda: ("gradient_x_input",))
    monkeypatch.setattr(deepinside.render, "save_map_grid",
                        lambda path, photo, panels, **kw: calls.append((panels, kw)) or path)
    assert main(["demo", "--out", str(tmp_path), "--sign", "positive", "--shared-scale"]) == 0
    assert main(["demo", "--out", str(tmp_path)]) == 0
    (signed, kw), (auto, kw_auto) = calls
    assert [s for _, _, s in signed] == ["positive"] and kw["shared_scale"] is True
    assert [s for _, _, s in auto] == ["all"] and kw_auto["shared_scale"] is False
