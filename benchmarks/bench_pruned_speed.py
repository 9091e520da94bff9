"""CPU latency of dense vs physically pruned networks, next to the FLOPs speed-up.

    python benchmarks/bench_pruned_speed.py --quick --threads 1 --clock cpu --channels-last --deploy jit
    python benchmarks/bench_pruned_speed.py --models resnet56 torchvision:resnet50 --batches 1 64 --channels-last

For every model, FLOPs reduction (Algorithm 1 on out-in energy, default 30/50/70%) and
rounding variant (no rounding, ``round_to=8``) the pruned copy is built once; then dense and
all pruned copies are timed round-robin (interleaved, so machine-load drift hits all equally)
under ``torch.inference_mode`` after warm-up; the median per forward is reported. Efficiency =
latency speed-up / FLOPs speed-up (goal: >= 0.8 at batch 64). ``--quick`` shrinks the
ResNet-50 batch-64 case to batch 8 and uses few repetitions (about a minute of CPU on 1 core).
``--clock cpu`` times process CPU instead of wall time (use with ``--threads 1`` on a shared
machine); ``--deploy fuse|jit`` times both networks in a deployment form (BN folded / TorchScript).
The per-layer cap defaults to 0.9 here so that 70% is reachable with block-internal channels only.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn as nn

from oicsr_lab.flops import count_flops
from oicsr_lab.groups import find_groups
from oicsr_lab.importance import channel_energy
from oicsr_lab.models import build_model, default_input_size
from oicsr_lab.pruning import global_greedy_plan, prune


def _time(model: nn.Module, x: torch.Tensor, iters: int, clock: str) -> float:
    """Seconds per forward over ``iters`` calls (wall clock, or this process's CPU time)."""
    now = time.perf_counter if clock == "wall" else time.process_time
    t = now()
    for _ in range(iters):
        model(x)
    return (now() - t) / iters


def _deploy(model: nn.Module, x: torch.Tensor, channels_last: bool, mode: str) -> nn.Module:
    """Inference form used for dense and pruned alike.

    ``eager``: as is; ``fuse``: eval BatchNorm folded into convs (torch.fx); ``jit``: TorchScript
    trace + freeze + optimize_for_inference (BN folding, conv+relu fusion, prepacked weights).
    """
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    try:
        if mode == "fuse":
            from torch.fx.experimental.optimization import fuse

            return fuse(model)
        if mode == "jit":
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))
    except Exception as e:  # untraceable model: time it eagerly
        print(f"# {mode} failed ({type(e).__name__}); timing the eager model")
    return model


def _variants(name: str, ratios: list[float], round_tos: list[int | None], cap: float) -> tuple[nn.Module, list[tuple]]:
    """Dense model plus (ratio, round_to, FLOPs speed-up, pruned model, plan+prune s, achieved) per variant."""
    torch.manual_seed(0)
    dense = build_model(name, num_classes=1000 if name.startswith("torchvision:") else 10).eval()
    size = default_input_size(name)
    x = torch.randn(1, 3, size, size)
    groups = find_groups(dense, x)
    scores = channel_energy(dense, groups)
    report = count_flops(dense, x)
    out = []
    for ratio in ratios:
        for r in round_tos:
            t = time.perf_counter()
            plan = global_greedy_plan(dense, groups, scores, ratio, max_layer_ratio=cap, round_to=r, report=report)
            small = prune(dense, plan).eval()
            dt = time.perf_counter() - t
            out.append((ratio, r, plan.flops_before / plan.flops_after, small, dt, plan.achieved_ratio))
    return dense, out


def bench(args: argparse.Namespace) -> list[dict]:
    """Run every (model, batch) case; returns one row per pruned variant."""
    rows = []
    for name in args.models:
        dense, variants = _variants(name, args.ratios, args.round_to, args.max_layer_ratio)
        size = default_input_size(name)
        batches = [8 if (args.quick and b > 8 and name.startswith("torchvision:")) else b for b in args.batches]
        for batch in dict.fromkeys(batches):
            x = torch.randn(batch, 3, size, size)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            models = [_deploy(m, x, args.channels_last, args.deploy) for m in [dense] + [v[3] for v in variants]]
            iters = max(1, args.iters // batch) if batch > 1 else args.iters
            times: list[list[float]] = [[] for _ in models]
            with torch.inference_mode():
                for m in models:
                    for _ in range(args.warmup):
                        m(x)
                for _ in range(args.reps):  # interleaved: dense, p1, p2, ... each round
                    for i, m in enumerate(models):
                        times[i].append(_time(m, x, iters, args.clock))
            dense_t = statistics.median(times[0])
            for (ratio, r, fsp, _m, plan_s, achieved), ts in zip(variants, times[1:]):
                t = statistics.median(ts)
                rows.append(dict(model=name, batch=batch, ratio=ratio, round_to=r, achieved=achieved, flops_speedup=fsp,
                                 dense_ms=dense_t * 1e3, pruned_ms=t * 1e3, speedup=dense_t / t,
                                 efficiency=(dense_t / t) / fsp, plan_prune_s=plan_s))
                _print_row(rows[-1])
    return rows


def _print_row(r: dict) -> None:
    """One table line."""
    rt = str(r["round_to"] or "-")
    print(f"{r['model']:22s} {r['batch']:5d} {r['ratio']:5.0%} {rt:>5s} {r['achieved']:8.1%} {r['flops_speedup']:7.2f}x "
          f"{r['dense_ms']:10.2f} {r['pruned_ms']:10.2f} {r['speedup']:7.2f}x {r['efficiency']:6.2f} {r['plan_prune_s']:8.3f}",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse options, print the latency table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["resnet56", "torchvision:resnet50"])
    p.add_argument("--ratios", nargs="+", type=float, default=[0.3, 0.5, 0.7])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    p.add_argument("--round-to", nargs="+", type=lambda s: None if s in ("none", "0") else int(s), default=[None, 8],
                   help="rounding variants of kept widths ('none' or a multiple, e.g. 8)")
    p.add_argument("--max-layer-ratio", type=float, default=0.9, help="per-layer cap (0.9 so 70%% is reachable)")
    p.add_argument("--channels-last", action="store_true", help="NHWC tensors and weights (oneDNN's preferred layout)")
    p.add_argument("--deploy", choices=["eager", "fuse", "jit"], default="eager",
                   help="inference form for dense and pruned alike: eager, BN folded (fuse), or TorchScript-optimised (jit)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu = process CPU time: robust on a shared machine, a latency proxy only with --threads 1")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--iters", type=int, default=20, help="forwards per timing at batch 1 (divided by the batch size)")
    p.add_argument("--quick", action="store_true", help="few repetitions; torchvision batch 64 -> 8")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.reps, args.iters = 1, 3, 4
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, channels_last={args.channels_last}, "
          f"deploy={args.deploy}, clock={args.clock}, quick={args.quick}")
    print(f"{'model':22s} {'batch':>5s} {'ratio':>5s} {'round':>5s} {'achieved':>8s} {'FLOPsx':>8s} "
          f"{'dense ms':>10s} {'pruned ms':>10s} {'speedup':>8s} {'eff.':>6s} {'plan+prune s':>8s}")
    bench(args)


if __name__ == "__main__":
    main()
