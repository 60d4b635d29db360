"""The README and docs/ against the code: the README's Python runs and returns the shapes its
comments promise, and every ``deepinside <subcommand> --flag`` the docs write exists."""

from __future__ import annotations

import argparse
import ast
import builtins
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from deepinside.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL = {"", "sh", "bash", "shell", "console"}
# `deepinside <words>` (not `deepinside.x`, `.venv/bin/deepinside`, `from deepinside import`)
COMMAND = re.compile(r"(?<![\w./-])deepinside\s+(?!import\b)([^`]*)")
FLAG = re.compile(r"--?[A-Za-z][\w-]*")
SHAPE = re.compile(r"#\s*Tensor\[([^\]]+)\]")
# names the README's blocks about one's own model leave to the reader
READER_NAMES = {"net", "multi_label", "segmenter", "detector", "mask"}


# ---------------------------------------------------------------------------------------------
# Markdown


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """``(language, first line number, code)`` of each fenced block of a Markdown text."""
    blocks, lang, start, body = [], None, 0, []
    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            if lang is None:
                lang, start, body = line.strip()[3:].strip(), i + 1, []
            else:
                blocks.append((lang, start, "\n".join(body)))
                lang = None
        elif lang is not None:
            body.append(line)
    return blocks


def doc_commands(text: str) -> list[tuple[int, str]]:
    """``(line, words after 'deepinside')`` of every command line the text writes: in shell
    blocks (continuation lines joined, comments cut off) and in inline code spans."""
    out: list[tuple[int, str]] = []
    lines, lang, i = text.splitlines(), None, 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            lang = line.strip()[3:].strip() if lang is None else None
            i += 1
            continue
        if lang is not None:
            j = i
            # continued with a backslash, or a synopsis going on indented: `    [--opt X]`
            while j + 1 < len(lines) and (line.rstrip().endswith("\\")
                                          or re.match(r"\s+[\[-]", lines[j + 1])):
                j += 1
                line = line.rstrip().rstrip("\\") + " " + lines[j]
            if lang in SHELL:
                out += [(i + 1, m.group(1)) for m in COMMAND.finditer(line.split(" #")[0])]
            i = j + 1
            continue
        for span in re.findall(r"`([^`]+)`", line):
            out += [(i + 1, m.group(1)) for m in COMMAND.finditer(span)]
        i += 1
    return out


# ---------------------------------------------------------------------------------------------
# Flags


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _shown_default_problem(shown: str, action: argparse.Action) -> str | None:
    """``[--opt SHOWN]`` in a synopsis: SHOWN is a metavar (``M``, ``H1,H2``) or choices
    (``a|b``), else the default, which must be the option's."""
    if "|" in shown or "..." in shown or re.fullmatch(r"[A-Z][A-Z0-9_,]*", shown):
        return None
    default = action.default
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            same = float(shown) == float(default)
        except ValueError:
            same = False
    else:
        same = shown == str(default)
    return None if same else f"{action.option_strings[0]} {shown}: the default is {default!r}"


def _leaf_problems(words: list[str], parser: argparse.ArgumentParser) -> list[str]:
    problems = []
    for i, word in enumerate(words):
        flag = word.strip("[]").split("=")[0]
        if not FLAG.fullmatch(flag):
            continue
        action = parser._option_string_actions.get(flag)
        if action is None:
            problems.append(flag)
        elif word.startswith("[") and not word.endswith("]") and i + 1 < len(words) \
                and words[i + 1].endswith("]"):
            problem = _shown_default_problem(words[i + 1].rstrip("]"), action)
            problems += [problem] if problem else []
    return problems


