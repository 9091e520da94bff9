"""``oicsr-lab info``: a model summary (layers, parameters, MACs, out-in-channel groups)."""

from __future__ import annotations

import argparse

NAME = "info"


def add_args(p: argparse.ArgumentParser) -> None:
    """Options of ``info``."""
    p.add_argument("--model", default="resnet20")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--input-size", type=int, default=None, help="default: 32 for the CIFAR zoo, 224 for torchvision")
    p.add_argument("--groups", action="store_true", help="also list the out-in-channel groups")


def run(args: argparse.Namespace) -> int:
    """Print a model summary: layers, parameters, MACs (Conv + Linear) and out-in-channel groups."""
    from ..summary import model_summary

    print(model_summary(args.model, width=args.width, num_classes=args.num_classes,
                        input_size=args.input_size, show_groups=args.groups))
    return 0
