"""``oicsr-lab pretrained``: list the trained networks shipped with the package, or ship a finished run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from .common import add_common

NAME = "pretrained"


def add_args(p: argparse.ArgumentParser) -> None:
    """Options of ``pretrained``."""
    p.add_argument("action", choices=("list", "ship"), help="list: the shipped models; ship: add a run (maintainers)")
    p.add_argument("run", nargs="?", help="ship: a finished training run folder (e.g. reports/course/runs/l2-...)")
    p.add_argument("--data", dest="dataset", default=None,
                   help="ship: the run's data set (default: the one it trained on)")
    p.add_argument("--command", dest="regen_command", default="",  # 'command' is the subcommand's name
                   help="ship: the command that regenerates the run (recorded)")
    p.add_argument("--variant", default="", help="ship: a tag (e.g. 150ep) that ships the run beside the main set "
                                                 "instead of in it (the set keeps one recipe)")
    add_common(p)


def run(args: argparse.Namespace) -> int:
    """List the trained networks shipped with the package (or ship a finished run, for maintainers)."""
    from ..experiments.ship import check_variant, ship
    from ..pretrained import list_pretrained, variant_of

    if args.action == "list":
        rows = list_pretrained(variant=None)
        if not rows:
            print("no shipped models in this installation")
        for e in rows:
            energy = e.get("energy", {})
            print(f"{e['model']:>9} {e['reg']:>11} seed {e['seed']}  strength {e['strength']:<8g} {e['epochs']:>3} ep  "
                  f"test {e['test_acc']:.2f}%  val {e.get('val_acc', float('nan')):.2f}%  "
                  f"<20% energy {100 * energy.get('lt20', float('nan')):.0f}%  {e['bytes'] / 1e6:.2f} MB  {e['file']}"
                  + (f"  (variant {variant_of(e)}: not in the demo set)" if variant_of(e) else ""))
        return 0
    if not args.run:
        raise ConfigError("pretrained ship needs a run folder, e.g. oicsr-lab pretrained ship "
                          "reports/course/runs/l2-<hash>")
    check_variant(args.variant)  # before any data is decoded
    from ..data import load_dataset
    from ..train import set_threads

    set_threads(args.threads)
    from ..train import load_checkpoint

    dataset = args.dataset or load_checkpoint(Path(args.run) / "checkpoint.pt")["config"]["dataset"]
    entry = ship(args.run, load_dataset(dataset, root=args.data_dir), command=args.regen_command,
                 sample=load_dataset("cifar10-sample", root=args.data_dir), variant=args.variant)
    print(json.dumps({k: v for k, v in entry.items() if k != "config"}, indent=1))
    return 0
