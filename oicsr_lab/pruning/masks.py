"""Reversible preview of a plan: the pruned channels contribute exactly nothing downstream.

Removing a channel physically removes its filter, its BN entry (gamma *and* the shift beta) and
its input slice in every consumer. Zeroing only the filter would leave ``beta`` (and
``act(beta)``) flowing on, so the masks act where the channel is *consumed*: a forward
pre-hook multiplies every consumer's input channels/columns (the plan's ``in`` slices) by a
0/1 mask. ``conv(x * m, W) == conv(x[:, keep], W[:, keep])``, so in eval mode the masked model
equals ``prune(model, plan)`` up to float rounding. Weights are never touched.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from ..errors import PlanError
from ..groups.geometry import in_width, is_conv, out_width
from .plan import Plan

MASK_HOOK_ATTR = "_oicsr_mask_hook"


class MaskHandle:
    """Undo handle of :func:`apply_masks`; ``remove()`` or leaving a ``with`` block restores the model."""

    def __init__(self, hooks: list[Any], masks: dict[str, torch.Tensor]) -> None:
        self._hooks = hooks
        self.masks = masks  # module -> 0/1 mask over its input (or, rarely, output) channels

    def remove(self) -> None:
        """Remove every mask hook (idempotent)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def __enter__(self) -> "MaskHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _channel_shape(mod: nn.Module, width: int) -> tuple[int, ...]:
    """Broadcast shape of a mask over the channel dim of the module's input."""
    if is_conv(mod):
        return (width,) + (1,) * len(mod.kernel_size)
    return (width,)  # Linear / BatchNorm1d on (N, F): last dim


def _multiplier(mask: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> x * mask`` with the mask cached per (device, dtype)."""
    cache: dict[tuple, torch.Tensor] = {}

    def mul(x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        if key not in cache:
            cache[key] = mask.to(device=x.device, dtype=x.dtype)
        return x * cache[key]

    return mul


def _mask(width: int, removed: list[int], shape: tuple[int, ...], where: str) -> torch.Tensor:
    """0/1 float mask of ``width`` entries with ``removed`` zeroed, reshaped for broadcasting."""
    if removed and max(removed) >= width:
        raise PlanError(f"plan does not match the model: {where} has {width} channels, plan removes "
                        f"index {max(removed)}")
    m = torch.ones(width)
    m[torch.as_tensor(removed, dtype=torch.long)] = 0.0
    return m.reshape(shape)


def apply_masks(model: nn.Module, plan: Plan) -> MaskHandle:
    """Mask the plan's removed channels in place (reversible); returns a handle / context manager.

    Example:
        >>> import torch
        >>> from oicsr_lab import apply_masks, build_model, channel_energy, find_groups, global_greedy_plan
        >>> model, x = build_model("resnet20").eval(), torch.zeros(1, 3, 32, 32)
        >>> groups = find_groups(model, x)
        >>> plan = global_greedy_plan(model, groups, channel_energy(model, groups), 0.3, example_input=x)
        >>> with apply_masks(model, plan):  # accuracy before retraining, without copying the model
        ...     y = model(torch.randn(2, 3, 32, 32))
    """
    modules = dict(model.named_modules())
    hooks: list[Any] = []
    masks: dict[str, torch.Tensor] = {}
    for name, kinds in plan.module_edits().items():
        if "in" not in kinds:
            continue
        mod = modules.get(name)
        if mod is None:
            raise PlanError(f"plan does not match the model: no module named {name!r}")
        width = in_width(mod)
        mask = _mask(width, kinds["in"], _channel_shape(mod, width), name)
        masks[name] = mask
        mul = _multiplier(mask)

        def pre_hook(m: nn.Module, args: tuple, mul: Callable = mul) -> tuple:
            return (mul(args[0]),) + tuple(args[1:])

        setattr(pre_hook, MASK_HOOK_ATTR, True)
        hooks.append(mod.register_forward_pre_hook(pre_hook))
    # A group with no consumer slice (rare) is zeroed where it leaves its last BN / producer.
    for gname, rem in plan.removed().items():
        sl = plan.slices[gname]
        if not rem or any(kind == "in" for _, kind, _, _ in sl):
            continue
        last = [s for s in sl if s[1] == "bn"] or [s for s in sl if s[1] in ("out", "dw")]
        for module, _kind, indices, _block in last[-1:]:
            mod = modules[module]
            width = out_width(mod) if _kind == "out" else in_width(mod)
            mask = _mask(width, np.asarray(indices)[rem].tolist(), _channel_shape(mod, width), module)
            masks[f"{module}:out"] = mask
            mul = _multiplier(mask)

            def out_hook(m: nn.Module, args: tuple, out: torch.Tensor, mul: Callable = mul) -> torch.Tensor:
                return mul(out)

            setattr(out_hook, MASK_HOOK_ATTR, True)
            hooks.append(mod.register_forward_hook(out_hook))
    return MaskHandle(hooks, masks)
