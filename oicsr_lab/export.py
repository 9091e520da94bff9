"""Deployment: export a (pruned) model to ONNX and check with onnxruntime that it computes the same outputs.

``export_onnx(pruned, example_input, "small.onnx")`` writes the model as an ONNX graph (the ``onnx``
package; batch dim dynamic by default), validates it with ``onnx.checker``, runs it with
onnxruntime on ``example_input`` (and on a batch of two when the batch dim is dynamic) and
compares against the PyTorch eval-mode outputs. Only a checked file is moved into place (atomic
write), so a failed export never leaves a half-written or wrong ``.onnx`` behind.

Exporters: ``"dynamo"`` (``torch.onnx.export(..., dynamo=True)``, PyTorch's default since 2.9,
needs ``onnxscript``; ~10 s for a small CNN), ``"torchscript"`` (the legacy tracer, only ``onnx``;
~1 s, deprecated by PyTorch), ``"auto"`` (dynamo when onnxscript is installed, torchscript when it is
not or when dynamo fails; ``OnnxExport.exporter`` says which one wrote the file). Install with
``pip install 'oicsr-lab[onnx]'``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import logging
import os
import tempfile
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn

from .errors import ConfigError, OICSRError, OutputError

EXPORTERS = ("auto", "dynamo", "torchscript")
__all__ = ["export_onnx", "OnnxExport", "ExportError", "onnx_session", "EXPORTERS"]


class ExportError(OICSRError):
    """The exported ONNX graph is invalid or computes different outputs than the PyTorch model."""


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote and measured."""

    path: Path
    exporter: str
    opset: int
    inputs: list[str]
    outputs: list[str]
    dynamic_batch: bool
    max_abs_diff: float  # onnxruntime vs PyTorch on the checked inputs
    checked_batches: list[int] = field(default_factory=list)
    bytes: int = 0


def _require(module: str) -> Any:
    """Import ``module`` or raise a one-line ConfigError saying how to install it."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"export_onnx needs the {module!r} package: pip install 'oicsr-lab[onnx]' "
                          "(onnx, onnxruntime, onnxscript)")
    return importlib.import_module(module)


def _exporters(name: str) -> list[str]:
    """The exporters to try in order (``auto``: dynamo when onnxscript is installed, then torchscript)."""
    if name not in EXPORTERS:
        raise ConfigError(f"unknown exporter {name!r}; choose one of {', '.join(EXPORTERS)}")
    if name == "auto":
        return (["dynamo"] if importlib.util.find_spec("onnxscript") is not None else []) + ["torchscript"]
    if name == "dynamo":
        _require("onnxscript")
    return [name]


def _export(model: nn.Module, args: tuple[torch.Tensor, ...], tmp: Path, exporter: str, opset: int | None,
            dynamic_batch: bool) -> None:
    """Run torch.onnx.export into ``tmp`` with the chosen exporter (its chatter silenced)."""
    names = [f"input{i}" if len(args) > 1 else "input" for i in range(len(args))]
    kw: dict[str, Any] = {"input_names": names, "output_names": ["output"], "dynamo": exporter == "dynamo"}
    if opset is not None:
        kw["opset_version"] = opset
    if exporter == "dynamo":
        kw["external_data"] = False
        if dynamic_batch:
            batch = torch.export.Dim("batch", min=1)
            kw["dynamic_shapes"] = tuple({0: batch} for _ in args)
    elif dynamic_batch:
        kw["dynamic_axes"] = {**{n: {0: "batch"} for n in names}, "output": {0: "batch"}}
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), _quiet_loggers(_CHATTY_LOGGERS):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(tmp), **kw)


# torch.export logs "Error while creating guard" tracebacks at ERROR level for dynamic batch sizes (48 of
# them per benchmark run, 200 KB of stderr) although the export succeeds; a failed export still raises
_CHATTY_LOGGERS = ("torch._guards", "torch._dynamo", "torch.export", "torch.fx.experimental.symbolic_shapes")


@contextlib.contextmanager
def _quiet_loggers(names: tuple[str, ...]) -> Iterator[None]:
    """Raise the level of ``names`` to CRITICAL for the duration (restored after)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def onnx_session(path: str | os.PathLike, threads: int | None = None) -> Any:
    """An onnxruntime CPU InferenceSession for ``path`` (``threads`` intra-op threads; default: torch's)."""
    ort = _require("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _check(model: nn.Module, tmp: Path, args: tuple[torch.Tensor, ...], dynamic_batch: bool,
           rtol: float, atol: float) -> tuple[float, list[int], list[str], list[str]]:
    """onnx.checker plus onnxruntime vs PyTorch on the example (and on batch 2 when dynamic)."""
    onnx = _require("onnx")
    try:
        onnx.checker.check_model(str(tmp), full_check=True)
    except Exception as e:
        raise ExportError(f"the exported graph fails onnx.checker: {str(e).splitlines()[0]}") from e
    sess = onnx_session(tmp)
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    cases = [args]
    if dynamic_batch and args[0].shape[0] != 2:
        gen = torch.Generator().manual_seed(0)
        cases.append(tuple(torch.randn((2, *a.shape[1:]), generator=gen).to(a.device, a.dtype) for a in args))
    worst = 0.0
    for case in cases:
        with torch.no_grad():
            ref = model(*case)
        ref = ref if isinstance(ref, (tuple, list)) else (ref,)
        got = sess.run(None, {n: a.detach().cpu().contiguous().numpy() for n, a in zip(in_names, case)})
        for r, g in zip(ref, got):
            r = r.detach().float().cpu().numpy()
            if r.shape != g.shape:
                raise ExportError(f"onnxruntime output shape {g.shape} != PyTorch {r.shape} at batch "
                                  f"{case[0].shape[0]}")
            diff = float(np.abs(r - g).max()) if r.size else 0.0
            worst = max(worst, diff)
            if not np.allclose(g, r, rtol=rtol, atol=atol):
                raise ExportError(f"onnxruntime and PyTorch outputs differ by up to {diff:.3g} at batch "
                                  f"{case[0].shape[0]} (rtol={rtol}, atol={atol}); the graph was not written")
    return worst, [int(c[0].shape[0]) for c in cases], in_names, out_names


