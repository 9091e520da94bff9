"""Interrupted work: SIGKILL a real ``oicsr-lab`` run mid-epoch or mid-write, then resume it.

The run is a subprocess (``tests``' fault driver around ``oicsr_lab.cli.main``) that blocks at an
injected point and is then killed with SIGKILL, so nothing gets a chance to clean up:

* ``step:N`` -- after the N-th optimizer step (mid-epoch);
* ``write:NAME:N`` -- in the N-th atomic write of a file called NAME, with half of its bytes in the
  temp file and before the rename (a kill in the middle of ``torch.save`` / ``write_text``).

Then the files on disk are checked (the previous complete version, readable; a stale temp file is
never read) and the run is resumed with ``--resume``: it must end with exactly the weights and
metrics of an uninterrupted run. The same for ``oicsr-lab prune`` (the iterative pipeline, killed
while recording a stage and mid-retraining) and ``oicsr-lab reproduce`` (killed while marking a run
DONE and mid-epoch: finished runs are kept byte for byte, partial ones are redone).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from oicsr_lab.cli import main
from oicsr_lab.train import build_trainer, load_checkpoint, preset

TIMING_KEYS = {"epoch_time_s", "img_per_s", "data_time_share"}
TRAIN_ARGS = ["--preset", "ci", "--epochs", "3", "--train-subset", "256", "--threads", "1", "--no-progress",
              "--device", "cpu"]
STEPS_PER_EPOCH = 4  # 256 images / batch 64

DRIVER = r'''
"""Run oicsr_lab.cli.main(argv) but block forever at an injected point (the test then SIGKILLs us)."""
import os, sys, time
from pathlib import Path

fault, ready, argv = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
kind, _, rest = fault.partition(":")


def block(what):
    ready.write_text(what)
    while True:
        time.sleep(60)


if kind == "step":
    import torch.optim.optimizer as opt

    steps = [0]

    def after_step(optimizer, args, kwargs):
        steps[0] += 1
        if steps[0] == int(rest):
            block(f"after step {steps[0]}")

    opt.register_optimizer_step_post_hook(after_step)
elif kind == "write":
    name, _, nth = rest.rpartition(":")
    real_replace, seen = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == name:
            seen[0] += 1
            if seen[0] == int(nth):
                size = os.path.getsize(src)
                with open(src, "r+b") as f:
                    f.truncate(size // 2)
                block(f"half of {size} bytes of {dst} in {src}")
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace
from oicsr_lab.cli import main

sys.exit(main(argv))
'''


def untimed(history: list[dict]) -> list[dict]:
    """History without wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in history]


