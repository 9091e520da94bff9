"""The explorers' compute cache: groups, FLOPs, energies and Algorithm 1 plans computed once per explorer.

The widgets hold no math of their own: groups come from :func:`oicsr_lab.groups.find_groups`,
energies from :func:`oicsr_lab.importance.channel_energy`, FLOPs from :mod:`oicsr_lab.flops`
and plans from :func:`oicsr_lab.pruning.global_greedy_plan`; this module only caches them.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch.nn as nn

from ..criteria import REGISTRY as CRITERIA
from ..criteria import Calibration
from ..errors import ConfigError, PlanError
from ..flops import FlopsReport, channel_flops, count_flops
from ..groups import find_groups
from ..groups.types import GroupSet
from ..importance import ChannelScores, channel_energy
from ..pruning import Plan, global_greedy_plan
from ._style import order_regs

__all__ = ["Library", "check_models", "split_subset"]


def check_models(models: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
    """Validate ``{regulariser: model}``: non-empty, same architecture (parameter shapes)."""
    if not isinstance(models, Mapping) or not models:
        raise ConfigError("models must be a non-empty dict {regulariser name: trained model}")
    models = {str(k): v for k, v in models.items()}
    first_name, first = next(iter(models.items()))
    shapes = {k: tuple(v.shape) for k, v in first.state_dict().items()}
    for name, m in models.items():
        if not isinstance(m, nn.Module):
            raise ConfigError(f"models[{name!r}] is a {type(m).__name__}, not a torch.nn.Module")
        other = {k: tuple(v.shape) for k, v in m.state_dict().items()}
        if other != shapes:
            raise ConfigError(
                f"models[{name!r}] has a different architecture from models[{first_name!r}]; "
                "the explorers compare runs of one architecture"
            )
    return models


class Library:
    """Everything an explorer precomputes once: groups, FLOPs report, channel FLOPs, energies, plans."""

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        example_input: Any,
        groups: GroupSet | None = None,
        criterion: str = "out_in",
        max_layer_ratio: float = 0.5,
        include_unprunable: bool = False,
        calibration: Callable[[], Calibration] | None = None,
    ) -> None:
        self.models = check_models(models)
        self.regs = order_regs(list(self.models))
        first = self.models[self.regs[0]]
        self.example_input = example_input
        self.groups = groups if groups is not None else find_groups(first, example_input)
        wanted = [g for g in self.groups if include_unprunable or g.prunable]
        if not wanted:
            raise ConfigError("the model has no prunable out-in-channel groups; nothing to explore")
        self.group_list = wanted
        self.by_name = {g.name: g for g in wanted}
        self.report: FlopsReport = count_flops(first, example_input)
        self.channel_macs: dict[str, int] = channel_flops(self.report, wanted)
        self.criterion = criterion
        self.max_layer_ratio = max_layer_ratio
        self.include_unprunable = include_unprunable
        self.calibration = calibration  # calibration batches for data-driven criteria, drawn on first use
        self._energy: dict[tuple[str, str, str], ChannelScores] = {}
        self._plans: dict[tuple[str, str, str, float], Plan] = {}
        self._max_ratio: float | None = None

    def energy(self, reg: str, normalize: str = "layer_max", criterion: str | None = None) -> ChannelScores:
        """Cached ``channel_energy`` of run ``reg`` (per criterion and normalisation)."""
        key = (reg, criterion or self.criterion, normalize)
        if key not in self._energy:
            calib = None
            if self.needs_data(key[1]):
                if self.calibration is None:
                    raise ConfigError(f"criterion {key[1]!r} needs calibration data; build the explorer with "
                                      "calibration=calibration_data(data, 'train') or data with a training split")
                calib = self.calibration()
            self._energy[key] = channel_energy(
                self.models[reg], self.group_list, key[1], normalize, include_unprunable=self.include_unprunable,
                calibration=calib,
            )
        return self._energy[key]

    def has_energy(self, reg: str, normalize: str = "layer_max", criterion: str | None = None) -> bool:
        """True when :meth:`energy` of this run, normalisation and criterion is cached."""
        return (reg, criterion or self.criterion, normalize) in self._energy

    @staticmethod
    def needs_data(criterion: str) -> bool:
        """True for a data-driven criterion of the registry (it runs calibration batches)."""
        return bool(getattr(CRITERIA.get(criterion), "needs_data", False))

    def warm(self, normalizations: tuple[str, ...]) -> None:
        """Compute every (run, normalisation) energy now, so slider moves never wait for it."""
        for reg in self.regs:
            for norm in normalizations:
                self.energy(reg, norm)

    def plan(self, reg: str, ratio: float, normalize: str = "layer_max", criterion: str | None = None) -> Plan:
        """Cached Algorithm 1 plan (``global_greedy_plan``) of run ``reg`` at FLOPs ratio ``ratio``."""
        crit = criterion or self.criterion
        key = (reg, crit, normalize, round(float(ratio), 6))
        plan = self._plans.get(key)
        if plan is None:
            plan = global_greedy_plan(
                self.models[reg], self.groups, self.energy(reg, normalize, crit), key[3],
                max_layer_ratio=self.max_layer_ratio, report=self.report, criterion=crit, normalize=normalize,
            )
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def max_ratio(self, tol: float = 1e-4) -> float:
        """Largest reachable FLOPs ratio under the per-layer cap (bisection over plan feasibility)."""
        if self._max_ratio is None:
            reg, lo, hi = self.regs[0], 0.0, 0.999
            try:
                self._max_ratio = global_greedy_plan(
                    self.models[reg], self.groups, self.energy(reg), hi,
                    max_layer_ratio=self.max_layer_ratio, report=self.report,
                ).achieved_ratio
                return self._max_ratio
            except PlanError:
                pass
            while hi - lo > tol:  # the reachable maximum depends on the caps only, not on scores
                mid = 0.5 * (lo + hi)
                try:
                    global_greedy_plan(self.models[reg], self.groups, self.energy(reg), mid,
                                       max_layer_ratio=self.max_layer_ratio, report=self.report)
                    lo = mid
                except PlanError:
                    hi = mid
            self._max_ratio = lo
        return self._max_ratio


def split_subset(split: Any, n: int | None, seed: int = 0) -> Any:
    """The held-out evaluation subset (``Split.subset``; all images when ``n`` is None)."""
    return split.subset(n, seed=seed) if hasattr(split, "subset") else split
