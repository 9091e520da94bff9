"""Out-in-channel groups (the paper's Figure 1 object) found by tracing a model with torch.fx."""

from __future__ import annotations

from .report import describe, groups_table
from .tracer import find_groups
from .types import ChannelGroup, GroupSet, Slice, SliceKind

__all__ = ["find_groups", "describe", "groups_table", "ChannelGroup", "GroupSet", "Slice", "SliceKind"]
