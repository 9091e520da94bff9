"""``reproduce --preset ci`` end to end: files, value ranges, cache hits, partial runs redone, finished kept."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from oicsr_lab.cli import main
from oicsr_lab.errors import ConfigError
from oicsr_lab.experiments.reproduce import FILES, reproduce
from oicsr_lab.experiments.runs import DONE, RESULT, data_identity, is_done, run_folder, train_cached
from oicsr_lab.experiments.spec import STRENGTHS, build_spec, run_config


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    """One full ci reproduction (about a minute on one core)."""
    out = tmp_path_factory.mktemp("ci")
    t0 = time.perf_counter()
    summary = reproduce("ci", out, threads=1, show_progress=False, log=None)
    return out, summary, time.perf_counter() - t0


def test_files_and_ranges(ci):
    out, summary, wall = ci
    for name in FILES:
        assert (out / name).is_file(), name
    regs = summary["config"]["regs"]
    assert regs == ["l2", "gl", "l1bn", "oicsr_gl"]
    # sweep: accuracies in [0, 100], achieved ratio close to target, FLOPs fall with the ratio
    rows = _csv(out / "sweep.csv")
    assert {r["reg"] for r in rows} == set(regs)
    assert {(r["reg"], r["criterion"]) for r in rows} >= {("l2", "out"), ("gl", "out"), ("l1bn", "bn_gamma"),
                                                          ("oicsr_gl", "out_in")}
    for r in rows:
        assert 0.0 <= float(r["acc_before_retrain"]) <= 100.0
        assert abs(float(r["achieved_ratio"]) - float(r["ratio"])) < 0.03
        assert int(r["flops"]) > 0 and int(r["params"]) > 0
    for reg in regs:
        f = [int(r["flops"]) for r in rows if r["reg"] == reg and r["criterion"] == "out_in"]
        assert f == sorted(f, reverse=True) and len(f) == 4  # ratio 0 (dense) + 0.1, 0.3, 0.5
        # the protocol: both rankings of each method, the random and uniform floors, validation accuracy per plan
        assert {"out_in", "random", "uniform"} <= {r["criterion"] for r in rows if r["reg"] == reg}
        # validation accuracy where a criterion can be chosen (and for the dense row); floors are never chosen
        chosen = [r for r in rows if r["reg"] == reg and (r["criterion"] not in ("random", "uniform")
                                                           or float(r["ratio"]) == 0)]
        assert chosen and all(r["val_acc_before_retrain"] not in ("", None) for r in chosen)
        assert all(r["val_acc_before_retrain"] in ("", None) for r in rows if r["reg"] == reg
                   and r["criterion"] in ("random", "uniform") and float(r["ratio"]) > 0)
    uni = [r for r in rows if r["criterion"] == "uniform" and float(r["ratio"]) > 0]
    assert uni and all(abs(float(r["achieved_ratio"]) - float(r["ratio"])) < 0.03 for r in uni)
    # fine-tuning after one-shot pruning: at the sweep's FLOPs for the criterion chosen on validation
    ft = _csv(out / "finetune.csv")
    assert {r["reg"] for r in ft} == set(regs) and {float(r["ratio"]) for r in ft} == {0.0, 0.3}
    control = [r for r in ft if float(r["ratio"]) == 0]  # each network fine-tuned unpruned: the control
    dense = {r["reg"]: int(r["flops"]) for r in rows if float(r["ratio"]) == 0}
    assert sorted(r["reg"] for r in control) == sorted(regs)
    assert all(r["criterion"] == "none" and int(r["flops"]) == dense[r["reg"]] for r in control)
    assert all(0 <= float(r["acc_after_finetune"]) <= 100 for r in control)
    for r in (r for r in ft if float(r["ratio"]) > 0):
        val = {c: sum(float(x["val_acc_before_retrain"]) for x in rows if x["reg"] == r["reg"] and x["criterion"] == c
                      and float(x["ratio"]) > 0) for c in {x["criterion"] for x in rows if x["reg"] == r["reg"]}
               if c not in ("random", "uniform")}
        assert val[r["criterion"]] == max(val.values())  # chosen on the validation split
        match = [x for x in rows if x["reg"] == r["reg"] and x["criterion"] == r["criterion"]
                 and float(x["ratio"]) == 0.3]
        assert int(match[0]["flops"]) == int(r["flops"])  # matched FLOPs
        assert 0 <= float(r["acc_after_finetune"]) <= 100
    # energies: non-negative, one list per prunable group, every regulariser
    en = json.loads((out / "energies.json").read_text())
    assert en["criterion"] == "out_in" and set(en["runs"]) == set(regs)
    for key in ("runs", "out_energies", "bn_gamma"):
        for reg, groups in en[key].items():
            assert len(groups) == 9  # ResNet-20: one internal out-in-channel per block
            assert all(v >= 0 for vals in groups.values() for v in vals)
    # plans: layer ratios are fractions, for every ratio
    plans = json.loads((out / "plans.json").read_text())
    lr = plans["oicsr_gl"]["out_in/layer_max"]["0.3"]["layer_ratios"]
    assert len(lr) == 9 and all(0 <= v <= 0.9 for v in lr.values())
    # pipeline: oicsr_gl and gl, FLOPs non-increasing, widths JSON
    pipe = _csv(out / "pipeline.csv")
    assert {r["reg"] for r in pipe} == {"oicsr_gl", "gl"}
    assert {(r["seed"], r["criterion"]) for r in pipe} == {("0", "out_in")}  # the first seed, out-in energy
    for reg in ("oicsr_gl", "gl"):
        sub = [r for r in pipe if r["reg"] == reg]
        f = [int(r["flops"]) for r in sub]
        assert f == sorted(f, reverse=True) and f[0] > f[-1]
        assert abs(float(sub[-1]["achieved_ratio"]) - 0.2) < 0.05
        assert all(0 <= float(r[k]) <= 100 for r in sub for k in ("acc_before_retrain", "acc_after_retrain"))
        assert isinstance(json.loads(sub[-1]["widths"]), dict)
    # table 1: published rows and computed rows, labelled; dense ResNet-50 = 4089 M MACs
    t1 = json.loads((out / "table1.json").read_text())
    labels = [r["label"] for r in t1["rows"]]
    assert labels.count("published") == 4 and labels.count("computed") == 4
    assert abs(t1["dense_macs_m"] - 4089) < 1
    for r in t1["rows"][5:]:
        assert abs(r["flops_pruned"] - r["target"]) < 0.01 and "random" in r["weights"]
    # summary: config, data, seeds, wall time, versions
    s = json.loads((out / "summary.json").read_text())
    assert s["seeds"] == [0] and s["data"]["name"] == "cifar10-sample" and s["wall_s"] > 0
    assert s["references"]["0"]["epochs"] == s["config"]["base_config"]["epochs"] + s["config"]["finetune"]["epochs"]
    assert set(en["by_seed"]["0"]) == set(regs)
    assert s["config"]["strengths"]["oicsr_gl"] == STRENGTHS["ci"]["oicsr_gl"]
    # 4 x (train, sweep, finetune, unpruned control) + reference + 2 pipelines + table1
    assert "torch" in s["versions"] and s["cache"]["computed"] == 20
    assert (out / "index.html").read_text().count("<") > 10


def test_second_invocation_is_a_cache_hit(ci):
    out, _, first_wall = ci
    done = [p for p in (out / "runs").iterdir() if is_done(p)]
    assert len(done) == 5  # four regularisers + the dense reference
    stamps = {p: ((p / RESULT).stat().st_mtime_ns, (p / DONE).stat().st_mtime_ns,
                  (p / "checkpoint.pt").stat().st_mtime_ns)
              for p in done}
    t0 = time.perf_counter()
    assert main(["reproduce", "--preset", "ci", "--out", str(out), "--threads", "1", "--no-progress"]) == 0
    wall = time.perf_counter() - t0
    s = json.loads((out / "summary.json").read_text())
    assert s["cache"] == {"hit": 20, "computed": 0}
    assert wall < max(30.0, 0.5 * first_wall)
    for p, st in stamps.items():  # a finished result is never rewritten
        assert ((p / RESULT).stat().st_mtime_ns, (p / DONE).stat().st_mtime_ns,
                (p / "checkpoint.pt").stat().st_mtime_ns) == st


def test_partial_run_is_resumed_and_finished_kept(tmp_path):
    """A run folder without DONE (interrupted after epoch 1) is resumed; a finished one is returned untouched."""
    from oicsr_lab.data import load_dataset
    from oicsr_lab.train import build_trainer

    data = load_dataset("cifar10-sample")
    spec = build_spec("ci", regs=["l2"])
    cfg = run_config(spec, "l2", 0).replace(train_subset=64, test_subset=50, epochs=2)
    data_id = {"name": "test"}
    folder = run_folder(tmp_path, cfg, data_id)

    class Stop(Exception):
        pass

    def stop(record):
        raise Stop

    trainer = build_trainer(cfg, out_dir=folder, data=data, device="cpu", show_progress=False, on_epoch_end=stop)
    with pytest.raises(Stop):
        trainer.fit()
    assert (folder / "checkpoint.pt").exists() and not is_done(folder)
    run = train_cached(cfg, tmp_path, data, data_id, device="cpu", show_progress=False)
    assert not run.hit and run.result["resumed"] and is_done(run.folder)
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 2
    stamp = (folder / RESULT).stat().st_mtime_ns
    again = train_cached(cfg, tmp_path, data, data_id, device="cpu", show_progress=False)
    assert again.hit and again.result == run.result and (folder / RESULT).stat().st_mtime_ns == stamp
    model = again.load_model()  # the trained weights, rebuilt through train.load_trained, in eval mode
    saved = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    assert not model.training and all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_data_identity_is_what_reproduce_keys_runs_by(ci):
    """data_identity: name, split sizes and classes (no folder); reproduce records it in summary.json."""
    from oicsr_lab.data import load_dataset

    data = load_dataset("cifar10-sample")
    ident = data_identity(data)
    assert ident == {"name": data.name, "train": len(data.train), "test": len(data.test), "classes": data.num_classes}
    _, summary, _ = ci
    assert {k: summary["data"][k] for k in ident} == ident


def test_spec_choices_and_errors():
    spec = build_spec("quick", regs=["l2", "oicsr_gl", "growl"], strengths={"growl": 1e-3})
    assert spec["runs"]["oicsr_gl"]["reg_options"] == {"mode": "proximal", "include_bn": True}
    for p in ("ci", "quick", "course", "paper"):  # GL and OICSR-GL are compared with the same options
        assert STRENGTHS[p]["gl"]["options"] == STRENGTHS[p]["oicsr_gl"]["options"], p
    # quick's strengths are the validation calibration's choices (docs/results/calibrate-quick), one rule for all
    cal = Path(__file__).resolve().parents[1] / "docs/results/calibrate-quick/calibration.json"
    record = json.loads(cal.read_text())
    assert record["test_split_read"] is False
    for reg, choice in record["choice"].items():
        assert STRENGTHS["quick"][reg]["strength"] == choice["strength"], reg
    assert spec["runs"]["growl"]["strength"] == 1e-3 and spec["runs"]["l2"]["strength"] == 0.0
    assert spec["pipeline"]["regs"] == ["oicsr_gl"]  # gl was not trained
    assert build_spec("paper")["runs"]["gl"]["reg_options"] == {"mode": "subgradient"}
    assert build_spec("ci", model="resnet32")["base_config"]["model"] == "resnet32"
    with pytest.raises(ConfigError, match="unknown regulariser"):
        build_spec("ci", regs=["l3"])
    with pytest.raises(ConfigError, match="ratios"):
        build_spec("ci", ratios=[1.5])
    assert main(["reproduce", "--preset", "ci", "--regs", "nope", "--no-progress"]) == 2


def test_pipeline_epoch_overrides():
    """--pipeline-retrain-epochs / --pipeline-finetune-epochs reach the pipeline spec; negatives are refused."""
    base = build_spec("course")["pipeline"]
    spec = build_spec("course", pipeline_retrain_epochs=1, pipeline_finetune_epochs=0)["pipeline"]
    assert (base["retrain_epochs"], base["finetune_epochs"]) == (2, 5)
    assert (spec["retrain_epochs"], spec["finetune_epochs"]) == (1, 0)
    with pytest.raises(ConfigError, match="retrain epochs must be >= 0"):
        build_spec("course", pipeline_retrain_epochs=-1)


def test_pipeline_seeds_choice_and_its_cache_key():
    """--pipeline-seeds: the first seed by default, 'all', or a subset of --seeds (others refused in one line);
    whom it runs for never enters a pipeline's cache key, so pipelines cached before the option stay hits."""
    from oicsr_lab.cli import build_parser
    from oicsr_lab.experiments.spec import pipeline_settings, pipeline_tasks

    assert build_spec("quick")["pipeline"]["seeds"] == [0]
    spec = build_spec("quick", pipeline_seeds="all", pipeline_regs=["oicsr_gl", "gl", "l2"])
    assert spec["pipeline"]["seeds"] == [0, 1, 2, 3, 4]
    assert pipeline_tasks(spec)[:3] == [("oicsr_gl", 0), ("gl", 0), ("l2", 0)] and len(pipeline_tasks(spec)) == 15
    assert build_spec("quick", seeds=[3, 4], pipeline_seeds="4,4")["pipeline"]["seeds"] == [4]
    assert pipeline_settings(spec) == pipeline_settings(build_spec("quick"))
    assert "seeds" not in pipeline_settings(spec) and "regs" not in pipeline_settings(spec)
    legacy = build_spec("quick")
    del legacy["pipeline"]["seeds"]  # a summary.json written before the option: its first seed
    assert pipeline_tasks(legacy) == [("oicsr_gl", 0), ("gl", 0)]
    with pytest.raises(ConfigError, match=r"pipeline seed\(s\) \[7\] are not among the run's seeds"):
        build_spec("quick", pipeline_seeds=[7])
    assert build_parser().parse_args(["reproduce", "--pipeline-seeds", "all"]).pipeline_seeds == "all"


