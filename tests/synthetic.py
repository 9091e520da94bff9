"""Synthetic results in the schema of ``reproduce``, for the figure tests (tests/test_plots.py).

The numbers are made up to *look* like the paper's trends (OICSR-GL separates channels most
sharply and keeps the most accuracy); they are never results. Every object is labelled
``"synthetic": True`` where the schema allows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

REGS = ("l2", "gl", "l1bn", "oicsr_gl")
# how sharply each regulariser separates important from redundant channels (0 = not at all)
_SHARPNESS = {"l2": 0.0, "gl": 0.45, "l1bn": 0.35, "oicsr_gl": 0.9, "growl": 0.5, "oicsr_growl": 0.85}
_DROP = {"l2": 1.7, "gl": 1.15, "l1bn": 1.3, "oicsr_gl": 0.8, "growl": 1.05, "oicsr_growl": 0.85}


def resnet_groups(depth: int = 56) -> dict[str, int]:
    """The prunable groups of a CIFAR ResNet (``layerS.B.conv1`` -> width), in network order."""
    n = (depth - 2) // 6
    return {f"layer{s}.{b}.conv1": 16 * 2 ** (s - 1) for s in (1, 2, 3) for b in range(n)}


def synthetic_energies(regs=REGS, depth: int = 56, seed: int = 0) -> dict[str, Any]:
    """energies.json-like object: out-in, out-only energies and BN gamma per regulariser and group."""
    rng = np.random.default_rng(seed)
    groups = resnet_groups(depth)
    runs, outs, gammas = {}, {}, {}
    for reg in regs:
        sharp = _SHARPNESS.get(reg, 0.3)
        runs[reg], outs[reg], gammas[reg] = {}, {}, {}
        for g, size in groups.items():
            base = rng.lognormal(0.0, 0.35, size)
            redundant = rng.random(size) < 0.25 + 0.35 * sharp
            e = base * np.where(redundant, 1.0 - 0.97 * sharp - 0.05 * rng.random(size), 1.0)
            e = np.clip(e, 0, None) * (2.0 + rng.random())
            if reg == "oicsr_gl":
                e[redundant & (rng.random(size) < 0.5)] = 0.0  # the proximal step yields exact zeros
            runs[reg][g] = e.round(6).tolist()
            outs[reg][g] = (e * rng.uniform(0.3, 0.6, size)).round(6).tolist()
            gammas[reg][g] = (np.sqrt(e) * rng.uniform(0.8, 1.2, size) * 0.3).round(6).tolist()
    return {"model": f"resnet{depth}", "criterion": "out_in", "synthetic": True,
            "runs": runs, "out_energies": outs, "bn_gamma": gammas}


def synthetic_sweep(regs=REGS, models=("resnet56", "vgg16_bn"), seeds=(0, 1),
                    ratios=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), normalizes=("layer_max",), seed: int = 0) -> pd.DataFrame:
    """sweep.csv-like frame: accuracy before retraining per model, reg, criterion, ratio and seed."""
    from oicsr_lab.regularizers import own_criterion

    rng = np.random.default_rng(seed)
    rows = []
    for model in models:
        dense = 0.93 if "resnet" in model else 0.935
        flops = 125.5e6 if "resnet" in model else 313.7e6
        for reg in regs:
            for crit in dict.fromkeys(("out_in", own_criterion(reg))):
                penalty = 1.0 if crit == "out_in" else 1.25
                for norm in normalizes:
                    for s in seeds:
                        for r in ratios:
                            drop = _DROP.get(reg, 1.2) * penalty * (r / 0.5) ** 1.6 * 0.55
                            acc = max(0.1, dense - drop + rng.normal(0, 0.006) * (r > 0))
                            ach = r + (rng.normal(0, 0.003) if r else 0.0)
                            rows.append(dict(model=model, reg=reg, criterion=crit, normalize=norm, ratio=r,
                                             achieved_ratio=round(ach, 4), acc_before_retrain=round(acc, 4),
                                             flops=int(flops * (1 - ach)), params=int(0.85e6 * (1 - 0.8 * ach)),
                                             seed=s))
    return pd.DataFrame(rows)


def synthetic_plans(regs=REGS, ratios=(0.1, 0.3, 0.5), normalizes=("layer_max", "layer_sum"),
                    depth: int = 56, seed: int = 0) -> dict[str, Any]:
    """plans.json-like object: per-layer pruned fraction per reg, criterion/normalize and ratio."""
    rng = np.random.default_rng(seed)
    groups = resnet_groups(depth)
    out: dict[str, Any] = {}
    for reg in regs:
        out[reg] = {}
        for norm in normalizes:
            by_ratio = {}
            for r in ratios:
                lr = {}
                for g, size in groups.items():
                    stage = int(g[5])
                    tilt = (stage - 2) * (0.35 if norm == "layer_sum" else 0.12)
                    frac = np.clip(r * (1 + tilt) + rng.normal(0, 0.08), 0, 0.5)
                    lr[g] = round(float(np.round(frac * size) / size), 4)
                by_ratio[str(r)] = {"layer_ratios": lr}
            out[reg][f"out_in/{norm}"] = by_ratio
    return out


def synthetic_pipeline(regs=("l2", "gl", "oicsr_gl"), steps: int = 5, seed: int = 0) -> pd.DataFrame:
    """pipeline.csv-like frame: accuracy before/after retraining and FLOPs per iterative step."""
    import json

    rng = np.random.default_rng(seed)
    rows = []
    for reg in regs:
        acc = 0.93
        for k in range(steps + 1):
            target = 0.1 * k
            ach = target + (rng.normal(0, 0.004) if k else 0)
            before = acc - (_DROP.get(reg, 1.2) * 0.03 * k if k else 0)
            after = 0.93 - _DROP.get(reg, 1.2) * 0.0025 * k ** 1.3
            rows.append(dict(reg=reg, step=k, target_ratio=round(target, 3), achieved_ratio=round(ach, 4),
                             acc_before_retrain=round(before, 4), acc_after_retrain=round(after, 4),
                             flops=int(125.5e6 * (1 - ach)), params=int(0.85e6 * (1 - 0.8 * ach)),
                             widths=json.dumps({"layer3.8.conv1": int(64 * (1 - ach))})))
            acc = after
    return pd.DataFrame(rows)


def synthetic_table1() -> dict[str, Any]:
    """table1.json-like object: the published ResNet-50 rows plus made-up computed rows."""
    published = [
        dict(model="ResNet-50 baseline", top1=76.32, top5=93.00, flops_m=4089, flops_pruned=0.0),
        dict(model="OICSR-GL", top1=76.53, top5=93.16, flops_m=2563, flops_pruned=0.373),
        dict(model="OICSR-GL", top1=76.30, top5=92.92, flops_m=2274, flops_pruned=0.444),
        dict(model="OICSR-GL", top1=75.95, top5=92.66, flops_m=2046, flops_pruned=0.500),
    ]
    computed = [
        dict(model="ResNet-50 (torchvision), dense", top1=None, top5=None, flops_m=4089, flops_pruned=0.0),
        dict(model="OICSR-GL plan at 37.3% (synthetic)", top1=None, top5=None, flops_m=2565, flops_pruned=0.3727),
    ]
    rows = [{"source": "published", **r} for r in published] + [{"source": "computed", **r} for r in computed]
    return {"rows": rows, "notes": "Synthetic computed rows for testing the renderer."}


def synthetic_summary() -> dict[str, Any]:
    """summary.json-like object: config, data, seeds, wall time and package versions."""
    return {"preset": "synthetic", "config": {"model": "resnet56", "epochs": 8, "lambda": 1e-2, "lr": 0.1},
            "data": "cifar10-sample (synthetic numbers)", "seeds": [0, 1], "wall_time_s": 3725.4,
            "versions": {"oicsr-lab": "0.1.0", "torch": "2.9", "plotly": "6"}}
