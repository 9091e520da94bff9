"""Energy explorer: sorted out-in-channel energies (eq. 5) of one layer pair, per regulariser.

A clickable network overview (one stacked bar per layer pair: kept / below threshold) selects
the pair; the main plot shows the pair's sorted channel energies (the paper's Figure 3), with
an optional overlay of every regulariser and a threshold (or global ratio) slider marking the
channels that go. Energies come from :func:`oicsr_lab.importance.channel_energy`, cached per
run and normalisation.
"""

from __future__ import annotations

from typing import Any, Mapping

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch.nn as nn

from ..errors import ConfigError
from ..groups.types import GroupSet
from ..importance import NORMALIZATIONS
from ._display import DisplayMixin
from ._figure import live_figure, redraw
from ._library import Library
from ._style import PRUNED_COLOR, esc, group_label, reg_color, reg_label

__all__ = ["EnergyExplorer"]
MODES = ("threshold", "ratio")


class EnergyExplorer(DisplayMixin):
    """Pick a run and a layer pair; see its sorted out-in energies and which channels a threshold removes."""

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        example_input: Any,
        groups: GroupSet | None = None,
        criterion: str = "out_in",
        normalize: str = "layer_max",
        normalize_options: tuple[str, ...] = NORMALIZATIONS,
        mode: str = "threshold",
        level: float = 0.05,
        include_unprunable: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; choose threshold or ratio")
        self.lib = Library(models, example_input, groups, criterion, include_unprunable=include_unprunable)
        self.lib.warm((normalize,))
        self.regs = self.lib.regs
        self.names = [g.name for g in self.lib.group_list]
        self.readout: dict[str, Any] = {}
        self._build(normalize, tuple(normalize_options), mode, level)
        self._rescale_slider(keep_fraction=None)
        self.update()

    # ------------------------------------------------------------------ construction
    def _build(self, normalize: str, normalize_options: tuple[str, ...], mode: str, level: float) -> None:
        """Create controls, the overview and the energy FigureWidgets."""
        lay = W.Layout(width="auto")
        self.reg_dropdown = W.Dropdown(options=[(reg_label(r), r) for r in self.regs], value=self.regs[0],
                                       description="run", layout=W.Layout(width="220px"))
        self.group_dropdown = W.Dropdown(options=[(group_label(g), g.name) for g in self.lib.group_list],
                                         value=self.names[0], description="layer pair", layout=W.Layout(width="460px"))
        self.normalize_dropdown = W.Dropdown(options=list(normalize_options), value=normalize,
                                             description="normalise", layout=W.Layout(width="220px"))
        self.overlay_checkbox = W.Checkbox(value=False, description="overlay all regularisers", indent=False,
                                           layout=lay)
        self.log_checkbox = W.Checkbox(value=False, description="log y", indent=False, layout=lay)
        self.mode_toggle = W.ToggleButtons(options=[("threshold", "threshold"), ("global ratio", "ratio")], value=mode,
                                           style={"button_width": "110px"})
        self.level_slider = W.FloatSlider(value=level, min=0.0, max=1.0, step=0.001, continuous_update=True,
                                          description="threshold", readout_format=".3g", layout=W.Layout(width="420px"))
        self.readout_html = W.HTML()
        overview = go.Figure()  # built complete, then wrapped (oicsr_lab.widgets._figure)
        overview.add_bar(x=self.names, y=[0] * len(self.names), name="kept", hoverinfo="x+y+name")
        overview.add_bar(x=self.names, y=[0] * len(self.names), name="below threshold",
                         marker_color=PRUNED_COLOR, hoverinfo="x+y+name")
        overview.update_layout(
            barmode="stack", height=260, autosize=True, template="simple_white", margin=dict(l=60, r=10, t=40, b=110),
            title=dict(text="network overview (click a bar to select the layer pair)", x=0, font=dict(size=13)),
            xaxis=dict(tickangle=-60, tickfont=dict(size=9)), yaxis=dict(title="channels"),
            legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"), clickmode="event",
        )
        fig = go.Figure()
        for reg in self.regs:
            fig.add_scatter(x=[], y=[], name=reg_label(reg), mode="lines+markers", line=dict(color=reg_color(reg)),
                            hovertemplate="rank %{x}<br>channel %{customdata}<br>energy "
                            "%{y:.4g}<extra>%{fullData.name}</extra>")
        fig.update_layout(
            height=380, autosize=True, template="simple_white", margin=dict(l=70, r=10, t=40, b=50),
            xaxis=dict(title="channel (sorted by energy)"), yaxis=dict(title="out-in energy"),
            legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"),
        )
        self.overview, self.fig = live_figure(overview), live_figure(fig)
        for trace in self.overview.data:
            trace.on_click(self._on_overview_click)
        for w in (self.reg_dropdown, self.group_dropdown, self.overlay_checkbox, self.log_checkbox, self.level_slider):
            w.observe(self._on_control, names="value")
        self.normalize_dropdown.observe(self._on_normalize, names="value")
        self.mode_toggle.observe(self._on_mode, names="value")
        self.widget = W.VBox([
            W.HBox([self.reg_dropdown, self.group_dropdown, self.normalize_dropdown],
                   layout=W.Layout(flex_flow="row wrap")),  # controls wrap in a narrow notebook, never clip
            W.HBox([self.mode_toggle, self.level_slider, self.overlay_checkbox, self.log_checkbox],
                   layout=W.Layout(flex_flow="row wrap", align_items="center")),
            self.readout_html, self.overview, self.fig,
        ])
        self.widget.add_class("oicsr-energy-explorer")  # a stable hook for page styling and the browser tests

    # ------------------------------------------------------------------ setters
    def set_regularizer(self, reg: str) -> None:
        """Select the run whose channels are marked."""
        self.reg_dropdown.value = reg

    def set_group(self, name: str) -> None:
        """Select the layer pair (group name)."""
        if name not in self.lib.by_name:
            raise ConfigError(f"no prunable layer pair named {name!r}; known: {self.names[:6]}...")
        self.group_dropdown.value = name

    def set_normalize(self, normalize: str) -> None:
        """Choose the energy normalisation."""
        self.normalize_dropdown.value = normalize

    def set_overlay(self, overlay: bool) -> None:
        """Overlay every regulariser's sorted energies."""
        self.overlay_checkbox.value = bool(overlay)

    def set_threshold(self, threshold: float) -> None:
        """Threshold mode: channels with energy below ``threshold`` (in plotted units) go."""
        self.mode_toggle.value = "threshold"
        self.level_slider.value = min(max(float(threshold), 0.0), self.level_slider.max)

    def set_ratio(self, ratio: float) -> None:
        """Global-ratio mode: the lowest ``ratio`` of all channels of the run go."""
        self.mode_toggle.value = "ratio"
        self.level_slider.value = min(max(float(ratio), 0.0), 1.0)

    # ------------------------------------------------------------------ state
    @property
    def scores(self) -> dict[str, dict[str, np.ndarray]]:
        """Normalised energies ``{run: {group: array}}`` for the current normalisation (cached)."""
        norm = self.normalize_dropdown.value
        return {r: {g: v.numpy() for g, v in self.lib.energy(r, norm).items()} for r in self.regs}

    def thresholds(self) -> dict[str, float]:
        """Per run, the energy below which channels go (global quantile in ratio mode)."""
        level, scores = float(self.level_slider.value), self.scores
        if self.mode_toggle.value == "threshold":
            return {r: level for r in self.regs}
        out = {}
        for r in self.regs:
            allv = np.sort(np.concatenate(list(scores[r].values())))
            k = int(np.floor(level * len(allv) + 1e-9))
            out[r] = float(allv[k]) if k < len(allv) else float("inf")
        return out

    def _rescale_slider(self, keep_fraction: float | None) -> None:
        """Fit the slider range to the mode (ratio: 0..1; threshold: 0..max energy)."""
        if self.mode_toggle.value == "ratio":
            self.level_slider.unobserve(self._on_control, names="value")
            self.level_slider.description, self.level_slider.readout_format = "ratio", ".1%"
            self.level_slider.max, self.level_slider.step = 1.0, 0.005
            if keep_fraction is not None:
                self.level_slider.value = keep_fraction
            self.level_slider.observe(self._on_control, names="value")
            return
        top = max(float(v.max()) for s in self.scores.values() for v in s.values() if len(v)) or 1.0
        self.level_slider.unobserve(self._on_control, names="value")
        value = self.level_slider.value if keep_fraction is None else keep_fraction * top
        self.level_slider.max = top
        self.level_slider.step = top / 1000.0
        self.level_slider.value = min(value, top)
        self.level_slider.description, self.level_slider.readout_format = "threshold", ".3g"
        self.level_slider.observe(self._on_control, names="value")

    def _on_normalize(self, change: dict) -> None:
        """New normalisation: keep the slider's relative position, then redraw."""
        if self.mode_toggle.value == "threshold":
            old = {r: {g: v.numpy() for g, v in self.lib.energy(r, change["old"]).items()} for r in self.regs}
            top = max(float(v.max()) for s in old.values() for v in s.values() if len(v)) or 1.0
            self._rescale_slider(self.level_slider.value / top)
        self.update()

    def _on_mode(self, change: dict) -> None:
        """Switch between threshold and global-ratio mode."""
        self._rescale_slider(keep_fraction=0.1 if change["new"] == "ratio" else 0.05)
        self.update()

    def _on_control(self, change: dict) -> None:
        """Any other control changed: redraw."""
        self.update()

    def _on_overview_click(self, trace: Any, points: Any, state: Any = None) -> None:
        """A click on the network overview selects that layer pair."""
        inds = list(getattr(points, "point_inds", []) or [])
        if inds:
            self.set_group(self.names[inds[0]])

    # ------------------------------------------------------------------ drawing
    def update(self) -> None:
        """Recompute the marks and redraw the overview, the energy plot and the readout."""
        reg, name = self.reg_dropdown.value, self.group_dropdown.value
        scores, thr = self.scores, self.thresholds()
        shown = self.regs if self.overlay_checkbox.value else [reg]
        per_group = {g: int((scores[reg][g] < thr[reg]).sum()) for g in self.names}
        below = {r: int((scores[r][name] < thr[r]).sum()) for r in shown}
        n = self.lib.by_name[name].size
        with redraw(self.overview):
            sizes = [self.lib.by_name[g].size for g in self.names]
            self.overview.data[0].y = [s - per_group[g] for s, g in zip(sizes, self.names)]
            self.overview.data[0].marker.color = reg_color(reg)
            self.overview.data[1].y = [per_group[g] for g in self.names]
            widths = [3 if g == name else 0 for g in self.names]
            for trace in self.overview.data:
                trace.marker.line = dict(width=widths, color="#000000")
        with redraw(self.fig):
            for r, trace in zip(self.regs, self.fig.data):
                trace.visible = r in shown
                if r not in shown:
                    continue
                e = scores[r][name]
                order = np.argsort(e, kind="stable")
                go_ = e[order] < thr[r]
                trace.x, trace.y, trace.customdata = list(range(n)), e[order].tolist(), order.tolist()
                trace.marker = dict(color=[PRUNED_COLOR if b else reg_color(r) for b in go_],
                                    symbol=["x" if b else "circle" for b in go_], size=7)
            t_sel = thr[reg]
            line = [] if not np.isfinite(t_sel) else [dict(
                type="line", xref="paper", x0=0, x1=1, y0=t_sel, y1=t_sel,
                line=dict(color=PRUNED_COLOR, dash="dash", width=1.5))]
            self.fig.layout.shapes = line
            self.fig.layout.yaxis.type = "log" if self.log_checkbox.value else "linear"
            self.fig.layout.xaxis.dtick = max(1, -(-n // 16))  # whole channel ranks, at most ~16 ticks
            norm = self.normalize_dropdown.value
            self.fig.layout.yaxis.title.text = f"{self.lib.criterion} energy ({norm})"
            self.fig.layout.title = dict(text=f"sorted energies of {esc(group_label(self.lib.by_name[name]))}",
                                         x=0, font=dict(size=13))
        self.readout = {
            "reg": reg, "group": name, "n": n, "k": below[reg], "mode": self.mode_toggle.value,
            "level": float(self.level_slider.value), "threshold": thr[reg], "below": below,
            "below_per_group": per_group,
        }
        self._render_readout()

    def _render_readout(self) -> None:
        """The 'k of n channels below threshold' line (per run when overlaid)."""
        r = self.readout
        what = (f"threshold {r['threshold']:.3g}" if r["mode"] == "threshold"
                else f"the run's lowest {r['level']:.1%} of all channels")
        parts = [f"<b style='color:{reg_color(reg)}'>{esc(reg_label(reg))}</b>: {k} of {r['n']} "
                 "channels below threshold"
                 for reg, k in r["below"].items()]
        total = sum(r["below_per_group"].values())
        size = sum(g.size for g in self.lib.group_list)
        self.readout_html.value = (
            f"{' &nbsp;|&nbsp; '.join(parts)}<br><small>{esc(what)}; whole network ({esc(reg_label(r['reg']))}): "
            f"{total} of {size} channels</small>"
        )
