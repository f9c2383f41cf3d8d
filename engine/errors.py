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


class TDengineError(TdsyncError):
    """An error as TDengine reports it: a numeric code (``code & 0xffff`` on the wire) and text.

    Raised by the sandbox (which answers with real TDengine codes, see ``engine.error_codes``)
    and by the connectors for errors a server returned.
    """

    def __init__(self, code: int, message: str) -> None:
        self.code = code & 0xFFFF
        self.message = message
        super().__init__(f"[0x{self.code:04x}] {message}")

    def __reduce__(self):
        return (type(self), (self.code, self.message))