def unknown_flags(words: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """What of ``deepinside WORDS`` the parser does not know: a subcommand (``a|b``: each of
    them; ``...``: any of them), or an option of the (sub)subcommand; and in a synopsis
    ``[--opt VALUE]``, a VALUE that is not the option's default."""
    names = [w.strip("[]") for w in words]
    subs = _subcommands(parser)
    if not names or not subs or names[0].startswith("-"):
        return _leaf_problems(words, parser)
    if names[0] == "...":
        flags = [w.split("=")[0] for w in names if FLAG.fullmatch(w.split("=")[0])]
        return [f"... {f}" for f in flags
                if not any(f in p._option_string_actions for p in subs.values())]
    problems = []
    for name in names[0].split("|"):
        if name not in subs:
            problems.append(f"no subcommand {name!r}")
        else:
            problems += [f"{name} {p}" for p in unknown_flags(words[1:], subs[name])]
    return problems


def doc_flag_problems(text: str, parser: argparse.ArgumentParser) -> list[str]:
    problems = []
    for line, command in doc_commands(text):
        try:
            words = shlex.split(command)
        except ValueError:  # an unbalanced quote in prose
            words = command.split()
        problems += [f"line {line}: deepinside {' '.join(command.split())}: {p}"
                     for p in unknown_flags(words, parser)]
    return problems


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


def test_every_subcommand_flag_the_docs_write_exists_with_its_default(parser):
    found, problems = 0, []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        found += len(doc_commands(text))
        problems += [f"{doc.relative_to(REPO)}: {p}" for p in doc_flag_problems(text, parser)]
    assert found > 40, f"only {found} deepinside commands found in the docs: is the parser broken?"
    assert not problems, "\n".join(problems)


def test_the_flag_check_catches_what_does_not_exist(parser):
    text = "\n".join([
        "Run `deepinside saliency photos/ --max-side 512` or:",
        "```sh",
        "deepinside evaluate compare -d data -n 4 \\",
        "    --no-such-flag 3 --out runs/x   # and --also-not-checked in a comment",
        "deepinside explain photo.jpg",
        "deepinside evaluate localization|compare ... --backend ray",
        "deepinside serve [--port 8000] [--tokens T] [--queue 32] [--timeout 30]",
        "                 [--host 127.0.0.1] [--max-body 10485760] [--amp float16|bfloat16]",
        "```",
        "```python",
        "from deepinside import saliency  # deepinside saliency --not-shell",
        "```",
    ])
    serve = ("serve [--port 8000] [--tokens T] [--queue 32] [--timeout 30] "
             "[--host 127.0.0.1] [--max-body 10485760] [--amp float16|bfloat16]")
    assert doc_flag_problems(text, parser) == [
        "line 3: deepinside evaluate compare -d data -n 4 --no-such-flag 3 --out runs/x: "
        "evaluate compare --no-such-flag",
        "line 5: deepinside explain photo.jpg: no subcommand 'explain'",
        f"line 7: deepinside {serve}: serve --tokens",
        f"line 7: deepinside {serve}: serve --timeout 30: the default is 60.0",
    ]


# ---------------------------------------------------------------------------------------------
# The README's Python


def test_every_python_block_of_the_docs_parses_and_its_imports_resolve():
    problems, imports = [], 0
    for doc in DOCS:
        for lang, start, code in fenced_blocks(doc.read_text(encoding="utf-8")):
            if lang != "python":
                continue
            where = f"{doc.relative_to(REPO)}:{start}"
            try:
                tree = ast.parse(code)
            except SyntaxError as e:
                problems.append(f"{where}: {e}")
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    imports += 1
                    try:
                        exec(compile(ast.Module([node], []), where, "exec"), {})
                    except ImportError as e:
                        problems.append(f"{where}: {ast.unparse(node)}: {e}")
    assert imports > 10 and not problems, "\n".join(problems)


class _Steps(ast.NodeTransformer):
    """``class_model(...)`` / ``visualize(...)`` without ``steps=`` get ``steps=2`` (their
    defaults take minutes on a CPU; the shapes do not depend on the steps)."""

    def visit_Call(self, node: ast.Call) -> ast.Call:
        self.generic_visit(node)
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
            node.func, "id", "")
        if name in ("class_model", "visualize") and not any(k.arg == "steps"
                                                              for k in node.keywords):
            node.keywords.append(ast.keyword("steps", ast.Constant(2)))
        return node


class _Photo(ast.NodeTransformer):
    """``load_image("cat.jpg")`` reads a dev photo instead."""

    def __init__(self, path: str) -> None:
        self.path = path

    def visit_Call(self, node: ast.Call) -> ast.Call:
        self.generic_visit(node)
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
            node.func, "id", "")
        if name == "load_image" and node.args and isinstance(node.args[0], ast.Constant):
            node.args[0] = ast.Constant(self.path)
        return node


def _free_names(tree: ast.Module) -> set[str]:
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
             and isinstance(n.ctx, ast.Store)}
    for n in ast.walk(tree):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in n.names}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Load)}
    return used - bound - set(dir(builtins))


