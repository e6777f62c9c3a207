"""Exceptions for problems the user can fix.

Every error a user can cause (a malformed file, a wrong option, an unsupported symmetry) is an
:class:`InputError`. The command line prints its message on one line and exits non-zero without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """A problem with the user's input, with a message that says what is wrong and what to do."""


class FormatError(InputError):
    """A file that cannot be read as the format it claims to be.

    The message always names the file and, where known, the line or header field at fault.
    """

    def __init__(self, path, what: str, line: int | None = None, field: str | None = None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {what}")
        self.path = str(path)
        self.line = line
        self.field = field


class SymmetryError(InputError):
    """The map's crystal symmetry is not one the requested operation supports."""
