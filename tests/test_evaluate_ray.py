"""The Ray backend of the localisation runner: the local backend's records, a driver or an
actor killed at any point, a changed config refused, a missing photo a line with its reason.

One local Ray (``num_cpus=2``) is shared by the tests of this module; the two-node test runs
last, on its own simulated cluster (``ray.cluster_utils.Cluster``, one CPU per node).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import data_dir
from test_evaluate import synthetic_dataset, tiny

from deepinside.evaluate.datasets import Record, read_dataset
from deepinside.evaluate.runner import RunMismatchError, run_localization

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'deepinside[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ray[data]')")

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
OBJECT_STORE = 150 * 1024**2


def _pythonpath() -> None:
    """Ray's workers import the test models (tests/models.py) and this checkout's package."""
    parts = [str(SRC), str(TESTS)] + [p for p in os.environ.get("PYTHONPATH", "").split(
        os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))


@pytest.fixture(scope="module")
def local_ray():
    _pythonpath()
    ray.init(address="local", num_cpus=2, object_store_memory=OBJECT_STORE,  # not `ray start`'s
             include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def strip(path: Path) -> list[dict]:
    """The lines of a per_image.jsonl, sorted by key, without their timings."""
    return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in lines(path)),
                  key=lambda r: r["key"])


def _reference(tmp_path: Path, records, recipe: str) -> list[dict]:
    out = tmp_path / "local"
    run_localization(tiny(), records, out, recipe=recipe, workers=0, batch_size=4,
                     show_progress=False)
    return strip(out / "per_image.jsonl")


# ----------------------------------------------------------------------------- same records


def test_dev_photos_give_the_local_records_and_a_missing_photo_is_a_line(tmp_path, local_ray,
                                                                         lite0):
    root = data_dir()
    if root is None:
        pytest.skip("imagenet-val-300 not found (set DEEPINSIDE_DATA)")
    records, _ = read_dataset(root / "annotations.json")
    records = records[:12]
    gone = records[3]
    records[3] = Record(key=gone.key, path=tmp_path / "no-such.jpg", label=gone.label,
                        boxes=gone.boxes)
    said: dict[str, list[str]] = {"local": [], "ray": []}
    for backend in ("local", "ray"):
        s = run_localization(lite0, records, tmp_path / backend, recipe="gradcam-30",
                             workers=2, batch_size=4, show_progress=False, backend=backend,
                             on_problem=lambda p, why, b=backend: said[b].append(p))
        assert s["n_images"] == 11 and s["n_failed"] == 1
    a, b = strip(tmp_path / "local/per_image.jsonl"), strip(tmp_path / "ray/per_image.jsonl")
    assert [r["key"] for r in b] == sorted(r.key for r in records)
    assert a == b  # same ids, boxes, scores; the same failure line
    failed = [r for r in b if "error" in r]
    assert len(failed) == 1 and failed[0]["key"] == gone.key
    assert failed[0]["error"] == "no such file"
    assert said["ray"] == said["local"] == [str(tmp_path / "no-such.jpg")]
    ra = json.loads((tmp_path / "ray/summary.json").read_text())
    la = json.loads((tmp_path / "local/summary.json").read_text())
    drop = "seconds_per_image"
    assert {k: v for k, v in ra.items() if k != drop} == {k: v for k, v in la.items()
                                                          if k != drop}
    assert json.loads((tmp_path / "ray/config.json").read_text()) == json.loads(
        (tmp_path / "local/config.json").read_text())


def test_the_command_line_on_ray(tmp_path, local_ray):
    from deepinside.cli import main

    root = data_dir()
    if root is None:
        pytest.skip("imagenet-val-300 not found (set DEEPINSIDE_DATA)")
    out = tmp_path / "eval"
    assert main(["evaluate", "localization", "--dataset", str(root), "--limit", "4",
                 "--recipe", "gradcam-30", "--backend", "ray", "--workers", "1",
                 "--out", str(out)]) == 0
    assert len(lines(out / "per_image.jsonl")) == 4
    assert json.loads((out / "summary.json").read_text())["n_images"] == 4


def test_a_changed_config_is_refused_and_a_resume_computes_only_the_rest(tmp_path,
                                                                         local_ray):
    records, _ = read_dataset(synthetic_dataset(tmp_path, n=8))
    out = tmp_path / "out"
    run_localization(tiny(), records[:3], out, recipe="default", workers=1, batch_size=4,
                     show_progress=False, backend="ray")
    first = (out / "per_image.jsonl").read_text()
    with pytest.raises(RunMismatchError, match="recipe"):
        run_localization(tiny(), records, out, recipe="gradcam-20", workers=1,
                         show_progress=False, backend="ray")
    with pytest.raises(RunMismatchError, match="seed"):
        run_localization(tiny(), records, out, recipe="default", seed=1, workers=1,
                         show_progress=False, backend="ray")
    (out / "per_image.jsonl").write_text(first + first.splitlines()[0][:20])  # torn line
    run_localization(tiny(), records, out, recipe="default", workers=1, batch_size=4,
                     show_progress=False, backend="ray")
    text = (out / "per_image.jsonl").read_text()
    assert text.startswith(first)  # the first three were kept, not recomputed
    assert strip(out / "per_image.jsonl") == _reference(tmp_path, records, "default")


def test_compare_on_ray_gives_the_local_table(tmp_path, local_ray):
    from deepinside.evaluate.compare import compare_methods

    records, _ = read_dataset(synthetic_dataset(tmp_path, n=8))
    records[5] = Record(key="gone", path=tmp_path / "gone.png", label=1, boxes=records[5].boxes)
    rows, said = {}, {}
    for backend in ("local", "ray"):
        said[backend] = []
        rows[backend] = compare_methods(
            tiny(), records, ["gradient", "gradcam"], batch_size=2, steps=4, backend=backend,
            workers=2, on_failure=lambda p, why, b=backend: said[b].append((str(p), why)))
    assert said["ray"] == said["local"] == [(str(tmp_path / "gone.png"), "no such file")]
    for a, b in zip(rows["local"], rows["ray"]):
        a, b = a.to_dict(), b.to_dict()
        assert a["images"] == b["images"] == 7
        for key in ("pointing", "gt_known_loc"):
            assert a[key] == b[key], key
        for key in ("deletion_auc", "insertion_auc", "randomization_corr"):
            assert abs(a[key] - b[key]) < 1e-5, key


def _metric_lines(path: Path) -> dict:
    """(key, method) -> the line of a metrics run's per_image.jsonl, without its timings."""
    out = {}
    for d in lines(path):
        pair = (d["key"], d.get("method"))
        assert pair not in out, f"{pair} twice"
        out[pair] = {k: v for k, v in d.items() if k not in ("map_ms", "metric_ms")}
    return out


