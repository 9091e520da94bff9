"""Algorithm 1 of the paper: global greedy, FLOPs-targeted channel selection -> a plain-data Plan.

Steps (reference section 4):

1. Compute the (normalised) energy of every prunable out-in-channel (``channel_energy``).
2. Sort all of them globally, lowest first.
3. Pop channels in that order, accumulating the MACs each removal saves -- its filter in layer
   ``l``, its input slice in layer ``l+1`` -- with the *current* widths on both sides, until the
   target FLOPs reduction is reached. Skip channels whose group would exceed the per-layer cap
   (``max_layer_ratio`` of its channels) or drop below ``min_channels``. Near the end, a channel
   whose saving would overshoot the target by more than ``tolerance`` is skipped (its group is
   frozen) so cheaper channels can land the result in [target, target + tolerance]; when none
   can, the plain greedy result (first removal past the target) is kept.
4. The per-layer pruning ratios are an *output* (``Plan.layer_ratios``).
5. ``prune(model, plan)`` removes the chosen channels physically; ``apply_masks`` previews them.

Accounting is exact and incremental: each Conv/Linear module keeps its current in/out width;
dropping an out-channel saves ``unit * in_now`` and dropping an in-channel (``block`` columns)
saves ``unit * block * out_now``, so the sum telescopes to ``macs_before - macs_after``. Grouped
convs lose whole conv groups, so an out-channel saves ``unit * in/groups`` (fixed) and their
in-channels save nothing more. The caps depend on counts only, so they are applied before the
pass, which is one sorted sweep with O(slices) integer updates per channel.

``round_to=r`` makes every pruned group keep a multiple of ``r`` channels in every module: a
group's sorted channels are popped in chunks (first ``size % r``, then ``r`` at a time) scored by
the mean of the chunk, so the target is still reached (at chunk granularity) and FLOPs stay exact.
A channel owning ``k`` indices of a module (a whole conv group of ``k`` channels) needs only
multiples of ``r / gcd(r, k)`` channels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn

from ..errors import PlanError, UnsupportedModelError
from ..flops import FlopsReport, count_flops, report_from_shapes
from ..groups.fit import check_groups_fit
from ..groups.geometry import BN_TYPES, in_width, is_conv, is_depthwise, out_width
from ..groups.types import ChannelGroup, GroupSet


@dataclass
class Plan:
    """Which channels of each prunable group to keep, and what that does to FLOPs/params.

    ``layer_ratios``: group name (named after its producer module) -> fraction of channels
    removed. ``module_ratios``: Conv/Linear module -> fraction of its MACs removed.
    ``slices``: group -> ``[module, kind, indices, block]`` so the plan applies without groups.
    """

    keep: dict[str, list[int]]
    sizes: dict[str, int]
    slices: dict[str, list[list[Any]]]
    flops_before: int = 0
    flops_after: int = 0
    params_before: int = 0
    params_after: int = 0
    layer_ratios: dict[str, float] = field(default_factory=dict)
    module_ratios: dict[str, float] = field(default_factory=dict)
    target_ratio: float = 0.0
    achieved_ratio: float = 0.0
    criterion: str | None = None
    normalize: str | None = None
    max_layer_ratio: float = 0.5
    min_channels: int = 1
    round_to: int | None = None
    tolerance: float = 0.005

    def removed(self) -> dict[str, list[int]]:
        """Group name -> sorted indices of the removed channels."""
        out = {}
        for name, keep in self.keep.items():
            mask = np.ones(self.sizes[name], dtype=bool)
            mask[np.asarray(keep, dtype=np.int64)] = False
            out[name] = np.flatnonzero(mask).tolist()
        return out

    def module_edits(self) -> dict[str, dict[str, list[int]]]:
        """Module -> {"out"|"in"|"bn"|"dw": sorted removed weight indices} (in = columns)."""
        acc: dict[str, dict[str, list[np.ndarray]]] = {}
        for name, rem in self.removed().items():
            if not rem:
                continue
            rem_arr = np.asarray(rem, dtype=np.int64)
            for module, kind, indices, block in self.slices[name]:
                idx = np.asarray(indices, dtype=np.int64)[rem_arr]
                if kind == "in" and block > 1:
                    idx = (idx[:, None] * block + np.arange(block)).ravel()
                acc.setdefault(module, {}).setdefault(kind, []).append(idx)
        return {
            m: {k: np.unique(np.concatenate(v)).tolist() for k, v in kinds.items()}
            for m, kinds in acc.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Plan":
        """Inverse of :meth:`to_dict` (validates the keys)."""
        names = {f.name for f in fields(cls)}
        missing = {"keep", "sizes", "slices"} - set(data) if isinstance(data, Mapping) else {"keep", "sizes", "slices"}
        if missing:
            raise PlanError(f"not a pruning plan: missing {sorted(missing)}; build it with global_greedy_plan")
        plan = cls(**{k: v for k, v in data.items() if k in names})
        plan.keep = {k: [int(i) for i in v] for k, v in plan.keep.items()}
        plan.slices = {k: [[m, kd, [int(i) for i in ix], int(b)] for m, kd, ix, b in v] for k, v in plan.slices.items()}
        return plan

    def summary(self) -> str:
        """One line: target, achieved reduction, FLOPs and params before/after."""
        return (
            f"target {self.target_ratio:.1%}, achieved {self.achieved_ratio:.2%} FLOPs removed: "
            f"{self.flops_before / 1e6:.1f} -> {self.flops_after / 1e6:.1f} MMACs, "
            f"params {self.params_before / 1e6:.3f} -> {self.params_after / 1e6:.3f} M"
        )


class _Widths:
    """Current in/out width and per-unit MAC cost of every Conv/Linear/BN a plan touches."""

    def __init__(self, model: nn.Module, report: FlopsReport, names: Iterable[str]) -> None:
        self.names = list(dict.fromkeys(names))
        self.pos = {n: i for i, n in enumerate(self.names)}
        self.mods = [model.get_submodule(n) for n in self.names]
        self.unit = [report.layers[n].unit if n in report.layers else 0 for n in self.names]
        self.a0 = [in_width(m) for m in self.mods]
        self.b0 = [out_width(m) for m in self.mods]
        self.a, self.b = list(self.a0), list(self.b0)
        # fixed input channels per filter of grouped/depthwise convs (whole conv groups go); 0 = the current width
        self.fan = [m.in_channels // m.groups if is_conv(m) and m.groups > 1 else 0 for m in self.mods]

    def macs(self, i: int, a: int, b: int) -> int:
        """MACs of module ``i`` at widths (a, b); grouped/depthwise convs keep their per-group width."""
        return self.unit[i] * b * (self.fan[i] or a)

    def params(self, i: int, a: int, b: int) -> int:
        """Parameters of module ``i`` at widths (a, b)."""
        m = self.mods[i]
        bias = b if getattr(m, "bias", None) is not None else 0
        if is_conv(m):
            return b * (self.fan[i] or a) * math.prod(m.kernel_size) + bias
        if isinstance(m, nn.Linear):
            return a * b + bias
        return (b if m.weight is not None else 0) + bias  # BatchNorm


def _check_slices(model: nn.Module, g: ChannelGroup) -> None:
    """Raise UnsupportedModelError for a slice that surgery could not apply."""
    for s in g.slices:
        m = model.get_submodule(s.module)
        plain = isinstance(m, nn.Linear) or (is_conv(m) and not is_depthwise(m))
        ok = {"out": plain, "in": plain, "dw": is_depthwise(m), "bn": isinstance(m, BN_TYPES)}
        ok = ok.get(s.kind, False)
        if not ok:
            raise UnsupportedModelError(
                f"group {g.name!r}: cannot prune a {s.kind!r} slice of {s.module} ({type(m).__name__}"
                f"{', groups=%d' % m.groups if is_conv(m) else ''}); supported: Conv (plain, grouped by "
                f"whole conv groups, depthwise), Linear, BatchNorm"
            )


def _report(model: nn.Module, groups: Any, example_input: Any, report: FlopsReport | None) -> FlopsReport:
    """The FLOPs report to plan with: given, counted from ``example_input``, or from traced shapes."""
    if report is not None:
        return report
    if example_input is not None:
        return count_flops(model, example_input)
    info = getattr(groups, "module_info", None) or {}
    rep = report_from_shapes(model, info)
    if rep is None:
        raise PlanError("global_greedy_plan needs example_input=<a batch-1 tensor> (the groups carry no traced shapes)")
    return rep


def _validate(flops_ratio: float, max_layer_ratio: float, min_channels: int, round_to: int | None) -> None:
    """Raise PlanError for out-of-range options."""
    try:
        ratio = float(flops_ratio)
    except (TypeError, ValueError):
        ratio = math.nan
    if isinstance(flops_ratio, (bool, str)) or not (0.0 <= ratio < 1.0):
        raise PlanError(f"flops_ratio must be in [0, 1) (fraction of FLOPs to remove), got {flops_ratio!r}")
    if not (0.0 < float(max_layer_ratio) <= 1.0):
        raise PlanError(f"max_layer_ratio must be in (0, 1], got {max_layer_ratio!r}")
    if int(min_channels) < 1:
        raise PlanError(f"min_channels must be >= 1, got {min_channels!r}")
    if round_to is not None and int(round_to) < 1:
        raise PlanError(f"round_to must be a positive integer or None, got {round_to!r}")


def _group_round(g: ChannelGroup, r: int) -> int:
    """Channels per chunk so every module keeps a multiple of ``r`` indices (``k`` indices per channel)."""
    counts: dict[tuple[str, str], int] = {}
    for s in g.slices:
        counts[(s.module, s.kind)] = counts.get((s.module, s.kind), 0) + 1
    return math.lcm(*(r // math.gcd(r, k) for k in counts.values())) if counts else r


def _chunks(scores: np.ndarray, max_remove: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted channel order plus (chunk end, chunk mean score) for one group (steps 1-2)."""
    order = np.argsort(scores, kind="stable")
    size = len(scores)
    first = size % r or r
    ends = np.arange(first, max_remove + 1, r, dtype=np.int64) if max_remove >= first else np.zeros(0, np.int64)
    cs = np.concatenate([[0.0], np.cumsum(scores[order])])
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    means = (cs[ends] - cs[starts]) / np.maximum(ends - starts, 1)
    return order, ends, means


