"""The course kit without notebooks: exercise checks, the shipped-model set, the command line (fast).

The checks must be able to fail: each comparison is exercised with a right, a wrong and a missing
answer on small real objects (a ResNet-20 x0.25, ResNet-50's structure), and the wrong feedback
must not contain the reference value. Notebook-level tests (solutions pass, student versions run
unanswered, the grading round trip) are in ``test_notebooks_course.py``.
"""

from __future__ import annotations

import pytest
import torch

from oicsr_lab import course
from oicsr_lab.course.checks import EXERCISES, MISSING, RIGHT, WRONG, verdict
from oicsr_lab.errors import ConfigError
from oicsr_lab.flops import channel_flops, count_flops
from oicsr_lab.groups import find_groups
from oicsr_lab.importance import channel_energy
from oicsr_lab.models import build_model
from oicsr_lab.pretrained import list_pretrained
from oicsr_lab.pruning import global_greedy_plan

from cli_helpers import run_cli

NOTEBOOK_EXERCISES = {"00": 4, "01": 1, "02": 1, "03": 1, "04": 3, "05": 2, "06": 3}  # checkable ones


@pytest.fixture(scope="module")
def small():
    """A ResNet-20 x0.25 with its groups, FLOPs report and a 30 % plan."""
    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=10, width=0.25).eval()
    x = torch.zeros(1, 3, 32, 32)
    groups = find_groups(model, x)
    report = count_flops(model, x)
    plan = global_greedy_plan(model, groups, channel_energy(model, groups), 0.3, report=report)
    return model, x, groups, report, plan


def test_every_checkable_exercise_is_registered() -> None:
    verdict("00.1", None)  # loads the registry
    per_nb: dict[str, int] = {}
    for ex_id in EXERCISES:
        per_nb[ex_id[:2]] = per_nb.get(ex_id[:2], 0) + 1
    assert per_nb == NOTEBOOK_EXERCISES


@pytest.mark.parametrize("placeholder", [None, ...])
def test_placeholder_is_not_answered(placeholder) -> None:
    v = verdict("04.4", placeholder)
    assert v.status == MISSING and not v and "ex4_params_removed" in v.message
    with pytest.raises(AssertionError, match="not answered"):
        course.grade("04.4", placeholder)


def test_unknown_exercise_is_one_line() -> None:
    with pytest.raises(ConfigError, match="unknown exercise '99.9'; known: 00.1"):
        verdict("99.9", 1)


def test_stage_check_right_and_wrong_without_revealing(small) -> None:
    model, x, groups, report, plan = small
    per_channel = channel_flops(report, groups.prunable)
    best = max(per_channel, key=per_channel.get).split(".")[0]
    assert verdict("00.3", best, report=report, groups=groups).status == RIGHT
    other = "layer3" if best != "layer3" else "layer1"
    wrong = verdict("00.3", other, report=report, groups=groups)
    assert wrong.status == WRONG and best not in wrong.message, wrong.message
    course.grade("00.3", best, report=report, groups=groups)
    with pytest.raises(AssertionError):
        course.grade("00.3", other, report=report, groups=groups)


def test_numeric_checks(small) -> None:
    model, x, groups, report, plan = small
    ref = 1 - plan.params_after / plan.params_before
    assert verdict("04.4", ref, plan=plan)
    assert not verdict("04.4", ref + 0.05, plan=plan)
    assert not verdict("04.4", 100 * ref, plan=plan)  # a percentage instead of a fraction
    wrong = verdict("04.4", "thirty", plan=plan)  # an answer of the wrong kind is wrong, not a crash
    assert wrong.status == WRONG and "could not be read" in wrong.message


def test_max_reachable_ratio_check(small) -> None:
    from oicsr_lab.course.answers import max_reachable
    from oicsr_lab.widgets import PruningExplorer  # noqa: F401  (what the solution uses; its value must pass)

    model, x, groups, report, plan = small
    ref = max_reachable(model, groups, report, 0.25)
    assert 0.05 < ref < 0.5
    assert verdict("04.1", ref - 0.01, model=model, groups=groups, report=report)
    assert not verdict("04.1", ref + 0.05, model=model, groups=groups, report=report)


def test_gradient_check_uses_autograd() -> None:
    def right(w_out, w_in, lam):
        return lam * w_in / torch.sqrt((w_out ** 2).sum() + (w_in ** 2).sum())

    def gl_only(w_out, w_in, lam):  # the GL gradient: the in-part alone in the norm
        return lam * w_in / torch.sqrt((w_in ** 2).sum())

    assert verdict("01.4", right)
    assert not verdict("01.4", gl_only)
    assert not verdict("01.4", lambda w_out, w_in, lam: w_in[0])  # wrong shape


def test_resnet50_checks() -> None:
    torch.manual_seed(0)
    model = build_model("torchvision:resnet50", num_classes=1000).eval()
    x = torch.zeros(1, 3, 224, 224)
    report = count_flops(model, x)
    by_hand = 14 * 14 * (1024 * 256 + 256 * 256 * 9 + 256 * 1024)
    assert verdict("06.1", by_hand, report=report)
    assert not verdict("06.1", 56 * 56 * (1024 * 256 + 256 * 256 * 9 + 256 * 1024), report=report)


def test_fused_and_rounded_model_checks(small) -> None:
    import copy

    from torch.fx.experimental.optimization import fuse

    from oicsr_lab.pruning import prune

    model, x, groups, report, plan = small
    pruned = prune(model, plan).eval()
    xb = torch.randn(4, 3, 32, 32)
    assert verdict("05.4", fuse(copy.deepcopy(pruned)), reference=pruned, xb=xb)
    unfused = verdict("05.4", copy.deepcopy(pruned), reference=pruned, xb=xb)
    assert unfused.status == WRONG and "BatchNorm" in unfused.message
    assert not verdict("05.3", model, dense=model)  # not pruned at all


def test_check_prints_outside_jupyter(capsys) -> None:
    assert course.check("04.4", None) is None
    assert "not answered yet" in capsys.readouterr().out


def test_verdict_html_is_escaped() -> None:
    v = verdict("04.4", None)
    assert "<b" in v._repr_html_() and "not answered" in v._repr_html_()


def test_shipped_models_follow_the_manifest() -> None:
    shipped = course.shipped_models()
    listed = {e["reg"] for e in list_pretrained() if e["model"] == "resnet20" and int(e["seed"]) == 0}
    assert set(shipped.regs) == listed and listed
    expected_missing = [r for r in ("l2", "gl", "l1bn", "oicsr_gl") if r not in listed]
    assert shipped.missing == expected_missing
    for reg in expected_missing:
        assert reg in shipped.summary()
    with pytest.raises(ConfigError, match="no shipped resnet20 model of seed 99"):
        course.shipped_models(seed=99)


def test_cli_course_errors(capsys, tmp_path) -> None:
    err = run_cli(capsys, ["course", "grade", str(tmp_path), "--course", str(tmp_path / "none")])
    assert "no nbgrader course directory" in err and "course release" in err
    err = run_cli(capsys, ["course", "release", "--notebooks", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "no lecture notebooks" in err


def test_pretrained_is_callable_after_importing_the_package() -> None:
    """``oicsr_lab.pretrained(...)`` (the documented call) works after ``import oicsr_lab.pretrained``."""
    import oicsr_lab
    import oicsr_lab.pretrained  # noqa: F401  (binds the package to the attribute: what broke the call)

    model = oicsr_lab.pretrained("resnet20", reg="l2", seed=0)
    assert sum(p.numel() for p in model.parameters()) > 200_000
