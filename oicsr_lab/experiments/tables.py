"""Markdown tables of a ``reproduce`` report folder, for docs and notes (``oicsr-lab tables``).

Reads only the plain-data files (summary.json, energies.json, sweep.csv, pipeline.csv,
table1.json) so every number in a table comes from the measured run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..errors import ConfigError

THRESHOLDS = (0.05, 0.2)


def _load(report: Path, name: str) -> Any:
    """A report file as JSON or DataFrame; ConfigError when it is missing."""
    path = report / name
    if not path.is_file():
        raise ConfigError(f"{path} is missing; run `oicsr-lab reproduce --out {report}` first")
    return pd.read_csv(path) if name.endswith(".csv") else json.loads(path.read_text())


def sparsity_rows(energies: dict[str, Any], thresholds: tuple[float, ...] = THRESHOLDS) -> list[dict[str, Any]]:
    """Per regulariser: the share of prunable out-in-channels whose energy / its layer's max is below each threshold."""
    rows = []
    for reg, groups in energies["runs"].items():
        normed = [torch.tensor(v, dtype=torch.float64) / max(max(v), 1e-30) for v in groups.values() if len(v)]
        allv = torch.cat(normed) if normed else torch.zeros(0)
        raw = torch.cat([torch.tensor(v, dtype=torch.float64) for v in groups.values()]) if groups else torch.zeros(0)
        row = {"reg": reg, "channels": int(allv.numel()),
               "exact_zero": float((raw == 0).double().mean()) if raw.numel() else 0.0}
        for t in thresholds:
            row[f"below_{t:g}"] = float((allv < t).double().mean()) if allv.numel() else 0.0
        rows.append(row)
    return rows


