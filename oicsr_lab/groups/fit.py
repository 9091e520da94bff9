"""Does a GroupSet belong to this model? (the check every consumer of groups runs first)."""

from __future__ import annotations

from typing import Iterable

import torch.nn as nn

from ..errors import ConfigError
from .geometry import widths as _fit_widths
from .types import ChannelGroup, GroupSet

__all__ = ["check_groups_fit"]


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
