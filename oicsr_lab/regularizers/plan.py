"""Index plans: turn a model's parameters into per-channel squared norms in a few fused ops.

A *part* is a set of channels whose vectors are penalised together (one group of the
paper's Figure 1 for the out-in penalties, one producer layer of a group for the separated
ones). Channel ``i`` of a part owns a list of *entries* ``(module, attr, axis, indices,
block)``: rows (``axis=0``) of ``weight``/``bias`` of producers, depthwise convs and BN
layers, or columns (``axis=1``) of consumers' ``weight`` (a Linear after ``flatten`` owns
``block`` columns per channel).

Binding a plan to a model resolves the modules once and builds two index tensors:

* every parameter is reduced to its squared row sums ``sum_{j,k,l} W[i,j,k,l]^2`` and/or
  column sums ``sum_{i,k,l} W[i,j,k,l]^2``; these vectors are concatenated into ``flat``;
* ``gather`` picks the entries of ``flat`` the parts own and ``seg`` names the channel each
  belongs to, so ``sq = zeros(C).index_add(0, seg, flat[gather])`` is ``||g_c||^2`` for all
  channels ``c`` of all parts at once (no Python loop per channel);
* the reverse scatter (``index_add`` / ``index_reduce(prod)`` at ``gather``) turns
  per-channel coefficients into per-row / per-column factors of every parameter.
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..groups.types import ChannelGroup


@dataclass(frozen=True)
class Entry:
    """Rows (axis 0) or column blocks (axis 1) of one parameter, one index per channel."""

    module: str
    attr: str  # "weight" or "bias"
    axis: int  # 0: rows (out/bn/dw), 1: columns (in)
    indices: tuple[int, ...]
    block: int = 1


@dataclass(frozen=True)
class PartSpec:
    """Channels penalised together; channel ``i`` owns index ``i`` of every entry."""

    name: str
    size: int
    entries: tuple[Entry, ...]


def _slice_entries(s, include_bn: bool, include_bias: bool) -> list[Entry]:
    """The entries one group slice contributes to a part."""
    if s.kind in ("out", "dw"):
        out = [Entry(s.module, "weight", 0, s.indices)]
        if include_bias:
            out.append(Entry(s.module, "bias", 0, s.indices))
        return out
    if s.kind == "bn":
        return [Entry(s.module, a, 0, s.indices) for a in ("weight", "bias")] if include_bn else []
    if s.kind == "in":
        return [Entry(s.module, "weight", 1, s.indices, s.block)]
    raise ConfigError(f"slice of {s.module!r} has unknown kind {s.kind!r}; expected out, bn, dw or in")


def out_in_parts(groups: list[ChannelGroup], include_bn: bool, include_bias: bool) -> list[PartSpec]:
    """One part per group: every slice of channel ``i`` (out rows, dw rows, in columns, BN)."""
    parts = []
    for g in groups:
        entries = [e for s in g.slices for e in _slice_entries(s, include_bn, include_bias)]
        if entries:
            parts.append(PartSpec(g.name, g.size, tuple(entries)))
    return parts


def separated_parts(groups: list[ChannelGroup], include_bn: bool, include_bias: bool) -> list[PartSpec]:
    """One part per producer slice (out or dw) of each group; in-slices are not penalised.

    With ``include_bn`` a BN slice joins the nearest producer before it in the group's slice
    order (the conv it normalises), or forms its own part when no producer precedes it.
    """
    parts: list[PartSpec] = []
    for g in groups:
        current: list[Entry] | None = None
        name = ""
        for s in g.slices:
            if s.kind in ("out", "dw"):
                if current:
                    parts.append(PartSpec(name, g.size, tuple(current)))
                current, name = _slice_entries(s, include_bn, include_bias), f"{g.name}:{s.module}"
            elif s.kind == "bn" and include_bn:
                if current is None:
                    parts.append(PartSpec(f"{g.name}:{s.module}", g.size, tuple(_slice_entries(s, True, False))))
                else:
                    current.extend(_slice_entries(s, True, False))
        if current:
            parts.append(PartSpec(name, g.size, tuple(current)))
    return parts


class BoundPlan:
    """A plan resolved against one model on one device: parameters and index tensors."""

    def __init__(self, parts: list[PartSpec], model: nn.Module) -> None:
        self.model_ref = weakref.ref(model)
        self.parts = parts
        modules: dict[str, nn.Module] = {}
        params: dict[int, list] = {}  # id -> [module, attr, param, need_rows, need_cols]
        for part in parts:
            for e in part.entries:
                if e.module not in modules:
                    try:
                        modules[e.module] = model.get_submodule(e.module)
                    except AttributeError:
                        raise ConfigError(
                            f"group {part.name!r} refers to module {e.module!r}, which the model does not have; "
                            "rebuild the groups with oicsr_lab.groups.find_groups(model, example_input)"
                        ) from None
                p = getattr(modules[e.module], e.attr, None)
                if not isinstance(p, torch.Tensor):
                    continue  # e.g. bias=False convs, affine=False BN
                rec = params.setdefault(id(p), [modules[e.module], e.attr, p, False, False])
                rec[3 + e.axis] = True
        self.records = list(params.values())
        self.module_paths = [(name.split(".") if name else [], mod) for name, mod in modules.items()]
        # offsets of each (param, axis) vector inside ``flat``, in the order sq_norms builds them
        offset, slots, lengths = 0, {}, []
        for m, attr, p, rows, cols in self.records:
            for axis, need in ((0, rows), (1, cols)):
                if need:
                    slots[(id(p), axis)] = offset
                    lengths.append(p.shape[axis])
                    offset += p.shape[axis]
        self.total, self.lengths = offset, lengths
        gather: list[int] = []
        seg: list[int] = []
        elems: list[float] = []  # elements per channel, per part (for size weighting)
        starts: list[int] = []
        c0 = 0
        for part in parts:
            n_el = 0
            starts.append(c0)
            for e in part.entries:
                p = getattr(modules[e.module], e.attr, None)
                if not isinstance(p, torch.Tensor):
                    continue
                dim = p.shape[e.axis]
                if len(e.indices) != part.size or (e.indices and (max(e.indices) + 1) * e.block > dim):
                    raise ConfigError(
                        f"group {part.name!r}: indices of {e.module}.{e.attr} do not fit its shape "
                        f"{tuple(p.shape)}; rebuild the groups for this model"
                    )
                base = slots[(id(p), e.axis)]
                n_el += (p.numel() // dim) * e.block
                for i, idx in enumerate(e.indices):
                    for b in range(e.block):
                        gather.append(base + idx * e.block + b)
                        seg.append(c0 + i)
            elems.append(float(n_el))
            c0 += part.size
        self.channels = c0
        dev = self.records[0][2].device if self.records else torch.device("cpu")
        self.device = dev
        self.gather = torch.tensor(gather, dtype=torch.long, device=dev)
        self.overlapping = len(set(gather)) != len(gather)  # an element in two channel vectors
        self.seg = torch.tensor(seg, dtype=torch.long, device=dev)
        self.part_sizes = [p.size for p in parts]
        self.part_starts = starts
        self.part_elems = elems
        self.part_id = torch.repeat_interleave(
            torch.arange(len(parts), device=dev), torch.tensor(self.part_sizes, dtype=torch.long, device=dev)
        )

    def valid_for(self, model: nn.Module) -> bool:
        """True while ``model`` still holds the very parameters (and device) this plan indexes."""
        if self.model_ref() is not model:
            return False
        for path, mod in self.module_paths:  # a replaced submodule invalidates the plan
            m = model
            for part in path:
                m = m._modules.get(part)
                if m is None:
                    return False
            if m is not mod:
                return False
        for m, attr, p, _, _ in self.records:
            if m._parameters.get(attr, m.__dict__.get(attr)) is not p or p.device != self.device:
                return False
        return True

    def per_part(self, values: list[float]) -> torch.Tensor:
        """Broadcast one value per part to one value per channel."""
        return torch.tensor(values, dtype=torch.float32, device=self.device)[self.part_id]

    def sq_norms(self, differentiable: bool = False) -> torch.Tensor:
        """``||g_c||^2`` for every channel of every part (graph kept when ``differentiable``)."""
        vecs = []
        with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
            for _, _, p, rows, cols in self.records:
                w = p if differentiable else p.detach()
                sq = w * w
                if sq.dim() == 1:
                    vecs.append(sq)
                    continue
                if rows:
                    vecs.append(sq.sum(dim=tuple(range(1, sq.dim()))))
                if cols:
                    vecs.append(sq.sum(dim=(0,) + tuple(range(2, sq.dim()))))
            if not vecs:
                return torch.zeros(0, device=self.device)
            flat = torch.cat([v.float() for v in vecs])
            out = torch.zeros(self.channels, dtype=flat.dtype, device=flat.device)
            return out.index_add(0, self.seg, flat.index_select(0, self.gather))

    def _factors(self, per_entry_buf: torch.Tensor) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """Split a ``flat``-shaped buffer into one broadcastable factor per parameter."""
        pieces = iter(torch.split(per_entry_buf, self.lengths))
        out = []
        for _, _, p, rows, cols in self.records:
            shape_r = (-1,) + (1,) * (p.dim() - 1)
            r = next(pieces).view(shape_r) if rows else None
            c = next(pieces).view((1, -1) + (1,) * (p.dim() - 2)) if cols else None
            out.append((r, c))
        return out

    @torch.no_grad()
    def add_grad(self, coef: torch.Tensor) -> None:
        """``p.grad += coef_c * p`` on every element of channel ``c`` (summed over channels)."""
        buf = torch.zeros(self.total, dtype=coef.dtype, device=coef.device)
        buf.index_add_(0, self.gather, coef.index_select(0, self.seg))
        for (_, _, p, _, _), (r, c) in zip(self.records, self._factors(buf)):
            if not p.requires_grad:
                continue
            f = r if c is None else (c if r is None else r + c)
            if p.grad is None:
                p.grad = p.detach() * f
            else:
                p.grad.addcmul_(p.detach(), f)

    @torch.no_grad()
    def scale(self, factor: torch.Tensor) -> None:
        """Multiply every element of channel ``c`` by ``factor_c`` (products where channels overlap)."""
        buf = torch.ones(self.total, dtype=factor.dtype, device=factor.device)
        src = factor.index_select(0, self.seg)
        if self.overlapping:
            with warnings.catch_warnings():  # index_reduce is marked beta
                warnings.simplefilter("ignore", UserWarning)
                buf.index_reduce_(0, self.gather, src, "prod")
        else:
            buf.index_copy_(0, self.gather, src)
        for (_, _, p, _, _), (r, c) in zip(self.records, self._factors(buf)):
            f = r if c is None else (c if r is None else r * c)
            p.mul_(f)


class PlanCache:
    """Bound plans keyed by model id (weakly), rebuilt when parameters or device change."""

    def __init__(self, parts: list[PartSpec]) -> None:
        self.parts = parts
        self._plans: dict[int, BoundPlan] = {}

    def get(self, model: nn.Module) -> BoundPlan:
        """The plan for ``model``, built on first use."""
        plan = self._plans.get(id(model))
        if plan is not None and plan.valid_for(model):
            return plan
        self._plans = {k: v for k, v in self._plans.items() if v.model_ref() is not None and k != id(model)}
        plan = BoundPlan(self.parts, model)
        self._plans[id(model)] = plan
        return plan


def size_weights(plan: BoundPlan, size_weighting: str) -> list[float]:
    """Per-part multiplier of lambda: 1, or sqrt(len(g)) with ``size_weighting="sqrt"``."""
    if size_weighting == "sqrt":
        return [math.sqrt(n) for n in plan.part_elems]
    return [1.0] * len(plan.parts)
