"""Shared look of every figure: one colour + marker per regulariser, paper-style rc, plotly template.

Regulariser names, their order and their labels come from the regulariser registry
(:mod:`oicsr_lab.regularizers.registry`); only the colours and markers live here
(:data:`REG_LOOKS`, keyed by registry name). A registered regulariser without an entry still
draws, with a stable fallback look.

Colours are the Okabe-Ito palette (safe for the common colour-vision deficiencies, and the
same hues as seaborn's "colorblind" palette); every regulariser also gets its own marker so
curves stay distinguishable in greyscale print. The paper's method (OICSR-GL) is vermillion,
the strongest hue; the unstructured L2 baseline is black.
"""

from __future__ import annotations

import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import matplotlib as mpl
from matplotlib.figure import Figure

from ..regularizers.registry import names as regularizer_names
from ..regularizers.registry import reg_label as _registry_label

# Okabe & Ito (2008) "Color Universal Design" palette.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7",
}

COLUMN_WIDTH = 3.4  # inches: one column of a two-column paper (CVPR 3.25 in + margin)
PAGE_WIDTH = 6.9  # inches: full text width


@dataclass(frozen=True)
class RegLook:
    """How one regulariser is drawn: colour and matplotlib / plotly marker."""

    color: str
    marker: str
    symbol: str


@dataclass(frozen=True)
class RegStyle:
    """How one regulariser is drawn everywhere: legend label (from the registry), colour, markers."""

    label: str
    color: str
    marker: str
    symbol: str


# keyed by regulariser registry name (oicsr_lab.regularizers.names())
REG_LOOKS: dict[str, RegLook] = {
    "l2": RegLook(OKABE_ITO["black"], "o", "circle"),
    "gl": RegLook(OKABE_ITO["sky_blue"], "s", "square"),
    "l1bn": RegLook(OKABE_ITO["orange"], "^", "triangle-up"),
    "oicsr_gl": RegLook(OKABE_ITO["vermillion"], "D", "diamond"),
    "growl": RegLook(OKABE_ITO["bluish_green"], "v", "triangle-down"),
    "oicsr_growl": RegLook(OKABE_ITO["reddish_purple"], "P", "cross"),
}

_EXTRA = [RegLook(OKABE_ITO["blue"], "X", "x"), RegLook("#7F7F7F", "h", "hexagon"),
          RegLook(OKABE_ITO["yellow"], "*", "star")]

# the floors (random channel choice, uniform per-layer pruning): one grey, two dash patterns, in every figure
FLOOR_STYLE: dict[str, tuple[str, tuple]] = {"random": ("#7F7F7F", (0, (4, 2))),
                                             "uniform": ("#7F7F7F", (0, (1.5, 1.5)))}


def reg_style(reg: str) -> RegStyle:
    """The fixed style of regulariser ``reg``; names without a look get a stable fallback look."""
    key = str(reg)
    look = REG_LOOKS.get(key) or _EXTRA[zlib.crc32(key.encode()) % len(_EXTRA)]
    return RegStyle(_registry_label(key), look.color, look.marker, look.symbol)


def reg_label(reg: str) -> str:
    """Legend label of regulariser ``reg`` (``oicsr_gl`` -> ``OICSR-GL``; the registry's label)."""
    return _registry_label(reg)


def criterion_label(criterion: str) -> str:
    """Readable name of an importance criterion: its registered label (``out_in`` -> ``out-in energy``).

    The criteria registry imports torch, so it is read here, on first use, not when the plots load
    (a report that only names regularisers stays torch-free).
    """
    from ..criteria import label

    return label(criterion)


def order_regs(regs: Iterable[str]) -> list[str]:
    """Regularisers in the registry's order (L2, GL, L1-BN, OICSR-GL, GrOWL, OICSR-GrOWL), then others sorted."""
    regs = list(dict.fromkeys(str(r) for r in regs))
    order = regularizer_names()
    return [r for r in order if r in regs] + sorted(r for r in regs if r not in order)


PAPER_RC = {
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "legend.handlelength": 2.2,
    "figure.titlesize": 9,
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.5,
    "axes.axisbelow": True,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.5,
    "xtick.major.width": 0.8,
    "ytick.major.width": 0.8,
    "xtick.direction": "out",
    "ytick.direction": "out",
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, accepted by paper submission systems
    "ps.fonttype": 42,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "figure.dpi": 100,
}


@contextmanager
def paper_style() -> Iterator[None]:
    """Context in which figures are built with the paper rc (fonts, spines, grid)."""
    with mpl.rc_context(PAPER_RC):
        yield


def new_figure(width: float = COLUMN_WIDTH, height: float = 2.4, **subplots) -> tuple[Figure, object]:
    """A pyplot-free Figure (works headless, never shown) and its axes from ``subplots``."""
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(**subplots) if subplots else fig.add_subplot()
    return fig, axes


def percent_if_fraction(values) -> tuple[object, bool]:
    """Scale values to percent when they all lie in [0, 1]; return (values, scaled)."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    if finite.size and finite.min() >= 0 and finite.max() <= 1.0:
        return arr * 100.0, True
    return arr, False


PLOTLY_LAYOUT = dict(
    template="simple_white",
    font=dict(family="Arial, Helvetica, sans-serif", size=13),
    hoverlabel=dict(font_size=12),
    legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
    margin=dict(l=70, r=20, t=80, b=60),
)


def style_plotly(fig, title: str | None = None, height: int = 480, lift_legend: int = 0):
    """Apply the shared plotly layout (white template, light grid, top legend) to ``fig``.

    ``lift_legend`` (pixels) raises the legend above subplot titles.
    """
    fig.update_layout(**PLOTLY_LAYOUT)
    top, bottom = 90 + lift_legend, PLOTLY_LAYOUT["margin"]["b"]
    fig.update_layout(height=height, margin_t=top, legend_y=1 + (6 + lift_legend) / max(height - top - bottom, 50))
    if title:
        fig.update_layout(title=dict(text=title, x=0, xanchor="left", y=1 - 12 / height, yanchor="top"))
    fig.update_xaxes(showgrid=True, gridcolor="#E5E5E5", ticks="outside", mirror=False)
    fig.update_yaxes(showgrid=True, gridcolor="#E5E5E5", ticks="outside", mirror=False)
    return fig


def top_legend(fig: Figure, handles: list, labels: list, ncols: int, title: str | None = None,
               compact: bool = False):
    """A figure legend above all panels; ``title`` (the figure's title/note) sits on top of it.

    Constrained layout does not stack ``suptitle`` and an ``outside`` figure legend (they
    overlap), so the figure title is carried as the legend title instead.
    """
    extra = dict(fontsize=6.2, handlelength=1.7, columnspacing=0.8, handletextpad=0.4) if compact else {}
    leg = fig.legend(handles, labels, loc="outside upper center", ncols=max(1, ncols), frameon=False,
                     title=title, title_fontsize=7 if compact else 7.5, **{"columnspacing": 1.4, **extra})
    if title:
        leg.get_title().set_multialignment("center")
    return leg
