"""The regulariser registry: one source of truth read by make_regularizer, TrainConfig, the sweep and the plots."""

from __future__ import annotations

import json
import math

import pytest
import torch

from oicsr_lab import build_model, find_groups
from oicsr_lab.errors import ConfigError
from oicsr_lab.experiments.protocol import before_retraining
from oicsr_lab.experiments.runs import config_hash
from oicsr_lab.experiments.sweep import criteria_for
from oicsr_lab.plots.style import REG_LOOKS, order_regs, reg_label, reg_style
from oicsr_lab.regularizers import (
    REGISTRY,
    RegularizerSpec,
    get_regularizer,
    make_regularizer,
    names,
    own_criterion,
    register,
    regularizers_table,
    unregister,
)
from oicsr_lab.regularizers.index_plan import Entry, PartSpec
from oicsr_lab.train import TrainConfig
from oicsr_lab.train.run import make_regularizer_for

BUILTINS = ("l2", "gl", "l1bn", "oicsr_gl", "growl", "oicsr_growl")


def test_builtin_entries() -> None:
    """The six regularisers in menu order, with the facts the lab used to repeat in 4-7 files."""
    assert names() == BUILTINS and names(ordered=True) == ("growl", "oicsr_growl")
    assert {n: own_criterion(n) for n in names()} == {"l2": "out", "gl": "out", "l1bn": "bn_gamma",
                                                      "oicsr_gl": "out_in", "growl": "out", "oicsr_growl": "out_in"}
    assert [reg_label(n) for n in names()] == ["L2", "GL", "L1-BN", "OICSR-GL", "GrOWL", "OICSR-GrOWL"]
    assert [r["name"] for r in regularizers_table()] == list(BUILTINS)
    assert [n for n in names() if get_regularizer(n).weight_decay_only] == ["l2"]
    assert all(r["summary"] and r["reference"] for r in regularizers_table())
    assert own_criterion("retired_reg") == "out"  # old reports with a name no longer registered stay readable


def test_every_builtin_has_a_look_and_the_plots_follow_the_registry() -> None:
    assert tuple(REG_LOOKS) == names()
    assert order_regs(["oicsr_growl", "zz", "l2", "l1bn"]) == ["l2", "l1bn", "oicsr_growl", "zz"]
    assert reg_style("oicsr_gl").label == "OICSR-GL" and reg_style("oicsr_gl").color == REG_LOOKS["oicsr_gl"].color


