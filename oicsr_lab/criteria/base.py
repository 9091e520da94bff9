"""The criterion object, the registry of names, scores that remember how they were made, normalisations,
and :func:`score_channels`, which applies any of them (one module, so a criterion can call it without a cycle).

Every criterion scores the channels of the out-in-channel groups :func:`~oicsr_lab.groups.find_groups`
returns (one score per channel of each group; *lower = pruned first*). A criterion is a small class
registered under one name (:data:`REGISTRY`, modelled on Torch-Pruning's ``Importance`` objects); the
name is the only string the rest of the lab uses (plans, the Figure 4 sweep, notebooks, widgets).
Weight-only criteria read the weights; data-driven ones (``needs_data``) run a few calibration
batches (:class:`~oicsr_lab.criteria.calibration.Calibration`, training or validation split only).

Normalisation across layers (unpublished, reference section 3) applies to every criterion:
``none`` (raw), ``layer_sum`` (``s_i / sum_j s_j``), ``layer_max`` (``s_i / max_j s_j``),
``per_element`` (``s_i / n_i``, the number of weights the criterion sums for channel ``i``; 1 for
criteria that do not sum weights, so there it equals ``none``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..groups.fit import check_groups_fit
from ..groups.types import ChannelGroup, GroupSet
from .calibration import Calibration

NORMALIZATIONS = ("none", "layer_sum", "layer_max", "per_element")
FAMILIES = ("energy", "norm", "geometry", "random", "activation", "gradient")

__all__ = ["Criterion", "ChannelScores", "ScoreContext", "REGISTRY", "register", "get_criterion", "names",
           "criteria_table", "label", "normalize_scores", "NORMALIZATIONS", "FAMILIES", "score_channels", "prepare"]


class ChannelScores(dict):
    """``{group_name: 1-D float tensor}`` that remembers how it was computed.

    ``criterion``/``normalize``: the registry name and normalisation; ``batches``/``images``/``split``:
    how much calibration data a data-driven criterion used (0 / None for weight-only criteria).
    """

    def __init__(self, data: dict, criterion: str, normalize: str, batches: int = 0, images: int = 0,
                 split: str | None = None) -> None:
        super().__init__(data)
        self.criterion = criterion
        self.normalize = normalize
        self.batches = batches
        self.images = images
        self.split = split

    def provenance(self) -> dict[str, Any]:
        """Plain-data description (criterion, normalisation, calibration batches/images/split)."""
        return {"criterion": self.criterion, "normalize": self.normalize, "batches": self.batches,
                "images": self.images, "split": self.split}


@dataclass
class ScoreContext:
    """What a criterion's ``raw`` sees: the model, the groups to score and the options."""

    model: nn.Module
    groups: list[ChannelGroup]
    include_bn: bool = False
    seed: int = 0
    calibration: Any = None  # a Calibration for data-driven criteria
    cache: dict[Any, torch.Tensor] = field(default_factory=dict)  # per-module reductions shared by groups


class Criterion:
    """One channel-importance criterion: ``raw`` scores per group (higher = more important).

    Subclasses set ``name`` (the registry key), ``label`` (how plots, tables and menus name it),
    ``family``, ``needs_data``, ``summary`` and ``reference``; ``zero_is_least`` says a channel
    whose weights are all zero scores 0 (the lowest). Call an instance like a function:
    ``get_criterion("l1")(model, groups)``.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    family: ClassVar[str] = ""
    needs_data: ClassVar[bool] = False
    zero_is_least: ClassVar[bool] = True
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""

    def raw(self, ctx: ScoreContext) -> dict[str, torch.Tensor]:
        """Unnormalised scores ``{group name: float tensor of length size}`` for ``ctx.groups``."""
        raise NotImplementedError

    def elements(self, ctx: ScoreContext, group: ChannelGroup) -> int:
        """Weights one channel of ``group`` sums over (the ``per_element`` divisor); 1 by default."""
        return 1

    def options(self) -> dict[str, Any]:
        """Constructor options that change the result (shown in ``repr``)."""
        return {}

    def __call__(self, model: nn.Module, groups: Any, normalize: str = "layer_max", **kw: Any):
        """Score ``groups`` of ``model``; keywords as :func:`~oicsr_lab.criteria.score_channels`."""
        return score_channels(model, groups, self, normalize, **kw)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


REGISTRY: dict[str, type[Criterion]] = {}


def register(cls: type[Criterion]) -> type[Criterion]:
    """Class decorator: add a criterion to :data:`REGISTRY` under ``cls.name`` (names are unique)."""
    if not cls.name or cls.name in REGISTRY or cls.family not in FAMILIES or not cls.label:
        raise AssertionError(f"criterion {cls.__name__}: name {cls.name!r} missing or taken, label {cls.label!r} "
                             f"missing, or family {cls.family!r}")
    REGISTRY[cls.name] = cls
    return cls


def names(needs_data: bool | None = None) -> tuple[str, ...]:
    """Registered criterion names in registry order (``needs_data`` False/True filters)."""
    return tuple(n for n, c in REGISTRY.items() if needs_data is None or c.needs_data == needs_data)


def label(criterion: str) -> str:
    """How plots, tables and menus name criterion ``criterion`` (its registered ``label``); other strings as given.

    >>> label("out_in"), label("hrank"), label("uniform")
    ('out-in energy', 'HRank', 'uniform')
    """
    cls = REGISTRY.get(str(criterion))
    return cls.label if cls is not None else str(criterion)


def get_criterion(criterion: "str | Criterion", **options: Any) -> Criterion:
    """The criterion object for a registry name (``options`` go to its constructor), or ``criterion`` itself."""
    if isinstance(criterion, Criterion):
        if options:
            raise ConfigError(f"options {sorted(options)} given with an already built criterion {criterion!r}")
        return criterion
    cls = REGISTRY.get(criterion) if isinstance(criterion, str) else None
    if cls is None:
        raise ConfigError(f"unknown criterion {criterion!r}; choose one of {', '.join(REGISTRY)}")
    try:
        return cls(**options)
    except TypeError as e:
        raise ConfigError(f"criterion {criterion!r} does not take options {sorted(options)} ({e})") from e


def criteria_table() -> list[dict[str, Any]]:
    """One row per registered criterion: name, family, needs_data, summary, reference (for docs and menus)."""
    return [{"name": c.name, "label": c.label, "family": c.family, "needs_data": c.needs_data, "summary": c.summary,
             "reference": c.reference} for c in REGISTRY.values()]


def normalize_scores(raw: torch.Tensor, normalize: str, elements: int = 1) -> torch.Tensor:
    """Apply one of ``NORMALIZATIONS`` to one group's raw scores."""
    tiny = torch.finfo(raw.dtype).tiny
    if normalize == "none":
        return raw
    if normalize == "layer_sum":
        return raw / raw.sum().clamp_min(tiny)
    if normalize == "layer_max":
        return raw / raw.max().clamp_min(tiny) if raw.numel() else raw
    if normalize == "per_element":
        return raw / max(elements, 1)
    raise ConfigError(f"unknown normalize {normalize!r}; choose one of {', '.join(NORMALIZATIONS)}")


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
