"""The architecture, checked: no import cycle, the import-linter contracts, only the engine
calls the network, and a new method is one file (docs/architecture.md)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import deepinside

SRC = Path(deepinside.__file__).parent
ENV = {**os.environ, "PYTHONPATH": str(SRC.parent)}

# Calls of these names (or attributes) are calls of the network.
NETWORK_NAMES = {"model", "module", "net", "classifier", "clf"}
NETWORK_ATTRS = {"model", "module", "net", "classifier", "forward"}
# Where a network call is part of the design: the engine; fastmodel's probes, which check the
# engine's folded copy against the module; Classifier.__call__, the user's shortcut.
ALLOWED = {"engine.py", "fastmodel.py", "models/classifier.py:Classifier.__call__"}
# Functions the engine hands out: a name bound by `with network(...) as name` calls the
# network through the engine.
ENGINE_CONTEXTS = {"network", "layer_replaced", "layer_network"}


def _graph():
    grimp = pytest.importorskip("grimp")
    return grimp.build_graph("deepinside")


def test_no_import_cycle_between_modules_function_level_imports_included():
    g = _graph()
    cycles = [(m, n) for m in sorted(g.modules) for n in g.find_modules_directly_imported_by(m)
              if g.chain_exists(importer=n, imported=m)]
    assert cycles == []


def test_import_linter_contracts_are_kept():
    pytest.importorskip("importlinter")
    root = SRC.parent.parent  # pyproject.toml's folder
    if not (root / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    command = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    done = subprocess.run([sys.executable, "-c", command], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _engine_functions(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                call = item.context_expr
                if (isinstance(call, ast.Call) and isinstance(item.optional_vars, ast.Name)
                        and getattr(call.func, "id", getattr(call.func, "attr", None))
                        in ENGINE_CONTEXTS):
                    names.add(item.optional_vars.id)
    return names


def _network_calls(source: str, rel: str) -> list[str]:
    """``file:line: code`` of each call of the network in ``source`` (the module at ``rel``
    under src/deepinside) outside ALLOWED."""
    if rel in ALLOWED:
        return []
    tree = ast.parse(source)
    engine_fns = _engine_functions(tree)
    allowed_lines = {
        line for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef)
        for fn in cls.body if isinstance(fn, ast.FunctionDef)
        and f"{rel}:{cls.name}.{fn.name}" in ALLOWED
        for line in range(fn.lineno, (fn.end_lineno or fn.lineno) + 1)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or node.lineno in allowed_lines:
            continue
        f = node.func
        if (isinstance(f, ast.Name) and f.id in NETWORK_NAMES - engine_fns
                or isinstance(f, ast.Attribute) and f.attr in NETWORK_ATTRS):
            found.append(f"{rel}:{node.lineno}: {ast.unparse(node)[:60]}")
    return found


def test_only_the_engine_calls_the_network():
    calls = [c for p in sorted(SRC.rglob("*.py"))
             for c in _network_calls(p.read_text(encoding="utf-8"), p.relative_to(SRC).as_posix())]
    assert calls == []


def test_the_network_call_check_finds_calls_and_knows_the_engines_functions():
    source = textwrap.dedent("""
        def f(model, clf, x):
            y = model(x)
            with network(model, x) as net:
                z = net(y)
            return clf.module(z)

        class Classifier:
            def __call__(self, x):
                return self.module(x)
        """)
    found = _network_calls(source, "methods/bad.py")
    assert [c.split(": ", 1)[1] for c in found] == ["model(x)", "clf.module(z)", "self.module(x)"]
    assert len(_network_calls(source, "models/classifier.py")) == 2  # __call__ allowed there
    assert _network_calls(source, "engine.py") == []


THROWAWAY = '''
"""A throwaway method for tests/test_architecture.py (in a copy of the package)."""

from __future__ import annotations

from typing import Annotated

from deepinside.engine import input_gradient
from deepinside.methods._registry import Range, register_method


@register_method("zz_throwaway", "the gradient's absolute value, squared a number of times",
                 "https://example.org/throwaway", cost="fast", demo={"power": 1})
def zz_throwaway(model, images, target=None, *, power: Annotated[int, Range(1, 3)] = 2,
                 fast: bool = True):
    grad, _, _ = input_gradient(model, images, target, fast=fast)
    return grad.abs().amax(1) ** power
'''

CHECK = '''
import contextlib, io, json, sys
from pathlib import Path
from PIL import Image
sys.path.insert(0, "tests")
from models import tiny_classifier

import deepinside
from deepinside.cli import main
from deepinside.methods import list_methods, method_names

assert deepinside.__file__.startswith(sys.argv[2]), deepinside.__file__
out = {"listed": "zz_throwaway" in list_methods()}
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    main(["methods", "--json"])
out["cli"] = [m for m in json.loads(buf.getvalue()) if m["name"] == "zz_throwaway"]
out["compare"] = "zz_throwaway" in method_names(slow=False)
out["demo"] = "zz_throwaway" in method_names()

from fastapi.testclient import TestClient
from deepinside.serve.app import create_app
client = TestClient(create_app(tiny_classifier()), base_url="http://localhost")
ms = {m["name"]: m for m in client.get("/v1/methods").json()["methods"]}
out["server"] = ms.get("zz_throwaway")
photo = Image.new("RGB", (40, 30), (200, 30, 30))
buf = io.BytesIO(); photo.save(buf, format="PNG")
r = client.post("/v1/explain", files={"image": ("p.png", buf.getvalue(), "image/png")},
                data={"method": "zz_throwaway", "params": json.dumps({"power": 9})})
out["bounds_status"] = r.status_code

from deepinside.evaluate.compare import compare_methods
from deepinside.evaluate.datasets import Record
Image.new("RGB", (40, 30), (200, 30, 30)).save(sys.argv[1])
[row] = compare_methods(tiny_classifier(), [Record(sys.argv[1], 1, [(0, 0, 20, 20)])],
                        ["zz_throwaway"], steps=2, randomization=False)
out["compare_images"] = row.images
print(json.dumps(out))
'''


@pytest.mark.slow
def test_a_new_method_is_one_file(tmp_path):
    """A method file dropped into methods/ appears in `deepinside methods`, the server's
    /v1/methods with its bounds, evaluate compare's and the demo figure's defaults, with no
    other file edited."""
    copy = tmp_path / "src"  # a copy of the package, so the source tree is never touched
    shutil.copytree(SRC, copy / "deepinside", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "deepinside" / "methods" / "zz_throwaway.py").write_text(textwrap.dedent(THROWAWAY))
    done = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "p.png"), str(copy)],
                          cwd=Path(__file__).parent.parent, env={**ENV, "PYTHONPATH": str(copy)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["listed"] and out["compare"] and out["demo"]
    [row] = out["cli"]
    assert row["cost"] == "fast" and row["params"]["power"] == {
        "type": "int", "default": 2, "min": 1, "max": 3}
    assert out["server"]["params"] == {"power": {"type": "int", "default": 2, "min": 1, "max": 3}}
    assert out["bounds_status"] == 422  # power=9 is out of its declared bounds
    assert out["compare_images"] == 1
