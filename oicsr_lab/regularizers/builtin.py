"""The six regularisers of the OICSR paper's comparison, registered in menu order (see :mod:`.registry`).

``l2`` (weight decay only), ``gl`` (separated group lasso), ``l1bn`` (Network Slimming), ``oicsr_gl``
(group lasso on whole out-in-channels, eq. 4), ``growl`` and ``oicsr_growl`` (their rank-weighted
forms). The penalties themselves are in :mod:`oicsr_lab.regularizers` (module docstring) and
:mod:`.core`; each entry here only says which channel vectors are penalised (:mod:`.index_plan`,
imported when a regulariser is built, so the registry itself loads without torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import RegularizerSpec, register

if TYPE_CHECKING:  # pragma: no cover - typing only (the registry imports without torch)
    from ..groups.types import ChannelGroup
    from .index_plan import PartSpec
    from .options import Options


@register
class WeightDecayOnly(RegularizerSpec):
    name, label, own_criterion, weight_decay_only = "l2", "L2", "out", True
    summary = "no structured penalty: weight decay only (the dense baseline)"
    reference = "weight decay (the optimizer's mu)"


@register
class GroupLasso(RegularizerSpec):
    name, label, own_criterion = "gl", "GL", "out"
    summary = "sum of the L2 norms of each producer layer's filters (separated group lasso)"
    reference = "Wen et al., Learning Structured Sparsity in Deep Neural Networks, NIPS 2016"

    @classmethod
    def parts(cls, groups: list[ChannelGroup], options: Options) -> list[PartSpec]:
        from .index_plan import separated_parts

        return separated_parts(groups, options.include_bn, options.include_bias)


@register
class L1BN(RegularizerSpec):
    name, label, own_criterion, eps = "l1bn", "L1-BN", "bn_gamma", 0.0
    summary = "sum of |gamma| of the groups' BatchNorm scales"
    reference = "Liu et al., Learning Efficient Convolutional Networks through Network Slimming, ICCV 2017"

    @classmethod
    def parts(cls, groups: list[ChannelGroup], options: Options) -> list[PartSpec]:
        from .index_plan import bn_parts

        return bn_parts(groups)


@register
class OICSRGroupLasso(RegularizerSpec):
    name, label, own_criterion = "oicsr_gl", "OICSR-GL", "out_in"
    summary = "group lasso on whole out-in-channels: filters, consumer columns (and BN) of each channel (eq. 4)"
    reference = "Li et al., OICSR: Out-In-Channel Sparsity Regularization, CVPR 2019"

    @classmethod
    def parts(cls, groups: list[ChannelGroup], options: Options) -> list[PartSpec]:
        from .index_plan import out_in_parts

        return out_in_parts(groups, options.include_bn, options.include_bias)


@register
class GrOWL(GroupLasso):
    name, label, ordered, own_criterion = "growl", "GrOWL", True, "out"
    summary = "group ordered weighted lasso on each producer layer's filter norms"
    reference = "Zhang et al., Learning to Share: Simultaneous Parameter Tying and Sparsification, ICLR 2018"


@register
class OICSRGrOWL(OICSRGroupLasso):
    name, label, ordered, own_criterion = "oicsr_growl", "OICSR-GrOWL", True, "out_in"
    summary = "GrOWL on the out-in-channel norms of each group"
    reference = "Li et al., OICSR, CVPR 2019 (with Zhang et al.'s GrOWL)"
