"""Calibrate the regulariser strengths of a reproduce preset: does the regulariser *act* in the budget?

    OMP_NUM_THREADS=1 python benchmarks/calibrate_strengths.py --preset quick --threads 1 \\
        --regs l2,oicsr_gl,gl --strengths 4e-2,1e-1,2e-1,4e-1 --options mode=proximal \\
        --options mode=proximal,include_bn=True --out reports/calibrate-quick.jsonl

For every (regulariser, lambda_s, options) the run is trained exactly as ``reproduce --preset P``
would train it (``spec.build_spec`` + ``spec.run_config`` -> ``oicsr_lab.train.build_trainer``:
same model, data, epochs, schedule; only ``strength``/``reg_options`` differ), then measured:

* ``acc``: dense test accuracy after training (the trainer's test split);
* ``<5%`` / ``<20%``: fraction of prunable out-in-channels whose out-in energy (eq. 5) divided
  by its layer's largest is below 0.05 / 0.2 (``channel_energy(..., "out_in", "layer_max")``),
  i.e. how much the regulariser concentrated each layer's energy into fewer channels;
* ``zero``: fraction of prunable channels whose out-filter ``W^l[i]`` is exactly zero (the
  proximal group step's exact zeros); ``g0`` / ``g<5%``: fraction of BN scales exactly zero /
  below 5% of the layer's largest ``|gamma|`` (what L1-BN acts on);
* ``p30`` / ``p50``: accuracy before retraining at 30% / 50% FLOPs removed: Algorithm 1 on
  out-in energy, ``layer_max`` normalisation, per-layer cap 0.9 (the sweep's settings), applied
  with masks, on the sweep's fixed test subset (``--test-images``, seed 0).

``l2`` ignores ``--strengths``/``--options`` (weight decay only) and runs once. ``l1bn`` takes
the same option specs (``mode=proximal`` is the soft-threshold of gamma); use ``--l1bn-strengths``
to give it its own list. One JSON line per run goes to ``--out`` (appended), and a run whose
(preset, reg, strength, options, seed) is already there is skipped, so an interrupted
calibration resumes. Use ``--threads 1`` next to another busy process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from oicsr_lab.data import load_dataset
from oicsr_lab.errors import PlanError
from oicsr_lab.experiments.spec import build_spec, run_config
from oicsr_lab.flops import count_flops
from oicsr_lab.groups import find_groups
from oicsr_lab.importance import channel_energy
from oicsr_lab.pruning import apply_masks, global_greedy_plan
from oicsr_lab.train import build_trainer, evaluate, set_threads

COLUMNS = ("reg", "strength", "options", "acc", "<5%", "<20%", "zero", "g0", "g<5%", "p30", "p50", "train_s")


def parse_options(text: str) -> dict:
    """``key=value,key=value`` -> dict with bools and numbers parsed (``""`` or ``-`` -> {})."""
    out: dict = {}
    if (text or "").strip() in ("", "-", "{}"):
        return out
    for kv in filter(None, text.split(",")):
        k, _, v = kv.partition("=")
        val: object = {"True": True, "true": True, "False": False, "false": False}.get(v, v)
        if isinstance(val, str):
            for cast in (int, float):
                try:
                    val = cast(v)
                    break
                except ValueError:
                    pass
        out[k.strip()] = val
    return out


def measure(model, groups, data, test, ratios=(0.3, 0.5), max_layer_ratio=0.9) -> dict:
    """Energy concentration, exact zeros and accuracy before retraining of a trained model."""
    model.eval()
    scores = channel_energy(model, groups, "out_in", normalize="layer_max")
    allv = torch.cat([v for v in scores.values()])
    prunable = [g for g in groups if g.prunable]
    out_rows = channel_energy(model, prunable, "out", normalize="none")
    zero = torch.cat([v for v in out_rows.values()]).eq(0).float().mean().item()
    res = {"<5%": allv.lt(0.05).float().mean().item(), "<20%": allv.lt(0.2).float().mean().item(), "zero": zero}
    bn = [g for g in prunable if g.bn_slices]
    if bn:
        gam = channel_energy(model, bn, "bn_gamma", normalize="none")
        gv = torch.cat(list(gam.values()))
        gn = torch.cat([v / v.max().clamp_min(1e-38) for v in gam.values()])
        res.update({"g0": gv.eq(0).float().mean().item(), "g<5%": gn.lt(0.05).float().mean().item()})
    report = count_flops(model, data.example_input())
    for r in ratios:
        try:
            plan = global_greedy_plan(model, groups, scores, r, max_layer_ratio=max_layer_ratio, report=report,
                                      criterion="out_in", normalize="layer_max")
        except PlanError:
            res[f"p{round(r * 100)}"] = None
            continue
        with apply_masks(model, plan):
            res[f"p{round(r * 100)}"] = evaluate(model, data, test)["acc"]
    return res


def fmt(row: dict) -> str:
    """One table line."""
    cells = []
    for c in COLUMNS:
        v = row.get(c)
        if c == "options":
            v = ",".join(f"{k}={x}" for k, x in (v or {}).items()) or "-"
        elif c in ("<5%", "<20%", "zero", "g0", "g<5%"):
            v = "-" if v is None else f"{100 * v:.0f}%"
        elif c in ("acc", "p30", "p50"):
            v = "-" if v is None else f"{v:.1f}"
        elif c == "strength":
            v = f"{v:g}"
        elif c == "train_s":
            v = f"{v:.0f}"
        cells.append(str(v))
    return " | ".join(cells)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--regs", default="l2,oicsr_gl,gl", help="comma-separated regularisers")
    ap.add_argument("--strengths", default="4e-2,1e-1,2e-1,4e-1", help="lambda_s list for the group regularisers")
    ap.add_argument("--l1bn-strengths", default="5e-3,1e-2,2e-2", help="lambda_s list for l1bn")
    ap.add_argument("--options", action="append", default=None,
                    help="option spec key=value,... (repeatable; default mode=proximal); l1bn: "
                    "mode=subgradient|proximal")
    ap.add_argument("--l1bn-options", action="append", default=None,
                    help="option specs for l1bn (default: {} and mode=proximal)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's)")
    ap.add_argument("--test-images", type=int, default=None, help="sweep test subset (default: the preset's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON-lines file (appended; finished runs are skipped)")
    args = ap.parse_args(argv)
    set_threads(args.threads)

    base = build_spec(args.preset, regs=["l2"], epochs=args.epochs)
    data = load_dataset(base["base_config"]["dataset"])
    test = data.test.subset(args.test_images or base["sweep"]["test_images"], seed=0)
    opt_specs = [parse_options(o) for o in (args.options or ["mode=proximal"])]
    l1_specs = [parse_options(o) for o in (args.l1bn_options or ["", "mode=proximal"])]
    jobs = []
    for reg in [r.strip() for r in args.regs.split(",") if r.strip()]:
        if reg == "l2":
            jobs.append((reg, 0.0, {}))
            continue
        strengths = args.l1bn_strengths if reg == "l1bn" else args.strengths
        for opts in (l1_specs if reg == "l1bn" else opt_specs):
            for s in (float(x) for x in strengths.split(",") if x.strip()):
                jobs.append((reg, s, opts))

    out = Path(args.out) if args.out else None
    done: dict[str, dict] = {}
    if out is not None and out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done[json.dumps([r["preset"], r["reg"], r["strength"], r["options"], r["seed"], r.get("epochs")],
                            sort_keys=True)] = r
    print(f"# preset {args.preset}: {base['base_config']['model']} x{base['base_config']['width']}, "
          f"{base['base_config']['epochs']} epochs, {len(test)} sweep test images, {torch.get_num_threads()} thread(s)")
    print("# " + " | ".join(COLUMNS), flush=True)
    for reg, s, opts in jobs:
        key = json.dumps([args.preset, reg, s, opts, args.seed, args.epochs], sort_keys=True)
        if key in done:
            print(fmt(done[key]) + "  (cached)", flush=True)
            continue
        spec = build_spec(args.preset, regs=[reg], strengths={reg: s}, epochs=args.epochs)
        cfg = run_config(spec, reg, args.seed).replace(reg_options=dict(opts)).validate()
        t0 = time.perf_counter()
        trainer = build_trainer(cfg, data=data, device="cpu", show_progress=False)
        hist = trainer.fit()
        wall = time.perf_counter() - t0
        model = trainer.model.eval()
        groups = find_groups(model, data.example_input())
        row = {"preset": args.preset, "reg": reg, "strength": s, "options": opts, "seed": args.seed,
               "epochs": args.epochs,
               "acc": hist[-1]["test_acc"], "train_s": wall, **measure(model, groups, data, test)}
        print(fmt(row), flush=True)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
