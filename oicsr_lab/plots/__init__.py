"""Figures of the paper from ``reproduce``'s plain data: ``static_*`` (matplotlib) and ``interactive_*`` (plotly).

Every regulariser has one fixed colour + marker (``style.REG_LOOKS``, Okabe-Ito, keyed by the regulariser
registry's names) and its registry label in every figure.
``save_figure`` writes PNG + PDF or offline HTML; ``write_report`` writes the folder's index.html.
"""

from __future__ import annotations

from .accuracy import accuracy_curves, interactive_accuracy_vs_flops, static_accuracy_vs_flops
from .criteria import static_criteria_panel
from .energy import (
    default_layer,
    energy_table,
    interactive_energy_distribution,
    interactive_energy_grid,
    layer_names,
    static_energy_distribution,
    static_energy_grid,
)
from .layers import interactive_layer_ratios, layer_ratios_frame, static_layer_ratios
from .pipeline import interactive_pipeline, pipeline_frame, pipeline_summary, static_pipeline
from .protocol import static_finetuned, static_protocol_fig4
from .report import write_report
from .save import ensure_plotlyjs, save_figure
from .style import REG_LOOKS, paper_style, reg_label, reg_style
from .table1 import static_table1, table1_frame, table1_html

__all__ = [
    "static_energy_distribution", "interactive_energy_distribution", "static_energy_grid",
    "interactive_energy_grid", "default_layer", "energy_table", "layer_names",
    "static_accuracy_vs_flops", "interactive_accuracy_vs_flops", "accuracy_curves",
    "static_layer_ratios", "interactive_layer_ratios", "layer_ratios_frame",
    "static_pipeline", "interactive_pipeline", "pipeline_frame", "pipeline_summary", "static_protocol_fig4",
    "static_finetuned",
    "static_criteria_panel",
    "table1_html", "static_table1", "table1_frame",
    "save_figure", "ensure_plotlyjs", "write_report",
    "REG_LOOKS", "reg_style", "reg_label", "paper_style",
]
