"""The benchmark scripts run and print their ratio tables (slow: each starts real work)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_reproduce_prints_a_ratio_per_variant(data_dir: Path, tmp_path: Path) -> None:
    """Two tiny ci reproductions side by side: one line per variant, the reference at 1.00, every run's report kept."""
    keep = tmp_path / "keep"
    env = {**os.environ, "OICSR_LAB_DATA": str(data_dir), "OICSR_LAB_PROGRESS": "0"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_reproduce.py"), "--preset", "ci", "--seeds", "0",
         "--variants", "j1-bf16,j2-bf16", "--threads", "2", "--keep", str(keep), "--",
         "--regs", "l2,gl", "--epochs", "1", "--ratios", "0.3", "--finetune-epochs", "0", "--pipeline-regs", "",
         "--no-table1"],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout.split("variant")[-1].splitlines()[1:]
    rows = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in table if line.strip()}
    assert set(rows) == {"j1-bf16", "j2-bf16"}
    assert rows["j1-bf16"][1] == 1.0 and rows["j1-bf16"][0] > 0 and rows["j2-bf16"][1] > 0
    assert all((keep / f"{v}-0" / "summary.json").is_file() for v in rows)


def test_bench_reproduce_refuses_an_unknown_variant() -> None:
    """A misspelt variant is named in a one-line usage error before anything runs."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_reproduce.py"), "--variants", "j3-bf16"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "j3-bf16" in proc.stderr.splitlines()[-1]