def test_pipeline_criterion_chosen_on_validation():
    """--pipeline-criterion chosen: each network's pipeline ranks by the criterion its sweep chose on validation
    (the fine-tune's rule), and a choice of out-in energy keeps the out-in pipeline's cache key."""
    from oicsr_lab.cli import build_parser
    from oicsr_lab.experiments.spec import pipeline_settings

    sweep = [dict(criterion=c, ratio=r, val_acc_before_retrain=v) for c, r, v in (
        ("out_in", 0.0, 80), ("out_in", 0.3, 50), ("out_in", 0.5, 20), ("out", 0.3, 55), ("out", 0.5, 25),
        ("random", 0.3, 90), ("random", 0.5, 90))]  # floors are never chosen
    spec = build_spec("quick", pipeline_criterion="chosen")
    assert spec["pipeline"]["criterion"] == "chosen"
    assert pipeline_settings(spec, sweep)["criterion"] == "out"
    flipped = [dict(r, val_acc_before_retrain=0) if r["criterion"] == "out" else r for r in sweep]
    assert pipeline_settings(spec, flipped) == pipeline_settings(build_spec("quick"))  # out_in: the same key
    assert build_spec("quick", pipeline_criterion="l1")["pipeline"]["criterion"] == "l1"
    with pytest.raises(ConfigError, match="unknown pipeline criterion 'energy'"):
        build_spec("quick", pipeline_criterion="energy")
    assert build_parser().parse_args(["reproduce", "--pipeline-criterion", "chosen"]).pipeline_criterion == "chosen"


