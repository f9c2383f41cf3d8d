"""Fidelity tests: the official ``taosws`` client (taos-ws-py) against the sandbox, unchanged.

taos-ws-py holds the GIL while it waits for the server, so every sandbox here runs in a child
process (``Sandbox(process=True)``). Each SQL path is covered: with the real version string
(3.3.7.5) the client uses ``binary_query`` + ``fetch_raw_block`` and TMQ ``fetch_raw_data``; a
sandbox announcing 3.3.1.0 makes it use JSON ``query`` + ``fetch``/``fetch_block`` and TMQ
``fetch``/``fetch_block``. A trace file records the actions the server saw, to prove which.

Two groups: wire fidelity over the fakes in ``sandbox_fakes`` (canned rows of every type), and
end to end over the real engine (DDL, inserts, queries, topics, consumers).
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from engine.sandbox.server import Sandbox
from tests.sandbox_fakes import ALL_TYPES_COLUMNS, ALL_TYPES_ROWS

taosws = pytest.importorskip("taosws")

NEW_VERSION, OLD_VERSION = None, "3.3.1.0"
FAKES = {"engine_factory": "tests.sandbox_fakes:FakeEngine", "tmq_factory": "tests.sandbox_fakes:FakeTmqService"}


def _start(tmp_path_factory, name: str, version: str | None, **factories) -> Sandbox:
    root = tmp_path_factory.mktemp(name)
    sb = Sandbox(root / "data", process=True, version=version, trace_file=root / "trace.txt", **factories)
    return sb.start()


def _trace(sb: Sandbox) -> Counter:
    path = Path(sb.trace_file)
    return Counter(path.read_text().split("\n")) if path.exists() else Counter()


def _ts(value) -> int:
    """Milliseconds of a timestamp as taosws returns it (query: text with offset; TMQ: datetime)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace(" +", "+").replace(" -", "-"))
    return int((value - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


def _norm(row: tuple) -> tuple:
    return (_ts(row[0]),) + tuple(row[1:])


def _consumer(sb: Sandbox, group: str, **conf) -> taosws.Consumer:
    base = {"td.connect.websocket.scheme": "ws", "td.connect.ip": "127.0.0.1", "td.connect.port": str(sb.port),
            "td.connect.user": "root", "td.connect.pass": "taosdata", "group.id": group,
            "auto.offset.reset": "earliest", "enable.auto.commit": "false"}
    base.update(conf)
    return taosws.Consumer(conf=base)


def _drain(consumer, timeout: float = 0.5, limit: int = 50) -> list[tuple]:
    """Poll until an empty poll; (topic, vgroup, database, [(fields, rows)]) per message, committing each."""
    out = []
    for _ in range(limit):
        message = consumer.poll(timeout)
        if message is None:
            break
        blocks = [([f.name() for f in block.fields()], block.fetchall()) for block in message]
        out.append((message.topic(), message.vgroup(), message.database(), blocks))
        consumer.commit(message)
    return out


# =============================================================================================
# wire fidelity over the fakes
# =============================================================================================
@pytest.fixture(scope="module")
def fake_new(tmp_path_factory):
    sb = _start(tmp_path_factory, "fake_new", NEW_VERSION, **FAKES)
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def fake_old(tmp_path_factory):
    sb = _start(tmp_path_factory, "fake_old", OLD_VERSION, **FAKES)
    yield sb
    sb.stop()


@pytest.fixture(params=["binary", "json"])
def fake(request, fake_new, fake_old):
    return fake_new if request.param == "binary" else fake_old


def _expected_query_row(row: tuple) -> tuple:
    return tuple(row)


def test_fake_query_every_type_with_nulls(fake):
    conn = taosws.connect(fake.dsn)
    result = conn.query("select * from all_types")
    assert result.field_count == len(ALL_TYPES_COLUMNS)
    assert [(f.name(), f.bytes()) for f in result.fields] == [(c[0], c[2]) for c in ALL_TYPES_COLUMNS]
    rows = [_norm(row) for row in result]
    assert rows == [_expected_query_row(r) for r in ALL_TYPES_ROWS]
    assert sum(1 for _ in conn.query("select * from big")) == 10000
    assert list(conn.query("select * from empty")) == []
    assert conn.execute("insert into test.t values (now, 1) (now, 2) (now, 3)") == 3
    conn.close()
    seen = _trace(fake)
    if fake.version == OLD_VERSION:
        assert seen["ws query"] and seen["ws fetch"] and seen["ws fetch_block"] and not seen["ws binary_query"]
    else:
        assert seen["ws binary_query"] and seen["ws fetch_raw_block"] and not seen["ws query"]


def test_fake_errors(fake):
    with pytest.raises(taosws.ConnectionError, match=r"0x0357.*Authentication failure"):
        taosws.connect(f"ws://root:wrong@127.0.0.1:{fake.port}")
    with pytest.raises(taosws.ConnectionError, match=r"0x0351.*Invalid user"):
        taosws.connect(f"ws://nobody:taosdata@127.0.0.1:{fake.port}")
    with pytest.raises(taosws.ConnectionError, match=r"0x0388.*Database not exist"):
        taosws.connect(f"ws://root:taosdata@127.0.0.1:{fake.port}/nodb")
    conn = taosws.connect(fake.dsn)
    with pytest.raises(taosws.QueryError, match=r"0x2603.*Table does not exist: nosuch"):
        conn.query("select * from nosuch")
    with pytest.raises(taosws.QueryError, match=r'0x2600.*syntax error near "selec"'):
        conn.execute("selec 1")
    assert sum(1 for _ in conn.query("select * from all_types")) == 3      # the connection is fine
    conn.close()


def test_fake_cursor(fake):
    conn = taosws.connect(fake.dsn)
    cursor = conn.cursor()
    cursor.execute("select * from all_types")
    rows = cursor.fetchall()
    assert len(rows) == 3 and rows[1][1:] == (None,) * (len(ALL_TYPES_COLUMNS) - 1)
    cursor.close()
    conn.close()


def test_fake_consumer_reads_every_row(fake):
    consumer = _consumer(fake, f"g_read_{fake.port}")
    consumer.subscribe(["topic_all"])
    assert consumer.list_topics() == ["topic_all"]
    messages = _drain(consumer)
    assert [(t, vg, db) for t, vg, db, _ in messages] == [("topic_all", 2, "test"), ("topic_all", 3, "test"),
                                                          ("topic_all", 2, "test")]
    names = [c[0] for c in ALL_TYPES_COLUMNS]
    rows = []
    for _, _, _, blocks in messages:
        for fields, block_rows in blocks:
            assert fields == names
            rows.extend(_norm(r) for r in block_rows)
    expected = list(ALL_TYPES_ROWS) + list(ALL_TYPES_ROWS) + [(1700000000100,) + ALL_TYPES_ROWS[0][1:]]
    assert rows == expected
    assert consumer.committed("topic_all", 2) == 2 and consumer.position("topic_all", 2) == 2
    assert consumer.committed("topic_all", 3) == 1
    consumer.close()
    seen = _trace(fake)
    if fake.version == OLD_VERSION:
        assert seen["tmq fetch"] and seen["tmq fetch_block"] and not seen["tmq fetch_raw_data"]
    else:
        assert seen["tmq fetch_raw_data"] and not seen["tmq fetch_block"]
    assert seen["tmq subscribe"] and seen["tmq poll"] and seen["tmq commit"]


def test_fake_consumer_offsets(fake):
    consumer = _consumer(fake, f"g_off_{fake.port}")
    consumer.subscribe(["topic_all"])
    first = consumer.poll(1)
    assert first is not None and first.vgroup() == 2
    list(first)
    consumer.commit(first)
    assert consumer.committed("topic_all", 2) == 1
    (topic,) = consumer.assignment()
    assert topic.topic() == "topic_all"
    assert [(a.vg_id(), a.offset(), a.begin(), a.end()) for a in topic.assignments()] == [(2, 1, 0, 2), (3, 0, 0, 1)]
    consumer.seek("topic_all", 2, 0)
    assert consumer.position("topic_all", 2) == 0
    consumer.commit_offset("topic_all", 3, 1)
    assert consumer.committed("topic_all", 3) == 1
    again = _drain(consumer)
    assert [vg for _, vg, _, _ in again].count(2) == 2        # vgroup 2 read again from 0 after the seek
    consumer.unsubscribe()


# =============================================================================================
# end to end over the real engine
# =============================================================================================
def _real_engine_available() -> bool:
    return all(importlib.util.find_spec(m) is not None
               for m in ("engine.sandbox.engine", "engine.sandbox.executor", "engine.sandbox.tmq"))


real_only = pytest.mark.skipif(not _real_engine_available(), reason="the sandbox engine is not there yet")

COLUMNS_DDL = ("ts timestamp, c_bool bool, c_tinyint tinyint, c_smallint smallint, c_int int, c_bigint bigint, "
               "c_float float, c_double double, c_varchar varchar(20), c_nchar nchar(10), "
               "c_utinyint tinyint unsigned, c_usmallint smallint unsigned, c_uint int unsigned, "
               "c_ubigint bigint unsigned, c_varbinary varbinary(16), c_geometry geometry(64), "
               "c_decimal64 decimal(10,2), c_decimal decimal(20,4)")
POINT_WKB = bytes.fromhex("0101000000000000000000f03f0000000000000040")
REAL_ROWS = [
    ("1700000000000", "true, -1, -2, -3, -4, 1.5, 2.25, 'hello', '中文字', 255, 65535, 4294967295, "
     "18446744073709551615, '\\x0102ff', 'POINT(1 2)', 12345678.91, 123456.7891",
     (True, -1, -2, -3, -4, 1.5, 2.25, "hello", "中文字", 255, 65535, 4294967295, 18446744073709551615,
      b"\x01\x02\xff", POINT_WKB, Decimal("12345678.91"), Decimal("123456.7891"))),
    ("1700000000001", ", ".join(["null"] * 17), (None,) * 17),
    ("1700000000002", "false, 127, 32767, 2147483647, 9223372036854775807, -0.5, -1e300, '', '', 0, 0, 0, 0, "
     "'', 'POINT(1 2)', -0.01, 0.0001",
     (False, 127, 32767, 2147483647, 9223372036854775807, -0.5, -1e300, "", "", 0, 0, 0, 0, b"", POINT_WKB,
      Decimal("-0.01"), Decimal("0.0001"))),
]
EXPECTED_REAL = sorted((int(ts), *values) for ts, _, values in REAL_ROWS)


def _setup_real(conn) -> None:
    for sql in (
        "create database if not exists e2e vgroups 2",
        "use e2e",
        f"create stable if not exists st ({COLUMNS_DDL}) tags (t_id int, t_name varchar(16))",
        "create table if not exists d0 using st tags (0, 'zero')",
        "create table if not exists d1 using st tags (1, 'one')",
        "create topic if not exists e2e_topic as database e2e",
    ):
        conn.execute(sql)
    for i, (ts, values, _) in enumerate(REAL_ROWS):
        assert conn.execute(f"insert into d{i % 2} values ({ts}, {values})") == 1


@pytest.fixture(scope="module")
def real_new(tmp_path_factory):
    if not _real_engine_available():
        pytest.skip("the sandbox engine is not there yet")
    sb = _start(tmp_path_factory, "real_new", NEW_VERSION)
    conn = taosws.connect(sb.dsn)
    _setup_real(conn)
    conn.close()
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def real_old(tmp_path_factory):
    if not _real_engine_available():
        pytest.skip("the sandbox engine is not there yet")
    sb = _start(tmp_path_factory, "real_old", OLD_VERSION)
    conn = taosws.connect(sb.dsn)
    _setup_real(conn)
    conn.close()
    yield sb
    sb.stop()


@pytest.fixture(params=["binary", "json"])
def real(request, real_new, real_old):
    return real_new if request.param == "binary" else real_old


@real_only
def test_real_query_every_type_with_nulls(real):
    conn = taosws.connect(real.dsn + "/e2e")
    result = conn.query("select * from st")
    names = [f.name() for f in result.fields]
    assert names[:18] == [c[0] for c in ALL_TYPES_COLUMNS] and names[18:] == ["t_id", "t_name"]
    assert [f.bytes() for f in result.fields][:16] == [c[2] for c in ALL_TYPES_COLUMNS][:16]
    rows = sorted(_norm(r) for r in result)
    assert [r[:18] for r in rows] == EXPECTED_REAL
    assert [r[18:] for r in rows] == [(0, "zero"), (1, "one"), (0, "zero")]
    assert [_norm(r)[:18] for r in conn.query("select * from d1")] == [EXPECTED_REAL[1]]
    conn.close()
    seen = _trace(real)
    assert seen["ws binary_query" if real.version != OLD_VERSION else "ws fetch_block"]


@real_only
def test_real_errors(real):
    conn = taosws.connect(real.dsn)
    with pytest.raises(taosws.QueryError, match="0x2616"):
        conn.execute("insert into d0 values (now, true)")
    with pytest.raises(taosws.QueryError, match="0x0381"):
        conn.execute("create database e2e")
    with pytest.raises(taosws.QueryError, match="0x0388"):
        conn.execute("use no_such_db")
    with pytest.raises(taosws.QueryError, match="0x26"):
        conn.execute("select * frm e2e.st")
    with pytest.raises(taosws.ConnectionError, match=r"0x0388.*Database not exist"):
        taosws.connect(real.dsn + "/no_such_db")
    with pytest.raises(taosws.ConnectionError, match=r"0x0357.*Authentication failure"):
        taosws.connect(f"ws://root:nope@127.0.0.1:{real.port}")
    conn.close()


@real_only
def test_real_consumer_reads_every_row_and_offsets(real):
    consumer = _consumer(real, f"g_e2e_{real.port}")
    consumer.subscribe(["e2e_topic"])
    messages = _drain(consumer)
    rows_by_vg: dict[int, list[tuple]] = {}
    for topic, vg, db, blocks in messages:
        assert (topic, db) == ("e2e_topic", "e2e")
        for fields, block_rows in blocks:
            assert fields == [c[0] for c in ALL_TYPES_COLUMNS]
            rows_by_vg.setdefault(vg, []).extend(_norm(r) for r in block_rows)
    assert sorted(r for rs in rows_by_vg.values() for r in rs) == EXPECTED_REAL
    (assignment,) = consumer.assignment()
    assert assignment.topic() == "e2e_topic"
    ranges = {a.vg_id(): (a.offset(), a.begin(), a.end()) for a in assignment.assignments()}
    assert len(ranges) == 2 and set(rows_by_vg) <= set(ranges)
    for vgid, (offset, begin, end) in ranges.items():
        # tmq_get_topic_assignment reports the first version of the last batch read (beginOffset)
        assert begin <= offset <= end
        assert consumer.position("e2e_topic", vgid) == end
        if vgid in rows_by_vg:       # committed with its message (commit = commit all, before later polls)
            assert consumer.committed("e2e_topic", vgid) == end
    # seek back to the start of every vgroup and read everything again
    for vgid, (_, begin, _) in ranges.items():
        consumer.seek("e2e_topic", vgid, begin)
        assert consumer.position("e2e_topic", vgid) == begin
    again = [_norm(r) for _, _, _, blocks in _drain(consumer) for _, rs in blocks for r in rs]
    assert sorted(again) == EXPECTED_REAL
    # commit one vgroup back to its start: a new consumer of the group reads exactly its rows again
    vgid = min(rows_by_vg)
    consumer.commit_offset("e2e_topic", vgid, ranges[vgid][1])
    assert consumer.committed("e2e_topic", vgid) == ranges[vgid][1]
    consumer.unsubscribe()
    consumer = _consumer(real, f"g_e2e_{real.port}")
    consumer.subscribe(["e2e_topic"])
    reread = [_norm(r) for _, _, _, blocks in _drain(consumer) for _, rs in blocks for r in rs]
    assert sorted(reread) == sorted(rows_by_vg[vgid])
    consumer.close()


@real_only
def test_real_consumer_sees_new_rows(real_new):
    consumer = _consumer(real_new, "g_live", **{"auto.offset.reset": "latest"})
    consumer.subscribe(["e2e_topic"])
    assert _drain(consumer, timeout=0.3) == []
    conn = taosws.connect(real_new.dsn + "/e2e")
    conn.execute("insert into d0 values (1700000001000, true, 1, 1, 1, 1, 1, 1, 'x', 'y', 1, 1, 1, 1, 'z', "
                 "'POINT(1 2)', 1, 1)")
    got = [_norm(r) for _, _, _, blocks in _drain(consumer, timeout=2) for _, rs in blocks for r in rs]
    assert [r[0] for r in got] == [1700000001000]
    conn.close()
    consumer.close()


@real_only
@pytest.mark.parametrize("precision,ts,text", [
    ("us", 1700000000000123, "2023-11-14 22:13:20.000123 +00:00"),
    ("ns", 1700000000000123456, "2023-11-14 22:13:20.000123456 +00:00"),
])
def test_real_precision(real, precision, ts, text):
    db = f"prec_{precision}"
    conn = taosws.connect(real.dsn)
    conn.execute(f"create database if not exists {db} precision '{precision}'")
    conn.execute(f"create table if not exists {db}.t (ts timestamp, v int)")
    conn.execute(f"insert into {db}.t values ({ts}, 1)")
    conn.execute(f"create topic if not exists {db}_topic as database {db}")
    assert list(conn.query(f"select * from {db}.t")) == [(text, 1)]
    conn.close()
    consumer = _consumer(real, f"g_{db}_{real.port}")
    consumer.subscribe([f"{db}_topic"])
    rows = [r for _, _, _, blocks in _drain(consumer) for _, rs in blocks for r in rs]
    consumer.close()
    (value, v), = rows
    assert v == 1
    if precision == "ns":
        assert value == ts                          # taos-ws-py hands out nanoseconds as an int
    else:
        assert int((value - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) == ts


def test_fake_dsn_options(fake_new):
    """permessage-deflate (negotiated as gorilla does), a time zone (options_connection), conn_mode."""
    conn = taosws.connect(fake_new.dsn + "?compression=true")
    assert [_norm(r) for r in conn.query("select * from all_types")] == list(ALL_TYPES_ROWS)
    assert sum(1 for _ in conn.query("select * from big")) == 10000
    conn.close()
    conn = taosws.connect(fake_new.dsn + "/test?timezone=Asia/Shanghai&conn_mode=1")
    rows = list(conn.query("select * from all_types"))
    assert rows[0][0] == "2023-11-15 06:13:20 CST"           # the client renders in the connection's zone
    assert [r[1:] for r in rows] == [r[1:] for r in ALL_TYPES_ROWS]
    conn.close()
    consumer = _consumer(fake_new, "g_deflate", compression="true")
    consumer.subscribe(["topic_all"])
    assert sum(len(rs) for _, _, _, blocks in _drain(consumer) for _, rs in blocks) == 7
    consumer.close()
