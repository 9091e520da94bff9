"""The report of ``reproduce``: plain-data files first, then figures and ``index.html``.

Figures come from :mod:`oicsr_lab.plots` when it is importable; a figure that fails is listed
under ``summary["report"]["errors"]`` and the page still shows everything else. Without the
plots package the page is a plain set of HTML tables over the same files.
"""

from __future__ import annotations

import csv
import html
import io
import json
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..io import atomic_write_text


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write ``rows`` (dicts) with ``columns`` to ``path`` atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def _cell(v: Any) -> Any:
    """CSV cell: floats rounded to 6 significant digits, None empty."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def _figures(out: Path, files: dict[str, Any], errors: list[str],
             summary: dict[str, Any] | None = None) -> tuple[list[tuple], list[tuple[str, str]]]:
    """Save every figure the plots package can draw; returns write_report's figures and tables."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd

    from .. import plots

    figs: list[tuple] = []
    tables: list[tuple[str, str]] = []
    fig_dir = out / "figures"

    stamp = _stamp(summary or {})

    def add(title: str, stem: str, caption: str, make: Callable[[], Any], columns: bool = False) -> None:
        try:
            fig = make()
            plots.save_figure(fig, fig_dir / stem, stamp=stamp, columns=columns)
            if hasattr(fig, "savefig"):
                plt.close(fig)
            figs.append((title, Path("figures") / stem, caption))
        except Exception as e:  # one broken figure must not lose the report
            errors.append(f"{stem}: {type(e).__name__}: {e}")

    energies, sweep, plans = files.get("energies"), files.get("sweep"), files.get("plans")
    pipeline, table1 = files.get("pipeline"), files.get("table1")
    if energies:
        add("Figure 3: out-in-channel energy of one layer", "fig3_energy", "Channel energy (sorted) after training "
            "with each regulariser, normalised by the layer maximum.",
            lambda: plots.static_energy_distribution(energies))
        add("Figure 3 (interactive)", "fig3_energy_interactive", "Hover for values.",
            lambda: plots.interactive_energy_distribution(energies))
        add("Energy of every prunable layer", "energy_grid", "One panel per layer pair.",
            lambda: plots.static_energy_grid(energies))
    if sweep and any(r.get("val_acc_before_retrain") not in (None, "") for r in sweep):
        from .protocol import after_finetuning, before_retraining, finetune_phrase, reference_phrase

        before = before_retraining(sweep)
        classes = (summary or {}).get("data", {}).get("classes") or 10
        n = len(before["seeds"])
        add("Figure 4: accuracy before retraining vs FLOPs pruned", "fig4_protocol",
            f"Test accuracy, mean and 95 % Student-t interval over {n} seed(s); each method ranked by its criterion "
            "chosen on the validation split (out-in energy or its own); grey: random and uniform per-layer pruning "
            "of the L2 network at the same FLOPs; dotted: chance.",
            lambda: plots.static_protocol_fig4(before, classes), columns=True)
        ft = files.get("finetune")
        shipped = ((summary or {}).get("config") or {}).get("source") == "shipped"
        after = None
        if ft:
            try:  # like a broken figure, unreadable fine-tune rows must not lose the rest of the report
                after = after_finetuning(ft, (summary or {}).get("references", {}))
            except Exception as e:
                errors.append(f"finetuned: {type(e).__name__}: {e}")
        if after is not None:
            add("Accuracy after fine-tuning at matched FLOPs", "finetuned",
                "One-shot Algorithm 1 then fine-tuning without the regulariser for "
                f"{finetune_phrase((summary or {}).get('config') or {})}; dashed: "
                f"{reference_phrase((summary or {}).get('references'), shipped)}. Test accuracy, mean and 95 % "
                "interval over seeds." + (" At 0 %: each network fine-tuned unpruned the same way (the control)."
                                          if 0.0 in after["ratios"] else ""),
                lambda: plots.static_finetuned(after, dense_label="dense (shipped L2)" if shipped else
                                               "dense, same epochs"), columns=True)
    if sweep:
        from .protocol import is_criteria_sweep

        df = pd.DataFrame(sweep)
        add("Figure 4: accuracy before retraining vs FLOPs pruned", "fig4_accuracy",
            "Algorithm 1 with the out-in energy, masks, no retraining.", lambda: plots.static_accuracy_vs_flops(df))
        add("Figure 4 (interactive)", "fig4_accuracy_interactive", "Hover for values.",
            lambda: plots.interactive_accuracy_vs_flops(df))
        add("Out-in energy vs each baseline's own criterion", "fig4_criteria",
            "Dashed: the regulariser's own criterion (out-channel energy, |gamma|).",
            lambda: plots.static_accuracy_vs_flops(df, show_own_criteria=True))
        if is_criteria_sweep(sweep):  # every ranking of each network side by side
            add("Criteria compared on each network", "fig4_criteria_panel",
                "Test accuracy before retraining under each criterion of the sweep (mean over seeds, band: "
                "95 % Student-t interval); grey: random and uniform floors; dotted: chance.",
                lambda: plots.static_criteria_panel(df), columns=False)
    if plans:
        ratios = sorted({float(r) for by in plans.values() for k in by.values() for r in k})
        if ratios:
            mid = ratios[len(ratios) // 2]
            add(f"Per-layer pruning ratios at {mid:.0%} FLOPs", "layer_ratios",
                "Fraction of each layer's channels Algorithm 1 removes (an output, not an input).",
                lambda: plots.static_layer_ratios(plans, mid))
    if pipeline:
        pdf = pd.DataFrame(pipeline)
        add("Iterative pruning (Figure 2 framework)", "pipeline", "Accuracy before and after retraining per step.",
            lambda: plots.static_pipeline(pdf))
        add("Iterative pruning (interactive)", "pipeline_interactive", "Hover for values.",
            lambda: plots.interactive_pipeline(pdf))
    if table1:
        try:
            tables.append(("Table 1: ResNet-50 on ImageNet-1K (published) and this lab's computation",
                           plots.table1_html(table1)))
        except Exception as e:
            errors.append(f"table1: {type(e).__name__}: {e}")
    return figs, tables


def _stamp(summary: dict[str, Any]) -> dict[str, str]:
    """Provenance for figure metadata: package version and the hash of the run's full configuration."""
    from importlib import metadata

    from .runs import config_hash

    try:
        version = metadata.version("oicsr-lab")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "unknown"
    return {"oicsr-lab": version, "config": config_hash(summary.get("config", {})),
            "preset": str(summary.get("preset", ""))}


def _plain_table(rows: Iterable[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A minimal HTML table of dict rows."""
    rows = list(rows)
    if not rows:
        return "<p>(none)</p>"
    cols = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(_cell(r.get(c))))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f'<table border="1" cellspacing="0" cellpadding="3"><tr>{head}</tr>{body}</table>'


def _plain_page(summary: dict[str, Any], files: dict[str, Any]) -> str:
    """index.html without figures: the sweep, pipeline and Table 1 as tables, the summary as JSON."""
    t1 = files.get("table1") or {}
    parts = [
        f"<h1>OICSR-lab report: preset {html.escape(str(summary.get('preset')))}</h1>",
        "<p>Files: " + " ".join(f'<a href="{n}">{n}</a>' for n in summary.get("files", [])) + "</p>",
        "<h2>Accuracy before retraining (sweep.csv)</h2>", _plain_table(files.get("sweep") or []),
        "<h2>Iterative pipeline (pipeline.csv)</h2>", _plain_table(files.get("pipeline") or [],
                                                                   [c for c in (files.get("pipeline") or [{}])[0]
                                                                    if c != "widths"]),
        "<h2>Table 1</h2>", _plain_table([{k: v for k, v in r.items() if k not in ("widths", "layer_ratios")}
                                          for r in t1.get("rows", [])]),
        "<h2>Summary</h2>", f"<pre>{html.escape(json.dumps(summary, indent=2, default=str))}</pre>",
    ]
    return "<!DOCTYPE html><html><head><meta charset='utf-8'><title>OICSR-lab report</title></head><body>" + \
        "".join(parts) + "</body></html>\n"


def write_index(out: Path, summary: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    """Write figures (when the plots package exists) and ``index.html``; returns what was done."""
    errors: list[str] = []
    info: dict[str, Any] = {"figures": [], "errors": errors, "plots": False}
    try:
        from .. import plots  # noqa: F401

        have_plots = hasattr(plots, "write_report") and hasattr(plots, "save_figure")
    except Exception as e:
        have_plots = False
        errors.append(f"oicsr_lab.plots unavailable: {type(e).__name__}: {e}")
    if have_plots:
        try:
            figs, tables = _figures(out, files, errors, summary)
            scope = (summary.get("config") or {}).get("scope")
            intro = next((n for n in summary.get("notes", []) if n.startswith("demo scope")), "") if scope else ""
            plots.write_report(out, summary, figs, title=f"OICSR-lab reproduce: {summary.get('preset')}", intro=intro,
                               tables=tables + [("Files",
                                                 _plain_table([{"file": f} for f in summary.get("files", [])]))])
            info.update(figures=[str(f[1]) for f in figs], plots=True)
            return info
        except Exception as e:
            errors.append(f"write_report: {type(e).__name__}: {e}; {traceback.format_exc(limit=2)[-300:]}")
    atomic_write_text(out / "index.html", _plain_page(summary, files))
    return info
