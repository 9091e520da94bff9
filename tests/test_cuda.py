"""The engine on a CUDA device (skipped without one; CI has none, a lent GPU machine runs them).

The CPU suite cannot see a tensor left on the wrong device: the plan's indices are built on the
CPU, and surgery once indexed CUDA weights with them ("index is on cpu, different from other
tensors on cuda:0"), which stopped ``reproduce --device cuda`` at its first sweep.
"""

from __future__ import annotations

import pytest
import torch

from oicsr_lab import apply_masks, build_model, channel_energy, find_groups, global_greedy_plan, prune
from oicsr_lab.inference import inference_copy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def planned():
    torch.manual_seed(0)
    model = build_model("resnet20", width=0.5).cuda().eval()
    x = torch.randn(8, 3, 32, 32, device="cuda")
    groups = find_groups(model, x)
    plan = global_greedy_plan(model, groups, channel_energy(model, groups), 0.4, example_input=x)
    return model, plan, x


def test_prune_on_cuda_equals_the_masked_model(planned):
    model, plan, x = planned
    small = prune(model, plan)
    assert next(small.parameters()).device.type == "cuda"
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad(), apply_masks(model, plan):
        ref = model(x)
    with torch.no_grad():
        out = small(x)
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)


def test_inference_copy_on_cuda(planned):
    model, plan, x = planned
    net = inference_copy(model, plan)
    with torch.no_grad(), apply_masks(model, plan):
        ref = model(x)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref, rtol=1e-3, atol=1e-3)
