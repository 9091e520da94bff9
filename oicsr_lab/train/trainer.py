"""The training loop used by the CLI, the notebooks and the pruning pipeline.

SGD with momentum, a per-iteration LR schedule, optional label smoothing and an optional
regulariser hook (see ``docs/design.md``): ``penalty`` is added to the loss,
``after_backward`` may edit gradients, ``after_step`` may apply a proximal step. The trainer
knows nothing about pruning. Checkpoints are atomic and a run resumes to the same weights.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn as nn

from ..data import DatasetSplits, Split, StreamingSplit, StreamingSplits, make_loader
from ..errors import ConfigError
from ..io import atomic_write_json, atomic_write_text, check_writable_dir
from ..memory_format import channels_last_reason
from ..precision import autocast, needs_grad_scaler, resolve_precision, resolve_train_precision
from ..progress import progress
from . import distributed as dist_utils
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig


class RegularizerHook(Protocol):
    """What the trainer calls on a regulariser (all three may be no-ops)."""

    def penalty(self, model: nn.Module) -> torch.Tensor | None: ...
    def after_backward(self, model: nn.Module) -> None: ...
    def after_step(self, model: nn.Module, lr: float) -> None: ...


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; anything else is passed to torch.device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:<index>") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available; use --device cpu or auto")
    return dev


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the base LR at iteration ``t`` for each schedule."""
    total_steps = max(1, total_steps)
    if schedule == "onecycle" and warmup_steps == 0:
        warmup_steps = int(0.3 * total_steps)

    def f(t: int) -> float:
        if t < warmup_steps:
            start = 0.04 if schedule == "onecycle" else 0.0
            return start + (1 - start) * (t + 1) / warmup_steps
        if schedule in ("cosine", "onecycle"):
            p = (t - warmup_steps) / max(1, total_steps - warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
        if schedule == "step":
            return 0.01 if t >= 0.75 * total_steps else 0.1 if t >= 0.5 * total_steps else 1.0
        return 1.0

    return f


def _check_topk(topk: tuple[int, ...] | list[int] | int) -> tuple[int, ...]:
    """``topk`` as a sorted tuple of positive ints that includes 1 (top-1 is always reported as ``acc``)."""
    ks = (topk,) if isinstance(topk, int) else tuple(topk)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ConfigError(f"topk must be positive whole numbers, e.g. (1, 5); got {topk!r}")
    return tuple(sorted(set(ks) | {1}))


@torch.inference_mode()
def evaluate(model: nn.Module, data: DatasetSplits | StreamingSplits, split: Split | StreamingSplit | None = None,
             batch_size: int = 500, device: str | torch.device | None = None, channels_last: bool = False,
             topk: tuple[int, ...] = (1,), num_workers: int | None = None, loader: Any = None) -> dict[str, float]:
    """Top-1 accuracy (%) ``acc`` and mean cross-entropy ``loss`` of ``model`` on ``split`` (default: test).

    ``topk=(1, 5)`` adds ``acc5`` (top-5 accuracy, %; k above the class count counts every image).
    In-memory data is batched by a TensorLoader, streamed data by a DataLoader with ``num_workers``
    workers; ``loader`` reuses a loader made by :func:`~oicsr_lab.data.make_loader` (a sharded one
    has its counts summed over the DDP ranks).
    """
    split = data.test if split is None else split
    ks = _check_topk(topk)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    if loader is None:
        loader = make_loader(split, batch_size, data.mean, data.std, device=device, channels_last=channels_last,
                             input_size=data.input_size, num_workers=num_workers)
    correct, loss_sum = 0, 0.0
    hits = {k: 0 for k in ks if k > 1}
    seen = 0
    for x, y in loader:
        out = model(x)
        loss_sum += nn.functional.cross_entropy(out.float(), y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        if hits:
            top = out.topk(min(max(hits), out.shape[1]), dim=1).indices == y[:, None]
            for k in hits:
                hits[k] += top[:, :k].any(1).sum().item()
        seen += len(y)
    model.train(was_training)
    if getattr(loader, "sharded", False):  # each rank saw its share: sum over ranks
        stats = dist_utils.all_reduce_sum(torch.tensor([correct, loss_sum, seen, *hits.values()], dtype=torch.float64,
                                                       device=device))
        correct, loss_sum, seen = stats[0].item(), stats[1].item(), int(stats[2].item())
        hits = {k: v.item() for k, v in zip(hits, stats[3:])}
    else:
        seen = len(split)
    n = max(1, seen)
    return {"acc": 100.0 * correct / n, "loss": loss_sum / n, **{f"acc{k}": 100.0 * v / n for k, v in hits.items()}}


class Trainer:
    """Train ``model`` on ``data`` under ``config``; ``out_dir`` gets checkpoint.pt and metrics.jsonl.

    ``num_workers`` (streamed data only): DataLoader workers per process, default ``$OICSR_LAB_WORKERS``
    or min(8, CPUs - 1) shared by the local ranks. ``evaluate_test=False`` never touches the test
    split (calibration: every choice is made on the validation split; see ``val_images``).
    ``eval_precision`` (``fp32`` | ``bf16`` | ``auto``) is the arithmetic of the end-of-epoch
    evaluations only (the ``demo`` preset's short fine-tunes: bf16 inference is ~2.5x faster on a
    native-bf16 CPU); training follows ``config.precision``. ``evaluate_val=False`` skips the
    end-of-epoch validation metrics and ``evaluate_last_epoch=False`` every end-of-epoch evaluation
    of the last epoch (the pruning pipeline measures the model itself right after training).
    """

    def __init__(
        self,
        model: nn.Module,
        data: DatasetSplits | StreamingSplits,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        regularizer: RegularizerHook | None = None,
        device: str | torch.device = "auto",
        arch: dict[str, Any] | None = None,
        show_progress: bool | None = None,
        on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
        num_workers: int | None = None,
        evaluate_test: bool = True,
        eval_precision: str = "fp32",
        evaluate_val: bool = True,
        evaluate_last_epoch: bool = True,
    ) -> None:
        self.config = config.validate()
        self.evaluate_test = evaluate_test
        self.eval_precision = resolve_precision(eval_precision, resolve_device(device))
        self.evaluate_val, self.evaluate_last_epoch = evaluate_val, evaluate_last_epoch
        if config.val_images:
            if not isinstance(data, DatasetSplits):
                raise ConfigError(f"val_images={config.val_images} needs data decoded into memory; streamed data "
                                  f"keeps its own val/ folder (pass --val-images 0)")
            data = data.with_validation(config.val_images)
        self.data = data
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.rank, self.world_size = dist_utils.rank_and_world()
        if self.out_dir is not None and self.rank == 0:
            check_writable_dir(self.out_dir, "out_dir")  # before any training, not at the first checkpoint
        self.regularizer = regularizer
        self.arch = arch if arch is not None else {"model": config.model, "width": config.width,
                                                   "num_classes": data.num_classes}
        self.show_progress = show_progress
        self.on_epoch_end = on_epoch_end
        self.device = dist_utils.device_for_rank(resolve_device(device))
        self.model = model.to(self.device)
        # channels_last where its backward is safe (oicsr_lab.memory_format); the loaders follow the model
        layout_note = channels_last_reason(self.model, self.device) if config.channels_last else None
        self.channels_last = config.channels_last and layout_note is None
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if config.batch_size % self.world_size:
            raise ConfigError(f"batch size {config.batch_size} is not divisible by the {self.world_size} processes; "
                              f"pass a --batch-size that is a multiple of --nproc_per_node")
        self.precision, note = resolve_train_precision(config.precision, self.device)
        if note and self.rank == 0:
            warnings.warn(note)
        self.notes = [n for n in (note, layout_note) if n]
        self.scaler = torch.amp.GradScaler(self.device.type) if needs_grad_scaler(self.precision) else None
        self.net = dist_utils.wrap_ddp(self.model, self.device) if self.world_size > 1 else self.model
        if self.net is not self.model:
            self.model = self.net.module  # BN layers were swapped for their synchronised twins
        self.train_split = data.train.subset(config.train_subset, seed=config.seed)
        self.test_split = data.test.subset(config.test_subset, seed=config.seed) if evaluate_test else None
        self.val_split = getattr(data, "val", None)
        if len(self.train_split) < config.batch_size:
            raise ConfigError(f"the training split has {len(self.train_split)} images, fewer than one batch of "
                              f"{config.batch_size}; lower --batch-size or raise --train-subset")
        # in-memory data: a TensorLoader, evaluated by a fresh one each epoch; streamed data: DataLoaders whose
        # workers persist across epochs, the evaluation sharded over the DDP ranks and reporting top-5 too
        self.loader = make_loader(
            self.train_split, config.batch_size, data.mean, data.std, shuffle=True, augment=True, drop_last=True,
            device=self.device, seed=config.seed, rank=self.rank, world_size=self.world_size,
            channels_last=self.channels_last, input_size=data.input_size, num_workers=num_workers,
            cutout=config.cutout,
        )
        self.streaming = isinstance(self.train_split, StreamingSplit)
        self.eval_loader = None
        if self.streaming and evaluate_test:
            self.eval_loader = make_loader(
                self.test_split, config.batch_size, data.mean, data.std, device=self.device, rank=self.rank,
                world_size=self.world_size, channels_last=self.channels_last, input_size=data.input_size,
                num_workers=num_workers,
            )
        decay, no_decay = [], []
        for p in self.model.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        self.optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0,
        )
        steps = len(self.loader) * config.epochs
        warm = int(config.warmup_epochs * len(self.loader))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(config.schedule, steps, warm))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.out_dir / "checkpoint.pt" if self.out_dir else None

    def state(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly."""
        return {
            "config": self.config.to_dict(), "arch": self.arch, "epoch": self.epoch, "precision": self.precision,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "history": self.history,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    def load_state(self, blob: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`state`."""
        self.model.load_state_dict(blob["model"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.scheduler.load_state_dict(blob["scheduler"])
        if self.scaler is not None and blob.get("scaler"):
            self.scaler.load_state_dict(blob["scaler"])
        self.epoch, self.history = int(blob["epoch"]), list(blob["history"])
        torch.set_rng_state(blob["rng"]["torch"].cpu())  # RNG states must be CPU byte tensors
        py = random.getstate()
        random.setstate((py[0], tuple(blob["rng"]["python"]), py[2]))
        if blob["rng"].get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([t.cpu() for t in blob["rng"]["cuda"]])

    def resume(self) -> bool:
        """Load ``out_dir/checkpoint.pt`` if present; True when a run was resumed."""
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return False
        blob = load_checkpoint(self.checkpoint_path, arch=self.arch, map_location=self.device)
        saved, now = blob.get("config") or {}, self.config.to_dict()
        changed = [f"{k} ({saved[k]!r} -> {now[k]!r})" for k in now if k in saved and saved[k] != now[k]
                   and k != "epochs"]
        if changed:  # lr/momentum/weight decay come back from the optimizer state; the rest follows the new config
            warnings.warn(f"resuming {self.checkpoint_path} with settings that differ from the checkpoint's: "
                          f"{', '.join(changed)}; the run will not match an uninterrupted one")
        if blob.get("precision") and blob["precision"] != self.precision:
            warnings.warn(f"resuming {self.checkpoint_path}, trained in {blob['precision']}, in {self.precision} "
                          f"(precision={self.config.precision!r} resolves differently here); the run will not "
                          f"match an uninterrupted one")
        self.load_state(blob)
        return True

    def _write_outputs(self) -> None:
        """Checkpoint, metrics log and config, each atomically (rank 0 only)."""
        if self.out_dir is None or self.rank != 0:
            return
        save_checkpoint(self.checkpoint_path, self.state())
        atomic_write_text(self.out_dir / "metrics.jsonl", "".join(_json_line(r) for r in self.history))
        atomic_write_json(self.out_dir / "config.json", {"config": self.config.to_dict(), "arch": self.arch})

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train until ``config.epochs``; with ``resume`` continue from the checkpoint. Returns the history."""
        if resume:
            self.resume()
        if self.epoch == 0 and not self.history:
            torch.manual_seed(self.config.seed + 1)  # dropout etc.; init was seeded by the caller
        bar = progress(total=self.config.epochs, initial=self.epoch, desc="epochs", unit="ep",
                       enabled=self.show_progress if self.rank == 0 else False)
        while self.epoch < self.config.epochs:
            record = self.train_one_epoch()
            if self.evaluate_last_epoch or self.epoch < self.config.epochs:
                with autocast(self.eval_precision, self.device):
                    record.update(self._evaluate_epoch())
            self.history.append(record)
            self._write_outputs()
            if self.on_epoch_end is not None:
                self.on_epoch_end(record)
            bar.update(1)
            shown = record.get("test_acc", record.get("val_acc"))
            bar.set_postfix(loss=f"{record['train_loss']:.3f}",
                            **({"acc": f"{shown:.1f}"} if shown is not None else {}))
        bar.close()
        return self.history

    def _evaluate_epoch(self) -> dict[str, float]:
        """The end-of-epoch test (unless ``evaluate_test`` is off) and validation metrics."""
        record: dict[str, float] = {}
        if self.evaluate_test and self.streaming:
            metrics = evaluate(self.model, self.data, self.test_split, topk=(1, 5), loader=self.eval_loader)
            record.update({f"test_{k}": v for k, v in metrics.items()})
        elif self.evaluate_test:
            record.update({f"test_{k}": v for k, v in evaluate(self.model, self.data, self.test_split).items()})
        if self.val_split is not None and self.evaluate_val:
            record.update({f"val_{k}": v for k, v in evaluate(self.model, self.data, self.val_split).items()})
        return record

    def train_one_epoch(self) -> dict[str, Any]:
        """One pass over the training split; returns the epoch's metrics."""
        self.net.train()
        self.loader.set_epoch(self.epoch)
        reg = self.regularizer
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen, data_time = 0, 0.0
        t0 = time.perf_counter()
        it = iter(self.loader)
        bar = progress(total=len(self.loader), desc=f"epoch {self.epoch + 1}", unit="batch",
                       enabled=self.show_progress if self.rank == 0 else False)
        while True:
            td = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                break
            data_time += time.perf_counter() - td
            with autocast(self.precision, self.device):  # the forward pass only; weights stay fp32
                out = self.net(x)
            loss = self.criterion(out.float(), y)
            total = loss
            if reg is not None:
                pen = reg.penalty(self.model)  # fp32, outside autocast
                if pen is not None:
                    total = loss + pen
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(total).backward()
                self.scaler.unscale_(self.optimizer)  # the regulariser sees true gradients
            else:
                total.backward()
            if reg is not None:
                reg.after_backward(self.model)
            stepped = True
            if self.scaler is not None:
                scale = self.scaler.get_scale()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                stepped = self.scaler.get_scale() >= scale  # a lowered scale: inf gradients, the step was skipped
            else:
                self.optimizer.step()
            if reg is not None and stepped:
                reg.after_step(self.model, self.optimizer.param_groups[0]["lr"])
            self.scheduler.step()
            loss_sum += loss.detach() * len(y)
            correct += (out.detach().argmax(1) == y).sum()
            seen += len(y)
            bar.update(1)
        bar.close()
        elapsed = time.perf_counter() - t0
        stats = dist_utils.all_reduce_sum(torch.stack([loss_sum.float(), correct.float(),
                                                       torch.tensor(float(seen), device=self.device)]))
        self.epoch += 1
        record = {
            "epoch": self.epoch, "train_loss": (stats[0] / stats[2]).item(),
            "train_acc": 100 * (stats[1] / stats[2]).item(),
            "lr": self.optimizer.param_groups[0]["lr"], "epoch_time_s": elapsed,
            "img_per_s": stats[2].item() / max(elapsed, 1e-9), "data_time_share": data_time / max(elapsed, 1e-9),
            "precision": self.precision,
        }
        if reg is not None and hasattr(reg, "value"):
            record["reg_value"] = float(reg.value(self.model))
        return record


def _json_line(record: dict[str, Any]) -> str:
    import json

    return json.dumps(record, default=float) + "\n"
