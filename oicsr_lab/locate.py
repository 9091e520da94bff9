"""Which saved model a path names: what ``oicsr-lab eval`` and ``oicsr-lab prune --from`` accept.

A path may be

* a training run folder or its ``checkpoint.pt`` (``oicsr-lab train``, ``reproduce``'s ``runs/<reg>-<hash>``);
* a pruning run folder (``oicsr-lab prune --out``, ``reproduce``'s ``pipelines/<reg>-<hash>``): its
  final model, i.e. the model of the last finished stage;
* any ``.pt`` a pruning run saved (``dense.pt``, ``step<i>/pruned.pt``, ``step<i>/retrained.pt``,
  ``finetune/finetuned.pt``) or any other :func:`~oicsr_lab.pruning.save_pruned` file;
* the epoch checkpoint of a pruning run's (re)training stage (``step<i>/train/checkpoint.pt``),
  which stands for the model that stage saved;
* a report folder (``reproduce --out``) together with ``reg`` (and ``seed``): that training run.

The training configuration travels with training checkpoints and with pruning runs
(``state.json``); a ``save_pruned`` file written elsewhere carries none (``config`` is None).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .errors import CheckpointError

TRAINED, PRUNED = "trained", "pruned"
WHAT = ("pass a training run folder or its checkpoint.pt, a prune output folder or a .pt it saved, "
        "or a report folder with --reg")


@dataclass
class ModelSource:
    """A loaded model and what is known about where it came from."""

    model: nn.Module
    path: Path  # the file the weights were read from
    kind: str  # "trained" (a training checkpoint) or "pruned" (a save_pruned file)
    config: dict[str, Any] | None  # the TrainConfig dict it was trained / pruned with; None when unknown
    epoch: int | None = None  # epochs done (training checkpoints only)
    num_classes: int | None = None  # recorded class count (training checkpoints only)
    report: Path | None = None  # the report folder it was picked from
    notes: list[str] = field(default_factory=list)


def is_report_folder(path: str | Path) -> bool:
    """True for a ``reproduce`` output folder (``summary.json`` or ``runs/``, and no checkpoint of its own)."""
    p = Path(path)
    if not p.is_dir() or (p / "checkpoint.pt").is_file() or (p / "state.json").is_file():
        return False
    return (p / "summary.json").is_file() or (p / "runs").is_dir()


def locate_model(path: str | Path, reg: str | None = None, seed: int | None = None,
                 map_location: str | torch.device = "cpu") -> ModelSource:
    """Load the model ``path`` names (see the module docstring); ``reg``/``seed`` pick a report folder's run.

    Raises CheckpointError (one line) for a missing, damaged or foreign file, naming what to pass
    instead and, for a missing path, the runs and reports found nearby.
    """
    notes: list[str] = []
    report = None
    p = Path(path)
    if is_report_folder(p):
        report, p = p, _report_run(p, reg, seed, notes)
    if p.is_dir():
        p = _model_file_of_folder(p, notes)
    if not p.is_file():
        raise CheckpointError(f"{path}: no checkpoint there; {WHAT}{_nearby(Path(path))}")
    blob = _read(p)
    fmt = blob.get("format") if isinstance(blob, dict) else None
    from .pruning.serialize import FORMAT as PRUNED_FORMAT
    from .train.checkpoint import FORMAT as TRAINED_FORMAT

    if fmt == TRAINED_FORMAT and "widths" in (blob.get("arch") or {}):
        saved = _stage_model(p)
        if saved is not None:
            notes.append(f"{p} is the epoch checkpoint of a pruning stage; using the model that stage saved, {saved}")
            p, fmt = saved, PRUNED_FORMAT
    del blob
    if fmt == PRUNED_FORMAT:
        from .pruning.serialize import load_pruned

        state = pipeline_state_of(p)
        return ModelSource(load_pruned(p, map_location=map_location), p, PRUNED, state["config"] if state else None,
                           report=report, notes=notes)
    if fmt == TRAINED_FORMAT:
        from .train.checkpoint import load_trained

        try:
            model, blob = load_trained(p, map_location=map_location)
        except CheckpointError:
            if "widths" in (_read(p).get("arch") or {}):
                raise CheckpointError(f"{p}: the epoch checkpoint of an unfinished pruning stage; evaluate the "
                                      f"pruning run's folder {p.parent.parent.parent} (its last finished stage) "
                                      f"or continue it with prune --resume") from None
            raise
        cfg = blob.get("config") or {}
        if isinstance(blob.get("epoch"), int) and blob["epoch"] < cfg.get("epochs", 0):
            notes.append(f"{p}: an unfinished run ({blob['epoch']} of {cfg['epochs']} epochs); "
                         f"`oicsr-lab train --resume` continues it")
        return ModelSource(model, p, TRAINED, blob.get("config"), epoch=blob.get("epoch"),
                           num_classes=(blob.get("arch") or {}).get("num_classes"), report=report, notes=notes)
    raise CheckpointError(f"{p}: not an oicsr-lab training checkpoint or pruned model (format {fmt!r}); {WHAT}")


def pipeline_state(folder: str | Path) -> dict[str, Any] | None:
    """The ``state.json`` of a pruning run folder, or None when ``folder`` holds none (or a foreign one)."""
    from .pruning.iterative import STATE_FORMAT

    f = Path(folder) / "state.json"
    if not f.is_file():
        return None
    try:
        state = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) and state.get("format") == STATE_FORMAT else None


def pipeline_state_of(pruned_file: Path) -> dict[str, Any] | None:
    """The state of the pruning run a saved ``.pt`` belongs to (its folder or the one above), if any."""
    for folder in (pruned_file.parent, pruned_file.parent.parent):
        state = pipeline_state(folder)
        if state is not None:
            return state
    return None


def _read(p: Path) -> Any:
    """``torch.load(p, weights_only=True)`` with a one-line error for a damaged file."""
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, not a torch file
        msg = (str(e).strip().splitlines() or [""])[0][:120]
        raise CheckpointError(f"{p}: truncated or corrupt checkpoint ({type(e).__name__}: {msg}); "
                              f"re-save it or pass another file") from None


def _model_file_of_folder(d: Path, notes: list[str]) -> Path:
    """The model file of a training run folder or a pruning run folder (else the folder itself)."""
    if (d / "checkpoint.pt").is_file():
        return d / "checkpoint.pt"
    state = pipeline_state(d)
    if state is None:
        if (d / "state.json").is_file():
            raise CheckpointError(f"{d / 'state.json'}: not a readable oicsr-lab pruning state; {WHAT}")
        return d
    if not state.get("model_file"):
        raise CheckpointError(f"{d}: the pruning run has not finished a stage yet; continue it with "
                              f"`oicsr-lab prune --resume --out {d} ...` or pass the model it started from")
    if not state.get("done"):
        notes.append(f"{d}: the pruning run is unfinished; using its last finished stage, {state['model_file']}")
    return d / state["model_file"]


def _stage_model(checkpoint: Path) -> Path | None:
    """The model a pruning stage saved next to its epoch checkpoint (``<stage>/train/checkpoint.pt``)."""
    from .pruning.serialize import FORMAT as PRUNED_FORMAT

    train_dir = checkpoint.parent
    for cand in (train_dir / "trained.pt", train_dir.parent / "retrained.pt", train_dir.parent / "finetuned.pt"):
        if cand.is_file() and cand != checkpoint:
            blob = _read(cand)
            if isinstance(blob, dict) and blob.get("format") == PRUNED_FORMAT:
                return cand
    return None


def _report_run(report: Path, reg: str | None, seed: int | None, notes: list[str]) -> Path:
    """The training run folder of ``reg`` (and ``seed``) in a report folder."""
    runs = _report_runs(report)
    regs = sorted({r for r, _, _ in runs})
    seeds = sorted({s for _, s, _ in runs if s is not None})
    choose = f"--reg {'|'.join(regs)}" + (f" and --seed {'|'.join(map(str, seeds))}" if len(seeds) > 1 else "")
    if not runs:
        raise CheckpointError(f"{report}: a report folder without training runs yet; run `oicsr-lab reproduce "
                              f"--out {report}` first or pass a run folder")
    if reg is None:
        raise CheckpointError(f"{report} is a report folder; choose one of its runs with {choose}")
    want = seed if seed is not None else (seeds[0] if seeds else None)
    match = [f for r, s, f in runs if r == reg and (want is None or s == want)]
    if not match:
        raise CheckpointError(f"{report}: no {reg} run{f' of seed {want}' if want is not None else ''} in this "
                              f"report; choose with {choose}")
    if len(match) > 1:
        raise CheckpointError(f"{report}: {len(match)} {reg} runs ({', '.join(str(m) for m in match[:4])}); "
                              f"pass one of these folders instead of the report folder")
    if seed is None and len(seeds) > 1:
        notes.append(f"{report}: runs of seeds {seeds}; using seed {want} (--seed picks another)")
    return match[0]


def _report_runs(report: Path) -> list[tuple[str, int | None, Path]]:
    """``(reg, seed, run folder)`` of a report's runs: from ``summary.json``, else from ``runs/*/``."""
    try:
        listed = json.loads((report / "summary.json").read_text())["runs"]
        return [(reg, int(s),
                 report / entry["folder"]) for s, by_reg in listed.items() for reg, entry in by_reg.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no (complete) summary yet, e.g. an interrupted reproduce
    found = []
    for ckpt in sorted((report / "runs").glob("*/checkpoint.pt")):
        folder = ckpt.parent
        try:
            seed = int(json.loads((folder / "config.json").read_text())["config"]["seed"])
        except (OSError, ValueError, KeyError, TypeError):
            seed = None
        found.append((folder.name.rsplit("-", 1)[0], seed, folder))
    return found


def _nearby(path: Path) -> str:
    """``"; found: ..."`` listing run folders and reports near ``path`` (and under ./runs, ./reports)."""
    bases = [Path("runs"), Path("reports")]
    anc = path.parent
    while str(anc) not in ("", ".") and not anc.is_dir():
        anc = anc.parent
    if str(anc) not in ("", ".") and anc.is_dir() and anc not in bases:
        bases.insert(0, anc)
    runs, reports = [], []
    for base in bases:
        if not base.is_dir():
            continue
        for d in sorted(base.iterdir()):
            if not d.is_dir():
                continue
            if (d / "checkpoint.pt").is_file() or (d / "state.json").is_file():
                runs.append(str(d))
            elif is_report_folder(d):
                reports.append(str(d))
    parts = []
    if runs:
        parts.append("runs: " + ", ".join(runs[:4]) + (", ..." if len(runs) > 4 else ""))
    if reports:
        parts.append("reports (add --reg): " + ", ".join(reports[:4]) + (", ..." if len(reports) > 4 else ""))
    return ("; found " + "; ".join(parts)) if parts else ""


def output_classes(model: nn.Module, data: Any) -> int:
    """How many classes ``model`` predicts, from one forward pass on ``data.example_input()``."""
    device = next(model.parameters()).device
    was = model.training
    with torch.no_grad():
        n = int(model.eval()(data.example_input().to(device)).shape[-1])
    model.train(was)
    return n


def check_classes(source: ModelSource, data: Any) -> None:
    """Raise CheckpointError when ``data`` has another class count than ``source``'s model predicts."""
    n = source.num_classes if source.num_classes is not None else output_classes(source.model, data)
    if n != data.num_classes:
        raise CheckpointError(f"{source.path}: the model has {n} classes but {data.name} has {data.num_classes}; "
                              f"evaluate on the data set it was trained on")


__all__ = ["ModelSource", "locate_model", "is_report_folder", "pipeline_state", "pipeline_state_of",
           "check_classes", "output_classes"]
