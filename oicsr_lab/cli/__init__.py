"""The ``oicsr-lab`` command: one module per subcommand, all registered in :data:`COMMANDS` below.

A subcommand module holds ``NAME``, ``add_args(parser)`` and ``run(args) -> exit code`` (its docstring
is the subcommand's help); shared options and helpers are in :mod:`.common`. Errors of the project
(:class:`~oicsr_lab.errors.OICSRError`) and usage errors print as one line with exit code 2.
Nothing in the library imports this package (``tests/test_imports.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType

from ..errors import OICSRError
from . import calibrate, course, info, pretrained, prune, reproduce, tables, train
from . import eval as evaluate

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[ModuleType, ...] = (train, evaluate, info, pretrained, prune, reproduce, tables, calibrate, course)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit code 2), like the project's errors."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every subcommand of :data:`COMMANDS`."""
    parser = OneLineParser(prog="oicsr-lab", description="Channel pruning with OICSR: train, prune, reproduce.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        doc = command.run.__doc__ or ""
        p = sub.add_parser(command.NAME, help=doc.strip().splitlines()[0] if doc.strip() else "", description=doc)
        command.add_args(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``oicsr-lab`` and ``python -m oicsr_lab``."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "out", None):  # fail before any data is decoded or any training starts
            from ..io import check_writable_dir

            check_writable_dir(args.out, "--out")
        return args.func(args)
    except OICSRError as e:
        print(f"oicsr-lab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `oicsr-lab info | head`: stop quietly, like other Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
