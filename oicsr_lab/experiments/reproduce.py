"""``reproduce``: train under each regulariser, measure energies, sweep FLOPs ratios, prune iteratively, report.

Everything lands under ``out`` (default ``reports/<preset>``) in the files the design doc lists
(``energies.json``, ``sweep.csv``, ``plans.json``, ``pipeline.csv``, ``table1.json``,
``summary.json``, ``index.html``). Each expensive step is cached under ``out`` by the hash of its
full configuration (see :mod:`.runs`), so a rerun skips what is done and resumes what was
interrupted; the aggregate files are rebuilt from finished steps only.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..data import load_dataset
from ..errors import ConfigError
from ..io import atomic_write_json
from ..progress import progress
from ..pruning.iterative import PIPELINE_COLUMNS
from ..train import auto_threads, resolve_device, set_threads
from .finetune import FINETUNE_COLUMNS, control_cached, finetune_cached
from .pipeline import pipeline_cached
from .protocol import reference_phrase
from .report import write_csv, write_index
from .runs import TrainedRun, cached, config_hash, data_identity
from .shipped import is_shipped, shipped_reference, spec_data
from .spec import build_spec, pipeline_settings, pipeline_tasks, scope_note
from .sweep import SWEEP_COLUMNS
from .sweep_step import model_label, sweep_cached
from .workers import default_jobs, obtain_run, reference_run, run_parallel, run_steps, tasks_of

FILES = ("energies.json", "sweep.csv", "plans.json", "pipeline.csv", "finetune.csv", "table1.json", "summary.json",
         "index.html")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def versions() -> dict[str, str]:
    """Versions of Python, the package and its main dependencies."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("oicsr-lab", "torch", "torchvision", "numpy", "pandas", "matplotlib", "plotly"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _with_hit(run: TrainedRun) -> tuple[TrainedRun, bool]:
    """``(run, run.hit)`` for the step runner."""
    return run, run.hit


def _table1_cached(root: Path, weights: str | None) -> tuple[dict, bool]:
    """table1.json content (cached under ``root/table1``)."""
    from .table1 import compute_table1

    key = {"weights": str(Path(weights).resolve()) if weights else None}
    return cached(root / "table1" / f"resnet50-{config_hash(key)}", lambda f: compute_table1(weights=weights))


def _scope(preset: str, dataset: str | None, scope: str | None, device: Any) -> tuple[str, str | None]:
    """The scope build_spec gets: resolved by :func:`~.spec.demo_scope` for a preset that has a lite scope and runs
    on the sample; otherwise ``full`` (asking another preset for ``lite`` is build_spec's error)."""
    from .spec import REPRODUCE, demo_scope

    if "lite" not in REPRODUCE.get(preset, {}) or dataset not in (None, "cifar10-sample"):
        if scope in (None, "auto", "full"):
            return "full", None
        return scope, f"asked for (--scope {scope})"
    return demo_scope(scope, device)


