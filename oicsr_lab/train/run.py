"""Build a complete training run (data, model, groups, regulariser, trainer) from a config.

``build_checked``/``check_model`` (from :mod:`oicsr_lab.models`) stay importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..data import DatasetSplits, load_dataset
from ..models import build_checked, check_model
from .config import TrainConfig
from .trainer import Trainer, resolve_device

__all__ = ["build_checked", "build_trainer", "check_model", "make_regularizer_for"]


def make_regularizer_for(model: torch.nn.Module, config: TrainConfig, data: DatasetSplits):
    """The regulariser named by ``config.reg`` over ``model``'s out-in-channel groups (None for l2)."""
    from ..groups import find_groups
    from ..regularizers import get_regularizer, make_regularizer

    if get_regularizer(config.reg).weight_decay_only:
        return None  # plain weight decay, applied by the optimizer

    was_training = model.training
    groups = find_groups(model.eval(), data.example_input().to(next(model.parameters()).device))
    model.train(was_training)
    return make_regularizer(config.reg, groups, config.strength, **config.reg_options)


def build_trainer(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    data: DatasetSplits | None = None,
    data_dir: str | Path | None = None,
    device: str = "auto",
    show_progress: bool | None = None,
    **kwargs: Any,
) -> Trainer:
    """Data + seeded model + regulariser + Trainer for ``config`` (the CLI's and notebooks' entry point)."""
    config.validate()
    check_model(config.model, config.width)  # fail fast, before decoding any data
    data = data if data is not None else load_dataset(config.dataset, root=data_dir)
    torch.manual_seed(config.seed)
    model = build_checked(config.model, num_classes=data.num_classes, width=config.width)
    reg = make_regularizer_for(model, config, data)
    return Trainer(model, data, config, out_dir=out_dir, regularizer=reg, device=resolve_device(device),
                   show_progress=show_progress, **kwargs)
