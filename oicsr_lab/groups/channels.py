"""Channel-level union-find: channel ids, unions, slice entries and flags -> ChannelGroups.

Every producer (the network input, a Conv2d or Linear) mints one integer id per output
channel. The propagation rules (:mod:`.rules`) move these ids along the graph, *union* the
ids that must be removed together (residual add, SE gate mul, weight sharing) and *record*
which module index each id owns (``out``/``bn``/``dw``/``in`` entries). :meth:`ChannelGraph.build`
turns the connected components into :class:`ChannelGroup` objects: components with the same
signature (the same (module, kind, block) slots) become one group, channels ordered by the
first producer's index.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedModelError
from .types import ChannelGroup, Slice

# flag -> reason template; "add", "block_input" and "merge" block pruning only without allow_coupled
_REASONS = {
    "input": "carries the network input channels ({})",
    "output": "reaches the model output ({})",
    "grouped": "grouped convolution {}, so its conv groups cannot be removed",
    "shared": "weight sharing: {}",
    "mixed": "channels are mixed by {} (softmax over the channel dim)",
    "broadcast": "a single channel is broadcast across channels at {}",
    "add": "coupled by a residual addition at {}; pass allow_coupled=True to prune it",
    "block_input": "input of a residual block (forks into both branches of the addition at {}); "
    "pass allow_coupled=True to prune it",
    "merge": "coupled by a concatenation along a non-channel dim at {}; pass allow_coupled=True to prune it",
    "unsupported": "passes an operation the tracer cannot map: {}",
}
_COUPLING = ("add", "merge", "mul")


@dataclass
class Chan:
    """Channel ids carried along dim 1 of a tensor; ``block`` elements of dim 1 per id after flatten."""

    ids: np.ndarray
    block: int = 1

    def __len__(self) -> int:
        return len(self.ids)


class ChannelGraph:
    """Collects channel ids, unions, per-module entries and flags while the graph is walked."""

    def __init__(self) -> None:
        self.n = 0
        self._ua: list[np.ndarray] = []
        self._ub: list[np.ndarray] = []
        self._keys: dict[tuple[str, str, int], int] = {}
        self._rows: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._first: dict[tuple[str, str], tuple[np.ndarray, int]] = {}
        self._flags: list[tuple[np.ndarray, str, str]] = []

    def new(self, count: int) -> np.ndarray:
        """Mint ``count`` fresh channel ids for a producer's output channels."""
        ids = np.arange(self.n, self.n + count, dtype=np.int64)
        self.n += count
        return ids

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        """Declare ``a[i]`` and ``b[i]`` the same channel (they are removed together)."""
        if len(a) != len(b):
            raise AssertionError(f"union of {len(a)} and {len(b)} channels")
        diff = a != b
        if diff.any():
            self._ua.append(a[diff])
            self._ub.append(b[diff])

    def flag(self, ids: np.ndarray, flag: str, detail: str) -> None:
        """Attach a flag (why a group is coupled or not prunable) to the components of ``ids``."""
        self._flags.append((np.asarray(ids, dtype=np.int64), flag, detail))

    def record(self, module: str, kind: str, ids: np.ndarray, block: int = 1, owner: str | None = None) -> None:
        """Record that channel ``ids[j]`` owns index ``j`` of ``module`` as a ``kind`` slice.

        ``owner`` is the module whose weight tensor ``module`` shares (default: itself). A second
        record for the same owner (a module called twice, or tied weights) unifies index ``j`` of
        both records, so every index still belongs to one channel, and flags the weight sharing.
        """
        owner = owner or module
        slot = (owner, kind)
        if slot in self._first:
            prev, prev_block = self._first[slot]
            if len(prev) != len(ids) or prev_block != block:
                raise UnsupportedModelError(
                    f"module '{module}' shares weights with '{owner}' (or is called again) with a different "
                    "channel layout; weight sharing is only supported with identical input shapes"
                )
            self.union(prev, ids)
            what = "is called more than once" if owner == module else f"shares its weight with '{owner}'"
            self.flag(ids, "shared", f"'{module}' {what}")
            if owner == module:
                return  # the same module again: its rows are already recorded
        else:
            self._first[slot] = (ids, block)
        key = self._keys.setdefault((module, kind, block), len(self._keys))
        self._rows.append((key, ids, np.arange(len(ids), dtype=np.int64)))

    def labels(self) -> np.ndarray:
        """Component label (smallest member id) of every channel id: vectorised hook-and-compress."""
        parent = np.arange(self.n, dtype=np.int64)
        if not self._ua:
            return parent
        u = np.concatenate(self._ua)
        v = np.concatenate(self._ub)
        while True:
            pu, pv = parent[u], parent[v]
            if np.array_equal(pu, pv):
                return parent
            lo, hi = np.minimum(pu, pv), np.maximum(pu, pv)
            np.minimum.at(parent, hi, lo)  # hook the larger root under the smaller one
            while True:
                nxt = parent[parent]
                if np.array_equal(nxt, parent):
                    break
                parent = nxt

    def build(self, allow_coupled: bool = False) -> list[ChannelGroup]:
        """Turn the connected components into named ChannelGroups with prunable/coupled/reason."""
        labels = self.labels()
        if not self._rows:
            return []
        key_of = {v: k for k, v in self._keys.items()}
        key = np.concatenate([np.full(len(ids), k, np.int64) for k, ids, _ in self._rows])
        comp = labels[np.concatenate([ids for _, ids, _ in self._rows])]
        idx = np.concatenate([ix for _, _, ix in self._rows])
        order = np.lexsort((idx, key, comp))
        comp, key, idx = comp[order], key[order], idx[order]
        fresh = np.r_[True, (comp[1:] != comp[:-1]) | (key[1:] != key[:-1]) | (idx[1:] != idx[:-1])]
        comp, key, idx = comp[fresh], key[fresh], idx[fresh]
        # occurrence number of a (module, kind) inside one component: cat([x, x]) -> two slices
        new_run = np.ones(len(comp), bool)
        new_run[1:] = (comp[1:] != comp[:-1]) | (key[1:] != key[:-1])
        run_start = np.maximum.accumulate(np.where(new_run, np.arange(len(comp)), 0))
        occ = np.arange(len(comp)) - run_start
        slot_code = key * (int(occ.max()) + 1) + occ
        slots, slot = np.unique(slot_code, return_inverse=True)
        slot_key, slot_occ = slots // (int(occ.max()) + 1), slots % (int(occ.max()) + 1)
        # signature of each component = its slot sequence; equal signatures -> one group
        starts = np.flatnonzero(np.r_[True, comp[1:] != comp[:-1]])
        widths = np.diff(np.r_[starts, len(comp)])
        comp_gid: dict[int, int] = {}
        raw = []
        for width in np.unique(widths).tolist():
            s0 = starts[widths == width]
            mat_rows = s0[:, None] + np.arange(width)[None, :]
            _, sig = np.unique(slot[mat_rows], axis=0, return_inverse=True)
            sig = sig.reshape(-1)
            by_sig = np.argsort(sig, kind="stable")
            bounds = np.flatnonzero(np.r_[True, sig[by_sig][1:] != sig[by_sig][:-1], True])
            for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                rows_g = mat_rows[by_sig[lo:hi]]
                slots_g = slot[rows_g[0]]
                kinds = [key_of[int(slot_key[s])][1] for s in slots_g]
                lead = kinds.index("out") if "out" in kinds else 0
                mat = idx[rows_g]
                perm = np.argsort(mat[:, lead], kind="stable")
                gid = len(raw)
                comp_gid.update(dict.fromkeys(comp[rows_g[:, 0]].tolist(), gid))
                raw.append((slots_g, lead, mat[perm]))
        flags = self._group_flags(labels, comp_gid, len(raw))
        return self._make_groups(raw, key_of, slot_key, slot_occ, flags, allow_coupled)

    def _group_flags(self, labels: np.ndarray, comp_gid: dict[int, int], n: int) -> list[dict]:
        """For each raw group: flag -> ordered list of details."""
        out: list[dict[str, list[str]]] = [defaultdict(list) for _ in range(n)]
        for ids, flag, detail in self._flags:
            for c in np.unique(labels[ids]).tolist():
                g = comp_gid.get(c)
                if g is not None and detail not in out[g][flag]:
                    out[g][flag].append(detail)
        return out

    def _make_groups(self, raw, key_of, slot_key, slot_occ, flags, allow_coupled) -> list[ChannelGroup]:
        """Name, order and label the raw groups."""
        order = sorted(range(len(raw)),
                       key=lambda g: (int(slot_key[raw[g][0][raw[g][1]]]), int(raw[g][2][0, raw[g][1]])))
        groups: list[ChannelGroup] = []
        used: dict[str, int] = {}
        for g in order:
            slots_g, lead, mat = raw[g]
            slices = []
            for j, s in enumerate(slots_g.tolist()):
                module, kind, block = key_of[int(slot_key[s])]
                slices.append(Slice(module, kind, tuple(mat[:, j].tolist()), block))
            f = flags[g]
            if slices[lead].kind == "out":
                base = slices[lead].module
            elif "input" in f:
                base = "input"
            else:
                base = f"{slices[lead].module}:{slices[lead].kind}"
            used[base] = used.get(base, 0) + 1
            name = base if used[base] == 1 else f"{base}#{used[base]}"
            reasons = []
            for flag, template in _REASONS.items():
                if flag == "block_input" and "add" in f:
                    continue  # already explained by the residual coupling
                if flag in f and not (flag in ("add", "merge", "block_input") and allow_coupled):
                    details = f[flag]
                    shown = ", ".join(details[:3]) + (f" (+{len(details) - 3} more)" if len(details) > 3 else "")
                    reasons.append(template.format(shown))
            coupled = any(flag in f for flag in _COUPLING)
            groups.append(
                ChannelGroup(
                    name=name,
                    size=mat.shape[0],
                    slices=tuple(slices),
                    prunable=not reasons,
                    coupled=coupled,
                    reason="; ".join(reasons),
                )
            )
        return groups
