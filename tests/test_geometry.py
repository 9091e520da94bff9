"""oicsr_lab.groups.geometry: the one definition of conv types, depthwise/grouped convs and channel widths."""

from __future__ import annotations

import torch.nn as nn

from oicsr_lab.groups.geometry import in_width, is_conv, is_depthwise, is_grouped, out_width, widths


def test_conv_kinds() -> None:
    plain, dw, grouped = nn.Conv2d(8, 16, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 16, 3, groups=4)
    one = nn.Conv2d(1, 1, 3, groups=1)  # groups == in == out == 1 is a plain conv, not depthwise
    dw_mult = nn.Conv2d(8, 16, 3, groups=8)  # depth multiplier 2: grouped (whole groups), not depthwise
    assert [is_depthwise(m) for m in (plain, dw, grouped, one, dw_mult)] == [False, True, False, False, False]
    assert [is_grouped(m) for m in (plain, dw, grouped, one, dw_mult)] == [False, False, True, False, True]
    assert all(is_conv(m) for m in (nn.Conv1d(2, 3, 1), nn.Conv3d(2, 3, 1), plain))
    assert not is_conv(nn.ConvTranspose2d(2, 3, 1)) and not is_conv(nn.Linear(2, 3))
    assert not is_depthwise(nn.Linear(4, 4)) and not is_grouped(nn.BatchNorm2d(4))


def test_widths() -> None:
    assert (in_width(nn.Conv2d(3, 5, 1)), out_width(nn.Conv2d(3, 5, 1))) == (3, 5)
    assert (in_width(nn.Linear(7, 2)), out_width(nn.Linear(7, 2))) == (7, 2)
    assert widths(nn.BatchNorm1d(6)) == (6, 6) and widths(nn.SyncBatchNorm(4)) == (4, 4)
    assert widths(nn.ReLU()) is None and widths(nn.ConvTranspose2d(2, 3, 1)) is None
