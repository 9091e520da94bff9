"""Regularisers against slow, independently written reference formulas (one loop per channel)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from oicsr_lab.errors import ConfigError
from oicsr_lab.regularizers import make_regularizer, names

from regularizer_reference import (
    NETS,
    STRUCTURED,
    assert_grads_close,
    build,
    grads_of,
    pav_nonincreasing,
    ref_grads,
    ref_parts,
    ref_penalty,
    ref_theta,
    reg_grads,
    resnet_groups,
    two_layer_groups,
)


# ------------------------------------------------------------------------ value + gradient
@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("name", STRUCTURED + ("l1bn",))
@pytest.mark.parametrize("grad", ["direct", "autograd"])
def test_value_and_gradient_match_reference(net: str, name: str, grad: str) -> None:
    m, gs, _ = build(net)
    reg = make_regularizer(name, gs, 3e-2, grad=grad)
    ref = ref_penalty(m, gs, name, 3e-2)
    assert reg.value(m) == pytest.approx(ref.item(), rel=1e-5)
    if grad == "autograd":
        assert reg.penalty(m).item() == pytest.approx(ref.item(), rel=1e-5)
    else:
        assert reg.penalty(m) is None
    assert_grads_close(reg_grads(reg, m), ref_grads(m, gs, name, 3e-2))


@pytest.mark.parametrize("name", STRUCTURED)
@pytest.mark.parametrize("net, kw", [("resnet", {"include_bn": True}), ("two_layer", {"include_bias": True}),
                                     ("resnet", {"select": "all"}), ("depthwise", {"include_bn": True}),
                                     ("resnet", {"select": "all", "include_bn": True, "size_weighting": "sqrt"})])
def test_options_match_reference(name: str, net: str, kw: dict) -> None:
    m, gs, _ = build(net, seed=1)
    reg = make_regularizer(name, gs, 1e-2, **kw)
    ref_kw = {k: v for k, v in kw.items() if k != "size_weighting"}
    size = kw.get("size_weighting", "none")
    assert reg.value(m) == pytest.approx(ref_penalty(m, gs, name, 1e-2, size=size, **ref_kw).item(), rel=1e-5)
    assert_grads_close(reg_grads(reg, m), ref_grads(m, gs, name, 1e-2, size=size, **ref_kw))


def test_growl_with_zero_lambda2_is_group_lasso() -> None:
    m, gs, _ = build("resnet")
    for a, b in (("growl", "gl"), ("oicsr_growl", "oicsr_gl")):
        got = make_regularizer(a, gs, 1e-2, lambda2_ratio=0.0).value(m)
        assert got == pytest.approx(make_regularizer(b, gs, 1e-2).value(m))
        assert make_regularizer(a, gs, 1e-2, p=0).value(m) == pytest.approx(make_regularizer(b, gs, 1e-2).value(m))


def test_l2_is_a_no_op() -> None:
    m, gs, _ = build("two_layer")
    reg = make_regularizer("l2", gs, 1e-4)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    assert reg.penalty(m) is None and reg.value(m) == 0.0
    reg.after_backward(m)
    reg.after_step(m, 0.1)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


# ----------------------------------------------------------------------------- l1bn scope
@pytest.mark.parametrize("select", ["prunable", "all"])
def test_l1bn_touches_only_bn_scales(select: str) -> None:
    m, gs, x = build("resnet")
    reg = make_regularizer("l1bn", gs, 1e-3, select=select)
    m(x).square().mean().backward()
    before = grads_of(m)
    reg.after_backward(m)
    after = grads_of(m)
    bns = {s.module for g in gs if g.prunable or select == "all" for s in g.bn_slices}
    for k in before:
        mod, attr = k.rsplit(".", 1)
        if mod in bns and attr == "weight":
            gamma = m.get_submodule(mod).weight.detach()
            torch.testing.assert_close(after[k] - before[k], 1e-3 * gamma.sign())
        else:
            assert torch.equal(after[k], before[k]), k


# ------------------------------------------------------------------------ OICSR coupling
def test_oicsr_gradient_shrinks_out_channel_less_when_in_channel_is_strong() -> None:
    m, gs, _ = build("two_layer")
    with torch.no_grad():
        w = torch.randn(3, 3, 3)
        m.conv1.weight[2] = w  # group channel 0 (index 2) and channel 1 (index 0): equal out-norm
        m.conv1.weight[0] = w
        m.conv2.weight[:, 2] *= 0
        m.conv2.weight[:, 2] += 3.0  # strong in-channel
        m.conv2.weight[:, 0] *= 0
        m.conv2.weight[:, 0] += 0.01  # weak in-channel
    g_oicsr = reg_grads(make_regularizer("oicsr_gl", gs, 1e-2), m)["conv1.weight"]
    assert g_oicsr[2].norm() < 0.5 * g_oicsr[0].norm()
    g_gl = reg_grads(make_regularizer("gl", gs, 1e-2), m)["conv1.weight"]
    torch.testing.assert_close(g_gl[2], g_gl[0])  # the separated penalty cannot tell them apart


# ------------------------------------------------------------------------------- proximal
def test_proximal_zeroes_small_groups_and_scales_large_ones() -> None:
    m, gs, _ = build("two_layer")
    with torch.no_grad():
        m.conv1.weight[2] *= 1e-3  # channel 0 of group conv1: tiny out part
        m.conv2.weight[:, 2] *= 1e-3  # ... and tiny in part
    old = {k: v.detach().clone() for k, v in m.named_parameters()}
    vecs = ref_parts(m, gs, "oicsr_gl")
    norms = [[v.norm().item() for v in part] for part in vecs]
    lr, s = 0.1, 0.05
    reg = make_regularizer("oicsr_gl", gs, s, mode="proximal")
    assert reg.penalty(m) is None
    reg.after_backward(m)  # no-op in proximal mode
    assert all(torch.equal(old[k], p) for k, p in m.named_parameters())
    reg.after_step(m, lr)
    assert norms[0][0] < lr * s < min(norms[0][1:])
    assert torch.count_nonzero(m.conv1.weight[2]) == 0 and torch.count_nonzero(m.conv2.weight[:, 2]) == 0
    f1 = [max(0.0, 1 - lr * s / n) for n in norms[0]]  # group conv1: conv1 rows perm[i], conv2 columns perm[i]
    f2 = [max(0.0, 1 - lr * s / n) for n in norms[1]]  # group conv2: conv2 rows i, fc column block i
    perm = gs["conv1"].in_slices[0].indices
    for i, f in enumerate(f1):
        torch.testing.assert_close(m.conv1.weight[perm[i]], f * old["conv1.weight"][perm[i]])
        for j, g in enumerate(f2):  # conv2 is the in-part of conv1's group and the out-part of conv2's
            torch.testing.assert_close(m.conv2.weight[j, perm[i]], f * g * old["conv2.weight"][j, perm[i]])
    for j, g in enumerate(f2):
        torch.testing.assert_close(m.fc.weight[:, 16 * j:16 * (j + 1)], g * old["fc.weight"][:, 16 * j:16 * (j + 1)])
    assert 0 < min(f1[1:] + f2) and max(f1 + f2) < 1
    assert torch.equal(m.conv1.bias, old["conv1.bias"])  # bias not in the group by default
    assert torch.equal(m.bn1.weight, old["bn1.weight"])  # include_bn=False


def test_proximal_overlapping_groups_multiply_factors() -> None:
    m, gs, _ = build("resnet")
    old = {k: v.detach().clone() for k, v in m.named_parameters()}
    lr, s = 0.5, 0.2
    expected = {k: torch.ones_like(v) for k, v in old.items()}
    for g, part in zip(gs.groups, ref_parts(m, gs, "oicsr_gl", select="all")):
        for i, v in enumerate(part):
            f = max(0.0, 1 - lr * s / v.norm().item())
            for sl in g.slices:
                if sl.kind == "out":
                    expected[f"{sl.module}.weight"][sl.indices[i]] *= f
                elif sl.kind == "in":
                    expected[f"{sl.module}.weight"][:, list(sl.columns(i))] *= f
    make_regularizer("oicsr_gl", gs, s, mode="proximal", select="all").after_step(m, lr)
    for k, p in m.named_parameters():
        torch.testing.assert_close(p.detach(), old[k] * expected[k], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["growl", "oicsr_growl"])
def test_growl_proximal_matches_owl_prox(name: str) -> None:
    m, gs, _ = build("resnet", seed=2)
    with torch.no_grad():  # spread the norms, with a near tie at the top so that PAV must pool
        for blk in (m.b1, m.b2):
            f = torch.tensor([1.0, 0.99, 0.5, 0.3, 0.1])[: blk.conv1.out_channels]
            blk.conv1.weight.mul_(f.view(-1, 1, 1, 1))
            blk.conv2.weight.mul_(f.view(1, -1, 1, 1))
    parts = ref_parts(m, gs, name)
    lr = 0.5
    s = 0.5 * min(vecs[1].norm().item() for vecs in parts) / lr  # zeros the smallest channels, not all
    targets = []
    for vecs in parts:
        norms = [v.norm().item() for v in vecs]
        order = sorted(range(len(norms)), key=lambda i: -norms[i])
        z = [norms[i] - lr * s * t for i, t in zip(order, ref_theta(len(norms)))]
        new_sorted = [max(0.0, y) for y in pav_nonincreasing(z)]
        new = [0.0] * len(norms)
        for i, y in zip(order, new_sorted):
            new[i] = y
        targets.append(new)
    assert any(t == 0.0 for new in targets for t in new) and any(t > 0 for new in targets for t in new)
    pooled = [new for new in targets if len({round(t, 9) for t in new if t > 0}) < sum(t > 0 for t in new)]
    assert pooled  # PAV had to pool adjacent violators somewhere
    make_regularizer(name, gs, s, mode="proximal").after_step(m, lr)
    for vecs, new in zip(ref_parts(m, gs, name), targets):
        got = [v.norm().item() for v in vecs]
        assert got == pytest.approx(new, abs=1e-5)


def test_l1bn_proximal_is_soft_threshold() -> None:
    m, gs, _ = build("two_layer")
    g0 = m.bn1.weight.detach().clone()
    make_regularizer("l1bn", gs, 0.5, mode="proximal").after_step(m, 1.0)
    torch.testing.assert_close(m.bn1.weight.detach(), g0.sign() * (g0.abs() - 0.5).clamp_min(0))
    assert (m.bn1.weight == 0).any()


# ------------------------------------------------------------------------- robustness
@pytest.mark.parametrize("name", STRUCTURED + ("l1bn",))
@pytest.mark.parametrize("kw",
                         [{}, {"grad": "autograd"}, {"eps": 0.0}, {"eps": 0.0, "grad": "autograd"},
                          {"mode": "proximal"}])
def test_zero_norm_groups_give_no_nan(name: str, kw: dict) -> None:
    m, gs, _ = build("two_layer")
    with torch.no_grad():
        m.conv1.weight[2] = 0
        m.conv2.weight[:, 2] = 0
        m.conv2.weight[1] = 0
        m.fc.weight[:, 16:32] = 0
        m.bn1.weight[2] = 0
    reg = make_regularizer(name, gs, 1e-2, **kw)
    assert math.isfinite(reg.value(m))
    grads = reg_grads(reg, m)
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert torch.count_nonzero(grads["conv1.weight"][2]) == 0
    reg.after_step(m, 0.1)
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_plan_follows_replaced_modules_and_new_models() -> None:
    m, gs, _ = build("two_layer")
    reg = make_regularizer("oicsr_gl", gs, 1e-2)
    reg_grads(reg, m)
    m.conv2 = nn.Conv2d(6, 5, 3, padding=1)  # surgery-style replacement
    assert_grads_close(reg_grads(reg, m), ref_grads(m, gs, "oicsr_gl", 1e-2))
    m.double()  # same Parameter objects, new dtype: the plan is rebuilt
    assert reg.value(m) == pytest.approx(ref_penalty(m, gs, "oicsr_gl", 1e-2).item(), rel=1e-9)
    assert_grads_close(reg_grads(reg, m), ref_grads(m, gs, "oicsr_gl", 1e-2))
    m2, _, _ = build("two_layer", seed=5)
    assert reg.value(m2) == pytest.approx(ref_penalty(m2, gs, "oicsr_gl", 1e-2).item(), rel=1e-5)


def test_strength_can_change_between_steps_and_repr_is_readable() -> None:
    m, gs, _ = build("two_layer")
    reg = make_regularizer("oicsr_growl", gs, 1e-2, mode="proximal", p=2)
    v = reg.value(m)
    reg.strength = 2e-2
    assert reg.value(m) == pytest.approx(2 * v)
    r = repr(reg)
    assert r.startswith("Regularizer('oicsr_growl'") and "strength=0.02" in r and "mode='proximal'" in r and "p=2" in r
    assert reg.name == "oicsr_growl"
    with pytest.raises(ConfigError):
        reg.strength = -1.0


@pytest.mark.parametrize("call, match", [
    (lambda gs: make_regularizer("lasso", gs, 1e-4), "choose one of l2, gl, l1bn"),
    (lambda gs: make_regularizer("gl", gs, -1e-4), "strength"),
    (lambda gs: make_regularizer("gl", gs, float("nan")), "strength"),
    (lambda gs: make_regularizer("gl", gs, "1e-4"), "strength"),
    (lambda gs: make_regularizer("gl", gs, True), "strength"),
    (lambda gs: make_regularizer("gl", gs, 1e-4, modes="proximal"), "valid options: mode"),
    (lambda gs: make_regularizer("gl", gs, 1e-4, p=0.5), "only to growl"),
    (lambda gs: make_regularizer("gl", gs, 1e-4, mode="prox"), "subgradient, proximal"),
    (lambda gs: make_regularizer("gl", gs, 1e-4, size_weighting="linear"), "none, sqrt"),
    (lambda gs: make_regularizer("gl", gs, 1e-4, include_bn="yes"), "include_bn"),
    (lambda gs: make_regularizer("gl", gs, 1e-4, eps=-1), "eps"),
    (lambda gs: make_regularizer("gl", gs, 1e-4, select="some"), "prunable, all"),
    (lambda gs: make_regularizer("gl", gs, 1e-4, select=["nope"]), "unknown groups"),
    (lambda gs: make_regularizer("growl", gs, 1e-4, p=1.5), "p must"),
    (lambda gs: make_regularizer("growl", gs, 1e-4, lambda2_ratio=-1), "lambda2_ratio"),
    (lambda gs: make_regularizer("gl", "groups", 1e-4), "GroupSet"),
])
def test_bad_inputs_raise_config_error(call, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        call(two_layer_groups())
    assert "\n" not in str(info.value)


def test_groups_of_another_model_raise_config_error() -> None:
    m, _, _ = build("two_layer")
    reg = make_regularizer("oicsr_gl", resnet_groups(), 1e-2)
    with pytest.raises(ConfigError, match="find_groups"):
        reg.value(m)
    with pytest.raises(ConfigError, match="after_step"):
        make_regularizer("gl", two_layer_groups(), 1e-2, mode="proximal").after_step(m, float("nan"))


def test_every_name_trains_a_step() -> None:
    for name in names():
        for mode in ("subgradient", "proximal"):
            m, gs, x = build("resnet")
            reg = make_regularizer(name, gs, 1e-3, mode=mode)
            opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
            loss = m(x).square().mean()
            pen = reg.penalty(m)
            (loss if pen is None else loss + pen).backward()
            reg.after_backward(m)
            opt.step()
            reg.after_step(m, 0.1)
            assert all(torch.isfinite(p).all() for p in m.parameters())


# ------------------------------------------------------------------ on the traced ResNet-20
def test_resnet20_with_traced_groups() -> None:
    groups_mod = pytest.importorskip("oicsr_lab.groups")
    if not hasattr(groups_mod, "find_groups"):
        pytest.skip("oicsr_lab.groups.find_groups has not landed yet")
    from oicsr_lab.models import build_model

    torch.manual_seed(0)
    m = build_model("resnet20", width=0.5)
    gs = groups_mod.find_groups(m, torch.randn(1, 3, 32, 32))
    for name in ("oicsr_gl", "gl", "l1bn", "oicsr_growl"):
        for select in ("prunable", "all"):
            reg = make_regularizer(name, gs, 1e-3, select=select)
            ref = ref_penalty(m, gs, name, 1e-3, select=select) if name != "l1bn" or select == "prunable" else None
            if ref is not None:
                assert reg.value(m) == pytest.approx(ref.item(), rel=1e-4)
            auto = make_regularizer(name, gs, 1e-3, select=select, grad="autograd")
            assert_grads_close(reg_grads(reg, m), reg_grads(auto, m))
