"""Figure 3: the sorted out-in-channel energy of a layer pair, one series per regulariser.

Input: the ``energies.json`` object of ``reproduce`` (``{"model", "criterion", "runs": {reg:
{group: [raw energy per channel]}}, "out_energies": ..., "bn_gamma": ...}``) or just its
``{reg: {group: [...]}}`` part. ``source`` picks ``runs`` (out-in energy, eq. 5),
``out_energies`` or ``bn_gamma``.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import ConfigError
from ._data import load_json_like, natural_key, natural_sorted, pick_regs
from .style import COLUMN_WIDTH, PAGE_WIDTH, new_figure, paper_style, reg_style, style_plotly, top_legend

SOURCES = ("runs", "out_energies", "bn_gamma")
NORMALIZE = ("max", "sum", "none")
_YLABEL = {
    "max": "{q} / layer max",
    "sum": "{q} / layer total",
    "none": "{q}",
}
_QUANTITY = {"runs": "out-in energy", "out_energies": "out energy", "bn_gamma": "BN |γ|"}


def energy_table(energies: Any, source: str = "runs") -> dict[str, dict[str, np.ndarray]]:
    """``{reg: {group: energies}}`` from an energies.json object (or path, or the inner mapping)."""
    energies = load_json_like(energies, "energies")
    if source not in SOURCES:
        raise ConfigError(f"energies: unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    if isinstance(energies, Mapping) and any(k in energies for k in SOURCES):
        if source not in energies or not energies[source]:
            have = [k for k in SOURCES if energies.get(k)]
            raise ConfigError(f"energies: no {source!r} entry in the data; available: {have}")
        runs = energies[source]
    else:
        runs = energies
    if not isinstance(runs, Mapping) or not runs:
        raise ConfigError("energies: expected {reg: {group: [energy per channel]}}; got nothing to plot")
    out: dict[str, dict[str, np.ndarray]] = {}
    for reg, groups in runs.items():
        if not isinstance(groups, Mapping):
            raise ConfigError(f"energies: entry for {reg!r} must map group name -> list of energies")
        out[str(reg)] = {str(g): np.asarray(v, dtype=float).ravel() for g, v in groups.items() if len(v)}
    if not any(out.values()):
        raise ConfigError("energies: every regulariser has an empty set of groups; nothing to plot")
    return out


def layer_names(energies: Any, source: str = "runs") -> list[str]:
    """Every layer pair (group) present for any regulariser, in network order."""
    table = energy_table(energies, source)
    return natural_sorted(g for groups in table.values() for g in groups)


def default_layer(energies: Any, source: str = "runs") -> str:
    """The paper's Figure 3 pair: the last ``*.conv1`` group (a late block's conv1 -> conv2), else the last group."""
    names = layer_names(energies, source)
    conv1 = [n for n in names if n.rsplit(".", 1)[-1] == "conv1" and "." in n]
    return max(conv1, key=natural_key) if conv1 else names[-1]


def _normalised(raw: np.ndarray, normalize: str) -> np.ndarray:
    """Energies sorted descending and scaled by the layer's max / total (``normalize``)."""
    y = np.sort(np.abs(raw) if raw.min() < 0 else raw)[::-1]
    if normalize == "max":
        return y / y[0] if y[0] > 0 else y
    if normalize == "sum":
        s = y.sum()
        return y / s if s > 0 else y
    return y


def _series(energies: Any, layer: str | None, regs: Iterable[str] | None, normalize: str, source: str):
    """(layer, [(reg, channel order, raw sorted, y)]) for one layer pair, validated."""
    if normalize not in NORMALIZE:
        raise ConfigError(f"energy plot: unknown normalize {normalize!r}; choose one of {', '.join(NORMALIZE)}")
    table = energy_table(energies, source)
    layer = default_layer(table) if layer is None else str(layer)
    have = [r for r, groups in table.items() if layer in groups]
    if not have:
        known = layer_names(table)
        more = " ..." if len(known) > 8 else ""
        raise ConfigError(f"energy plot: no layer pair named {layer!r}; known: {known[:8]}{more}")
    regs = pick_regs(have, regs, f"energy plot of {layer}")
    out = []
    for reg in regs:
        raw = table[reg][layer]
        order = np.argsort(-(np.abs(raw) if raw.min() < 0 else raw), kind="stable")
        out.append((reg, order, raw[order], _normalised(raw, normalize)))
    return layer, out


