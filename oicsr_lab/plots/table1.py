"""Table 1 (ResNet-50 / ImageNet): the authors' published rows next to what the lab computes.

Input: ``table1.json`` of ``reproduce`` (path or object) -- a list of row dicts, ``{"rows":
[...]}`` or ``{"published": [...], "computed": [...]}`` -- or a DataFrame. Every row carries its
provenance in a ``source`` (or ``kind``/``label``/``origin``/``type``) field, ``published`` or
``computed``; the rendering labels each row with it and shades the two kinds differently.
"""

from __future__ import annotations

import html
import re
import textwrap
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ._data import load_json_like
from .style import OKABE_ITO, PAGE_WIDTH, new_figure, paper_style

_SOURCE_KEYS = ("source", "kind", "label", "origin", "type", "row")
_HEADERS = {
    "source": "Source", "model": "Model", "method": "Method", "name": "Model", "reg": "Regulariser",
    "top1": "Top-1 (%)", "top1_delta": "Δ top-1", "delta_top1": "Δ top-1", "top5": "Top-5 (%)",
    "flops_m": "FLOPs (M)", "mflops": "FLOPs (M)", "flops": "FLOPs (M)", "flops_pruned": "FLOPs pruned",
    "flops_ratio": "FLOPs pruned", "params_m": "Params (M)", "params": "Params (M)", "note": "Note",
    "notes": "Note", "target": "Target pruned", "weights": "Weights", "error": "Error",
}
_ORDER = ("source", "model", "method", "name", "reg", "top1", "top1_delta", "delta_top1", "top5",
          "flops_m", "mflops", "flops", "flops_pruned", "flops_ratio", "target", "params_m", "params")
_SHADE = {"published": "#EEEEEE", "computed": "#DCEBF7"}


def _rows(table1: Any) -> tuple[list[dict], str]:
    """Row dicts (each with a source) and the table's caption/notes from any accepted shape."""
    if isinstance(table1, pd.DataFrame):
        if table1.empty:
            raise ConfigError("table1: the table is empty; nothing to render")
        return table1.to_dict("records"), ""
    table1 = load_json_like(table1, "table1")
    note = ""
    if isinstance(table1, Mapping):
        note = ". ".join(str(x) for x in (
            table1.get("caption") or table1.get("notes") or table1.get("note"),
            table1.get("flops_convention") and f"FLOPs = {table1['flops_convention']}",
            table1.get("published_source") and f"Published: {table1['published_source']}") if x)
        if "rows" in table1:
            rows = list(table1["rows"])
        elif any(k in table1 for k in ("published", "computed")):
            rows = [{"source": src, **r} for src in ("published", "computed") for r in table1.get(src) or []]
        else:
            raise ConfigError("table1: expected a list of rows, {'rows': [...]} or {'published': [...], "
                              "'computed': [...]}")
    else:
        rows = list(table1)
    if not rows:
        raise ConfigError("table1: the table has no rows; nothing to render")
    return [dict(r) for r in rows], note


def table1_frame(table1: Any) -> pd.DataFrame:
    """Table 1 as a DataFrame with a ``source`` column first and the known columns in paper order."""
    rows, note = _rows(table1)
    df = pd.DataFrame(rows)
    key = next((k for k in _SOURCE_KEYS if k in df.columns
                and df[k].astype(str).str.lower().isin(["published", "computed"]).any()), None)
    if key is None:
        raise ConfigError("table1: no row says whether it is 'published' or 'computed' (add a 'source' field)")
    df = df.rename(columns={key: "source"})
    df["source"] = df["source"].astype(str).str.lower()
    nested = [c for c in df.columns if df[c].map(lambda v: isinstance(v, (dict, list, tuple))).any()]
    df = df.drop(columns=nested)  # per-layer widths/ratios: too long for a table cell
    cols = [c for c in _ORDER if c in df.columns] + [c for c in df.columns if c not in _ORDER]
    df = df[cols]
    df.attrs["note"] = note
    return df


