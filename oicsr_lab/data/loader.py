"""Batches from in-memory uint8 tensors, with batched augmentation on the training device.

Pad-4 random crop + horizontal flip (and, when asked, Cutout) are drawn for the whole *global* batch from a generator
seeded by ``(seed, epoch)``, so a run is reproducible, resumable at an epoch boundary, and a
DistributedDataParallel rank sees exactly its share of the batch a single process would see.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .batches import BatchLoader
from .datasets import Split
from .stream_loader import StreamingLoader
from .streaming import StreamingSplit


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Pad-``pad`` random crop and random horizontal flip of a uint8/float batch ``(N, C, H, W)``."""
    return _crop_flip(x, *_draw_crop_flip(len(x), gen, pad), pad)


def _draw_crop_flip(n: int, gen: torch.Generator, pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row offsets, column offsets (in ``[0, 2*pad]``) and flip flags for ``n`` images."""
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    return oy, ox, flip


def _crop_flip(x: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor, pad: int) -> torch.Tensor:
    """Apply drawn crop offsets and flips to ``x`` (zero padding, as torchvision's RandomCrop)."""
    n, _, h, w = x.shape
    oy, ox, flip = oy.to(x.device), ox.to(x.device), flip.to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad))
    ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    rows = (oy[:, None] + ar_h)[:, :, None]  # (n, h, 1)
    cols = torch.where(flip[:, None], ox[:, None] + (w - 1 - ar_w), ox[:, None] + ar_w)[:, None, :]  # (n, 1, w)
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols]  # (n, h, w, C)
    return out.permute(0, 3, 1, 2)


def _draw_cutout(n: int, gen: torch.Generator, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cutout centres (row, column), uniform over the image, for ``n`` images."""
    return torch.randint(0, h, (n,), generator=gen), torch.randint(0, w, (n,), generator=gen)


def cutout(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square centred at ``(cy, cx)`` in each image of ``x`` (N, C, H, W), clipped at
    the border (DeVries & Taylor 2017, "Improved regularization of convolutional neural networks with Cutout").

    Applied after normalisation, so the square holds the data set's mean colour, as in the paper's code.

    >>> x = torch.ones(1, 3, 8, 8)
    >>> int((cutout(x, torch.tensor([0]), torch.tensor([0]), 4) == 0).sum())  # a 2x2 corner on 3 channels
    12
    """
    n, _, h, w = x.shape
    cy, cx = cy.to(x.device)[:, None], cx.to(x.device)[:, None]
    ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (ar_h >= cy - size // 2) & (ar_h < cy + size - size // 2)  # (n, h)
    in_cols = (ar_w >= cx - size // 2) & (ar_w < cx + size - size // 2)  # (n, w)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (n, h, w)
    return x * keep[:, None].to(x.dtype)


class TensorLoader(BatchLoader):
    """Iterate normalised float batches of a :class:`Split` held in memory.

    ``rank``/``world_size`` shard each global batch for DistributedDataParallel; ``augment``
    applies :func:`random_crop_flip`, then :func:`cutout` of side ``cutout`` when it is > 0 (the extra draws
    come after the crop's, so ``cutout=0`` reproduces the batches of earlier versions); ``channels_last``
    returns NHWC-strided tensors.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        shuffle: bool = False,
        augment: bool = False,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        cutout: int = 0,
    ) -> None:
        super().__init__(split, batch_size, mean, std, shuffle, augment, drop_last, device, seed, rank, world_size,
                         channels_last)
        if isinstance(cutout, bool) or not isinstance(cutout, int) or cutout < 0:
            raise ValueError(f"cutout must be a whole number of pixels >= 0, got {cutout!r}")
        self.cutout = cutout
        self._images = split.images.to(self.device)
        self._labels = split.labels.to(self.device)

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        n = len(self.split)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            holes = self.augment and self.cutout > 0
            if self.augment:  # drawn for the whole global batch on every rank, so ranks stay in step
                params = _draw_crop_flip(len(idx), gen, 4)
            if holes:
                centres = _draw_cutout(len(idx), gen, *self._images.shape[-2:])
            if self.world_size > 1:
                per = -(-len(idx) // self.world_size)
                part = slice(self.rank * per, (self.rank + 1) * per)
                idx = idx[part]
                if self.augment:
                    params = tuple(p[part] for p in params)
                if holes:
                    centres = tuple(c[part] for c in centres)
            x = self._images.index_select(0, idx)
            if self.augment:
                x = _crop_flip(x, *params, 4)
            y = self._labels.index_select(0, idx)
            x = (x.float() - self._mean) / self._std
            if holes:
                x = cutout(x, *centres, self.cutout)
            # the layout asked for, not the one indexing left: a channels_last input alone turns the convolutions
            # to channels_last (oicsr_lab.memory_format says where that is unsafe)
            x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
            yield x, y


def make_loader(
    split,
    batch_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    shuffle: bool = False,
    augment: bool = False,
    drop_last: bool = False,
    device: torch.device | str = "cpu",
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    channels_last: bool = False,
    input_size: int = 224,
    num_workers: int | None = None,
    cutout: int = 0,
):
    """The loader for ``split``: :class:`TensorLoader` for an in-memory :class:`Split`, a DataLoader-backed
    :class:`~oicsr_lab.data.stream_loader.StreamingLoader` for a :class:`~oicsr_lab.data.streaming.StreamingSplit`.

    ``input_size`` and ``num_workers`` only apply to streaming splits; ``cutout`` (the side of the square
    :func:`cutout` zeroes in each augmented image) only to in-memory ones.
    """
    if isinstance(split, StreamingSplit):
        if cutout:
            raise ConfigError(f"cutout={cutout} applies to in-memory data sets (CIFAR-sized images); a streamed "
                              "data set takes its augmentation from torchvision: set cutout to 0")
        return StreamingLoader(split, batch_size, mean, std, shuffle=shuffle, augment=augment, drop_last=drop_last,
                               device=device, seed=seed, rank=rank, world_size=world_size, channels_last=channels_last,
                               input_size=input_size, num_workers=num_workers)
    return TensorLoader(split, batch_size, mean, std, shuffle=shuffle, augment=augment, drop_last=drop_last,
                        device=device, seed=seed, rank=rank, world_size=world_size, channels_last=channels_last,
                        cutout=cutout)
