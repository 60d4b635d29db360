"""Subcommands of ``deepinside`` contributed by each capability.

Each module here defines ``register(subparsers)``, which adds its subcommand(s) with
``set_defaults(func=...)`` (``func(args) -> exit status``), and may define
``demo(context: deepinside.cli.DemoContext) -> list[Path]`` to add figures to ``deepinside demo``.
Modules are discovered by name, in sorted order.
"""
