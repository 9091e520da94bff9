"""The iterative pruning pipeline (Figure 2): records, widths, saved models, resume after interruption."""

from __future__ import annotations

import json

import pytest
import torch

from oicsr_lab.cli import main
from oicsr_lab.data import load_dataset
from oicsr_lab.errors import ConfigError
from oicsr_lab.flops import count_flops
from oicsr_lab.models import build_model
from oicsr_lab.pruning import load_pruned
from oicsr_lab.pruning.iterative import PipelineSettings, prune_iteratively
from oicsr_lab.pruning.pipeline_state import load_pipeline
from oicsr_lab.train import TrainConfig

KW = dict(target_ratio=0.3, step_ratio=0.1, retrain_epochs=1, finetune_epochs=1, device="cpu", show_progress=False)


class Stop(Exception):
    """Simulated interruption."""


@pytest.fixture(scope="module")
def data():
    return load_dataset("cifar10-sample")


@pytest.fixture(scope="module")
def config() -> TrainConfig:
    return TrainConfig(model="resnet20", width=0.25, epochs=1, batch_size=32, lr=0.05, train_subset=96,
                       test_subset=100, reg="oicsr_gl", strength=1e-2, reg_options={"mode": "proximal"})


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet20", num_classes=10, width=0.25)


@pytest.fixture(scope="module")
def full(tmp_path_factory, data, config):
    """One uninterrupted run, shared by the checks below."""
    out = tmp_path_factory.mktemp("full")
    res = prune_iteratively(_model(), data, config, out_dir=out, **KW)
    return res, out


def test_records_flops_and_widths(full, data):
    res, out = full
    recs = res.records
    assert [r["stage"] for r in recs] == ["dense", "prune", "prune", "prune", "finetune"]
    assert [r["step"] for r in recs] == [0, 1, 2, 3, 4]
    flops = [r["flops"] for r in recs[:4]]
    assert all(a > b for a, b in zip(flops, flops[1:])), flops  # strictly decreasing per step
    for r, target in zip(recs[1:4], (0.1, 0.2, 0.3)):
        assert r["target_ratio"] == pytest.approx(target)
        assert target - 1e-9 <= r["achieved_ratio"] <= target + 0.06
        assert r["achieved_ratio"] == pytest.approx(1 - r["flops"] / recs[0]["flops"])
        assert 0 <= r["acc_before_retrain"] <= 100 and 0 <= r["acc_after_retrain"] <= 100
    x = data.example_input()
    for i in (1, 2, 3):
        model = load_pruned(out / f"step{i}" / "pruned.pt")
        assert count_flops(model, x).total_macs == recs[i]["flops"]
        widths = {n: m.out_channels for n, m in model.named_modules() if n.endswith("conv1") and "." in n}
        assert widths == recs[i]["widths"]  # group width == its producer conv's out channels
        assert all(w >= 1 for w in widths.values())
    dense = recs[0]["widths"]
    assert all(recs[3]["widths"][k] <= dense[k] for k in dense)
    assert recs[-1]["flops"] == recs[3]["flops"] and recs[-1]["acc_before_retrain"] == recs[3]["acc_after_retrain"]
    state = load_pipeline(out)
    assert state["done"] and state["model_file"] == "finetune/finetuned.pt"
    rows = res.rows()
    assert rows[0]["reg"] == "oicsr_gl" and json.loads(rows[2]["widths"]) == recs[2]["widths"]


