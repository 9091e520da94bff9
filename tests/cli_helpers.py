"""Shared test helper for the command line's one-line error contract."""

from __future__ import annotations

import pytest

from oicsr_lab.cli import main


def run_cli(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """``main(argv)`` in-process: exit code 2 and one stderr line without a traceback; returns the line."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err and err.startswith("oicsr-lab"), err
    return err
