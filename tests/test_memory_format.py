"""Where training uses channels_last (oicsr_lab.memory_format) and that the loaders follow the choice.

On an AVX2-only CPU a channels_last backward of a width-0.25 ResNet-20 corrupted the heap
(oneDNN issue 6035): the test suite died with a segfault in its first training fixture.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oicsr_lab import memory_format
from oicsr_lab.memory_format import MIN_STRIDED_1X1_CHANNELS, channels_last_ok, channels_last_reason
from oicsr_lab.models import build_model
from oicsr_lab.train import build_trainer, preset


def narrow_shortcut() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 8, 1, stride=2))


@pytest.fixture
def avx512(monkeypatch):
    monkeypatch.setattr(memory_format, "cpu_capability", lambda: "AVX512")


@pytest.fixture
def avx2(monkeypatch):
    monkeypatch.setattr(memory_format, "cpu_capability", lambda: "AVX2")


def test_avx2_cpus_train_contiguous(avx2):
    reason = channels_last_reason(build_model("resnet20"), "cpu")
    assert reason is not None and "AVX2" in reason
    assert not channels_last_ok(build_model("resnet20"), "cpu")


def test_avx512_cpus_train_channels_last_unless_a_strided_1x1_is_narrow(avx512):
    assert channels_last_ok(build_model("resnet20"), "cpu")  # shortcuts 16->32 and 32->64: safe
    reason = channels_last_reason(narrow_shortcut(), "cpu")
    assert reason is not None and "6035" in reason and "1" in reason
    assert not channels_last_ok(build_model("resnet20", width=0.25), "cpu")  # shortcut 4->8


@pytest.mark.parametrize("cin, stride, ok", [(MIN_STRIDED_1X1_CHANNELS - 1, 2, False),
                                             (MIN_STRIDED_1X1_CHANNELS, 2, True),
                                             (4, 1, True)])
def test_the_rule_at_its_threshold(avx512, cin, stride, ok):
    assert channels_last_ok(nn.Conv2d(cin, 8, 1, stride=stride), "cpu") is ok


def test_cuda_always_channels_last(avx2):
    assert channels_last_ok(narrow_shortcut(), "cuda")  # no device needed: the rule only reads the type


def test_the_trainer_and_its_loader_follow_the_rule(avx2, sample_data, tmp_path):
    tr = build_trainer(preset("ci", epochs=1, train_subset=64), out_dir=tmp_path, data=sample_data, device="cpu",
                       show_progress=False)
    assert tr.channels_last is False
    assert any("AVX2" in n for n in tr.notes)
    conv = next(m for m in tr.model.modules() if isinstance(m, nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous()
    x, _ = next(iter(tr.loader))
    assert x.is_contiguous() and not (x.dim() == 4 and x.stride(1) == 1)  # NCHW, not a channels_last view
    tr.fit()  # the width-0.25 network trains (it crashed in channels_last on an AVX2 CPU)


def test_the_loader_gives_channels_last_when_asked(avx512, sample_data, tmp_path):
    tr = build_trainer(preset("ci", epochs=1, train_subset=64, width=1.0), out_dir=tmp_path, data=sample_data,
                       device="cpu", show_progress=False)
    assert tr.channels_last is True
    x, _ = next(iter(tr.loader))
    assert x.is_contiguous(memory_format=torch.channels_last)