def test_pipeline_tables_over_seeds():
    """Over several seeds the pipeline table gives intervals and OICSR-GL's paired lead per step and after the
    final fine-tune, computed like scipy's paired t-interval."""
    from scipy import stats

    from oicsr_lab.experiments.tables import pipeline_tables

    rows = []
    for seed, (a, b) in enumerate([(60.0, 58.0), (62.0, 60.5), (61.0, 58.5)]):
        for reg, acc in (("oicsr_gl", a), ("gl", b)):
            rows += [dict(reg=reg, seed=seed, step=0, stage="dense", target_ratio=0, achieved_ratio=0,
                          criterion="out_in", acc_before_retrain=70, acc_after_retrain=70, flops=4e7),
                     dict(reg=reg, seed=seed, step=1, stage="prune", target_ratio=0.3, achieved_ratio=0.301,
                          acc_before_retrain=acc - 20, acc_after_retrain=acc, flops=2.8e7,
                          criterion="out" if reg == "gl" and seed else "out_in"),
                     dict(reg=reg, seed=seed, step=2, stage="finetune", target_ratio=0.3, achieved_ratio=0.301,
                          acc_before_retrain=acc, acc_after_retrain=acc + 1, flops=2.8e7)]
    md = "\n".join(pipeline_tables(rows))
    assert "over 3 seeds" in md and "after the final fine-tune" in md
    d = np.array([2.0, 1.5, 2.5])
    lo, hi = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    cell = f"**{d.mean():.1f} [{lo:.1f}, {hi:.1f}]**"
    assert md.count(cell) == 2  # at 30 % after retraining and after the final fine-tune (same per-seed lead)
    assert "| gl | - | 2 | finetune | 30 % | 30.1 % | - |" in md  # no 'before retraining' for the fine-tune stage
    assert "| gl | out, out_in | 1 | prune |" in md and "| oicsr_gl | out_in | 1 | prune |" in md


