"""Calibration data for data-driven criteria: a few labelled batches of the training or validation split.

Test images are for reported numbers only: a criterion that looked at them would leak the test set
into the pruning decision. :func:`calibration_data` refuses ``"test"``; a hand-made
:class:`Calibration` must name the split its loader reads (``"train"`` or ``"val"``). The batches
are materialised once, so several criteria can score the same images, and every
:class:`~oicsr_lab.criteria.base.ChannelScores` they produce records ``batches``, ``images``
and ``split``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable

import torch

from ..errors import ConfigError

SPLITS = ("train", "val")
__all__ = ["Calibration", "calibration_data", "SPLITS"]


@dataclass
class Calibration:
    """``batches``: ``[(images, labels), ...]`` drawn from ``split`` (``"train"`` or ``"val"``)."""

    batches: list[tuple[torch.Tensor, torch.Tensor]]
    split: str

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"calibration split {self.split!r} is not allowed; use one of {', '.join(SPLITS)} "
                              "(test images are for reported numbers only)")
        if not self.batches:
            raise ConfigError("calibration has no batches; pass a loader that yields (images, labels) batches")

    @classmethod
    def from_loader(cls, loader: Iterable[Any], split: str, batches: int) -> "Calibration":
        """The first ``batches`` ``(images, labels)`` batches of ``loader``, which reads ``split``."""
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
            raise ConfigError(f"calibration batches must be a positive integer, got {batches!r}")
        taken = []
        for item in itertools.islice(iter(loader), batches):
            if not (isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], torch.Tensor)):
                raise ConfigError("the calibration loader must yield (images, labels) pairs of tensors, "
                                  f"got {type(item).__name__}")
            taken.append((item[0].detach(), torch.as_tensor(item[1]).detach()))
        return cls(taken, split)

    def __len__(self) -> int:
        return len(self.batches)

    @property
    def images(self) -> int:
        """Number of images over all batches."""
        return sum(int(x.shape[0]) for x, _ in self.batches)

    def __repr__(self) -> str:
        return f"Calibration({len(self)} batches, {self.images} images of split {self.split!r})"


def calibration_data(data: Any, split: str = "train", batches: int = 4, batch_size: int = 64, seed: int = 0,
                     device: str | torch.device = "cpu") -> Calibration:
    """``batches`` shuffled (seeded), normalised, un-augmented batches of ``data``'s ``split`` (train or val).

    Example:
        >>> from oicsr_lab import load_dataset
        >>> calib = calibration_data(load_dataset("cifar10-sample"), "train", batches=2, batch_size=16)
        >>> calib
        Calibration(2 batches, 32 images of split 'train')
    """
    from ..data import make_loader

    if split not in SPLITS:
        raise ConfigError(f"calibration split {split!r} is not allowed; use 'train' or 'val' "
                          "(test images are for reported numbers only)")
    part = getattr(data, split, None)
    if part is None:
        fix = "hold one out with data.with_validation(n)" if split == "val" else "pass a DatasetSplits"
        raise ConfigError(f"{getattr(data, 'name', type(data).__name__)} has no {split!r} split; {fix}")
    loader = make_loader(part, batch_size, data.mean, data.std, shuffle=True, seed=seed, device=device,
                         input_size=getattr(data, "input_size", 224))
    return Calibration.from_loader(loader, split, batches)
