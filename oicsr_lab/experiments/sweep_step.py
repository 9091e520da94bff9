"""The Figure 4 sweep of one trained run as a cached experiment step (energies, sweep rows, plans)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .runs import TrainedRun, cached, config_hash
from .sweep import channel_energies, criteria_for, sweep_model


def model_label(cfg: dict[str, Any]) -> str:
    """Model name as it appears in sweep.csv (width appended when not 1)."""
    return cfg["model"] if float(cfg["width"]) == 1.0 else f"{cfg['model']}x{float(cfg['width']):g}"


def sweep_cached(run: TrainedRun, data, spec: dict[str, Any], root: Path, device, show_progress) -> tuple[dict, bool]:
    """Energies + sweep rows + plans of one trained run (cached under ``root/sweeps``)."""
    sw = spec["sweep"]
    folder = root / "sweeps" / f"{run.config.reg}-{config_hash({'run': run.key, 'sweep': sw})}"

    def compute(f: Path) -> dict[str, Any]:
        from ..groups import find_groups

        model = run.load_model(device)
        groups = find_groups(model.eval(), data.example_input().to(device))
        test = data.test.subset(sw["test_images"], seed=0)
        held = data.with_validation(run.config.val_images)  # the run's own validation images, for choices
        meta = {"model": model_label(spec["base_config"]), "reg": run.config.reg, "seed": run.config.seed}
        rows, plans = sweep_model(model, groups, held, test, sw["ratios"],
                                  criteria_for(run.config.reg, sw.get("criteria")),
                                  normalize=sw["normalize"], max_layer_ratio=sw["max_layer_ratio"], meta=meta,
                                  device=device, show_progress=show_progress, val_split=held.val,
                                  precision=sw.get("precision", "fp32"))
        return {"run": run.key, "rows": rows, "plans": plans, "energies": channel_energies(model, groups),
                "test_images": len(test)}

    return cached(folder, compute)
