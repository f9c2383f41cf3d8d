"""End-to-end faults of the replication worker: source → worker → sink, over real servers.

* ``kill -9`` of the worker while it holds a batch (polled, not yet acknowledged), restarted: the
  sink ends up with exactly the source's contents and the LMDB offsets equal the source's WAL end.
* the sink crashes (SIGKILL) and comes back on the same port and data dir while the source keeps
  taking writes (and DDL): the worker retries with a capped back-off and converges, no loss, no
  duplicates.
* WAL retention exceeded: writes the worker never copied were purged from the source's WAL; the
  worker must stop with :class:`WalRetentionExceeded` naming the database, vgroup and the lost
  versions (exit code 1 as a process) — never skip silently.

Every test runs against sandboxes; the ``[native]`` variants run the same scenario against a real
TDengine pair over ``taos://`` when ``TDSYNC_TEST_NATIVE=host:port,host:port`` is set (and libtaos
loads), and are skipped with the reason otherwise (or when the scenario needs control of a server
that a real one does not give, e.g. killing the sink).
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from engine.connectors.base import open_sink, open_source, run
from engine.errors import WalRetentionExceeded
from engine.replication.batch import BatchLimits
from engine.replication.worker import RetryPolicy, VgroupWorker
from tests.e2e.conftest import (
    BASE_TS,
    COLUMNS,
    Probe,
    ThreadSandbox,
    Writer,
    assert_same_contents,
    create_schema,
    row_values,
    snapshot,
    stored_offsets,
    wait_caught_up,
    wait_for,
)

REPLICA = "r1"
SLOW_BATCHES = {"max_age": 2.0, "max_rows": 1_000_000, "max_bytes": 64 << 20}   # a batch is held ~2 s


def held_batch(probe: Probe, store, db: str) -> dict[int, tuple[int, int]]:
    """vgroup -> (LMDB offset, polled position) where the worker has polled past what the sink acknowledged."""
    stored = stored_offsets(store, REPLICA, db)
    return {v: (stored.get(v, -1), pos) for v, pos in probe.positions(REPLICA).items() if pos > stored.get(v, -1)}


def wait_holding_a_batch(probe: Probe, store, db: str, worker, at_start: dict, timeout: float = 45.0) -> dict:
    """Until the worker has written since it started (LMDB offsets ``at_start`` then) and again holds
    polled, unwritten data."""
    wait_for(lambda: stored_offsets(store, REPLICA, db) != at_start or not worker.alive, timeout,
             "the restarted worker's first write")
    assert worker.alive, worker.log_tail()
    held = wait_for(lambda: held_batch(probe, store, db), timeout, "the worker to hold a batch", 0.05)
    return held


# --- kill -9 ------------------------------------------------------------------------------------
def _kill_cycles(peers, workers, store, offsets_dir, cycles: int, *, random_moments: bool = False,
                 seed: int = 1) -> None:
    import random

    rng = random.Random(seed)
    source, sink = peers.pair()
    db = peers.database()
    create_schema(source, db)
    probe = peers.probe(source, db)
    worker = workers(REPLICA, db, source.url, sink.url, offsets_dir, **SLOW_BATCHES).start()
    at_start = stored_offsets(store, REPLICA, db)
    # DDL while batches are held: a new normal table, a column added to the super table, a new child
    # table created by the first insert into it (auto-create), a delete.
    writer = Writer(source, db, ddl_at={
        20: "CREATE TABLE {db}.late (ts TIMESTAMP, x INT)",
        21: "INSERT INTO {db}.late VALUES (1700000000000, 1) (1700000000001, 2)",
        45: "ALTER STABLE {db}.st ADD COLUMN extra DOUBLE",
        46: "INSERT INTO {db}.c0 (ts, v, extra) VALUES (1699999999000, 1, 2.5)",
        70: "DELETE FROM {db}.c1 WHERE ts < 1700000000005",
    })
    writer.start()
    try:
        kills = []
        for _ in range(cycles):
            if random_moments:
                time.sleep(rng.uniform(0.05, 3.0))
                held = held_batch(probe, store, db)
            else:
                # Past the first age-triggered flush of this incarnation, then whenever it holds data.
                time.sleep(rng.uniform(SLOW_BATCHES["max_age"] + 0.2, SLOW_BATCHES["max_age"] + 1.2))
                held = wait_holding_a_batch(probe, store, db, worker, at_start)
            worker.kill()
            kills.append(held)
            time.sleep(rng.uniform(0.1, 0.6))         # the source keeps taking writes meanwhile
            at_start = stored_offsets(store, REPLICA, db)
            worker.start()
        wait_for(lambda: writer.iterations > 75 or writer.error, 60, "the writer to get through its DDL")
        time.sleep(0.5)
    finally:
        writer.stop()
    assert writer.iterations > 70, "the writer did not get through its DDL"
    if not random_moments:
        # Every kill hit a worker that had polled data the sink had not acknowledged.
        assert all(held and all(stored < pos for stored, pos in held.values()) for held in kills), kills
    ends = wait_caught_up(probe, store, REPLICA, db, timeout=90, worker=worker)
    rows = assert_same_contents(source, sink, db)
    assert rows >= writer.rows
    assert worker.terminate() == 0, worker.log_tail()
    assert stored_offsets(store, REPLICA, db) == ends == probe.wal_ends()
    assert "Traceback" not in worker.log_text(), worker.log_tail()
    probe.close()


def test_kill9_while_holding_a_batch_then_restart_converges(peers, workers, store, offsets_dir):
    _kill_cycles(peers, workers, store, offsets_dir, cycles=3)


@pytest.mark.long
def test_kill9_at_random_moments_soak(peers, workers, store, offsets_dir):
    _kill_cycles(peers, workers, store, offsets_dir, cycles=12, random_moments=True, seed=42)


def test_kill9_while_the_sink_applies_a_write_then_replay_is_idempotent(peers, workers, store, offsets_dir):
    """The sink hangs (SIGSTOP) with the worker's write in its socket buffer; the worker is killed; the
    sink wakes up and applies the write nobody will acknowledge; the restarted worker writes it again."""
    if peers.backend != "sandbox":
        pytest.skip("needs to freeze the sink server")
    source, sink = peers.pair()
    db = peers.database()
    create_schema(source, db)
    probe = peers.probe(source, db)
    worker = workers(REPLICA, db, source.url, sink.url, offsets_dir, max_age=0.3).start()
    writer = Writer(source, db)
    writer.start()
    try:
        wait_for(lambda: len(stored_offsets(store, REPLICA, db)) == probe.vgroups, 20,
                 "the worker to write to the sink")
        sink.pause()
        try:
            time.sleep(1.5)                           # > max-age: a write is sent and waits for its answer
            held = held_batch(probe, store, db)
            frozen = stored_offsets(store, REPLICA, db)
            time.sleep(0.5)
            assert held and stored_offsets(store, REPLICA, db) == frozen, "the worker is not blocked on the sink"
            worker.kill()
        finally:
            sink.resume()
        time.sleep(1.0)                               # the sink applies what was in its buffer
        worker.start()
        time.sleep(1.0)
    finally:
        writer.stop()
    wait_caught_up(probe, store, REPLICA, db, timeout=60, worker=worker)
    assert_same_contents(source, sink, db)
    assert worker.terminate() == 0, worker.log_tail()


def test_sigterm_flushes_the_held_batch_and_exits_0(peers, workers, store, offsets_dir):
    source, sink = peers.pair()
    db = peers.database()
    create_schema(source, db)
    probe = peers.probe(source, db)
    worker = workers(REPLICA, db, source.url, sink.url, offsets_dir, max_age=120.0, max_rows=1_000_000,
                     max_bytes=64 << 20).start()
    ends = probe.wal_ends()

    def holding_everything():      # the metas written (they are not batched), every vgroup's data held
        held = held_batch(probe, store, db)
        return held if set(held) == set(ends) and all(pos == ends[v] and stored >= 0
                                                      for v, (stored, pos) in held.items()) else None

    wait_for(holding_everything, 20, "the worker to hold the data of every vgroup", 0.05)
    assert worker.terminate(timeout=30) == 0, worker.log_tail()
    assert stored_offsets(store, REPLICA, db) == ends
    assert_same_contents(source, sink, db)
    probe.close()


# --- the sink goes down and comes back -----------------------------------------------------------
def test_sink_down_and_back_up_converges(peers, workers, store, offsets_dir):
    if peers.backend != "sandbox":
        pytest.skip("needs to crash and restart the sink server")
    source, sink = peers.pair()
    db = peers.database()
    create_schema(source, db)
    probe = peers.probe(source, db)
    worker = workers(REPLICA, db, source.url, sink.url, offsets_dir).start()
    writer = Writer(source, db)
    writer.start()
    try:
        wait_for(lambda: len(stored_offsets(store, REPLICA, db)) == probe.vgroups, 20,
                 "the worker to write to the sink")
        time.sleep(0.5)
        sink.kill()                                   # a crash: connections reset, no close frame
        down = time.monotonic()
        # The source takes DDL and data the worker cannot deliver yet.
        source.execute(f"CREATE TABLE {db}.during (ts TIMESTAMP, x INT)")
        source.execute(f"INSERT INTO {db}.during VALUES (1700000000000, 1) (1700000000001, 2)")
        source.execute(f"ALTER STABLE {db}.st ADD COLUMN extra DOUBLE")
        source.execute(f"INSERT INTO {db}.c2 (ts, v, extra) VALUES (1699999999000, 7, 0.5)")
        time.sleep(max(0.0, 9.0 - (time.monotonic() - down)))  # long enough for the back-off to hit its cap
        assert worker.alive, worker.log_tail()
        sink.start()                                  # same port, same data dir
        time.sleep(1.0)
    finally:
        writer.stop()
    wait_caught_up(probe, store, REPLICA, db, timeout=60, worker=worker)
    rows = assert_same_contents(source, sink, db)
    assert rows >= writer.rows
    log = worker.log_text()
    delays = [float(d) for d in re.findall(r"retrying in ([0-9.]+)s", log)]
    assert delays, f"the worker never retried:\n{worker.log_tail()}"
    cap = RetryPolicy().max_delay
    assert max(delays) == cap, f"back-off not capped at {cap} s: {delays}"
    assert delays[:3] == sorted(delays[:3]), f"back-off does not grow: {delays}"
    assert "Traceback" not in log, worker.log_tail()
    assert worker.terminate() == 0, worker.log_tail()
    probe.close()


class _SkewedTmq:
    """tmq_factory for a thread-mode source: its consumer clock can jump ahead (``skew`` seconds)."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self, engine):
        from engine.sandbox.tmq import TmqService, _loop_clock

        return TmqService(engine, clock=lambda: _loop_clock() + self.skew)


