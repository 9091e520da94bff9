"""Property tests over random conv nets: groups, FLOPs, plans, masks and surgery agree with each other.

For every drawn net (see ``tests/strategies.py``: chains, residuals, concatenations, depthwise and
grouped convs -- plain and in ResNeXt/RegNet bottlenecks, pruned by whole conv groups -- SE gates)
``find_groups`` either raises a one-line UnsupportedModelError (exactly when the net holds an
unsupported op; then ``unsupported="pin"`` must still give correct groups, unless torch.fx cannot
trace the net) or returns groups that own every Conv/Linear/BN index once, and then, for a random
Algorithm 1 plan ranked by any registered criterion (data-driven ones on a calibration batch):

* (a) the masked model and the physically pruned model agree (<= 1e-4 relative to the output scale),
  in eval and in train mode, and the pruned model traces to the same groups with the kept widths;
* (b) ``count_flops`` equals ``FlopCounterMode`` / 2 exactly, for the dense and the pruned model, and
  removing one channel of a group saves exactly ``channel_flops`` MACs;
* (c) the plan respects ``max_layer_ratio``, ``min_channels`` and ``round_to``, reaches its target,
  and its claimed FLOPs/params equal ``count_flops``/the parameter count of the pruned model;
  an unreachable target raises PlanError whose reported maximum is itself reachable.

Profiles (``tests/_profiles.py``): ``ci`` (25 examples, default) and ``thorough`` (300 examples,
``HYPOTHESIS_PROFILE=thorough``); the ``slow`` variants always run the thorough count.
"""

from __future__ import annotations

import copy
import math
import re
from collections import Counter
from typing import Any

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from oicsr_lab.criteria import Calibration
from oicsr_lab.errors import ConfigError, PlanError, UnsupportedModelError
from oicsr_lab.flops import channel_flops, count_flops
from oicsr_lab.groups import find_groups
from oicsr_lab.groups.verify import check_partition
from oicsr_lab.importance import ALL_CRITERIA, NORMALIZATIONS, channel_energy
from oicsr_lab.pruning import Plan, apply_masks, global_greedy_plan, prune

import _profiles  # noqa: F401  (registers and loads the hypothesis profile)
from strategies import NUM_CLASSES, build_net, example_input, has_bad, net_specs, pinnable

PLAN_OPTIONS = st.fixed_dictionaries({
    "ratio": st.floats(0.0, 0.95),
    "criterion": st.sampled_from(ALL_CRITERIA),
    "normalize": st.sampled_from(NORMALIZATIONS),
    "max_layer_ratio": st.sampled_from([0.25, 0.5, 0.8, 1.0]),
    "min_channels": st.sampled_from([1, 1, 2, 3]),
    "round_to": st.sampled_from([None, None, 1, 2, 4]),
    "tolerance": st.sampled_from([0.0, 0.005, 0.05]),
    "allow_coupled": st.booleans(),
})


def grouped(model: torch.nn.Module, name: str) -> bool:
    """True when ``name`` is a grouped (not depthwise) conv of ``model``."""
    m = model.get_submodule(name)
    return isinstance(m, torch.nn.Conv2d) and 1 < m.groups and not m.groups == m.in_channels == m.out_channels


