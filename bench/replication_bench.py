"""Replication throughput, sandbox → sandbox: tdsync's worker next to a naive replicator and next to
the sandbox's own ingest rate, plus the worker's memory while it drains a large backlog.

    python -m bench.replication_bench                    # the full run (~5-8 minutes on 2 cores)
    python -m bench.replication_bench --rows 200000 --settings default --no-profile    # a quick look

What runs (every server is a ``python -m engine.sandbox`` child process = ``tdsync sandbox``):

1. **ingest** — multi-row ``INSERT`` statements (500 rows x 2 tables each, 2 connections in
   flight) fill the source with ``--rows`` small rows (ts, INT, DOUBLE) over ``--tables`` child
   tables of one super table, 2 vgroups: the sandbox's own ingest rate.
2. **worker** — for each batch-limit setting, a fresh sink database and a fresh replica:
   ``python -m engine.replication.worker`` drains the whole backlog; rows/s from the worker's
   start until its LMDB offsets equal the source's WAL end (and the sink's count is checked), and
   its RSS sampled with psutil every 50 ms (peak reported). CPU seconds of the worker, the source
   sandbox and the sink sandbox over the drain say where the time goes.
3. **naive** — a ``taosws.Consumer`` (the official client) reads rows from a data-only topic and
   writes them back with one SQL ``INSERT ... VALUES`` per block into another database of the sink
   (generous to the naive side: one statement per block, not per row; taos-ws-py 0.7's blocks
   carry no table name, so rows are routed by their ``v`` column, which holds the table's number); run for
   ``--naive-seconds`` and extrapolated as rows/s.
4. **live** — the worker replicating while the source ingests: how far behind it is when the
   ingest stops, and how long it then needs to catch up (the worker must not be the bottleneck).
5. **profile** — one more drain with ``py-spy record`` on the worker (and CPU split per process),
   if py-spy is installed: the hottest functions of the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from engine.connectors.base import open_sink, open_source
from engine.replication.batch import BatchLimits
from engine.replication.offsets import OffsetStore

ROOT = Path(__file__).resolve().parents[1]
DB = "d"
NAIVE_DB = "dn"
TOPIC = f"tdsync_{DB}"
NAIVE_TOPIC = "naive_data"
BASE_TS = 1_700_000_000_000

SETTINGS: dict[str, BatchLimits] = {
    "default": BatchLimits(),
    "small": BatchLimits(max_rows=10_000, max_bytes=1 << 20, max_age=0.05),
    "large": BatchLimits(max_rows=500_000, max_bytes=32 << 20, max_age=1.0),
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- processes ----------------------------------------------------------------------------------
class SandboxProcess:
    """``python -m engine.sandbox --listen 127.0.0.1:0 --data-dir DIR``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.sandbox", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
             "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env(), text=True)
        line = self.proc.stdout.readline()
        if "listening on ws://" not in line:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        self.url = "ws://" + line.split("ws://", 1)[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.ps = psutil.Process(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 600.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Sql:
    """Blocking SQL through tdsync's WebSocket sink connector."""

    def __init__(self, loop: LoopThread, url: str) -> None:
        self.loop, self.url = loop, url
        self.sink = open_sink(url)

    def execute(self, sql: str) -> int:
        return self.loop.run(self.sink.execute(sql))

    def query(self, sql: str) -> list[tuple]:
        return self.loop.run(self.sink.query(sql))[1]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run(self.sink.close(), 10)


class Probe:
    """The source's WAL end per vgroup, from a consumer of the replication topic in its own group."""

    def __init__(self, loop: LoopThread, url: str) -> None:
        self.loop = loop
        self.source = open_source(url)

        async def setup():
            await self.source.query(f"CREATE TOPIC IF NOT EXISTS `{TOPIC}` WITH META AS DATABASE `{DB}`")
            await self.source.subscribe(TOPIC, "bench_probe", "bench-probe")
        loop.run(setup())

    def wal_ends(self) -> dict[int, int]:
        return {a.vgroup_id: a.end for a in self.loop.run(self.source.assignment(TOPIC))}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run(self.source.close(), 10)


@dataclass
class Sampler:
    """RSS of one process and CPU seconds of several, sampled on a thread."""

    rss_of: psutil.Process
    cpu_of: dict[str, psutil.Process]
    interval: float = 0.05
    peak_rss: int = 0
    rss: list[int] = field(default_factory=list)
    cpu0: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self.cpu0 = {name: _cpu(p) for name, p in self.cpu_of.items()}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                value = self.rss_of.memory_info().rss
                self.rss.append(value)
                self.peak_rss = max(self.peak_rss, value)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for name, p in self.cpu_of.items():
            with contextlib.suppress(psutil.Error):
                self.cpu[name] = _cpu(p) - self.cpu0[name]


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


# --- phases -------------------------------------------------------------------------------------
def setup_source(sql: Sql, tables: int) -> None:
    sql.execute(f"CREATE DATABASE {DB} VGROUPS 2")
    sql.execute(f"CREATE STABLE {DB}.st (ts TIMESTAMP, v INT, f DOUBLE) TAGS (t INT)")
    for i in range(tables):
        sql.execute(f"CREATE TABLE {DB}.c{i} USING {DB}.st TAGS ({i})")


def ingest(loop: LoopThread, url: str, tables: int, rows: int, seq: list[int], *, connections: int = 2,
           rows_per_table: int = 500, tables_per_statement: int = 2) -> float:
    """Insert ``rows`` rows (multi-row, multi-table INSERTs, ``connections`` in flight); seconds taken."""
    per_statement = rows_per_table * tables_per_statement
    statements = rows // per_statement
    counter = iter(range(statements))

    def statement(k: int) -> str:
        parts = []
        for j in range(tables_per_statement):
            t = (k * tables_per_statement + j) % tables
            base = seq[t]
            seq[t] += rows_per_table
            # v is the child table's number: taos-ws-py's TMQ blocks do not say which table rows are from,
            # so the naive replicator routes rows by it.
            values = " ".join(f"({BASE_TS + base + r},{t},{(base + r) * 0.5})" for r in range(rows_per_table))
            parts.append(f"{DB}.c{t} VALUES {values}")
        return "INSERT INTO " + " ".join(parts)

    async def one(conn) -> None:
        for k in counter:
            await conn.execute(statement(k))

    async def main() -> float:
        conns = [open_sink(url) for _ in range(connections)]
        try:
            await conns[0].execute("SELECT SERVER_VERSION()")
            t0 = time.perf_counter()
            await asyncio.gather(*(one(c) for c in conns))
            return time.perf_counter() - t0
        finally:
            for c in conns:
                await c.close()

    return loop.run(main())


def source_rows(sql: Sql, db: str = DB) -> int:
    return int(sql.query(f"SELECT COUNT(*) FROM {db}.st")[0][0])


@dataclass
class DrainResult:
    name: str
    limits: BatchLimits
    rows: int
    seconds: float
    seconds_after_first_write: float
    peak_rss: int
    cpu: dict[str, float]
    profile: dict[str, Any] | None = None
    rates: list[float] = field(default_factory=list)     # of every repeat, when this is their median

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def recreate_sink_db(sink_sql: Sql) -> None:
    sink_sql.execute(f"DROP DATABASE IF EXISTS {DB}")
    sink_sql.execute(f"CREATE DATABASE {DB} VGROUPS 2")


def start_worker(tmp: Path, name: str, source: SandboxProcess, sink: SandboxProcess, limits: BatchLimits
                 ) -> tuple[subprocess.Popen, Path]:
    offsets = tmp / f"offsets-{name}"
    argv = [sys.executable, "-m", "engine.replication.worker", "--replica", name, "--database", DB,
            "--source", source.url, "--sink", sink.url, "--offsets", str(offsets),
            "--max-rows", str(limits.max_rows), "--max-bytes", str(limits.max_bytes), "--max-age", str(limits.max_age)]
    logf = open(tmp / f"worker-{name}.log", "w", encoding="utf-8")      # noqa: SIM115 - the child's
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=_env())
    logf.close()
    return proc, offsets


def offsets_now(offsets: Path, name: str) -> dict[int, int]:
    if not (offsets / "data.mdb").exists():
        return {}
    with OffsetStore(offsets) as store:
        return {r.vgroup: r.offset for r in store.all(name) if r.database == DB}


_runs = iter(range(1, 1 << 30))


def drain(tmp: Path, name: str, limits: BatchLimits, source: SandboxProcess, sink: SandboxProcess, sink_sql: Sql,
          probe: Probe, expected_rows: int, *, profile: bool = False, timeout: float = 600.0) -> DrainResult:
    """A fresh sink database and a fresh replica (consumer group, offsets) drain the whole backlog."""
    recreate_sink_db(sink_sql)
    ends = probe.wal_ends()
    replica = f"{name}{next(_runs)}"
    t0 = time.perf_counter()
    proc, offsets = start_worker(tmp, replica, source, sink, limits)
    worker = psutil.Process(proc.pid)
    sampler = Sampler(worker, {"worker": worker, "source sandbox": source.ps, "sink sandbox": sink.ps})
    spies = start_profilers(tmp, name, {"worker": proc.pid, "sink": sink.proc.pid, "source": source.proc.pid}) \
        if profile else {}
    first_write = None
    try:
        while True:
            stored = offsets_now(offsets, replica)
            if stored and first_write is None:
                first_write = time.perf_counter()
            if stored == ends:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker {replica} exited with {proc.returncode}; see {tmp}/worker-{replica}.log")
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"worker {replica} did not drain the backlog in {timeout:g} s: {stored} vs {ends}")
            time.sleep(0.05)
        done = time.perf_counter()
    finally:
        sampler.stop()
        profiles = stop_profilers(spies)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    got = int(sink_sql.query(f"SELECT COUNT(*) FROM {DB}.st")[0][0])
    if got != expected_rows:
        raise RuntimeError(f"worker {replica}: the sink has {got} rows, the source {expected_rows}")
    return DrainResult(name, limits, expected_rows, done - t0, done - (first_write or t0), sampler.peak_rss,
                       sampler.cpu, profiles or None)


