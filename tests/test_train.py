"""Trainer: exact resume, atomic and validated checkpoints, LR schedules, the regulariser hook, DDP on CPU."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import oicsr_lab.io as io_mod
from oicsr_lab.errors import CheckpointError, ConfigError
from oicsr_lab.models import build_model
from oicsr_lab.train import (
    TrainConfig,
    Trainer,
    build_trainer,
    load_checkpoint,
    lr_lambda,
    preset,
    resolve_device,
    save_checkpoint,
)
from oicsr_lab.train.distributed import convert_cpu_sync_batchnorm

TIMING_KEYS = {"epoch_time_s", "img_per_s", "data_time_share"}


def tiny(**overrides) -> TrainConfig:
    """The ci preset shrunk further: ResNet-20 at width 0.25, 4 steps of 64 images per epoch."""
    base = dict(epochs=3, train_subset=256, test_subset=100, batch_size=64)
    return preset("ci", **{**base, **overrides})


def trainer_for(cfg: TrainConfig, data, out: Path | None = None, **kw) -> Trainer:
    """A CPU trainer without progress bars."""
    return build_trainer(cfg, out_dir=out, data=data, device="cpu", show_progress=False, **kw)


def untimed(history: list[dict]) -> list[dict]:
    """History without wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in history]


def assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    """Two state dicts hold the same tensors (exactly, or within ``atol``)."""
    assert a.keys() == b.keys()
    for k in a:
        if atol == 0 or not a[k].is_floating_point():
            assert torch.equal(a[k], b[k]), k
        else:
            assert torch.allclose(a[k], b[k], atol=atol, rtol=0), (k, (a[k] - b[k]).abs().max().item())


class Interrupted(Exception):
    """Stands in for a kill between epochs."""