def reference_macs(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FlopCounterMode's total / 2 (it counts 2 FLOPs per multiply-accumulate)."""
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return fc.get_total_flops() / 2


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make_plan(model, groups, scores, x1, opts: dict[str, Any]):
    """A plan at the drawn ratio; when unreachable, check the error and plan just below the reported maximum."""
    kw = dict(max_layer_ratio=opts["max_layer_ratio"], min_channels=opts["min_channels"],
              round_to=opts["round_to"], example_input=x1, tolerance=opts["tolerance"])
    try:
        return global_greedy_plan(model, groups, scores, opts["ratio"], **kw)
    except PlanError as e:
        msg = str(e)
        assert "\n" not in msg and "unreachable" in msg, msg
        most = float(re.search(r"at most ([0-9.]+)%", msg).group(1)) / 100
        assert most < opts["ratio"], msg
        event("target unreachable: planned below the reported maximum")
        return global_greedy_plan(model, groups, scores, max(0.0, most - 1e-4), **kw)


def check_caps(plan, groups) -> None:
    """(c) every prunable group keeps a sorted, valid subset within the plan's caps."""
    prunable = {g.name: g for g in groups if g.prunable}
    assert set(plan.keep) == set(prunable)
    r = plan.round_to or 1
    for name, keep in plan.keep.items():
        size = prunable[name].size
        removed = size - len(keep)
        assert keep == sorted(set(keep)) and all(0 <= i < size for i in keep), name
        assert removed <= math.floor(plan.max_layer_ratio * size + 1e-9), (name, removed, size)
        if removed:  # every module keeps a multiple of r indices (a channel may own k of them: a conv group)
            per_module = Counter((s.module, s.kind) for s in prunable[name].slices)
            assert len(keep) >= plan.min_channels and len(keep) >= 1, (name, len(keep))
            assert all(len(keep) * k % r == 0 for k in per_module.values()), (name, len(keep), r, per_module)
        assert plan.layer_ratios[name] == pytest.approx(removed / size)


def check_channel_flops(model, groups, dense, x1) -> None:
    """(b) removing channel 0 of any prunable group saves exactly ``channel_flops`` MACs."""
    per_channel = channel_flops(dense, groups)
    for g in groups.prunable:
        if g.size < 2:
            continue
        one = Plan(keep={g.name: list(range(1, g.size))}, sizes={g.name: g.size},
                   slices={g.name: [[s.module, s.kind, list(s.indices), s.block] for s in g.slices]})
        assert dense.total_macs - count_flops(prune(model, one), x1).total_macs == per_channel[g.name], g.name


def check_outputs(model, pruned, plan, x, y_dense) -> None:
    """(a) masked == pruned in eval and in train mode (batch statistics); the original is untouched."""
    with torch.no_grad(), apply_masks(model, plan):
        y_mask = model(x)
    with torch.no_grad():
        y_pruned = pruned(x)
        y_again = model(x)
    scale = max(1.0, float(y_mask.abs().max()))
    assert float((y_mask - y_pruned).abs().max()) <= 1e-4 * scale
    assert torch.equal(y_again, y_dense)  # masks removed, original untouched
    m_train, p_train = copy.deepcopy(model).train(), copy.deepcopy(pruned).train()
    with torch.no_grad(), apply_masks(m_train, plan):
        y_mask = m_train(x)
    with torch.no_grad():
        y_pruned = p_train(x)
    assert float((y_mask - y_pruned).abs().max()) <= 1e-4 * max(1.0, float(y_mask.abs().max()))


def check_net(spec: dict[str, Any], opts: dict[str, Any]) -> None:
    """All properties for one drawn net and plan options."""
    model = build_net(spec)
    x = example_input(spec)
    x1 = x[:1]
    try:
        groups = find_groups(model, x1, allow_coupled=opts["allow_coupled"])
    except UnsupportedModelError as e:
        assert has_bad(spec), f"supported net rejected: {e}"
        assert "\n" not in str(e) and ("node" in str(e) or "module" in str(e)), str(e)
        event("rejected: unsupported op")
        if not pinnable(spec):
            return
        groups = find_groups(model, x1, allow_coupled=opts["allow_coupled"], unsupported="pin")
        assert groups.pinned and any("passes an operation the tracer cannot map" in g.reason for g in groups)
    else:
        assert not has_bad(spec), "an unsupported op was not detected"
    pin = "pin" if has_bad(spec) else "raise"
    assert check_partition(model, groups) == []
    with torch.no_grad():
        y_dense = model(x)
    dense = count_flops(model, x1)
    assert dense.total_macs == reference_macs(model, x1)  # (b) dense
    check_channel_flops(model, groups, dense, x1)
    try:
        labels = torch.arange(len(x)) % NUM_CLASSES
        scores = channel_energy(model, groups, opts["criterion"], opts["normalize"], seed=spec["seed"],
                                calibration=Calibration([(x, labels)], "train"))
    except ConfigError as e:  # bn_gamma on a group without BatchNorm: a clear error, then another criterion
        assert opts["criterion"] == "bn_gamma" and "BatchNorm" in str(e)
        scores = channel_energy(model, groups, "out_in", opts["normalize"])
    plan = make_plan(model, groups, scores, x1, opts)
    check_caps(plan, groups)
    pruned = prune(model, plan)
    event(f"channels removed: {'yes' if any(plan.removed().values()) else 'no'}")
    event(f"prunable groups: {min(len(groups.prunable), 3)}{'+' if len(groups.prunable) >= 3 else ''}")
    after = count_flops(pruned, x1)
    assert after.total_macs == reference_macs(pruned, x1)  # (b) pruned
    assert plan.flops_before == dense.total_macs and plan.flops_after == after.total_macs  # (c)
    assert plan.params_before == n_params(model) and plan.params_after == n_params(pruned)
    assert plan.achieved_ratio >= plan.target_ratio - 1e-12
    check_outputs(model, pruned, plan, x, y_dense)  # (a)
    retraced = {g.name: g.size for g in find_groups(pruned, x1, allow_coupled=opts["allow_coupled"], unsupported=pin)}
    for name, keep in plan.keep.items():  # same groups, fewer channels
        if retraced.get(name) != len(keep):  # only where a grouped conv was cut to one group (a plain conv now)
            assert any(grouped(model, s.module) and pruned.get_submodule(s.module).groups == 1
                       for s in groups[name].slices), (name, retraced.get(name), len(keep))
            event("a grouped conv was cut to one conv group (retraces as a plain conv)")


@given(spec=net_specs(), opts=PLAN_OPTIONS)
def test_random_nets_groups_flops_plans_agree(spec: dict[str, Any], opts: dict[str, Any]) -> None:
    """(a)-(c) on random nets, some holding unsupported ops (profile-sized: 25 examples by default)."""
    check_net(spec, opts)


@given(spec=net_specs(bad=False, max_blocks=4), ratio=st.floats(0.0, 0.95))
def test_default_options_on_supported_nets(spec: dict[str, Any], ratio: float) -> None:
    """The library defaults (out_in energy, layer_max, cap 0.5) on supported nets only."""
    check_net(spec, {"ratio": ratio, "criterion": "out_in", "normalize": "layer_max", "max_layer_ratio": 0.5,
                     "min_channels": 1, "round_to": None, "tolerance": 0.005, "allow_coupled": False})


@pytest.mark.slow
@settings(max_examples=_profiles.THOROUGH_EXAMPLES)
@given(spec=net_specs(max_blocks=7), opts=PLAN_OPTIONS)
def test_random_nets_thorough(spec: dict[str, Any], opts: dict[str, Any]) -> None:
    """The same properties on 300 larger random nets (``make test-slow``)."""
    check_net(spec, opts)
