"""``score_channels``: any registered criterion, any normalisation, over the prunable groups of a model."""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..groups.fit import check_groups_fit
from ..groups.types import ChannelGroup, GroupSet
from .base import NORMALIZATIONS, ChannelScores, Criterion, ScoreContext, get_criterion, normalize_scores
from .calibration import Calibration

__all__ = ["score_channels", "prepare"]


def prepare(model: nn.Module, groups: GroupSet | Iterable[ChannelGroup], crit: Criterion, calibration: Any = None,
            include_bn: bool = False, seed: int = 0, include_unprunable: bool = False) -> ScoreContext:
    """Check the groups and the calibration data against the criterion; the context ``raw`` runs in."""
    groups = groups if isinstance(groups, GroupSet) else list(groups)  # a generator is read twice below
    check_groups_fit(model, groups)
    if crit.needs_data:
        if calibration is None:
            raise ConfigError(f"criterion {crit.name!r} needs calibration data: pass calibration=calibration_data("
                              "data, 'train', batches=4) (a few batches of the training or validation split)")
        if not isinstance(calibration, Calibration):
            raise ConfigError(f"calibration must be a Calibration (calibration_data(...) or Calibration.from_loader("
                              f"loader, 'train', batches)), got {type(calibration).__name__}")
    chosen = [g for g in groups if include_unprunable or g.prunable]
    return ScoreContext(model, chosen, include_bn=include_bn, seed=seed,
                        calibration=calibration if crit.needs_data else None)


def score_channels(
    model: nn.Module,
    groups: GroupSet | Iterable[ChannelGroup],
    criterion: "str | Criterion" = "out_in",
    normalize: str = "layer_max",
    *,
    calibration: Calibration | None = None,
    include_bn: bool = False,
    seed: int = 0,
    include_unprunable: bool = False,
) -> ChannelScores:
    """Score every channel of every (prunable) group with a registered criterion (lower = pruned first).

    ``criterion``: a name from :func:`~oicsr_lab.criteria.names` or a criterion object; data-driven
    ones (``needs_data``) need ``calibration`` (:func:`~oicsr_lab.criteria.calibration_data`: a few
    batches of the training or validation split, never test); weight-only criteria ignore it. The
    result records the criterion, the normalisation and, for data-driven criteria, how many
    batches/images of which split were used.

    Example:
        >>> import torch
        >>> from oicsr_lab import build_model, find_groups
        >>> from oicsr_lab.criteria import score_channels
        >>> model = build_model("resnet20")
        >>> s = score_channels(model, find_groups(model, torch.zeros(1, 3, 32, 32)), "l1")
        >>> s.criterion, s.batches, s["layer1.0.conv1"].shape
        ('l1', 0, torch.Size([16]))
    """
    crit = get_criterion(criterion)
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalize {normalize!r}; choose one of {', '.join(NORMALIZATIONS)}")
    ctx = prepare(model, groups, crit, calibration, include_bn, seed, include_unprunable)
    if crit.needs_data:
        raw = crit.raw(ctx)
    else:
        with torch.no_grad():
            raw = crit.raw(ctx)
    out = {}
    for g in ctx.groups:
        elements = crit.elements(ctx, g) if normalize == "per_element" else 1
        out[g.name] = normalize_scores(raw[g.name].float(), normalize, elements)
    calib = ctx.calibration
    return ChannelScores(out, crit.name, normalize, batches=len(calib) if calib else 0,
                         images=calib.images if calib else 0, split=calib.split if calib else None)
