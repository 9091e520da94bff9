"""``index.html`` of a report folder: every figure (PNG shown, PDF/HTML linked) and the run's summary.

The run's short facts (preset, data, seeds, wall time, notes) come before the figures; its
configuration, package versions and the rest of ``summary.json`` follow them, collapsed in a
``<details>`` block.

The page is self-contained for offline viewing: inline CSS, no scripts, no web fonts, and
figures referenced by relative links inside the report folder (``inline_images=True`` embeds the
PNGs as data URIs instead, so the page alone shows them). Interactive-only figures (an HTML
but no PNG) are embedded in an ``<iframe>``; their plotly.js is the ``plotly.min.js`` that
``save_figure`` writes beside them.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from .save import write_utf8

_CSS = """
body {font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; line-height: 1.5;
  max-width: 1000px; margin: 2em auto; padding: 0 1.2em; background: #fff;}
h1 {font-size: 1.6em; margin-bottom: 0.2em;} h2 {font-size: 1.25em; border-bottom: 1px solid #ddd;
  padding-bottom: 0.2em; margin-top: 2em;} h3 {font-size: 1.05em; margin: 1.2em 0 0.3em;}
.meta {color: #555; font-size: 0.92em;}
nav ol {columns: 2; font-size: 0.93em;}
table.kv {border-collapse: collapse; font-size: 0.9em; margin: 0.4em 0 1em;}
table.kv th, table.kv td {text-align: left; padding: 0.2em 0.9em 0.2em 0; vertical-align: top;
  border-bottom: 1px solid #eee;}
table.kv th {font-weight: 600; white-space: nowrap; color: #333;}
code, pre {font-family: "SFMono-Regular", Consolas, Menlo, monospace; font-size: 0.88em;}
pre {background: #f6f6f6; padding: 0.6em; overflow-x: auto; border-radius: 4px;}
figure {margin: 1.2em 0 2em; padding: 0;}
figure img {max-width: 100%; height: auto; border: 1px solid #eee;}
figure iframe {width: 100%; height: 560px; border: 1px solid #eee;}
figcaption {font-size: 0.9em; color: #444; margin-top: 0.3em;}
.links a {margin-right: 1em; font-size: 0.9em;}
details summary {cursor: pointer; color: #333;}
footer {margin-top: 3em; font-size: 0.8em; color: #777; border-top: 1px solid #eee; padding-top: 0.6em;}
"""

_KNOWN = {
    "config": ("config", "configuration", "preset_config"),
    "data": ("data", "dataset", "datasets"),
    "seeds": ("seeds", "seed"),
    "wall": ("wall_time_s", "wall_time", "wall_s", "elapsed_s", "duration_s"),
    "versions": ("versions", "package_versions", "packages", "environment"),
}
_VERSION_PKGS = ("oicsr-lab", "torch", "torchvision", "numpy", "pandas", "matplotlib", "seaborn", "plotly")


def _e(x: Any) -> str:
    """HTML-escaped text of ``x``."""
    return html.escape(str(x))


def _value(v: Any) -> str:
    """A summary value as HTML: nested dicts/lists as JSON in <code>, scalars as text."""
    if isinstance(v, (dict, list, tuple)):
        text = json.dumps(v, indent=1, sort_keys=True, default=str)
        return f"<pre>{_e(text)}</pre>" if len(text) > 80 else f"<code>{_e(json.dumps(v, default=str))}</code>"
    return _e(v)


def _kv_table(d: Mapping[str, Any]) -> str:
    """A two-column key/value table."""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_value(v)}</td></tr>" for k, v in d.items())
    return f'<table class="kv">{rows}</table>'


def format_duration(seconds: Any) -> str:
    """``3725`` -> ``1 h 02 min 05 s``; non-numbers are returned as text."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    h, rem = divmod(int(round(s)), 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min {sec:02d} s" if h else (f"{m} min {sec:02d} s" if m else f"{s:.1f} s")


def _take(summary: dict, names: Sequence[str]) -> tuple[str | None, Any]:
    """Pop the first of ``names`` present in ``summary``: (key, value) or (None, None)."""
    for n in names:
        if n in summary:
            return n, summary.pop(n)
    return None, None


def _current_versions() -> dict[str, str]:
    """Versions of the key packages in this environment (fallback when the summary has none)."""
    out = {"python": sys.version.split()[0]}
    for pkg in _VERSION_PKGS:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _data_text(data: Any) -> str:
    """A data identity as one line (``cifar10: 50000 train / 10000 test, 10 classes``); other values as given."""
    if isinstance(data, Mapping) and "name" in data:
        sizes = [f"{data[k]} {k}" for k in ("train", "val", "test") if k in data]
        classes = f", {data['classes']} classes" if "classes" in data else ""
        return f"{data['name']}: {' / '.join(sizes)}{classes}" if sizes else str(data["name"])
    return "not recorded" if data is None else data if isinstance(data, str) else json.dumps(data, default=str)


def _split_summary(summary: Mapping[str, Any]) -> tuple[str, str]:
    """(the short run facts shown before the figures, the collapsed run details shown after them).

    The facts are one line each (preset, model, data, seeds, wall time, device, notes); the
    configuration, package versions and everything else summary.json holds go into a ``<details>``
    at the end of the page, so the figures are not pushed down by screens of JSON.
    """
    s = dict(summary)
    _, wall = _take(s, _KNOWN["wall"])
    _, seeds = _take(s, _KNOWN["seeds"])
    _, data = _take(s, _KNOWN["data"])
    facts = {k: s.pop(k) for k in ("preset", "model", "dataset_name", "created", "started", "finished") if k in s}
    facts["data"] = _data_text(data)
    facts["seeds"] = ", ".join(map(str, seeds)) if isinstance(seeds, (list, tuple)) else seeds if seeds is not None \
        else "not recorded"
    facts["wall time"] = format_duration(wall) if wall is not None else "not recorded"
    facts.update({k: s.pop(k) for k in ("device", "threads") if k in s and not isinstance(s[k], (dict, list))})
    notes = s.pop("notes", None)
    head = _kv_table(facts)
    if isinstance(notes, (list, tuple)) and notes:
        head += "<ul class=\"meta\">" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"
    head += '<p class="meta">Configuration, package versions and the rest of the summary: <a href="#run-details">' \
            "run details</a> at the end of the page.</p>"
    parts = []
    _, config = _take(s, _KNOWN["config"])
    parts.append("<h3>Configuration</h3>" + (_kv_table(config) if isinstance(config, Mapping) and config
                                               else f"<p>{_value(config) if config else 'not recorded'}</p>"))
    _, versions = _take(s, _KNOWN["versions"])
    if isinstance(versions, Mapping) and versions:
        parts.append("<h3>Package versions</h3>" + _kv_table(versions))
    else:
        parts.append("<h3>Package versions</h3><p class=\"meta\">Not recorded in the summary; these are the "
                     "versions of the environment that wrote this page:</p>" + _kv_table(_current_versions()))
    if s:
        parts.append("<h3>Other</h3>" + _kv_table(s))
    details = ('<details id="run-details"><summary>Run details: configuration, package versions and everything '
               "else the summary records</summary>" + "\n".join(parts) + "</details>")
    return head, details


_PNG_SCALE = 0.7  # 200-dpi PNGs shown at ~140 dpi: a column-width figure ~470 px, a page-width one ~960 px


def _png_width(path: Path) -> int | None:
    """Pixel width from a PNG's IHDR header (None if not a PNG)."""
    with open(path, "rb") as f:
        head = f.read(24)
    return int.from_bytes(head[16:20], "big") if head[:8] == b"\x89PNG\r\n\x1a\n" else None


def _figure_html(report_dir: Path, idx: int, title: str, stem: str | os.PathLike, caption: str,
                 inline_images: bool) -> str:
    """One <figure>: the PNG (or an iframe of the HTML), links to PDF/PNG/HTML, caption."""
    p = Path(stem)
    p = p if p.is_absolute() else report_dir / p
    p = p.with_suffix("") if p.suffix.lower() in (".png", ".pdf", ".html") else p
    files = {ext: p.with_name(p.name + "." + ext) for ext in ("png", "pdf", "html")}
    files = {ext: f for ext, f in files.items() if f.exists() and f.stat().st_size > 0}
    if not files:
        raise ConfigError(f"report: figure {title!r}: no {p.name}.png/.pdf/.html under {p.parent}; save it "
                          "with save_figure first")
    rel = {ext: Path(os.path.relpath(f, report_dir)).as_posix() for ext, f in files.items()}
    body = ""
    if "png" in files:
        src = ("data:image/png;base64," + base64.b64encode(files["png"].read_bytes()).decode()
               if inline_images else html.escape(rel["png"], quote=True))
        width = _png_width(files["png"])
        size = f' width="{round(width * _PNG_SCALE)}"' if width else ""
        body = f'<img src="{src}" alt="{_e(title)}"{size} loading="lazy">'
    elif "html" in files:
        body = f'<iframe src="{html.escape(rel["html"], quote=True)}" title="{_e(title)}" loading="lazy"></iframe>'
    names = {"png": "PNG", "pdf": "PDF", "html": "interactive (HTML)"}
    links = " ".join(f'<a href="{html.escape(rel[e], quote=True)}">{names[e]}</a>' for e in ("pdf", "png", "html")
                     if e in rel)
    cap = f"<figcaption><b>{_e(title)}.</b> {_e(caption)}</figcaption>"
    return (f'<figure id="fig{idx}"><h3>{idx}. {_e(title)}</h3>{body}{cap}'
            f'<div class="links">{links}</div></figure>')


def write_report(report_dir: str | os.PathLike, summary: Mapping[str, Any] | str | os.PathLike | None,
                 figures: Sequence[tuple], title: str = "OICSR-lab report",
                 tables: Sequence[tuple[str, str]] = (), inline_images: bool = False,
                 intro: str = "") -> Path:
    """Write ``report_dir/index.html`` showing every ``(title, stem[, caption])`` figure and the run summary."""
    report_dir = Path(report_dir)
    if not figures and not tables:
        raise ConfigError("report: no figures or tables to show; save figures with save_figure and list them")
    if isinstance(summary, (str, os.PathLike)):
        path = Path(summary)
        if not path.exists():
            raise ConfigError(f"report: summary file {path} does not exist")
        summary = json.loads(path.read_text())
    summary = dict(summary or {})
    figs = []
    for i, item in enumerate(figures, start=1):
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise ConfigError(f"report: figure entry {item!r} must be (title, stem) or (title, stem, caption)")
        figs.append(_figure_html(report_dir, i, str(item[0]), item[1], str(item[2]) if len(item) == 3 else "",
                                 inline_images))
    toc = "".join(f'<li><a href="#fig{i}">{_e(item[0])}</a></li>' for i, item in enumerate(figures, start=1))
    toc += "".join(f'<li><a href="#table{i}">{_e(t)}</a></li>' for i, (t, _) in enumerate(tables, start=1))
    toc += '<li><a href="#run-details">Run details</a></li>'
    tabs = "".join(f'<section id="table{i}"><h3>{_e(t)}</h3>{frag}</section>' for i, (t, frag) in enumerate(tables, 1))
    heading = summary.get("preset") or summary.get("model")
    run_facts, run_details = _split_summary(summary)
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    from .. import __version__

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p class="meta">{_e(f"preset {heading} · " if heading else "")}generated {_e(now)} by oicsr-lab {_e(__version__)}.
Everything on this page is local: it opens without an internet connection.</p>
{f"<p>{_e(intro)}</p>" if intro else ""}
<nav><h2>Contents</h2><ol>{toc}</ol></nav>
<h2>Run</h2>
{run_facts}
{"<h2>Figures</h2>" + "".join(figs) if figs else ""}
{"<h2>Tables</h2>" + tabs if tables else ""}
<h2>Run details</h2>
{run_details}
<footer>OICSR: Out-In-Channel Sparsity Regularization for Compact Deep Neural Networks (Li et al., CVPR 2019);
what is published and what is a lab choice: docs/method.md in the oicsr-lab repository.
Figures: PNG at 200 dpi and vector PDF; interactive versions use the bundled plotly.min.js.</footer>
</body></html>
"""
    out = report_dir / "index.html"
    write_utf8(out, page)
    return out
