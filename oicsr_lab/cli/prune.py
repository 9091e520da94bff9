"""``oicsr-lab prune``: the iterative pruning framework (Figure 2) from a trained run or from scratch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError
from .common import AUTO_THREADS_HELP, add_train_args, config_from_args, set_help

NAME = "prune"


def add_args(p: argparse.ArgumentParser) -> None:
    """Options of ``prune`` (plus the training options, which override the run's config)."""
    p.add_argument("--from", dest="source", default=None,
                   help="a training run folder or its checkpoint.pt, a prune output folder or any .pt it saved, or a "
                        "report folder (reproduce --out) with --reg [--seed] (default: train from scratch first)")
    p.add_argument("--target", type=float, required=True,
                   help="FLOPs reduction to reach, e.g. 0.5 (of the dense FLOPs)")
    p.add_argument("--step", type=float, default=0.1,
                   help="FLOPs removed per iteration, fraction of dense (default 0.1)")
    p.add_argument("--retrain-epochs", type=int, default=1, help="epochs of regularised retraining after each step")
    p.add_argument("--finetune-epochs", type=int, default=1, help="epochs of final fine-tuning without the regulariser")
    p.add_argument("--retrain-lr", type=float, default=None, help="learning rate of retraining (default: lr / 10)")
    p.add_argument("--criterion", default="out_in", help="out_in (eq. 5), out, l1, bn_gamma or random")
    p.add_argument("--normalize", default="layer_max", help="none, layer_sum, layer_max or per_element")
    p.add_argument("--max-layer-ratio", type=float, default=0.5, help="at most this fraction of a layer per step")
    p.add_argument("--allow-coupled", action="store_true", help="also prune residual-coupled channel groups")
    p.add_argument("--out", default=None, help="output folder (default: runs/prune-<model>-<reg>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted prune run in --out")
    add_train_args(p)
    set_help(p, "threads", AUTO_THREADS_HELP)


_FIELDS = ("model", "width", "dataset", "epochs", "batch_size", "lr", "weight_decay", "schedule", "warmup_epochs",
           "label_smoothing", "seed", "train_subset", "reg", "strength")


def load_source(path: str | Path, reg: str | None = None, seed: int | None = None) -> tuple[Any, dict[str, Any] | None]:
    """``(model, training config dict)`` of anything ``oicsr-lab eval`` accepts (see :mod:`oicsr_lab.locate`).

    For a save_pruned file outside a prune run the config is only ``{"_arch": {model, width}}``.
    """
    import torch

    from ..locate import locate_model

    src = locate_model(path, reg=reg, seed=seed)
    if src.config is not None:
        return src.model, dict(src.config)
    arch = torch.load(src.path, map_location="cpu", weights_only=True)["arch"]
    return src.model, {"_arch": {"model": arch["name"],
                                 **{k: v for k, v in arch.get("kwargs", {}).items() if k == "width"}}}


def run(args: argparse.Namespace) -> int:
    """Prune iteratively to a FLOPs target (Algorithm 1 per step, retraining with the regulariser between)."""
    from ..data import load_dataset
    from ..locate import is_report_folder
    from ..models import build_model
    from ..pruning.iterative import PipelineSettings, prune_iteratively
    from ..train import TrainConfig, auto_threads, set_threads

    # every option checked before anything is loaded, printed or written
    PipelineSettings(target_ratio=args.target, step_ratio=args.step, retrain_epochs=args.retrain_epochs,
                     finetune_epochs=args.finetune_epochs, criterion=args.criterion, normalize=args.normalize,
                     max_layer_ratio=args.max_layer_ratio, allow_coupled=args.allow_coupled,
                     retrain_lr=args.retrain_lr).validate()
    if not (0 < args.max_layer_ratio <= 1):
        raise ConfigError(f"--max-layer-ratio must be in (0, 1], got {args.max_layer_ratio}; e.g. 0.5")
    if args.source:
        report = is_report_folder(args.source)  # then --reg/--seed pick its run (and so match its config)
        model, cfg_dict = load_source(args.source, *((args.reg, args.seed) if report else (None, None)))
        hint = (cfg_dict or {}).pop("_arch", None)
        cfg = TrainConfig.from_dict(cfg_dict) if cfg_dict else config_from_args(args)
        if hint:
            cfg = cfg.replace(**hint)
        explicit = {f: getattr(args, f, None) for f in _FIELDS if getattr(args, f, None) is not None}
        cfg = cfg.replace(**explicit)
        if args.reg_option:
            cfg = cfg.replace(reg_options=config_from_args(args).reg_options)
        if "reg" in explicit and explicit["reg"] != (cfg_dict or {}).get("reg") and not args.reg_option:
            cfg = cfg.replace(reg_options={})
        cfg.validate()
        train_first = False
    else:
        cfg = config_from_args(args)
        model, train_first = None, True
    out = Path(args.out or f"runs/prune-{cfg.model}-{cfg.reg}")
    if not args.resume and (out / "state.json").exists():
        raise ConfigError(f"{out}: a pruning run is already there; pass --resume to continue it or "
                          "choose another --out")
    set_threads(args.threads if args.threads is not None else auto_threads())  # after the checks: a refused
    data = load_dataset(cfg.dataset, root=args.data_dir)                       # command leaves the process as it was
    if model is not None:
        import torch

        with torch.no_grad():
            n_out = model.eval()(data.example_input()).shape[-1]
        if n_out != data.num_classes:
            raise CheckpointError(f"{args.source}: the model has {n_out} outputs but {data.name} has "
                                  f"{data.num_classes} "
                                  f"classes; prune it on the data set it was trained on")
    if model is None:
        import torch

        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, num_classes=data.num_classes, width=cfg.width)
    print(f"pruning {cfg.model} ({'trained: ' + str(args.source) if args.source else 'training first'}) to "
          f"remove {args.target:.0%} of its FLOPs in steps of {args.step:.0%}, reg={cfg.reg} "
          f"strength={cfg.strength:g}, "
          f"out={out}")
    res = prune_iteratively(
        model, data, cfg, target_ratio=args.target, step_ratio=args.step, retrain_epochs=args.retrain_epochs,
        finetune_epochs=args.finetune_epochs, criterion=args.criterion, normalize=args.normalize, out_dir=out,
        resume=True, train_first=train_first, max_layer_ratio=args.max_layer_ratio, allow_coupled=args.allow_coupled,
        retrain_lr=args.retrain_lr, device=args.device, show_progress=False if args.no_progress else None,
    )
    from ..experiments.report import write_csv
    from ..pruning.iterative import PIPELINE_COLUMNS

    write_csv(out / "pipeline.csv", res.rows(cfg.reg), PIPELINE_COLUMNS)
    for r in res.records:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                          if k not in ("widths", "layer_ratios")}))
    print(f"final: {res.records[-1]['acc_after_retrain']:.2f}% at "
          f"{res.records[-1]['achieved_ratio']:.1%} FLOPs removed; "
          f"model: {out / res.state['model_file']}")
    return 0
