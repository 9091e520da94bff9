"""Figure 2's iterative procedure in numbers: accuracy before/after retraining and FLOPs per step.

Input: ``pipeline.csv`` of ``reproduce`` (path or DataFrame) with columns ``reg, step,
target_ratio, achieved_ratio, acc_before_retrain, acc_after_retrain, flops, params, widths``.
Top panel: accuracy right after each pruning step (dashed, open markers) and after retraining
(solid, filled); bottom panel: the remaining FLOPs (multiply-accumulates, millions). With a
``seed`` column holding several seeds (``reproduce --pipeline-seeds all``) each point is the mean
over seeds with its 95 % Student-t interval as an error bar (:func:`pipeline_summary`).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ._data import as_frame, pick_regs
from .style import COLUMN_WIDTH, new_figure, paper_style, reg_style, style_plotly

REQUIRED = ("reg", "step", "acc_before_retrain", "acc_after_retrain", "flops")


def pipeline_frame(pipeline_df: Any, regs: Iterable[str] | None = None) -> pd.DataFrame:
    """Validated pipeline rows in canonical regulariser order, accuracies in %, FLOPs in millions."""
    df = as_frame(pipeline_df, "pipeline", REQUIRED)
    df["reg"] = df["reg"].astype(str)
    regs = pick_regs(df["reg"].unique(), regs, "pipeline")
    df = df[df["reg"].isin(regs)].copy()
    acc = df[["acc_before_retrain", "acc_after_retrain"]].astype(float)
    scale = 100.0 if np.nanmax(acc.to_numpy()) <= 1.0 else 1.0
    df["before"] = acc["acc_before_retrain"] * scale
    df["after"] = acc["acc_after_retrain"] * scale
    if "stage" in df.columns:  # the final fine-tune prunes nothing: it has no "before retraining" point of its own
        df.loc[df["stage"].astype(str) == "finetune", "before"] = np.nan
    df["mflops"] = df["flops"].astype(float) / 1e6
    for col in ("target_ratio", "achieved_ratio"):
        if col in df.columns:
            v = df[col].astype(float)
            df[col + "_pct"] = v * 100 if v.max() <= 1 else v
    df["_r"] = df["reg"].map({r: i for i, r in enumerate(regs)})
    df = df.sort_values(["_r", "step"]).drop(columns="_r").reset_index(drop=True)
    df.attrs["regs"] = regs
    return df


def pipeline_summary(pipeline_df: Any, regs: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per (regulariser, step): mean accuracy before/after retraining over seeds with their 95 %
    t-intervals (``before_lo``/``before_hi``, ``after_lo``/``after_hi``; NaN with one seed), mean FLOPs and
    achieved ratio, and ``n`` seeds. Without a ``seed`` column every row counts as one seed.

    >>> rows = [{"reg": "gl", "step": 0, "acc_before_retrain": a, "acc_after_retrain": a, "flops": 4e7, "seed": s}
    ...         for s, a in enumerate((70.0, 72.0, 74.0))]
    >>> r = pipeline_summary(rows).iloc[0]
    >>> float(r["after"]), int(r["n"]), round(float(r["after_lo"]), 2)
    (72.0, 3, 67.03)
    """
    from ..stats import mean_ci

    df = pipeline_frame(pipeline_df, regs)
    if "seed" not in df.columns:
        df["seed"] = 0
    keys = ["reg", "step"]
    out = []
    for (reg, step), g in df.groupby(keys, sort=False):
        row: dict[str, Any] = {"reg": reg, "step": step, "n": int(g["seed"].nunique())}
        for col in ("before", "after"):
            vals = g[col].dropna().tolist()  # the fine-tune stage has no "before" point
            ci = mean_ci(vals) if vals else None
            row[col], row[col + "_lo"], row[col + "_hi"] = (ci.mean, ci.lo, ci.hi) if ci else (np.nan,) * 3
        for col in ("mflops", "target_ratio_pct", "achieved_ratio_pct", "params"):
            if col in g.columns:
                row[col] = float(g[col].astype(float).mean())
        if "stage" in g.columns:
            row["stage"] = str(g["stage"].iloc[0])
        out.append(row)
    res = pd.DataFrame(out)
    res.attrs["regs"] = df.attrs["regs"]
    return res


def _yerr(c: pd.DataFrame, col: str) -> np.ndarray | None:
    """Asymmetric error bars (2, n) from the interval columns, None where no point has an interval."""
    lo, hi = c[col + "_lo"].to_numpy(float), c[col + "_hi"].to_numpy(float)
    if np.all(np.isnan(lo)):
        return None
    mean = c[col].to_numpy(float)
    return np.nan_to_num(np.vstack([mean - lo, hi - mean]))


def _step_ticks(df: pd.DataFrame) -> tuple[list[int], list[str]]:
    """Step ticks, labelled with the FLOPs target when every regulariser shares it."""
    steps = sorted(df["step"].unique())
    labels = [str(s) for s in steps]
    if "target_ratio_pct" in df.columns:
        # a plain loop, not .agg(): an aggregation returning an array fails on some pandas releases (3.0.6:
        # "Must produce aggregated value"), which cost the GPU run its pipeline figure
        tgt = {s: g.round(3).unique() for s, g in df.groupby("step")["target_ratio_pct"]}
        if all(len(tgt[s]) == 1 for s in steps):
            labels = [f"{s}\n{tgt[s][0]:.3g}%" for s in steps]
    return steps, labels