def test_sink_down_longer_than_max_poll_interval_converges(peers, workers, store, offsets_dir):
    if peers.backend != "sandbox":
        pytest.skip("needs to move the source's consumer clock")
    clock = _SkewedTmq()
    source, sink = peers.pair(source_mode="thread", tmq_factory=clock)
    db = peers.database()
    create_schema(source, db)
    probe = peers.probe(source, db)
    worker = workers(REPLICA, db, source.url, sink.url, offsets_dir, extra=["--max-age", "0.1"]).start()
    wait_caught_up(probe, store, REPLICA, db, timeout=30, worker=worker)
    sink.kill()
    source.execute(f"INSERT INTO {db}.c3 {COLUMNS} VALUES {row_values(3, 9000)} {row_values(3, 9001)}")
    time.sleep(1.5)                                   # polled, the write is being retried
    clock.skew += 400                                 # 6 min 40 s later: no poll from the worker all along
    source.call(lambda: source.sandbox.tmq.check_sessions())
    source.execute(f"INSERT INTO {db}.c4 {COLUMNS} VALUES {row_values(4, 9000)}")
    sink.start()
    wait_caught_up(probe, store, REPLICA, db, timeout=30, worker=worker)
    assert_same_contents(source, sink, db)
    assert worker.terminate() == 0, worker.log_tail()


