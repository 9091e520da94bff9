"""Statistics over seeds: the mean with its 95 % t-interval, and paired per-seed differences.

The lab compares methods trained from the same seeds, so a method comparison is *paired*: for
each seed ``s`` the difference ``a_s - b_s`` removes what the seed does to both (the same
initialisation, data order and validation split) and its t-interval is far narrower than the
two separate intervals suggest. Intervals are Student-t intervals over seeds
(``scipy.stats.t``), which assume roughly normal per-seed results; with ``n < 2`` no interval
exists and the bounds are NaN (a single seed is an anecdote, and the tables say ``n=1``).

Example:
    >>> from oicsr_lab.stats import mean_ci, paired_ci
    >>> m = mean_ci([60.0, 62.0, 64.0])
    >>> round(m.mean, 2), round(m.lo, 2), round(m.hi, 2), m.n
    (62.0, 57.03, 66.97, 3)
    >>> d = paired_ci([61.0, 63.0, 65.0], [60.0, 62.0, 64.0])  # a always one point ahead
    >>> d.mean, d.lo, d.hi
    (1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

CONFIDENCE = 0.95
METHOD = "Student-t interval over seeds"


@dataclass(frozen=True)
class Interval:
    """A mean and its two-sided confidence interval over ``n`` values."""

    mean: float
    lo: float
    hi: float
    n: int
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN without an interval)."""
        return (self.hi - self.lo) / 2

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero (a difference 'holds' at this level).

        A zero-width interval (every seed gave exactly the same value, which accuracies counted in steps of a few
        test images do by coincidence) has no spread to judge by, so it never holds.
        """
        return self.n >= 2 and self.hi > self.lo and (self.lo > 0 or self.hi < 0)

    def fmt(self, digits: int = 1) -> str:
        """``"62.0 [57.0, 67.0]"``, or ``"62.0 (n=1)"`` without an interval."""
        if self.n < 2 or math.isnan(self.lo):
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"

    def as_dict(self) -> dict[str, float | int | None]:
        """Plain-dict form for JSON/CSV (a missing bound is None: strict JSON has no NaN)."""
        bound = lambda v: None if math.isnan(v) else v  # noqa: E731
        return {"mean": self.mean, "lo": bound(self.lo), "hi": bound(self.hi), "n": self.n,
                "confidence": self.confidence}


def _clean(values: Iterable[float]) -> list[float]:
    out = [float(v) for v in values]
    if any(math.isnan(v) for v in out):
        raise ValueError("statistics over seeds got NaN; drop missing seeds explicitly before summarising")
    return out


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean of ``values`` and its Student-t confidence interval (NaN bounds when fewer than 2 values)."""
    from scipy import stats

    xs = _clean(values)
    n = len(xs)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = sum(xs) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, confidence)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence)


def paired_ci(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean of the per-seed differences ``a[i] - b[i]`` and its t-interval (same seeds, same order)."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs the same seeds on both sides, got {len(a)} and {len(b)} values")
    return mean_ci([x - y for x, y in zip(_clean(a), _clean(b))], confidence)
