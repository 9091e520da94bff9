"""``make_regularizer``: a registry entry plus groups and a strength -> the trainer's :class:`~.core.Regularizer`."""

from __future__ import annotations

from typing import Any

from ..groups.types import ChannelGroup, GroupSet
from .core import L2, GroupNorm, Regularizer
from .options import check_options, check_strength, select_groups
from .registry import get_regularizer

__all__ = ["make_regularizer"]


def make_regularizer(name: str, groups: GroupSet | list[ChannelGroup], strength: float, **options: Any) -> Regularizer:
    """Build regulariser ``name`` (any name of :func:`~.registry.names`) over ``groups`` with ``lambda_s = strength``.

    The registry entry says which channel vectors are penalised and whether by rank (GrOWL); the
    options are listed in the :mod:`oicsr_lab.regularizers` docstring (:class:`~.options.Options`).

    Example:
        >>> import torch
        >>> from oicsr_lab import build_model, find_groups, make_regularizer
        >>> model = build_model("resnet20")
        >>> reg = make_regularizer("oicsr_gl", find_groups(model, torch.zeros(1, 3, 32, 32)), 1e-2, mode="proximal")
        >>> reg
        Regularizer('oicsr_gl', strength=0.01, groups=9, mode='proximal')
        >>> reg.after_step(model, lr=0.1)  # the proximal step, called by the Trainer after optimizer.step()
    """
    spec = get_regularizer(name)
    strength = check_strength(strength)
    opts = check_options(spec.name, options)
    chosen = select_groups(groups, opts.select)
    if spec.weight_decay_only:
        return L2(spec.name, strength, opts, len(chosen))
    return GroupNorm(spec.name, spec.parts(chosen, opts), strength, opts, len(chosen), ordered=spec.ordered,
                     eps=spec.eps)