@dataclass
class NaiveResult:
    mode: str
    rows: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def naive(source: SandboxProcess, sink: SandboxProcess, sink_sql: Sql, tables: int, seconds: float,
          max_rows: int, *, per_row: bool) -> NaiveResult:
    """taosws.Consumer reading rows + SQL INSERTs on the sink, for ``seconds`` (or ``max_rows``).

    ``per_row``: one ``INSERT`` per row (the literal naive replicator); otherwise one multi-row
    ``INSERT`` per block and table (what a careful hand-written replicator does).
    """
    import taosws

    mode = "row" if per_row else "block"
    target = f"{NAIVE_DB}_{mode}"
    sink_sql.execute(f"DROP DATABASE IF EXISTS {target}")
    sink_sql.execute(f"CREATE DATABASE {target} VGROUPS 2")
    sink_sql.execute(f"CREATE STABLE {target}.st (ts TIMESTAMP, v INT, f DOUBLE) TAGS (t INT)")
    for i in range(tables):
        sink_sql.execute(f"CREATE TABLE {target}.c{i} USING {target}.st TAGS ({i})")
    with contextlib.closing(taosws.connect(f"ws://root:taosdata@127.0.0.1:{source.port}")) as conn:
        conn.execute(f"CREATE TOPIC IF NOT EXISTS {NAIVE_TOPIC} AS DATABASE {DB}")
    consumer = taosws.Consumer(conf={
        "td.connect.websocket.scheme": "ws", "td.connect.ip": "127.0.0.1", "td.connect.port": str(source.port),
        "td.connect.user": "root", "td.connect.pass": "taosdata", "group.id": f"naive_{mode}",
        "auto.offset.reset": "earliest", "enable.auto.commit": "false", "msg.with.table.name": "true"})
    consumer.subscribe([NAIVE_TOPIC])
    writer = taosws.connect(f"ws://root:taosdata@127.0.0.1:{sink.port}")
    me = psutil.Process()
    cpu0 = _cpu(me)
    rows = 0
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds and rows < max_rows:
            message = consumer.poll(0.5)
            if message is None:
                continue
            for block in message:
                by_table: dict[int, list[str]] = collections.defaultdict(list)
                for ts, v, f in block.fetchall():       # v = the table's number (see ingest)
                    by_table[v].append(f"({_ms(ts)},{_sql(v)},{_sql(f)})")
                for table, values in by_table.items():
                    if per_row:
                        for value in values:
                            writer.execute(f"INSERT INTO {target}.c{table} VALUES {value}")
                    else:
                        writer.execute(f"INSERT INTO {target}.c{table} VALUES {' '.join(values)}")
                    rows += len(values)
                if per_row and time.perf_counter() - t0 >= seconds:
                    break
            consumer.commit(message)
        elapsed = time.perf_counter() - t0
    finally:
        consumer.unsubscribe()
        consumer.close()
        writer.close()
    got = int(sink_sql.query(f"SELECT COUNT(*) FROM {target}.st")[0][0])
    if got != rows:
        raise RuntimeError(f"naive replicator ({mode}): wrote {rows} rows but the sink has {got}")
    sink_sql.execute(f"DROP DATABASE IF EXISTS {target}")
    return NaiveResult(f"per {mode}", rows, elapsed, _cpu(me) - cpu0)


