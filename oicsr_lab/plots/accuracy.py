"""Figure 4: top-1 accuracy before retraining vs FLOPs pruning ratio, one curve per regulariser.

Input: ``sweep.csv`` of ``reproduce`` (path or DataFrame) with columns ``model, reg, criterion,
normalize, ratio, achieved_ratio, acc_before_retrain, flops, params, seed``. Ratios and
accuracies given as fractions (all values in [0, 1]) are shown in percent. Solid curves rank
every regulariser by one criterion (default ``out_in``, eq. 5); ``show_own_criteria`` adds each
baseline's rows under its other criteria (e.g. GL by out energy, L1-BN by |γ|) as dashed
curves. Several seeds per point are drawn as mean ± one standard deviation (a band).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ._data import as_frame, natural_sorted, pick_regs, pick_value
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

REQUIRED = ("model", "reg", "ratio", "acc_before_retrain")
_DASHES = [(4, 2), (1.5, 1.5), (6, 2, 1.5, 2)]
_PLOTLY_DASH = ["dash", "dot", "dashdot"]


def accuracy_curves(sweep_df: Any, regs: Iterable[str] | None = None, models: Iterable[str] | None = None,
                    criterion: str | None = None, normalize: str | None = None,
                    show_own_criteria: bool = False, x: str = "ratio") -> pd.DataFrame:
    """Aggregated curves: one row per (model, reg, criterion, ratio) with x, mean, sd, n (in %)."""
    df = as_frame(sweep_df, "accuracy vs FLOPs (sweep)", REQUIRED)
    if x not in ("ratio", "achieved_ratio") or x not in df.columns:
        raise ConfigError("accuracy vs FLOPs: x must be 'ratio' or 'achieved_ratio' (a column of "
                          f"the sweep); got {x!r}")
    if "criterion" not in df.columns:
        df["criterion"] = criterion or "out_in"
    if "seed" not in df.columns:
        df["seed"] = 0
    if "normalize" in df.columns:
        norm = pick_value(df, "normalize", normalize, ("layer_max",), "accuracy vs FLOPs")
        df = df[(df["normalize"] == norm) | df["normalize"].isna()]  # NaN: criteria without normalisation
    main = pick_value(df, "criterion", criterion, ("out_in",), "accuracy vs FLOPs")
    regs = pick_regs(df["reg"].astype(str).unique(), regs, "accuracy vs FLOPs")
    model_list = natural_sorted(df["model"].astype(str).unique())
    if models is not None:
        models = [str(m) for m in models]
        bad = [m for m in models if m not in model_list]
        if bad or not models:
            raise ConfigError(f"accuracy vs FLOPs: model(s) {bad or '[]'} not in the sweep; available: {model_list}")
        model_list = models
    df = df[df["reg"].astype(str).isin(regs) & df["model"].astype(str).isin(model_list)].copy()
    if not show_own_criteria:
        df = df[df["criterion"] == main]
    df = df.dropna(subset=["acc_before_retrain", "ratio"])
    if df.empty:
        raise ConfigError(f"accuracy vs FLOPs: no rows left for criterion {main!r}, regs {regs}, models {model_list}")
    scale_x = 100.0 if df[x].max() <= 1.0 else 1.0
    scale_y = 100.0 if df["acc_before_retrain"].max() <= 1.0 else 1.0
    df["_x"] = df[x].astype(float) * scale_x
    df["_ratio"] = df["ratio"].astype(float).round(6)
    df["_acc"] = df["acc_before_retrain"].astype(float) * scale_y
    agg = (df.groupby(["model", "reg", "criterion", "_ratio"], sort=False)
             .agg(x=("_x", "mean"), mean=("_acc", "mean"), sd=("_acc", "std"), n=("_acc", "size"),
                  lo=("_acc", "min"), hi=("_acc", "max"))
             .reset_index().rename(columns={"_ratio": "ratio"}))
    agg["sd"] = agg["sd"].fillna(0.0)
    agg["main"] = agg["criterion"] == main
    agg["model"] = agg["model"].astype(str)
    agg["reg"] = agg["reg"].astype(str)
    agg["_m"] = agg["model"].map({m: i for i, m in enumerate(model_list)})
    agg["_r"] = agg["reg"].map({r: i for i, r in enumerate(regs)})
    agg = agg.sort_values(["_m", "_r", "main", "criterion", "x"], ascending=[True, True, False, True, True])
    agg = agg.drop(columns=["_m", "_r"])
    agg = agg.reset_index(drop=True)
    agg.attrs.update(main=main, models=model_list, regs=regs, normalize=df["normalize"].iloc[0]
                     if "normalize" in df.columns else None, x=x)
    return agg


def _curve_label(reg: str, crit: str, main: bool) -> str:
    """Legend label: ``GL`` for the main criterion, ``GL (out energy)`` for a baseline's own."""
    return reg_style(reg).label if main else f"{reg_style(reg).label} ({criterion_label(crit)})"


