"""``tdsync serve`` end to end: real sandboxes, a real supervisor process, real worker processes.

Nothing is mocked: the test writes desired state into the LMDB state directory (as ``tdsync replica``
does), runs ``python -m engine.cli serve`` as a child process and watches the processes (psutil), the
actual state the supervisor writes back, the offsets and both peers' contents.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from engine.replication.offsets import OffsetStore
from engine.replication.state import INTERRUPTED, RUNNING, STOPPED, StateStore
from tests.e2e.conftest import (
    ROOT,
    Probe,
    ProcessSandbox,
    ThreadSandbox,
    Writer,
    assert_same_contents,
    child_env,
    create_schema,
    stored_offsets,
    wait_for,
)

CONFIG = """
log_level = "info"

[batch]
max_age = {max_age}

[supervisor]
heartbeat_timeout = {heartbeat_timeout}
stop_timeout = 10
restart_backoff_initial = 0.2
restart_backoff_max = 1
max_failures = {max_failures}
failure_window = 60
vgroup_check_interval = 1
"""


# --- helpers --------------------------------------------------------------------------------------
class Serve:
    """``tdsync serve`` as a child process with its output in a log file."""

    def __init__(self, root: Path, state_dir: Path, *, max_age: float = 0.1, heartbeat_timeout: float = 30,
                 max_failures: int = 5) -> None:
        self.state_dir = state_dir
        self.config = root / "tdsync.toml"
        self.config.write_text(CONFIG.format(max_age=max_age, heartbeat_timeout=heartbeat_timeout,
                                             max_failures=max_failures))
        self.log_path = root / "serve.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Serve:
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write("---- start ----\n")
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "serve", "--config", str(self.config), "--state-dir",
                 str(self.state_dir)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=child_env(), cwd=ROOT)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 20.0) -> tuple[int, float]:
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - start

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "serve log (tail):\n" + "\n".join(self.log_text().splitlines()[-lines:])

    def close(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait(10)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def worker_processes(replica: str) -> list[psutil.Process]:
    """Every live worker process of this replica on the machine, whoever its parent is."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and "engine.replication.supervisor" in cmdline and \
                any(arg.startswith(f"{replica}/") for arg in cmdline):
            found.append(proc)
    return found


class Env:
    """Two process sandboxes with database ``d`` (``vgroups`` each), a state directory and its stores."""

    def __init__(self, root: Path, vgroups: int = 2, sink_database: bool = True, source_mode: str = "process"):
        self.root = root
        (root / "source").mkdir(parents=True, exist_ok=True)
        (root / "sink").mkdir(parents=True, exist_ok=True)
        source_cls = ThreadSandbox if source_mode == "thread" else ProcessSandbox
        self.source = source_cls("source", root / "source" / "data").start()
        self.sink = ProcessSandbox("sink", root / "sink" / "data").start()
        self.source.execute(f"CREATE DATABASE d VGROUPS {vgroups}")
        if sink_database:
            self.sink.execute(f"CREATE DATABASE d VGROUPS {vgroups}")
        self.state_dir = root / "state"
        self.store = StateStore(self.state_dir)
        self.offsets = OffsetStore(self.state_dir)
        self.serves: list[Serve] = []
        self.probes: list[Probe] = []

    def serve(self, **kwargs) -> Serve:
        serve = Serve(self.root, self.state_dir, **kwargs)
        self.serves.append(serve)
        return serve.start()

    def probe(self, db: str = "d") -> Probe:
        probe = Probe(self.source, db)
        self.probes.append(probe)
        return probe

    def workers(self, db: str = "d"):
        return [w for w in self.store.workers() if w.database == db]

    def task(self, replica: str, db: str = "d"):
        return self.store.tasks(replica, [db])[0]

    def wait_workers(self, replica: str, count: int, serve: Serve, db: str = "d", timeout: float = 20.0,
                     exclude: set[int] = frozenset()):
        """Until ``count`` live workers are listed, each with its vgroups, between them every vgroup once."""
        def ready():
            assert serve.alive, serve.log_tail()
            workers = [w for w in self.workers(db) if w.replica == replica]
            if len(workers) != count or any(not w.vgroups or w.pid in exclude or not running(w.pid)
                                            for w in workers):
                return None
            vgroups = sorted(v for w in workers for v in w.vgroups)
            return workers if len(vgroups) == len(set(vgroups)) == count else None
        return wait_for(ready, timeout, f"{count} workers of {replica}/{db} with their vgroups")

    def wait_caught_up(self, replica: str, probe: Probe, db: str = "d", timeout: float = 60.0,
                       serve: Serve | None = None) -> dict[int, int]:
        deadline = time.monotonic() + timeout
        ends, stored = {}, {}
        while time.monotonic() < deadline:
            ends = probe.wal_ends()
            stored = stored_offsets(self.offsets, replica, db)
            if stored == ends:
                return ends
            time.sleep(0.2)
        pytest.fail(f"not caught up: WAL ends {ends}, stored {stored}\n{serve.log_tail() if serve else ''}")

    def close(self) -> None:
        for serve in self.serves:
            serve.close()
        for probe in self.probes:
            with contextlib.suppress(Exception):
                probe.close()
        self.offsets.close()
        self.store.close()
        for peer in (self.source, self.sink):
            with contextlib.suppress(Exception):
                peer.close()


