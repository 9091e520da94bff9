"""The protocol's figures: Figure 4 with 95 % intervals, floors and chance; accuracy after fine-tuning.

Input: the plain dicts of :mod:`oicsr_lab.experiments.protocol` (``before_retraining`` and
``after_finetuning``). Titles stay short; what the curves are (test accuracy, seeds, the
validation-chosen criterion) is in the legend title and the report's caption.
"""

from __future__ import annotations

from typing import Any

from .style import COLUMN_WIDTH, FLOOR_STYLE, new_figure, paper_style, reg_style, top_legend


def _band(ax, xs, cells, color, label, linestyle="-", marker=None, alpha=0.18):
    """One curve with its interval band; returns the line."""
    mean = [cells[x]["mean"] for x in xs]
    (line,) = ax.plot([100 * x for x in xs], mean, color=color, linestyle=linestyle, marker=marker, label=label,
                      linewidth=1.4, markersize=3.5)
    lo = [cells[x]["lo"] if cells[x]["lo"] is not None else cells[x]["mean"] for x in xs]
    hi = [cells[x]["hi"] if cells[x]["hi"] is not None else cells[x]["mean"] for x in xs]
    ax.fill_between([100 * x for x in xs], lo, hi, color=color, alpha=alpha, linewidth=0)
    return line


def static_protocol_fig4(before: dict[str, Any], classes: int = 10, floors_of: str = "l2", width: float = COLUMN_WIDTH):
    """Figure 4: each method at its validation-chosen criterion (mean, 95 % band), floors, chance."""
    with paper_style():
        fig, axes = new_figure(width, 0.62 * width + 0.6, squeeze=False)
        ax = axes[0, 0]
        handles: dict[str, Any] = {}
        for reg, by in before["cells"].items():
            cells = by.get("best (val)", {})
            xs = sorted(cells)
            if xs:
                st = reg_style(reg)
                handles[st.label] = _band(ax, xs, cells, st.color, st.label, marker=st.marker)
        base = floors_of if floors_of in before["cells"] else next(iter(before["cells"]), None)
        for floor, (color, ls) in FLOOR_STYLE.items():
            cells = before["cells"].get(base, {}).get(floor, {}) if base else {}
            xs = sorted(cells)
            if xs:
                label = f"{floor} ({reg_style(base).label} net)"
                handles[label] = _band(ax, xs, cells, color, label, linestyle=ls, alpha=0.08)
        chance = 100.0 / classes
        handles["chance"] = ax.axhline(chance, color="#444444", linewidth=0.8, linestyle=":")
        ax.set_xlabel("FLOPs pruned (%)")
        ax.set_ylabel("top-1 before retraining (%)")
        ax.set_ylim(bottom=0)
        n = len(before["seeds"])
        top_legend(fig, list(handles.values()), list(handles), min(3, len(handles)),
                   f"Test, mean ± 95 % CI, {n} seed{'s' if n != 1 else ''}", compact=width <= COLUMN_WIDTH)
    return fig


def static_finetuned(after: dict[str, Any], width: float = COLUMN_WIDTH, dense_label: str = "dense, same epochs"):
    """Accuracy after one-shot pruning + fine-tuning vs FLOPs pruned (mean, 95 % band), dense reference line.

    With one ratio (the ``demo`` preset) each method is a marker with its interval as an error bar,
    the methods side by side around that ratio. ``dense_label`` names the dashed reference.
    """
    with paper_style():
        fig, axes = new_figure(width, 0.62 * width + 0.6, squeeze=False)
        ax = axes[0, 0]
        handles: dict[str, Any] = {}
        regs = list(dict.fromkeys(r["reg"] for r in after["rows"]))
        ratios = sorted({float(r["ratio"]) for r in after["rows"]})
        for i, reg in enumerate(regs):
            cells = {r["ratio"]: r["after"] for r in after["rows"] if r["reg"] == reg}
            st = reg_style(reg)
            if len(ratios) == 1:  # one point per method: an error bar, dodged so the bars do not overlap
                x = 100 * ratios[0] + 1.2 * (i - (len(regs) - 1) / 2)
                c = cells.get(ratios[0])
                if c is None:
                    continue
                lo, hi = (c["lo"], c["hi"]) if c.get("lo") is not None else (c["mean"], c["mean"])
                bar = ax.errorbar([x], [c["mean"]], yerr=[[c["mean"] - lo], [hi - c["mean"]]], color=st.color,
                                  marker=st.marker, markersize=4, capsize=2.5, linewidth=1.2, linestyle="none")
                handles[st.label] = bar.lines[0]
            else:
                handles[st.label] = _band(ax, sorted(cells), cells, st.color, st.label, marker=st.marker)
        if after.get("dense"):
            d = after["dense"]
            handles[dense_label] = ax.axhline(d["mean"], color="#777777", linestyle="--", linewidth=1)
            if d.get("lo") is not None:
                ax.axhspan(d["lo"], d["hi"], color="#777777", alpha=0.08, linewidth=0)
        if ratios:
            ax.set_xlim(max(0.0, 100 * ratios[0] - 10), min(100.0, 100 * ratios[-1] + 10))
        ax.set_xlabel("FLOPs pruned (%)")
        ax.set_ylabel("top-1 after fine-tuning (%)")
        top_legend(fig, list(handles.values()), list(handles), min(3, len(handles)), "Test, mean ± 95 % CI",
                   compact=width <= COLUMN_WIDTH)
    return fig
