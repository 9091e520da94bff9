"""find_groups: structure, exact zeroing checks on zoo/torchvision/hand-made nets, errors, report.

The key property (``oicsr_lab.groups.verify.check_group``): for a channel of a group, zeroing
every slice the group lists equals masking the channel where it is written, zeroing only the
producers already silences every listed consumer, zeroing the ``in`` columns equals zeroing the
consumers' inputs, and forcing the channel to a constant is invisible once its ``in`` columns
are zero. Together they show the group is complete (no missing producer or consumer) and its
indices are right. ``assert_partition`` checks that every Conv/Linear/BN index is owned once.
"""

from __future__ import annotations

import random
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from oicsr_lab.errors import ConfigError, UnsupportedModelError
from oicsr_lab.groups import describe, find_groups, groups_table
from oicsr_lab.groups.types import ChannelGroup, GroupSet
from oicsr_lab.groups.verify import check_group, check_partition, randomize_bn
from oicsr_lab.models import build_model, default_input_size, list_models

TOL = 1e-6  # relative to max|output|; the zeroing checks are exact in practice (0.0)
CHECKS = ("zero_vs_mask", "producers", "in_vs_prehook", "consumers")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def assert_partition(model: nn.Module, gs: GroupSet) -> None:
    """Every traced Conv/Linear/BN index is owned by exactly one slice; groups are well formed."""
    assert check_partition(model, gs) == []


def assert_exact(model: nn.Module, gs: GroupSet, x: torch.Tensor, max_groups: int | None = None,
                 seed: int = 0, every_channel: bool = False) -> list[dict]:
    """Run check_group on (a sample of) the prunable groups; every check must be ~0."""
    rng = random.Random(seed)
    groups = list(gs.prunable)
    if max_groups is not None and len(groups) > max_groups:
        coupled = [g for g in groups if g.coupled][:1]
        groups = coupled + rng.sample([g for g in groups if g not in coupled], max_groups - len(coupled))
    results = []
    for g in groups:
        for i in range(g.size) if every_channel else [rng.randrange(g.size)]:
            r = check_group(model, g, i, x)
            bad = {k: r[k] for k in CHECKS if r[k] > TOL}  # nan (nothing to inject) passes
            assert not bad, f"group {g.name!r} channel {i}: {bad} (slices {g.slices})"
            results.append(r)
    assert results, "no prunable group was checked"
    return results


# ---- hand-made nets --------------------------------------------------------------------------
class ConcatNet(nn.Module):
    """Concat of two producers (BN after concat), concat reused twice, residual add of three convs."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 5, 1)
        self.bn = nn.BatchNorm2d(9)
        self.c, self.d, self.e = nn.Conv2d(9, 6, 3, padding=1), nn.Conv2d(18, 6, 1), nn.Conv2d(4, 6, 1, bias=False)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        a = F.relu(self.a(x))
        y = torch.cat([a, self.b(x)], dim=1)
        z = F.relu(self.bn(y))
        u = self.c(z) + self.d(torch.cat([z, y], 1)) + self.e(a)
        return self.fc(F.adaptive_avg_pool2d(u, 1).flatten(1))


class DepthwiseNet(nn.Module):
    """MobileNet-style: conv-BN-ReLU, depthwise (no bias) + BN, pointwise, depthwise with bias."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.dw1, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 12, 1)
        self.dw2 = nn.Conv2d(12, 12, 3, stride=2, padding=1, groups=12)
        self.c3 = nn.Conv2d(12, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(self.bn1(self.c1(x)))
        x = F.relu6(self.bn2(self.dw1(x)))
        x = F.relu(self.dw2(F.relu(self.pw(x))))
        return self.fc(torch.mean(F.relu(self.c3(x)), dim=(2, 3)))


class GroupedNet(nn.Module):
    """A grouped conv (groups=2) between two plain convs."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.g, self.c3 = (nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=2),
                                    nn.Conv2d(8, 8, 1))
        self.c4 = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(self.c3(F.relu(self.g(F.relu(self.c1(x))))))
        return self.fc(F.adaptive_max_pool2d(F.relu(self.c4(x)), 1).squeeze(-1).squeeze(-1))


class SENet(nn.Module):
    """Squeeze-and-excitation with Linear layers: x * sigmoid(fc2(relu(fc1(mean(x))))).view(N, C, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc1, self.fc2 = nn.Linear(8, 4), nn.Linear(4, 8)
        self.c2 = nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = F.relu(self.bn1(self.c1(x)))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        x = x * gate.view(x.size(0), -1, 1, 1)
        return self.head(F.adaptive_avg_pool2d(F.relu(self.c2(x)), 1).view(x.size(0), -1))


class FlattenHead(nn.Module):
    """Conv -> max pool -> torch.flatten of a 4x4 map -> Linear (block 16) -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.fc1, self.fc2 = nn.Conv2d(3, 6, 3, padding=1), nn.Linear(6 * 16, 10), nn.Linear(10, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = torch.flatten(F.max_pool2d(F.relu(self.c1(x)), 2), 1)
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class ViewHead(nn.Module):
    """Conv-BN-ReLU, spatial slicing/permute/upsampling, x.view(N, -1) -> Linear (block 8*8), nn.Flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn1 = nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5)
        self.c2 = nn.Conv2d(5, 4, 1)
        self.fc = nn.Linear(4 * 8 * 8, 6)
        self.tail = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(6, 2))

    def forward(self, x):
        x = F.relu(self.bn1(self.c1(x)), inplace=True)
        x = x[:, :, 1:, :].permute(0, 1, 3, 2).contiguous()
        x = self.c2(F.interpolate(x, size=(8, 8)).type_as(x))
        x = x.view(x.size(0), -1)
        return self.tail(self.fc(x).view(x.size(0), 6, 1))