@pytest.fixture
def env(tmp_path):
    made: list[Env] = []

    def make(**kwargs) -> Env:
        environment = Env(tmp_path, **kwargs)
        made.append(environment)
        return environment

    yield make
    for environment in made:
        environment.close()


# --- the tests ------------------------------------------------------------------------------------
def test_serve_applies_tasks_replicates_stops_and_terminates_gracefully(env):
    e = env()
    create_schema(e.source, "d")
    serve = e.serve(max_age=1.0)
    replica = e.store.create_replica(e.source.url, e.sink.url, ["d"])
    wait_for(lambda: "0 worker(s) started" in serve.log_text(), 20, "serve to load its state")

    asked = time.monotonic()
    e.store.add_tasks(replica.id, ["d"])
    workers = e.wait_workers(replica.id, 2, serve, timeout=10)
    applied = time.monotonic() - asked
    assert e.task(replica.id).status == RUNNING
    assert applied < 2.5, f"workers appeared {applied:.2f} s after add_tasks"
    assert all(w.host and w.heartbeat >= w.started and w.restarts == 0 for w in workers)
    assert all(psutil.Process(w.pid).ppid() == serve.proc.pid for w in workers)

    # A second supervisor on the same state directory refuses to run.
    second = subprocess.run([sys.executable, "-m", "engine.cli", "serve", "--state-dir", str(e.state_dir)],
                            capture_output=True, text=True, env=child_env(), cwd=ROOT, timeout=30)
    assert second.returncode == 1 and "another tdsync serve" in second.stderr, second.stderr

    probe = e.probe()
    writer = Writer(e.source, "d", pause=0.01)
    writer.start()
    try:
        wait_for(lambda: writer.iterations > 20, 30, "the writer")
    finally:
        writer.stop()
    e.wait_caught_up(replica.id, probe, serve=serve)
    assert_same_contents(e.source, e.sink, "d")

    # Desired stopped: the workers exit (flushing) and the task is stopped.
    pids = [w.pid for w in workers]
    asked = time.monotonic()
    e.store.set_desired(replica.id, ["d"], STOPPED)
    wait_for(lambda: not any(running(p) for p in pids) and e.task(replica.id).status == STOPPED
             and not e.workers(), 10, "the workers to stop")
    stopped_after = time.monotonic() - asked
    assert stopped_after < 5, stopped_after

    # Running again, rows written meanwhile are replicated; SIGTERM then holds a batch (max_age 1 s).
    create_more = "INSERT INTO d.late USING d.st TAGS (99, 'late') (ts, v) VALUES " + \
        " ".join(f"({1_700_000_000_000 + i}, {i})" for i in range(50))
    e.source.execute(create_more)
    e.store.set_desired(replica.id, ["d"], RUNNING)
    e.wait_workers(replica.id, 2, serve, exclude=set(pids))
    ends = probe.wal_ends()
    wait_for(lambda: all(probe.positions(replica.id).get(v) == end for v, end in ends.items()), 20,
             "the workers to poll everything")
    pids = [w.pid for w in e.workers()]
    code, took = serve.terminate()
    assert code == 0, serve.log_tail()
    assert took < 10, f"serve took {took:.1f} s to stop"
    assert not any(running(p) for p in pids)
    assert stored_offsets(e.offsets, replica.id, "d") == ends == probe.wal_ends()
    assert_same_contents(e.source, e.sink, "d")
    assert e.task(replica.id).status == STOPPED and not e.workers()
    assert "Traceback" not in serve.log_text(), serve.log_tail()


