"""The regularisers as entries of one registry (one source of truth for their names and facts).

Every regulariser is a small class registered under one name (:data:`REGISTRY`), read like the
criteria registry (:mod:`oicsr_lab.criteria.base`): the name is the only string the rest of the lab
uses (``TrainConfig.reg``, ``make_regularizer``, the reproduce specs, the Figure 4 sweep, the
plots and widgets). Each entry states

* ``name`` and ``label`` (the legend/menu label, e.g. ``OICSR-GL``);
* how its penalised channel vectors are built from the out-in-channel groups (:meth:`parts`:
  index-plan parts, see :mod:`.index_plan`), or ``weight_decay_only`` (no structured penalty: the
  optimizer's weight decay is all, as for ``l2``; the trainer then traces no groups);
* ``ordered``: whether the norms are weighted by rank (GrOWL), which also enables the ``p`` /
  ``lambda2_ratio`` options;
* ``own_criterion``: the criterion of :mod:`oicsr_lab.criteria` its own paper ranks channels by
  (Figure 4's "own" curve);
* ``summary`` and ``reference`` (for docs and menus).

Colours and markers are a plotting matter and stay in :mod:`oicsr_lab.plots.style`, keyed by these
names. A new regulariser is one module with one ``@register`` class (imported by
``oicsr_lab/regularizers/__init__.py``, like the built-ins in :mod:`.builtin`) plus, optionally, a
style entry; the built-ins are registered in menu order: ``l2, gl, l1bn, oicsr_gl, growl, oicsr_growl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..groups.types import ChannelGroup
    from .index_plan import PartSpec
    from .options import Options

__all__ = ["RegularizerSpec", "REGISTRY", "register", "unregister", "names", "get_regularizer", "check_name",
           "own_criterion", "reg_label", "regularizers_table"]


class RegularizerSpec:
    """One regulariser's facts. Subclasses set the class attributes and, for a penalty, :meth:`parts`.

    ``eps`` (None: the ``eps`` option) is the subgradient smoothing of ``||g||``; L1-BN uses 0 (a
    plain ``|gamma|``). Instances are never needed: the registry holds the classes.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    weight_decay_only: ClassVar[bool] = False
    ordered: ClassVar[bool] = False
    own_criterion: ClassVar[str] = "out"
    eps: ClassVar[float | None] = None
    summary: ClassVar[str] = ""
    reference: ClassVar[str] = ""

    @classmethod
    def parts(cls, groups: "list[ChannelGroup]", options: "Options") -> "list[PartSpec]":
        """The channel vectors whose norms the penalty sums (index-plan parts), from the selected groups."""
        raise NotImplementedError(f"regulariser {cls.name!r} sets weight_decay_only or defines parts()")


REGISTRY: dict[str, type[RegularizerSpec]] = {}


def register(cls: type[RegularizerSpec]) -> type[RegularizerSpec]:
    """Class decorator: add a regulariser to :data:`REGISTRY` under ``cls.name`` (names are unique)."""
    if not cls.name or not cls.name.isidentifier() or cls.name in REGISTRY or not cls.label:
        raise AssertionError(f"regulariser {cls.__name__}: name {cls.name!r} missing, not an identifier or taken, "
                             f"or no label")
    REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove regulariser ``name`` from the registry (for tests that register a toy one)."""
    REGISTRY.pop(name, None)


def names(ordered: bool | None = None) -> tuple[str, ...]:
    """Registered regulariser names in registry order (``ordered`` True/False filters GrOWL-like ones)."""
    return tuple(n for n, c in REGISTRY.items() if ordered is None or c.ordered == ordered)


def check_name(name: Any) -> str:
    """The regulariser name, or a one-line ConfigError listing the registered ones."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ConfigError(f"unknown regularizer {name!r}; choose one of {', '.join(REGISTRY)}")
    return name


def get_regularizer(name: Any) -> type[RegularizerSpec]:
    """The registry entry of regulariser ``name`` (ConfigError naming the valid ones if unknown)."""
    return REGISTRY[check_name(name)]


def own_criterion(name: str) -> str:
    """The criterion regulariser ``name``'s own paper ranks channels by; ``out`` for a name not registered.

    The fallback keeps tables of older reports readable when they hold a regulariser that is no longer
    registered (an unregistered name is otherwise refused where a regulariser is built or trained).
    """
    cls = REGISTRY.get(str(name))
    return cls.own_criterion if cls is not None else "out"


def reg_label(name: str) -> str:
    """Display label of regulariser ``name`` (``oicsr_gl`` -> ``OICSR-GL``); the name itself if not registered."""
    cls = REGISTRY.get(str(name))
    return cls.label if cls is not None else str(name)


def regularizers_table() -> list[dict[str, Any]]:
    """One row per registered regulariser: name, label, ordered, own criterion, summary, reference (docs, menus)."""
    return [{"name": c.name, "label": c.label, "weight_decay_only": c.weight_decay_only, "ordered": c.ordered,
             "own_criterion": c.own_criterion, "summary": c.summary, "reference": c.reference}
            for c in REGISTRY.values()]
