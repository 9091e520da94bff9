"""The project's error types: one-line messages that name the thing and how to fix it."""

from __future__ import annotations


class OICSRError(Exception):
    """Base class of every user-facing error; the CLI prints it as one line, no traceback."""


class ConfigError(OICSRError, ValueError):
    """A bad name, value or option passed by the user (unknown model, negative strength...)."""


class DataError(OICSRError):
    """A dataset that is missing, empty or corrupt."""


class UnsupportedModelError(OICSRError):
    """The graph tracer met an operation it cannot map to channel groups."""


class CheckpointError(OICSRError):
    """A checkpoint that is truncated, corrupt, or from another architecture."""


class OutputError(OICSRError, OSError):
    """An output location that cannot be written (a file in the way, a read-only folder)."""


class PlanError(OICSRError, ValueError):
    """A pruning target that is out of range or unreachable under the caps."""
