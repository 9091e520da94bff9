"""Small test nets with hand-built channel groups, and slow reference formulas (one loop per
channel, written independently of oicsr_lab.regularizers) for tests/test_regularizers.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from oicsr_lab.groups.types import ChannelGroup, GroupSet, Slice

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
        ChannelGroup("b1.conv1", 4,
                     (Slice("b1.conv1", "out", r(4)), Slice("b1.bn1", "bn", r(4)), Slice("b1.conv2", "in", r(4)))),
        ChannelGroup("b2.conv1", 5,
                     (Slice("b2.conv1", "out", r(5)), Slice("b2.bn1", "bn", r(5)), Slice("b2.conv2", "in", r(5)))),
        ChannelGroup("res1", 8, (Slice("stem", "out", r(8)), Slice("bn", "bn", r(8)), Slice("b1.conv2", "out", r(8)),
                                 Slice("b1.bn2", "bn", r(8)), Slice("b1.conv1", "in", r(8)),
                                 Slice("b2.conv1", "in", r(8)),
                                 Slice("b2.sc.0", "in", r(8))), prunable=False, coupled=True),
        ChannelGroup("res2", 6,
                     (Slice("b2.conv2", "out", r(6)), Slice("b2.bn2", "bn", r(6)), Slice("b2.sc.0", "out", r(6)),
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
