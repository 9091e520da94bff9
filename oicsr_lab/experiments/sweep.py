"""Figure 4's measurement: accuracy *before retraining* against the FLOPs pruning ratio.

For one trained model, Algorithm 1 plans every ratio from the model's channel scores under a
criterion (out-in energy, a baseline's own criterion, or any criterion of the registry
:mod:`oicsr_lab.criteria` -- "regulariser x criterion" curves) and test accuracy is measured on a
physically pruned, BN-folded copy (:func:`~oicsr_lab.inference.inference_copy`): it equals the
masked model up to float rounding and costs only the pruned FLOPs. The same pass records the raw channel energies that
Figure 3 plots (``energies.json``). Data-driven criteria (Taylor, activation statistics, HRank) are
calibrated on a few batches of the validation split when the data has one, else of the training
split -- never on the test split the accuracy is measured on; each plan summary records which.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

from ..criteria import Calibration, calibration_data, get_criterion, names, score_channels
from ..data import DatasetSplits, Split
from ..errors import ConfigError, PlanError
from ..flops import count_flops
from ..importance import channel_energy
from ..inference import inference_copy
from ..precision import autocast, resolve_precision
from ..progress import progress
from ..pruning import global_greedy_plan
from ..regularizers import own_criterion
from ..train import evaluate

SWEEP_COLUMNS = ("model", "reg", "criterion", "normalize", "ratio", "achieved_ratio", "acc_before_retrain",
                 "flops", "params", "seed", "val_acc_before_retrain")

# Floors drawn on every Figure 4: a random channel choice (the registry's seeded ``random`` criterion,
# Algorithm 1's global sort over random scores) and ``uniform``: every layer loses the same fraction of
# its channels (the lowest out-in energy within each layer), at the same FLOPs. Uniform is Algorithm 1
# over within-layer *rank* scores (rank / layer size), which interleaves the layers evenly.
FLOORS = ("random", "uniform")
PROTOCOL_CRITERIA = "out_in,own,random,uniform"  # reproduce's default: both rankings of each method + the floors


def criteria_for(reg: str, criteria: str | Iterable[str] | None = None) -> list[str]:
    """The criteria a regulariser's sweep ranks channels by.

    Default (``criteria`` None): out-in energy, plus the regulariser's own criterion when different
    (the paper's Figure 4). Otherwise exactly the given registry names (a list or a comma-separated
    string, e.g. ``"out_in,l1,taylor"``), ``"all"`` for every registered criterion, or ``"own"``
    inside the list for the regulariser's own one.
    """
    own = own_criterion(reg)  # the regulariser registry's entry (reference section 3)
    if criteria is None:
        return ["out_in"] if own == "out_in" else ["out_in", own]
    items = [c.strip() for c in criteria.split(",")] if isinstance(criteria, str) else [str(c) for c in criteria]
    out: list[str] = []
    for c in items:
        for name in (names() if c == "all" else [own] if c == "own" else [c]):
            if name not in names() and name not in FLOORS:
                extra = [f for f in FLOORS if f not in names()]
                raise ConfigError(f"unknown criterion {name!r} in the sweep's criteria; choose from "
                                  f"{', '.join([*names(), *extra])}, 'own' or 'all'")
            if name not in out:
                out.append(name)
    if not out:
        raise ConfigError("the sweep's criteria list is empty; e.g. out_in,l1,taylor (or 'all')")
    return out


def _calibration(data: DatasetSplits, seed: int, batches: int) -> Calibration:
    """Calibration batches for data-driven criteria: the validation split if held out, else training."""
    return calibration_data(data, "val" if getattr(data, "val", None) is not None else "train", batches=batches,
                            seed=seed)


def _tolist(scores: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """Scores as plain lists of floats."""
    return {k: [float(x) for x in v.tolist()] for k, v in scores.items()}


def channel_energies(model: nn.Module, groups: Any) -> dict[str, dict[str, list[float]]]:
    """Raw per-channel energies: ``out_in`` (eq. 5), ``out`` (out-channel only), ``bn_gamma`` where BN exists."""
    out = {"out_in": _tolist(channel_energy(model, groups, "out_in", normalize="none")),
           "out": _tolist(channel_energy(model, groups, "out", normalize="none"))}
    bn_groups = [g for g in groups if g.prunable and g.bn_slices]
    if bn_groups:
        out["bn_gamma"] = _tolist(channel_energy(model, bn_groups, "bn_gamma", normalize="none"))
    return out


def uniform_scores(scores: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Within-layer rank scores ``(rank + 0.5) / size``: Algorithm 1 over them prunes every layer by the same
    fraction."""
    out = {}
    for name, v in scores.items():
        v = torch.as_tensor(v).flatten()
        ranks = torch.empty(len(v), dtype=torch.float64)
        ranks[torch.argsort(v, stable=True)] = torch.arange(len(v), dtype=torch.float64)
        out[name] = ((ranks + 0.5) / max(1, len(v))).float()
    return out


