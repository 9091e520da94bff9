"""Numerical checks that a ChannelGroup is complete and correct, channel by channel.

:func:`check_group` compares, for one channel ``i`` of a group (model in eval mode):

* ``zero_vs_mask``: zeroing every slice of channel ``i`` (``out``/``dw`` filter + bias, ``bn``
  weight/bias, ``in`` columns) against masking channel ``i`` with forward hooks at the output
  of every module that writes it (``out``, ``bn``, ``dw``) -- the paper's "remove the channel".
* ``producers``: zeroing only the ``out``/``bn``/``dw`` parts against zeroing everything. Equal
  outputs mean the channel is exactly zero at every listed consumer, so no producer is missing
  (a missed residual branch would leak into the sum) and the ``in`` indices are right.
* ``in_vs_prehook``: zeroing only the ``in`` columns against zeroing channel ``i`` of each
  consumer's input with forward pre-hooks (columns ``[idx*block, (idx+1)*block)`` for Linear).
* ``consumers``: the channel is forced to a positive constant through the producers' biases
  while its ``in`` columns are zero; equal to the all-zero output means no consumer is missing.
  ``nan`` when no module of the group has a bias to inject through.

Each value is ``max|a - b| / max|y_dense|`` (relative); all should be ~0 (< 1e-5). ``effect`` is the
same measure between the dense output and the all-zero output (a check is only informative
when the channel matters). The model's weights are restored afterwards.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

from .geometry import in_width, is_depthwise, out_width
from .types import ChannelGroup, GroupSet, Slice

_PARTS = {"out": ("weight", "bias"), "dw": ("weight", "bias"), "bn": ("weight", "bias", "running_mean")}


@contextlib.contextmanager
def _restored(model: nn.Module) -> Iterator[list[tuple[torch.Tensor, Any, torch.Tensor]]]:
    """Collect (tensor, index, saved) edits and undo them on exit."""
    edits: list[tuple[torch.Tensor, Any, torch.Tensor]] = []
    try:
        yield edits
    finally:
        with torch.no_grad():
            for t, index, saved in reversed(edits):
                t[index] = saved


def _set(edits: list, t: torch.Tensor | None, index: Any, value: float) -> bool:
    """Set ``t[index] = value`` remembering the old value; False when ``t`` is None."""
    if t is None:
        return False
    edits.append((t, index, t[index].clone()))
    t[index] = value
    return True


def _in_index(s: Slice, i: int) -> tuple:
    """Index of channel ``i``'s input columns in a consumer's input (dim 1)."""
    cols = s.columns(i)
    return (slice(None), slice(cols.start, cols.stop))


def _weight_in_index(m: nn.Module, s: Slice, i: int) -> tuple:
    """Index of channel ``i``'s input columns in a consumer weight: grouped convs hold only their group's inputs."""
    groups = getattr(m, "groups", 1)
    if isinstance(m, nn.Conv2d) and groups > 1:
        per_in, per_out = m.in_channels // groups, m.out_channels // groups
        g, j = divmod(s.indices[i], per_in)
        return (slice(g * per_out, (g + 1) * per_out), slice(j, j + 1))
    return _in_index(s, i)


def _zero(model: nn.Module, group: ChannelGroup, i: int, kinds: tuple[str, ...], edits: list,
          inject: dict[str, float] | None = None) -> bool:
    """Zero channel ``i``'s parts of the given kinds; with ``inject`` set biases to those values."""
    injected = False
    for s in group.slices:
        if s.kind not in kinds:
            continue
        m = model.get_submodule(s.module)
        idx = s.indices[i]
        if s.kind == "in":
            _set(edits, m.weight.data, _weight_in_index(m, s, i), 0.0)
            continue
        for part in _PARTS[s.kind]:
            t = getattr(m, part, None)
            t = t.data if isinstance(t, nn.Parameter) else t
            value = inject.get(s.module, 0.0) if inject is not None and part == "bias" else 0.0
            injected |= _set(edits, t, idx, value) and value != 0.0
    return injected


def _mask_hook(index: Any) -> Callable:
    """Forward hook that zeroes ``output[index]``."""

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[index] = 0
        return out

    return hook