def test_unknown_name_is_refused_everywhere_with_the_registry_listed() -> None:
    groups = find_groups(build_model("resnet20", width=0.25), torch.zeros(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="unknown regularizer 'lasso'; choose one of l2, gl, l1bn, oicsr_gl"):
        make_regularizer("lasso", groups, 0.1)
    with pytest.raises(ConfigError, match="unknown regularizer 'lasso'; choose one of l2, gl, l1bn"):
        TrainConfig(reg="lasso").validate()
    with pytest.raises(ConfigError, match="p.* applies only to growl, oicsr_growl"):
        make_regularizer("gl", groups, 0.1, p=0.3)


class _OutRowsOnly(RegularizerSpec):
    """A toy: one part per group holding only its producers' filters (so not GL, which splits producers)."""

    name, label, own_criterion = "toy_out_rows", "Toy", "l1"
    summary, reference = "a test regulariser", "tests/test_regularizer_registry.py"

    @classmethod
    def parts(cls, groups, options):
        return [PartSpec(g.name, g.size, tuple(Entry(s.module, "weight", 0, s.indices) for s in g.out_slices))
                for g in groups]


@pytest.fixture
def toy():
    """Register the toy regulariser for one test and always remove it again."""
    register(_OutRowsOnly)
    try:
        yield _OutRowsOnly.name
    finally:
        unregister(_OutRowsOnly.name)
    assert _OutRowsOnly.name not in REGISTRY


def test_a_regulariser_registered_in_a_test_is_accepted_everywhere(toy: str) -> None:
    """One class + register(): TrainConfig, make_regularizer, the trainer's factory, sweep, tables and plots take it."""
    model = build_model("resnet20", width=0.25)
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.normal_()
    groups = find_groups(model, torch.zeros(1, 3, 32, 32))
    cfg = TrainConfig(reg=toy, strength=0.5, reg_options={"eps": 0.0}).validate()
    reg = make_regularizer(toy, groups, 0.5, eps=0.0)
    # the penalty is exactly what the toy's parts say: strength * sum over channels of ||filter rows||
    want = 0.0
    for g in groups:
        if g.prunable:
            sq = sum(model.get_submodule(s.module).weight.detach()[list(s.indices)].flatten(1).pow(2).sum(1)
                     for s in g.out_slices)
            want += float(sq.sqrt().sum())
    assert reg.value(model) == pytest.approx(0.5 * want, rel=1e-5)
    assert math.isclose(reg.value(model), make_regularizer("gl", groups, 0.5, eps=0.0).value(model), rel_tol=1e-5) \
        is all(len(g.out_slices) == 1 for g in groups if g.prunable)  # equals GL only without coupled producers

    class _Data:  # what make_regularizer_for reads of a DatasetSplits
        @staticmethod
        def example_input():
            return torch.zeros(1, 3, 32, 32)

    built = make_regularizer_for(model, cfg, _Data())
    assert built.name == toy and built.value(model) == pytest.approx(reg.value(model))
    assert criteria_for(toy) == ["out_in", "l1"] and reg_label(toy) == "Toy"
    assert reg_style(toy).label == "Toy" and order_regs([toy, "gl"]) == ["gl", toy]
    rows = [dict(reg=toy, seed=0, ratio=0.3, criterion=c, acc_before_retrain=0.5, val_acc_before_retrain=0.5)
            for c in ("out_in", "l1")]
    assert set(before_retraining(rows)["cells"][toy]) >= {"out_in", "own"}


def test_unregistered_toy_is_refused_again() -> None:
    assert "toy_out_rows" not in names()
    with pytest.raises(ConfigError, match="unknown regularizer 'toy_out_rows'"):
        TrainConfig(reg="toy_out_rows").validate()


def test_run_cache_keys_are_unchanged_by_the_registry() -> None:
    """config hashes of a few configs, recorded before the registry existed (commit 6d58f86)."""
    cfgs = {
        "47b9c6e1d88c": TrainConfig(),
        "1a248cfa64ce": TrainConfig(reg="growl", strength=1e-3, reg_options={"p": 0.3}, precision="bf16"),
        "ec8ffd39bdb9": TrainConfig(reg="oicsr_gl", strength=0.25, reg_options={"mode": "proximal", "include_bn": True},
                                    val_images=500, seed=3),
    }
    got = {config_hash(c.to_dict()): json.dumps(c.to_dict(), sort_keys=True) for c in cfgs.values()}
    assert sorted(got) == sorted(cfgs), got


class _Grouped(torch.nn.Module):
    """c1 -> grouped conv g (groups=2) -> c3 -> head: one group owns c1's rows, g's rows and c3's columns."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4)
        self.g = torch.nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.c3 = torch.nn.Conv2d(4, 5, 1)
        self.fc = torch.nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.g(torch.relu(self.b1(self.c1(x)))))
        return self.fc(torch.relu(self.c3(x)).mean((2, 3)))


@pytest.mark.parametrize("include_bn", [False, True])
def test_oicsr_penalty_and_out_in_energy_share_one_definition(include_bn: bool) -> None:
    """Out-in energy (eq. 5) is the squared norm of exactly the vectors OICSR-GL penalises, grouped convs included."""
    from oicsr_lab.importance import channel_energy

    torch.manual_seed(0)
    model = _Grouped().eval()
    with torch.no_grad():
        model.b1.weight.uniform_(0.5, 1.5), model.b1.bias.uniform_(-0.5, 0.5)
    groups = find_groups(model, torch.zeros(1, 3, 8, 8))
    g = groups["c1"]
    assert g.prunable and any(s.module == "g" and s.kind == "in" for s in g.slices)
    energy = channel_energy(model, groups, "out_in", "none", include_bn=include_bn)
    # by hand: c1's filters, the grouped conv's rows (its in-columns are those rows: counted once), c3's columns
    want = []
    for k in range(g.size):
        rows = [s.indices[k] for s in g.slices if (s.module, s.kind) == ("c1", "out")]
        grows = [s.indices[k] for s in g.slices if (s.module, s.kind) == ("g", "out")]
        cols = [s.indices[k] for s in g.slices if (s.module, s.kind) == ("c3", "in")]
        e = (model.c1.weight[rows].pow(2).sum() + model.g.weight[grows].pow(2).sum()
             + model.c3.weight[:, cols].pow(2).sum())
        if include_bn:
            e = e + model.b1.weight[rows].pow(2).sum() + model.b1.bias[rows].pow(2).sum()
        want.append(e)
    torch.testing.assert_close(energy["c1"], torch.stack(want).detach())
    reg = make_regularizer("oicsr_gl", groups, 1.0, eps=0.0, include_bn=include_bn, mode="proximal")
    penalty = sum(float(v.double().sqrt().sum()) for v in energy.values())
    assert reg.value(model) == pytest.approx(penalty, rel=1e-5)
    reg.after_step(model, lr=0.01)  # the proximal step works on grouped convs (it used to refuse their columns)
    shrunk = channel_energy(model, groups, "out_in", "none", include_bn=include_bn)["c1"]
    assert bool((shrunk < energy["c1"]).all())


def test_the_registry_and_the_plots_load_without_torch() -> None:
    """Reading names and labels (the plots, a report) must not import torch; building a regulariser does."""
    import subprocess
    import sys

    code = ("import sys, oicsr_lab.plots, oicsr_lab.regularizers as R; assert 'torch' not in sys.modules, 'torch'; "
            "assert R.names()[0] == 'l2' and R.reg_label('gl') == 'GL'; R.make_regularizer; "
            "assert 'torch' in sys.modules; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
