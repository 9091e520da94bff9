"""``oicsr-lab tables``: a reproduce report's results as markdown tables."""

from __future__ import annotations

import argparse

NAME = "tables"


def add_args(p: argparse.ArgumentParser) -> None:
    """Options of ``tables``."""
    p.add_argument("report", help="a reproduce output folder, e.g. reports/quick")


def run(args: argparse.Namespace) -> int:
    """Print a reproduce report's results as markdown tables (for docs and notes)."""
    from ..experiments.tables import report_tables

    print(report_tables(args.report))
    return 0
