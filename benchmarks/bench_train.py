"""Training throughput of the project's Trainer vs. a minimal hand-written PyTorch loop, in fp32 and bf16, side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_train.py --models resnet20,resnet56 --batches 8 --threads 1 --reps 5

A: ``Trainer.train_one_epoch`` over exactly ``--batches`` batches of the embedded CIFAR-10 sample
(in-memory uint8 tensors, batched pad-4 crop + flip, normalisation, LR schedule, metrics).
B: the same model (same init), same SGD settings, threads and memory format, looping over
batches prepared beforehand (already augmented and normalised): forward, loss, backward, step.
Repetitions alternate A B A B ..., so load drifts on a shared machine hit both alike; the
ratio is the median of the per-pair ratios A/B (goal >= 0.95), the data-time share is the
Trainer's own measurement of time spent waiting for batches (goal < 5%). Each repetition is
timed by the wall clock and by this process's CPU time; on a busy machine the CPU-time ratio
is the steadier one (other processes' preemption does not count against either side).

Precision column: each repetition runs A and B in fp32 and in bf16 autocast (``precision="bf16"``,
the forward pass only; weights and optimizer fp32), so the bf16/fp32 throughput ratio of the
Trainer (goal >= 1.5x on a CPU with native bf16) and the Trainer/plain ratio in both precisions
(goal >= 0.95) come from the same interleaved run.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn as nn

from oicsr_lab.data import TensorLoader, load_dataset
from oicsr_lab.models import build_model
from oicsr_lab.precision import autocast, native_bf16
from oicsr_lab.train import TrainConfig, Trainer


def plain_batches(trainer: Trainer) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of one epoch, materialised up front (B's input: no data work while timed)."""
    cfg, data = trainer.config, trainer.data
    loader = TensorLoader(trainer.train_split, cfg.batch_size, data.mean, data.std, shuffle=True, augment=True,
                          drop_last=True, seed=cfg.seed + 1, channels_last=cfg.channels_last)
    return list(loader)


def plain_epoch(model: nn.Module, opt: torch.optim.Optimizer, batches, precision: str) -> None:
    """B: the textbook loop (autocast around the forward pass in bf16, as the Trainer does)."""
    model.train()
    for x, y in batches:
        with autocast(precision, "cpu"):
            out = model(x)
        loss = nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def pair(model_name: str, width: float, data, n: int, args, precision: str):
    """(Trainer, plain model, plain optimizer, plain batches) from one init, in ``precision``."""
    cfg = TrainConfig(model=model_name, width=width, batch_size=args.batch_size, epochs=args.reps + 1,
                      train_subset=n, channels_last=not args.no_channels_last, schedule="cosine", precision=precision)
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=data.num_classes, width=width)
    model_b = copy.deepcopy(model)
    trainer = Trainer(model, data, cfg, device="cpu", show_progress=False)
    assert len(trainer.loader) == args.batches and trainer.precision == precision
    if cfg.channels_last:
        model_b = model_b.to(memory_format=torch.channels_last)
    opt_b = torch.optim.SGD(model_b.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                            weight_decay=cfg.weight_decay)
    return trainer, model_b, opt_b, plain_batches(trainer)


