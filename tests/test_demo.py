"""The ``demo`` preset: reproduce's steps on the shipped models, no training, offline."""

from __future__ import annotations

import json

import pytest
import torch

from oicsr_lab.errors import ConfigError
from oicsr_lab.experiments import shipped as shipped_mod
from oicsr_lab.experiments.spec import build_spec
from oicsr_lab.experiments.workers import REFERENCE, tasks_of
from oicsr_lab.pretrained import find, list_pretrained

FAKE = [{"model": "resnet20", "width": 1.0, "reg": r, "seed": s}
        for r, seeds in {"l2": (0, 1, 2), "gl": (0, 1), "oicsr_gl": (0, 1, 2), "l1bn": (2,)}.items() for s in seeds]
FAKE.append({"model": "resnet20", "width": 1.0, "reg": "gl", "seed": 2, "variant": "150ep"})  # beside the set


@pytest.fixture
def fake_manifest(monkeypatch):
    import oicsr_lab.pretrained as pre

    monkeypatch.setattr(pre, "manifest", lambda root=None: {"models": [dict(e) for e in FAKE]})


def test_grid_takes_the_seeds_every_regulariser_has(fake_manifest) -> None:
    regs, seeds, missing = shipped_mod.shipped_grid("resnet20", ["l2", "gl", "oicsr_gl"])
    assert (regs, seeds, missing) == (["l2", "gl", "oicsr_gl"], [0, 1], ["l2 seed 2", "oicsr_gl seed 2"])
    regs, seeds, _ = shipped_mod.shipped_grid("resnet20", ["oicsr_gl", "l1bn"])
    assert regs == ["oicsr_gl", "l1bn"] and seeds == [2]
    assert shipped_mod.shipped_grid("resnet20", ["l2", "oicsr_gl"], seeds=[2])[1] == [2]


@pytest.mark.parametrize("regs, seeds, message", [
    (["growl"], None, "no shipped resnet20 model for growl; shipped: gl seeds"),
    (["l2", "l1bn"], [0], r"seed\(s\) \[0\] are not shipped for every one of l2, l1bn"),
    (None, None, "no seed is shipped for every one of l2, gl, l1bn, oicsr_gl"),  # default: all, paper order
])
def test_grid_errors_name_what_is_shipped(fake_manifest, regs, seeds, message) -> None:
    with pytest.raises(ConfigError, match=message):
        shipped_mod.shipped_grid("resnet20", regs, seeds)


