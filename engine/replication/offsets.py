"""Where each replica stands: per (replica, database, vgroup) the last offset written to the sink.

The store is an LMDB environment (a directory holding ``data.mdb`` and ``lock.mdb``, both mode
0600, the directory 0700) with one named database, ``offsets``. Keys are the msgpack encoding of
``[replica, database, vgroup]`` — msgpack strings are self-delimiting, so the encoding of
``[replica]`` or ``[replica, database]`` (with the same array header) is a byte prefix of exactly
that replica's / that database's keys, which makes :meth:`OffsetStore.all` and
:meth:`OffsetStore.delete` range scans. Values are msgpack maps ``{offset, rows, bytes, time}``.

Several processes (the supervisor, one worker per vgroup, the CLI) use the same directory at once:
LMDB serialises writers with a lock in ``lock.mdb`` (``lock=True``) and every write here is one
short transaction. LMDB forbids opening one environment twice in a process, so environments are
shared per process through :func:`shared_environment` — other modules that keep state in the same
directory (under another named database) must open it through that function too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import lmdb
import msgpack

from engine.errors import OffsetStoreError, UsageError

__all__ = ["OffsetRecord", "OffsetStore", "shared_environment", "release_environment"]

OFFSETS_DB = b"offsets"
MAX_DBS = 16                      # room for the state kept by other modules in the same directory
INITIAL_MAP_SIZE = 64 << 20       # offsets are ~100 bytes a vgroup; grown on MapFullError
MAX_READERS = 512                 # reader slots in lock.mdb: one per process/thread reading at once
DIR_MODE = 0o700                  # py-lmdb creates the files with this mode minus the x bits: 0600
FILE_MODE = 0o600


@dataclass(frozen=True)
class OffsetRecord:
    """What the sink holds for one source vgroup of one database of one replica.

    ``offset`` is the WAL version to resume from (the next one not yet written); ``rows`` and
    ``bytes`` are totals over every write; ``time`` is the Unix time of the last write.
    """

    replica: str
    database: str
    vgroup: int
    offset: int
    rows: int
    bytes: int
    time: float


# --- one environment per process ---------------------------------------------------------------
_lock = threading.Lock()
_environments: dict[str, list] = {}   # realpath -> [env, pid, users]


def shared_environment(path: str | os.PathLike) -> lmdb.Environment:
    """This process's LMDB environment for ``path`` (created 0700/0600 if absent); pair with
    :func:`release_environment`."""
    key = os.path.realpath(os.fspath(path))
    with _lock:
        entry = _environments.get(key)
        if entry is not None and entry[1] != os.getpid():
            # Inherited through fork(): LMDB forbids using the parent's handle in the child. Closing
            # it here only drops the child's copies (fcntl locks are not inherited), then reopen.
            try:
                entry[0].close()
            except lmdb.Error:
                pass
            entry = None
        if entry is None:
            entry = [_open(key), os.getpid(), 0]
            _environments[key] = entry
        entry[2] += 1
        return entry[0]


def release_environment(path: str | os.PathLike) -> None:
    """Give back one :func:`shared_environment` reference; the last one closes the environment."""
    key = os.path.realpath(os.fspath(path))
    with _lock:
        entry = _environments.get(key)
        if entry is None or entry[1] != os.getpid():
            return
        entry[2] -= 1
        if entry[2] <= 0:
            del _environments[key]
            entry[0].close()


def _open(path: str) -> lmdb.Environment:
    try:
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        env = lmdb.open(path, map_size=INITIAL_MAP_SIZE, subdir=True, mode=DIR_MODE, max_dbs=MAX_DBS,
                        max_readers=MAX_READERS, lock=True, sync=True, metasync=True, readahead=False)
    except (lmdb.Error, OSError) as exc:
        raise OffsetStoreError(
            f"cannot open the offset store {path}: {exc}. Check that the directory is writable by this user "
            f"and on a local file system (LMDB needs working file locks; NFS is not supported)") from None
    # Files made before by another tool (or a wider umask) are narrowed: offsets name hosts and databases.
    for name in ("data.mdb", "lock.mdb"):
        file = os.path.join(path, name)
        try:
            if os.stat(file).st_mode & 0o777 != FILE_MODE:
                os.chmod(file, FILE_MODE)
        except OSError:
            pass                    # owned by someone else: leave it, LMDB already opened it
    try:
        env.reader_check()          # free reader slots left by processes that died
    except lmdb.Error:
        pass
    return env


# --- encoding ----------------------------------------------------------------------------------
def _key(replica: str, database: str, vgroup: int) -> bytes:
    return msgpack.packb([replica, database, vgroup])


def _prefix(*parts: str) -> bytes:
    # Header of a 3-element array (0x93) followed by the leading elements: a byte prefix of the keys.
    return b"\x93" + b"".join(msgpack.packb(part) for part in parts)


def _encode_value(offset: int, rows: int, nbytes: int, when: float) -> bytes:
    return msgpack.packb({"offset": offset, "rows": rows, "bytes": nbytes, "time": when})


def _decode(key: bytes, value: bytes) -> OffsetRecord:
    replica, database, vgroup = msgpack.unpackb(key)
    v = msgpack.unpackb(value)
    return OffsetRecord(replica, database, vgroup, v["offset"], v["rows"], v["bytes"], v["time"])


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"offset store: {what} must be a non-empty string, got {value!r}")
    return value


def _check_int(what: str, value: object, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"offset store: {what} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise UsageError(f"offset store: {what} must be >= {minimum}, got {value}")
    return value


# --- the store ---------------------------------------------------------------------------------
class OffsetStore:
    """Offsets of every replica, kept in the LMDB directory ``path``.

    >>> store = OffsetStore("/var/lib/tdsync/state")
    >>> store.put_batch([("r1", "power", 2, 1050, 4000, 180_000)])
    >>> store.get("r1", "power", 2).offset
    1050
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._closed = False
        self._attach()

    def _attach(self) -> None:
        self._pid = os.getpid()
        self._env = shared_environment(self.path)
        try:
            self._db = self._env.open_db(OFFSETS_DB, create=True)
        except lmdb.Error as exc:
            release_environment(self.path)
            raise OffsetStoreError(f"cannot open the offsets table in {self.path}: {exc}") from None

    def __enter__(self) -> OffsetStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._pid == os.getpid():
                release_environment(self.path)

    def _check_open(self) -> None:
        if self._closed:
            raise OffsetStoreError(f"the offset store {self.path} is closed")
        if self._pid != os.getpid():    # used in a child after fork(): open the child's own environment
            self._attach()

    def get(self, replica: str, database: str, vgroup: int) -> OffsetRecord | None:
        self._check_open()
        key = _key(replica, database, vgroup)
        with self._begin() as txn:
            value = txn.get(key)
        return None if value is None else _decode(key, value)

    def put_batch(self, items: Iterable[tuple[str, str, int, int, int, int]]) -> None:
        """Record writes: ``(replica, database, vgroup, offset, rows, bytes)`` each, all in ONE transaction.

        ``offset`` replaces the stored one; ``rows`` and ``bytes`` are added to the totals; the time
        of every record is now. Any failure leaves the store as it was (nothing of the batch is kept).
        """
        self._check_open()
        items = list(items)
        if not items:
            return
        now = time.time()
        for _attempt in range(8):
            try:
                with self._begin(write=True) as txn:
                    for item in items:
                        replica, database, vgroup, offset, rows, nbytes = item
                        key = _key(_check_name("replica", replica), _check_name("database", database),
                                   _check_int("vgroup", vgroup, 0))
                        _check_int("offset", offset)
                        _check_int("rows", rows, 0)
                        _check_int("bytes", nbytes, 0)
                        old = txn.get(key)
                        if old is not None:
                            previous = msgpack.unpackb(old)
                            rows += previous["rows"]
                            nbytes += previous["bytes"]
                        txn.put(key, _encode_value(offset, rows, nbytes, now))
                return
            except lmdb.MapFullError:
                self._grow()
            except lmdb.Error as exc:
                raise OffsetStoreError(f"cannot write offsets to {self.path}: {exc}") from None
        raise OffsetStoreError(f"cannot write offsets to {self.path}: the LMDB map stays full after growing it")

    def _begin(self, write: bool = False) -> lmdb.Transaction:
        try:
            return self._env.begin(write=write, db=self._db)
        except lmdb.MapResizedError:      # another process grew the map: adopt its size
            self._env.set_mapsize(0)
            return self._env.begin(write=write, db=self._db)

    def _grow(self) -> None:
        # Only this process's view changes; other processes pick the new size up when they next grow,
        # and LMDB adopts a larger size written by another process on its next transaction.
        self._env.set_mapsize(self._env.info()["map_size"] * 2)

    def all(self, replica: str | None = None) -> list[OffsetRecord]:
        """Every record (of one replica), ordered by replica, database, vgroup encoding."""
        self._check_open()
        prefix = b"\x93" if replica is None else _prefix(replica)
        out = []
        with self._begin() as txn:
            cursor = txn.cursor()
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    out.append(_decode(key, value))
        return out

    def delete(self, replica: str, database: str | None = None) -> int:
        """Forget a replica (or one of its databases) in one transaction; returns how many records went."""
        self._check_open()
        prefix = _prefix(_check_name("replica", replica)) if database is None else \
            _prefix(_check_name("replica", replica), _check_name("database", database))
        deleted = 0
        try:
            with self._begin(write=True) as txn:
                cursor = txn.cursor()
                if cursor.set_range(prefix):
                    while cursor.key().startswith(prefix):
                        deleted += 1
                        if not cursor.delete():   # moves to the next record; False at the end
                            break
        except lmdb.Error as exc:
            raise OffsetStoreError(f"cannot delete offsets in {self.path}: {exc}") from None
        return deleted