def _ms(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


def _sql(value: Any) -> str:
    return "NULL" if value is None else repr(value)


def live(tmp: Path, source: SandboxProcess, sink: SandboxProcess, sink_sql: Sql, probe: Probe, loop: LoopThread,
         tables: int, rows: int, seq: list[int]) -> dict[str, float]:
    """The worker running while the source ingests ``rows`` more rows."""
    name = "live"
    recreate_sink_db(sink_sql)
    proc, offsets = start_worker(tmp, name, source, sink, BatchLimits())
    try:
        # First let it drain what is there, so that the measurement starts from "caught up".
        ends = probe.wal_ends()
        deadline = time.perf_counter() + 600
        while offsets_now(offsets, name) != ends:
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"live worker did not catch up first; see {tmp}/worker-live.log")
            time.sleep(0.05)
        begin = sum(ends.values())
        lags: list[int] = []
        halt = threading.Event()

        def sample() -> None:            # WAL versions the worker is behind, every 0.25 s
            while not halt.wait(0.25):
                now_ends = probe.wal_ends()
                stored = offsets_now(offsets, name)
                lags.append(sum(e - stored.get(v, 0) for v, e in now_ends.items()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            seconds = ingest(loop, source.url, tables, rows, seq)
        finally:
            halt.set()
            sampler.join(10)
        stopped = time.perf_counter()
        ends = probe.wal_ends()
        versions = max(sum(ends.values()) - begin, 1)
        behind = {v: ends[v] - o for v, o in offsets_now(offsets, name).items()}
        while offsets_now(offsets, name) != ends:
            if proc.poll() is not None or time.perf_counter() > stopped + 600:
                raise RuntimeError(f"live worker did not catch up; see {tmp}/worker-live.log")
            time.sleep(0.02)
        catch_up = time.perf_counter() - stopped
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    half = len(lags) // 2
    rows_per_version = rows / versions
    return {"rows": rows, "ingest_rate": rows / seconds, "behind_versions": sum(behind.values()),
            "catch_up_s": catch_up, "ingest_s": seconds, "rows_per_version": rows_per_version,
            "max_lag_rows": max(lags, default=0) * rows_per_version,
            "lag_rows_first_half": (sum(lags[:half]) / max(half, 1)) * rows_per_version,
            "lag_rows_second_half": (sum(lags[half:]) / max(len(lags) - half, 1)) * rows_per_version}


# --- where the worker's time goes ----------------------------------------------------------------
class Timer:
    def __init__(self) -> None:
        self.seconds: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()

    def add(self, key: str, seconds: float) -> None:
        self.seconds[key] += seconds
        self.calls[key] += 1


class Timed:
    """A connector whose coroutine methods are timed (``source.poll`` split by message / empty)."""

    def __init__(self, inner: Any, side: str, timer: Timer) -> None:
        self._inner, self._side, self._timer = inner, side, timer

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        async def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            result = await attr(*args, **kwargs)
            key = f"{self._side}.{name}"
            if name == "poll":
                key += " (message)" if result is not None else " (empty)"
            self._timer.add(key, time.perf_counter() - t0)
            return result

        return timed


class TimedStore(OffsetStore):
    def __init__(self, path: Path, timer: Timer) -> None:
        super().__init__(path)
        self._timer = timer

    def put_batch(self, items) -> None:
        t0 = time.perf_counter()
        super().put_batch(items)
        self._timer.add("LMDB put_batch (fsync)", time.perf_counter() - t0)


def instrumented_drain(tmp: Path, source: SandboxProcess, sink: SandboxProcess, sink_sql: Sql, probe: Probe,
                       expected_rows: int, limits: BatchLimits) -> dict[str, Any]:
    """A VgroupWorker in this process with timed connectors: the wall time of one drain, split."""
    from engine.connectors.base import run
    from engine.replication.worker import VgroupWorker

    recreate_sink_db(sink_sql)
    ends = probe.wal_ends()
    timer = Timer()
    name = "instrumented"

    async def main() -> tuple[float, Any]:
        async def src():
            return Timed(open_source(source.url), "source", timer)

        async def snk():
            return Timed(open_sink(sink.url), "sink", timer)

        store = TimedStore(tmp / "offsets-instrumented", timer)
        worker = VgroupWorker(name, DB, src, snk, store, limits=limits)
        t0 = time.perf_counter()
        task = asyncio.get_running_loop().create_task(worker.run())
        try:
            while {r.vgroup: r.offset for r in store.all(name)} != ends:
                if task.done():
                    await task
                    raise RuntimeError("the instrumented worker stopped early")
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - t0
            parts, calls = dict(timer.seconds), dict(timer.calls)     # not the idle polls after the end
        finally:
            worker.stop()
            await task
            store.close()
        return elapsed, worker.stats, parts, calls

    me = psutil.Process()
    cpu0 = _cpu(me)
    elapsed, stats, parts, calls = run(main())
    cpu = _cpu(me) - cpu0
    got = int(sink_sql.query(f"SELECT COUNT(*) FROM {DB}.st")[0][0])
    if got != expected_rows:
        raise RuntimeError(f"instrumented worker: the sink has {got} rows, the source {expected_rows}")
    return {"seconds": elapsed, "rate": expected_rows / elapsed, "cpu": cpu, "parts": parts,
            "calls": calls, "writes": stats.writes, "messages": stats.messages, "metas": stats.metas}


# --- profiling ----------------------------------------------------------------------------------
def start_profilers(tmp: Path, name: str, pids: dict[str, int]) -> dict[str, tuple[subprocess.Popen, Path]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log("py-spy not found: no profile (pip install py-spy)")
        return {}
    out = {}
    for who, pid in pids.items():
        path = tmp / f"profile-{name}-{who}.txt"
        proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw", "--output",
                                 str(path), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out[who] = (proc, path)
    time.sleep(0.5)
    return out


def stop_profilers(spies: dict[str, tuple[subprocess.Popen, Path]]) -> dict[str, Any]:
    result = {}
    for who, (proc, path) in spies.items():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if path.exists():
            result[who] = summarize_profile(path)
    return result


# Buckets of CPU samples: the innermost frame that matches names the bucket.
BUCKETS = [
    ("codec: decode/merge/encode", ("engine/codec", "engine._codec", "_codec", "merge_messages",
                                    "replication/batch")),
    ("LMDB offset store", ("replication/offsets",)),
    ("websockets framing", ("websockets/",)),
    ("tdsync ws client", ("connectors/ws",)),
    ("sandbox SQL parse/execute", ("sandbox/sql", "sandbox/executor")),
    ("sandbox storage (LMDB rows, WAL)", ("sandbox/storage", "sandbox/engine", "msgpack")),
    ("sandbox TMQ (WAL scan, assembly)", ("sandbox/tmq",)),
    ("sandbox protocol", ("sandbox/protocol", "sandbox/server")),
    ("worker loop", ("replication/worker",)),
    ("asyncio / uvloop", ("asyncio/", "uvloop")),
    ("startup (imports)", ("importlib", "<frozen")),
]


def summarize_profile(path: Path) -> dict[str, Any]:
    """Collapsed stacks (CPU samples only) → totals, top self functions, buckets."""
    self_time: collections.Counter = collections.Counter()
    buckets: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        self_time[_short(frames[-1])] += n
        for frame in reversed(frames):
            label = next((label for label, markers in BUCKETS if any(m in frame for m in markers)), None)
            if label is not None:
                buckets[label] += n
                break
        else:
            buckets["other"] += n
    return {"samples": total, "top": self_time.most_common(10), "buckets": buckets.most_common()}


def _short(frame: str) -> str:
    return frame.replace(str(ROOT) + "/", "").replace(sys.prefix + "/lib/python3.11/site-packages/", "")


# --- report -------------------------------------------------------------------------------------
def mb(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB"


def report(args, ingest_rate: float, drains: list[DrainResult], naives: list[NaiveResult], live_result,
           split, profile) -> None:
    rows = args.rows
    best = max(drains, key=lambda d: d.rate)
    block = next((n for n in naives if n.mode == "per block"), None)
    per_row = next((n for n in naives if n.mode == "per row"), None)
    print()
    print(f"Replication bench: sandbox -> sandbox, backlog of {rows:,} rows (ts TIMESTAMP, v INT, f DOUBLE) in "
          f"{args.tables} child tables, 2 vgroups; {os.cpu_count()} CPUs; servers and worker are separate processes")
    print()
    head = f"{'measure':<50}{'rows/s':>11}{'/naive row':>11}{'/naive blk':>11}{'/ingest':>9}"
    print(head)
    print("-" * len(head))

    def line(label: str, rate: float) -> None:
        r = f"{rate / per_row.rate:.0f}x" if per_row else "-"
        b = f"{rate / block.rate:.1f}x" if block else "-"
        print(f"{label:<50}{rate:>11,.0f}{r:>11}{b:>11}{rate / ingest_rate:>8.2f}x")

    line("sandbox ingest (INSERT 1000 rows, 2 connections)", ingest_rate)
    for d in drains:
        lim = d.limits
        line(f"tdsync worker [{d.name}: {lim.max_rows // 1000}k rows/{mb(lim.max_bytes)}/{lim.max_age:g} s]", d.rate)
    if any(len(d.rates) > 1 for d in drains):
        print("  (worker rows are medians of " + "; ".join(
            f"{d.name}: " + ", ".join(f"{r / 1000:.0f}k" for r in d.rates) for d in drains) + " rows/s)")
    for n in naives:
        line(f"naive taosws Consumer + INSERT {n.mode} ({n.rows:,} rows)", n.rate)
    print()
    print(f"{'run (median)':<16}{'wall s':>8}{'after 1st write':>17}{'peak RSS':>10}   CPU s: worker / source / sink")
    for d in drains:
        cpu = d.cpu
        print(f"{d.name:<16}{d.seconds:>8.1f}{d.seconds_after_first_write:>17.1f}{mb(d.peak_rss):>10}   "
              f"{cpu.get('worker', 0):.1f} / {cpu.get('source sandbox', 0):.1f} / {cpu.get('sink sandbox', 0):.1f}")
    for n in naives:
        print(f"{'naive ' + n.mode:<16}{n.seconds:>8.1f}{'':>17}{'':>10}   {n.cpu:.1f} (the replicator)")
    print()
    if per_row or block:
        print(f"best worker setting: {best.name}, {best.rate:,.0f} rows/s = "
              + (f"{best.rate / per_row.rate:.0f}x the per-row naive replicator, " if per_row else "")
              + (f"{best.rate / block.rate:.1f}x the per-block one " if block else "")
              + "(target >= 10x)")
    print(f"worker / sandbox ingest = {best.rate / ingest_rate:.2f}x (target >= 1: the worker is not the bottleneck)")
    default = next((d for d in drains if d.name == "default"), drains[0])
    print(f"worker peak RSS while draining {rows:,} rows with the {default.name} limits: {mb(default.peak_rss)} "
          f"(target < 150 MB)")
    if live_result:
        lr = live_result
        print(f"live: {lr['rows']:,} rows ingested at {lr['ingest_rate']:,.0f} rows/s while the worker replicated "
              f"(all on the same {os.cpu_count()} CPUs); lag ~{lr['lag_rows_first_half']:,.0f} rows on average in the "
              f"first half of the ingest, ~{lr['lag_rows_second_half']:,.0f} in the second (max "
              f"~{lr['max_lag_rows']:,.0f}); when the ingest stopped it was {lr['behind_versions']} WAL versions "
              f"behind and caught up {lr['catch_up_s']:.2f} s later")
    if split:
        print()
        print(f"where the worker's wall time goes (in-process worker, timed connectors, default limits): "
              f"{split['seconds']:.1f} s for {rows:,} rows = {split['rate']:,.0f} rows/s, {split['writes']} writes "
              f"of {split['messages']} polled messages")
        wall = split["seconds"]
        parts = dict(split["parts"])
        own = wall - sum(parts.values())
        for key, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
            print(f"  {key:<34}{seconds:>7.2f} s {100 * seconds / wall:5.1f}%  ({split['calls'][key]} calls)")
        print(f"  {'worker own work (decode, merge...)':<34}{own:>7.2f} s {100 * own / wall:5.1f}%")
    if profile:
        print()
        print("CPU profile (py-spy, CPU samples only, one more drain with the default limits):")
        for who, summary in profile.items():
            total = max(summary["samples"], 1)
            print(f"  {who}: {summary['samples']} samples at 100 Hz")
            print("    " + ", ".join(f"{label} {100 * n / total:.0f}%" for label, n in summary["buckets"][:7]))
            for frame, n in summary["top"][:6]:
                print(f"      {100 * n / total:5.1f}%  {frame[:100]}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "rows": rows, "ingest_rate": ingest_rate, "naive": [n.__dict__ for n in naives],
            "drains": [{"name": d.name, "limits": d.limits.__dict__, "rate": d.rate, "seconds": d.seconds,
                        "peak_rss": d.peak_rss, "cpu": d.cpu, "rates": d.rates} for d in drains],
            "live": live_result, "split": split, "profile": profile}, indent=1, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replication_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="backlog size (default 1,000,000)")
    parser.add_argument("--tables", type=int, default=100, help="child tables (default 100)")
    parser.add_argument("--settings", default="default,small,large",
                        help=f"batch-limit settings to drain with, of {', '.join(SETTINGS)}")
    parser.add_argument("--repeat", type=int, default=3, help="drains per setting; the median is reported")
    parser.add_argument("--naive-seconds", type=float, default=15.0, help="per naive mode (0: skip)")
    parser.add_argument("--live-rows", type=int, default=300_000, help="rows ingested during the live phase (0: skip)")
    parser.add_argument("--no-profile", action="store_true", help="skip the instrumented and py-spy drains")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, profiles)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="tdsync-bench-"))
    loop = LoopThread()
    source = SandboxProcess(tmp / "source")
    sink = SandboxProcess(tmp / "sink")
    src_sql, sink_sql = Sql(loop, source.url), Sql(loop, sink.url)
    started = time.perf_counter()
    try:
        setup_source(src_sql, args.tables)
        seq = [0] * args.tables
        log(f"ingesting {args.rows:,} rows into the source")
        seconds = ingest(loop, source.url, args.tables, args.rows, seq)
        total = source_rows(src_sql)
        ingest_rate = total / seconds
        log(f"ingest: {total:,} rows in {seconds:.1f} s = {ingest_rate:,.0f} rows/s")
        probe = Probe(loop, source.url)
        names = [s.strip() for s in args.settings.split(",") if s.strip()]
        runs: dict[str, list[DrainResult]] = {name: [] for name in names}
        for _ in range(args.repeat):              # interleaved, so that noise spreads over the settings
            for name in names:
                result = drain(tmp, name, SETTINGS[name], source, sink, sink_sql, probe, total)
                log(f"worker [{name}]: {result.rate:,.0f} rows/s, {result.seconds:.1f} s, peak RSS "
                    f"{mb(result.peak_rss)}, CPU {result.cpu}")
                runs[name].append(result)
        drains = []
        for results in runs.values():
            ordered = sorted(results, key=lambda r: r.rate)
            median = ordered[len(ordered) // 2]
            median.rates = [r.rate for r in results]
            median.peak_rss = max(r.peak_rss for r in results)
            drains.append(median)
        split = profile = None
        if not args.no_profile:
            split = instrumented_drain(tmp, source, sink, sink_sql, probe, total, SETTINGS["default"])
            log(f"instrumented drain: {split['rate']:,.0f} rows/s; {split['parts']}")
            prof = drain(tmp, "profile", SETTINGS["default"], source, sink, sink_sql, probe, total, profile=True)
            profile = prof.profile
            log(f"profiled drain: {prof.rate:,.0f} rows/s (py-spy attached), CPU {prof.cpu}")
        naives = []
        if args.naive_seconds > 0:
            for per_row in (False, True):
                result = naive(source, sink, sink_sql, args.tables, args.naive_seconds, total, per_row=per_row)
                log(f"naive {result.mode}: {result.rows:,} rows in {result.seconds:.1f} s = {result.rate:,.0f} rows/s")
                naives.append(result)
        live_result = None
        if args.live_rows > 0:
            live_result = live(tmp, source, sink, sink_sql, probe, loop, args.tables, args.live_rows, seq)
            log(f"live: {live_result}")
        probe.close()
        report(args, ingest_rate, drains, naives, live_result, split, profile)
        print(f"\n(total bench time {time.perf_counter() - started:.0f} s"
              f"{f'; logs and profiles in {tmp}' if args.keep else ''})")
    finally:
        src_sql.close()
        sink_sql.close()
        source.stop()
        sink.stop()
        loop.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
