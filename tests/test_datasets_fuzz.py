"""Property test of the dataset readers: whatever a JSON, CSV or XML file holds, it is read or
reported record by record (or refused as a whole with DatasetError), never a traceback."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from deepinside.evaluate.datasets import DatasetError, read_dataset

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), st.sampled_from(["a.png", "missing.png", "n01440764"]))
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=5),
                                                      st.dictionaries(st.text(max_size=8), c,
                                                                      max_size=5)),
                      max_leaves=20)
record = st.fixed_dictionaries({}, optional={
    "file": st.one_of(st.just("a.png"), scalars), "label": st.one_of(st.integers(-3, 1200),
                                                                     scalars),
    "boxes_xyxy": st.one_of(st.lists(st.lists(st.one_of(st.integers(-50, 500), scalars),
                                              max_size=5), max_size=3), values),
    "boxes": values})


def _folder() -> Path:
    root = Path(tempfile.mkdtemp())
    Image.new("RGB", (40, 30)).save(root / "a.png")
    return root


def _read(path: Path) -> None:
    try:
        records, problems = read_dataset(path)
    except DatasetError:
        return
    for r in records:
        assert isinstance(r.label, int) and r.label >= 0 and r.boxes and r.path.is_file()
    for where, why in problems:
        assert isinstance(where, str) and isinstance(why, str) and why


@SETTINGS
@given(st.one_of(st.lists(st.one_of(record, values), max_size=6), values,
                 st.fixed_dictionaries({"images": st.lists(record, max_size=4)})))
def test_json_reader_never_crashes(content):
    root = _folder()
    try:
        (root / "annotations.json").write_text(json.dumps(content))
        _read(root / "annotations.json")
    finally:
        shutil.rmtree(root)


cells = st.one_of(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=10),
                  st.integers(-5, 600).map(str), st.just("a.png"))


@SETTINGS
@given(st.lists(st.sampled_from(["file", "image", "label", "x0", "y0", "x1", "y1", "xmin",
                                 "junk"]), min_size=1, max_size=8),
       st.lists(st.lists(cells, max_size=9), max_size=6), st.binary(max_size=30))
def test_csv_reader_never_crashes(header, rows, tail):
    root = _folder()
    try:
        text = "\n".join(",".join(r) for r in [header, *rows]).encode() + tail
        (root / "boxes.csv").write_bytes(text)
        _read(root / "boxes.csv")
    finally:
        shutil.rmtree(root)


tags = st.sampled_from(["annotation", "filename", "object", "name", "bndbox", "xmin", "ymin",
                        "xmax", "ymax", "size"])


@st.composite
def xml_tree(draw, depth=0):
    tag = draw(tags)
    if depth > 2 or draw(st.booleans()):
        return f"<{tag}>{draw(cells)}</{tag}>"
    inner = "".join(draw(st.lists(xml_tree(depth + 1), max_size=4)))
    return f"<{tag}>{inner}</{tag}>"


@SETTINGS
@given(st.lists(st.one_of(xml_tree(), st.text(max_size=20)), min_size=1, max_size=3))
def test_xml_reader_never_crashes(documents):
    root = _folder()
    try:
        for i, doc in enumerate(documents):
            (root / f"a{i}.xml").write_text(doc)
        _read(root)
    finally:
        shutil.rmtree(root)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00", b"[", b"{}", b"[1, 2]"])
def test_json_edge_cases(tmp_path, content):
    (tmp_path / "annotations.json").write_bytes(content)
    _read(tmp_path)
