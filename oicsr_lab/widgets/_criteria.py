"""Which criteria an explorer's menu lists: the criteria registry, data-driven ones only with calibration data.

Weight-only criteria of :mod:`oicsr_lab.criteria` are always listed. Data-driven ones (Taylor,
activation statistics, HRank) need a few calibration batches of the training or validation split
(never test): they are listed when a :class:`~oicsr_lab.criteria.Calibration` is given, or with
``calibration="auto"`` when the data has a validation (preferred) or training split, from which
the batches are drawn on first use; otherwise they are left out and the menu's tooltip says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..criteria import Calibration, calibration_data, names
from ..errors import ConfigError
from ..plots.style import criterion_label

__all__ = ["CriterionMenu", "criterion_menu"]


@dataclass
class CriterionMenu:
    """The menu's ``(label, name)`` options in registry order, the calibration provider and the tooltip."""

    options: list[tuple[str, str]]
    calibration: Callable[[], Calibration] | None
    tooltip: str

    @property
    def names(self) -> list[str]:
        """The listed criterion names."""
        return [name for _, name in self.options]


def criterion_menu(data: Any, calibration: Any = "auto", batches: int = 4, seed: int = 0,
                   device: Any = "cpu") -> CriterionMenu:
    """The criteria an explorer over ``data`` can offer (see the module docstring)."""
    needs = names(needs_data=True)
    split = None
    if isinstance(calibration, Calibration):
        provider: Callable[[], Calibration] | None = lambda: calibration  # noqa: E731
        note = f"data-driven criteria ({', '.join(needs)}) use the given {calibration!r}"
    elif calibration == "auto":
        split = next((s for s in ("val", "train") if getattr(data, s, None) is not None), None)
        provider, note = None, ""
        if split is not None:
            cache: list[Calibration] = []

            def provider() -> Calibration:
                if not cache:
                    cache.append(calibration_data(data, split, batches=batches, seed=seed, device=device))
                return cache[0]

            note = (f"data-driven criteria ({', '.join(needs)}) are calibrated on {batches} batches of the {split} "
                    "split, drawn on first use (never the test split)")
    elif calibration is None:
        provider, note = None, ""
    else:
        raise ConfigError(f"calibration must be 'auto', None or a Calibration (calibration_data(data, 'train')), "
                          f"got {type(calibration).__name__}")
    if provider is None:
        note = (f"data-driven criteria ({', '.join(needs)}) are not listed: no calibration data; pass "
                "calibration=calibration_data(data, 'train') or data with a training split")
    listed = names() if provider is not None else names(needs_data=False)
    options = [(criterion_label(n), n) for n in listed]
    return CriterionMenu(options, provider, f"ranking criterion (oicsr_lab.criteria); {note}")
