"""DistributedDataParallel plumbing for ``torchrun --nproc_per_node N`` (gloo on CPU, nccl on GPU).

BatchNorm sees the *global* batch under DDP, so N processes train the same weights as one
process with the same global batch (up to float rounding). On CUDA that is PyTorch's
``nn.SyncBatchNorm``; PyTorch's SyncBatchNorm refuses CPU tensors, so on CPU (gloo) the BN
layers become :class:`CPUSyncBatchNorm2d` (and 1d/3d), which all-reduce the batch statistics
with differentiable collectives. Both keep the BN state-dict keys, so checkpoints are unchanged.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def device_for_rank(device: torch.device) -> torch.device:
    """On CUDA under torchrun, each rank takes the GPU of its LOCAL_RANK."""
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        idx = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(idx)
        return torch.device("cuda", idx)
    return device


class _AllReduceSum(torch.autograd.Function):
    """Sum a tensor over ranks; the backward pass sums the incoming gradients over ranks too."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:  # noqa: D102
        t = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _AllReduceSum.apply(grad)


def _sum_ranks(t: torch.Tensor) -> torch.Tensor:
    """Differentiable sum over ranks (identity without a multi-process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return _AllReduceSum.apply(t)
    return t


class _CPUSyncMixin:
    """Training-mode BatchNorm whose mean/variance are all-reduced over the default process group."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training: normalise with batch statistics summed over ranks (two passes); eval: plain BN."""
        if not self.training:
            return super().forward(x)
        self._check_input_dim(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)
        xs = x if x.dtype in (torch.float32, torch.float64) else x.float()
        count = torch.full((1,), x.numel() // c, dtype=xs.dtype, device=x.device)
        first = _sum_ranks(torch.cat([xs.sum(dims), count]))
        n = first[-1].detach()
        mean = first[:c] / n
        xc = xs - mean.view(shape)
        var = _sum_ranks((xc * xc).sum(dims)) / n  # two passes: as accurate as plain BN
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                unbiased = var.detach() * (n / (n - 1).clamp_min(1))
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        y = xc * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


class CPUSyncBatchNorm1d(_CPUSyncMixin, nn.BatchNorm1d):
    """BatchNorm1d with statistics synchronised over ranks (gloo/CPU)."""


class CPUSyncBatchNorm2d(_CPUSyncMixin, nn.BatchNorm2d):
    """BatchNorm2d with statistics synchronised over ranks (gloo/CPU)."""


class CPUSyncBatchNorm3d(_CPUSyncMixin, nn.BatchNorm3d):
    """BatchNorm3d with statistics synchronised over ranks (gloo/CPU)."""


_CPU_SYNC = {nn.BatchNorm1d: CPUSyncBatchNorm1d, nn.BatchNorm2d: CPUSyncBatchNorm2d, nn.BatchNorm3d: CPUSyncBatchNorm3d}


def convert_cpu_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace plain BatchNorm1d/2d/3d layers by their CPU-synchronised twins (same parameters and buffers)."""
    cls = _CPU_SYNC.get(type(module))
    out = module
    if cls is not None:
        out = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_cpu_sync_batchnorm(child))
    return out


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """Make BatchNorm see the global batch (SyncBatchNorm on CUDA, CPU twins otherwise) and wrap in DDP."""
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    else:
        model = convert_cpu_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks (identity without a process group)."""
    if dist.is_available() and dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t)
    return t


def is_main() -> bool:
    """True on rank 0 (or without a process group)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def shutdown() -> None:
    """Destroy the process group, if one was initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
