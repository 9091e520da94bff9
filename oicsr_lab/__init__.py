"""oicsr-lab: an interactive lab for channel pruning with Out-In-Channel Sparsity Regularization.

The whole method in eight calls (each is documented with an example)::

    import oicsr_lab as ol
    data = ol.load_dataset("cifar10-sample")                       # embedded real CIFAR-10 sample
    model = ol.build_model("resnet20", num_classes=10)
    groups = ol.find_groups(model, data.example_input())           # the out-in-channels (Figure 1)
    reg = ol.make_regularizer("oicsr_gl", groups, 1e-2, mode="proximal")   # train with it (eqs. 1-4)
    scores = ol.channel_energy(model, groups)                      # eq. 5
    flops = ol.count_flops(model, data.example_input())            # Conv + Linear MACs
    plan = ol.global_greedy_plan(model, groups, scores, 0.3, example_input=data.example_input())  # Algorithm 1
    with ol.apply_masks(model, plan): ...                          # accuracy before retraining
    small = ol.prune(model, plan)                                  # a smaller dense network

Submodules are imported lazily, so ``import oicsr_lab`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_dataset": "oicsr_lab.data",
    "build_model": "oicsr_lab.models",
    "list_models": "oicsr_lab.models",
    "find_groups": "oicsr_lab.groups",
    "describe": "oicsr_lab.groups",
    "make_regularizer": "oicsr_lab.regularizers",
    "channel_energy": "oicsr_lab.importance",
    "count_flops": "oicsr_lab.flops",
    "global_greedy_plan": "oicsr_lab.pruning",
    "apply_masks": "oicsr_lab.pruning",
    "prune": "oicsr_lab.pruning",
    "save_pruned": "oicsr_lab.pruning",
    "load_pruned": "oicsr_lab.pruning",
    "prune_iteratively": "oicsr_lab.pruning",
    "reproduce": "oicsr_lab.experiments",
    "Trainer": "oicsr_lab.train",
    "TrainConfig": "oicsr_lab.train",
    "preset": "oicsr_lab.train",
    "build_trainer": "oicsr_lab.train",
    "evaluate": "oicsr_lab.train",
    "pretrained": "oicsr_lab.pretrained",
    "list_pretrained": "oicsr_lab.pretrained",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    """Import a public function from its submodule on first use."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'oicsr_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
