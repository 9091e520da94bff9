"""``oicsr-lab calibrate``: choose every regulariser's strength by one rule, on the validation split.

The paper publishes no ``lambda_s``. A fair comparison gives every regulariser the same chance:
the same training budget (the preset's reproduce run, or ``--epochs``), the same log grid
density, the same seeds, and one rule:

    **the strongest lambda on the grid whose dense validation accuracy (mean over the
    calibration seeds) stays within ``tolerance`` points of L2's.**

Everything is measured on the validation split the preset holds out of the training data
(``val_images``); the test split is never read -- the calibration runs train with
``evaluate_test=False`` and see a data set whose test split raises on any access.
Calibration seeds (default 100, 101) are disjoint from the seeds reported by ``reproduce``
(0, 1, ...), so the reported numbers carry no selection bias from the choice.

For each run the table also gives what the regulariser did: the fraction of out-in-channels
whose energy (eq. 5) is below 5 % / 20 % of its layer's largest, exact-zero out-filters, BN
scales below 5 % of their layer's largest, and validation accuracy before retraining at 30 %
and 50 % FLOPs removed (Algorithm 1, out-in energy, layer_max, cap 0.9).

When calibrating at a shorter budget than the target (``--epochs`` below the preset's), the
chosen value is also *transferred*: with a proximal step (or L1-BN's sign subgradient) the
total shrinkage of a group is ``lambda * sum_t lr_t``, so the target strength keeps that
product: ``lambda_target = lambda * sum(lr)_calibrated / sum(lr)_target`` (:func:`sum_lr`).
The same rule is applied to every regulariser.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ConfigError
from ..io import atomic_write_json, atomic_write_text
from ..regularizers import names
from ..regularizers.registry import get_regularizer
from ..stats import mean_ci
from ..train import TrainConfig, lr_lambda
from .runs import cached, config_hash, data_identity
from .spec import STRENGTHS, build_spec, run_config

CAL_SEEDS = (100, 101)
TOLERANCE = {"ci": 5.0, "quick": 2.0, "course": 1.0, "paper": 1.0}  # points of validation accuracy
GRID_SPAN = {  # (low, high) of the log grid, per preset: GL-family strength, L1-BN strength
    "ci": ((0.2, 0.8), (1e-2, 1e-1)),
    "quick": ((0.0884, 0.354), (7.07e-3, 2.83e-2)),
    "course": ((7.07e-3, 2.83e-2), (5e-4, 2e-3)),  # sized for `--epochs 6` (sum lr ~116), then transferred
    "paper": ((2.5e-5, 4e-4), (2.5e-6, 4e-5)),
}
STEPS_PER_OCTAVE = 2  # grid points per doubling of lambda (ratio sqrt(2))


def log_grid(lo: float, hi: float, per_octave: int = STEPS_PER_OCTAVE) -> list[float]:
    """Geometric grid from ``lo`` to at least ``hi`` with ``per_octave`` points per doubling (3 significant digits)."""
    if not (0 < lo < hi):
        raise ConfigError(f"a strength grid needs 0 < low < high, got {lo} and {hi}")
    n = math.ceil(per_octave * math.log2(hi / lo) - 0.01)  # 0.01: the 3-digit rounding of hi
    return [float(f"{lo * 2 ** (i / per_octave):.3g}") for i in range(n + 1)]


def default_grid(preset: str, reg: str) -> list[float]:
    """The preset's grid for ``reg``. GrOWL-family: GL's grid extended one octave down (their strength was first
    guessed at half of GL's; at quick the calibration found their threshold where GL's is, docs/results.md 5)."""
    (glo, ghi), (llo, lhi) = GRID_SPAN[preset]
    if reg == "l2":
        return [0.0]
    if reg == "l1bn":
        return log_grid(llo, lhi)
    grid = log_grid(glo, ghi)
    if get_regularizer(reg).ordered:
        return log_grid(float(f"{glo / 2:.3g}"), ghi)
    return grid


def sum_lr(config: TrainConfig, train_images: int) -> float:
    """``sum_t lr_t`` over the whole run of ``config`` with ``train_images`` training images (drop_last batches)."""
    steps_per_epoch = max(1, train_images // config.batch_size)
    total = steps_per_epoch * config.epochs
    f = lr_lambda(config.schedule, total, int(config.warmup_epochs * steps_per_epoch))
    return config.lr * sum(f(t) for t in range(total))


class _NoTest:
    """Stands in for the test split during calibration: any use of it is a bug."""

    def __getattr__(self, name: str):
        raise AssertionError("calibration must not read the test split")

    def __len__(self) -> int:
        raise AssertionError("calibration must not read the test split")


def measure(model: torch.nn.Module, data, val) -> dict[str, Any]:
    """Energy concentration, exact zeros and validation accuracy before retraining of a trained model."""
    from ..errors import PlanError
    from ..flops import count_flops
    from ..groups import find_groups
    from ..importance import channel_energy
    from ..pruning import apply_masks, global_greedy_plan
    from ..train import evaluate

    model.eval()
    groups = find_groups(model, data.example_input())
    prunable = [g for g in groups if g.prunable]
    scores = channel_energy(model, groups, "out_in", normalize="layer_max")
    allv = torch.cat(list(scores.values()))
    outs = torch.cat(list(channel_energy(model, prunable, "out", normalize="none").values()))
    res: dict[str, Any] = {"lt5": allv.lt(0.05).float().mean().item(), "lt20": allv.lt(0.2).float().mean().item(),
                           "zero": outs.eq(0).float().mean().item()}
    bn = [g for g in prunable if g.bn_slices]
    if bn:
        gam = channel_energy(model, bn, "bn_gamma", normalize="none")
        res["g_lt5"] = torch.cat([v / v.max().clamp_min(1e-38) for v in gam.values()]).lt(0.05).float().mean().item()
    report = count_flops(model, data.example_input())
    for r in (0.3, 0.5):
        try:
            plan = global_greedy_plan(model, groups, scores, r, max_layer_ratio=0.9, report=report,
                                      criterion="out_in", normalize="layer_max")
        except PlanError:
            res[f"val_p{round(r * 100)}"] = None
            continue
        with apply_masks(model, plan):
            res[f"val_p{round(r * 100)}"] = evaluate(model, data, val)["acc"]
    return res


def calibration_run(config: dict[str, Any], root: str, data_dir: str | None, device: str) -> dict[str, Any]:
    """Train one calibration run (cached under ``root/calibration``) and measure it; its result row."""
    from ..data import load_dataset
    from ..train import build_trainer

    cfg = TrainConfig.from_dict(config).validate()
    full = load_dataset(cfg.dataset, root=data_dir)
    data_id = data_identity(full)
    data = dataclasses.replace(full.with_validation(cfg.val_images), test=_NoTest())
    key = config_hash({'config': cfg.to_dict(), 'data': data_id, 'calibration': 1})
    folder = Path(root) / "calibration" / f"{cfg.reg}-{key}"

    def compute(f: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        trainer = build_trainer(cfg, out_dir=f, data=data, device=device, show_progress=False, evaluate_test=False)
        trainer.resume()
        last = trainer.fit()[-1]
        row = {"reg": cfg.reg, "strength": cfg.strength, "options": cfg.reg_options, "seed": cfg.seed,
               "epochs": cfg.epochs, "val_acc": last["val_acc"], "val_loss": last["val_loss"],
               "train_acc": last["train_acc"], "train_s": time.perf_counter() - t0, "folder": f.name,
               "device": trainer.device.type, "precision": trainer.precision}
        return {**row, **measure(trainer.model, data, data.val)}

    return cached(folder, compute)[0]


def choose(rows: list[dict[str, Any]], tolerance: float) -> dict[str, dict[str, Any]]:
    """Apply the rule per regulariser: the strongest lambda whose mean validation accuracy is within
    ``tolerance`` of L2's."""
    by: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        by.setdefault(r["reg"], {}).setdefault(float(r["strength"]), []).append(r["val_acc"])
    if "l2" not in by:
        raise ConfigError("calibration needs the l2 reference runs (include l2 in --regs)")
    ref = mean_ci(by["l2"][0.0])
    out = {"l2": {"strength": 0.0, "val_acc": ref.as_dict(), "within": True}}
    for reg, grid in by.items():
        if reg == "l2":
            continue
        ok = [s for s, accs in grid.items() if mean_ci(accs).mean >= ref.mean - tolerance]
        pick = max(ok) if ok else min(grid)
        out[reg] = {"strength": pick, "val_acc": mean_ci(grid[pick]).as_dict(), "within": bool(ok),
                    "grid": sorted(grid), "at_top": bool(ok) and pick == max(grid)}
    return out


