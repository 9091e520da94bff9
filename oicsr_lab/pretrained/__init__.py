"""Trained networks shipped with the package: ``pretrained("resnet20", reg="oicsr_gl", seed=0)``.

Each model was trained by this project's own code (``oicsr-lab reproduce --preset course``: full
CIFAR-10 less the 5,000 validation images, strengths chosen on the validation split) and is
stored as a compact fp16 state dict beside ``manifest.json``. The manifest records, per file:
the training config (strength, options, seed, epochs), dense test accuracy on the full test set
and on the embedded 1,000-image sample test set (both measured in fp32 after loading the fp16
file), validation accuracy, energy concentration, sha256, size, and the command that regenerates
it. Loading checks the sha256, so a corrupt or missing file fails with a one-line error instead
of returning a wrong network.

The *set* the demo, the notebooks and ``pretrained(reg=..., seed=...)`` use is the entries without
a ``variant``: one recipe (the course preset's 50 epochs) for every regulariser and seed, so their
comparison is fair. An entry with a ``variant`` (e.g. ``"150ep"``, the dense L2 trained on a
three-times-longer schedule as the accuracy reference) is shipped beside it, named
``resnet20-l2-s0-150ep``, and reached with ``variant="150ep"``; it never enters the set.

Example:
    >>> from oicsr_lab.pretrained import list_pretrained
    >>> isinstance(list_pretrained(), list)
    True
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import CheckpointError, ConfigError

MANIFEST = "manifest.json"
FORMAT = "oicsr-lab-pretrained"


def folder() -> Path:
    """Where the shipped files live (inside the installed package)."""
    return Path(str(resources.files("oicsr_lab.pretrained")))


def manifest(root: str | Path | None = None) -> dict[str, Any]:
    """The manifest (``{"format", "version", "models": [...]}``); an empty list when nothing is shipped."""
    path = Path(root or folder()) / MANIFEST
    if not path.is_file():
        return {"format": FORMAT, "version": 1, "models": []}
    return json.loads(path.read_text())


def variant_of(entry: dict[str, Any]) -> str:
    """An entry's variant: ``""`` for the main set, else a tag such as ``"150ep"``."""
    return str(entry.get("variant") or "")


def list_pretrained(root: str | Path | None = None, variant: str | None = "") -> list[dict[str, Any]]:
    """The shipped models' manifest entries (name, model, reg, seed, accuracies, file, sha256, ...).

    ``variant``: ``""`` (default) the main set; a tag, only that variant's entries; ``None``, every file shipped.
    """
    return [e for e in manifest(root)["models"] if variant is None or variant_of(e) == variant]


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find(model: str = "resnet20", reg: str = "oicsr_gl", seed: int = 0, root: str | Path | None = None,
         width: float = 1.0, variant: str = "") -> dict[str, Any]:
    """The manifest entry for (model, width, reg, seed, variant); ConfigError listing what is shipped otherwise."""
    entries = list_pretrained(root, variant=None)
    for e in entries:
        if (e["model"] == model and e["reg"] == reg and int(e["seed"]) == int(seed)
                and float(e.get("width", 1.0)) == float(width) and variant_of(e) == variant):
            return e
    have = ", ".join(f"{e['model']}/{e['reg']}/seed {e['seed']}" + (f"/{variant_of(e)}" if variant_of(e) else "")
                     for e in entries) or "none"
    wanted = f"{model}/{reg}/seed {seed}" + (f"/{variant}" if variant else "")
    raise ConfigError(f"no shipped model {wanted}; shipped: {have} (`oicsr-lab pretrained list`)")


def load_entry(entry: dict[str, Any], root: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Build the entry's network, check its file's sha256, load the weights in fp32, eval mode."""
    from ..train.run import build_checked

    path = Path(root or folder()) / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"{path}: shipped model file is missing; reinstall oicsr-lab (pip install -e .)")
    got = sha256(path)
    if got != entry["sha256"]:
        raise CheckpointError(f"{path}: sha256 {got[:12]}... does not match the manifest's {entry['sha256'][:12]}...; "
                              f"the file is corrupt: reinstall oicsr-lab")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = build_checked(entry["model"], int(entry["num_classes"]), float(entry["width"]))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in blob["state_dict"].items()}
    model.load_state_dict(state)
    return model.to(device).eval()


def pretrained(model: str = "resnet20", reg: str = "oicsr_gl", seed: int = 0, device: str | torch.device = "cpu",
               root: str | Path | None = None, width: float = 1.0, variant: str = "") -> nn.Module:
    """The shipped network trained under ``reg`` with ``seed``, ready for evaluation (fp32, eval mode).

    ``reg``: l2, gl, l1bn, oicsr_gl (and others where shipped); ``variant``: ``""`` for the main set,
    or a shipped variant's tag (``oicsr-lab pretrained list`` shows them); see :func:`list_pretrained`.
    """
    return load_entry(find(model, reg, seed, root, width, variant), root, device)


class _CallableModule(types.ModuleType):
    """This package, callable as its main function.

    ``oicsr_lab.pretrained("resnet20", reg=...)`` is the documented call, but once anything has run
    ``import oicsr_lab.pretrained`` (or ``from oicsr_lab.pretrained import ...``) Python binds the
    *package* to the ``oicsr_lab.pretrained`` attribute and the call failed with "'module' object is
    not callable" (found by the course notebooks, #18). Calling the package now calls :func:`pretrained`.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> nn.Module:
        return pretrained(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
