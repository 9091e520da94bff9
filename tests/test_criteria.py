"""The criteria registry against hand computations on small nets (every criterion, every normalisation)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from oicsr_lab.criteria import (
    NORMALIZATIONS,
    Calibration,
    calibration_data,
    criteria_table,
    get_criterion,
    names,
    score_channels,
)
from oicsr_lab.criteria.taylor import TaylorFirstOrder
from oicsr_lab.errors import ConfigError
from oicsr_lab.groups import find_groups
from oicsr_lab.importance import ALL_CRITERIA, CRITERIA, channel_energy
from oicsr_lab.models import build_model
from oicsr_lab.pruning import Plan, apply_masks

ISSUE_CRITERIA = {"out_in", "out", "in", "l1", "bn_gamma", "taylor", "mean_activation", "apoz", "hrank", "fpgm",
                  "random"}


class Pair(nn.Module):
    """conv1 (1 -> 4, 1x1) -> ReLU -> conv2 (4 -> 2, 1x1) -> mean: one prunable group 'conv1'."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 1)
        self.conv2 = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x))).mean((2, 3))


def pair(w1: list[float], b1: list[float], w2: torch.Tensor | None = None) -> tuple[Pair, object]:
    """A Pair with conv1 weights/biases set and its groups."""
    net = Pair().eval()
    with torch.no_grad():
        net.conv1.weight.copy_(torch.tensor(w1).view(4, 1, 1, 1))
        net.conv1.bias.copy_(torch.tensor(b1))
        if w2 is not None:
            net.conv2.weight.copy_(w2.view(2, 4, 1, 1))
    return net, find_groups(net, torch.zeros(1, 1, 4, 4))


def calib(*images: torch.Tensor) -> Calibration:
    """One calibration batch of the given (H, W) images (labels 0)."""
    x = torch.stack([torch.as_tensor(i, dtype=torch.float32)[None] for i in images])
    return Calibration([(x, torch.zeros(len(images), dtype=torch.long))], "train")


def test_registry_lists_every_criterion_once_with_docs() -> None:
    assert ISSUE_CRITERIA <= set(names()) and len(set(names())) == len(names())
    assert CRITERIA == names(needs_data=False) and ALL_CRITERIA == names()
    assert set(names(needs_data=True)) == {"taylor", "mean_activation", "apoz", "hrank"}
    assert names()[: len(CRITERIA)] == CRITERIA  # weight-only first (menu order)
    for row in criteria_table():
        assert row["summary"] and row["reference"] and row["family"], row
    labels = [row["label"] for row in criteria_table()]
    assert all(labels) and len(set(labels)) == len(labels)  # every criterion has its own legend label
    from oicsr_lab.plots.style import criterion_label

    assert [criterion_label(n) for n in ("out_in", "bn_gamma", "hrank", "uniform")] == [
        "out-in energy", "BN |γ|", "HRank", "uniform"]  # one source: the registry; floors keep their names
    with pytest.raises(ConfigError, match="unknown criterion 'magic'"):
        get_criterion("magic")


def test_l1_and_in_energy_on_known_weights() -> None:
    w2 = torch.tensor([[1.0, -2.0, 0.0, 3.0], [0.5, 0.0, 0.0, -1.0]])
    net, groups = pair([1.0, -2.0, 0.5, 0.0], [0.0] * 4, w2)
    l1 = score_channels(net, groups, "l1", "none")["conv1"]
    torch.testing.assert_close(l1, torch.tensor([1.0, 2.0, 0.5, 0.0]))
    inn = score_channels(net, groups, "in", "none")["conv1"]  # squared consumer columns
    torch.testing.assert_close(inn, torch.tensor([1.25, 4.0, 0.0, 10.0]))
    out_in = score_channels(net, groups, "out_in", "none")["conv1"]
    torch.testing.assert_close(out_in, torch.tensor([1.0, 4.0, 0.25, 0.0]) + inn)


def test_fpgm_distances_on_a_constructed_case() -> None:
    """Filters 0, 1, -1 and 3 on a line: the sum of distances to the others, by hand."""
    net, groups = pair([0.0, 1.0, -1.0, 3.0], [0.0] * 4)
    got = score_channels(net, groups, "fpgm", "none")["conv1"]
    want = torch.tensor([1 + 1 + 3, 1 + 2 + 2, 1 + 2 + 4, 3 + 2 + 4], dtype=torch.float32)
    torch.testing.assert_close(got, want)
    assert int(got.argmin()) == 0  # the filter at the geometric median goes first


def test_mean_activation_and_apoz_on_constructed_activations() -> None:
    """relu(w * x + b) per channel for a known image: mean |a| and the share of non-zeros, by hand."""
    x = torch.tensor([[-1.0, 0.0], [1.0, 2.0]])
    net, groups = pair([1.0, -1.0, 0.0, 2.0], [0.0, 0.0, 3.0, -1.0])
    # channel maps: relu(x) = [0,0,1,2]; relu(-x) = [1,0,0,0]; 3 everywhere; relu(2x-1) = [0,0,1,3]
    mean = score_channels(net, groups, "mean_activation", "none", calibration=calib(x))["conv1"]
    torch.testing.assert_close(mean, torch.tensor([3 / 4, 1 / 4, 3.0, 4 / 4]))
    apoz = score_channels(net, groups, "apoz", "none", calibration=calib(x))["conv1"]
    torch.testing.assert_close(apoz, torch.tensor([2 / 4, 1 / 4, 1.0, 2 / 4]))


