"""The course kit: exercise checks for students, the shipped models as the notebooks use them, and
the student / instructor release and grading built on nbgrader.

* :func:`check` / :func:`grade` / :func:`verdict` (:mod:`.checks`, references in :mod:`.answers`):
  the check cells of the notebooks' exercises;
* :func:`shipped_models` (:mod:`.shipped`): every shipped network per regulariser, and what is missing;
* :func:`release` (:mod:`.release`) and :func:`grade_submissions` (:mod:`.grading`): ``oicsr-lab course``.

Example:
    >>> from oicsr_lab import course
    >>> course.verdict("00.3", None).status
    'not answered'
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "check": "oicsr_lab.course.checks", "grade": "oicsr_lab.course.checks", "verdict": "oicsr_lab.course.checks",
    "EXERCISES": "oicsr_lab.course.registry", "shipped_models": "oicsr_lab.course.shipped",
    "release": "oicsr_lab.course.release", "grade_submissions": "oicsr_lab.course.grading",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public function from its submodule on first use (nbgrader loads only for release/grading)."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'oicsr_lab.course' has no attribute {name!r}")
