"""Table 1: the authors' published ResNet-50 / ImageNet rows next to what the lab computes.

The lab cannot train on ImageNet here. What it *can* compute for torchvision's ResNet-50
structure is the dense MACs at 224x224 under the paper's convention (4089 M) and the per-layer
widths Algorithm 1 keeps at the published FLOPs reductions (37.3 / 44.4 / 50 %), scored with the
out-in energy of the weights at hand: random initialisation (seeded) unless a state dict is given.
Every row says whether it is ``published`` or ``computed`` and where the weights came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch

PUBLISHED = [
    {"label": "published", "method": "baseline", "top1": 76.32, "top5": 93.00, "flops_m": 4089, "flops_pruned": 0.0},
    {"label": "published", "method": "OICSR-GL", "top1": 76.53, "top5": 93.16, "flops_m": 2563, "flops_pruned": 0.373},
    {"label": "published", "method": "OICSR-GL", "top1": 76.30, "top5": 92.92, "flops_m": 2274, "flops_pruned": 0.444},
    {"label": "published", "method": "OICSR-GL", "top1": 75.95, "top5": 92.66, "flops_m": 2046, "flops_pruned": 0.500},
]
SOURCE = "Li et al., OICSR, CVPR 2019, Table 1 (ResNet-50, ImageNet-1K); see docs/method.md section 5"
RATIOS = (0.373, 0.444, 0.5)


def _weights(model: torch.nn.Module, weights: str | Path | None, seed: int) -> str:
    """Load ``weights`` (a state dict file) into ``model``, or describe the seeded random init."""
    if weights is None:
        return f"random initialisation (torchvision default init, torch.manual_seed({seed})); not trained"
    from ..errors import CheckpointError

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{weights}: cannot read ResNet-50 weights ({type(e).__name__}); pass a "
                              "torchvision state dict file") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except Exception as e:
        raise CheckpointError(f"{weights}: not a torchvision resnet50 state dict "
                              f"({str(e).splitlines()[0][:120]})") from None
    return f"user-provided state dict {Path(weights).name}"


def compute_table1(
    weights: str | Path | None = None,
    ratios: Iterable[float] = RATIOS,
    criterion: str = "out_in",
    normalize: str = "layer_max",
    max_layer_ratio: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """``table1.json``: published rows plus computed rows for torchvision resnet50's structure at 224x224."""
    from ..flops import count_flops
    from ..groups import find_groups
    from ..importance import channel_energy
    from ..models import build_model
    from ..pruning import global_greedy_plan

    torch.manual_seed(seed)
    model = build_model("torchvision:resnet50", num_classes=1000).eval()
    source = _weights(model, weights, seed)
    x = torch.zeros(1, 3, 224, 224)
    report = count_flops(model, x)
    groups = find_groups(model, x)
    prunable = [g for g in groups if g.prunable]
    scores = channel_energy(model, groups, criterion, normalize=normalize)
    dense_m = report.total_macs / 1e6
    rows: list[dict[str, Any]] = [{
        "label": "computed", "method": "dense torchvision resnet50 (structure)", "flops_m": round(dense_m, 1),
        "flops_pruned": 0.0, "params_m": round(report.total_params / 1e6, 3), "weights": source,
        "widths": {g.name: g.size for g in prunable}, "top1": None, "top5": None,
    }]
    for r in ratios:
        row: dict[str, Any] = {"label": "computed", "method": f"Algorithm 1, one shot, {criterion}/{normalize}",
                               "target": float(r), "weights": source, "top1": None, "top5": None,
                               "note": "accuracy not measured (no ImageNet here); widths only"}
        try:
            plan = global_greedy_plan(model, groups, scores, float(r), max_layer_ratio=max_layer_ratio, report=report)
        except Exception as e:  # PlanError: unreachable under the cap
            row["error"] = str(e)
        else:
            row.update({
                "flops_m": round(plan.flops_after / 1e6, 1), "flops_pruned": plan.achieved_ratio,
                "params_m": round(plan.params_after / 1e6, 3),
                "widths": {k: len(v) for k, v in plan.keep.items()}, "layer_ratios": plan.layer_ratios,
            })
        rows.append(row)
    return {
        "model": "torchvision:resnet50", "input": [3, 224, 224], "published_source": SOURCE,
        "flops_convention": "multiply-accumulates of Conv and Linear layers (paper's counter)",
        "dense_macs_m": round(dense_m, 1), "published_dense_macs_m": 4089, "weights": source,
        "criterion": criterion, "normalize": normalize, "max_layer_ratio": max_layer_ratio,
        "prunable_groups": len(prunable), "prunable_channels": sum(g.size for g in prunable),
        "rows": PUBLISHED + rows,
    }
