"""Per-node channel rules: how each fx node moves, joins or consumes channel ids.

Supported (anything else that receives a channel-carrying tensor raises
:class:`~oicsr_lab.errors.UnsupportedModelError` naming the node):

* leaf modules (:mod:`.modules`): Conv2d (groups=1, depthwise, grouped: pruned by whole conv groups), Linear on
  ``(N, F)``, BatchNorm1d/2d, activations, dropout, pooling, padding, upsampling, Identity,
  Flatten, Softmax;
* functions/methods: the functional forms of the above, elementwise add/sub/mul/div
  (with broadcasting), ``torch.cat`` (dim 1 concatenates, other dims couple), flatten /
  view / reshape / squeeze / unsqueeze that keep dim 1 or flatten from dim 1, permute /
  transpose of dims >= 2, mean/sum/amax/amin over dims >= 2, slicing of dims >= 2,
  ``size``/``shape``/``dim``, dtype/contiguity no-ops.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn

from ..errors import UnsupportedModelError
from .channels import Chan, ChannelGraph
from .modules import ModuleRules
from .ops import (
    ADD_FUNCS,
    ADD_METHODS,
    CAT_FUNCS,
    LIKE_METHODS,
    META_ATTRS,
    META_FUNCS,
    META_METHODS,
    MUL_FUNCS,
    MUL_METHODS,
    PASS_FUNCS,
    PASS_METHODS,
    PERMUTE_FUNCS,
    PERMUTE_METHODS,
    REDUCE_FUNCS,
    REDUCE_METHODS,
    RESHAPE_FUNCS,
    RESHAPE_METHODS,
    SOFTMAX_FUNCS,
    SOFTMAX_METHODS,
    SUPPORTED,
    describe_node,
    shape_of,
)


class Propagator(ModuleRules):
    """Walks a shape-propagated GraphModule and feeds channel ids into a ChannelGraph."""

    def __init__(self, gm: fx.GraphModule, graph: ChannelGraph, pin: bool = False) -> None:
        self.gm = gm
        self.g = graph
        self.pin = pin  # unsupported nodes pin their channels instead of raising
        self.pinned: list[str] = []  # "node: why" of every pinned node
        self.modules = dict(gm.named_modules())
        self.env: dict[fx.Node, Chan | None] = {}
        self.module_info: dict[str, dict] = {}
        self.owner: dict[str, str] = {}  # module -> first module holding the same weight tensor
        first_holder: dict[int, str] = {}
        for name, m in self.modules.items():
            weight = getattr(m, "weight", None)
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)) and weight is not None:
                self.owner[name] = first_holder.setdefault(id(weight), name)

    def fail(self, node: fx.Node, why: str) -> UnsupportedModelError:
        """Build the one-line error for a node the rules cannot map (``why`` kept for pinning)."""
        err = UnsupportedModelError(f"cannot map channels through {describe_node(node)}: {why}. {SUPPORTED}")
        err.why = why
        return err

    def pin_node(self, node: fx.Node, why: str) -> Chan | None:
        """Pin an unsupported node: its input channels are not prunable, its output gets fresh pinned ids."""
        detail = f"'{node.name}' ({why.split('; supported')[0]})"
        self.pinned.append(f"{describe_node(node)}: {why}")
        for n in self.chan_args(node):
            self.g.flag(self.env[n].ids, "unsupported", detail)
        shape = shape_of(node)
        if shape is None or len(shape) < 2 or not all(isinstance(d, int) for d in shape):
            return None
        ids = self.g.new(shape[1])
        self.g.flag(ids, "unsupported", detail)
        return Chan(ids)

    def run(self) -> None:
        """Apply the rules to every node in graph order."""
        self.order: list[fx.Node] = []
        self.ancestors: dict[fx.Node, int] = {}  # bitset over graph positions, self included
        for node in self.gm.graph.nodes:
            bits = 1 << len(self.order)
            for parent in node.all_input_nodes:
                bits |= self.ancestors[parent]
            self.ancestors[node] = bits
            self.order.append(node)
            try:
                out = self.visit(node)
            except UnsupportedModelError as err:
                if not self.pin or not hasattr(err, "why"):
                    raise
                out = self.pin_node(node, err.why)
            if out is not None:
                shape = shape_of(node)
                if shape is None or len(shape) < 2 or shape[1] != len(out) * out.block:
                    raise self.fail(node, f"internal check failed: traced shape {shape} does not match "
                                          f"{len(out)} channels x block {out.block}")
            self.env[node] = out

    def val(self, a: object) -> Chan | None:
        """Channel ids of an argument (None for constants and python values)."""
        return self.env.get(a) if isinstance(a, fx.Node) else None

    def chan_args(self, node: fx.Node) -> list[fx.Node]:
        """All argument nodes of ``node`` that carry channels."""
        found: list[fx.Node] = []
        fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) if self.env.get(n) is not None else None)
        return found

    def visit(self, node: fx.Node) -> Chan | None:
        """Dispatch one node to its rule."""
        if node.op == "placeholder":
            shape = shape_of(node)
            if shape is None or len(shape) < 2:
                return None
            ids = self.g.new(shape[1])
            self.g.flag(ids, "input", f"'{node.name}'")
            return Chan(ids)
        if node.op == "get_attr":
            return None
        if node.op == "output":
            for n in self.chan_args(node):
                self.g.flag(self.env[n].ids, "output", f"'{n.name}'")
            return None
        carriers = self.chan_args(node)
        if node.op == "call_module":
            return self.visit_module(node, carriers)
        if not carriers:
            return None  # constants, shapes, python values
        target = node.target
        if node.op == "call_method":
            table = (PASS_METHODS, ADD_METHODS, MUL_METHODS, RESHAPE_METHODS, PERMUTE_METHODS,
                     REDUCE_METHODS, SOFTMAX_METHODS, META_METHODS)
        else:
            table = (PASS_FUNCS, ADD_FUNCS, MUL_FUNCS, RESHAPE_FUNCS, PERMUTE_FUNCS,
                     REDUCE_FUNCS, SOFTMAX_FUNCS, META_FUNCS)
        passes, adds, muls, reshapes, permutes, reduces, softmaxes, metas = table
        if target in metas or (target is getattr and node.args[1] in META_ATTRS):
            return None
        if target in passes:
            return self.passthrough(node, carriers)
        if target in adds or target in muls:
            return self.binary(node, "add" if target in adds else "mul")
        if target in CAT_FUNCS and node.op == "call_function":
            return self.cat(node)
        if target in reshapes:
            return self.reshape(node, self.first(node, carriers))
        if target in permutes:
            return self.permute(node, self.first(node, carriers))
        if target in reduces:
            return self.reduce(node, self.first(node, carriers))
        if target in softmaxes:
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            return self.softmax(node, self.first(node, carriers), dim)
        if target is operator.getitem:
            return self.getitem(node, self.first(node, carriers), node.args[1])
        raise self.fail(node, "this operation is not supported on channel-carrying tensors")

    def first(self, node: fx.Node, carriers: list[fx.Node]) -> Chan:
        """The channel-carrying first argument of a unary op (others must be constants)."""
        if node.op == "call_method" and node.target in LIKE_METHODS:
            carriers = [c for c in carriers if c is node.args[0]]  # y in x.type_as(y) only gives dtype/shape
        if not node.args or node.args[0] not in carriers or len(set(carriers)) > 1:
            raise self.fail(node, "expected exactly one channel-carrying tensor as first argument")
        return self.env[node.args[0]]

    def same_channels(self, node: fx.Node, x: Chan) -> Chan:
        """Pass ids through after checking that dims 0 and 1 are untouched."""
        src, out = shape_of(node.args[0]), shape_of(node)
        if out is None or src is None or len(out) != len(src) or out[:2] != src[:2]:
            raise self.fail(node, f"expected an op that keeps the batch and channel dims (shape {src} -> {out})")
        return Chan(x.ids, x.block)

    def passthrough(self, node: fx.Node, carriers: list[fx.Node]) -> Chan:
        """Elementwise activations, pooling, dropout, padding, dtype no-ops."""
        return self.same_channels(node, self.first(node, carriers))

    # ---- elementwise and structural ops ------------------------------------------------
    def binary(self, node: fx.Node, kind: str) -> Chan:
        """Elementwise add/sub/mul/div: equal channel lists are unified, size-1 channels broadcast."""
        operands = list(node.args[:2]) + [v for k, v in node.kwargs.items() if k in ("input", "other")]
        out = shape_of(node)
        chans = [(a, self.val(a)) for a in operands if self.val(a) is not None]
        consts = [a for a in operands if self.val(a) is None]
        if out is None or len(out) < 2:
            raise self.fail(node, f"elementwise result of shape {out} has no channel dim")
        for a, c in chans:
            if len(shape_of(a)) != len(out):
                raise self.fail(node, f"broadcasting {shape_of(a)} to {out} would move the channel dim")
        for a in consts:
            cs = shape_of(a)
            if cs is None:
                if isinstance(a, (int, float, bool)) or a is None:
                    continue
                raise self.fail(node, f"operand {a!r} of unknown shape")
            lead = len(out) - len(cs)
            if len(cs) > len(out) or (lead <= 1 and cs[1 - lead] != 1):
                raise self.fail(node, f"constant operand of shape {cs} is indexed by channel; "
                                      "only scalars and tensors of size 1 in the channel dim are supported")
        if len(chans) == 1:
            return Chan(chans[0][1].ids, chans[0][1].block)
        (a, x), (b, y) = chans
        if x.block != y.block:
            raise self.fail(node, f"operands have different flatten layouts (block {x.block} vs {y.block})")
        if len(x) == len(y):
            if not (x.ids is y.ids or (x.ids == y.ids).all()):
                self.g.union(x.ids, y.ids)
                self.g.flag(x.ids, kind, f"'{node.name}'")
                if kind == "add":
                    self.flag_block_input(node, a, b)
            return Chan(x.ids, x.block)
        if min(len(x), len(y)) == 1 and x.block == 1:
            single, wide = (x, y) if len(x) == 1 else (y, x)
            self.g.flag(single.ids, "broadcast", f"'{node.name}'")
            return Chan(wide.ids)
        raise self.fail(node, f"operands have {len(x)} and {len(y)} channels")

    def flag_block_input(self, node: fx.Node, a: fx.Node, b: fx.Node) -> None:
        """Flag the fork of a residual block (nearest common ancestor of both add operands).

        With a projection shortcut the block's input channels (e.g. ResNet-50's stem) are not
        coupled by the add itself, but they are the block's input, not block-internal channels;
        the paper keeps them, so they are prunable only with ``allow_coupled=True``.
        """
        common = self.ancestors[a] & self.ancestors[b]
        if not common:
            return
        fork = self.order[common.bit_length() - 1]
        value = self.env.get(fork)
        if fork not in (a, b) and value is not None:
            self.g.flag(value.ids, "block_input", f"'{node.name}'")

    def cat(self, node: fx.Node) -> Chan:
        """torch.cat: dim 1 concatenates channel lists, any other dim couples them elementwise."""
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", node.kwargs.get("axis", 0))
        out = shape_of(node)
        if not isinstance(tensors, (list, tuple)) or out is None or len(out) < 2 or not isinstance(dim, int):
            raise self.fail(node, "expected torch.cat of a list of tensors with a constant dim")
        vals = [self.val(t) for t in tensors]
        if any(v is None for v in vals):
            raise self.fail(node, "concatenating a constant tensor with channel-carrying tensors")
        dim = dim % len(out)
        if any(v.block != vals[0].block for v in vals):
            raise self.fail(node, "concatenating tensors with different flatten layouts")
        if dim == 1:
            return Chan(np.concatenate([v.ids for v in vals]), vals[0].block)
        for v in vals[1:]:
            if len(v) != len(vals[0]):
                raise self.fail(node, "concatenated tensors have different channel counts")
            if not (v.ids == vals[0].ids).all():
                self.g.union(vals[0].ids, v.ids)
                self.g.flag(v.ids, "merge", f"'{node.name}'")
        return Chan(vals[0].ids, vals[0].block)

    def reshape(self, node: fx.Node, x: Chan) -> Chan:
        """view/reshape/flatten/squeeze/unsqueeze: keep dims 0-1, or flatten from dim 1 (block)."""
        src, out = shape_of(node.args[0]), shape_of(node)
        if src is not None and out is not None and len(src) >= 2:
            if len(out) >= 2 and out[:2] == src[:2]:
                return Chan(x.ids, x.block)
            if len(out) == 2 and out[0] == src[0] and out[1] == math.prod(src[1:]):
                return Chan(x.ids, x.block * math.prod(src[2:]))
        shuffle = (src is not None and out is not None and len(src) >= 2 and len(out) == len(src) + 1
                   and out[0] == src[0] and out[1] * out[2] == src[1])
        what = (f" (splits the channels into {out[1]} x {out[2]}: a channel shuffle or channel grouping)"
                if shuffle else "")
        raise self.fail(node, f"reshape {src} -> {out} moves or mixes the channel dim{what}; supported: "
                              "flatten from dim 1 (x.view(N, -1), torch.flatten(x, 1)) and reshapes of dims >= 2")

    def permute(self, node: fx.Node, x: Chan) -> Chan:
        """permute/transpose/swapaxes that leave dims 0 and 1 in place."""
        rank = len(shape_of(node.args[0]) or ())
        rest = list(node.args[1:]) or list(node.kwargs.values())
        if node.target in ("permute", torch.permute):
            dims = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
            ok = len(dims) == rank and all(isinstance(d, int) for d in dims) and [d % rank for d in dims[:2]] == [0, 1]
        else:
            ok = len(rest) == 2 and all(isinstance(d, int) for d in rest) and (
                rest[0] % rank == rest[1] % rank or not {rest[0] % rank, rest[1] % rank} & {0, 1})
        if not ok:
            raise self.fail(node, "permute/transpose moves the channel dim (only dims >= 2 may be permuted)")
        return self.same_channels(node, x)

    def reduce(self, node: fx.Node, x: Chan) -> Chan:
        """mean/sum/amax/amin over spatial dims only."""
        rank = len(shape_of(node.args[0]) or ())
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", node.kwargs.get("axis"))
        dims = [dims] if isinstance(dims, int) else dims
        if not dims or not all(isinstance(d, int) for d in dims) or {d % rank for d in dims} & {0, 1}:
            raise self.fail(node, f"reduction over dims {dims} mixes channels or batch; only dims >= 2 are supported")
        out = shape_of(node)
        if out is None or out[:2] != shape_of(node.args[0])[:2]:
            raise self.fail(node, f"reduction result {out} lost the channel dim")
        return Chan(x.ids, x.block)

    def softmax(self, node: fx.Node, x: Chan, dim: object) -> Chan:
        """Softmax over dims >= 2 passes channels; over dim 1 it pins the channels (not prunable)."""
        rank = len(shape_of(node.args[0]) or ())
        if not isinstance(dim, int) or dim % rank == 1:
            self.g.flag(x.ids, "mixed", f"'{node.name}'")
        elif dim % rank == 0:
            raise self.fail(node, "softmax over the batch dim")
        return Chan(x.ids, x.block)

    def getitem(self, node: fx.Node, x: Chan, index: object) -> Chan:
        """Basic indexing that leaves dims 0 and 1 whole (x[:, :, 1:], x[..., 0] on 4-D)."""
        rank = len(shape_of(node.args[0]) or ())
        items = index if isinstance(index, tuple) else (index,)
        ok = all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)
        lead: list[object] = []
        for pos, item in enumerate(items):
            if item is Ellipsis:  # dims not yet indexed are whole if the ellipsis covers them
                tail = [i for i in items[pos + 1:] if i is not None]
                ok = ok and rank - len(tail) - len(lead) >= 2 - len(lead)
                break
            lead.append(item)
            if len(lead) == 2:
                break
        ok = ok and all(isinstance(i, slice) and i == slice(None) for i in lead)
        if not ok:
            raise self.fail(node, f"indexing {index!r} selects or slices channels (or uses advanced indexing); "
                                  "only basic indexing of dims >= 2 (x[:, :, a:b], x[..., i]) is supported, "
                                  "not channel slicing/chunk/split")
        out = shape_of(node)
        if out is None or len(out) < 2 or out[:2] != shape_of(node.args[0])[:2]:
            raise self.fail(node, f"indexing result {out} lost the channel dim")
        return Chan(x.ids, x.block)


__all__ = ["Propagator"]
