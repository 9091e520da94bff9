"""Readable views of a GroupSet: a table (list of dicts) and a text summary."""

from __future__ import annotations

from .types import ChannelGroup, GroupSet


def describe(groupset: GroupSet) -> str:
    """Placeholder."""
    return ""


def groups_table(groupset: GroupSet) -> list[dict]:
    """Placeholder."""
    return []