def _log_floor(series) -> float:
    """A positive floor for zero energies on a log axis (a decade below the smallest positive value)."""
    pos = [y[y > 0].min() for *_, y in series if (y > 0).any()]
    return (min(pos) / 10.0) if pos else 1e-8


def _ylabel(source: str, normalize: str) -> str:
    """Axis label of the energy for ``source`` and ``normalize``."""
    q = _QUANTITY[source]
    if source != "bn_gamma" and normalize == "none":
        q += " (Σ w², raw)"
    return _YLABEL[normalize].format(q=q)


def _title(energies: Any, layer: str) -> str:
    """``model: layer → next layer`` when the model name is known."""
    model = energies.get("model") if isinstance(energies, Mapping) else None
    return f"{model}: {layer} → next layer" if model else f"{layer} → next layer"


def _draw(ax, series, log: bool, n_markers: int = 10, size: float = 3.8, width: float = 1.4) -> bool:
    """Draw sorted-energy lines on ``ax``; return whether zeros were clipped to the log floor."""
    floor = _log_floor(series) if log else None
    clipped = False
    for i, (reg, _, _, y) in enumerate(series):
        st = reg_style(reg)
        x = np.arange(1, len(y) + 1)
        if log:
            clipped |= bool((y <= 0).any())
            y = np.maximum(y, floor)
        every = max(1, len(y) // n_markers)
        start = (every * (2 * i + 1)) // (2 * len(series))  # stagger markers so series do not hide each other
        ax.plot(x, y, color=st.color, label=st.label, marker=st.marker, markevery=(start, every),
                markersize=size, linewidth=width, drawstyle="steps-mid" if len(y) <= 24 else "default")
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor / 2.5)
    return clipped


def static_energy_distribution(energies: Any, layer: str | None = None, regs: Iterable[str] | None = None,
                               normalize: str = "max", log: bool = False, source: str = "runs",
                               ax=None):
    """Figure 3 (matplotlib): sorted channel energy of one layer pair, one line per regulariser."""
    layer, series = _series(energies, layer, regs, normalize, source)
    with paper_style():
        if ax is None:
            fig, ax = new_figure(COLUMN_WIDTH, 2.5)
        else:
            fig = ax.figure
        clipped = _draw(ax, series, log)
        n = max(len(y) for *_, y in series)
        ax.set_xlim(0.5, n + 0.5)
        if not log:
            ax.set_ylim(bottom=0)
        ax.set_xlabel(f"channel rank (sorted by {_QUANTITY[source]}, 1 = highest)")
        ax.set_ylabel(_ylabel(source, normalize))
        ax.set_title(_title(energies, layer), loc="left")
        if clipped:
            ax.text(0.99, 0.99, "exact zeros drawn at the bottom", transform=ax.transAxes,
                    ha="right", va="top", fontsize=6, color="#555555")
        ax.legend(loc="lower left", ncols=1 if len(series) <= 4 else 2)
    return fig


def interactive_energy_distribution(energies: Any, layer: str | None = None, regs: Iterable[str] | None = None,
                                    normalize: str = "max", log: bool = False, source: str = "runs"):
    """Figure 3 (plotly): sorted channel energy of one layer pair; hover shows channel index and raw energy."""
    import plotly.graph_objects as go

    layer, series = _series(energies, layer, regs, normalize, source)
    fig = go.Figure()
    for trace in _traces(series, log):
        fig.add_trace(trace)
    style_plotly(fig, _title(energies, layer), height=460)
    fig.update_xaxes(title_text=f"channel rank (sorted by {_QUANTITY[source]}, 1 = highest)",
                     range=[0.5, max(len(y) for *_, y in series) + 0.5])
    fig.update_yaxes(title_text=_ylabel(source, normalize), type="log" if log else "linear")
    return fig


def _traces(series, log: bool, show_legend: bool = True, subplot: str = ""):
    """One plotly Scatter per regulariser with hover text (rank, channel index, raw and plotted energy)."""
    import plotly.graph_objects as go

    floor = _log_floor(series) if log else None
    for reg, order, raw, y in series:
        st = reg_style(reg)
        yy = np.maximum(y, floor) if log else y
        yield go.Scatter(
            x=np.arange(1, len(y) + 1), y=yy, name=st.label, legendgroup=reg, showlegend=show_legend,
            mode="lines+markers", line=dict(color=st.color, width=2),
            marker=dict(symbol=st.symbol, size=5, color=st.color),
            customdata=np.stack([order, raw, y], axis=1),
            hovertemplate=(f"<b>{st.label}</b>{subplot}<br>rank %{{x}}<br>channel #%{{customdata[0]:d}}"
                           "<br>energy %{customdata[1]:.4g}<br>plotted %{customdata[2]:.4g}<extra></extra>"),
        )


