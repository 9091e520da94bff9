"""The shipped networks as the notebooks use them: every model the manifest lists, per regulariser.

Notebooks 02-04 and the dashboard start from the trained ResNet-20s inside the package
(:mod:`oicsr_lab.pretrained`) instead of a few-epoch run. The set grows as trainings finish, so
nothing here names a model: :func:`shipped_models` reads the manifest, returns what it holds for
the requested regularisers and seed, and says in words which requested ones are not shipped yet.

Example:
    >>> from oicsr_lab.course.shipped import shipped_models
    >>> s = shipped_models(["l2"])
    >>> "l2" in s.models
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from ..errors import ConfigError

PAPER_ORDER = ("l2", "gl", "l1bn", "oicsr_gl", "growl", "oicsr_growl")
FIGURE_REGS = ("l2", "gl", "l1bn", "oicsr_gl")  # the paper's Figures 3-4: named as missing until shipped


@dataclass
class Shipped:
    """The shipped models of one seed: ``models[reg]``, their manifest ``entries[reg]``, what is missing."""

    models: dict[str, nn.Module]
    entries: dict[str, dict[str, Any]]
    seed: int
    missing: list[str] = field(default_factory=list)  # requested regularisers with no model of this seed
    seeds: dict[str, list[int]] = field(default_factory=dict)  # every shipped seed per regulariser

    @property
    def regs(self) -> list[str]:
        """The regularisers loaded, in the paper's order."""
        return list(self.models)

    def summary(self) -> str:
        """Plain-text lines: each loaded model with its full-test accuracy, then what is not shipped yet."""
        lines = [f"{reg:9s} {e['name']}: {e['epochs']} epochs on full CIFAR-10, lambda_s={e['strength']:g}, "
                 f"{e['test_acc']:.2f}% on the full test set (seeds shipped: {self.seeds[reg]})"
                 for reg, e in self.entries.items()]
        if self.missing:
            lines.append(f"not shipped yet for seed {self.seed}: {', '.join(self.missing)} -- train them in "
                         "notebook 01 "
                         "(or set SOURCE = 'train' to use your own runs for every regulariser)")
        return "\n".join(lines)


def shipped_models(regs: list[str] | None = None, seed: int = 0, model: str = "resnet20", width: float = 1.0,
                   device: str = "cpu") -> Shipped:
    """Load the shipped ``model`` networks of ``seed`` for ``regs`` (default: every shipped regulariser).

    Regularisers without a shipped model of that seed are listed in ``missing`` (with the default
    ``regs``, the paper's four that are not shipped yet); ConfigError (naming what is shipped) when
    none of ``regs`` is.
    """
    from ..pretrained import list_pretrained, load_entry

    entries = [e for e in list_pretrained() if e["model"] == model and float(e.get("width", 1.0)) == float(width)]
    seeds: dict[str, list[int]] = {}
    for e in entries:
        seeds.setdefault(e["reg"], []).append(int(e["seed"]))
    order = {r: i for i, r in enumerate(PAPER_ORDER)}
    wanted = list(regs) if regs else sorted(seeds, key=lambda r: (order.get(r, len(order)), r))
    chosen = {r: next((e for e in entries if e["reg"] == r and int(e["seed"]) == int(seed)), None) for r in wanted}
    found = {r: e for r, e in chosen.items() if e is not None}
    if not found:
        have = ", ".join(f"{r} seeds {sorted(s)}" for r, s in seeds.items()) or "nothing"
        raise ConfigError(f"no shipped {model} model of seed {seed} for {', '.join(wanted) or 'any regulariser'}; "
                          f"shipped: {have} (`oicsr-lab pretrained list`; or set SOURCE = 'train')")
    return Shipped(models={r: load_entry(e, device=device) for r, e in found.items()}, entries=found, seed=int(seed),
                   missing=[r for r in (regs or FIGURE_REGS) if r not in found],
                   seeds={r: sorted(seeds[r]) for r in found})