def _sweep(
    seq: list[tuple[int, int]], ops: list[list[tuple[str, int, int]]], st: _Widths, n_groups: int,
    target: float, limit: float,
) -> tuple[bool, list[int], int]:
    """Step 3: pop chunks lowest score first, summing exact MACs saved at the current widths.

    A chunk whose saving would push the total past ``limit`` is skipped and its group frozen
    (so every group still loses a lowest-score prefix). Returns (target reached, removed counts
    per group, MACs saved) and leaves ``st.a/st.b`` at the resulting widths.
    """
    unit, fan = st.unit, st.fan
    a, b = list(st.a0), list(st.b0)
    removed, frozen, saved = [0] * n_groups, set(), 0
    reached = False
    for gi, end in seq:
        if gi in frozen:
            continue
        n = end - removed[gi]
        gain = 0
        for kind, mi, block in ops[gi]:  # out: unit*in_now (grouped: per-group width); in: unit*block*out_now
            if kind == "in" and fan[mi]:  # a grouped conv's input side: its MACs go with the group's out rows
                continue
            gain += unit[mi] * ((fan[mi] or a[mi]) if kind == "out" else block * b[mi] if kind == "in" else 1)
        gain *= n
        if saved + gain > limit:
            frozen.add(gi)
            continue
        removed[gi] = end
        saved += gain
        for kind, mi, block in ops[gi]:
            if kind != "in":
                b[mi] -= n
            if kind != "out":
                a[mi] -= n * (block if kind == "in" else 1)
        if saved >= target:
            reached = True
            break
    st.a, st.b = a, b
    return reached, removed, saved


