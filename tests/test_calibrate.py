"""oicsr-lab calibrate: one rule for every regulariser, on the validation split, never the test split."""

from __future__ import annotations

import json

import pytest

from oicsr_lab.experiments.calibrate import _NoTest, calibrate, choose, default_grid, log_grid, sum_lr, verdict
from oicsr_lab.train import preset


def test_log_grid_and_default_grids() -> None:
    assert log_grid(0.1, 0.4) == [0.1, 0.141, 0.2, 0.283, 0.4]
    g = default_grid("quick", "gl")
    assert g == sorted(g) and all(b / a == pytest.approx(2 ** 0.5, rel=0.01) for a, b in zip(g, g[1:]))
    assert default_grid("quick", "growl") == [0.0442, 0.0625, 0.0884, 0.125, 0.177, 0.25, 0.354]  # GL's, one octave
    assert set(g) <= set(default_grid("quick", "oicsr_growl"))                                    # further down
    assert default_grid("quick", "l2") == [0.0]


def test_choose_takes_the_strongest_within_tolerance() -> None:
    rows = [{"reg": "l2", "strength": 0.0, "val_acc": a} for a in (50.0, 52.0)]
    rows += [{"reg": "gl", "strength": s, "val_acc": a} for s, a in ((0.1, 51.0), (0.2, 49.5), (0.4, 30.0))]
    rows += [{"reg": "l1bn", "strength": s, "val_acc": a} for s, a in ((0.01, 45.0), (0.02, 40.0))]
    c = choose(rows, tolerance=2.0)
    assert c["gl"]["strength"] == 0.2 and c["gl"]["within"]  # 49.5 >= 51 - 2; 30 is not
    assert c["l1bn"]["strength"] == 0.01 and not c["l1bn"]["within"]  # none within: the weakest, flagged
    assert verdict(c["gl"]) == "yes" and verdict(c["l1bn"]).startswith("no")


def test_a_choice_at_the_grids_top_is_flagged() -> None:
    """Every grid point within tolerance: the strongest is taken, and the report says to widen the grid."""
    rows = [{"reg": "l2", "strength": 0.0, "val_acc": 50.0}]
    rows += [{"reg": "growl", "strength": s, "val_acc": 50.0} for s in (0.05, 0.1)]
    c = choose(rows, tolerance=2.0)["growl"]
    assert c["strength"] == 0.1 and c["within"] and c["at_top"]
    assert "widen the grid" in verdict(c)


def test_sum_lr_transfer_is_proportional_to_epochs() -> None:
    cfg = preset("quick")
    a, b = sum_lr(cfg.replace(epochs=4), 4500), sum_lr(cfg.replace(epochs=8), 4500)
    assert b / a == pytest.approx(2.0, rel=0.02)


def test_the_test_split_guard_raises() -> None:
    with pytest.raises(AssertionError, match="must not read the test split"):
        _NoTest().subset(10)
    with pytest.raises(AssertionError, match="must not read the test split"):
        len(_NoTest())


def test_calibrate_end_to_end_never_reads_test(tmp_path, data_dir, sample_data, monkeypatch) -> None:
    """A tiny calibration at ci scale: rows measured on validation, the choice follows the rule, files written.

    The runs see a data set whose test split raises on any access, and the Trainer is asked not
    to evaluate it; a run that read it would fail this test.
    """
    import oicsr_lab.train.trainer as trainer_mod

    calls = []
    orig = trainer_mod.evaluate

    def spy(model, data, split=None, *a, **k):
        calls.append(split)
        assert split is not None and not isinstance(split, _NoTest)
        return orig(model, data, split, *a, **k)

    monkeypatch.setattr(trainer_mod, "evaluate", spy)
    rec = calibrate("ci", tmp_path, regs=["l2", "oicsr_gl"], seeds=[100], epochs=1, grids={"oicsr_gl": [0.2, 0.8]},
                    jobs=1, data_dir=data_dir, log=None)
    assert calls and all(len(s) == 500 for s in calls)  # only the 500 validation images were evaluated
    assert rec["test_split_read"] is False and rec["val_images"] == 500
    assert {(r["reg"], r["strength"]) for r in rec["rows"]} == {("l2", 0.0), ("oicsr_gl", 0.2), ("oicsr_gl", 0.8)}
    assert all("val_acc" in r and "test_acc" not in r for r in rec["rows"])
    l2 = rec["choice"]["l2"]["val_acc"]["mean"]
    ok = [r["strength"] for r in rec["rows"] if r["reg"] == "oicsr_gl" and r["val_acc"] >= l2 - rec["tolerance"]]
    assert rec["choice"]["oicsr_gl"]["strength"] == (max(ok) if ok else 0.2)
    assert json.loads((tmp_path / "calibration.json").read_text())["choice"] == rec["choice"]
    md = (tmp_path / "calibration.md").read_text()
    assert "test split was not read" in md and "| oicsr_gl | 0.8" in md
    again = calibrate("ci", tmp_path, regs=["l2", "oicsr_gl"], seeds=[100], epochs=1,
                      grids={"oicsr_gl": [0.2, 0.8]}, jobs=1, data_dir=data_dir, log=None)
    assert again["rows"] == rec["rows"]  # cached, not retrained