def verdict(c: dict[str, Any]) -> str:
    """How a choice relates to its grid, for the table and the log."""
    if not c["within"]:
        return "no: weakest on the grid"
    if c.get("at_top"):
        return "yes, at the grid's top: the threshold may lie above it; widen the grid (--grid REG=...)"
    return "yes"


def calibrate(
    preset: str = "quick",
    out: str | Path | None = None,
    *,
    regs: list[str] | None = None,
    seeds: list[int] | None = None,
    epochs: int | None = None,
    grids: dict[str, list[float]] | None = None,
    tolerance: float | None = None,
    jobs: int | None = None,
    threads: int | None = None,
    data_dir: str | Path | None = None,
    device: str = "cpu",
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Train every (regulariser, lambda, seed) of the grid, apply the rule, write ``calibration.{json,md}``.

    Returns the calibration record: rows, the rule, the choice per regulariser (and, when
    ``epochs`` is shorter than the preset's, the strengths transferred to the preset's budget).

    Example (seconds, at ``ci`` scale)::

        oicsr-lab calibrate --preset ci --regs l2,oicsr_gl --grid oicsr_gl=0.4,0.8 --seeds 100 --out /tmp/cal
    """
    from .workers import default_jobs, map_in_workers

    log = log or (lambda m: None)
    if preset not in TOLERANCE:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(TOLERANCE)}")
    regs = list(regs or names())
    bad = [r for r in regs if r not in names()]
    if bad:
        raise ConfigError(f"unknown regulariser(s) {bad}; choose from {', '.join(names())}")
    if "l2" not in regs:
        regs = ["l2", *regs]
    seeds = list(seeds or CAL_SEEDS)
    tol = TOLERANCE[preset] if tolerance is None else float(tolerance)
    root = Path(out or f"reports/calibrate-{preset}")
    spec = build_spec(preset, regs=regs, epochs=epochs)
    target = build_spec(preset, regs=regs)
    if not spec["base_config"].get("val_images"):
        raise ConfigError(f"preset {preset!r} holds out no validation images; calibration needs them (val_images)")
    configs: dict[str, tuple] = {}
    for reg in regs:
        grid = (grids or {}).get(reg) or default_grid(preset, reg)
        for s in grid:
            for seed in seeds:
                cfg = run_config(spec, reg, seed).replace(strength=float(s))
                configs[f"{reg} {s:g} s{seed}"] = (cfg.to_dict(), str(root), str(data_dir) if data_dir else None,
                                                   device)
    threads = threads or 1
    jobs = jobs or default_jobs(len(configs), threads)
    log(f"calibrate {preset}: {len(configs)} runs ({len(regs)} regularisers, seeds {seeds}), "
        f"{spec['base_config']['epochs']} epochs each, {jobs} job(s)")
    t0 = time.perf_counter()
    if jobs > 1:
        res = map_in_workers(calibration_run, configs, jobs, threads, f"calibrate {preset}", show_progress)
    else:
        res = {k: calibration_run(*a) for k, a in configs.items()}
    rows = [res[k] for k in configs]
    choice = choose(rows, tol)
    base = TrainConfig.from_dict(spec["base_config"])
    train_images = _train_images(base, data_dir)
    cal_lr, target_lr = sum_lr(base, train_images), sum_lr(TrainConfig.from_dict(target["base_config"]), train_images)
    for reg, c in choice.items():
        c["options"] = copy.deepcopy(STRENGTHS[preset][reg]["options"])
        c["transferred"] = c["strength"] * cal_lr / target_lr
    record = {
        "preset": preset, "rule": f"strongest lambda whose mean validation accuracy is within {tol:g} points of L2's",
        "tolerance": tol, "seeds": seeds, "epochs": base.epochs, "target_epochs": target["base_config"]["epochs"],
        "sum_lr": cal_lr, "target_sum_lr": target_lr, "val_images": base.val_images, "test_split_read": False,
        "choice": choice, "rows": rows, "wall_s": time.perf_counter() - t0,
    }
    atomic_write_json(root / "calibration.json", record)
    atomic_write_text(root / "calibration.md", calibration_markdown(record))
    log(f"calibration: {root / 'calibration.md'}")
    return record


def _train_images(cfg: TrainConfig, data_dir) -> int:
    """Training images of ``cfg`` after the validation hold-out and the subset."""
    from ..data import load_dataset

    n = len(load_dataset(cfg.dataset, root=data_dir).train) - cfg.val_images
    return min(n, cfg.train_subset) if cfg.train_subset else n


def calibration_markdown(record: dict[str, Any]) -> str:
    """The calibration table and the choice, as markdown (what the report and docs show)."""
    pct = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    acc = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [
        f"# Strength calibration: preset `{record['preset']}`", "",
        f"Rule: {record['rule']}. Seeds {record['seeds']} (disjoint from reproduce's), "
        f"{record['epochs']} epochs, {record['val_images']} validation images held out of the training split. "
        "**Every number here is on the validation split; the test split was not read.**", "",
        "| reg | lambda | seeds | val acc | <5% | <20% | zero filters | gamma<5% | val p30 | val p50 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    grouped: dict[tuple, list] = {}
    for r in record["rows"]:
        grouped.setdefault((r["reg"], r["strength"]), []).append(r)
    for (reg, s), rs in grouped.items():
        mean = lambda k: (sum(r[k] for r in rs if r.get(k) is not None) / len(rs)  # noqa: E731
                          if all(r.get(k) is not None for r in rs) else None)
        mark = " **<-**" if record["choice"].get(reg, {}).get("strength") == s and reg != "l2" else ""
        lines.append(f"| {reg} | {s:g}{mark} | {len(rs)} | {mean_ci([r['val_acc'] for r in rs]).fmt()} | "
                     f"{pct(mean('lt5'))} | {pct(mean('lt20'))} | {pct(mean('zero'))} | {pct(mean('g_lt5'))} | "
                     f"{acc(mean('val_p30'))} | {acc(mean('val_p50'))} |")
    lines += ["", "| reg | chosen lambda | within tolerance | transferred to the preset's budget |",
              "|---|---|---|---|"]
    for reg, c in record["choice"].items():
        lines.append(f"| {reg} | {c['strength']:g} | {verdict(c)} | "
                     f"{c['transferred']:.3g} |")
    lines += ["", f"Transfer: lambda x sum(lr) kept; sum(lr) {record['sum_lr']:.1f} at {record['epochs']} epochs, "
              f"{record['target_sum_lr']:.1f} at the preset's {record['target_epochs']}.", ""]
    return "\n".join(lines)
