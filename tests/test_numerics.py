"""Numerical safety: all-zero channels and groups, float16/bfloat16 models, and CUDA models.

No NaN or inf may appear in energies, normalised scores, regulariser penalties, gradients or
proximal steps when whole channels or groups are exactly zero (``sqrt`` at 0); half-precision
models trace, count, score, mask and prune like float32 ones; a CUDA model (skipped without
CUDA) gives the same groups, FLOPs and plan as on the CPU and its pruned copy stays on the GPU.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from oicsr_lab.criteria import get_criterion
from oicsr_lab.flops import count_flops
from oicsr_lab.groups import find_groups
from oicsr_lab.importance import CRITERIA, NORMALIZATIONS, channel_energy
from oicsr_lab.models import build_model
from oicsr_lab.pruning import apply_masks, global_greedy_plan, prune
from oicsr_lab.regularizers import make_regularizer, names

HALF = [torch.float16, torch.bfloat16]


def tiny_resnet() -> nn.Module:
    """A seeded narrow ResNet-20 with random BN statistics, in eval mode."""
    from oicsr_lab.groups.verify import randomize_bn

    torch.manual_seed(0)
    return randomize_bn(build_model("resnet20", width=0.25)).eval()


def zero_channels(model: nn.Module, group, channels: list[int]) -> None:
    """Zero every weight the given channels of ``group`` own (out rows, BN gamma/beta, in columns)."""
    with torch.no_grad():
        for s in group.slices:
            m = model.get_submodule(s.module)
            for i in channels:
                idx = s.indices[i]
                if s.kind == "in":
                    m.weight[:, idx * s.block:(idx + 1) * s.block] = 0
                else:
                    m.weight[idx] = 0
                    if m.bias is not None:
                        m.bias[idx] = 0


def finite(t: torch.Tensor | float | None) -> bool:
    return t is None or bool(torch.isfinite(torch.as_tensor(t)).all())


@pytest.fixture(scope="module")
def base():
    """(model, input, groups) of the tiny ResNet."""
    model = tiny_resnet()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return model, x, find_groups(model, x[:1])


# -- zero channels and zero-norm groups --------------------------------------------------------------
@pytest.mark.parametrize("criterion", CRITERIA)
def test_energy_of_zero_channels_and_groups_is_finite(base, criterion: str) -> None:
    """Zeroed channels score 0 (lowest), a fully zero group scores all 0, never NaN, for every normalisation."""
    model, _, groups = base
    model = copy.deepcopy(model)
    g0, g1 = groups.prunable[0], groups.prunable[1]
    zero_channels(model, g0, [0, 2])
    zero_channels(model, g1, list(range(g1.size)))
    for normalize in NORMALIZATIONS:
        scores = channel_energy(model, groups, criterion, normalize)
        assert all(finite(v) for v in scores.values()), normalize
        if not get_criterion(criterion).zero_is_least:  # random, fpgm (distance to the others)
            continue
        assert torch.all(scores[g1.name] == 0), normalize
        assert scores[g0.name][0] == 0 and scores[g0.name][2] == 0 and scores[g0.name].min() == 0, normalize
    zero = copy.deepcopy(model)
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
    for normalize in NORMALIZATIONS:
        assert all(finite(v) for v in channel_energy(zero, groups, criterion, normalize).values())


def test_zero_channels_are_pruned_first_and_change_nothing(base) -> None:
    """Eq. 5 puts exactly-zero out-in-channels first; removing them leaves the output unchanged."""
    model, x, groups = base
    model = copy.deepcopy(model)
    g = groups.prunable[2]
    zero_channels(model, g, [1])
    scores = channel_energy(model, groups)
    plan = global_greedy_plan(model, groups, scores, 1e-4, example_input=x[:1], tolerance=0.0)
    assert {k: v for k, v in plan.removed().items() if v} == {g.name: [1]}
    with torch.no_grad(), apply_masks(model, plan):
        y_mask = model(x)
    with torch.no_grad():
        y = model(x)
        y_pruned = prune(model, plan)(x)
    assert torch.allclose(y_mask, y, atol=1e-6) and torch.allclose(y_pruned, y, atol=1e-5)


def test_all_zero_scores_give_a_valid_plan(base) -> None:
    """Ties everywhere (all scores 0): the plan still reaches its target with exact accounting."""
    model, x, groups = base
    scores = {g.name: torch.zeros(g.size) for g in groups.prunable}
    plan = global_greedy_plan(model, groups, scores, 0.3, example_input=x[:1])
    assert plan.achieved_ratio >= 0.3 and plan.flops_after == count_flops(prune(model, plan), x[:1]).total_macs


@pytest.mark.parametrize("name", [n for n in names() if n != "l2"])
@pytest.mark.parametrize("mode", ["subgradient", "proximal"])
@pytest.mark.parametrize("grad", ["direct", "autograd"])
def test_regularizers_on_zero_norm_groups(base, name: str, mode: str, grad: str) -> None:
    """Penalty, gradients, subgradient edit and proximal step stay finite when groups are exactly zero."""
    model, x, groups = base
    model = copy.deepcopy(model).train()
    for g in groups.prunable[:3]:
        zero_channels(model, g, list(range(g.size)))  # whole zero-norm groups
    zero_channels(model, groups.prunable[3], [0])  # and a single zero channel
    reg = make_regularizer(name, groups, 1e-2, mode=mode, grad=grad, include_bn=name != "l1bn")
    model.zero_grad()
    loss = model(x).square().mean()
    pen = reg.penalty(model)
    assert finite(pen)
    (loss + pen if pen is not None else loss).backward()
    reg.after_backward(model)
    assert all(finite(p.grad) for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p.sub_(0.1 * p.grad)
    reg.after_step(model, 0.1)
    assert all(finite(p) for p in model.parameters()) and finite(reg.value(model))


# -- float16 / bfloat16 ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_precision_groups_flops_energy_masks_prune(base, dtype: torch.dtype) -> None:
    """A half-precision model: same groups and FLOPs; finite energies close to float32; masked == pruned."""
    model32, x32, groups32 = base
    model, x = copy.deepcopy(model32).to(dtype), x32.to(dtype)
    try:
        with torch.no_grad():
            model(x)
    except RuntimeError as e:  # pragma: no cover - very old CPU kernels
        pytest.skip(f"{dtype} convolution not available on this CPU: {e}")
    groups = find_groups(model, x[:1])
    assert [(g.name, g.size, g.prunable) for g in groups] == [(g.name, g.size, g.prunable) for g in groups32]
    assert count_flops(model, x[:1]).total_macs == count_flops(model32, x32[:1]).total_macs
    for criterion in ("out_in", "l1", "bn_gamma"):
        s16, s32 = channel_energy(model, groups, criterion), channel_energy(model32, groups32, criterion)
        for k in s32:
            assert s16[k].dtype == torch.float32 and finite(s16[k])
            assert torch.allclose(s16[k], s32[k], rtol=2e-2, atol=1e-3), (criterion, k)
    plan = global_greedy_plan(model, groups, channel_energy(model, groups), 0.3, example_input=x[:1])
    pruned = prune(model, plan)
    assert all(p.dtype == dtype for p in pruned.parameters())
    assert plan.flops_after == count_flops(pruned, x[:1]).total_macs
    with torch.no_grad(), apply_masks(model, plan):
        y_mask = model(x)
    with torch.no_grad():
        y_pruned = pruned(x)
    assert y_mask.dtype == y_pruned.dtype == dtype and finite(y_mask) and finite(y_pruned)
    scale = float(y_mask.float().abs().max())
    assert float((y_mask.float() - y_pruned.float()).abs().max()) <= 5e-2 * max(1.0, scale)


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", ["gl", "oicsr_gl", "oicsr_growl", "l1bn"])
def test_half_precision_regularizers_stay_finite(base, dtype: torch.dtype, name: str) -> None:
    """Regulariser hooks on a half-precision model with zero groups: finite penalties, grads and prox steps."""
    model32, x32, groups = base
    model = copy.deepcopy(model32).to(dtype).train()
    zero_channels(model, groups.prunable[0], list(range(groups.prunable[0].size)))
    for mode in ("subgradient", "proximal"):
        reg = make_regularizer(name, groups, 1e-2, mode=mode)
        model.zero_grad()
        model(x32.to(dtype)).float().square().mean().backward()
        reg.after_backward(model)
        reg.after_step(model, 0.1)
        assert all(finite(p) and finite(p.grad) for p in model.parameters()), mode
        assert finite(reg.value(model))


# -- CUDA ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_groups_flops_plan_prune(base) -> None:
    """A CUDA model: the same groups, FLOPs and plan as on the CPU; masks and the pruned copy run on the GPU."""
    model32, x32, groups32 = base
    model, x = copy.deepcopy(model32).cuda(), x32.cuda()
    groups = find_groups(model, x[:1])
    assert [(g.name, g.size) for g in groups] == [(g.name, g.size) for g in groups32]
    assert count_flops(model, x[:1]).total_macs == count_flops(model32, x32[:1]).total_macs
    scores = channel_energy(model, groups)
    ref = channel_energy(model32, groups32)
    assert all(torch.allclose(scores[k], ref[k], rtol=1e-4, atol=1e-6) for k in ref)
    plan = global_greedy_plan(model, groups, scores, 0.3, example_input=x[:1])
    assert plan.keep == global_greedy_plan(model32, groups32, ref, 0.3, example_input=x32[:1]).keep
    pruned = prune(model, plan)
    assert all(p.is_cuda for p in pruned.parameters())
    with torch.no_grad(), apply_masks(model, plan):
        y_mask = model(x)
    with torch.no_grad():
        y_pruned = pruned(x)
    assert torch.allclose(y_mask, y_pruned, atol=1e-4 * max(1.0, float(y_mask.abs().max())))
    reg = make_regularizer("oicsr_gl", groups, 1e-2, mode="proximal")
    model.train()
    model(x).square().mean().backward()
    reg.after_backward(model)
    reg.after_step(model, 0.1)
    assert all(finite(p) for p in model.parameters()) and finite(reg.value(model))
