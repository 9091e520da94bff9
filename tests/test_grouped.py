"""Grouped convolutions prune by whole conv groups; unsupported ops are named, explained, or pinned."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from oicsr_lab.errors import PlanError, UnsupportedModelError
from oicsr_lab.flops import channel_flops, count_flops
from oicsr_lab.groups import explain, find_groups, group_macs
from oicsr_lab.groups.verify import check_group, check_partition, randomize_bn
from oicsr_lab.importance import channel_energy
from oicsr_lab.pruning import Plan, apply_masks, global_greedy_plan, prune


class Chained(nn.Module):
    """c1 -> grouped g4 (groups=4) -> grouped g2 (groups=2, 2 inputs : 3 outputs per group) -> c3 -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.g4, self.b4 = nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.BatchNorm2d(8)
        self.g2 = nn.Conv2d(8, 12, 1, groups=2)
        self.c3 = nn.Conv2d(12, 5, 1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.b4(self.g4(F.relu(self.b1(self.c1(x))))))
        x = F.relu(self.c3(F.relu(self.g2(x))))
        return self.fc(x.mean((2, 3)))


def masked_vs_pruned(model: nn.Module, plan: Plan, x: torch.Tensor) -> tuple[float, nn.Module]:
    """Max |masked - pruned| in eval mode and the pruned copy."""
    small = prune(model, plan)
    with torch.no_grad(), apply_masks(model, plan):
        y_mask = model(x)
    with torch.no_grad():
        y_small = small(x)
    return float((y_mask - y_small).abs().max()), small


def test_whole_conv_groups_form_one_channel_and_chained_groups_coarsen() -> None:
    model = randomize_bn(Chained()).eval()
    x = torch.randn(2, 3, 8, 8)
    groups = find_groups(model, x[:1])
    assert check_partition(model, groups) == []
    g = groups["c1"]  # g4's 4 conv groups meet g2's 2 conv groups: 2 channels of 4 + 4 (+6 of g2) indices
    assert g.prunable and g.size == 2
    assert sorted({s.module for s in g.slices}) == ["b1", "b4", "c1", "c3", "g2", "g4"]
    assert [s.indices for s in g.slices if (s.module, s.kind) == ("g2", "out")] == [(j, 6 + j) for j in range(6)]
    assert [s.indices for s in g.slices if (s.module, s.kind) == ("c1", "out")] == [(j, 4 + j) for j in range(4)]
    for i in range(g.size):  # zeroing a conv group equals masking it, and nothing leaks around it
        checks = check_group(model, g, i, x)
        assert checks["effect"] > 1e-3 and max(v for k, v in checks.items() if k not in ("effect", "consumers")) < 1e-5
    # out-in energy counts each grouped conv's weights once (as rows), plus c1's rows and c3's columns
    e = channel_energy(model, groups, "out_in", "none")["c1"]
    want = [model.c1.weight[4 * k:4 * k + 4].pow(2).sum() + model.g4.weight[4 * k:4 * k + 4].pow(2).sum()
            + model.g2.weight[6 * k:6 * k + 6].pow(2).sum() + model.c3.weight[:, 6 * k:6 * k + 6].pow(2).sum()
            for k in range(2)]
    torch.testing.assert_close(e, torch.stack(want).detach())
    # removing one conv group: exact MACs (channel_flops, group_macs) and masked == pruned
    dense = count_flops(model, x[:1])
    plan = Plan(keep={"c1": [1]}, sizes={"c1": 2}, slices={"c1": [[s.module, s.kind, list(s.indices), s.block]
                                                                      for s in g.slices]})
    diff, small = masked_vs_pruned(model, plan, x)
    assert diff <= 1e-5
    assert (small.g4.groups, small.g4.in_channels, small.g4.out_channels) == (2, 4, 4)
    assert (small.g2.groups, small.g2.in_channels, small.g2.out_channels) == (1, 4, 6)
    saved = dense.total_macs - count_flops(small, x[:1]).total_macs
    assert saved == channel_flops(dense, groups)["c1"]
    assert group_macs(g, groups.module_info) == 2 * saved  # both conv groups: every MAC that touches them


def test_grouped_conv_fed_by_a_constant_is_not_prunable() -> None:
    class Const(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c, self.g, self.head = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1, groups=2), nn.Conv2d(4, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.c(x) + self.g(torch.ones(1, 4, 1, 1)))

    groups = find_groups(Const(), torch.randn(1, 3, 4, 4), allow_coupled=True)
    g = groups["c"]  # c's outputs are added to g's
    assert not g.prunable and "grouped convolution 'g'" in g.reason and "constant" in g.reason


def test_surgery_refuses_a_partial_conv_group() -> None:
    model = Chained().eval()
    g = find_groups(model, torch.randn(1, 3, 8, 8))["c1"]
    slices = [[s.module, s.kind, list(s.indices), s.block] for s in g.slices]
    slices = [s if (s[0], s[1]) != ("g4", "in") else [s[0], s[1], [0, 0], 1] for s in slices]  # corrupt one side
    bad = Plan(keep={"c1": [1]}, sizes={"c1": 2}, slices={"c1": slices})
    with pytest.raises(PlanError, match="grouped conv g4 .* whole conv groups"):
        prune(model, bad)


