"""CPU latency of dense vs physically pruned networks in eager PyTorch, TorchScript and onnxruntime.

    python benchmarks/bench_pruned_speed.py --quick --threads 1 --clock cpu --channels-last
    python benchmarks/bench_pruned_speed.py --models resnet56 torchvision:resnet50 --batches 1 64 --channels-last
    python benchmarks/bench_pruned_speed.py --models torchvision:regnet_x_400mf --deploy eager onnxruntime

For every model, FLOPs reduction (Algorithm 1 on out-in energy, default 30/50/70%) and
rounding variant (no rounding, ``round_to=8``) the pruned copy is built once; then the dense and
all pruned copies, in every deployment form of ``--deploy`` (default: ``eager``, ``jit`` =
TorchScript trace + freeze + optimize_for_inference, ``onnxruntime`` = ``export_onnx`` then an
onnxruntime CPU session with the same thread count), are timed round-robin (interleaved, so
machine-load drift hits all of them equally) after warm-up; the median per forward is reported.
So the columns are measured side by side in one run: per form the dense and pruned latency,
the speed-up and its efficiency = latency speed-up / FLOPs speed-up (goal: >= 0.8 at batch 64),
and ``ort/eager`` = pruned onnxruntime latency / pruned eager latency. ``--quick`` shrinks the
ResNet-50 batch-64 case to batch 8 and uses few repetitions. ``--clock cpu`` times process CPU
instead of wall time (use with ``--threads 1`` on a shared machine; onnxruntime runs its
intra-op pool in this process, so its CPU time is counted too). ``fuse`` (BN folded by
torch.fx) is another form. The per-layer cap defaults to 0.9 here so that 70% is reachable
with block-internal channels only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from typing import Callable

import torch
import torch.nn as nn

from oicsr_lab.errors import PlanError
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


def _deploy(model: nn.Module, x: torch.Tensor, channels_last: bool, mode: str, tmp: str) -> Callable:
    """The callable timed for one form, for dense and pruned alike.

    ``eager``: as is; ``fuse``: eval BatchNorm folded into convs (torch.fx); ``jit``: TorchScript
    trace + freeze + optimize_for_inference (BN folding, conv+relu fusion, prepacked weights);
    ``onnxruntime``: exported with ``export_onnx`` (checked against PyTorch), run by an
    onnxruntime CPU session (NCHW float32 numpy input).
    """
    if mode == "onnxruntime":
        from oicsr_lab.export import export_onnx, onnx_session

        path = f"{tmp}/{id(model)}.onnx"
        export_onnx(model, x[:1].contiguous(), path, exporter=_ONNX_EXPORTER[0])
        sess = onnx_session(path)
        name = sess.get_inputs()[0].name
        feed = {name: x.contiguous().numpy()}
        return lambda _x: sess.run(None, feed)
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


_ONNX_EXPORTER = ["auto"]


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
            try:
                plan = global_greedy_plan(dense, groups, scores, ratio, max_layer_ratio=cap, round_to=r, report=report)
            except PlanError as e:  # e.g. a high ratio with round_to on coarse groups: say so, time the rest
                print(f"# {name} ratio {ratio:.0%} round_to {r}: skipped ({e})")
                continue
            small = prune(dense, plan).eval()
            dt = time.perf_counter() - t
            out.append((ratio, r, plan.flops_before / plan.flops_after, small, dt, plan.achieved_ratio))
    return dense, out


def bench(args: argparse.Namespace) -> list[dict]:
    """Run every (model, batch) case; returns one row per pruned variant, with every form's timings."""
    rows = []
    forms = list(dict.fromkeys(args.deploy))
    for name in args.models:
        dense, variants = _variants(name, args.ratios, args.round_to, args.max_layer_ratio)
        size = default_input_size(name)
        batches = [8 if (args.quick and b > 8 and name.startswith("torchvision:")) else b for b in args.batches]
        for batch in dict.fromkeys(batches):
            x = torch.randn(batch, 3, size, size)
            xin = x.contiguous(memory_format=torch.channels_last) if args.channels_last else x
            nets = [dense] + [v[3] for v in variants]
            with tempfile.TemporaryDirectory() as tmp:
                runs = {f: [_deploy(m, xin if f != "onnxruntime" else x, args.channels_last, f, tmp) for m in nets]
                        for f in forms}
                iters = max(1, args.iters // batch) if batch > 1 else args.iters
                times = {f: [[] for _ in nets] for f in forms}
                with torch.inference_mode():
                    for f in forms:
                        for m in runs[f]:
                            for _ in range(args.warmup):
                                m(xin)
                    for _ in range(args.reps):  # interleaved: every form, dense, p1, p2, ... each round
                        for f in forms:
                            for i, m in enumerate(runs[f]):
                                times[f][i].append(_time(m, xin, iters, args.clock))
            med = {f: [statistics.median(t) for t in times[f]] for f in forms}
            for j, (ratio, r, fsp, _m, plan_s, achieved) in enumerate(variants, start=1):
                row = dict(model=name, batch=batch, ratio=ratio, round_to=r, achieved=achieved, flops_speedup=fsp,
                           plan_prune_s=plan_s)
                for f in forms:
                    d, p = med[f][0], med[f][j]
                    row.update({f"{f}_dense_ms": d * 1e3, f"{f}_pruned_ms": p * 1e3, f"{f}_speedup": d / p,
                                f"{f}_efficiency": (d / p) / fsp})
                if "onnxruntime" in forms and "eager" in forms:
                    row["ort_vs_eager"] = med["onnxruntime"][j] / med["eager"][j]
                rows.append(row)
                _print_row(row, forms)
    return rows


def _header(forms: list[str]) -> str:
    """The table header for the chosen forms."""
    cols = "".join(f" | {f + ' dense':>17s} {'pruned':>7s} {'speedup':>7s} {'eff.':>5s}" for f in forms)
    tail = f" {'ort/eager':>9s}" if "onnxruntime" in forms and "eager" in forms else ""
    return f"{'model':26s} {'batch':>5s} {'ratio':>5s} {'round':>5s} {'achieved':>8s} {'FLOPsx':>7s}{cols}{tail}"


def _print_row(r: dict, forms: list[str]) -> None:
    """One table line: the variant, then dense/pruned ms, speed-up and efficiency per form."""
    rt = str(r["round_to"] or "-")
    line = (f"{r['model']:26s} {r['batch']:5d} {r['ratio']:5.0%} {rt:>5s} {r['achieved']:8.1%} "
            f"{r['flops_speedup']:6.2f}x")
    for f in forms:
        line += (f" | {r[f + '_dense_ms']:17.2f} {r[f + '_pruned_ms']:7.2f} {r[f + '_speedup']:6.2f}x "
                 f"{r[f + '_efficiency']:5.2f}")
    if "ort_vs_eager" in r:
        line += f" {r['ort_vs_eager']:9.2f}"
    print(line, flush=True)


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
    p.add_argument("--deploy", nargs="+", choices=["eager", "fuse", "jit", "onnxruntime"],
                   default=["eager", "jit", "onnxruntime"],
                   help="inference forms timed side by side for dense and pruned alike: eager, BN folded (fuse), "
                        "TorchScript-optimised (jit), onnxruntime (export_onnx + a CPU session)")
    p.add_argument("--onnx-exporter", choices=["auto", "dynamo", "torchscript"], default="auto",
                   help="exporter for the onnxruntime form (see oicsr_lab.export)")
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
    _ONNX_EXPORTER[0] = args.onnx_exporter
    ort = ""
    if "onnxruntime" in args.deploy:
        import onnxruntime

        ort = f", onnxruntime {onnxruntime.__version__}"
    print(f"torch {torch.__version__}{ort}, {torch.get_num_threads()} threads, channels_last={args.channels_last}, "
          f"deploy={' '.join(args.deploy)}, clock={args.clock}, quick={args.quick}; times in ms per forward")
    print(_header(list(dict.fromkeys(args.deploy))))
    bench(args)


if __name__ == "__main__":
    main()
