"""The base of every error a user can fix: its message says what to do. Commands report one as a
single line with exit status 2 (``jobs.entry``); any other exception is a bug and keeps its traceback."""
from __future__ import annotations


class UserError(Exception):
    """An error whose message tells the user what to change (a file, an option, a configuration)."""
