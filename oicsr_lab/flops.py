"""FLOPs of a network under the paper's convention: multiply-accumulates (MACs) of Conv and Linear.

BatchNorm, activations, pooling and additions are not counted (the authors' counter; dense
torchvision ResNet-50 at 224x224 = 4089 M). ``torch.utils.flop_counter.FlopCounterMode``
counts 2 FLOPs per MAC, so its total is twice ours on pure CNNs.

A Conv/Linear layer costs ``macs = unit * out_width * (in_width / groups)`` where ``unit`` is the
number of output positions per example times the kernel area. Dropping one output channel
saves ``unit * in_width / groups``; dropping one input channel saves ``unit * out_width / groups``
-- both with the *current* widths on the other side, which is what Algorithm 1 accumulates.
A grouped conv is pruned by whole conv groups (:mod:`oicsr_lab.groups.modules`): removing one
group saves ``unit * (in/groups) * (out/groups)``, counted once through its ``out`` rows
(``channel_flops`` does not count its ``in`` side again).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError
from .groups.geometry import CONV_TYPES, is_conv, out_width
from .groups.types import ChannelGroup, GroupSet

__all__ = ["LayerFlops", "FlopsReport", "count_flops", "channel_flops", "layer_params", "report_from_shapes"]


@dataclass
class LayerFlops:
    """MACs and parameters of one Conv/Linear layer, per example."""

    name: str
    type: str  # class name, e.g. "Conv2d"
    macs: int
    params: int
    in_width: int  # in_channels / in_features
    out_width: int  # out_channels / out_features
    groups: int = 1
    unit: int = 1  # output positions per example * kernel area
    kernel: int = 1  # kernel area (1 for Linear)
    bias: bool = False

    @property
    def depthwise(self) -> bool:
        """True for a depthwise conv (groups == in == out > 1)."""
        return self.groups > 1 and self.groups == self.in_width == self.out_width

    def macs_per_out(self) -> int:
        """MACs removed by dropping one output channel (a depthwise channel drops in and out)."""
        return self.unit * (self.in_width // self.groups)

    def macs_per_in(self) -> int:
        """MACs removed by dropping one input channel/column at the current output width."""
        return self.unit * (self.out_width // self.groups)


@dataclass
class FlopsReport:
    """Per-layer MACs/params of one forward pass (per example), with totals."""

    layers: dict[str, LayerFlops] = field(default_factory=dict)
    total_macs: int = 0  # sum of Conv/Linear MACs per example
    total_params: int = 0  # every parameter of the model
    batch: int = 1  # batch size of the example input the counts were divided by

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-serialisable)."""
        return {
            "layers": {k: asdict(v) for k, v in self.layers.items()},
            "total_macs": self.total_macs,
            "total_params": self.total_params,
            "batch": self.batch,
        }

    def table(self, top: int | None = None) -> str:
        """Human-readable per-layer table, largest layers first."""
        rows = sorted(self.layers.values(), key=lambda r: -r.macs)[:top]
        lines = [f"{'layer':40s} {'type':8s} {'MMACs':>10s} {'params':>10s}"]
        lines += [f"{r.name:40s} {r.type:8s} {r.macs / 1e6:10.3f} {r.params:10d}" for r in rows]
        lines.append(f"{'total':40s} {'':8s} {self.total_macs / 1e6:10.3f} {self.total_params:10d}")
        return "\n".join(lines)


def _as_tuple(example_input: Any) -> tuple:
    """Normalise the example input to a positional-argument tuple."""
    return example_input if isinstance(example_input, (tuple, list)) else (example_input,)


def _first_tensor(args: tuple) -> torch.Tensor:
    """The first tensor among the example arguments (its dim 0 is the batch)."""
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
    raise ConfigError("example_input must be a tensor or a tuple holding at least one tensor, e.g. "
                      "torch.randn(1, 3, 32, 32)")


@contextmanager
def _identity_bn_on_meta() -> Iterator[None]:
    """Skip BatchNorm's slow Python meta kernel: shape-preserving, so identity on meta tensors.

    Non-meta calls (other threads) are delegated to the real function unchanged.
    """
    orig = F.batch_norm

    def batch_norm(input: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return input if input.is_meta else orig(input, *args, **kwargs)

    F.batch_norm = batch_norm
    try:
        yield
    finally:
        F.batch_norm = orig


def _run_with_hooks(model: nn.Module, args: tuple, meta: bool) -> dict[str, list[int]]:
    """One forward pass recording, per Conv/Linear module, [output rows (total), calls]."""
    rows: dict[str, list[int]] = {}
    hooks = []
    names = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (*CONV_TYPES, nn.Linear)):
            names[mod] = name

            def hook(m: nn.Module, inp: Any, out: torch.Tensor) -> None:
                width = out_width(m)
                rec = rows.setdefault(names[m], [0, 0])
                rec[0] += out.numel() // width
                rec[1] += 1

            hooks.append(mod.register_forward_hook(hook))
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            if meta:
                from torch.func import functional_call

                state = {k: torch.empty_like(v, device="meta") for k, v in model.named_parameters()}
                state.update({k: torch.empty_like(v, device="meta") for k, v in model.named_buffers()})
                margs = tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)
                with _identity_bn_on_meta():
                    functional_call(model, state, margs, strict=False)
            else:
                model(*args)
    finally:
        for h in hooks:
            h.remove()
        for m, t in modes.items():
            m.training = t
    return rows