def test_markdown_tables_from_report(ci, capsys):
    """`oicsr-lab tables` turns the report's plain data into markdown with every regulariser and ratio."""
    from oicsr_lab.experiments.tables import report_tables, sparsity_rows

    out, summary, _ = ci
    md = report_tables(out)
    for heading in ("Training under each regulariser", "Figure 4", "Iterative pipeline", "Table 1"):
        assert heading in md
    for reg in summary["config"]["regs"]:
        assert f"| {reg} |" in md
    energies = json.loads((out / "energies.json").read_text())
    for row in sparsity_rows(energies):
        assert 0.0 <= row["below_0.05"] <= row["below_0.2"] <= 1.0 and row["channels"] > 0
    assert main(["tables", str(out)]) == 0 and "Figure 4" in capsys.readouterr().out
    assert main(["tables", str(out / "missing")]) == 2


def test_after_finetuning_pairs_the_headline_with_each_baseline_by_seed():
    """The after-fine-tuning paired difference is OICSR-GL minus the baseline seed by seed, as scipy's paired t."""
    from scipy import stats

    from oicsr_lab.experiments.protocol import after_finetuning

    acc = {"oicsr_gl": [50.0, 48.0, 47.5], "l2": [44.0, 45.5, 41.0]}
    rows = [{"reg": reg, "seed": s, "ratio": 0.5, "criterion": "out_in", "flops": 2e7, "params": 1.5e5,
             "acc_before_retrain": 20.0, "acc_after_finetune": a}
            for reg, accs in acc.items() for s, a in enumerate(accs)]
    rows.append({**rows[0], "seed": 7})  # a seed the baseline lacks is left out of the pairs
    d = after_finetuning(rows, {})["paired"]["l2"][0.5]
    diffs = [a - b for a, b in zip(acc["oicsr_gl"], acc["l2"])]
    lo, hi = stats.t.interval(0.95, len(diffs) - 1, loc=sum(diffs) / 3, scale=stats.sem(diffs))
    assert d["n"] == 3 and d["mean"] == pytest.approx(sum(diffs) / 3)
    assert (d["lo"], d["hi"]) == (pytest.approx(lo), pytest.approx(hi)) and d["holds"] == (lo > 0 or hi < 0)
    assert "oicsr_gl" not in after_finetuning(rows, {})["paired"]


