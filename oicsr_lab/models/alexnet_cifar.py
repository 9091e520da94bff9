"""AlexNet-style network for 32x32 inputs (after Krizhevsky et al. 2012).

Five convs 64-192-384-256-256 (5x5, 5x5, then three 3x3) with 3x3/stride-2 max-pools after
conv1, conv2 and conv5 (32 -> 16 -> 8 -> 4), flatten of the 256x4x4 map, then three FC layers
4096 -> 1024 -> 1024 -> classes with dropout. The first FC consumes a C*H*W flatten, so its
in-channel ``i`` is the 16-column block produced by conv5 channel ``i`` (exercises the
flatten-to-Linear column blocks of the pruning code). ``batch_norm=True`` (default) puts BN
after every conv (conv bias off) so the L1-BN baseline applies; ``batch_norm=False`` is the
original BN-free form with conv biases. 7,707,594 parameters at width 1, 10 classes, BN on.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from . import register_model
from ._common import scaled
from ._weights import kaiming_init

# (out_channels, kernel, pool_after)
ALEXNET_CONVS: list[tuple[int, int, bool]] = [
    (64, 5, True), (192, 5, True), (384, 3, False), (256, 3, False), (256, 3, True)]


class AlexNetCifar(nn.Module):
    """Five conv layers with max-pools, flatten, three fully connected layers."""

    def __init__(self, num_classes: int = 10, width: float = 1.0, batch_norm: bool = True,
                 hidden: int = 1024, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for out, k, pool in ALEXNET_CONVS:
            out_ch = scaled(out, width)
            layers.append(nn.Conv2d(in_ch, out_ch, k, 1, k // 2, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU())
            if pool:
                layers.append(nn.MaxPool2d(3, 2, 1))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        fc = scaled(hidden, width)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_ch * 4 * 4, fc), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(fc, fc), nn.ReLU(),
            nn.Linear(fc, num_classes),
        )
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        return self.classifier(x)


@register_model("alexnet_cifar")
def alexnet_cifar(num_classes: int = 10, width: float = 1.0, **kwargs) -> AlexNetCifar:
    """AlexNet-style CIFAR net: conv 64-192-384-256-256, FC 4096-1024-1024-classes."""
    return AlexNetCifar(num_classes=num_classes, width=width, **kwargs)
