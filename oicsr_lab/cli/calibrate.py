"""``oicsr-lab calibrate``: each regulariser's strength chosen on the validation split by one rule."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..experiments.spec import REPRODUCE, parse_list
from ..regularizers import names
from .common import add_common

NAME = "calibrate"


def add_args(p: argparse.ArgumentParser) -> None:
    """Options of ``calibrate``."""
    p.add_argument("--preset", default="quick", choices=sorted(REPRODUCE), help="budget and data of the runs")
    p.add_argument("--out", help="folder for the runs and calibration.{json,md} (default: reports/calibrate-<preset>)")
    p.add_argument("--regs", help="comma-separated regularisers (default: all six; l2 is always included)")
    p.add_argument("--seeds", help="comma-separated calibration seeds (default: 100,101, disjoint from reproduce's)")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the preset's reproduce budget); "
                                              "shorter budgets are transferred by lambda x sum(lr)")
    p.add_argument("--grid", action="append", default=[], metavar="REG=V1,V2,...",
                   help="this regulariser's lambda grid (default: the preset's log grid, sqrt(2) steps)")
    p.add_argument("--tolerance", type=float, help="validation-accuracy points below L2 still accepted")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: --threads, one thread each)")
    add_common(p)


def _grids(items: list[str]) -> dict[str, list[float]]:
    """``["gl=0.1,0.2"]`` -> ``{"gl": [0.1, 0.2]}``."""
    out = {}
    for kv in items:
        reg, sep, vals = kv.partition("=")
        values = parse_list(vals, float) if sep else None
        if not values or reg.strip() not in names():
            raise ConfigError(f"--grid {kv!r} must be REG=V1,V2,... with REG in {', '.join(names())}")
        out[reg.strip()] = values
    return out


def run(args: argparse.Namespace) -> int:
    """Choose each regulariser's strength on the validation split by one rule (writes calibration.md)."""
    from ..experiments.calibrate import calibrate, verdict

    rec = calibrate(args.preset, args.out, regs=parse_list(args.regs), seeds=parse_list(args.seeds, int),
                    epochs=args.epochs, grids=_grids(args.grid), tolerance=args.tolerance, jobs=args.jobs,
                    threads=args.threads, data_dir=args.data_dir, device=args.device,
                    show_progress=False if args.no_progress else None)
    for reg, c in rec["choice"].items():
        print(f"{reg}: lambda {c['strength']:g} (val acc {c['val_acc']['mean']:.1f}"
              f"; at the preset's budget {c['transferred']:.3g}){'' if verdict(c) == 'yes' else ' -- ' + verdict(c)}")
    return 0
