"""Small helpers shared by the CIFAR zoo."""

from __future__ import annotations


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels * width`` rounded, never below 1."""
    return max(1, int(round(channels * width)))
