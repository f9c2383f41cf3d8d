"""Small stand-ins for the sandbox engine and TMQ service, for protocol-level tests.

They implement the interfaces ``engine.sandbox.protocol`` calls (see its ``*API`` protocols) with
canned data: a table ``all_types`` holding every column type with a row of NULLs, a large table
``big`` spanning several blocks, and a TMQ topic ``topic_all`` whose messages carry the same rows.
SQL is recognised by a handful of patterns; anything else is a syntax error.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine import error_codes as codes
from engine.codec import RawDataMessage, build_data_message, encode_block
from engine.errors import TDengineError

# (name, type code, user bytes, schema bytes, precision, scale)
ALL_TYPES_COLUMNS: list[tuple[str, int, int, int, int, int]] = [
    ("ts", 9, 8, 8, 0, 0),
    ("c_bool", 1, 1, 1, 0, 0),
    ("c_tinyint", 2, 1, 1, 0, 0),
    ("c_smallint", 3, 2, 2, 0, 0),
    ("c_int", 4, 4, 4, 0, 0),
    ("c_bigint", 5, 8, 8, 0, 0),
    ("c_float", 6, 4, 4, 0, 0),
    ("c_double", 7, 8, 8, 0, 0),
    ("c_varchar", 8, 20, 22, 0, 0),
    ("c_nchar", 10, 10, 42, 0, 0),
    ("c_utinyint", 11, 1, 1, 0, 0),
    ("c_usmallint", 12, 2, 2, 0, 0),
    ("c_uint", 13, 4, 4, 0, 0),
    ("c_ubigint", 14, 8, 8, 0, 0),
    ("c_varbinary", 16, 16, 18, 0, 0),
    ("c_geometry", 20, 64, 66, 0, 0),
    ("c_decimal64", 21, 8, (8 << 24) | (10 << 8) | 2, 10, 2),
    ("c_decimal", 17, 16, (16 << 24) | (20 << 8) | 4, 20, 4),
]

POINT_WKB = bytes.fromhex("0101000000000000000000f03f0000000000000040")   # POINT(1 2)

ALL_TYPES_ROWS: list[tuple[Any, ...]] = [
    (1700000000000, True, -1, -2, -3, -4, 1.5, 2.25, "hello", "中文字", 255, 65535, 4294967295,
     18446744073709551615, b"\x01\x02\xff", POINT_WKB, Decimal("12345678.91"), Decimal("1234567890123456.7891")),
    (1700000000001,) + (None,) * (len(ALL_TYPES_COLUMNS) - 1),
    (1700000000002, False, 127, 32767, 2147483647, 9223372036854775807, -0.5, -1e300, "", "", 0, 0, 0, 0,
     b"", POINT_WKB, Decimal("-0.01"), Decimal("0.0001")),
]


@dataclass
class FakeField:
    name: str
    type: int
    bytes: int
    precision: int = 0
    scale: int = 0


@dataclass
class FakeResult:
    fields: list[FakeField] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    affected_rows: int = 0
    precision: int = 0
    schema: list[int] = field(default_factory=list)     # block widths per column

    @property
    def is_update(self) -> bool:
        return not self.fields

    def blocks(self, max_rows: int = 4096) -> list[bytes]:
        out = []
        for start in range(0, len(self.rows), max_rows):
            chunk = self.rows[start:start + max_rows]
            columns = [(f.type, width, [row[i] for row in chunk])
                       for i, (f, width) in enumerate(zip(self.fields, self.schema))]
            out.append(encode_block(columns, version=1))
        return out


def all_types_result() -> FakeResult:
    return FakeResult(
        fields=[FakeField(n, t, b, p, s) for n, t, b, _, p, s in ALL_TYPES_COLUMNS],
        rows=list(ALL_TYPES_ROWS),
        schema=[w for _, _, _, w, _, _ in ALL_TYPES_COLUMNS],
    )


def big_result(n: int = 10000) -> FakeResult:
    return FakeResult(fields=[FakeField("ts", 9, 8), FakeField("v", 4, 4)],
                      rows=[(1700000000000 + i, i) for i in range(n)], schema=[8, 4])


class FakeSession:
    def __init__(self, engine: FakeEngine, db: str | None) -> None:
        self.engine = engine
        self.current_db = db
        self.raw_writes: list[tuple[int, bytes]] = []
        self.block_writes: list[tuple[str, bytes, list[str] | None]] = []

    def execute(self, sql: str) -> FakeResult:
        self.engine.statements.append(sql)
        s = sql.strip().rstrip(";")
        low = s.lower()
        if m := re.fullmatch(r"create database (if not exists )?(\w+).*", low, re.S):
            name = m.group(2)
            if name in self.engine.databases and not m.group(1):
                raise codes.error(codes.MND_DB_ALREADY_EXIST)
            self.engine.databases.add(name)
            return FakeResult()
        if m := re.fullmatch(r"use (\w+)", low):
            if m.group(1) not in self.engine.databases:
                raise codes.error(codes.MND_DB_NOT_EXIST)
            self.current_db = m.group(1)
            return FakeResult()
        if low.startswith(("create table", "create stable", "drop ", "create topic", "alter ")):
            return FakeResult()
        if low.startswith("insert"):
            if self.current_db is None and "." not in low.split("values")[0]:
                raise codes.error(codes.PAR_DB_NOT_SPECIFIED)
            return FakeResult(affected_rows=len(re.findall(r"\)\s*(?=\(|$)", s.split("values", 1)[-1])))
        if re.fullmatch(r"select \* from (\w+\.)?all_types", low):
            return all_types_result()
        if re.fullmatch(r"select \* from (\w+\.)?big", low):
            return big_result()
        if re.fullmatch(r"select \* from (\w+\.)?empty", low):
            return FakeResult(fields=[FakeField("ts", 9, 8)], rows=[], schema=[8])
        if low == "select server_version()":
            return FakeResult(fields=[FakeField("server_version()", 8, 12)], rows=[(self.engine.server_version,)],
                              schema=[14])
        if re.fullmatch(r"select \* from (\w+\.)?(\w+)", low):
            name = low.rsplit(" ", 1)[1]
            raise TDengineError(codes.PAR_TABLE_NOT_EXIST, codes.parser_message(codes.PAR_TABLE_NOT_EXIST, name))
        token = s.split()[0] if s.split() else s
        raise TDengineError(codes.PAR_SYNTAX_ERROR, codes.parser_message(codes.PAR_SYNTAX_ERROR, token))

    def write_raw(self, raw_type: int, data: bytes) -> None:
        if self.current_db is None:
            raise codes.error(codes.PAR_DB_NOT_SPECIFIED)
        if raw_type in (2, 4):
            RawDataMessage.decode(data, raw_type)      # raises CodecError on garbage
        self.raw_writes.append((raw_type, data))
        self.engine.raw_writes.append((raw_type, data))

    def write_raw_block(self, table: str, block: bytes, fields: list[str] | None) -> None:
        if self.current_db is None:
            raise codes.error(codes.PAR_DB_NOT_SPECIFIED)
        if table == "nosuch":
            raise TDengineError(codes.PAR_TABLE_NOT_EXIST, codes.parser_message(codes.PAR_TABLE_NOT_EXIST, table))
        self.block_writes.append((table, block, fields))
        self.engine.block_writes.append((table, block, fields))


class FakeEngine:
    server_version = "3.3.7.5"

    def __init__(self, data_dir: Path | str | None = None, user: str = "root", password: str = "taosdata") -> None:
        self.user = user
        self.password = password
        self.databases: set[str] = {"test"}
        self.statements: list[str] = []
        self.raw_writes: list[tuple[int, bytes]] = []
        self.block_writes: list[tuple[str, bytes, list[str] | None]] = []
        self.closed = False

    def authenticate(self, user: str, password: str) -> None:
        if user != self.user:
            raise codes.error(codes.MND_USER_NOT_EXIST)
        if password != self.password:
            raise codes.error(codes.MND_AUTH_FAILURE)

    def session(self, db: str | None = None) -> FakeSession:
        if db and db not in self.databases:
            raise codes.error(codes.MND_DB_NOT_EXIST)
        return FakeSession(self, db)

    def close(self) -> None:
        self.closed = True


# ------------------------------------------------------------------------------------------
# TMQ
# ------------------------------------------------------------------------------------------
TMQ_SCHEMA = [(t, 1 if i == 0 else 0, w, i + 1, n) for i, (n, t, _, w, _, _) in enumerate(ALL_TYPES_COLUMNS)]


def tmq_block(rows: list[tuple]) -> bytes:
    columns = [(t, w, [row[i] for row in rows]) for i, (_, t, _, w, _, _) in enumerate(ALL_TYPES_COLUMNS)]
    return encode_block(columns)          # TMQ form: version 2, LE lengths, trailing byte


@dataclass
class FakeMessage:
    topic: str
    database: str
    vgroup_id: int
    message_type: int
    offset: int
    raw_type: int
    raw: bytes
    json_meta: str | None = None


def data_message(topic: str, vgid: int, version: int, tables: list[tuple[str, list[tuple]]]) -> FakeMessage:
    msg = build_data_message([(tmq_block(rows), TMQ_SCHEMA, name) for name, rows in tables], version, version + 1)
    return FakeMessage(topic, "test", vgid, 1, version, 2, msg.encode())


def meta_message(topic: str, vgid: int, version: int) -> FakeMessage:
    meta = '{"type":"create","tableType":"normal","tableName":"t_meta","columns":[{"name":"ts","type":9}],"tags":[]}'
    return FakeMessage(topic, "test", vgid, 2, version, 531, b"\x00" * 16, json_meta=meta)


class FakeConsumer:
    def __init__(self, service: FakeTmqService, key: str, group: str, topics: list[str], config: dict[str, str]):
        self.service = service
        self.key = key
        self.group = group
        self.topics = list(topics)
        self.config = config
        self.position_of: dict[tuple[str, int], int] = {}
        self.queue: list[FakeMessage] = []
        self.closed = False
        self.calls: list[tuple] = []
        self._reset()

    def _reset(self) -> None:
        self.queue = [m for m in self.service.messages if m.topic in self.topics]
        for m in self.service.messages:
            self.position_of.setdefault((m.topic, m.vgroup_id), 0)

    async def poll(self, timeout_ms: int) -> FakeMessage | None:
        self.calls.append(("poll", timeout_ms))
        while self.queue:
            msg = self.queue.pop(0)
            if msg.offset >= self.position_of.get((msg.topic, msg.vgroup_id), 0):
                self.position_of[(msg.topic, msg.vgroup_id)] = msg.offset + 1
                return msg
        await asyncio.sleep(min(max(timeout_ms, 0), 200) / 1000)
        return None

    def commit(self) -> None:
        self.calls.append(("commit",))
        for key, pos in self.position_of.items():
            self.service.committed_of[(self.group,) + key] = pos

    def commit_offset(self, topic: str, vgid: int, offset: int) -> None:
        self.calls.append(("commit_offset", topic, vgid, offset))
        self._check(topic, vgid)
        self.service.committed_of[(self.group, topic, vgid)] = offset

    def committed(self, topic: str, vgid: int) -> int:
        self._check(topic, vgid)
        return self.service.committed_of.get((self.group, topic, vgid), -2147467247)

    def position(self, topic: str, vgid: int) -> int:
        self._check(topic, vgid)
        return self.position_of.get((topic, vgid), 0)

    def seek(self, topic: str, vgid: int, offset: int) -> None:
        self.calls.append(("seek", topic, vgid, offset))
        self._check(topic, vgid)
        self.position_of[(topic, vgid)] = offset
        self.queue = [m for m in self.service.messages if m.topic in self.topics]

    def assignment(self, topic: str) -> list[tuple[int, int, int, int]]:
        if topic not in self.topics:
            raise codes.error(codes.TMQ_INVALID_TOPIC)
        ends: dict[int, int] = {}
        for m in self.service.messages:
            if m.topic == topic:
                ends[m.vgroup_id] = max(ends.get(m.vgroup_id, 0), m.offset + 1)
        return [(vgid, self.position_of.get((topic, vgid), 0), 0, end) for vgid, end in sorted(ends.items())]

    def list_topics(self) -> list[str]:
        return list(self.topics)

    def unsubscribe(self) -> None:
        self.calls.append(("unsubscribe",))
        self.topics = []
        self.queue = []

    def subscribe(self, topics: list[str]) -> None:
        self.calls.append(("subscribe", list(topics)))
        self.topics = list(topics)
        self._reset()

    def close(self) -> None:
        self.closed = True

    def _check(self, topic: str, vgid: int) -> None:
        if topic not in self.topics:
            raise codes.error(codes.TMQ_INVALID_TOPIC)
        if (topic, vgid) not in self.position_of:
            raise codes.error(codes.TMQ_INVALID_VGID)


class FakeTmqService:
    def __init__(self, engine: Any = None, messages: list[FakeMessage] | None = None) -> None:
        self.engine = engine
        self.messages = messages if messages is not None else default_messages()
        self.committed_of: dict[tuple[str, str, int], int] = {}
        self.consumers: list[FakeConsumer] = []

    def subscribe(self, key: str, group: str, client: str, topics: list[str], config: dict[str, str]) -> FakeConsumer:
        for topic in topics:
            if topic not in {m.topic for m in self.messages} | {"empty_topic"}:
                raise codes.error(codes.MND_TOPIC_NOT_EXIST)
        consumer = FakeConsumer(self, key, group, topics, config)
        self.consumers.append(consumer)
        return consumer


def default_messages() -> list[FakeMessage]:
    rows = ALL_TYPES_ROWS
    return [
        data_message("topic_all", 2, 0, [("d0", rows[:2]), ("d1", rows[2:])]),
        data_message("topic_all", 3, 0, [("d2", rows)]),
        data_message("topic_all", 2, 1, [("d0", [(1700000000100,) + rows[0][1:]])]),
        meta_message("topic_meta", 2, 0),
    ]