def test_kill9_of_a_worker_restarts_it_and_the_contents_converge(env):
    e = env()
    create_schema(e.source, "d")
    replica = e.store.create_replica(e.source.url, e.sink.url, ["d"])
    e.store.add_tasks(replica.id, ["d"])
    serve = e.serve(max_age=0.5)
    workers = e.wait_workers(replica.id, 2, serve)
    probe = e.probe()
    writer = Writer(e.source, "d", pause=0.01, ddl_at={30: "CREATE TABLE {db}.extra (ts TIMESTAMP, x INT)",
                                                       31: "INSERT INTO {db}.extra VALUES (1700000000000, 1)"})
    writer.start()
    try:
        wait_for(lambda: writer.iterations > 10, 30, "the writer")
        victim = workers[0]
        psutil.Process(victim.pid).kill()
        restarted = wait_for(lambda: [w for w in e.workers() if w.slot == victim.slot and w.pid != victim.pid
                                      and w.vgroups and running(w.pid)], 15, "the worker's restart")[0]
        assert restarted.restarts == 1
        assert "SIGKILL" in restarted.last_error
        wait_for(lambda: writer.iterations > 45, 30, "the writer")
    finally:
        writer.stop()
    e.wait_caught_up(replica.id, probe, serve=serve)
    assert_same_contents(e.source, e.sink, "d")
    assert e.task(replica.id).status == RUNNING
    assert serve.terminate()[0] == 0, serve.log_tail()


def test_kill9_of_the_supervisor_leaves_no_worker_and_a_new_serve_resumes(env):
    e = env()
    create_schema(e.source, "d")
    replica = e.store.create_replica(e.source.url, e.sink.url, ["d"])
    e.store.add_tasks(replica.id, ["d"])
    serve = e.serve()
    pids = [w.pid for w in e.wait_workers(replica.id, 2, serve)]
    probe = e.probe()
    writer = Writer(e.source, "d", pause=0.01)
    writer.start()
    try:
        wait_for(lambda: writer.iterations > 10, 30, "the writer")
        serve.kill()
        gone = time.monotonic()
        wait_for(lambda: not worker_processes(replica.id) and not any(running(p) for p in pids), 5,
                 "the orphaned workers to exit")
        orphans_gone_after = time.monotonic() - gone
        again = e.serve()
        e.wait_workers(replica.id, 2, again, exclude=set(pids))
        wait_for(lambda: writer.iterations > 40, 30, "the writer")
    finally:
        writer.stop()
    e.wait_caught_up(replica.id, probe, serve=again)
    assert_same_contents(e.source, e.sink, "d")
    assert orphans_gone_after < 5
    assert again.terminate()[0] == 0, again.log_tail()


def test_a_worker_without_heartbeat_is_killed_and_restarted(env):
    e = env(vgroups=1)
    create_schema(e.source, "d", tables=2, rows=5)
    replica = e.store.create_replica(e.source.url, e.sink.url, ["d"])
    e.store.add_tasks(replica.id, ["d"])
    serve = e.serve(heartbeat_timeout=2)
    [hung] = e.wait_workers(replica.id, 1, serve)
    psutil.Process(hung.pid).suspend()                       # SIGSTOP: alive, silent
    stopped = time.monotonic()
    try:
        [fresh] = wait_for(lambda: [w for w in e.workers() if w.pid != hung.pid and w.vgroups and running(w.pid)],
                           15, "the hung worker's replacement")
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(hung.pid).resume()
    took = time.monotonic() - stopped
    assert not running(hung.pid)
    assert 2 <= took < 8, took
    assert "no heartbeat" in fresh.last_error and fresh.restarts == 1
    assert e.task(replica.id).status == RUNNING
    assert serve.terminate()[0] == 0, serve.log_tail()