@pytest.fixture(scope="module")
def full_run(sample_data, tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    """An uninterrupted 3-epoch tiny run, with its output folder."""
    trainer = trainer_for(tiny(), sample_data, tmp_path_factory.mktemp("full"))
    trainer.fit()
    return trainer


# -- resume and checkpoints ------------------------------------------------------------------
def test_resume_gives_identical_weights_and_metrics(full_run: Trainer, sample_data, tmp_path: Path) -> None:
    """Stop after epoch 1, resume in a fresh Trainer to epoch 3: same weights and metrics as one go."""

    def stop_after_first(record: dict) -> None:
        if record["epoch"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        trainer_for(tiny(), sample_data, tmp_path, on_epoch_end=stop_after_first).fit()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    resumed = trainer_for(tiny(), sample_data, tmp_path)
    history = resumed.fit(resume=True)
    assert_same_weights(resumed.model.state_dict(), full_run.model.state_dict())
    assert untimed(history) == untimed(full_run.history)
    assert resumed.optimizer.param_groups[0]["lr"] == full_run.optimizer.param_groups[0]["lr"]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    again = trainer_for(tiny(), sample_data, tmp_path)  # resuming a finished run trains nothing
    assert untimed(again.fit(resume=True)) == untimed(history)
    assert_same_weights(again.model.state_dict(), resumed.model.state_dict())
    with pytest.warns(UserWarning, match=r"lr \(0.05 -> 0.01\)"):  # changed settings are pointed out
        trainer_for(tiny(lr=0.01), sample_data, tmp_path).resume()


def test_outputs_are_atomic_and_weights_only(full_run: Trainer) -> None:
    """The run folder holds exactly the three outputs (no temp files); the checkpoint loads with weights_only."""
    out = full_run.out_dir
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl"]
    blob = torch.load(out / "checkpoint.pt", weights_only=True)
    assert blob["format"] == "oicsr-lab-checkpoint" and blob["epoch"] == 3
    assert blob["arch"] == {"model": "resnet20", "width": 0.25, "num_classes": 10}
    assert_same_weights(blob["model"], full_run.model.state_dict())
    cfg = json.loads((out / "config.json").read_text())
    assert TrainConfig.from_dict(cfg["config"]) == full_run.config


def test_failed_save_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash in the middle of writing leaves the old checkpoint intact and no temp file."""
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"arch": {"model": "m"}, "epoch": 1, "model": {"w": torch.ones(3)}})
    real_save = torch.save

    def crash(obj, f, *args, **kwargs):
        real_save({"half": torch.zeros(1000)}, f)
        raise OSError("disk full (test)")

    monkeypatch.setattr(io_mod.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"arch": {"model": "m"}, "epoch": 2, "model": {"w": torch.zeros(3)}})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_checkpoint_of_another_architecture(full_run: Trainer, sample_data) -> None:
    """Another model, width or class count: CheckpointError naming both, before any weight is touched."""
    path = full_run.checkpoint_path
    for arch in ({"model": "resnet32", "width": 0.25, "num_classes": 10},
                 {"model": "resnet20", "width": 0.25, "num_classes": 100}):
        with pytest.raises(CheckpointError) as ei:
            load_checkpoint(path, arch=arch)
        msg = str(ei.value)
        assert "\n" not in msg and str(path) in msg and "--out" in msg
    wider = trainer_for(tiny(width=0.5), sample_data, full_run.out_dir)
    with pytest.raises(CheckpointError, match="width=0.25"):
        wider.fit(resume=True)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign", "missing"])
def test_bad_checkpoint_files(full_run: Trainer, tmp_path: Path, damage: str) -> None:
    """Truncated, garbage, someone else's torch file, or no file: a one-line CheckpointError."""
    path = tmp_path / "checkpoint.pt"
    data = full_run.checkpoint_path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    elif damage == "foreign":
        torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(path)
    assert "\n" not in str(ei.value) and str(path) in str(ei.value)


# -- schedules --------------------------------------------------------------------------------
def test_lr_schedule_shapes() -> None:
    """cosine decays 1 -> 0 through 1/2; warmup rises linearly; step drops 10x at 50% and 75%; onecycle warms 30%."""
    cos = [lr_lambda("cosine", 100, 0)(t) for t in range(100)]
    assert cos[0] == 1.0 and abs(cos[50] - 0.5) < 1e-9 and cos[-1] < 1e-3
    assert all(a >= b for a, b in zip(cos, cos[1:]))
    warm = [lr_lambda("cosine", 100, 10)(t) for t in range(100)]
    assert warm[:10] == pytest.approx([(t + 1) / 10 for t in range(10)]) and warm[10] == 1.0
    assert all(a >= b for a, b in zip(warm[10:], warm[11:]))
    step = [lr_lambda("step", 100, 0)(t) for t in range(100)]
    assert set(step[:50]) == {1.0} and set(step[50:75]) == {0.1} and set(step[75:]) == {0.01}
    one = [lr_lambda("onecycle", 100, 0)(t) for t in range(100)]
    assert one[29] == pytest.approx(1.0) and one[30] == 1.0 and 0.04 < one[0] < 0.1 and one[-1] < 1e-3
    assert all(a < b for a, b in zip(one[:29], one[1:30])) and all(a >= b for a, b in zip(one[30:], one[31:]))
    assert lr_lambda("onecycle", 100, 20)(19) == pytest.approx(1.0)
    assert {lr_lambda("constant", 10, 0)(t) for t in range(10)} == {1.0}


# -- the regulariser hook ---------------------------------------------------------------------
class RecordingHook:
    """A fake regulariser that logs every call, and a penalty whose gradient proves it reached backward."""

    name = "recording"

    def __init__(self, trainer_ref: list) -> None:
        self.calls: list[str] = []
        self.lrs: list[float] = []
        self.marker = torch.zeros((), requires_grad=True)
        self.trainer_ref = trainer_ref

    def penalty(self, model):
        self.calls.append("penalty")
        assert model.training and model is self.trainer_ref[0].model
        return self.marker * 1.0

    def after_backward(self, model) -> None:
        self.calls.append("after_backward")
        steps = self.calls.count("after_backward")
        assert self.marker.grad is not None and self.marker.grad.item() == steps  # penalty was in the loss
        assert all(p.grad is not None for p in model.parameters())

    def after_step(self, model, lr: float) -> None:
        self.calls.append("after_step")
        self.lrs.append(lr)

    def value(self, model) -> float:
        return 1.5


@pytest.mark.filterwarnings("ignore:Seems like:UserWarning")  # we wrap optimizer.step to log it
def test_regularizer_hook_order_and_lr(sample_data) -> None:
    """Per step: penalty -> after_backward -> optimizer.step -> after_step, with the LR of that step."""
    cfg = tiny(epochs=2, schedule="onecycle", warmup_epochs=1.0)
    ref: list = []
    hook = RecordingHook(ref)
    trainer = Trainer(trainer_for(cfg, sample_data).model, sample_data, cfg, regularizer=hook, device="cpu",
                      show_progress=False)
    ref.append(trainer)
    step = trainer.optimizer.step

    def logged_step(*args, **kwargs):
        hook.calls.append("step")
        return step(*args, **kwargs)

    trainer.optimizer.step = logged_step
    history = trainer.fit()
    steps = 2 * len(trainer.loader)
    assert hook.calls == ["penalty", "after_backward", "step", "after_step"] * steps
    f = lr_lambda("onecycle", steps, len(trainer.loader))
    assert hook.lrs == pytest.approx([cfg.lr * f(t) for t in range(steps)])
    assert [r["reg_value"] for r in history] == [1.5, 1.5]


# -- configuration errors ---------------------------------------------------------------------
def test_config_errors(sample_data) -> None:
    """Bad values are one-line ConfigErrors that say what to pass instead."""
    for bad in (dict(strength=-1.0), dict(lr=float("nan")), dict(reg="l3"), dict(schedule="linear"), dict(epochs=0)):
        with pytest.raises(ConfigError):
            tiny(**bad)
    with pytest.raises(ConfigError, match="choose one of ci"):
        preset("huge")
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"modle": "resnet20"})
    with pytest.raises(ConfigError, match="unknown model"):
        trainer_for(tiny(model="resnet21"), sample_data)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        trainer_for(tiny(train_subset=32), sample_data)
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu:7")


