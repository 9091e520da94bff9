"""Statistics over seeds against scipy's own t-interval and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from oicsr_lab.stats import mean_ci, paired_ci


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=2, max_size=12))
def test_mean_ci_matches_scipy_t_interval(xs) -> None:
    got = mean_ci(xs)
    if np.std(xs) == 0:
        assert got.lo == pytest.approx(got.mean) and got.hi == pytest.approx(got.mean)
        return
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=stats.sem(xs))
    assert got.lo == pytest.approx(lo, abs=1e-9) and got.hi == pytest.approx(hi, abs=1e-9)
    assert got.n == len(xs)


def test_known_case() -> None:
    """Three seeds 60/62/64: sd 2, t(0.975, 2) = 4.303, half width 4.3027 * 2 / sqrt(3) = 4.9683."""
    m = mean_ci([60, 62, 64])
    assert m.mean == 62 and m.half_width == pytest.approx(4.9683, abs=1e-4)
    assert m.fmt() == "62.0 [57.0, 67.0]"


def test_single_seed_has_no_interval() -> None:
    m = mean_ci([55.5])
    assert m.mean == 55.5 and math.isnan(m.lo) and m.fmt() == "55.5 (n=1)" and not m.excludes_zero()


def test_paired_is_narrower_than_separate_intervals() -> None:
    """A seed effect shared by both methods cancels in the paired difference."""
    a, b = [50, 60, 70, 80], [49, 59.5, 69, 79.2]
    d = paired_ci(a, b)
    assert d.excludes_zero() and d.lo > 0
    assert mean_ci(a).lo < mean_ci(b).hi  # the separate intervals overlap
    assert d.mean == pytest.approx(np.mean(np.subtract(a, b)))


def test_identical_differences_are_not_called_a_finding() -> None:
    """Two seeds that both differ by exactly -7.0 give a zero-width interval: no spread to judge by, not bold."""
    d = paired_ci([50.0, 53.0], [57.0, 60.0])
    assert (d.mean, d.lo, d.hi) == (-7.0, -7.0, -7.0) and not d.excludes_zero()
    assert paired_ci([50.0, 53.2], [57.0, 60.0]).excludes_zero()  # a little spread, far from zero: it holds


def test_paired_needs_same_seeds_and_rejects_nan() -> None:
    with pytest.raises(ValueError, match="same seeds"):
        paired_ci([1, 2], [1])
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([1.0, float("nan")])
