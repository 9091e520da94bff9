"""Pruning explorer: a global FLOPs-ratio slider driving Algorithm 1 live for several regularisers.

Per slider move (fast path, no accuracy): one cached ``global_greedy_plan`` per shown
regulariser, kept-channel bars, FLOPs/params readout. Accuracy before retraining on a held-out
subset (:func:`oicsr_lab.inference.plan_accuracies`) runs in a background worker (debounced,
latest request only, 'computing…' indicator); the worker only computes, and every widget value
is set on the kernel thread (:mod:`._kernel_thread`). :meth:`PruningExplorer.close` stops and joins
the worker, and interpreter exit does so for every explorer.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Mapping

import ipywidgets as W
import torch.nn as nn

from ..data import DatasetSplits, Split
from ..errors import ConfigError
from ..groups.types import GroupSet
from ..importance import NORMALIZATIONS
from ..inference import EvalBatches, plan_accuracies
from ..pruning import Plan
from ._criteria import criterion_menu
from ._display import DisplayMixin
from ._figure import live_figure, redraw
from ._kernel_thread import KernelThread
from ._library import Library, split_subset
from ._pruning_view import accuracy_figure, figure_row, kept_channels_figure, style_toggle
from ._runner import LatestOnly
from ._style import esc, reg_color, reg_label

__all__ = ["PruningExplorer"]


def _plan_key(reg: str, plan: Plan | None) -> tuple:
    """Cache key of an accuracy: the run and exactly which channels the plan keeps."""
    if plan is None or not any(len(k) < plan.sizes[g] for g, k in plan.keep.items()):
        return (reg, "dense")
    return (reg, hash(tuple((g, tuple(k)) for g, k in sorted(plan.keep.items()))))


class PruningExplorer(DisplayMixin):
    """Global FLOPs-ratio slider -> per-layer kept channels, FLOPs/params and accuracy per regulariser.

    Accuracy before retraining is measured on ``eval_images`` held-out test images in a background
    thread, ``debounce_s`` after the controls settle, in batches of ``batch_size`` (the first one
    ``first_batch`` long, for an early estimate with its ~95 % band); a newer request stops it at the
    next batch. Accuracies are cached per run and kept-channel set, so revisited positions are instant.
    ``precision="auto"`` evaluates in bf16 on CPUs with native bf16 (~2.5x faster, within a few tenths
    of a point of fp32; :mod:`oicsr_lab.inference`), in fp32 elsewhere; ``"fp32"`` forces exact fp32.

    The criterion menu lists the criteria registry (:mod:`oicsr_lab.criteria`): every weight-only
    criterion, and the data-driven ones when calibration data is at hand (``calibration="auto"``:
    ``calibration_batches`` batches of the data's validation split, else its training split, drawn
    on first use; or a given :class:`~oicsr_lab.criteria.Calibration`; ``None`` leaves them out).
    """

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        data: DatasetSplits,
        example_input: Any = None,
        eval_images: int | None = 1000,
        normalize_options: tuple[str, ...] = NORMALIZATIONS,
        criterion: str = "out_in",
        normalize: str = "layer_max",
        groups: GroupSet | None = None,
        max_layer_ratio: float = 0.5,
        step: float = 0.01,
        batch_size: int = 250,
        first_batch: int | None = 100,
        precision: str = "auto",
        accuracy: bool = True,
        async_mode: str = "thread",
        debounce_s: float = 0.15,
        seed: int = 0,
        calibration: Any = "auto",
        calibration_batches: int = 4,
    ) -> None:
        if normalize not in normalize_options:
            raise ConfigError(f"normalize {normalize!r} is not among normalize_options {list(normalize_options)}")
        example_input = data.example_input(1) if example_input is None else example_input
        self.lib = Library(models, example_input, groups, criterion, max_layer_ratio)
        self.regs = self.lib.regs
        device = next(self.lib.models[self.regs[0]].parameters()).device
        self.criteria = criterion_menu(data, calibration, calibration_batches, seed, device)
        if criterion not in self.criteria.names:
            raise ConfigError(f"criterion {criterion!r} is not in the menu ({', '.join(self.criteria.names)}): "
                              f"{self.criteria.tooltip}")
        self.lib.calibration = self.criteria.calibration
        self.lib.warm(tuple(normalize_options))
        self.data = data
        self.eval_split: Split = split_subset(data.test, eval_images, seed)
        self.batch_size = int(batch_size)
        self.eval_batches = EvalBatches(self.eval_split, data.mean, data.std, self.batch_size, device=device,
                                        first_batch=first_batch, precision=precision,
                                        input_size=getattr(data, "input_size", 224))
        self.max_ratio = math.floor(self.lib.max_ratio() / step + 1e-9) * step
        self.plans: dict[str, Plan] = {}
        self.readout: dict[str, dict[str, Any]] = {}
        self.acc_cache: dict[tuple, float] = {}
        self.last_update_s = 0.0
        self.computing = False
        self.partial: dict[tuple, tuple[float, int, float]] = {}  # (acc, images, ±95 %) of the newest job
        self._active_gen = 0
        self._lock = threading.RLock()
        self._ui = KernelThread()  # widget values are set on this (the kernel) thread only
        self._progress_value: float | None = None  # the worker's latest progress, not yet shown
        self._runner = LatestOnly(self._compute_async, self._deliver, async_mode, debounce_s,
                                  on_start=self._on_start, on_error=self._on_error, ui=self._ui)
        self._build(normalize_options, normalize, criterion, step, accuracy)
        self.update()

    # ------------------------------------------------------------------ construction
    def _build(self, normalize_options: tuple[str, ...], normalize: str, criterion: str, step: float,
               accuracy: bool) -> None:
        """Create the controls, the two FigureWidgets and the readout."""
        self.ratio_slider = W.FloatSlider(
            value=0.0, min=0.0, max=self.max_ratio, step=step, description="FLOPs pruned",
            readout_format=".0%", continuous_update=True, layout=W.Layout(width="420px"),
            style={"description_width": "initial"},
        )
        self.normalize_dropdown = W.Dropdown(options=list(normalize_options), value=normalize, description="normalise",
                                             layout=W.Layout(width="230px"))
        self.criterion_dropdown = W.Dropdown(options=self.criteria.options, value=criterion, description="criterion",
                                             tooltip=self.criteria.tooltip, layout=W.Layout(width="250px"))
        self.toggles = {reg: W.ToggleButton(value=True, description=reg_label(reg), layout=W.Layout(width="auto"))
                        for reg in self.regs}
        for reg, t in self.toggles.items():
            style_toggle(t, reg)
        n_img = len(self.eval_split)
        self.accuracy_checkbox = W.Checkbox(value=accuracy, description=f"accuracy on {n_img} test images",
                                            indent=False, layout=W.Layout(width="auto"))
        self.status = W.HTML("")
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0,
                                        layout=W.Layout(width="160px", visibility="hidden"))
        self.readout_html = W.HTML()
        self.fig = live_figure(kept_channels_figure(self.lib.group_list, self.regs))
        self.acc_fig = live_figure(accuracy_figure(self.regs))
        self.ratio_slider.observe(self._on_control, names="value")
        self.normalize_dropdown.observe(self._on_control, names="value")
        self.criterion_dropdown.observe(self._on_control, names="value")
        self.accuracy_checkbox.observe(self._on_control, names="value")
        for t in self.toggles.values():
            t.observe(self._on_control, names="value")
        self.widget = W.VBox([
            W.HBox([self.ratio_slider, self.criterion_dropdown, self.normalize_dropdown],
                   layout=W.Layout(flex_flow="row wrap")),
            W.HBox(list(self.toggles.values()) + [self.accuracy_checkbox], layout=W.Layout(flex_flow="row wrap")),
            W.HBox([self.progress, self.status]),
            self.readout_html,
            figure_row(self.fig, self.acc_fig),
        ])
        self.widget.add_class("oicsr-pruning-explorer")  # a stable hook for page styling and the browser tests

    # ------------------------------------------------------------------ programmatic setters
    def set_ratio(self, ratio: float) -> None:
        """Move the FLOPs-ratio slider (clamped to [0, max reachable])."""
        self.ratio_slider.value = min(max(float(ratio), 0.0), self.max_ratio)

    def set_normalize(self, normalize: str) -> None:
        """Choose the cross-layer normalisation of the energies."""
        self.normalize_dropdown.value = normalize

    def set_criterion(self, criterion: str) -> None:
        """Rank channels by another criterion of the menu (a name of :attr:`criteria`)."""
        if criterion not in self.criteria.names:
            raise ConfigError(f"criterion {criterion!r} is not in the menu ({', '.join(self.criteria.names)})")
        self.criterion_dropdown.value = criterion

    def set_regularizers(self, regs: list[str]) -> None:
        """Show only the runs in ``regs``."""
        unknown = set(regs) - set(self.regs)
        if unknown:
            raise ConfigError(f"unknown regularisers {sorted(unknown)}; known: {self.regs}")
        with self.widget.hold_sync():
            for reg, t in self.toggles.items():
                t.unobserve(self._on_control, names="value")
                t.value = reg in regs
                t.observe(self._on_control, names="value")
        self.update()

    def set_accuracy(self, enabled: bool) -> None:
        """Turn the background accuracy readout on or off."""
        self.accuracy_checkbox.value = bool(enabled)

    @property
    def ratio(self) -> float:
        """Current target FLOPs ratio."""
        return float(self.ratio_slider.value)

    @property
    def criterion(self) -> str:
        """Current ranking criterion."""
        return str(self.criterion_dropdown.value)

    @property
    def normalize(self) -> str:
        """Current normalisation."""
        return str(self.normalize_dropdown.value)

    @property
    def selected(self) -> list[str]:
        """Runs currently shown."""
        return [reg for reg, t in self.toggles.items() if t.value]

    # ------------------------------------------------------------------ fast path
    def _on_control(self, change: dict) -> None:
        """Any control changed: recompute plans and redraw."""
        self.update()

    def update(self) -> None:
        """Recompute the plans of the shown runs, redraw the bars and readout, request accuracy."""
        t0 = time.perf_counter()
        ratio, norm, crit, shown = self.ratio, self.normalize, self.criterion, self.selected
        if any(not self.lib.has_energy(reg, norm, crit) for reg in shown) and self.lib.needs_data(crit):
            self.status.value = f"<i>scoring channels by {esc(crit)} on calibration batches…</i>"  # seconds, once
        plans = {reg: self.lib.plan(reg, ratio, norm, crit) for reg in shown}
        names = [g.name for g in self.lib.group_list]
        for reg, t in self.toggles.items():
            style_toggle(t, reg)
        with self._lock:
            self.plans = plans
            self.readout = {reg: self._readout_row(reg, p) for reg, p in plans.items()}
            with redraw(self.fig):
                for reg, trace in zip(self.regs, self.fig.data[1:]):
                    trace.visible = reg in plans
                    if reg in plans:
                        trace.y = [len(plans[reg].keep[n]) for n in names]
            if self.accuracy_checkbox.value and shown:
                self.request_accuracy()
            else:
                self._runner.cancel()
                self._set_busy(False)
            self._render()
        self.last_update_s = time.perf_counter() - t0

    def _readout_row(self, reg: str, plan: Plan) -> dict[str, Any]:
        """Readout of one run: target/achieved ratio, FLOPs and params before/after, accuracies."""
        return {
            "target_ratio": plan.target_ratio, "achieved_ratio": plan.achieved_ratio,
            "flops": plan.flops_after, "flops_before": plan.flops_before,
            "params": plan.params_after, "params_before": plan.params_before,
            "acc": self.acc_cache.get(_plan_key(reg, plan)), "acc_dense": self.acc_cache.get((reg, "dense")),
            "acc_partial": None, "eval_images": len(self.eval_split),
        }

    def _render(self) -> None:
        """Redraw the readout table and the accuracy bars from ``self.readout``."""
        rows = []
        for reg, r in self.readout.items():
            if r["acc"] is not None:
                acc = f"{r['acc']:.1f}%"
            elif r["acc_partial"] is not None and self.computing:
                est, seen, half = r["acc_partial"]
                acc = f"<i>{est:.1f} ± {half:.1f}% on {seen} of {r['eval_images']} images…</i>"
            else:
                acc = "<i>computing…</i>" if self.computing else "—"
            drop = "" if r["acc"] is None or r["acc_dense"] is None else f" ({r['acc'] - r['acc_dense']:+.1f})"
            rows.append(
                f"<tr><td style='color:{reg_color(reg)};font-weight:bold'>{esc(reg_label(reg))}</td>"
                f"<td>{r['flops'] / 1e6:.2f} / {r['flops_before'] / 1e6:.2f} M</td><td>{r['achieved_ratio']:.2%}</td>"
                f"<td>{r['params'] / 1e6:.3f} / {r['params_before'] / 1e6:.3f} M</td><td>{acc}{drop}</td></tr>"
            )
        head = "<tr><th></th><th>FLOPs (MACs)</th><th>pruned</th><th>params</th><th>acc before retraining</th></tr>"
        self.readout_html.value = (
            f"<table style='border-collapse:collapse' cellpadding='3'>{head}{''.join(rows)}</table>"
            f"<small>target {self.ratio:.1%} of FLOPs, normalise={esc(self.normalize)}, "
            f"criterion={esc(self.criterion)}, max reachable {self.max_ratio:.0%}, "
            f"accuracy in {esc(self.eval_batches.precision)}</small>"
        )
        shown = [reg in self.readout for reg in self.regs]
        pruned = [self.readout[r]["acc"] if s else None for r, s in zip(self.regs, shown)]
        dense = [self.readout[r]["acc_dense"] if s else None for r, s in zip(self.regs, shown)]
        with redraw(self.acc_fig):
            self.acc_fig.data[0].y = [d if d is not None else 0.0 for d in dense]
            part = [self.readout[r]["acc_partial"] if s else None for r, s in zip(self.regs, shown)]
            self.acc_fig.data[1].y = [p if p is not None else q[0] if q else 0.0 for p, q in zip(pruned, part)]
            self.acc_fig.data[1].text = [
                "" if not s else f"{p:.1f}" if p is not None else f"~{q[0]:.0f}…" if q else "…"
                for p, q, s in zip(pruned, part, shown)
            ]
            band = [q[2] if p is None and q else 0.0 for p, q in zip(pruned, part)]  # ~95 % band of an estimate
            self.acc_fig.data[1].error_y = dict(type="data", array=band, visible=any(b > 0 for b in band),
                                                color="#444", thickness=1.5, width=6)

    # ------------------------------------------------------------------ accuracy (slow path)
    def accuracy_request(self) -> list[tuple[str, tuple, Plan | None]]:
        """The evaluations the current state still needs: (run, cache key, plan) for shown runs."""
        items = []
        for reg, plan in self.plans.items():
            key = _plan_key(reg, plan)
            if key not in self.acc_cache:
                items.append((reg, key, plan if key[1] != "dense" else None))
        for reg in self.plans:  # the dense reference after the pruned ones
            if (reg, "dense") not in self.acc_cache and all(k != (reg, "dense") for _, k, _ in items):
                items.append((reg, (reg, "dense"), None))
        return items

    def request_accuracy(self) -> int:
        """Queue the accuracy of the current state; returns its generation (the newest wins)."""
        items = self.accuracy_request()
        with self._lock:
            if not items:  # everything cached: nothing to compute, drop older requests
                self._runner.cancel()
                self._set_busy(False)
                return self._runner.generation
            self.partial = {}
            self._set_busy(True)
            return self._runner.submit(items)

    def compute_accuracy(
        self, items: list[tuple[str, tuple, Plan | None]], is_stale: Callable[[], bool] = lambda: False,
        on_partial: Callable[[dict[tuple, tuple[float, int, float]]], None] | None = None, fold_bn: bool = True,
    ) -> dict[tuple, float] | None:
        """Evaluate each (run, key, plan) on the held-out subset; None as soon as the request is stale.

        :func:`~oicsr_lab.inference.plan_accuracies` over this explorer's runs and evaluation
        batches, cached in ``acc_cache`` (a finished phase stays cached even if the request goes
        stale later); progress goes to the progress bar through the kernel thread. The background
        worker passes ``fold_bn=False``: BN folding traces with torch.fx, which would break networks
        the notebook runs meanwhile (see :func:`~oicsr_lab.inference.plan_accuracies`).
        """
        return plan_accuracies(self.lib.models, items, self.eval_batches, results=self.acc_cache,
                               is_cancelled=is_stale, on_progress=self._report_progress, on_partial=on_partial,
                               fold_bn=fold_bn)

    def _compute_async(self, items: list, is_stale: Callable[[], bool]) -> dict[tuple, float] | None:
        """What the background worker runs: :meth:`compute_accuracy`, its estimates shown on the kernel thread."""
        def partial(p: dict[tuple, tuple[float, int, float]]) -> None:
            self._ui.post(lambda: self._publish_partial(p))

        return self.compute_accuracy(items, is_stale, on_partial=partial, fold_bn=False)  # no fx off the kernel thread

    def _report_progress(self, fraction: float) -> None:
        """Record the worker's progress; the kernel thread shows the latest value (one update queued at a time)."""
        with self._lock:
            queued = self._progress_value is not None
            self._progress_value = fraction
        if not queued:
            self._ui.post(self._show_progress)

    def _show_progress(self) -> None:
        """Move the progress bar to the latest reported fraction (kernel thread)."""
        with self._lock:
            fraction, self._progress_value = self._progress_value, None
            if fraction is not None and self.computing:
                self.progress.value = fraction

    def _publish_partial(self, partial: dict[tuple, tuple[float, int, float]]) -> None:
        """Show running estimates if the job that made them is still the newest."""
        with self._lock:
            if not self._runner.is_latest(self._active_gen):
                return
            self.partial.update(partial)
            for reg, plan in self.plans.items():
                self.readout[reg]["acc_partial"] = self.partial.get(_plan_key(reg, plan))
            self._render()

    def _on_start(self, gen: int, items: Any) -> None:
        """Show the 'computing…' indicator."""
        self._active_gen = gen
        if items:
            self._set_busy(True)

    def _set_busy(self, busy: bool, message: str = "") -> None:
        """Toggle the progress bar and status line."""
        self.computing = busy
        self.progress.value = 0.0
        self.progress.layout.visibility = "visible" if busy else "hidden"
        self.status.value = "<i>computing accuracy…</i>" if busy else message

    def _deliver(self, gen: int, result: dict[tuple, float]) -> bool:
        """Show the finished accuracies if ``gen`` is still the newest request."""
        with self._lock:
            if not self._runner.is_latest(gen):
                return False
            for reg, plan in self.plans.items():
                self.readout[reg]["acc"] = self.acc_cache.get(_plan_key(reg, plan))
                self.readout[reg]["acc_dense"] = self.acc_cache.get((reg, "dense"))
            self._set_busy(False)
            self._render()
            return True

    def _on_error(self, gen: int, exc: BaseException) -> None:
        """Report a failed evaluation in the status line."""
        self._set_busy(False, f"<span style='color:#B00'>accuracy failed: {esc(type(exc).__name__)}: {esc(exc)}</span>")

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the background accuracy has finished and is shown (tests, benchmarks, scripts).

        Called on the kernel thread it also applies the results the worker handed over (outside a
        running kernel that is the only way they reach the widgets: polling).
        """
        done = self._runner.wait(timeout)
        if self._ui.on_owner():
            self._ui.drain()
        return done

    def close(self) -> None:
        """Stop the background accuracy worker (waiting for its current chunk) and close the widgets."""
        self._runner.close()
        with self._lock:
            self.computing = False
        super().close()

    @property
    def generation(self) -> int:
        """Generation of the newest accuracy request."""
        return self._runner.generation
