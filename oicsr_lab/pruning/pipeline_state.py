"""The on-disk state of an iterative pruning run (``out_dir/state.json``): its format, and reading it back.

``prune_iteratively`` writes the state atomically after every completed stage; :func:`load_state`
checks that a folder holds a run with the same settings before it resumes, and
:func:`load_pipeline` reads a finished or interrupted run's records for reports.

    state = load_pipeline("runs/prune")      # {"records": [...], "done_stages": [...], ...}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError

STATE_FORMAT = "oicsr-pipeline"
STATE_VERSION = 1


def load_state(out: Path | None, fingerprint: str, resume: bool) -> dict[str, Any] | None:
    """The saved state of a matching run in ``out`` (None when starting fresh)."""
    if out is None:
        return None
    path = out / "state.json"
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable pipeline state ({e}); delete the folder or "
                          "choose another --out") from None
    if state.get("format") != STATE_FORMAT:
        raise ConfigError(f"{path}: not an oicsr-lab pipeline state; choose another --out")
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(f"{out}: holds a pruning run with other settings; choose another --out or delete it")
    if not resume:
        raise ConfigError(f"{out}: a pruning run is already there; pass --resume to continue it or "
                          "choose another --out")
    return state


def load_pipeline(out_dir: str | Path) -> dict[str, Any]:
    """The state (records, settings, config) of a pipeline folder, for reports and resume checks.

    Example:
        >>> import tempfile
        >>> from oicsr_lab.pruning.pipeline_state import load_pipeline
        >>> try:
        ...     load_pipeline(tempfile.mkdtemp())
        ... except Exception as e:
        ...     print(type(e).__name__)
        ConfigError
    """
    path = Path(out_dir) / "state.json"
    if not path.exists():
        raise ConfigError(f"{out_dir}: no state.json; is it a prune run folder?")
    return json.loads(path.read_text())