def _pre_hook(index: Any) -> Callable:
    """Forward pre-hook that zeroes ``input[index]``."""

    def hook(_m: nn.Module, args: tuple) -> tuple:
        x = args[0].clone()
        x[index] = 0
        return (x,) + tuple(args[1:])

    return hook


def _run_hooked(model: nn.Module, x: Any, hooks: list[tuple[str, Callable, bool]]) -> torch.Tensor:
    """Forward with temporary (module, hook, is_pre) hooks."""
    handles = []
    try:
        for name, hook, pre in hooks:
            m = model.get_submodule(name)
            handles.append(m.register_forward_pre_hook(hook) if pre else m.register_forward_hook(hook))
        return model(x)
    finally:
        for h in handles:
            h.remove()


def check_group(model: nn.Module, group: ChannelGroup, channel: int, example_input: Any) -> dict[str, float]:
    """Run the four zeroing checks for one channel of one group; returns normalised max differences."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return _checks(model, group, channel, example_input)
    finally:
        model.train(was_training)


def _checks(model: nn.Module, group: ChannelGroup, i: int, x: Any) -> dict[str, float]:
    """The body of :func:`check_group` (eval mode, no grad)."""
    y0 = model(x)
    scale = max(float(y0.abs().max()), 1e-12)

    def diff(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max()) / scale

    writers = ("out", "bn", "dw")
    with _restored(model) as edits:
        _zero(model, group, i, writers + ("in",), edits)
        y_all = model(x)
    with _restored(model) as edits:
        _zero(model, group, i, writers, edits)
        y_writers = model(x)
    masks = [(s.module, _mask_hook((slice(None), s.indices[i])), False) for s in group.of_kind(*writers)]
    y_mask = _run_hooked(model, x, masks)
    with _restored(model) as edits:
        _zero(model, group, i, ("in",), edits)
        y_in = model(x)
    pres = [(s.module, _pre_hook(_in_index(s, i)), True) for s in group.in_slices]
    y_pre = _run_hooked(model, x, pres)
    gen = torch.Generator().manual_seed(1000 + i)
    inject = {s.module: 0.5 + float(torch.rand((), generator=gen)) for s in group.of_kind(*writers)}
    with _restored(model) as edits:
        injected = _zero(model, group, i, writers + ("in",), edits, inject=inject)
        y_inj = model(x)
    return {
        "zero_vs_mask": diff(y_all, y_mask),
        "producers": diff(y_all, y_writers),
        "in_vs_prehook": diff(y_in, y_pre),
        "consumers": diff(y_all, y_inj) if injected else math.nan,
        "effect": diff(y0, y_all),
    }


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random affine parameters and running stats (so channels differ)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                if m.affine:
                    m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                    m.bias.copy_(0.2 * torch.randn(n, generator=gen))
                if m.track_running_stats:
                    m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                    m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
    return model


def check_partition(model: nn.Module, groupset: GroupSet) -> list[str]:
    """Structural problems of a GroupSet (empty when every traced Conv/Linear/BN index is owned once)."""
    problems = []
    names = [g.name for g in groupset]
    if len(set(names)) != len(names):
        problems.append("group names are not unique")
    owned: dict[tuple[str, str], list[int]] = defaultdict(list)
    for g in groupset:
        if g.size <= 0 or any(len(s.indices) != g.size for s in g.slices):
            problems.append(f"{g.name}: slice lengths differ from size {g.size}")
        if not g.prunable and not g.reason:
            problems.append(f"{g.name}: not prunable but no reason")
        for s in g.slices:
            owned[(s.module, "in" if s.kind == "in" else "out")] += [c for i in range(g.size) for c in s.columns(i)]
    for name, info in groupset.module_info.items():
        m = model.get_submodule(name)
        if isinstance(m, (nn.Conv2d, nn.Linear)) and not is_depthwise(m):
            widths = {"out": out_width(m), "in": in_width(m)}
        else:
            widths = {"out": out_width(m)}  # depthwise conv: one "dw" slice; BatchNorm: its features
        if info["type"] != type(m).__name__:
            problems.append(f"{name}: module_info type {info['type']} != {type(m).__name__}")
        for side, width in widths.items():
            if side == "in" and not owned.get((name, "in")):
                continue  # a layer fed by a constant has no input group
            if sorted(owned[(name, side)]) != list(range(width)):
                problems.append(f"{name}: {side} indices are not owned exactly once")
    return problems
