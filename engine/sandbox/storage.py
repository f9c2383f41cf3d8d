"""The sandbox's durable state in one LMDB environment: catalog, rows, per-vgroup WALs, offsets.

A statement's changes (rows, catalog, WAL entries) are written in one LMDB transaction, so a
statement is either wholly there after a crash or not at all. Transactions are not fsynced:
a kill -9 loses nothing acknowledged (the pages are in the OS cache), a power cut may.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from engine.sandbox.catalog import Database, SuperTable, Table

_TS_BIAS = 1 << 63
_WAL_KEY = struct.Struct(">IQ")
_TS = struct.Struct(">Q")

DATA, META = "data", "meta"
_KIND_CODES = {DATA: 0, META: 1}
_KIND_NAMES = {0: DATA, 1: META}


@dataclass(frozen=True)
class WalEntry:
    """One write in a vgroup's WAL: a data message (raw_type 2/4) or a meta message (TDMT code)."""

    version: int
    kind: str
    raw_type: int
    payload: bytes
    rows: int
    from_replica: bool
    time_ms: int


@dataclass(frozen=True)
class Topic:
    name: str
    db: str
    with_meta: bool
    created_ms: int = 0


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


def _row_prefix(db: str, table: str) -> bytes:
    return f"{db}\0{table}\0".encode()


def _row_key(prefix: bytes, ts: int) -> bytes:
    return prefix + _TS.pack(ts + _TS_BIAS)


