"""Exception types raised at gatkit's public boundary."""

from __future__ import annotations


class GatkitError(Exception):
    """Base class of every error gatkit raises on purpose."""


class GraphInputError(GatkitError, ValueError):
    """A tensor handed to a layer or operator has the wrong shape, dtype or values.

    The message names the argument, what was expected and what came.
    """


class DatasetError(GatkitError, RuntimeError):
    """A dataset file is missing, corrupt, truncated or malformed."""


class CheckpointError(GatkitError, RuntimeError):
    """A checkpoint cannot be read or does not fit the model it is loaded into."""