def kill_at(fault: str, argv: list[str], tmp_path: Path, timeout: float = 300.0) -> str:
    """Start the CLI under the fault driver, wait until it blocks at ``fault``, SIGKILL it; returns where it blocked."""
    driver, ready = tmp_path / "driver.py", tmp_path / f"ready-{fault.replace(':', '-')}"
    driver.write_text(DRIVER)
    env = {**os.environ, "OICSR_LAB_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, str(driver), fault, str(ready), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready.exists():
            if proc.poll() is not None:
                pytest.fail(f"run ended (rc {proc.returncode}) before reaching {fault}:\n{proc.stdout.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail(f"run did not reach {fault} within {timeout:.0f}s")
            time.sleep(0.05)
        time.sleep(0.05)  # let it settle in its sleep
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return ready.read_text()


@pytest.fixture(scope="module")
def reference(sample_data, tmp_path_factory: pytest.TempPathFactory):
    """The uninterrupted run, in-process (same config, data and single thread as the CLI runs); its folder is a
    source for ``prune``."""
    assert torch.get_num_threads() == 1  # as the CLI's --threads 1; another count rounds differently
    cfg = preset("ci", epochs=3, train_subset=256)
    out = tmp_path_factory.mktemp("reference") / "run"
    trainer = build_trainer(cfg, out_dir=out, data=sample_data, device="cpu", show_progress=False)
    trainer.fit()
    return trainer


def assert_matches_reference(out: Path, reference) -> None:
    """The run folder ends with the reference's exact weights, history and metrics log."""
    blob = load_checkpoint(out / "checkpoint.pt")
    assert blob["epoch"] == 3
    ref = reference.model.state_dict()
    assert blob["model"].keys() == ref.keys()
    for k, v in ref.items():
        assert torch.equal(blob["model"][k], v), k
    assert untimed(blob["history"]) == untimed(reference.history)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert untimed(lines) == untimed(reference.history)


def resume(out: Path, data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """``oicsr-lab train ... --resume`` in-process; it must succeed."""
    run_main(["train", *TRAIN_ARGS, "--data-dir", str(data_dir), "--out", str(out), "--resume"], capsys)


def run_main(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """``oicsr-lab <argv>`` in-process; it must succeed; returns its stderr."""
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.err


CASES = {
    # fault -> (epoch of the checkpoint left on disk, or None for none; metrics lines left)
    f"step:{STEPS_PER_EPOCH + 2}": (1, 1),  # mid-epoch 2
    "write:checkpoint.pt:2": (1, 1),  # mid-write of the epoch-2 checkpoint
    "write:checkpoint.pt:1": (None, 0),  # mid-write of the very first checkpoint
    "write:metrics.jsonl:2": (2, 1),  # checkpoint 2 written, its metrics log not yet
}


@pytest.mark.parametrize("fault", list(CASES))
def test_train_killed_then_resumed(fault: str, reference, data_dir: Path, tmp_path: Path, capsys) -> None:
    """SIGKILL at the fault: the complete previous files are on disk; --resume ends exactly like one go."""
    out = tmp_path / "run"
    where = kill_at(fault, ["train", *TRAIN_ARGS, "--data-dir", str(data_dir), "--out", str(out)], tmp_path)
    ckpt_epoch, n_lines = CASES[fault]
    if ckpt_epoch is None:
        assert not (out / "checkpoint.pt").exists()
    else:
        assert load_checkpoint(out / "checkpoint.pt")["epoch"] == ckpt_epoch  # complete, previous version
    metrics = out / "metrics.jsonl"
    assert len(metrics.read_text().splitlines()) == n_lines if n_lines else not metrics.exists()
    stale = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))
    if fault.startswith("write:"):
        assert len(stale) == 1 and stale[0].startswith("." + fault.split(":")[1]), (where, stale)
    resume(out, data_dir, capsys)
    assert_matches_reference(out, reference)
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) == stale  # nothing new left behind


def test_resume_of_a_finished_run_is_a_no_op(reference, data_dir: Path, tmp_path: Path, capsys) -> None:
    """Resuming a complete run trains nothing and rewrites the same result."""
    out = tmp_path / "run"
    resume(out, data_dir, capsys)  # --resume without a checkpoint starts from scratch
    before = (out / "checkpoint.pt").stat().st_mtime_ns
    resume(out, data_dir, capsys)
    assert (out / "checkpoint.pt").stat().st_mtime_ns == before
    assert_matches_reference(out, reference)


# -- the iterative pruning pipeline (``oicsr-lab prune``) ---------------------------------------------
def prune_args(source: Path, data_dir: Path, out: Path) -> list[str]:
    """Two prune steps of 10% with one retraining epoch each and one fine-tuning epoch."""
    return ["prune", "--from", str(source), "--target", "0.2", "--step", "0.1", "--retrain-epochs", "1",
            "--finetune-epochs", "1", "--threads", "1", "--no-progress", "--device", "cpu", "--data-dir", str(data_dir),
            "--out", str(out)]


def without_wall(state: dict) -> dict:
    return {k: v for k, v in state.items() if k != "wall_s"}


def test_prune_pipeline_killed_twice_then_resumed(reference, data_dir: Path, tmp_path: Path, capsys) -> None:
    """Kill ``prune`` while it records a finished stage, then mid-retraining: --resume ends exactly like one go."""
    from oicsr_lab.pruning.pipeline_state import load_pipeline

    ref, out = tmp_path / "ref", tmp_path / "killed"
    run_main(prune_args(reference.out_dir, data_dir, ref), capsys)
    kill_at("write:state.json:2", prune_args(reference.out_dir, data_dir, out), tmp_path)  # prune1 done, not recorded
    assert load_pipeline(out)["done_stages"] == ["dense"]
    assert any(p.name.startswith(".state.json.") for p in out.iterdir())  # the half-written state is left aside
    kill_at(f"step:{STEPS_PER_EPOCH + 2}", [*prune_args(reference.out_dir, data_dir, out), "--resume"], tmp_path)
    assert load_pipeline(out)["done_stages"] == ["dense", "prune1", "retrain1", "prune2"]  # killed in retrain2
    run_main([*prune_args(reference.out_dir, data_dir, out), "--resume"], capsys)
    a = torch.load(ref / "finetune" / "finetuned.pt", weights_only=True)
    b = torch.load(out / "finetune" / "finetuned.pt", weights_only=True)
    assert a["widths"] == b["widths"] and a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert without_wall(load_pipeline(out)) == without_wall(load_pipeline(ref))
    assert (out / "pipeline.csv").read_text() == (ref / "pipeline.csv").read_text()


# -- reproduce: cached runs survive, partial ones are redone ------------------------------------------
def reproduce_args(data_dir: Path, out: Path) -> list[str]:
    """A minimal ci reproduction: two regularisers, one ratio, no pipeline, no Table 1."""
    return ["reproduce", "--preset", "ci", "--regs", "l2,gl", "--epochs", "2", "--ratios", "0.3", "--pipeline-regs", "",
            "--no-table1", "--finetune-epochs", "0", "--threads", "1", "--no-progress", "--device", "cpu",
            "--data-dir", str(data_dir), "--out", str(out)]


def test_reproduce_killed_twice_then_resumed(data_dir: Path, tmp_path: Path, capsys) -> None:
    """Kill ``reproduce`` while marking its first run DONE, then mid-epoch in the second run; the rerun keeps
    finished work, redoes partial work, and writes the same results as an uninterrupted reproduction."""
    from oicsr_lab.experiments.runs import is_done
    from oicsr_lab.experiments.spec import build_spec, run_config

    ref, out = tmp_path / "ref", tmp_path / "killed"
    run_main(reproduce_args(data_dir, ref), capsys)
    kill_at("write:DONE:1", reproduce_args(data_dir, out), tmp_path)
    (l2,) = (out / "runs").glob("l2-*")
    assert (l2 / "result.json").is_file() and not is_done(l2)  # partial: result written, DONE not yet
    cfg = run_config(build_spec("ci", regs=["l2", "gl"], epochs=2), "gl", 0)
    steps = cfg.train_subset // cfg.batch_size  # optimizer steps per epoch (drop_last)
    kill_at(f"step:{steps + 3}", reproduce_args(data_dir, out), tmp_path)  # l2 finished and swept, gl in epoch 2
    (gl,) = (out / "runs").glob("gl-*")
    assert is_done(l2) and not is_done(gl) and load_checkpoint(gl / "checkpoint.pt")["epoch"] == 1
    finished = {p.name: p.read_bytes() for p in l2.iterdir()}
    run_main(reproduce_args(data_dir, out), capsys)
    summary = json.loads((out / "summary.json").read_text())
    # each task runs train then sweep: l2's training and sweep finished before the second kill, gl's had not
    assert summary["cache"] == {"hit": 2, "computed": 2} and summary["runs"]["0"]["l2"]["cached"]
    assert {p.name: p.read_bytes() for p in l2.iterdir()} == finished  # a finished run is never rewritten
    assert is_done(gl) and json.loads((gl / "result.json").read_text())["resumed"] is True, sorted(
        str(p.relative_to(out)) for p in (out / "runs").rglob("*"))
    (ref_gl,) = (ref / "runs").glob("gl-*")
    a, b = load_checkpoint(ref_gl / "checkpoint.pt"), load_checkpoint(gl / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for name in ("sweep.csv", "energies.json", "plans.json"):
        assert (out / name).read_text() == (ref / name).read_text(), name
