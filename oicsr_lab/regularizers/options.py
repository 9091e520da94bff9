"""Validation of ``make_regularizer`` arguments: one-line ConfigErrors listing valid choices.

Names come from the registry (:mod:`.registry`); the GrOWL options ``p`` / ``lambda2_ratio`` apply to
every regulariser registered as ``ordered``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import ConfigError
from ..groups.types import ChannelGroup, GroupSet
from .registry import get_regularizer, names

MODES = ("subgradient", "proximal")
GRADS = ("direct", "autograd")
SIZE_WEIGHTINGS = ("none", "sqrt")
SELECTS = ("prunable", "all")


@dataclass(frozen=True)
class Options:
    """Every option with its default (the reference's [choice] items, section 2)."""

    mode: str = "subgradient"  # or "proximal": group soft-thresholding after each SGD step
    eps: float = 1e-8  # ||g|| = sqrt(sum g^2 + eps) in the subgradient form (no NaN at 0)
    select: str | tuple[str, ...] = "prunable"  # "prunable" | "all" | group names
    include_bn: bool = False  # BN gamma/beta of the channel join its group vector
    include_bias: bool = False  # producer conv/linear bias joins its group vector
    size_weighting: str = "none"  # "sqrt": lambda * sqrt(len(g)) per group
    grad: str = "direct"  # subgradient added to .grad after backward, or "autograd" via penalty()
    p: float | int = 0.5  # GrOWL: fraction (float) or count (int) of channels with extra weight
    lambda2_ratio: float | None = None  # GrOWL: lambda2 / lambda1; None -> 1/p (theta_1 = 2 lambda1)


COMMON_KEYS = ("mode", "eps", "select", "include_bn", "include_bias", "size_weighting", "grad")
GROWL_KEYS = ("p", "lambda2_ratio")


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a ConfigError naming them."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _flag(key: str, value: Any) -> bool:
    """``value`` if it is a bool, else a ConfigError."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be True or False; got {value!r}")
    return value


def _number(key: str, value: Any, allow_none: bool = False) -> float | None:
    """A finite non-negative float, else a ConfigError."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{key} must be a finite number >= 0; got {value!r}")
    return float(value)


def check_strength(strength: Any) -> float:
    """lambda_s as a float: finite and >= 0."""
    try:
        return _number("strength", strength)  # type: ignore[return-value]
    except ConfigError:
        raise ConfigError(f"strength must be a finite number >= 0 (e.g. 1e-4); got {strength!r}") from None


def check_options(name: str, options: dict[str, Any]) -> Options:
    """Validated :class:`Options` for regulariser ``name``."""
    valid = COMMON_KEYS + (GROWL_KEYS if get_regularizer(name).ordered else ())
    for key in options:
        if key not in valid:
            hint = f" ({key} applies only to {', '.join(names(ordered=True))})" if key in GROWL_KEYS else ""
            raise ConfigError(f"unknown option {key!r} for regularizer {name!r}{hint}; valid options: "
                              f"{', '.join(valid)}")
    o = {**Options().__dict__, **options}
    _choice("mode", o["mode"], MODES)
    _choice("grad", o["grad"], GRADS)
    _choice("size_weighting", o["size_weighting"], SIZE_WEIGHTINGS)
    _number("eps", o["eps"])
    _flag("include_bn", o["include_bn"])
    _flag("include_bias", o["include_bias"])
    _number("lambda2_ratio", o["lambda2_ratio"], allow_none=True)
    p = o["p"]
    if (isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 0
            or (isinstance(p, float) and p > 1)):
        raise ConfigError(f"p must be a fraction in [0, 1] (float) or a channel count >= 0 (int); got {p!r}")
    sel = o["select"]
    if isinstance(sel, str):
        _choice("select", sel, SELECTS)
    elif isinstance(sel, Iterable) and all(isinstance(s, str) for s in sel):
        o["select"] = tuple(sel)
    else:
        raise ConfigError(f"select must be one of {', '.join(SELECTS)} or a list of group names; got {sel!r}")
    return Options(**o)


def select_groups(groups: Any, select: str | tuple[str, ...]) -> list[ChannelGroup]:
    """The groups the regulariser penalises: the prunable ones (default), all, or by name."""
    if isinstance(groups, GroupSet):
        all_groups = list(groups.groups)
    elif isinstance(groups, (list, tuple)) and all(isinstance(g, ChannelGroup) for g in groups):
        all_groups = list(groups)
    else:
        raise ConfigError(
            "groups must be a GroupSet (from oicsr_lab.groups.find_groups) or a list of ChannelGroup; got "
            f"{type(groups).__name__}"
        )
    if select == "prunable":
        return [g for g in all_groups if g.prunable]
    if select == "all":
        return all_groups
    known = {g.name: g for g in all_groups}
    missing = [s for s in select if s not in known]
    if missing:
        raise ConfigError(f"select names unknown groups {missing}; known groups: {', '.join(list(known)[:10])}...")
    return [known[s] for s in select]