def test_pruning_cost_is_pruned_minus_its_own_unpruned_control():
    """With ratio-0 control rows: each method's pruning cost and the headline's cost minus each baseline's."""
    from scipy import stats

    from oicsr_lab.experiments.protocol import after_finetuning

    acc = {("oicsr_gl", 0.0): [60.0, 61.0, 59.0], ("oicsr_gl", 0.5): [55.0, 57.0, 54.5],
           ("l2", 0.0): [58.0, 58.5, 57.0], ("l2", 0.5): [50.0, 51.5, 49.0]}
    rows = [{"reg": reg, "seed": s, "ratio": ratio, "criterion": "none" if ratio == 0 else "out_in", "flops": 2e7,
             "params": 1.5e5, "acc_before_retrain": 20.0, "acc_after_finetune": a}
            for (reg, ratio), accs in acc.items() for s, a in enumerate(accs)]
    a = after_finetuning(rows, {})
    cost = [p - u for p, u in zip(acc[("l2", 0.5)], acc[("l2", 0.0)])]
    assert a["pruning_cost"]["l2"][0.5]["mean"] == pytest.approx(sum(cost) / 3)
    did = [(p - u) - (q - w) for p, u, q, w in zip(acc[("oicsr_gl", 0.5)], acc[("oicsr_gl", 0.0)], acc[("l2", 0.5)],
                                                    acc[("l2", 0.0)])]
    d = a["paired_cost"]["l2"][0.5]
    lo, hi = stats.t.interval(0.95, 2, loc=sum(did) / 3, scale=stats.sem(did))
    assert d["mean"] == pytest.approx(sum(did) / 3) and (d["lo"], d["hi"]) == (pytest.approx(lo), pytest.approx(hi))
    assert a["paired"]["l2"][0.0]["mean"] == pytest.approx((60 + 61 + 59 - 58 - 58.5 - 57) / 3)  # the control's lead
    assert 0.0 not in a["pruning_cost"]["l2"] and "pruning_cost" not in after_finetuning(
        [r for r in rows if r["ratio"] > 0], {})