def _accuracies(model: nn.Module, plan: Any, data: DatasetSplits, splits: list[Split | None], device: Any,
                precision: str = "fp32") -> list[float | None]:
    """Top-1 (%) on each split (None: skipped) of ``model`` pruned by ``plan`` (dense when None).

    One fast inference copy (physically pruned, BN folded) serves every split; ``precision``
    (fp32, bf16, auto) is the arithmetic of the forward passes.
    """
    net = inference_copy(model, plan)
    with autocast(resolve_precision(precision, device), device):
        return [None if s is None else evaluate(net, data, s, device=device, channels_last=True)["acc"]
                for s in splits]


def sweep_model(
    model: nn.Module,
    groups: Any,
    data: DatasetSplits,
    test_split: Split,
    ratios: Iterable[float],
    criteria: Iterable[str],
    normalize: str = "layer_max",
    max_layer_ratio: float = 0.9,
    meta: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    show_progress: bool | None = None,
    calibration: Calibration | None = None,
    calibration_batches: int = 4,
    val_split: Split | None = None,
    precision: str = "fp32",
) -> tuple[list[dict[str, Any]], dict[str, dict[str, dict[str, Any]]]]:
    """Rows of ``sweep.csv`` (ratio 0 = the dense model) and ``{criterion/normalize: {ratio: plan summary}}``.

    ``criteria``: registry names (see :func:`criteria_for`). Data-driven ones use ``calibration``,
    by default ``calibration_batches`` batches of 64 of the validation split (training split when
    none is held out), seeded by ``meta["seed"]``; their plan summaries say which (``calibration``).
    ``val_split``: also measure every plan on it (``val_acc_before_retrain``), where choices such
    as each method's best criterion are made (floors are measured on the test split only);
    ``test_split`` is for the reported numbers. ``precision``: arithmetic of the evaluations
    (default fp32; ``auto`` = bf16 on a native-bf16 CPU, ~2.5x faster here, see the ``demo`` preset).
    """
    meta = dict(meta or {})
    model = model.to(device).eval()
    example = data.example_input().to(device)
    report = count_flops(model, example)
    dense_acc, dense_val = _accuracies(model, None, data, [test_split, val_split], device, precision)
    ratios, criteria = [float(r) for r in ratios], list(criteria)
    rows: list[dict[str, Any]] = []
    plans: dict[str, dict[str, dict[str, Any]]] = {}
    bar = progress(total=len(ratios) * len(criteria), desc=f"sweep {meta.get('reg', '')}", unit="plan",
                   enabled=show_progress)
    if calibration is None and any(c not in FLOORS and get_criterion(c).needs_data for c in criteria):
        calibration = _calibration(data, int(meta.get("seed", 0)), calibration_batches)
    for crit in criteria:
        if crit == "uniform":
            scores = uniform_scores(score_channels(model, groups, "out_in", "none"))
            used = None
        else:
            scores = score_channels(model, groups, crit, normalize, seed=int(meta.get("seed", 0)),
                                    calibration=calibration)
            used = {"split": scores.split, "batches": scores.batches,
                    "images": scores.images} if scores.batches else None
        key = f"{crit}/{normalize}"
        plans[key] = {}
        rows.append({**meta, "criterion": crit, "normalize": normalize, "ratio": 0.0, "achieved_ratio": 0.0,
                     "acc_before_retrain": dense_acc, "val_acc_before_retrain": dense_val,
                     "flops": int(report.total_macs), "params": int(report.total_params)})
        for ratio in ratios:
            try:
                plan = global_greedy_plan(model, groups, scores, ratio, max_layer_ratio=max_layer_ratio, report=report,
                                          criterion=crit, normalize=normalize)
            except PlanError as e:  # unreachable under the cap: leave a gap, say why
                plans[key][f"{ratio:g}"] = {"error": str(e)}
                bar.update(1)
                continue
            # validation accuracy is where a method's criterion is chosen; floors are never chosen
            acc, vacc = _accuracies(model, plan, data, [test_split, None if crit in FLOORS else val_split], device,
                                    precision)
            rows.append({**meta, "criterion": crit, "normalize": normalize, "ratio": ratio,
                         "achieved_ratio": plan.achieved_ratio, "acc_before_retrain": acc,
                         "val_acc_before_retrain": vacc,
                         "flops": int(plan.flops_after), "params": int(plan.params_after)})
            plans[key][f"{ratio:g}"] = {"layer_ratios": plan.layer_ratios, "achieved_ratio": plan.achieved_ratio,
                                         "flops_after": int(plan.flops_after), "params_after": int(plan.params_after),
                                         "acc_before_retrain": acc, "val_acc_before_retrain": vacc,
                                         **({"calibration": used} if used else {})}
            bar.update(1)
            bar.set_postfix(crit=crit, ratio=ratio, acc=f"{acc:.1f}")
    bar.close()
    return [{k: r.get(k) for k in SWEEP_COLUMNS} for r in rows], plans
