"""Class names: ImageNet's 1000 (offline, from timm), or the user's from a file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .errors import ModelLoadError

__all__ = ["check_class_names", "imagenet_class_names", "numbered_class_names",
           "read_class_names"]

_IMAGENET_NAMES: list[str] | None = None


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class descriptions, in the standard sorted-WordNet-id order (offline)."""
    global _IMAGENET_NAMES
    if _IMAGENET_NAMES is None:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        _IMAGENET_NAMES = [info.index_to_description(i) for i in range(info.num_classes())]
    return list(_IMAGENET_NAMES)


def numbered_class_names(n: int) -> list[str]:
    """ImageNet's names for a 1000-class head, ``"class 0"``, ``"class 1"``, ... otherwise."""
    return imagenet_class_names() if n == 1000 else [f"class {i}" for i in range(n)]


def read_class_names(path: str | Path) -> list[str]:
    """Class names from a file: one name a line, a JSON list, or a JSON ``{index: name}``.

    A JSON object must name every index from 0 to its largest one.

    Raises:
        ModelLoadError: the file is missing, unreadable, empty or has holes in its indices.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"cannot read class names file {path}: "
                             f"{getattr(e, 'strerror', None) or e}") from None
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelLoadError(f"class names file {path} is not valid JSON: {e}") from None
        if isinstance(data, dict):
            try:
                index = {int(k): str(v) for k, v in data.items()}
            except ValueError:
                raise ModelLoadError(f"class names file {path}: the keys of a JSON object must "
                                     "be class indices") from None
            missing = sorted(set(range(max(index, default=-1) + 1)) - set(index))
            if missing or min(index, default=0) < 0:
                raise ModelLoadError(f"class names file {path} names no class {missing[:3]}; "
                                     "a JSON object needs every index from 0")
            names = [index[i] for i in range(len(index))]
        elif isinstance(data, list):
            names = [str(v) for v in data]
        else:
            raise ModelLoadError(f"class names file {path} must hold a JSON list or object")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ModelLoadError(f"class names file {path} names no class")
    return names


def check_class_names(names: Sequence[str], num_classes: int | None, source: str) -> list[str]:
    """``names`` as a list, checked to name each of ``num_classes`` classes once.

    Raises:
        ModelLoadError: another count, one line naming ``source`` and both counts.
    """
    names = [str(n) for n in names]
    if num_classes is not None and len(names) != num_classes:
        raise ModelLoadError(f"{source} has {len(names)} names, but the model has "
                             f"{num_classes} classes")
    return names
