"""Ordered weighted (group) lasso helpers: the GrOWL weights and the OWL proximal operator.

GrOWL (Zhang et al. 2018) penalises the group norms of a layer sorted in decreasing order,
``Omega(W) = sum_i theta_i * ||g_[i]||_2`` with ``||g_[1]|| >= ||g_[2]|| >= ...`` and
non-increasing weights ``theta_i = lambda1 + lambda2 * (p - i + 1)`` for ``i <= p``, else
``lambda1``. Here ``lambda1`` is the regulariser's ``strength``; the relative weights below
are returned with ``lambda1 = 1``.

The prox of OWL on a non-negative vector ``x`` (Bogdan et al. 2015, Zeng & Figueiredo 2014):
sort ``x`` decreasingly, subtract ``t * theta``, project onto the non-increasing cone
(isotonic regression, the pool-adjacent-violators solution) and clip at 0. The prox of the
*group* OWL applies it to the vector of group norms and rescales each group to its new norm
(exact for non-overlapping groups).
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError


def resolve_p(p: float | int, n: int) -> int:
    """Number of leading (largest) channels with the extra ``lambda2`` weight, for a part of n."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or p != p or p < 0:
        raise ConfigError(f"p must be a fraction in [0, 1] or a channel count >= 0, got {p!r}")
    if isinstance(p, int):
        return min(p, n)
    if p > 1:
        raise ConfigError(f"p as a float is a fraction of the channels and must be in [0, 1], got {p!r}; pass "
                          "an int for a count")
    return min(n, int(math.ceil(p * n)))


def growl_theta(n: int, p: float | int, lambda2_ratio: float | None) -> list[float]:
    """``theta_i / lambda1`` for i = 1..n: ``1 + r*(p - i + 1)`` for ``i <= p`` else 1.

    ``r = lambda2 / lambda1`` defaults to ``1/p`` so that the largest norm weighs
    ``2 * lambda1`` and the weights fall linearly to ``lambda1`` after the first ``p``.
    """
    pc = resolve_p(p, n)
    r = (1.0 / pc if pc else 0.0) if lambda2_ratio is None else float(lambda2_ratio)
    return [1.0 + r * (pc - i + 1) if i <= pc else 1.0 for i in range(1, n + 1)]


def isotonic_nonincreasing(z: torch.Tensor) -> torch.Tensor:
    """Least-squares non-increasing fit of each row of ``z`` (shape (B, n)); what PAV computes.

    Uses the min-max formula of the non-decreasing fit, ``y_i = min_{k>=i} max_{j<=i}
    mean(z[j..k])`` (Robertson et al. 1988), on the reversed row, vectorised as an (n, n)
    table per row: O(n^2) memory, no Python loop, no device sync.
    """
    if z.dim() == 1:
        return isotonic_nonincreasing(z[None])[0]
    b, n = z.shape
    zr = z.flip(1)  # non-increasing fit of z == reversed non-decreasing fit of reversed z
    s = torch.cat([zr.new_zeros(b, 1), zr.cumsum(1)], dim=1)
    j = torch.arange(n, device=z.device)
    length = (j[None, :] - j[:, None] + 1).to(z.dtype)  # [j, k] -> k - j + 1
    valid = length > 0
    means = (s[:, None, 1:] - s[:, :-1, None]) / length.clamp_min(1)
    means = means.masked_fill(~valid, float("-inf"))
    a = means.cummax(dim=1).values  # a[i, k] = max_{j <= i} mean(j..k)
    a = a.masked_fill(~valid, float("inf"))  # keep k >= i
    y = a.min(dim=2).values  # non-decreasing fit of zr
    return y.flip(1)


def owl_prox_sorted(x_sorted: torch.Tensor, t_theta: torch.Tensor) -> torch.Tensor:
    """Prox of ``sum_i t*theta_i * x_[i]`` at rows ``x_sorted`` (each sorted decreasingly, >= 0)."""
    return isotonic_nonincreasing(x_sorted - t_theta).clamp_min(0)
