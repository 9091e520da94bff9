"""The Figure 4 sweep over criteria of the registry ("regulariser x criterion"), calibrated off the test split."""

from __future__ import annotations

import pytest
import torch

from oicsr_lab.criteria import names
from oicsr_lab.errors import ConfigError
from oicsr_lab.experiments.sweep import criteria_for, sweep_model
from oicsr_lab.groups import find_groups
from oicsr_lab.groups.verify import randomize_bn
from oicsr_lab.models import build_model


def test_criteria_for_lists_the_registry() -> None:
    assert criteria_for("gl") == ["out_in", "out"] and criteria_for("oicsr_gl") == ["out_in"]
    assert criteria_for("l1bn", "out_in, own, taylor") == ["out_in", "bn_gamma", "taylor"]
    assert criteria_for("gl", "all") == list(names())
    assert criteria_for("gl", ["hrank", "hrank", "random"]) == ["hrank", "random"]
    with pytest.raises(ConfigError, match="unknown criterion 'magic'.*fpgm"):
        criteria_for("gl", "out_in,magic")
    with pytest.raises(ConfigError, match="empty"):
        criteria_for("gl", [])


def test_sweep_with_data_driven_criteria_calibrates_on_validation(sample_data, monkeypatch) -> None:
    import oicsr_lab.criteria.calibration as calib

    seen = []
    real = calib.Calibration.from_loader.__func__

    def spy(cls, loader, split, batches):
        seen.append(split)
        return real(cls, loader, split, batches)

    monkeypatch.setattr(calib.Calibration, "from_loader", classmethod(spy))
    data = sample_data.with_validation(200)
    torch.manual_seed(0)
    model = randomize_bn(build_model("resnet20", 10, width=0.25))
    groups = find_groups(model, data.example_input())
    crits = criteria_for("gl", "out_in,taylor,apoz")
    rows, plans = sweep_model(model, groups, data, data.test.subset(100, seed=1), [0.3], crits, max_layer_ratio=0.8,
                              show_progress=False, calibration_batches=2, meta={"reg": "gl", "seed": 0})
    assert seen == ["val"]  # one calibration, shared by both data-driven criteria, never the test split
    assert [(r["criterion"], r["ratio"]) for r in rows] == [(c, q) for c in crits for q in (0.0, 0.3)]
    assert all(r["achieved_ratio"] >= 0.3 for r in rows if r["ratio"])
    assert plans["taylor/layer_max"]["0.3"]["calibration"] == {"split": "val", "batches": 2, "images": 128}
    assert "calibration" not in plans["out_in/layer_max"]["0.3"]