def reproduce(
    preset: str = "ci",
    out: str | Path | None = None,
    *,
    model: str | None = None,
    dataset: str | None = None,
    regs: list[str] | None = None,
    ratios: list[float] | None = None,
    seeds: list[int] | None = None,
    epochs: int | None = None,
    width: float | None = None,
    pipeline_regs: list[str] | None = None,
    pipeline_target: float | None = None,
    pipeline_retrain_epochs: int | None = None,
    pipeline_finetune_epochs: int | None = None,
    pipeline_seeds: str | list[int] | None = None,
    pipeline_criterion: str | None = None,
    finetune_epochs: int | None = None,
    finetune_ratios: list[float] | None = None,
    precision: str | None = None,
    criteria: str | list[str] | None = None,
    strengths: dict[str, float] | None = None,
    finetune_control: bool | None = None,
    table1: bool = True,
    table1_weights: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    jobs: int | None = None,
    data_dir: str | Path | None = None,
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = _stderr,
    scope: str = "auto",
) -> dict[str, Any]:
    """Run (or resume, or read back) the whole reproduction at ``preset``; returns the summary dict.

    ``jobs``: worker processes for the independent (regulariser, seed) steps (default: what fits
    the idle cores, one thread each; see :mod:`.workers`); ``threads``: CPU threads in all.
    ``pipeline_seeds``: the iterative pipeline at the first seed (None), every seed (``"all"``) or those listed;
    ``pipeline_criterion``: its ranking, out-in energy by default or ``"chosen"`` (each network's, on validation).
    ``scope`` (``demo`` on the sample only): ``full``, ``lite`` or ``auto`` (:func:`~.spec.demo_scope`: lite on a
    CPU without native bf16, where the full demo takes far over its 5 minutes).
    """
    t0 = time.perf_counter()
    log = log or (lambda msg: None)
    env_threads = int(os.environ["OICSR_LAB_THREADS"]) if os.environ.get("OICSR_LAB_THREADS") else None
    total_threads = threads or env_threads or auto_threads() or os.cpu_count() or 1
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"jobs must be a whole number >= 1, got {jobs!r}; pass e.g. --jobs 2")
    set_threads(total_threads)
    dev = resolve_device(device)
    scope_name, scope_why = _scope(preset, dataset, scope, dev)
    spec = build_spec(preset, model=model, dataset=dataset, regs=regs, ratios=ratios, seeds=seeds, epochs=epochs,
                      width=width, pipeline_regs=pipeline_regs, pipeline_target=pipeline_target, strengths=strengths,
                      pipeline_retrain_epochs=pipeline_retrain_epochs,
                      pipeline_finetune_epochs=pipeline_finetune_epochs, pipeline_seeds=pipeline_seeds,
                      pipeline_criterion=pipeline_criterion, finetune_epochs=finetune_epochs,
                      finetune_ratios=finetune_ratios,
                      precision=precision, criteria=criteria, finetune_control=finetune_control,
                      scope=scope_name, scope_reason=scope_why)
    root = Path(out or f"reports/{preset}")
    root.mkdir(parents=True, exist_ok=True)
    if "scope" in spec:
        log(f"{preset} scope: {scope_name} ({scope_why})")
    data = spec_data(spec, load_dataset(spec["base_config"]["dataset"], root=data_dir))  # demo: the sample
    for note in data.notes:
        log(f"note: {note}")
    data_id = data_identity(data)  # keys the run cache (not the data folder, so moving the data keeps it)
    seeds_, regs_ = spec["seeds"], spec["regs"]
    tasks = tasks_of(spec)
    jobs = jobs if jobs is not None else default_jobs(len(tasks), total_threads)
    inner = False if show_progress is False else None
    # 1. compute: every (regulariser, seed) task, in worker processes or here, one after another
    if jobs > 1:
        done = run_parallel(spec, root, jobs, total_threads, str(data_dir) if data_dir else None,
                            str(device), show_progress, log)
    else:
        done = {}
        task_bar = progress(total=len(tasks), desc=f"reproduce {preset}", unit="task", enabled=show_progress)
        for reg, seed in tasks:
            task_bar.set_postfix_str(f"{reg} seed {seed}")
            done.update(run_steps(spec, root, reg, seed, data, dev, inner, log))
            task_bar.update(1)
        task_bar.close()
    hits: dict[str, int] = {"hit": sum(done.values()), "computed": len(done) - sum(done.values())}

    # 2. read back: every step is a cache hit now; the report is built from the cached results
    def step(label: str, fn: Callable[[], tuple[Any, bool]]) -> Any:
        res, hit = fn()
        if label not in done:  # a step outside the tasks (Table 1)
            hits["hit" if hit else "computed"] += 1
        return res

    runs: dict[int, dict[str, TrainedRun]] = {s: {} for s in seeds_}
    for seed in seeds_:
        for reg in regs_:
            runs[seed][reg] = step(f"train {reg} seed {seed}", lambda reg=reg, seed=seed: _with_hit(
                obtain_run(spec, root, reg, seed, data, dev, inner, log)))
    sweeps = {s: {reg: step(f"sweep {reg} seed {s}",
                            lambda r=runs[s][reg]: sweep_cached(r, data, spec, root, dev, inner))
                  for reg in regs_} for s in seeds_}
    ft_rows: list[dict[str, Any]] = []
    references: dict[str, Any] = {}
    if spec["finetune"]["epochs"] > 0:
        label_ = model_label(spec["base_config"])
        for s in seeds_:
            for reg in regs_:
                ft_rows += step(f"finetune {reg} seed {s}", lambda r=runs[s][reg], rows=sweeps[s][reg]["rows"]:
                                finetune_cached(r, rows, data, root, spec["finetune"], label_, dev, inner, log))
                if spec.get("finetune_control"):
                    ft_rows += step(f"finetune control {reg} seed {s}", lambda r=runs[s][reg]:
                                    control_cached(r, data, root, spec["finetune"], label_, dev, inner, log))
            if is_shipped(spec):
                shipped_ref = shipped_reference(runs[s], root)
                if shipped_ref is not None:
                    references[str(s)] = shipped_ref
                continue
            ref = reference_run(spec, root, s, data, dev, inner, log)
            references[str(s)] = {"test_acc": ref.result["test_acc"], "epochs": ref.config.epochs,
                                  "folder": str(ref.folder.relative_to(root))}
    s0 = seeds_[0]
    pipe_rows: list[dict[str, Any]] = []
    for reg, s in pipeline_tasks(spec):
        settings = pipeline_settings(spec, sweeps[s][reg]["rows"])
        rows = step(f"pipeline {reg} seed {s}", lambda reg=reg, s=s, settings=settings: pipeline_cached(
            runs[s][reg], data, root, settings, dev, inner, log))
        pipe_rows += [dict(row, seed=s, criterion=settings["criterion"]) for row in rows]
    t1 = step("table1", lambda: _table1_cached(root, table1_weights)) if table1 else None

    # -- plain data ---------------------------------------------------------------------------
    label = model_label(spec["base_config"])
    energies = {"model": label, "criterion": "out_in", "seed": s0, "normalize": "none",
                "runs": {reg: sweeps[s0][reg]["energies"]["out_in"] for reg in regs_},
                "out_energies": {reg: sweeps[s0][reg]["energies"]["out"] for reg in regs_}}
    gam = {reg: sweeps[s0][reg]["energies"]["bn_gamma"] for reg in regs_ if "bn_gamma" in sweeps[s0][reg]["energies"]}
    if gam:
        energies["bn_gamma"] = gam
    energies["by_seed"] = {str(s): {reg: sweeps[s][reg]["energies"]["out_in"] for reg in regs_} for s in seeds_}
    sweep_rows = [r for s in seeds_ for reg in regs_ for r in sweeps[s][reg]["rows"]]
    plans = {reg: sweeps[s0][reg]["plans"] for reg in regs_}
    atomic_write_json(root / "energies.json", energies)
    write_csv(root / "sweep.csv", sweep_rows, SWEEP_COLUMNS)
    atomic_write_json(root / "plans.json", plans)
    write_csv(root / "pipeline.csv", pipe_rows, (*PIPELINE_COLUMNS, "seed", "criterion"))
    write_csv(root / "finetune.csv", ft_rows, FINETUNE_COLUMNS)
    if t1 is not None:
        atomic_write_json(root / "table1.json", t1)
    summary = {
        "preset": preset, "config": spec, "data": {**data_id, "source": data.source, "notes": data.notes},
        "seeds": seeds_, "device": str(dev), "jobs": jobs,
        "threads": total_threads, "versions": versions(),
        "runs": {str(s): {reg: {"folder": str(r.folder.relative_to(root)), "test_acc": r.result["test_acc"],
                                "train_wall_s": r.result.get("wall_s"), "cached": r.hit}
                          for reg, r in runs[s].items()} for s in seeds_},
        "references": references,
        "cache": hits, "files": [f for f in FILES if (root / f).exists() or f in ("summary.json", "index.html")],
        "notes": [
            *([scope_note(spec)] if "scope" in spec else []),
            "accuracies are top-1 test accuracy in percent; sweep accuracies are before retraining (masks)",
            f"sweep: Algorithm 1 one shot, per-layer cap {spec['sweep']['max_layer_ratio']}, "
            f"{spec['sweep']['test_images']} test images (fixed subset, seed 0)",
            "sweep accuracies on the test split are reported; each method's criterion for fine-tuning is chosen "
            f"on {spec['validation']} (val_acc_before_retrain)",
            "energies.json holds every seed (by_seed); plans.json uses the first seed; pipeline.csv the seeds "
            f"{spec['pipeline'].get('seeds') or seeds_[:1]} (its seed column)",
            "finetune.csv: one-shot prune at matched FLOPs + fine-tune; references: "
            + reference_phrase(references, is_shipped(spec))
            + ("; ratio 0 (criterion 'none'): each network fine-tuned unpruned the same way, the control"
               if spec.get("finetune_control") else ""),
            *([f"shipped but left out (not shipped for every regulariser): {', '.join(spec['not_in_grid'])}"]
              if spec.get("not_in_grid") else []),
            "table1 computed rows: structure of torchvision resnet50 only; see each row's 'weights'",
        ],
    }
    summary["wall_s"] = time.perf_counter() - t0
    atomic_write_json(root / "summary.json", summary)
    files = {"energies": energies, "sweep": sweep_rows, "plans": plans, "pipeline": pipe_rows, "table1": t1,
             "finetune": ft_rows}
    summary["report"] = write_index(root, summary, files)
    summary["wall_s"] = time.perf_counter() - t0
    atomic_write_json(root / "summary.json", summary)
    log(f"reproduce {preset}: {hits['computed']} steps computed, {hits['hit']} cached, "
        f"{summary['wall_s']:.1f}s; report: {root / 'index.html'}")
    return summary
