"""``oicsr-lab train``: train a model, optionally under a sparsity regulariser, with checkpoints and a log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import add_train_args, config_from_args

NAME = "train"


def add_args(p: argparse.ArgumentParser) -> None:
    """Options of ``train``: the training options plus the run folder."""
    add_train_args(p)
    p.add_argument("--out", default=None,
                   help="run folder for checkpoint.pt and metrics.jsonl (default: runs/<model>-<reg>-<preset>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")


def run(args: argparse.Namespace) -> int:
    """Train a model (optionally under a sparsity regulariser) with checkpoints and a metrics log."""
    from ..train import build_trainer, set_threads
    from ..train.distributed import shutdown

    set_threads(args.threads)
    cfg = config_from_args(args)
    out = Path(args.out or f"runs/{cfg.model}-{cfg.reg}-{args.preset}")
    try:
        return _train(cfg, out, args, build_trainer)
    finally:
        shutdown()


def _train(cfg, out: Path, args: argparse.Namespace, build_trainer) -> int:
    """Build the trainer, fit (resuming when asked) and print the last epochs and the final accuracy."""
    trainer = build_trainer(cfg, out_dir=out, data_dir=args.data_dir, device=args.device,
                            show_progress=False if args.no_progress else None)
    for note in trainer.data.notes:
        print(f"note: {note}", file=sys.stderr)
    if trainer.rank == 0:
        print(f"training {cfg.model} (width {cfg.width}) on {cfg.dataset} [{len(trainer.train_split)} train / "
              f"{len(trainer.test_split)} test"
              f"{f' / {len(trainer.val_split)} validation' if trainer.val_split is not None else ''}] for {cfg.epochs} "
              f"epochs, reg={cfg.reg} strength={cfg.strength}, device={trainer.device} "
              f"({trainer.precision}), out={out}")
    history = trainer.fit(resume=args.resume)
    if trainer.rank == 0:
        for r in history[-3:]:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}))
        print(f"final test accuracy {history[-1]['test_acc']:.2f}%  (checkpoint: {trainer.checkpoint_path})")
    return 0
