"""Cached, resumable experiment steps keyed by the hash of their full configuration.

A cached step lives in a folder ``<root>/<kind>/<label>-<hash>/``. It is *finished* when its
``result.json`` and then its ``DONE`` marker have been written (both atomically, ``DONE``
last); a folder without ``DONE`` is partial and is resumed or redone, and a finished folder is
never written again. Training runs also hold the Trainer's ``checkpoint.pt`` /
``metrics.jsonl`` / ``config.json`` and resume with ``Trainer.fit(resume=True)``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from ..data import DatasetSplits
from ..io import atomic_write_json, atomic_write_text
from ..locks import file_lock
from ..train import TrainConfig, build_trainer, load_trained

CACHE_VERSION = 1  # bump to invalidate every cached result after a semantic change
DONE = "DONE"
RESULT = "result.json"


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able object (sorted keys; floats by repr)."""
    blob = json.dumps({"v": CACHE_VERSION, "obj": obj}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:length]


def is_done(folder: Path) -> bool:
    """True when ``folder`` holds a finished result (``DONE`` and ``result.json``)."""
    return (folder / DONE).is_file() and (folder / RESULT).is_file()


def read_result(folder: Path) -> dict[str, Any]:
    """The ``result.json`` of a finished folder."""
    return json.loads((folder / RESULT).read_text())


def finish(folder: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``result.json`` then ``DONE`` atomically (a finished folder is never rewritten)."""
    if is_done(folder):
        return read_result(folder)
    atomic_write_json(folder / RESULT, result)
    atomic_write_text(folder / DONE, time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")
    return result


LOCK = ".lock"


def cached(folder: Path, compute: Callable[[Path], dict[str, Any]],
           log: Callable[[str], None] | None = None) -> tuple[dict[str, Any], bool]:
    """``(result, hit)``: the finished result in ``folder``, else ``compute(folder)`` recorded atomically.

    The computation holds an exclusive lock on ``folder/.lock`` (:func:`~oicsr_lab.locks.file_lock`),
    so concurrent workers or ``reproduce`` commands sharing one cache compute each step once:
    the second waits, then reads the first one's result. A killed process releases its lock and
    leaves a partial folder (no ``DONE``) that the next caller resumes.
    """
    if is_done(folder):
        return read_result(folder), True
    folder.mkdir(parents=True, exist_ok=True)
    waiting = (lambda: log(f"waiting for another process computing {folder}")) if log is not None else None
    with file_lock(folder / LOCK, on_wait=waiting):
        if is_done(folder):  # finished by the process we waited for
            return read_result(folder), True
        if log is not None and any(p.name != LOCK for p in folder.iterdir()):
            log(f"resuming partial result in {folder}")
        return finish(folder, compute(folder)), False


@dataclass
class TrainedRun:
    """A finished (cached) training run: its folder, config, result and how to get the model."""

    folder: Path
    config: TrainConfig
    result: dict[str, Any]
    hit: bool

    @property
    def key(self) -> str:
        """Folder name, ``<reg>-<hash>``."""
        return self.folder.name

    def load_model(self, device: str | torch.device = "cpu") -> nn.Module:
        """Rebuild the trained model from ``checkpoint.pt`` (in eval mode)."""
        model, _ = load_trained(self.folder / "checkpoint.pt", map_location=device)
        return model.eval()


def data_identity(data: DatasetSplits) -> dict[str, Any]:
    """What identifies a data set in run cache keys: name, split sizes and class count.

    Not its folder or source, so moving the data keeps the cache; ``reproduce`` and the
    notebooks key their runs with it and so share one run cache.
    """
    return {"name": data.name, "train": len(data.train), "test": len(data.test), "classes": data.num_classes}


def run_folder(root: Path, config: TrainConfig, data_id: dict[str, Any]) -> Path:
    """``<root>/runs/<reg>-<hash of config + data identity>/``."""
    return Path(root) / "runs" / f"{config.reg}-{config_hash({'config': config.to_dict(), 'data': data_id})}"


def train_cached(
    config: TrainConfig,
    root: Path,
    data: DatasetSplits,
    data_id: dict[str, Any],
    device: str = "auto",
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainedRun:
    """Train ``config`` under ``root/runs`` unless a finished run with the same hash is there; resume a partial one."""
    folder = run_folder(root, config, data_id)

    def compute(f: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        trainer = build_trainer(config, out_dir=f, data=data, device=device, show_progress=show_progress)
        resumed = trainer.resume()
        if log is not None:
            log(f"training {config.reg} (strength {config.strength:g}, seed {config.seed}) "
                f"{'from epoch ' + str(trainer.epoch) if resumed else 'from scratch'} -> {f}")
        history = trainer.fit(resume=False)
        last = history[-1]
        return {
            "config": config.to_dict(), "data": data_id, "reg": config.reg, "strength": config.strength,
            "reg_options": config.reg_options, "seed": config.seed, "epochs": config.epochs,
            "test_acc": last["test_acc"], "test_loss": last["test_loss"], "train_acc": last["train_acc"],
            "reg_value": last.get("reg_value"), "train_images": len(trainer.train_split),
            "test_images": len(trainer.test_split), "wall_s": time.perf_counter() - t0,
            "epoch_time_s": [r["epoch_time_s"] for r in history], "resumed": resumed,
            "precision": trainer.precision,
        }

    result, hit = cached(folder, compute)
    return TrainedRun(folder, config, result, hit)
