"""Every error a tdsync user can see, each with a message that says what to do.

All of them derive from :class:`TdsyncError`, so the command line can turn any of them into
one clear line on stderr instead of a traceback.
"""

from __future__ import annotations


class TdsyncError(Exception):
    """Base of every error tdsync reports to a user."""


class UsageError(TdsyncError):
    """The command line or a configuration value is wrong; the message names it."""


class CodecError(TdsyncError, ValueError):
    """Bytes that are not valid TDengine raw data.

    ``field`` names the part of the format that was wrong and ``offset`` the byte offset in
    the input where it starts, so an operator can find it with a hex dump.
    """

    def __init__(self, field: str, offset: int, reason: str) -> None:
        self.field = field
        self.offset = offset
        self.reason = reason
        super().__init__(f"invalid {field} at byte {offset}: {reason}")

    def __reduce__(self):  # keep the three fields across pickling (worker processes)
        return (type(self), (self.field, self.offset, self.reason))


class InputFileError(TdsyncError):
    """A file given on the command line cannot be read or identified."""
