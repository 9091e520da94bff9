"""How far bf16 inference moves accuracy before retraining, on trained runs: fp32 vs bf16 side by side.

    python benchmarks/bf16_agreement.py REPORT_DIR [--data cifar10] [--ratios 0,0.3,0.5,0.7] [--threads N]

REPORT_DIR is an ``oicsr-lab reproduce`` output folder (its ``runs/*/checkpoint.pt`` are loaded)
or a single run folder. For every run and FLOPs ratio (Algorithm 1, out-in energy, layer-max
normalisation, cap 0.9 as in the sweep) it prints fp32 and bf16 top-1 on the whole test split,
their difference, the share of images whose prediction agrees, and the bf16/fp32 time ratio.
This is the measurement behind ``precision="auto"`` in the pruning explorer.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from oicsr_lab.data import load_dataset
from oicsr_lab.groups import find_groups
from oicsr_lab.importance import channel_energy
from oicsr_lab.inference import EvalBatches, inference_copy, native_bf16
from oicsr_lab.pruning import global_greedy_plan
from oicsr_lab.train import load_trained


def predictions(net: torch.nn.Module, batches: EvalBatches) -> tuple[torch.Tensor, float]:
    """Top-1 predictions of ``net`` over every batch, in the batches' precision, and the seconds it took."""
    t = time.perf_counter()
    out = torch.cat([batches.predict(net, i) for i in range(len(batches))])
    return out, time.perf_counter() - t


def main() -> None:
    """Print the fp32/bf16 table for every run found under the report folder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--data", default="cifar10", help="dataset name for load_dataset (default cifar10)")
    ap.add_argument("--data-dir", default=None, help="folder holding the dataset files or archive")
    ap.add_argument("--ratios", default="0,0.3,0.5,0.7")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = sorted(args.report.glob("runs/*/checkpoint.pt")) or [args.report / "checkpoint.pt"]
    data = load_dataset(args.data, root=args.data_dir)
    batches = {p: EvalBatches(data.test, data.mean, data.std, 500, precision=p) for p in ("fp32", "bf16")}
    labels = torch.cat([y for _, y in batches["fp32"]])
    ratios = [float(r) for r in args.ratios.split(",") if r]
    print(f"{len(labels)} test images of {data.name}; native bf16 on this CPU: {native_bf16()}; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'run':28s} {'ratio':>5s} {'fp32 %':>7s} {'bf16 %':>7s} {'diff':>6s} {'agree %':>8s} "
          f"{'time bf16/fp32':>14s}")
    worst_diff, worst_agree = 0.0, 100.0
    for ckpt in runs:
        model, _ = load_trained(ckpt)
        model.eval()
        groups = find_groups(model, data.example_input())
        scores = channel_energy(model, [g for g in groups if g.prunable])
        for ratio in ratios:
            plan = global_greedy_plan(model, groups, scores, ratio, max_layer_ratio=0.9) if ratio > 0 else None
            net = inference_copy(model, plan)
            (p32, t32), (p16, t16) = predictions(net, batches["fp32"]), predictions(net, batches["bf16"])
            a32, a16 = (100.0 * (p == labels).float().mean().item() for p in (p32, p16))
            agree = 100.0 * (p32 == p16).float().mean().item()
            worst_diff, worst_agree = max(worst_diff, abs(a16 - a32)), min(worst_agree, agree)
            print(f"{ckpt.parent.name:28s} {ratio:5.2f} {a32:7.2f} {a16:7.2f} {a16 - a32:+6.2f} {agree:8.2f} "
                  f"{t16 / t32:14.2f}", flush=True)
    print(f"largest |bf16 - fp32| accuracy difference {worst_diff:.2f} points; lowest agreement {worst_agree:.2f} %")


if __name__ == "__main__":
    main()
