"""The reference of every checkable exercise, recomputed from the notebook's own objects.

Each function is registered with :func:`~oicsr_lab.course.registry.exercise` and returns
``(right, hint)``; a hint points at the idea, never at the value. Ids are ``"NN.k"``: notebook NN,
exercise k (the numbering of each notebook's *Exercises* section).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from ..errors import PlanError
from .registry import exercise


def _close(a: float, b: float, rel: float, abs_: float = 0.0) -> bool:
    return math.isfinite(float(a)) and abs(float(a) - float(b)) <= max(rel * abs(float(b)), abs_)


def _stage(group_name: str) -> str:
    return group_name.split(".")[0]


def _best_stage(report: Any, groups: Any) -> str:
    from ..flops import channel_flops

    per_channel = channel_flops(report, groups.prunable)
    return _stage(max(per_channel, key=per_channel.get))


def _reachable(model: nn.Module, groups: Any, report: Any, ratio: float, cap: float) -> bool:
    from ..importance import channel_energy
    from ..pruning import global_greedy_plan

    try:
        global_greedy_plan(model, groups, channel_energy(model, groups, "out_in", normalize="layer_max"), ratio,
                           max_layer_ratio=cap, report=report)
        return True
    except PlanError:
        return False


def max_reachable(model: nn.Module, groups: Any, report: Any, cap: float, tol: float = 1e-3) -> float:
    """Largest FLOPs ratio Algorithm 1 can reach in one step under the per-layer ``cap`` (bisection)."""
    lo, hi = 0.0, 0.999
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _reachable(model, groups, report, mid, cap) else (lo, mid)
    return lo


# ----------------------------------------------------------------------------------------- 00 tour
@exercise("00.1", "ex1_dominant: 'out' or 'in', the larger part of the energy summed over the first layer3 group "
                  "of the untrained model")
def _ex00_1(answer: str, config: Any, x: torch.Tensor, num_classes: int) -> tuple[bool, str]:
    from ..groups import find_groups
    from ..importance import channel_energy
    from ..models import build_model

    torch.manual_seed(config.seed)
    fresh = build_model(config.model, num_classes=num_classes, width=config.width).eval()
    groups = find_groups(fresh, x)
    name = next(g.name for g in groups.prunable if g.name.startswith("layer3"))
    out = float(channel_energy(fresh, groups, "out", normalize="none")[name].sum())
    out_in = float(channel_energy(fresh, groups, "out_in", normalize="none")[name].sum())
    ref = "out" if out > out_in - out else "in"
    return str(answer).strip().lower() == ref, (f"compare the summed 'out' energy of {name} with the summed "
                                                "'out_in' minus 'out' energy, and count the weights of each part")


@exercise("00.3", "ex3_stage: the stage ('layer1', 'layer2' or 'layer3') whose channels save the most MACs each")
def _ex00_3(answer: str, report: Any, groups: Any) -> tuple[bool, str]:
    return str(answer).strip() == _best_stage(report, groups), (
        "a channel's saving is (weights it owns) x (positions of its feature map): compare the map sizes "
        "(oicsr_lab.flops.channel_flops gives the numbers)")


@exercise("00.4", "ex4_max_diff: the largest absolute difference between small(xb) and the masked model(xb)")
def _ex00_4(answer: float, model: nn.Module, plan: Any, small: nn.Module, xb: torch.Tensor) -> tuple[bool, str]:
    from ..pruning import apply_masks

    with torch.inference_mode(), apply_masks(model, plan):
        ref = float((small.eval()(xb) - model.eval()(xb)).abs().max())
    return float(answer) <= 1e-4 and abs(float(answer) - ref) <= 1e-4, (
        "run both models on the same normalised batch in eval mode, with the masks applied, and take "
        "(a - b).abs().max().item()")


@exercise("00.5", "ex5_new_groups: how many more groups are prunable with allow_coupled=True")
def _ex00_5(answer: int, model: nn.Module, x: torch.Tensor) -> tuple[bool, str]:
    from ..groups import find_groups

    ref = len(find_groups(model, x, allow_coupled=True).prunable) - len(find_groups(model, x).prunable)
    return int(answer) == ref, "count len(groups.prunable) with and without allow_coupled=True and subtract"


# ------------------------------------------------------------------------------------ 01 training
@exercise("01.4", "ex4_grad(w_out, w_in, lam): the gradient of lam * sqrt(|w_out|^2 + |w_in|^2) w.r.t. w_in")
def _ex01_4(answer: Any) -> tuple[bool, str]:
    g = torch.Generator().manual_seed(4)
    for shape_out, shape_in, lam in (((16, 3, 3), (32, 3, 3), 0.1), ((8, 1, 1), (4, 3, 3), 2.0)):
        w_out = torch.randn(shape_out, generator=g, dtype=torch.float64)
        w_in = torch.randn(shape_in, generator=g, dtype=torch.float64, requires_grad=True)
        (lam * torch.sqrt((w_out ** 2).sum() + (w_in ** 2).sum())).backward()
        got = torch.as_tensor(answer(w_out.clone(), w_in.detach().clone(), lam), dtype=torch.float64)
        if got.shape != w_in.shape or not torch.allclose(got, w_in.grad, rtol=1e-6, atol=1e-9):
            return False, ("differentiate the square root of the *whole* out-in-channel's squared norm: the "
                           "denominator holds both parts")
    return True, ""


# ---------------------------------------------------------------------------------- 02 energy
@exercise("02.3", "ex3_acc_change: test accuracy of the rescaled copy minus that of the original (points)")
def _ex02_3(answer: float) -> tuple[bool, str]:
    return abs(float(answer)) <= 0.2, ("BatchNorm divides by sqrt(running_var): by what factor does the variance "
                                       "of a channel's output change when its filter is multiplied by 10?")


# ------------------------------------------------------------------------------------ 03 Figure 4
@exercise("03.3", "ex3_unreachable: the list of sweep ratios Algorithm 1 cannot reach with max_layer_ratio=0.5")
def _ex03_3(answer: Any, model: nn.Module, groups: Any, x: torch.Tensor, ratios: Any) -> tuple[bool, str]:
    from ..flops import count_flops

    report = count_flops(model, x)
    ref = sorted(round(float(r), 6) for r in ratios if not _reachable(model, groups, report, float(r), 0.5))
    got = sorted(round(float(r), 6) for r in answer)
    return got == ref, ("plan each ratio with max_layer_ratio=0.5 and keep those that raise PlanError "
                        "(oicsr_lab.errors.PlanError)")


# ------------------------------------------------------------------------------ 04 Algorithm 1
@exercise("04.1", "ex1_max_ratio: the largest FLOPs ratio reachable with MAX_LAYER_RATIO = 0.25 (a fraction)")
def _ex04_1(answer: float, model: nn.Module, groups: Any, report: Any) -> tuple[bool, str]:
    ref = max_reachable(model, groups, report, 0.25)
    return _close(answer, ref, 0.0, 0.015), ("give a fraction (0.2, not 20); read the explorer's slider maximum "
                                            "with max_layer_ratio=0.25, or bisect over PlanError")


@exercise("04.2", "ex2_plan: the Plan built from within-group rank scores at TARGET")
def _ex04_2(answer: Any, target: float) -> tuple[bool, str]:
    ratios = list(answer.layer_ratios.values())
    spread = max(ratios) - min(ratios)
    if answer.achieved_ratio < target - 0.005:
        return False, "plan at the same FLOPs TARGET as the global plan"
    return spread <= 0.2, ("a local plan removes about the same fraction from every layer: score each channel by "
                           "its rank inside its group divided by the group size")


@exercise("04.4", "ex4_params_removed: the fraction of parameters the plan at TARGET removes")
def _ex04_4(answer: float, plan: Any) -> tuple[bool, str]:
    ref = 1 - plan.params_after / plan.params_before
    return _close(answer, ref, 0.0, 0.005), "give a fraction: 1 - plan.params_after / plan.params_before"


# -------------------------------------------------------------------------------- 05 pipeline
@exercise("05.3", "ex3_model: the network pruned with round_to=8")
def _ex05_3(answer: nn.Module, dense: nn.Module) -> tuple[bool, str]:
    widths = {n: m.out_channels for n, m in dense.named_modules() if isinstance(m, nn.Conv2d)}
    got = {n: m.out_channels for n, m in answer.named_modules() if isinstance(m, nn.Conv2d)}
    pruned = {n for n in widths if got.get(n) != widths[n]}
    if not pruned:
        return False, "this network is not pruned: pass round_to=8 to the pruning call and use its result"
    return all(got[n] % 8 == 0 for n in pruned), "every kept channel count that changed must be a multiple of 8"


@exercise("05.4", "ex4_fused: the pruned network with BatchNorm folded into its convolutions")
def _ex05_4(answer: nn.Module, reference: nn.Module, xb: torch.Tensor) -> tuple[bool, str]:
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in answer.modules()):
        return False, "BatchNorm layers are still there: fold them (torch.fx.experimental.optimization.fuse)"
    with torch.inference_mode():
        same = torch.allclose(answer.eval()(xb), reference.eval()(xb), atol=1e-3, rtol=1e-3)
    return same, "the fused network must compute the same outputs: fuse a copy in eval mode"


# ------------------------------------------------------------------------------- 06 ResNet-50
@exercise("06.1", "ex1_bottleneck_macs: the MACs of one layer3 bottleneck (conv1 + conv2 + conv3), by hand")
def _ex06_1(answer: float, report: Any) -> tuple[bool, str]:
    ref = sum(report.layers[f"layer3.1.conv{k}"].macs for k in (1, 2, 3))
    return _close(answer, ref, 0.005), ("a k x k convolution costs c_in x c_out x k x k MACs per output position; "
                                        "layer3 works on 14 x 14 positions")


@exercise("06.2", "ex2_stage: the stage ('layer1' ... 'layer4') whose channels save the most MACs per removal")
def _ex06_2(answer: str, report: Any, groups: Any) -> tuple[bool, str]:
    return str(answer).strip() == _best_stage(report, groups), (
        "compare per_channel across the stages: a channel's saving is (weights it owns) x (positions of its "
        "feature map), and the maps shrink from 56 x 56 to 7 x 7")


@exercise("06.4", "ex4_reachable: the published ratios (of RATIOS) still reachable in one step with "
                  "max_layer_ratio=0.3")
def _ex06_4(answer: Any, model: nn.Module, groups: Any, report: Any, ratios: Any) -> tuple[bool, str]:
    ref = sorted(round(float(r), 6) for r in ratios if _reachable(model, groups, report, float(r), 0.3))
    got = sorted(round(float(r), 6) for r in answer)
    return got == ref, "plan each published ratio with max_layer_ratio=0.3 and keep those that do not raise PlanError"