def test_a_missing_finetune_cell_drops_that_seed_and_the_table_says_so():
    """A NaN accuracy (an empty CSV cell) drops that seed from its cells instead of crashing the tables; the cells
    resting on fewer seeds than the table carry (n=k)."""
    import math

    from oicsr_lab.experiments.protocol import after_finetuning
    from oicsr_lab.experiments.tables import _paired_table

    acc = {("oicsr_gl", 0.0): [60.0, 61.0, 59.0], ("oicsr_gl", 0.5): [55.0, 57.0, 54.5],
           ("l2", 0.0): [58.0, math.nan, 57.0], ("l2", 0.5): [50.0, 51.5, 49.0]}
    rows = [{"reg": reg, "seed": s, "ratio": ratio, "criterion": "none" if ratio == 0 else "out_in", "flops": 2e7,
             "params": 1.5e5, "acc_before_retrain": 20.0, "acc_after_finetune": a}
            for (reg, ratio), accs in acc.items() for s, a in enumerate(accs)]
    a = after_finetuning(rows, {})
    assert a["pruning_cost"]["l2"][0.5]["n"] == 2 and a["pruning_cost"]["oicsr_gl"][0.5]["n"] == 3
    assert a["paired_cost"]["l2"][0.5]["n"] == 2
    md = "\n".join(_paired_table("cost", a["pruning_cost"], [0.5], n_all=3))
    l2_row = next(line for line in md.splitlines() if line.startswith("| l2 |"))
    ours = next(line for line in md.splitlines() if line.startswith("| oicsr_gl |"))
    assert "(n=2)" in l2_row and "(n=" not in ours


def test_criteria_comparison_pairs_each_criterion_with_out_in_on_the_same_network():
    """Criteria table: mean [t-interval] per criterion and the paired difference to out-in energy, seed by seed."""
    from scipy import stats

    from oicsr_lab.experiments.protocol import criteria_comparison
    from oicsr_lab.experiments.tables import criteria_tables

    acc = {"out_in": [70.0, 66.0, 68.5], "taylor": [61.0, 62.5, 57.0], "random": [30.0, 25.0, 33.0]}
    rows = [{"reg": "oicsr_gl", "criterion": c, "seed": s, "ratio": r, "acc_before_retrain": a if r else 90.0}
            for c, accs in acc.items() for s, a in enumerate(accs) for r in (0.0, 0.3)]
    c = criteria_comparison(rows)
    assert c["ratios"] == [0.3] and set(c["vs_baseline"]["oicsr_gl"]) == {"taylor", "random"}
    diffs = [a - b for a, b in zip(acc["taylor"], acc["out_in"])]
    d = c["vs_baseline"]["oicsr_gl"]["taylor"][0.3]
    lo, hi = stats.t.interval(0.95, 2, loc=sum(diffs) / 3, scale=stats.sem(diffs))
    assert d["mean"] == pytest.approx(sum(diffs) / 3) and (d["lo"], d["hi"]) == (pytest.approx(lo), pytest.approx(hi))
    m = c["cells"]["oicsr_gl"]["out_in"][0.3]
    assert m["mean"] == pytest.approx(sum(acc["out_in"]) / 3) and m["n"] == 3
    md = "\n".join(criteria_tables(rows))
    assert "| taylor |" in md and "paired difference to out_in" in md and "| out_in |" in md


