"""Arithmetic precision of training and inference: ``fp32``, ``bf16`` or ``auto``.

One place decides where reduced precision pays off, for the trainer and for the evaluation
copies alike:

* ``auto`` on a CPU: bf16 autocast where the CPU has native bfloat16 units (AVX512-BF16 or
  AMX; measured here 1.7-1.9x faster ResNet-20 training steps and ~2.4x faster inference),
  fp32 elsewhere, with a note saying so (emulated bf16 is slower than fp32);
* ``auto`` on CUDA: mixed precision for *training* (bf16 autocast where the GPU supports it,
  else fp16 with a gradient scaler); inference stays fp32 there (a GPU is fast enough).

Autocast only changes the arithmetic of the forward pass: master weights, the optimizer, the
regularisers' penalties and proximal steps and the loss reduction stay fp32.

Example:
    >>> import torch
    >>> from oicsr_lab.precision import autocast, resolve_precision
    >>> p = resolve_precision("fp32", "cpu")
    >>> with autocast(p, "cpu"):
    ...     y = torch.nn.Linear(4, 2)(torch.ones(1, 4))
    >>> p, y.dtype
    ('fp32', torch.float32)
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
"""What a user may ask for (``fp16`` is chosen by ``auto`` on GPUs without bf16, never asked for)."""

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16() -> bool:
    """True when this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX), where bf16 pays off."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except Exception:  # private helpers missing in this torch build: assume no
        return False


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """Inference precision: ``"fp32"`` or ``"bf16"`` (``"auto"``: bf16 on a native-bf16 CPU, else fp32)."""
    _check(precision)
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and native_bf16() else "fp32"


def resolve_train_precision(precision: str, device: str | torch.device = "cpu") -> tuple[str, str | None]:
    """Training precision and a note for the log: ``(resolved, note)``, resolved in fp32 / bf16 / fp16.

    ``auto``: bf16 on a native-bf16 CPU, fp32 on other CPUs (note says why), bf16 on a CUDA GPU
    that supports it, else fp16 (with a gradient scaler, see :func:`needs_grad_scaler`).
    An explicit ``bf16`` on a CPU without native units is honoured, with a note that it is slow.
    """
    _check(precision)
    kind = torch.device(device).type
    if precision == "fp32":
        return "fp32", None
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", None
        if precision == "bf16":
            raise ConfigError("precision bf16 requested on a GPU without bf16 support; use --precision auto "
                              "(fp16 mixed precision) or fp32")
        return "fp16", "this GPU has no bf16: mixed precision uses fp16 with a gradient scaler"
    if kind != "cpu":
        return "fp32", f"no mixed precision on device type {kind!r}: training in fp32"
    if native_bf16():
        return "bf16", None
    if precision == "auto":
        return "fp32", "this CPU has no native bf16 units (AVX512-BF16/AMX): training in fp32"
    return "bf16", "bf16 requested on a CPU without native bf16 units: emulated, expect it slower than fp32"


def needs_grad_scaler(resolved: str) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none."""
    return resolved == "fp16"


@contextlib.contextmanager
def autocast(resolved: str, device: str | torch.device = "cpu") -> Iterator[None]:
    """Autocast for a *resolved* precision (``fp32`` is a no-op context)."""
    dtype = _DTYPES.get(resolved)
    if dtype is None:
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=dtype):
        yield
