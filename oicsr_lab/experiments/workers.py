"""``reproduce --jobs N``: the independent steps of a reproduction in N worker processes.

A *task* is one (regulariser, seed): train the run, sweep it, fine-tune it after one-shot
pruning, and (for the pipeline's regularisers, at its seeds: the first by default) prune it iteratively; plus one
dense reference per seed. Tasks share nothing but the run cache, whose
per-step locks (:func:`~oicsr_lab.experiments.runs.cached`) make them safe to run side by side,
also next to another ``reproduce`` on the same folder. Workers are *spawned* (not forked: a
forked OpenMP runtime can hang) and each uses ``threads // jobs`` torch threads, at least one:
two one-thread runs use a 2-core CPU better than one two-thread run.

After the pool has finished, ``reproduce`` walks the same steps again in order; every step is
then a cache hit, so the report is assembled exactly as after a sequential run.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

from ..progress import progress
from .shipped import is_shipped, shipped_run, spec_data

_DATA: dict[tuple, Any] = {}  # per worker process: data sets already decoded


def default_jobs(n_tasks: int, threads: int | None) -> int:
    """What fits the cores: one worker per available thread (``threads``, else all cores), at most one per task."""
    cores = threads or os.cpu_count() or 1
    return max(1, min(int(cores), n_tasks))


def _worker_init(threads: int, env: dict[str, str]) -> None:
    os.environ.update(env)
    import torch

    torch.set_num_threads(threads)


def _data(name: str, data_dir: str | None):
    from ..data import load_dataset

    key = (name, data_dir)
    if key not in _DATA:
        _DATA[key] = load_dataset(name, root=data_dir)
    return _DATA[key]


REFERENCE = "reference"  # the task label of the dense L2 reference trained for training + fine-tuning epochs


def tasks_of(spec: dict[str, Any]) -> list[tuple[str, int]]:
    """The independent (regulariser, seed) tasks of ``spec``, plus one dense reference per seed when fine-tuning."""
    tasks = [(reg, seed) for seed in spec["seeds"] for reg in spec["regs"]]
    if spec.get("finetune", {}).get("epochs", 0) > 0 and not is_shipped(spec):  # shipped: the shipped L2 is it
        tasks += [(REFERENCE, seed) for seed in spec["seeds"]]
    return tasks


def obtain_run(spec: dict[str, Any], root: Path, reg: str, seed: int, data, device: Any,
               show_progress: bool | None, log: Callable[[str], None] | None):
    """The trained run of (reg, seed): trained (or read from the cache), or the shipped model (``demo``)."""
    from .runs import data_identity, train_cached
    from .spec import run_config

    if is_shipped(spec):
        return shipped_run(spec, root, reg, seed, data, log)
    return train_cached(run_config(spec, reg, seed), root, data, data_identity(data), device, show_progress, log)


def reference_run(spec: dict[str, Any], root: Path, seed: int, data, dev, show_progress, log):
    """The dense L2 reference of ``seed``: the preset's L2 config trained for training + fine-tuning epochs."""
    from ..train import TrainConfig
    from .runs import data_identity, train_cached

    cfg = TrainConfig.from_dict(spec["base_config"]).replace(seed=seed)
    cfg = cfg.replace(epochs=cfg.epochs + int(spec["finetune"]["epochs"])).validate()
    return train_cached(cfg, root, data, data_identity(data), dev, show_progress, log)


