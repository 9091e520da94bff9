"""Weight-only criteria: out-in energy (eq. 5), out / in energy, L1 filter norm, BN |gamma|, FPGM, random.

Out-in-channel energy (eq. 5), for channel ``i`` of a group whose producer is layer ``l`` and
consumer is layer ``l+1``::

    E_i = ||W^l[i, :, :, :]||^2 + ||W^{l+1}[:, i, :, :]||^2

generalised to any group as the sum of squared weights over *every* slice the channel owns:
all ``out`` filters, ``dw`` (depthwise) filters and ``in`` slices (a Linear after flatten
contributes its column block). A grouped convolution inside a group is owned whole (its ``out``
rows hold every weight its ``in`` channels touch), so its weights are counted once, as rows.
Biases are not part of ``W``; ``include_bn=True`` adds ``gamma_i^2 + beta_i^2`` of every BN slice.
Which weights form the out-in-channel is defined once, by the vectors the OICSR penalties regularise
(:func:`oicsr_lab.regularizers.index_plan.out_in_parts`), and ``out_in`` is computed from them
(:func:`~oicsr_lab.regularizers.index_plan.out_in_energy`).

Baselines: ``out`` = ``||W^l[i]||^2`` (GL/L2), ``in`` = ``||W^{l+1}[:, i]||^2`` (the consumer side
alone), ``l1`` = ``||W^l[i]||_1`` (Li et al. 2017, "Pruning Filters for Efficient ConvNets"),
``bn_gamma`` = ``|gamma_i|`` (Liu et al. 2017, Network Slimming; mean over the group's BN slices),
``fpgm`` = ``sum_j ||F_i - F_j||_2`` over the group's filters (He et al. 2019, geometric median:
the filters nearest the others' median are the most replaceable), ``random`` = uniform scores
from a seeded generator (the floor every criterion should beat).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..groups.types import ChannelGroup, Slice
from ..regularizers.index_plan import out_in_energy
from .base import Criterion, ScoreContext, register


def _reduce(mod: nn.Module, what: str) -> torch.Tensor:
    """Per-index reduction ``what`` of a module (rows2, rows1, cols2, gamma)."""
    w = getattr(mod, "weight", None)
    if what == "rows2":  # ||W[i]||^2 over dim 0
        return w.detach().flatten(1).float().pow(2).sum(1)
    if what == "rows1":  # ||W[i]||_1 over dim 0
        return w.detach().flatten(1).float().abs().sum(1)
    if what == "cols2":  # ||W[:, j]||^2 per input channel / column (grouped convs: within j's group)
        w = w.detach().float()
        if isinstance(mod, nn.Linear):
            return w.pow(2).sum(0)
        g = mod.groups
        out, inpg = w.shape[0], w.shape[1]
        return w.reshape(g, out // g, inpg, -1).pow(2).sum((1, 3)).flatten()
    if w is None:
        raise ConfigError(f"{type(mod).__name__} has no affine weight; use another criterion")
    if what == "gamma":
        return w.detach().float().abs()
    raise ValueError(f"unknown reduction {what!r}")


def _cached(ctx: ScoreContext, module: str, what: str) -> torch.Tensor:
    """``_reduce`` computed once per (module, what) and shared by every group touching the module."""
    key = (module, what)
    if key not in ctx.cache:
        ctx.cache[key] = _reduce(ctx.model.get_submodule(module), what)
    return ctx.cache[key]


def _index(s: Slice, device: torch.device) -> torch.Tensor:
    """Weight indices owned by the slice's channels, shape (size, block)."""
    idx = torch.as_tensor(s.indices, dtype=torch.long, device=device)
    if s.block == 1:
        return idx[:, None]
    return idx[:, None] * s.block + torch.arange(s.block, device=device)


def _gather(values: torch.Tensor, s: Slice) -> torch.Tensor:
    """Sum of ``values`` over each channel's indices in slice ``s``."""
    return values[_index(s, values.device)].sum(1).cpu()