def _fmt_column(name: str, values: pd.Series) -> tuple[str, list[str]]:
    """Header and display strings of one column (percent ratios, FLOPs in millions, 2 decimals)."""
    header = _HEADERS.get(name, name.replace("_", " ").capitalize())
    num = pd.to_numeric(values, errors="coerce")
    if name == "source" or num.isna().all():
        return header, ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
    out = []
    is_ratio = "pruned" in name or "ratio" in name or name == "target"
    as_frac = is_ratio and num.max() <= 1.0
    big = name in ("flops", "params") and num.max() > 1e5
    for v, x in zip(values, num):
        if np.isnan(x):
            out.append("–" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        elif is_ratio:
            out.append(f"{x * 100 if as_frac else x:.1f}%")
        elif "delta" in name:
            out.append(f"{x:+.2f}")
        elif big:
            out.append(f"{x / 1e6:,.0f}" if name == "flops" else f"{x / 1e6:.2f}")
        elif float(x).is_integer() and abs(x) >= 100 or (num.dropna().abs() >= 100).all():
            out.append(f"{x:,.0f}")
        else:
            out.append(f"{x:.2f}")
    return header, out


_STATIC_SKIP = ("weights", "target", "note", "notes", "error")


def _display(table1: Any, static: bool = False) -> tuple[list[str], list[list[str]], list[str], str]:
    """(headers, cell strings, row sources, note) for HTML (all columns) or a figure (core columns, wrapped)."""
    df = table1_frame(table1)
    headers, columns = [], []
    for name in df.columns:
        if static and name in _STATIC_SKIP:
            continue
        h, col = _fmt_column(name, df[name])
        headers.append(h)
        columns.append([textwrap.fill(c, 26) for c in col] if static else col)
    if static:
        notes = [[str(v) for v in (r.get(k) for k in _STATIC_SKIP[2:]) if v is not None and v == v and str(v)]
                 for r in df.to_dict("records")]
        if any(notes):
            headers.append("Note")
            columns.append([textwrap.fill("; ".join(n), 34) for n in notes])
        headers = [h.replace(" (", "\n(").replace("FLOPs pruned", "FLOPs\npruned") for h in headers]
    cells = [list(r) for r in zip(*columns)]
    return headers, cells, df["source"].tolist(), df.attrs.get("note", "")


def _text_columns(cells: list[list[str]]) -> list[bool]:
    """Per column: True when no cell is a number (text columns are left-aligned)."""
    number = re.compile(r"[+-]?[\d,]*\.?\d+%?")
    return [c == 0 or not any(number.fullmatch(v) for v in col) for c, col in enumerate(zip(*cells))]


_CSS = """
table.oicsr-table1 {border-collapse: collapse; font-size: 0.92em; margin: 0.5em 0;}
table.oicsr-table1 th, table.oicsr-table1 td {padding: 0.3em 0.75em; text-align: right;
  border-bottom: 1px solid #ddd;}
table.oicsr-table1 th {border-bottom: 2px solid #333; text-align: right;}
table.oicsr-table1 .t {text-align: left;}
table.oicsr-table1 tr.published {background: #EEEEEE;}
table.oicsr-table1 tr.computed {background: #DCEBF7;}
table.oicsr-table1 span.badge {font-size: 0.8em; padding: 0.1em 0.45em; border-radius: 0.6em;
  color: #fff; background: #666;}
table.oicsr-table1 tr.computed span.badge {background: #0072B2;}
table.oicsr-table1 caption {caption-side: bottom; text-align: left; font-size: 0.85em; color: #555;
  padding-top: 0.4em;}
"""


def table1_html(table1: Any, title: str = "Table 1: ResNet-50 on ImageNet-1K") -> str:
    """Table 1 as an HTML fragment (<style> + <table>) with published and computed rows labelled."""
    headers, cells, sources, note = _display(table1)
    text = _text_columns(cells)
    cls = ['' if not t else ' class="t"' for t in text]
    head = "".join(f"<th{k}>{html.escape(h)}</th>" for h, k in zip(headers, cls))
    body = []
    for src, row in zip(sources, cells):
        tds = [f'<td class="t"><span class="badge">{html.escape(row[0])}</span></td>']
        tds += [f"<td{k}>{html.escape(c)}</td>" for c, k in zip(row[1:], cls[1:])]
        body.append(f'<tr class="{html.escape(src)}">{"".join(tds)}</tr>')
    legend = ("published = the authors' numbers (Li et al., CVPR 2019); "
              "computed = produced by this lab's code")
    caption = html.escape(legend + (". " + note if note else ""))
    return (f"<style>{_CSS}</style>\n<table class=\"oicsr-table1\">\n<caption>{caption}</caption>\n"
            f"<thead><tr><th colspan=\"{len(headers)}\" style=\"text-align:left;border-bottom:1px solid #333\">"
            f"{html.escape(title)}</th></tr><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) +
            "\n</tbody>\n</table>\n")


def static_table1(table1: Any, title: str = "Table 1: ResNet-50 on ImageNet-1K"):
    """Table 1 rendered as a matplotlib figure, rows shaded by source (grey published, blue computed)."""
    headers, cells, sources, note = _display(table1, static=True)
    text = _text_columns(cells)
    lines = [max(c.count("\n") + 1 for c in row) for row in [headers, *cells]]
    units = [1 + 0.75 * (n - 1) for n in lines]
    with paper_style():
        fig, ax = new_figure(PAGE_WIDTH, 0.6 + 0.2 * sum(units))
        ax.axis("off")
        colours = [[_SHADE.get(s, "white")] * len(headers) for s in sources]
        tab = ax.table(cellText=cells, colLabels=headers, cellColours=colours, bbox=[0, 0, 1, 1],
                       cellLoc="right", colLoc="right")
        tab.auto_set_font_size(False)
        tab.set_fontsize(6.5 if len(headers) > 7 else 7)
        tab.auto_set_column_width(list(range(len(headers))))
        for (r, c), cell in tab.get_celld().items():
            cell.set_height(units[r])
            cell.set_edgecolor("#FFFFFF")
            cell.set_linewidth(0.8)
            cell.PAD = 0.03
            if text[c]:
                cell.get_text().set_ha("left")
                cell._loc = "left"
            if r == 0:
                cell.set_text_props(weight="bold")
                cell.set_facecolor("white")
                cell.visible_edges = "B"
                cell.set_edgecolor("#333333")
            elif c == 0:
                cell.get_text().set_color("#222222" if sources[r - 1] == "published" else OKABE_ITO["blue"])
                cell.set_text_props(weight="bold")
        ax.set_title(title, loc="left", fontsize=8.5)
        foot = "Grey rows: published by the authors (Li et al., CVPR 2019); blue rows: computed by oicsr-lab"
        ax.text(0, -0.03, textwrap.fill(foot + (f". {note}" if note else ""), 150), transform=ax.transAxes,
                fontsize=6, color="#555555", va="top")
    return fig
