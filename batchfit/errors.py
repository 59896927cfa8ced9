"""Exceptions and warnings raised by batchfit.

Every error a user can cause derives from :class:`BatchfitError`, so that the
command line can print it without a traceback and exit with code 2.
"""

from __future__ import annotations


class BatchfitError(Exception):
    """Base class of every error caused by bad input, config or usage."""


class ParameterError(BatchfitError, ValueError):
    """A parameter is invalid: bad name, non-numeric value, ``min > max``."""


class ExpressionError(BatchfitError, ValueError):
    """A constraint or model expression is invalid, unsafe, cyclic or unknown."""


class FitError(BatchfitError, RuntimeError):
    """A single fit cannot run: residual of changing length, NaN residual, bad engine."""


class ModelError(BatchfitError, ValueError):
    """A model is unknown, cannot be imported, or has an unusable signature."""


class ConfigError(BatchfitError, ValueError):
    """A job config is invalid: unknown key, wrong type, impossible value."""


class InputError(BatchfitError, ValueError):
    """The input data cannot be used: missing variable or dim, unreadable file."""


class StoreError(BatchfitError, RuntimeError):
    """The output store cannot be used: made by another config, not writable."""


class ClusterError(BatchfitError, RuntimeError):
    """The cluster cannot run the job: a scheduler unreachable or without workers."""


class BatchfitWarning(UserWarning):
    """Base class of batchfit's warnings."""
