"""Between the catalog and TDengine's meta messages: what the sandbox writes to a vgroup's WAL
for a DDL or delete, and how it applies one a replicator writes (``tmq_write_raw``).

The byte layouts live in :mod:`engine.sandbox.metaformat`; this module only maps catalog objects
to them and back.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from engine import error_codes as codes
from engine.error_codes import error
from engine.sandbox import metaformat as mf
from engine.sandbox.catalog import (
    BLOB,
    DECIMAL,
    DECIMAL64,
    JSON,
    JSON_ENCODED_BYTES,
    MAX_BLOB_LENGTH,
    MEDIUMBLOB,
    ColumnDef,
    Database,
    SuperTable,
    Table,
    fixed_length,
)
from engine.sandbox.values import json_tag_text

if TYPE_CHECKING:
    from engine.sandbox.engine import SandboxEngine

_ACTIONS = {"add_column": mf.ALTER_ADD_COLUMN, "add_tag": mf.ALTER_ADD_TAG, "drop_column": mf.ALTER_DROP_COLUMN,
            "drop_tag": mf.ALTER_DROP_TAG, "modify_column": mf.ALTER_UPDATE_COLUMN_BYTES,
            "modify_tag": mf.ALTER_UPDATE_TAG_BYTES}


def _field(column: ColumnDef, *, tag: bool = False, indexed: bool = False) -> mf.SchemaField:
    return mf.SchemaField.make(column.type, column.name, column.col_id, column.length or None, tag=tag,
                               indexed=indexed)


def _type_mods(columns: list[ColumnDef]) -> list[int] | None:
    if not any(c.type in (DECIMAL, DECIMAL64) for c in columns):
        return None
    return [mf.decimal_type_mod(c.precision, c.scale) if c.type in (DECIMAL, DECIMAL64) else 0 for c in columns]


def _stable_message(stable: SuperTable, cls=mf.CreateSuperTable, alter=None):
    return cls(name=stable.name, suid=stable.uid, columns=[_field(c) for c in stable.columns],
               tags=[_field(t, tag=True, indexed=i == 0) for i, t in enumerate(stable.tags)],
               schema_version=stable.version, tag_version=stable.tag_version, alter=alter,
               type_mods=_type_mods(stable.columns))


def encode_create_stable(stable: SuperTable, vgid: int, source: int) -> bytes:
    return _stable_message(stable).encode(vgid, source)


def encode_alter_stable(stable: SuperTable, action: str, column: ColumnDef, db: str, vgid: int,
                        source: int) -> bytes:
    dropping = action.startswith("drop")
    field_ = mf.AlterField(0 if dropping else column.type,
                           0 if dropping else mf.schema_bytes(column.type, column.length or None), column.name)
    verb = {"add": "ADD", "drop": "DROP", "modify": "MODIFY"}[action.split("_")[0]]
    noun = "TAG" if action.endswith("tag") else "COLUMN"
    sql = f"ALTER STABLE `{db}`.`{stable.name}` {verb} {noun} `{column.name}`".encode()
    alter = mf.SuperTableAlter(f"1.{db}.{stable.name}", _ACTIONS[action], [field_], sql=sql,
                               type_mods=[0] if action == "add_column" else None)
    return _stable_message(stable, mf.AlterSuperTable, alter).encode(vgid, source)


def encode_drop_stable(stable: SuperTable, vgid: int, source: int) -> bytes:
    return mf.DropSuperTable(stable.name, stable.uid).encode(vgid, source)


def _tags_of(stable: SuperTable, values: list[Any]) -> tuple[mf.Tags, list[str]]:
    if stable.tags and stable.tags[0].type == JSON:
        value = values[0] if values else None
        parsed = json.loads(value) if isinstance(value, str) else value
        return mf.Tags.json(parsed), ([stable.tags[0].name] if parsed is not None else [])
    triples = [(t.col_id, t.type, v) for t, v in zip(stable.tags, values) if v is not None]
    names = [t.name for t, v in zip(stable.tags, values) if v is not None]
    return mf.Tags.of(triples), names


def create_request(engine: SandboxEngine, table: Table) -> mf.CreateTableRequest:
    if table.stable is not None:
        stable = engine.stables[(table.db, table.stable)]
        tags, names = _tags_of(stable, table.tags)
        return mf.CreateTableRequest(table.name, mf.TSDB_CHILD_TABLE, table.uid, table.created_ms,
                                     stable_name=stable.name, suid=stable.uid, tag_num=len(stable.tags),
                                     tags=tags, tag_names=names)
    return mf.CreateTableRequest(table.name, mf.TSDB_NORMAL_TABLE, table.uid, table.created_ms,
                                 columns=[_field(c) for c in table.columns], schema_version=table.version,
                                 type_mods=_type_mods(table.columns))


def encode_create_request(engine: SandboxEngine, table: Table) -> bytes:
    """One framed SVCreateTbReq, as a raw_type 4 message lists the tables it auto-creates."""
    return create_request(engine, table).to_bytes()


def encode_create_tables(engine: SandboxEngine, tables: list[Table], vgid: int, source: int) -> bytes:
    return mf.CreateTablesBatch([create_request(engine, t) for t in tables]).encode(vgid, source)


def encode_drop_tables(engine: SandboxEngine, tables: list[Table], vgid: int, source: int) -> bytes:
    requests = []
    for table in tables:
        suid = engine.stables[(table.db, table.stable)].uid if table.stable else 0
        requests.append(mf.DropTableRequest(table.name, suid, table.uid))
    return mf.DropTablesBatch(requests).encode(vgid, source)


def encode_set_tag(engine: SandboxEngine, table: Table, tag: ColumnDef, value: Any, vgid: int, source: int) -> bytes:
    if tag.type == JSON:
        value = json.loads(value) if isinstance(value, str) else value
    request = mf.AlterTable.set_tag(table.name, tag.name, tag.col_id, tag.type, value)
    return request.encode(vgid, source)


def encode_add_column(engine: SandboxEngine, table: Table, column: ColumnDef, vgid: int, source: int) -> bytes:
    type_mod = mf.decimal_type_mod(column.precision, column.scale) if column.type in (DECIMAL, DECIMAL64) else 0
    return mf.AlterTable.add_column(table.name, _field(column), type_mod=type_mod).encode(vgid, source)


def encode_delete(engine: SandboxEngine, name: str, stable: SuperTable | None, tables: list[Table],
                  skey: int, ekey: int, deleted: int, vgid: int, source: int) -> bytes:
    ts_column = engine.columns_of(tables[0])[0].name if tables else "ts"
    suid = stable.uid if stable else (engine.stables[(tables[0].db, tables[0].stable)].uid
                                      if tables and tables[0].stable else 0)
    return mf.Delete(suid, [t.uid for t in tables], skey, ekey, deleted, name, ts_column).encode(vgid, source)


# -- applying what a replicator writes ---------------------------------------------------------
def _column_from_field(field_: mf.SchemaField, type_mod: int = 0) -> ColumnDef:
    if field_.type == JSON:
        length = (JSON_ENCODED_BYTES - 2) // 4            # json is declared as 4095 characters
    elif field_.type in (BLOB, MEDIUMBLOB):
        length = MAX_BLOB_LENGTH
    else:
        length = field_.length or fixed_length(field_.type)
    column = ColumnDef(field_.name, field_.type, length)
    if field_.type in (DECIMAL, DECIMAL64):
        column.precision, column.scale = (type_mod >> 8) & 0xFF, type_mod & 0xFF
        column.length = 16 if field_.type == DECIMAL else 8
    return column


def _columns(fields: list[mf.SchemaField], type_mods: list[int] | None) -> list[ColumnDef]:
    mods = type_mods or [0] * len(fields)
    return [_column_from_field(f, m) for f, m in zip(fields, mods)]


def _tag_values(stable: SuperTable, request: mf.CreateTableRequest) -> list[Any]:
    named = request.named_tags()
    values = []
    for tag in stable.tags:
        value = named.get(tag.name)
        if tag.type == JSON:
            value = json_tag_text(value)
        values.append(value)
    return values


def table_from_create_request(engine: SandboxEngine, txn, db: Database, data: bytes) -> Table | None:
    """The child table a raw_type 4 message auto-creates, not yet in the catalog (None if it exists)."""
    request = mf.CreateTableRequest.from_bytes(data)
    if (db.name, request.name) in engine.tables:
        return None
    if not request.is_child:
        raise error(codes.INVALID_PARA, f"auto-created table {request.name} is not a child table")
    stable = engine.stable(db.name, request.stable_name)
    return engine.new_child(txn, db, request.name, stable, _tag_values(stable, request))


def apply_meta(engine: SandboxEngine, db: str, raw_type: int, data: bytes) -> None:
    """tmq_write_raw of a meta message: the DDL or delete, marked as replicated."""
    message = mf.decode_meta(raw_type, data)
    if raw_type in (531, 533):
        _apply_stable(engine, db, message)
    elif raw_type == 535:
        engine.drop_stable(db, message.name, if_exists=True, from_replica=True,
                           suid=replicated_suid(message.suid, db))
    elif raw_type == 515:
        specs = []
        for request in message.requests:
            if request.is_child:
                stable = engine.stable(db, request.stable_name)
                specs.append((request.name, stable.name, _tag_values(stable, request), []))
            else:
                specs.append((request.name, None, [], _columns(request.columns, request.type_mods)))
        engine.create_tables(db, specs, if_not_exists=True, from_replica=True)
    elif raw_type == 519:
        engine.drop_tables(db, [r.name for r in message.requests], if_exists=True, from_replica=True)
    elif raw_type == 517:
        _apply_alter_table(engine, db, message)
    elif raw_type == 579:
        engine.delete(db, message.table_name, message.skey, message.ekey, from_replica=True)


MND_INVALID_SCHEMA_VER = 0x03C6   # "Invalid schema version"


def murmur3_32(data: bytes, seed: int = 0x12345678) -> int:
    """MurmurHash3 (x86, 32-bit) with TDengine's seed, as tmq_write_raw uses it to remap suids."""
    mask = 0xFFFFFFFF
    h = seed
    length = len(data)
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * 0xCC9E2D51) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * 0x1B873593) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[length - length % 4:]
    k = 0
    for i, byte in enumerate(tail):
        k |= byte << (8 * i)
    if tail:
        k = (k * 0xCC9E2D51) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * 0x1B873593) & mask
        h ^= k
    h ^= length
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


