"""Add a finished training run to the shipped set (maintainers): ``oicsr-lab pretrained ship RUN``.

Writes the run's weights as a compact fp16 state dict into :mod:`oicsr_lab.pretrained` and a
manifest entry whose accuracies are *measured* on the fp16 file loaded into fp32 (what users
get). Lives here, not in :mod:`oicsr_lab.pretrained`, because measuring the energy concentration
uses the experiments layer (:func:`~oicsr_lab.experiments.calibrate.measure`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import atomic_torch_save, atomic_write_json
from ..pretrained import FORMAT, MANIFEST, folder, load_entry, manifest, sha256, variant_of
from ..train import evaluate, load_trained
from .calibrate import measure


def check_variant(variant: str) -> None:
    """Refuse a variant tag that is not letters, digits and ``_`` (it becomes part of a file name)."""
    if variant and not variant.replace("_", "").isalnum():
        raise ConfigError(f"variant {variant!r}: use letters, digits and '_' only (e.g. 150ep)")


def ship(run_folder: str | Path, data, out: str | Path | None = None, command: str = "",
         sample=None, variant: str = "") -> dict[str, Any]:
    """Add a finished training run to the shipped set: fp16 state dict + measured manifest entry (maintainers).

    ``data``: the run's full data set (its test split is measured); ``sample``: the embedded
    sample's data set (its 1,000 test images are measured too, for the fast test every clone runs).
    Accuracies are measured on the fp16-stored weights loaded into fp32 -- what users get.
    ``variant``: ``""`` adds the run to the main set (replacing the same model/reg/seed); a tag
    (letters, digits, ``_``) ships it beside the set as ``<name>-<tag>`` (:mod:`oicsr_lab.pretrained`).
    """
    check_variant(variant)

    root = Path(out or folder())
    model, blob = load_trained(Path(run_folder) / "checkpoint.pt")
    cfg = blob["config"]
    seed, reg = int(cfg.get("seed", 0)), cfg.get("reg", "l2")
    width = float(cfg.get("width", 1.0))
    name = f"{cfg['model']}{'' if width == 1.0 else f'x{width:g}'}-{reg}-s{seed}" + (f"-{variant}" if variant else "")
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    file = root / f"{name}.pt"
    atomic_torch_save({"format": FORMAT, "name": name, "state_dict": state}, file)
    entry = {"name": name, "model": cfg["model"], "width": float(cfg.get("width", 1.0)),
             "num_classes": data.num_classes, "reg": reg, "strength": float(cfg.get("strength", 0.0)),
             "reg_options": cfg.get("reg_options", {}), "seed": seed, "epochs": int(cfg["epochs"]),
             "config": cfg, "file": file.name, "sha256": sha256(file), "bytes": file.stat().st_size,
             "storage": "float16", "command": command}
    if variant:
        entry["variant"] = variant
    loaded = load_entry(entry, root)
    entry["test_acc"] = evaluate(loaded, data, data.test)["acc"]
    entry["trained_test_acc_fp32"] = blob["history"][-1].get("test_acc")
    held = data.with_validation(int(cfg.get("val_images", 0) or 0))
    if held.val is not None:
        entry["val_acc"] = evaluate(loaded, held, held.val)["acc"]
        energy = measure(loaded, held, held.val)
        entry["energy"] = {k: v for k, v in energy.items() if k in ("lt5", "lt20", "zero", "g_lt5")}
    if sample is not None:
        entry["sample_test_acc"] = evaluate(loaded, sample, sample.test)["acc"]
    man = manifest(root)
    man["models"] = [e for e in man["models"] if e["name"] != name] + [entry]
    man["models"].sort(key=lambda e: (e["model"], e["reg"], e["seed"], variant_of(e)))
    atomic_write_json(root / MANIFEST, man)
    return entry

