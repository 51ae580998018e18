"""The command line's one error: what a user did wrong, said in one line."""

from __future__ import annotations


class TaskError(ValueError):
    """Bad input data or arguments; the command line prints the message, no traceback."""
