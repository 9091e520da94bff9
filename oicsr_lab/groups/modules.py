"""Channel rules of leaf modules: Conv2d (plain, depthwise, grouped), Linear, BatchNorm, parameter-free layers.

Grouped convolutions (``1 < groups``, not depthwise) are pruned **by whole conv groups**: every
input channel and every output channel of conv group ``k`` is unified into one channel id, so
removing it removes the ``in/groups`` input channels, the ``out/groups`` filters of that group and
one from ``groups`` -- the conv stays a valid grouped conv with equal per-group widths and its
cost per remaining group is unchanged. A ChannelGroup channel then owns several indices of a
module, one slice per position inside the conv group (``out``/``bn``/``in`` slices repeated).
Chained grouped convs with different group counts unify to their common coarsening.
A grouped conv fed by a constant tensor is not prunable (no input side to shrink).
"""

from __future__ import annotations

import math

import numpy as np
import torch.fx as fx
import torch.nn as nn

from .channels import Chan
from .geometry import is_depthwise, is_grouped
from .ops import PASS_MODULES, shape_of


class ModuleRules:
    """Mixin of :class:`~.rules.Propagator`: rules for ``call_module`` nodes."""

    def visit_module(self, node: fx.Node, carriers: list[fx.Node]) -> Chan | None:
        """Conv2d / Linear / BatchNorm and parameter-free leaf modules."""
        name = str(node.target)
        m = self.modules[name]
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)):
            x = self.first(node, carriers) if carriers else None
            out = self.parametric(node, name, m, x)
            self.note_module(node, name, m)
            return out
        if not carriers:
            return None
        if (isinstance(m, nn.PReLU) and m.num_parameters == 1) or isinstance(m, PASS_MODULES):
            return self.passthrough(node, carriers)
        if isinstance(m, (nn.Flatten, nn.Unflatten)):
            return self.reshape(node, self.first(node, carriers))
        if isinstance(m, (nn.Softmax, nn.LogSoftmax, nn.Softmin)):
            return self.softmax(node, self.first(node, carriers), m.dim)
        raise self.fail(node, f"leaf module type {type(m).__name__} is not supported")

    def parametric(self, node: fx.Node, name: str, m: nn.Module, x: Chan | None) -> Chan:
        """Record out/in/bn/dw entries of a Conv2d, Linear or BatchNorm call."""
        src = shape_of(node.args[0]) if node.args else None
        if isinstance(m, nn.Conv2d):
            if x is not None and (len(src) != 4 or x.block != 1 or len(x) != m.in_channels):
                raise self.fail(node, f"Conv2d expects (N, {m.in_channels}, H, W) channels, got shape {src}")
            if x is not None and is_depthwise(m):
                self.g.record(name, "dw", x.ids, owner=self.owner.get(name))
                return Chan(x.ids)
            if x is not None:
                self.g.record(name, "in", x.ids, owner=self.owner.get(name))
            out = self.g.new(m.out_channels)
            self.g.record(name, "out", out, owner=self.owner.get(name))
            if is_grouped(m):
                self.unify_conv_groups(name, m, x, out)
            return Chan(out)
        if isinstance(m, nn.Linear):
            if x is not None and (len(src) != 2 or len(x) * x.block != m.in_features):
                raise self.fail(node, f"Linear is supported on (N, features) inputs only, got shape {src}; "
                                      "flatten from dim 1 first")
            if x is not None:
                self.g.record(name, "in", x.ids, block=x.block, owner=self.owner.get(name))
            out = self.g.new(m.out_features)
            self.g.record(name, "out", out, owner=self.owner.get(name))
            return Chan(out)
        # BatchNorm
        if x is None:
            raise self.fail(node, "BatchNorm on a constant tensor")
        if x.block != 1 or len(x) != m.num_features:
            raise self.fail(node, f"BatchNorm over {m.num_features} features does not match "
                                  f"{len(x)} channels x block {x.block}; use BatchNorm before flatten")
        self.g.record(name, "bn", x.ids, owner=self.owner.get(name))
        return Chan(x.ids)

    def unify_conv_groups(self, name: str, m: nn.Conv2d, x: Chan | None, out: np.ndarray) -> None:
        """Whole-conv-group policy: one channel id per conv group (its inputs and its outputs)."""
        k = m.groups
        outs = out.reshape(k, -1)
        if x is None:
            self.g.flag(out, "grouped", f"'{name}' (groups={k}) reads a constant tensor")
            lead = outs[:, 0]
        else:
            ins = x.ids.reshape(k, -1)
            lead = ins[:, 0]
            for j in range(1, ins.shape[1]):
                self.g.union(lead, ins[:, j])
        for j in range(outs.shape[1]):
            self.g.union(lead, outs[:, j])

    def note_module(self, node: fx.Node, name: str, m: nn.Module) -> None:
        """Fill module_info[name] with type, traced shapes (no batch dim), groups, MACs and call count."""
        src, out = shape_of(node.args[0]) if node.args else None, shape_of(node)
        macs = 0
        if isinstance(m, nn.Conv2d) and out is not None:
            macs = math.prod(out[1:]) * (m.in_channels // m.groups) * math.prod(m.kernel_size)
        elif isinstance(m, nn.Linear) and out is not None:
            macs = math.prod(out[1:]) * m.in_features
        info = self.module_info.get(name)
        if info is None:
            self.module_info[name] = {
                "type": type(m).__name__,
                "in_shape": tuple(src[1:]) if src else None,
                "out_shape": tuple(out[1:]) if out else None,
                "groups": int(getattr(m, "groups", 1)) if isinstance(m, nn.Conv2d) else 1,
                "macs": macs,
                "calls": 1,
            }
        else:
            info["calls"] += 1
            info["macs"] += macs