def layer_params(mod: nn.Module) -> int:
    """Number of parameters a module owns itself (not its children)."""
    return sum(p.numel() for p in mod.parameters(recurse=False))


def count_flops(model: nn.Module, example_input: Any, meta: bool = True) -> FlopsReport:
    """Count Conv/Linear MACs per example with forward hooks in one pass (paper's FLOPs).

    The pass runs on the meta device by default (shapes only, a few ms, weights untouched);
    models that need real values fall back to a real ``no_grad`` eval pass. Counts are divided
    by the batch size of ``example_input`` (dim 0 of its first tensor).

    Example:
        >>> import torch
        >>> from oicsr_lab import build_model, count_flops
        >>> report = count_flops(build_model("resnet20"), torch.zeros(1, 3, 32, 32))
        >>> report.total_macs, report.total_params
        (40813184, 272474)
    """
    args = _as_tuple(example_input)
    batch = max(1, int(_first_tensor(args).shape[0]))
    rows = None
    if meta:
        try:
            rows = _run_with_hooks(model, args, meta=True)
        except Exception:
            pass  # an op without a meta kernel: count with a real pass below
    if rows is None:
        try:
            rows = _run_with_hooks(model, args, meta=False)
        except Exception as err:  # the model cannot run on this input: one line, not torch's traceback
            text = str(err).strip().splitlines()
            shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
            raise ConfigError(
                f"count_flops: {type(model).__name__} failed on example_input of shape "
                f"{shapes[0] if len(shapes) == 1 else shapes} "
                f"({type(err).__name__}: {text[0] if text else ''}); pass an input the model accepts, e.g. "
                "torch.randn(1, 3, 32, 32)"
            ) from err
    report = FlopsReport(batch=batch)
    modules = dict(model.named_modules())
    for name, (total_rows, _calls) in rows.items():
        per_example = total_rows // batch if total_rows % batch == 0 else total_rows / batch
        report.layers[name] = _layer(name, modules[name], per_example)
    return _totals(report, model)


def _layer(name: str, mod: nn.Module, rows: int) -> LayerFlops:
    """LayerFlops of a Conv/Linear module with ``rows`` output positions per example."""
    if is_conv(mod):
        kernel = math.prod(mod.kernel_size)
        lf = LayerFlops(
            name, type(mod).__name__, 0, layer_params(mod), mod.in_channels, mod.out_channels,
            mod.groups, rows * kernel, kernel, mod.bias is not None,
        )
    else:
        lf = LayerFlops(
            name, type(mod).__name__, 0, layer_params(mod), mod.in_features, mod.out_features,
            1, rows, 1, mod.bias is not None,
        )
    lf.macs = lf.unit * lf.out_width * (lf.in_width // lf.groups)
    return lf


def _totals(report: FlopsReport, model: nn.Module) -> FlopsReport:
    """Fill the report's totals."""
    report.total_macs = sum(lf.macs for lf in report.layers.values())
    report.total_params = sum(p.numel() for p in model.parameters())
    return report


def report_from_shapes(model: nn.Module, module_info: dict[str, dict]) -> FlopsReport | None:
    """A report from traced shapes (``GroupSet.module_info``, no batch dim) without any forward pass.

    Returns None when there are no shapes or they disagree with the model's current widths
    (the model was changed after tracing).
    """
    report = FlopsReport()
    for name, mod in model.named_modules():
        if not isinstance(mod, (*CONV_TYPES, nn.Linear)):
            continue
        info = module_info.get(name) or {}
        shape = info.get("out_shape")
        if not shape:
            continue
        conv = is_conv(mod)
        width = out_width(mod)
        if (shape[0] if conv else shape[-1]) != width:
            return None
        calls = int(info.get("calls", 1) or 1)
        report.layers[name] = _layer(name, mod, math.prod(shape) // width * calls)
    return _totals(report, model) if report.layers else None


def _group_channel_macs(report: FlopsReport, group: ChannelGroup) -> int:
    """MACs removed by dropping one channel of ``group`` at the report's widths."""
    saved = 0
    for s in group.slices:
        lf = report.layers.get(s.module)
        if lf is None:  # BatchNorm or a module the pass did not reach
            continue
        if s.kind in ("out", "dw"):
            saved += lf.macs_per_out()
        elif s.kind == "in" and lf.groups == 1:  # a grouped conv's inputs go with its out rows (whole groups)
            saved += s.block * lf.macs_per_in()
    return saved


def channel_flops(report: FlopsReport, groups: GroupSet | list[ChannelGroup]) -> dict[str, int]:
    """MACs saved by removing one channel of each group (its filter, dw slice and input slices)."""
    return {g.name: _group_channel_macs(report, g) for g in groups}
