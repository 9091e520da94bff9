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

from oicsr_lab.cli import main

from cli_helpers import run_cli as one_line_exit_2


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
    proc = run([*command(), "train", "--preset", "ci", "--threads", "1", "--no-progress", "--out", "run"], data_dir,
               work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work / "run", proc


def test_train_ci_end_to_end(ci_run) -> None:
    """The run folder gets checkpoint.pt, metrics.jsonl (one line per epoch) and config.json; accuracy is printed."""
    out, proc = ci_run
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"train_loss", "train_acc", "test_acc", "test_loss", "lr", "img_per_s",
            "data_time_share"} <= records[-1].keys()
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
    (["train", "--preset", "ci", "--cutout", "-2"], "cutout must be a whole number of pixels"),
    (["train", "--preset", "ci", "--data", "mnist"], "unknown dataset 'mnist'"),
    (["train", "--preset", "ci", "--device", "tpu"], "unknown device"),
    (["eval", "no/such/checkpoint.pt"], "no checkpoint there"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_inputs_are_one_line(capsys, data_dir: Path, tmp_path: Path, argv: list[str], expect: str) -> None:
    """Each bad input: exit code 2, one line naming the problem and the fix, no traceback."""
    extra = ["--data-dir", str(data_dir), "--threads", "1", "--out",
             str(tmp_path / "run")] if argv[0] == "train" else []
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
    """``oicsr-lab info --model resnet20`` prints parameter and MAC counts (skipped while oicsr_lab.summary is
    absent)."""
    pytest.importorskip("oicsr_lab.summary", reason="oicsr_lab.summary (the `info` subcommand) is not written yet")
    assert main(["info", "--model", "resnet20"]) == 0
    text = capsys.readouterr().out.lower()
    digits = text.replace(",", "")
    assert "param" in text and "mac" in text
    assert "272474" in digits and "40813184" in digits, text  # ResNet-20: 0.27 M parameters, 40.8 M MACs


# -- eval accepts everything train, prune and reproduce write ------------------------------------------------------

def eval_json(capsys, argv: list[str]) -> dict:
    """``oicsr-lab eval ...`` in-process: exit code 0 and its JSON line."""
    capsys.readouterr()
    code = main(["eval", *argv, "--threads", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def pruned(ci_run, data_dir: Path) -> dict[str, Path]:
    """``prune --from`` the ci run to 20 % of FLOPs in two steps, once with fine-tuning and once without."""
    out = {}
    for name, finetune in (("finetuned", "1"), ("no_finetune", "0")):
        proc = run([*command(), "prune", "--from", str(ci_run[0]), "--target", "0.2", "--step", "0.1",
                    "--retrain-epochs", "1", "--finetune-epochs", finetune, "--out", name, "--threads", "1",
                    "--no-progress"], data_dir, ci_run[0].parent)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[name] = ci_run[0].parent / name
    return out


def _records(folder: Path) -> list[dict]:
    return json.loads((folder / "state.json").read_text())["records"]


def test_eval_accepts_prune_outputs_with_finetuning(pruned, capsys) -> None:
    """A prune folder is its fine-tuned model; every .pt it saved evaluates to the accuracy the pipeline recorded."""
    folder = pruned["finetuned"]
    rec = _records(folder)
    assert [r["stage"] for r in rec] == ["dense", "prune", "prune", "finetune"]
    cases = [  # (what is passed, the file expected, recorded accuracy, recorded MACs)
        (folder, "finetune/finetuned.pt", rec[-1]["acc_after_retrain"], rec[-1]["flops"]),
        (folder / "finetune" / "finetuned.pt", "finetune/finetuned.pt", rec[-1]["acc_after_retrain"], rec[-1]["flops"]),
        (folder / "dense.pt", "dense.pt", rec[0]["acc_after_retrain"], rec[0]["flops"]),
        (folder / "step1" / "pruned.pt", "step1/pruned.pt", rec[1]["acc_before_retrain"], rec[1]["flops"]),
        (folder / "step2" / "retrained.pt", "step2/retrained.pt", rec[2]["acc_after_retrain"], rec[2]["flops"]),
        (folder / "step2" / "train", "step2/retrained.pt", rec[2]["acc_after_retrain"], rec[2]["flops"]),
        (folder / "finetune" / "train" / "checkpoint.pt", "finetune/finetuned.pt", rec[-1]["acc_after_retrain"],
         rec[-1]["flops"]),
    ]
    for given, file, acc, macs in cases:
        res = eval_json(capsys, [str(given)])
        assert res["checkpoint"] == str(folder / file), given
        assert res["kind"] == "pruned" and res["test_images"] == 500 and res["dataset"] == "cifar10-sample"
        assert res["acc"] == pytest.approx(acc) and res["macs"] == macs, given
    assert rec[-1]["flops"] < 0.85 * rec[0]["flops"]  # the models really are smaller


def test_eval_accepts_prune_outputs_without_finetuning(pruned, capsys) -> None:
    """Without fine-tuning the prune folder's final model is the last retrained step."""
    folder = pruned["no_finetune"]
    rec = _records(folder)
    assert [r["stage"] for r in rec] == ["dense", "prune", "prune"]
    res = eval_json(capsys, [str(folder)])
    assert res["checkpoint"] == str(folder / "step2" / "retrained.pt")
    assert res["acc"] == pytest.approx(rec[-1]["acc_after_retrain"]) and res["macs"] == rec[-1]["flops"]


def test_eval_of_a_training_checkpoint_file(ci_run, capsys) -> None:
    """The run's checkpoint.pt (not only its folder) works, and says what it is."""
    out, _ = ci_run
    res = eval_json(capsys, [str(out / "checkpoint.pt")])
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert res["kind"] == "trained" and res["epoch"] == 2 and res["acc"] == pytest.approx(last["test_acc"])


def test_eval_of_a_pruned_file_saved_elsewhere_needs_data(pruned, capsys, data_dir: Path, tmp_path: Path) -> None:
    """A save_pruned file outside a prune run: --data names the data set (whole test split)."""
    lone = tmp_path / "model.pt"
    shutil.copy(pruned["finetuned"] / "finetune" / "finetuned.pt", lone)
    assert "pass --data" in one_line_exit_2(capsys, ["eval", str(lone)])
    res = eval_json(capsys, [str(lone), "--data", "cifar10-sample", "--data-dir", str(data_dir)])
    assert res["kind"] == "pruned" and res["test_images"] == 1000


def _fake_report(ci_run, root: Path, summary: bool) -> Path:
    """A report folder holding the (l2) ci run as its l2 run of seed 0, and a copy posing as oicsr_gl of seed 1."""
    report = root / "report"
    for name in ("l2-0123456789ab", "oicsr_gl-ba9876543210"):
        shutil.copytree(ci_run[0], report / "runs" / name)
    cfg = json.loads((report / "runs" / "oicsr_gl-ba9876543210" / "config.json").read_text())
    cfg["config"].update(seed=1, reg="oicsr_gl")
    (report / "runs" / "oicsr_gl-ba9876543210" / "config.json").write_text(json.dumps(cfg))
    if summary:
        (report / "summary.json").write_text(json.dumps({"seeds": [0, 1], "runs": {
            "0": {"l2": {"folder": "runs/l2-0123456789ab"}},
            "1": {"oicsr_gl": {"folder": "runs/oicsr_gl-ba9876543210"}}}}))
    return report


@pytest.mark.parametrize("summary", [True, False], ids=["summary", "interrupted"])
def test_eval_of_a_report_folder_with_reg(ci_run, capsys, tmp_path: Path, summary: bool) -> None:
    """``eval <report> --reg R [--seed S]`` evaluates that run; without --reg the error lists the choices."""
    report = _fake_report(ci_run, tmp_path, summary)
    res = eval_json(capsys, [str(report), "--reg", "l2"])
    assert res["checkpoint"] == str(report / "runs" / "l2-0123456789ab" / "checkpoint.pt")
    res = eval_json(capsys, [str(report), "--reg", "oicsr_gl", "--seed", "1"])
    assert res["checkpoint"] == str(report / "runs" / "oicsr_gl-ba9876543210" / "checkpoint.pt")
    err = one_line_exit_2(capsys, ["eval", str(report)])
    assert "is a report folder" in err and "--reg l2|oicsr_gl" in err and "--seed 0|1" in err
    assert "no oicsr_gl run of seed 0" in one_line_exit_2(capsys, ["eval", str(report), "--reg", "oicsr_gl"])
    assert "not one" in one_line_exit_2(capsys, ["eval", str(ci_run[0]), "--reg", "l2"])


def test_eval_of_a_missing_path_lists_what_is_there(ci_run, capsys, tmp_path: Path, monkeypatch) -> None:
    """After `make demo` a guessed run folder fails with the runs and reports that do exist."""
    _fake_report(ci_run, tmp_path / "reports", True)
    shutil.copytree(ci_run[0], tmp_path / "runs" / "resnet20-l2-ci")
    monkeypatch.chdir(tmp_path)
    err = one_line_exit_2(capsys, ["eval", "runs/resnet20-oicsr_gl-quick"])
    assert "no checkpoint there" in err and "runs/resnet20-l2-ci" in err and "reports/report" in err


def test_prune_from_a_report_folder(ci_run, capsys, data_dir: Path, tmp_path: Path) -> None:
    """``prune --from <report> --reg R`` prunes that run with its own training config."""
    report = _fake_report(ci_run, tmp_path, True)
    out = tmp_path / "p"
    capsys.readouterr()
    assert main(["prune", "--from", str(report), "--reg", "l2", "--target", "0.1", "--retrain-epochs", "0",
                 "--finetune-epochs", "0", "--out", str(out), "--threads", "1", "--no-progress",
                 "--data-dir", str(data_dir)]) == 0, capsys.readouterr().err
    state = json.loads((out / "state.json").read_text())
    run_cfg = json.loads((ci_run[0] / "config.json").read_text())["config"]
    assert state["config"] == run_cfg and state["done"]
    err = one_line_exit_2(capsys, ["prune", "--from", str(report), "--target", "0.1", "--out", str(tmp_path / "q")])
    assert "choose one of its runs with --reg" in err and not (tmp_path / "q").exists()
    import torch

    assert torch.get_num_threads() == 1  # the refused command (no --threads) did not take the idle cores first


def test_prune_bad_target_prints_nothing_first(ci_run, capsys, tmp_path: Path) -> None:
    """``--target 1.5``: the one-line error and nothing on stdout (no "pruning ... to 150%" first)."""
    for bad in (["--target", "1.5"], ["--target", "0.5", "--step", "0"]):
        capsys.readouterr()
        code = main(["prune", "--from", str(ci_run[0]), *bad, "--out", str(tmp_path / "p"), "--threads", "1"])
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and err.count("\n") == 1 and "must be in" in err, (out, err)
    assert not (tmp_path / "p").exists()
