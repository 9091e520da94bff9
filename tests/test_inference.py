"""Fast accuracy for pruned variants: inference copies agree with the model they copy, batches with evaluate()."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from oicsr_lab.data import load_dataset
from oicsr_lab.errors import ConfigError
from oicsr_lab.groups import find_groups
from oicsr_lab.importance import channel_energy
from oicsr_lab.inference import EvalBatches, estimate_interval, fold_batchnorm, inference_copy
from oicsr_lab.models import build_model
from oicsr_lab.pruning import apply_masks, global_greedy_plan
from oicsr_lab.train import evaluate

from nets import randomize_bn


@pytest.fixture(scope="module")
def data():
    return load_dataset("cifar10-sample")


MODELS = ["resnet20", "vgg16_bn", "densenet40", "preact_seresnet18", "torchvision:mobilenet_v2"]


@pytest.mark.parametrize("name", MODELS)
def test_inference_copy_matches_the_masked_model_and_leaves_it_alone(name):
    """Pruned + folded + channels_last logits equal the masked model's (float rounding); the source is untouched."""
    torch.manual_seed(0)
    tv = name.startswith("torchvision")
    model = randomize_bn(build_model(name, 10) if tv else build_model(name, 10, width=0.5))
    size = 64 if tv else 32
    x = torch.randn(6, 3, size, size)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = find_groups(model, x[:1])
    plan = global_greedy_plan(model, groups, channel_energy(model, groups), 0.3, max_layer_ratio=0.5)
    with torch.no_grad():
        with apply_masks(model, plan):
            masked = model(x)
        fast = inference_copy(model, plan)(x.contiguous(memory_format=torch.channels_last))
        dense = inference_copy(model)(x)
        ref = model(x)
    scale = ref.abs().max().item()
    assert (fast - masked).abs().max().item() <= 1e-4 * scale
    assert (dense - ref).abs().max().item() <= 1e-4 * scale
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_fold_batchnorm_removes_bn_after_convs_and_keeps_untraceable_models():
    model = randomize_bn(build_model("resnet20", 10, width=0.25))
    folded = fold_batchnorm(inference_copy(model, fold_bn=False))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())

    class Branchy(nn.Module):  # data-dependent control flow: torch.fx cannot trace it
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn(self.conv(x)) if x.sum() > 0 else x

    b = Branchy().eval()
    assert fold_batchnorm(b) is b and isinstance(b.bn, nn.BatchNorm2d)
    with pytest.raises(ConfigError, match="eval-mode"):
        fold_batchnorm(Branchy().train())


@pytest.mark.parametrize("max_cached_bytes", [256 * 2**20, 0])
def test_eval_batches_accuracy_equals_evaluate(data, max_cached_bytes):
    """Cached or per-batch normalisation: same images, same labels, same accuracy as ``evaluate``."""
    model = randomize_bn(build_model("resnet20", 10, width=0.25))
    split = data.test.subset(230, seed=1)
    batches = EvalBatches(split, data.mean, data.std, batch_size=100, max_cached_bytes=max_cached_bytes)
    assert batches.bounds == [(0, 100), (100, 200), (200, 230)] and batches.num_images == 230
    assert torch.equal(torch.cat([y for _, y in batches]), split.labels)
    assert all(x.is_contiguous(memory_format=torch.channels_last) for x, _ in batches)
    assert batches.accuracy(inference_copy(model)) == pytest.approx(evaluate(model, data, split=split)["acc"])
    with pytest.raises(ConfigError, match="batch_size"):
        EvalBatches(split, data.mean, data.std, batch_size=0)


def test_estimate_interval_is_exact_at_the_end_and_shrinks():
    assert estimate_interval(700, 1000, 1000) == (70.0, 0.0)
    widths = [estimate_interval(int(0.7 * s), s, 1000)[1] for s in (100, 250, 500, 750, 990)]
    assert all(a > b > 0 for a, b in zip(widths, widths[1:]))
    assert estimate_interval(0, 250, 1000)[1] > 0  # never a zero-width guess from a partial sample
    assert estimate_interval(0, 0, 1000) == (0.0, 100.0)


