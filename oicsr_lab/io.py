"""Atomic file writes: a reader never sees a half-written checkpoint, log or result."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import OutputError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync and rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        check_writable_dir(path.parent, "folder")  # names what is in the way
        raise OutputError(f"cannot write {path}: {e.strerror or e}; choose a writable folder") from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Raise OutputError naming ``path`` unless it is, or can be created as, a writable folder; creates nothing."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe.parent != probe:  # nearest existing ancestor
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == path else f"cannot be created: {probe} is a file"
        raise OutputError(f"{what} {path} {where}, not a folder; choose another folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".oicsr-write-test.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"{what} {path} is not writable ({e.strerror or e}); choose another folder") from None
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (temp file + fsync + rename)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line to ``path`` (flushed and fsynced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())
