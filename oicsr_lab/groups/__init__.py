"""Out-in-channel groups (the paper's Figure 1 object) found by tracing a model with torch.fx.

``find_groups(model, example_input, allow_coupled=False) -> GroupSet``. Channel ``i`` of a group
owns, in every module it touches, ``slice.indices[i]``:

* ``out`` -- a Conv2d/Linear producing the channel (``weight[idx]``, ``bias[idx]``);
* ``bn``  -- a BatchNorm the channel passes through (also BNs after a concat);
* ``dw``  -- a depthwise Conv2d (``groups == in == out``) the channel passes through;
* ``in``  -- a Conv2d/Linear consuming it (``weight[:, idx]``; a Linear after ``flatten`` of a
  ``C x H x W`` map owns columns ``[idx*block, (idx+1)*block)`` with ``block = H*W``).
  A concat feeding one consumer twice gives that consumer two ``in`` slices.

Residual additions (and concatenation along non-channel dims) unify their operands'
channels into one *coupled* group; an SE gate ``x * sigmoid(fc(...))`` couples the gate's
producer with ``x`` (coupled, still prunable). Not prunable, with ``reason`` set: the
network input channels, channels reaching the graph output, residual-coupled channels and
the input of a residual block with a projection shortcut (unless ``allow_coupled=True``),
grouped convs (``1 < groups``, not depthwise) fed by a constant, channels of modules
called more than once or with tied weights, channels mixed by a softmax over dim 1. Grouped
convs are pruned by whole conv groups (:mod:`.modules`): one channel of the group = one conv
group, its inputs and its outputs. Any op
the rules cannot map raises ``UnsupportedModelError`` naming the node and the reason (see
:mod:`.rules` for the supported ops), or, with ``unsupported="pin"``, pins its channels as not
prunable. ``describe``/``groups_table`` give readable views, ``explain(model, x)`` says which
groups are prunable and why not (also for refused models); :mod:`.verify` checks groups numerically.
"""

from __future__ import annotations

from .fit import check_groups_fit
from .report import describe, explain, group_macs, groups_table
from .tracer import find_groups
from .types import ChannelGroup, GroupSet, Slice, SliceKind

__all__ = ["find_groups", "describe", "explain", "check_groups_fit", "groups_table", "group_macs", "ChannelGroup",
           "GroupSet", "Slice", "SliceKind"]