def test_source_down_and_back_up_converges(peers, workers, store, offsets_dir):
    if peers.backend != "sandbox":
        pytest.skip("needs to crash and restart the source server")
    source, sink = peers.pair()
    db = peers.database()
    create_schema(source, db)
    probe = peers.probe(source, db)
    worker = workers(REPLICA, db, source.url, sink.url, offsets_dir).start()
    writer = Writer(source, db)
    writer.start()
    try:
        wait_for(lambda: len(stored_offsets(store, REPLICA, db)) == probe.vgroups, 20,
                 "the worker to write to the sink")
        time.sleep(0.5)
    finally:
        writer.stop()
    probe.close()
    source.close_client()
    source.kill()
    time.sleep(3.0)
    assert worker.alive, worker.log_tail()
    source.start()
    probe = peers.probe(source, db)
    writer = Writer(source, db, first_seq=100_000, seed=8,
                    ddl_at={3: "CREATE TABLE {db}.after (ts TIMESTAMP, x INT)",
                            4: "INSERT INTO {db}.after VALUES (1700000000000, 1)"})
    writer.start()
    try:
        wait_for(lambda: writer.iterations > 20 or writer.error, 30, "writes after the restart")
    finally:
        writer.stop()
    wait_caught_up(probe, store, REPLICA, db, timeout=60, worker=worker)
    assert_same_contents(source, sink, db)
    log = worker.log_text()
    assert "source connection lost" in log or "cannot subscribe" in log, worker.log_tail()
    assert "Traceback" not in log, worker.log_tail()
    assert worker.terminate() == 0, worker.log_tail()
    probe.close()


