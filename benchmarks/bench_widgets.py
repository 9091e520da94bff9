"""Benchmark the pruning explorer on ResNet-56: slider-move latency (goal <= 150 ms) and accuracy readout (goal <= 2 s).

    python benchmarks/bench_widgets.py [--model resnet56] [--regs l2,gl,l1bn,oicsr_gl] [--moves 30] [--threads N]

Weights are random with randomised BatchNorm (one seed per regulariser) so the runs' energies
and plans differ; latency does not depend on training. The slider moves visit distinct ratios
0..max (uncached plans), then the same ratios again (plan cache hits).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn as nn

from oicsr_lab.data import load_dataset
from oicsr_lab.inference import EvalBatches, inference_copy, native_bf16
from oicsr_lab.models import build_model
from oicsr_lab.pruning import apply_masks, prune
from oicsr_lab.train import evaluate

MOVE_GOAL_S, ACC_GOAL_S = 0.150, 2.0


def random_model(name: str, seed: int, width: float = 1.0) -> nn.Module:
    """A model with random weights and randomised BN statistics (distinct energies per seed)."""
    torch.manual_seed(seed)
    model = build_model(name, 10, width=width)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.05, 1.5)
            m.bias.data.normal_(0.0, 0.2)
            m.running_mean.normal_(0.0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _timed(fn) -> float:
    """Seconds one call of ``fn`` takes."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _masked_acc(model: nn.Module, plan, data, split) -> float:
    """Accuracy of the dense model with the plan's channels masked (what a masking tool evaluates)."""
    with apply_masks(model, plan):
        return evaluate(model, data, split=split, batch_size=250)["acc"]


def pct(values: list[float], q: float) -> float:
    """The q-th percentile."""
    return float(np.percentile(np.asarray(values), q))


def verdict(value: float, goal: float) -> str:
    """'ok' or 'OVER' against a goal."""
    return "ok" if value <= goal else "OVER"


