"""Channel importance for the global sort of Algorithm 1: ``channel_energy`` (eq. 5 and the baselines).

``channel_energy(model, groups, criterion, normalize)`` scores the channels of every prunable
out-in-channel group with a criterion of the registry (:mod:`oicsr_lab.criteria`, the one source
of truth for criterion names): the weight-only ``out_in`` (eq. 5, the default), ``out``, ``in``,
``l1``, ``bn_gamma``, ``fpgm``, ``random`` need nothing else; the data-driven ``taylor``,
``mean_activation``, ``apoz`` and ``hrank`` need ``calibration=calibration_data(data, "train", 4)``.

Out-in-channel energy (eq. 5), for channel ``i`` of a group whose producer is layer ``l`` and
consumer is layer ``l+1``::

    E_i = ||W^l[i, :, :, :]||^2 + ||W^{l+1}[:, i, :, :]||^2

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

import torch.nn as nn

from .criteria import NORMALIZATIONS, Calibration, ChannelScores, names, normalize_scores, score_channels
from .groups.types import ChannelGroup, GroupSet

CRITERIA = names(needs_data=False)  # what channel_energy computes from the weights alone
ALL_CRITERIA = names()  # every registered criterion (data-driven ones need calibration data)
__all__ = ["channel_energy", "ChannelScores", "normalize_scores", "CRITERIA", "ALL_CRITERIA",
           "NORMALIZATIONS"]


def channel_energy(
    model: nn.Module,
    groups: GroupSet | Iterable[ChannelGroup],
    criterion: str = "out_in",
    normalize: str = "layer_max",
    include_bn: bool = False,
    seed: int = 0,
    include_unprunable: bool = False,
    calibration: Calibration | None = None,
) -> ChannelScores:
    """Score every channel of every (prunable) group for the global sort of Algorithm 1.

    ``criterion="out_in"`` is eq. 5 (energy of the concatenated out-in-channel); any name of
    :data:`ALL_CRITERIA` works (data-driven ones need ``calibration``); see the module docstring
    for why ``normalize="layer_max"`` is the default. Returns ``{group name: float32 tensor of
    length group.size}`` (lower = pruned first). Delegates to :func:`oicsr_lab.criteria.score_channels`.

    Example:
        >>> import torch
        >>> from oicsr_lab import build_model, channel_energy, find_groups
        >>> model = build_model("resnet20")
        >>> scores = channel_energy(model, find_groups(model, torch.zeros(1, 3, 32, 32)))
        >>> scores["layer1.0.conv1"].shape, float(scores["layer1.0.conv1"].max())  # layer_max: the top is 1
        (torch.Size([16]), 1.0)
    """
    return score_channels(model, groups, criterion, normalize, calibration=calibration, include_bn=include_bn,
                          seed=seed, include_unprunable=include_unprunable)
