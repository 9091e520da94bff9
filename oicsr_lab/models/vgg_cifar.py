"""CIFAR VGG-16 with BatchNorm (Simonyan & Zisserman 2015; CIFAR variant of Liu et al. 2017).

Thirteen conv3x3-BN-ReLU layers 64-64-M-128-128-M-256x3-M-512x3-M-512x3-M (each "M" a 2x2
max-pool, so 32x32 becomes 1x1), flatten, then a single ``Linear(512, num_classes)``: the
common CIFAR variant (Network Slimming; kuangliu/pytorch-cifar) rather than the ImageNet
4096-4096 classifier. Convs have no bias because BN follows. 14,724,042 parameters at
width 1 with 10 classes (the usual "14.7 M"; the variant with conv biases has 14,728,266).
Every conv -> BN -> conv pair, and conv13 -> BN -> Linear, is an out-in-channel.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from . import register_model
from ._common import scaled
from ._weights import kaiming_init

VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                              512, 512, 512, "M", 512, 512, 512, "M"]


class CifarVGG(nn.Module):
    """VGG feature stack (conv3x3-BN-ReLU, max-pools) plus one linear classifier."""

    def __init__(self, cfg: list[int | str], num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                out_ch = scaled(int(v), width)
                layers += [nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
                           nn.BatchNorm2d(out_ch), nn.ReLU()]
                in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_ch, num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        return self.classifier(x)


@register_model("vgg16_bn")
def vgg16_bn(num_classes: int = 10, width: float = 1.0) -> CifarVGG:
    """VGG-16 with BN for CIFAR (13 convs, single Linear(512, classes) head)."""
    return CifarVGG(VGG16_CFG, num_classes=num_classes, width=width)
