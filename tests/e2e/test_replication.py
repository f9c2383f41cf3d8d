"""End to end: VgroupWorkers replicate between two real sandboxes; both sides are compared row by row."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from engine.connectors.base import open_sink, open_source
from engine.replication.batch import BatchLimits
from engine.replication.offsets import OffsetStore
from engine.replication.worker import VgroupWorker
from engine.sandbox.server import Sandbox

ALL_TYPES = ("ts timestamp, c_bool bool, c_i8 tinyint, c_i16 smallint, c_i32 int, c_i64 bigint, "
             "c_u8 tinyint unsigned, c_u16 smallint unsigned, c_u32 int unsigned, c_u64 bigint unsigned, "
             "c_f32 float, c_f64 double, c_vc varchar(24), c_nc nchar(12), c_vb varbinary(16), "
             "c_geo geometry(64), c_d64 decimal(12,3), c_d128 decimal(30,8), c_ts timestamp")


def row_values(table: int, i: int) -> str:
    """One row of every type; every 7th value of a column is NULL (a different one per row)."""
    base = 1_767_225_600_000 + i * 1000
    values = [
        str(base), "true" if (i + table) % 2 else "false", str((i % 255) - 128), str(i * 7 % 65535 - 32768),
        str(i * 104729 % (2 ** 31) - 2 ** 30), str(i * 2_654_435_761 - 2 ** 40), str(i % 256),
        str(i * 3 % 65536), str(i * 2_654_435 % (2 ** 32)), str(2 ** 64 - 1 - i),
        f"{i * 0.25 - 100:.2f}", f"{i * 1.0000001 - 3.5:.7f}", f"'t{table}_{i}'", f"'ü{i % 100}京'",
        f"'\\x{i % 256:02x}{table % 256:02x}'", f"'POINT({i % 90} {table % 45})'", f"{i * 1.125 - 50:.3f}",
        f"{table}.{i:08d}", str(base - 5),
    ]
    values[1 + (i + table) % 18] = "NULL"
    return "(" + ", ".join(values) + ")"


class Side:
    """One sandbox and the statements run on it (on its own thread, through the engine's session)."""

    def __init__(self, root: Path, name: str) -> None:
        self.sandbox = Sandbox(root / name).start()
        self.session = None

    def sql(self, statement: str):
        sb = self.sandbox

        def run():
            if self.session is None:
                self.session = sb.engine.session()
            return self.session.execute(statement)

        return sb.call(run, timeout=120)

    def wal_ends(self, db: str) -> dict[int, int]:
        sb = self.sandbox
        return sb.call(lambda: {v: sb.engine.storage.wal_range(v)[1] for v in sb.engine.databases[db].vgroups})

    def replicated_rows(self, db: str) -> tuple[int, int]:
        """(rows written by applications, rows written through a raw write) in this side's WALs."""
        sb = self.sandbox

        def count():
            app = replica = 0
            for vgid in sb.engine.databases[db].vgroups:
                for entry in sb.engine.storage.wal_read(vgid, 0):
                    if entry.kind == "data":
                        if entry.from_replica:
                            replica += entry.rows
                        else:
                            app += entry.rows
            return app, replica

        return sb.call(count)

    def stop(self) -> None:
        self.sandbox.stop()


@pytest.fixture
def sides(tmp_path):
    a, b = Side(tmp_path, "a"), Side(tmp_path, "b")
    yield a, b
    a.stop()
    b.stop()


class Replica:
    """Workers of one replica (one per source vgroup) running on an event loop in a thread."""

    def __init__(self, name: str, db: str, source: Side, sink: Side, offsets: OffsetStore, workers: int,
                 limits: BatchLimits | None = None) -> None:
        self.name, self.db, self.source, self.offsets = name, db, source, offsets
        self.loop = asyncio.new_event_loop()
        self.workers = []
        for n in range(workers):
            async def src(url=source.sandbox.url):
                return open_source(url)

            async def snk(url=sink.sandbox.url):
                return open_sink(url)

            self.workers.append(VgroupWorker(name, db, src, snk, offsets, client_id=f"{name}-{n}",
                                             limits=limits or BatchLimits(max_age=0.05)))
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        async def main():
            results = await asyncio.gather(*(w.run() for w in self.workers), return_exceptions=True)
            self.errors.extend(r for r in results if isinstance(r, BaseException))

        self.loop.run_until_complete(main())

    def caught_up(self) -> bool:
        ends = self.source.wal_ends(self.db)
        stored = {r.vgroup: r.offset for r in self.offsets.all(self.name) if r.database == self.db}
        return all(stored.get(v, 0) >= end for v, end in ends.items())

    def wait(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self.caught_up():
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, "replication did not catch up"
            time.sleep(0.1)

    def stop(self) -> None:
        for w in self.workers:
            self.loop.call_soon_threadsafe(w.stop)
        self.thread.join(60)
        assert not self.errors, self.errors


def tables_of(side: Side, db: str) -> list[tuple]:
    return sorted(side.sql(f"show {db}.tables").rows, key=lambda r: r[0])


def assert_same(a: Side, b: Side, db: str) -> int:
    """Same tables, same schemas, same tags, same rows (every column, exactly)."""
    names_a = [(r[0], r[4]) for r in tables_of(a, db)]
    assert names_a == [(r[0], r[4]) for r in tables_of(b, db)]
    stables = sorted(r[0] for r in a.sql(f"show {db}.stables").rows)
    assert stables == sorted(r[0] for r in b.sql(f"show {db}.stables").rows)
    for stable in stables:
        assert a.sql(f"describe {db}.{stable}").rows == b.sql(f"describe {db}.{stable}").rows
    total = 0
    for name, stable in names_a:
        query = f"select * from {db}.`{name}` order by ts"
        rows_a, rows_b = a.sql(query).rows, b.sql(query).rows
        assert rows_a == rows_b, name
        total += len(rows_a)
        if stable:
            tags = f"select tbname, * from {db}.`{stable}` where tbname = '{name}' limit 1"
            assert a.sql(tags).rows == b.sql(tags).rows
    return total


def test_one_way_every_type_ddl_and_deletes(sides, tmp_path):
    a, b = sides
    for side in sides:
        side.sql("create database alltypes vgroups 4")
    a.sql(f"create stable alltypes.meters ({ALL_TYPES}) tags (t_id int, t_name varchar(16), t_label nchar(8))")
    tables, rows_per_table = 120, 900
    for t in range(tables):
        a.sql(f"create table alltypes.m{t} using alltypes.meters tags ({t}, 'name{t}', '标签{t % 10}')")
    replica = Replica("r1", "alltypes", a, b, OffsetStore(tmp_path / "offsets"), workers=4)
    try:
        for t in range(tables):                        # data arrives while replication runs
            for start in range(0, rows_per_table, 450):
                values = " ".join(row_values(t, i) for i in range(start, start + 450))
                a.sql(f"insert into alltypes.m{t} values {values}")
        a.sql("create table alltypes.plain (ts timestamp, v double, note binary(10))")
        a.sql("insert into alltypes.plain values (1, 1.5, 'a') (2, NULL, 'b') (3, -0.0, NULL)")
        a.sql("alter stable alltypes.meters add column c_extra double")
        a.sql("insert into alltypes.m0 (ts, c_i32, c_extra) values (1767300000000, 7, 2.5)")
        a.sql("insert into alltypes.m_auto using alltypes.meters tags (999, NULL, NULL) (ts, c_vc) values (1, 'auto')")
        a.sql("create stable alltypes.events (ts timestamp, code int) tags (info json)")
        a.sql("create table alltypes.ev1 using alltypes.events tags ('{\"site\": \"东京\", \"n\": 3}')")
        a.sql("insert into alltypes.ev1 values (1, 1) (2, NULL)")
        a.sql("create stable alltypes.blobs (ts timestamp, id int, payload blob, vb varbinary(16)) tags (g int)")
        big = "ab" * 1536                               # 3 KB, as in the golden blob case
        a.sql(f"insert into alltypes.blob_1 using alltypes.blobs tags (1) values (1, 1, '', '\\x00') "
              f"(2, 2, NULL, NULL) (3, 3, '\\x{big}', '\\x0102') (4, 4, 'text', 'v')")
        a.sql("delete from alltypes.m5 where ts < 1767225700000")
        a.sql("delete from alltypes.meters where ts >= 1767226400000 and ts <= 1767226410000")
        a.sql("drop table alltypes.m7")
        a.sql("alter table alltypes.m8 set tag t_name = 'renamed'")
        replica.wait()
    finally:
        replica.stop()
    total = assert_same(a, b, "alltypes")
    assert total >= 100_000
    assert len(tables_of(b, "alltypes")) >= 100
    with pytest.raises(Exception, match="not exist"):
        b.sql("select * from alltypes.m7")
    assert b.sql("select c_extra from alltypes.m0 where ts = 1767300000000").rows == [(2.5,)]
    assert b.sql("select c_d128 from alltypes.m3 where ts = 1767225601000").rows == [(Decimal("3.00000001"),)]
    assert b.sql("select payload from alltypes.blob_1 order by ts").rows == [
        (b"",), (None,), (bytes.fromhex("ab" * 1536),), (b"text",)]
    app, replicated = b.replicated_rows("alltypes")
    assert app == 0 and replicated == a.replicated_rows("alltypes")[0]


def test_bidirectional_concurrent_writers_converge_without_loops(sides, tmp_path):
    a, b = sides
    for side in sides:
        side.sql("create database dual vgroups 2")
    a.sql("create stable dual.st (ts timestamp, v int, origin varchar(4)) tags (t int)")
    offsets = OffsetStore(tmp_path / "offsets")
    forward = Replica("ab", "dual", a, b, offsets, workers=2)
    backward = Replica("ba", "dual", b, a, offsets, workers=2)
    try:
        forward.wait()                                  # the stable exists on both sides
        deadline = time.monotonic() + 30
        while not b.sql("show dual.stables").rows:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        def writer(side: Side, origin: str, tables: range) -> None:
            for i in range(60):
                for t in tables:
                    side.sql(f"insert into dual.{origin}{t} using dual.st tags ({t}) values "
                             f"({1000 + i}, {i}, '{origin}') ({100_000 + i * 2}, {t}, '{origin}')")

        threads = [threading.Thread(target=writer, args=(a, "a", range(10))),
                   threading.Thread(target=writer, args=(b, "b", range(10))),
                   threading.Thread(target=writer, args=(a, "s", range(3))),    # both sides write table s*
                   threading.Thread(target=writer, args=(b, "s", range(3, 6)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        forward.wait()
        backward.wait()
        forward.wait()
    finally:
        forward.stop()
        backward.stop()
    total = assert_same(a, b, "dual")
    assert total == (10 + 10 + 6) * 120
    app_a, replicated_a = a.replicated_rows("dual")
    app_b, replicated_b = b.replicated_rows("dual")
    assert (app_a, app_b) == ((10 + 3) * 120, (10 + 3) * 120)
    assert replicated_b == app_a and replicated_a == app_b      # each row crossed once, never came back
