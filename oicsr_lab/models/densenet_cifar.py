"""DenseNet-40 for CIFAR (Huang et al. 2017, "Densely Connected Convolutional Networks").

The basic (non-BC) DenseNet with growth rate k = 12: a stem conv3x3 with 2k = 24 channels
(as in the authors' Torch code and Network Slimming; the paper's text says 16, which gives
1,019,722 params), three dense blocks of 12 layers (depth 40 = 3*12 + stem + 2 transitions
+ classifier), no bottleneck, no compression. Each layer is pre-activation
BN-ReLU-conv3x3 whose k new maps are concatenated (``torch.cat``) after its input; a
transition is BN-ReLU-conv1x1-avgpool 2x2. Channels: 24 -> 168 | 168 -> 312 | 312 -> 456,
then BN-ReLU, global pool, Linear(456, classes). 1,059,298 parameters at width 1 with 10
classes (the usual "1.0 M"). ``width`` scales the growth rate (and the stem with it). A
layer's output channel is consumed by every later layer of its block and by the transition
(a BN slice in each): the concatenation coupling that pruning must honour.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register_model
from ._common import scaled
from ._weights import kaiming_init


class DenseLayer(nn.Module):
    """BN-ReLU-conv3x3 producing ``growth`` maps, concatenated after the input."""

    def __init__(self, in_planes: int, growth: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(F.relu(self.bn(x)))
        return torch.cat([x, out], 1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1-avgpool 2x2 between dense blocks."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(F.relu(self.bn(x))))


class CifarDenseNet(nn.Module):
    """DenseNet (no bottleneck, no compression) with three dense blocks for 32x32 inputs."""

    def __init__(self, depth: int = 40, growth_rate: int = 12, num_classes: int = 10,
                 width: float = 1.0) -> None:
        super().__init__()
        if (depth - 4) % 3 != 0:
            raise ValueError(f"CIFAR DenseNet depth must be 3n+4 (e.g. 40, 100), got {depth}")
        n = (depth - 4) // 3
        growth = scaled(growth_rate, width)
        planes = 2 * growth
        self.conv1 = nn.Conv2d(3, planes, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        for i in range(3):
            layers = []
            for _ in range(n):
                layers.append(DenseLayer(planes, growth))
                planes += growth
            blocks.append(nn.Sequential(*layers))
            if i < 2:
                blocks.append(Transition(planes, planes))
        self.block1, self.trans1, self.block2, self.trans2, self.block3 = blocks
        self.bn = nn.BatchNorm2d(planes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.trans1(self.block1(x))
        x = self.trans2(self.block2(x))
        x = F.relu(self.bn(self.block3(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


@register_model("densenet40")
def densenet40(num_classes: int = 10, width: float = 1.0) -> CifarDenseNet:
    """DenseNet-40 (k=12, no bottleneck) for CIFAR, ~1.06 M parameters."""
    return CifarDenseNet(40, 12, num_classes=num_classes, width=width)
