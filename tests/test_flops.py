"""FLOPs counter: agreement with FlopCounterMode, the paper's ResNet-50 number, channel savings."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from oicsr_lab.flops import channel_flops, count_flops, report_from_shapes
from oicsr_lab.models import build_model, default_input_size, list_models

from nets import Chain, chain_groups

TV_MODELS = ["resnet50", "vgg16_bn", "densenet121", "mobilenet_v2", "resnet18", "alexnet"]


def _reference_macs(model: nn.Module, x: torch.Tensor) -> float:
    """FlopCounterMode total / 2 (it counts 2 FLOPs per MAC)."""
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return fc.get_total_flops() / 2


@pytest.mark.parametrize("name", list_models())
def test_zoo_matches_flop_counter_mode(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=10)
    s = default_input_size(name)
    x = torch.randn(1, 3, s, s)
    report = count_flops(model, x)
    assert report.total_macs == pytest.approx(_reference_macs(model, x), rel=5e-3)
    assert report.total_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", TV_MODELS)
def test_torchvision_matches_flop_counter_mode(name: str) -> None:
    model = getattr(torchvision.models, name)(num_classes=10)
    x = torch.randn(1, 3, 64, 64)
    assert count_flops(model, x).total_macs == pytest.approx(_reference_macs(model, x), rel=5e-3)


def test_resnet50_is_4089m_macs() -> None:
    """The paper's Table 1 baseline: dense ResNet-50 at 224x224 = 4089 M MACs."""
    model = torchvision.models.resnet50()
    report = count_flops(model, torch.randn(1, 3, 224, 224))
    assert report.total_macs == pytest.approx(4.089e9, rel=5e-3)
    assert report.layers["fc"].macs == 2048 * 1000
    assert report.layers["conv1"].macs == 112 * 112 * 64 * 3 * 49


def test_meta_and_real_pass_agree_and_batch_is_divided_out() -> None:
    model = build_model("resnet20", num_classes=10)
    a = count_flops(model, torch.randn(1, 3, 32, 32))
    b = count_flops(model, torch.randn(3, 3, 32, 32), meta=False)
    assert a.to_dict()["layers"] == b.to_dict()["layers"] and a.total_macs == b.total_macs
    assert b.batch == 3 and "total" in a.table(top=3)


def test_counting_leaves_model_untouched() -> None:
    model = build_model("resnet20", num_classes=10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, torch.randn(2, 3, 32, 32), meta=False)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_depthwise_and_grouped_conv() -> None:
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 16, 3, padding=1, groups=4))
    r = count_flops(model, torch.randn(1, 8, 10, 10))
    assert r.layers["0"].macs == 100 * 8 * 9 and r.layers["0"].depthwise
    assert r.layers["1"].macs == 100 * 16 * 2 * 9 and not r.layers["1"].depthwise


def test_channel_flops_of_a_chain() -> None:
    """One channel of conv1 saves its filter and conv2's input slice; of conv2, its filter and 16 fc columns."""
    model, x = Chain(), torch.randn(1, 3, 8, 8)
    report = count_flops(model, x)
    saved = channel_flops(report, chain_groups())
    assert saved["conv1"] == 64 * 3 * 9 + 64 * 12 * 9
    assert saved["conv2"] == 64 * 8 * 9 + 16 * 5
    assert report.total_macs == 64 * 8 * 27 + 64 * 12 * 72 + 192 * 5


def test_report_from_traced_shapes_equals_hook_count() -> None:
    model, x = build_model("resnet20", num_classes=10), torch.randn(1, 3, 32, 32)
    shapes: dict[str, dict] = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, {"out_shape": tuple(o.shape[1:])}))
        for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert report_from_shapes(model, shapes).total_macs == count_flops(model, x).total_macs
    assert report_from_shapes(model, {}) is None