@pytest.mark.parametrize("name", ["resnext50_32x4d", "regnet_x_400mf", "regnet_y_400mf"])
def test_torchvision_grouped_models_prune_at_30_percent(name: str) -> None:
    """ResNeXt / RegNet (64 px, random weights and BN): the planned FLOPs, masked == physical within 1e-4."""
    torch.manual_seed(0)
    model = randomize_bn(getattr(torchvision.models, name)(num_classes=10)).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    groups = find_groups(model, x[:1])
    grouped = {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1}
    touched = {s.module for g in groups.prunable for s in g.slices}
    assert grouped and grouped <= touched  # every grouped conv is in a prunable group
    plan = global_greedy_plan(model, groups, channel_energy(model, groups), 0.3, example_input=x[:1])
    assert 0.3 <= plan.achieved_ratio <= 0.3 + plan.tolerance
    diff, small = masked_vs_pruned(model, plan, x)
    assert diff <= 1e-4
    assert count_flops(small, x[:1]).total_macs == plan.flops_after
    assert sum(p.numel() for p in small.parameters()) == plan.params_after
    before = {n: m for n, m in model.named_modules() if n in grouped}
    shrunk = 0
    for n, m in small.named_modules():
        if n in grouped:  # per-group widths kept, whole groups removed
            assert m.in_channels // m.groups == before[n].in_channels // before[n].groups
            assert m.out_channels // m.groups == before[n].out_channels // before[n].groups
            shrunk += m.groups < before[n].groups
    assert shrunk > 0
    with torch.no_grad():
        assert float((model(x) - small(x)).abs().max()) > 1e-4  # something was really removed
    # round_to=8 counts channels, not conv groups: every pruned conv keeps a multiple of 8 filters
    plan8 = global_greedy_plan(model, groups, channel_energy(model, groups), 0.3, example_input=x[:1], round_to=8)
    small8 = prune(model, plan8)
    cut = {s.module for g in groups.prunable if plan8.layer_ratios[g.name] > 0 for s in g.out_slices}
    assert cut and all(small8.get_submodule(n).out_channels % 8 == 0 for n in cut)
    assert plan8.achieved_ratio >= 0.3 and masked_vs_pruned(model, plan8, x)[0] <= 1e-4


class Shuffle(nn.Module):
    """conv -> channel shuffle (ShuffleNet) -> conv -> conv -> head."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 6, 1), nn.Conv2d(6, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.a(x))
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.fc(F.relu(self.c(F.relu(self.b(x)))).mean((2, 3)))


def test_channel_shuffle_is_named_explained_and_pinned() -> None:
    model, x = Shuffle().eval(), torch.randn(2, 3, 6, 6)
    with pytest.raises(UnsupportedModelError, match=r"node 'view'.*channel shuffle") as err:
        find_groups(model, x[:1])
    assert "\n" not in str(err.value)
    text = explain(model, x[:1])
    assert text.startswith("find_groups refuses Shuffle: cannot map channels through node 'view'")
    assert "pinned: node 'view'" in text and "b " in text
    groups = find_groups(model, x[:1], unsupported="pin")
    assert not groups["a"].prunable and "'view'" in groups["a"].reason
    assert groups["b"].prunable and [g.name for g in groups.prunable] == ["b", "c"]
    plan = global_greedy_plan(model, groups, channel_energy(model, groups), 0.2, example_input=x[:1],
                              max_layer_ratio=0.9)
    assert plan.achieved_ratio >= 0.2 and masked_vs_pruned(model, plan, x)[0] <= 1e-5
    assert "3 prunable" not in explain(Chained(), x[:1]) and "prunable" in explain(Chained(), x[:1])


def test_pruned_grouped_model_saves_and_loads(tmp_path) -> None:
    """save_pruned/load_pruned rebuild the grouped convs with their new group counts."""
    from oicsr_lab.models import build_model
    from oicsr_lab.pruning import load_pruned, save_pruned

    torch.manual_seed(0)
    model = randomize_bn(build_model("torchvision:regnet_y_400mf", num_classes=10)).eval()
    x = torch.randn(2, 3, 64, 64)
    groups = find_groups(model, x[:1])
    plan = global_greedy_plan(model, groups, "out_in", 0.3, example_input=x[:1])
    small = prune(model, plan)
    save_pruned(small, tmp_path / "small.pt",
                arch={"name": "torchvision:regnet_y_400mf", "kwargs": {"num_classes": 10}},
                plan=plan)
    back = load_pruned(tmp_path / "small.pt").eval()
    with torch.no_grad():
        torch.testing.assert_close(back(x), small(x))
    assert count_flops(back, x[:1]).total_macs == plan.flops_after
