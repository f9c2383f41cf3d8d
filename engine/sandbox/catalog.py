"""The sandbox's data model: databases, vgroups, super tables, tables and their columns.

Widths follow TDengine's two conventions: ``length`` is what a user declared (varchar(32) -> 32,
nchar(16) -> 16) and ``encoded_bytes`` is the width in a raw block or schema wrapper
(varchar n+2, nchar 4n+2, decimals packed as ``(width << 24) | (precision << 8) | scale``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

# Type codes (formats.md 1.6).
BOOL, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, VARCHAR, TIMESTAMP, NCHAR = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
UTINYINT, USMALLINT, UINT, UBIGINT, JSON, VARBINARY, DECIMAL, BLOB, MEDIUMBLOB, GEOMETRY, DECIMAL64 = (
    11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)

FIXED_WIDTH = {BOOL: 1, TINYINT: 1, SMALLINT: 2, INT: 4, BIGINT: 8, FLOAT: 4, DOUBLE: 8, TIMESTAMP: 8,
               UTINYINT: 1, USMALLINT: 2, UINT: 4, UBIGINT: 8, DECIMAL: 16, DECIMAL64: 8}
VARIABLE_TYPES = frozenset({VARCHAR, NCHAR, JSON, VARBINARY, BLOB, MEDIUMBLOB, GEOMETRY})
TEXT_TYPES = frozenset({VARCHAR, NCHAR, JSON})
BYTES_TYPES = frozenset({VARBINARY, BLOB, MEDIUMBLOB, GEOMETRY})
JSON_ENCODED_BYTES = 16384          # TSDB_MAX_JSON_TAG_LEN
BLOB_ENCODED_BYTES = 5              # what 3.3.7 writes in a block's schema entry for a blob
MAX_BLOB_LENGTH = 4 * 1024 * 1024   # TSDB_MAX_BLOB_LEN
TBNAME_LENGTH = 270                 # tbname pseudo column as queries report it (block width 272)

PRECISION_CODES = {"ms": 0, "us": 1, "ns": 2}
PRECISION_NAMES = {v: k for k, v in PRECISION_CODES.items()}
UNITS_PER_MS = {0: 1, 1: 1_000, 2: 1_000_000}

# Schema flags TDengine sets on columns: SMA on (1), and "has type mod" (0x80) on decimals.
COLUMN_FLAG_SMA = 0x01
COLUMN_FLAG_TYPE_MOD = 0x80


@dataclass
class ColumnDef:
    name: str
    type: int
    length: int = 0            # user-visible width; fixed types: their width
    col_id: int = 0
    precision: int = 0         # decimals
    scale: int = 0
    options: dict[str, Any] = field(default_factory=dict)   # encode/compress/level/comment as declared

    @property
    def encoded_bytes(self) -> int:
        t = self.type
        if t in (DECIMAL, DECIMAL64):
            return (FIXED_WIDTH[t] << 24) | (self.precision << 8) | self.scale
        if t == JSON:
            return JSON_ENCODED_BYTES
        if t in (BLOB, MEDIUMBLOB):
            return BLOB_ENCODED_BYTES
        if t == NCHAR:
            return self.length * 4 + 2
        if t in VARIABLE_TYPES:
            return self.length + 2
        return FIXED_WIDTH[t]

    @property
    def flags(self) -> int:
        return COLUMN_FLAG_SMA | (COLUMN_FLAG_TYPE_MOD if self.type in (DECIMAL, DECIMAL64) else 0)

    def schema_entry(self) -> tuple[int, int, int, int, str]:
        """(type, flags, bytes, col_id, name) as a TMQ schema wrapper carries it."""
        return (self.type, self.flags, self.encoded_bytes, self.col_id, self.name)

    def to_record(self) -> list:
        return [self.name, self.type, self.length, self.col_id, self.precision, self.scale, self.options]

    @classmethod
    def from_record(cls, record: list) -> ColumnDef:
        name, type_, length, col_id, precision, scale, options = record
        return cls(name, type_, length, col_id, precision, scale, dict(options))


def fixed_length(type_code: int) -> int:
    return FIXED_WIDTH.get(type_code, 0)


@dataclass
class Database:
    name: str
    vgroups: list[int]
    precision: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    created_ms: int = 0

    @property
    def wal_retention_period(self) -> int:
        return int(self.options.get("wal_retention_period", 3600))

    @property
    def wal_retention_size(self) -> int:
        return int(self.options.get("wal_retention_size", -1))

    def vgroup_of(self, table: str) -> int:
        """Tables are spread over vgroups by a hash of their name (stable across restarts)."""
        return self.vgroups[zlib.crc32(f"{self.name}.{table}".encode()) % len(self.vgroups)]

    def to_record(self) -> dict:
        return {"name": self.name, "vgroups": self.vgroups, "precision": self.precision,
                "options": self.options, "created_ms": self.created_ms}

    @classmethod
    def from_record(cls, r: dict) -> Database:
        return cls(r["name"], list(r["vgroups"]), r["precision"], dict(r["options"]), r["created_ms"])


@dataclass
class SuperTable:
    db: str
    name: str
    uid: int
    columns: list[ColumnDef]
    tags: list[ColumnDef]
    version: int = 1
    tag_version: int = 1
    next_col_id: int = 0
    created_ms: int = 0

    def column(self, name: str) -> ColumnDef | None:
        return next((c for c in self.columns if c.name == name), None)

    def tag(self, name: str) -> ColumnDef | None:
        return next((t for t in self.tags if t.name == name), None)

    def to_record(self) -> dict:
        return {"db": self.db, "name": self.name, "uid": self.uid,
                "columns": [c.to_record() for c in self.columns], "tags": [t.to_record() for t in self.tags],
                "version": self.version, "tag_version": self.tag_version, "next_col_id": self.next_col_id,
                "created_ms": self.created_ms}

    @classmethod
    def from_record(cls, r: dict) -> SuperTable:
        return cls(r["db"], r["name"], r["uid"], [ColumnDef.from_record(c) for c in r["columns"]],
                   [ColumnDef.from_record(t) for t in r["tags"]], r["version"], r["tag_version"],
                   r["next_col_id"], r["created_ms"])


@dataclass
class Table:
    """A child table (``stable`` and ``tags`` set) or a normal table (``columns`` set)."""

    db: str
    name: str
    uid: int
    vgroup: int
    stable: str | None = None
    tags: list[Any] = field(default_factory=list)          # child: values in the stable's tag order
    columns: list[ColumnDef] = field(default_factory=list)  # normal tables only
    version: int = 1
    next_col_id: int = 0
    created_ms: int = 0

    @property
    def kind(self) -> str:
        return "child" if self.stable is not None else "normal"

    def to_record(self) -> dict:
        return {"db": self.db, "name": self.name, "uid": self.uid, "vgroup": self.vgroup, "stable": self.stable,
                "tags": self.tags, "columns": [c.to_record() for c in self.columns], "version": self.version,
                "next_col_id": self.next_col_id, "created_ms": self.created_ms}

    @classmethod
    def from_record(cls, r: dict) -> Table:
        return cls(r["db"], r["name"], r["uid"], r["vgroup"], r["stable"], list(r["tags"]),
                   [ColumnDef.from_record(c) for c in r["columns"]], r["version"], r["next_col_id"],
                   r["created_ms"])