def _xlabel(x: str) -> str:
    """Axis label of the FLOPs ratio column ``x``."""
    return "FLOPs pruned (%)" if x == "ratio" else "FLOPs pruned, achieved (%)"


def _subtitle(agg: pd.DataFrame) -> str:
    """A note with the criterion, normalisation and seed count shown."""
    parts = [f"ranked by {criterion_label(agg.attrs['main'])}"]
    if agg.attrs.get("normalize"):
        parts.append(f"normalize={agg.attrs['normalize']}")
    nmin, nmax = int(agg["n"].min()), int(agg["n"].max())
    if nmax > 1:
        parts.append(f"mean ± s.d. over {nmax if nmin == nmax else f'{nmin}-{nmax}'} seeds")
    return ", ".join(parts)


def _legend_grid(handles: dict[str, Any], agg: pd.DataFrame) -> tuple[list, list, int]:
    """Legend entries in columns: each regulariser's solid curve above its dashed own-criterion curves."""
    from matplotlib.lines import Line2D

    blank = Line2D([], [], alpha=0)
    columns = []
    for reg in agg.attrs["regs"]:
        col = [lab for lab in handles if lab == reg_style(reg).label or lab.startswith(reg_style(reg).label + " (")]
        if col:
            columns.append(col)
    rest = [lab for lab in handles if not any(lab in c for c in columns)]
    columns += [[lab] for lab in rest]
    depth = max(len(c) for c in columns)
    hs, ls = [], []
    for col in columns:
        hs += [handles[lab] for lab in col] + [blank] * (depth - len(col))
        ls += col + [""] * (depth - len(col))
    return hs, ls, len(columns)


