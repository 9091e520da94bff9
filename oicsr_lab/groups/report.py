"""Readable views of a GroupSet: a table (list of dicts), a text summary, and ``explain`` for any model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .types import ChannelGroup, GroupSet

if TYPE_CHECKING:
    import torch.nn as nn


def _widths(info: dict) -> tuple[int, int]:
    """(output width, input width) of a traced Conv2d/Linear from its shapes."""
    in_shape, out_shape = info.get("in_shape") or (1,), info.get("out_shape") or (1,)
    if info.get("type") == "Linear" or len(out_shape) < 3:
        return int(out_shape[-1]), int(in_shape[-1])
    return int(out_shape[0]), int(in_shape[0])


def group_macs(group: ChannelGroup, module_info: dict[str, dict]) -> int:
    """MACs per sample that disappear when every channel of ``group`` is removed."""
    removed: dict[str, list[int]] = {}
    for s in group.slices:
        if s.kind != "bn":
            counts = removed.setdefault(s.module, [0, 0])
            counts[s.kind == "in"] += len(s.indices) * s.block
    total = 0.0
    for module, (n_out, n_in) in removed.items():
        info = module_info.get(module) or {}
        if not info.get("macs"):
            continue
        width_out, width_in = _widths(info)
        keep = (1 - min(n_out / max(width_out, 1), 1.0)) * (1 - min(n_in / max(width_in, 1), 1.0))
        if int(info.get("groups", 1)) > 1:  # grouped conv: whole conv groups go, per-group widths stay
            keep = 1 - min(n_out / max(width_out, 1), 1.0)
        total += info["macs"] * (1 - keep)
    return int(round(total))


def _unique(items: list[str]) -> list[str]:
    """Items without repeats, in order."""
    return list(dict.fromkeys(items))


def groups_table(groupset: GroupSet) -> list[dict]:
    """One plain dict per group: name, size, prunable, coupled, reason, layers per kind, MACs removed with it."""
    info = groupset.module_info
    total = sum(int(v.get("macs", 0)) for v in info.values())
    rows = []
    for g in groupset.groups:
        macs = group_macs(g, info)
        rows.append(
            {
                "name": g.name,
                "size": g.size,
                "prunable": g.prunable,
                "coupled": g.coupled,
                "out": _unique([s.module for s in g.out_slices]),
                "bn": _unique([s.module for s in g.bn_slices]),
                "dw": _unique([s.module for s in g.dw_slices]),
                "in": _unique([s.module if s.block == 1 else f"{s.module} (block {s.block})" for s in g.in_slices]),
                "macs": macs,
                "macs_share": macs / total if total else 0.0,
                "reason": g.reason,
            }
        )
    return rows


def _names(items: list[str], limit: int = 3) -> str:
    """'a, b, c +2 more' for long module lists."""
    if not items:
        return "-"
    more = f" +{len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def describe(groupset: GroupSet) -> str:
    """A text table of the groups: name, channels, prunable, MACs share, producer -> consumer layers."""
    rows = groups_table(groupset)
    total = sum(int(v.get("macs", 0)) for v in groupset.module_info.values())
    n_coupled = sum(r["coupled"] for r in rows)
    lines = [
        f"{len(rows)} channel groups, {sum(r['prunable'] for r in rows)} prunable, {n_coupled} coupled; "
        f"{total / 1e6:.4g} M MACs per sample in {len(groupset.module_info)} traced Conv/Linear/BN layers",
        f"{'group':<32} {'ch':>5} {'prunable':<9} {'MACs':>6}  layers (out [bn/dw] -> in)",
    ]
    for r in rows:
        flag = ("yes" if r["prunable"] else "no") + ("*" if r["coupled"] else "")
        mid = r["bn"] + r["dw"]
        path = f"{_names(r['out'])}" + (f" [{_names(mid, 2)}]" if mid else "") + f" -> {_names(r['in'])}"
        lines.append(f"{r['name']:<32} {r['size']:>5} {flag:<9} {100 * r['macs_share']:>5.1f}%  {path}")
        if r["reason"]:
            lines.append(f"{'':<32}       why: {r['reason']}")
    lines.append("(* = coupled: several producers share these channels; MACs = share removed with the whole group)")
    return "\n".join(lines)


def explain(model: "nn.Module", example_input: Any, allow_coupled: bool = False) -> str:
    """Which groups of ``model`` can be pruned and why the others cannot -- also for models find_groups refuses.

    For a model with an operation the tracer cannot map (e.g. a channel shuffle), the text starts
    with find_groups' error (the node and the reason), lists the pinned nodes, then describes the
    groups found with ``unsupported="pin"`` (the channels around those nodes are not prunable, the
    rest is). Only a model torch.fx cannot trace at all yields just the error.
    """
    from ..errors import UnsupportedModelError
    from .tracer import find_groups

    name = type(model).__name__
    try:
        return describe(find_groups(model, example_input, allow_coupled))
    except UnsupportedModelError as err:
        refused = str(err)
    try:
        groups = find_groups(model, example_input, allow_coupled, unsupported="pin")
    except UnsupportedModelError:
        return f"find_groups cannot trace {name}: {refused}"
    lines = [f"find_groups refuses {name}: {refused}",
             f"with find_groups(..., unsupported='pin') {len(groups.pinned)} unsupported node(s) pin their channels "
             "(not prunable) and every other group is found:"]
    lines += [f"  pinned: {p}" for p in groups.pinned[:5]]
    if len(groups.pinned) > 5:
        lines.append(f"  (+{len(groups.pinned) - 5} more pinned nodes: GroupSet.pinned lists them all)")
    return "\n".join(lines + [describe(groups)])
