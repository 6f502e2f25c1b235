"""Errors raised by the reconstruction library.

Every error a user can cause derives from :class:`NxsciError`, so a CLI or service can turn it into a
clear message (exit status 2, HTTP 4xx) instead of a traceback.
"""

from __future__ import annotations

__all__ = ["NxsciError", "DatasetError", "UnknownElementError", "OutputExistsError", "OutputError", "SolverError"]


class NxsciError(Exception):
    """Base class for problems with user input or configuration."""


class DatasetError(NxsciError, ValueError):
    """An interchange file or in-memory dataset is malformed (shapes, NaNs, missing fields)."""


class UnknownElementError(DatasetError, KeyError):
    """An element was asked for that the dataset does not carry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class OutputExistsError(NxsciError, FileExistsError):
    """Refusing to write over an existing file without ``overwrite=True``."""


class OutputError(NxsciError, OSError):
    """An output cannot be written where it was asked for (no such directory, no permission, read-only)."""


class SolverError(NxsciError, RuntimeError):
    """A reconstruction cannot run with the given parameters or data (e.g. too few patterns)."""
