"""Validation and small reshaping helpers shared by the figure modules."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ..errors import ConfigError


def natural_key(name: str) -> tuple:
    """Sort key that orders ``layer3.10.conv1`` after ``layer3.9.conv1`` (network order)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", str(name)) if p)


def natural_sorted(names: Iterable[str]) -> list[str]:
    """Unique names in natural (network) order."""
    return sorted(dict.fromkeys(names), key=natural_key)


def as_frame(data: Any, what: str, required: Sequence[str]) -> pd.DataFrame:
    """A non-empty DataFrame from a DataFrame, CSV path or list of records, with ``required`` columns."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.exists():
            raise ConfigError(f"{what}: file {path} does not exist; run `oicsr-lab reproduce` first")
        data = pd.read_csv(path)
    if data is None:
        raise ConfigError(f"{what}: no data given (None); pass the DataFrame read from the reproduce results")
    df = data.copy() if isinstance(data, pd.DataFrame) else pd.DataFrame(list(data))
    if df.empty:
        raise ConfigError(f"{what}: the data is empty (0 rows); nothing to plot")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ConfigError(f"{what}: missing column(s) {missing}; got {list(df.columns)}")
    return df


def load_json_like(data: Any, what: str) -> Any:
    """``data`` itself, or the parsed JSON file when ``data`` is a path."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.exists():
            raise ConfigError(f"{what}: file {path} does not exist; run `oicsr-lab reproduce` first")
        return json.loads(path.read_text())
    if data is None or (hasattr(data, "__len__") and len(data) == 0):
        raise ConfigError(f"{what}: no data given (empty); nothing to plot")
    return data


def pick_regs(available: Iterable[str], regs: Iterable[str] | None, what: str) -> list[str]:
    """The requested regularisers (canonical order when ``regs`` is None), checked against the data."""
    from .style import order_regs

    available = order_regs(available)
    if not available:
        raise ConfigError(f"{what}: no regulariser in the data; nothing to plot")
    if regs is None:
        return available
    regs = [str(r) for r in regs]
    unknown = [r for r in regs if r not in available]
    if unknown:
        raise ConfigError(f"{what}: regulariser(s) {unknown} not in the data; available: {available}")
    if not regs:
        raise ConfigError(f"{what}: empty regs list; choose from {available}")
    return regs


def pick_value(df: pd.DataFrame, column: str, value: Any, prefer: Sequence[Any], what: str) -> Any:
    """A single value of ``column``: ``value`` if given (checked), else the first of ``prefer`` present."""
    present = [v for v in dict.fromkeys(df[column].dropna().tolist())]
    if value is not None:
        if value not in present:
            raise ConfigError(f"{what}: {column}={value!r} not in the data; available: {present}")
        return value
    for p in prefer:
        if p in present:
            return p
    return sorted(present, key=str)[0] if present else None


def fmt_ratio(r: float) -> str:
    """``0.3`` -> ``30%``; ``0.125`` -> ``12.5%`` (input is a fraction or a percent > 1)."""
    pct = float(r) * 100 if float(r) <= 1 else float(r)
    return f"{pct:.3g}%"
