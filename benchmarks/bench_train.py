"""Training throughput of the project's Trainer vs. a minimal hand-written PyTorch loop, side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_train.py --model resnet20 --batches 8 --threads 1 --reps 5

A: ``Trainer.train_one_epoch`` over exactly ``--batches`` batches of the embedded CIFAR-10 sample
(in-memory uint8 tensors, batched pad-4 crop + flip, normalisation, LR schedule, metrics).
B: the same model (same init), same SGD settings, threads and memory format, looping over
batches prepared beforehand (already augmented and normalised): forward, loss, backward, step.
Repetitions alternate A B A B ..., so load drifts on a shared machine hit both alike; the
ratio is the median of the per-pair ratios A/B (goal >= 0.95), the data-time share is the
Trainer's own measurement of time spent waiting for batches (goal < 5%). Each repetition is
timed by the wall clock and by this process's CPU time; on a busy machine the CPU-time ratio
is the steadier one (other processes' preemption does not count against either side).
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
from oicsr_lab.train import Trainer, TrainConfig


def plain_batches(trainer: Trainer) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of one epoch, materialised up front (B's input: no data work while timed)."""
    cfg, data = trainer.config, trainer.data
    loader = TensorLoader(trainer.train_split, cfg.batch_size, data.mean, data.std, shuffle=True, augment=True,
                          drop_last=True, seed=cfg.seed + 1, channels_last=cfg.channels_last)
    return list(loader)


def plain_epoch(model: nn.Module, opt: torch.optim.Optimizer, batches) -> None:
    """B: the textbook loop."""
    model.train()
    for x, y in batches:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    """Parse flags, run the interleaved repetitions, print the table and the summary."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20")
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
    cfg = TrainConfig(model=args.model, width=args.width, batch_size=args.batch_size, epochs=args.reps + 1,
                      train_subset=n, channels_last=not args.no_channels_last, schedule="cosine")
    torch.manual_seed(0)
    model = build_model(args.model, num_classes=data.num_classes, width=args.width)
    model_b = copy.deepcopy(model)
    trainer = Trainer(model, data, cfg, device="cpu", show_progress=False)
    assert len(trainer.loader) == args.batches
    if cfg.channels_last:
        model_b = model_b.to(memory_format=torch.channels_last)
    opt_b = torch.optim.SGD(model_b.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                            weight_decay=cfg.weight_decay)
    batches = plain_batches(trainer)

    print(f"model {args.model} (width {args.width}), batch {args.batch_size}, {args.batches} batches/rep, "
          f"{args.reps} reps, threads {torch.get_num_threads()}, channels_last {cfg.channels_last}, torch {torch.__version__}")
    trainer.train_one_epoch()  # warm-up: allocator, kernels, first-touch
    plain_epoch(model_b, opt_b, batches)
    print(f"{'':>3}  {'---------- wall clock ----------':>32}  {'----------- CPU time -----------':>32}")
    print(f"{'rep':>3}  {'Trainer img/s':>13} {'plain img/s':>11} {'ratio':>6}  "
          f"{'Trainer img/s':>13} {'plain img/s':>11} {'ratio':>6}  {'data share':>10}")
    rows = []
    for rep in range(args.reps):
        w0, c0 = time.perf_counter(), time.process_time()
        record = trainer.train_one_epoch()
        w1, c1 = time.perf_counter(), time.process_time()
        plain_epoch(model_b, opt_b, batches)
        w2, c2 = time.perf_counter(), time.process_time()
        row = (n / (w1 - w0), n / (w2 - w1), n / (c1 - c0), n / (c2 - c1), record["data_time_share"])
        rows.append(row)
        print(f"{rep + 1:>3}  {row[0]:>13.1f} {row[1]:>11.1f} {row[0] / row[1]:>6.3f}  "
              f"{row[2]:>13.1f} {row[3]:>11.1f} {row[2] / row[3]:>6.3f}  {100 * row[4]:>9.2f}%")
    med = lambda xs: statistics.median(xs)  # noqa: E731
    wall, cpu = med(r[0] / r[1] for r in rows), med(r[2] / r[3] for r in rows)
    share = med(r[4] for r in rows)
    print(f"median wall: Trainer {med(r[0] for r in rows):.1f} img/s, plain {med(r[1] for r in rows):.1f} img/s; "
          f"median CPU: Trainer {med(r[2] for r in rows):.1f} img/s, plain {med(r[3] for r in rows):.1f} img/s")
    verdict = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    print(f"ratio Trainer/plain: wall {wall:.3f}, CPU {cpu:.3f} (goal >= 0.95, judged on CPU time: {verdict(cpu >= 0.95)}); "
          f"data-time share {100 * share:.2f}% (goal < 5%: {verdict(share < 0.05)})")


if __name__ == "__main__":
    main()
