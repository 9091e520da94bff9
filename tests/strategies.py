"""Hypothesis strategies: random small conv-net specs (plain data) and the generic module that follows them.

A spec is a dict ``{"in_ch", "size", "blocks", "head", "seed"}``; ``blocks`` is a list of tuples
(``("conv", out, k, stride, bias, bn, act)``, ``("dw", k, bn, act)``, ``("grouped", out, groups, bn,
act)``, ``("xres", groups, per_group, out, bn, stride)`` (a ResNeXt/RegNet bottleneck around a grouped
3x3), ``("res", hidden, out, bn)``, ``("cat", a, b)``, ``("dense", growth)``, ``("se", r)``,
``("pool",)``, ``("bad", kind)``) and ``head`` is ``(kind, hidden, bn1d)`` with kind ``flatten``
(Linear over a flattened spatial map) or ``gap`` (global average pooling first). ``("bad", kind)``
blocks use an operation the channel tracer does not support (channel chunking/slicing, a channel
shuffle, a Linear over a 4-D map, data-dependent control flow), so ``find_groups`` must reject
them with :class:`~oicsr_lab.errors.UnsupportedModelError` (or, with ``unsupported="pin"``, pin the
channels around them). :func:`build_net` turns a spec into
an ``nn.Module`` whose forward follows the spec with static control flow (torch.fx traces it).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import strategies as st

BAD_KINDS = ("chunk", "slice", "shuffle", "linear4d", "data_dependent")
NUM_CLASSES = 3


def _act(on: bool) -> nn.Module:
    return nn.ReLU() if on else nn.Identity()


class ConvUnit(nn.Module):
    """Conv2d [+ BatchNorm2d] [+ ReLU]."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, bias: bool = False,
                 bn: bool = True, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.act = _act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Residual(nn.Module):
    """``relu(shortcut(x) + bn(conv(relu(bn(conv(x))))))``; a 1x1 projection shortcut when widths differ."""

    def __init__(self, cin: int, hidden: int, cout: int, bn: bool) -> None:
        super().__init__()
        self.a = ConvUnit(cin, hidden, 3, bn=bn)
        self.b = ConvUnit(hidden, cout, 3, bn=bn, act=False)
        self.short = ConvUnit(cin, cout, 1, bn=bn, act=False) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.short(x) + self.b(self.a(x)))


class GroupedBottleneck(nn.Module):
    """ResNeXt/RegNet block: ``relu(short(x) + bn(1x1(relu(bn(grouped 3x3(relu(bn(1x1(x)))))))))``."""

    def __init__(self, cin: int, groups: int, per_group: int, cout: int, bn: bool, stride: int) -> None:
        super().__init__()
        width = groups * per_group
        self.a = ConvUnit(cin, width, 1, bn=bn)
        self.b = ConvUnit(width, width, 3, stride, groups=groups, bn=bn)
        self.c = ConvUnit(width, cout, 1, bn=bn, act=False)
        same = cin == cout and stride == 1
        self.short = nn.Identity() if same else ConvUnit(cin, cout, 1, stride, bn=bn, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.short(x) + self.c(self.b(self.a(x))))


class Concat(nn.Module):
    """``torch.cat([branch_a(x), branch_b(x)], 1)`` (Inception-like)."""

    def __init__(self, cin: int, a: int, b: int) -> None:
        super().__init__()
        self.a = ConvUnit(cin, a, 1)
        self.b = ConvUnit(cin, b, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x)], dim=1)


