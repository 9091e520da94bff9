"""Where a group's channels are observed (activation statistics) or gated (Taylor): the consumers' inputs.

A channel is what its consumers read, so each group is tapped at the *input* of every module
holding one of its ``in`` slices -- the same place :func:`~oicsr_lab.pruning.apply_masks` masks
it, so "remove the channel" means the same thing for the masks and for the criteria. A Conv
consumer shows channel ``i`` as an ``(N, H, W)`` map; a Linear after ``flatten`` shows its
``block`` columns as a ``(N, 1, block)`` map. A group without any consumer is tapped at the
output of its last writer (BN, depthwise conv or producer), again like the masks.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

from ..groups.types import ChannelGroup, Slice

# one tap: (group name, slice, True when the hook reads the module's output instead of its input)
Tap = tuple[str, Slice, bool]
__all__ = ["taps_by_module", "channel_maps", "columns", "tapped", "run_batches"]


def taps_by_module(groups: list[ChannelGroup]) -> dict[str, list[Tap]]:
    """Module name -> the taps it carries (consumers' ``in`` slices; last writer for consumer-less groups)."""
    taps: dict[str, list[Tap]] = defaultdict(list)
    for g in groups:
        ins = g.in_slices
        if ins:
            for s in ins:
                taps[s.module].append((g.name, s, False))
            continue
        last = g.bn_slices or [s for s in g.slices if s.kind in ("out", "dw")]
        if last:
            taps[last[-1].module].append((g.name, last[-1], True))
    return dict(taps)


def columns(s: Slice, device: torch.device) -> torch.Tensor:
    """Dim-1 positions of the slice's channels, channel-major: ``size * block`` indices."""
    idx = torch.as_tensor(s.indices, dtype=torch.long, device=device)
    if s.block == 1:
        return idx
    return (idx[:, None] * s.block + torch.arange(s.block, device=device)).flatten()


def channel_maps(x: torch.Tensor, s: Slice) -> torch.Tensor:
    """The slice's channels of a module input ``x``: ``(N, size, H, W)`` for 4-D, ``(N, size, 1, block)`` for 2-D."""
    sel = x.index_select(1, columns(s, x.device))
    if x.dim() == 2:
        return sel.reshape(x.shape[0], len(s.indices), 1, s.block)
    return sel


@contextmanager
def tapped(model: nn.Module, taps: dict[str, list[Tap]],
           fn: Callable[[str, Slice, torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
    """Hooks calling ``fn(group, slice, tensor)`` at every tap; a tensor it returns replaces the module's input
    (or output). Several taps on one module are applied in order. Hooks are removed on exit."""
    handles = []

    def make(entries: list[Tap], output: bool) -> Callable:
        def apply(x: torch.Tensor) -> torch.Tensor:
            for gname, s, _ in entries:
                y = fn(gname, s, x)
                x = x if y is None else y
            return x

        if output:
            return lambda m, args, out: apply(out)
        return lambda m, args: (apply(args[0]),) + tuple(args[1:])

    try:
        for name, entries in taps.items():
            mod = model.get_submodule(name)
            pre = [e for e in entries if not e[2]]
            post = [e for e in entries if e[2]]
            if pre:
                handles.append(mod.register_forward_pre_hook(make(pre, False)))
            if post:
                handles.append(mod.register_forward_hook(make(post, True)))
        yield
    finally:
        for h in handles:
            h.remove()


def run_batches(model: nn.Module, calibration: Any, step: Callable[[torch.Tensor, torch.Tensor], None]) -> None:
    """Call ``step(images, labels)`` for every calibration batch, on the model's device, in eval mode."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        for x, y in calibration.batches:
            step(x.to(device=device, dtype=dtype), y.to(device))
    finally:
        for m, t in modes.items():
            m.training = t
