"""Progress bars that show in a terminal or a notebook and stay silent in logs and CI."""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable


def in_notebook() -> bool:
    """True inside a Jupyter kernel."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"
    except Exception:
        return False


def progress(iterable: Iterable | None = None, enabled: bool | None = None, **kwargs: Any):
    """A tqdm bar: notebook widget in Jupyter, text in a terminal, disabled otherwise.

    ``enabled=None`` decides automatically; ``OICSR_LAB_PROGRESS=0`` turns bars off.
    """
    if enabled is None:
        enabled = os.environ.get("OICSR_LAB_PROGRESS", "1") != "0" and (in_notebook() or sys.stderr.isatty())
    if enabled and in_notebook():
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(iterable, disable=not enabled, dynamic_ncols=True, leave=kwargs.pop("leave", False), **kwargs)
