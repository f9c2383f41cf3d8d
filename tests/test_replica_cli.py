"""``tdsync replica ...`` as a user runs it: ``python -m engine.cli replica VERB`` subprocesses against
two real sandboxes, with a temporary ``--state-dir``.

Until a supervisor runs, a test plays it by writing what ``tdsync serve`` would write
(:meth:`StateStore.set_status`, :meth:`StateStore.put_workers`, offsets). The last test runs a real
``tdsync serve`` when engine/replication/supervisor.py exists.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.replication.offsets import OffsetStore
from engine.replication.state import INTERRUPTED, RUNNING, STOPPED, StateStore, WorkerInfo
from engine.sandbox.server import Sandbox
from engine.tables import render

ROOT = Path(__file__).resolve().parents[1]
STATUS_HEADER = ["replica", "task", "source", "sink", "database", "status", "note"]
DIFF_HEADER = ["replica", "database", "source", "sink", "vgroup_id", "current", "latest", "diff", "worker"]
HOST = socket.gethostname()


# --- the two peers ------------------------------------------------------------------------------
class Peer:
    def __init__(self, root: Path, name: str) -> None:
        self.sandbox = Sandbox(root / name, port=0).start()
        self.url = self.sandbox.url
        self.where = self.url                      # how the CLI names a ws endpoint: ws://host:port

    def sql(self, statement: str):
        sb = self.sandbox
        return sb.call(lambda: sb.engine.session().execute(statement), timeout=60)

    def databases(self) -> set[str]:
        return {row[0] for row in self.sql("show databases").rows}

    def create_statement(self, db: str) -> str:
        return self.sql(f"show create database {db}").rows[0][1]

    def wal_ends(self, db: str) -> dict[int, int]:
        sb = self.sandbox
        return sb.call(lambda: {v: sb.engine.storage.wal_range(v)[1] for v in sb.engine.databases[db].vgroups})

    def groups(self) -> set[str]:
        return {row[1] for row in self.sql("show subscriptions").rows}


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    root = tmp_path_factory.mktemp("replica_cli")
    a, b = Peer(root, "a"), Peer(root, "b")
    for peer in (a, b):
        peer.sql("create database power vgroups 2 wal_retention_period 3600")
        peer.sql("create database meters precision 'us'")
    a.sql("create database only_a vgroups 3 precision 'us' wal_retention_period 7200")
    b.sql("create database only_b")
    a.sql("create table power.t (ts timestamp, v int)")
    for i in range(6):
        a.sql(f"insert into power.t values ({1_700_000_000_000 + i}, {i})")
    yield a, b
    for peer in (a, b):
        peer.sandbox.stop()


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state"


def cli(state: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("TDSYNC_STATE_DIR", None)
    return subprocess.run([sys.executable, "-m", "engine.cli", "replica", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def ok(state: Path, *args: str) -> str:
    done = cli(state, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def js(state: Path, *args: str):
    return json.loads(ok(state, *args, "--json"))


def failed(state: Path, *args: str, code: int = 1) -> str:
    """The one line on stderr of a verb that exits ``code``."""
    done = cli(state, *args)
    assert done.returncode == code, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    if code == 1:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr.strip()


def start(state: Path, a: Peer, b: Peer, *extra: str) -> str:
    out = ok(state, "start", "-f", a.url, "-t", b.url, *extra)
    replica = out.strip()
    assert re.fullmatch(r"[a-z]+\d*", replica), out
    return replica


def header(text: str) -> list[str]:
    return [cell.strip() for cell in text.splitlines()[1].strip("|").split("|")]


def table_rows(text: str) -> list[list[str]]:
    lines = text.strip().splitlines()
    assert lines[0].startswith("+-") and lines[2].startswith("+-") and lines[-1].startswith("+-"), text
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[3:-1]]


# --- tables -------------------------------------------------------------------------------------
def test_table_printer_matches_the_seed_shape():
    text = render(["replica", "task", "note"], [["a", 2, None], ["b", 10, "line\nbreak"]])
    assert text.splitlines() == [
        "+---------+------+------------+",
        "| replica | task | note       |",
        "+---------+------+------------+",
        "| a       | 2    |            |",
        "| b       | 10   | line break |",
        "+---------+------+------------+",
    ]
    assert render(["db"], [["京都"]]).splitlines()[3] == "| 京都 |"


# --- start --------------------------------------------------------------------------------------
def test_start_every_database_then_status_table_and_json(peers, state):
    a, b = peers
    done = cli(state, "start", "-f", a.url, "-t", b.url)
    assert done.returncode == 0, done.stderr
    replica = done.stdout.strip()
    assert re.fullmatch(r"[a-z]+\d*", replica)
    assert "only_a" in done.stderr and "--create-databases" in done.stderr     # source-only: said, not copied
    text = ok(state, "status")
    assert header(text) == STATUS_HEADER
    rows = table_rows(text)
    assert [(r[0], r[2], r[3], r[4], r[5], r[6]) for r in rows] == [
        (replica, a.where, b.where, "meters", "stopped", "starting"),
        (replica, a.where, b.where, "power", "stopped", "starting"),
    ]
    assert rows[0][1] != rows[1][1]
    doc = js(state, "status", replica)
    (rep,) = doc["replicas"]
    assert rep["replica"] == replica and rep["databases"] is None and rep["watch_new_databases"] is True
    assert rep["new_database_checking_interval"] == 1800
    assert [(t["database"], t["desired"], t["status"], t["pending"]) for t in doc["tasks"]] == [
        ("meters", "running", "stopped", "starting"), ("power", "running", "stopped", "starting")]
    # the same pair again: refused, pointing at -i
    err = failed(state, "start", "-f", a.url, "-t", b.url, "power")
    assert f"replica {replica} already replicates" in err and f"start -i {replica}" in err


def test_start_named_databases_and_options(peers, state):
    a, b = peers
    doc = js(state, "start", "-f", a.url, "-t", b.url, "POWER", "--new-database-checking-interval", "60")
    assert doc["databases"] == ["power"] and doc["watch_new_databases"] is False      # a list: no new ones
    assert [(t["database"], t["added"]) for t in doc["tasks"]] == [("power", True)]
    assert doc["source"] == a.where and doc["sink"] == b.where
    other = js(state, "start", "-f", b.url, "-t", a.url, "--no-new-databases")
    assert other["replica"] != doc["replica"]
    assert other["watch_new_databases"] is False and other["skipped_databases"] == ["only_b"]
    assert sorted(t["database"] for t in other["tasks"]) == ["meters", "power"]
    with StateStore(state) as store:
        assert store.replica(doc["replica"]).new_database_checking_interval == 60


def test_start_reports_a_missing_database_on_either_side(peers, state):
    a, b = peers
    err = failed(state, "start", "-f", a.url, "-t", b.url, "abc")
    assert err == f"tdsync replica start: Database `abc` not exists on {a.where}; " \
                  f"Database `abc` not exists on {b.where}"
    err = failed(state, "start", "-f", a.url, "-t", b.url, "power", "only_a")
    assert err == f"tdsync replica start: Database `only_a` not exists on {b.where}"
    assert "only_a" not in b.databases()
    assert table_rows(ok(state, "status")) == []                       # nothing was created


def test_create_databases_uses_the_source_options(peers, state):
    a, b = peers
    doc = js(state, "start", "-f", a.url, "-t", b.url, "only_a", "--create-databases")
    assert doc["created_databases"] == ["only_a"]
    assert b.create_statement("only_a") == a.create_statement("only_a")
    assert "VGROUPS 3" in a.create_statement("only_a") and "PRECISION 'us'" in a.create_statement("only_a")
    with StateStore(state) as store:
        assert store.replica(doc["replica"]).create_databases is True
    b.sql("drop database only_a")


def test_start_i_adds_databases_and_never_duplicates(peers, state):
    a, b = peers
    replica = start(state, a, b, "power")
    first = js(state, "start", "-i", replica, "power", "meters")
    assert first["replica"] == replica
    assert sorted((t["database"], t["added"]) for t in first["tasks"]) == [("meters", True), ("power", False)]
    assert ok(state, "start", "-i", replica, "meters", "power").strip() == replica
    tasks = js(state, "status")["tasks"]
    assert sorted(t["database"] for t in tasks) == ["meters", "power"]
    assert sorted(t["task"] for t in tasks) == sorted(t["task"] for t in first["tasks"])
    assert js(state, "status")["replicas"][0]["databases"] == ["power", "meters"]
    err = failed(state, "start", "-i", replica, "abc")
    assert err == f"tdsync replica start: Database `abc` not exists on {a.where}; " \
                  f"Database `abc` not exists on {b.where}"
    assert len(js(state, "status")["tasks"]) == 2


# --- errors -------------------------------------------------------------------------------------
def test_bad_endpoint_text_is_a_usage_error_without_the_password(state):
    err = failed(state, "start", "-f", "ws://root:s3cret@bad host:6041", "-t", "td2:6030", code=2)
    assert err.startswith("tdsync replica start: the source (-f): invalid endpoint")
    assert "s3cret" not in err and "bad host" in err
    err = failed(state, "start", "-f", "td1:6030", "-t", "td2:99999", code=2)
    assert "the sink (-t)" in err and "99999" in err
    err = failed(state, "start", "-f", "td1:6030", "-t", "taos://td1", code=2)
    assert "the same endpoint" in err


def test_unreachable_endpoints_fail_fast(peers, state):
    a, _ = peers
    with socket.socket() as refused, socket.socket() as silent:
        refused.bind(("127.0.0.1", 0))                   # bound, not listening: connection refused
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)                                 # accepts, never answers the WebSocket handshake
        dead = f"ws://root:s3cret@127.0.0.1:{refused.getsockname()[1]}"
        mute = f"ws://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        err = failed(state, "start", "-f", dead, "-t", a.url, "power")
        assert time.monotonic() - began < 5
        assert err.startswith(f"tdsync replica start: ws://127.0.0.1:{refused.getsockname()[1]} is unreachable")
        assert "s3cret" not in err
        began = time.monotonic()
        err = failed(state, "start", "-f", a.url, "-t", mute, "power")
        assert time.monotonic() - began < 12
        assert err.startswith(f"tdsync replica start: {mute} is unreachable")
    assert not state.exists()                            # a failed start leaves no state directory


def test_wrong_password_names_the_endpoint_not_the_password(peers, state):
    a, b = peers
    wrong = a.url.replace("ws://", "ws://root:n0tit@")
    err = failed(state, "start", "-f", wrong, "-t", b.url, "power")
    assert err.startswith(f"tdsync replica start: {a.where} refused SHOW DATABASES")
    assert "Authentication failure" in err and "n0tit" not in err


def test_unknown_replica_id_on_every_verb(peers, state):
    a, b = peers
    start(state, a, b, "power")                          # a state dir that exists
    for args in (["status", "nosuch"], ["stop", "nosuch"], ["restart", "nosuch"], ["diff", "nosuch"],
                 ["remove", "nosuch"], ["update", "nosuch", "--new-database-checking-interval", "5"],
                 ["start", "-i", "nosuch", "power"]):
        err = failed(state, *args)
        assert err == f"tdsync replica {args[0]}: no replica named 'nosuch' (see `tdsync replica status`)"


def test_usage_errors_exit_2(state, tmp_path):
    for args in (["start", "-f", "td1:6030"], ["start", "-i", "amber", "-f", "td1:6030"],
                 ["start", "-f", "td1:6030", "-t", "td2:6030", "log"],
                 ["start", "-f", "td1:6030", "-t", "td2:6030", "1bad"],
                 ["start", "-f", "td1:6030", "-t", "td2:6030", "--new-database-checking-interval", "0"],
                 ["update", "amber"], ["frobnicate"], ["stop", "amber", "bad-name"]):
        done = cli(state, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
    # nothing there yet: listing is empty, not an error, and the directory is not created
    missing = tmp_path / "nothing"
    assert table_rows(ok(missing, "status")) == [] and not missing.exists()
    assert js(missing, "status") == {"replicas": [], "tasks": []}


# --- status, stop, restart: what the supervisor writes shows ------------------------------------
def test_status_shows_what_the_supervisor_wrote(peers, state):
    a, b = peers
    replica = start(state, a, b, "power", "meters")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with StateStore(state) as store:
        store.set_status(replica, "power", RUNNING)
        store.set_status(replica, "meters", INTERRUPTED, "database meters vgroup 4: the sink refused\na write")
        store.put_workers([WorkerInfo(replica, "power", 0, os.getpid(), HOST, [2]),
                           WorkerInfo(replica, "power", 1, dead.pid, HOST, [3]),
                           WorkerInfo(replica, "power", 2, 4242, "elsewhere", [4])], HOST)
    rows = {r[4]: r for r in table_rows(ok(state, "status", replica))}
    assert rows["power"][5:] == ["running", ""]
    assert rows["meters"][5:] == ["interrupted", "database meters vgroup 4: the sink refused a write"]
    doc = js(state, "status")
    tasks = {t["database"]: t for t in doc["tasks"]}
    assert tasks["meters"]["note"].endswith("refused\na write") and tasks["meters"]["pending"] is None
    live, gone, remote = tasks["power"]["workers"]
    assert live["pid"] == os.getpid() and live["alive"] is True and live["vgroups"] == [2]
    assert live["rss"] > 1 << 20 and live["cpu_percent"] >= 0 and live["cpu_seconds"] > 0
    assert gone["alive"] is False and gone["rss"] is None
    assert remote["host"] == "elsewhere" and remote["alive"] is None
    assert tasks["meters"]["workers"] == []


def test_stop_and_restart_scoping(peers, state):
    a, b = peers
    one = start(state, a, b, "power", "meters")
    two = start(state, b, a, "power")
    assert ok(state, "stop", one, "meters").strip() == f"{one} meters (task 2) is stopped"   # never started
    desired = {(t["replica"], t["database"]): t["desired"] for t in js(state, "status")["tasks"]}
    assert desired == {(one, "power"): "running", (one, "meters"): "stopped", (two, "power"): "running"}
    doc = js(state, "stop")                                           # no id: all
    assert len(doc["tasks"]) == 3 and {t["desired"] for t in doc["tasks"]} == {"stopped"}
    assert {t["pending"] for t in js(state, "status")["tasks"]} == {None}
    doc = js(state, "restart", two)
    assert [(t["replica"], t["desired"], t["restarted"]) for t in doc["tasks"]] == [(two, "running", True)]
    assert failed(state, "stop", one, "only_b") == \
        f"tdsync replica stop: replica {one} has no task for database `only_b` (see `tdsync replica status {one}`)"


def test_restart_stops_then_starts_through_the_supervisor(peers, state):
    """A stand-in supervisor mirrors desired into status; restart must go through 'stopped'."""
    a, b = peers
    replica = start(state, a, b, "power")
    seen: list[str] = []
    done = threading.Event()

    def supervise():
        with StateStore(state) as store:
            while not done.is_set():
                for task in store.tasks():
                    actual = RUNNING if task.desired == RUNNING else STOPPED
                    if task.status != actual:
                        store.set_status(task.replica, task.database, actual)
                        seen.append(actual)
                time.sleep(0.05)

    thread = threading.Thread(target=supervise, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while "running" not in [r[5] for r in table_rows(ok(state, "status"))]:
            assert time.monotonic() < deadline
        seen.clear()
        assert ok(state, "restart", replica).strip() == f"restarting {replica} power (task 1)"
        deadline = time.monotonic() + 10
        while seen[-1:] != [RUNNING]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert seen == [STOPPED, RUNNING]
    finally:
        done.set()
        thread.join(5)
    # no supervisor: a running task is not stopped in time -> told, exit 1, still desired running
    err = failed(state, "restart", replica, "--timeout", "0.5")
    assert "did not stop" in err and "tdsync serve" in err
    assert js(state, "status")["tasks"][0]["desired"] == "running"


# --- diff ---------------------------------------------------------------------------------------
def test_diff_table_json_and_throwaway_group(peers, state):
    a, b = peers
    replica = start(state, a, b, "power", "meters")
    ends = a.wal_ends("power")
    busy = max(ends, key=ends.get)
    assert ends[busy] > 0
    with OffsetStore(state) as offsets:
        offsets.put_batch([(replica, "power", busy, ends[busy] - 2, 10, 100)])
    with StateStore(state) as store:
        store.put_workers([WorkerInfo(replica, "power", 0, 31337, HOST, [busy])], HOST)
    text = ok(state, "diff", replica)
    assert header(text) == DIFF_HEADER
    rows = table_rows(text)
    assert {(r[1], int(r[4])) for r in rows} == {("power", v) for v in ends} | \
        {("meters", v) for v in a.wal_ends("meters")}
    row = next(r for r in rows if r[1] == "power" and int(r[4]) == busy)
    assert row == [replica, "power", a.where, b.where, str(busy), str(ends[busy] - 2), str(ends[busy]), "2", "31337"]
    doc = js(state, "diff", replica, "power")
    assert {d["database"] for d in doc["vgroups"]} == {"power"} and doc["errors"] == []
    entry = next(d for d in doc["vgroups"] if d["vgroup_id"] == busy)
    assert (entry["current"], entry["latest"], entry["diff"], entry["worker_pid"]) == \
        (ends[busy] - 2, ends[busy], 2, 31337)
    idle = [d for d in doc["vgroups"] if d["vgroup_id"] != busy]
    assert all(d["current"] is None and d["worker_pid"] is None for d in idle)
    # the replica's own group was never joined; the throwaway groups are gone
    time.sleep(0.3)
    groups = a.groups()
    assert f"tdsync_{replica}" not in groups and not any(g.startswith("tdsync_diff_") for g in groups)


def test_diff_reports_a_dropped_database_and_shows_the_rest(peers, state):
    a, b = peers
    for peer in (a, b):
        peer.sql("create database gone")
    replica = start(state, a, b, "gone", "power")
    a.sql("drop topic if exists tdsync_gone")
    a.sql("drop database gone")
    b.sql("drop database gone")
    done = cli(state, "diff", replica)
    assert done.returncode == 1
    assert {r[1] for r in table_rows(done.stdout)} == {"power"}
    assert done.stderr.strip() == f"tdsync replica diff: replica {replica} database gone: " \
                                  f"Database `gone` not exists on {a.where}"


# --- remove, update -----------------------------------------------------------------------------
def test_remove_refuses_running_unless_forced(peers, state):
    a, b = peers
    one = start(state, a, b, "power")
    two = start(state, b, a, "power")
    with OffsetStore(state) as offsets:
        offsets.put_batch([(one, "power", 2, 5, 1, 1), (two, "power", 2, 5, 1, 1)])
    err = failed(state, "remove", one)
    assert err == f"tdsync replica remove: replica {one} is running (power): stop it first " \
                  f"(`tdsync replica stop {one}`), or remove it with --force"
    assert len(js(state, "status")["tasks"]) == 2
    doc = js(state, "remove", one, "--force")
    assert [r["replica"] for r in doc["removed"]] == [one] and doc["warnings"] == []
    assert [r["replica"] for r in js(state, "status")["replicas"]] == [two]
    ok(state, "stop", two)
    assert ok(state, "remove").strip() == f"removed replica {two} (1 task: power)"
    assert js(state, "status") == {"replicas": [], "tasks": []}
    with OffsetStore(state) as offsets:
        assert offsets.all() == []                       # a later replica reusing the word starts clean


def test_update_interval(peers, state):
    a, b = peers
    replica = start(state, a, b)
    assert ok(state, "update", replica, "--new-database-checking-interval", "90").strip() == \
        f"replica {replica}: new databases are looked for every 90 s"
    assert js(state, "status")["replicas"][0]["new_database_checking_interval"] == 90
    doc = js(state, "update", replica, "--new-database-checking-interval", "30")
    assert doc["new_database_checking_interval"] == 30 and doc["watch_new_databases"] is True


# --- with the real supervisor -------------------------------------------------------------------
def _serve_available() -> bool:
    if not (ROOT / "engine" / "replication" / "supervisor.py").exists():
        return False
    return "serve" in (ROOT / "engine" / "cli.py").read_text()


@pytest.mark.skipif(not _serve_available(), reason="engine/replication/supervisor.py (tdsync serve) not there yet")
def test_with_a_real_supervisor(peers, state, tmp_path):
    a, b = peers
    for peer in (a, b):
        peer.sql("create database live vgroups 2 wal_retention_period 3600")
        peer.sql("create table live.t (ts timestamp, v int)")
    replica = start(state, a, b, "live")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--state-dir", str(state)],
                             stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        def status() -> str:
            return table_rows(ok(state, "status", replica))[0][5]

        deadline = time.monotonic() + 15
        while status() != "running":
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)
        for i in range(20):
            a.sql(f"insert into live.t values ({1_700_000_000_000 + i}, {i})")
        deadline = time.monotonic() + 30
        while b.sql("select count(*) from live.t").rows[0][0] != 20:
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)
        deadline = time.monotonic() + 15
        while any(r[7] != "0" for r in table_rows(ok(state, "diff", replica))):
            assert time.monotonic() < deadline, ok(state, "diff", replica)
            time.sleep(0.5)
        workers = js(state, "status", replica)["tasks"][0]["workers"]
        assert workers and all(w["alive"] and w["rss"] > 0 for w in workers)
        ok(state, "stop", replica)
        deadline = time.monotonic() + 15
        while status() != "stopped":
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.3)
    finally:
        serve.terminate()
        try:
            serve.wait(20)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(5)
        log.close()
