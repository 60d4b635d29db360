"""What the evaluator promises with messy data and a busy machine: nothing lost, nothing stale,
one line per problem (the real command line, in subprocesses, where the promise is about it)."""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from procs import ctrl_c_stops
from test_evaluate import synthetic_dataset, tiny

from deepinside.evaluate.datasets import read_dataset
from deepinside.evaluate.runner import RunLockedError, RunMismatchError, run_localization

CLI = [sys.executable, "-m", "deepinside"]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def errors(err: str) -> list[str]:
    return [x for x in err.splitlines() if x.startswith("deepinside:")]


# ----------------------------------------------------------------------------- records


def test_a_label_outside_the_model_is_one_line_and_the_rest_is_kept(tmp_path):
    ann = synthetic_dataset(tmp_path)
    items = json.loads(ann.read_text())
    items[2]["label"] = 5000
    ann.write_text(json.dumps(items))
    out = tmp_path / "out"
    for _ in range(2):  # and a rerun neither crashes nor doubles a record
        done = cli("evaluate", "localization", "-d", ann, "-j", "0", "-o", out)
        assert done.returncode == 1, done.stderr[-1500:]
        bad = [x for x in errors(done.stderr) if "p2.png" in x]
        assert len(bad) == 1 and "label 5000 is not a class of the model (0..999)" in bad[0]
        assert "Traceback" not in done.stderr
        rows = lines(out / "per_image.jsonl")  # the failed photo is a line with its reason
        assert sorted(r["key"] for r in rows) == [f"p{i}.png" for i in range(6)]
        assert [(r["key"], r["error"]) for r in rows if "error" in r] == [
            ("p2.png", "label 5000 is not a class of the model (0..999)")]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["n_images"] == 5 and summary["n_failed"] == 1


def test_boxes_are_clipped_or_refused_against_the_photo(tmp_path):
    ann = synthetic_dataset(tmp_path)  # 64 x 48 photos
    items = json.loads(ann.read_text())
    items[0]["boxes_xyxy"] = [[500, 500, 900, 900]]  # nowhere on the photo
    items[1]["boxes_xyxy"] = [[40, 30, 90, 70], [500, 0, 600, 10]]  # sticks out; outside
    ann.write_text(json.dumps(items))
    out = tmp_path / "out"
    done = cli("evaluate", "localization", "-d", ann, "-j", "0", "-o", out)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    msgs = errors(done.stderr)
    assert [x for x in msgs if "p0.png" in x] == [
        f"deepinside: {tmp_path / 'p0.png'}: none of its boxes lies on the photo"]
    p1 = [x for x in msgs if "p1.png" in x]
    assert len(p1) == 2 and all("warning:" in x for x in p1)
    assert "clipped to the 64x48 photo" in p1[0] and "outside the 64x48 photo" in p1[1]
    rows = {r["key"]: r for r in lines(out / "per_image.jsonl")}
    assert rows["p0.png"]["error"] == "none of its boxes lies on the photo"
    assert rows["p1.png"]["gt_boxes"] == [[40.0, 30.0, 64.0, 48.0]]


# ----------------------------------------------------------------------------- stale results


def test_resume_refuses_other_weights_annotations_or_settings(tmp_path):
    records, _ = read_dataset(synthetic_dataset(tmp_path))
    clf = tiny()
    out = tmp_path / "out"
    run_localization(clf, records[:3], out, recipe="gradcam-30", workers=0, show_progress=False)
    saved = clf.module.head.bias.clone()
    with torch.no_grad():
        clf.module.head.bias[0] += 1.0  # other weights, same name
    with pytest.raises(RunMismatchError, match="weights_sha256"):
        run_localization(clf, records, out, recipe="gradcam-30", workers=0,
                         show_progress=False)
    with torch.no_grad():
        clf.module.head.bias.copy_(saved)
    moved = [r.__class__(r.path, (r.label + 1) % 6, r.boxes, r.key) for r in records]
    with pytest.raises(RunMismatchError, match="other annotations.*p0.png"):
        run_localization(clf, moved, out, recipe="gradcam-30", workers=0, show_progress=False)
    with pytest.raises(RunMismatchError, match=r"recipe.threshold \(0.3 there, 0.2 now\)"):
        run_localization(clf, records, out, recipe="gradcam-20", workers=0,
                         show_progress=False)
    with pytest.raises(RunMismatchError, match=r"seed \(0 there, 1 now\)"):
        run_localization(clf, records, out, recipe="gradcam-30", seed=1, workers=0,
                         show_progress=False)
    s = run_localization(clf, records, out, recipe="gradcam-30", workers=0, show_progress=False)
    assert s["n_images"] == 6 and len(lines(out / "per_image.jsonl")) == 6