def global_greedy_plan(
    model: nn.Module,
    groups: GroupSet | Iterable[ChannelGroup],
    scores: Mapping[str, Any] | str,
    flops_ratio: float,
    max_layer_ratio: float = 0.5,
    min_channels: int = 1,
    round_to: int | None = None,
    example_input: Any = None,
    report: FlopsReport | None = None,
    criterion: str | None = None,
    normalize: str | None = None,
    tolerance: float = 0.005,
) -> Plan:
    """Algorithm 1: choose the globally lowest-score channels until ``flops_ratio`` of MACs is removed.

    ``scores``: ``{group: per-channel scores}`` (``channel_energy``/``score_channels`` with any criterion of
    the registry :mod:`oicsr_lab.criteria`), or a weight-only criterion name such as ``"l1"`` (scored here
    with ``normalize``, default ``layer_max``); ``criterion``/``normalize`` label the plan (default: the
    scores' own); ``example_input`` (batch 1)
    or a ``report`` from ``count_flops`` gives the layer costs. Raises PlanError for a ratio outside
    [0, 1) or a target the caps make unreachable (the message gives the maximum reachable ratio).
    ``tolerance`` (fraction of dense MACs): near the end, channels that would overshoot the target by
    more than this are skipped, so the result lands in [target, target + tolerance] when feasible.

    Example:
        >>> import torch
        >>> from oicsr_lab import build_model, channel_energy, find_groups, global_greedy_plan
        >>> model, x = build_model("resnet20"), torch.zeros(1, 3, 32, 32)
        >>> groups = find_groups(model, x)
        >>> plan = global_greedy_plan(model, groups, channel_energy(model, groups), 0.3, example_input=x)
        >>> round(plan.achieved_ratio, 2), plan.flops_after <= 0.7 * plan.flops_before
        (0.3, True)
    """
    _validate(flops_ratio, max_layer_ratio, min_channels, round_to)
    if not float(tolerance) >= 0:
        raise PlanError(f"tolerance must be >= 0 (fraction of dense FLOPs), got {tolerance!r}")
    groups = groups if isinstance(groups, GroupSet) else list(groups)  # a generator is read twice below
    check_groups_fit(model, groups)
    if isinstance(scores, str):  # a registry name (data-driven criteria need score_channels(..., calibration=))
        from ..criteria import score_channels

        scores = score_channels(model, groups, scores, normalize or "layer_max")
    rep = _report(model, groups, example_input, report)
    prunable = [g for g in groups if g.prunable]
    for g in prunable:
        _check_slices(model, g)
    st = _Widths(model, rep, (s.module for g in prunable for s in g.slices))
    orders, ops, c_group, c_end, c_score = [], [], [], [], []
    for gi, g in enumerate(prunable):
        if g.name not in scores:
            raise PlanError(f"scores have no entry for prunable group {g.name!r}; compute them with channel_energy")
        s = torch.as_tensor(scores[g.name]).detach().double().cpu().numpy().reshape(-1)
        if s.shape[0] != g.size or not np.isfinite(s).all():
            raise PlanError(f"scores for group {g.name!r} must be {g.size} finite values, got shape {s.shape}")
        r = _group_round(g, int(round_to)) if round_to else 1
        max_remove = min(int(math.floor(max_layer_ratio * g.size + 1e-9)), g.size - max(int(min_channels), r))
        order, ends, means = _chunks(s, max_remove, r)
        orders.append(order)
        ops.append([(s_.kind, st.pos[s_.module], s_.block) for s_ in g.slices if s_.kind != "bn"])
        c_group.append(np.full(len(ends), gi, dtype=np.int64))
        c_end.append(ends)
        c_score.append(means)
    flops_before = rep.total_macs
    target = float(flops_ratio) * flops_before
    removed, saved = [0] * len(prunable), 0
    if target > 0:
        group_of = np.concatenate(c_group).tolist() if c_group else []
        end_of = np.concatenate(c_end).tolist() if c_end else []
        order = np.argsort(np.concatenate(c_score) if c_score else np.zeros(0), kind="stable").tolist()
        seq = [(group_of[ci], end_of[ci]) for ci in order]
        limit = target + float(tolerance) * flops_before
        ok, removed, saved = _sweep(seq, ops, st, len(prunable), target, limit)
        if not ok:  # nothing lands within the tolerance: plain greedy (first removal past the target)
            ok, removed, saved = _sweep(seq, ops, st, len(prunable), target, math.inf)
        if not ok:
            raise PlanError(
                f"FLOPs reduction {flops_ratio:.1%} is unreachable: at most {saved / max(flops_before, 1):.2%} can be "
                f"removed with max_layer_ratio={max_layer_ratio}, min_channels={min_channels}, round_to={round_to}; "
                f"lower the target or relax the caps"
            )
    opts = dict(
        flops_ratio=flops_ratio, max_layer_ratio=max_layer_ratio, min_channels=min_channels, round_to=round_to,
        tolerance=tolerance,
        criterion=criterion or getattr(scores, "criterion", None),
        normalize=normalize or getattr(scores, "normalize", None),
    )
    return _finish(model, prunable, st, orders, removed, saved, rep, opts)


