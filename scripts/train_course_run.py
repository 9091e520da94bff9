"""Train (or resume) one `reproduce --preset course` run only -- no sweep or fine-tune -- into its run cache.

The run lands in ``<out>/runs/<reg>-<hash>/`` under the same cache key ``reproduce --preset
course`` uses, so a later ``reproduce`` finds it trained; per-epoch checkpoints make a killed run
resume where it stopped. One thread by default (two such runs side by side use 2 cores best).
Ship the finished run with ``oicsr-lab pretrained ship <folder> --command ...``.

    OICSR_LAB_DATA=../shared/data python scripts/train_course_run.py gl 0

``--epochs N`` trains the same recipe (schedule, warm-up, weight decay, strength as given) for N epochs instead
of the preset's 50, under its own cache key (a different run folder): the longer-schedule L2 check of issue 15.
``--cutout``, ``--label-smoothing`` and ``--weight-decay`` change those settings of the recipe the same way
(each changed setting is part of the cache key), for issue 15's search for a >= 88 % dense L2:

    OICSR_LAB_DATA=../shared/data python scripts/train_course_run.py l2 0 --epochs 100 --cutout 16 --label-smoothing 0.1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from oicsr_lab.data import load_dataset
from oicsr_lab.experiments.runs import data_identity, train_cached
from oicsr_lab.experiments.spec import build_spec, run_config
from oicsr_lab.train import TrainConfig


def course_config(reg: str, seed: int, epochs: int | None = None, **changes: float | int | None) -> TrainConfig:
    """The TrainConfig of ``reproduce --preset course``'s run of ``reg`` at ``seed`` (its cache key), with the
    number of epochs and any other field in ``changes`` replaced where given (None keeps the preset's)."""
    cfg = run_config(build_spec("course", seeds=[seed], regs=[reg]), reg, seed)
    return cfg.replace(epochs=epochs, **changes).validate()


def main() -> None:
    """Parse ``REG SEED [--out reports/course] [--threads 1]`` and train that run."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reg")
    ap.add_argument("seed", type=int)
    ap.add_argument("--out", default="reports/course", help="report folder (default: reports/course)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of the preset's")
    ap.add_argument("--cutout", type=int, default=None, help="Cutout square side in pixels (the preset: 0, none)")
    ap.add_argument("--label-smoothing", type=float, default=None, help="label smoothing (the preset: 0)")
    ap.add_argument("--weight-decay", type=float, default=None, help="weight decay (the preset's otherwise)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = course_config(args.reg, args.seed, args.epochs, cutout=args.cutout, label_smoothing=args.label_smoothing,
                        weight_decay=args.weight_decay)
    print(f"config: {cfg.to_dict()}")
    data = load_dataset(cfg.dataset)
    run = train_cached(cfg, Path(args.out), data, data_identity(data), "cpu", True, print)
    print(f"done: {run.folder} (test {run.result['test_acc']:.2f} %)")


if __name__ == "__main__":
    main()
