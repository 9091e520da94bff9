"""Write figures to disk atomically: PNG + PDF + SVG for matplotlib, HTML for plotly (offline-viewable).

PDFs embed TrueType fonts (``pdf.fonttype=42``, what journals ask for instead of Type 3) and SVGs
keep text as text; ``stamp`` (e.g. the package version and the run's config hash) goes into the
PDF metadata (Subject, Keywords) and the SVG metadata, so a figure says where it came from.
``columns=True`` also writes single-column (3.4 in) and double-column (6.9 in) versions
(``<stem>_1col.pdf`` / ``_2col.pdf`` and ``.svg``) re-laid-out at those widths.

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
_SUFFIXES = (".png", ".pdf", ".svg", ".html")
VECTOR_RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}
COLUMN_SIZES = {"1col": 3.4, "2col": 6.9}
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


def _stamp_text(stamp: dict[str, Any] | None) -> str:
    return "; ".join(f"{k}={v}" for k, v in (stamp or {}).items())


def _save_matplotlib(fig: Any, stem: Path, dpi: int, stamp: dict[str, Any] | None,
                     exts=("png", "pdf", "svg")) -> list[Path]:
    import matplotlib as mpl

    from ..io import atomic_path  # lazy: oicsr_lab.io imports torch

    text = _stamp_text(stamp)
    meta = {
        "png": {"Software": None, **({"Description": text} if text else {})},
        "pdf": {"Creator": "oicsr-lab", "CreationDate": None, **({"Subject": text, "Keywords": text} if text else {})},
        "svg": {"Creator": "oicsr-lab", "Date": None, **({"Description": text} if text else {})},
    }
    written = []
    with mpl.rc_context(VECTOR_RC):
        for ext in exts:
            out = stem.with_name(stem.name + "." + ext)
            kw = {"dpi": dpi} if ext == "png" else {}
            with atomic_path(out) as tmp:
                fig.savefig(tmp, format=ext, bbox_inches="tight", pad_inches=0.03, facecolor="white",
                            metadata=meta[ext], **kw)
            written.append(out)
    return written


def save_figure(fig: Any, path_stem: str | os.PathLike, dpi: int = 200, plotlyjs: str = "beside",
                stamp: dict[str, Any] | None = None, columns: bool = False) -> list[Path]:
    """Save ``fig`` as ``<stem>.png/.pdf/.svg`` (matplotlib) or ``<stem>.html`` (plotly); return the paths.

    ``stamp``: provenance written into the files' metadata; ``columns``: also single- and
    double-column versions (matplotlib only).
    """
    from matplotlib.figure import Figure

    stem = _stem(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(fig, Figure):
        written = _save_matplotlib(fig, stem, dpi, stamp)
        if columns:
            w0, h0 = fig.get_size_inches()
            for tag, width in COLUMN_SIZES.items():
                fig.set_size_inches(width, h0 * max(1.0, width / w0) ** 0.5 if width > w0 else h0)
                written += _save_matplotlib(fig, stem.with_name(f"{stem.name}_{tag}"), dpi, stamp, exts=("pdf", "svg"))
            fig.set_size_inches(w0, h0)
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
