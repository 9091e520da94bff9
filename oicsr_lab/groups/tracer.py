"""find_groups: trace a model with torch.fx, propagate shapes, map channels to groups.

Pipeline: :class:`GroupTracer` (symbolic trace; Conv/Linear/BN/activations/pooling... are
leaves, user modules such as ``BasicBlock`` are traced through) -> shape propagation on the
``meta`` device (no compute, no change to the model; falls back to a real forward with
copied buffers) -> :class:`~.rules.Propagator` (channel ids per tensor) ->
:meth:`~.channels.ChannelGraph.build` (groups).
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
import torch.fx as fx
import torch.nn as nn
from torch.func import functional_call
from torch.fx.node import map_aggregate
from torch.fx.passes.shape_prop import ShapeProp, _extract_tensor_metadata

from ..errors import ConfigError, UnsupportedModelError
from ..locks import FX_LOCK
from .channels import ChannelGraph
from .ops import LEAF_MODULES, PASS_MODULES_SAME_SHAPE, describe_node
from .rules import Propagator
from .types import GroupSet


class GroupTracer(fx.Tracer):
    """fx Tracer that keeps the layers the rules know as leaves and reports where tracing failed."""

    def __init__(self) -> None:
        super().__init__()
        self.where_stack: list[str] = []
        self.failed_where: list[str] | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        """Known layer types (and their subclasses) are leaves; so are other torch.nn modules."""
        return isinstance(m, LEAF_MODULES) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        """Track the module path being traced, for error messages."""
        self.where_stack.append(f"'{self.path_of_module(m) or '<root>'}' ({type(m).__name__})")
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_where is None:
                self.failed_where = list(self.where_stack)
            raise
        finally:
            self.where_stack.pop()

    def to_bool(self, obj: fx.Proxy) -> bool:
        """Data-dependent ``if``/``while``: raise a clear UnsupportedModelError naming the node."""
        where = f" in module {self.where_stack[-1]}" if self.where_stack else ""
        raise UnsupportedModelError(
            f"data-dependent control flow on node '{obj.node.name}'{where}: torch.fx cannot trace "
            "`if`/`while`/`assert` on tensor values; make the branch depend on Python attributes "
            "(e.g. self.training, a constructor flag) instead"
        )


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model``; fx failures become UnsupportedModelError naming the module."""
    tracer = GroupTracer()
    try:
        with FX_LOCK:  # tracing patches nn.Module.__call__ process-wide (see oicsr_lab.locks)
            graph = tracer.trace(model)
    except UnsupportedModelError:
        raise
    except Exception as err:  # TraceError, TypeError from proxies, ...
        where = f" inside module {tracer.failed_where[-1]}" if tracer.failed_where else ""
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UnsupportedModelError(
            f"torch.fx cannot trace {type(model).__name__}{where}: {type(err).__name__}: {first}; "
            "the model's forward must be traceable by torch.fx.symbolic_trace (static control flow)"
        ) from err
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    for node in gm.graph.nodes:  # leaves are shared with `model`: give gm its own shells
        if node.op == "call_module":
            parent, _, leaf = str(node.target).rpartition(".")
            owner = gm.get_submodule(parent)
            setattr(owner, leaf, _shell(getattr(owner, leaf)))
    return gm


def _shell(m: nn.Module) -> nn.Module:
    """A shallow copy of ``m`` with its own parameter/buffer dicts (same tensors), so swapping
    tensors in it (shape propagation on meta) never touches the user's module."""
    c = copy.copy(m)
    c._parameters = dict(m._parameters)
    c._buffers = dict(m._buffers)
    c._modules = {k: _shell(v) if v is not None else None for k, v in m._modules.items()}
    return c


# Leaves whose output has the input's shape: on meta tensors they are skipped (BatchNorm's
# meta path is a slow Python decomposition).
_SAME_SHAPE = PASS_MODULES_SAME_SHAPE + (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)


class _NodeFailed(Exception):
    """A node of the traced graph failed to run during shape propagation."""

    def __init__(self, node: fx.Node, err: Exception) -> None:
        super().__init__(str(err))
        self.node, self.err = node, err


