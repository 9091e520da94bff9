"""Write figures to disk atomically: PNG + PDF for matplotlib, HTML for plotly (offline-viewable).

Matplotlib figures are built pyplot-free (``matplotlib.figure.Figure``), so saving uses the Agg /
PDF canvases directly: it works headless and never opens a window. Plotly HTML never points at a
CDN: by default (``plotlyjs="beside"``) the folder gets one ``plotly.min.js`` (written once, the
copy bundled with the installed plotly) and every HTML file loads it with a relative
``<script src>``, so a report folder of many figures carries plotly.js once and opens offline.
``plotlyjs="inline"`` embeds the library in each file instead (self-contained, ~4.7 MB each).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

PLOTLY_JS = "plotly.min.js"
_SUFFIXES = (".png", ".pdf", ".html")
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                  "toImageButtonOptions": {"format": "svg", "scale": 1}}


def _stem(path_stem: str | os.PathLike) -> Path:
    """``path_stem`` as a Path, with a trailing .png/.pdf/.html removed."""
    p = Path(path_stem)
    return p.with_suffix("") if p.suffix.lower() in _SUFFIXES else p


def ensure_plotlyjs(folder: str | os.PathLike) -> Path:
    """Write the installed plotly's ``plotly.min.js`` into ``folder`` unless an identical copy is there."""
    from plotly.offline import get_plotlyjs

    path = Path(folder) / PLOTLY_JS
    js = get_plotlyjs()
    if not path.exists() or path.stat().st_size != len(js.encode()):
        write_utf8(path, js)
    return path


def write_utf8(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (independent of the locale)."""
    from ..io import atomic_path  # lazy: oicsr_lab.io imports torch

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _is_plotly(fig: Any) -> bool:
    """Whether ``fig`` is a plotly figure (go.Figure or FigureWidget)."""
    try:
        from plotly.basedatatypes import BaseFigure
    except ImportError:  # pragma: no cover - plotly is a dependency
        return False
    return isinstance(fig, BaseFigure)


def save_figure(fig: Any, path_stem: str | os.PathLike, dpi: int = 200, plotlyjs: str = "beside") -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` + ``<stem>.pdf`` (matplotlib) or ``<stem>.html`` (plotly); return the paths."""
    from matplotlib.figure import Figure

    from ..io import atomic_path  # lazy: oicsr_lab.io imports torch

    stem = _stem(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(fig, Figure):
        written = []
        for ext, kw in (("png", {"dpi": dpi, "metadata": {"Software": None}}),
                        ("pdf", {"metadata": {"Creator": "oicsr-lab", "CreationDate": None}})):
            out = stem.with_name(stem.name + "." + ext)
            with atomic_path(out) as tmp:
                fig.savefig(tmp, format=ext, bbox_inches="tight", pad_inches=0.03, facecolor="white", **kw)
            written.append(out)
        return written
    if _is_plotly(fig):
        if plotlyjs not in ("beside", "inline"):
            raise ConfigError(f"save_figure: plotlyjs must be 'beside' or 'inline' (offline); got {plotlyjs!r}")
        out = stem.with_name(stem.name + ".html")
        if plotlyjs == "beside":
            ensure_plotlyjs(out.parent)
        text = fig.to_html(full_html=True, include_plotlyjs=PLOTLY_JS if plotlyjs == "beside" else True,
                           config=_PLOTLY_CONFIG)
        write_utf8(out, text)
        return [out]
    raise ConfigError(f"save_figure: expected a matplotlib Figure or a plotly Figure, got {type(fig).__name__}")
