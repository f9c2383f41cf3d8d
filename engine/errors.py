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


# --- replication ---
class ReplicationError(TdsyncError):
    """A worker stopped on something that needs an operator; the message names what and where."""


class WalRetentionExceeded(ReplicationError):
    """The source dropped WAL entries tdsync had not copied yet: data was lost at the source."""

    def __init__(self, database: str, vgroup: int, first_lost: int, last_lost: int) -> None:
        self.database, self.vgroup = database, vgroup
        self.first_lost, self.last_lost = first_lost, last_lost
        super().__init__(
            f"database {database} vgroup {vgroup}: WAL versions {first_lost}..{last_lost} were dropped by the "
            f"source's WAL_RETENTION_PERIOD before tdsync copied them; those writes are lost for this replica. "
            f"Raise WAL_RETENTION_PERIOD on the source, then re-create the replica to copy the data afresh")

    def __reduce__(self):
        return (type(self), (self.database, self.vgroup, self.first_lost, self.last_lost))


class SinkWriteError(ReplicationError):
    """The sink refused a write for a reason retrying cannot fix (schema mismatch, missing database)."""


# --- native connector and offsets ---
class NativeLibraryMissing(TdsyncError):
    """The TDengine client library (libtaos) could not be loaded for a native (``taos://``) endpoint.

    ``searched`` lists every file name or path that was tried and ``reasons`` what the loader said.
    """

    def __init__(self, searched: list[str], reasons: list[str] | None = None) -> None:
        self.searched = list(searched)
        self.reasons = list(reasons or [])
        absent = ("no such file", "not found", "could not find")
        notable = [r for r in self.reasons if not any(word in r.lower() for word in absent)]
        if notable:        # found but unusable (wrong architecture, missing dependency, too old): say why
            detail = f" ({'; '.join(notable[:3])})"
        else:
            detail = " (none of them exists)" if self.reasons else ""
        super().__init__(
            "the TDengine client library is needed for native (taos://) endpoints but could not be loaded; "
            f"tried: {', '.join(self.searched)}{detail}. Install the TDengine client package "
            "(TDengine-client, same 3.3.x version as the server), or point TAOS_LIBRARY_PATH at the libtaos file "
            "or its directory, or add that directory to LD_LIBRARY_PATH (DYLD_LIBRARY_PATH on macOS, PATH on "
            "Windows); or use a ws:// endpoint (taosAdapter) instead")

    def __reduce__(self):
        return (type(self), (self.searched, self.reasons))


class OffsetStoreError(TdsyncError):
    """The LMDB offset store cannot be opened or written; the message names the path and the cause."""


# --- connectors ---
class EndpointError(UsageError):
    """An endpoint (``host:port`` or ``taos://``/``ws://``/``wss://``/``http://`` URL) cannot be parsed.

    The message names the endpoint with its password replaced by ``***`` and says what is wrong.
    """


class ConnectorError(TdsyncError):
    """A server answered something the connector cannot understand (a protocol mismatch, not transient)."""


class ConnectionLost(TdsyncError):
    """The connection to a server dropped, could not be opened, or a request timed out.

    Transient: the caller retries (with back-off); nothing is known about a request that was in
    flight. ``endpoint`` is the redacted endpoint text.
    """

    transient = True

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(f"connection to {endpoint} lost: {reason}; it will be retried")

    def __reduce__(self):
        return (type(self), (self.endpoint, self.reason))


# --- replica CLI ---
class ReplicaCheckFailed(TdsyncError):
    """``tdsync replica``: an endpoint cannot be reached or refused a check; the message names it (no password)."""


class DatabaseNotFound(ReplicaCheckFailed):
    """A database named for replication is missing on one side (the seed's wording)."""

    def __init__(self, database: str, where: str) -> None:
        self.database, self.where = database, where
        super().__init__(f"Database `{database}` not exists on {where}")

    def __reduce__(self):
        return (type(self), (self.database, self.where))


class ReplicaBusy(TdsyncError):
    """``tdsync replica remove`` refused: a task is (meant to be) running; stop it first or use --force."""


# --- supervisor ---
class ConfigError(UsageError):
    """A configuration file holds a value tdsync cannot use; the message names the file and the key."""

    def __init__(self, path: str, key: str | None, reason: str) -> None:
        self.path, self.key, self.reason = path, key, reason
        where = f"config file {path}" + (f": key `{key}`" if key else "")
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.key, self.reason))


class ConfigFileUnreadable(UsageError):
    """The configuration file named (by --config or $TDSYNC_CONFIG) does not exist or cannot be read."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot read the config file {path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


class SupervisorAlreadyRunning(TdsyncError):
    """Another ``tdsync serve`` holds this state directory on this host."""

    def __init__(self, state_dir: str, holder: str) -> None:
        self.state_dir, self.holder = state_dir, holder
        super().__init__(f"another tdsync serve ({holder}) is running with the state directory {state_dir}; "
                         f"stop it first (systemctl stop tdsync) or give this one another --state-dir")

    def __reduce__(self):
        return (type(self), (self.state_dir, self.holder))


# --- failover client ---
class ClientError(TdsyncError):
    """Base of the errors the failover client (:mod:`engine.client`) raises itself.

    SQL errors are not among them: the wrapped connector's own exception (``taosws.QueryError``,
    ``taos.error.ProgrammingError``, ...) reaches the caller unchanged.
    """


class ClientSettingsError(ClientError, UsageError):
    """A DSN or a setting of :func:`engine.client.connect` is wrong; the message names it (no password)."""


class ClientClosed(ClientError):
    """The connection, cursor or statement was closed (by :meth:`close` or a ``with`` block)."""


class ClientUsageError(ClientError):
    """An API misuse, e.g. ``fetchone()`` before any ``execute()`` that returned rows."""


class ConnectionUnavailable(ClientError):
    """No node could serve the call: every endpoint was tried and failed (or reconnection is off).

    ``failures`` is a list of ``(endpoint, last error)`` pairs, one per node, endpoints redacted
    (``ws://root@td1:6041``) and error texts scrubbed of passwords.
    """

    def __init__(self, failures: list[tuple[str, str]], note: str = "") -> None:
        self.failures = [(str(endpoint), str(error)) for endpoint, error in failures]
        self.note = note
        listed = "; ".join(f"{endpoint}: {error}" for endpoint, error in self.failures)
        super().__init__(f"no TDengine node could serve the call ({len(self.failures)} tried): {listed}"
                         + (f" ({note})" if note else ""))

    def __reduce__(self):
        return (type(self), (self.failures, self.note))
