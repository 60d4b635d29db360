"""Things found by name: models, methods, recipes. One register / list / get, one "did you mean".

The pattern is timm's ``_registry.py``: ``register`` adds an entry, ``list`` filters the names
with a glob pattern, ``get`` returns an entry or raises ``KeyError`` whose message offers the
closest names. A :class:`Registry` is also a read-only mapping, so ``name in registry``,
``registry[name]`` and ``dict(registry)`` work as for a dict.

This module imports nothing heavy (no torch), so any part of the package can use it.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["Registry", "close_matches", "did_you_mean"]

T = TypeVar("T")


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The (at most ``n``) choices closest to ``name``, best first."""
    return difflib.get_close_matches(str(name), list(choices), n=n, cutoff=0.6)


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """``"; did you mean a, b"`` for the choices closest to ``name``, or ``""`` if none is close."""
    close = close_matches(name, choices, n)
    return f"; did you mean {', '.join(close)}" if close else ""


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind (``"model"``, ``"method"``, ``"recipe"``).

    Args:
        kind: what an entry is, for messages (``unknown method 'gradcan'; did you mean gradcam``).
        hint: extra text for the unknown-name message (e.g. other accepted forms of a name).
    """

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add (or replace) ``entry`` under ``name``; returns the entry."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str, wrap: Callable[[Callable], T]) -> Callable[[Callable], Callable]:
        """A decorator that registers ``wrap(fn)`` under ``name`` and returns ``fn`` itself."""

        def deco(fn: Callable) -> Callable:
            self.register(name, wrap(fn))
            return fn

        return deco

    def get(self, name: str, *default: object) -> T:  # type: ignore[override]
        """The entry registered as ``name`` (or ``default``, if one is given, for a miss).

        Raises:
            KeyError: unknown name and no default; the message offers the closest names and
                lists the known ones.
        """
        if name in self._entries:
            return self._entries[name]
        if default:
            return default[0]  # type: ignore[return-value]
        known = ", ".join(self._entries)
        hint = f"; {self.hint}" if self.hint else ""
        raise KeyError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)} "
                       f"(known: {known}{hint})")

    def list(self, pattern: str | None = None) -> list[str]:
        """Names in registration order, those matching a glob ``pattern`` if one is given."""
        if pattern is None:
            return list(self._entries)
        return [n for n in self._entries if fnmatch.fnmatchcase(n, pattern)]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