@pytest.mark.parametrize("kw, message", [
    ({"strengths": {"gl": 1e-3}}, "prunes the shipped networks as they were trained: drop --strength/--epochs"),
    ({"epochs": 3}, "prunes the shipped networks as they were trained"),
    ({"regs": ["oicsr-gl"]}, r"unknown regulariser\(s\) \['oicsr-gl'\]; choose from l2, gl"),  # a typo
])
def test_demo_refuses_what_it_cannot_honour(kw, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_spec("demo", **kw)


def test_demo_chooses_on_images_the_shipped_networks_never_trained_on() -> None:
    """The demo's validation split is the sample's training images that lie in the shipped networks' own hold-out:
    the spec says so, its val_images is their count, and the data every step sees holds exactly those out."""
    from oicsr_lab.data import load_dataset
    from oicsr_lab.experiments.protocol import TRAINED_REFERENCE, reference_phrase
    from oicsr_lab.pretrained.holdout import sample_holdout

    spec = build_spec("demo")
    held = sample_holdout()["indices"]
    assert "never trained on" in spec["validation"] and spec["base_config"]["val_images"] == len(held) == 498
    assert build_spec("ci")["validation"] == "the validation split held out of the training data"
    data = shipped_mod.spec_data(spec, load_dataset("cifar10-sample"))
    full = load_dataset("cifar10-sample")
    assert torch.equal(data.val.images, full.train.images[held]) and len(data.train) == 5000 - 498
    assert data.with_validation(spec["base_config"]["val_images"]) is data  # every later step keeps this split
    assert reference_phrase({}, shipped=True).startswith("no dense reference")
    assert reference_phrase({}) == TRAINED_REFERENCE


def test_demo_spec_prunes_shipped_models_without_training() -> None:
    spec = build_spec("demo")
    have = {(e["reg"], int(e["seed"])) for e in list_pretrained() if e["model"] == "resnet20"}
    assert spec["source"] == "shipped" and spec["base_config"]["dataset"] == "cifar10-sample"
    assert {(r, s) for r in spec["regs"] for s in spec["seeds"]} <= have
    assert spec["sweep"]["precision"] == "auto" and "precision" not in build_spec("quick")["sweep"]
    assert REFERENCE not in {reg for reg, _ in tasks_of(spec)}  # the shipped L2 is the reference: nothing trains
    for reg in spec["regs"]:  # the spec records the strengths the shipped models were trained with
        assert spec["strengths"][reg]["strength"] == pytest.approx(find("resnet20", reg, spec["seeds"][0])["strength"])


def test_demo_reproduce_on_the_shipped_l2(tmp_path, data_dir) -> None:
    """A reduced demo end to end, in the lite scope: the shipped network enters the run cache unchanged, is swept
    on the lite scope's 500 test images, fine-tuned on 1,024 training images and measured on those same 500 (its
    accuracy before fine-tuning is the sweep's at that plan), reported against itself as the dense reference, no
    pipeline; a rerun computes nothing."""
    import csv

    from oicsr_lab.experiments import reproduce
    from oicsr_lab.pretrained import pretrained
    from oicsr_lab.train import load_trained

    kw = dict(regs=["l2"], seeds=[0], ratios=[0.3], finetune_ratios=[0.3], criteria="out_in,random", table1=False,
              threads=1, jobs=1, data_dir=data_dir, show_progress=False, log=None, scope="lite")
    summary = reproduce("demo", tmp_path, **kw)
    entry = find("resnet20", "l2", 0)
    run = summary["runs"]["0"]["l2"]
    assert run["folder"].startswith("runs/l2-shipped-")
    assert run["test_acc"] == pytest.approx(entry["sample_test_acc"], abs=0.05)
    assert summary["config"]["scope"]["name"] == "lite" and summary["notes"][0].startswith("demo scope lite")
    assert summary["config"]["sweep"]["test_images"] == 500 and summary["config"]["pipeline"]["regs"] == []
    assert "demo scope lite" in (tmp_path / "index.html").read_text()
    sweep = {(r["criterion"], float(r["ratio"])): r for r in csv.DictReader(open(tmp_path / "sweep.csv"))}
    ft_row, = csv.DictReader(open(tmp_path / "finetune.csv"))
    assert float(ft_row["acc_before_retrain"]) == pytest.approx(
        float(sweep[(ft_row["criterion"], 0.3)]["acc_before_retrain"]), abs=0.21)  # same plan, same 500 images
    ft_dir, = (tmp_path / "finetunes").iterdir()
    log = ft_dir / "r30" / "finetune" / "train" / "metrics.jsonl"
    metrics = [json.loads(x) for x in log.read_text().splitlines()]
    assert round(metrics[-1]["img_per_s"] * metrics[-1]["epoch_time_s"]) == 1024  # images the epoch saw
    assert not (tmp_path / "pipelines").exists()
    model, blob = load_trained(tmp_path / run["folder"])
    ref = pretrained("resnet20", "l2", 0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
    assert blob["shipped"] == entry["name"]
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "runs").iterdir()) == ["shipped"]  # nothing trained
    assert "shipped dense L2" in summary["references"]["0"]["note"]
    rows = [r.split(",") for r in (tmp_path / "sweep.csv").read_text().splitlines()]
    assert {r[rows[0].index("criterion")] for r in rows[1:]} == {"out_in", "random"}
    again = reproduce("demo", tmp_path, **kw)
    assert again["cache"]["computed"] == 0
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["source"] == "shipped"


def test_bf16_sweep_evaluation_matches_fp32(sample_data) -> None:
    """The demo evaluates in bf16 (auto); on the shipped L2 that moves accuracy by well under a point."""
    from oicsr_lab.experiments.sweep import _accuracies
    from oicsr_lab.pretrained import pretrained

    model = pretrained("resnet20", "l2", 0)
    fp32, = _accuracies(model, None, sample_data, [sample_data.test], "cpu", "fp32")
    bf16, = _accuracies(model, None, sample_data, [sample_data.test], "cpu", "bf16")
    assert fp32 == pytest.approx(find("resnet20", "l2", 0)["sample_test_acc"], abs=0.05)
    assert abs(bf16 - fp32) <= 0.5


def test_demo_measures_fine_tunes_and_pipeline_in_its_sweep_precision() -> None:
    """Only the demo asks for bf16 measurements of its fine-tunes and pipeline; other presets' cache keys keep
    their settings unchanged (no eval_precision key)."""
    spec = build_spec("demo")
    assert spec["finetune"]["eval_precision"] == spec["pipeline"]["eval_precision"] == spec["sweep"]["precision"]
    quick = build_spec("quick")
    assert "eval_precision" not in quick["finetune"] and "eval_precision" not in quick["pipeline"]