def replicated_suid(suid: int, db: str) -> int:
    """tmq_write_raw's processSuid: the sink keeps the source's suid shifted by a hash of its db."""
    value = (suid + murmur3_32(db.encode())) & 0xFFFF_FFFF_FFFF_FFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def _apply_stable(engine: SandboxEngine, db: str, message) -> None:
    """mndProcessCreateStbReq for a replicated create/alter: schema versions decide.

    A missing stable is created only from version 1 (else it was dropped meanwhile); an existing
    one moves only when the message is exactly one column or tag version ahead; older or equal
    versions (the same DDL arriving from another vgroup) change nothing.
    """
    columns = _columns(message.columns, message.type_mods)
    tags = _columns(message.tags, None)
    suid = replicated_suid(message.suid, db)
    existing = engine.stables.get((db, message.name))
    if existing is None:
        if message.schema_version != 1 or message.tag_version != 1:
            return
        engine.create_stable(db, message.name, columns, tags, if_not_exists=True, from_replica=True, uid=suid)
        return
    if existing.uid != suid:
        return
    col_delta = message.schema_version - existing.version
    tag_delta = message.tag_version - existing.tag_version
    if col_delta <= 0 and tag_delta <= 0:
        return
    if not ((tag_delta == 1 and col_delta == 0) or (tag_delta == 0 and col_delta == 1)
            or (existing.version == 1 and message.schema_version > 1)
            or (existing.tag_version == 1 and message.tag_version > 1)):
        raise error(MND_INVALID_SCHEMA_VER, "Invalid schema version")
    for kind, wanted, have in (("column", columns, existing.columns), ("tag", tags, existing.tags)):
        have_names = {c.name: c for c in have}
        wanted_names = {c.name for c in wanted}
        for name in [c.name for c in have if c.name not in wanted_names]:
            engine.alter_stable(db, message.name, f"drop_{kind}", ColumnDef(name, 0), from_replica=True)
        for column in wanted:
            current = have_names.get(column.name)
            if current is None:
                engine.alter_stable(db, message.name, f"add_{kind}", column, from_replica=True)
            elif column.length > current.length and column.type == current.type:
                engine.alter_stable(db, message.name, f"modify_{kind}", column, from_replica=True)
    engine.set_stable_versions(db, message.name, message.schema_version, message.tag_version)


def _apply_alter_table(engine: SandboxEngine, db: str, message: mf.AlterTable) -> None:
    if message.action == mf.ALTER_UPDATE_TAG_VAL:
        table = engine.table(db, message.table_name)
        stable = engine.stables[(db, table.stable)] if table.stable else None
        tag = stable.tag(message.tag_name) if stable else None
        if tag is None:
            raise error(codes.MND_TAG_NOT_EXIST)
        value = message.tag_value
        if tag.type == JSON:
            value = json_tag_text(value)
        engine.set_tag(db, message.table_name, message.tag_name, value, from_replica=True)
    elif message.action in (mf.ALTER_ADD_COLUMN, mf.ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION):
        field_ = mf.SchemaField(message.col_type, message.col_flags, message.col_bytes, 0, message.col_name)
        engine.add_column(db, message.table_name, _column_from_field(field_, message.type_mod), from_replica=True)
    else:
        raise error(codes.OPS_NOT_SUPPORT, f"ALTER TABLE action {message.action} is not supported by the sandbox")
