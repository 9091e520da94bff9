"""Channel energy (eq. 5) against a slow per-channel formula; baselines; normalisations."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from oicsr_lab.errors import ConfigError
from oicsr_lab.groups import find_groups
from oicsr_lab.groups.types import ChannelGroup, GroupSet, Slice
from oicsr_lab.importance import CRITERIA, NORMALIZATIONS, channel_energy
from oicsr_lab.models import build_model, list_models


class Net(nn.Module):
    """conv-bn-relu-dwconv-bn-relu-conv-bn-relu-pool-flatten-linear (the last conv feeds Linear, block 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.dw, self.bdw = nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.BatchNorm2d(6)
        self.c2, self.b2 = nn.Conv2d(6, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5)
        self.fc = nn.Linear(5 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bdw(self.dw(torch.relu(self.b1(self.c1(x))))))
        x = nn.functional.max_pool2d(torch.relu(self.b2(self.c2(x))), 2)
        return self.fc(torch.flatten(x, 1))


def net_groups() -> GroupSet:
    # channel order permuted to check that indices (not positions) are honoured
    p6, p5 = (5, 0, 3, 1, 4, 2), (4, 2, 0, 1, 3)
    return GroupSet([
        ChannelGroup("c1", 6, (Slice("c1", "out", p6), Slice("b1", "bn", p6), Slice("dw", "dw", p6),
                               Slice("bdw", "bn", p6), Slice("c2", "in", p6))),
        ChannelGroup("c2", 5, (Slice("c2", "out", p5), Slice("b2", "bn", p5), Slice("fc", "in", p5, 4))),
    ])


@pytest.fixture
def net() -> nn.Module:
    torch.manual_seed(0)
    model = Net()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, -1, 1)
            nn.init.uniform_(m.bias, -1, 1)
    return model


def slow(model: nn.Module, g: ChannelGroup, criterion: str, include_bn: bool = False) -> tuple[torch.Tensor, int]:
    """Per-channel loop: concatenate everything channel i owns, then reduce (the definition)."""
    vals, n_el = [], 0
    for i in range(g.size):
        parts = []
        for s in g.slices:
            m = model.get_submodule(s.module)
            idx = s.indices[i]
            if criterion == "bn_gamma":
                if s.kind == "bn":
                    parts.append(m.weight[idx:idx + 1])
            elif s.kind == "out" or (s.kind == "dw" and criterion == "out_in"):
                parts.append(m.weight[idx].flatten())
            elif s.kind == "in" and criterion == "out_in":
                parts.append(m.weight[:, idx * s.block:(idx + 1) * s.block].flatten())
            elif s.kind == "bn" and include_bn:
                parts.append(torch.stack([m.weight[idx], m.bias[idx]]))
        v = torch.cat(parts).detach()
        n_el = v.numel()
        if criterion == "bn_gamma":
            vals.append(v.abs().mean())
        elif criterion == "l1":
            vals.append(v.abs().sum())
        else:
            vals.append(v.pow(2).sum())
    return torch.stack(vals), n_el


@pytest.mark.parametrize("criterion", ["out_in", "out", "l1", "bn_gamma"])
@pytest.mark.parametrize("include_bn", [False, True])
def test_energy_matches_slow_formula(net: nn.Module, criterion: str, include_bn: bool) -> None:
    groups = net_groups()
    got = channel_energy(net, groups, criterion, normalize="none", include_bn=include_bn)
    for g in groups:
        want, _ = slow(net, g, criterion, include_bn and criterion == "out_in")
        torch.testing.assert_close(got[g.name], want, rtol=1e-5, atol=1e-6)


def test_eq5_on_the_plain_pair(net: nn.Module) -> None:
    """E_i = ||W^l[i]||^2 + ||W^{l+1}[:, i]||^2 for the group c2 -> fc (column block of 4)."""
    e = channel_energy(net, net_groups(), normalize="none")["c2"]
    idx = 4  # channel 0 of the group owns c2 filter 4 and fc columns 16..19
    want = net.c2.weight[idx].pow(2).sum() + net.fc.weight[:, 16:20].pow(2).sum()
    assert e[0].item() == pytest.approx(want.item(), rel=1e-5)


def test_normalisations_behave_as_documented(net: nn.Module) -> None:
    groups = net_groups()
    raw = channel_energy(net, groups, normalize="none")
    mx = channel_energy(net, groups)  # default: layer_max
    sm = channel_energy(net, groups, normalize="layer_sum")
    pe = channel_energy(net, groups, normalize="per_element")
    assert mx.normalize == "layer_max" and mx.criterion == "out_in"
    for g in groups:
        _, n_el = slow(net, g, "out_in")
        assert mx[g.name].max().item() == pytest.approx(1.0)
        assert sm[g.name].sum().item() == pytest.approx(1.0)
        torch.testing.assert_close(pe[g.name], raw[g.name] / n_el)
        for t in (mx, sm, pe):  # monotone per group: the within-layer order never changes
            assert torch.equal(t[g.name].argsort(), raw[g.name].argsort())


def test_layer_max_is_invariant_to_layer_scale(net: nn.Module) -> None:
    """Scaling a whole group's weights (BN makes this free) changes raw energy, not layer_max."""
    groups = net_groups()
    before = channel_energy(net, groups)["c2"]
    with torch.no_grad():
        net.c2.weight.mul_(3.0)
        net.fc.weight.mul_(3.0)
    torch.testing.assert_close(channel_energy(net, groups)["c2"], before)


def test_random_is_seeded(net: nn.Module) -> None:
    a = channel_energy(net, net_groups(), "random", seed=1)
    b = channel_energy(net, net_groups(), "random", seed=1)
    c = channel_energy(net, net_groups(), "random", seed=2)
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)


def test_errors(net: nn.Module) -> None:
    with pytest.raises(ConfigError, match="criterion"):
        channel_energy(net, net_groups(), "magic")
    with pytest.raises(ConfigError, match="normalize"):
        channel_energy(net, net_groups(), normalize="softmax")
    no_bn = GroupSet([ChannelGroup("c1", 6, (Slice("c1", "out", tuple(range(6))), Slice("dw", "dw", tuple(range(6)))))])
    with pytest.raises(ConfigError, match="no BatchNorm"):
        channel_energy(net, no_bn, "bn_gamma")


def test_only_prunable_groups_unless_asked(net: nn.Module) -> None:
    g = net_groups()
    g.groups.append(ChannelGroup("frozen", 5, g["c2"].slices, prunable=False))
    assert "frozen" not in channel_energy(net, g)
    assert "frozen" in channel_energy(net, g, include_unprunable=True)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("normalize", NORMALIZATIONS)
def test_zoo_scores_cover_every_prunable_channel(name: str, normalize: str) -> None:
    model = build_model(name, num_classes=10, width=0.25)
    groups = find_groups(model, torch.randn(1, 3, 32, 32))
    for criterion in CRITERIA:
        if criterion == "bn_gamma" and not all(g.bn_slices for g in groups.prunable):
            continue
        scores = channel_energy(model, groups, criterion, normalize)
        for g in groups.prunable:
            s = scores[g.name]
            assert s.shape == (g.size,) and torch.isfinite(s).all() and (s >= 0).all()
