"""Prepared statements (``stmt``: init/prepare/set_table_name/set_tags/bind/add_batch/exec) with the
official ``taosws`` client against the sandbox, end to end over the real engine.

``conn.statement()`` opens its own ``/ws`` socket; binds are binary action 2 (a raw block per
``bind_param``), tags are JSON ``set_tags``. The rows take the ordinary write path, so SELECT sees
them. ``stmt2`` (``conn.stmt2_statement()``) is not implemented by the sandbox.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.sandbox.server import Sandbox

taosws = pytest.importorskip("taosws")

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("stmt")
    sb = Sandbox(root / "data", process=True, trace_file=root / "trace.txt").start()
    conn = taosws.connect(sb.dsn)
    conn.execute("create database db")
    conn.execute("use db")
    conn.execute("create table t (ts timestamp, i int, b bigint, f float, d double, ok bool, s varchar(20), "
                 "n nchar(10), ti tinyint, si smallint, ui int unsigned, ub bigint unsigned)")
    conn.execute("create stable st (ts timestamp, v int) tags (loc varchar(16), gid int)")
    conn.close()
    yield sb
    sb.stop()


@pytest.fixture
def conn(sandbox):
    c = taosws.connect(sandbox.dsn + "db" if sandbox.dsn.endswith("/") else sandbox.dsn + "/db")
    yield c
    c.close()


def _ts_ms(text: str) -> int:
    from datetime import UTC, datetime, timedelta
    value = datetime.fromisoformat(text.replace(" +", "+").replace(" -", "-"))
    return int((value - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


def test_insert_every_type_with_nulls(conn, sandbox):
    stmt = conn.statement()
    stmt.prepare("insert into t values(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    stmt.bind_param([
        taosws.millis_timestamps_to_column([T0, T0 + 1, T0 + 2]),
        taosws.ints_to_column([1, None, -3]),
        taosws.big_ints_to_column([10, -(1 << 62), None]),
        taosws.floats_to_column([1.5, None, -2.5]),
        taosws.doubles_to_column([None, 2.25, 3.75]),
        taosws.bools_to_column([True, False, None]),
        taosws.varchar_to_column(["a", None, "ccc"]),
        taosws.nchar_to_column(["中文", "b", None]),
        taosws.tiny_ints_to_column([1, -128, None]),
        taosws.small_ints_to_column([None, 2, 32767]),
        taosws.unsigned_ints_to_column([4, 4294967295, None]),
        taosws.unsigned_big_ints_to_column([None, 7, 18446744073709551615]),
    ])
    stmt.add_batch()
    stmt.bind_param([                                           # a second batch, same statement
        taosws.millis_timestamps_to_column([T0 + 3]),
        *[taosws.ints_to_column([None])][:1],
        taosws.big_ints_to_column([None]), taosws.floats_to_column([None]), taosws.doubles_to_column([None]),
        taosws.bools_to_column([None]), taosws.varchar_to_column([None]), taosws.nchar_to_column([None]),
        taosws.tiny_ints_to_column([None]), taosws.small_ints_to_column([None]),
        taosws.unsigned_ints_to_column([None]), taosws.unsigned_big_ints_to_column([None]),
    ])
    stmt.add_batch()
    assert stmt.execute() == 4
    assert stmt.affect_rows() == 4
    rows = [(_ts_ms(r[0]),) + tuple(r[1:]) for r in conn.query("select * from t order by ts")]
    assert rows == [
        (T0, 1, 10, 1.5, None, True, "a", "中文", 1, None, 4, None),
        (T0 + 1, None, -(1 << 62), None, 2.25, False, None, "b", -128, 2, 4294967295, 7),
        (T0 + 2, -3, None, -2.5, 3.75, None, "ccc", None, None, 32767, None, 18446744073709551615),
        (T0 + 3,) + (None,) * 11,
    ]
    trace = Path(sandbox.trace_file).read_text().split()
    assert {"init", "prepare", "bind", "add_batch", "exec"} <= set(trace)


def test_execute_again_and_column_list(conn):
    conn.execute("create table t2 (ts timestamp, a int, b varchar(8))")
    stmt = conn.statement()
    stmt.prepare("insert into t2 (ts, b) values(?, ?)")
    for k in range(2):                                          # prepared once, executed twice
        stmt.bind_param([taosws.millis_timestamps_to_column([T0 + k]), taosws.varchar_to_column([f"x{k}"])])
        stmt.add_batch()
        assert stmt.execute() == 1
    assert [tuple(r[1:]) for r in conn.query("select * from t2 order by ts")] == [(None, "x0"), (None, "x1")]


def test_child_tables_auto_created_with_tags(conn):
    stmt = conn.statement()
    stmt.prepare("insert into ? using st tags(?, ?) values(?, ?)")
    for name, loc, gid, base in (("d1", "north", 1, 0), ("d2", "south", 2, 10)):
        stmt.set_tbname(name)
        stmt.set_tags([taosws.varchar_to_tag(loc), taosws.int_to_tag(gid)])
        stmt.bind_param([taosws.millis_timestamps_to_column([T0, T0 + 1]),
                         taosws.ints_to_column([base, base + 1])])
        stmt.add_batch()
    assert stmt.execute() == 4
    rows = sorted(tuple(r) for r in conn.query("select tbname, v, loc, gid from st"))
    assert rows == [("d1", 0, "north", 1), ("d1", 1, "north", 1), ("d2", 10, "south", 2), ("d2", 11, "south", 2)]
    stmt.set_tbname("d1")                                       # existing child: tags are ignored
    stmt.set_tags([taosws.varchar_to_tag("north"), taosws.int_to_tag(1)])
    stmt.bind_param([taosws.millis_timestamps_to_column([T0 + 5]), taosws.ints_to_column([None])])
    stmt.add_batch()
    assert stmt.execute() == 1
    assert list(conn.query("select count(*) from d1")) == [(3,)]


def test_insert_into_placeholder_table(conn):
    conn.execute("create table t3 (ts timestamp, v double)")
    stmt = conn.statement()
    stmt.prepare("insert into ? values(?, ?)")
    stmt.set_tbname("t3")
    stmt.bind_param([taosws.millis_timestamps_to_column([T0]), taosws.doubles_to_column([0.5])])
    stmt.add_batch()
    assert stmt.execute() == 1
    assert [r[1] for r in conn.query("select * from t3")] == [0.5]


def test_errors_have_tdengine_codes(conn):
    stmt = conn.statement()
    with pytest.raises(Exception, match=r"(?i)table does not exist"):
        stmt.prepare("insert into nosuch values(?, ?)")
    stmt = conn.statement()
    stmt.prepare("insert into ? values(?, ?)")
    with pytest.raises(Exception, match=r"(?i)table does not exist"):
        stmt.set_tbname("nosuch")
    stmt = conn.statement()
    stmt.prepare("insert into t3 values(?, ?)")
    with pytest.raises(Exception, match="column count not match"):
        stmt.bind_param([taosws.millis_timestamps_to_column([T0 + 9])])
    with pytest.raises(Exception, match=r"(?i)syntax error"):
        conn.statement().prepare("insert into t3 values(?, ?")
    stmt = conn.statement()                                      # a bad value fails at execute
    stmt.prepare("insert into t3 values(?, ?)")
    stmt.bind_param([taosws.millis_timestamps_to_column([None]), taosws.doubles_to_column([1.0])])
    stmt.add_batch()
    with pytest.raises(Exception, match=r"(?i)timestamp"):
        stmt.execute()
    assert [r[1] for r in conn.query("select * from t3")] == [0.5]