class _KillSinkBeforeDescribe:
    """A real sink connector; the sink server is SIGKILLed just before the worker's first DESCRIBE."""

    def __init__(self, inner, peer, armed: list[bool]) -> None:
        self.inner, self.peer, self.armed = inner, peer, armed

    async def write_raw(self, database, raw_type, data):
        return await self.inner.write_raw(database, raw_type, data)

    async def execute(self, sql):
        return await self.inner.execute(sql)

    async def query(self, sql):
        if self.armed[0] and sql.startswith("DESCRIBE"):
            self.armed[0] = False
            await asyncio.to_thread(self.peer.kill)       # the test starts it again a second later
        return await self.inner.query(sql)

    async def close(self):
        return await self.inner.close()


def test_sink_crash_while_recreating_a_missing_table_is_retried(peers, store):
    if peers.backend != "sandbox":
        pytest.skip("needs to crash the sink at a precise moment")
    source, sink = peers.pair()
    db = peers.database()
    create_schema(source, db)
    probe = peers.probe(source, db)
    armed = [False]

    async def main():
        async def src():
            return open_source(source.url)

        async def snk():
            return _KillSinkBeforeDescribe(open_sink(sink.url), sink, armed)

        worker = VgroupWorker(REPLICA, db, src, snk, store, limits=BatchLimits(max_age=0.1),
                              retry=RetryPolicy(0.05, 0.5))
        task = asyncio.create_task(worker.run())
        try:
            while stored_offsets(store, REPLICA, db) != await asyncio.to_thread(probe.wal_ends):
                await asyncio.wait([task], timeout=0.2)
                if task.done():
                    await task
            await asyncio.to_thread(sink.execute, f"DROP TABLE {db}.c0")     # the sink lost a table
            armed[0] = True
            await asyncio.to_thread(source.execute,
                                    f"INSERT INTO {db}.c0 {COLUMNS} VALUES {row_values(0, 999)}")
            deadline = time.monotonic() + 20
            while armed[0]:
                await asyncio.wait([task], timeout=0.1)
                assert time.monotonic() < deadline, "the worker never asked the sink about the missing table"
            await asyncio.sleep(1.0)
            await asyncio.to_thread(sink.start)
            while stored_offsets(store, REPLICA, db) != await asyncio.to_thread(probe.wal_ends):
                await asyncio.wait([task], timeout=0.2)
                if task.done():
                    await task                              # raises what killed the worker
                assert time.monotonic() < deadline, "the worker did not recover"
        finally:
            worker.stop()
            await asyncio.wait([task], timeout=10)
        assert not armed[0]
        await task

    try:
        run(main())
    finally:
        probe.close()
    # The re-created table has the row that triggered it (and only that: the rest went with the drop).
    assert sink.query(f"SELECT ts, v FROM {db}.c0") == [(BASE_TS + 999, 999)]


# --- WAL retention exceeded ----------------------------------------------------------------------
def _in_process_worker(source_url: str, sink_url: str, store, db: str, *, until=None, timeout: float = 60.0):
    """Run a :class:`VgroupWorker` here until ``until()`` is true (then stop it) or it raises."""
    async def main():
        async def src():
            return open_source(source_url)

        async def snk():
            return open_sink(sink_url)

        worker = VgroupWorker(REPLICA, db, src, snk, store, limits=BatchLimits(max_age=0.1))
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + timeout
        while not task.done():
            if until is not None and await asyncio.to_thread(until):
                worker.stop()
                break
            if time.monotonic() > deadline:
                worker.stop()
                await task
                raise AssertionError(f"the in-process worker neither finished nor failed in {timeout:g} s")
            await asyncio.wait([task], timeout=0.2)
        await task
        return worker

    return run(main())


