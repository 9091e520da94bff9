"""Training: config and presets, the Trainer, checkpoints, DDP."""

from .checkpoint import load_checkpoint, load_trained, save_checkpoint
from .config import PRESETS, TrainConfig, preset
from .run import build_trainer, make_regularizer_for
from .threads import auto_threads, set_threads
from .trainer import Trainer, evaluate, lr_lambda, resolve_device

__all__ = [
    "PRESETS", "TrainConfig", "Trainer", "build_trainer", "evaluate", "load_checkpoint", "load_trained", "lr_lambda",
    "make_regularizer_for", "preset", "resolve_device", "save_checkpoint", "set_threads", "auto_threads",
]
