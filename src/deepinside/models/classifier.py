"""Classifier: a frozen module bundled with its preprocessing, class names and output reader."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..registry import close_matches
from .class_names import imagenet_class_names
from .preprocessing import Preprocessing

__all__ = ["Classifier"]


@dataclass
class Classifier:
    """A frozen classifier in eval mode with its preprocessing and class names.

    Calling it runs the module on ``Tensor[B, 3, H, W]`` and returns what the module returns;
    the engine (:mod:`deepinside.engine`) reads the class logits ``Tensor[B, K]`` out of it
    (a tensor, the first tensor of a tuple, ``logits`` or ``out`` of a mapping or a Hugging
    Face ``ModelOutput``, or what ``output`` extracts).

    Attributes:
        module: the ``nn.Module``.
        preprocessing: how photos become inputs.
        class_names: one description per class (``"goldfish, Carassius auratus"``); the
            first comma-separated part is the short name.
        name: how the model was asked for.
        output: ``f(raw output) -> Tensor[B, K]`` (or any output a target callable reads),
            applied by the engine after each forward pass; ``None`` for the default reading.
    """

    module: nn.Module
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    class_names: list[str] = field(default_factory=imagenet_class_names)
    name: str = "custom"
    output: Callable[[Any], Any] | None = None

    def __call__(self, x: Tensor) -> Any:
        return self.module(x)

    @property
    def device(self) -> torch.device:
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.module.parameters(), None)
        return p.dtype if p is not None else torch.float32

    def short_name(self, index: int) -> str:
        """The short display name of class ``index`` (its first synonym)."""
        if 0 <= index < len(self.class_names):
            return self.class_names[index].split(",")[0].strip()
        return f"class {index}"

    def top_classes(self, logits: Tensor, k: int = 5) -> list[list[dict]]:
        """Per row of ``logits`` ``Tensor[B, K]``: its ``k`` best classes, best first, as
        ``{"class", "name", "prob", "logit"}`` (what ``deepinside classify --json`` prints)."""
        logits = logits.detach().float().cpu()
        vals, idx = torch.softmax(logits, dim=1).topk(min(k, logits.shape[1]), dim=1)
        return [[{"class": int(c), "name": self.short_name(int(c)), "prob": float(p),
                  "logit": float(row[c])} for p, c in zip(v, i)]
                for row, v, i in zip(logits, vals, idx)]

    def class_index(self, key: int | str) -> int:
        """Resolve a class given as an index, a numeric string or a name (case-insensitive).

        Any comma-separated synonym of a class description matches (``"Carassius auratus"``).

        Raises:
            ValueError: the class does not exist; the message offers close matches.
        """
        n = len(self.class_names)
        if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
            i = int(key)
            if not 0 <= i < n:
                raise ValueError(f"class index {i} is out of range 0..{n - 1}")
            return i
        want = _norm(key)
        exact = [i for i, d in enumerate(self.class_names) if _norm(d) == want]
        hits = exact or [i for i, d in enumerate(self.class_names) if want in _synonyms(d)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            alts = ", ".join(f"{i} ({self.class_names[i]})" for i in hits)
            raise ValueError(f"class name {key!r} is ambiguous: {alts}; give the index")
        vocab = {s: i for i, d in enumerate(self.class_names) for s in _synonyms(d)}
        close = close_matches(want, vocab, n=5)
        hint = "; did you mean " + ", ".join(f"{c!r} ({vocab[c]})" for c in close) if close else ""
        raise ValueError(f"unknown class {key!r}{hint}")


def _norm(s: str) -> str:
    return re.sub(r"[\s_\-]+", " ", s.strip().lower())


def _synonyms(description: str) -> list[str]:
    return [_norm(s) for s in description.split(":")[0].split(",") if s.strip()]