def _finish(
    model: nn.Module, prunable: list[ChannelGroup], st: _Widths, orders: list[np.ndarray],
    removed: list[int], saved: int, rep: FlopsReport, opts: dict[str, Any],
) -> Plan:
    """Step 4: turn removal counts into keep lists, ratios, exact FLOPs/params (plain data)."""
    bn_removed: dict[int, int] = {}
    keep, sizes, slices, layer_ratios = {}, {}, {}, {}
    for g, order, n in zip(prunable, orders, removed):
        keep[g.name] = np.sort(order[n:]).tolist()
        sizes[g.name] = g.size
        slices[g.name] = [[s.module, s.kind, list(s.indices), s.block] for s in g.slices]
        layer_ratios[g.name] = n / g.size if g.size else 0.0
        for s in g.bn_slices:
            i = st.pos[s.module]
            bn_removed[i] = bn_removed.get(i, 0) + n
    for i, n in bn_removed.items():
        st.a[i] -= n
        st.b[i] -= n
    d_params, module_ratios = 0, {}
    for i, name in enumerate(st.names):
        d_params += st.params(i, st.a[i], st.b[i]) - st.params(i, st.a0[i], st.b0[i])
        if not isinstance(st.mods[i], BN_TYPES):
            before = st.macs(i, st.a0[i], st.b0[i])
            module_ratios[name] = 1.0 - st.macs(i, st.a[i], st.b[i]) / before if before else 0.0
    params_before = sum(p.numel() for p in model.parameters())
    return Plan(
        keep=keep, sizes=sizes, slices=slices,
        flops_before=int(rep.total_macs), flops_after=int(rep.total_macs - saved),
        params_before=int(params_before), params_after=int(params_before + d_params),
        layer_ratios=layer_ratios, module_ratios=module_ratios,
        target_ratio=float(opts["flops_ratio"]),
        achieved_ratio=float(saved / rep.total_macs) if rep.total_macs else 0.0,
        criterion=opts["criterion"], normalize=opts["normalize"],
        max_layer_ratio=float(opts["max_layer_ratio"]), min_channels=int(opts["min_channels"]),
        round_to=int(opts["round_to"]) if opts["round_to"] else None, tolerance=float(opts["tolerance"]),
    )
