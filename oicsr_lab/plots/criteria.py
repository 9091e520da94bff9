"""The criteria panel: one panel per regulariser, one curve per channel-importance criterion.

Figure 4's question turned around: for one trained network, which ranking keeps the most
accuracy before retraining at each FLOPs reduction? Floors (random, uniform) are grey; a
curve is the mean over seeds with its 95 % Student-t interval as a band where there are
several seeds (:func:`oicsr_lab.stats.mean_ci`, as every protocol table).

Example:
    >>> import pandas as pd
    >>> from oicsr_lab.plots.criteria import static_criteria_panel
    >>> rows = [{"reg": "l2", "criterion": c, "seed": 0, "ratio": r, "acc_before_retrain": a}
    ...         for c, accs in {"out_in": (90, 80), "random": (90, 40)}.items() for r, a in zip((0.0, 0.3), accs)]
    >>> fig = static_criteria_panel(pd.DataFrame(rows))
    >>> len(fig.axes)
    1
"""

from __future__ import annotations

from typing import Any

from ..stats import mean_ci
from .style import FLOOR_STYLE, PAGE_WIDTH, criterion_label, new_figure, order_regs, paper_style, reg_label, top_legend


def static_criteria_panel(sweep_df: Any, chance: float | None = 10.0, ncols: int | None = None):
    """Accuracy before retraining (%) vs FLOPs pruned (%), per regulariser, one line per criterion."""
    import matplotlib as mpl

    df = sweep_df.copy()
    df["acc"] = df["acc_before_retrain"].astype(float)
    regs = order_regs(df["reg"].unique())
    crits = [c for c in dict.fromkeys(df["criterion"]) if c not in FLOOR_STYLE]
    palette = mpl.colormaps["tab20"].colors if len(crits) > 9 else mpl.colormaps["tab10"].colors
    colours = [c for c in palette if not (c[0] == c[1] == c[2])]  # grey is the floors' colour
    cols = ncols or min(len(regs), 2)
    rows = -(-len(regs) // cols)
    with paper_style():
        fig, axes = new_figure(PAGE_WIDTH, 0.9 + 2.3 * rows, nrows=rows, ncols=cols, squeeze=False, sharey=True)
        handles: dict[str, Any] = {}
        for ax, reg in zip(axes.flat, regs):
            sub = df[df["reg"] == reg]
            for crit, c in sub.groupby("criterion", sort=False):
                by_ratio = [(100 * r, mean_ci(v.tolist())) for r, v in c.groupby("ratio")["acc"]]
                x, ci = [r for r, _ in by_ratio], [i for _, i in by_ratio]
                mean = [i.mean for i in ci]
                colour, dash = FLOOR_STYLE[crit] if crit in FLOOR_STYLE else (colours[crits.index(crit) % len(colours)],
                                                                              "-")
                (line,) = ax.plot(x, mean, color=colour, linestyle=dash, marker="o" if crit not in FLOOR_STYLE
                                  else None, markersize=2.5, linewidth=1.6 if crit == "out_in" else 1.0,
                                  zorder=3 if crit == "out_in" else 2)
                if any(i.n > 1 for i in ci):
                    lo = [i.lo if i.n > 1 else m for i, m in zip(ci, mean)]
                    hi = [i.hi if i.n > 1 else m for i, m in zip(ci, mean)]
                    ax.fill_between(x, lo, hi, color=colour, alpha=0.12, linewidth=0)
                handles.setdefault(criterion_label(crit), line)
            if chance is not None:
                handles.setdefault("chance", ax.axhline(chance, color="#444444", linestyle=":", linewidth=0.8))
            n = sub["seed"].nunique() if "seed" in sub else 1
            ax.set_title(f"{reg_label(reg)} network ({n} seed{'s' if n != 1 else ''})", loc="left")
            ax.set_xlabel("FLOPs pruned (%)")
        for ax in axes[:, 0]:
            ax.set_ylabel("top-1 before retraining (%)")
        for ax in axes.flat[len(regs):]:
            ax.set_visible(False)
        top_legend(fig, list(handles.values()), list(handles), ncols=min(5, len(handles)))
    return fig