def test_a_permanent_error_interrupts_the_task_until_it_is_started_again(env):
    e = env(vgroups=1, sink_database=False)
    create_schema(e.source, "d", tables=2, rows=5)
    replica = e.store.create_replica(e.source.url, e.sink.url, ["d"])
    e.store.add_tasks(replica.id, ["d"])
    serve = e.serve()
    task = wait_for(lambda: (t := e.task(replica.id)).status == INTERRUPTED and t, 15, "the task to be interrupted")
    assert "database d does not exist on the sink" in task.note, task.note
    time.sleep(1.0)
    assert e.task(replica.id).status == INTERRUPTED and not e.workers()       # it stays interrupted

    # A write the sink refuses (its super table has another column type): the worker reports it, the task
    # is interrupted at once with the worker's error.
    e.sink.execute("CREATE DATABASE d VGROUPS 1")
    e.sink.execute("CREATE STABLE d.st (ts TIMESTAMP, v VARCHAR(4), f INT) TAGS (t INT, loc NCHAR(16))")
    e.store.set_desired(replica.id, ["d"], RUNNING)                           # the operator starts it again
    # set_desired cleared the note; the status says "interrupted" until the supervisor acts
    task = wait_for(lambda: (t := e.task(replica.id)).status == INTERRUPTED and t.note and t, 15,
                    "the task to be interrupted by the refused write")
    assert "SinkWriteError" in task.note and "column type not match" in task.note, task.note
    assert "failed" not in task.note          # at once, not after repeated failures
    assert serve.terminate()[0] == 0, serve.log_tail()


def test_a_worker_that_keeps_failing_interrupts_the_task(env):
    e = env(vgroups=1)
    create_schema(e.source, "d", tables=2, rows=5)
    replica = e.store.create_replica(e.source.url, e.sink.url, ["d"])
    e.store.add_tasks(replica.id, ["d"])
    serve = e.serve(max_failures=3)
    killed: set[int] = set()
    for _ in range(3):
        [worker] = e.wait_workers(replica.id, 1, serve, exclude=killed)
        psutil.Process(worker.pid).kill()
        killed.add(worker.pid)
    task = wait_for(lambda: (t := e.task(replica.id)).status == INTERRUPTED and t, 15, "the task to be interrupted")
    assert "failed 3 times" in task.note and "SIGKILL" in task.note, task.note
    assert not e.workers()
    restarts = [float(d) for d in re.findall(r"restarting in ([0-9.]+) s", serve.log_text())]
    assert restarts == [0.2, 0.4], restarts                                   # the back-off doubles
    assert serve.terminate()[0] == 0, serve.log_tail()


def test_all_databases_replica_adds_new_databases_and_creates_them_on_the_sink(env):
    e = env(vgroups=2, sink_database=False)
    create_schema(e.source, "d", tables=3, rows=10)
    replica = e.store.create_replica(e.source.url, e.sink.url, None, new_database_checking_interval=1,
                                     create_databases=True)
    serve = e.serve()
    e.wait_workers(replica.id, 2, serve)
    assert [t.database for t in e.store.tasks(replica.id)] == ["d"]
    assert [row[0] for row in e.sink.query("SHOW DATABASES") if row[0] == "d"] == ["d"]

    e.source.execute("CREATE DATABASE d2 VGROUPS 3")
    create_schema(e.source, "d2", tables=4, rows=10)
    e.wait_workers(replica.id, 3, serve, db="d2")
    assert e.task(replica.id, "d2").status == RUNNING
    for db in ("d", "d2"):
        e.wait_caught_up(replica.id, e.probe(db), db=db, serve=serve)
        assert_same_contents(e.source, e.sink, db)
    names = {t.database for t in e.store.tasks(replica.id)}
    assert names == {"d", "d2"}                               # no information_schema, performance_schema ...
    assert serve.terminate()[0] == 0, serve.log_tail()


