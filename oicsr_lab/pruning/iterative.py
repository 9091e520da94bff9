"""The paper's iterative framework (Figure 2): train -> prune a FLOPs step -> retrain -> ... -> fine-tune.

    result = prune_iteratively(model, data, config, target_ratio=0.5, step_ratio=0.1,
                               retrain_epochs=2, finetune_epochs=5, out_dir="runs/prune")

Each iteration runs Algorithm 1 on the *current*, physically pruned network so that its
cumulative FLOPs reduction reaches ``min(i * step_ratio, target_ratio)`` of the *dense* FLOPs,
measures test accuracy before retraining, then retrains ``retrain_epochs`` with the regulariser
(rebuilt on the pruned model: groups are recomputed with ``find_groups``). A final fine-tune of
``finetune_epochs`` runs without the regulariser.

Resumable: ``out_dir/state.json`` (written atomically after every completed stage) lists the
completed stages, the per-step records and the model file the next stage starts from. Every
stage's model is saved with ``save_pruned``; a stage interrupted midway is redone (training
stages continue from their own epoch checkpoint, see ``Trainer.fit(resume=True)``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from ..data import DatasetSplits
from ..errors import ConfigError, PlanError
from ..groups.geometry import out_width
from ..io import atomic_write_json
from ..precision import autocast, resolve_precision
from ..progress import progress
from ..train import TrainConfig, Trainer, evaluate, make_regularizer_for, resolve_device
from .pipeline_state import STATE_FORMAT, STATE_VERSION, load_state
from .plan import Plan, global_greedy_plan
from .serialize import load_pruned, save_pruned
from .surgery import prune

PIPELINE_COLUMNS = ("reg", "step", "target_ratio", "achieved_ratio", "acc_before_retrain", "acc_after_retrain",
                    "flops", "params", "widths", "stage")


@dataclass
class PipelineSettings:
    """Everything that defines an iterative pruning run besides the training config."""

    target_ratio: float
    step_ratio: float = 0.1
    retrain_epochs: int = 1
    finetune_epochs: int = 1
    criterion: str = "out_in"
    normalize: str = "layer_max"
    max_layer_ratio: float = 0.5
    min_channels: int = 1
    round_to: int | None = None
    allow_coupled: bool = False
    retrain_lr: float | None = None  # None: config.lr / 10 (cosine, no warm-up)
    finetune_lr: float | None = None  # None: same as retrain_lr
    train_first: bool = False  # train ``config.epochs`` with the regulariser before the first step

    def validate(self) -> "PipelineSettings":
        """Raise ConfigError for values no pipeline could use; return self."""
        if not (0.0 < self.target_ratio < 1.0):
            raise ConfigError("target ratio must be in (0, 1) (fraction of dense FLOPs removed), got "
                              f"{self.target_ratio}")
        if not (0.0 < self.step_ratio <= 1.0):
            raise ConfigError(f"step ratio must be in (0, 1], got {self.step_ratio}; e.g. --step 0.1")
        for k in ("retrain_epochs", "finetune_epochs"):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"{k} must be an integer >= 0, got {v!r}")
        for k in ("retrain_lr", "finetune_lr"):
            v = getattr(self, k)
            if v is not None and not (v > 0):
                raise ConfigError(f"{k} must be > 0 or None, got {v!r}")
        return self

    def targets(self) -> list[float]:
        """Cumulative FLOPs-reduction target of each step (fractions of the dense FLOPs)."""
        n = max(1, math.ceil(self.target_ratio / self.step_ratio - 1e-9))
        return [round(min((i + 1) * self.step_ratio, self.target_ratio), 10) for i in range(n)]


@dataclass
class PipelineResult:
    """What ``prune_iteratively`` returns: per-step records, the final model and where things are."""

    records: list[dict[str, Any]]
    model: nn.Module
    out_dir: Path | None
    state: dict[str, Any] = field(default_factory=dict)

    def rows(self, reg: str | None = None) -> list[dict[str, Any]]:
        """Rows of ``pipeline.csv`` (widths as JSON text)."""
        return pipeline_rows(self.records, reg if reg is not None else self.state.get("reg", ""))


def pipeline_rows(records: list[dict[str, Any]], reg: str) -> list[dict[str, Any]]:
    """Records -> ``pipeline.csv`` rows with the design-doc columns (plus ``stage``)."""
    out = []
    for r in records:
        row = {k: r.get(k) for k in PIPELINE_COLUMNS}
        row["reg"] = reg
        row["widths"] = json.dumps(r.get("widths", {}), sort_keys=True)
        out.append(row)
    return out


def _stages(s: PipelineSettings) -> list[str]:
    """Ordered stage names: [train], dense, prune1, retrain1, ..., [finetune]."""
    names = ["train"] if s.train_first else []
    names.append("dense")
    for i in range(1, len(s.targets()) + 1):
        names.append(f"prune{i}")
        if s.retrain_epochs > 0:
            names.append(f"retrain{i}")
    if s.finetune_epochs > 0:
        names.append("finetune")
    return names


def _fingerprint(config: TrainConfig, s: PipelineSettings, arch: dict[str, Any]) -> str:
    """Hash of everything that determines the run (a resumed run must match it)."""
    blob = json.dumps({"config": config.to_dict(), "settings": asdict(s), "arch": arch}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _group_widths(groups: Any) -> dict[str, int]:
    """Prunable group name -> current channel count."""
    return {g.name: int(g.size) for g in groups if g.prunable}


class _Pipeline:
    """State machine behind :func:`prune_iteratively` (one stage at a time, state saved after each)."""

    def __init__(self, data: DatasetSplits, config: TrainConfig, s: PipelineSettings, out_dir: Path | None,
                 device: torch.device, show_progress: bool | None, base_arch: dict[str, Any],
                 eval_precision: str = "fp32") -> None:
        self.data, self.config, self.s, self.out_dir = data, config, s, out_dir
        self.eval_precision = resolve_precision(eval_precision, device)
        self.device, self.show_progress, self.base_arch = device, show_progress, base_arch
        self.example = data.example_input().to(device)
        self.test_split = data.test.subset(config.test_subset, seed=config.seed)

    # -- helpers ------------------------------------------------------------------------------
    def groups(self, model: nn.Module) -> Any:
        """Out-in-channel groups of the current model."""
        from ..groups import find_groups

        was = model.training
        g = find_groups(model.eval(), self.example, allow_coupled=self.s.allow_coupled)
        model.train(was)
        return g

    def measure(self, model: nn.Module) -> dict[str, Any]:
        """Test accuracy, MACs and parameters of ``model`` (the accuracy measured on a channels_last copy, about
        twice as fast on a CPU; the model itself keeps its memory format, which its training depends on)."""
        from ..flops import count_flops

        net = copy.deepcopy(model).to(memory_format=torch.channels_last)
        with autocast(self.eval_precision, self.device):
            acc = evaluate(net, self.data, self.test_split, device=self.device, channels_last=True)["acc"]
        rep = count_flops(model, self.example)
        return {"acc": acc, "flops": int(rep.total_macs), "params": int(rep.total_params)}

    def train(self, model: nn.Module, stage: str, epochs: int, lr: float | None, regularized: bool) -> nn.Module:
        """Train ``model`` in ``out_dir/stage`` (resuming its epoch checkpoint when present)."""
        cfg = self.config if lr is None and stage == "train" else self.config.replace(
            epochs=epochs, lr=lr, schedule="cosine", warmup_epochs=0.0)
        if not regularized:
            cfg = cfg.replace(reg="l2", strength=0.0, reg_options={})
        cfg = cfg.replace(epochs=epochs)
        reg = make_regularizer_for(model, cfg, self.data)
        arch = {**{"model": self.config.model, "width": self.config.width, "num_classes": self.data.num_classes},
                "widths": _module_widths(model)}
        folder = self.out_dir / stage if self.out_dir is not None else None
        trainer = Trainer(model, self.data, cfg, out_dir=folder, regularizer=reg, device=self.device, arch=arch,
                          show_progress=self.show_progress, eval_precision=self.eval_precision,
                          evaluate_val=False, evaluate_last_epoch=False)  # measure() follows; nothing is chosen here
        trainer.fit(resume=folder is not None)
        return trainer.model

    def save(self, model: nn.Module, rel: str, plan: Plan | None = None) -> str | None:
        """save_pruned the stage's model under out_dir; returns its relative path."""
        if self.out_dir is None:
            return None
        save_pruned(_plain(model), self.out_dir / rel, arch=self.base_arch, plan=plan)
        return rel

    def plan_step(self, model: nn.Module, i: int, dense_flops: int | None = None) -> tuple[Plan, Any]:
        """Algorithm 1 on the current model for step ``i`` (cumulative target of the dense FLOPs)."""
        from ..flops import count_flops
        from ..importance import channel_energy

        target = self.s.targets()[i - 1]
        groups = self.groups(model)
        rep = count_flops(model, self.example)
        dense = dense_flops if dense_flops is not None else rep.total_macs
        rel = max(0.0, 1.0 - (1.0 - target) * dense / max(rep.total_macs, 1))
        scores = channel_energy(model, groups, criterion=self.s.criterion, normalize=self.s.normalize)
        try:
            plan = global_greedy_plan(model, groups, scores, rel, max_layer_ratio=self.s.max_layer_ratio,
                                      min_channels=self.s.min_channels, round_to=self.s.round_to, report=rep)
        except PlanError as e:
            raise PlanError(f"step {i} (cumulative target {target:.1%} of dense FLOPs): {e}") from None
        return plan, groups

    def check_first_step(self, model: nn.Module) -> None:
        """Raise PlanError now when the first step's target is unreachable under the caps."""
        self.plan_step(model, 1)

    # -- stages -------------------------------------------------------------------------------
    def run_stage(self, stage: str, model: nn.Module, state: dict[str, Any]) -> tuple[nn.Module, str | None]:
        """Run one stage; update ``state['records']``; return the new model and its file."""
        recs = state["records"]
        lr = self.s.retrain_lr if self.s.retrain_lr is not None else self.config.lr / 10
        if stage == "train":
            model = self.train(model, "train", self.config.epochs, None, regularized=True)
            return model, self.save(model, "train/trained.pt")
        if stage == "dense":
            m = self.measure(model)
            state["dense"] = {"flops": m["flops"], "params": m["params"], "acc": m["acc"]}
            recs.append({"step": 0, "stage": "dense", "target_ratio": 0.0, "achieved_ratio": 0.0,
                         "acc_before_retrain": m["acc"], "acc_after_retrain": m["acc"], "flops": m["flops"],
                         "params": m["params"], "widths": _group_widths(self.groups(model))})
            return model, self.save(model, "dense.pt")
        if stage.startswith("prune"):
            i = int(stage[5:])
            target = self.s.targets()[i - 1]
            dense = state["dense"]["flops"]
            plan, _ = self.plan_step(model, i, dense)
            model = prune(model, plan)
            m = self.measure(model)
            recs.append({"step": i, "stage": "prune", "target_ratio": target, "achieved_ratio": 1 - m["flops"] / dense,
                         "acc_before_retrain": m["acc"], "acc_after_retrain": m["acc"], "flops": m["flops"],
                         "params": m["params"], "widths": {k: len(v) for k, v in plan.keep.items()},
                         "step_ratio": plan.achieved_ratio, "layer_ratios": plan.layer_ratios})
            return model, self.save(model, f"step{i}/pruned.pt", plan)
        if stage.startswith("retrain"):
            i = int(stage[7:])
            model = self.train(model, f"step{i}/train", self.s.retrain_epochs, lr, regularized=True)
            recs[-1]["acc_after_retrain"] = self.measure(model)["acc"]
            return model, self.save(model, f"step{i}/retrained.pt")
        if stage == "finetune":
            before = recs[-1]["acc_after_retrain"]
            ft_lr = self.s.finetune_lr if self.s.finetune_lr is not None else lr
            model = self.train(model, "finetune/train", self.s.finetune_epochs, ft_lr, regularized=False)
            m = self.measure(model)
            last = recs[-1]
            recs.append({**{k: last[k] for k in ("target_ratio", "achieved_ratio", "flops", "params", "widths")},
                         "step": last["step"] + 1, "stage": "finetune", "acc_before_retrain": before,
                         "acc_after_retrain": m["acc"]})
            return model, self.save(model, "finetune/finetuned.pt")
        raise AssertionError(stage)


