"""Wall time of a whole ``oicsr-lab reproduce`` with ``--jobs 2`` vs ``--jobs 1`` and bf16 vs fp32, in one run.

    python benchmarks/bench_reproduce.py --preset quick --seeds 0,1 --reps 1

Each variant is a fresh ``reproduce`` (its own empty report folder, so nothing is cached) in a
subprocess with the same total thread budget (``--threads``, default: all cores): ``--jobs 1`` is
one process with all threads, ``--jobs 2`` two worker processes with one share each. The variants
run one after the other in the order given, repeated ``--reps`` times (alternating, so a load
drift hits every variant alike), and the script prints each wall time, the busy cores of other
processes sampled just before each one (``/proc/stat``), and the ratios against the first variant.
Absolute times only hold for this machine at this moment; the ratios are the measurement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from oicsr_lab.train.threads import busy_cores

VARIANTS = {"j1-bf16": (1, "bf16"), "j2-bf16": (2, "bf16"), "j1-fp32": (1, "fp32"), "j2-fp32": (2, "fp32")}


def run_variant(name: str, args: argparse.Namespace, root: Path, rep: int) -> tuple[float, float | None]:
    """One fresh reproduce; returns (wall seconds, busy cores of other work sampled just before)."""
    jobs, precision = VARIANTS[name]
    out = root / f"{name}-{rep}"
    cmd = [sys.executable, "-m", "oicsr_lab", "reproduce", "--preset", args.preset, "--seeds", args.seeds,
           "--jobs", str(jobs), "--threads", str(args.threads), "--precision", precision, "--no-progress",
           "--device", "cpu", "--out", str(out), *args.extra]
    busy = busy_cores(1.0)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OICSR_LAB_PROGRESS": "0"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{name}: reproduce failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, busy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds (even counts balance two workers)")
    ap.add_argument("--variants", default="j2-bf16,j1-bf16,j2-fp32",
                    help=f"comma-separated, first is the reference; of {', '.join(VARIANTS)}")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="total threads of every variant")
    ap.add_argument("--keep", type=Path, default=None, help="keep the report folders here (default: a temp dir)")
    ap.add_argument("extra", nargs="*", help="further reproduce options after --, e.g. -- --no-table1")
    args = ap.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    walls: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="bench-reproduce-") as tmp:
        root = args.keep or Path(tmp)
        for rep in range(args.reps):
            for name in names:
                wall, busy = run_variant(name, args, root, rep)
                walls[name].append(wall)
                other = "unknown" if busy is None else f"{busy:.2f}"
                print(f"rep {rep} {name:8s} {wall:8.1f} s   other work before: {other} busy cores", flush=True)
    ref = names[0]
    print(f"\nreproduce --preset {args.preset} --seeds {args.seeds} {' '.join(args.extra)} "
          f"(--threads {args.threads}; {os.cpu_count()} cores)")
    print(f"{'variant':8s} {'median s':>9s} {'x vs ' + ref:>12s}  (>1: the reference is faster by that factor)")
    for name in names:
        med = statistics.median(walls[name])
        ratios = [w / r for w, r in zip(walls[name], walls[ref])]
        print(f"{name:8s} {med:9.1f} {statistics.median(ratios):12.2f}")


if __name__ == "__main__":
    main()
