"""Experiments of the paper: cached training runs, FLOPs sweeps (Figure 4), energies (Figure 3), Table 1, reproduce.

    from oicsr_lab.experiments import reproduce
    summary = reproduce("ci", "reports/ci")        # or: oicsr-lab reproduce --preset ci

Modules: :mod:`.spec` (what each preset runs, strengths and why), :mod:`.runs` (hash-keyed
cache with DONE markers), :mod:`.sweep`, :mod:`.pipeline`, :mod:`.table1`, :mod:`.report`,
:mod:`.reproduce`, :mod:`.cli`.
"""

from .reproduce import reproduce
from .runs import TrainedRun, config_hash, data_identity, train_cached
from .spec import REPRODUCE, STRENGTHS, build_spec
from .sweep import channel_energies, criteria_for, sweep_model
from .table1 import PUBLISHED, compute_table1

__all__ = [
    "reproduce", "build_spec", "REPRODUCE", "STRENGTHS", "train_cached", "TrainedRun", "config_hash", "data_identity",
    "sweep_model", "channel_energies", "criteria_for", "compute_table1", "PUBLISHED",
]
