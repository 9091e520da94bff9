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

Each name is an entry of the registry (:mod:`.registry`; the six above in :mod:`.builtin`), which
also holds its display label and its own pruning criterion. Importing this package (and so the
registry, e.g. for the plots' labels) does not import torch; ``make_regularizer`` (:mod:`.factory`),
``Regularizer`` (:mod:`.core`) and ``Options`` (:mod:`.options`) load on first use.

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

import importlib
from typing import Any

from . import builtin  # noqa: F401  (registers the six regularisers above, in menu order)
from .registry import (
    REGISTRY,
    RegularizerSpec,
    check_name,
    get_regularizer,
    names,
    own_criterion,
    reg_label,
    register,
    regularizers_table,
    unregister,
)

_LAZY = {"make_regularizer": ".factory", "Regularizer": ".core", "Options": ".options"}  # they import torch


def __getattr__(name: str) -> Any:
    """``make_regularizer``, ``Regularizer`` and ``Options``, imported on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["make_regularizer", "Regularizer", "Options", "REGISTRY", "RegularizerSpec", "register", "unregister",
           "names", "get_regularizer", "check_name", "own_criterion", "reg_label", "regularizers_table"]
