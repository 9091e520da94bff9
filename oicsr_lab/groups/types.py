"""Plain-data description of out-in-channel groups (the paper's Figure 1 object).

A *group* is a set of channels that must be kept or removed together. Channel ``i`` of a
group owns, in every layer the group touches, exactly one index given by the slice's
``indices[i]``:

* ``kind="out"``  -- producer Conv2d/Linear: ``weight[idx]`` (dim 0) and ``bias[idx]``.
* ``kind="bn"``   -- BatchNorm: ``weight/bias/running_mean/running_var[idx]``.
* ``kind="dw"``   -- depthwise Conv2d (``groups == in == out``): ``weight[idx]`` and
  ``bias[idx]``; channels pass straight through it.
* ``kind="in"``   -- consumer Conv2d (dim 1 of ``weight``) or Linear: for Linear after
  ``flatten`` channel ``idx`` owns the column block ``[idx*block, (idx+1)*block)``.

For the paper's plain pair (conv ``l`` -> BN -> ReLU -> conv ``l+1``) a group has one
``out`` slice (conv l), one ``bn`` slice and one ``in`` slice (conv l+1); the
out-in-channel ``i`` is ``W^l[i]`` concatenated with ``W^{l+1}[:, i]``.

Groups are computed once per architecture by :func:`oicsr_lab.groups.find_groups` and read
by the regularizers, the channel energy, the FLOPs counter and the pruning, so the
"out-in-channel" is the same object everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal

SliceKind = Literal["out", "bn", "dw", "in"]


@dataclass(frozen=True)
class Slice:
    """The per-channel indices one group owns inside one module."""

    module: str  # qualified name, as in ``model.get_submodule(module)``
    kind: SliceKind
    indices: tuple[int, ...]  # indices[i] = this module's index for the group's channel i
    block: int = 1  # Linear in-slices after flatten: columns per channel (H*W)

    def columns(self, i: int) -> range:
        """Weight indices (dim 1 for ``in``, dim 0 otherwise) owned by channel ``i``."""
        start = self.indices[i] * self.block
        return range(start, start + self.block)


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that are pruned together, with every slice they own."""

    name: str  # readable id, e.g. "layer3.8.conv1"
    size: int  # number of channels
    slices: tuple[Slice, ...]
    prunable: bool = True
    coupled: bool = False  # True when a residual add / mul couples several producers
    reason: str = ""  # why the group is not prunable, for describe()

    def of_kind(self, *kinds: SliceKind) -> list[Slice]:
        """The slices of the given kinds, in order."""
        return [s for s in self.slices if s.kind in kinds]

    @property
    def out_slices(self) -> list[Slice]:
        return self.of_kind("out")

    @property
    def in_slices(self) -> list[Slice]:
        return self.of_kind("in")

    @property
    def bn_slices(self) -> list[Slice]:
        return self.of_kind("bn")

    @property
    def dw_slices(self) -> list[Slice]:
        return self.of_kind("dw")


@dataclass
class GroupSet:
    """All channel groups of one architecture, plus what the trace recorded."""

    groups: list[ChannelGroup]
    # module name -> {"type": cls name, "in_shape": (C,H,W) or (F,), "out_shape": ...}
    module_info: dict[str, dict] = field(default_factory=dict)
    # unsupported nodes that find_groups(..., unsupported="pin") pinned: "node ...: why"
    pinned: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[ChannelGroup]:
        return iter(self.groups)

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, key: int | str) -> ChannelGroup:
        if isinstance(key, int):
            return self.groups[key]
        for g in self.groups:
            if g.name == key:
                return g
        raise KeyError(f"no group named {key!r}; known: {[g.name for g in self.groups][:10]}...")

    @property
    def prunable(self) -> list[ChannelGroup]:
        """The groups Algorithm 1 may prune."""
        return [g for g in self.groups if g.prunable]
