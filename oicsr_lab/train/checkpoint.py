"""Training checkpoints: written atomically, validated when read."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..io import atomic_torch_save
from ..models import build_checked

FORMAT = "oicsr-lab-checkpoint"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write a training checkpoint atomically (temp file + fsync + rename)."""
    atomic_torch_save({"format": FORMAT, "version": 1, **state}, path)


def load_checkpoint(path: str | Path, arch: dict[str, Any] | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; check it is ours and matches ``arch``.

    Raises CheckpointError for a missing, truncated or foreign file, or an architecture
    mismatch (other model, width or class count).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there; check the path or start without --resume")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({str(e).splitlines()[0][:120]}); "
                              "delete it and rerun") from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an oicsr-lab training checkpoint")
    if arch is not None and blob.get("arch") != arch:
        raise CheckpointError(
            f"{path}: checkpoint is for {_fmt(blob.get('arch'))}, but this run builds {_fmt(arch)}; "
            f"use a matching --model/--width/dataset or another --out folder"
        )
    return blob


def _fmt(arch: Any) -> str:
    """Short text of an architecture description."""
    if not isinstance(arch, dict):
        return repr(arch)
    return ", ".join(f"{k}={v}" for k, v in sorted(arch.items()) if k != "widths") or "?"


def load_trained(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """``(model, checkpoint)``: the trained model of a training run folder or its checkpoint.pt, weights loaded.

    Raises CheckpointError (one line) for a missing, unreadable or foreign file, or weights that
    do not fit the recorded architecture (e.g. a pruned model saved as a training checkpoint);
    ConfigError when the recorded model cannot be built.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there; pass a training run folder or its checkpoint.pt")
    blob = load_checkpoint(path, map_location=map_location)
    arch = blob["arch"]
    model = build_checked(arch["model"], num_classes=arch["num_classes"], width=arch["width"])
    try:
        model.load_state_dict(blob["model"])
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        detail = lines[1] if len(lines) > 1 else lines[0]  # torch's first line is only "Error(s) in loading ..."
        raise CheckpointError(f"{path}: weights do not fit {arch['model']} ({detail[:120]}); "
                              "not a plain training checkpoint (pass a pruned model as its "
                              "save_pruned .pt file)") from None
    return model.to(map_location), blob


def check_num_classes(path: str | Path, checkpoint: dict[str, Any], data: Any) -> None:
    """Raise CheckpointError when ``data`` (a DatasetSplits) has another class count than the checkpoint's model."""
    n = checkpoint["arch"].get("num_classes")
    if n != data.num_classes:
        raise CheckpointError(f"{path}: checkpoint has {n} classes but {data.name} has {data.num_classes}; "
                              f"evaluate on the data set it was trained on")
