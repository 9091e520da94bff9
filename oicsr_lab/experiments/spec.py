"""What ``reproduce`` runs at each preset: training budget, regulariser strengths, sweep and pipeline.

Each preset's regulariser strengths are ``STRENGTHS`` below, with where each value comes from in
``STRENGTH_SOURCE`` (recorded in every ``summary.json``). The calibrations behind them, their
tables and how to rerun them are in docs/results.md ("Calibration at quick" and section 5) and
docs/method.md.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import ConfigError
from ..regularizers import names
from ..train import TrainConfig, preset
from .shipped import SHIPPED, shipped_grid
from .sweep import PROTOCOL_CRITERIA

DEFAULT_REGS = ("l2", "gl", "l1bn", "oicsr_gl")
ALL_REGS = names()  # the built-in regularisers at import, menu order; checks call names() (the live registry)
VALIDATION = "the validation split held out of the training data"  # where choices are made (tables, summaries)
# demo: the sample's training images are CIFAR-10 training images; the shipped networks trained on ~90 % of them
SHIPPED_VALIDATION = ("the 498 sample training images in the shipped networks' own 5,000-image validation hold-out "
                      "(never trained on; oicsr_lab/pretrained/sample_holdout.json)")
# demo --data cifar10: the shipped networks' hold-out itself (the full archive; fine-tuning sees the other 45,000)
SHIPPED_VALIDATION_FULL = ("the shipped networks' own 5,000-image validation hold-out of the CIFAR-10 training split "
                           "(never trained on)")
PROX = {"mode": "proximal"}
PROX_BN = {"mode": "proximal", "include_bn": True}  # short presets: docs/results.md, calibration


def _strengths(gl: float, l1bn: float, mode: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Strength and options of every regulariser from the GL and L1-BN values."""
    return {
        "l2": {"strength": 0.0, "options": {}},
        "gl": {"strength": gl, "options": dict(mode)},
        "oicsr_gl": {"strength": gl, "options": dict(mode)},
        "growl": {"strength": gl / 2, "options": dict(mode)},
        "oicsr_growl": {"strength": gl / 2, "options": dict(mode)},
        "l1bn": {"strength": l1bn, "options": {}},
    }


def _calibrated(gl: float, oicsr_gl: float, l1bn: float, mode: dict[str, Any],
                growl: float | None = None, oicsr_growl: float | None = None) -> dict[str, dict[str, Any]]:
    """A strength table whose GL and OICSR-GL values were calibrated separately (GrOWL: given, else half of each)."""
    table = _strengths(gl, l1bn, mode)
    table["oicsr_gl"]["strength"] = oicsr_gl
    table["growl"]["strength"] = growl if growl is not None else gl / 2
    table["oicsr_growl"]["strength"] = oicsr_growl if oicsr_growl is not None else oicsr_gl / 2
    return table


# quick: `oicsr-lab calibrate --preset quick` (seeds 100 and 101, all six regularisers, the validation split, the rule
# in experiments/calibrate.py; docs/results/calibrate-quick/calibration.md). course: the first, one-seed (100) quick
# calibration's GL / OICSR-GL / L1-BN values, lambda x sum(lr) transferred to course's 50 epochs (sum lr 7.2 -> 879):
# the shipped networks were trained with them, so they stay although the two-seed calibration moved L1-BN to 0.0141.
_QUICK_SUM_LR, _COURSE_SUM_LR = 7.17, 879.0
_QUICK_SEED100 = (0.177, 0.25, 0.02)  # GL, OICSR-GL, L1-BN of the one-seed calibration
STRENGTHS: dict[str, dict[str, dict[str, Any]]] = {
    "ci": _strengths(6e-1, 5e-2, PROX_BN),
    "quick": _calibrated(0.177, 0.25, 0.0141, PROX_BN, growl=0.177, oicsr_growl=0.177),
    "course": _calibrated(*(float(f"{v * _QUICK_SUM_LR / _COURSE_SUM_LR:.3g}") for v in _QUICK_SEED100), PROX_BN),
    "paper": _strengths(1e-4, 1e-5, {"mode": "subgradient"}),
}
STRENGTHS["demo"] = STRENGTHS["course"]  # demo prunes the shipped course models; their manifest has the values
STRENGTH_SOURCE = {
    "ci": "ci keeps quick's lambda x sum(lr) of the earlier (test-split) calibration; ci numbers are smoke tests only",
    "quick": "oicsr-lab calibrate --preset quick on the validation split (seeds 100 and 101, all six regularisers)",
    "course": ("the one-seed quick validation calibration's lambda x sum(lr) transferred to 50 epochs (what the "
               "shipped networks were trained with); the course-scale calibration (docs/results.md 14) accepts "
               "stronger values, GL x1.7, OICSR-GL and L1-BN at least x1.7 and x1.5"),
    "paper": "the paper's subgradient form at Network Slimming's published 1e-5 scale; not calibrated here",
    "demo": "those the shipped models were trained with (course's; oicsr_lab/pretrained/manifest.json)",
}