def _module_widths(model: nn.Module) -> dict[str, int]:
    """Conv/Linear module -> output width (part of a retrain checkpoint's architecture key)."""
    return {n: out_width(m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def _plain(model: nn.Module) -> nn.Module:
    """The model without a DDP wrapper."""
    return getattr(model, "module", model)


def prune_iteratively(
    model: nn.Module,
    data: DatasetSplits,
    config: TrainConfig,
    *,
    target_ratio: float,
    groups: Any = None,
    step_ratio: float = 0.1,
    retrain_epochs: int = 1,
    finetune_epochs: int = 1,
    criterion: str = "out_in",
    normalize: str = "layer_max",
    out_dir: str | Path | None = None,
    resume: bool = True,
    train_first: bool = False,
    max_layer_ratio: float = 0.5,
    min_channels: int = 1,
    round_to: int | None = None,
    allow_coupled: bool = False,
    retrain_lr: float | None = None,
    finetune_lr: float | None = None,
    device: str | torch.device = "auto",
    show_progress: bool | None = None,
    on_stage: Callable[[str, dict[str, Any]], None] | None = None,
    eval_precision: str = "fp32",
) -> PipelineResult:
    """Figure 2: prune ``model`` in FLOPs steps of ``step_ratio`` (of dense) to ``target_ratio``, retraining between.

    ``model`` is trained already unless ``train_first`` (then it is trained ``config.epochs``
    with ``config.reg`` first). ``config`` gives the regulariser, data subsets, batch size and
    seed; retraining uses ``retrain_lr`` (default ``config.lr / 10``) with a cosine schedule.
    ``groups`` (of the input model) is accepted for API symmetry; groups are recomputed with
    ``find_groups`` on every pruned model. With ``out_dir`` the run is resumable (``resume``).
    ``eval_precision`` (``fp32`` | ``bf16`` | ``auto``): arithmetic of the accuracy measurements
    only (the demo measures in bf16 on a native-bf16 CPU, ~2.5x faster); training is ``config.precision``.
    """
    del groups  # recomputed per stage (the model changes shape); kept for API symmetry
    s = PipelineSettings(target_ratio, step_ratio, retrain_epochs, finetune_epochs, criterion, normalize,
                         max_layer_ratio, min_channels, round_to, allow_coupled, retrain_lr, finetune_lr,
                         train_first).validate()
    config = config.validate()
    dev = resolve_device(device)
    base_arch = {"name": config.model, "kwargs": {"num_classes": data.num_classes, "width": config.width}}
    if config.model.startswith("torchvision:"):
        base_arch["kwargs"].pop("width")
    out = Path(out_dir) if out_dir is not None else None
    fp = _fingerprint(config, s, base_arch)
    state = load_state(out, fp, resume)
    if state is None:
        state = {"format": STATE_FORMAT, "version": STATE_VERSION, "fingerprint": fp, "config": config.to_dict(),
                 "settings": asdict(s), "reg": config.reg, "done_stages": [], "records": [], "model_file": None,
                 "done": False, "wall_s": 0.0}
    pipe = _Pipeline(data, config, s, out, dev, show_progress, base_arch, eval_precision)
    model = _plain(model).to(dev)
    if not state["done_stages"]:
        pipe.check_first_step(model)  # an unreachable first step fails before anything is written
    if state["model_file"]:
        model = load_pruned(out / state["model_file"], map_location=dev)
    stages = _stages(s)
    bar = progress(total=len(stages), initial=len(state["done_stages"]), desc=f"prune {config.reg}", unit="stage",
                   enabled=show_progress)
    for stage in stages:
        if stage in state["done_stages"]:
            continue
        t0 = time.perf_counter()
        bar.set_postfix(stage=stage)
        model, rel = pipe.run_stage(stage, model, state)
        state["model_file"] = rel if rel is not None else state["model_file"]
        state["done_stages"].append(stage)
        state["wall_s"] = float(state.get("wall_s", 0.0)) + time.perf_counter() - t0
        state["done"] = stage == stages[-1]
        if out is not None:
            atomic_write_json(out / "state.json", state)
        if on_stage is not None:
            on_stage(stage, state)
        bar.update(1)
    bar.close()
    return PipelineResult(records=state["records"], model=model, out_dir=out, state=state)


def finetune_unpruned(
    model: nn.Module,
    data: DatasetSplits,
    config: TrainConfig,
    *,
    epochs: int,
    out_dir: str | Path | None = None,
    finetune_lr: float | None = None,
    device: str | torch.device = "auto",
    show_progress: bool | None = None,
    eval_precision: str = "fp32",
) -> dict[str, Any]:
    """The control for one-shot pruning + fine-tuning: the same fine-tune on the *unpruned* network.

    Same learning rate (default ``config.lr / 10``, cosine, no warm-up), no regulariser, same seed
    and data order as the ``finetune`` stage of :func:`prune_iteratively`, so the difference between
    the two is what the pruning cost after fine-tuning, and a method's lead here is what its
    regularised training alone buys from the extra epochs. Returns ``{"acc_before", "acc_after",
    "flops", "params"}``; with ``out_dir`` the training resumes from its epoch checkpoint.

    Example:
        >>> from oicsr_lab import TrainConfig, build_model, load_dataset
        >>> from oicsr_lab.pruning.iterative import finetune_unpruned
        >>> data = load_dataset("cifar10-sample")
        >>> cfg = TrainConfig(width=0.25, batch_size=32, train_subset=64, test_subset=64)
        >>> r = finetune_unpruned(build_model("resnet20", num_classes=10, width=0.25), data, cfg, epochs=1,
        ...                       device="cpu", show_progress=False)
        >>> sorted(r)
        ['acc_after', 'acc_before', 'flops', 'params']
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"fine-tune epochs must be an integer >= 1, got {epochs!r}")
    config = config.validate()
    dev = resolve_device(device)
    s = PipelineSettings(target_ratio=0.5, finetune_epochs=epochs, finetune_lr=finetune_lr).validate()
    pipe = _Pipeline(data, config, s, Path(out_dir) if out_dir is not None else None, dev, show_progress, {},
                     eval_precision)
    model = _plain(model).to(dev)
    before = pipe.measure(model)
    lr = finetune_lr if finetune_lr is not None else config.lr / 10
    model = pipe.train(model, "finetune/train", epochs, lr, regularized=False)
    after = pipe.measure(model)
    return {"acc_before": before["acc"], "acc_after": after["acc"], "flops": after["flops"],
            "params": after["params"]}
