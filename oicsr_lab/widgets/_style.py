"""How the explorers draw and name things: regulariser colours and labels, layer-pair names, HTML escaping.

Regulariser labels and order come from the regulariser registry and colours from
:mod:`oicsr_lab.plots.style`, so a run looks the same in every widget and figure.
"""

from __future__ import annotations

import html
from typing import Any

from ..groups.types import ChannelGroup
from ..plots.style import order_regs, reg_label, reg_style

__all__ = ["PRUNED_COLOR", "DENSE_COLOR", "reg_color", "reg_label", "order_regs", "group_label", "esc"]

PRUNED_COLOR = "#9E9E9E"  # markers of channels that go
DENSE_COLOR = "#D9D9D9"  # the dense (unpruned) reference


def reg_color(reg: str) -> str:
    """The shared colour of regulariser ``reg`` (:func:`oicsr_lab.plots.style.reg_style`)."""
    return reg_style(reg).color


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
