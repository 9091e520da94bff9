"""The sample images no shipped network trained on (the demo's validation split): file, checks, recomputation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oicsr_lab.data import load_dataset, sample_path
from oicsr_lab.errors import ConfigError
from oicsr_lab.pretrained import list_pretrained
from oicsr_lab.pretrained.holdout import _names, compute_sample_holdout, sample_holdout, with_shipped_validation


def test_file_names_match_the_sample_indices_and_are_roughly_class_balanced() -> None:
    h = sample_holdout()
    names = _names(sample_path())
    assert len(names) == h["sample_train_images"] == 5000
    assert [names[i] for i in h["indices"]] == h["names"] and len(set(h["indices"])) == len(h["indices"]) == 498
    per_class = torch.tensor([sum(n.startswith(c + "/") for n in h["names"]) for c in sorted({n.split("/")[0]
                                                                                             for n in names})])
    assert len(per_class) == 10 and int(per_class.min()) >= 30  # ~10 % of each class's 500 sample images


def test_hold_out_is_disjoint_and_refuses_bad_indices() -> None:
    data = load_dataset("cifar10-sample")
    d = data.hold_out([3, 1, 3])
    assert len(d.val) == 2 and len(d.train) == 4998
    assert torch.equal(d.val.images, data.train.images[[1, 3]])
    with pytest.raises(ConfigError, match="held-out indices must be distinct training indices in"):
        data.hold_out([5000])
    with pytest.raises(ConfigError, match="already held out"):
        d.hold_out([0])


def test_shipped_validation_needs_the_sample_and_matching_models() -> None:
    data = load_dataset("cifar10-sample")
    with pytest.raises(ConfigError, match="known for the embedded cifar10-sample .* and for cifar10 itself"):
        with_shipped_validation(data.hold_out([0]))
    other = [dict(list_pretrained()[0], config=dict(list_pretrained()[0]["config"], val_images=500))]
    with pytest.raises(ConfigError, match="not the cifar10 hold-out of 5000"):
        with_shipped_validation(data, other)
    assert len(with_shipped_validation(data).val) == 498


def test_demo_on_the_full_archive_chooses_on_the_whole_hold_out() -> None:
    """``--preset demo --data cifar10``: the 5,000 hold-out images as validation, the whole test split measured."""
    from oicsr_lab.experiments.spec import SHIPPED_VALIDATION, SHIPPED_VALIDATION_FULL, build_spec

    full, sample = build_spec("demo", dataset="cifar10"), build_spec("demo")
    assert full["base_config"]["val_images"] == 5000 and full["sweep"]["test_images"] == 10000
    assert full["validation"] == SHIPPED_VALIDATION_FULL
    assert sample["base_config"]["val_images"] == 498 and sample["sweep"]["test_images"] == 1000
    assert sample["validation"] == SHIPPED_VALIDATION


@pytest.mark.archive
def test_shipped_validation_on_the_archive_is_the_course_hold_out(archive_path: Path) -> None:
    """On the full archive the validation split is exactly the one every course run held out."""
    data = load_dataset("cifar10", root=archive_path.parent)
    d = with_shipped_validation(data)
    ref = data.with_validation(5000)
    assert (len(d.train), len(d.val)) == (45000, 5000)
    assert torch.equal(d.val.images, ref.val.images) and torch.equal(d.val.labels, ref.val.labels)


@pytest.mark.archive
def test_file_is_what_the_archive_gives(archive_path: Path) -> None:
    """Recomputed from the CIFAR-10 archive the shipped networks trained on: same images, byte-identical."""
    assert compute_sample_holdout(archive_path) == sample_holdout()
