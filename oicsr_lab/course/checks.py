"""Exercise checks students can run: right / wrong with a hint, never the answer itself.

Every checkable exercise of notebooks 00-06 is registered here under an id such as ``"04.1"``
(notebook 04, exercise 1) with a function that *recomputes* the reference from the objects the
notebook already holds (the model, its groups, the FLOPs report...) and compares the student's
answer with it. So a check holds at every preset (``ci``, ``quick``, ``course``) and for any
model the student picked, and the feedback never prints the expected value.

Two entry points use the same comparison:

* :func:`check` (the visible check cell of a student notebook) displays a one-line verdict --
  "not answered yet", "not yet" with a hint, or "right" -- and never raises, so *Run All* works
  on an unanswered notebook;
* :func:`grade` (nbgrader's hidden tests, present only in the instructor version) raises
  ``AssertionError`` unless the answer is right, which is how nbgrader's autograder scores a cell.

Example:
    >>> from oicsr_lab.course.checks import verdict
    >>> verdict("01.4", None).status
    'not answered'
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .registry import EXERCISES, Exercise

RIGHT, WRONG, MISSING = "right", "wrong", "not answered"
_STYLE = {RIGHT: ("#1b7f3b", "✓ right"), WRONG: ("#b3261e", "✗ not yet"), MISSING: ("#7a5c00", "… not answered yet")}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: status (right / wrong / not answered) and the message shown."""

    exercise: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == RIGHT

    def __str__(self) -> str:
        return f"Exercise {self.exercise}: {_STYLE[self.status][1]} -- {self.message}"

    def _repr_html_(self) -> str:
        color, label = _STYLE[self.status]
        return (f"<div style='border-left:4px solid {color};padding:4px 10px;margin:2px 0'>"
                f"<b style='color:{color}'>Exercise {html.escape(self.exercise)}: {label}</b> "
                f"&mdash; {html.escape(self.message)}</div>")


def _lookup(exercise_id: str) -> Exercise:
    from . import answers  # noqa: F401  (registers every exercise on first use)

    if exercise_id not in EXERCISES:
        raise ConfigError(f"unknown exercise {exercise_id!r}; known: {', '.join(sorted(EXERCISES))}")
    return EXERCISES[exercise_id]


def unanswered(answer: Any) -> bool:
    """Whether ``answer`` is still the placeholder (``None`` or ``...``)."""
    return answer is None or answer is Ellipsis


def verdict(exercise_id: str, answer: Any, **context: Any) -> Verdict:
    """Compare ``answer`` with the reference the check recomputes from ``context``; no output."""
    ex = _lookup(exercise_id)
    if unanswered(answer):
        return Verdict(exercise_id, MISSING, f"set {ex.asks}, then rerun this cell")
    try:
        ok, hint = ex.compare(answer, **context)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as e:  # an answer of the wrong kind
        return Verdict(exercise_id, WRONG,
                       f"the answer could not be read ({type(e).__name__}: {e}); expected {ex.asks}")
    return Verdict(exercise_id, RIGHT if ok else WRONG, "well done" if ok else hint)


def check(exercise_id: str, answer: Any, **context: Any) -> None:
    """Show the verdict on ``answer`` (a coloured line in Jupyter, text elsewhere); never raises on a wrong answer.

    Returns nothing, so a check as a cell's last line is shown once; :func:`verdict` returns it.
    """
    v = verdict(exercise_id, answer, **context)
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display

        if get_ipython() is not None:
            display(HTML(v._repr_html_()))
            return
    except ImportError:  # pragma: no cover - IPython ships with the notebooks' stack
        pass
    print(v)


def grade(exercise_id: str, answer: Any, **context: Any) -> None:
    """nbgrader's hidden test: raise ``AssertionError`` (one line) unless ``answer`` is right."""
    v = verdict(exercise_id, answer, **context)
    if not v:
        raise AssertionError(str(v))