@pytest.mark.parametrize("precision, autocast_on", [("fp32", False), ("bf16", True)])
def test_pipeline_measurements_run_under_the_asked_precision(monkeypatch, sample_data, precision, autocast_on) -> None:
    """prune_iteratively's accuracy measurements and its Trainer's end-of-epoch evaluations both run under autocast
    exactly when eval_precision asks for it; training keeps config.precision."""
    import oicsr_lab.pruning.iterative as it
    import oicsr_lab.train.trainer as tr
    from oicsr_lab.models import build_model
    from oicsr_lab.train import TrainConfig

    seen: list[bool] = []
    real = tr.evaluate

    def spy(*a, **k):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(*a, **k)

    monkeypatch.setattr(it, "evaluate", spy)
    monkeypatch.setattr(tr, "evaluate", spy)
    cfg = TrainConfig(model="resnet20", width=0.25, epochs=1, batch_size=64, train_subset=128, test_subset=64,
                      precision="fp32")
    torch.manual_seed(0)
    it.prune_iteratively(build_model("resnet20", num_classes=10, width=0.25), sample_data, cfg, target_ratio=0.2,
                         step_ratio=0.2, retrain_epochs=2, finetune_epochs=0, device="cpu", show_progress=False,
                         eval_precision=precision)
    # dense, prune1 and retrain1 measurements + the retrain's first epoch (its last is measured by the pipeline)
    assert len(seen) == 4 and set(seen) == {autocast_on}


def test_demo_scope_auto_is_lite_only_on_a_cpu_without_native_bf16(monkeypatch) -> None:
    """auto: the full demo where evaluations run in bf16 or off the CPU; lite on an fp32-only CPU; explicit asks
    are honoured; anything else is a one-line error."""
    import oicsr_lab.precision as precision
    from oicsr_lab.experiments.spec import demo_scope

    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    assert demo_scope("auto", "cpu")[0] == "lite" and "--scope full" in demo_scope(None, "cpu")[1]
    assert demo_scope("auto", "cuda")[0] == "full"
    assert demo_scope("full", "cpu") == ("full", "asked for (--scope full)")
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    assert demo_scope("auto", "cpu")[0] == "full" and demo_scope("lite", "cpu")[0] == "lite"
    with pytest.raises(ConfigError, match="unknown demo scope 'small'; choose one of auto, full, lite"):
        demo_scope("small")


def test_demo_lite_spec_is_the_full_one_made_smaller() -> None:
    """The lite scope keeps every network, criterion and the validation choice; it sweeps fewer ratios on fewer
    test images, fine-tunes on fewer images and runs no pipeline. The full spec's cache keys are untouched."""
    full, lite = build_spec("demo"), build_spec("demo", scope="lite", scope_reason="test")
    assert (lite["regs"], lite["seeds"], lite["runs"]) == (full["regs"], full["seeds"], full["runs"])
    assert lite["sweep"]["criteria"] == full["sweep"]["criteria"] and lite["validation"] == full["validation"]
    assert len(lite["seeds"]) >= 3
    assert lite["sweep"]["ratios"] == [0.1, 0.3, 0.5] and lite["sweep"]["test_images"] == 500
    assert full["sweep"]["test_images"] == 1000 and len(full["sweep"]["ratios"]) == 7
    assert lite["finetune"]["train_images"] == 1024 and lite["finetune"]["test_images"] == 500
    assert "train_images" not in full["finetune"] and "test_images" not in full["finetune"]
    assert lite["pipeline"]["regs"] == [] and full["pipeline"]["regs"] == ["oicsr_gl", "gl"]
    assert lite["scope"] == {"name": "lite", "why": "test"} and full["scope"]["name"] == "full"
    assert "scope" not in build_spec("quick")


@pytest.mark.parametrize("preset, kw, message", [
    ("quick", {}, "--scope lite is a scope of --preset demo, not of quick"),
    ("demo", {"dataset": "cifar10"}, "--scope lite is the demo on the embedded sample"),
])
def test_lite_scope_refuses_what_it_is_not(preset, kw, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_spec(preset, scope="lite", **kw)


def test_demo_on_the_archive_is_always_the_full_scope(monkeypatch) -> None:
    """`make demo-full` (--data cifar10) and other presets never switch to lite, whatever the CPU."""
    import oicsr_lab.precision as precision
    from oicsr_lab.experiments.reproduce import _scope

    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    assert _scope("demo", None, "auto", "cpu")[0] == "lite"
    assert _scope("demo", "cifar10", "auto", "cpu") == ("full", None)
    assert _scope("quick", None, "auto", "cpu") == ("full", None)
    assert "scope" not in build_spec("demo", dataset="cifar10")  # one scope there: no scope line in its report
