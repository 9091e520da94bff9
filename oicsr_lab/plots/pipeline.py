"""Figure 2's iterative procedure in numbers: accuracy before/after retraining and FLOPs per step.

Input: ``pipeline.csv`` of ``reproduce`` (path or DataFrame) with columns ``reg, step,
target_ratio, achieved_ratio, acc_before_retrain, acc_after_retrain, flops, params, widths``.
Top panel: accuracy right after each pruning step (dashed, open markers) and after retraining
(solid, filled); bottom panel: the remaining FLOPs (multiply-accumulates, millions).
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


def _step_ticks(df: pd.DataFrame) -> tuple[list[int], list[str]]:
    """Step ticks, labelled with the FLOPs target when every regulariser shares it."""
    steps = sorted(df["step"].unique())
    labels = [str(s) for s in steps]
    if "target_ratio_pct" in df.columns:
        tgt = df.groupby("step")["target_ratio_pct"].agg(lambda v: v.round(3).unique())
        if all(len(tgt[s]) == 1 for s in steps):
            labels = [f"{s}\n{tgt[s][0]:.3g}%" for s in steps]
    return steps, labels


def static_pipeline(pipeline_df: Any, regs: Iterable[str] | None = None):
    """Figure 2 pipeline (matplotlib): accuracy before/after retraining (top) and FLOPs (bottom) per step."""
    df = pipeline_frame(pipeline_df, regs)
    steps, labels = _step_ticks(df)
    with paper_style():
        fig, (ax_acc, ax_fl) = new_figure(COLUMN_WIDTH, 3.9, nrows=2, ncols=1, sharex=True,
                                          gridspec_kw=dict(height_ratios=[1.6, 1]))
        reg_handles = []
        for reg in df.attrs["regs"]:
            c = df[df["reg"] == reg]
            st = reg_style(reg)
            ax_acc.plot(c["step"], c["before"], color=st.color, marker=st.marker, linestyle=(0, (3, 2)),
                        linewidth=1.0, markerfacecolor="white")
            ax_acc.plot(c["step"], c["after"], color=st.color, marker=st.marker, linewidth=1.5)
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
        ax_acc.set_title("Iterative prune → retrain (Figure 2 procedure)", loc="left")
        leg = ax_acc.legend(handles=kind, loc="lower left", fontsize=6.5)
        ax_acc.add_artist(leg)
        fig.legend(handles=reg_handles, loc="outside upper center", ncols=min(len(reg_handles), 6), frameon=False)
    return fig


def interactive_pipeline(pipeline_df: Any, regs: Iterable[str] | None = None):
    """Figure 2 pipeline (plotly): accuracy before/after retraining and FLOPs per step, hover with details."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = pipeline_frame(pipeline_df, regs)
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
            fig.add_trace(go.Scatter(
                x=c["step"], y=c[col], name=f"{st.label}, {kind}", legendgroup=reg, mode="lines+markers",
                line=dict(color=st.color, dash=dash, width=2 if col == "after" else 1.4),
                marker=dict(symbol=sym, size=8, color=st.color), customdata=custom,
                hovertemplate=f"<b>{st.label}</b> step %{{x}}<br>top-1 {kind} %{{y:.2f}}%" + info,
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