RATIOS_FULL = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)

# Per preset: training overrides of the train preset, the sweep, the pipeline.
REPRODUCE: dict[str, dict[str, Any]] = {
    # <= 5 min on 2 CPU cores, offline: no training -- the shipped course-trained ResNet-20s (every shipped seed)
    # pruned, fine-tuned 1 epoch and measured on the embedded sample (1,000 test images; the 498 training images the
    # shipped networks never trained on choose each method's criterion -- SHIPPED_VALIDATION; its val_images is
    # their count, set by build_spec; fine-tuning sees the other 4,502)
    "demo": {"source": SHIPPED, "train_preset": "course",
             "train": {"dataset": "cifar10-sample"}, "ratios": RATIOS_FULL, "sweep_test": 1000,
             "sweep_precision": "auto",  # bf16 evaluations on a native-bf16 CPU: ~2.5x faster, docs/results.md
             "seeds": None,
             "finetune": {"ratios": (0.5,), "epochs": 1},  # one ratio: 12 networks in <= 5 min (results 8)
             "finetune_control": False,  # the unpruned control doubles the fine-tune time: --finetune-control
             "pipeline": {"regs": ("oicsr_gl", "gl"), "target_ratio": 0.3, "step_ratio": 0.1,
                          "retrain_epochs": 1, "finetune_epochs": 1},
             # the lite scope (DEMO_SCOPES): what replaces the above on a CPU that computes in fp32 only, where
             # the full scope takes ~24 min on 2 cores (docs/results.md 3): 3 ratios on 500 test images, the
             # fine-tune over 1,024 of the 4,502 training images, no iterative pipeline (--scope full has it)
             "lite": {"ratios": (0.1, 0.3, 0.5), "sweep_test": 500,
                      "finetune": {"ratios": (0.5,), "epochs": 1, "train_images": 1024}, "pipeline_regs": ()}},
    # < 3 min on 2 CPU cores: width-0.25 ResNet-20, 1,000 train / 500 test images, 2 epochs per run
    "ci": {"train": {"epochs": 2, "lr": 0.1, "batch_size": 32}, "ratios": (0.1, 0.3, 0.5), "sweep_test": 500,
           "seeds": (0,),
           "finetune": {"ratios": (0.3,), "epochs": 1},
           "pipeline": {"regs": ("oicsr_gl", "gl"), "target_ratio": 0.2, "step_ratio": 0.1,
                        "retrain_epochs": 1, "finetune_epochs": 1}},
    # ~35 min on 2 idle CPU cores (5 seeds; docs/results.md 3): full-width ResNet-20 on the 5,000-image sample, 4 epochs
    "quick": {"train": {"epochs": 4}, "ratios": RATIOS_FULL, "sweep_test": 1000, "seeds": (0, 1, 2, 3, 4),
              "finetune": {"ratios": (0.3, 0.5, 0.7), "epochs": 2},
              "pipeline": {"regs": ("oicsr_gl", "gl"), "target_ratio": 0.3, "step_ratio": 0.1,
                           "retrain_epochs": 1, "finetune_epochs": 1}},
    # hours on a CPU: ResNet-20 on the full CIFAR-10, the preset's 15 epochs
    "course": {"train": {}, "ratios": RATIOS_FULL, "sweep_test": 10000, "seeds": (0, 1, 2),
               "finetune": {"ratios": (0.3, 0.5, 0.7), "epochs": 10},
               "pipeline": {"regs": ("oicsr_gl", "gl"), "target_ratio": 0.5, "step_ratio": 0.1,
                            "retrain_epochs": 2, "finetune_epochs": 5}},
    # a GPU job: ResNet-56, 160 epochs
    "paper": {"train": {}, "ratios": RATIOS_FULL, "sweep_test": 10000, "seeds": (0, 1, 2),
              "finetune": {"ratios": (0.3, 0.5, 0.7), "epochs": 40},
              "pipeline": {"regs": ("oicsr_gl", "gl"), "target_ratio": 0.5, "step_ratio": 0.1,
                           "retrain_epochs": 10, "finetune_epochs": 40}},
}

