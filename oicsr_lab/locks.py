"""Locks: inter-process locks for the shared run cache (two workers never compute the same step at once),
and ``FX_LOCK``, the in-process lock around torch.fx tracing.

An exclusive advisory lock on a file (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows).
The operating system releases it when its process exits, however it exits (a SIGKILL included),
so a killed worker never leaves a stale lock behind: the next process that asks gets it and
resumes the partial work.

Example:
    >>> import tempfile, pathlib
    >>> from oicsr_lab.locks import file_lock
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "step.lock"
    >>> with file_lock(path):
    ...     pass  # only one process at a time runs this block for this path
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


# torch.fx tracing patches nn.Module.__call__ for the whole process while it runs, so a network run on another
# thread at that moment fails ("module is not installed as a submodule"). Tracing (find_groups, BN folding) and the
# explorer's background forward passes hold this lock, so a notebook cell and the explorer's worker never overlap.
FX_LOCK = threading.RLock()


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:  # pragma: no cover - Windows
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


@contextmanager
def file_lock(path: str | os.PathLike, on_wait: Callable[[], None] | None = None,
              poll_s: float = 0.5) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block.

    Blocks until the lock is free; ``on_wait`` is called once if it has to wait (e.g. to log
    "waiting for another worker").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        waited = False
        while not _try_lock(fd):
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            time.sleep(poll_s)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)