def main() -> None:
    """Run the benchmark and print the numbers against the goals."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--regs", default="l2,gl,l1bn,oicsr_gl")
    ap.add_argument("--moves", type=int, default=30)
    ap.add_argument("--eval-images", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="the explorer's accuracy arithmetic")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from oicsr_lab.widgets import PruningExplorer

    regs = [r for r in args.regs.split(",") if r]
    data = load_dataset("cifar10-sample")
    models = {reg: random_model(args.model, seed, args.width) for seed, reg in enumerate(regs)}
    print(f"{args.model} (width {args.width}), regularisers {regs}, torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    ex = PruningExplorer(models, data, eval_images=args.eval_images, accuracy=False, async_mode="thread",
                         precision=args.precision)
    print(f"construction (groups, FLOPs report, energies per normalisation, max ratio): "
          f"{time.perf_counter() - t0:.2f} s; max reachable ratio {ex.max_ratio:.2f}; "
          f"{len(ex.lib.group_list)} prunable pairs")

    ratios = np.round(np.linspace(0.0, ex.max_ratio, args.moves), 4).tolist()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ratios)).tolist()  # jump around like a user dragging back and forth
    for label, seq in (("uncached", [ratios[i] for i in order]), ("cached", [ratios[i] for i in order[::-1]])):
        times = []
        for r in seq:
            t = time.perf_counter()
            ex.set_ratio(r)
            times.append(time.perf_counter() - t)
        med, p95 = statistics.median(times), pct(times, 95)
        print(f"slider move ({label}, {len(seq)} moves, {len(ex.selected)} runs, no accuracy): "
              f"median {med * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms "
              f"[goal {MOVE_GOAL_S * 1e3:.0f} ms: {verdict(p95, MOVE_GOAL_S)}]")
    for extreme in (0.0, ex.max_ratio):
        ex.set_ratio(extreme)
        print(f"  ratio {extreme:.2f}: achieved {[round(v['achieved_ratio'], 4) for v in ex.readout.values()]}")

    ex.set_ratio(0.3)
    reg = regs[-1]
    model, plan, split = models[reg], ex.plans.get(reg) or ex.lib.plan(reg, 0.3), ex.eval_split
    fp32, bf16 = (EvalBatches(split, data.mean, data.std, 250, precision=p) for p in ("fp32", "bf16"))
    paths = {
        "masked dense model (evaluate)": lambda: _masked_acc(model, plan, data, split),
        "physically pruned (evaluate)": lambda: evaluate(prune(model, plan), data, split=split, batch_size=250)["acc"],
        "inference_copy + EvalBatches": lambda: fp32.accuracy(inference_copy(model, plan)),
        "inference_copy + EvalBatches, bf16": lambda: bf16.accuracy(inference_copy(model, plan)),
    }
    best = {name: min(_timed(fn) for _ in range(2)) for name, fn in paths.items()}
    fast = best["inference_copy + EvalBatches"]
    print(f"one pruned run at 30 %, {len(split)} images, best of 2 (same process, side by side; "
          f"native bf16: {native_bf16()}):")
    for name, t in best.items():
        print(f"  {name:36s} {t:6.2f} s  ({t / fast:.2f}x the fp32 inference_copy path)")
    print(f"the explorer evaluates in {ex.eval_batches.precision} (precision='auto')")
    for shown in ([reg], regs):
        ex.acc_cache.clear()
        ex.set_regularizers(shown)
        items = [it for it in ex.accuracy_request() if it[2] is not None]  # pruned only (dense refs are cached once)
        first: list[float] = []
        t = time.perf_counter()
        ex.compute_accuracy(items, on_partial=lambda p: first.append(time.perf_counter() - t))  # the worker's function
        dt = time.perf_counter() - t
        est = f"first estimate ({ex.eval_batches.bounds[0][1]} images each) after {first[0]:.2f} s, " if first else ""
        print(f"accuracy readout at 30%, {len(ex.eval_split)} images, {len(shown)} run(s): {est}complete after "
              f"{dt:.2f} s ({dt / len(items):.2f} s per run) [goal {ACC_GOAL_S:.0f} s: {verdict(dt, ACC_GOAL_S)}]")
    for shown in ([reg], regs):  # end to end: slider released -> readout complete (dense references cached)
        ex.set_accuracy(False)
        ex.set_regularizers(shown)
        ex.set_ratio(0.0)
        ex.set_accuracy(True)
        ex.wait(600)
        ex.acc_cache = {k: v for k, v in ex.acc_cache.items() if k[1] == "dense"}
        first: list[float] = []
        compute = ex.compute_accuracy  # the worker's call: time its first estimate where it is produced

        def timed(items, is_stale=lambda: False, on_partial=None, _c=compute, _f=first):
            def stamp(p):
                _f.append(time.perf_counter())
                if on_partial is not None:
                    on_partial(p)
            return _c(items, is_stale, on_partial=stamp)

        ex.compute_accuracy = timed
        t = time.perf_counter()
        ex.set_ratio(0.2)
        blocked = ex.last_update_s
        ex.wait(600)  # also applies the results on this (the kernel) thread
        dt = time.perf_counter() - t
        del ex.compute_accuracy
        est = f"first estimates after {first[0] - t:.2f} s, " if first else ""
        print(f"slider released at 20 %, {len(shown)} run(s), debounce {ex._runner.debounce_s:.2f} s: {est}readout "
              f"complete after {dt:.2f} s [goal {ACC_GOAL_S:.0f} s: {verdict(dt, ACC_GOAL_S)}]; "
              f"kernel thread blocked {blocked * 1e3:.1f} ms")
    ex.close()

    from oicsr_lab.widgets import EnergyExplorer

    en = EnergyExplorer(models, ex.lib.example_input, groups=ex.lib.groups)
    en.set_overlay(True)
    times = []
    for level in np.linspace(0.0, 1.0, args.moves):
        t = time.perf_counter()
        en.set_threshold(float(level))
        times.append(time.perf_counter() - t)
    print(f"energy explorer threshold move (overlay {len(regs)} runs): median {statistics.median(times) * 1e3:.1f} ms, "
          f"p95 {pct(times, 95) * 1e3:.1f} ms "
          f"[goal {MOVE_GOAL_S * 1e3:.0f} ms: {verdict(pct(times, 95), MOVE_GOAL_S)}]")

if __name__ == "__main__":
    main()