# The demo's scopes: ``full`` (the preset as above) and ``lite`` (its "lite" entry), and ``auto``: full where the
# evaluations run in bf16 or on a GPU, lite on a CPU without native bf16 (fp32 arithmetic), so that `make demo`
# stays within its 5 minutes on 2 cores of either (docs/results.md 3 and 8).
DEMO_SCOPES = ("auto", "full", "lite")


def demo_scope(requested: str | None, device: Any = "cpu") -> tuple[str, str]:
    """``(scope, why)``: the demo scope to run on ``device`` when ``requested`` (``auto``, ``full``, ``lite``).

    Example:
        >>> demo_scope("lite")
        ('lite', 'asked for (--scope lite)')
    """
    import torch

    from ..precision import native_bf16

    requested = requested or "auto"
    if requested not in DEMO_SCOPES:
        raise ConfigError(f"unknown demo scope {requested!r}; choose one of {', '.join(DEMO_SCOPES)}")
    if requested != "auto":
        return requested, f"asked for (--scope {requested})"
    dev = torch.device(device)
    if dev.type != "cpu":
        return "full", f"auto: the device is {dev.type}"
    if native_bf16():
        return "full", "auto: this CPU has native bf16 (the evaluations run in bf16)"
    return "lite", ("auto: this CPU has no native bf16, so every step runs in fp32 and the full scope takes far "
                    "over 5 minutes; --scope full runs it")


def _measures(ratios, test_images: int, epochs: int, train_images: int | None, pipeline: bool) -> str:
    """A demo's measurements in words (scope_summary, scope_note)."""
    images = f"{train_images:,} training images" if train_images else "every training image"
    return (f"sweep at {', '.join(f'{float(r):.0%}' for r in ratios)} FLOPs removed on {test_images:,} test "
            f"images, {epochs} fine-tuning epoch(s) over {images}, "
            f"{'the iterative pipelines' if pipeline else 'no pipeline'}")


def scope_summary(name: str) -> str:
    """What the demo measures in scope ``name`` (``full`` or ``lite``), in words, read from ``REPRODUCE``.

    Example:
        >>> scope_summary("lite").split(", 1 fine")[0]
        'sweep at 10%, 30%, 50% FLOPs removed on 500 test images'
    """
    rp = REPRODUCE["demo"]
    if name == "lite":
        rp = {**rp, **rp["lite"], "pipeline": {"regs": rp["lite"]["pipeline_regs"]}}
    ft = rp["finetune"]
    return _measures(rp["ratios"], rp["sweep_test"], ft["epochs"], ft.get("train_images"), bool(rp["pipeline"]["regs"]))


