"""The iterative pipeline (Figure 2) as a cached experiment step of ``reproduce``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..data import DatasetSplits
from ..pruning.iterative import pipeline_rows, prune_iteratively
from .runs import TrainedRun, cached, config_hash


def pipeline_folder(root: Path, run: TrainedRun, settings: dict[str, Any]) -> Path:
    """``<root>/pipelines/<reg>-<hash of the trained run + pipeline settings>/``."""
    return Path(root) / "pipelines" / f"{run.config.reg}-{config_hash({'run': run.key, 'settings': settings})}"


def pipeline_cached(
    run: TrainedRun,
    data: DatasetSplits,
    root: Path,
    settings: dict[str, Any],
    device: str = "auto",
    show_progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """``(pipeline.csv rows, cache hit)`` for one trained run; a partial pipeline resumes from its state.json."""
    folder = pipeline_folder(root, run, settings)
    keys = ("target_ratio", "step_ratio", "retrain_epochs", "finetune_epochs", "criterion", "normalize",
            "max_layer_ratio", "eval_precision")

    def compute(f: Path) -> dict[str, Any]:
        if log is not None:
            log(f"iterative pruning of {run.config.reg} to {settings['target_ratio']:.0%} FLOPs -> {f}")
        model = run.load_model(device="cpu")
        res = prune_iteratively(model, data, run.config, out_dir=f, resume=True, device=device,
                                show_progress=show_progress, **{k: settings[k] for k in keys if k in settings})
        return {"run": run.key, "settings": settings, "records": res.records, "rows": res.rows(run.config.reg),
                "wall_s": res.state.get("wall_s")}

    result, hit = cached(folder, compute)
    return result.get("rows") or pipeline_rows(result["records"], run.config.reg), hit
