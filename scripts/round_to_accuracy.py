"""Accuracy before retraining of Algorithm 1's plans with free channel counts vs multiples of 8 (``round_to``).

    python scripts/round_to_accuracy.py > docs/results/onnx/round_to_accuracy.txt

The shipped seed-0 networks, out-in energy (layer-max normalised, cap 0.9), the embedded sample's
1,000 test images, fp32. One seed and no retraining: the latency side is in
``benchmarks/bench_pruned_speed.py --round-to none 8`` (docs/results.md section 10).
"""

from __future__ import annotations

import torch

from oicsr_lab import load_dataset
from oicsr_lab.experiments.sweep import _accuracies
from oicsr_lab.groups import find_groups
from oicsr_lab.importance import channel_energy
from oicsr_lab.pretrained import list_pretrained, pretrained
from oicsr_lab.pruning import global_greedy_plan


def main() -> None:
    """Print one line per shipped seed-0 network: achieved FLOPs removed and accuracy per (ratio, round_to)."""
    torch.set_num_threads(1)
    data = load_dataset("cifar10-sample")
    print("network   ratio  round_to  achieved  top-1 (%)")
    for reg in sorted({e["reg"] for e in list_pretrained() if int(e["seed"]) == 0}):
        model = pretrained("resnet20", reg, 0)
        groups = find_groups(model, data.example_input())
        scores = channel_energy(model, groups, criterion="out_in", normalize="layer_max")
        for ratio in (0.3, 0.5):
            for round_to in (None, 8):
                plan = global_greedy_plan(model, groups, scores, ratio, max_layer_ratio=0.9, round_to=round_to)
                acc, = _accuracies(model, plan, data, [data.test], "cpu", "fp32")
                print(f"{reg:9} {ratio:5.0%}  {str(round_to or '-'):>8}  {plan.achieved_ratio:8.3f}  {acc:9.1f}")


if __name__ == "__main__":
    main()
