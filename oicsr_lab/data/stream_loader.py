"""Batches of a :class:`~oicsr_lab.data.streaming.StreamingSplit`: ImageNet transforms, a map-style
dataset that decodes one image per item, and :class:`StreamingLoader` over ``torch.utils.data.DataLoader``.

The augmentation of image ``i`` in epoch ``e`` is drawn from a generator seeded by ``(seed, e, i)``,
so a run sees the same crops whatever the number of workers or processes, and resumes exactly.
Workers hand over uint8 tensors; normalisation happens on the training device.
"""

from __future__ import annotations

import os
from typing import Iterator

import torch
from PIL import Image

from ..errors import ConfigError, DataError
from .batches import BatchLoader
from .streaming import WORKERS_ENV, StreamingSplit


def train_transform(input_size: int):
    """RandomResizedCrop + horizontal flip, as uint8 CHW (normalised later on the device)."""
    from torchvision import transforms as T

    return T.Compose([T.RandomResizedCrop(input_size), T.RandomHorizontalFlip(), T.PILToTensor()])


def eval_transform(input_size: int):
    """Resize(input_size * 256/224) + CenterCrop(input_size) (256/224 at 224), as uint8 CHW."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(round(input_size * 256 / 224)), T.CenterCrop(input_size), T.PILToTensor()])


class _Images(torch.utils.data.Dataset):
    """Decode + transform one image; a key ``(index, epoch)`` seeds its augmentation."""

    def __init__(self, split: StreamingSplit, input_size: int, augment: bool, seed: int) -> None:
        self.paths, self.labels = split.paths, split.labels.numpy()
        self.augment, self.seed = augment, seed
        self.transform = train_transform(input_size) if augment else eval_transform(input_size)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key) -> tuple[torch.Tensor, int]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        path = os.fsdecode(self.paths[index])
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except Exception as e:
            why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise DataError(f"{path}: image could not be decoded ({why}); replace or delete that file") from None
        if self.augment:  # torchvision's transforms draw from the global CPU RNG: seed it per image, then restore it
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(((self.seed * 1_000_003 + epoch) * 10_000_019
                                                     + int(index)) % (2**63))
                x = self.transform(img)
        else:
            x = self.transform(img)
        return x, int(self.labels[index])


class _Keys(torch.utils.data.Sampler):
    """Tag the indices of ``sampler`` with its epoch, so workers can seed each image's augmentation."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = getattr(self.sampler, "epoch", 0)
        return ((int(i), epoch) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class _Strided(torch.utils.data.Sampler):
    """Indices ``rank, rank + world, ...`` in order: a rank's share of an evaluation, nothing repeated."""

    def __init__(self, n: int, rank: int, world_size: int) -> None:
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


def resolve_workers(num_workers: int | None = None) -> int:
    """Worker processes: the argument, else ``$OICSR_LAB_WORKERS``, else min(8, CPUs - 1) shared by the local ranks."""
    if num_workers is None and os.environ.get(WORKERS_ENV, "").strip():
        raw = os.environ[WORKERS_ENV].strip()
        try:
            num_workers = int(raw)
        except ValueError:
            raise ConfigError(f"{WORKERS_ENV}={raw!r} is not a whole number; set it to 0 "
                              "(no workers) or more") from None
    if num_workers is not None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"num_workers must be a whole number >= 0, got {num_workers!r}")
        return num_workers
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(0, min(8, (cpus - 1) // local))


class StreamingLoader(BatchLoader):
    """Normalised float batches of a :class:`StreamingSplit` from a ``torch.utils.data.DataLoader``.

    Same arguments as :class:`~oicsr_lab.data.TensorLoader` (``batch_size`` is the global batch;
    each of ``world_size`` ranks loads ``batch_size // world_size``). Shuffled loaders use a seeded
    ``DistributedSampler`` (also with one process; :meth:`set_epoch` reshuffles); unshuffled ones
    give each rank every ``world_size``-th image. Workers persist across epochs; memory is pinned on CUDA.
    """

    def __init__(self, split: StreamingSplit, batch_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                 shuffle: bool = False, augment: bool = False, drop_last: bool = False,
                 device: torch.device | str = "cpu",
                 seed: int = 0, rank: int = 0, world_size: int = 1, channels_last: bool = False,
                 input_size: int = 224, num_workers: int | None = None) -> None:
        from torch.utils.data import DataLoader, DistributedSampler

        super().__init__(split, batch_size, mean, std, shuffle, augment, drop_last, device, seed, rank, world_size,
                         channels_last)
        self.num_workers = resolve_workers(num_workers)
        dataset = _Images(split, input_size, augment, seed)
        if shuffle:
            self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                              drop_last=drop_last)
        else:
            self.sampler = _Strided(len(dataset), rank, world_size)
        workers = self.num_workers
        self.loader = DataLoader(
            dataset, batch_size=batch_size // world_size, sampler=_Keys(self.sampler), num_workers=workers,
            pin_memory=self.device.type == "cuda", drop_last=drop_last, persistent_workers=workers > 0,
            prefetch_factor=4 if workers > 0 else None,
            generator=torch.Generator().manual_seed(seed),  # worker base seeds: never drawn from the global RNG
        )

    @property
    def sharded(self) -> bool:
        """True when each rank sees only its share of the split (the caller sums results over ranks)."""
        return self.world_size > 1

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle and augmentation to draw."""
        super().set_epoch(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        it = iter(self.loader)
        while True:
            try:
                x, y = next(it)
            except StopIteration:
                return
            except DataError as e:  # re-raised from a worker with its traceback: keep the original one line
                last = str(e).strip().splitlines()[-1] if str(e).strip() else ""
                raise DataError(last.split("DataError: ", 1)[-1] or "an image could not be loaded") from None
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            x = (x.float() - self._mean) / self._std
            # the layout asked for, not the one indexing left: a channels_last input alone turns the convolutions
            # to channels_last (oicsr_lab.memory_format says where that is unsafe)
            x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
            yield x, y
