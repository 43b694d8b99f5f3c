"""Errors in what the user gave megathink: a config value, a file, a checkpoint folder.

Each message names the field or file and the fix. The command line prints these as one line
and exits with status 2; anything else is a bug and keeps its traceback. Each class also
derives from the matching built-in (ValueError, FileNotFoundError, FileExistsError), so
callers that catch those keep working.
"""


class MegathinkError(Exception):
    """Base class of the errors the command line reports without a traceback."""


class ConfigError(MegathinkError, ValueError):
    """A config value is out of range, of the wrong kind, or inconsistent with another."""


class DataError(MegathinkError, ValueError):
    """A data file, tokenizer or dataset is malformed (the message names file, row and field)."""


class MissingPathError(MegathinkError, FileNotFoundError):
    """A path from the config does not exist or lacks what it must hold."""


class ExistingOutputError(MegathinkError, FileExistsError):
    """Writing would replace or mix with something already written; nothing was touched."""


class CollectiveTimeoutError(MegathinkError, TimeoutError):
    """A rank waited past `trainer.dist_timeout_minutes` for the others (usually for rank 0's
    rollouts or evaluation); the message names the field."""