def run_steps(spec: dict[str, Any], root: Path, reg: str, seed: int, data, dev, show_progress: bool | None,
              log: Callable[[str], None]) -> dict[str, bool]:
    """Every cached step of one task: train, sweep, fine-tune (and the pipeline where the spec runs it).

    Returns ``{label: hit}`` (True where the step was read from the cache).
    """
    from .finetune import control_cached, finetune_cached
    from .pipeline import pipeline_cached
    from .spec import pipeline_settings, pipeline_tasks
    from .sweep_step import model_label, sweep_cached

    out: dict[str, bool] = {}

    def note(label: str, hit: bool, t0: float) -> None:
        out[label] = hit
        log(f"{label}: {'cached' if hit else f'done in {time.perf_counter() - t0:.1f}s'}")

    t0 = time.perf_counter()
    if reg == REFERENCE:
        note(f"{REFERENCE} seed {seed}", reference_run(spec, root, seed, data, dev, show_progress, log).hit, t0)
        return out
    run = obtain_run(spec, root, reg, seed, data, dev, show_progress, log)
    note(f"train {reg} seed {seed}", run.hit, t0)
    t0 = time.perf_counter()
    sweep, hit = sweep_cached(run, data, spec, root, dev, show_progress)
    note(f"sweep {reg} seed {seed}", hit, t0)
    ft = spec.get("finetune", {})
    if ft.get("epochs", 0) > 0:
        t0 = time.perf_counter()
        _, hit = finetune_cached(run, sweep["rows"], data, root, ft, model_label(spec["base_config"]), dev,
                                 show_progress, log)
        note(f"finetune {reg} seed {seed}", hit, t0)
        if spec.get("finetune_control"):
            t0 = time.perf_counter()
            _, hit = control_cached(run, data, root, ft, model_label(spec["base_config"]), dev, show_progress, log)
            note(f"finetune control {reg} seed {seed}", hit, t0)
    if (reg, seed) in pipeline_tasks(spec):
        t0 = time.perf_counter()
        _, hit = pipeline_cached(run, data, root, pipeline_settings(spec, sweep["rows"]), dev, show_progress, log)
        note(f"pipeline {reg} seed {seed}", hit, t0)
    return out


def run_task(spec: dict[str, Any], root: str, reg: str, seed: int, data_dir: str | None,
             device: str) -> dict[str, bool]:
    """:func:`run_steps` in a worker process (data decoded once per worker); ``{step label: cache hit}``."""
    from ..train import resolve_device

    wid = multiprocessing.current_process().name.replace("SpawnProcess-", "worker ")

    def log(msg: str) -> None:
        print(f"[{wid}] {msg}", file=sys.stderr, flush=True)

    data = spec_data(spec, _data(spec["base_config"]["dataset"], data_dir))
    return run_steps(spec, Path(root), reg, seed, data, resolve_device(device), False, log)


def map_in_workers(fn: Callable[..., Any], tasks: dict[str, tuple], jobs: int, threads: int, desc: str,
                   show_progress: bool | None) -> dict[str, Any]:
    """``{label: fn(*args)}`` for every ``label: args`` of ``tasks``, in ``jobs`` spawned workers.

    ``fn`` must be importable (a module-level function). Each worker uses ``threads // jobs``
    torch threads (at least one). One aggregated progress bar shows tasks done and the next ones.
    A worker that dies (e.g. SIGKILL) makes this raise (BrokenProcessPool); the cached steps it
    left partial are resumed by the next call.
    """
    per = max(1, threads // jobs)
    env = {"OMP_NUM_THREADS": str(per), "OICSR_LAB_PROGRESS": "0"}
    ctx = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {}
    bar = progress(total=len(tasks), desc=desc, unit="task", enabled=show_progress)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(per, env)) as pool:
        running: dict[Future, str] = {pool.submit(fn, *args): label for label, args in tasks.items()}
        while running:
            bar.set_postfix_str("next: " + ", ".join(list(running.values())[:jobs]))
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                results[running.pop(fut)] = fut.result()  # re-raises a worker's error (or BrokenProcessPool)
                bar.update(1)
    bar.close()
    return results


def run_parallel(spec: dict[str, Any], root: Path, jobs: int, threads: int, data_dir: str | None, device: str,
                 show_progress: bool | None, log: Callable[[str], None]) -> dict[str, bool]:
    """Run every (reg, seed) task of ``spec`` in ``jobs`` spawned workers; ``{step label: cache hit}``."""
    tasks = {f"{reg}/s{seed}": (spec, str(root), reg, seed, data_dir, device) for reg, seed in tasks_of(spec)}
    log(f"reproduce: {len(tasks)} tasks in {jobs} worker processes x {max(1, threads // jobs)} thread(s)")
    hits: dict[str, bool] = {}
    for res in map_in_workers(run_task, tasks, jobs, threads, f"reproduce {spec['preset']} ({jobs} jobs)",
                              show_progress).values():
        hits.update(res)
    return hits