def _contiguous(model: nn.Module) -> nn.Module:
    """``model``, or an eval copy in the default memory format when its conv weights are channels_last.

    torch.export (the dynamo exporter) fails on channels_last weights; the ONNX graph has no memory
    format, so exporting a contiguous copy gives the same network (the caller's model is untouched).
    """
    if any(p.dim() == 4 and not p.is_contiguous() for p in model.parameters()):
        return copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    return model


def export_onnx(model: nn.Module, example_input: Any, path: str | os.PathLike, *, exporter: str = "auto",
                opset: int | None = None, dynamic_batch: bool = True, rtol: float = 1e-3,
                atol: float = 1e-4) -> OnnxExport:
    """Export ``model`` (run in eval mode) to ONNX at ``path`` after checking onnxruntime matches PyTorch.

    ``example_input``: a float tensor (or tuple) the model accepts, e.g. ``torch.randn(1, 3, 32, 32)``.
    Raises ExportError (nothing written) when the graph is invalid or outputs differ beyond
    ``atol + rtol * |expected|``. Returns what was written and the measured max abs difference.

    Example:
        >>> import tempfile, torch
        >>> from oicsr_lab import build_model
        >>> net, x = build_model("resnet20").eval(), torch.randn(1, 3, 32, 32)
        >>> out = export_onnx(net, x, tempfile.mkdtemp() + "/resnet20.onnx", exporter="torchscript")
        >>> out.max_abs_diff < 1e-4, out.checked_batches
        (True, [1, 2])
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"export_onnx needs a torch.nn.Module, got {type(model).__name__}")
    args = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    if not args or not all(isinstance(a, torch.Tensor) and a.dim() >= 1 for a in args):
        raise ConfigError("example_input must be a tensor (or a tuple of tensors), e.g. torch.randn(1, 3, 32, 32)")
    tries = _exporters(exporter)
    _require("onnx"), _require("onnxruntime")
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; pass a file path such as {path / 'model.onnx'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the folder {path.parent} for {path.name}: {e.strerror}") from e
    param = next(model.parameters(), None)
    args = tuple(a.to(param.device) if param is not None else a for a in args)
    was_training = model.training
    model.eval()
    source, model = model, _contiguous(model)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        for i, exporter in enumerate(tries):  # auto: fall back to the torchscript exporter
            try:
                _export(model, args, tmp, exporter, opset, dynamic_batch)
                break
            except Exception as e:
                if i + 1 < len(tries):
                    continue
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ExportError(f"torch.onnx.export ({exporter}) failed for {type(model).__name__}: {first}") from e
        diff, batches, ins, outs = _check(model, tmp, args, dynamic_batch, rtol, atol)
        import onnx

        opset_used = max((o.version for o in onnx.load(str(tmp), load_external_data=False).opset_import
                          if o.domain in ("", "ai.onnx")), default=0)
        os.replace(tmp, path)
    finally:
        source.train(was_training)
        tmp.unlink(missing_ok=True)
    return OnnxExport(path=path, exporter=exporter, opset=int(opset_used), inputs=ins, outputs=outs,
                      dynamic_batch=dynamic_batch, max_abs_diff=diff, checked_batches=batches,
                      bytes=path.stat().st_size)
