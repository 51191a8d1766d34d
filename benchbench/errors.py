"""User-facing errors: the CLI prints their message on one line and exits non-zero, without a traceback."""

from __future__ import annotations


class BenchbenchError(Exception):
    """An error caused by the user's input or environment; its message names the problem and the fix."""


class ConfigError(BenchbenchError):
    """A bad preset, override key or override value."""


class DataError(BenchbenchError):
    """A missing, truncated or malformed dataset file."""


class TrainingError(BenchbenchError):
    """Training could not continue (for example a non-finite loss)."""


class UnknownNameError(BenchbenchError, KeyError):
    """A registry lookup for a name nobody registered."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class MetricInputError(BenchbenchError):
    """Codes, factors or attributes a metric cannot score (NaN, wrong shapes, degenerate labels)."""
