"""Does bf16 training change the results? Two reproduce reports, same seeds, fp32 vs bf16, paired.

    oicsr-lab reproduce --preset quick --precision fp32 --seeds 0,1,2 --out reports/quick-fp32 ...
    oicsr-lab reproduce --preset quick --precision bf16 --seeds 0,1,2 --out reports/quick-bf16 ...
    python benchmarks/precision_agreement.py reports/quick-fp32 reports/quick-bf16

For every regulariser: dense test accuracy and the energy concentration (share of out-in-channels
whose energy is below 5 % / 20 % of its layer's largest, Figure 3's effect) per precision, and the
paired per-seed difference bf16 - fp32 with its 95 % Student-t interval, next to the seed-to-seed
spread of fp32 itself (the noise a difference is judged against). Also accuracy before retraining
at each sweep ratio under out-in energy.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

from oicsr_lab.stats import mean_ci, paired_ci


def _load(report: Path) -> tuple[dict, dict, list[dict]]:
    summary = json.loads((report / "summary.json").read_text())
    energies = json.loads((report / "energies.json").read_text())
    with open(report / "sweep.csv") as f:
        sweep = list(csv.DictReader(f))
    return summary, energies, sweep


def _below(groups: dict[str, list[float]], t: float) -> float:
    normed = [torch.tensor(v, dtype=torch.float64) / max(max(v), 1e-30) for v in groups.values() if len(v)]
    return float((torch.cat(normed) < t).double().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fp32", type=Path)
    ap.add_argument("bf16", type=Path)
    args = ap.parse_args()
    (s32, e32, w32), (s16, e16, w16) = _load(args.fp32), _load(args.bf16)
    for s, want in ((s32, "fp32"), (s16, "bf16")):
        got = s["config"]["base_config"].get("precision", "fp32")
        print(f"{want} report: precision {got}, seeds {s['seeds']}")
    seeds = [str(x) for x in s32["seeds"] if str(x) in s16["runs"]]
    regs = [r for r in s32["config"]["regs"] if r in s16["config"]["regs"]]
    print(f"\npaired over seeds {seeds}; difference = bf16 - fp32, 95 % Student-t interval; "
          f"'fp32 spread' = the 95 % half-width of fp32 across seeds\n")
    print(f"{'reg':>9} {'metric':>16} {'fp32':>16} {'bf16':>16} {'bf16 - fp32':>22} {'fp32 spread':>11}")
    for reg in regs:
        metrics = {"test acc %": ([s32["runs"][s][reg]["test_acc"] for s in seeds],
                                  [s16["runs"][s][reg]["test_acc"] for s in seeds])}
        for t in (0.05, 0.2):
            metrics[f"energy < {t:g} (%)"] = ([100 * _below(e32["by_seed"][s][reg], t) for s in seeds],
                                               [100 * _below(e16["by_seed"][s][reg], t) for s in seeds])
        for ratio in sorted({float(r["ratio"]) for r in w32 if float(r["ratio"]) > 0}):
            def acc(rows, s):
                return next(float(r["acc_before_retrain"]) for r in rows if r["reg"] == reg and r["seed"] == s
                            and r["criterion"] == "out_in" and abs(float(r["ratio"]) - ratio) < 1e-9)
            metrics[f"p{100 * ratio:.0f} acc %"] = ([acc(w32, s) for s in seeds], [acc(w16, s) for s in seeds])
        for name, (a, b) in metrics.items():
            d = paired_ci(b, a)
            spread = mean_ci(a).half_width
            print(f"{reg:>9} {name:>16} {mean_ci(a).fmt():>16} {mean_ci(b).fmt():>16} {d.fmt(2):>22} {spread:>11.2f}")


if __name__ == "__main__":
    main()