def scope_note(spec: dict[str, Any]) -> str:
    """The summary's line on the demo scope that ran (as ``spec`` ran it), and how to run the other."""
    name, why = spec["scope"]["name"], spec["scope"]["why"]
    if name == "full":
        return f"demo scope full ({why}); --scope lite is the 5-minute version for CPUs without native bf16"
    ft = spec["finetune"]
    ran = _measures(spec["sweep"]["ratios"], spec["sweep"]["test_images"], ft["epochs"], ft.get("train_images"),
                    bool(spec["pipeline"]["regs"]))
    return f"demo scope lite ({why}): {ran}; --scope full runs the whole demo ({scope_summary('full')})"


SWEEP_DEFAULTS = {"normalize": "layer_max", "max_layer_ratio": 0.9, "criteria": PROTOCOL_CRITERIA}
PIPELINE_DEFAULTS = {"criterion": "out_in", "normalize": "layer_max", "max_layer_ratio": 0.5}
CHOSEN = "chosen"  # the pipeline criterion that means: each (regulariser, seed)'s chosen on validation (its sweep)


def parse_list(text: str | None, cast=str) -> list | None:
    """``"a,b"`` -> ``[cast(a), cast(b)]``; None stays None."""
    if text is None:
        return None
    try:
        return [cast(x.strip()) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"cannot parse {text!r} as a comma-separated list of {cast.__name__}") from None


