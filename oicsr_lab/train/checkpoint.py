"""Training checkpoints: written atomically, validated when read."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..io import atomic_torch_save

FORMAT = "oicsr-lab-checkpoint"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write a training checkpoint atomically (temp file + fsync + rename)."""
    atomic_torch_save({"format": FORMAT, "version": 1, **state}, path)


def load_checkpoint(path: str | Path, arch: dict[str, Any] | None = None, map_location: str | torch.device = "cpu") -> dict[str, Any]:
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
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({str(e).splitlines()[0][:120]}); delete it and rerun") from e
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
