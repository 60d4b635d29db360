"""The ``deepinside`` command, thin over the public API: one module per subcommand.

Each module of this package named in :data:`COMMANDS` defines ``register(subparsers)``, which adds
its subcommand with ``set_defaults(func=...)`` (``func(args) -> exit status``), and may define
``demo(context: deepinside.cli.demo.DemoContext) -> list[Path]`` to add its part to
``deepinside demo``. Shared argument helpers live in :mod:`.common`. Modules import the library
only inside their functions, so ``deepinside --help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from .common import CLIError

__all__ = ["COMMANDS", "build_parser", "command_modules", "main"]

COMMANDS = ("classify", "saliency", "localize", "classmodel", "visualize", "evaluate", "audit",
            "methods", "models", "paper", "serve", "demo")


def command_modules() -> list[ModuleType]:
    """The subcommand modules, in the order of :data:`COMMANDS`."""
    return [importlib.import_module(f"{__name__}.{name}") for name in COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="deepinside",
        description="What an image classifier looks at, and what it has learned "
                    "(Simonyan et al. 2013, https://arxiv.org/abs/1312.6034, and beyond).",
    )
    parser.add_argument("--version", action="version", version=f"deepinside {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in command_modules():
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``deepinside`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return e.code if isinstance(e.code, int) else 2
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe fails here, not at the interpreter's exit
        return status
    except CLIError as e:
        print(f"deepinside: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepinside: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `deepinside classify ... --json | head`: the reader went away
        _discard_stdout()
        return 141  # what a shell reports for a command stopped by SIGPIPE (128 + 13)


def _discard_stdout() -> None:
    """Point standard output at the null device, so that the interpreter's last flush of what
    is still buffered for a closed pipe raises nothing (Python's ``signal`` docs, on SIGPIPE)."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # replaced (tests) or closed: nothing to do
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
