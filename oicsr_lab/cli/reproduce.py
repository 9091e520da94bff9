"""``oicsr-lab reproduce``: the whole paper pipeline at a preset, cached and resumable."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..experiments.spec import DEMO_SCOPES, REPRODUCE, parse_list, scope_summary
from ..regularizers import names
from .common import AUTO_THREADS_HELP, add_common, set_help

NAME = "reproduce"


def add_args(p: argparse.ArgumentParser) -> None:
    """Options of ``reproduce``."""
    p.add_argument("--preset", default="quick", choices=sorted(REPRODUCE),
                   help="budget: ci (<3 min), quick (~35 min on 2 cores), course (hours), paper (GPU)")
    p.add_argument("--model", help="registry name (default: the preset's, resnet20 / resnet56)")
    p.add_argument("--width", type=float, help="channel width multiplier (default: the preset's)")
    p.add_argument("--data", dest="dataset", help="cifar10-sample, cifar10, cifar100 or imagefolder:<path>")
    p.add_argument("--out", help="report folder (default: reports/<preset>)")
    p.add_argument("--regs",
                   help=f"comma-separated regularisers (default: l2,gl,l1bn,oicsr_gl; all: {','.join(names())})")
    p.add_argument("--ratios", help="comma-separated FLOPs pruning ratios of the sweep (default: the preset's)")
    p.add_argument("--seeds", help="comma-separated seeds (default: the preset's)")
    p.add_argument("--epochs", type=int, help="training epochs per regulariser (default: the preset's)")
    p.add_argument("--strength", action="append", default=[], metavar="REG=VALUE",
                   help="override one regulariser's lambda_s, e.g. oicsr_gl=5e-3 (repeatable)")
    p.add_argument("--pipeline-regs",
                   help="regularisers for the iterative pipeline (default: oicsr_gl,gl; '' for none)")
    p.add_argument("--pipeline-target", type=float,
                   help="FLOPs reduction the pipeline stops at (default: the preset's)")
    p.add_argument("--pipeline-retrain-epochs", type=int,
                   help="retraining epochs after each pruning step (default: the preset's)")
    p.add_argument("--pipeline-finetune-epochs", type=int, help="final fine-tuning epochs (default: the preset's)")
    p.add_argument("--pipeline-seeds",
                   help="seeds the iterative pipeline runs at: 'all' or comma-separated (default: the first seed)")
    p.add_argument("--pipeline-criterion",
                   help="the pipeline's ranking: a criterion (default: out_in for every method) or 'chosen', each "
                   "network's criterion chosen on the validation split")
    p.add_argument("--finetune-epochs", type=int,
                   help="epochs of fine-tuning after one-shot pruning at matched FLOPs (default: the "
                   "preset's; 0: skip)")
    p.add_argument("--criteria",
                   help="sweep criteria: registry names, 'own', 'all', floors random/uniform, comma-separated "
                   "(default: out_in,own,random,uniform)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="training arithmetic of every run (default: the preset's, auto)")
    p.add_argument("--finetune-ratios",
                   help="comma-separated FLOPs ratios pruned then fine-tuned (default: 0.3,0.5,0.7)")
    p.add_argument("--finetune-control", action=argparse.BooleanOptionalAction, default=None,
                   help="also fine-tune every network unpruned, the same way (the control that separates what "
                   "pruning costs from what the extra epochs give; default: on, off for --preset demo)")
    p.add_argument("--table1-weights",
                   help="torchvision resnet50 state dict for Table 1's scores (default: random init)")
    p.add_argument("--no-table1", action="store_true", help="skip the ResNet-50 Table 1 computation")
    p.add_argument("--scope", choices=DEMO_SCOPES, default="auto",
                   help=(f"--preset demo on the sample: full ({scope_summary('full')}), lite "
                         f"({scope_summary('lite')}) or auto (lite on a CPU without native bf16, where the full scope "
                         "takes far over 5 minutes; default)").replace("%", "%%"))  # argparse formats help with %
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes for independent runs (default: the idle cores, one thread each)")
    add_common(p)
    set_help(p, "threads", AUTO_THREADS_HELP)


def _strengths(items: list[str]) -> dict[str, float]:
    """``["gl=1e-3"]`` -> ``{"gl": 0.001}``."""
    out = {}
    for kv in items:
        reg, sep, val = kv.partition("=")
        try:
            out[reg.strip()] = float(val)
        except ValueError:
            sep = ""
        if not sep or reg.strip() not in names():
            raise ConfigError(f"--strength {kv!r} must be REG=VALUE with REG in {', '.join(names())}, e.g. gl=1e-2")
    return out


def run(args: argparse.Namespace) -> int:
    """Train under each regulariser, sweep FLOPs ratios, prune iteratively, and write the report (cached)."""
    from ..experiments.reproduce import reproduce

    summary = reproduce(
        args.preset, args.out, model=args.model, dataset=args.dataset, width=args.width,
        regs=parse_list(args.regs), ratios=parse_list(args.ratios, float), seeds=parse_list(args.seeds, int),
        epochs=args.epochs, pipeline_regs=parse_list(args.pipeline_regs), pipeline_target=args.pipeline_target,
        pipeline_retrain_epochs=args.pipeline_retrain_epochs, pipeline_finetune_epochs=args.pipeline_finetune_epochs,
        pipeline_seeds=args.pipeline_seeds, pipeline_criterion=args.pipeline_criterion,
        finetune_epochs=args.finetune_epochs,
        finetune_ratios=parse_list(args.finetune_ratios, float),
        precision=args.precision, criteria=args.criteria, finetune_control=args.finetune_control,
        strengths=_strengths(args.strength), table1=not args.no_table1, table1_weights=args.table1_weights,
        device=args.device, threads=args.threads, jobs=args.jobs, data_dir=args.data_dir,
        show_progress=False if args.no_progress else None, scope=args.scope,
    )
    print(f"report: {args.out or f'reports/{args.preset}'}/index.html  (wall {summary['wall_s']:.1f}s, "
          f"{summary['cache']['computed']} computed, {summary['cache']['hit']} cached)")
    for seed, by_reg in summary["runs"].items():
        print("  seed " + seed + ": " + ", ".join(f"{reg} {r['test_acc']:.1f}%" for reg, r in by_reg.items()))
    return 0
