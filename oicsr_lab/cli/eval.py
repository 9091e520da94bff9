"""``oicsr-lab eval``: the test accuracy (and MACs, parameters) of a model train, prune or reproduce saved."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError
from .common import add_common

NAME = "eval"


def add_args(p: argparse.ArgumentParser) -> None:
    """Options of ``eval``."""
    p.add_argument("checkpoint", help="a training run folder or its checkpoint.pt, a prune output folder (its final "
                                      "model) or any .pt it saved, or a report folder (reproduce --out) with --reg")
    p.add_argument("--reg", help="with a report folder: evaluate this regulariser's training run, e.g. oicsr_gl")
    p.add_argument("--seed", type=int, help="with a report folder: the run of this seed (default: the report's first)")
    p.add_argument("--data", dest="dataset", default=None,
                   help="dataset (default: the one the model was trained on; needed for a pruned file saved outside "
                        "a prune run)")
    p.add_argument("--full-test", action="store_true", help="use the whole test split, not the run's test subset")
    add_common(p)


def run(args: argparse.Namespace) -> int:
    """Evaluate the test accuracy of a model that train, prune or reproduce saved."""
    from ..data import load_dataset
    from ..flops import count_flops
    from ..locate import check_classes, is_report_folder, locate_model
    from ..train import evaluate, resolve_device, set_threads
    from ..train.config import TrainConfig

    if (args.reg is not None or args.seed is not None) and not is_report_folder(args.checkpoint):
        raise ConfigError(f"--reg/--seed pick a run of a report folder (reproduce --out); {args.checkpoint} is not "
                          f"one, so drop them")
    set_threads(args.threads)
    src = locate_model(args.checkpoint, reg=args.reg, seed=args.seed)
    for note in src.notes:
        print(f"note: {note}", file=sys.stderr)
    cfg = TrainConfig.from_dict(src.config) if src.config else None
    if cfg is None and not args.dataset:
        raise ConfigError(f"{src.path}: a pruned model saved outside a prune run records no data set; "
                          f"pass --data (e.g. --data cifar10-sample)")
    data = load_dataset(args.dataset or cfg.dataset, root=args.data_dir)
    check_classes(src, data)
    device = resolve_device(args.device)
    model = src.model.to(device)
    # by default the same test images the run reported on (its test_subset), so the numbers agree
    split = None if args.full_test or args.dataset or cfg is None else data.test.subset(cfg.test_subset, seed=cfg.seed)
    res = evaluate(model, data, split)
    flops = count_flops(model, data.example_input().to(device))
    n = len(split) if split is not None else len(data.test)
    print(json.dumps({"checkpoint": str(src.path), "kind": src.kind, "dataset": data.name, "epoch": src.epoch,
                      "test_images": n, "macs": int(flops.total_macs), "params": int(flops.total_params), **res}))
    return 0
