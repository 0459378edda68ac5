"""Errors that are the user's to fix: the CLIs print a UsageError as one line and exit 2."""


class UsageError(Exception):
    """Bad input from the user: a path, a file's contents, an option's value."""


class ImageError(ValueError):
    """An image that holds no digit to classify: the server answers it with a 400, a script may skip it."""
