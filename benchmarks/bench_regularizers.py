"""Training-step throughput with each regulariser, interleaved in one run, as ratios vs l2.

    OMP_NUM_THREADS=1 python benchmarks/bench_regularizers.py --model resnet56 --steps 2 --threads 1

One step = forward + backward + regulariser hooks + SGD step (batch 128, 32x32 random
images). Configurations run round-robin (one step each per round) on identical model copies,
so machine-load drifts hit all of them alike; the fastest round is reported (on a shared
machine the minimum is the least disturbed estimate). Because
forward/backward dominate and vary between rounds, the regulariser's own cost is also timed
directly: the hooks alone (penalty + after_backward + after_step, and for grad="autograd" the
penalty's backward), repeated ``--hook-reps`` times, as a share of the l2 step.
Specs: ``name`` or ``name:key=value,key=value`` (e.g. ``oicsr_gl:mode=proximal``).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn as nn

from oicsr_lab.groups import find_groups
from oicsr_lab.models import build_model
from oicsr_lab.regularizers import make_regularizer

DEFAULT_SPECS = ["l2", "gl", "l1bn", "oicsr_gl", "growl", "oicsr_growl",
                 "oicsr_gl:mode=proximal", "oicsr_gl:grad=autograd", "oicsr_growl:mode=proximal"]


def parse_spec(spec: str) -> tuple[str, dict]:
    """``name:key=value,...`` -> (name, options) with numbers/bools parsed."""
    name, _, rest = spec.partition(":")
    opts = {}
    for kv in filter(None, rest.split(",")):
        k, v = kv.split("=", 1)
        for cast in (int, float):
            try:
                opts[k] = cast(v)
                break
            except ValueError:
                opts[k] = {"True": True, "False": False}.get(v, v)
    return name, opts


def hooks(reg, model: nn.Module, lr: float) -> None:
    """The three hooks as the trainer calls them (the penalty's backward included)."""
    pen = reg.penalty(model)
    if pen is not None:
        pen.backward()
    reg.after_backward(model)
    reg.after_step(model, lr)


def train_step(model: nn.Module, opt, reg, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
    """forward + backward + hooks + SGD step, as oicsr_lab.train.Trainer does."""
    loss = nn.functional.cross_entropy(model(x), y)
    pen = reg.penalty(model)
    if pen is not None:
        loss = loss + pen
    opt.zero_grad(set_to_none=True)
    loss.backward()
    reg.after_backward(model)
    opt.step()
    reg.after_step(model, lr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--steps", type=int, default=2, help="timed rounds (after one warm-up round)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--strength", type=float, default=1e-4)
    ap.add_argument("--hook-reps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--specs", nargs="+", default=DEFAULT_SPECS)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    base = build_model(a.model)
    groups = find_groups(base, torch.randn(1, 3, a.size, a.size))
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    base = base.to(dev, memory_format=fmt)
    x = torch.randn(a.batch, 3, a.size, a.size, device=dev).to(memory_format=fmt)
    y = torch.randint(0, 10, (a.batch,), device=dev)
    lr = 0.1
    runs = []
    for spec in a.specs:
        name, opts = parse_spec(spec)
        model = copy.deepcopy(base)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
        runs.append((spec, model, opt, make_regularizer(name, groups, a.strength, **opts), []))
    print(f"{a.model}: {len(groups.prunable)} prunable groups of {len(groups)}, batch {a.batch}, "
          f"{a.size}x{a.size}, {a.threads} thread(s), {a.device}, {a.steps} timed rounds", flush=True)
    for rnd in range(a.steps + 1):  # round 0 warms up (plans are built there)
        for spec, model, opt, reg, times in (runs if rnd % 2 else runs[::-1]):  # alternate order
            sync()
            t0 = time.perf_counter()
            train_step(model, opt, reg, x, y, lr)
            sync()
            if rnd:
                times.append(time.perf_counter() - t0)
    l2_step = min(runs[0][4]) if runs[0][0] == "l2" else None
    print(f"{'spec':34s} {'img/s':>8s} {'ratio':>6s} {'hooks ms':>9s} {'hook share':>10s}")
    for spec, model, opt, reg, times in runs:
        step = min(times)
        for p in model.parameters():  # hooks alone, on realistic grads
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        hook = float("inf")
        for _ in range(max(1, a.hook_reps // 5)):  # best block of 5 repetitions
            sync()
            t0 = time.perf_counter()
            for _ in range(5):
                hooks(reg, model, 1e-9)
            sync()
            hook = min(hook, (time.perf_counter() - t0) / 5)
        ratio = f"{(a.batch / step) / (a.batch / l2_step):6.3f}" if l2_step else "   n/a"
        share = f"{100 * hook / l2_step:9.2f}%" if l2_step else "       n/a"
        print(f"{spec:34s} {a.batch / step:8.1f} {ratio} {1e3 * hook:9.3f} {share}", flush=True)


if __name__ == "__main__":
    main()
