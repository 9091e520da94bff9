"""Channel importance for the global sort of Algorithm 1 (the paper's eq. 5 and baselines).

Out-in-channel energy (eq. 5), for channel ``i`` of a group whose producer is layer ``l`` and
consumer is layer ``l+1``::

    E_i = ||W^l[i, :, :, :]||^2 + ||W^{l+1}[:, i, :, :]||^2

Generalised to any group: the sum of squared weights over *every* slice the channel owns --
all ``out`` filters, ``dw`` (depthwise) filters and ``in`` slices (a Linear after flatten
contributes its column block ``[i*block, (i+1)*block)``). Biases are not part of ``W`` and are
left out; ``include_bn=True`` adds ``gamma_i^2 + beta_i^2`` of every BN slice.

Baselines (the separated criteria): ``out`` = ``||W^l[i]||^2`` (GL/L2), ``l1`` = ``||W^l[i]||_1``
(Li et al. 2017), ``bn_gamma`` = ``|gamma_i|`` (Network Slimming; mean over the group's BN
slices), ``random`` = uniform scores from a seeded generator.

Normalisation across layers (unpublished, reference section 3):
``none`` (raw), ``layer_sum`` (``E_i / sum_j E_j``), ``layer_max`` (``E_i / max_j E_j``),
``per_element`` (``E_i / len(g_i)``, the number of weights in the out-in-channel).

Default ``layer_max``: a conv followed by BatchNorm is scale-invariant, so raw energies of
different layers live on arbitrary scales; dividing by the layer's strongest channel makes
every layer's scale 1 without biasing by width (``layer_sum`` makes channels of wide layers
look small, so wide layers get pruned first) or by fan-in (``per_element``).
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

from .errors import ConfigError
from .groups.types import ChannelGroup, GroupSet, Slice

CRITERIA = ("out_in", "out", "l1", "bn_gamma", "random")
NORMALIZATIONS = ("none", "layer_sum", "layer_max", "per_element")
__all__ = ["channel_energy", "check_groups_fit", "ChannelScores", "normalize_scores", "CRITERIA", "NORMALIZATIONS"]


class ChannelScores(dict):
    """``{group_name: 1-D float tensor}`` that remembers how it was computed."""

    def __init__(self, data: dict, criterion: str, normalize: str) -> None:
        super().__init__(data)
        self.criterion = criterion
        self.normalize = normalize


class _Cache:
    """Per-module reductions computed once, shared by every group touching the module."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.store: dict[tuple[str, str], torch.Tensor] = {}

    def get(self, name: str, what: str) -> torch.Tensor:
        """Per-index reduction ``what`` of module ``name`` (rows2, rows1, cols2, bn2, gamma)."""
        key = (name, what)
        if key not in self.store:
            self.store[key] = self._compute(self.model.get_submodule(name), what)
        return self.store[key]

    @staticmethod
    def _compute(mod: nn.Module, what: str) -> torch.Tensor:
        w = getattr(mod, "weight", None)
        if what == "rows2":  # ||W[i]||^2 over dim 0
            return w.detach().flatten(1).float().pow(2).sum(1)
        if what == "rows1":  # ||W[i]||_1 over dim 0
            return w.detach().flatten(1).float().abs().sum(1)
        if what == "cols2":  # ||W[:, j]||^2 per input channel / column
            w = w.detach().float()
            if isinstance(mod, nn.Linear):
                return w.pow(2).sum(0)
            g = mod.groups
            out, inpg = w.shape[0], w.shape[1]
            return w.reshape(g, out // g, inpg, -1).pow(2).sum((1, 3)).flatten()
        if what in ("bn2", "gamma"):
            if w is None:
                raise ConfigError(f"{type(mod).__name__} has no affine weight; use another criterion")
            if what == "gamma":
                return w.detach().float().abs()
            b = mod.bias.detach().float() if mod.bias is not None else torch.zeros_like(w)
            return w.detach().float().pow(2) + b.pow(2)
        raise AssertionError(what)


def _index(s: Slice, device: torch.device) -> torch.Tensor:
    """Weight indices owned by the slice's channels, shape (size, block)."""
    idx = torch.as_tensor(s.indices, dtype=torch.long, device=device)
    if s.block == 1:
        return idx[:, None]
    return idx[:, None] * s.block + torch.arange(s.block, device=device)


def _gather(values: torch.Tensor, s: Slice) -> torch.Tensor:
    """Sum of ``values`` over each channel's indices in slice ``s``."""
    return values[_index(s, values.device)].sum(1).cpu()


def _elements(model: nn.Module, s: Slice, include_bn: bool) -> int:
    """Number of weights one channel owns in slice ``s`` (for ``per_element``)."""
    mod = model.get_submodule(s.module)
    if s.kind in ("out", "dw"):
        return mod.weight[0].numel()
    if s.kind == "in":
        if isinstance(mod, nn.Linear):
            return mod.out_features * s.block
        return (mod.weight.shape[0] // mod.groups) * mod.weight[0, 0].numel() * s.block
    if s.kind == "bn" and include_bn and getattr(mod, "weight", None) is not None:
        return 1 + (mod.bias is not None)
    return 0


def _raw(model: nn.Module, g: ChannelGroup, criterion: str, include_bn: bool, cache: _Cache) -> torch.Tensor:
    """Unnormalised score of every channel of ``g`` (vectorised over channels)."""
    total = torch.zeros(g.size)
    if criterion in ("out", "l1"):
        what = "rows2" if criterion == "out" else "rows1"
        for s in g.out_slices:
            total += _gather(cache.get(s.module, what), s)
        return total
    if criterion == "bn_gamma":
        bns = g.bn_slices
        if not bns:
            raise ConfigError(f"group {g.name!r} has no BatchNorm slice; criterion 'bn_gamma' needs BN")
        for s in bns:
            total += _gather(cache.get(s.module, "gamma"), s)
        return total / len(bns)
    for s in g.slices:  # out_in: eq. 5 over all slices of the out-in-channel
        if s.kind in ("out", "dw"):
            total += _gather(cache.get(s.module, "rows2"), s)
        elif s.kind == "in":
            total += _gather(cache.get(s.module, "cols2"), s)
        elif include_bn:
            total += _gather(cache.get(s.module, "bn2"), s)
    return total


def _fit_widths(m: nn.Module) -> tuple[int, int] | None:
    """(in width, out width) of a Conv/Linear/BatchNorm module; None for other modules."""
    if isinstance(m, nn.modules.conv._ConvNd):
        return m.in_channels, m.out_channels
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return m.num_features, m.num_features
    return None


def check_groups_fit(model: nn.Module, groups: GroupSet | Iterable[ChannelGroup]) -> None:
    """Raise ConfigError when ``groups`` were traced from another model (a missing module or other widths).

    Typical cause: the groups of the dense model used with its pruned copy; rebuild them with find_groups.
    """
    fix = "the groups come from another model (e.g. the dense one); rebuild them with find_groups(model, example_input)"
    modules = dict(model.named_modules())
    for name, rec in (getattr(groups, "module_info", None) or {}).items():
        m = modules.get(name)
        widths = _fit_widths(m) if m is not None else None
        if widths is None:
            raise ConfigError(f"{type(model).__name__} has no Conv/Linear/BatchNorm module {name!r}; {fix}")
        linear = isinstance(m, nn.Linear)
        traced = [rec.get("in_shape"), rec.get("out_shape")]
        traced = [(t[-1] if linear else t[0]) if t else None for t in traced]
        if any(t is not None and t != w for t, w in zip(traced, widths)):
            raise ConfigError(f"module {name!r} has (in, out) widths {widths} but the groups were traced with "
                              f"{tuple(traced)}; {fix}")
    for g in groups:
        for s in g.slices:
            m = modules.get(s.module)
            widths = _fit_widths(m) if m is not None else None
            if widths is None:
                raise ConfigError(f"group {g.name!r} refers to module {s.module!r}, which {type(model).__name__} "
                                  f"does not have as Conv/Linear/BatchNorm; {fix}")
            if s.indices and (max(s.indices) + 1) * s.block > widths[0 if s.kind == "in" else 1]:
                raise ConfigError(f"group {g.name!r} indexes past the {s.kind} width of {s.module!r}; {fix}")


def normalize_scores(raw: torch.Tensor, normalize: str, elements: int = 1) -> torch.Tensor:
    """Apply one of ``NORMALIZATIONS`` to one group's raw scores."""
    tiny = torch.finfo(raw.dtype).tiny
    if normalize == "none":
        return raw
    if normalize == "layer_sum":
        return raw / raw.sum().clamp_min(tiny)
    if normalize == "layer_max":
        return raw / raw.max().clamp_min(tiny) if raw.numel() else raw
    if normalize == "per_element":
        return raw / max(elements, 1)
    raise ConfigError(f"unknown normalize {normalize!r}; choose one of {', '.join(NORMALIZATIONS)}")


def channel_energy(
    model: nn.Module,
    groups: GroupSet | Iterable[ChannelGroup],
    criterion: str = "out_in",
    normalize: str = "layer_max",
    include_bn: bool = False,
    seed: int = 0,
    include_unprunable: bool = False,
) -> ChannelScores:
    """Score every channel of every (prunable) group for the global sort of Algorithm 1.

    ``criterion="out_in"`` is eq. 5 (energy of the concatenated out-in-channel); see the module
    docstring for the baselines and for why ``normalize="layer_max"`` is the default.
    Returns ``{group name: float32 tensor of length group.size}`` (lower = pruned first).

    Example:
        >>> import torch
        >>> from oicsr_lab import build_model, channel_energy, find_groups
        >>> model = build_model("resnet20")
        >>> scores = channel_energy(model, find_groups(model, torch.zeros(1, 3, 32, 32)))
        >>> scores["layer1.0.conv1"].shape, float(scores["layer1.0.conv1"].max())  # layer_max: the top is 1
        (torch.Size([16]), 1.0)
    """
    if criterion not in CRITERIA:
        raise ConfigError(f"unknown criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalize {normalize!r}; choose one of {', '.join(NORMALIZATIONS)}")
    groups = groups if isinstance(groups, GroupSet) else list(groups)  # a generator is read twice below
    check_groups_fit(model, groups)
    chosen = [g for g in groups if include_unprunable or g.prunable]
    cache = _Cache(model)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for g in chosen:
            if criterion == "random":
                raw = torch.rand(g.size, generator=gen)
            else:
                raw = _raw(model, g, criterion, include_bn, cache)
            elements = 1
            if normalize == "per_element" and criterion not in ("bn_gamma", "random"):
                kinds = ("out",) if criterion in ("out", "l1") else ("out", "dw", "in", "bn")
                elements = sum(_elements(model, s, include_bn) for s in g.slices if s.kind in kinds)
            out[g.name] = normalize_scores(raw.float(), normalize, elements)
    return ChannelScores(out, criterion, normalize)
