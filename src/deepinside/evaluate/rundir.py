"""The run directory of an evaluation: its identity, lock, resume, and its one writer.

``out/`` holds ``config.json`` (everything that changes the records: :func:`run_config`),
``per_image.jsonl`` (one line per photo, a record or a failure, written by the one
:class:`RecordSink` of the driver whatever the backend) and ``summary.json``
(:func:`write_summary`, from those lines alone). :func:`locked` lets one evaluation at a time
write into a folder; :func:`check_config` refuses to mix two runs; :func:`read_done` reads what
an interrupted run left (a torn last line is cut off).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from ..segment import Recipe
from .datasets import Record
from .scoring import ImageResult, summarize

__all__ = ["CONFIG", "LOCK", "PER_IMAGE", "SUMMARY", "RecordSink", "RunLockedError",
           "RunMismatchError", "check_config", "drop_failures", "failure_record", "locked",
           "read_done", "read_json_lines", "record_hash", "row_hash", "row_key", "run_config",
           "weights_hash", "write_summary"]

PER_IMAGE = "per_image.jsonl"
SUMMARY = "summary.json"
CONFIG = "config.json"
LOCK = ".lock"


class RunMismatchError(ValueError):
    """``--out`` holds a run made with other settings; resuming it would mix two runs."""


class RunLockedError(RuntimeError):
    """Another evaluation is writing into the same ``--out``."""


def weights_hash(module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and values), hex."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def record_hash(record: Record) -> str:
    """A short hash of a record's annotations (its key, label and boxes)."""
    text = json.dumps([record.key, int(record.label), [list(map(float, b)) for b in record.boxes]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_config(model, recipe: Recipe, method: str, seed: int) -> dict:
    """Everything that changes the records of a run, as written to ``config.json``."""
    from .. import __version__

    pre = getattr(model, "preprocessing", None)
    module = getattr(model, "module", model)
    return {"deepinside": __version__, "model": getattr(model, "name", type(module).__name__),
            "weights_sha256": weights_hash(module),
            "preprocessing": pre.to_dict() if pre is not None else None,
            "method": method, "seed": seed, "recipe": asdict(recipe)}


def _differences(old: object, new: object, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    if old != new:
        def short(v):
            if prefix.endswith("sha256.") and isinstance(v, str):
                return f"{v[:12]}..."
            return json.dumps(v)

        return [f"{prefix.rstrip('.')} ({short(old)} there, {short(new)} now)"]
    return []


def failure_record(key: str, record_hash: str, reason: str) -> dict:
    """The line of ``per_image.jsonl`` for a photo that could not be evaluated, and why."""
    return {"key": key, "record_hash": record_hash, "error": reason}


def read_json_lines(path: Path) -> list[dict]:
    """The complete lines of a JSON-lines file, as dicts; a torn last line (an interrupted
    write) is cut off the file.

    Raises:
        RunMismatchError: a complete line is not a JSON object.
    """
    if not path.exists():
        return []
    rows: list[dict] = []
    good = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # the torn last line of an interrupted write
            try:
                d = json.loads(raw)
            except ValueError:
                d = None
            if not isinstance(d, dict):
                raise RunMismatchError(f"{path}, line {n}, is not a record of this version of "
                                       "deepinside; use another --out or delete it")
            rows.append(d)
            good += len(raw)
    if good != path.stat().st_size:
        with path.open("r+b") as f:
            f.truncate(good)
    return rows


def read_done(path: Path, parse: Callable[[dict], object] = ImageResult.from_json
              ) -> list[ImageResult | dict]:
    """The lines of ``per_image.jsonl``: records (``parse`` of a line: an
    :class:`.scoring.ImageResult` by default), or :func:`failure_record` dicts; a torn last
    line (interrupted write) is cut off.

    Raises:
        RunMismatchError: a complete line in the file is not a record of this version.
    """
    rows: list[ImageResult | dict] = []
    for n, d in enumerate(read_json_lines(path), start=1):
        try:
            if "error" in d:
                rows.append(failure_record(str(d["key"]), str(d["record_hash"]), str(d["error"])))
            else:
                rows.append(parse(d))
        except (ValueError, TypeError, KeyError):
            raise RunMismatchError(f"{path}, line {n}, is not a record of this version of "
                                   "deepinside; use another --out or delete it") from None
    return rows


def row_key(row: ImageResult | dict) -> str:
    return row["key"] if isinstance(row, dict) else row.key


def row_hash(row: ImageResult | dict) -> str:
    return row["record_hash"] if isinstance(row, dict) else row.record_hash


def drop_failures(path: Path, rows: list[ImageResult | dict]) -> list[ImageResult | dict]:
    """Rewrite ``per_image.jsonl`` without its failure lines (atomically); the records kept."""
    kept = [r for r in rows if not isinstance(r, dict)]
    if len(kept) < len(rows):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r.to_json()) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, path)
    return kept


def check_config(out: Path, config: dict) -> None:
    config = json.loads(json.dumps(config))  # as it reads back (tuples become lists)
    cfg_path = out / CONFIG
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except (OSError, ValueError):
            old = {"config.json": "unreadable"}
        diff = _differences(old, config)
        if diff:
            raise RunMismatchError(f"{out} holds a run with other settings: {'; '.join(diff[:4])}"
                                   f"{'; ...' if len(diff) > 4 else ''}; use another --out or "
                                   "delete it")
    else:
        cfg_path.write_text(json.dumps(config, indent=2) + "\n")


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the run (released by the OS, even if the process is killed)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with (out / LOCK).open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            who = f.read().strip() or "?"
            raise RunLockedError(f"another evaluation (pid {who}) is writing to {out}; wait "
                                 "for it to finish or use another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class RecordSink:
    """The one writer of ``per_image.jsonl``: a line per photo, flushed at once, counted on the
    progress bar; failures also go to ``on_problem``. Backends hand it what their photos give.
    A failure line counts ``failure_steps`` on the bar (a run of several lines per photo, such
    as one per method, counts lines and fails a photo in one line).
    """

    def __init__(self, file, bar, paths: dict[str, object],
                 on_problem: Callable[[str, str], None] | None, failure_steps: int = 1) -> None:
        self.file, self.bar, self.paths, self.on_problem = file, bar, paths, on_problem
        self.failure_steps = failure_steps
        self.results: list[ImageResult] = []
        self.failures: list[dict] = []

    def result(self, row: ImageResult) -> None:
        """Write a photo's record."""
        self._write(row.to_json())
        self.results.append(row)

    def failure(self, key: str, record_hash: str, reason: str) -> None:
        """Write a photo's failure line and report it."""
        line = failure_record(key, record_hash, reason)
        self._write(line, self.failure_steps)
        self.failures.append(line)
        self.report(key, reason)

    def report(self, key: str, reason: str) -> None:
        """Tell ``on_problem`` about a photo (by its path where known)."""
        if self.on_problem is not None:
            self.on_problem(str(self.paths.get(key, key)), reason)

    def _write(self, line: dict, steps: int = 1) -> None:
        self.file.write(json.dumps(line) + "\n")
        self.file.flush()
        self.bar.update(steps)


def write_summary(out: Path, rows: Sequence[ImageResult | dict]) -> dict:
    """``summary.json`` of a run's lines (records and failures), and its content."""
    results = [r for r in rows if not isinstance(r, dict)]
    summary = summarize(results)
    summary = {"n_images": summary.pop("n_images"), "n_failed": len(rows) - len(results),
               **summary}
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
