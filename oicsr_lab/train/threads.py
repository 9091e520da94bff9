"""How many CPU threads a run uses: a fixed count, ``OICSR_LAB_THREADS``, or the cores that are idle.

Example:
    >>> from oicsr_lab.train.threads import auto_threads
    >>> n = auto_threads()
    >>> n is None or n >= 1
    True
"""

from __future__ import annotations

import os

import torch


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads (None: leave torch's default; ``OICSR_LAB_THREADS`` also works)."""
    threads = threads or (int(os.environ["OICSR_LAB_THREADS"]) if os.environ.get("OICSR_LAB_THREADS") else None)
    if threads:
        torch.set_num_threads(int(threads))


def auto_threads() -> int | None:
    """Idle CPU cores by the 1-minute load average (at least 1); None where unknown or OICSR_LAB_THREADS is set.

    On a shared 2-core machine, 2 threads next to a busy process run ~15x *slower* than 1
    (OpenMP threads wait for each other), so ``reproduce`` only uses the cores that are idle.
    """
    if os.environ.get("OICSR_LAB_THREADS") or not hasattr(os, "getloadavg"):
        return None
    cores = os.cpu_count() or 1
    return max(1, min(cores, int(cores - os.getloadavg()[0] + 0.5)))
