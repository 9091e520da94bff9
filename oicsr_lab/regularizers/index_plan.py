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

:func:`out_in_parts` is *the* definition of an out-in-channel's weights: the OICSR penalties
regularise these vectors and the ``out_in`` criterion (eq. 5, :mod:`oicsr_lab.criteria.weights`)
measures their squared norms through :func:`out_in_energy`, so the two cannot drift apart. A
grouped convolution inside a group is owned whole by its out rows (they hold every weight its in
channels touch), so its in-columns are not counted twice (:func:`owns`).
"""

from __future__ import annotations

import math
import warnings
import weakref
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..groups.geometry import is_grouped
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


def bn_parts(groups: list[ChannelGroup]) -> list[PartSpec]:
    """One part per BN module: its scales at the (deduplicated) indices the groups own (L1-BN)."""
    idx: dict[str, set[int]] = {}
    for g in groups:
        for s in g.bn_slices:
            idx.setdefault(s.module, set()).update(s.indices)
    return [PartSpec(m, len(ix), (Entry(m, "weight", 0, tuple(sorted(ix))),)) for m, ix in idx.items()]


def owns(entry: Entry, module: nn.Module) -> bool:
    """Whether ``entry`` adds weights of its own: not the in-columns of a grouped conv (its rows hold them)."""
    return not (entry.axis == 1 and is_grouped(module))


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
                if not isinstance(p, torch.Tensor) or not owns(e, modules[e.module]):
                    continue  # e.g. bias=False convs, affine=False BN, grouped-conv columns
                rec = params.setdefault(id(p), [modules[e.module], e.attr, p, False, False])
                rec[3 + e.axis] = True
        self.records = list(params.values())
        self._meta = [(p.device, p.dtype, p.shape) for _, _, p, _, _ in self.records]
        self.module_paths = [(name.split(".") if name else [], mod) for name, mod in modules.items()]
        # layout of ``flat``: parameters of one shape are stacked into a bucket, whose squared
        # row sums (B*rows) and column sums (B*cols) are contiguous; slots[(param, axis)] = offset
        buckets: dict[tuple, list] = {}
        for rec in self.records:
            buckets.setdefault((tuple(rec[2].shape), rec[2].dtype, rec[3], rec[4]), []).append(rec)
        offset, slots = 0, {}
        self.buckets: list[tuple[list[torch.Tensor], bool, bool]] = []
        for (shape, _, rows, cols), recs in buckets.items():
            for axis, need in ((0, rows), (1, cols)):
                if need:
                    for k, rec in enumerate(recs):
                        slots[(id(rec[2]), axis)] = offset + k * shape[axis]
                    offset += len(recs) * shape[axis]
            self.buckets.append(([rec[2] for rec in recs], rows, cols))
        self.total = offset
        self._stack: list[torch.Tensor | None] = [None] * len(self.buckets)
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
                if not isinstance(p, torch.Tensor) or not owns(e, modules[e.module]):
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
        self.dtype = torch.float64 if any(r[2].dtype == torch.float64 for r in self.records) else torch.float32
        # persistent scatter buffers and, per parameter, broadcastable views of its row/column factors
        self._gbuf = torch.zeros(self.total, dtype=self.dtype, device=dev)
        self._sbuf = torch.ones(self.total, dtype=self.dtype, device=dev)
        self._gviews = self._views(self._gbuf, slots)
        self._sviews = self._views(self._sbuf, slots)

    def _views(self, buf: torch.Tensor,
               slots: dict) -> list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]:
        """(param, row-factor view, column-factor view) of every parameter into ``buf``."""
        out = []
        for _, _, p, rows, cols in self.records:
            r = buf[slots[(id(p), 0)]:][: p.shape[0]].view((-1,) + (1,) * (p.dim() - 1)) if rows else None
            c = buf[slots[(id(p), 1)]:][: p.shape[1]].view((1, -1) + (1,) * (p.dim() - 2)) if cols else None
            out.append((p, r, c))
        return out

    @staticmethod
    def _combine(views: list, op) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Parameters and their full factors (``op(rows, cols)`` where a parameter has both)."""
        params, factors, both_p, both_r, both_c = [], [], [], [], []
        for p, r, c in views:
            if r is not None and c is not None:
                both_p.append(p), both_r.append(r), both_c.append(c)
            else:
                params.append(p)
                factors.append(r if c is None else c)
        if both_p:
            params += both_p
            factors += op(both_r, both_c)
        return params, factors

    def valid_for(self, model: nn.Module) -> bool:
        """True while ``model`` holds the very parameters (same device, dtype, shape) this plan indexes."""
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
        for (m, attr, p, _, _), meta in zip(self.records, self._meta):
            if m._parameters.get(attr, m.__dict__.get(attr)) is not p or (p.device, p.dtype, p.shape) != meta:
                return False
        return True

    def per_part(self, values: list[float]) -> torch.Tensor:
        """Broadcast one value per part to one value per channel."""
        return torch.tensor(values, dtype=torch.float32, device=self.device)[self.part_id]

    def sq_norms(self, differentiable: bool = False) -> torch.Tensor:
        """``||g_c||^2`` for every channel of every part (graph kept when ``differentiable``)."""
        diff = differentiable and torch.is_grad_enabled()
        vecs = []
        with torch.set_grad_enabled(diff):
            for b, (params, rows, cols) in enumerate(self.buckets):
                if diff:
                    st = torch.stack(params)
                else:  # stack into a persistent buffer: no fresh large allocation per step
                    if self._stack[b] is None:
                        self._stack[b] = torch.empty((len(params),) + params[0].shape, dtype=params[0].dtype,
                                                     device=params[0].device)
                    st = torch.stack(params, out=self._stack[b])
                if st.dim() == 2:  # 1-D parameters (BN, bias): (B, C)
                    vecs.append((st * st).reshape(-1))
                    continue
                if st.dim() > 3:  # sum over the kernel first, one pass: (B, out, in)
                    t = torch.linalg.vector_norm(st, dim=tuple(range(3, st.dim())))
                    t = t * t
                else:
                    t = st * st
                if rows:
                    vecs.append(t.sum(dim=2).reshape(-1))
                if cols:
                    vecs.append(t.sum(dim=1).reshape(-1))
            if not vecs:
                return torch.zeros(0, dtype=self.dtype, device=self.device)
            flat = torch.cat(vecs).to(self.dtype)
            out = torch.zeros(self.channels, dtype=self.dtype, device=flat.device)
            return out.index_add(0, self.seg, flat.index_select(0, self.gather))

    @torch.no_grad()
    def add_grad(self, coef: torch.Tensor) -> None:
        """``p.grad += coef_c * p`` on every element of channel ``c`` (summed over channels)."""
        self._gbuf.zero_()
        self._gbuf.index_add_(0, self.gather, coef.to(self.dtype).index_select(0, self.seg))
        params, factors = self._combine(self._gviews, torch._foreach_add)
        grads, ps, fs = [], [], []
        for p, f in zip(params, factors):
            if p.grad is None:
                if not p.requires_grad:
                    continue
                p.grad = torch.zeros_like(p)
            grads.append(p.grad), ps.append(p), fs.append(f)
        if grads:
            torch._foreach_addcmul_(grads, ps, fs)

    @torch.no_grad()
    def scale(self, factor: torch.Tensor) -> None:
        """Multiply every element of channel ``c`` by ``factor_c`` (products where channels overlap)."""
        self._sbuf.fill_(1)
        src = factor.to(self.dtype).index_select(0, self.seg)
        if self.overlapping:
            with warnings.catch_warnings():  # index_reduce is marked beta
                warnings.simplefilter("ignore", UserWarning)
                self._sbuf.index_reduce_(0, self.gather, src, "prod")
        else:
            self._sbuf.index_copy_(0, self.gather, src)
        params, factors = self._combine(self._sviews, torch._foreach_mul)
        if params:
            torch._foreach_mul_(params, factors)


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


def out_in_energy(model: nn.Module, groups: list[ChannelGroup], include_bn: bool = False,
                  include_bias: bool = False) -> dict[str, tuple[torch.Tensor, int]]:
    """Eq. 5 per group: ``{name: (||g_i||^2 of every channel i, weights per channel)}`` (no graph).

    The squared norms of exactly the out-in-channel vectors the OICSR penalties regularise
    (:func:`out_in_parts`), computed in the same fused pass; a group owning no weights scores 0.
    """
    parts = out_in_parts(list(groups), include_bn, include_bias)
    with torch.no_grad():
        plan = BoundPlan(parts, model)
        sq = plan.sq_norms().detach()
    out = {g.name: (torch.zeros(g.size, dtype=sq.dtype, device=sq.device), 0) for g in groups}
    for part, start, elems in zip(parts, plan.part_starts, plan.part_elems):
        out[part.name] = (sq[start:start + part.size], int(elems))
    return out
