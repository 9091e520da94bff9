"""Shared pieces of the live explorers: display delegation, styles, caches, latest-only async runner.

The widgets hold no math of their own: groups come from :func:`oicsr_lab.groups.find_groups`,
energies from :func:`oicsr_lab.importance.channel_energy`, FLOPs from :mod:`oicsr_lab.flops`
and plans from :func:`oicsr_lab.pruning.global_greedy_plan`; this module only caches them.
"""

from __future__ import annotations

import atexit
import html
import threading
import time
import weakref
from typing import Any, Callable, Mapping

import plotly.graph_objects as go
import torch.nn as nn

from ..errors import ConfigError, PlanError
from ..flops import FlopsReport, channel_flops, count_flops
from ..groups import find_groups
from ..groups.types import ChannelGroup, GroupSet
from ..importance import ChannelScores, channel_energy
from ..pruning import Plan, global_greedy_plan
from ._figure import refit as refit_figure

PRUNED_COLOR = "#9E9E9E"  # markers of channels that go
DENSE_COLOR = "#D9D9D9"  # the dense (unpruned) reference
_FALLBACK = ["#000000", "#56B4E9", "#E69F00", "#D55E00", "#009E73", "#CC79A7", "#0072B2"]


def reg_color(reg: str) -> str:
    """The shared colour of regulariser ``reg`` (``oicsr_lab.plots.style`` when available)."""
    try:
        from ..plots.style import reg_style

        return reg_style(reg).color
    except Exception:  # plots not importable: a stable fallback
        return _FALLBACK[sum(map(ord, str(reg))) % len(_FALLBACK)]


def reg_label(reg: str) -> str:
    """The shared legend label of regulariser ``reg`` (``oicsr_gl`` -> ``OICSR-GL``)."""
    try:
        from ..plots.style import reg_label as _label

        return _label(reg)
    except Exception:
        return str(reg)


def order_regs(regs: list[str]) -> list[str]:
    """Regularisers in the canonical plot order (falls back to the given order)."""
    try:
        from ..plots.style import order_regs as _order

        return _order(regs)
    except Exception:
        return list(dict.fromkeys(regs))


class DisplayMixin:
    """Jupyter/Voila display of an explorer: everything delegates to ``self.widget``."""

    widget: Any

    def _ipython_display_(self) -> None:
        """Display the explorer's widget container."""
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget's mime bundle (for front ends that ask for it directly)."""
        return self.widget._repr_mimebundle_(**kwargs)

    def refit(self) -> None:
        """Fit every figure of the explorer to its box again: call it when a hidden tab or panel holding it is shown."""
        for value in vars(self).values():
            if isinstance(value, go.FigureWidget):
                refit_figure(value)

    def close(self) -> None:
        """Close the explorer's widgets (every control and figure in ``self.widget``); idempotent."""
        close_widgets(getattr(self, "widget", None))


def close_widgets(root: Any) -> None:
    """Close ``root`` and every widget under it (``Box.close`` alone leaves its children open)."""
    stack, seen = [root], set()
    while stack:
        w = stack.pop()
        if w is None or id(w) in seen:
            continue
        seen.add(id(w))
        stack.extend(getattr(w, "children", ()) or ())
        close = getattr(w, "close", None)
        if callable(close):
            close()


def group_label(g: ChannelGroup) -> str:
    """Readable name of a layer pair, e.g. ``layer1.0.conv1 -> layer1.0.conv2 (16 ch)``."""
    outs = [s.module for s in g.slices if s.kind in ("out", "dw")]
    ins = [s.module for s in g.in_slices]
    left = outs[0] if len(outs) == 1 else f"{outs[0]} +{len(outs) - 1}" if outs else g.name
    right = ins[0] if len(ins) == 1 else f"{ins[0]} +{len(ins) - 1}" if ins else "-"
    return f"{left} → {right} ({g.size} ch)"


def esc(text: Any) -> str:
    """HTML-escaped text."""
    return html.escape(str(text))