def test_resume_after_interruption(tmp_path, full, data, config):
    seen: list[str] = []

    def stop_after_retrain1(stage, state):
        seen.append(stage)
        if stage == "retrain1":
            raise Stop

    with pytest.raises(Stop):
        prune_iteratively(_model(), data, config, out_dir=tmp_path, on_stage=stop_after_retrain1, **KW)
    assert load_pipeline(tmp_path)["done_stages"] == ["dense", "prune1", "retrain1"]
    # an interrupted *stage*: the next retraining dies inside its first epoch
    import oicsr_lab.train.trainer as trainer_mod

    original = trainer_mod.Trainer.train_one_epoch
    calls = {"n": 0}

    def dying(self):
        calls["n"] += 1
        raise Stop

    trainer_mod.Trainer.train_one_epoch = dying
    try:
        with pytest.raises(Stop):
            prune_iteratively(_model(), data, config, out_dir=tmp_path, **KW)
    finally:
        trainer_mod.Trainer.train_one_epoch = original
    assert load_pipeline(tmp_path)["done_stages"] == ["dense", "prune1", "retrain1", "prune2"]
    rerun: list[str] = []
    res = prune_iteratively(build_model("resnet20", num_classes=10, width=0.25), data, config, out_dir=tmp_path,
                            on_stage=lambda s, st: rerun.append(s), **KW)
    assert rerun == ["retrain2", "prune3", "retrain3", "finetune"]  # finished stages are not redone
    ref = full[0].records
    assert [r["flops"] for r in res.records] == [r["flops"] for r in ref]
    assert [r["widths"] for r in res.records] == [r["widths"] for r in ref]
    for a, b in zip(res.records, ref):  # same numbers as the uninterrupted run
        assert a["acc_after_retrain"] == pytest.approx(b["acc_after_retrain"], abs=1.01)


def test_state_guards(full, data, config):
    _, out = full
    with pytest.raises(ConfigError, match="other settings"):
        prune_iteratively(_model(), data, config, out_dir=out, **{**KW, "target_ratio": 0.2})
    with pytest.raises(ConfigError, match="resume"):
        prune_iteratively(_model(), data, config, out_dir=out, resume=False, **KW)
    with pytest.raises(ConfigError):
        PipelineSettings(target_ratio=1.2).validate()
    assert PipelineSettings(target_ratio=0.25, step_ratio=0.1).targets() == [0.1, 0.2, 0.25]


def test_prune_cli_from_pruned_file(tmp_path, full):
    _, out = full
    dest = tmp_path / "p"
    rc = main(["prune", "--from", str(out / "step1" / "pruned.pt"), "--model", "resnet20", "--width", "0.25",
               "--target", "0.2", "--step", "0.2", "--retrain-epochs", "0", "--finetune-epochs", "0",
               "--train-subset", "64", "--epochs", "1", "--out", str(dest), "--threads", "1", "--no-progress"])
    assert rc == 0
    text = (dest / "pipeline.csv").read_text().splitlines()
    assert text[0].startswith("reg,step,target_ratio,achieved_ratio,acc_before_retrain")
    assert len(text) == 3  # the (already 10%-pruned) input and one step to 20% of *its* FLOPs
    assert main(["prune", "--from", str(tmp_path / "missing"), "--target", "0.2", "--out", str(dest)]) == 2


def test_finetune_unpruned_is_the_pruned_runs_fine_tune_without_the_pruning(full, data, config, tmp_path):
    """The control fine-tunes with the pipeline's fine-tune config (lr/10, cosine, no regulariser, same seed)."""
    from oicsr_lab.pruning.iterative import finetune_unpruned

    _, out = full
    model = _model()
    dense = count_flops(model, data.example_input())
    r = finetune_unpruned(model, data, config, epochs=1, out_dir=tmp_path, device="cpu", show_progress=False)
    pruned_cfg = json.loads((out / "finetune" / "train" / "config.json").read_text())["config"]
    control_cfg = json.loads((tmp_path / "finetune" / "train" / "config.json").read_text())["config"]
    assert control_cfg == pruned_cfg  # same lr, schedule, epochs, seed, and reg l2 at strength 0
    assert control_cfg["reg"] == "l2" and control_cfg["strength"] == 0 and control_cfg["lr"] == config.lr / 10
    assert (r["flops"], r["params"]) == (dense.total_macs, dense.total_params)  # nothing pruned
    assert 0 <= r["acc_before"] <= 100 and 0 <= r["acc_after"] <= 100
    with pytest.raises(ConfigError, match="fine-tune epochs"):
        finetune_unpruned(_model(), data, config, epochs=0, device="cpu")
