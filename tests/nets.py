"""Small hand-built networks shared by the tests, with their channel groups written out by hand."""

from __future__ import annotations

import torch
import torch.nn as nn

from oicsr_lab.groups.types import ChannelGroup, GroupSet, Slice


class Chain(nn.Module):
    """conv-bn-relu-conv-bn-relu-pool-flatten-linear on 3x8x8 inputs.

    conv2 consumes group ``conv1`` and produces group ``conv2``; the last conv feeds the Linear,
    so one of its channels owns ``block = H*W = 16`` fc columns.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12)
        self.fc = nn.Linear(12 * 16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(x, 1))


def chain_groups() -> GroupSet:
    """The two out-in-channel groups of :class:`Chain`, built by hand (not traced)."""
    r8, r12 = tuple(range(8)), tuple(range(12))
    return GroupSet([
        ChannelGroup("conv1", 8, (Slice("conv1", "out", r8), Slice("bn1", "bn", r8), Slice("conv2", "in", r8))),
        ChannelGroup("conv2", 12, (Slice("conv2", "out", r12), Slice("bn2", "bn", r12), Slice("fc", "in", r12, 16))),
    ])


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` in eval mode with random BN affine and running statistics (distinct energies, something to fold)."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.05, 1.5)
            m.bias.data.normal_(0.0, 0.2)
            m.running_mean.normal_(0.0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()
