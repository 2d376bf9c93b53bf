"""The ``sawdist`` command line.

Each subcommand lives in the module that implements it and registers itself in :data:`SUBCOMMANDS` as
``name -> "module:function"``; the function receives the subparsers object and adds its parser (with
``set_defaults(func=...)``). Modules are imported only when the command line is built, so ``import sawdist`` stays
light.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Subcommand name -> "module:function" that adds its parser.
SUBCOMMANDS: dict[str, str] = {
    "extract": "extraction.cli:add_parser",
    "run": "sawdist.mainjob:add_run_parser",
    "report": "sawdist.mainjob:add_report_parser",
}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``sawdist`` command (used by the docs too)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="sawdist",
        description="Saliency directions of model families and their hyperspherical statistics.",
    )
    parser.add_argument("--version", action="version", version=f"sawdist {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, target in SUBCOMMANDS.items():
        module_name, function_name = target.split(":")
        getattr(importlib.import_module(module_name), function_name)(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``sawdist`` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    sys.exit(main())
