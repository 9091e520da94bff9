"""Data-driven criteria from activation statistics: mean activation, APoZ, HRank (average feature-map rank).

Each runs the calibration batches through the model (eval mode, no gradients) and reads every
group's channels where its consumers read them (:mod:`.taps`; post-ReLU for the usual
conv-BN-ReLU pair). Statistics are averaged over every observation of the channel: all images,
positions and consumer slices of the group.

* ``mean_activation``: mean of ``|a|`` (equals the mean activation after a ReLU; Molchanov et al.
  2017 compare it as a baseline).
* ``apoz``: ``1 - APoZ``, APoZ being the average percentage of exact zeros of the channel (Hu et al.
  2016, Network Trimming); channels that are mostly zero score low.
* ``hrank``: the average rank of the channel's ``H x W`` feature map over images (Lin et al. 2020,
  HRank); a Linear consumer after ``flatten`` shows a ``1 x block`` map (rank 0 or 1).
"""

from __future__ import annotations

import torch

from ..groups.types import Slice
from .base import Criterion, ScoreContext, register
from .taps import channel_maps, run_batches, tapped, taps_by_module


class _ActivationStat(Criterion):
    """A per-channel statistic summed over observations and divided by their count."""

    family, needs_data, zero_is_least = "activation", True, False

    def reduce(self, maps: torch.Tensor) -> tuple[torch.Tensor, float]:
        """``(N, size, H, W)`` maps -> (per-channel sum of the statistic, number of observations per channel)."""
        raise NotImplementedError

    def raw(self, ctx: ScoreContext) -> dict[str, torch.Tensor]:
        sums = {g.name: torch.zeros(g.size, dtype=torch.float64) for g in ctx.groups}
        counts = {g.name: 0.0 for g in ctx.groups}

        def observe(gname: str, s: Slice, x: torch.Tensor) -> None:
            total, n = self.reduce(channel_maps(x.detach(), s).float())
            sums[gname] += total.double().cpu()
            counts[gname] += n

        with torch.no_grad(), tapped(ctx.model, taps_by_module(ctx.groups), observe):
            run_batches(ctx.model, ctx.calibration, lambda x, y: ctx.model(x))
        return {k: (v / max(counts[k], 1.0)).float() for k, v in sums.items()}


@register
class MeanActivation(_ActivationStat):
    name = "mean_activation"
    label = "mean activation"
    summary = "mean |activation| of the channel where its consumers read it (calibration batches)"
    reference = "Molchanov et al., Pruning CNNs for Resource Efficient Inference, ICLR 2017"

    def reduce(self, maps: torch.Tensor) -> tuple[torch.Tensor, float]:
        return maps.abs().sum((0, 2, 3)), float(maps.shape[0] * maps.shape[2] * maps.shape[3])


@register
class APoZ(_ActivationStat):
    name = "apoz"
    label = "APoZ"
    summary = "1 - average percentage of zeros of the channel's activation (calibration batches)"
    reference = "Hu et al., Network Trimming, arXiv:1607.03250, 2016"

    def reduce(self, maps: torch.Tensor) -> tuple[torch.Tensor, float]:
        return (maps != 0).sum((0, 2, 3)).double(), float(maps.shape[0] * maps.shape[2] * maps.shape[3])


@register
class HRank(_ActivationStat):
    name = "hrank"
    label = "HRank"
    summary = "average rank of the channel's feature map over images (calibration batches)"
    reference = "Lin et al., HRank: Filter Pruning using High-Rank Feature Map, CVPR 2020"

    def reduce(self, maps: torch.Tensor) -> tuple[torch.Tensor, float]:
        ranks = torch.linalg.matrix_rank(maps.double())  # (N, size): default tolerance max(H, W) * eps * s_max
        return ranks.sum(0).double(), float(maps.shape[0])
