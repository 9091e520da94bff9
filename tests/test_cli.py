"""The oicsr-lab command: train/eval end to end in subprocesses, one-line errors (exit code 2), info."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import run_cli as one_line_exit_2

from oicsr_lab.cli import main


def command() -> list[str]:
    """The installed ``oicsr-lab`` script, or ``python -m oicsr_lab`` when it is not on disk."""
    script = Path(sys.executable).with_name("oicsr-lab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "oicsr_lab"]


def run(args: list[str], data_dir: Path, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess with OICSR_LAB_DATA pointing at ``data_dir`` and one thread."""
    env = {**os.environ, "OICSR_LAB_DATA": str(data_dir), "OMP_NUM_THREADS": "1", "OICSR_LAB_PROGRESS": "0"}
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ci_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """``oicsr-lab train --preset ci`` once per module; returns its run folder and the finished process."""
    work = tmp_path_factory.mktemp("cli")
    proc = run([*command(), "train", "--preset", "ci", "--threads", "1", "--no-progress", "--out", "run"], data_dir, work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work / "run", proc


def test_train_ci_end_to_end(ci_run) -> None:
    """The run folder gets checkpoint.pt, metrics.jsonl (one line per epoch) and config.json; accuracy is printed."""
    out, proc = ci_run
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"train_loss", "train_acc", "test_acc", "test_loss", "lr", "img_per_s", "data_time_share"} <= records[-1].keys()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["model"] == "resnet20" and cfg["config"]["width"] == 0.25 and cfg["arch"]["num_classes"] == 10
    m = re.search(r"final test accuracy ([0-9.]+)%", proc.stdout)
    assert m and float(m.group(1)) == pytest.approx(records[-1]["test_acc"], abs=0.01)
    assert "Traceback" not in proc.stderr


def test_eval_reproduces_final_accuracy(ci_run, data_dir: Path) -> None:
    """``oicsr-lab eval <run>`` scores the same test images as the run and gets the same accuracy."""
    out, _ = ci_run
    proc = run([*command(), "eval", str(out), "--threads", "1"], data_dir, out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert res["epoch"] == 2 and res["test_images"] == 500 and res["dataset"] == "cifar10-sample"
    assert res["acc"] == pytest.approx(last["test_acc"]) and res["loss"] == pytest.approx(last["test_loss"], rel=1e-5)


def test_module_help(tmp_path: Path) -> None:
    """``python -m oicsr_lab --help`` lists the subcommands."""
    proc = subprocess.run([sys.executable, "-m", "oicsr_lab", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and all(c in proc.stdout for c in ("train", "eval", "info"))


@pytest.mark.parametrize("argv, expect", [
    (["train", "--preset", "ci", "--model", "resnet21"], "unknown model"),
    (["train", "--preset", "tiny"], "unknown preset 'tiny'; choose one of ci"),
    (["train", "--preset", "ci", "--strength", "-0.5"], "strength must be a non-negative number"),
    (["train", "--preset", "ci", "--reg", "lasso"], "unknown regularizer 'lasso'; choose one of"),
    (["train", "--preset", "ci", "--schedule", "linear"], "unknown schedule"),
    (["train", "--preset", "ci", "--width", "0"], "width must be > 0"),
    (["train", "--preset", "ci", "--reg-option", "mode"], "KEY=VALUE"),
    (["train", "--preset", "ci", "--epochs", "two"], "invalid int value"),
    (["train", "--preset", "ci", "--data", "mnist"], "unknown dataset 'mnist'"),
    (["train", "--preset", "ci", "--device", "tpu"], "unknown device"),
    (["eval", "no/such/checkpoint.pt"], "no checkpoint there"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_inputs_are_one_line(capsys, data_dir: Path, tmp_path: Path, argv: list[str], expect: str) -> None:
    """Each bad input: exit code 2, one line naming the problem and the fix, no traceback."""
    extra = ["--data-dir", str(data_dir), "--threads", "1", "--out", str(tmp_path / "run")] if argv[0] == "train" else []
    assert expect in one_line_exit_2(capsys, [*argv, *extra])
    assert not (tmp_path / "run").exists()


def test_resume_with_checkpoint_of_another_model(ci_run, capsys, data_dir: Path, tmp_path: Path) -> None:
    """--resume into a run folder trained with another architecture: exit 2, the checkpoint is kept."""
    out = tmp_path / "run"
    shutil.copytree(ci_run[0], out)
    before = (out / "checkpoint.pt").read_bytes()
    err = one_line_exit_2(capsys, ["train", "--preset", "ci", "--model", "resnet32", "--resume", "--out", str(out),
                                   "--data-dir", str(data_dir), "--threads", "1", "--no-progress"])
    assert "resnet20" in err and "resnet32" in err and str(out / "checkpoint.pt") in err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_eval_of_a_corrupt_checkpoint(capsys, tmp_path: Path) -> None:
    """eval on a garbage file: exit 2 with a one-line CheckpointError."""
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"garbage" * 10)
    assert "truncated or corrupt" in one_line_exit_2(capsys, ["eval", str(tmp_path)])


def test_info_prints_params_and_macs(capsys) -> None:
    """``oicsr-lab info --model resnet20`` prints parameter and MAC counts (skipped while oicsr_lab.summary is absent)."""
    pytest.importorskip("oicsr_lab.summary", reason="oicsr_lab.summary (the `info` subcommand) is not written yet")
    assert main(["info", "--model", "resnet20"]) == 0
    text = capsys.readouterr().out.lower()
    digits = text.replace(",", "")
    assert "param" in text and "mac" in text
    assert "272474" in digits and "40813184" in digits, text  # ResNet-20: 0.27 M parameters, 40.8 M MACs
