"""The validation split: deterministic, class-balanced, disjoint from train and test, what the trainer uses."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oicsr_lab.data import load_dataset
from oicsr_lab.data.datasets import holdout_indices
from oicsr_lab.errors import ConfigError
from oicsr_lab.train import build_trainer, preset


def _rows(images: torch.Tensor) -> set[bytes]:
    return {bytes(x.numpy().tobytes()) for x in images}


def test_validation_is_disjoint_balanced_and_deterministic(sample_data, data_dir) -> None:
    d = sample_data.with_validation(500)
    assert (len(d.train), len(d.val), len(d.test)) == (4500, 500, 1000)
    assert d.val.labels.bincount(minlength=10).tolist() == [50] * 10
    val, train, test = _rows(d.val.images), _rows(d.train.images), _rows(d.test.images)
    assert not val & train and not val & test
    assert len(train | val) == len(_rows(sample_data.train.images))  # nothing lost, nothing added
    again = load_dataset("cifar10-sample", root=data_dir, val_images=500)
    assert torch.equal(again.val.images, d.val.images) and torch.equal(again.train.labels, d.train.labels)
    assert d.with_validation(500) is d
    with pytest.raises(ConfigError, match="already held out"):
        d.with_validation(400)


@settings(max_examples=30, deadline=None)
@given(n_classes=st.integers(1, 6), per=st.integers(2, 20), frac=st.floats(0.05, 0.9))
def test_holdout_indices_partition(n_classes, per, frac) -> None:
    labels = torch.arange(n_classes).repeat_interleave(per)[torch.randperm(n_classes * per)]
    n = max(1, min(len(labels) - 1, int(frac * len(labels))))
    rest, val = holdout_indices(labels, n, n_classes)
    assert len(val) == n and len(rest) + n == len(labels)
    assert not set(rest.tolist()) & set(val.tolist())
    counts = labels[val].bincount(minlength=n_classes)
    assert int(counts.max() - counts.min()) <= 1


@pytest.mark.parametrize("n", [0, -1, 5000, 1.5, True])
def test_bad_sizes_are_refused(sample_data, n) -> None:
    if n == 0:
        assert sample_data.with_validation(0) is sample_data
        return
    with pytest.raises(ConfigError, match="validation size"):
        sample_data.with_validation(n)


def test_trainer_holds_out_the_validation_images(sample_data) -> None:
    """A run with val_images trains on none of them, reports val_* metrics, and every seed sees the same val."""
    cfg = dataclasses.replace(preset("ci", epochs=1, val_images=500, batch_size=256), train_subset=None)
    vals = []
    for seed in (0, 1):
        t = build_trainer(cfg.replace(seed=seed), data=sample_data, device="cpu", show_progress=False)
        assert len(t.train_split) == 4500 and len(t.val_split) == 500
        assert not _rows(t.train_split.images) & _rows(t.val_split.images)
        vals.append(t.val_split.images)
        rec = t.fit()[-1]
        assert {"val_acc", "val_loss", "test_acc"} <= rec.keys()
    assert torch.equal(vals[0], vals[1])
