"""Joining a Ray cluster: a wrong address, a cluster that does not answer, an unauthenticated
join and a version mismatch each fail in one line within the timeout, with ``--out``'s lock
released; and a real two-node cluster started with Ray's own CLI (``ray start``, token
authentication, a temporary ``RAY_TMPDIR``; head and worker are child processes of this test,
stopped by their process groups, never with ``ray stop``) gives the local backend's records,
through ``--ray-address`` and through ``RAY_ADDRESS`` alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import data_dir

from deepinside.evaluate.datasets import read_dataset
from deepinside.evaluate.runner import run_localization

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'deepinside[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ray[data]')")

from deepinside.evaluate import RayConnectError  # noqa: E402

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
RAY_CLI = Path(sys.executable).with_name("ray")
TOKEN = "0123456789abcdef0123456789abcdef"  # this test's cluster only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def lock_is_free(out: Path) -> bool:
    with (out / ".lock").open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def _records(n: int):
    root = data_dir()
    if root is None:
        pytest.skip("imagenet-val-300 not found (set DEEPINSIDE_DATA)")
    return root, read_dataset(root / "annotations.json")[0][:n]


def _cli_env(**extra: str | None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "PYTEST"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS)])
    env["OMP_NUM_THREADS"] = "1"
    for k, v in extra.items():
        if v is not None:
            env[k] = v
    return env


def deepinside(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepinside", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [x for x in stderr.splitlines() if x.strip()]


# ----------------------------------------------------------------------------- no cluster


def test_nothing_listening_is_one_line_at_once_and_the_lock_is_released(tmp_path):
    records = _synthetic(tmp_path)
    port = free_port()  # closed again: nothing listens there
    out = tmp_path / "out"
    t0 = time.monotonic()
    with pytest.raises(RayConnectError) as e:
        _run_on(records, out, f"127.0.0.1:{port}", 20)
    assert time.monotonic() - t0 < 20
    msg = str(e.value)
    assert "\n" not in msg and f":{port}" in msg and "nothing listens there" in msg
    assert lock_is_free(out)


def _synthetic(tmp_path: Path) -> list:
    from test_evaluate import synthetic_dataset

    return read_dataset(synthetic_dataset(tmp_path, n=2))[0]


def _run_on(records, out: Path, address: str, timeout: float) -> None:
    from test_evaluate import tiny

    run_localization(tiny(), records, out, recipe="gradcam-30", backend="ray",
                     ray_address=address, ray_timeout=timeout, show_progress=False)


def test_a_port_that_is_not_ray_fails_in_one_line_within_the_timeout(tmp_path):
    records = _synthetic(tmp_path)
    with socket.socket() as server:  # accepts connections, says nothing
        server.bind(("", 0))  # all interfaces: Ray turns 127.0.0.1 into this host's IP
        server.listen()
        port = server.getsockname()[1]
        out = tmp_path / "out"
        t0 = time.monotonic()
        with pytest.raises(RayConnectError, match="no Ray answered within 2 s") as e:
            _run_on(records, out, f"127.0.0.1:{port}", 2)
        assert time.monotonic() - t0 < 10
    assert "\n" not in str(e.value)
    assert lock_is_free(out)


def test_an_actor_sizes_its_threads_from_its_own_node(monkeypatch):
    from deepinside.evaluate import ray_backend

    class Here:
        def get_node_id(self) -> str:
            return "small"

    nodes = [{"NodeID": "big", "Resources": {"CPU": 64.0}},
             {"NodeID": "small", "Resources": {"CPU": 8.0}}]
    monkeypatch.setattr(ray, "get_runtime_context", Here)
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    assert ray_backend.actor_threads(None, 3, 1) == 2  # 8 // (3 actors + the tasks' share)
    assert ray_backend.actor_threads(None, 16, 0) == 1  # up to 8 of them fit on 8 CPUs
    assert ray_backend.actor_threads(None, 1, 0) == 8  # not 72, the cluster's
    assert ray_backend.actor_threads(4.0, 3, 1) == 4  # --actor-cpus 4: four threads
    nodes[1]["Resources"] = {"CPU": 1.0}
    assert ray_backend.actor_threads(None, 2, 1) == 1  # a 1-CPU node: never 0


def test_ray_options_need_the_ray_backend(tmp_path, capsys):
    from deepinside.cli import main

    for flag, value in (("--actor-cpus", "2"), ("--ray-timeout", "5"),
                        ("--ray-address", "auto")):
        assert main(["evaluate", "localization", "-d", str(tmp_path), flag, value]) == 2
        assert f"{flag} needs --backend ray" in capsys.readouterr().err


def test_an_http_port_is_not_taken_for_ray(tmp_path):
    import http.server
    import threading

    records = _synthetic(tmp_path)
    server = http.server.HTTPServer(("", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        t0 = time.monotonic()
        with pytest.raises(RayConnectError, match="something else listens there") as e:
            _run_on(records, tmp_path / "out", f"127.0.0.1:{server.server_port}", 20)
        assert time.monotonic() - t0 < 10
    finally:
        server.shutdown()
        server.server_close()
    assert "\n" not in str(e.value) and "6379" in str(e.value)


# ----------------------------------------------------------------------------- a real cluster


class RealCluster:
    """A head and a worker node of one CPU each, started with ``ray start --block`` in their
    own process groups, with token authentication and a temporary ``RAY_TMPDIR``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="di-ray-", dir="/tmp"))  # short: sockets
        (self.root / "token").write_text(TOKEN)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = _cli_env(RAY_TMPDIR=str(self.root), RAY_AUTH_MODE="token",
                            RAY_AUTH_TOKEN_PATH=str(self.root / "token"))
        self.procs: list[subprocess.Popen] = []

    def _node(self, name: str, *args: str) -> None:
        ports = [free_port() for _ in range(6)]
        cmd = [str(RAY_CLI), "start", "--block", "--num-cpus=1",
               f"--object-store-memory={100 * 1024**2}", "--disable-usage-stats",
               f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
               f"--dashboard-agent-listen-port={ports[2]}",
               f"--dashboard-agent-grpc-port={ports[3]}", f"--runtime-env-agent-port={ports[4]}",
               f"--metrics-export-port={ports[5]}", *args]
        log = (self.root / f"{name}.log").open("w")
        self.procs.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log,
                                           start_new_session=True))

    def start(self) -> RealCluster:
        self._node("head", "--head", f"--port={self.port}", "--include-dashboard=false")
        self._wait(1)
        self._node("worker", f"--address={self.address}")
        self._wait(2)
        return self

    def _wait(self, nodes: int, timeout: float = 120) -> None:
        probe = ("import ray, time\n"
                 f"ray.init(address='{self.address}', logging_level='ERROR')\n"
                 f"while len([n for n in ray.nodes() if n['Alive']]) < {nodes}:\n"
                 "    time.sleep(0.5)\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                done = subprocess.run([sys.executable, "-c", probe], env=self.env,
                                      capture_output=True,
                                      timeout=max(1.0, deadline - time.monotonic()))
                if done.returncode == 0:
                    return
            time.sleep(1)
        logs = "".join((self.root / f"{n}.log").read_text()[-800:] for n in ("head", "worker")
                       if (self.root / f"{n}.log").exists())
        raise RuntimeError(f"the cluster did not come up with {nodes} nodes: {logs}")

    def stop(self) -> None:
        for p in reversed(self.procs):  # its process group: ray start, raylet, gcs, workers
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=20)
        time.sleep(1)  # the process groups' last members (workers) to go
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    if not RAY_CLI.exists():
        pytest.skip("Ray's command line (ray) is not installed beside this Python")
    c = RealCluster()
    try:
        yield c.start()
    finally:
        c.stop()


