"""Errors that are the user's to fix: the CLIs print them as one line and exit 2."""


class UsageError(Exception):
    """Bad input from the user: a path, a file's contents, an option's value."""
