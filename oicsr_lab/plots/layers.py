"""Algorithm 1's outcome: the per-layer pruning ratios the global greedy sort chose at a FLOPs target.

Input: ``plans.json`` of ``reproduce`` (``{reg: {"criterion/normalize": {ratio: {"layer_ratios":
{group: pruned fraction}}}}}``, path or dict) or a long DataFrame with columns ``reg, ratio,
layer, pruned`` (optionally ``criterion, normalize``). One line per regulariser; one panel per
normalisation when several are shown, which is how the notebooks compare the choices.
"""

from __future__ import annotations

import textwrap
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ._data import as_frame, fmt_ratio, load_json_like, natural_key, pick_regs, pick_value
from .style import (
    COLUMN_WIDTH,
    PAGE_WIDTH,
    criterion_label,
    new_figure,
    paper_style,
    reg_style,
    style_plotly,
    top_legend,
)

COLUMNS = ("reg", "criterion", "normalize", "ratio", "layer", "pruned")


def layer_ratios_frame(plans: Any) -> pd.DataFrame:
    """Long table ``reg, criterion, normalize, ratio, layer, pruned`` from plans.json (or a DataFrame)."""
    if isinstance(plans, pd.DataFrame):
        df = plans.rename(columns={"group": "layer", "layer_ratio": "pruned", "target_ratio": "ratio"})
        df = as_frame(df, "layer ratios", ("reg", "ratio", "layer", "pruned"))
        for col in ("criterion", "normalize"):
            if col not in df.columns:
                df[col] = ""
        return df[list(COLUMNS)].astype({"reg": str, "layer": str, "ratio": float, "pruned": float})
    plans = load_json_like(plans, "layer ratios (plans)")
    if not isinstance(plans, Mapping):
        raise ConfigError("layer ratios: plans must map reg -> {criterion/normalize: {ratio: {layer_ratios}}}")
    rows = []
    for reg, by_key in plans.items():
        for key, by_ratio in (by_key or {}).items():
            crit, _, norm = str(key).partition("/")
            for ratio, plan in (by_ratio or {}).items():
                if isinstance(plan, Mapping) and "layer_ratios" not in plan and "error" in plan:
                    continue  # a target Algorithm 1 could not reach under the caps
                lr = plan.get("layer_ratios", plan) if isinstance(plan, Mapping) else None
                if not isinstance(lr, Mapping):
                    raise ConfigError(f"layer ratios: plans[{reg!r}][{key!r}][{ratio!r}] has no 'layer_ratios' mapping")
                try:
                    r = float(ratio)
                except ValueError:
                    raise ConfigError(f"layer ratios: ratio key {ratio!r} of "
                                      f"plans[{reg!r}][{key!r}] is not a number") from None
                rows += [(str(reg), crit, norm, r, str(layer), float(v)) for layer, v in lr.items()]
    if not rows:
        raise ConfigError("layer ratios: the plans contain no layer_ratios; nothing to plot")
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _select(plans: Any, ratio: float, regs: Iterable[str] | None, criterion: str | None,
            normalize: str | Iterable[str] | None):
    """Rows at FLOPs target ``ratio`` (fraction, or percent > 1) for the chosen regs/criterion/normalisations."""
    df = layer_ratios_frame(plans)
    target = float(ratio) / 100 if float(ratio) > 1 else float(ratio)
    ratios = sorted(df["ratio"].unique())
    hit = [r for r in ratios if np.isclose(r, target, atol=1e-6) or np.isclose(r, target * 100, atol=1e-6)]
    if not hit:
        raise ConfigError(f"layer ratios: no plan at FLOPs target {ratio!r}; available: "
                          f"{[fmt_ratio(r) for r in ratios]}")
    df = df[df["ratio"] == hit[0]]
    crit = pick_value(df, "criterion", criterion, ("out_in", ""), "layer ratios")
    df = df[df["criterion"] == crit]
    norms = list(dict.fromkeys(df["normalize"]))
    if normalize is not None:
        wanted = [normalize] if isinstance(normalize, str) else list(normalize)
        bad = [n for n in wanted if n not in norms]
        if bad or not wanted:
            raise ConfigError(f"layer ratios: normalize {bad or '[]'} not in the plans; available: {norms}")
        norms = wanted
    else:
        norms = sorted(norms, key=lambda n: (n != "layer_max", n))
    regs = pick_regs(df["reg"].unique(), regs, "layer ratios")
    df = df[df["reg"].isin(regs) & df["normalize"].isin(norms)]
    layers = sorted(df["layer"].unique(), key=natural_key)
    return df, hit[0], crit, norms, regs, layers


def _stage(layer: str) -> str:
    """The stage prefix of a layer name (``layer3.8.conv1`` -> ``layer3``) for separators."""
    return layer.split(".", 1)[0]