@settings(max_examples=25, deadline=None)
@given(acc=st.floats(0.05, 0.95), seen=st.sampled_from([100, 250, 500]), seed=st.integers(0, 2**16))
def test_estimate_interval_covers_the_final_accuracy_about_95_percent_of_the_time(acc, seen, seed):
    """Partial estimates on random orderings of a fixed 1,000-image population cover its accuracy.

    The measured worst coverage over this domain is 94 % (3,000 draws per point on a grid); 91 % of
    1,000 draws is four standard errors below it.
    """
    rng = random.Random(seed)
    population = [1] * round(acc * 1000) + [0] * (1000 - round(acc * 1000))
    truth = 100.0 * sum(population) / 1000
    covered = 0
    for _ in range(1000):
        sample = rng.sample(population, seen)
        est, half = estimate_interval(sum(sample), seen, 1000)
        covered += abs(est - truth) <= half + 1e-9
    assert covered / 1000 >= 0.91


def test_estimate_interval_keeps_a_real_band_near_chance_and_perfect_accuracy():
    """Near 0 % or 100 % the Wilson band stays wide enough (a collapsed network sits at ~10 %)."""
    for hits in (0, 3, 97, 100):
        est, half = estimate_interval(hits, 100, 1000)
        assert half >= 2.5 and 0 <= est <= 100
    assert estimate_interval(50, 100, 1000)[1] == pytest.approx(9.3, abs=0.3)  # ~1.96 * sqrt(.25 * .9 / 100)


def test_sweep_accuracy_equals_the_masked_model(data):
    """Figure 4's sweep measures through inference copies; each row equals masking the dense model."""
    from oicsr_lab.experiments.sweep import sweep_model

    model = randomize_bn(build_model("resnet20", 10, width=0.5), seed=3)
    x = data.example_input()
    groups = find_groups(model, x)
    split = data.test.subset(300, seed=2)
    rows, _ = sweep_model(model, groups, data, split, [0.2, 0.4], ["out_in", "out"], max_layer_ratio=0.6,
                          show_progress=False)
    assert len(rows) == 6
    for row in rows:
        if row["ratio"] == 0.0:
            expected = evaluate(model, data, split=split)["acc"]
        else:
            scores = channel_energy(model, groups, row["criterion"], normalize="layer_max")
            plan = global_greedy_plan(model, groups, scores, row["ratio"], max_layer_ratio=0.6)
            with apply_masks(model, plan):
                expected = evaluate(model, data, split=split)["acc"]
        assert row["acc_before_retrain"] == pytest.approx(expected)


def test_eval_batches_short_first_batch_for_an_early_estimate(data):
    split = data.test.subset(230, seed=1)
    batches = EvalBatches(split, data.mean, data.std, batch_size=100, first_batch=30)
    assert batches.bounds == [(0, 30), (30, 130), (130, 230)]
    assert torch.equal(torch.cat([y for _, y in batches]), split.labels)
    assert EvalBatches(split, data.mean, data.std, batch_size=100, first_batch=500).bounds[0] == (0, 100)
    with pytest.raises(ConfigError, match="first_batch"):
        EvalBatches(split, data.mean, data.std, batch_size=100, first_batch=0)


def test_precision_resolves_and_bad_names_are_refused():
    from oicsr_lab.inference import native_bf16, resolve_precision

    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16() else "fp32")
    assert resolve_precision("auto", "cuda") == "fp32"  # fp32 is fast enough on a GPU
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("fp16")


def test_bf16_accuracy_stays_close_to_fp32(data):
    """bf16 autocast changes few top-1 decisions (measured on trained runs: >= 99.3 % agree)."""
    model = randomize_bn(build_model("resnet20", 10, width=0.5), seed=5)
    groups = find_groups(model, data.example_input())
    plan = global_greedy_plan(model, groups, channel_energy(model, groups), 0.3, max_layer_ratio=0.5)
    split = data.test.subset(500, seed=4)
    preds = {}
    for precision in ("fp32", "bf16"):
        batches = EvalBatches(split, data.mean, data.std, batch_size=250, precision=precision)
        assert batches.precision == precision
        net = inference_copy(model, plan)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            preds[precision] = torch.cat([net(x).argmax(1) for x, _ in batches])
        hits = sum(batches.correct(net, i) for i in range(len(batches)))
        assert hits == int((preds[precision] == split.labels).sum())
    assert (preds["fp32"] == preds["bf16"]).float().mean().item() >= 0.97