def _promised_shape(comment_line: str) -> list[str] | None:
    m = SHAPE.search(comment_line)
    return [d.strip() for d in m.group(1).split(",")] if m else None


def run_readme_python(namespace: dict, photo: str) -> tuple[list, dict[int, set[str]]]:
    """Run the README's Python blocks, in order, in one namespace, statement by statement;
    a block that needs a name the README leaves to the reader (``net``, ``detector``) and the
    namespace does not hold is skipped. Returns ``(statement, shape, promised)`` for every
    statement whose line ends in ``# Tensor[...]``, after checking it, and the names each
    skipped block (by its first line) lacked."""
    checked, skipped = [], {}
    blocks = [(start, code) for lang, start, code in
              fenced_blocks((REPO / "README.md").read_text(encoding="utf-8"))
              if lang == "python"]
    assert blocks, "README.md has no ```python block"
    for start, code in blocks:
        tree = ast.parse(code)
        if _free_names(tree) - set(namespace):
            skipped[start] = _free_names(tree) - set(namespace)
            continue
        tree = _Photo(photo).visit(_Steps().visit(tree))
        lines = code.splitlines()
        for stmt in tree.body:
            ast.fix_missing_locations(stmt)
            where = f"README.md:{start + stmt.lineno - 1}: {lines[stmt.lineno - 1].strip()}"
            if isinstance(stmt, ast.Expr):
                value = eval(compile(ast.Expression(stmt.value), where, "eval"), namespace)
            else:
                exec(compile(ast.Module([stmt], []), where, "exec"), namespace)
                targets = stmt.targets if isinstance(stmt, ast.Assign) else []
                value = (namespace[targets[0].id] if len(targets) == 1
                         and isinstance(targets[0], ast.Name) else None)
            promised = _promised_shape(lines[stmt.lineno - 1])
            if promised is None:
                continue
            assert isinstance(value, torch.Tensor), f"{where}: not a tensor but {type(value)}"
            shape = tuple(value.shape)
            assert len(shape) == len(promised) and all(
                not d.isdigit() or int(d) == s for d, s in zip(promised, shape)
            ), f"{where}: shape {shape}, the README promises Tensor[{', '.join(promised)}]"
            checked.append((where, shape, promised))
    return checked, skipped


@pytest.mark.slow
def test_readme_python_runs_and_gives_the_shapes_it_promises(dev_data):
    root, records = dev_data
    record = records[0]
    photo = str(root / record["file"])
    paths = [str(root / r["file"]) for r in records[:4]]
    checked, skipped = run_readme_python(ns := {"__name__": "readme", "paths": paths}, photo)
    # only the blocks about the reader's own models wait for names the test cannot give
    lacking = set().union(*skipped.values())
    assert lacking <= READER_NAMES, (
        f"README blocks at lines {sorted(skipped)} need {sorted(lacking - READER_NAMES)}: "
        "define them in the README or give them to run_readme_python here")
    assert {"clf", "photo", "x", "m", "maps", "r", "v", "best", "loc"} <= set(ns)
    where = [w for w, _, _ in checked]
    # the quickstart: the batch, the top-1 map, the class-name map, top5, a class_score map
    assert sum("deepinside.photos_to_batch" in w for w in where) == 1
    assert sum("deepinside.saliency(clf, x" in w for w in where) == 3
    assert any("target=\"top5\"" in w for w in where)
    assert any("r.images" in w for w in where)
    assert float(ns["r"].images.min()) >= 0 and float(ns["r"].images.max()) <= 1
    # "Whole photos, maps back at each photo's own size (float32 arrays H x W)"
    maps, targets, logits = ns["maps"], ns["targets"], ns["logits"]
    assert len(maps) == 1 and maps[0].dtype == np.float32
    assert maps[0].shape == (record["height"], record["width"])
    assert logits.shape == (1, 1000) and targets.shape == (1,)
    # [[loc]] = deepinside.localize(clf, [photo])   # loc.box = (x0, y0, x1, y1), loc.name, ...
    loc = ns["loc"]
    x0, y0, x1, y1 = loc.box
    assert 0 <= x0 < x1 <= record["width"] and 0 <= y0 < y1 <= record["height"]
    assert isinstance(loc.name, str) and 0 < loc.prob <= 1