def static_accuracy_vs_flops(sweep_df: Any, regs: Iterable[str] | None = None, models: Iterable[str] | None = None,
                             criterion: str | None = None, normalize: str | None = None,
                             show_own_criteria: bool = False, x: str = "ratio",
                             dense_acc: float | dict | None = None, ncols: int | None = None):
    """Figure 4 (matplotlib): accuracy before retraining vs FLOPs pruned, one panel per model."""
    agg = accuracy_curves(sweep_df, regs, models, criterion, normalize, show_own_criteria, x)
    models = agg.attrs["models"]
    cols = ncols or min(len(models), 3)
    rows = -(-len(models) // cols)
    width = COLUMN_WIDTH if cols == 1 else PAGE_WIDTH
    with paper_style():
        fig, axes = new_figure(width, 0.5 + 2.2 * rows, nrows=rows, ncols=cols, squeeze=False, sharey=True)
        handles: dict[str, Any] = {}
        for ax, model in zip(axes.flat, models):
            sub = agg[agg["model"] == model]
            for (reg, crit), c in sub.groupby(["reg", "criterion"], sort=False):
                st = reg_style(reg)
                main = bool(c["main"].iloc[0])
                own = sorted(sub.loc[(sub["reg"] == reg) & ~sub["main"], "criterion"].unique())
                dashes = () if main else _DASHES[own.index(crit) % len(_DASHES)]
                label = _curve_label(reg, crit, main)
                (line,) = ax.plot(c["x"], c["mean"], color=st.color, marker=st.marker, label=label,
                                  linestyle="-" if main else (0, dashes), linewidth=1.5 if main else 1.1,
                                  markerfacecolor=st.color if main else "white", zorder=3 if main else 2)
                if (c["n"] > 1).any():
                    ax.fill_between(c["x"], c["mean"] - c["sd"], c["mean"] + c["sd"], color=st.color,
                                    alpha=0.18 if main else 0.08, linewidth=0, zorder=1)
                handles.setdefault(label, line)
            dense = dense_acc.get(model) if isinstance(dense_acc, dict) else dense_acc
            if dense is not None:
                dense = dense * 100 if dense <= 1 else dense
                h = ax.axhline(dense, color="#777777", linestyle=":", linewidth=1, zorder=0)
                handles.setdefault("dense (unpruned)", h)
            ax.set_title(model, loc="left")
            ax.set_xlabel(_xlabel(agg.attrs["x"]))
            ax.xaxis.set_major_formatter("{x:g}")
        for ax in axes[:, 0]:
            ax.set_ylabel("top-1 before retraining (%)")
        for ax in axes.flat[len(models):]:
            ax.set_visible(False)
        hs, ls, ncols = _legend_grid(handles, agg)
        if width == COLUMN_WIDTH and ncols > 3 and len(hs) == ncols:  # one row too wide for a column: two rows
            ncols = -(-ncols // 2)
        note = _subtitle(agg)
        sep = "\n" if width == COLUMN_WIDTH else ": "
        if width == COLUMN_WIDTH and len(note) > 60:
            note = note.replace(", mean", ",\nmean")
        top_legend(fig, hs, ls, ncols, "Top-1 before retraining" + sep + note, compact=width == COLUMN_WIDTH)
    return fig


def interactive_accuracy_vs_flops(sweep_df: Any, regs: Iterable[str] | None = None, models: Iterable[str] | None = None,
                                  criterion: str | None = None, normalize: str | None = None,
                                  show_own_criteria: bool = False, x: str = "ratio",
                                  dense_acc: float | dict | None = None):
    """Figure 4 (plotly): accuracy before retraining vs FLOPs pruned; hover shows mean, s.d., seeds."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    agg = accuracy_curves(sweep_df, regs, models, criterion, normalize, show_own_criteria, x)
    models = agg.attrs["models"]
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True,
                        horizontal_spacing=0.06)
    seen: set[str] = set()
    for col, model in enumerate(models, start=1):
        sub = agg[agg["model"] == model]
        for (reg, crit), c in sub.groupby(["reg", "criterion"], sort=False):
            st = reg_style(reg)
            main = bool(c["main"].iloc[0])
            own = sorted(sub.loc[(sub["reg"] == reg) & ~sub["main"], "criterion"].unique())
            label = _curve_label(reg, crit, main)
            if (c["n"] > 1).any():
                xs = np.concatenate([c["x"], c["x"][::-1]])
                ys = np.concatenate([c["mean"] + c["sd"], (c["mean"] - c["sd"])[::-1]])
                fig.add_trace(go.Scatter(x=xs, y=ys, fill="toself", mode="lines",
                                         fillcolor=_rgba(st.color, 0.18 if main else 0.08),
                                         line=dict(width=0), hoverinfo="skip", showlegend=False,
                                         legendgroup=label, name=f"{label} ± s.d."), row=1, col=col)
            custom = np.stack([c["ratio"] * (100 if c["ratio"].max() <= 1 else 1), c["sd"], c["n"],
                               c["lo"], c["hi"]], axis=1)
            fig.add_trace(go.Scatter(
                x=c["x"], y=c["mean"], name=label, legendgroup=label, showlegend=label not in seen,
                mode="lines+markers",
                line=dict(color=st.color, width=2.5 if main else 1.6,
                          dash="solid" if main else _PLOTLY_DASH[own.index(crit) % len(_PLOTLY_DASH)]),
                marker=dict(symbol=st.symbol if main else st.symbol + "-open", size=8, color=st.color),
                customdata=custom,
                hovertemplate=(f"<b>{label}</b> · {model}<br>FLOPs pruned %{{x:.1f}}% (target %{{customdata[0]:.3g}}%)"
                               "<br>top-1 %{y:.2f}% ± %{customdata[1]:.2f} (n=%{customdata[2]:d}, "
                               "range %{customdata[3]:.2f}–%{customdata[4]:.2f})<extra></extra>"),
            ), row=1, col=col)
            seen.add(label)
        dense = dense_acc.get(model) if isinstance(dense_acc, dict) else dense_acc
        if dense is not None:
            dense = dense * 100 if dense <= 1 else dense
            fig.add_hline(y=dense, line=dict(color="#777777", dash="dot", width=1), row=1, col=col,
                          annotation_text="dense", annotation_position="top right")
    style_plotly(fig, f"Accuracy before retraining vs FLOPs pruned ({_subtitle(agg)})", height=500, lift_legend=28)
    fig.update_xaxes(title_text=_xlabel(agg.attrs["x"]))
    fig.update_yaxes(title_text="top-1 before retraining (%)", row=1, col=1)
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    """``#RRGGBB`` -> ``rgba(r,g,b,alpha)`` for plotly fills."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
