"""Channel geometry of the leaf modules the lab prunes: which are convolutions, depthwise or grouped, and
their input/output channel widths. One definition, read by the tracer, FLOPs counting, the criteria,
planning, masks and surgery.

A convolution is ``nn.Conv1d/2d/3d`` (transposed convolutions are not prunable). It is *depthwise*
when ``1 < groups == in_channels == out_channels`` (one ``dw`` slice: a channel is its own group) and
*grouped* when ``1 < groups`` otherwise (pruned by whole conv groups, see :mod:`.modules`).
"""

from __future__ import annotations

import torch.nn as nn

__all__ = ["BN_TYPES", "CONV_TYPES", "in_width", "is_conv", "is_depthwise", "is_grouped", "out_width", "widths"]

CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BN_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm,)  # BatchNorm1d/2d/3d, SyncBatchNorm


def is_conv(m: nn.Module) -> bool:
    """True for a (non-transposed) Conv1d/2d/3d."""
    return isinstance(m, CONV_TYPES)


def is_depthwise(m: nn.Module) -> bool:
    """True for a depthwise conv: ``1 < groups == in_channels == out_channels``."""
    return is_conv(m) and 1 < m.groups == m.in_channels == m.out_channels


def is_grouped(m: nn.Module) -> bool:
    """True for a grouped conv that is not depthwise (``1 < groups``); pruned by whole conv groups."""
    return is_conv(m) and m.groups > 1 and not is_depthwise(m)


def in_width(m: nn.Module) -> int:
    """Input channels of a Conv, input features of a Linear, features of a BatchNorm."""
    if is_conv(m):
        return m.in_channels
    if isinstance(m, nn.Linear):
        return m.in_features
    return m.num_features


def out_width(m: nn.Module) -> int:
    """Output channels of a Conv, output features of a Linear, features of a BatchNorm."""
    if is_conv(m):
        return m.out_channels
    if isinstance(m, nn.Linear):
        return m.out_features
    return m.num_features


def widths(m: nn.Module) -> tuple[int, int] | None:
    """``(in width, out width)`` of a Conv/Linear/BatchNorm module; None for any other module."""
    if is_conv(m) or isinstance(m, (nn.Linear, *BN_TYPES)):
        return in_width(m), out_width(m)
    return None
