"""First-order Taylor importance (Molchanov et al. 2019), per channel of an out-in-channel group.

Every channel ``i`` of a group gets one gate ``m_i = 1`` that multiplies it at *every* tap of the
group (each consumer's input, :mod:`.taps` -- exactly where the pruning masks act), so the gate's
gradient sums the contributions of all the group's slices::

    g_i = dL/dm_i = sum over taps, images, positions of  dL/da * a

Removing channel ``i`` sets ``m_i`` from 1 to 0, so the first-order estimate of the loss change is
``-g_i`` (:meth:`TaylorFirstOrder.loss_change`; exact when the loss is linear in the channel).
The score is ``g_i^2`` averaged over the calibration batches (the paper's Taylor-FO with a gate,
importance accumulated per mini-batch): a large first-order loss change in either direction means
the channel matters. Batches run in eval mode (BN running statistics, no dropout), so the
estimate is about the model as it is evaluated; the loss is the mean cross-entropy over the
batch unless ``loss_fn(outputs, labels)`` is given. Parameter ``.grad`` fields are not touched.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..groups.types import Slice
from .base import Criterion, ScoreContext, prepare, register
from .taps import columns, run_batches, tapped, taps_by_module


@register
class TaylorFirstOrder(Criterion):
    name, family, needs_data, zero_is_least = "taylor", "gradient", True, False
    label = "Taylor"
    summary = "squared first-order loss change of removing the channel (gate gradient, calibration batches)"
    reference = "Molchanov et al., Importance Estimation for Neural Network Pruning, CVPR 2019"

    def __init__(self, loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None) -> None:
        self.loss_fn = loss_fn

    def options(self) -> dict[str, Any]:
        return {"loss_fn": getattr(self.loss_fn, "__name__", self.loss_fn)} if self.loss_fn else {}

    def gate_gradients(self, ctx: ScoreContext) -> list[dict[str, torch.Tensor]]:
        """Per calibration batch: ``{group: dL/dm}`` (float64, CPU) for every group of ``ctx``."""
        model, loss_fn = ctx.model, self.loss_fn or F.cross_entropy
        taps = taps_by_module(ctx.groups)
        per_batch: list[dict[str, torch.Tensor]] = []
        gates: dict[str, torch.Tensor] = {}

        def gate(gname: str, s: Slice, x: torch.Tensor) -> torch.Tensor:
            full = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
            full = full.index_put((columns(s, x.device),), gates[gname].to(x.dtype).repeat_interleave(s.block))
            return x * full.view(1, -1, *([1] * (x.dim() - 2)))

        def step(x: torch.Tensor, y: torch.Tensor) -> None:
            if not ctx.groups:
                per_batch.append({})
                return
            gates.clear()
            for g in ctx.groups:
                gates[g.name] = torch.ones(g.size, device=x.device, dtype=x.dtype, requires_grad=True)
            with torch.enable_grad():
                loss = loss_fn(model(x), y)
                names = list(gates)
                grads = torch.autograd.grad(loss, [gates[n] for n in names], allow_unused=True)
            per_batch.append({n: (gr.detach().double().cpu() if gr is not None else torch.zeros(gates[n].shape[0],
                              dtype=torch.float64)) for n, gr in zip(names, grads)})

        with tapped(model, taps, gate):
            run_batches(model, ctx.calibration, step)
        return per_batch

    def raw(self, ctx: ScoreContext) -> dict[str, torch.Tensor]:
        grads = self.gate_gradients(ctx)
        return {g.name: torch.stack([b[g.name].pow(2) for b in grads]).mean(0).float() for g in ctx.groups}

    def loss_change(self, model: torch.nn.Module, groups: Any, calibration: Any) -> dict[str, torch.Tensor]:
        """First-order estimate of ``L(channel i removed) - L`` per channel (mean over batches), float64.

        Example: ``TaylorFirstOrder().loss_change(model, groups, calibration_data(data, "train", 2))``.
        """
        ctx = prepare(model, groups, self, calibration)
        grads = self.gate_gradients(ctx)
        return {g.name: -torch.stack([b[g.name] for b in grads]).mean(0) for g in ctx.groups}