def build_spec(
    preset_name: str,
    model: str | None = None,
    dataset: str | None = None,
    regs: list[str] | None = None,
    ratios: list[float] | None = None,
    seeds: list[int] | None = None,
    epochs: int | None = None,
    width: float | None = None,
    pipeline_regs: list[str] | None = None,
    pipeline_target: float | None = None,
    strengths: dict[str, float] | None = None,
    pipeline_retrain_epochs: int | None = None,
    pipeline_finetune_epochs: int | None = None,
    finetune_epochs: int | None = None,
    finetune_ratios: list[float] | None = None,
    precision: str | None = None,
    criteria: str | list[str] | None = None,
    finetune_control: bool | None = None,
    pipeline_seeds: str | list[int] | None = None,
    pipeline_criterion: str | None = None,
    scope: str = "full",
    scope_reason: str | None = None,
) -> dict[str, Any]:
    """The full, JSON-able description of a reproduce run (also recorded in summary.json).

    ``pipeline_seeds`` chooses the seeds the iterative pipeline runs at: None, the first seed (every preset's
    default); ``"all"``, every seed of the run; or a list of seeds from ``seeds``. ``pipeline_criterion`` ranks the
    pipeline's channels: a criterion name (default out-in energy, for every method) or ``"chosen"``, each network's
    criterion chosen on the validation split from its sweep (as the one-shot fine-tune does). ``scope`` (the
    ``demo`` preset on the sample only): ``full`` or ``lite`` (see :func:`demo_scope`), recorded with ``scope_reason``.
    """
    if preset_name not in REPRODUCE:
        raise ConfigError(f"unknown preset {preset_name!r}; choose one of {', '.join(REPRODUCE)}")
    rp = copy.deepcopy(REPRODUCE[preset_name])
    lite = rp.pop("lite", None)
    if scope not in ("full", "lite"):
        raise ConfigError(f"unknown scope {scope!r}; choose full or lite (auto is resolved by demo_scope)")
    if scope == "lite":
        if lite is None:
            raise ConfigError(f"--scope lite is a scope of --preset demo, not of {preset_name}; drop --scope")
        if dataset not in (None, "cifar10-sample"):
            raise ConfigError("--scope lite is the demo on the embedded sample; drop --scope (or --data) to prune the "
                              "shipped networks on the archive")
        pipe_regs = lite.pop("pipeline_regs")
        rp.update(lite)
        rp["pipeline"]["regs"] = pipe_regs
    base = preset(rp.get("train_preset", preset_name), **rp["train"])
    base = base.replace(model=model, dataset=dataset, epochs=epochs, width=width, precision=precision)
    full = False  # demo on the archive the shipped networks trained on (--data cifar10), not on the sample
    if rp.get("source") == SHIPPED:  # choices on the training images the shipped networks never trained on
        from ..pretrained.holdout import sample_holdout

        h = sample_holdout()
        full = base.dataset == h["dataset"]
        base = base.replace(val_images=h["val_images"] if full else len(h["indices"]))
        if full:  # the whole test split, as the course runs measure
            rp["sweep_test"] = REPRODUCE[rp["train_preset"]]["sweep_test"]
    if model is not None and width is None and model != base.model:
        base = base.replace(width=1.0) if model.startswith("torchvision:") else base
    base.validate()
    missing: list[str] = []
    if rp.get("source") == SHIPPED:
        if strengths or epochs is not None:
            raise ConfigError(f"--preset {preset_name} prunes the shipped networks as they were trained: drop "
                              f"--strength/--epochs, or train your own with --preset quick or course")
        unknown = [r for r in (regs or []) if r not in names()]
        if unknown:
            raise ConfigError(f"unknown regulariser(s) {unknown}; choose from {', '.join(names())}")
        regs, seeds, missing = shipped_grid(base.model, regs, seeds, base.width)
    regs = list(regs) if regs else list(DEFAULT_REGS)
    bad = [r for r in regs if r not in names()]
    if bad or not regs:
        raise ConfigError(f"unknown regulariser(s) {bad}; choose from {', '.join(names())}")
    ratios = [float(r) for r in (ratios or rp["ratios"])]
    if any(not (0 < r < 1) for r in ratios):
        raise ConfigError(f"ratios must lie in (0, 1), got {ratios}")
    table = copy.deepcopy(STRENGTHS[preset_name])
    if rp.get("source") == SHIPPED:  # the strengths the shipped models were trained with
        from ..pretrained import find

        for reg in regs:
            e = find(base.model, reg, seeds[0], width=base.width)
            table[reg] = {"strength": float(e["strength"]), "options": dict(e.get("reg_options") or {})}
    for reg, value in (strengths or {}).items():
        table.setdefault(reg, {"options": {}})["strength"] = float(value)
    runs = {reg: base.replace(reg=reg, strength=table[reg]["strength"],
                              reg_options=table[reg]["options"]).validate().to_dict()
            for reg in regs}
    pipe = dict(rp["pipeline"], **PIPELINE_DEFAULTS)
    pipe["regs"] = [r for r in (pipeline_regs if pipeline_regs is not None else pipe["regs"]) if r in regs]
    if pipeline_target is not None:
        pipe["target_ratio"] = float(pipeline_target)
    run_seeds = [int(x) for x in (seeds or rp["seeds"])]
    pipe["seeds"] = _pipeline_seeds(pipeline_seeds, run_seeds)
    if pipeline_criterion is not None:
        from ..criteria import names as criterion_names

        if pipeline_criterion != CHOSEN and pipeline_criterion not in criterion_names():
            raise ConfigError(f"unknown pipeline criterion {pipeline_criterion!r}; choose {CHOSEN!r} (each network's, "
                              f"chosen on validation) or one of {', '.join(criterion_names())}")
        pipe["criterion"] = pipeline_criterion
    for key, value in (("retrain_epochs", pipeline_retrain_epochs), ("finetune_epochs", pipeline_finetune_epochs)):
        if value is not None:
            if int(value) < 0:
                raise ConfigError(f"pipeline {key.replace('_', ' ')} must be >= 0, got {value}")
            pipe[key] = int(value)
    ft = {"ratios": [float(r) for r in (finetune_ratios or rp["finetune"]["ratios"])],
          "epochs": int(rp["finetune"]["epochs"] if finetune_epochs is None else finetune_epochs),
          "normalize": SWEEP_DEFAULTS["normalize"], "max_layer_ratio": SWEEP_DEFAULTS["max_layer_ratio"]}
    if "sweep_precision" in rp:  # the demo measures its fine-tunes and pipeline as it measures the sweep
        ft["eval_precision"] = pipe["eval_precision"] = rp["sweep_precision"]
    if ft["epochs"] < 0 or any(not (0 < r < 1) for r in ft["ratios"]):
        raise ConfigError(f"fine-tune epochs must be >= 0 and ratios in (0, 1), got {ft['epochs']} and {ft['ratios']}")
    if "train_images" in rp["finetune"]:  # lite: fine-tune on fewer images, measure on the sweep's test images
        ft.update(train_images=int(rp["finetune"]["train_images"]), test_images=int(rp["sweep_test"]))
    return {
        "preset": preset_name, "base_config": base.to_dict(), "source": rp.get("source", "train"),
        **({"scope": {"name": scope, "why": scope_reason or "asked for"}} if lite is not None and not full else {}),
        "not_in_grid": missing,
        "validation": (SHIPPED_VALIDATION_FULL if full else SHIPPED_VALIDATION) if rp.get("source") == SHIPPED
        else VALIDATION,
        "regs": regs, "strengths": {r: table[r] for r in regs},
        "strength_source": STRENGTH_SOURCE[preset_name] + (" (overridden: --strength)" if strengths else ""),
        "finetune": ft,
        # every network fine-tuned unpruned as well (ratio 0 in finetune.csv): separates the pruning's effect
        "finetune_control": bool(rp.get("finetune_control", True) if finetune_control is None else finetune_control)
        and ft["epochs"] > 0,
        "runs": runs, "seeds": run_seeds,
        "sweep": {"ratios": ratios, "test_images": rp["sweep_test"], **SWEEP_DEFAULTS,
                  **({"precision": rp["sweep_precision"]} if "sweep_precision" in rp else {}),
                  **({"criteria": _criteria(criteria)} if criteria else {})},
        "pipeline": pipe,
    }