def bench_model(model_name: str, data, args) -> dict[str, float]:
    """Interleaved repetitions of A/B in fp32 and bf16 for one model; prints its table, returns the medians."""
    n = args.batches * args.batch_size
    setups = {p: pair(model_name, args.width, data, n, args, p) for p in ("fp32", "bf16")}
    for p, (trainer, mb, ob, batches) in setups.items():  # warm-up: allocator, kernels, first-touch
        trainer.train_one_epoch()
        plain_epoch(mb, ob, batches, p)
    print(f"\n{model_name} (width {args.width}): batch {args.batch_size}, {args.batches} batches/rep, {args.reps} reps")
    print(f"{'rep':>3} {'prec':>5}  {'Trainer img/s':>13} {'plain img/s':>11} {'ratio':>6}  "
          f"{'Trainer CPU img/s':>17} {'plain CPU img/s':>15} {'ratio':>6}  {'data share':>10}")
    rows: dict[str, list] = {"fp32": [], "bf16": []}
    for rep in range(args.reps):
        for p, (trainer, mb, ob, batches) in setups.items():
            w0, c0 = time.perf_counter(), time.process_time()
            record = trainer.train_one_epoch()
            w1, c1 = time.perf_counter(), time.process_time()
            plain_epoch(mb, ob, batches, p)
            w2, c2 = time.perf_counter(), time.process_time()
            row = (n / (w1 - w0), n / (w2 - w1), n / (c1 - c0), n / (c2 - c1), record["data_time_share"])
            rows[p].append(row)
            print(f"{rep + 1:>3} {p:>5}  {row[0]:>13.1f} {row[1]:>11.1f} {row[0] / row[1]:>6.3f}  "
                  f"{row[2]:>17.1f} {row[3]:>15.1f} {row[2] / row[3]:>6.3f}  {100 * row[4]:>9.2f}%")
    med = statistics.median
    out = {}
    for p in rows:
        out[f"{p}_trainer_cpu"] = med(r[2] for r in rows[p])
        out[f"{p}_ratio_cpu"] = med(r[2] / r[3] for r in rows[p])
        out[f"{p}_ratio_wall"] = med(r[0] / r[1] for r in rows[p])
        out[f"{p}_share"] = med(r[4] for r in rows[p])
    # bf16/fp32 per repetition pair (same rep, back to back), Trainer side, CPU time and wall clock
    out["bf16_speedup_cpu"] = med(b[2] / f[2] for f, b in zip(rows["fp32"], rows["bf16"]))
    out["bf16_speedup_wall"] = med(b[0] / f[0] for f, b in zip(rows["fp32"], rows["bf16"]))
    return out


def main() -> None:
    """Parse flags, run the interleaved repetitions per model, print the tables and the summary."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet20,resnet56", help="comma-separated model names")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--batches", type=int, default=8, help="batches per repetition (one Trainer epoch)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions of each (after one warm-up each)")
    ap.add_argument("--no-channels-last", action="store_true", help="NCHW instead of channels_last for both")
    ap.add_argument("--data-dir", default=None, help="data root for the sample's tensor cache")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("cifar10-sample", root=args.data_dir)
    n = args.batches * args.batch_size
    if n > len(data.train):
        ap.error(f"--batches x --batch-size = {n} exceeds the sample's {len(data.train)} training images")
    print(f"threads {torch.get_num_threads()}, channels_last {not args.no_channels_last}, torch {torch.__version__}, "
          f"native bf16 on this CPU: {native_bf16()}")
    results = {m: bench_model(m, data, args) for m in args.models.split(",") if m}
    verdict = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    print("\nsummary (medians; ratios judged on CPU time, the steadier on a shared machine)")
    print(f"{'model':>10} {'fp32 img/s':>10} {'bf16 img/s':>10} {'bf16/fp32':>9} {'(wall)':>7} "
          f"{'T/plain fp32':>12} {'T/plain bf16':>12} {'data share':>10}")
    for m, r in results.items():
        print(f"{m:>10} {r['fp32_trainer_cpu']:>10.1f} {r['bf16_trainer_cpu']:>10.1f} {r['bf16_speedup_cpu']:>8.2f}x "
              f"{r['bf16_speedup_wall']:>6.2f}x {r['fp32_ratio_cpu']:>12.3f} {r['bf16_ratio_cpu']:>12.3f} "
              f"{100 * max(r['fp32_share'], r['bf16_share']):>9.2f}%")
        print(f"{'':>10} bf16/fp32 >= 1.5x: {verdict(r['bf16_speedup_cpu'] >= 1.5)}; Trainer/plain >= 0.95 in both: "
              f"{verdict(min(r['fp32_ratio_cpu'], r['bf16_ratio_cpu']) >= 0.95)}; data share < 5%: "
              f"{verdict(max(r['fp32_share'], r['bf16_share']) < 0.05)}")


if __name__ == "__main__":
    main()
