"""The regulariser objects: the trainer's three hooks plus ``value`` for logging.

All structured penalties share one form, ``R(W) = lambda_s * sum_c w_c * ||g_c||_2`` over
channel vectors ``g_c`` (see :mod:`.index_plan` for which tensor slices form ``g_c``):

* subgradient form (default): ``||g|| = sqrt(sum g^2 + eps)`` and
  ``dR/dg_c = lambda_s * w_c * g_c / ||g_c||``, added straight to ``.grad`` after backward
  (``grad="direct"``, few fused ops) or obtained by autograd from :meth:`penalty`
  (``grad="autograd"``); both give the same numbers;
* proximal form: after each SGD step with learning rate ``eta``, group soft-thresholding
  ``g_c <- g_c * max(0, 1 - eta * lambda_s * w_c / ||g_c||)``, which yields exact zeros.
  Where two penalised channel vectors overlap (in a plain chain conv ``l+1`` is the in-part
  of group ``l`` and the out-part of group ``l+1``) both factors are applied to the shared
  elements, computed from the pre-step weights (exact prox for disjoint groups, the usual
  simultaneous approximation otherwise).

``w_c`` is 1, or ``sqrt(len(g_c))`` with ``size_weighting="sqrt"``; for GrOWL it also
carries ``theta_rank(c)`` (see :mod:`.owl`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import ConfigError
from .index_plan import BoundPlan, PartSpec, PlanCache, size_weights
from .options import Options, check_strength
from .owl import growl_theta, owl_prox_sorted


class Regularizer:
    """Base hooks: ``penalty`` before backward, ``after_backward``, ``after_step``; all no-ops."""

    name: str = "l2"

    def __init__(self, name: str, strength: float, options: Options, n_groups: int = 0) -> None:
        self.name = name
        self.strength = strength
        self.options = options
        self.n_groups = n_groups

    @property
    def strength(self) -> float:
        """lambda_s; may be changed between steps (e.g. a warm-up schedule)."""
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        self._strength = check_strength(value)

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """Differentiable penalty to add to the loss before backward, or None when not used."""
        return None

    def after_backward(self, model: nn.Module) -> None:
        """Edit ``.grad`` after backward (direct subgradients); default: nothing."""

    def after_step(self, model: nn.Module, lr: float) -> None:
        """Proximal step after ``optimizer.step()``; default: nothing."""

    def value(self, model: nn.Module) -> float:
        """The penalty ``R(W)`` (including lambda_s) as a float, for logging; no graph."""
        return 0.0

    def __repr__(self) -> str:
        defaults = Options()
        extra = [f"{k}={v!r}" for k, v in self.options.__dict__.items() if v != getattr(defaults, k)]
        head = [f"{self.name!r}", f"strength={self.strength:g}", f"groups={self.n_groups}"]
        return f"Regularizer({', '.join(head + extra)})"


class L2(Regularizer):
    """Plain weight decay ``mu * sum_l ||W^l||^2``, applied by the optimizer: every hook is a no-op."""


def _check_lr(lr: float) -> float:
    """The learning rate of a proximal step: finite and >= 0."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
        raise ConfigError(f"after_step needs the learning rate just used (a finite number >= 0); got {lr!r}")
    return float(lr)


