"""Channel-importance criteria as objects in one registry (one source of truth for their names).

    from oicsr_lab.criteria import names, score_channels, calibration_data
    names()                          # every registered criterion, weight-only first
    score_channels(model, groups, "l1")                                         # weight-only
    calib = calibration_data(data, "train", batches=4)                          # never the test split
    score_channels(model, groups, "taylor", calibration=calib)                  # data-driven

Weight-only (:mod:`.weights`): ``out_in`` (eq. 5), ``out``, ``in``, ``l1``, ``bn_gamma``, ``fpgm``,
``random``. Data-driven: ``taylor`` (:mod:`.taylor`), ``mean_activation``, ``apoz``, ``hrank``
(:mod:`.activations`). Every criterion scores the channels of the groups
:func:`~oicsr_lab.groups.find_groups` returns, and every normalisation applies
(:mod:`.base`). ``criteria_table()`` lists names, families and references for menus and docs.
"""

# registration order = menu order: weight-only criteria first, then the data-driven ones
from . import weights  # noqa: F401,I001
from . import taylor  # noqa: F401,I001
from . import activations  # noqa: F401,I001
from .base import (
    FAMILIES,
    NORMALIZATIONS,
    REGISTRY,
    ChannelScores,
    Criterion,
    criteria_table,
    get_criterion,
    label,
    names,
    normalize_scores,
    register,
    score_channels,
)
from .calibration import SPLITS, Calibration, calibration_data

__all__ = ["Calibration", "ChannelScores", "Criterion", "FAMILIES", "NORMALIZATIONS", "REGISTRY", "SPLITS",
           "calibration_data", "criteria_table", "get_criterion", "label", "names", "normalize_scores", "register",
           "score_channels"]
