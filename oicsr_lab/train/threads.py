"""How many CPU threads a run uses: a fixed count, ``OICSR_LAB_THREADS``, or the cores that are idle.

Example:
    >>> from oicsr_lab.train.threads import auto_threads
    >>> n = auto_threads()
    >>> n is None or n >= 1
    True
"""

from __future__ import annotations

import os
import time

import torch


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads (None: leave torch's default; ``OICSR_LAB_THREADS`` also works)."""
    threads = threads or (int(os.environ["OICSR_LAB_THREADS"]) if os.environ.get("OICSR_LAB_THREADS") else None)
    if threads:
        torch.set_num_threads(int(threads))


def _cpu_times() -> list[int]:
    """The machine's aggregate CPU time counters (``/proc/stat``'s ``cpu`` line); OSError where absent."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = f.readline().split()
    if not fields or fields[0] != "cpu":
        raise OSError("/proc/stat has no aggregate cpu line")
    return [int(v) for v in fields[1:]]


def busy_cores(interval: float = 0.5) -> float | None:
    """Cores busy with other work right now, sampled from ``/proc/stat`` over ``interval`` s; None where unknown.

    The 1-minute load average lags by about a minute: right after ``pip install`` or a finished
    job it still reports busy cores on an idle machine. This sample does not (this process sleeps
    while it is taken).
    """
    try:
        a = _cpu_times()
        time.sleep(interval)
        b = _cpu_times()
    except (OSError, ValueError):
        return None
    idle = lambda t: t[3] + (t[4] if len(t) > 4 else 0)  # noqa: E731  (idle + iowait)
    total = sum(b) - sum(a)
    if total <= 0:
        return None
    return (1.0 - (idle(b) - idle(a)) / total) * (os.cpu_count() or 1)


def auto_threads() -> int | None:
    """Idle CPU cores (at least 1); None where unknown or OICSR_LAB_THREADS is set.

    Idle is measured now from ``/proc/stat`` (:func:`busy_cores`), else by the 1-minute load
    average. On a shared 2-core machine, 2 threads next to a busy process run ~15x *slower* than 1
    (OpenMP threads wait for each other), so ``reproduce`` only uses the cores that are idle.
    """
    if os.environ.get("OICSR_LAB_THREADS"):
        return None
    busy = busy_cores()
    if busy is None:
        if not hasattr(os, "getloadavg"):
            return None
        busy = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    return max(1, min(cores, int(cores - busy + 0.5)))
