"""The comparison protocol's tables: means with 95 % intervals over seeds and paired differences.

Reads the plain rows of a report (``sweep.csv``, ``finetune.csv``, ``summary.json``) and returns
plain tables; :mod:`.tables` renders them as markdown and the report shows them. The rules:

* every number is a **test** accuracy averaged over the seeds, with its Student-t 95 % interval
  (:mod:`oicsr_lab.stats`);
* each method is shown under out-in energy, under its own criterion, and at its **best
  criterion chosen on the validation split** (per seed: the criterion with the higher mean
  validation accuracy before retraining over the sweep's ratios; floors excluded). The
  headline uses the latter;
* OICSR-GL against each baseline is the **paired** per-seed difference (same seeds) with its
  interval, before retraining and after fine-tuning at matched FLOPs; a difference "holds" when
  its interval excludes zero;
* the random and uniform floors and the chance line (100 / classes) come with every table;
* with the unpruned control in ``finetune.csv`` (ratio 0, each network fine-tuned unpruned the
  same way), the headline's lead at ratio 0 is what its training alone buys, each method's
  *pruning cost* is pruned minus unpruned (paired by seed), and the headline's pruning cost minus
  each baseline's (a difference of differences) is what the pruning itself earns.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from ..regularizers import own_criterion
from ..stats import mean_ci, paired_ci
from .finetune import best_criterion
from .sweep import FLOORS

HEADLINE = "oicsr_gl"


def _f(v: Any) -> float | None:
    return None if v in (None, "") or v != v else float(v)


def best_by_seed(sweep_rows: Iterable[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """``{(reg, seed): criterion}`` chosen on the validation split (see :func:`~.finetune.best_criterion`)."""
    by: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in sweep_rows:
        by.setdefault((r["reg"], int(r["seed"])), []).append(r)
    return {k: best_criterion(v) for k, v in by.items()}


def _acc(sweep_rows, reg: str, seed: int, crit: str, ratio: float) -> float | None:
    for r in sweep_rows:
        if (r["reg"] == reg and int(r["seed"]) == seed and r["criterion"] == crit
                and abs(float(r["ratio"]) - ratio) < 1e-9):
            return _f(r["acc_before_retrain"])
    return None


def before_retraining(sweep_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Figure 4's numbers: per method and ranking, per ratio, the mean test accuracy and its interval.

    Rankings: ``best (val)``, ``out_in``, ``own`` (the method's own criterion), ``random``, ``uniform``.
    Also the paired differences of the headline method against each baseline at ``best (val)``.
    """
    regs = list(dict.fromkeys(r["reg"] for r in sweep_rows))
    seeds = sorted({int(r["seed"]) for r in sweep_rows})
    ratios = sorted({float(r["ratio"]) for r in sweep_rows})
    best = best_by_seed(sweep_rows)
    rankings = {
        "best (val)": lambda reg, s: best[(reg, s)],
        "out_in": lambda reg, s: "out_in",
        "own": lambda reg, s: own_criterion(reg),
        **{f: (lambda reg, s, f=f: f) for f in FLOORS},
    }
    cells: dict[str, dict[str, dict[float, dict]]] = {}
    per_seed: dict[tuple[str, str, float], list[float | None]] = {}
    for reg in regs:
        for name, pick in rankings.items():
            if name == "own" and own_criterion(reg) == "out_in":
                continue
            for ratio in ratios:
                vals = [_acc(sweep_rows, reg, s, pick(reg, s), ratio) for s in seeds]
                per_seed[(reg, name, ratio)] = vals
                got = [v for v in vals if v is not None]
                if got:
                    cells.setdefault(reg, {}).setdefault(name, {})[ratio] = mean_ci(got).as_dict()
    at = {(reg, s, ratio): v for (reg, name, ratio), vals in per_seed.items() if name == "best (val)"
          for s, v in zip(seeds, vals)}
    paired = _paired(lambda reg, s, ratio: at.get((reg, s, ratio)), regs, seeds, ratios)
    return {"seeds": seeds, "ratios": ratios, "cells": cells, "paired": paired,
            "best": {f"{reg}/{s}": c for (reg, s), c in best.items()}}