def _md(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (no extra dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    """Compact text of a table cell (small numbers in g-format, NaN as '-')."""
    if isinstance(v, float):
        if v != v:
            return "-"
        if v == int(v):
            return str(int(v))
        return f"{v:.3g}" if abs(v) < 1e-2 else f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v)


def _ci(d: dict[str, Any] | None, digits: int = 1, n_all: int | None = None) -> str:
    """An interval dict as ``"62.0 [57.0, 67.0]"`` (``"62.0 (n=1)"`` without bounds); ``n_all``, the seeds the
    table is over, adds ``(n=k)`` to a cell that rests on fewer (a seed missing there)."""
    if not d:
        return "-"
    if d.get("lo") is None:
        return f"{d['mean']:.{digits}f} (n={d['n']})"
    short = f" (n={d['n']})" if n_all is not None and d["n"] < n_all else ""
    return f"{d['mean']:.{digits}f} [{d['lo']:.{digits}f}, {d['hi']:.{digits}f}]{short}"


def _bold_ci(d: dict[str, Any] | None, n_all: int | None = None) -> str:
    """A paired-difference cell: the interval, **bold** where it excludes zero (``holds``); ``-`` when missing."""
    return "-" if d is None else (f"**{_ci(d, n_all=n_all)}**" if d["holds"] else _ci(d, n_all=n_all))


def _ratio(r: float | str) -> str:
    """A FLOPs-removed column label; 0 is the unpruned control of the fine-tune table, ``"final"`` the pipeline's
    last fine-tune."""
    if r == "final":
        return "after the final fine-tune"
    return "0 % (unpruned)" if r == 0 else f"{100 * r:.0f} %"


def _paired_table(title: str, paired: dict[str, dict[float, dict]], ratios: list[float],
                  row_name: str = "baseline", note: str = "", n_all: int | None = None) -> list[str]:
    """Markdown lines of a paired-difference table (one row per baseline, one column per ratio)."""
    lines = [f"### {title}", "",
             "Points, mean [95 % interval] of the per-seed differences; **bold** where the interval excludes zero."
             + (f" {note}" if note else ""),
             "", f"| {row_name} | " + " | ".join(_ratio(r) for r in ratios) + " |",
             "|---|" + "---|" * len(ratios)]
    lines += [f"| {reg} | " + " | ".join(_bold_ci(cells.get(r), n_all) for r in ratios) + " |"
              for reg, cells in paired.items()]
    return lines + [""]


def protocol_tables(report: str | Path) -> str:
    """The protocol's markdown: before retraining with intervals, paired differences, after fine-tuning."""
    from .protocol import (
        HEADLINE,
        after_finetuning,
        before_retraining,
        finetune_phrase,
        is_criteria_sweep,
        reference_phrase,
    )
    from .spec import VALIDATION

    report = Path(report)
    summary = _load(report, "summary.json")
    sweep = _load(report, "sweep.csv").to_dict("records")
    classes = summary.get("data", {}).get("classes") or 10
    n = len(summary["seeds"])
    source = summary["config"].get("strength_source", "not recorded (an older report)")
    shipped = summary["config"].get("source") == "shipped"
    where = (f"Test accuracy (%), mean [95 % Student-t interval] over {n} seed(s) {summary['seeds']}; each method's "
             f"criterion chosen on {summary['config'].get('validation', VALIDATION)}, never on the test split; "
             f"strengths: {source}. Chance: {100 / classes:.0f} %.")
    b = before_retraining(sweep)
    ratios = [r for r in b["ratios"] if r > 0]
    head = "| method | ranking | dense | " + " | ".join(f"{100 * r:.0f} %" for r in ratios) + " |"
    lines = ["### Accuracy before retraining vs FLOPs removed (Figure 4)", "", where, "", head,
             "|---|---|---|" + "---|" * len(ratios)]
    for reg, by in b["cells"].items():
        for name, cells in by.items():
            lines.append(f"| {reg} | {name} | {_ci(cells.get(0.0), n_all=n)} | "
                         + " | ".join(_ci(cells.get(r), n_all=n) for r in ratios) + " |")
    out = lines + [""]
    if b["paired"]:
        out += _paired_table(f"Paired difference {HEADLINE} − baseline before retraining, each at its best "
                             "criterion chosen on validation", b["paired"], ratios, n_all=n)
    if (report / "finetune.csv").is_file() and (report / "finetune.csv").stat().st_size > 0:
        ft = pd.read_csv(report / "finetune.csv").to_dict("records")
        if ft:
            a = after_finetuning(ft, summary.get("references", {}))
            lines = ["### After fine-tuning at matched FLOPs (Table 1 form)", "",
                     f"One-shot Algorithm 1 at each method's validation-chosen criterion, then fine-tuning without "
                     f"the regulariser for {finetune_phrase(summary['config'])}. Δ: paired difference to "
                     f"{reference_phrase(summary.get('references'), shipped)} ({_ci(a['dense'], n_all=n)}). "
                     + where, "",
                     "| method | FLOPs removed | FLOPs (M) | params (K) | criterion | before retraining | "
                     "top-1 | Δ vs dense |",
                     "|---|---|---|---|---|---|---|---|"]
            for r in a["rows"]:
                dtxt = _bold_ci(r.get("delta_vs_dense"), n)
                lines.append(f"| {r['reg']} | {_ratio(r['ratio'])} | {r['flops_m']:.2f} | {r['params_k']:.1f} | "
                             f"{', '.join(r['criteria'])} | {_ci(r['before'], n_all=n)} | "
                             f"{_ci(r['after'], n_all=n)} | {dtxt} |")
            out += lines + [""]
            if a["paired"]:
                out += _paired_table(f"Paired difference {HEADLINE} − baseline after fine-tuning, at matched FLOPs",
                                     a["paired"], a["ratios"],
                                     note="The unpruned column is the control: the lead the regularised training "
                                     "alone gives after the same fine-tune." if 0.0 in a["ratios"] else "", n_all=n)
            if a.get("pruning_cost"):
                pruned = [r for r in a["ratios"] if r > 0]
                out += _paired_table("What pruning cost after fine-tuning: pruned − the same network fine-tuned "
                                     "unpruned", a["pruning_cost"], pruned, row_name="method",
                                     note="Same seed, same fine-tune; negative: accuracy lost to pruning.", n_all=n)
                if a.get("paired_cost"):
                    out += _paired_table(f"What the pruning itself earns: {HEADLINE}'s pruning cost − baseline's",
                                         a["paired_cost"], pruned,
                                         note="A difference of differences; positive: the headline method loses "
                                         "less to pruning than the baseline does from its own unpruned control.",
                                         n_all=n)
    if is_criteria_sweep(sweep):
        out += criteria_tables(sweep, where)
    return "\n".join(out)


def criteria_tables(sweep: list[dict[str, Any]], where: str = "") -> list[str]:
    """Markdown lines: per network, every criterion's accuracy before retraining and its paired difference to
    out-in energy (same network, same seeds)."""
    from .protocol import criteria_comparison

    c = criteria_comparison(sweep)
    ratios, n = c["ratios"], len(c["seeds"])
    head = ["| criterion | " + " | ".join(_ratio(r) for r in ratios) + " |", "|---|" + "---|" * len(ratios)]
    out = ["### Criteria compared on each network (before retraining)", "", *([where, ""] if where else [])]
    for reg, by in c["cells"].items():
        out += [f"**{reg} network**, test accuracy:", "", *head]
        out += [f"| {crit} | " + " | ".join(_ci(cells.get(r), n_all=n) for r in ratios) + " |"
                for crit, cells in by.items()]
        out += [""]
        if c["vs_baseline"].get(reg):
            out += [f"**{reg} network**, paired difference to {c['baseline']} (points; **bold**: the interval "
                    "excludes zero):", "", *head]
            out += [f"| {crit} | " + " | ".join(_bold_ci(cells.get(r), n) for r in ratios) + " |"
                    for crit, cells in c["vs_baseline"][reg].items()]
            out += [""]
    return out


def pipeline_tables(pipe_rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines of the iterative pipeline over several seeds: accuracy per step as mean [95 % interval],
    then the headline method minus each other pipeline regulariser after retraining, paired by seed."""
    from .protocol import HEADLINE, pipeline_over_seeds

    res = pipeline_over_seeds(pipe_rows)
    n = len(res["seeds"])
    pct = lambda d: "-" if d is None else f"{100 * d['mean']:.1f} %"  # noqa: E731
    df = pd.DataFrame([{"reg": r["reg"], **({"criterion": r["criterion"]} if r["criterion"] else {}),
                        "step": r["step"], "stage": r["stage"],
                        "FLOPs target": "-" if r["target_ratio"] is None else _ratio(r["target_ratio"]),
                        "achieved": pct(r["achieved_ratio"]),
                        "before retraining": _ci(r["before"], n_all=n), "after retraining": _ci(r["after"], n_all=n),
                        "M MACs": round(r["mflops"], 2)} for r in res["steps"]])
    out = [f"### Iterative pipeline (Figure 2) over {n} seeds", "",
           f"Test accuracy (%), mean [95 % t-interval] over seeds {res['seeds']}; the fine-tune stage prunes nothing, "
           "so it has no 'before retraining' value.", "", _md(df), ""]
    keys = sorted({k for cells in res["paired"].values() for k in cells}, key=lambda k: (k == "final", str(k)))
    if res["paired"]:
        out += _paired_table(f"Iterative pipeline: {HEADLINE} minus each baseline after retraining", res["paired"],
                             keys, note="At each step's FLOPs target (after its retraining) and after the final "
                             "fine-tune.", n_all=n)
    return out


def report_tables(report: str | Path) -> str:
    """Markdown for a report folder: regulariser outcomes, Figure 4 sweep, pipeline and Table 1."""
    report = Path(report)
    summary, energies = _load(report, "summary.json"), _load(report, "energies.json")
    sweep = _load(report, "sweep.csv")
    out: list[str] = []
    runs = summary["runs"][str(summary["seeds"][0])]
    spars = {r["reg"]: r for r in sparsity_rows(energies)}
    rows = []
    for reg, info in runs.items():
        cfg = summary["config"]["runs"][reg]
        s = spars.get(reg, {})
        rows.append({
            "regulariser": reg, "strength": cfg["strength"],
            "options": json.dumps(cfg["reg_options"]) if cfg["reg_options"] else "-",
            "epochs": cfg["epochs"], "test acc %": info["test_acc"],
            **{f"energy < {t:g} x layer max": f"{100 * s.get(f'below_{t:g}', float('nan')):.1f} %" for t in THRESHOLDS},
            "exact zeros": f"{100 * s.get('exact_zero', float('nan')):.1f} %",
        })
    out += [f"### Training under each regulariser (seed {summary['seeds'][0]}; Figure 4's dense column has every seed)",
            "", _md(pd.DataFrame(rows)), ""]
    out += [protocol_tables(report)]
    own = sweep[sweep["ratio"] > 0]
    main = own[own["criterion"] == energies.get("criterion", "out_in")]
    if len(main):
        piv = main.pivot_table(index="reg", columns="ratio", values="acc_before_retrain", aggfunc="mean")
        piv.columns = [f"{100 * c:.0f} %" for c in piv.columns]
        dense = sweep[sweep["ratio"] == 0].groupby("reg")["acc_before_retrain"].mean()
        piv.insert(0, "dense", dense.reindex(piv.index))
        out += ["### Accuracy before retraining (%), out-in energy, mean over seeds (more digits, no interval)", "",
                _md(piv.reset_index()), ""]
    others = own[own["criterion"] != energies.get("criterion", "out_in")]
    if len(others):
        piv = others.pivot_table(index=["reg", "criterion"], columns="ratio", values="acc_before_retrain",
                                 aggfunc="mean")
        piv.columns = [f"{100 * c:.0f} %" for c in piv.columns]
        out += ["### Same, under every other ranking (own criteria and the random / uniform floors)", "",
                _md(piv.reset_index()), ""]
    if (report / "pipeline.csv").is_file():
        pipe = pd.read_csv(report / "pipeline.csv")
        if "seed" in pipe and pipe["seed"].nunique() > 1:
            out += pipeline_tables(pipe.to_dict("records"))
        else:
            keep = [c for c in ("reg", "stage", "step", "target_ratio", "achieved_ratio", "acc_before_retrain",
                                "acc_after_retrain", "flops", "params") if c in pipe]
            out += ["### Iterative pipeline (Figure 2)", "", _md(pipe[keep]), ""]
    if (report / "table1.json").is_file():
        t1 = json.loads((report / "table1.json").read_text())
        rows = t1.get("rows", t1) if isinstance(t1, dict) else t1
        df = pd.DataFrame(rows)
        keep = [c for c in ("label", "method", "top1", "top5", "flops_m", "flops_pruned", "weights") if c in df]
        out += ["### Table 1 (ResNet-50): published vs computed", "", _md(df[keep]), ""]
    return "\n".join(out)
