"""Regularisers against slow, independently written reference formulas (one loop per channel)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from oicsr_lab.errors import ConfigError
from oicsr_lab.groups.types import ChannelGroup, GroupSet, Slice
from oicsr_lab.regularizers import NAMES, make_regularizer

torch.set_num_threads(1)
EPS = 1e-8
STRUCTURED = ("gl", "oicsr_gl", "growl", "oicsr_growl")


# --------------------------------------------------------------------------- test nets
class TwoLayer(nn.Module):
    """conv-bn-relu-conv-bn-relu-flatten-linear on 3x4x4 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 5, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(5)
        self.fc = nn.Linear(5 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


def two_layer_groups() -> GroupSet:
    """Hand-built groups; conv1's channel i owns index perm[i] (indices need not be 0..n-1)."""
    perm = (2, 0, 1, 5, 3, 4)
    r5 = tuple(range(5))
    return GroupSet([
        ChannelGroup("conv1", 6, (Slice("conv1", "out", perm), Slice("bn1", "bn", perm), Slice("conv2", "in", perm))),
        ChannelGroup("conv2", 5, (Slice("conv2", "out", r5), Slice("bn2", "bn", r5), Slice("fc", "in", r5, 16))),
        ChannelGroup("fc", 4, (Slice("fc", "out", tuple(range(4))),), prunable=False, reason="class outputs"),
    ])


class Block(nn.Module):
    """BasicBlock with optional projection shortcut."""

    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.sc is None else self.sc(x)))


class ResNet(nn.Module):
    """stem -> identity block -> projection block -> avgpool -> fc."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.b1 = Block(8, 4, 8)
        self.b2 = Block(8, 5, 6)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b2(self.b1(F.relu(self.bn(self.stem(x)))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def resnet_groups() -> GroupSet:
    """Block-internal groups are prunable; the residual widths are coupled groups."""
    r = lambda n: tuple(range(n))  # noqa: E731
    return GroupSet([
        ChannelGroup("b1.conv1", 4, (Slice("b1.conv1", "out", r(4)), Slice("b1.bn1", "bn", r(4)), Slice("b1.conv2", "in", r(4)))),
        ChannelGroup("b2.conv1", 5, (Slice("b2.conv1", "out", r(5)), Slice("b2.bn1", "bn", r(5)), Slice("b2.conv2", "in", r(5)))),
        ChannelGroup("res1", 8, (Slice("stem", "out", r(8)), Slice("bn", "bn", r(8)), Slice("b1.conv2", "out", r(8)),
                                 Slice("b1.bn2", "bn", r(8)), Slice("b1.conv1", "in", r(8)), Slice("b2.conv1", "in", r(8)),
                                 Slice("b2.sc.0", "in", r(8))), prunable=False, coupled=True),
        ChannelGroup("res2", 6, (Slice("b2.conv2", "out", r(6)), Slice("b2.bn2", "bn", r(6)), Slice("b2.sc.0", "out", r(6)),
                                 Slice("b2.sc.1", "bn", r(6)), Slice("fc", "in", r(6))), prunable=False, coupled=True),
    ])


class Depthwise(nn.Module):
    """conv-bn-relu-depthwise-bn-relu-conv: one group with out, bn, dw, bn and in slices."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.conv3 = nn.Conv2d(6, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(F.relu(self.bn2(self.dw(F.relu(self.bn1(self.conv1(x)))))))


def depthwise_groups() -> GroupSet:
    r = tuple(range(6))
    return GroupSet([ChannelGroup("conv1", 6, (Slice("conv1", "out", r), Slice("bn1", "bn", r), Slice("dw", "dw", r),
                                               Slice("bn2", "bn", r), Slice("conv3", "in", r)))])


NETS = {"two_layer": (TwoLayer, two_layer_groups, (2, 3, 4, 4)), "resnet": (ResNet, resnet_groups, (2, 3, 5, 5)),
        "depthwise": (Depthwise, depthwise_groups, (2, 3, 4, 4))}


def build(net: str, seed: int = 0) -> tuple[nn.Module, GroupSet, torch.Tensor]:
    """Model with random BN affine params (so gamma/beta are not all 1/0), its groups, an input."""
    cls, gfn, shape = NETS[net]
    torch.manual_seed(seed)
    m = cls()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            nn.init.normal_(mod.weight)
            nn.init.normal_(mod.bias)
    return m, gfn(), torch.randn(shape)


# ------------------------------------------------------------------- slow reference formulas
def channel_vectors(m: nn.Module, s: Slice, i: int, include_bn: bool, include_bias: bool) -> list[torch.Tensor]:
    """What slice ``s`` contributes to channel ``i``'s vector, one tensor per piece."""
    mod = m.get_submodule(s.module)
    idx = s.indices[i]
    if s.kind in ("out", "dw"):
        v = [mod.weight[idx].reshape(-1)]
        return v + ([mod.bias[idx].reshape(1)] if include_bias and mod.bias is not None else [])
    if s.kind == "bn":
        return [mod.weight[idx].reshape(1), mod.bias[idx].reshape(1)] if include_bn else []
    cols = list(s.columns(i))
    return [mod.weight[:, c].reshape(-1) for c in cols]


