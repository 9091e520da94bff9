"""The pruning explorer's view parts: run toggles, the kept-channels and accuracy figures, their layout."""

from __future__ import annotations

import ipywidgets as W
import plotly.graph_objects as go

from ..groups.types import ChannelGroup
from ._style import DENSE_COLOR, reg_color, reg_label

__all__ = ["style_toggle", "kept_channels_figure", "accuracy_figure", "figure_row"]


def style_toggle(toggle: W.ToggleButton, reg: str) -> None:
    """A run's show/hide button: on, a check mark and the run's colour in bold; off, grey and struck through."""
    on = bool(toggle.value)
    toggle.icon = "check" if on else ""
    toggle.tooltip = f"{'hide' if on else 'show'} {reg_label(reg)}"
    toggle.style.text_color = reg_color(reg) if on else "#9E9E9E"
    toggle.style.font_weight = "bold" if on else "normal"
    toggle.style.text_decoration = "none" if on else "line-through"


def kept_channels_figure(groups: list[ChannelGroup], regs: list[str]) -> go.Figure:
    """Kept channels per layer pair: the dense widths as marks, one bar trace per run (built complete)."""
    names, sizes = [g.name for g in groups], [g.size for g in groups]
    fig = go.Figure()  # built complete, then wrapped (oicsr_lab.widgets._figure)
    fig.add_scatter(x=names, y=sizes, mode="markers", name="dense", hoverinfo="x+y",
                    marker=dict(symbol="line-ew-open", size=14, color="#7F7F7F", line=dict(width=2)))
    for reg in regs:
        fig.add_bar(x=names, y=sizes, name=reg_label(reg), marker_color=reg_color(reg))
    fig.update_layout(
        barmode="group", height=400, autosize=True, template="simple_white", margin=dict(l=60, r=10, t=64, b=120),
        title=dict(text="kept channels per layer pair", x=0, y=1, yanchor="top", pad=dict(t=6), font=dict(size=14)),
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"),
        xaxis=dict(tickangle=-60, tickfont=dict(size=9)), yaxis=dict(title="kept channels", rangemode="tozero"),
    )
    return fig


def accuracy_figure(regs: list[str]) -> go.Figure:
    """Top-1 before retraining per run: dense reference bars and the pruned bars (built complete)."""
    acc = go.Figure()
    labels = [reg_label(r) for r in regs]
    acc.add_bar(x=labels, y=[0.0] * len(labels), name="dense", marker_color=DENSE_COLOR)
    acc.add_bar(x=labels, y=[0.0] * len(labels), name="pruned", text=[""] * len(labels),
                textposition="outside", marker_color=[reg_color(r) for r in regs])
    acc.update_layout(
        barmode="group", height=400, autosize=True, template="simple_white", margin=dict(l=50, r=10, t=64, b=120),
        title=dict(text="top-1 before retraining", x=0, y=1, yanchor="top", pad=dict(t=6), font=dict(size=14)),
        showlegend=True,
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"),
        yaxis=dict(title="accuracy (%)", range=[0, 100]),
    )
    return acc


def figure_row(bars_fig: W.DOMWidget, acc_fig: W.DOMWidget) -> W.Box:
    """The two figures side by side while they fit, the accuracy one wrapped below otherwise.

    Neither figure has a fixed width: each autosizes to its flex cell, so the explorer fits a
    JupyterLab notebook with the file browser open (about 900 px) and grows on wider pages.
    """
    cell = dict(min_width="0", overflow="hidden")  # a figure cell may shrink below its content
    bars = W.VBox([bars_fig], layout=W.Layout(flex="3 1 480px", **cell))
    acc = W.VBox([acc_fig], layout=W.Layout(flex="1 1 280px", max_width="420px", **cell))
    return W.Box([bars, acc], layout=W.Layout(display="flex", flex_flow="row wrap", width="100%",
                                              align_items="flex-start"))
