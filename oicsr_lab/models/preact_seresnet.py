"""Pre-activation ResNets with Squeeze-and-Excitation for CIFAR (the OICSR paper's PreActSeNet).

Combines He et al. 2016 ("Identity Mappings in Deep Residual Networks", pre-activation
BasicBlock) with Hu et al. 2018 ("Squeeze-and-Excitation Networks", reduction r = 16).
Stem conv3x3 64, four stages of 64/128/256/512 channels (strides 1/2/2/2), final BN-ReLU,
global pool, Linear. Block: BN-ReLU-conv3x3-BN-ReLU-conv3x3, then SE (global avgpool ->
1x1 conv reduce C/16 -> ReLU -> 1x1 conv expand -> sigmoid -> ``x * gate`` with gate
(N, C, 1, 1)), plus the shortcut (identity, or a 1x1 conv on the pre-activated input when
the shape changes). Registered: ``preact_seresnet18`` (2-2-2-2 blocks, 11,261,250 params at
width 1, 10 classes) and ``preact_seresnet34`` (3-4-6-3, 21,441,526). The block-internal
channel conv1 -> conv2 is the paper's prunable out-in-channel; SE channels follow the
residual width, which is coupled.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register_model
from ._common import scaled
from ._weights import kaiming_init


class SqueezeExcite(nn.Module):
    """Channel gate: avgpool -> 1x1 reduce -> ReLU -> 1x1 expand -> sigmoid; returns x * gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(self.pool(x)))))
        return x * gate


class PreActSEBlock(nn.Module):
    """Pre-activation BasicBlock with an SE gate on the residual branch."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, reduction: int = 16) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.se = SqueezeExcite(planes, reduction)
        self.has_projection = stride != 1 or in_planes != planes
        self.shortcut = (nn.Conv2d(in_planes, planes, 1, stride, bias=False)
                         if self.has_projection else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # has_projection is fixed at construction, so fx resolves this branch statically
        shortcut = self.shortcut(out) if self.has_projection else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return self.se(out) + shortcut


class PreActSEResNet(nn.Module):
    """Pre-activation SE-ResNet with four stages for 32x32 inputs."""

    def __init__(self, num_blocks: list[int], num_classes: int = 10, width: float = 1.0,
                 reduction: int = 16) -> None:
        super().__init__()
        widths = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        in_planes = widths[0]
        stages = []
        for i, (planes, n) in enumerate(zip(widths, num_blocks)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(PreActSEBlock(in_planes, planes, stride, reduction))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.relu(self.bn(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _make(depth: int, num_blocks: list[int]):
    def build(num_classes: int = 10, width: float = 1.0, reduction: int = 16) -> PreActSEResNet:
        return PreActSEResNet(num_blocks, num_classes=num_classes, width=width, reduction=reduction)

    build.__doc__ = f"Pre-activation SE-ResNet-{depth} for CIFAR (64-128-256-512, r=16)."
    return build


for _depth, _blocks in ((18, [2, 2, 2, 2]), (34, [3, 4, 6, 3])):
    register_model(f"preact_seresnet{_depth}")(_make(_depth, _blocks))
