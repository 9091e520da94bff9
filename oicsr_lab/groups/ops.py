"""Tables of the torch functions, tensor methods and leaf modules the channel rules understand."""

from __future__ import annotations

import builtins
import operator

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

SUPPORTED = (
    "Supported: Conv2d (plain, grouped, depthwise), Linear on (N, F), BatchNorm1d/2d, activations, "
    "dropout, pooling, padding, upsampling, elementwise add/sub/mul/div, torch.cat, "
    "flatten/view(N, -1), reshape/permute/slicing/mean of dims >= 2"
)


def _present(*names: str, module: object = F) -> set:
    """The attributes of ``module`` that exist in this torch version."""
    return {getattr(module, n) for n in names if hasattr(module, n)}


def _torchvision_ops() -> set:
    """torchvision's fx-wrapped per-sample ops that keep channels (stochastic depth)."""
    try:
        from torchvision.ops import stochastic_depth
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return set()
    return {stochastic_depth}


# Elementwise, spatial or dtype-only ops: channel ids pass straight through.
PASS_FUNCS = _present(
    "relu", "relu_", "relu6", "elu", "elu_", "selu", "celu", "gelu", "silu", "mish", "hardswish",
    "hardsigmoid", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "softplus", "sigmoid", "tanh",
    "dropout", "dropout1d", "dropout2d", "alpha_dropout", "feature_alpha_dropout",
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "lp_pool2d", "interpolate", "upsample", "pad",
) | _present(
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "abs", "neg", "clamp", "clamp_", "clip", "clamp_min",
    "clone", "exp", "square", "sqrt", "dropout", "feature_dropout", "max_pool2d", "avg_pool2d",
    "adaptive_avg_pool1d", "hardtanh",
    module=torch,
) | {operator.neg, operator.pos, operator.abs} | _torchvision_ops()

PASS_METHODS = {
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "abs", "abs_", "neg", "clamp", "clamp_",
    "clip", "clip_", "clamp_min", "clamp_min_", "clamp_max", "square", "sqrt", "exp", "contiguous",
    "clone", "detach", "float", "double", "half", "bfloat16", "to", "type_as", "requires_grad_", "cpu",
    "cuda",
}

# Methods whose other tensor argument only supplies a dtype, device or shape.
LIKE_METHODS = {"type_as", "view_as", "reshape_as", "to"}

# Elementwise binary ops. "add" kinds couple producers like a residual; "mul" like an SE gate.
ADD_FUNCS = _present("add", "sub", "subtract", "maximum", "minimum", module=torch) | {
    operator.add, operator.iadd, operator.sub, operator.isub,
}
ADD_METHODS = {"add", "add_", "sub", "sub_", "subtract", "maximum", "minimum"}
MUL_FUNCS = _present("mul", "multiply", "div", "divide", "true_divide", module=torch) | {
    operator.mul, operator.imul, operator.truediv, operator.itruediv,
}
MUL_METHODS = {"mul", "mul_", "multiply", "div", "div_", "divide", "true_divide"}

CAT_FUNCS = _present("cat", "concat", "concatenate", module=torch)

RESHAPE_FUNCS = _present("flatten", "reshape", "squeeze", "unsqueeze", module=torch)
RESHAPE_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as", "squeeze_",
                   "unsqueeze_"}

PERMUTE_FUNCS = _present("permute", "transpose", "swapaxes", module=torch)
PERMUTE_METHODS = {"permute", "transpose", "swapaxes"}

REDUCE_FUNCS = _present("mean", "sum", "amax", "amin", module=torch)
REDUCE_METHODS = {"mean", "sum", "amax", "amin"}

SOFTMAX_FUNCS = _present("softmax", "log_softmax", "softmin") | _present("softmax", "log_softmax", module=torch)
SOFTMAX_METHODS = {"softmax", "log_softmax"}

# Ops that read a tensor's metadata, not its values: the result carries no channels.
META_FUNCS = {builtins.len} | _present("numel", module=torch)
META_METHODS = {"size", "dim", "ndimension", "numel", "nelement", "is_contiguous", "get_device", "type"}
META_ATTRS = {"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad"}

PASS_MODULES: tuple[type, ...] = tuple(
    getattr(nn, n)
    for n in (
        "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Hardswish",
        "Hardsigmoid", "Hardtanh", "Sigmoid", "Tanh", "Softplus", "Identity", "Dropout", "Dropout1d",
        "Dropout2d", "AlphaDropout", "FeatureAlphaDropout", "MaxPool1d", "MaxPool2d", "AvgPool1d",
        "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
        "LPPool2d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "ZeroPad2d",
        "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d",
    )
    if hasattr(nn, n)
)

# Pass-through leaves whose output shape equals the input shape (shape propagation skips them).
PASS_MODULES_SAME_SHAPE: tuple[type, ...] = tuple(
    m for m in PASS_MODULES if not m.__name__.startswith(("Max", "Avg", "Adaptive", "LP", "Upsampl", "Zero", "Constant",
                                                          "Refl", "Repl"))
)

# Leaf modules for the tracer (user modules such as BasicBlock are traced through).
LEAF_MODULES: tuple[type, ...] = PASS_MODULES + (
    nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.PReLU, nn.Flatten,
    nn.Unflatten, nn.Softmax, nn.LogSoftmax, nn.Softmin,
)


def shape_of(node: object) -> tuple[int, ...] | None:
    """The traced output shape of a node (None for non-tensors and python values)."""
    if not isinstance(node, fx.Node):
        return () if isinstance(node, (int, float, bool)) else None
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(shape) if shape is not None else None


def describe_node(node: fx.Node) -> str:
    """'node 'x' (module 'layer1.0.conv1' (Conv2d)) in module 'layer1.0' (BasicBlock)' for messages."""
    if node.op == "call_module":
        what = f"module '{node.target}'"
    elif node.op == "call_method":
        what = f"method .{node.target}()"
    else:
        what = f"{node.op} {getattr(node.target, '__name__', node.target)}"
    stack = node.meta.get("nn_module_stack") or {}
    where = ""
    owners = [(path, cls) for path, cls in stack.values() if path != node.target]
    if owners:
        path, cls = owners[-1]
        where = f" in module '{path}' ({getattr(cls, '__name__', cls)})"
    return f"node '{node.name}' ({what}){where}"