class Dense(nn.Module):
    """``torch.cat([x, conv(x)], 1)`` (DenseNet-like)."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.unit = ConvUnit(cin, growth, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.unit(x)], 1)


class SEGate(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(fc2(relu(fc1(mean(x)))))`` with 1x1 convs."""

    def __init__(self, c: int, r: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, r, 1)
        self.fc2 = nn.Conv2d(r, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class Bad(nn.Module):
    """An operation the channel tracer must reject (see ``BAD_KINDS``)."""

    def __init__(self, kind: str, c: int, size: int) -> None:
        super().__init__()
        self.kind = kind
        self.lin = nn.Linear(size, size) if kind == "linear4d" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "chunk":
            a, b = x.chunk(2, dim=1)
            return torch.cat([b, a], 1)
        if self.kind == "slice":
            return torch.cat([x[:, 1:], x[:, :1]], 1)
        if self.kind == "shuffle":
            n, c, h, w = x.shape
            return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        if self.kind == "linear4d":
            return self.lin(x)
        if x.sum() > 0:  # data_dependent: torch.fx cannot trace this branch
            return x
        return -x


class Head(nn.Module):
    """Flatten (of the spatial map, or after global pooling) -> [Linear -> BN1d -> ReLU] -> Linear."""

    def __init__(self, kind: str, c: int, size: int, hidden: int | None, bn1d: bool) -> None:
        super().__init__()
        self.gap = kind == "gap"
        feats = c if self.gap else c * size * size
        self.hidden = nn.Linear(feats, hidden) if hidden else None
        self.bn = nn.BatchNorm1d(hidden) if hidden and bn1d else None
        self.fc = nn.Linear(hidden or feats, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gap:
            x = F.adaptive_avg_pool2d(x, 1)
        x = torch.flatten(x, 1)
        if self.hidden is not None:
            x = self.hidden(x)
            if self.bn is not None:
                x = self.bn(x)
            x = F.relu(x)
        return self.fc(x)


class SpecNet(nn.Module):
    """A network that applies the spec's blocks in order, then its head."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        c, size = spec["in_ch"], spec["size"]
        blocks: list[nn.Module] = []
        for b in spec["blocks"]:
            kind = b[0]
            if kind == "conv":
                _, out, k, stride, bias, bn, act = b
                blocks.append(ConvUnit(c, out, k, stride, bias=bias, bn=bn, act=act))
                c, size = out, (size + 2 * (k // 2) - k) // stride + 1
            elif kind == "dw":
                _, k, bn, act = b
                blocks.append(ConvUnit(c, c, k, groups=c, bn=bn, act=act))
            elif kind == "grouped":
                _, out, groups, bn, act = b
                blocks.append(ConvUnit(c, out, 3, groups=groups, bn=bn, act=act))
                c = out
            elif kind == "xres":
                _, groups, per_group, out, bn, stride = b
                blocks.append(GroupedBottleneck(c, groups, per_group, out, bn, stride))
                c, size = out, (size - 1) // stride + 1
            elif kind == "res":
                _, hidden, out, bn = b
                blocks.append(Residual(c, hidden, out, bn))
                c = out
            elif kind == "cat":
                blocks.append(Concat(c, b[1], b[2]))
                c = b[1] + b[2]
            elif kind == "dense":
                blocks.append(Dense(c, b[1]))
                c = c + b[1]
            elif kind == "se":
                blocks.append(SEGate(c, b[1]))
            elif kind == "pool":
                blocks.append(nn.MaxPool2d(2))
                size //= 2
            elif kind == "bad":
                blocks.append(Bad(b[1], c, size))
            else:  # pragma: no cover - the strategy only draws the kinds above
                raise ValueError(kind)
        self.blocks = nn.ModuleList(blocks)
        self.head = Head(spec["head"][0], c, size, spec["head"][1], spec["head"][2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def build_net(spec: dict[str, Any]) -> SpecNet:
    """The module of ``spec``, seeded, in eval mode, with random BatchNorm statistics (channels differ)."""
    from oicsr_lab.groups.verify import randomize_bn

    torch.manual_seed(spec["seed"])
    return randomize_bn(SpecNet(spec), seed=spec["seed"]).eval()


def example_input(spec: dict[str, Any], batch: int = 2) -> torch.Tensor:
    """A seeded random input batch for ``spec``."""
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    return torch.randn(batch, spec["in_ch"], spec["size"], spec["size"], generator=gen)


def pinnable(spec: dict[str, Any]) -> bool:
    """True when ``find_groups(..., unsupported="pin")`` must handle the spec (torch.fx can trace it)."""
    return not any(b[0] == "bad" and b[1] == "data_dependent" for b in spec["blocks"])


def has_bad(spec: dict[str, Any]) -> bool:
    """True when the spec holds an operation the tracer must reject."""
    return any(b[0] == "bad" for b in spec["blocks"])


def _divisors(n: int) -> list[int]:
    return [d for d in range(2, n + 1) if n % d == 0]


@st.composite
def net_specs(draw: st.DrawFn, max_blocks: int = 5, bad: bool = True, max_width: int = 8) -> dict[str, Any]:
    """A random valid spec: chains with BN/ReLU, residuals, concatenations, depthwise/grouped convs, SE gates."""
    in_ch = draw(st.integers(1, 3))
    size0 = size = draw(st.sampled_from([4, 5, 6, 8]))
    c = in_ch
    blocks: list[tuple] = []
    width = st.integers(1, max_width) | st.integers(4, max_width)
    kinds = ["conv", "conv", "dw", "grouped", "xres", "res", "cat", "dense", "se", "pool"] + (["bad"] if bad else [])
    for _ in range(draw(st.integers(1, max_blocks))):
        kind = draw(st.sampled_from(kinds))
        if kind == "conv":
            k = draw(st.sampled_from([1, 3]))
            stride = draw(st.sampled_from([1, 1, 2])) if size >= 4 else 1
            blocks.append(("conv", draw(width), k, stride, draw(st.booleans()), draw(st.booleans()),
                           draw(st.booleans())))
            c, size = blocks[-1][1], (size + 2 * (k // 2) - k) // stride + 1
        elif kind == "dw" and c > 1:
            blocks.append(("dw", draw(st.sampled_from([1, 3])), draw(st.booleans()), draw(st.booleans())))
        elif kind == "grouped" and _divisors(c):
            groups = draw(st.sampled_from(_divisors(c)))
            out = groups * draw(st.integers(1, 3))
            if groups == c == out:  # that would be depthwise; make it a real grouped conv
                out = 2 * c
            blocks.append(("grouped", out, groups, draw(st.booleans()), draw(st.booleans())))
            c = out
        elif kind == "xres":
            groups, per_group = draw(st.integers(2, 4)), draw(st.integers(1, 3))
            stride = draw(st.sampled_from([1, 1, 2])) if size >= 4 else 1
            out = draw(st.sampled_from([c, draw(width)]))
            blocks.append(("xres", groups, per_group, out, draw(st.booleans()), stride))
            c, size = out, (size - 1) // stride + 1
        elif kind == "res":
            out = draw(st.sampled_from([c, c, draw(width)]))
            blocks.append(("res", draw(width), out, draw(st.booleans())))
            c = out
        elif kind == "cat":
            blocks.append(("cat", draw(width), draw(width)))
            c = blocks[-1][1] + blocks[-1][2]
        elif kind == "dense":
            blocks.append(("dense", draw(st.integers(1, 4))))
            c += blocks[-1][1]
        elif kind == "se":
            blocks.append(("se", draw(st.integers(1, 4))))
        elif kind == "pool" and size >= 2:
            blocks.append(("pool",))
            size //= 2
        elif kind == "bad":
            options = [k for k in BAD_KINDS
                       if not (k in ("chunk", "shuffle") and c % 2) and not (k == "slice" and c < 2)]
            blocks.append(("bad", draw(st.sampled_from(options))))
    hidden = draw(st.one_of(st.none(), st.integers(1, 6)))
    head = (draw(st.sampled_from(["flatten", "gap"])), hidden, bool(hidden) and draw(st.booleans()))
    return {"in_ch": in_ch, "size": size0, "blocks": blocks, "head": head, "seed": draw(st.integers(0, 2**16))}
