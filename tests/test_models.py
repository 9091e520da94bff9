"""Model registry and CIFAR zoo: shapes, width scaling, parameter counts, fx traceability."""

from __future__ import annotations

import pytest
import torch
import torch.fx
import torch.nn as nn

from oicsr_lab.models import build_model, default_input_size, list_models, register_model

torch.set_num_threads(1)

ALL_MODELS = list_models()

# Standard parameter counts (width 1, 10 classes) and the relative tolerance allowed.
STANDARD_PARAMS: dict[str, float] = {
    "resnet20": 0.27e6,
    "resnet32": 0.46e6,
    "resnet56": 0.85e6,
    "resnet110": 1.7e6,
    "vgg16_bn": 14.7e6,
    "densenet40": 1.06e6,
    "cifarnet": 1.76e6,
    "preact_seresnet18": 11.3e6,
}


def _params(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def _input(name: str, batch: int = 2) -> torch.Tensor:
    """A deterministic random batch at the model's design resolution."""
    size = default_input_size(name)
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_zoo_has_paper_families() -> None:
    """The paper's CIFAR families are all registered."""
    for name in ("resnet20", "resnet56", "vgg16_bn", "alexnet_cifar", "cifarnet", "densenet40",
                 "preact_seresnet18"):
        assert name in ALL_MODELS


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("num_classes", [10, 100])
def test_forward_shape(name: str, num_classes: int) -> None:
    """A 2-image batch gives (2, num_classes) logits."""
    model = build_model(name, num_classes=num_classes).eval()
    with torch.no_grad():
        out = model(_input(name))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_narrow_width(name: str) -> None:
    """width=0.25 builds, shrinks the net, keeps input/output sizes, and trains one step."""
    model = build_model(name, num_classes=10, width=0.25)
    assert _params(model) < _params(build_model(name, num_classes=10))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 3
    out = model(_input(name))  # train mode: BN uses batch statistics
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", sorted(set(STANDARD_PARAMS) & set(ALL_MODELS)))
def test_param_count_matches_standard(name: str) -> None:
    """Parameter counts at width 1 match the published figures within 5%."""
    n = _params(build_model(name, num_classes=10))
    assert n == pytest.approx(STANDARD_PARAMS[name], rel=0.05), f"{name}: {n:,}"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fx_trace_matches_eager(name: str) -> None:
    """torch.fx.symbolic_trace works and the traced graph computes the same logits."""
    model = build_model(name, num_classes=10, width=0.5).eval()
    traced = torch.fx.symbolic_trace(model)
    x = _input(name)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_kaiming_init(name: str) -> None:
    """Convs are Kaiming-initialised (fan_out, ReLU): std close to sqrt(2 / fan_out)."""
    model = build_model(name, num_classes=10)
    conv = max((m for m in model.modules() if isinstance(m, nn.Conv2d)),
               key=lambda m: m.weight.numel())
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1] // conv.groups
    assert conv.weight.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.1)


def test_width_scales_internal_channels_only() -> None:
    """width changes hidden widths but never the 3 input channels or the class count."""
    model = build_model("vgg16_bn", num_classes=100, width=0.5)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs][:3] == [32, 32, 64]
    assert model.classifier.out_features == 100
    alex = build_model("alexnet_cifar", num_classes=10, width=0.5)
    linears = [m for m in alex.modules() if isinstance(m, nn.Linear)]
    assert linears[0].in_features == 128 * 4 * 4  # flatten of conv5's 4x4 map
    assert linears[-1].out_features == 10


def test_model_options() -> None:
    """Documented keyword options build and run."""
    x = _input("cifarnet")
    lrn = build_model("cifarnet", num_classes=10, lrn=True)
    assert any(isinstance(m, nn.LocalResponseNorm) for m in lrn.modules())
    assert lrn(x).shape == (2, 10)
    plain = build_model("alexnet_cifar", num_classes=10, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert plain(x).shape == (2, 10)
    torch.fx.symbolic_trace(lrn)


def test_se_gate_is_a_multiplication() -> None:
    """The SE gate appears in the fx graph as x * gate with gate of shape (N, C, 1, 1)."""
    model = build_model("preact_seresnet18", num_classes=10, width=0.25).eval()
    graph = torch.fx.symbolic_trace(model).graph
    muls = [n for n in graph.nodes if n.op == "call_function" and n.target.__name__ == "mul"]
    assert len(muls) == 8  # one per block
    gate = model.layer1[0].se
    x = torch.randn(2, 16, 8, 8)
    g = torch.sigmoid(gate.fc2(torch.relu(gate.fc1(gate.pool(x)))))
    assert g.shape == (2, 16, 1, 1)


def test_unknown_name_lists_models() -> None:
    """An unknown name raises ValueError naming every registered model."""
    with pytest.raises(ValueError) as err:
        build_model("resnet9000")
    msg = str(err.value)
    assert "resnet9000" in msg
    for name in ALL_MODELS:
        assert name in msg


@pytest.mark.parametrize("width", [0.0, -1.0])
def test_bad_width(width: float) -> None:
    """width <= 0 raises ValueError."""
    with pytest.raises(ValueError, match="width"):
        build_model("resnet20", width=width)


def test_duplicate_registration_rejected() -> None:
    """Registering an existing name again raises ValueError."""
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet20")(lambda num_classes=10, width=1.0: nn.Identity())


def test_torchvision_model() -> None:
    """torchvision:<name> builds with the requested class count; unknown ones raise."""
    model = build_model("torchvision:resnet18", num_classes=7)
    assert model.fc.out_features == 7
    assert default_input_size("torchvision:resnet18") == 224
    with pytest.raises(ValueError, match="torchvision"):
        build_model("torchvision:not_a_model")
    with pytest.raises(ValueError, match="width"):
        build_model("torchvision:resnet18", width=0.5)


def test_default_input_size() -> None:
    """The CIFAR zoo is designed for 32x32 inputs; torchvision models for 224x224."""
    for name in STANDARD_PARAMS:
        assert default_input_size(name) == 32
    for name in ("vgg16_bn", "alexnet_cifar", "cifarnet", "densenet40", "preact_seresnet18"):
        assert default_input_size(name) == 32
    assert default_input_size("torchvision:resnet50") == 224
