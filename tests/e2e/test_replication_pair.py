"""The replication scenarios over any pair of peers: sandbox processes, or a real TDengine pair.

`test_replication.py` runs the large versions in-process against sandboxes; this file runs them
through the same worker processes an operator runs, against whatever `backend` names: two sandbox
processes by default, or a real TDengine 3.3 pair when TDSYNC_TEST_NATIVE (taos://) or
TDSYNC_TEST_WS (taosAdapter) names one. Nothing here reaches into a server's internals: rows are
compared with SELECT, progress with the source's WAL range, loops with the rows each worker copied.
"""

from __future__ import annotations

import threading

from tests.e2e.conftest import assert_same_contents, wait_caught_up

TYPES = ("ts timestamp, c_bool bool, c_i8 tinyint, c_i16 smallint, c_i32 int, c_i64 bigint, "
         "c_u8 tinyint unsigned, c_u64 bigint unsigned, c_f32 float, c_f64 double, c_vc varchar(24), "
         "c_nc nchar(12), c_vb varbinary(16), c_d64 decimal(12,3)")


def row(table: int, i: int) -> str:
    values = [str(1_767_225_600_000 + i * 1000), "true" if i % 2 else "false", str(i % 100 - 50),
              str(i * 7 - 300), str(i * 104_729 % 2 ** 31), str(i * 2_654_435_761), str(i % 256),
              str(2 ** 64 - 1 - i), f"{i * 0.25:.2f}", f"{i * 1.5 - 3:.3f}", f"'t{table}_{i}'", f"'ü{i}京'",
              f"'\\x{i % 256:02x}'", f"{i * 1.125:.3f}"]
    values[1 + (i + table) % 13] = "NULL"
    return "(" + ", ".join(values) + ")"


def copied_rows(store, replica: str, db: str) -> int:
    return sum(r.rows for r in store.all(replica) if r.database == db)


def test_one_way_with_ddl_and_deletes(peers, store, offsets_dir, workers):
    source, sink = peers.pair()
    db = peers.database()
    source.execute(f"CREATE STABLE {db}.meters ({TYPES}) TAGS (t_id INT, t_name VARCHAR(16))")
    for t in range(12):
        source.execute(f"CREATE TABLE {db}.m{t} USING {db}.meters TAGS ({t}, 'name{t}')")
    worker = workers("p1", db, source.url, sink.url, offsets_dir).start()
    probe = peers.probe(source, db)
    for t in range(12):
        source.execute(f"INSERT INTO {db}.m{t} VALUES " + " ".join(row(t, i) for i in range(120)))
    source.execute(f"ALTER STABLE {db}.meters ADD COLUMN c_extra DOUBLE")
    source.execute(f"INSERT INTO {db}.m0 (ts, c_i32, c_extra) VALUES (1767300000000, 7, 2.5)")
    source.execute(f"INSERT INTO {db}.m_auto USING {db}.meters TAGS (99, 'auto') (ts, c_vc) VALUES (1, 'auto')")
    source.execute(f"CREATE TABLE {db}.plain (ts TIMESTAMP, v DOUBLE, note VARCHAR(10))")
    source.execute(f"INSERT INTO {db}.plain VALUES (1, 1.5, 'a') (2, NULL, 'b')")
    source.execute(f"DELETE FROM {db}.m3 WHERE ts < 1767225650000")
    source.execute(f"DROP TABLE {db}.m7")
    wait_caught_up(probe, store, "p1", db, worker=worker)
    assert worker.terminate() == 0
    total = assert_same_contents(source, sink, db)
    assert total == 11 * 120 - 50 + 1 + 1 + 2      # m7 dropped, 50 rows deleted from m3
    assert sink.query(f"SELECT c_extra FROM {db}.m0 WHERE ts = 1767300000000") == [(2.5,)]


def test_bidirectional_writers_converge_and_nothing_loops(peers, store, offsets_dir, workers):
    a, b = peers.pair()
    db = peers.database()
    for side in (a, b):
        side.execute(f"CREATE STABLE IF NOT EXISTS {db}.st (ts TIMESTAMP, v INT, origin VARCHAR(4)) TAGS (t INT)")
    forward = workers("pab", db, a.url, b.url, offsets_dir, client_id="pab").start()
    backward = workers("pba", db, b.url, a.url, offsets_dir, client_id="pba").start()
    probe_a, probe_b = peers.probe(a, db), peers.probe(b, db)

    def writer(side, origin: str) -> None:
        for i in range(40):
            side.execute("INSERT INTO " + " ".join(
                f"{db}.{origin}{t} USING {db}.st TAGS ({t}) VALUES ({1000 + i}, {i}, '{origin}')" for t in range(5)))

    threads = [threading.Thread(target=writer, args=(a, "a")), threading.Thread(target=writer, args=(b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(2):                       # each side's WAL also grows with what the other copied
        wait_caught_up(probe_a, store, "pab", db, worker=forward)
        wait_caught_up(probe_b, store, "pba", db, worker=backward)
    assert forward.terminate() == 0 and backward.terminate() == 0
    assert assert_same_contents(a, b, db) == 2 * 5 * 40
    # Each row crossed once: a loop would make a worker copy back what the other one wrote.
    assert copied_rows(store, "pab", db) == 5 * 40
    assert copied_rows(store, "pba", db) == 5 * 40
