"""Readers for localisation datasets: photos, their class and their ground-truth boxes.

:func:`read_dataset` recognises three formats:

- **JSON** (``annotations.json`` of ``imagenet-val-300``): a list of objects with ``file`` (path
  relative to the JSON file), ``label`` (class index) and ``boxes_xyxy`` (or ``boxes``): a list of
  ``[x0, y0, x1, y1]`` in the photo's pixels. A ``{"images": [...]}`` wrapper is accepted too.
- **XML folders** (ILSVRC and PASCAL VOC): one ``<annotation>`` file per photo with
  ``<filename>``, ``<object><name>`` and ``<bndbox><xmin>/<ymin>/<xmax>/<ymax>``. The photo is
  found by name anywhere under the folder given (``JPEGImages/``, ``val/``, beside the XML, ...).
  ``<name>`` is a WordNet id (ILSVRC: its index in the sorted 1000 ids), a class index, or a
  name found in ``classes.txt`` (one class per line, in index order) at the folder's root.
  The image's class is the first object's; its boxes are those of the objects of that class.
  Coordinates are taken as given (as the ``boxes_xyxy_orig`` of ``imagenet-val-300``).
- **CSV** with a header: ``file`` (or ``image``/``path``), ``label``, and ``x0,y0,x1,y1`` (or
  ``xmin,ymin,xmax,ymax``); one row per box, rows of one photo share its ``file`` and ``label``.

Malformed records (missing fields, bad numbers, inverted boxes, unknown classes, missing photos,
unparsable files) are skipped and reported as ``(where, reason)``; they never stop the reading.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..images import IMAGE_EXTENSIONS

__all__ = [
    "DatasetError",
    "Record",
    "label_problem",
    "read_csv",
    "read_dataset",
    "read_json",
    "read_xml_folder",
]

Box = tuple[float, float, float, float]
Problems = list[tuple[str, str]]


class DatasetError(ValueError):
    """The dataset as a whole cannot be read (no such path, unknown format, no record)."""


@dataclass
class Record:
    """One photo of a localisation dataset.

    Attributes:
        path: the photo.
        label: its class index.
        boxes: ground-truth boxes of the class, ``(x0, y0, x1, y1)`` in the photo's pixels.
        key: a stable identifier (the path relative to the dataset root).
    """

    path: Path
    label: int
    boxes: list[Box] = field(default_factory=list)
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            self.key = str(self.path)


def _box(values: Iterable[object]) -> Box:
    vals = [float(v) for v in values]  # ValueError / TypeError on junk
    if len(vals) != 4:
        raise ValueError(f"a box needs 4 numbers, got {len(vals)}")
    x0, y0, x1, y1 = vals
    if not all(v == v and abs(v) != float("inf") for v in vals):
        raise ValueError("box has a non-finite number")
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {vals} is empty or inverted (need x0 < x1 and y0 < y1)")
    return (x0, y0, x1, y1)


def _label(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"bad label {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise ValueError(f"label must be a class index, got {value!r}")
    if value < 0:
        raise ValueError(f"label must be >= 0, got {value}")
    return value


def read_json(path: str | Path) -> tuple[list[Record], Problems]:
    """Read a JSON annotation list (the format of ``imagenet-val-300/annotations.json``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: cannot read JSON: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        data = data["images"]
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of records")
    records: list[Record] = []
    problems: Problems = []
    for i, item in enumerate(data):
        where = f"{path}[{i}]"
        try:
            if not isinstance(item, dict):
                raise ValueError("record is not an object")
            if "file" not in item or "label" not in item:
                raise ValueError("record needs 'file' and 'label'")
            raw = item.get("boxes_xyxy", item.get("boxes"))
            if not isinstance(raw, list) or not raw:
                raise ValueError("record needs a non-empty list 'boxes_xyxy'")
            boxes = [_box(b) for b in raw]
            label = _label(item["label"])
            photo = path.parent / str(item["file"])
            if not photo.is_file():
                raise ValueError(f"photo {photo} not found")
        except (ValueError, TypeError) as e:
            problems.append((where, str(e)))
            continue
        records.append(Record(photo, label, boxes, str(item["file"])))
    return records, problems


def imagenet_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 WordNet ids in the standard sorted order (offline, from timm)."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


def _class_lookup(root: Path) -> Callable[[str], int]:
    names: dict[str, int] = {}
    classes = root / "classes.txt"
    if classes.is_file():
        for i, line in enumerate(classes.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                names[line.strip().lower()] = i
    wnids: dict[str, int] | None = None

    def lookup(name: str) -> int:
        nonlocal wnids
        key = name.strip().lower()
        if key in names:
            return names[key]
        if key.isdigit():
            return int(key)
        if key.startswith("n") and key[1:].isdigit():
            if wnids is None:
                wnids = {w: i for i, w in enumerate(imagenet_wnids())}
            if key in wnids:
                return wnids[key]
        raise ValueError(f"unknown class {name!r} (not a WordNet id, an index, or in classes.txt)")

    return lookup


def read_xml_folder(root: str | Path) -> tuple[list[Record], Problems]:
    """Read a folder of ILSVRC / PASCAL VOC XML annotations and the photos under it."""
    root = Path(root)
    xmls = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".xml" and p.is_file())
    if not xmls:
        raise DatasetError(f"{root}: no XML annotation files")
    photos: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            photos.setdefault(p.stem, p)
    lookup = _class_lookup(root)
    records: list[Record] = []
    problems: Problems = []
    for x in xmls:
        where = str(x)
        try:
            try:
                tree = ET.parse(x).getroot()
            except ET.ParseError as e:
                raise ValueError(f"not valid XML: {e}") from None
            name = (tree.findtext("filename") or x.stem).strip()
            photo = photos.get(Path(name).stem) or photos.get(x.stem)
            if photo is None:
                raise ValueError(f"photo {name!r} not found under {root}")
            objects = tree.findall("object")
            if not objects:
                raise ValueError("no <object>")
            label = None
            boxes: list[Box] = []
            for obj in objects:
                cls = lookup(obj.findtext("name") or "")
                if label is None:
                    label = cls
                if cls != label:
                    continue
                bb = obj.find("bndbox")
                if bb is None:
                    raise ValueError("<object> without <bndbox>")
                boxes.append(_box(bb.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")))
        except (ValueError, TypeError) as e:
            problems.append((where, str(e)))
            continue
        records.append(Record(photo, int(label), boxes, str(photo.relative_to(root))))
    return records, problems


_FILE_COLS = ("file", "image", "path", "filename")
_BOX_COLS = (("x0", "y0", "x1", "y1"), ("xmin", "ymin", "xmax", "ymax"))


def read_csv(path: str | Path) -> tuple[list[Record], Problems]:
    """Read a CSV of boxes, one row per box (see the module docstring for the columns)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: cannot read CSV: {e}") from None
    if not rows:
        raise DatasetError(f"{path}: no rows (a header and one row per box are needed)")
    fcol = next((c for c in _FILE_COLS if c in header), None)
    bcols = next((c for c in _BOX_COLS if all(k in header for k in c)), None)
    if fcol is None or bcols is None or "label" not in header:
        raise DatasetError(f"{path}: header needs file, label and x0,y0,x1,y1 (or xmin,...)")
    by_file: dict[str, Record] = {}
    problems: Problems = []
    bad: set[str] = set()
    for n, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() if isinstance(v, str) else v
               for k, v in row.items()}
        where = f"{path}:{n}"
        name = row.get(fcol) or ""
        try:
            if not name:
                raise ValueError(f"empty {fcol!r}")
            box = _box(row.get(k) for k in bcols)
            label = _label(row.get("label"))
            rec = by_file.get(name)
            if rec is None:
                photo = path.parent / name
                if not photo.is_file():
                    raise ValueError(f"photo {photo} not found")
                by_file[name] = Record(photo, label, [box], name)
            elif rec.label != label:
                raise ValueError(f"label {label} differs from {rec.label} given earlier for {name}")
            else:
                rec.boxes.append(box)
        except (ValueError, TypeError) as e:
            if name not in bad:
                problems.append((where, str(e)))
            if "not found" in str(e):
                bad.add(name)
    return list(by_file.values()), problems


def read_dataset(path: str | Path) -> tuple[list[Record], Problems]:
    """Read a localisation dataset in any supported format.

    Args:
        path: a ``.json`` or ``.csv`` file, a folder holding ``annotations.json`` (or one CSV),
            or a folder of XML annotations with their photos.

    Returns:
        ``(records, problems)``: the well-formed records, in file order, and ``(where, reason)``
        for each record that was skipped.

    Raises:
        DatasetError: the path is missing, of no known format, or holds no record at all.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if p.is_dir():
        if (p / "annotations.json").is_file():
            p = p / "annotations.json"
        elif any(x.suffix.lower() == ".xml" for x in p.rglob("*")):
            return _nonempty(p, read_xml_folder(p))
        else:
            csvs = sorted(p.glob("*.csv"))
            if len(csvs) != 1:
                raise DatasetError(f"{p}: holds no annotations.json, XML files or single CSV")
            p = csvs[0]
    if p.suffix.lower() == ".json":
        return _nonempty(p, read_json(p))
    if p.suffix.lower() == ".csv":
        return _nonempty(p, read_csv(p))
    raise DatasetError(f"{p}: unknown dataset format (use .json, .csv or an XML folder)")


def _nonempty(p: Path, result: tuple[list[Record], Problems]) -> tuple[list[Record], Problems]:
    records, problems = result
    if not records:
        why = f"; first problem: {problems[0][0]}: {problems[0][1]}" if problems else ""
        raise DatasetError(f"{p}: no usable record{why}")
    return records, problems


def label_problem(record: Record, model: object) -> str:
    """Why ``record``'s label cannot be explained by ``model`` (not one of its classes), or
    ``""``. A model without ``class_names`` accepts every label."""
    n = len(getattr(model, "class_names", ()))
    if n and not 0 <= record.label < n:
        return f"label {record.label} is not a class of the model (0..{n - 1})"
    return ""
