"""Batches from in-memory uint8 tensors, with batched augmentation on the training device.

Pad-4 random crop + horizontal flip are drawn for the whole *global* batch from a generator
seeded by ``(seed, epoch)``, so a run is reproducible, resumable at an epoch boundary, and a
DistributedDataParallel rank sees exactly its share of the batch a single process would see.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

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


class TensorLoader(BatchLoader):
    """Iterate normalised float batches of a :class:`Split` held in memory.

    ``rank``/``world_size`` shard each global batch for DistributedDataParallel; ``augment``
    applies :func:`random_crop_flip`; ``channels_last`` returns NHWC-strided tensors.
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
    ) -> None:
        super().__init__(split, batch_size, mean, std, shuffle, augment, drop_last, device, seed, rank, world_size,
                         channels_last)
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
            if self.augment:  # drawn for the whole global batch on every rank, so ranks stay in step
                params = _draw_crop_flip(len(idx), gen, 4)
            if self.world_size > 1:
                per = -(-len(idx) // self.world_size)
                part = slice(self.rank * per, (self.rank + 1) * per)
                idx = idx[part]
                if self.augment:
                    params = tuple(p[part] for p in params)
            x = self._images.index_select(0, idx)
            if self.augment:
                x = _crop_flip(x, *params, 4)
            y = self._labels.index_select(0, idx)
            x = (x.float() - self._mean) / self._std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
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
):
    """The loader for ``split``: :class:`TensorLoader` for an in-memory :class:`Split`, a DataLoader-backed
    :class:`~oicsr_lab.data.stream_loader.StreamingLoader` for a :class:`~oicsr_lab.data.streaming.StreamingSplit`.

    ``input_size`` and ``num_workers`` only apply to streaming splits.
    """
    if isinstance(split, StreamingSplit):
        return StreamingLoader(split, batch_size, mean, std, shuffle=shuffle, augment=augment, drop_last=drop_last,
                               device=device, seed=seed, rank=rank, world_size=world_size, channels_last=channels_last,
                               input_size=input_size, num_workers=num_workers)
    return TensorLoader(split, batch_size, mean, std, shuffle=shuffle, augment=augment, drop_last=drop_last,
                        device=device, seed=seed, rank=rank, world_size=world_size, channels_last=channels_last)
