"""Names of a package imported on first use (PEP 562), so importing the package stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for a package whose public names live in its submodules.

    Args:
        package: the package's ``__name__``.
        exports: public name -> submodule (relative, e.g. ``"engine"``) that defines it.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value  # found directly next time
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__


def deprecated_names(package: str, moved: dict[str, str], since: str = "0.2.0") -> Callable:
    """``__getattr__`` for names that moved: each old name still works for one release, with a
    ``DeprecationWarning`` that says where it went.

    Args:
        package: the module's ``__name__``.
        moved: old name -> ``"module:attribute"`` (absolute) of its new home.
        since: the release that moved it (listed in CHANGELOG.md).
    """
    import warnings

    def __getattr__(name: str) -> Any:
        target = moved.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = target.partition(":")
        warnings.warn(f"{package}.{name} is deprecated since {since} and will be removed in the "
                      f"next release; use {module}.{attr}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), attr)

    return __getattr__


def deprecated_positional(after: int, names: tuple[str, ...], since: str = "0.2.0",
                          note: str = "") -> Callable[[F], F]:
    """Decorator: 0.1's positional arguments past the first ``after`` are mapped onto the
    keyword-only parameters ``names`` (in that order) for one release, with a
    ``DeprecationWarning``. As Python itself does, a value given both by position and by keyword
    (``f(a, b, 5, top_k=3)``) or too many positional arguments is a ``TypeError``.

    Args:
        after: how many positional parameters the function has now.
        names: the keyword-only parameters the extra positional arguments once were.
        since: the release that made them keyword-only (listed in CHANGELOG.md).
        note: a sentence added to the warning (e.g. what the position will mean next).
    """
    import functools
    import inspect
    import warnings

    def wrap(fn: F) -> F:
        leading = list(inspect.signature(fn).parameters)[:after]

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            extra = args[after:]
            if not extra:
                return fn(*args, **kwargs)
            if len(extra) > len(names):
                raise TypeError(f"{fn.__name__}() takes at most {after + len(names)} positional "
                                f"arguments ({len(args)} given)")
            given = names[:len(extra)]
            for name in given:
                if name in kwargs:
                    raise TypeError(f"{fn.__name__}() got multiple values for argument {name!r}")
            warnings.warn(f"{fn.__name__}({', '.join(leading + list(given))}) by position is "
                          f"deprecated since {since}; pass {', '.join(n + '=' for n in given)} "
                          f"by keyword{f' ({note})' if note else ''}", DeprecationWarning,
                          stacklevel=2)
            return fn(*args[:after], **kwargs, **dict(zip(given, extra)))

        return cast(F, call)  # type checkers see the new, keyword-only signature

    return wrap