def ref_parts(m: nn.Module, gs: GroupSet, name: str, select: str = "prunable", include_bn: bool = False,
              include_bias: bool = False) -> list[list[torch.Tensor]]:
    """For each penalised part, the list of per-channel vectors (loops, autograd-friendly)."""
    groups = [g for g in gs if g.prunable or select == "all"]
    parts = []
    for g in groups:
        if name in ("oicsr_gl", "oicsr_growl"):
            parts.append([torch.cat([v for s in g.slices for v in channel_vectors(m, s, i, include_bn, include_bias)])
                          for i in range(g.size)])
        elif name in ("gl", "growl"):  # each producer separately; a BN joins the producer before it
            slices_by_part: list[list[Slice]] = []
            for s in g.slices:
                if s.kind in ("out", "dw"):
                    slices_by_part.append([s])
                elif s.kind == "bn" and include_bn:
                    slices_by_part[-1].append(s)
            for sl in slices_by_part:
                parts.append([torch.cat([v for s in sl for v in channel_vectors(m, s, i, include_bn, include_bias)])
                              for i in range(g.size)])
    return parts


def ref_theta(n: int, p: float = 0.5) -> list[float]:
    """GrOWL weights / lambda1: linear from 2 down to 1 + 1/pc over the first pc = ceil(p n), then 1."""
    pc = math.ceil(p * n)
    return [1 + (pc - i) / pc if i < pc else 1.0 for i in range(n)]


def ref_penalty(m: nn.Module, gs: GroupSet, name: str, strength: float, eps: float = EPS, size: str = "none",
                **kw) -> torch.Tensor:
    """sum over parts of lambda * w * sqrt(||g||^2 + eps), GrOWL weights by sorted rank."""
    if name == "l1bn":
        gammas = {s.module: set() for g in gs if g.prunable for s in g.bn_slices}
        for g in gs:
            if g.prunable:
                for s in g.bn_slices:
                    gammas[s.module].update(s.indices)
        return strength * sum(m.get_submodule(k).weight[i].abs() for k, ix in gammas.items() for i in ix)
    total = torch.zeros(())
    for vecs in ref_parts(m, gs, name, **kw):
        norms = [torch.sqrt((v * v).sum() + eps) for v in vecs]
        w = math.sqrt(vecs[0].numel()) if size == "sqrt" else 1.0
        if name in ("growl", "oicsr_growl"):
            norms = sorted(norms, key=lambda t: -t.item())
            theta = ref_theta(len(norms))
            total = total + sum(strength * w * t * n for t, n in zip(theta, norms))
        else:
            total = total + sum(strength * w * n for n in norms)
    return total


def grads_of(m: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter's gradient (zeros where None)."""
    return {k: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for k, p in m.named_parameters()}


def reg_grads(reg, m: nn.Module) -> dict[str, torch.Tensor]:
    """The gradient the regulariser alone contributes (penalty autograd + after_backward)."""
    m.zero_grad(set_to_none=True)
    pen = reg.penalty(m)
    if pen is not None:
        pen.backward()
    reg.after_backward(m)
    return grads_of(m)


def ref_grads(m: nn.Module, gs: GroupSet, name: str, strength: float, **kw) -> dict[str, torch.Tensor]:
    """Autograd gradient of the slow reference penalty."""
    m.zero_grad(set_to_none=True)
    ref_penalty(m, gs, name, strength, **kw).backward()
    return grads_of(m)


def assert_grads_close(a: dict, b: dict) -> None:
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-7, msg=lambda s: f"{k}: {s}")


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
        assert make_regularizer(a, gs, 1e-2, lambda2_ratio=0.0).value(m) == pytest.approx(make_regularizer(b, gs, 1e-2).value(m))
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


def pav_nonincreasing(z: list[float]) -> list[float]:
    """Pool-adjacent-violators, written plainly."""
    blocks: list[list[float]] = []
    for v in z:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    return [s / c for s, c in blocks for _ in range(int(c))]


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
@pytest.mark.parametrize("kw", [{}, {"grad": "autograd"}, {"eps": 0.0}, {"eps": 0.0, "grad": "autograd"}, {"mode": "proximal"}])
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
    m2, _, _ = build("two_layer", seed=5)
    assert reg.value(m2) == pytest.approx(ref_penalty(m2, gs, "oicsr_gl", 1e-2).item(), rel=1e-5)


def test_strength_can_change_between_steps_and_repr_is_readable() -> None:
    m, gs, _ = build("two_layer")
    reg = make_regularizer("oicsr_growl", gs, 1e-2, mode="proximal", p=2)
    v = reg.value(m)
    reg.strength = 2e-2
    assert reg.value(m) == pytest.approx(2 * v)
    r = repr(reg)
    assert "oicsr_growl" in r and "strength=0.02" in r and "mode='proximal'" in r and "p=2" in r
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
    for name in NAMES:
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