def static_pipeline(pipeline_df: Any, regs: Iterable[str] | None = None):
    """Figure 2 pipeline (matplotlib): accuracy before/after retraining (top) and FLOPs (bottom) per step; over
    several seeds the mean with 95 % interval bars, and the number of seeds in the title."""
    df = pipeline_summary(pipeline_df, regs)
    steps, labels = _step_ticks(df)
    n_seeds = int(df["n"].max())
    with paper_style():
        fig, (ax_acc, ax_fl) = new_figure(COLUMN_WIDTH, 3.9, nrows=2, ncols=1, sharex=True,
                                          gridspec_kw=dict(height_ratios=[1.6, 1]))
        reg_handles = []
        k = len(df.attrs["regs"])
        for i, reg in enumerate(df.attrs["regs"]):
            c = df[df["reg"] == reg]
            st = reg_style(reg)
            # over seeds, methods are dodged sideways a little so their interval bars do not hide each other
            x = c["step"] + ((i - (k - 1) / 2) * min(0.06, 0.3 / k) if n_seeds > 1 else 0.0)
            ax_acc.plot(x, c["before"], color=st.color, marker=st.marker, linestyle=(0, (3, 2)),
                        linewidth=1.0, markerfacecolor="white")
            ax_acc.plot(x, c["after"], color=st.color, marker=st.marker, linewidth=1.5)
            for col in ("before", "after"):
                err = _yerr(c, col)
                if err is not None:  # interval bars as their own container, so the lines above stay two per method
                    ax_acc.errorbar(x, c[col], yerr=err, fmt="none", ecolor=st.color, elinewidth=0.8,
                                    capsize=0, alpha=0.8 if col == "after" else 0.5)
            ax_fl.plot(c["step"], c["mflops"], color=st.color, marker=st.marker, linewidth=1.3)
            reg_handles.append(Line2D([], [], color=st.color, marker=st.marker, label=st.label))
        kind = [Line2D([], [], color="#333333", marker="o", label="after retraining"),
                Line2D([], [], color="#333333", marker="o", markerfacecolor="white", linestyle=(0, (3, 2)),
                       linewidth=1.0, label="before retraining")]
        ax_acc.set_ylabel("top-1 accuracy (%)")
        ax_fl.set_ylabel("FLOPs (M MACs)")
        ax_fl.set_ylim(bottom=0)
        ax_fl.set_xticks(steps)
        ax_fl.set_xticklabels(labels)
        has_target = "\n" in labels[0]
        ax_fl.set_xlabel("pruning step" + (" (FLOPs target)" if has_target else ""))
        ax_acc.set_title("Iterative prune → retrain" + (f", {n_seeds} seeds (mean, 95 % CI)" if n_seeds > 1
                                                        else " (Figure 2 procedure)"), loc="left")
        leg = ax_acc.legend(handles=kind, loc="lower left", fontsize=6.5)
        ax_acc.add_artist(leg)
        fig.legend(handles=reg_handles, loc="outside upper center", ncols=min(len(reg_handles), 6), frameon=False)
    return fig


def interactive_pipeline(pipeline_df: Any, regs: Iterable[str] | None = None):
    """Figure 2 pipeline (plotly): accuracy before/after retraining and FLOPs per step, hover with details; over
    several seeds the mean with 95 % interval error bars."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = pipeline_summary(pipeline_df, regs)
    n_seeds = int(df["n"].max())
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.06)
    for reg in df.attrs["regs"]:
        c = df[df["reg"] == reg]
        st = reg_style(reg)
        custom = np.stack([c.get("target_ratio_pct", pd.Series(np.nan, index=c.index)),
                           c.get("achieved_ratio_pct", pd.Series(np.nan, index=c.index)),
                           c["mflops"], c["params"].astype(float) / 1e6 if "params" in c else c["mflops"] * np.nan],
                          axis=1)
        info = ("<br>target %{customdata[0]:.3g}% · achieved %{customdata[1]:.3g}% FLOPs pruned"
                "<br>%{customdata[2]:.2f} M MACs · %{customdata[3]:.3f} M params<extra></extra>")
        for col, kind, dash, sym in (("before", "before retraining", "dash", st.symbol + "-open"),
                                     ("after", "after retraining", "solid", st.symbol)):
            err = _yerr(c, col)
            fig.add_trace(go.Scatter(
                x=c["step"], y=c[col], name=f"{st.label}, {kind}", legendgroup=reg, mode="lines+markers",
                line=dict(color=st.color, dash=dash, width=2 if col == "after" else 1.4),
                marker=dict(symbol=sym, size=8, color=st.color), customdata=custom,
                error_y=None if err is None else dict(type="data", symmetric=False, array=err[1], arrayminus=err[0],
                                                      color=st.color, thickness=1, width=3),
                hovertemplate=f"<b>{st.label}</b> step %{{x}}<br>top-1 {kind} %{{y:.2f}}%"
                + (f" (mean of {n_seeds} seeds)" if n_seeds > 1 else "") + info,
            ), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=c["step"], y=c["mflops"], name=f"{st.label}, FLOPs", legendgroup=reg, showlegend=False,
            mode="lines+markers", line=dict(color=st.color, width=1.8),
            marker=dict(symbol=st.symbol, size=7, color=st.color), customdata=custom,
            hovertemplate=f"<b>{st.label}</b> step %{{x}}" + info,
        ), row=2, col=1)
    style_plotly(fig, "Iterative prune → retrain: accuracy and FLOPs per step", height=640, lift_legend=22)
    fig.update_yaxes(title_text="top-1 accuracy (%)", row=1, col=1)
    fig.update_yaxes(title_text="FLOPs (M MACs)", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="pruning step", dtick=1, row=2, col=1)
    return fig