class GroupNorm(Regularizer):
    """``lambda_s * sum_c w_c ||g_c||_2`` over the channel vectors of its parts (GL, OICSR-GL, GrOWL)."""

    def __init__(self, name: str, parts: list[PartSpec], strength: float, options: Options, n_groups: int,
                 ordered: bool = False, eps: float | None = None) -> None:
        super().__init__(name, strength, options, n_groups)
        self.parts = parts
        self.ordered = ordered  # GrOWL: weights by rank of the norm within each part
        self.eps = options.eps if eps is None else eps
        self._cache = PlanCache(parts)

    # -- per-model state -------------------------------------------------------------------
    def _plan(self, model: nn.Module) -> BoundPlan:
        """The bound plan, with the per-channel weights attached on first use."""
        plan = self._cache.get(model)
        if not hasattr(plan, "w"):
            sw = size_weights(plan, self.options.size_weighting)
            plan.w = plan.per_part(sw)
            if self.ordered:
                theta = [t * s for n, s in zip(plan.part_sizes, sw)
                         for t in growl_theta(n, self.options.p, self.options.lambda2_ratio)]
                plan.theta_sorted = torch.tensor(theta, dtype=torch.float32, device=plan.device)
                buckets: dict[int, list[int]] = {}
                for start, n in zip(plan.part_starts, plan.part_sizes):
                    buckets.setdefault(n, []).append(start)
                plan.owl_buckets = [torch.tensor(st, device=plan.device)[:, None] + torch.arange(n, device=plan.device)
                                for n, st in buckets.items()]
        return plan

    def _norms(self, sq: torch.Tensor) -> torch.Tensor:
        """``sqrt(sq + eps)``; with ``eps=0`` a zero vector has norm 0 and gradient 0 (no NaN)."""
        if self.eps > 0:
            return torch.sqrt(sq + self.eps)
        pos = sq > 0
        return torch.where(pos, sq, torch.ones_like(sq)).sqrt() * pos

    def _order(self, plan: BoundPlan, norms: torch.Tensor) -> torch.Tensor:
        """Channel ids sorted part by part, each part by decreasing norm."""
        o = torch.argsort(norms.detach(), descending=True, stable=True)
        return o[torch.argsort(plan.part_id[o], stable=True)]

    def _weights(self, plan: BoundPlan, norms: torch.Tensor) -> torch.Tensor:
        """``w_c`` per channel (with ``theta`` of its rank for GrOWL), lambda_s excluded."""
        if not self.ordered:
            return plan.w
        w = torch.empty_like(plan.theta_sorted)
        w[self._order(plan, norms)] = plan.theta_sorted
        return w

    # -- hooks --------------------------------------------------------------------------------
    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """``lambda_s * sum_c w_c sqrt(||g_c||^2 + eps)`` with graph, when ``grad="autograd"``."""
        if self.options.mode != "subgradient" or self.options.grad != "autograd" or not self.parts:
            return None
        plan = self._plan(model)
        n = self._norms(plan.sq_norms(differentiable=True))
        return self.strength * (self._weights(plan, n) * n).sum()

    @torch.no_grad()
    def after_backward(self, model: nn.Module) -> None:
        """``grad(g_c) += lambda_s * w_c * g_c / ||g_c||`` (the subgradient, ``grad="direct"``)."""
        if self.options.mode != "subgradient" or self.options.grad != "direct" or not self.parts or self.strength == 0:
            return
        plan = self._plan(model)
        n = self._norms(plan.sq_norms())
        coef = torch.where(n > 0, self._weights(plan, n) * self.strength / n.clamp_min(1e-38), torch.zeros_like(n))
        plan.add_grad(coef)

    @torch.no_grad()
    def after_step(self, model: nn.Module, lr: float) -> None:
        """Proximal step: ``g_c <- g_c * max(0, 1 - lr*lambda_s*w_c/||g_c||)`` (GrOWL: OWL prox of norms)."""
        if self.options.mode != "proximal" or not self.parts:
            return
        t = _check_lr(lr) * self.strength
        if t == 0:
            return
        plan = self._plan(model)
        norm = plan.sq_norms().sqrt()
        if not self.ordered:
            new = (norm - t * plan.w).clamp_min(0)
        else:
            order = self._order(plan, norm)
            xs = norm[order]
            new_sorted = torch.empty_like(xs)
            for idx in plan.owl_buckets:
                new_sorted[idx] = owl_prox_sorted(xs[idx], t * plan.theta_sorted[idx])
            new = torch.empty_like(norm)
            new[order] = new_sorted
        factor = torch.where(norm > 0, new / norm.clamp_min(1e-38), torch.zeros_like(norm))
        plan.scale(factor)

    @torch.no_grad()
    def value(self, model: nn.Module) -> float:
        """``lambda_s * sum_c w_c ||g_c||`` as a float (subgradient norms include eps)."""
        if not self.parts:
            return 0.0
        plan = self._plan(model)
        n = self._norms(plan.sq_norms())
        return float(self.strength * (self._weights(plan, n) * n).sum())