def check_models(models: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
    """Validate ``{regulariser: model}``: non-empty, same architecture (parameter shapes)."""
    if not isinstance(models, Mapping) or not models:
        raise ConfigError("models must be a non-empty dict {regulariser name: trained model}")
    models = {str(k): v for k, v in models.items()}
    first_name, first = next(iter(models.items()))
    shapes = {k: tuple(v.shape) for k, v in first.state_dict().items()}
    for name, m in models.items():
        if not isinstance(m, nn.Module):
            raise ConfigError(f"models[{name!r}] is a {type(m).__name__}, not a torch.nn.Module")
        other = {k: tuple(v.shape) for k, v in m.state_dict().items()}
        if other != shapes:
            raise ConfigError(
                f"models[{name!r}] has a different architecture from models[{first_name!r}]; "
                "the explorers compare runs of one architecture"
            )
    return models


class Library:
    """Everything an explorer precomputes once: groups, FLOPs report, channel FLOPs, energies, plans."""

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        example_input: Any,
        groups: GroupSet | None = None,
        criterion: str = "out_in",
        max_layer_ratio: float = 0.5,
        include_unprunable: bool = False,
    ) -> None:
        self.models = check_models(models)
        self.regs = order_regs(list(self.models))
        first = self.models[self.regs[0]]
        self.example_input = example_input
        self.groups = groups if groups is not None else find_groups(first, example_input)
        wanted = [g for g in self.groups if include_unprunable or g.prunable]
        if not wanted:
            raise ConfigError("the model has no prunable out-in-channel groups; nothing to explore")
        self.group_list = wanted
        self.by_name = {g.name: g for g in wanted}
        self.report: FlopsReport = count_flops(first, example_input)
        self.channel_macs: dict[str, int] = channel_flops(self.report, wanted)
        self.criterion = criterion
        self.max_layer_ratio = max_layer_ratio
        self.include_unprunable = include_unprunable
        self._energy: dict[tuple[str, str, str], ChannelScores] = {}
        self._plans: dict[tuple[str, str, str, float], Plan] = {}
        self._max_ratio: float | None = None

    def energy(self, reg: str, normalize: str = "layer_max", criterion: str | None = None) -> ChannelScores:
        """Cached ``channel_energy`` of run ``reg`` (per criterion and normalisation)."""
        key = (reg, criterion or self.criterion, normalize)
        if key not in self._energy:
            self._energy[key] = channel_energy(
                self.models[reg], self.group_list, key[1], normalize, include_unprunable=self.include_unprunable
            )
        return self._energy[key]

    def warm(self, normalizations: tuple[str, ...]) -> None:
        """Compute every (run, normalisation) energy now, so slider moves never wait for it."""
        for reg in self.regs:
            for norm in normalizations:
                self.energy(reg, norm)

    def plan(self, reg: str, ratio: float, normalize: str = "layer_max", criterion: str | None = None) -> Plan:
        """Cached Algorithm 1 plan (``global_greedy_plan``) of run ``reg`` at FLOPs ratio ``ratio``."""
        crit = criterion or self.criterion
        key = (reg, crit, normalize, round(float(ratio), 6))
        plan = self._plans.get(key)
        if plan is None:
            plan = global_greedy_plan(
                self.models[reg], self.groups, self.energy(reg, normalize, crit), key[3],
                max_layer_ratio=self.max_layer_ratio, report=self.report, criterion=crit, normalize=normalize,
            )
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def max_ratio(self, tol: float = 1e-4) -> float:
        """Largest reachable FLOPs ratio under the per-layer cap (bisection over plan feasibility)."""
        if self._max_ratio is None:
            reg, lo, hi = self.regs[0], 0.0, 0.999
            try:
                self._max_ratio = global_greedy_plan(
                    self.models[reg], self.groups, self.energy(reg), hi,
                    max_layer_ratio=self.max_layer_ratio, report=self.report,
                ).achieved_ratio
                return self._max_ratio
            except PlanError:
                pass
            while hi - lo > tol:  # the reachable maximum depends on the caps only, not on scores
                mid = 0.5 * (lo + hi)
                try:
                    global_greedy_plan(self.models[reg], self.groups, self.energy(reg), mid,
                                       max_layer_ratio=self.max_layer_ratio, report=self.report)
                    lo = mid
                except PlanError:
                    hi = mid
            self._max_ratio = lo
        return self._max_ratio


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
    """

    def __init__(
        self,
        compute: Callable[[Any, Callable[[], bool]], Any],
        deliver: Callable[[int, Any], bool | None],
        mode: str = "thread",
        debounce_s: float = 0.25,
        on_start: Callable[[int, Any], None] | None = None,
        on_error: Callable[[int, BaseException], None] | None = None,
    ) -> None:
        if mode not in ("thread", "sync", "manual"):
            raise ConfigError(f"unknown async mode {mode!r}; choose thread, sync or manual")
        self.compute, self.deliver, self.mode, self.debounce_s = compute, deliver, mode, debounce_s
        self.on_start, self.on_error = on_start, on_error
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
        """Run job ``gen`` now (synchronously); True when its result was delivered."""
        if not self.is_latest(gen):
            return False
        if self.on_start is not None:
            self.on_start(gen, request)
        try:
            result = self.compute(request, lambda: not self.is_latest(gen))
        except Exception as exc:  # surfaced in the explorer's status line
            if self.on_error is not None and self.is_latest(gen):
                self.on_error(gen, exc)
            return False
        if not self.is_latest(gen) or result is None:
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


def split_subset(split: Any, n: int | None, seed: int = 0) -> Any:
    """The held-out evaluation subset (``Split.subset``; all images when ``n`` is None)."""
    return split.subset(n, seed=seed) if hasattr(split, "subset") else split