# -- DDP --------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one(sample_data, data_dir: Path, tmp_path: Path) -> None:
    """torchrun, 2 gloo CPU processes x 32 images == 1 process x 64 images: same weights (BN synchronised).

    Tight against a 1-process run with the same BN arithmetic (the CPU twins without a process
    group); looser against the plain run, as PyTorch's fused CPU BatchNorm is itself ~1e-4 off in
    float32 and training steps amplify differences. Unsynchronised (per-rank) BN is ~4e-2 off.
    """
    args = ["--preset", "ci", "--epochs", "2", "--train-subset", "128", "--test-subset", "100", "--batch-size", "64",
            "--lr", "0.001", "--device", "cpu", "--threads", "1", "--no-progress", "--data-dir", str(data_dir),
            "--precision", "fp32"]  # an arithmetic comparison: bf16 rounding would swamp the 1e-4 tolerance
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "oicsr_lab", "train", *args, "--out", str(tmp_path / "ddp")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "OICSR_LAB_PROGRESS": "0"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("final test accuracy") == 1  # only rank 0 reports
    cfg = tiny(epochs=2, train_subset=128, lr=0.001, precision="fp32")
    plain = trainer_for(cfg, sample_data)
    twins = Trainer(convert_cpu_sync_batchnorm(trainer_for(cfg, sample_data).model), sample_data, cfg,
                    device="cpu", show_progress=False)
    blob = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt", arch=plain.arch)
    for single, atol in ((twins, 1e-4), (plain, 1e-3)):
        single.fit()
        assert_same_weights(blob["model"], single.model.state_dict(), atol=atol)
        for a, b in zip(blob["history"], single.history, strict=True):
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
            assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1.0)


def test_cpu_batchnorm_twin_gradients(sample_data) -> None:
    """The CPU twin's two-pass BN gives float64-accurate gradients and the same output as nn.BatchNorm2d."""
    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=10, width=0.25)
    twin = convert_cpu_sync_batchnorm(copy.deepcopy(model))
    assert all(type(m).__name__ != "BatchNorm2d" for m in twin.modules())
    assert all(isinstance(m, torch.nn.BatchNorm2d) for m in twin.modules() if "BatchNorm" in type(m).__name__)
    x = (sample_data.train.images[:64].float() / 255 - 0.5) / 0.25
    y = sample_data.train.labels[:64]

    def grads(m: torch.nn.Module, inp: torch.Tensor) -> dict[str, torch.Tensor]:
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(inp), y).backward()
        return {n: p.grad.double() for n, p in m.named_parameters()}

    with torch.no_grad():  # eval mode: exactly plain BN with the running statistics
        assert torch.equal(twin.eval()(x), model.eval()(x))
    twin.train(), model.train()
    exact = copy.deepcopy(model).double()
    g_twin, g_exact = grads(twin, x), grads(exact, x.double())
    for n, g in g_exact.items():
        assert (g_twin[n] - g).abs().max() <= 1e-3 * g.abs().max(), n
    for (n, a), b in zip(twin.state_dict().items(), exact.state_dict().values()):  # running stats after one step
        assert torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-6), n