def _title(ratio: float, crit: str) -> str:
    """Figure title naming the FLOPs target and the ranking criterion."""
    by = f", ranked by {criterion_label(crit)}" if crit else ""
    return f"Per-layer pruning chosen by Algorithm 1 at {fmt_ratio(ratio)} FLOPs pruned{by}"


def static_layer_ratios(plans: Any, ratio: float, regs: Iterable[str] | None = None, criterion: str | None = None,
                        normalize: str | Iterable[str] | None = None, cap: float | None = None):
    """Algorithm 1 outcome (matplotlib): % channels removed per layer pair, one line per regulariser."""
    df, r, crit, norms, regs, layers = _select(plans, ratio, regs, criterion, normalize)
    pos = {layer: i for i, layer in enumerate(layers)}
    width = COLUMN_WIDTH if len(layers) <= 14 else PAGE_WIDTH
    with paper_style():
        fig, axes = new_figure(width, 0.9 + 1.7 * len(norms), nrows=len(norms), ncols=1, squeeze=False,
                               sharex=True, sharey=True)
        for ax, norm in zip(axes[:, 0], norms):
            sub = df[df["normalize"] == norm]
            for reg in regs:
                c = sub[sub["reg"] == reg].sort_values("layer", key=lambda s: s.map(pos))
                if c.empty:
                    continue
                st = reg_style(reg)
                ax.plot(c["layer"].map(pos), c["pruned"] * 100, color=st.color, marker=st.marker,
                        label=st.label, linewidth=1.0, markersize=3.8, alpha=0.95)
            for i in range(1, len(layers)):
                if _stage(layers[i]) != _stage(layers[i - 1]):
                    ax.axvline(i - 0.5, color="#BBBBBB", linewidth=0.7, zorder=0)
            if cap is not None:
                ax.axhline(cap * 100 if cap <= 1 else cap, color="#777777", linestyle="--", linewidth=0.8)
                ax.annotate("cap", xy=(1, cap * 100 if cap <= 1 else cap), xycoords=("axes fraction", "data"),
                            xytext=(2, 0), textcoords="offset points", ha="left", va="center", fontsize=6,
                            color="#555555")
            ax.set_ylabel("channels removed (%)")
            ax.set_ylim(bottom=0)
            if len(norms) > 1 or norm:
                ax.set_title(f"normalize = {norm}" if norm else "", loc="left", fontsize=7.5)
        ax = axes[-1, 0]
        ax.set_xticks(range(len(layers)))
        small = len(layers) > 14
        ax.set_xticklabels(layers, rotation=90, fontsize=5.5 if small else 6.5)
        ax.set_xlim(-0.6, len(layers) - 0.4)
        ax.set_xlabel("layer pair (producer conv, network order)")
        for a in axes[:, 0]:
            a.grid(axis="x", visible=False)
        h, lab = axes[0, 0].get_legend_handles_labels()
        title = _title(r, crit)
        if width == COLUMN_WIDTH:
            title = textwrap.fill(title, 52)
        top_legend(fig, h, lab, min(len(lab), 6), title, compact=width == COLUMN_WIDTH)
    return fig


def interactive_layer_ratios(plans: Any, ratio: float, regs: Iterable[str] | None = None,
                             criterion: str | None = None, normalize: str | Iterable[str] | None = None,
                             cap: float | None = None):
    """Algorithm 1 outcome (plotly): % channels removed per layer pair; hover names layer and regulariser."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df, r, crit, norms, regs, layers = _select(plans, ratio, regs, criterion, normalize)
    pos = {layer: i for i, layer in enumerate(layers)}
    fig = make_subplots(rows=len(norms), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"normalize = {n}" if n else "" for n in norms])
    for row, norm in enumerate(norms, start=1):
        sub = df[df["normalize"] == norm]
        for reg in regs:
            c = sub[sub["reg"] == reg].sort_values("layer", key=lambda s: s.map(pos))
            if c.empty:
                continue
            st = reg_style(reg)
            fig.add_trace(go.Scatter(
                x=c["layer"], y=c["pruned"] * 100, name=st.label, legendgroup=reg, showlegend=row == 1,
                mode="lines+markers", line=dict(color=st.color, width=1.5),
                marker=dict(symbol=st.symbol, size=7, color=st.color),
                hovertemplate=(f"<b>%{{x}}</b><br>{st.label}"
                               f"{' · ' + norm if norm else ''}: %{{y:.1f}}% channels removed<extra></extra>"),
            ), row=row, col=1)
        if cap is not None:
            fig.add_hline(y=cap * 100 if cap <= 1 else cap, line=dict(color="#777777", dash="dash", width=1),
                          row=row, col=1, annotation_text="per-layer cap")
        fig.update_yaxes(title_text="channels removed (%)", rangemode="tozero", row=row, col=1)
    fig.update_xaxes(categoryorder="array", categoryarray=layers, tickangle=-60)
    style_plotly(fig, _title(r, crit), height=160 + 300 * len(norms),
                 lift_legend=28)
    return fig