def is_criteria_sweep(sweep_rows: Iterable[dict[str, Any]]) -> bool:
    """Whether a sweep compares criteria, which is when the report draws the criteria panel and ``oicsr-lab tables``
    adds the per-network criteria tables: some network is ranked by a criterion other than the default sweep's
    (out-in energy, the regulariser's own criterion, and the random and uniform floors), whatever the count.

    Example:
        >>> rows = [{"reg": "l2", "criterion": c} for c in ("out_in", "out", "random", "uniform")]
        >>> is_criteria_sweep(rows), is_criteria_sweep(rows + [{"reg": "l2", "criterion": "taylor"}])
        (False, True)
    """
    return any(str(r["criterion"]) not in ("out_in", own_criterion(str(r["reg"])), *FLOORS) for r in sweep_rows)


def criteria_comparison(sweep_rows: list[dict[str, Any]], baseline: str = "out_in") -> dict[str, Any]:
    """Every criterion of a sweep on each network: mean test accuracy before retraining with its interval,
    and the paired per-seed difference of each criterion to ``baseline`` (out-in energy) on the same network.

    Returns ``{"seeds", "ratios", "cells": {reg: {criterion: {ratio: interval}}},
    "vs_baseline": {reg: {criterion: {ratio: interval + holds}}}}`` (ratios above 0 only).
    """
    seeds = sorted({int(r["seed"]) for r in sweep_rows})
    ratios = sorted({float(r["ratio"]) for r in sweep_rows if float(r["ratio"]) > 0})
    acc: dict[tuple[str, str, int, float], float] = {}
    for r in sweep_rows:
        v = _f(r["acc_before_retrain"])
        if v is not None:
            acc[(r["reg"], r["criterion"], int(r["seed"]), round(float(r["ratio"]), 9))] = v
    cells: dict[str, dict[str, dict[float, dict]]] = {}
    vs: dict[str, dict[str, dict[float, dict]]] = {}
    for reg in dict.fromkeys(r["reg"] for r in sweep_rows):
        for crit in dict.fromkeys(r["criterion"] for r in sweep_rows if r["reg"] == reg):
            for ratio in ratios:
                k = round(ratio, 9)
                got = [acc[(reg, crit, s, k)] for s in seeds if (reg, crit, s, k) in acc]
                if got:
                    cells.setdefault(reg, {}).setdefault(crit, {})[ratio] = mean_ci(got).as_dict()
                if crit != baseline:
                    d = _pair_ci([(acc.get((reg, crit, s, k)), acc.get((reg, baseline, s, k))) for s in seeds])
                    if d is not None:
                        vs.setdefault(reg, {}).setdefault(crit, {})[ratio] = d
    return {"seeds": seeds, "ratios": ratios, "cells": cells, "vs_baseline": vs, "baseline": baseline}


TRAINED_REFERENCE = "a dense L2 network trained for the same total epochs"


def reference_phrase(references: dict[str, Any] | None, shipped: bool = False) -> str:
    """What the fine-tune table's dense reference is, in words (the ``demo`` preset's differs: see its note)."""
    notes = {v.get("note") for v in (references or {}).values() if v.get("note")}
    if notes:
        return "; ".join(sorted(notes))
    return "no dense reference (the shipped L2 is not among --regs)" if shipped else TRAINED_REFERENCE


