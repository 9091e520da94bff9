"""The latest-only background runner of the explorers: slow work off the kernel thread, only the newest delivered.

Results are handed back through ``deliver``; with a :class:`~._kernel_thread.KernelThread` the
runner posts ``on_start`` / ``deliver`` / ``on_error`` to the thread that owns the widgets (the
kernel thread), so widget values are never set from the worker.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from typing import Any, Callable

from ..errors import ConfigError
from ._kernel_thread import KernelThread

__all__ = ["LatestOnly", "SHUTDOWN_JOIN_S"]


_SHUTDOWN = threading.Event()  # set when the interpreter starts to exit: no new background work
_RUNNERS: "weakref.WeakSet[LatestOnly]" = weakref.WeakSet()
SHUTDOWN_JOIN_S = 10.0  # how long interpreter exit waits for a running evaluation chunk to finish


def _stop_all_runners() -> None:
    """At interpreter exit: stop every worker and wait for it, so no torch op races finalisation.

    A daemon thread still inside a torch op when Python finalises is killed as it retakes the
    GIL, which aborts the process ("terminate called without an active exception").
    """
    _SHUTDOWN.set()
    for runner in list(_RUNNERS):
        runner.close(timeout=SHUTDOWN_JOIN_S)


atexit.register(_stop_all_runners)


class LatestOnly:
    """Run ``compute(request, is_stale)`` off the kernel thread; only the latest request is delivered.

    Every :meth:`submit` bumps ``generation``; a job whose generation is no longer the latest is
    dropped before it starts, may stop early (``is_stale()``), and is never delivered. ``mode``:
    ``"thread"`` (a daemon worker with ``debounce_s``), ``"sync"`` (run inside ``submit``) or
    ``"manual"`` (only record; tests call :meth:`run` / :meth:`run_pending` themselves).
    :meth:`close` (also called for every runner at interpreter exit) stops and joins the worker;
    after it, or once the interpreter is exiting, no job starts.

    ``ui``: the :class:`~._kernel_thread.KernelThread` of the widgets; ``on_start``, ``deliver`` and
    ``on_error`` then run on that thread (posted from the worker; a job that became stale in between
    is dropped there), never on the worker. Without it they run on whichever thread runs the job.
    """

    def __init__(
        self,
        compute: Callable[[Any, Callable[[], bool]], Any],
        deliver: Callable[[int, Any], bool | None],
        mode: str = "thread",
        debounce_s: float = 0.25,
        on_start: Callable[[int, Any], None] | None = None,
        on_error: Callable[[int, BaseException], None] | None = None,
        ui: KernelThread | None = None,
    ) -> None:
        if mode not in ("thread", "sync", "manual"):
            raise ConfigError(f"unknown async mode {mode!r}; choose thread, sync or manual")
        self.compute, self.deliver, self.mode, self.debounce_s = compute, deliver, mode, debounce_s
        self.on_start, self.on_error, self.ui = on_start, on_error, ui
        self.generation = 0
        self.delivered: int | None = None  # generation of the last delivered result
        self._pending: tuple[int, Any] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self.idle_exit_s = 30.0
        self.closed = False
        _RUNNERS.add(self)

    @property
    def stopped(self) -> bool:
        """True after :meth:`close` or once the interpreter is exiting: no job may start."""
        return self.closed or _SHUTDOWN.is_set()

    def close(self, timeout: float | None = SHUTDOWN_JOIN_S) -> bool:
        """Cancel every job, stop the worker and join it; True when no worker is left running.

        A running evaluation stops at its next chunk (``is_stale()``); idempotent.
        """
        with self._lock:
            self.closed = True
            self.generation += 1
            self._pending = None
            thread = self._thread
            self._wake.set()
        self._idle.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            return not thread.is_alive()
        return thread is None

    def submit(self, request: Any) -> int:
        """Queue ``request`` as the newest job; returns its generation (never run once stopped)."""
        with self._lock:
            self.generation += 1
            gen = self.generation
            if self.stopped:
                return gen
            self._pending = (gen, request)
            self._idle.clear()
        if self.mode == "sync":
            self.run_pending()
        elif self.mode == "thread":
            with self._lock:
                self._ensure_thread()
                self._wake.set()
        return gen

    def cancel(self) -> None:
        """Make every queued or running job stale."""
        with self._lock:
            self.generation += 1
            self._pending = None
        self._idle.set()

    def is_latest(self, gen: int) -> bool:
        """True while ``gen`` is the newest generation and the runner is not stopped."""
        return gen == self.generation and not self.stopped

    def run(self, gen: int, request: Any) -> bool:
        """Run job ``gen`` now (synchronously); True when its result was delivered (or handed to ``ui``)."""
        if not self.is_latest(gen):
            return False
        if self.on_start is not None:
            on_start = self.on_start
            self._to_ui(lambda: on_start(gen, request) if self.is_latest(gen) else None)
        try:
            result = self.compute(request, lambda: not self.is_latest(gen))
        except Exception as exc:  # surfaced in the explorer's status line
            if self.on_error is not None and self.is_latest(gen):
                on_error, error = self.on_error, exc  # ``exc`` is unbound after the except block
                self._to_ui(lambda: on_error(gen, error) if self.is_latest(gen) else None)
            return False
        if not self.is_latest(gen) or result is None:
            return False
        if self.ui is None or self.ui.on_owner():
            return self._deliver(gen, result)
        self.ui.post(lambda: self._deliver(gen, result))
        return True

    def _to_ui(self, update: Callable[[], Any]) -> None:
        """Run ``update`` on the widgets' thread (``ui``), or here when there is none."""
        if self.ui is None:
            update()
        else:
            self.ui.post(update)

    def _deliver(self, gen: int, result: Any) -> bool:
        """Deliver ``result`` if job ``gen`` is still the newest; record it as delivered."""
        if not self.is_latest(gen):
            return False
        if self.deliver(gen, result) is False:  # the explorer found it stale under its own lock
            return False
        self.delivered = gen
        return True

    def run_pending(self) -> bool:
        """Run the newest queued job, if any."""
        with self._lock:
            item, self._pending = self._pending, None
        done = self.run(*item) if item is not None else False
        with self._lock:
            if self._pending is None:
                self._idle.set()
        return done

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until no job is queued or running (for tests and benchmarks)."""
        return self._idle.wait(timeout)

    def _ensure_thread(self) -> None:
        """Start the daemon worker unless it is running or the runner is stopped (call with the lock held)."""
        if self.stopped:
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="oicsr-widgets-worker", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        """Worker: wait for a wake-up, let the slider settle (debounce), run the newest job.

        The worker exits after ``idle_exit_s`` without requests, so a discarded explorer
        (a re-run notebook cell) is not kept alive by its thread; ``submit`` restarts it.
        It also exits as soon as the runner is stopped (:meth:`close`, interpreter exit).
        """
        while True:
            if not self._wake.wait(self.idle_exit_s):
                with self._lock:
                    if not self._wake.is_set():
                        self._thread = None
                        return
            if self.stopped:
                break
            self._wake.clear()
            time.sleep(self.debounce_s)
            if self.stopped:
                break
            if self._wake.is_set():  # moved again during the debounce: wait for it to settle
                continue
            self.run_pending()
        with self._lock:
            if self._thread is threading.current_thread():
                self._thread = None
