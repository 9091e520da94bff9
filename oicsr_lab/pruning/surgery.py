"""Step 5 of Algorithm 1: physical surgery -- a smaller dense copy of the model.

For every module a plan touches, the pruned channels' weights are cut out of a copy:
``out`` rows (filters + bias), ``dw`` channels of depthwise convs (``groups`` shrinks with
them), whole conv groups of grouped convs (their filters; ``groups`` and ``in_channels`` shrink
with them, the per-group widths stay), BatchNorm entries (gamma, beta, running mean/var), Conv input channels and Linear
column blocks; ``in/out_channels``, ``groups``, ``num_features`` and ``in/out_features`` are
updated. The original model is left untouched. Parameters that do not change are copied.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn

from ..errors import PlanError
from ..groups.geometry import BN_TYPES, CONV_TYPES, in_width, is_depthwise, is_grouped, out_width
from .masks import MASK_HOOK_ATTR
from .plan import Plan


def _keep(size: int, removed: list[int], where: str) -> torch.Tensor:
    """Kept indices of a dim of ``size`` entries (validated against the plan)."""
    if removed and (max(removed) >= size or min(removed) < 0):
        raise PlanError(f"plan does not match the model: {where} has {size} entries, plan removes index {max(removed)}")
    if len(removed) >= size:
        raise PlanError(f"plan removes every channel of {where}; it must keep at least one")
    mask = torch.ones(size, dtype=torch.bool)
    mask[torch.as_tensor(removed, dtype=torch.long)] = False
    return mask.nonzero().flatten()


def _take(t: torch.Tensor, dim: int, keep: torch.Tensor) -> torch.Tensor:
    """``t``'s entries ``keep`` along ``dim``, on ``t``'s device (the plan's indices are built on the CPU)."""
    return t.index_select(dim, keep.to(t.device))


def _shrink(name: str, mod: nn.Module, kinds: dict[str, list[int]]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """New tensors and int attributes of one module after removing the plan's indices."""
    tensors: dict[str, torch.Tensor] = {}
    ints: dict[str, int] = {}
    w = mod.weight.detach() if getattr(mod, "weight", None) is not None else None
    b = mod.bias.detach() if getattr(mod, "bias", None) is not None else None
    if is_depthwise(mod):
        if set(kinds) - {"dw"}:
            raise PlanError(f"plan does not match the model: depthwise conv {name} can only lose 'dw' channels")
        keep = _keep(mod.out_channels, kinds["dw"], f"{name}.channels")
        tensors["weight"] = _take(w, 0, keep)
        ints = {"in_channels": len(keep), "out_channels": len(keep), "groups": len(keep)}
        if b is not None:
            tensors["bias"] = _take(b, 0, keep)
    elif is_grouped(mod):
        return _shrink_grouped(name, mod, kinds, w, b)
    elif isinstance(mod, (nn.Linear, *CONV_TYPES)):
        if set(kinds) - {"out", "in"}:
            raise PlanError(f"plan does not match the model: cannot apply {sorted(kinds)} to {name} ({mod})")
        lin = isinstance(mod, nn.Linear)
        n_out, n_in = out_width(mod), in_width(mod)
        keep_out = _keep(n_out, kinds.get("out", []), f"{name}.out")
        keep_in = _keep(n_in, kinds.get("in", []), f"{name}.in")
        nw = w
        if "out" in kinds:
            nw = _take(nw, 0, keep_out)
        if "in" in kinds:
            nw = _take(nw, 1, keep_in)
        tensors["weight"] = nw
        if b is not None and "out" in kinds:
            tensors["bias"] = _take(b, 0, keep_out)
        names = ("out_features", "in_features") if lin else ("out_channels", "in_channels")
        ints = {names[0]: len(keep_out), names[1]: len(keep_in)}
    elif isinstance(mod, BN_TYPES):
        if set(kinds) - {"bn"}:
            raise PlanError(f"plan does not match the model: BatchNorm {name} can only lose 'bn' entries")
        keep = _keep(mod.num_features, kinds["bn"], name)
        for attr in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(mod, attr, None)
            if t is not None:
                tensors[attr] = _take(t.detach(), 0, keep)
        ints = {"num_features": len(keep)}
    else:
        raise PlanError(f"plan does not match the model: {name} is a {type(mod).__name__}, not Conv/Linear/BatchNorm")
    return tensors, ints


def _shrink_grouped(name: str, mod: nn.Module, kinds: dict[str, list[int]], w: torch.Tensor,
                    b: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """A grouped conv loses whole conv groups: the same groups on the input and the output side."""
    k = mod.groups
    per_in, per_out = mod.in_channels // k, mod.out_channels // k
    rem_in, rem_out = sorted(kinds.get("in", [])), sorted(kinds.get("out", []))
    gone = sorted({i // per_out for i in rem_out})
    whole_out = [g * per_out + j for g in gone for j in range(per_out)]
    whole_in = [g * per_in + j for g in gone for j in range(per_in)]
    if set(kinds) - {"in", "out"} or rem_out != whole_out or rem_in != whole_in:
        raise PlanError(f"plan does not match the model: grouped conv {name} (groups={k}) can only lose whole conv "
                        f"groups on both sides; rebuild the plan from find_groups(model, example_input)")
    keep = _keep(mod.out_channels, rem_out, f"{name}.out")
    tensors = {"weight": _take(w, 0, keep)}
    if b is not None:
        tensors["bias"] = _take(b, 0, keep)
    return tensors, {"out_channels": len(keep), "in_channels": mod.in_channels - len(rem_in), "groups": k - len(gone)}


def _strip_mask_hooks(model: nn.Module) -> None:
    """Drop hooks that apply_masks registered (their masks have the old widths)."""
    for m in model.modules():
        for hooks in (m._forward_pre_hooks, m._forward_hooks):
            for key in [k for k, h in hooks.items() if getattr(h, MASK_HOOK_ATTR, False)]:
                del hooks[key]


def prune(model: nn.Module, plan: Plan) -> nn.Module:
    """Physically remove the plan's channels; returns a smaller dense deep copy (eval == masked).

    Example:
        >>> import torch
        >>> from oicsr_lab import build_model, channel_energy, count_flops, find_groups, global_greedy_plan, prune
        >>> model, x = build_model("resnet20").eval(), torch.zeros(1, 3, 32, 32)
        >>> groups = find_groups(model, x)
        >>> plan = global_greedy_plan(model, groups, channel_energy(model, groups), 0.3, example_input=x)
        >>> small = prune(model, plan)
        >>> count_flops(small, x).total_macs == plan.flops_after, small.layer1[0].conv1.out_channels < 16
        (True, True)
    """
    modules = dict(model.named_modules())
    memo: dict[int, Any] = {}
    ints_of: dict[str, dict[str, int]] = {}
    with torch.no_grad():
        for name, kinds in plan.module_edits().items():
            mod = modules.get(name)
            if mod is None:
                raise PlanError(f"plan does not match the model: no module named {name!r}")
            tensors, ints = _shrink(name, mod, kinds)
            ints_of[name] = ints
            for attr, t in tensors.items():
                old = getattr(mod, attr)
                if isinstance(old, nn.Parameter):
                    memo[id(old)] = nn.Parameter(t.contiguous(), requires_grad=old.requires_grad)
                else:
                    memo[id(old)] = t.contiguous()
    pruned = copy.deepcopy(model, memo)
    for name, ints in ints_of.items():
        sub = pruned.get_submodule(name)
        for attr, v in ints.items():
            setattr(sub, attr, v)
    _strip_mask_hooks(pruned)
    return pruned
