"""The registry of checkable exercises: id -> what to answer and how to compare (one place).

:mod:`.answers` registers each comparison with :func:`exercise`; :mod:`.checks` looks them up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError

Compare = Callable[..., tuple[bool, str]]


@dataclass(frozen=True)
class Exercise:
    """One checkable exercise: its id, what the answer variable should hold, and its comparison."""

    id: str
    asks: str  # what to assign, e.g. "ex3_stage: the stage whose channels save the most MACs each"
    compare: Callable[..., tuple[bool, str]]  # (answer, **context) -> (right?, hint when wrong)


EXERCISES: dict[str, Exercise] = {}


def exercise(exercise_id: str, asks: str) -> Callable[[Compare], Compare]:
    """Register ``compare(answer, **context) -> (right, hint)`` as the check of ``exercise_id``."""

    def register(compare: Compare) -> Compare:
        if exercise_id in EXERCISES:
            raise ConfigError(f"exercise {exercise_id!r} is registered twice")
        EXERCISES[exercise_id] = Exercise(exercise_id, asks, compare)
        return compare

    return register


