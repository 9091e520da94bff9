"""Sparsity regularisers of the OICSR paper (eqs. 1-4) behind one factory.

Objective: ``L = CE(y, f(x; W)) + mu * sum_l ||W^l||^2 + lambda_s * sum_groups R(group)``;
``mu`` is the optimizer's weight decay, ``lambda_s`` is ``strength``.

======================  =====================================================================
name                    ``R`` summed over the selected groups (channel ``i``)
======================  =====================================================================
``l2``                  none (weight decay only; every hook is a no-op)
``gl``                  ``sum_i ||W^l[i,:,:,:]||_2`` per producer layer ("separated" GL, Wen 2016)
``l1bn``                ``sum_i |gamma_i|`` over the groups' BN scales (Network Slimming);
                        sign subgradient ``lambda_s * sign(gamma)`` added to ``gamma.grad``
``oicsr_gl``            ``sum_i sqrt(||W^l[i]||^2 + ||W^{l+1}[:,i]||^2)``: every slice of the
                        out-in-channel ``i`` (out rows, dw rows, in columns -- for a Linear
                        after flatten its column block -- and BN with ``include_bn``)
``growl``               ``sum_i theta_i ||W^l[i]||_[i]``: norms of each producer layer sorted
                        decreasingly, ``theta_i = lambda1 + lambda2 (p - i + 1)`` for ``i <= p``
                        else ``lambda1`` (GrOWL, Zhang et al. 2018)
``oicsr_growl``         GrOWL on the out-in-channel norms of each group
======================  =====================================================================

Options (defaults first; see :class:`.options.Options`):

* ``mode``: ``"subgradient"`` (``||g|| = sqrt(sum g^2 + eps)``) | ``"proximal"`` (after each
  SGD step ``g <- g * max(0, 1 - lr*lambda_s*w/||g||)``, exact zeros; for ``l1bn`` the
  soft-threshold ``sign(gamma) max(0, |gamma| - lr*lambda_s)``; for GrOWL the OWL prox of
  the norms: sort, subtract ``lr*lambda_s*theta``, pool adjacent violators, clip at 0, rescale).
  For ``oicsr_gl`` the proximal step scales the *whole* out-in vector of channel ``i``: the
  out rows of ``W^l``, the in columns of ``W^{l+1}`` and (``include_bn``) gamma/beta.
* ``eps=1e-8``; ``grad``: ``"direct"`` (subgradient added to ``.grad`` in ``after_backward``,
  fastest) | ``"autograd"`` (``penalty()`` returns the differentiable term instead).
* ``select``: ``"prunable"`` (the paper's groups; residual ones too when the groups come from
  ``find_groups(..., allow_coupled=True)``) | ``"all"`` (every group, including the
  network-input group -- the stem's input columns -- and the class-output rows) | group names.
* ``include_bn=False``: BN gamma/beta join the group; ``include_bias=False``: producer bias does.
* ``size_weighting``: ``"none"`` | ``"sqrt"`` (``lambda_s * sqrt(len(g))`` per group).
* GrOWL only: ``p=0.5`` (float: fraction of each part's channels, rounded up; int: a count)
  and ``lambda2_ratio=None`` (``lambda2/lambda1``; None means ``1/p``, so the largest norm
  weighs ``2*lambda1`` and the weights fall linearly to ``lambda1``). ``lambda1 = strength``.
  ``p=0`` or ``lambda2_ratio=0`` is plain group lasso.
"""

from __future__ import annotations

from typing import Any

from ..groups.types import ChannelGroup, GroupSet
from .core import L2, GroupNorm, Regularizer
from .index_plan import Entry, PartSpec, out_in_parts, separated_parts
from .options import GROWL_NAMES, NAMES, Options, check_name, check_options, check_strength, select_groups


def _bn_parts(groups: list[ChannelGroup]) -> list[PartSpec]:
    """One part per BN module: its scales at the (deduplicated) indices the groups own."""
    idx: dict[str, set[int]] = {}
    for g in groups:
        for s in g.bn_slices:
            idx.setdefault(s.module, set()).update(s.indices)
    return [PartSpec(m, len(ix), (Entry(m, "weight", 0, tuple(sorted(ix))),)) for m, ix in idx.items()]


def make_regularizer(name: str, groups: GroupSet | list[ChannelGroup], strength: float, **options: Any) -> Regularizer:
    """Build regulariser ``name`` over ``groups`` with ``lambda_s = strength`` (options above).

    Example:
        >>> import torch
        >>> from oicsr_lab import build_model, find_groups, make_regularizer
        >>> model = build_model("resnet20")
        >>> reg = make_regularizer("oicsr_gl", find_groups(model, torch.zeros(1, 3, 32, 32)), 1e-2, mode="proximal")
        >>> reg
        Regularizer('oicsr_gl', strength=0.01, groups=9, mode='proximal')
        >>> reg.after_step(model, lr=0.1)  # the proximal step, called by the Trainer after optimizer.step()
    """
    name = check_name(name)
    strength = check_strength(strength)
    opts = check_options(name, options)
    chosen = select_groups(groups, opts.select)
    if name == "l2":
        return L2(name, strength, opts, len(chosen))
    if name == "l1bn":
        return GroupNorm(name, _bn_parts(chosen), strength, opts, len(chosen), eps=0.0)
    if name in ("gl", "growl"):
        parts = separated_parts(chosen, opts.include_bn, opts.include_bias)
    else:
        parts = out_in_parts(chosen, opts.include_bn, opts.include_bias)
    return GroupNorm(name, parts, strength, opts, len(chosen), ordered=name in GROWL_NAMES)


__all__ = ["make_regularizer", "Regularizer", "NAMES", "Options"]