def _elements(model: nn.Module, s: Slice) -> int:
    """Number of weights one channel owns in an ``out``/``dw`` or ``in`` slice ``s`` (for ``per_element``)."""
    mod = model.get_submodule(s.module)
    if s.kind in ("out", "dw"):
        return mod.weight[0].numel()
    if s.kind == "in":
        if isinstance(mod, nn.Linear):
            return mod.out_features * s.block
        return (mod.weight.shape[0] // mod.groups) * mod.weight[0, 0].numel() * s.block
    return 0


class _SliceSum(Criterion):
    """A sum of one per-index reduction over the group's slices of some kinds."""

    family = "energy"
    kinds: tuple[str, ...] = ("out",)
    what = "rows2"

    def counted(self, ctx: ScoreContext, s: Slice) -> bool:
        """Whether slice ``s`` contributes."""
        return s.kind in self.kinds

    def raw(self, ctx: ScoreContext) -> dict[str, torch.Tensor]:
        out = {}
        for g in ctx.groups:
            total = torch.zeros(g.size)
            for s in g.slices:
                if self.counted(ctx, s):
                    total += _gather(_cached(ctx, s.module, self.what), s)
            out[g.name] = total
        return out

    def elements(self, ctx: ScoreContext, group: ChannelGroup) -> int:
        return sum(_elements(ctx.model, s) for s in group.slices if self.counted(ctx, s))


@register
class OutInEnergy(Criterion):
    """Eq. 5 from the one definition of an out-in-channel the OICSR penalties also use (``index_plan``)."""

    name, family = "out_in", "energy"
    label = "out-in energy"
    summary = "eq. 5: squared weights of the whole out-in-channel (filters + consumer columns)"
    reference = "Li et al., OICSR, CVPR 2019"

    def _energy(self, ctx: ScoreContext) -> dict[str, tuple[torch.Tensor, int]]:
        key = ("out_in_energy", ctx.include_bn)
        if key not in ctx.cache:
            ctx.cache[key] = out_in_energy(ctx.model, ctx.groups, include_bn=ctx.include_bn)
        return ctx.cache[key]

    def raw(self, ctx: ScoreContext) -> dict[str, torch.Tensor]:
        return {name: sq.float().cpu() for name, (sq, _) in self._energy(ctx).items()}

    def elements(self, ctx: ScoreContext, group: ChannelGroup) -> int:
        return self._energy(ctx)[group.name][1]


@register
class OutEnergy(_SliceSum):
    name, kinds, what = "out", ("out",), "rows2"
    label = "out energy"
    summary = "squared weights of the channel's filters only (out-channel, GL/L2 baselines)"
    reference = "Wen et al., NIPS 2016 (group lasso)"


@register
class InEnergy(_SliceSum):
    name, kinds, what = "in", ("in",), "cols2"
    label = "in energy"
    summary = "squared weights of the channel's consumer columns only (in-channel)"
    reference = "Li et al., OICSR, CVPR 2019 (the in-channel half of eq. 5)"


@register
class L1FilterNorm(_SliceSum):
    name, kinds, what, family = "l1", ("out",), "rows1", "norm"
    label = "out L1 norm"
    summary = "L1 norm of the channel's filters"
    reference = "Li et al., Pruning Filters for Efficient ConvNets, ICLR 2017"


@register
class BNGamma(Criterion):
    name, family = "bn_gamma", "norm"
    label = "BN |γ|"
    summary = "|gamma| of the channel's BatchNorm (mean over its BN slices)"
    reference = "Liu et al., Network Slimming, ICCV 2017"

    def raw(self, ctx: ScoreContext) -> dict[str, torch.Tensor]:
        out = {}
        for g in ctx.groups:
            bns = g.bn_slices
            if not bns:
                raise ConfigError(f"group {g.name!r} has no BatchNorm slice; criterion 'bn_gamma' needs BN")
            out[g.name] = sum(_gather(_cached(ctx, s.module, "gamma"), s) for s in bns) / len(bns)
        return out


@register
class FPGM(Criterion):
    name, family, zero_is_least = "fpgm", "geometry", False
    label = "FPGM"
    summary = "sum of L2 distances of the channel's filter to the other filters of its group (geometric median)"
    reference = "He et al., Filter Pruning via Geometric Median, CVPR 2019"

    def raw(self, ctx: ScoreContext) -> dict[str, torch.Tensor]:
        out = {}
        for g in ctx.groups:
            f = _filters(ctx.model, g)
            out[g.name] = torch.cdist(f[None], f[None])[0].sum(1).float()
        return out


def _filters(model: nn.Module, g: ChannelGroup) -> torch.Tensor:
    """One row per channel: its filters (``out``/``dw`` rows) concatenated; consumer columns when it has none."""
    rows = []
    for s in g.slices:
        w = model.get_submodule(s.module).weight.detach().double().cpu()
        if s.kind in ("out", "dw"):
            rows.append(w[list(s.indices)].reshape(g.size, -1))
    if not rows:
        for s in g.in_slices:
            w = model.get_submodule(s.module).weight.detach().double().cpu()
            rows.append(w[:, _index(s, w.device).flatten()].transpose(0, 1).reshape(g.size, -1))
    return torch.cat(rows, 1) if rows else torch.zeros(g.size, 1, dtype=torch.float64)


@register
class RandomScores(Criterion):
    name, family, zero_is_least = "random", "random", False
    label = "random"
    summary = "uniform random scores from a seeded generator (the floor)"
    reference = "Mittal et al., Recovering from Random Pruning, WACV 2018"

    def raw(self, ctx: ScoreContext) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(int(ctx.seed))
        return {g.name: torch.rand(g.size, generator=gen) for g in ctx.groups}
