"""Training configuration and the ci / quick / course / paper presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..precision import PRECISIONS
from ..regularizers.registry import names as regularizer_names

SCHEDULES = ("cosine", "step", "onecycle", "constant")
LEGACY_DEFAULTS: dict[str, Any] = {"precision": "fp32", "val_images": 0, "cutout": 0}


@dataclass
class TrainConfig:
    """Everything that defines a training run (also the key of a cached run)."""

    model: str = "resnet20"
    width: float = 1.0
    dataset: str = "cifar10-sample"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = True
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    cutout: int = 0  # side (pixels) of the square Cutout zeroes in each training image; 0 = none
    seed: int = 0
    train_subset: int | None = None  # use only this many training images
    test_subset: int | None = None
    reg: str = "l2"  # a name of the regulariser registry (oicsr_lab.regularizers.names())
    strength: float = 0.0
    reg_options: dict[str, Any] = field(default_factory=dict)
    channels_last: bool = True
    precision: str = "fp32"  # fp32 | bf16 | auto: autocast of the forward pass (oicsr_lab.precision)
    val_images: int = 0  # class-balanced training images held out for choices (DatasetSplits.with_validation)

    def validate(self) -> "TrainConfig":
        """Raise ConfigError for values no run could use; return self."""
        def bad(what: str, fix: str) -> None:
            raise ConfigError(f"{what}; {fix}")

        if not isinstance(self.epochs, int) or self.epochs < 1:
            bad(f"epochs must be a positive integer, got {self.epochs!r}", "pass --epochs 1 or more")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            bad(f"batch_size must be a positive integer, got {self.batch_size!r}", "pass --batch-size 1 or more")
        for name in ("lr", "weight_decay", "momentum", "label_smoothing", "strength", "warmup_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                bad(f"{name} must be a non-negative number (and finite), got {v!r}",
                    f"pass a value >= 0 for --{name.replace('_', '-')}")
        for name in ("train_subset", "test_subset"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                bad(f"{name} must be a positive number of images, got {v!r}",
                    f"pass --{name.replace('_', '-')} 1 or more")
        v = self.cutout
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            bad(f"cutout must be a whole number of pixels >= 0, got {v!r}", "pass --cutout 0 (none) or e.g. 16")
        if self.precision not in PRECISIONS:
            bad(f"unknown precision {self.precision!r}", f"choose one of {', '.join(PRECISIONS)}")
        v = self.val_images
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            bad(f"val_images must be a whole number >= 0, got {v!r}", "pass --val-images 0 (none) or e.g. 5000")
        if self.schedule not in SCHEDULES:
            bad(f"unknown schedule {self.schedule!r}", f"choose one of {', '.join(SCHEDULES)}")
        if self.reg not in regularizer_names():  # the registry (oicsr_lab.regularizers.registry)
            bad(f"unknown regularizer {self.reg!r}", f"choose one of {', '.join(regularizer_names())}")
        w = self.width
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            bad(f"width must be > 0 and finite, got {w!r}", "pass e.g. --width 0.5")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON-serialisable; also the run-cache key).

        Fields added after runs were cached are left out while they hold the value every earlier
        run had (:data:`LEGACY_DEFAULTS`), so those runs keep their cache keys.
        """
        d = dataclasses.asdict(self)
        for key, old in LEGACY_DEFAULTS.items():
            if d[key] == old:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ConfigError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown training option(s) {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


# Presets sized for a 2-core laptop CPU (ResNet-20 trains at ~270 img/s in fp32 and ~480 img/s in
# bf16 autocast on one thread of a CPU with native bf16). Every preset holds out a class-balanced
# validation part of the training split (``val_images``) on which choices are made; the test
# split is only for reported numbers.
PRESETS: dict[str, dict[str, Any]] = {
    # seconds: a narrow ResNet-20 on 1,000 sample images, for CI and smoke tests
    "ci": dict(model="resnet20", width=0.25, dataset="cifar10-sample", epochs=2, batch_size=64,
               lr=0.05, train_subset=1000, test_subset=500, schedule="cosine", val_images=500, precision="auto"),
    # a few minutes: full-width ResNet-20 on the 5,000-image embedded sample (4,500 train + 500 validation)
    "quick": dict(model="resnet20", width=1.0, dataset="cifar10-sample", epochs=6, batch_size=128,
                  lr=0.1, schedule="onecycle", warmup_epochs=1.0, val_images=500, precision="auto"),
    # the shipped models' recipe: ResNet-20 on the full CIFAR-10 (45,000 train + 5,000 validation),
    # ~1.5 h per run on one CPU thread in bf16
    "course": dict(model="resnet20", width=1.0, dataset="cifar10", epochs=50, batch_size=128,
                   lr=0.1, weight_decay=5e-4, schedule="onecycle", warmup_epochs=2.0, val_images=5000,
                   precision="auto"),
    # the field's standard schedule (reference section 6): many hours on a CPU, use a GPU
    "paper": dict(model="resnet56", width=1.0, dataset="cifar10", epochs=160, batch_size=128,
                  lr=0.1, schedule="step", val_images=5000, precision="auto"),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named preset as a TrainConfig, with ``overrides`` (None values ignored) applied."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return TrainConfig(**PRESETS[name]).replace(**overrides).validate()