def _lose_wal(source, probe: Probe, db: str, stored: dict[int, int]) -> dict[int, tuple[int, int]]:
    """Write what the stopped worker will miss, let the source drop it from its WAL; {vgroup: lost range}."""
    for k in range(4):                    # several WAL entries on every vgroup
        values = " ".join(
            f"{db}.c{i} USING {db}.st TAGS ({i}, 'loc{i}') {COLUMNS} VALUES {row_values(i, 5000 + k)}"
            for i in range(8))
        source.execute(f"INSERT INTO {values}")
    time.sleep(1.5)                       # older than WAL_RETENTION_PERIOD 1
    if isinstance(source, ThreadSandbox):
        assert source.purge_wal() > 0
    else:                                 # a real server drops WAL files after a flush, in its own time
        deadline = time.monotonic() + 60
        while not any(begin > stored[v] for v, (begin, _) in probe.wal_ranges().items()):
            if time.monotonic() > deadline:
                pytest.skip("the server kept its WAL 60 s past WAL_RETENTION_PERIOD 1 (it drops whole files)")
            source.execute(f"FLUSH DATABASE {db}")
            time.sleep(2)
    lost = {v: (stored[v], begin - 1) for v, (begin, _end) in probe.wal_ranges().items() if begin > stored[v]}
    assert lost, "nothing was purged"
    return lost


def test_wal_retention_exceeded_stops_the_worker(peers, workers, store, offsets_dir):
    source, sink = peers.pair(source_mode="thread")
    db = peers.database("WAL_RETENTION_PERIOD 1")
    create_schema(source, db)
    probe = peers.probe(source, db)
    _in_process_worker(source.url, sink.url, store, db,
                       until=lambda: stored_offsets(store, REPLICA, db) == probe.wal_ends())
    stored = stored_offsets(store, REPLICA, db)
    before = snapshot(sink, db)
    lost = _lose_wal(source, probe, db, stored)

    # As a process: exit code 1 and the error naming database, vgroup and versions.
    worker = workers(REPLICA, db, source.url, sink.url, offsets_dir).start()
    assert worker.wait(60) == 1, worker.log_tail()
    log = worker.log_text()
    named = [v for v, (first, last) in lost.items()
             if f"database {db} vgroup {v}: WAL versions {first}..{last} were dropped" in log]
    assert named, f"no WalRetentionExceeded message for any of {lost}:\n{worker.log_tail()}"
    assert "ERROR" in log and "Traceback" not in log

    # In process: the exception, with the same facts as attributes.
    with pytest.raises(WalRetentionExceeded) as info:
        _in_process_worker(source.url, sink.url, store, db, timeout=30)
    exc = info.value
    assert exc.database == db and exc.vgroup in lost
    assert (exc.first_lost, exc.last_lost) == lost[exc.vgroup]
    assert f"vgroup {exc.vgroup}: WAL versions {exc.first_lost}..{exc.last_lost}" in str(exc)

    # Nothing was skipped: the offsets did not move, the sink did not get data from after the gap.
    assert stored_offsets(store, REPLICA, db) == stored
    assert snapshot(sink, db) == before
    probe.close()


def test_wal_purged_under_a_running_worker_is_not_skipped(peers, store):
    """A purge between two polls of a *running* worker: the source moves the consumer silently to
    its first retained version (walReaderVerifyOffset), so only the worker can notice the gap."""
    if peers.backend != "sandbox":
        pytest.skip("needs a purge between two polls, which only a thread-mode sandbox can time")
    source, sink = peers.pair(source_mode="thread", sink_mode="thread")
    db = peers.database("WAL_RETENTION_PERIOD 1")
    create_schema(source, db)
    probe = peers.probe(source, db)
    assert isinstance(source, ThreadSandbox)

    def write_and_purge():
        # On the server thread, so no poll can run in between: four entries per vgroup, then a purge
        # that keeps only the newest of each.
        session = source.sandbox.engine.session()
        for k in range(4):
            session.execute("INSERT INTO " + " ".join(
                f"{db}.c{i} USING {db}.st TAGS ({i}, 'loc{i}') {COLUMNS} VALUES {row_values(i, 7000 + k)}"
                for i in range(8)))
        return source.sandbox.engine.purge_wal(int(time.time() * 1000) + 3_600_000)

    state = {"purged": 0}

    def until():
        if not state["purged"]:
            if stored_offsets(store, REPLICA, db) == probe.wal_ends():
                state["purged"] = source.call(write_and_purge)
            return False
        return stored_offsets(store, REPLICA, db) == probe.wal_ends()    # caught up past the gap

    try:
        _in_process_worker(source.url, sink.url, store, db, until=until, timeout=30)
    except WalRetentionExceeded as exc:
        assert exc.database == db
        return
    finally:
        probe.close()
    missing = sum(len(rows) for rows in snapshot(source, db)["rows"].values()) - \
        sum(len(rows) for rows in snapshot(sink, db)["rows"].values())
    pytest.fail(f"skipped silently: {state['purged']} purged WAL entries were never written to the sink "
                f"({missing} rows missing there) and the LMDB offsets reached the WAL end")
