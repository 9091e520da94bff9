"""Pruning: Algorithm 1 (global greedy FLOPs-targeted plan), masks, physical surgery, save/load.

    scores = channel_energy(model, groups)                       # eq. 5 (oicsr_lab.importance)
    plan = global_greedy_plan(model, groups, scores, 0.5, example_input=x)   # Algorithm 1
    with apply_masks(model, plan): ...                           # reversible preview
    small = prune(model, plan)                                   # smaller dense network
    prune_iteratively(model, data, config, target_ratio=0.5)     # Figure 2: prune, retrain, repeat
    save_pruned(small, "small.pt", arch="resnet56"); load_pruned("small.pt")
"""

from .masks import MaskHandle, apply_masks
from .plan import Plan, global_greedy_plan
from .serialize import describe_widths, load_pruned, save_pruned
from .surgery import prune

__all__ = [
    "Plan",
    "global_greedy_plan",
    "apply_masks",
    "MaskHandle",
    "prune",
    "save_pruned",
    "load_pruned",
    "describe_widths",
    "prune_iteratively",
    "PipelineResult",
]


def __getattr__(name: str):
    """The iterative pipeline (Figure 2) needs the trainer; import it on first use."""
    if name in ("prune_iteratively", "PipelineResult"):
        from . import iterative

        return getattr(iterative, name)
    raise AttributeError(f"module 'oicsr_lab.pruning' has no attribute {name!r}")
