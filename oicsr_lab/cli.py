"""The ``oicsr-lab`` command: thin subcommands over the library.

``train``, ``eval``, ``info`` here; other modules add theirs through :data:`SUBCOMMANDS`
(``prune``, ``reproduce``). Errors of the project print as one line, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

from .errors import ConfigError, OICSRError

SUBCOMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def subcommand(name: str, add_args: Callable[[argparse.ArgumentParser], None]):
    """Register ``fn(args) -> exit code`` as ``oicsr-lab <name>``."""

    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        SUBCOMMANDS[name] = (add_args, fn)
        fn.__cli_help__ = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        return fn

    return deco


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every run-like subcommand shares."""
    p.add_argument("--data-dir", default=None, help="data root (default: $OICSR_LAB_DATA, else a user cache dir)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_train_args(p: argparse.ArgumentParser) -> None:
    """Options of ``train`` (also reused by ``prune`` and ``reproduce``)."""
    from .train.config import PRESETS

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
    from .train.config import preset

    opts = {}
    for kv in getattr(args, "reg_option", []) or []:
        if "=" not in kv:
            from .errors import ConfigError

            raise ConfigError(f"--reg-option {kv!r} is not KEY=VALUE; e.g. --reg-option mode=proximal")
        k, v = kv.split("=", 1)
        opts[k] = _parse_value(v)
    fields = ("model", "width", "dataset", "epochs", "batch_size", "lr", "weight_decay", "schedule", "warmup_epochs",
              "label_smoothing", "seed", "train_subset", "test_subset", "reg", "strength", "val_images", "precision")
    cfg = preset(args.preset, **{f: getattr(args, f, None) for f in fields})
    if opts:
        cfg = cfg.replace(reg_options=opts)
    return cfg.validate()


def _parse_value(v: str):
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


def _train_out(p: argparse.ArgumentParser) -> None:
    add_train_args(p)
    p.add_argument("--out", default=None,
                   help="run folder for checkpoint.pt and metrics.jsonl (default: runs/<model>-<reg>-<preset>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")


@subcommand("train", _train_out)
def cmd_train(args: argparse.Namespace) -> int:
    """Train a model (optionally under a sparsity regulariser) with checkpoints and a metrics log."""
    from .train import build_trainer, set_threads
    from .train.distributed import shutdown

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


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a training run folder or its checkpoint.pt, a prune output folder (its final "
                                      "model) or any .pt it saved, or a report folder (reproduce --out) with --reg")
    p.add_argument("--reg", help="with a report folder: evaluate this regulariser's training run, e.g. oicsr_gl")
    p.add_argument("--seed", type=int, help="with a report folder: the run of this seed (default: the report's first)")
    p.add_argument("--data", dest="dataset", default=None,
                   help="dataset (default: the one the model was trained on; needed for a pruned file saved outside "
                        "a prune run)")
    p.add_argument("--full-test", action="store_true", help="use the whole test split, not the run's test subset")
    add_common(p)


@subcommand("eval", _eval_args)
def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate the test accuracy of a model that train, prune or reproduce saved."""
    from .data import load_dataset
    from .flops import count_flops
    from .locate import check_classes, is_report_folder, locate_model
    from .train import evaluate, resolve_device, set_threads
    from .train.config import TrainConfig

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


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="resnet20")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--input-size", type=int, default=None, help="default: 32 for the CIFAR zoo, 224 for torchvision")
    p.add_argument("--groups", action="store_true", help="also list the out-in-channel groups")


@subcommand("info", _info_args)
def cmd_info(args: argparse.Namespace) -> int:
    """Print a model summary: layers, parameters, MACs (Conv + Linear) and out-in-channel groups."""
    from .summary import model_summary

    print(model_summary(args.model, width=args.width, num_classes=args.num_classes,
                        input_size=args.input_size, show_groups=args.groups))
    return 0


def _pretrained_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("list", "ship"), help="list: the shipped models; ship: add a run (maintainers)")
    p.add_argument("run", nargs="?", help="ship: a finished training run folder (e.g. reports/course/runs/l2-...)")
    p.add_argument("--data", dest="dataset", default="cifar10", help="ship: the run's data set (default: cifar10)")
    p.add_argument("--command", default="", help="ship: the command that regenerates the run (recorded)")
    add_common(p)


@subcommand("pretrained", _pretrained_args)
def cmd_pretrained(args: argparse.Namespace) -> int:
    """List the trained networks shipped with the package (or ship a finished run, for maintainers)."""
    from .pretrained import list_pretrained, ship

    if args.action == "list":
        rows = list_pretrained()
        if not rows:
            print("no shipped models in this installation")
        for e in rows:
            energy = e.get("energy", {})
            print(f"{e['model']:>9} {e['reg']:>11} seed {e['seed']}  strength {e['strength']:<8g} {e['epochs']:>3} ep  "
                  f"test {e['test_acc']:.2f}%  val {e.get('val_acc', float('nan')):.2f}%  "
                  f"<20% energy {100 * energy.get('lt20', float('nan')):.0f}%  {e['bytes'] / 1e6:.2f} MB  {e['file']}")
        return 0
    if not args.run:
        from .errors import ConfigError

        raise ConfigError("pretrained ship needs a run folder, e.g. oicsr-lab pretrained ship "
                          "reports/course/runs/l2-<hash>")
    from .data import load_dataset
    from .train import set_threads

    set_threads(args.threads)
    entry = ship(args.run, load_dataset(args.dataset, root=args.data_dir), command=args.command,
                 sample=load_dataset("cifar10-sample", root=args.data_dir))
    print(json.dumps({k: v for k, v in entry.items() if k != "config"}, indent=1))
    return 0


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit code 2), like the project's errors."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every registered subcommand."""
    _load_plugins()
    parser = _Parser(prog="oicsr-lab", description="Channel pruning with OICSR: train, prune, reproduce.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_args, fn) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=fn.__cli_help__, description=fn.__doc__)
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def _load_plugins() -> None:
    """Import modules that register further subcommands (missing ones are skipped)."""
    import importlib

    for mod in ("oicsr_lab.pruning.cli", "oicsr_lab.experiments.cli"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``oicsr-lab`` and ``python -m oicsr_lab``."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "out", None):  # fail before any data is decoded or any training starts
            from .io import check_writable_dir

            check_writable_dir(args.out, "--out")
        return args.func(args)
    except OICSRError as e:
        print(f"oicsr-lab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `oicsr-lab info | head`: stop quietly, like other Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
