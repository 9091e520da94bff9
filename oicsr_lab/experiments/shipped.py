"""The shipped networks as ``reproduce`` runs: the ``demo`` preset prunes what :mod:`oicsr_lab.pretrained` holds.

A reproduction normally trains each (regulariser, seed) first. With ``spec["source"] ==
"shipped"`` (the ``demo`` preset) the training step is replaced by the shipped checkpoint of that
(regulariser, seed): it is written into the report's run cache as an ordinary finished run
(``runs/<reg>-shipped-<hash>/checkpoint.pt``), so every later step -- energies, the Figure 4
sweep, one-shot prune + fine-tune, the iterative pipeline -- runs unchanged on it. The run's
config is the shipped one with the data set of the demo (the embedded sample: its 1,000 test
images are what the demo reports; its 498 training images that lie in the shipped networks' own
validation hold-out, never trained on, are the validation split on which each method's criterion
is chosen (:func:`spec_data`); its 4,502 other training images are what fine-tuning sees).

Example:
    >>> from oicsr_lab.experiments.shipped import shipped_grid
    >>> regs, seeds, missing = shipped_grid("resnet20", ["l2"])
    >>> "l2" in regs
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..data import DatasetSplits
from ..errors import ConfigError
from ..train import TrainConfig
from .runs import TrainedRun, cached, config_hash

SHIPPED = "shipped"  # spec["source"] of presets that prune the shipped models instead of training


def is_shipped(spec: dict[str, Any]) -> bool:
    """Whether ``spec`` prunes shipped models (no training)."""
    return spec.get("source") == SHIPPED


def shipped_grid(model: str, regs: list[str] | None = None, seeds: list[int] | None = None,
                 width: float = 1.0) -> tuple[list[str], list[int], list[str]]:
    """``(regs, seeds, missing)``: the regularisers and seeds the shipped set covers for ``model``.

    ``regs`` (default: every shipped one) keeps its order; ``seeds`` (default: every seed shipped
    for each of those regularisers) must be shipped for all of them. ``missing`` lists, as
    ``"reg seed s"``, models shipped for some but not all regularisers (left out of the grid).
    Raises ConfigError naming what is shipped when nothing fits.
    """
    from ..pretrained import list_pretrained

    have: dict[str, set[int]] = {}
    for e in list_pretrained():
        if e["model"] == model and float(e.get("width", 1.0)) == float(width):
            have.setdefault(e["reg"], set()).add(int(e["seed"]))
    listing = ", ".join(f"{r} seeds {sorted(s)}" for r, s in sorted(have.items())) or "none"
    regs = list(regs) if regs else sorted(have, key=_reg_order)
    absent = [r for r in regs if r not in have]
    if absent:
        raise ConfigError(f"no shipped {model} model for {', '.join(absent)}; shipped: {listing} "
                          f"(`oicsr-lab pretrained list`; drop them from --regs or train them with --preset course)")
    common = set.intersection(*(have[r] for r in regs))
    if seeds is not None:
        lacking = [s for s in seeds if s not in common]
        if lacking:
            raise ConfigError(f"seed(s) {lacking} are not shipped for every one of {', '.join(regs)}; "
                              f"shipped: {listing}")
        common = set(seeds)
    if not common:
        raise ConfigError(f"no seed is shipped for every one of {', '.join(regs)}; shipped: {listing}")
    missing = [f"{r} seed {s}" for r in regs for s in sorted(have[r] - common)]
    return regs, sorted(common), missing


def _reg_order(reg: str) -> tuple[int, str]:
    """The regulariser registry's menu order (L2, GL, L1-BN, OICSR-GL, ...), unknown names last."""
    from ..regularizers import names

    order = names()
    return (order.index(reg) if reg in order else len(order), reg)


def spec_data(spec: dict[str, Any], data: DatasetSplits) -> DatasetSplits:
    """The data every step of ``spec`` sees: ``data`` itself, or for shipped models the embedded sample
    with the 498 training images they never trained on as ``val`` (:mod:`oicsr_lab.pretrained.holdout`)."""
    if not is_shipped(spec):
        return data
    from ..pretrained import find
    from ..pretrained.holdout import with_shipped_validation

    base = spec["base_config"]
    entries = [find(base["model"], r, s, width=float(base["width"])) for r in spec["regs"] for s in spec["seeds"]]
    return with_shipped_validation(data, entries)


def shipped_run(spec: dict[str, Any], root: Path, reg: str, seed: int, data: DatasetSplits,
                log: Callable[[str], None] | None = None) -> TrainedRun:
    """The shipped (reg, seed) model of ``spec`` as a finished run under ``root/runs`` (written once, cached).

    Its config is the shipped training config with ``spec``'s data set and validation size; its
    ``test_acc`` is measured on ``data``'s test split (what the report shows next to the
    manifest's full-test accuracy).
    """
    from ..inference import inference_copy
    from ..pretrained import find, load_entry
    from ..train import evaluate, save_checkpoint

    base = spec["base_config"]
    entry = find(base["model"], reg, seed, width=float(base["width"]))
    cfg = TrainConfig.from_dict(entry["config"]).replace(
        dataset=base["dataset"], val_images=base["val_images"], train_subset=None, test_subset=None,
        precision=base["precision"]).validate()
    key = config_hash({"sha256": entry["sha256"], "config": cfg.to_dict()})
    folder = Path(root) / "runs" / f"{reg}-{SHIPPED}-{key}"

    def compute(f: Path) -> dict[str, Any]:
        if log is not None:
            log(f"shipped {entry['name']} -> {f}")
        model = load_entry(entry)
        arch = {"model": entry["model"], "width": float(entry["width"]), "num_classes": int(entry["num_classes"])}
        save_checkpoint(f / "checkpoint.pt", {"config": cfg.to_dict(), "arch": arch, "epoch": int(entry["epochs"]),
                                              "model": model.state_dict(), "history": [], "shipped": entry["name"]})
        acc = evaluate(inference_copy(model), data, data.test, channels_last=True)["acc"]  # ~2x faster on a CPU
        return {"config": cfg.to_dict(), "reg": reg, "strength": cfg.strength, "reg_options": cfg.reg_options,
                "seed": seed, "epochs": int(entry["epochs"]), "test_acc": acc, "test_images": len(data.test),
                "shipped": entry["name"], "shipped_sha256": entry["sha256"],
                "shipped_full_test_acc": entry.get("test_acc"), "wall_s": 0.0}

    result, hit = cached(folder, compute)
    return TrainedRun(folder, cfg, result, hit)


def shipped_reference(runs_of_seed: dict[str, TrainedRun], root: Path) -> dict[str, Any] | None:
    """The fine-tune reference of a demo seed: the shipped dense L2 network itself (no extra epochs)."""
    ref = runs_of_seed.get("l2")
    if ref is None:
        return None
    return {"test_acc": ref.result["test_acc"], "epochs": ref.result["epochs"],
            "folder": str(ref.folder.relative_to(root)),
            "note": "shipped dense L2; the pruned networks had the fine-tune epochs on top"}
