"""The embedded sample's training images that no shipped network trained on: the demo's validation split.

The shipped networks trained on CIFAR-10's training split less a 5,000-image, class-balanced
validation hold-out (:func:`oicsr_lab.data.datasets.holdout_indices` with ``VAL_SEED``; the
course preset's ``val_images``). The embedded sample's 5,000 training images are byte-identical
CIFAR-10 training images (same class folder and file name as in the archive), so those of them
that fall in that hold-out -- 498 -- were never seen by any shipped network. The ``demo`` preset
makes every choice (each method's criterion) on exactly these images, so its validation split is
held out like the full protocol's, only smaller; fine-tuning sees the sample's other training
images.

``sample_holdout.json`` lists them by name (``class/NNNN.jpg``) and by index in the sample's
training order. It is computed from the CIFAR-10 archive by :func:`compute_sample_holdout`
(``python scripts/sample_holdout.py``); an archive-marked test recomputes it.

Example:
    >>> from oicsr_lab import load_dataset
    >>> from oicsr_lab.pretrained.holdout import with_shipped_validation
    >>> d = with_shipped_validation(load_dataset("cifar10-sample"))
    >>> len(d.val), len(d.train)
    (498, 4502)
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from ..data import DatasetSplits, sample_path
from ..data.datasets import SAMPLE_NAME, VAL_SEED, holdout_indices
from ..data.imagefolder import _iter_entries, _split_of
from ..errors import ConfigError

HOLDOUT_FILE = "sample_holdout.json"


def _train_entries(path: Path) -> list[tuple[str, str]]:
    """``(class/file, sha256 of its bytes)`` of the training images, in :func:`read_imagefolder`'s order."""
    import hashlib

    out = []
    for rel, data in _iter_entries(Path(path)):
        sc = _split_of(PurePosixPath(rel))
        if sc is not None and sc[0] == "train":
            out.append((f"{sc[1]}/{PurePosixPath(rel).name}", hashlib.sha256(data).hexdigest()))
    return out


def _names(path: Path) -> list[str]:
    """``class/file`` names of the training images in decoding order."""
    return [name for name, _ in _train_entries(path)]


def compute_sample_holdout(archive: str | Path, val_images: int = 5000,
                           sample: str | Path | None = None) -> dict[str, Any]:
    """Which sample training images are in the ``val_images`` hold-out of the CIFAR-10 ``archive``.

    Decodes nothing: one pass over each file's names and bytes. Checks that each such sample image
    is byte-identical to the archive's image of the same name.
    """
    arch = _train_entries(Path(archive))
    arch_names = [n for n, _ in arch]
    classes = sorted({n.split("/")[0] for n in arch_names})
    labels = torch.tensor([classes.index(n.split("/")[0]) for n in arch_names])
    _, val = holdout_indices(labels, val_images, len(classes))
    held = {arch_names[i]: arch[i][1] for i in val.tolist()}
    sample = Path(sample or sample_path())
    samp = _train_entries(sample)
    idx = [i for i, (n, _) in enumerate(samp) if n in held]
    differ = [samp[i][0] for i in idx if held[samp[i][0]] != samp[i][1]]
    if differ:
        raise ConfigError(f"{sample}: {len(differ)} sample images differ from the archive's (e.g. {differ[0]}); "
                          f"the sample is not the archive's images")
    return {"about": "sample training images in the shipped networks' validation hold-out (never trained on)",
            "dataset": "cifar10", "val_images": int(val_images), "val_seed": VAL_SEED,
            "sample_train_images": len(samp), "names": [samp[i][0] for i in idx], "indices": idx}


@lru_cache(maxsize=1)
def sample_holdout() -> dict[str, Any]:
    """The committed ``sample_holdout.json`` (names and sample indices of the held-out images)."""
    path = Path(__file__).with_name(HOLDOUT_FILE)
    return json.loads(path.read_text())


def with_shipped_validation(data: DatasetSplits, entries: list[dict[str, Any]] | None = None) -> DatasetSplits:
    """``data`` with the training images no shipped network trained on as its ``val``.

    On the embedded sample: its 498 images in the networks' hold-out. On the full CIFAR-10 archive
    (``data.name == "cifar10"``): that hold-out itself (``with_validation(5000)``, the split every
    course run held out), so fine-tuning sees the other 45,000.

    ``entries``: the shipped models it is for (default: all); each must have trained with the
    hold-out this file was computed for, else a ConfigError says which.
    """
    from . import list_pretrained

    h = sample_holdout()
    full = data.name == h["dataset"]  # the archive itself: its own hold-out, as the shipped networks' training had
    if not full and (data.name != SAMPLE_NAME or len(data.train) != h["sample_train_images"]):
        raise ConfigError(f"{data.name}: the shipped networks' held-out images are known for the embedded "
                          f"{SAMPLE_NAME} ({h['sample_train_images']} training images) and for {h['dataset']} "
                          f"itself; pass --data {SAMPLE_NAME} or --data {h['dataset']}")
    for e in entries if entries is not None else list_pretrained(variant=None):
        cfg = e.get("config", {})
        if cfg.get("dataset") != h["dataset"] or int(cfg.get("val_images") or 0) != h["val_images"]:
            raise ConfigError(f"shipped model {e.get('name')} trained on {cfg.get('dataset')} with "
                              f"val_images={cfg.get('val_images')}, not the {h['dataset']} hold-out of "
                              f"{h['val_images']} that {HOLDOUT_FILE} lists; recompute it (scripts/sample_holdout.py)")
    return data.with_validation(h["val_images"]) if full else data.hold_out(h["indices"])
