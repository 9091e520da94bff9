"""Save / load physically pruned models without the original model object.

A file is a plain dict (``torch.load(..., weights_only=True)`` safe)::

    {"format": "oicsr-pruned", "version": 1,
     "arch": {"name": "resnet56", "kwargs": {"num_classes": 10}},   # for build_model
     "widths": {module: {"type": "Conv2d", "in": 16, "out": 9, "groups": 1}, ...},
     "state_dict": {...}, "plan": Plan.to_dict() or None}

Loading rebuilds the dense base model with ``oicsr_lab.models.build_model``, shrinks every
Conv/Linear/BatchNorm to the recorded widths, then loads the state dict strictly.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
import torch.nn as nn

from ..errors import CheckpointError, ConfigError
from ..groups.geometry import BN_TYPES, is_conv
from ..io import atomic_torch_save
from .plan import Plan

FORMAT = "oicsr-pruned"
VERSION = 1


def describe_widths(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per-module widths of every Conv/Linear/BatchNorm (the architecture's variable part)."""
    out: dict[str, dict[str, Any]] = {}
    for name, m in model.named_modules():
        if is_conv(m):
            out[name] = {"type": type(m).__name__, "in": m.in_channels, "out": m.out_channels, "groups": m.groups}
        elif isinstance(m, nn.Linear):
            out[name] = {"type": type(m).__name__, "in": m.in_features, "out": m.out_features}
        elif isinstance(m, BN_TYPES):
            out[name] = {"type": type(m).__name__, "num_features": m.num_features}
    return out


def _norm_arch(arch: str | dict[str, Any]) -> dict[str, Any]:
    """``"resnet56"`` or ``{"name": ..., "kwargs": {...}}`` -> the dict form, checked to be plain data."""
    if isinstance(arch, str):
        arch = {"name": arch, "kwargs": {}}
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise ConfigError(f"arch must be a model name or {{'name': ..., 'kwargs': {{...}}}}, got {arch!r}")
    arch = {"name": arch["name"], "kwargs": dict(arch.get("kwargs") or {})}
    try:
        json.dumps(arch)
    except TypeError as e:
        raise ConfigError(f"arch kwargs must be plain data (numbers, strings, lists, dicts): {e}") from None
    return arch


def save_pruned(model: nn.Module, path: str | os.PathLike, arch: str | dict[str, Any],
                plan: Plan | None = None) -> None:
    """Atomically save a (pruned) model as base-arch + widths + state dict (+ optional plan)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": _norm_arch(arch),
        "widths": describe_widths(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "plan": plan.to_dict() if plan is not None else None,
    }
    atomic_torch_save(payload, path)


def _resize(model: nn.Module, widths: dict[str, dict[str, Any]], where: str) -> None:
    """Shrink the base model's modules to the recorded widths (values come from the state dict)."""
    modules = dict(model.named_modules())
    for name, w in widths.items():
        m = modules.get(name)
        if m is None or type(m).__name__ != w.get("type"):
            found = type(m).__name__ if m is not None else "nothing"
            raise CheckpointError(f"{where}: architecture mismatch: expected {w.get('type')} at {name!r}, "
                                  f"base model has {found}")
        if is_conv(m):
            m.in_channels, m.out_channels, m.groups = int(w["in"]), int(w["out"]), int(w["groups"])
            shape = (m.out_channels, m.in_channels // m.groups, *m.kernel_size)
            n_out = m.out_channels
        elif isinstance(m, nn.Linear):
            m.in_features, m.out_features = int(w["in"]), int(w["out"])
            shape, n_out = (m.out_features, m.in_features), m.out_features
        else:
            m.num_features = n_out = int(w["num_features"])
            shape = (n_out,)
            for buf in ("running_mean", "running_var"):
                if getattr(m, buf, None) is not None:
                    setattr(m, buf, torch.empty(n_out))
        if getattr(m, "weight", None) is not None:
            m.weight = nn.Parameter(torch.empty(shape), requires_grad=m.weight.requires_grad)
        if getattr(m, "bias", None) is not None:
            m.bias = nn.Parameter(torch.empty(n_out), requires_grad=m.bias.requires_grad)


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """One-line CheckpointError when keys or shapes disagree with the rebuilt model."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in state
              and state[k].shape != v.shape]
    if missing or extra or shapes:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "",
                 f"shape {shapes[:3]}" if shapes else ""]
        raise CheckpointError(f"{where}: architecture mismatch: " + "; ".join(p for p in parts if p))


def load_pruned(path: str | os.PathLike, map_location: str | torch.device = "cpu", return_plan: bool = False) -> Any:
    """Rebuild a model saved by :func:`save_pruned` (``weights_only=True``); optionally also its Plan."""
    where = f"pruned checkpoint {os.fspath(path)}"
    if not os.path.exists(path):
        raise CheckpointError(f"{where} does not exist; save one with save_pruned(model, path, arch=...)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, ...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"{where} is truncated or corrupt ({type(e).__name__}: "
                              f"{msg[:120]}); re-save it") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not an oicsr pruned checkpoint (no format={FORMAT!r}); use load_pruned only "
                              "on save_pruned files")
    if int(payload.get("version", 0)) > VERSION:
        raise CheckpointError(f"{where} has format version {payload.get('version')}, newer than "
                              f"{VERSION}; upgrade oicsr-lab")
    try:
        arch, widths, state = payload["arch"], payload["widths"], payload["state_dict"]
    except KeyError as e:
        raise CheckpointError(f"{where} lacks the {e.args[0]!r} entry; re-save it with save_pruned") from None
    from ..models import build_model

    try:
        model = build_model(arch["name"], **arch.get("kwargs", {}))
    except Exception as e:
        raise CheckpointError(f"{where}: cannot rebuild base model {arch.get('name')!r}: {e}") from None
    where = f"{where} (base model {arch['name']!r})"
    _resize(model, widths, where)
    _check_state(model, state, where)
    model.load_state_dict(state, strict=True)
    model.to(map_location)
    model.eval()
    if return_plan:
        plan = Plan.from_dict(payload["plan"]) if payload.get("plan") else None
        return model, plan
    return model
