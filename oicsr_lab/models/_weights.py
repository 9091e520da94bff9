"""Weight initialisation shared by the CIFAR zoo modules added after ResNet."""

from __future__ import annotations

import torch.nn as nn


def kaiming_init(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convs, unit/zero BN, Kaiming-uniform Linear, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