def test_other_weights_file_on_the_command_line_is_refused(tmp_path):
    from safetensors.torch import save_file

    import deepinside

    state = deepinside.load_model().module.state_dict()
    state["classifier.bias"] = state["classifier.bias"] + 1.0
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    ann = synthetic_dataset(tmp_path)
    out = tmp_path / "out"
    assert cli("evaluate", "localization", "-d", ann, "-n", "2", "-j", "0", "-r", "gradcam-30",
               "-o", out).returncode == 0
    done = cli("evaluate", "localization", "-d", ann, "-j", "0", "-r", "gradcam-30", "-o", out,
               "--weights", tmp_path / "w.safetensors")
    assert done.returncode == 2 and len(errors(done.stderr)) == 1
    assert "weights_sha256" in done.stderr and "use another --out" in done.stderr


# ----------------------------------------------------------------------------- the lock


def test_one_evaluation_at_a_time_and_a_dead_ones_lock_does_not_stick(tmp_path):
    records, _ = read_dataset(synthetic_dataset(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    with (out / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("4242\n")
        f.flush()
        with pytest.raises(RunLockedError, match=r"another evaluation \(pid 4242\)"):
            run_localization(tiny(), records, out, recipe="gradcam-30", workers=0,
                             show_progress=False)
        assert not (out / "per_image.jsonl").exists()
        done = cli("evaluate", "localization", "-d", tmp_path / "annotations.json", "-j", "0",
                   "-o", out)
        assert done.returncode == 2 and errors(done.stderr) == [
            f"deepinside: error: another evaluation (pid 4242) is writing to {out}; wait for "
            "it to finish or use another --out"]
    # the holder is gone (its lock with it); the file and its pid stay: no matter
    s = run_localization(tiny(), records, out, recipe="gradcam-30", workers=0,
                         show_progress=False)
    assert s["n_images"] == 6


# ----------------------------------------------------------------------------- processes


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            if "(" in Path(f"/proc/{p}/stat").read_text() and \
                    Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                alive.add(p)
        except OSError:
            pass
    return alive


def test_sigkill_of_the_driver_leaves_no_worker_behind(tmp_path):
    ann = synthetic_dataset(tmp_path, n=24)
    out = tmp_path / "out"
    proc = subprocess.Popen([*CLI, "evaluate", "localization", "-d", str(ann), "-r", "paper",
                             "-j", "1", "-b", "2", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    kids: set[int] = set()
    while time.time() < deadline:
        kids |= _children(proc.pid)
        if (out / "per_image.jsonl").exists() and (out / "per_image.jsonl").stat().st_size:
            break
        time.sleep(0.2)
    kids |= _children(proc.pid)
    assert kids, "the evaluation started no worker process"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(40):
        if not _alive(kids):
            break
        time.sleep(0.25)
    left = _alive(kids)
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"{len(left)} processes outlived the killed driver"


FAULTY = """
import sys
sys.path.insert(0, sys.argv[3])
from test_evaluate import tiny
from deepinside.evaluate.datasets import read_dataset
from deepinside.evaluate.runner import run_localization
records, _ = read_dataset(sys.argv[1])
try:
    run_localization(tiny(), records, sys.argv[2], recipe="paper", workers=1, batch_size=4,
                     show_progress=False)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.slow
def test_random_interruptions_lose_and_double_nothing(tmp_path):
    ann = synthetic_dataset(tmp_path, n=48)
    tests = str(Path(__file__).parent)
    whole = tmp_path / "whole"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", FAULTY, ann, whole, tests], check=True, timeout=300)
    span = time.perf_counter() - t0  # an uninterrupted run, start-up included
    out = tmp_path / "interrupted"
    rng = random.Random(0)
    kills = 0
    for attempt in range(12):
        proc = subprocess.Popen([sys.executable, "-c", FAULTY, str(ann), str(out), tests],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=ctrl_c_stops)
        time.sleep(rng.uniform(0.2, 0.7) * span)
        kids = _children(proc.pid)
        if proc.poll() is not None:
            break
        proc.send_signal(rng.choice([signal.SIGINT, signal.SIGKILL]))
        proc.wait(timeout=60)
        kills += 1
        for _ in range(40):
            if not _alive(kids):
                break
            time.sleep(0.25)
        assert not _alive(kids), f"processes left after interruption {attempt}"
    subprocess.run([sys.executable, "-c", FAULTY, ann, out, tests], check=True, timeout=300)
    assert kills >= 2

    def strip(path):
        rows = [{k: v for k, v in r.items() if k != "seconds"} for r in lines(path)]
        return sorted(rows, key=lambda r: r["key"])

    a, b = strip(out / "per_image.jsonl"), strip(whole / "per_image.jsonl")
    assert len(a) == 48 and [r["key"] for r in a] == sorted({r["key"] for r in a})
    assert a == b


# ----------------------------------------------------------------------------- output paths


@pytest.mark.parametrize("where", ["file", "below-file", "proc"])
def test_bad_out_paths_are_one_line(tmp_path, where):
    photo = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(photo)
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "below-file": tmp_path / "f" / "sub",
           "proc": Path("/proc/deepinside-test/out")}[where]
    for cmd in (["saliency", photo], ["localize", photo],
                ["evaluate", "localization", "-d", synthetic_dataset(tmp_path)]):
        done = cli(*cmd, "-o", out)
        assert done.returncode == 2, (cmd, done.stderr[-800:])
        assert len(errors(done.stderr)) == 1 and f"--out {out}:" in done.stderr
        assert "Traceback" not in done.stderr


def test_an_output_that_cannot_be_written_fails_that_photo_only(tmp_path):
    for i in range(3):
        Image.new("RGB", (40, 30), (60 * i, 10, 10)).save(tmp_path / f"p{i}.png")
    out = tmp_path / "out"
    (out / "p1_saliency.png").mkdir(parents=True)  # a directory where a file must go
    done = cli("saliency", tmp_path / "p0.png", tmp_path / "p1.png", tmp_path / "p2.png",
               "-o", out, "--overwrite")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    msgs = errors(done.stderr)
    assert len(msgs) == 1 and "p1.png: cannot write" in msgs[0]
    assert (out / "p0_saliency.npy").is_file() and (out / "p2_saliency.npy").is_file()


def test_max_side_bounds_the_outputs(tmp_path):
    Image.new("RGB", (400, 100), (10, 200, 10)).save(tmp_path / "wide.png")
    done = cli("saliency", tmp_path / "wide.png", "-o", tmp_path / "o", "--max-side", "64")
    assert done.returncode == 0, done.stderr[-800:]
    assert np.load(tmp_path / "o" / "wide_saliency.npy").shape == (16, 64)
    assert Image.open(tmp_path / "o" / "wide_overlay.png").size == (64, 16)


def test_a_pickle_is_refused_in_one_line(tmp_path):
    import pickle

    (tmp_path / "w.pt").write_bytes(pickle.dumps({"a": object}, protocol=4))
    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    done = cli("classify", tmp_path / "a.png", "--weights", tmp_path / "w.pt", "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "refused for safety" in done.stderr


@pytest.mark.parametrize("args", [["classify", "x.png", "-b", "0"],
                                  ["classify", "x.png", "--batch-size", "-2"]])
def test_a_batch_size_below_one_is_a_usage_error_from_the_command(args):
    done = cli(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert "argument --batch-size/-b: must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr


def test_workers_start_at_once_each_with_one_thread(monkeypatch):
    from deepinside.evaluate.runner import start_workers

    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # ours, whatever the suite runs with
    pool = start_workers(2)
    try:
        for _ in range(100):  # started, without a task of ours reaching them yet
            if len(_children(os.getpid()) & set(pool._processes)) == 2:
                break
            time.sleep(0.1)
        assert len(_children(os.getpid()) & set(pool._processes)) == 2
        envs = {pool.submit(os.getenv, "OMP_NUM_THREADS").result(timeout=60)
                for _ in range(8)}
        assert envs == {"1"}
    finally:
        pool.shutdown()
    assert os.environ.get("OMP_NUM_THREADS") == "2"  # ours is restored


def test_duplicate_records_and_foreign_lines(tmp_path):
    records, _ = read_dataset(synthetic_dataset(tmp_path))
    twice = records[:3] + [records[1]]
    out = tmp_path / "out"
    said = []
    s1 = run_localization(tiny(), twice, out, recipe="gradcam-30", workers=0,
                          show_progress=False, on_problem=lambda p, why: said.append(why))
    assert s1["n_images"] == 3 and said == ["a second record for p1.png: only the first one "
                                            "is evaluated"]
    s2 = run_localization(tiny(), twice, out, recipe="gradcam-30", workers=0,
                          show_progress=False)
    assert s2["n_images"] == 3
    text = (out / "per_image.jsonl").read_text().splitlines(keepends=True)
    (out / "per_image.jsonl").write_text(text[0] + '{"key": "x"}\n' + "".join(text[1:]))
    with pytest.raises(RunMismatchError, match="line 2, is not a record"):
        run_localization(tiny(), records, out, recipe="gradcam-30", workers=0,
                         show_progress=False)


def test_grabcut_on_a_large_photo_with_seeds_lost_in_the_downscale():
    from deepinside.localize import segment_map

    photo = np.random.default_rng(0).integers(0, 255, (3000, 3000, 3), dtype=np.uint8)
    m = np.zeros((3000, 3000), np.float32)
    m[[10, 700, 1500, 2200, 2900], [20, 900, 1400, 2500, 2990]] = 1.0
    mask, box, note = segment_map(photo, m, "paper")
    assert mask.shape == (3000, 3000) and "too few seeds" in note


@pytest.mark.parametrize("command", ["localization", "compare"])
def test_the_ray_backend_without_ray_is_one_line(tmp_path, monkeypatch, capsys, command):
    from deepinside.cli import main

    ann = synthetic_dataset(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["evaluate", command, "--dataset", str(ann), "--backend", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["deepinside: error: the ray backend needs Ray: "
                   "pip install 'deepinside[ray]'"]
    assert main(["evaluate", command, "--dataset", str(ann), "--ray-address", "auto"]) == 2
    assert capsys.readouterr().err.strip() == ("deepinside: error: --ray-address needs "
                                               "--backend ray")


def test_a_failed_photo_is_kept_on_resume_and_retried_when_asked(tmp_path):
    records, _ = read_dataset(synthetic_dataset(tmp_path))
    moved = tmp_path / "p4.moved.png"
    (tmp_path / "p4.png").rename(moved)
    out = tmp_path / "out"
    said: list[str] = []
    for _ in range(2):  # a resume keeps the failure line and says it again
        said.clear()
        s = run_localization(tiny(), records, out, recipe="gradcam-30", workers=0,
                             show_progress=False, on_problem=lambda p, why: said.append(why))
        assert said == ["no such file"] and s["n_images"] == 5 and s["n_failed"] == 1
        rows = lines(out / "per_image.jsonl")
        assert len(rows) == 6 and [r["key"] for r in rows if "error" in r] == ["p4.png"]
    moved.rename(tmp_path / "p4.png")
    s = run_localization(tiny(), records, out, recipe="gradcam-30", workers=0,
                         show_progress=False, retry_failed=True)
    rows = lines(out / "per_image.jsonl")
    assert s["n_images"] == 6 and s["n_failed"] == 0
    assert sorted(r["key"] for r in rows) == [f"p{i}.png" for i in range(6)]
    assert not [r for r in rows if "error" in r]


def test_localization_json_prints_the_summary_it_wrote(tmp_path):
    ann = synthetic_dataset(tmp_path)
    out = tmp_path / "out"
    done = cli("evaluate", "localization", "-d", ann, "-n", "2", "-j", "0", "-r", "gradcam-30",
               "-o", out, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads((out / "summary.json").read_text())