def _grid_shape(n: int, ncols: int | None) -> tuple[int, int]:
    """(rows, cols) of a small-multiples grid of ``n`` panels."""
    cols = ncols or min(6, max(1, math.ceil(math.sqrt(n * 1.6))))
    return math.ceil(n / cols), cols


def _grid_layers(energies: Any, layers: Iterable[str] | None, source: str) -> list[str]:
    """Layers of the grid: all pairs in network order, or the requested ones (checked)."""
    names = layer_names(energies, source)
    if layers is None:
        return names
    layers = [str(x) for x in layers]
    bad = [x for x in layers if x not in names]
    if bad or not layers:
        raise ConfigError(f"energy grid: layer pair(s) {bad or '[]'} not in the data; known: {names[:8]} ...")
    return layers


def static_energy_grid(energies: Any, regs: Iterable[str] | None = None, normalize: str = "max",
                       log: bool = False, source: str = "runs", layers: Iterable[str] | None = None,
                       ncols: int | None = None):
    """Figure 3 as small multiples (matplotlib): one panel per layer pair, shared legend on top."""
    layers = _grid_layers(energies, layers, source)
    rows, cols = _grid_shape(len(layers), ncols)
    with paper_style():
        fig, axes = new_figure(PAGE_WIDTH, 0.35 + 1.25 * rows, nrows=rows, ncols=cols, squeeze=False,
                               sharey=normalize == "max" and not log)
        handles = {}
        for i, layer in enumerate(layers):
            ax = axes.flat[i]
            _, series = _series(energies, layer, regs, normalize, source)
            _draw(ax, series, log, n_markers=5, size=2.6, width=1.0)
            ax.set_title(layer, fontsize=6.5, pad=2)
            ax.tick_params(labelsize=5.5, length=2, pad=1)
            ax.set_xlim(0.5, max(len(y) for *_, y in series) + 0.5)
            if i % cols and normalize == "max" and not log:
                ax.tick_params(labelleft=False)
            if not log:
                ax.set_ylim(bottom=0)
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        for ax in axes.flat[len(layers):]:
            ax.set_visible(False)
        fig.supxlabel(f"channel rank (sorted by {_QUANTITY[source]}, 1 = highest)", fontsize=7.5)
        fig.supylabel(_ylabel(source, normalize), fontsize=7.5)
        model = energies.get("model") if isinstance(energies, Mapping) else None
        top_legend(fig, list(handles.values()), list(handles), len(handles),
                   f"{model + ': ' if model else ''}channel energy of every layer pair (sorted, per regulariser)")
    return fig


def interactive_energy_grid(energies: Any, regs: Iterable[str] | None = None, normalize: str = "max",
                            log: bool = False, source: str = "runs", layers: Iterable[str] | None = None,
                            ncols: int | None = None):
    """Figure 3 as small multiples (plotly): one subplot per layer pair, one legend entry per regulariser."""
    from plotly.subplots import make_subplots

    layers = _grid_layers(energies, layers, source)
    rows, cols = _grid_shape(len(layers), ncols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=layers, horizontal_spacing=0.04,
                        vertical_spacing=min(0.3 / max(rows - 1, 1), 0.08))
    seen: set[str] = set()
    for i, layer in enumerate(layers):
        _, series = _series(energies, layer, regs, normalize, source)
        for trace in _traces(series, log, subplot=f" · {layer}"):
            trace.showlegend = trace.legendgroup not in seen
            seen.add(trace.legendgroup)
            fig.add_trace(trace, row=i // cols + 1, col=i % cols + 1)
    model = energies.get("model") if isinstance(energies, Mapping) else None
    style_plotly(fig, f"{model + ': ' if model else ''}channel energy of every layer pair", height=150 + 210 * rows,
                 lift_legend=28)
    fig.update_annotations(font_size=11)
    if log:
        fig.update_yaxes(type="log")
    fig.update_yaxes(title_text=_ylabel(source, normalize), row=(rows + 1) // 2, col=1)
    fig.update_xaxes(title_text="channel rank", row=rows, col=1)
    return fig
