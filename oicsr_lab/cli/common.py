"""What the subcommands share: common options, the training options, the config they build, help tweaks."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError

AUTO_THREADS_HELP = "CPU threads for torch (default: the idle cores by load average, at least 1)"


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every run-like subcommand shares."""
    p.add_argument("--data-dir", default=None, help="data root (default: $OICSR_LAB_DATA, else a user cache dir)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def set_help(p: argparse.ArgumentParser, dest: str, text: str) -> None:
    """Replace the help of the option stored in ``dest`` (e.g. a shared option whose default differs here)."""
    for action in p._actions:
        if action.dest == dest:
            action.help = text
            return
    raise AssertionError(f"{p.prog} has no option stored in {dest!r}")


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Options of ``train`` (also reused by ``prune``)."""
    from ..train.config import PRESETS

    p.add_argument("--preset", default="quick", help=f"budget preset: {', '.join(PRESETS)} (default: quick)")
    p.add_argument("--model", help="registry name, e.g. resnet20, resnet56, vgg16_bn, torchvision:resnet18")
    p.add_argument("--width", type=float, help="channel width multiplier")
    p.add_argument("--data", dest="dataset", help="cifar10-sample, cifar10, cifar100 or imagefolder:<path>")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", help="cosine, step, onecycle or constant")
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--cutout", type=int, help="Cutout: zero a square of this side in each training image (0: none)")
    p.add_argument("--seed", type=int)
    p.add_argument("--train-subset", type=int, help="train on this many images only")
    p.add_argument("--test-subset", type=int, help="evaluate on this many test images only")
    p.add_argument("--val-images", type=int,
                   help="class-balanced training images held out as the validation split (0: none)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="forward-pass arithmetic: auto = bf16 autocast on CPUs with native bf16 and AMP on CUDA")
    p.add_argument("--reg", help="l2, gl, l1bn, oicsr_gl, growl or oicsr_growl")
    p.add_argument("--strength", type=float, help="regularisation strength lambda_s")
    p.add_argument("--reg-option", action="append", default=[], metavar="KEY=VALUE",
                   help="regulariser option, e.g. mode=proximal (repeatable)")
    add_common(p)


def config_from_args(args: argparse.Namespace):
    """A validated TrainConfig from the preset plus explicit flags."""
    from ..train.config import preset

    opts = {}
    for kv in getattr(args, "reg_option", []) or []:
        if "=" not in kv:
            raise ConfigError(f"--reg-option {kv!r} is not KEY=VALUE; e.g. --reg-option mode=proximal")
        k, v = kv.split("=", 1)
        opts[k] = parse_value(v)
    fields = ("model", "width", "dataset", "epochs", "batch_size", "lr", "weight_decay", "schedule", "warmup_epochs",
              "label_smoothing", "cutout", "seed", "train_subset", "test_subset", "reg", "strength", "val_images",
              "precision")
    cfg = preset(args.preset, **{f: getattr(args, f, None) for f in fields})
    if opts:
        cfg = cfg.replace(reg_options=opts)
    return cfg.validate()


def parse_value(v: str) -> Any:
    """'1e-3' -> float, 'true' -> True, else the string."""
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v
