"""Accuracy *after* fine-tuning at matched FLOPs: the paper's Table 1 question, for every regulariser and seed.

For one trained run: the method's best criterion is chosen on the validation split (the
sweep's ``val_acc_before_retrain``, averaged over its ratios; floors excluded), then for each
FLOPs ratio (default 30 / 50 / 70 %) the network is pruned in one shot by Algorithm 1 with that
criterion -- the same plan the Figure 4 sweep measured, so the FLOPs match -- physically
shrunk, and fine-tuned ``epochs`` epochs without the regulariser
(:func:`~oicsr_lab.pruning.prune_iteratively` with one step and no retraining). Its reference is
a dense L2 network trained for the same total number of epochs (training + fine-tuning;
:func:`~oicsr_lab.experiments.workers.reference_run`; with the ``demo`` preset's shipped networks,
the shipped L2 itself), so a pruned network is never credited with extra training.

The **control** (:func:`control_cached`, ``ratio`` 0 in ``finetune.csv``, criterion ``none``):
each regulariser's own network fine-tuned *unpruned* with the same schedule. A method's lead
after pruning + fine-tuning is only the pruning's if it exceeds its lead here; the per-method
difference (pruned minus unpruned, same seed) is what pruning cost after fine-tuning.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

from ..data import DatasetSplits
from .runs import TrainedRun, cached, config_hash
from .sweep import FLOORS

FINETUNE_COLUMNS = ("model", "reg", "seed", "criterion", "ratio", "achieved_ratio", "flops", "params",
                    "acc_before_retrain", "acc_after_finetune", "finetune_epochs")


def best_criterion(sweep_rows: list[dict[str, Any]]) -> str:
    """The criterion with the highest mean *validation* accuracy before retraining over the pruned ratios.

    Floors (random, uniform) are never chosen; the means are taken over the ratios every candidate
    reached (a plan the caps made unreachable leaves a gap); ties go to out-in energy, then
    alphabetical order. Rows without validation accuracy (no held-out split) fall back to out-in energy.
    """
    acc: dict[str, dict[float, float]] = {}
    for r in sweep_rows:
        v = r.get("val_acc_before_retrain")
        if r["criterion"] in FLOORS or float(r["ratio"]) == 0 or v in (None, "") or v != v:
            continue
        acc.setdefault(r["criterion"], {})[float(r["ratio"])] = float(v)
    if not acc:
        return "out_in"
    common = set.intersection(*(set(by) for by in acc.values()))  # compare at ratios every candidate reached
    if not common:
        return "out_in"
    mean = {c: sum(by[x] for x in common) / len(common) for c, by in acc.items()}
    return max(sorted(mean), key=lambda c: (mean[c], c == "out_in"))


def finetune_cached(
    run: TrainedRun,
    sweep_rows: list[dict[str, Any]],
    data: DatasetSplits,
    root: Path,
    settings: dict[str, Any],
    model_label: str,
    device: Any = "cpu",
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """``(finetune.csv rows, cache hit)`` for one trained run (cached under ``root/finetunes``)."""
    from ..pruning.iterative import prune_iteratively

    crit = best_criterion(sweep_rows)
    key = config_hash({'run': run.key, 'settings': settings, 'criterion': crit})
    folder = Path(root) / "finetunes" / f"{run.config.reg}-{key}"

    def compute(f: Path) -> dict[str, Any]:
        rows = []
        ft_data, config = _finetune_data(data, run, settings)
        for ratio in settings["ratios"]:
            if log is not None:
                log(f"one-shot prune of {run.config.reg} seed {run.config.seed} to {ratio:.0%} FLOPs by {crit}, "
                    f"fine-tune {settings['epochs']} epochs")
            res = prune_iteratively(
                copy.deepcopy(run.load_model("cpu")), ft_data, config, target_ratio=ratio, step_ratio=ratio,
                retrain_epochs=0, finetune_epochs=settings["epochs"], criterion=crit,
                normalize=settings["normalize"], max_layer_ratio=settings["max_layer_ratio"],
                out_dir=f / f"r{round(ratio * 100)}", device=device, show_progress=show_progress,
                eval_precision=settings.get("eval_precision", "fp32"))
            pruned = next(r for r in res.records if r.get("stage", "").startswith("prune"))
            last = res.records[-1]
            rows.append({"model": model_label, "reg": run.config.reg, "seed": run.config.seed, "criterion": crit,
                         "ratio": ratio, "achieved_ratio": pruned["achieved_ratio"], "flops": last["flops"],
                         "params": last["params"], "acc_before_retrain": pruned["acc_before_retrain"],
                         "acc_after_finetune": last["acc_after_retrain"], "finetune_epochs": settings["epochs"]})
        return {"run": run.key, "criterion": crit, "settings": settings, "rows": rows}

    result, hit = cached(folder, compute)
    return result["rows"], hit


def _finetune_data(data: DatasetSplits, run: TrainedRun, settings: dict[str, Any]) -> tuple[DatasetSplits, Any]:
    """The data and config a fine-tune uses: ``run``'s, or with ``settings``' ``test_images`` (the sweep's fixed
    test subset, seed 0, so the accuracy before fine-tuning is the sweep's at that plan) and ``train_images`` (a
    seeded subset of the training images; the demo's lite scope)."""
    import dataclasses

    config = run.config
    if settings.get("test_images"):
        data = dataclasses.replace(data, test=data.test.subset(int(settings["test_images"]), seed=0))
        config = config.replace(test_subset=None)
    if settings.get("train_images"):
        config = config.replace(train_subset=int(settings["train_images"]))
    return data, config


CONTROL_CRITERION = "none"  # finetune.csv's criterion for the unpruned control (ratio 0)


def control_cached(
    run: TrainedRun,
    data: DatasetSplits,
    root: Path,
    settings: dict[str, Any],
    model_label: str,
    device: Any = "cpu",
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """``([finetune.csv row at ratio 0], cache hit)``: ``run``'s network fine-tuned unpruned, as the pruned ones are.

    Same epochs, learning rate and schedule, no regulariser, same seed (see
    :func:`~oicsr_lab.pruning.iterative.finetune_unpruned`); cached under ``root/finetunes``.
    """
    from ..pruning.iterative import finetune_unpruned

    ctl = {"epochs": int(settings["epochs"]), "eval_precision": settings.get("eval_precision", "fp32"),
           **{k: int(settings[k]) for k in ("train_images", "test_images") if settings.get(k)}}
    key = config_hash({'run': run.key, 'control': ctl})
    folder = Path(root) / "finetunes" / f"{run.config.reg}-unpruned-{key}"

    def compute(f: Path) -> dict[str, Any]:
        if log is not None:
            log(f"control: fine-tune {run.config.reg} seed {run.config.seed} unpruned {ctl['epochs']} epochs")
        ctl_data, config = _finetune_data(data, run, ctl)
        r = finetune_unpruned(copy.deepcopy(run.load_model("cpu")), ctl_data, config, epochs=ctl["epochs"],
                              out_dir=f, device=device, show_progress=show_progress,
                              eval_precision=ctl["eval_precision"])
        row = {"model": model_label, "reg": run.config.reg, "seed": run.config.seed, "criterion": CONTROL_CRITERION,
               "ratio": 0.0, "achieved_ratio": 0.0, "flops": r["flops"], "params": r["params"],
               "acc_before_retrain": r["acc_before"], "acc_after_finetune": r["acc_after"],
               "finetune_epochs": ctl["epochs"]}
        return {"run": run.key, "control": ctl, "rows": [row]}

    result, hit = cached(folder, compute)
    return result["rows"], hit

