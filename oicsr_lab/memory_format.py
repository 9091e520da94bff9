"""Whether *training* may use the channels_last memory format on a device.

channels_last makes convolutions faster on CUDA and on AVX-512 CPUs, where this project's
training runs were tested in it. On other CPUs oneDNN's kernels are not safe for the backward
pass of the networks this lab trains:

* on AVX2-only CPUs the 1x1 strided convolution's weight gradient writes past its workspace when
  the layer has fewer input channels than the kernel's block (oneDNN issue 6035: a heap
  corruption, a hang or silently wrong gradients). A width-0.25 ResNet-20 or a pruned network has
  such a shortcut; on a 2-core AMD EPYC with AVX2 only, every channels_last backward of them
  crashed ("double free or corruption") while the contiguous format never did;
* on AVX-512 CPUs a strided 1x1 convolution with fewer than 16 input channels (AVX-512's block) is
  the same pattern. It was not seen failing there, but a wrong gradient need not crash, so such a
  network trains in the contiguous format as a precaution (slower, never wrong).

Forward passes (evaluation, inference) are not affected and keep channels_last.

Example::

    >>> import torch
    >>> from oicsr_lab.memory_format import channels_last_ok
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 1, stride=2))
    >>> channels_last_ok(net, "cpu")   # a strided 1x1 convolution with 4 input channels
    False
"""

from __future__ import annotations

import torch
from torch import nn

MIN_STRIDED_1X1_CHANNELS = 16
"""Input channels below which a strided 1x1 convolution trains in the contiguous format on a CPU."""


def cpu_capability() -> str:
    """The vector instruction set PyTorch's CPU kernels use here (``"AVX512"``, ``"AVX2"``, ``"DEFAULT"``, ...)."""
    return torch.backends.cpu.get_cpu_capability()


def _risky_convs(model: nn.Module) -> list[str]:
    """Names of the strided 1x1 convolutions with fewer than :data:`MIN_STRIDED_1X1_CHANNELS` input channels."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1) and max(m.stride) > 1
            and m.in_channels < MIN_STRIDED_1X1_CHANNELS]


def channels_last_ok(model: nn.Module, device: str | torch.device) -> bool:
    """True when training ``model`` on ``device`` in channels_last is safe (CUDA; a CPU with AVX-512 and no
    narrow strided 1x1 convolution)."""
    return channels_last_reason(model, device) is None


def channels_last_reason(model: nn.Module, device: str | torch.device) -> str | None:
    """Why training ``model`` on ``device`` keeps the contiguous format, or None when channels_last is safe."""
    kind = torch.device(device).type
    if kind == "cuda":
        return None
    if kind != "cpu":
        return f"channels_last is not used for training on {kind}"
    cap = cpu_capability()
    if not cap.startswith("AVX512"):
        return (f"this CPU's kernels are {cap}: channels_last training is only used on AVX-512 CPUs (oneDNN's "
                "AVX2 strided 1x1 convolution backward is unsafe for narrow layers); training in the contiguous "
                "format")
    risky = _risky_convs(model)
    if risky:
        return (f"{len(risky)} strided 1x1 convolution(s) with fewer than {MIN_STRIDED_1X1_CHANNELS} input "
                f"channels ({risky[0]}, ...): training in the contiguous format (oneDNN issue 6035)")
    return None
