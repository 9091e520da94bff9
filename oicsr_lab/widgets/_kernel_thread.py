"""Hand UI updates from a worker thread to the kernel thread, the only thread that sets widget values.

ipywidgets are not thread-safe: a value set from a worker thread races the kernel's own message
handling (slider moves arrive there) and its comm writes. A :class:`KernelThread` is created by an
explorer; its owner is the kernel's main thread (which runs the kernel's IO loop) in Jupyter and
Voila, else the thread that builds it. A worker calls :meth:`KernelThread.post` with a callable; it runs

* at once, when posted from the owner thread itself (synchronous modes, tests);
* on the kernel's IO loop (``ipykernel``'s tornado ``IOLoop.add_callback``, which is thread-safe),
  when a kernel is running: the update is applied between the kernel's messages;
* otherwise (a plain Python process) it waits in a queue until the owner thread calls
  :meth:`drain` (the explorers' ``wait()`` does): polling.

Posted callables run in the order they were posted.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

__all__ = ["KernelThread", "kernel_io_loop"]

log = logging.getLogger(__name__)


def kernel_io_loop() -> Any:
    """The IO loop of the running IPython kernel (tornado ``IOLoop``), or None outside a kernel."""
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:  # pragma: no cover - ipykernel ships with the widget extra
        return None
    if not Kernel.initialized():
        return None
    return getattr(Kernel.instance(), "io_loop", None)


class KernelThread:
    """Runs posted UI updates on the thread that created it (see the module docstring)."""

    def __init__(self, io_loop: Any = "auto") -> None:
        self.io_loop = kernel_io_loop() if io_loop == "auto" else io_loop
        # in a kernel the owner is its main thread, which runs the IO loop (also when the explorer is
        # built from another thread, e.g. an ipykernel subshell); elsewhere the thread that builds it
        self.owner = threading.main_thread().ident if self.io_loop is not None else threading.get_ident()
        self._lock = threading.Lock()
        self._queue: list[Callable[[], None]] = []
        self._scheduled = False

    def on_owner(self) -> bool:
        """True when called from the owner (kernel) thread."""
        return threading.get_ident() == self.owner

    def post(self, update: Callable[[], None]) -> None:
        """Run ``update`` on the owner thread: now if this is it, else on the kernel loop or at the next drain."""
        if self.on_owner():
            self.drain()  # keep the order: anything posted earlier first
            self._run(update)
            return
        with self._lock:
            self._queue.append(update)
            schedule = self.io_loop is not None and not self._scheduled
            self._scheduled = self._scheduled or schedule
        if schedule:
            self.io_loop.add_callback(self.drain)

    def drain(self) -> int:
        """Run every queued update (owner thread only); returns how many ran."""
        if not self.on_owner():
            raise RuntimeError("KernelThread.drain() must run on the thread that owns the widgets")
        with self._lock:
            todo, self._queue, self._scheduled = self._queue, [], False
        for update in todo:
            self._run(update)
        return len(todo)

    @property
    def pending(self) -> int:
        """Number of updates waiting for the owner thread."""
        with self._lock:
            return len(self._queue)

    @staticmethod
    def _run(update: Callable[[], None]) -> None:
        """Run one update; a failing update is logged and does not stop the ones after it."""
        try:
            update()
        except Exception:  # an update that fails must not block the others
            log.exception("widget update failed")