def strip(path: Path) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return sorted(({k: v for k, v in r.items() if k != "seconds"} for r in rows),
                  key=lambda r: r["key"])


@pytest.mark.slow
def test_an_unauthenticated_join_fails_in_one_line(cluster, tmp_path):
    root = _records(1)[0]
    env = _cli_env(RAY_TMPDIR=str(cluster.root), HOME=str(tmp_path))  # no token, no mode
    t0 = time.monotonic()
    done = deepinside(["evaluate", "localization", "-d", str(root), "-n", "2", "--backend",
                       "ray", "--ray-address", cluster.address, "--ray-timeout", "20",
                       "--out", str(tmp_path / "out")], env, timeout=120)
    took = time.monotonic() - t0
    assert done.returncode == 2, done.stderr[-2000:]
    lines = error_lines(done.stderr)
    assert len(lines) == 1, done.stderr[-2000:]
    assert "RAY_AUTH_MODE=token" in lines[0] and "~/.ray/auth_token" in lines[0]
    assert f":{cluster.port}" in lines[0]
    assert took < 60  # the interpreter's start and imports included; Ray alone: 20 s of retries


@pytest.mark.slow
def test_a_version_mismatch_fails_in_one_line(cluster, tmp_path):
    root = _records(1)[0]
    put = ("import json, sys\n"
           "from ray._raylet import GcsClient\n"
           "c = GcsClient(address=sys.argv[1])\n"
           "m = json.loads(c.internal_kv_get(b'CLUSTER_METADATA', namespace=b'cluster'))\n"
           "print(m['ray_version'])\n"
           "m['ray_version'] = sys.argv[2]\n"
           "c.internal_kv_put(b'CLUSTER_METADATA', json.dumps(m).encode(), True,"
           " namespace=b'cluster')\n")

    def set_version(v: str) -> str:
        done = subprocess.run([sys.executable, "-c", put, cluster.address, v], env=cluster.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    ours = set_version("1.13.0")  # the cluster now says it runs Ray 1.13.0
    try:
        done = deepinside(["evaluate", "localization", "-d", str(root), "-n", "2", "--backend",
                           "ray", "--ray-address", cluster.address,
                           "--out", str(tmp_path / "out")], cluster.env, timeout=120)
    finally:
        set_version(ours)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "version mismatch" in lines[0], done.stderr[-2000:]
    assert "Ray 1.13.0" in lines[0] and f"Ray {ray.__version__}" in lines[0]


@pytest.mark.slow
def test_two_nodes_give_the_local_records_through_the_address_and_ray_address(
        cluster, tmp_path, lite0):
    root, records = _records(6)
    local = tmp_path / "local"
    run_localization(lite0, records, local, recipe="gradcam-30", workers=0, batch_size=4,
                     show_progress=False)
    common = ["evaluate", "localization", "-d", str(root), "--recipe", "gradcam-30",
              "--batch-size", "4", "--backend", "ray"]
    out = tmp_path / "flag"
    done = deepinside([*common, "-n", "6", "--workers", "2", "--ray-address", cluster.address,
                       "--out", str(out)], cluster.env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ray: 2 nodes, 2 CPUs" in done.stderr
    for noise in ("max_restarts", "Progress bars", "Traceback", " E "):  # Ray kept quiet
        assert noise not in done.stderr, done.stderr[-3000:]
    assert strip(out / "per_image.jsonl") == strip(local / "per_image.jsonl")

    out = tmp_path / "env"  # RAY_ADDRESS alone, as `ray job submit` gives it
    done = deepinside([*common, "-n", "3", "--workers", "1", "--out", str(out)],
                      {**cluster.env, "RAY_ADDRESS": cluster.address})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ray: 2 nodes" in done.stderr
    first = {r.key for r in records[:3]}
    assert strip(out / "per_image.jsonl") == [r for r in strip(local / "per_image.jsonl")
                                              if r["key"] in first]