def _add_vgroup(sandbox, db: str) -> int:
    """Give a database of a thread sandbox one more vgroup (what SPLIT VGROUP does to a real one)."""
    engine = sandbox.engine
    with engine.storage.write() as txn:
        vgid = engine._next(txn, "vgroup", start=2)
        database = engine.databases[db]
        database.vgroups.append(vgid)
        engine.storage.put(txn, "db", db, database.to_record())
    engine.storage.ensure_vgroup(vgid)
    return vgid


def test_a_vgroup_added_to_the_source_database_gets_a_worker(env):
    e = env(vgroups=2, source_mode="thread")
    create_schema(e.source, "d", tables=3, rows=10)
    replica = e.store.create_replica(e.source.url, e.sink.url, ["d"])
    e.store.add_tasks(replica.id, ["d"])
    serve = e.serve()
    e.wait_workers(replica.id, 2, serve)
    new = e.source.call(lambda: _add_vgroup(e.source.sandbox, "d"))
    workers = e.wait_workers(replica.id, 3, serve)
    assert new in {v for w in workers for v in w.vgroups}
    # New tables land on every vgroup, the new one included; all of it reaches the sink.
    for i in range(10, 22):
        e.source.execute(f"INSERT INTO d.n{i} USING d.st TAGS ({i}, 'n') (ts, v) VALUES (1700000000000, {i})")
    on_new = e.source.query(f"SELECT count(*) FROM information_schema.ins_tables WHERE db_name = 'd' "
                            f"AND vgroup_id = {new}")
    assert on_new and on_new[0][0] > 0
    e.wait_caught_up(replica.id, e.probe(), serve=serve)
    assert_same_contents(e.source, e.sink, "d")
    assert serve.terminate()[0] == 0, serve.log_tail()


@pytest.mark.long
def test_soak_random_kills_of_workers_and_of_the_supervisor(env):
    """Kill -9 workers and now and then the supervisor at random moments while the source takes writes,
    DDL and deletes; in the end both sides hold the same rows and the offsets equal the WAL ends."""
    import random

    rng = random.Random(11)
    e = env(vgroups=3)
    create_schema(e.source, "d")
    replica = e.store.create_replica(e.source.url, e.sink.url, ["d"])
    e.store.add_tasks(replica.id, ["d"])
    serve = e.serve(max_age=0.5, max_failures=1000)
    e.wait_workers(replica.id, 3, serve)
    probe = e.probe()
    ddl = {i: f"DELETE FROM {{db}}.c{i % 8} WHERE ts < {1_700_000_000_000 + 1000 + i}" for i in range(20, 400, 25)}
    ddl.update({60: "CREATE TABLE {db}.late (ts TIMESTAMP, x INT)",
                61: "INSERT INTO {db}.late VALUES (1700000000000, 1)",
                120: "ALTER STABLE {db}.st ADD COLUMN extra DOUBLE",
                121: "INSERT INTO {db}.c0 (ts, v, extra) VALUES (1699999999000, 1, 2.5)"})
    writer = Writer(e.source, "d", pause=0.01, ddl_at=ddl)
    writer.start()
    try:
        for cycle in range(16):
            time.sleep(rng.uniform(0.2, 1.5))
            if cycle % 5 == 4:
                serve.kill()
                serve = e.serve(max_age=0.5, max_failures=1000)
            else:
                live = [w for w in e.workers() if running(w.pid)]
                if live:
                    psutil.Process(rng.choice(live).pid).kill()
        wait_for(lambda: writer.iterations > 400 or writer.error, 120, "the writer")
    finally:
        writer.stop()
    e.wait_workers(replica.id, 3, serve, timeout=30)
    ends = e.wait_caught_up(replica.id, probe, timeout=90, serve=serve)
    assert_same_contents(e.source, e.sink, "d")
    assert serve.terminate()[0] == 0, serve.log_tail()
    assert stored_offsets(e.offsets, replica.id, "d") == ends
