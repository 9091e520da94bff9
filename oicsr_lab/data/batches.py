"""The settings every batch loader shares (:class:`BatchLoader`), checked once for both loaders.

:class:`~oicsr_lab.data.loader.TensorLoader` (in-memory splits) and
:class:`~oicsr_lab.data.stream_loader.StreamingLoader` (images streamed from disk) both derive from it.
"""

from __future__ import annotations

import torch


class BatchLoader:
    """Base of the lab's loaders: the global batch, shuffle/augment flags, device, seed and DDP shard.

    ``batch_size`` is the global batch; each of ``world_size`` ranks sees ``batch_size // world_size``
    of it (``rank`` picks the share). ``mean``/``std`` (per channel, in [0, 1] units) normalise uint8
    images. ``set_epoch`` chooses the epoch whose shuffle and augmentation a loader draws.
    """

    def __init__(self, split, batch_size: int, mean: tuple[float, ...], std: tuple[float, ...], shuffle: bool,
                 augment: bool, drop_last: bool, device: torch.device | str, seed: int, rank: int, world_size: int,
                 channels_last: bool) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} must be divisible by world size {world_size}")
        self.split, self.batch_size, self.shuffle, self.augment = split, batch_size, shuffle, augment
        self.drop_last, self.device, self.seed = drop_last, torch.device(device), seed
        self.rank, self.world_size, self.channels_last = rank, world_size, channels_last
        self.epoch = 0
        self._mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255  # uint8 units
        self._std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle and augmentation to draw (like DistributedSampler)."""
        self.epoch = epoch
