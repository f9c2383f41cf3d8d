"""The sandbox engine: catalog, rows and WALs of an embedded TDengine peer.

Every change goes through here, in one storage transaction per statement, and every change a
TMQ consumer could see is appended to the owning vgroup's WAL in TDengine's own message format:
data as raw_type 2 (4 when the write auto-created child tables), DDL and deletes as the meta
bodies a vnode keeps. Writes that came through a raw-write path are marked ``from_replica``
(TDengine's TD_REQ_FROM_TAOX), which consumers with ``msg.consume.excluded=1`` never see.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import error_codes as codes
from engine.codec import RawBlock, RawDataMessage, build_data_message, encode_block
from engine.error_codes import error
from engine.errors import CodecError, TDengineError
from engine.sandbox import wal_meta
from engine.sandbox.catalog import (
    DECIMAL,
    DECIMAL64,
    TIMESTAMP,
    VARIABLE_TYPES,
    ColumnDef,
    Database,
    SuperTable,
    Table,
)
from engine.sandbox.storage import DATA, META, Storage, Topic

SERVER_VERSION = "3.3.7.5"
SYSTEM_DATABASES = ("information_schema", "performance_schema")
SOURCE_APP, SOURCE_REPLICA = 0, 8        # TD_REQ_FROM_APP, TD_REQ_FROM_TAOX


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class TableWrite:
    """Rows for one table in one statement: columns written (table order) and values per row."""

    table: Table
    columns: list[ColumnDef]
    rows: list[list[Any]] = field(default_factory=list)
    created: bytes | None = None       # encoded SVCreateTbReq when this write auto-created the table
    block: bytes | None = None         # the same rows as a TMQ-form raw block, when a raw write brought one


class SandboxEngine:
    server_version = SERVER_VERSION

    def __init__(self, data_dir: Path | str, user: str = "root", password: str = "taosdata") -> None:
        self.user = user
        self.password = password
        self.storage = Storage(Path(data_dir))
        (self.databases, self.stables, self.tables, self.topics,
         self.counters) = self.storage.load_catalog()
        for db in self.databases.values():
            for vgid in db.vgroups:
                self.storage.ensure_vgroup(vgid)
        self.wal_listeners: list[Callable[[int], None]] = []

    def close(self) -> None:
        self.storage.close()

    # -- sessions ----------------------------------------------------------------------------
    def authenticate(self, user: str, password: str) -> None:
        if user != self.user:
            raise error(codes.MND_USER_NOT_EXIST)
        if password != self.password:
            raise error(codes.MND_AUTH_FAILURE)

    def session(self, db: str | None = None):
        from engine.sandbox.executor import Session

        session = Session(self)
        if db:
            session.use(db)
        return session

    # -- ids and lookups ---------------------------------------------------------------------
    def _next(self, txn, counter: str, start: int = 1) -> int:
        value = self.counters.get(counter, start)
        self.counters[counter] = value + 1
        self.storage.put(txn, "counter", counter, value + 1)
        return value

    def new_uid(self, txn) -> int:
        """Table uids: large and unique like TDengine's (never 0)."""
        return (0x1F3A_0000_0000_0000 + self._next(txn, "uid")) & 0x7FFF_FFFF_FFFF_FFFF

    def database(self, name: str) -> Database:
        db = self.databases.get(name)
        if db is None:
            raise error(codes.MND_DB_NOT_EXIST)
        return db

    def stable(self, db: str, name: str) -> SuperTable:
        self.database(db)
        stable = self.stables.get((db, name))
        if stable is None:
            raise error(codes.MND_STB_NOT_EXIST)
        return stable

    def table(self, db: str, name: str) -> Table:
        self.database(db)
        table = self.tables.get((db, name))
        if table is None:
            raise error(codes.PAR_TABLE_NOT_EXIST, codes.parser_message(codes.PAR_TABLE_NOT_EXIST, name))
        return table

    def columns_of(self, table: Table) -> list[ColumnDef]:
        if table.stable is not None:
            return self.stables[(table.db, table.stable)].columns
        return table.columns

    def children_of(self, db: str, stable: str) -> list[Table]:
        return [t for (d, _), t in self.tables.items() if d == db and t.stable == stable]

    def notify(self, vgids: Iterable[int]) -> None:
        for vgid in set(vgids):
            for listener in list(self.wal_listeners):
                listener(vgid)

    # -- databases ---------------------------------------------------------------------------
    def create_database(self, name: str, vgroups: int = 2, precision: int = 0,
                        options: dict | None = None, if_not_exists: bool = False) -> None:
        if name in self.databases or name in SYSTEM_DATABASES:
            if if_not_exists:
                return
            raise error(codes.MND_DB_ALREADY_EXIST)
        if not 1 <= vgroups <= 1024:
            raise error(codes.MND_INVALID_DB_OPTION, "Invalid option vgroups")
        with self.storage.write() as txn:
            ids = [self._next(txn, "vgroup", start=2) for _ in range(vgroups)]
            db = Database(name, ids, precision, dict(options or {}), now_ms())
            self.storage.put(txn, "db", name, db.to_record())
        for vgid in ids:
            self.storage.ensure_vgroup(vgid)
        self.databases[name] = db

    def drop_database(self, name: str, if_exists: bool = False) -> None:
        db = self.databases.get(name)
        if db is None:
            if if_exists:
                return
            raise error(codes.MND_DB_NOT_EXIST)
        if any(topic.db == name for topic in self.topics.values()):
            raise error(codes.MND_TOPIC_MUST_BE_DELETED)
        with self.storage.write() as txn:
            for (dbname, tname), _table in list(self.tables.items()):
                if dbname == name:
                    self.storage.delete_rows(txn, name, tname)
                    self.storage.delete(txn, "tb", f"{name}\0{tname}")
            for (dbname, sname) in list(self.stables):
                if dbname == name:
                    self.storage.delete(txn, "stb", f"{name}\0{sname}")
            for vgid in db.vgroups:
                self.storage.wal_drop_vgroup(txn, vgid)
            self.storage.delete(txn, "db", name)
        self.tables = {k: v for k, v in self.tables.items() if k[0] != name}
        self.stables = {k: v for k, v in self.stables.items() if k[0] != name}
        del self.databases[name]

    # -- WAL helpers -------------------------------------------------------------------------
    def _append_meta(self, txn, vgid: int, raw_type: int, payload: bytes, from_replica: bool) -> None:
        self.storage.wal_append(txn, vgid, META, raw_type, payload, 0, from_replica)

    def _append_data(self, txn, db: Database, vgid: int, writes: list[TableWrite], from_replica: bool) -> None:
        version = self.storage.wal_range_pending(vgid)[1]
        blocks = []
        creates = []
        rows = 0
        for w in writes:
            block = w.block or encode_block([(c.type, c.encoded_bytes, [row[i] for row in w.rows])
                                             for i, c in enumerate(w.columns)])
            blocks.append((block, [c.schema_entry() for c in w.columns], w.table.name))
            rows += len(w.rows)
            if w.created is not None:
                creates.append(w.created)
        message = build_data_message(blocks, version, version + 1, precision=db.precision,
                                     create_table_requests=creates or None)
        written = self.storage.wal_append(txn, vgid, DATA, message.raw_type, message.encode(), rows, from_replica)
        assert written == version

    # -- super tables ------------------------------------------------------------------------
    def create_stable(self, db_name: str, name: str, columns: list[ColumnDef], tags: list[ColumnDef],
                      if_not_exists: bool = False, from_replica: bool = False, uid: int | None = None) -> None:
        db = self.database(db_name)
        if (db_name, name) in self.stables or (db_name, name) in self.tables:
            if if_not_exists:
                return
            raise error(codes.MND_STB_ALREADY_EXIST)
        _check_schema(columns, tags)
        with self.storage.write() as txn:
            for index, column in enumerate(columns + tags, start=1):
                column.col_id = index
            stable = SuperTable(db_name, name, uid or self.new_uid(txn), columns, tags,
                                next_col_id=len(columns) + len(tags) + 1, created_ms=now_ms())
            self.storage.put(txn, "stb", f"{db_name}\0{name}", stable.to_record())
            source = SOURCE_REPLICA if from_replica else SOURCE_APP
            for vgid in db.vgroups:
                self._append_meta(txn, vgid, 531, wal_meta.encode_create_stable(stable, vgid, source), from_replica)
        self.stables[(db_name, name)] = stable
        self.notify(db.vgroups)

    def alter_stable(self, db_name: str, name: str, action: str, column: ColumnDef,
                     from_replica: bool = False) -> None:
        """``action``: add_column, add_tag, drop_column, drop_tag, modify_column, modify_tag."""
        db = self.database(db_name)
        stable = self.stable(db_name, name)
        is_tag = action.endswith("_tag")
        target = stable.tags if is_tag else stable.columns
        existing = next((c for c in target if c.name == column.name), None)
        if action.startswith("add"):
            if stable.column(column.name) or stable.tag(column.name):
                raise error(codes.MND_TAG_ALREADY_EXIST if is_tag else codes.MND_COLUMN_ALREADY_EXIST)
            column.col_id = stable.next_col_id
            stable.next_col_id += 1
            target.append(column)
        elif existing is None:
            raise error(codes.MND_TAG_NOT_EXIST if is_tag else codes.MND_COLUMN_NOT_EXIST)
        elif action.startswith("drop"):
            if not is_tag and existing is stable.columns[0]:
                raise error(codes.PAR_CANNOT_DROP_PRIMARY_KEY)
            index = target.index(existing)
            target.remove(existing)
            if is_tag:
                for child in self.children_of(db_name, name):
                    del child.tags[index]
        else:  # modify: only widening a variable-length column or tag
            if existing.type not in VARIABLE_TYPES or column.length < existing.length:
                raise error(codes.PAR_INVALID_MODIFY_COL)
            existing.length = column.length
        if is_tag:
            stable.tag_version += 1
        else:
            stable.version += 1
        with self.storage.write() as txn:
            self.storage.put(txn, "stb", f"{db_name}\0{name}", stable.to_record())
            if is_tag and action.startswith("drop"):
                for child in self.children_of(db_name, name):
                    self.storage.put(txn, "tb", f"{db_name}\0{child.name}", child.to_record())
            source = SOURCE_REPLICA if from_replica else SOURCE_APP
            for vgid in db.vgroups:
                payload = wal_meta.encode_alter_stable(stable, action, column, db_name, vgid, source)
                self._append_meta(txn, vgid, 533, payload, from_replica)
        self.notify(db.vgroups)

    def set_stable_versions(self, db_name: str, name: str, version: int, tag_version: int) -> None:
        """A replicated alter leaves the stable at the source's schema versions."""
        stable = self.stable(db_name, name)
        stable.version, stable.tag_version = version, tag_version
        with self.storage.write() as txn:
            self.storage.put(txn, "stb", f"{db_name}\0{name}", stable.to_record())

    def drop_stable(self, db_name: str, name: str, if_exists: bool = False, from_replica: bool = False,
                    suid: int | None = None) -> None:
        db = self.database(db_name)
        stable = self.stables.get((db_name, name))
        if stable is None or (suid is not None and stable.uid != suid):
            if if_exists:
                return
            raise error(codes.MND_STB_NOT_EXIST)
        children = self.children_of(db_name, name)
        with self.storage.write() as txn:
            for child in children:
                self.storage.delete_rows(txn, db_name, child.name)
                self.storage.delete(txn, "tb", f"{db_name}\0{child.name}")
            self.storage.delete(txn, "stb", f"{db_name}\0{name}")
            source = SOURCE_REPLICA if from_replica else SOURCE_APP
            for vgid in db.vgroups:
                self._append_meta(txn, vgid, 535, wal_meta.encode_drop_stable(stable, vgid, source), from_replica)
        for child in children:
            del self.tables[(db_name, child.name)]
        del self.stables[(db_name, name)]
        self.notify(db.vgroups)

    # -- tables ------------------------------------------------------------------------------
    def new_child(self, txn, db: Database, name: str, stable: SuperTable, tags: list[Any]) -> Table:
        return Table(db.name, name, self.new_uid(txn), db.vgroup_of(name), stable.name, list(tags),
                     created_ms=now_ms())

    def create_tables(self, db_name: str, specs: list[tuple[str, str | None, list[Any], list[ColumnDef]]],
                      if_not_exists: bool = False, from_replica: bool = False) -> int:
        """``specs``: (name, stable or None, tag values, columns of a normal table)."""
        db = self.database(db_name)
        created: dict[int, list[Table]] = defaultdict(list)
        pending: dict[str, Table] = {}
        with self.storage.write() as txn:
            for name, stable_name, tags, columns in specs:
                if (db_name, name) in self.tables or name in pending or (db_name, name) in self.stables:
                    if if_not_exists:
                        continue
                    raise error(codes.TDB_TABLE_ALREADY_EXIST)
                if stable_name is not None:
                    stable = self.stable(db_name, stable_name)
                    table = self.new_child(txn, db, name, stable, tags)
                else:
                    _check_schema(columns, [])
                    for index, column in enumerate(columns, start=1):
                        column.col_id = index
                    table = Table(db_name, name, self.new_uid(txn), db.vgroup_of(name), columns=columns,
                                  next_col_id=len(columns) + 1, created_ms=now_ms())
                pending[name] = table
                created[table.vgroup].append(table)
                self.storage.put(txn, "tb", f"{db_name}\0{name}", table.to_record())
            source = SOURCE_REPLICA if from_replica else SOURCE_APP
            for vgid, tables in created.items():
                payload = wal_meta.encode_create_tables(self, tables, vgid, source)
                self._append_meta(txn, vgid, 515, payload, from_replica)
        for name, table in pending.items():
            self.tables[(db_name, name)] = table
        self.notify(created)
        return len(pending)

    def drop_tables(self, db_name: str, names: list[str], if_exists: bool = False,
                    from_replica: bool = False) -> None:
        self.database(db_name)
        doomed: dict[int, list[Table]] = defaultdict(list)
        for name in names:
            table = self.tables.get((db_name, name))
            if table is None:
                if (db_name, name) in self.stables:
                    raise error(codes.PAR_INVALID_DROP_STABLE)
                if if_exists:
                    continue
                raise error(codes.TDB_TABLE_NOT_EXIST)
            doomed[table.vgroup].append(table)
        with self.storage.write() as txn:
            source = SOURCE_REPLICA if from_replica else SOURCE_APP
            for vgid, tables in doomed.items():
                for table in tables:
                    self.storage.delete_rows(txn, db_name, table.name)
                    self.storage.delete(txn, "tb", f"{db_name}\0{table.name}")
                payload = wal_meta.encode_drop_tables(self, tables, vgid, source)
                self._append_meta(txn, vgid, 519, payload, from_replica)
        for tables in doomed.values():
            for table in tables:
                del self.tables[(db_name, table.name)]
        self.notify(doomed)

    def set_tag(self, db_name: str, name: str, tag: str, value: Any, from_replica: bool = False) -> None:
        table = self.table(db_name, name)
        if table.stable is None:
            raise error(codes.PAR_INVALID_ALTER_TABLE)
        stable = self.stables[(db_name, table.stable)]
        index = next((i for i, t in enumerate(stable.tags) if t.name == tag), None)
        if index is None:
            raise error(codes.MND_TAG_NOT_EXIST)
        table.tags[index] = value
        with self.storage.write() as txn:
            self.storage.put(txn, "tb", f"{db_name}\0{name}", table.to_record())
            source = SOURCE_REPLICA if from_replica else SOURCE_APP
            payload = wal_meta.encode_set_tag(self, table, stable.tags[index], value, table.vgroup, source)
            self._append_meta(txn, table.vgroup, 517, payload, from_replica)
        self.notify([table.vgroup])

    def add_column(self, db_name: str, name: str, column: ColumnDef, from_replica: bool = False) -> None:
        table = self.table(db_name, name)
        if table.stable is not None:
            raise error(codes.PAR_INVALID_ALTER_TABLE)
        if any(c.name == column.name for c in table.columns):
            raise error(codes.MND_COLUMN_ALREADY_EXIST)
        column.col_id = table.next_col_id
        table.next_col_id += 1
        table.columns.append(column)
        table.version += 1
        with self.storage.write() as txn:
            self.storage.put(txn, "tb", f"{db_name}\0{name}", table.to_record())
            source = SOURCE_REPLICA if from_replica else SOURCE_APP
            payload = wal_meta.encode_add_column(self, table, column, table.vgroup, source)
            self._append_meta(txn, table.vgroup, 517, payload, from_replica)
        self.notify([table.vgroup])

    # -- data --------------------------------------------------------------------------------
    def write(self, db_name: str, writes: list[TableWrite], from_replica: bool = False,
              new_tables: list[Table] = ()) -> int:
        """Store rows (upsert by timestamp) and append one data entry per vgroup, in statement order."""
        db = self.database(db_name)
        by_vgroup: dict[int, list[TableWrite]] = defaultdict(list)
        for w in writes:
            if w.rows:
                by_vgroup[w.table.vgroup].append(w)
        affected = 0
        with self.storage.write() as txn:
            for table in new_tables:
                self.storage.put(txn, "tb", f"{db_name}\0{table.name}", table.to_record())
            for vgid, group in by_vgroup.items():
                for w in group:
                    ids = [c.col_id for c in w.columns]
                    if any(c.type in (DECIMAL, DECIMAL64) for c in w.columns):
                        stored = [(row[0], dict(zip(ids, map(_storable, row)))) for row in w.rows]
                    else:
                        stored = [(row[0], dict(zip(ids, row))) for row in w.rows]
                    self.storage.upsert_rows(txn, db_name, w.table.name, stored)
                    affected += len(w.rows)
                self._append_data(txn, db, vgid, group, from_replica)
        for table in new_tables:
            self.tables[(db_name, table.name)] = table
        self.notify(by_vgroup)
        return affected

    def delete(self, db_name: str, name: str, ts_min: int | None, ts_max: int | None,
               from_replica: bool = False) -> int:
        """DELETE FROM a table or a super table over a timestamp range."""
        self.database(db_name)
        stable = self.stables.get((db_name, name))
        targets = self.children_of(db_name, name) if stable else [self.table(db_name, name)]
        lo = ts_min if ts_min is not None else -(1 << 63)
        hi = ts_max if ts_max is not None else (1 << 63) - 1
        deleted = 0
        touched: dict[int, list[Table]] = defaultdict(list)
        with self.storage.write() as txn:
            for table in targets:
                deleted += self.storage.delete_rows(txn, db_name, table.name, lo, hi)
                touched[table.vgroup].append(table)
            source = SOURCE_REPLICA if from_replica else SOURCE_APP
            for vgid, tables in touched.items():
                payload = wal_meta.encode_delete(self, name, stable, tables, lo, hi, deleted, vgid, source)
                self._append_meta(txn, vgid, 579, payload, from_replica)
        self.notify(touched)
        return deleted

    # -- raw writes (tmq_write_raw, taos_write_raw_block) -------------------------------------
    def write_raw(self, db_name: str, raw_type: int, data: bytes) -> None:
        """Apply what a replicator read from another server with ``tmq_get_raw``."""
        self.database(db_name)
        try:
            if raw_type in (2, 4):
                self._write_raw_data(db_name, RawDataMessage.decode(data, raw_type))
            elif raw_type in (515, 517, 519, 531, 533, 535, 579):
                wal_meta.apply_meta(self, db_name, raw_type, data)
            else:
                raise error(codes.INVALID_PARA, f"raw_type {raw_type} is not supported")
        except CodecError as exc:
            raise error(codes.INVALID_MSG, f"Invalid message: {exc}") from None

    def _write_raw_data(self, db_name: str, message: RawDataMessage) -> None:
        db = self.database(db_name)
        new_tables: list[Table] = []
        created: dict[str, bytes] = {}
        if message.raw_type == 4:
            with self.storage.write() as txn:
                for request in message.create_table_requests:
                    table = wal_meta.table_from_create_request(self, txn, db, request)
                    if table is not None and table.name not in created:
                        new_tables.append(table)
                        created[table.name] = wal_meta.encode_create_request(self, table)
        known = {t.name: t for t in new_tables}
        if not message.with_table_name:
            raise error(codes.INVALID_PARA, "raw data without table names cannot be written")
        writes = []
        for block in message.blocks:
            table = known.get(block.table_name) or self.table(db_name, block.table_name)
            w = self._bind_block(table, block, block.column_names)
            w.created = created.pop(table.name, None)
            writes.append(w)
        self.write(db_name, writes, from_replica=True, new_tables=new_tables)

    def write_raw_block(self, db_name: str, table_name: str, data: bytes, fields: list[str] | None) -> None:
        self.database(db_name)
        table = self.table(db_name, table_name)
        try:
            block = RawBlock.decode(data)
        except CodecError as exc:
            raise error(codes.INVALID_MSG, f"Invalid message: {exc}") from None
        if fields is not None and len(fields) != block.num_columns:
            raise error(codes.INVALID_PARA, "fields number not match the block columns")
        self.write(db_name, [self._bind_block(table, block, fields)], from_replica=True)

    def _bind_block(self, table: Table, block: RawBlock, names: list[str] | None) -> TableWrite:
        """TDengine's rawBlockBindData: by name (or by position without names), types checked."""
        columns = self.columns_of(table)
        if names is None:
            pairs = list(zip(range(min(block.num_columns, len(columns))), columns))
        else:
            by_name = {c.name: c for c in columns}
            pairs = []
            for index, name in enumerate(names):
                column = by_name.get(name)
                if column is not None:
                    pairs.append((index, column))
        if not any(column is columns[0] for _, column in pairs):
            raise error(codes.INVALID_PARA, "timestamp column(primary key) not found in raw data")
        block_columns = block.columns
        for index, column in pairs:
            source = block_columns[index]
            if source.type_code != column.type:
                raise error(codes.INVALID_PARA, f"column type not match: {column.name}")
            if column.type in VARIABLE_TYPES and source.encoded_bytes > column.encoded_bytes:
                raise error(codes.INVALID_PARA, f"column length too long: {column.name}")
            if column.type in (DECIMAL, DECIMAL64) and (source.precision, source.scale) != (
                    column.precision, column.scale):
                raise error(codes.INVALID_PARA, f"decimal precision or scale not match: {column.name}")
        pairs.sort(key=lambda pair: columns.index(pair[1]))
        values = [block_columns[index].to_pylist() for index, _ in pairs]
        rows = list(zip(*values))
        if None in values[0]:
            raise error(codes.PAR_PRIMARY_KEY_IS_NULL)
        bound = [c for _, c in pairs]
        # The block serves the WAL as it is when it holds exactly the bound columns, in table order,
        # with the table's widths (a narrower varchar is bound too, but the WAL carries the table's).
        same = [index for index, _ in pairs] == list(range(block.num_columns)) and all(
            source.encoded_bytes == column.encoded_bytes for source, column in zip(block_columns, bound))
        return TableWrite(table, bound, rows, block=block.to_bytes(version=2) if same else None)

    # -- topics ------------------------------------------------------------------------------
    def create_topic(self, name: str, db_name: str, with_meta: bool, if_not_exists: bool = False) -> None:
        self.database(db_name)
        if name in self.topics:
            if if_not_exists:
                return
            raise error(codes.MND_TOPIC_ALREADY_EXIST)
        topic = Topic(name, db_name, with_meta, now_ms())
        with self.storage.write() as txn:
            self.storage.put(txn, "topic", name, topic.__dict__)
        self.topics[name] = topic

    def drop_topic(self, name: str, if_exists: bool = False) -> None:
        if name not in self.topics:
            if if_exists:
                return
            raise error(codes.MND_TOPIC_NOT_EXIST)
        with self.storage.write() as txn:
            self.storage.delete(txn, "topic", name)
            self.storage.drop_offsets(txn, name)
        del self.topics[name]

    # -- retention ---------------------------------------------------------------------------
    def purge_wal(self, now: int | None = None) -> int:
        """Drop WAL entries older than each database's WAL_RETENTION_PERIOD (or over its size)."""
        now = now_ms() if now is None else now
        dropped = 0
        for db in self.databases.values():
            period = db.wal_retention_period
            keep_after = None if period < 0 else now - period * 1000
            size = db.wal_retention_size
            limit = None if size < 0 else size * 1024 * 1024
            for vgid in db.vgroups:
                dropped += self.storage.wal_purge(vgid, keep_after, limit)
        return dropped


def _storable(value: Any) -> Any:
    """Rows are kept as msgpack; decimals as their exact text."""
    if value is None or isinstance(value, int | float | str | bytes | bool):
        return value
    return str(value)


def _check_schema(columns: list[ColumnDef], tags: list[ColumnDef]) -> None:
    if not columns or columns[0].type != TIMESTAMP:
        raise error(codes.PAR_INVALID_FIRST_COLUMN)
    names = [c.name for c in columns + tags]
    if len(set(names)) != len(names):
        raise error(codes.PAR_DUPLICATED_COLUMN)


__all__ = ["SandboxEngine", "TableWrite", "TDengineError", "SERVER_VERSION", "SOURCE_APP", "SOURCE_REPLICA"]