def test_hrank_is_the_average_rank_of_known_feature_maps() -> None:
    """Channels: zero map (rank 0), constant map (1), x (rank of x), x + 10 (rank of x + 1), two images averaged."""
    u, v = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([4.0, 1.0, 3.0, 2.0])
    rank2 = torch.outer(u, v) + torch.outer(v, u.flip(0))  # positive entries, rank 2
    rank1 = torch.outer(u, u)
    assert [int(torch.linalg.matrix_rank(m)) for m in (rank2, rank1)] == [2, 1]
    net, groups = pair([0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 10.0])
    got = score_channels(net, groups, "hrank", "none", calibration=calib(rank2, rank1))["conv1"]
    torch.testing.assert_close(got, torch.tensor([0.0, 1.0, (2 + 1) / 2, (3 + 2) / 2]))


class Linear2(nn.Module):
    """fc1 (4 -> 3) -> fc2 (3 -> 2): the loss is linear in each hidden channel's gate."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


def masked_loss_change(net: nn.Module, group, x: torch.Tensor, y: torch.Tensor, loss_fn) -> torch.Tensor:
    """The exact loss change of removing each channel of ``group`` with apply_masks."""
    with torch.no_grad():
        base = float(loss_fn(net(x), y))
        out = []
        for i in range(group.size):
            plan = Plan(keep={group.name: [j for j in range(group.size) if j != i]}, sizes={group.name: group.size},
                        slices={group.name: [[s.module, s.kind, list(s.indices), s.block] for s in group.slices]})
            with apply_masks(net, plan):
                out.append(float(loss_fn(net(x), y)) - base)
    return torch.tensor(out, dtype=torch.float64)


def test_taylor_estimate_equals_the_loss_change_of_masking_on_a_linear_case() -> None:
    torch.manual_seed(0)
    net = Linear2().eval()
    groups = find_groups(net, torch.zeros(1, 4))
    (group,) = groups.prunable
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    data = Calibration([(x, y)], "val")

    def linear_loss(out: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
        return out.sum()

    crit = TaylorFirstOrder(loss_fn=linear_loss)
    est = crit.loss_change(net, groups, data)[group.name]
    torch.testing.assert_close(est, masked_loss_change(net, group, x, y, linear_loss), rtol=1e-5, atol=1e-5)
    scores = score_channels(net, groups, crit, "none", calibration=data)
    torch.testing.assert_close(scores[group.name].double(), est.pow(2), rtol=1e-5, atol=1e-7)
    assert (scores.batches, scores.images, scores.split) == (1, 8, "val")
    # cross-entropy: second-order terms appear; with small channels the first-order estimate stays close
    with torch.no_grad():
        net.fc2.weight.mul_(0.05)
    est = TaylorFirstOrder().loss_change(net, groups, data)[group.name]
    true = masked_loss_change(net, group, x, y, F.cross_entropy)
    assert (est - true).abs().max() <= 0.05 * true.abs().max() + 1e-7, (est, true)
    assert all(p.grad is None for p in net.parameters())  # parameter gradients untouched


def test_taylor_sums_over_the_group_slices_and_averages_squares_over_batches() -> None:
    """A channel read by two consumers: its gate gradient is the sum of both; the score is mean_b g_b^2."""

    class Fork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv2d(2, 3, 1)
            self.a, self.b = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.c(x)
            return torch.cat([self.a(h), self.b(h)], 1).mean((2, 3))

    torch.manual_seed(1)
    net = Fork().eval()
    groups = find_groups(net, torch.zeros(1, 2, 3, 3))
    assert [s.module for s in groups["c"].in_slices] == ["a", "b"]
    batches = [(torch.randn(4, 2, 3, 3), torch.randint(0, 4, (4,))) for _ in range(3)]
    data = Calibration(batches, "train")
    grads = []
    for x, y in batches:  # by hand: d loss / d gate through both consumers
        gate = torch.ones(3, requires_grad=True)
        h = net.c(x) * gate.view(1, 3, 1, 1)
        out = torch.cat([net.a(h), net.b(h)], 1).mean((2, 3))
        grads.append(torch.autograd.grad(F.cross_entropy(out, y), gate)[0])
    scores = score_channels(net, groups, "taylor", "none", calibration=data)
    torch.testing.assert_close(scores["c"], torch.stack(grads).pow(2).mean(0), rtol=1e-5, atol=1e-8)
    assert scores.batches == 3 and scores.images == 12


def test_random_is_reproducible_by_seed() -> None:
    net, groups = pair([1.0, 2.0, 3.0, 4.0], [0.0] * 4)
    a, b = (score_channels(net, groups, "random", seed=7)["conv1"] for _ in range(2))
    c = score_channels(net, groups, "random", seed=8)["conv1"]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_calibration_refuses_test_split_and_records_what_it_used(sample_data) -> None:
    with pytest.raises(ConfigError, match="test images are for reported numbers only"):
        calibration_data(sample_data, "test")
    with pytest.raises(ConfigError, match="with_validation"):
        calibration_data(sample_data, "val")
    with pytest.raises(ConfigError, match="not allowed"):
        Calibration.from_loader([(torch.zeros(1, 3, 4, 4), torch.zeros(1))], "test", 1)
    got = calibration_data(sample_data.with_validation(100), "val", batches=3, batch_size=16)
    assert (len(got), got.images, got.split) == (3, 48, "val")
    short = Calibration.from_loader([(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long))], "train", 5)
    assert len(short) == 1  # the loader ran out: the count says what was used
    net, groups = pair([1.0, 2.0, 3.0, 4.0], [0.0] * 4)
    with pytest.raises(ConfigError, match="needs calibration data"):
        channel_energy(net, groups, "hrank")
    s = score_channels(net, groups, "apoz", calibration=short)
    assert s.provenance() == {"criterion": "apoz", "normalize": "layer_max", "batches": 1, "images": 2,
                              "split": "train"}


@pytest.mark.parametrize("criterion", names())
def test_every_criterion_on_a_zoo_model_and_every_normalisation(criterion: str) -> None:
    """ResNet-20 (width 0.25, random BN) and CifarNet (a flatten -> Linear consumer, block 64): finite, one score a
    channel."""
    from oicsr_lab.groups.verify import randomize_bn

    gen = torch.Generator().manual_seed(0)
    data = Calibration([(torch.randn(4, 3, 32, 32, generator=gen), torch.randint(0, 10, (4,), generator=gen))
                        for _ in range(2)], "train")
    for arch in ("resnet20", "cifarnet"):
        torch.manual_seed(0)
        model = randomize_bn(build_model(arch, num_classes=10, width=0.25)).eval()
        groups = find_groups(model, torch.zeros(1, 3, 32, 32))
        if criterion == "bn_gamma" and not all(g.bn_slices for g in groups.prunable):
            with pytest.raises(ConfigError, match="no BatchNorm"):
                score_channels(model, groups, criterion)
            continue
        for normalize in NORMALIZATIONS:
            s = score_channels(model, groups, criterion, normalize, calibration=data)
            assert set(s) == {g.name for g in groups.prunable}
            for g in groups.prunable:
                assert s[g.name].shape == (g.size,) and torch.isfinite(s[g.name]).all(), (arch, g.name)
                assert (s[g.name] >= 0).all() and not math.isnan(float(s[g.name].sum()))
            if normalize == "layer_max":
                assert all(float(v.max()) == pytest.approx(1.0) or float(v.max()) == 0 for v in s.values())


def test_global_greedy_plan_takes_a_registry_name() -> None:
    from oicsr_lab.pruning import global_greedy_plan

    model = build_model("resnet20", width=0.25)
    x = torch.zeros(1, 3, 32, 32)
    groups = find_groups(model, x)
    by_name = global_greedy_plan(model, groups, "l1", 0.3, example_input=x)
    by_scores = global_greedy_plan(model, groups, channel_energy(model, groups, "l1"), 0.3, example_input=x)
    assert by_name.keep == by_scores.keep and (by_name.criterion, by_name.normalize) == ("l1", "layer_max")
    with pytest.raises(ConfigError, match="needs calibration data"):
        global_greedy_plan(model, groups, "taylor", 0.3, example_input=x)


@pytest.mark.parametrize("fn", [score_channels, calibration_data])
def test_docstring_examples_run(fn, tmp_path, monkeypatch) -> None:
    import doctest

    monkeypatch.setenv("OICSR_LAB_DATA", str(tmp_path))
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in doctest.DocTestFinder(recurse=False).find(fn, fn.__name__, globs=dict(fn.__globals__)):
        runner.run(t)
    assert runner.failures == 0 and runner.tries > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_criterion_on_cuda_matches_cpu() -> None:
    """A CUDA model (calibration batches on the CPU) scores like the CPU model; the scores come back on the CPU."""
    from oicsr_lab.groups.verify import randomize_bn

    gen = torch.Generator().manual_seed(0)
    data = Calibration([(torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 10, (8,), generator=gen))], "train")
    torch.manual_seed(0)
    model = randomize_bn(build_model("resnet20", num_classes=10, width=0.25)).eval()
    groups = find_groups(model, torch.zeros(1, 3, 32, 32))
    cpu = {c: score_channels(model, groups, c, "none", calibration=data) for c in names()}
    model.cuda()
    for c in names():
        gpu = score_channels(model, groups, c, "none", calibration=data)
        for g in groups.prunable:
            assert gpu[g.name].device.type == "cpu"
            tol = dict(rtol=0, atol=0.5) if c == "hrank" else dict(rtol=2e-2, atol=1e-5)
            torch.testing.assert_close(gpu[g.name], cpu[c][g.name], **tol)