class Storage:
    def __init__(self, path: Path, map_size: int = 1 << 36) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.env = lmdb.open(str(path / "sandbox.lmdb"), map_size=map_size, max_dbs=8, sync=False,
                             metasync=False, subdir=True, mode=0o600)
        self._catalog = self.env.open_db(b"catalog")
        self._rows = self.env.open_db(b"rows")
        self._wal = self.env.open_db(b"wal")
        self._offsets = self.env.open_db(b"offsets")
        self._wal_range: dict[int, list[int]] = {}    # vgid -> [begin, end]
        self._pending_ranges: dict[int, list[int]] = {}  # changes of the open write transaction
        self._packer = msgpack.Packer(use_bin_type=True)
        self._load_wal_ranges()

    def close(self) -> None:
        self.env.close()

    @contextmanager
    def write(self):
        """One write transaction: everything a statement changes, or nothing."""
        self._pending_ranges = {}
        try:
            with self.env.begin(write=True) as txn:
                yield txn
            self._wal_range.update(self._pending_ranges)
        finally:
            self._pending_ranges = {}

    def read(self):
        return self.env.begin(write=False)

    # -- catalog -----------------------------------------------------------------------------
    def load_catalog(self) -> tuple[dict, dict, dict, dict, dict]:
        """(databases, stables by (db, name), tables by (db, name), topics, counters)."""
        databases, stables, tables, topics, counters = {}, {}, {}, {}, {}
        with self.read() as txn:
            for key, value in txn.cursor(db=self._catalog):
                kind, _, rest = key.decode().partition(":")
                record = _unpack(value)
                if kind == "db":
                    databases[rest] = Database.from_record(record)
                elif kind == "stb":
                    obj = SuperTable.from_record(record)
                    stables[(obj.db, obj.name)] = obj
                elif kind == "tb":
                    obj = Table.from_record(record)
                    tables[(obj.db, obj.name)] = obj
                elif kind == "topic":
                    topics[rest] = Topic(**record)
                elif kind == "counter":
                    counters[rest] = record
        return databases, stables, tables, topics, counters

    def put(self, txn, kind: str, name: str, record: Any) -> None:
        txn.put(f"{kind}:{name}".encode(), _pack(record), db=self._catalog)

    def delete(self, txn, kind: str, name: str) -> None:
        txn.delete(f"{kind}:{name}".encode(), db=self._catalog)

    # -- rows --------------------------------------------------------------------------------
    def upsert_rows(self, txn, db: str, table: str, rows: list[tuple[int, dict[int, Any]]]) -> None:
        """Write rows keyed by timestamp; an existing row keeps the columns a write leaves out.

        New timestamps (the usual case) go in with one ``putmulti``; rows whose key was already
        there are merged afterwards.
        """
        prefix = _row_prefix(db, table)
        rows_db = self._rows
        pack = self._packer.pack       # one Packer per storage (one server thread): packb makes one per call
        ts_key = _TS.pack
        items = [(prefix + ts_key(ts + _TS_BIAS), pack(values)) for ts, values in rows]
        _consumed, added = txn.cursor(db=rows_db).putmulti(items, overwrite=False)
        if added == len(items):
            return
        for (key, packed), (_ts, values) in zip(items, rows):
            current = txn.get(key, db=rows_db)
            if current != packed:
                merged = _unpack(current)
                merged.update(values)
                txn.put(key, pack(merged), db=rows_db)

    def scan_rows(self, txn, db: str, table: str, ts_min: int | None = None,
                  ts_max: int | None = None) -> Iterator[tuple[int, dict[int, Any]]]:
        """Rows of a table in timestamp order within [ts_min, ts_max]."""
        prefix = _row_prefix(db, table)
        cursor = txn.cursor(db=self._rows)
        start = _row_key(prefix, ts_min if ts_min is not None else -_TS_BIAS)
        if not cursor.set_range(start):
            return
        plen = len(prefix)
        for key, value in cursor:
            if not key.startswith(prefix):
                return
            ts = _TS.unpack_from(key, plen)[0] - _TS_BIAS
            if ts_max is not None and ts > ts_max:
                return
            yield ts, _unpack(value)

    def delete_rows(self, txn, db: str, table: str, ts_min: int | None = None, ts_max: int | None = None) -> int:
        keys = [_row_key(_row_prefix(db, table), ts) for ts, _ in self.scan_rows(txn, db, table, ts_min, ts_max)]
        for key in keys:
            txn.delete(key, db=self._rows)
        return len(keys)

    # -- WAL ---------------------------------------------------------------------------------
    def _load_wal_ranges(self) -> None:
        """Find each vgroup's first and last WAL version: two seeks per vgroup."""
        with self.read() as txn:
            cursor = txn.cursor(db=self._wal)
            found = cursor.first()
            while found:
                vgid, begin = _WAL_KEY.unpack(cursor.key())
                more = cursor.set_range(_WAL_KEY.pack(vgid + 1, 0)) if vgid < 0xFFFFFFFF else False
                if more:
                    cursor.prev()
                else:
                    cursor.last()
                last = _WAL_KEY.unpack(cursor.key())[1]
                self._wal_range[vgid] = [begin, last + 1]
                found = cursor.set_range(_WAL_KEY.pack(vgid + 1, 0)) if more else False

    def ensure_vgroup(self, vgid: int, first_version: int = 0) -> None:
        self._wal_range.setdefault(vgid, [first_version, first_version])

    def wal_range_pending(self, vgid: int) -> tuple[int, int]:
        """The range including entries of the open write transaction."""
        current = self._pending_ranges.get(vgid) or self._wal_range.get(vgid, (0, 0))
        return current[0], current[1]

    def wal_range(self, vgid: int) -> tuple[int, int]:
        """(begin, end): the first retained version and the next version to be written."""
        begin, end = self._wal_range.get(vgid, (0, 0))
        return begin, end

    def wal_append(self, txn, vgid: int, kind: str, raw_type: int, payload: bytes, rows: int = 0,
                   from_replica: bool = False, time_ms: int | None = None) -> int:
        pending = self._pending_ranges
        current = pending.get(vgid) or list(self._wal_range.get(vgid, (0, 0)))
        version = current[1]
        record = [_KIND_CODES[kind], raw_type, payload, rows, from_replica,
                  int(time.time() * 1000) if time_ms is None else time_ms]
        txn.put(_WAL_KEY.pack(vgid, version), _pack(record), db=self._wal)
        pending[vgid] = [current[0], version + 1]
        return version

    def wal_read(self, vgid: int, from_version: int, max_entries: int = 1 << 30) -> Iterator[WalEntry]:
        with self.read() as txn:
            cursor = txn.cursor(db=self._wal)
            if not cursor.set_range(_WAL_KEY.pack(vgid, max(from_version, 0))):
                return
            count = 0
            for key, value in cursor:
                key_vgid, version = _WAL_KEY.unpack(key)
                if key_vgid != vgid or count >= max_entries:
                    return
                kind, raw_type, payload, rows, from_replica, time_ms = _unpack(value)
                yield WalEntry(version, _KIND_NAMES[kind], raw_type, payload, rows, from_replica, time_ms)
                count += 1

    def wal_purge(self, vgid: int, keep_after_ms: int | None, max_bytes: int | None) -> int:
        """Drop the oldest entries older than the retention period or beyond the size limit.

        Without a size limit only the entries to drop (and the first one kept) are read.
        """
        begin, end = self.wal_range(vgid)
        if begin >= end - 1:                               # the newest entry always stays
            return 0
        entries: list[tuple[int, int, int]] = []           # (version, size, time)
        with self.read() as txn:
            cursor = txn.cursor(db=self._wal)
            if cursor.set_range(_WAL_KEY.pack(vgid, begin)):
                for key, value in cursor:
                    key_vgid, version = _WAL_KEY.unpack(key)
                    if key_vgid != vgid or version >= end - 1:
                        break
                    time_ms = _unpack(value)[5]
                    entries.append((version, len(value), time_ms))
                    if max_bytes is None and (keep_after_ms is None or time_ms >= keep_after_ms):
                        break
        total = sum(size for _, size, _ in entries) if max_bytes is not None else 0
        doomed: list[int] = []
        for version, size, time_ms in entries:
            too_old = keep_after_ms is not None and time_ms < keep_after_ms
            too_big = max_bytes is not None and max_bytes >= 0 and total > max_bytes
            if not (too_old or too_big):
                break
            doomed.append(version)
            total -= size
        if doomed:
            with self.write() as txn:
                for version in doomed:
                    txn.delete(_WAL_KEY.pack(vgid, version), db=self._wal)
            self._wal_range[vgid] = [doomed[-1] + 1, end]
        return len(doomed)

    def wal_drop_vgroup(self, txn, vgid: int) -> None:
        begin, end = self.wal_range(vgid)
        for version in range(begin, end):
            txn.delete(_WAL_KEY.pack(vgid, version), db=self._wal)
        self._pending_ranges[vgid] = [end, end]

    # -- consumer offsets --------------------------------------------------------------------
    def committed(self, group: str, topic: str, vgid: int) -> int | None:
        with self.read() as txn:
            raw = txn.get(f"{group}\0{topic}\0{vgid}".encode(), db=self._offsets)
        return None if raw is None else _unpack(raw)

    def commit(self, group: str, topic: str, vgid: int, version: int) -> None:
        with self.env.begin(write=True) as txn:
            txn.put(f"{group}\0{topic}\0{vgid}".encode(), _pack(version), db=self._offsets)

    def drop_offsets(self, txn, topic: str) -> None:
        cursor = txn.cursor(db=self._offsets)
        doomed = [key for key, _ in cursor if key.split(b"\0")[1] == topic.encode()]
        for key in doomed:
            txn.delete(key, db=self._offsets)
