"""Errors that end a command with one clear line and exit status 2.

Bad input is never a traceback: readers raise ``InputError`` with an F-family code, and the CLI
prints ``error[F102]: <path>: <message>`` and exits 2.
"""

from __future__ import annotations


class InputError(Exception):
    """The input cannot be read as a model file. ``code`` is an F-family rule code."""

    def __init__(self, code: str, message: str, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path
        self.hint = hint

    def one_line(self) -> str:
        where = f"{self.path}: " if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"error[{self.code}]: {where}{self.message}{hint}"


class UsageError(Exception):
    """The command line or API call is wrong (bad TARGET, bad JSON in --model-args, ...)."""