@pytest.mark.parametrize("preset", ["ci", "quick", "course", "demo"])
def test_default_sweeps_are_not_criteria_sweeps(preset):
    """The criteria panel and tables switch on for a --criteria sweep only: no preset's default sweep ranks any
    regulariser by anything but out-in, its own criterion and the floors; a small explicit comparison does switch
    them on (a count of criteria per network would miss --criteria own,taylor,fpgm)."""
    from oicsr_lab.experiments.protocol import is_criteria_sweep
    from oicsr_lab.experiments.sweep import criteria_for
    from oicsr_lab.regularizers import names as reg_names

    crit = build_spec(preset)["sweep"]["criteria"]
    rows = [{"reg": reg, "criterion": c} for reg in reg_names() for c in criteria_for(reg, crit)]
    assert rows and not is_criteria_sweep(rows)
    assert is_criteria_sweep(rows + [{"reg": rows[0]["reg"], "criterion": c} for c in ("taylor", "hrank", "fpgm")])
    small = [{"reg": reg, "criterion": c} for reg in reg_names() for c in criteria_for(reg, "own,taylor,fpgm")]
    assert is_criteria_sweep(small)
    assert is_criteria_sweep([{"reg": "l1bn", "criterion": c} for c in ("out_in", "out")])  # not L1-BN's own


def test_committed_sweeps_trigger_the_criteria_tables_only_for_the_criteria_run():
    """On the committed data: quick's sweep (5 criteria across networks, at most 4 per network) gets no criteria
    tables; section 9's --criteria run gets them, with a paired-difference row for every non-baseline criterion."""
    import pandas as pd

    from oicsr_lab.experiments.protocol import is_criteria_sweep
    from oicsr_lab.experiments.tables import criteria_tables

    root = Path(__file__).resolve().parents[1] / "docs" / "results"
    quick = pd.read_csv(root / "quick" / "sweep.csv").to_dict("records")
    crit = pd.read_csv(root / "demo-criteria" / "sweep.csv").to_dict("records")
    assert len({r["criterion"] for r in quick}) > 4 and not is_criteria_sweep(quick)
    assert is_criteria_sweep(crit)
    md = "\n".join(criteria_tables(crit))
    for c in {r["criterion"] for r in crit} - {"out_in"}:
        assert f"| {c} |" in md


def test_sweep_criteria_option():
    """reproduce --criteria: registry names, floors and 'own' reach the sweep spec; unknown names fail in one line."""
    spec = build_spec("ci", criteria="out_in,l1,own,uniform")
    assert spec["sweep"]["criteria"] == "out_in,l1,own,uniform"
    assert build_spec("ci")["sweep"]["criteria"] == "out_in,own,random,uniform"
    from oicsr_lab.experiments.sweep import criteria_for

    assert criteria_for("l1bn", spec["sweep"]["criteria"]) == ["out_in", "l1", "bn_gamma", "uniform"]
    with pytest.raises(ConfigError, match="unknown criterion 'bogus'"):
        build_spec("ci", criteria="out_in,bogus")


def test_finetune_control_defaults_and_flag():
    """The unpruned control is on for trained presets, off for the demo's 5-minute budget; the flag overrides."""
    assert build_spec("quick")["finetune_control"] and build_spec("course")["finetune_control"]
    assert not build_spec("demo")["finetune_control"]
    assert build_spec("demo", finetune_control=True)["finetune_control"]
    assert not build_spec("quick", finetune_control=False)["finetune_control"]
    assert not build_spec("quick", finetune_epochs=0)["finetune_control"]  # nothing to control for
    from oicsr_lab.cli import build_parser

    p = build_parser()
    assert p.parse_args(["reproduce", "--no-finetune-control"]).finetune_control is False
    assert p.parse_args(["reproduce"]).finetune_control is None