def _same_scores(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for pair in a:
        sa, sb = a[pair].get("scores"), b[pair].get("scores")
        assert ({k: v for k, v in a[pair].items() if k != "scores"}
                == {k: v for k, v in b[pair].items() if k != "scores"}), pair
        if sa is None:
            assert sb is None, pair
            continue
        assert sa.keys() == sb.keys(), pair
        for name in sa:  # the same maps and draws; batches differ: float noise only
            assert sa[name] == pytest.approx(sb[name], rel=1e-4, abs=1e-6), (pair, name)


@pytest.mark.slow
def test_metrics_run_on_ray_gives_the_local_lines_and_resumes_computing_only_the_rest(
        tmp_path, local_ray, lite0, monkeypatch):
    from deepinside.evaluate.backend import get_backend
    from deepinside.evaluate.metrics_run import compare_metrics

    root = data_dir()
    if root is None:
        pytest.skip("imagenet-val-300 not found (set DEEPINSIDE_DATA)")
    records, _ = read_dataset(root / "annotations.json")
    records = records[:5]
    records[2] = Record(key=records[2].key, path=tmp_path / "gone.jpg", label=records[2].label,
                        boxes=records[2].boxes)
    methods = ["gradient", "gradcam"]
    metrics = "sparseness,relevance_mass_accuracy,random_logit"  # random_logit draws a class
    said: dict[str, list] = {}

    def run(out: str, backend: str, batch_size: int) -> dict:
        said[out] = []
        return compare_metrics(lite0, records, tmp_path / out, methods, metrics,
                               batch_size=batch_size, backend=backend, workers=1,
                               show_progress=False,
                               on_problem=lambda p, why: said[out].append((p, why)))

    local = run("local", "local", 4)
    whole = run("ray", "ray", 3)  # other batches: a photo's values do not depend on them
    ref = _metric_lines(tmp_path / "local/per_image.jsonl")
    assert len(ref) == 4 * 2 + 1 and ref[records[2].key, None]["error"] == "no such file"
    assert said["ray"] == said["local"] == [(str(tmp_path / "gone.jpg"), "no such file")]
    _same_scores(_metric_lines(tmp_path / "ray/per_image.jsonl"), ref)
    for s in (local, whole):
        assert s["n_images"] == 4 and s["n_failed"] == 1
    for m in methods:
        for name in ("sparseness", "relevance_mass_accuracy", "random_logit"):
            a, b = whole["methods"][m][name], local["methods"][m][name]
            assert a["n"] == b["n"] == 4
            assert a["mean"] == pytest.approx(b["mean"], rel=1e-4, abs=1e-6)
            assert a["ci95"] == pytest.approx(b["ci95"], rel=1e-4, abs=1e-6)

    # killed after four lines, in the middle of the fifth: the ray run resumes with the
    # pairs without a line, and only those
    text = (tmp_path / "local/per_image.jsonl").read_text().splitlines(keepends=True)
    out = tmp_path / "resumed"
    out.mkdir()
    (out / "config.json").write_text((tmp_path / "local/config.json").read_text())
    (out / "per_image.jsonl").write_text("".join(text[:4]) + text[4][:15])
    kept = {(d["key"], d.get("method")) for d in map(json.loads, text[:4])}
    asked = []
    ray_backend = get_backend("ray")
    real = ray_backend.lines

    def spy(spec, todo, sink):
        done = spec.stage.keywords["done"]
        asked.extend((r.key, m) for r in todo for m in methods if (r.key, m) not in done)
        return real(spec, todo, sink)

    monkeypatch.setattr(ray_backend, "lines", spy)
    run("resumed", "ray", 4)
    assert sorted(asked) == sorted(set(ref) - kept)
    assert (out / "per_image.jsonl").read_text().startswith("".join(text[:4]))
    _same_scores(_metric_lines(out / "per_image.jsonl"), ref)


# ----------------------------------------------------------------------------- faults


def _map_actor_pids() -> list[int]:
    """The model actors of this process's Ray (titled ``ray::MapWorker(...MapActor)``, below
    this process; not those of another Ray on the machine)."""
    parent: dict[int, int] = {}
    titles: dict[int, bytes] = {}
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit():
                stat = (d / "stat").read_text()
                parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                titles[int(d.name)] = (d / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            pass

    def ours(pid: int) -> bool:
        while pid > 1:
            pid = parent.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return [pid for pid, title in titles.items()
            if b"MapActor" in title and b".sub" not in title and ours(pid)]


def test_an_actor_killed_mid_run_loses_and_doubles_nothing(tmp_path, local_ray):
    records, _ = read_dataset(synthetic_dataset(tmp_path, n=24))
    out = tmp_path / "out"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.time() + 120
        path = out / "per_image.jsonl"
        while time.time() < deadline and not killed:
            if path.exists() and path.stat().st_size:
                for pid in _map_actor_pids()[:1]:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.1)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    # Ray Data restarts the actor and retries its batch: the run finishes on its own
    run_localization(tiny(), records, out, recipe="paper", workers=2, batch_size=2,
                     show_progress=False, backend="ray")
    t.join()
    assert killed, "no model actor was found to kill"
    keys = [r["key"] for r in lines(out / "per_image.jsonl")]
    assert len(keys) == len(set(keys)) == 24
    assert strip(out / "per_image.jsonl") == _reference(tmp_path, records, "paper")


DRIVER = """
import sys
sys.path[:0] = [sys.argv[3], sys.argv[4]]
from test_evaluate import tiny
from deepinside.evaluate.datasets import read_dataset
from deepinside.evaluate.runner import run_localization
records, _ = read_dataset(sys.argv[1])
run_localization(tiny(), records, sys.argv[2], recipe="paper", workers=2, batch_size=2,
                 show_progress=False, backend="ray")
"""


def test_the_driver_killed_at_a_random_point_then_resumed_gives_every_photo_once(tmp_path):
    _pythonpath()
    records, _ = read_dataset(ann := synthetic_dataset(tmp_path, n=24))
    rng = random.Random(0)
    for attempt in range(3):  # a run may end before the kill lands: again, killed sooner
        out = tmp_path / f"out{attempt}"
        argv = [sys.executable, "-c", DRIVER, str(ann), str(out), str(TESTS), str(SRC)]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = out / "per_image.jsonl"
        deadline = time.time() + 120  # once the pipeline writes, at a random moment
        while time.time() < deadline and proc.poll() is None and not (
                path.exists() and path.stat().st_size):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4) / 2**attempt)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            break
    assert path.read_bytes().count(b"\n") < 24, "every run ended before it was killed"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    keys = [r["key"] for r in lines(path)]
    assert len(keys) == len(set(keys)) == 24
    assert strip(path) == _reference(tmp_path, records, "paper")


# ----------------------------------------------------------------------------- two nodes


def test_a_simulated_two_node_cluster_gives_the_local_records(tmp_path):
    from ray.cluster_utils import Cluster

    ray.shutdown()  # this test's own cluster (runs last in the module)
    _pythonpath()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    try:
        records, _ = read_dataset(synthetic_dataset(tmp_path, n=12))
        out = tmp_path / "out"
        s = run_localization(tiny(), records, out, recipe="default", workers=2, batch_size=4,
                             show_progress=False, backend="ray", ray_address=cluster.address)
        assert s["n_images"] == 12
        assert strip(out / "per_image.jsonl") == _reference(tmp_path, records, "default")
    finally:
        ray.shutdown()
        cluster.shutdown()
