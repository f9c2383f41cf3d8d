"""Shared machinery of the end-to-end replication tests: two peers, SQL, comparison, worker processes.

Peers are sandboxes (``python -m engine.sandbox`` child processes on free ports, or thread-mode
:class:`~engine.sandbox.server.Sandbox` servers when a test needs the engine itself, e.g. to force a
WAL purge) or, with ``TDSYNC_TEST_NATIVE=host:port,host:port`` (source, sink), a real TDengine pair
reached over ``taos://`` (libtaos must load; otherwise those tests are skipped with the reason).

SQL from the tests goes through tdsync's own connectors (``open_sink(url).query``) on a private
event loop thread, so the same helpers work for every kind of peer. Nothing is mocked.

With ``TDSYNC_TEST_WS=host:port,host:port`` the same tests run against a real pair through taosAdapter
(``ws://``; a password other than taosdata goes in ``TDSYNC_PASSWORD``).

Fixtures: ``backend`` ("sandbox" / "native" / "ws", the real ones skipped unless configured), ``peers``
(:class:`Peers`: ``pair()``, ``database()``, ``probe()``; cleaned up after the test), ``workers``
(makes :class:`WorkerProcess` es, killed after the test), ``offsets_dir`` and ``store`` (the LMDB
:class:`OffsetStore` the workers use, read by the test). Helpers: :class:`Writer` (keeps inserting
into the source), :func:`assert_same_contents` (every table, schema, tags and rows by ts, both
sides), :class:`Probe` + :func:`wait_caught_up` (LMDB offsets == the source's WAL end per vgroup).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from engine.connectors.base import open_sink, open_source
from engine.errors import ConnectionLost, TDengineError
from engine.identifiers import topic_for
from engine.replication.offsets import OffsetStore

ROOT = Path(__file__).resolve().parents[2]
NATIVE_ENV = "TDSYNC_TEST_NATIVE"
WS_ENV = "TDSYNC_TEST_WS"
BACKENDS = ["sandbox", "native", "ws"]     # native/ws: a real TDengine pair, skipped unless configured


# --- small utilities ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class LoopThread:
    """An asyncio event loop on a daemon thread; ``run(coro)`` from any thread."""

    def __init__(self, name: str = "e2e-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        with contextlib.suppress(RuntimeError):
            self.loop.close()


class SqlClient:
    """Blocking SQL on one peer through tdsync's sink connector (reconnects after a peer restart)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._loop = LoopThread(f"e2e-sql-{url}")
        self._sink = None

    async def _query(self, sql: str) -> tuple[list[str], list[tuple]]:
        if self._sink is None:
            self._sink = open_sink(self.url)
        return await self._sink.query(sql)

    async def _reset(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            with contextlib.suppress(Exception):
                await sink.close()

    def query(self, sql: str, retries: int = 2) -> list[tuple]:
        for attempt in range(retries + 1):
            try:
                return self._loop.run(self._query(sql))[1]
            except ConnectionLost:
                self._loop.run(self._reset())
                if attempt == retries:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def execute(self, sql: str) -> None:
        self.query(sql)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.run(self._reset(), timeout=10)
        self._loop.close()


# --- peers --------------------------------------------------------------------------------------
class Peer:
    """One TDengine-compatible server the tests write to, read from, stop and restart."""

    kind = "?"
    url: str

    def __init__(self, name: str) -> None:
        self.name = name
        self._sql: SqlClient | None = None

    @property
    def sql(self) -> SqlClient:
        if self._sql is None:
            self._sql = SqlClient(self.url)
        return self._sql

    def query(self, sql: str) -> list[tuple]:
        return self.sql.query(sql)

    def execute(self, sql: str) -> None:
        self.sql.execute(sql)

    def close_client(self) -> None:
        if self._sql is not None:
            self._sql.close()
            self._sql = None

    # fault injection; native peers cannot do these
    def kill(self) -> None:
        pytest.skip(f"{self.kind} peer {self.name} cannot be killed by the test")

    def stop(self) -> None:
        pytest.skip(f"{self.kind} peer {self.name} cannot be stopped by the test")

    def start(self) -> Peer:
        pytest.skip(f"{self.kind} peer {self.name} cannot be started by the test")

    def purge_wal(self) -> int:
        pytest.skip(f"{self.kind} peer {self.name}: the test cannot make it purge its WAL")

    def pause(self) -> None:
        pytest.skip(f"{self.kind} peer {self.name} cannot be paused by the test")

    resume = pause

    def close(self) -> None:
        self.close_client()


class ProcessSandbox(Peer):
    """``python -m engine.sandbox --listen 127.0.0.1:PORT --data-dir DIR`` (= ``tdsync sandbox``) as a child."""

    kind = "process sandbox"

    def __init__(self, name: str, data_dir: Path, port: int | None = None) -> None:
        super().__init__(name)
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"{name}-sandbox.log"

    def start(self, timeout: float = 30.0) -> ProcessSandbox:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a", encoding="utf-8")          # noqa: SIM115 - kept by the child
        argv = [sys.executable, "-m", "engine.sandbox", "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.data_dir), "--exit-on-stdin-eof"]
        deadline = time.monotonic() + timeout
        while True:          # a restart right after a kill may find the port still held for a moment
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         env=child_env(), text=True, cwd=ROOT)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if "listening on ws://" in line:
                log.close()
                return self
            self.proc.wait(10)
            if time.monotonic() > deadline:
                log.close()
                raise RuntimeError(f"sandbox {self.name} did not start on port {self.port}; see {self.log_path}")
            time.sleep(0.2)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _end(self, signum: int) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signum)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def kill(self) -> None:
        """SIGKILL: a crash, connections reset without a close frame."""
        self._end(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: a hung server; what clients send waits in its socket buffers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def close(self) -> None:
        self.close_client()
        self.stop()


class ThreadSandbox(Peer):
    """A thread-mode :class:`Sandbox` in the test process (its engine is reachable: ``purge_wal``)."""

    kind = "thread sandbox"

    def __init__(self, name: str, data_dir: Path, port: int | None = None, tmq_factory=None) -> None:
        super().__init__(name)
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.tmq_factory = tmq_factory
        self.sandbox = None

    def start(self) -> ThreadSandbox:
        from engine.sandbox.server import Sandbox

        self.sandbox = Sandbox(self.data_dir, port=self.port, tmq_factory=self.tmq_factory).start()
        return self

    def call(self, fn: Callable[[], Any]) -> Any:
        assert self.sandbox is not None, "not running"
        return self.sandbox.call(fn)

    def purge_wal(self, now_ms: int | None = None) -> int:
        return self.call(lambda: self.sandbox.engine.purge_wal(now_ms))

    def wal_range(self, vgroup: int) -> tuple[int, int]:
        return tuple(self.call(lambda: self.sandbox.engine.storage.wal_range(vgroup)))

    def stop(self) -> None:
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is not None:
            sandbox.stop()

    kill = stop

    def close(self) -> None:
        self.close_client()
        self.stop()


class NativePeer(Peer):
    kind = "native TDengine"

    def __init__(self, name: str, address: str, scheme: str = "taos") -> None:
        super().__init__(name)
        self.url = f"{scheme}://{address}"
        if scheme != "taos":
            self.kind = "TDengine over taosAdapter"


def ws_addresses() -> tuple[str, str]:
    """(source, sink) host:port of a real TDengine pair's taosAdapters, or skip with the reason."""
    spec = os.environ.get(WS_ENV, "").strip()
    if not spec:
        pytest.skip(f"{WS_ENV} is not set (host:port,host:port of two taosAdapters of TDengine 3.3: source, sink)")
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if len(parts) != 2:
        pytest.skip(f"{WS_ENV}={spec!r}: the end-to-end tests need two servers, source and sink (host:port,host:port)")
    return parts[0], parts[1]


def native_addresses() -> tuple[str, str]:
    """(source, sink) host:port of the real TDengine pair, or skip with the reason."""
    spec = os.environ.get(NATIVE_ENV, "").strip()
    if not spec:
        pytest.skip(f"{NATIVE_ENV} is not set (host:port,host:port of two TDengine 3.3 servers: source, sink)")
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if len(parts) != 2:
        pytest.skip(f"{NATIVE_ENV}={spec!r}: the end-to-end tests need two servers, source and sink "
                    f"(host:port,host:port)")
    try:
        from engine.connectors.native import load_library

        load_library()
    except Exception as exc:  # noqa: BLE001 - any reason libtaos is unusable is a reason to skip
        pytest.skip(f"{NATIVE_ENV} is set but libtaos could not be loaded: {exc}")
    return parts[0], parts[1]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "native":
        native_addresses()
    if request.param == "ws":
        ws_addresses()
    return request.param


class Peers:
    """Makes peers for one test and cleans them up (sandboxes stopped, native databases dropped)."""

    def __init__(self, backend: str, root: Path) -> None:
        self.backend = backend
        self.root = root
        self.made: list[Peer] = []
        self.probes: list[Probe] = []
        self.cleanups: list[Callable[[], None]] = []

    def pair(self, *, source_mode: str = "process", sink_mode: str = "process", **thread_options: Any
             ) -> tuple[Peer, Peer]:
        """(source, sink); ``thread_options`` (e.g. ``tmq_factory``) go to a thread-mode source."""
        if self.backend == "native":
            src, dst = native_addresses()
            source, sink = NativePeer("source", src), NativePeer("sink", dst)
        elif self.backend == "ws":
            src, dst = ws_addresses()
            source, sink = NativePeer("source", src, "ws"), NativePeer("sink", dst, "ws")
        else:
            source = self.sandbox("source", source_mode, **thread_options)
            sink = self.sandbox("sink", sink_mode)
        self.made += [source, sink]
        return source, sink

    def sandbox(self, name: str, mode: str = "process", **thread_options: Any) -> Peer:
        (self.root / name).mkdir(parents=True, exist_ok=True)
        if mode == "thread":
            return ThreadSandbox(name, self.root / name / "data", **thread_options).start()
        return ProcessSandbox(name, self.root / name / "data").start()

    def database(self, source_options: str = "", vgroups: int = 2) -> str:
        """A fresh database on both peers of :meth:`pair` (unique name on native servers, dropped afterwards);
        ``source_options`` (e.g. ``WAL_RETENTION_PERIOD 1``) only on the source."""
        name = "d" if self.backend == "sandbox" else f"e2e_{uuid.uuid4().hex[:10]}"
        for index, peer in enumerate(self.made):
            peer.execute(f"CREATE DATABASE {name} VGROUPS {vgroups} {source_options if index == 0 else ''}")
        if self.backend != "sandbox":
            made = list(self.made)

            def drop() -> None:
                for peer in made:
                    for force in ("FORCE ", ""):      # FORCE: the worker's consumer group may remain
                        with contextlib.suppress(Exception):
                            peer.execute(f"DROP TOPIC IF EXISTS {force}{topic_for(name)}")
                    with contextlib.suppress(Exception):
                        peer.execute(f"DROP DATABASE IF EXISTS {name}")
            self.cleanups.append(drop)
        return name

    def probe(self, source: Peer, db: str) -> Probe:
        """A :class:`Probe` of ``db`` on ``source``, closed with the peers."""
        probe = Probe(source, db)
        self.probes.append(probe)
        return probe

    def close(self) -> None:
        for probe in self.probes:
            probe.close()
        for cleanup in reversed(self.cleanups):
            cleanup()
        for peer in reversed(self.made):
            with contextlib.suppress(Exception):
                peer.close()


@pytest.fixture
def peers(backend, tmp_path) -> Peers:
    made = Peers(backend, tmp_path)
    yield made
    made.close()


# --- schema and writers -------------------------------------------------------------------------
BASE_TS = 1_700_000_000_000          # ms; every writer's timestamps count up from here

COLUMNS = "(ts, v, f, s, b)"          # explicit: columns added later by a test stay NULL
STABLE_SQL = ("CREATE STABLE {db}.st (ts TIMESTAMP, v INT, f DOUBLE, s VARCHAR(24), b BOOL) "
              "TAGS (t INT, loc NCHAR(16))")


def create_schema(peer: Peer, db: str, tables: int = 8, rows: int = 20) -> None:
    """The super table, ``tables`` child tables with ``rows`` rows each, and one normal table."""
    peer.execute(STABLE_SQL.format(db=db))
    peer.execute(f"CREATE TABLE {db}.plain (ts TIMESTAMP, x BIGINT, note NCHAR(10))")
    for i in range(tables):
        values = " ".join(row_values(i, j) for j in range(rows))
        peer.execute(f"INSERT INTO {db}.c{i} USING {db}.st TAGS ({i}, 'loc{i}') {COLUMNS} VALUES {values}")
    peer.execute(f"INSERT INTO {db}.plain VALUES " + " ".join(f"({BASE_TS + j}, {j * 7}, 'p{j}')" for j in range(rows)))


def row_values(table: int, seq: int) -> str:
    v = "NULL" if seq % 11 == 5 else str((table * 1_000_003 + seq) % 2_000_000_000)
    s = "NULL" if seq % 13 == 7 else f"'t{table}-{seq}'"
    return f"({BASE_TS + seq}, {v}, {seq / 8:.3f}, {s}, {'true' if seq % 2 else 'false'})"


class Writer(threading.Thread):
    """Keeps writing multi-table, multi-row INSERTs into the source (new child tables now and then).

    ``ddl_at``: {iteration: sql} statements run between inserts (``{db}`` is replaced).
    """

    def __init__(self, peer: Peer, db: str, *, tables: int = 8, first_seq: int = 1000, rows_per_table: int = 20,
                 tables_per_insert: int = 3, pause: float = 0.02, new_table_every: int = 15,
                 ddl_at: dict[int, str] | None = None, seed: int = 7) -> None:
        super().__init__(name="e2e-writer", daemon=True)
        self.peer, self.db = peer, db
        self.client = SqlClient(peer.url)
        self.tables = tables
        self.seq = {i: first_seq for i in range(tables)}
        self.rows_per_table = rows_per_table
        self.tables_per_insert = tables_per_insert
        self.pause = pause
        self.new_table_every = new_table_every
        self.ddl_at = dict(ddl_at or {})
        self.random = random.Random(seed)
        self.iterations = 0
        self.rows = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self.step()
                self._halt.wait(self.pause)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def step(self) -> None:
        db = self.db
        ddl = self.ddl_at.pop(self.iterations, None)
        if ddl is not None:
            self.client.execute(ddl.format(db=db))
        if self.new_table_every and self.iterations % self.new_table_every == self.new_table_every - 1:
            self.seq[self.tables] = 0
            self.tables += 1
        chosen = self.random.sample(sorted(self.seq), min(self.tables_per_insert, len(self.seq)))
        parts = []
        for i in chosen:
            start = self.seq[i]
            values = " ".join(row_values(i, j) for j in range(start, start + self.rows_per_table))
            parts.append(f"{db}.c{i} USING {db}.st TAGS ({i}, 'loc{i}') {COLUMNS} VALUES {values}")
            self.seq[i] = start + self.rows_per_table
        self.client.execute("INSERT INTO " + " ".join(parts))
        self.rows += self.rows_per_table * len(chosen)
        self.iterations += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
        self.client.close()
        if self.error is not None:
            raise AssertionError(f"the source writer failed: {self.error!r}") from self.error


# --- comparing both sides -----------------------------------------------------------------------
def snapshot(peer: Peer, db: str) -> dict[str, Any]:
    """Everything a replica must reproduce: super tables, tables (with tags), every row by ts."""
    stables = sorted(row[0] for row in peer.query(f"SHOW {db}.STABLES"))
    tables = sorted((row[0], row[1], row[2]) for row in peer.query(
        f"SELECT table_name, stable_name, type FROM information_schema.ins_tables WHERE db_name = '{db}'"))
    out: dict[str, Any] = {"stables": {}, "tables": tables, "tags": {}, "rows": {}}
    for stable in stables:
        out["stables"][stable] = [tuple(r) for r in peer.query(f"DESCRIBE {db}.`{stable}`")]
    for name, stable, _kind in tables:
        if stable:
            out["tags"][name] = [tuple(r) for r in peer.query(f"SHOW CREATE TABLE {db}.`{name}`")]
        else:
            out["stables"][name] = [tuple(r) for r in peer.query(f"DESCRIBE {db}.`{name}`")]
        out["rows"][name] = [tuple(r) for r in peer.query(f"SELECT * FROM {db}.`{name}` ORDER BY ts")]
    return out


def assert_same_contents(source: Peer, sink: Peer, db: str) -> int:
    """Compare both sides table by table, row by row; returns the number of rows compared."""
    a, b = snapshot(source, db), snapshot(sink, db)
    assert a["tables"] == b["tables"], \
        f"tables differ: only on the source {sorted(set(a['tables']) - set(b['tables']))}, " \
        f"only on the sink {sorted(set(b['tables']) - set(a['tables']))}"
    assert a["stables"] == b["stables"], "table schemas differ"
    assert a["tags"] == b["tags"], "tag values differ"
    for table, rows in a["rows"].items():
        other = b["rows"][table]
        if rows != other:
            seen = set(other)
            missing = [r for r in rows if r not in seen]
            extra = [r for r in other if r not in set(rows)]
            dup = len(other) - len(set(other))
            pytest.fail(f"table {table}: {len(rows)} rows on the source, {len(other)} on the sink; "
                        f"{len(missing)} missing (first {missing[:3]}), {len(extra)} extra (first {extra[:3]}), "
                        f"{dup} duplicated")
    total = sum(len(rows) for rows in a["rows"].values())
    assert total > 0
    return total


# --- WAL positions ------------------------------------------------------------------------------
class Probe:
    """A consumer of the replication topic in its own group: the source's WAL range per vgroup.

    Also reads ``SHOW SUBSCRIPTIONS`` for what the worker's consumer has polled.
    """

    def __init__(self, source: Peer, db: str) -> None:
        self.peer, self.db = source, db
        self.topic = topic_for(db)
        self._loop = LoopThread("e2e-probe")
        self._source = None
        self.vgroups = len(source.query(f"SHOW {db}.VGROUPS"))

    async def _assignment(self):
        if self._source is None:
            self._source = open_source(self.peer.url)
            await self._source.query(f"CREATE TOPIC IF NOT EXISTS `{self.topic}` WITH META AS DATABASE `{self.db}`")
            await self._source.subscribe(self.topic, f"e2e_probe_{uuid.uuid4().hex[:8]}", "e2e-probe")
        for _ in range(100):
            assigned = await self._source.assignment(self.topic)
            if len(assigned) >= self.vgroups:
                return assigned
            await self._source.poll(0.1)           # a real server assigns vgroups after a rebalance
        raise AssertionError(f"the probe consumer got {len(assigned)} of {self.vgroups} vgroups")

    async def _fresh_assignment(self):
        try:
            return await self._assignment()
        except (TDengineError, ConnectionLost):      # the probe's consumer was dropped: subscribe anew
            source, self._source = self._source, None
            if source is not None:
                with contextlib.suppress(Exception):
                    await source.close()
            return await self._assignment()

    def wal_ranges(self) -> dict[int, tuple[int, int]]:
        """vgroup -> (first retained version, WAL end = last version + 1)."""
        return {a.vgroup_id: (a.begin, a.end) for a in self._loop.run(self._fresh_assignment())}

    def wal_ends(self) -> dict[int, int]:
        return {v: end for v, (_, end) in self.wal_ranges().items()}

    def positions(self, replica: str) -> dict[int, int]:
        """vgroup -> the position the replica's worker consumer has polled up to (SHOW SUBSCRIPTIONS)."""
        out = {}
        for row in self.peer.query("SHOW SUBSCRIPTIONS"):
            topic, group, vgroup, consumer, offset = row[0], row[1], row[2], row[3], row[6]
            if topic != self.topic or group != f"tdsync_{replica}" or consumer is None or not offset:
                continue
            match = re.match(r"(?:wal|log):(-?\d+)", str(offset))
            if match:
                out[int(vgroup)] = int(match.group(1))
        return out

    def close(self) -> None:
        async def close():
            source, self._source = self._source, None
            if source is not None:
                await source.close()
        if self._loop.loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._loop.run(close(), timeout=10)
        self._loop.close()


def stored_offsets(store: OffsetStore, replica: str, db: str) -> dict[int, int]:
    return {r.vgroup: r.offset for r in store.all(replica) if r.database == db}


def wait_caught_up(probe: Probe, store: OffsetStore, replica: str, db: str, timeout: float = 60.0,
                   worker: WorkerProcess | None = None) -> dict[int, int]:
    """Until the LMDB offset of every vgroup equals the source's WAL end; returns those offsets."""
    deadline = time.monotonic() + timeout
    ends: dict[int, int] = {}
    stored: dict[int, int] = {}
    while time.monotonic() < deadline:
        if worker is not None and not worker.alive:
            pytest.fail(f"the worker exited with {worker.returncode} before catching up:\n{worker.log_tail()}")
        ends = probe.wal_ends()
        stored = stored_offsets(store, replica, db)
        if stored == ends:
            return ends
        time.sleep(0.25)
    tail = worker.log_tail() if worker is not None else ""
    pytest.fail(f"replica {replica} database {db} not caught up after {timeout:g} s: WAL ends {ends}, "
                f"LMDB offsets {stored}\n{tail}")


# --- the worker as a process --------------------------------------------------------------------
class WorkerProcess:
    """``python -m engine.replication.worker ...`` in the background; its output goes to a log file."""

    def __init__(self, root: Path, replica: str, database: str, source: str, sink: str, offsets: Path, *,
                 max_rows: int | None = None, max_bytes: int | None = None, max_age: float | None = None,
                 client_id: str | None = None, extra: list[str] | None = None) -> None:
        self.argv = [sys.executable, "-m", "engine.replication.worker", "--replica", replica, "--database",
                     database, "--source", source, "--sink", sink, "--offsets", str(offsets)]
        for flag, value in (("--max-rows", max_rows), ("--max-bytes", max_bytes), ("--max-age", max_age),
                            ("--client-id", client_id)):
            if value is not None:
                self.argv += [flag, str(value)]
        self.argv += extra or []
        self.log_path = root / f"worker-{replica}-{database}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        assert not self.alive, "already running"
        self.starts += 1
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"---- start {self.starts} ----\n")
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=child_env(), cwd=ROOT)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        """SIGKILL: no flush, no offset store, nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM: the worker flushes what it holds, stores the offsets and exits (0)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "worker log (tail):\n" + "\n".join(self.log_text().splitlines()[-lines:])

    def close(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def workers(tmp_path):
    """``workers(...)`` makes a :class:`WorkerProcess` (arguments after ``root``); all killed at the end."""
    made: list[WorkerProcess] = []

    def make(*args, **kwargs) -> WorkerProcess:
        worker = WorkerProcess(tmp_path, *args, **kwargs)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close()


@pytest.fixture
def offsets_dir(tmp_path) -> Path:
    return tmp_path / "offsets"


@pytest.fixture
def store(offsets_dir):
    with OffsetStore(offsets_dir) as opened:
        yield opened