def _pipeline_seeds(chosen: str | list[int] | None, seeds: list[int]) -> list[int]:
    """The seeds the pipeline runs at: the first by default, ``"all"``, or a subset of the run's seeds."""
    if chosen is None:
        return seeds[:1]
    if isinstance(chosen, str):
        if chosen.strip().lower() == "all":
            return list(seeds)
        chosen = parse_list(chosen, int) or []
    out = [int(x) for x in chosen]
    stray = [x for x in out if x not in seeds]
    if stray:
        raise ConfigError(f"pipeline seed(s) {stray} are not among the run's seeds {seeds}; pass --pipeline-seeds all "
                          f"or a subset of --seeds")
    return list(dict.fromkeys(out))


def pipeline_settings(spec: dict[str, Any], sweep_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What defines one pipeline run (its cache key): the spec's pipeline entry without whom it runs for, with
    the criterion ``"chosen"`` resolved to the one chosen on validation from the network's ``sweep_rows``
    (the same rule as the one-shot fine-tune), so a choice of out-in energy shares the out-in pipeline's cache."""
    settings = {k: v for k, v in spec["pipeline"].items() if k not in ("regs", "seeds")}
    if settings.get("criterion") == CHOSEN:
        from .finetune import best_criterion

        settings["criterion"] = best_criterion(sweep_rows or [])
    return settings


def pipeline_tasks(spec: dict[str, Any]) -> list[tuple[str, int]]:
    """Every ``(regulariser, seed)`` the iterative pipeline runs for, seed by seed (a summary.json written before
    pipelines ran at several seeds: the first seed)."""
    seeds = spec["pipeline"].get("seeds") or spec["seeds"][:1]
    return [(reg, int(seed)) for seed in seeds for reg in spec["pipeline"]["regs"]]


def _criteria(criteria: str | list[str]) -> str:
    """The sweep's criteria as one comma-separated string (validated against the registry, 'own' kept)."""
    from .sweep import criteria_for

    text = criteria if isinstance(criteria, str) else ",".join(criteria)
    criteria_for("l2", text)  # raises ConfigError naming an unknown criterion
    return text


def run_config(spec: dict[str, Any], reg: str, seed: int) -> TrainConfig:
    """The TrainConfig of one training run of the spec."""
    return TrainConfig.from_dict(spec["runs"][reg]).replace(seed=seed).validate()