class ResTiny(nn.Module):
    """Stem -> block with projection shortcut -> block with identity shortcut (torchvision-style +=)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
        self.a1, self.a2, self.proj = nn.Conv2d(6, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(6, 8, 1)
        self.b1, self.b2 = nn.Conv2d(8, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        out = self.a2(F.relu(self.a1(x)))
        out += self.proj(x)
        x = F.relu(out)
        x = F.relu(torch.add(x, self.b2(F.relu(self.b1(x)))))
        return self.fc(x.mean((2, 3)))


class ShareNet(nn.Module):
    """The same conv called twice, and two convs with one tied weight tensor (weight sharing)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Linear(12, 2)
        self.c3, self.c4 = nn.Conv2d(8, 6, 1), nn.Conv2d(8, 6, 1)
        self.c4.weight = self.c3.weight

    def forward(self, x):
        x = F.relu(self.c2(F.relu(self.c2(F.relu(self.c1(x))))))
        return self.fc(torch.cat([self.c3(x), self.c4(x)], 1).mean((2, 3)))


HANDMADE = [ConcatNet, DepthwiseNet, GroupedNet, SENet, FlattenHead, ViewHead, ResTiny, ShareNet]


def _ready(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(model, seed).eval()


@pytest.mark.parametrize("cls", HANDMADE, ids=lambda c: c.__name__)
def test_handmade_nets_every_channel_exact(cls):
    model = _ready(cls())
    x = torch.randn(2, 3, 8, 8)
    gs = find_groups(model, x[:1], allow_coupled=True)
    assert_partition(model, gs)
    if cls is ShareNet:
        assert not gs.prunable
        return
    results = assert_exact(model, gs, x, every_channel=True)
    assert sum(r["effect"] > 1e-4 for r in results) > len(results) // 2, "checks must see the channels"


def _slices(g: ChannelGroup) -> set[tuple[str, str]]:
    return {(s.module, s.kind) for s in g.slices}


def test_handmade_structure():
    gs = find_groups(ConcatNet(), torch.randn(1, 3, 8, 8))
    a, b, c = gs["a"], gs["b"], gs["c"]
    assert [s.indices for s in a.slices if s.module == "d"] == [(0, 1, 2, 3), (9, 10, 11, 12)]
    assert b.bn_slices[0].indices == (4, 5, 6, 7, 8) and not a.coupled
    assert c.coupled and not c.prunable and "allow_coupled" in c.reason
    assert {s.module for s in c.out_slices} == {"c", "d", "e"}
    assert "input of a residual block" in a.reason and "input of a residual block" in b.reason  # they fork into the add
    assert len(find_groups(ConcatNet(), torch.randn(1, 3, 8, 8), allow_coupled=True).prunable) == 3

    dw = find_groups(DepthwiseNet(), torch.randn(1, 3, 8, 8))
    assert _slices(dw["c1"]) == {("c1", "out"), ("bn1", "bn"), ("dw1", "dw"), ("bn2", "bn"), ("pw", "in")}
    assert _slices(dw["pw"]) == {("pw", "out"), ("dw2", "dw"), ("c3", "in")}

    gr = find_groups(GroupedNet(), torch.randn(1, 3, 8, 8))
    # whole conv groups: channel k = c1's outputs 4k..4k+3 = g's inputs and outputs of conv group k
    assert gr["c1"].prunable and gr["c1"].size == 2 and "g" not in [g.name for g in gr]
    assert [(s.module, s.kind, s.indices) for s in gr["c1"].slices] == [
        (m, kind, (j, 4 + j)) for m, kind in (("c1", "out"), ("g", "in"), ("g", "out"), ("c3", "in")) for j in range(4)]
    assert gr["c3"].prunable and gr["c4"].prunable

    se = find_groups(SENet(), torch.randn(1, 3, 8, 8))
    assert _slices(se["c1"]) == {("c1", "out"), ("bn1", "bn"), ("fc1", "in"), ("fc2", "out"), ("c2", "in")}
    assert se["c1"].coupled and se["c1"].prunable  # the SE gate couples but does not block pruning
    assert _slices(se["fc1"]) == {("fc1", "out"), ("fc2", "in")} and se["fc1"].prunable

    fh = find_groups(FlattenHead(), torch.randn(1, 3, 8, 8))
    assert fh["c1"].in_slices[0].block == 16 and fh["fc1"].prunable
    assert fh.module_info["fc1"] == {"type": "Linear", "in_shape": (96,), "out_shape": (10,), "groups": 1,
                                          "macs": 960, "calls": 1}

    vh = find_groups(ViewHead(), torch.randn(1, 3, 8, 8))
    assert vh["c2"].in_slices[0].module == "fc" and vh["c2"].in_slices[0].block == 64
    assert vh.module_info["c2"]["in_shape"] == (5, 8, 8) and not vh["tail.2"].prunable

    rt = find_groups(ResTiny(), torch.randn(1, 3, 8, 8))
    assert not rt["stem"].prunable and "input of a residual block" in rt["stem"].reason and not rt["stem"].coupled
    assert rt["a1"].prunable and rt["b1"].prunable and not rt["a2"].prunable and rt["a2"].coupled
    assert {s.module for s in rt["a2"].out_slices} == {"a2", "proj", "b2"}
    assert len(find_groups(ResTiny(), torch.randn(1, 3, 8, 8), allow_coupled=True).prunable) == 4

    sh = find_groups(ShareNet(), torch.randn(1, 3, 8, 8))
    assert "'c2' is called more than once" in sh["c1"].reason and sh.module_info["c2"]["calls"] == 2
    assert "'c4' shares its weight with 'c3'" in sh["c3"].reason
    assert {s.module for s in sh["c3"].out_slices} == {"c3", "c4"}


def test_checks_catch_wrong_groups():
    """The zeroing checks fail when a producer, a consumer or an index is wrong."""
    model = _ready(ConcatNet())
    x = torch.randn(2, 3, 8, 8)
    gs = find_groups(model, x[:1], allow_coupled=True)
    c, a = gs["c"], gs["a"]
    no_e = ChannelGroup("c", c.size, tuple(s for s in c.slices if s.module != "e"), coupled=True)
    no_d = ChannelGroup("a", a.size, tuple(s for s in a.slices if not (s.module == "d" and s.kind == "in")))
    swapped = tuple(type(s)(s.module, s.kind, s.indices[::-1], s.block) if s.kind == "in" else s for s in a.slices)
    bad_idx = ChannelGroup("a", a.size, swapped)
    assert max(check_group(model, no_e, i, x)["producers"] for i in range(c.size)) > 1e-3
    assert max(check_group(model, no_d, i, x)["consumers"] for i in range(a.size)) > 1e-3
    assert max(check_group(model, bad_idx, i, x)["producers"] for i in range(a.size)) > 1e-3


# ---- model zoo and torchvision ---------------------------------------------------------------
def test_cifar_resnet_paper_groups():
    for depth in (20, 56):
        n = (depth - 2) // 6
        model = build_model(f"resnet{depth}")
        gs = find_groups(model, torch.randn(1, 3, 32, 32))
        prunable = gs.prunable
        assert len(prunable) == 3 * n  # block-internal conv1 -> bn1 -> conv2 only
        for g in prunable:
            block = g.name.rsplit(".", 1)[0]
            assert g.name.endswith("conv1") and not g.coupled
            assert [(s.module, s.kind) for s in g.slices] == [(f"{block}.conv1", "out"), (f"{block}.bn1", "bn"),
                                                              (f"{block}.conv2", "in")]
        assert not gs["input"].prunable and not gs["fc"].prunable and "model output" in gs["fc"].reason
        assert sum(g.coupled for g in gs) == 3 and all("allow_coupled" in g.reason for g in gs if g.coupled)
        assert len(find_groups(model, torch.randn(1, 3, 32, 32), allow_coupled=True).prunable) == 3 * n + 3
    assert gs.module_info["layer2.0.conv1"] == {"type": "Conv2d", "in_shape": (16, 32, 32), "out_shape": (32, 16, 16),
                                                "groups": 1, "macs": 32 * 16 * 16 * 16 * 9, "calls": 1}
    assert gs.module_info["fc"]["in_shape"] == (64,) and gs.module_info["bn1"]["out_shape"] == (16, 32, 32)


def test_macs_match_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model("resnet20").eval()
    x = torch.randn(1, 3, 32, 32)
    with FlopCounterMode(display=False) as fc:
        model(x)
    gs = find_groups(model, x)
    assert sum(v["macs"] for v in gs.module_info.values()) * 2 == fc.get_total_flops()


@pytest.mark.parametrize("name", list_models())
def test_zoo_models(name):
    model = _ready(build_model(name, num_classes=10, width=0.5))
    size = default_input_size(name)
    x = torch.randn(1, 3, size, size)
    gs = find_groups(model, x, allow_coupled=True)
    assert_partition(model, gs)
    assert_exact(model, gs, x, max_groups=6)


TORCHVISION = {  # name: (input size, prunable groups by default = the paper's block-internal channels)
    "resnet18": (64, 8),
    "resnet50": (64, 32),
    "vgg16_bn": (32, 15),
    "alexnet": (64, 7),
    "densenet121": (32, 120),
    "mobilenet_v2": (32, 20),
    "mobilenet_v3_small": (32, 23),  # SE gates (conv fc, hardsigmoid): mul-coupled but prunable
}


def _torchvision(name: str) -> nn.Module:
    """A torchvision classifier with cheap random weights (built on meta; big tensors tile a random block)."""
    with torch.device("meta"):
        model = getattr(torchvision.models, name)(num_classes=10)
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            base = torch.randn(min(p.numel(), 1 << 16), generator=gen)
            p.copy_(base.repeat(-(-p.numel() // base.numel()))[: p.numel()].view_as(p))
            p.mul_((2.0 / p[0].numel()) ** 0.5 if p.dim() > 1 else 0.1)
    return model


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_models(name):
    size, n_prunable = TORCHVISION[name]
    model = _ready(_torchvision(name))
    x = torch.randn(1, 3, size, size)
    assert len(find_groups(model, x).prunable) == n_prunable
    gs = find_groups(model, x, allow_coupled=True)
    assert_partition(model, gs)
    results = assert_exact(model, gs, x, max_groups={"vgg16_bn": 2, "resnet50": 3, "alexnet": 3}.get(name, 4))
    assert max(r["effect"] for r in results) > 1e-4, "the checked channels must change the output"
    assert gs.groups[-1].name in describe(gs)


def test_resnet50_224_is_fast():
    model = torchvision.models.resnet50()
    x = torch.randn(1, 3, 224, 224)
    find_groups(model, x)
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        gs = find_groups(model, x)
        best_wall, best_cpu = min(best_wall, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    print(f"find_groups(resnet50, 1x3x224x224): {best_wall:.3f}s wall, {best_cpu:.3f}s cpu")
    assert best_cpu < 0.5 and len(gs.prunable) == 32
    assert sum(v["macs"] for v in gs.module_info.values()) == 4_089_184_256  # the paper's 4089 M


@pytest.mark.parametrize("meta", [True, False], ids=["meta", "real_fallback"])
def test_model_is_not_modified(meta, monkeypatch):
    """Shapes come from a meta-device pass, else a real forward with copied buffers; the model is untouched."""
    import oicsr_lab.groups.tracer as tracer

    real = tracer.functional_call

    def no_meta(module, state, args):
        if any(v.device.type == "meta" for v in state.values()):
            raise NotImplementedError("no meta kernel")
        return real(module, state, args)

    if not meta:
        monkeypatch.setattr(tracer, "functional_call", no_meta)
    model = build_model("resnet20").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []  # the user's module keeps its real weights even while the shape pass runs
    model.layer1[0].conv1.register_forward_hook(lambda *_: seen.append(model.layer1[0].conv1.weight.device.type))
    gs = find_groups(model, torch.randn(2, 3, 32, 32))
    assert seen == ["cpu"] and len(gs.prunable) == 9 and gs.module_info["fc"]["in_shape"] == (64,)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ---- errors ----------------------------------------------------------------------------------
class _Branchy(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


class _Bad(nn.Module):
    def __init__(self, body) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.gn, self.body = nn.GroupNorm(2, 8), body
        self.inner = _Branchy()

    def forward(self, x):
        return self.body(self, self.c1(x))


ERRORS = {
    "permute": (lambda s, y: s.c2(y.permute(0, 2, 3, 1).permute(0, 3, 1, 2)), "node 'permute'"),
    "transpose": (lambda s, y: s.c2(y.transpose(1, 2)), "node 'transpose'"),
    "chunk": (lambda s, y: (lambda t: t[0] + t[1])(torch.chunk(y, 2, dim=1)), "node 'chunk'"),
    "split": (lambda s, y: s.c2(torch.cat(y.split(4, 1)[::-1], 1)), "node 'split'"),
    "channel_slice": (lambda s, y: y[:, :4], "node 'getitem'"),
    "unknown_module": (lambda s, y: s.c2(s.gn(y)), "module 'gn'.*GroupNorm"),
    "unknown_op": (lambda s, y: s.c2(torch.cumsum(y, dim=1)), "node 'cumsum'"),
    "channel_mean": (lambda s, y: y * y.mean(1, keepdim=True), "node 'mean'"),
    "channel_shuffle": (lambda s, y: s.c2(y.view(y.size(0), 2, 4, 8, 8).transpose(1, 2).reshape(y.size(0), 8, 8, 8)),
                        "node 'view'"),
    "channel_constant": (lambda s, y: y + torch.ones(1, 8, 1, 1), "node 'add'"),
    "data_dependent_if": (lambda s, y: s.c2(s.inner(y)), r"control flow on node 'gt' in module 'inner' \(_Branchy\)"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_unsupported_ops_raise_naming_the_node(case):
    body, pattern = ERRORS[case]
    with pytest.raises(UnsupportedModelError, match=pattern):
        find_groups(_Bad(body), torch.randn(1, 3, 8, 8))


def test_bad_arguments():
    with pytest.raises(ConfigError):
        find_groups(lambda x: x, torch.randn(1, 3, 8, 8))
    with pytest.raises(ConfigError):
        find_groups(ConcatNet(), "not a tensor")
    assert len(find_groups(ConcatNet(), (torch.randn(1, 3, 8, 8),))) == 5


# ---- report ----------------------------------------------------------------------------------
def test_describe_and_table():
    gs = find_groups(build_model("resnet20"), torch.randn(1, 3, 32, 32))
    text = describe(gs)
    for needle in ("layer1.0.conv1", "layer1.0.bn1", "layer1.0.conv2", "fc", "allow_coupled", "network input"):
        assert needle in text
    rows = groups_table(gs)
    assert [r["name"] for r in rows] == [g.name for g in gs]
    row = next(r for r in rows if r["name"] == "layer3.2.conv1")
    assert row["out"] == ["layer3.2.conv1"] and row["bn"] == ["layer3.2.bn1"] and row["in"] == ["layer3.2.conv2"]
    assert row["macs"] == 2 * 64 * 64 * 9 * 8 * 8 and 0 < row["macs_share"] < 1 and row["prunable"]