class _FastShapeProp(ShapeProp):
    """ShapeProp that skips shape-preserving leaves when running on meta tensors."""

    def run_node(self, n: fx.Node) -> Any:
        """ShapeProp.run_node without its ``traceback.print_exc()`` (failures surface as one-line errors)."""
        try:
            result = fx.Interpreter.run_node(self, n)
        except Exception as err:
            raise _NodeFailed(n, err) from err
        found = []

        def extract(obj: Any) -> Any:
            if isinstance(obj, torch.Tensor):
                found.append(obj)
                return _extract_tensor_metadata(obj)
            return obj

        meta = map_aggregate(result, extract)
        if found:
            n.meta["tensor_meta"] = meta
        n.meta["type"] = type(result)
        return result

    def call_module(self, target: Any, args: tuple, kwargs: dict) -> Any:
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.device.type == "meta" and isinstance(self.fetch_attr(target), _SAME_SHAPE):
            return torch.empty_like(x)
        return super().call_module(target, args, kwargs)


class _ShapeRunner(nn.Module):
    """Wraps ShapeProp so functional_call can swap in meta parameters and copied buffers."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__()
        self.gm = gm

    def forward(self, *inputs: torch.Tensor) -> Any:
        return _FastShapeProp(self.gm).propagate(*inputs)


def propagate_shapes(gm: fx.GraphModule, inputs: Sequence[Any]) -> None:
    """Store ``tensor_meta`` on every node; the model's parameters and buffers are not touched."""
    runner = _ShapeRunner(gm)
    state = dict(runner.named_parameters())  # one name per tensor: tied weights stay tied
    state.update(runner.named_buffers())
    meta_state = {k: torch.empty_like(v, device="meta") for k, v in state.items()}
    meta_inputs = tuple(torch.empty_like(x, device="meta") if isinstance(x, torch.Tensor) else x for x in inputs)
    try:
        with torch.no_grad():
            functional_call(runner, meta_state, meta_inputs)
        return
    except Exception:
        pass  # some op has no meta kernel or mixes in a real tensor: run for real below
    real_state = {k: (v if isinstance(v, nn.Parameter) else v.detach().clone()) for k, v in state.items()}
    try:
        with torch.no_grad():
            functional_call(runner, real_state, tuple(inputs))
    except Exception as err:
        cause = err.err if isinstance(err, _NodeFailed) else err
        where = f" at {describe_node(err.node)}" if isinstance(err, _NodeFailed) else ""
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise UnsupportedModelError(
            f"running the traced graph on example_input failed{where}: {first}; pass an example_input the "
            "model accepts (e.g. torch.randn(1, 3, 32, 32))"
        ) from cause


def find_groups(model: nn.Module, example_input: Any, allow_coupled: bool = False,
                unsupported: str = "raise") -> GroupSet:
    """Find the out-in-channel groups of ``model`` (traced with ``example_input``) for pruning.

    ``unsupported="raise"`` (default): an operation the rules cannot map raises
    UnsupportedModelError naming the node and the reason. ``unsupported="pin"``: such a node
    *pins* its channels instead -- its input channels and its output channels become
    not-prunable groups whose ``reason`` names the node -- and every other group is found as
    usual (``GroupSet.pinned`` lists the pinned nodes; :func:`~.report.explain` prints both).
    Failures of torch.fx itself (data-dependent control flow) still raise.

    Example:
        >>> import torch
        >>> from oicsr_lab import build_model, find_groups
        >>> groups = find_groups(build_model("resnet20"), torch.zeros(1, 3, 32, 32))
        >>> g = groups.prunable[0]
        >>> len(groups.prunable), g.name, g.size, [(s.module, s.kind) for s in g.slices]
        (9, 'layer1.0.conv1', 16, [('layer1.0.conv1', 'out'), ('layer1.0.bn1', 'bn'), ('layer1.0.conv2', 'in')])
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"find_groups needs a torch.nn.Module, got {type(model).__name__}")
    if unsupported not in ("raise", "pin"):
        raise ConfigError(f"unsupported must be 'raise' or 'pin', got {unsupported!r}")
    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise ConfigError("example_input must be a tensor (or a tuple of tensors), e.g. torch.randn(1, 3, 32, 32)")
    gm = trace(model)
    propagate_shapes(gm, inputs)
    graph = ChannelGraph()
    prop = Propagator(gm, graph, pin=unsupported == "pin")
    prop.run()
    return GroupSet(graph.build(allow_coupled=allow_coupled), module_info=prop.module_info, pinned=prop.pinned)
