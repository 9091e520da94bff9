"""scripts/gpu_batch.sh, the batch a lent GPU ran (docs/results.md 14): valid bash, and every oicsr-lab
command in it parses with today's CLI, so a later lease does not lose its minutes to a renamed option."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from oicsr_lab.cli import build_parser

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_batch.sh"


def commands() -> list[list[str]]:
    """The argument lists of every ``$py -m oicsr_lab ...`` command, as bash itself splits them (continuations
    joined, the script's variables and its ``left`` time function stubbed)."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        m = re.search(r"\$py -m oicsr_lab ([^>]*)", line)
        if m:
            stub = 'dev=cuda; res=/r; left() { echo 1; }; set -- ' + m.group(1) + '; printf "%s\\0" "$@"'
            argv = subprocess.run(["bash", "-c", stub], check=True, capture_output=True, text=True).stdout
            out.append(argv.split("\0")[:-1])
    return out


def test_the_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_every_command_parses_with_the_cli():
    found = commands()
    assert [c[0] for c in found] == ["calibrate", "reproduce", "reproduce"]
    parser = build_parser()
    for argv in found:
        args = parser.parse_args(argv)
        assert args.command == argv[0]
        if argv[0] == "calibrate":
            assert args.preset == "course" and args.epochs == 6
        assert args.device == "cuda"
