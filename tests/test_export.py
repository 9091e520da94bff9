"""ONNX export of pruned models: onnxruntime computes what PyTorch computes; failures write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from oicsr_lab.errors import ConfigError, OutputError  # noqa: E402
from oicsr_lab.export import ExportError, export_onnx, onnx_session  # noqa: E402
from oicsr_lab.groups import find_groups  # noqa: E402
from oicsr_lab.groups.verify import randomize_bn  # noqa: E402
from oicsr_lab.importance import channel_energy  # noqa: E402
from oicsr_lab.models import build_model  # noqa: E402
from oicsr_lab.pruning import global_greedy_plan, prune  # noqa: E402


def pruned(model: nn.Module, x: torch.Tensor, ratio: float = 0.3) -> nn.Module:
    """``model`` physically pruned by Algorithm 1 on out-in energy."""
    model = randomize_bn(model).eval()
    groups = find_groups(model, x)
    return prune(model, global_greedy_plan(model, groups, channel_energy(model, groups), ratio, example_input=x))


def run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    sess = onnx_session(path, threads=1)
    return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])


@pytest.mark.parametrize("arch", ["resnet20", "regnet_x_400mf"])
def test_round_trip_of_a_pruned_model(tmp_path: Path, arch: str) -> None:
    """Pruned ResNet-20 (32 px) and a pruned grouped-conv RegNet (64 px): same outputs at batch 1 and 3."""
    torch.manual_seed(0)
    if arch == "resnet20":
        model, size = build_model("resnet20", width=0.5), 32
    else:
        model, size = torchvision.models.regnet_x_400mf(num_classes=10), 64
    x = torch.randn(1, 3, size, size)
    small = pruned(model, x)
    small.train()  # export_onnx evaluates in eval mode and restores the mode
    out = export_onnx(small, x, tmp_path / "sub" / "small.onnx", exporter="torchscript")
    assert small.training and out.path.is_file() and out.bytes == out.path.stat().st_size
    assert out.checked_batches == [1, 2] and out.max_abs_diff <= 1e-4 and out.dynamic_batch
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["small.onnx"]  # no temp files left
    x3 = torch.randn(3, 3, size, size)
    with torch.no_grad():
        want = small.eval()(x3)
    torch.testing.assert_close(run_onnx(out.path, x3), want, rtol=1e-3, atol=1e-4)


def test_dynamo_exporter(tmp_path: Path, capfd) -> None:
    """Dynamo export of a pruned channels_last net with a dynamic batch: it exports (torch.export alone fails on
    channels_last weights), outputs match, and stderr carries no traceback chatter from torch.export."""
    import logging

    pytest.importorskip("onnxscript")
    x = torch.randn(1, 3, 32, 32)
    small = pruned(build_model("resnet20", width=0.25), x).to(memory_format=torch.channels_last)  # the chatty case
    before = logging.getLogger("torch._guards").level
    out = export_onnx(small, x, tmp_path / "d.onnx", exporter="dynamo")  # channels_last: exported as a copy
    assert small.conv1.weight.is_contiguous(memory_format=torch.channels_last)  # the caller's model untouched
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error while creating guard" not in err, err[:500]
    assert logging.getLogger("torch._guards").level == before  # restored
    assert out.exporter == "dynamo" and out.max_abs_diff <= 1e-4
    with torch.no_grad():
        torch.testing.assert_close(run_onnx(out.path, x), small.eval()(x), rtol=1e-3, atol=1e-4)


class Noisy(nn.Module):
    """Adds fresh noise on every call: onnxruntime cannot reproduce PyTorch's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + torch.rand_like(y)


def test_mismatch_raises_and_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous")
    with pytest.raises(ExportError, match="outputs differ"):
        export_onnx(Noisy(), torch.randn(1, 3, 8, 8), target, exporter="torchscript")
    assert target.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_bad_input(tmp_path: Path) -> None:
    net = nn.Conv2d(3, 4, 1)
    with pytest.raises(OutputError, match="is a folder"):
        export_onnx(net, torch.randn(1, 3, 4, 4), tmp_path)
    with pytest.raises(ConfigError, match="example_input"):
        export_onnx(net, [1, 2], tmp_path / "a.onnx")
    with pytest.raises(ConfigError, match="unknown exporter"):
        export_onnx(net, torch.randn(1, 3, 4, 4), tmp_path / "a.onnx", exporter="tflite")
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        export_onnx("net", torch.randn(1, 3, 4, 4), tmp_path / "a.onnx")


def test_docstring_example_runs() -> None:
    import doctest

    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in doctest.DocTestFinder(recurse=False).find(export_onnx, "export_onnx", globs=dict(export_onnx.__globals__)):
        runner.run(t)
    assert runner.failures == 0 and runner.tries > 0