def finetune_phrase(config: dict[str, Any]) -> str:
    """How long the one-shot fine-tune was, from a reproduce spec (``summary["config"]``), in words.

    Example:
        >>> finetune_phrase({"finetune": {"epochs": 1, "train_images": 1024}, "base_config": {"batch_size": 128}})
        '1 epoch over 1,024 training images (8 SGD steps of 128)'
    """
    ft = config.get("finetune") or {}
    epochs = int(ft.get("epochs") or 0)
    n = ft.get("train_images")
    if not n:
        return f"{epochs} epoch(s)"
    bs = int((config.get("base_config") or {}).get("batch_size") or 128)
    steps = epochs * (int(n) // bs)  # training drops the last partial batch
    return (f"{epochs} epoch{'s' if epochs != 1 else ''} over {int(n):,} training images ({steps} SGD steps of {bs})")


def after_finetuning(ft_rows: list[dict[str, Any]], references: dict[str, Any]) -> dict[str, Any]:
    """Table 1 form: per method and ratio, FLOPs, params, top-1 after fine-tuning (mean, interval) and the
    paired difference to the dense reference trained for the same total epochs."""
    ref = {int(s): float(v["test_acc"]) for s, v in (references or {}).items()}
    rows = []
    regs = list(dict.fromkeys(r["reg"] for r in ft_rows))
    ratios = sorted({float(r["ratio"]) for r in ft_rows})
    ft_rows = [r for r in ft_rows if _f(r.get("acc_after_finetune")) is not None]  # a missing cell drops its seed
    for reg in regs:
        for ratio in ratios:
            sub = [r for r in ft_rows if r["reg"] == reg and abs(float(r["ratio"]) - ratio) < 1e-9]
            if not sub:
                continue
            accs = [float(r["acc_after_finetune"]) for r in sub]
            seeds = [int(r["seed"]) for r in sub]
            row = {"reg": reg, "ratio": ratio, "n": len(sub),
                   "flops_m": sum(float(r["flops"]) for r in sub) / len(sub) / 1e6,
                   "params_k": sum(float(r["params"]) for r in sub) / len(sub) / 1e3,
                   "criteria": sorted({r["criterion"] for r in sub}),
                   "before": _mean_or_none([_f(r.get("acc_before_retrain")) for r in sub]),
                   "after": mean_ci(accs).as_dict()}
            if all(s in ref for s in seeds):
                row["delta_vs_dense"] = _pair_ci(list(zip(accs, [ref[s] for s in seeds])))
            rows.append(row)
    dense = mean_ci(list(ref.values())).as_dict() if ref else None
    acc = {(r["reg"], int(r["seed"]), round(float(r["ratio"]), 9)): float(r["acc_after_finetune"]) for r in ft_rows}
    seeds = sorted({int(r["seed"]) for r in ft_rows})
    after = lambda reg, s, ratio: acc.get((reg, s, round(ratio, 9)))  # noqa: E731
    out = {"rows": rows, "dense": dense, "ratios": ratios, "paired": _paired(after, regs, seeds, ratios)}
    if 0.0 in ratios:  # the unpruned control: what pruning cost each method after the same fine-tune
        pruned = [r for r in ratios if r > 0]
        unpruned = lambda reg, s, ratio: acc.get((reg, s, 0.0))  # noqa: E731
        cost: dict[str, dict[float, dict]] = {}
        for reg in regs:
            for ratio in pruned:
                d = _pair_ci([(after(reg, s, ratio), unpruned(reg, s, ratio)) for s in seeds])
                if d is not None:
                    cost.setdefault(reg, {})[ratio] = d
        out["pruning_cost"] = cost
        out["paired_cost"] = _paired(after, regs, seeds, pruned, minus=unpruned)
    return out


def _mean_or_none(values: list[float | None]) -> dict[str, Any] | None:
    """Mean and interval of the values present (None where none is)."""
    got = [v for v in values if v is not None]
    return mean_ci(got).as_dict() if got else None


def _pair_ci(pairs: list[tuple[float | None, float | None]]) -> dict[str, Any] | None:
    """The paired interval of ``a - b`` over the complete pairs, with ``holds`` (excludes zero); None if none."""
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not pairs:
        return None
    d = paired_ci([a for a, _ in pairs], [b for _, b in pairs])
    return {**d.as_dict(), "holds": d.excludes_zero()}


def _paired(value: Callable[[str, int, float], float | None], regs: list[str], seeds: list[int],
            ratios: list[float], minus: Callable[[str, int, float], float | None] | None = None) -> dict[str, dict]:
    """``{baseline: {ratio: interval}}``: the headline method's ``value`` minus each baseline's, paired by seed.

    ``value(reg, seed, ratio)`` is None where a cell is missing (that seed is left out of the pair). With
    ``minus``, each value is first taken relative to ``minus(reg, seed, ratio)`` (a difference of differences).
    """
    def v(reg: str, s: int, ratio: float) -> float | None:
        x = value(reg, s, ratio)
        if minus is None or x is None:
            return x
        y = minus(reg, s, ratio)
        return None if y is None else x - y

    paired: dict[str, dict[float, dict]] = {}
    if HEADLINE not in regs:
        return paired
    for reg in regs:
        if reg == HEADLINE:
            continue
        for ratio in ratios:
            d = _pair_ci([(v(HEADLINE, s, ratio), v(reg, s, ratio)) for s in seeds])
            if d is not None:
                paired.setdefault(reg, {})[ratio] = d
    return paired


def pipeline_over_seeds(pipe_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The iterative pipeline (``pipeline.csv`` with its ``seed`` column) over seeds.

    Returns ``{"seeds", "steps", "paired"}``: ``steps`` has one row per (regulariser, step) with the test
    accuracy before and after retraining as intervals over seeds (the fine-tune stage has no "before") and the
    criteria its seeds ranked by (``criterion`` column; None in files written before it);
    ``paired`` is the headline method's accuracy after retraining minus each other pipeline regulariser's, paired
    by seed, at every step's FLOPs target (float keys) and after the final fine-tune (key ``"final"``).
    """
    rows = [dict(r, seed=int(_f(r.get("seed")) or 0)) for r in pipe_rows]
    seeds = sorted({r["seed"] for r in rows})
    regs = list(dict.fromkeys(str(r["reg"]) for r in rows))
    steps = []
    for reg in regs:
        for step in sorted({int(_f(r["step"])) for r in rows if r["reg"] == reg}):
            at = [r for r in rows if r["reg"] == reg and int(_f(r["step"])) == step]
            stage = str(at[0].get("stage") or "")
            crits = sorted({str(r["criterion"]) for r in at if r.get("criterion") not in (None, "") and
                            r.get("criterion") == r.get("criterion")})
            steps.append({"reg": reg, "step": step, "stage": stage, "target_ratio": _f(at[0].get("target_ratio")),
                          "criterion": ", ".join(crits) or None,
                          "achieved_ratio": _mean_or_none([_f(r.get("achieved_ratio")) for r in at]),
                          "before": None if stage == "finetune" else
                          _mean_or_none([_f(r.get("acc_before_retrain")) for r in at]),
                          "after": _mean_or_none([_f(r.get("acc_after_retrain")) for r in at]),
                          "mflops": (sum(_f(r["flops"]) for r in at) / len(at)) / 1e6})

    def after(reg: str, seed: int, key: Any) -> float | None:
        for r in rows:
            if r["reg"] != reg or r["seed"] != seed:
                continue
            stage = str(r.get("stage") or "")
            if key == "final" and stage == "finetune" or key != "final" and stage == "prune" \
                    and _f(r.get("target_ratio")) is not None and abs(_f(r["target_ratio"]) - key) < 1e-9:
                return _f(r.get("acc_after_retrain"))
        return None

    targets = sorted({_f(r["target_ratio"]) for r in rows if str(r.get("stage")) == "prune"})
    keys: list[Any] = [*targets, *(["final"] if any(str(r.get("stage")) == "finetune" for r in rows) else [])]
    return {"seeds": seeds, "steps": steps, "paired": _paired(after, regs, seeds, keys)}
