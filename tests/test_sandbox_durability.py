"""Durability of ``tdsync sandbox``: kill -9 the server, restart it on the same ``--data-dir``.

The server runs as a real ``python -m engine.cli sandbox`` child (what an operator starts), the
client is the official ``taosws`` (taos-ws-py). Checked after ``SIGKILL`` + restart:

* every INSERT the server acknowledged is there (count and values), including those of a writer
  thread that was still inserting when the server died; the one statement in flight at the kill
  is there completely or not at all (a statement is one LMDB transaction);
* the catalog (database, super table, child tables, topic) is there;
* each consumer group's committed offset per vgroup (``Consumer.committed``) is what was
  committed before the kill (``commit`` of a message and ``commit_offset``), and a new consumer
  of the group resumes from it: nothing committed is delivered again, the uncommitted tail is;
* the restarted server goes on: more writes, a second kill -9 and restart, and the group reads
  exactly the rows written after its last commit (WAL versions continue after a restart);
* wrong user or password is refused with TDengine's code and message.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

taosws = pytest.importorskip("taosws")

ROOT = Path(__file__).resolve().parents[1]
DB, TOPIC = "dur", "dur_topic"
TABLES = 8                       # child tables d0..d7 of dur.st: d0-d3 in one vgroup, d4-d7 in the other
ROWS_PER_STATEMENT = 5
BASE_TS = 1_700_000_000_000
PHASE1_STATEMENTS = 150          # written before the consumer reads
PHASE2_MIN_ACKS = 300            # the writer thread's acknowledged statements before the kill
# conn_retries=0: a client whose server died fails at once instead of reconnecting for seconds.
NO_RETRY = "conn_retries=0"


# ---------------------------------------------------------------------------------------------
# the server process
# ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SandboxProcess:
    """``python -m engine.cli sandbox --listen 127.0.0.1:PORT --data-dir DIR`` as a child process."""

    def __init__(self, data_dir: Path, port: int, user: str = "root", password: str = "taosdata") -> None:
        self.data_dir, self.port, self.user, self.password = data_dir, port, user, password
        self.proc: subprocess.Popen | None = None

    @property
    def dsn(self) -> str:
        return f"ws://{self.user}:{self.password}@127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> SandboxProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-m", "engine.cli", "sandbox", "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.data_dir), "--user", self.user, "--password", self.password]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, cwd=ROOT)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"listening on ws://" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise TimeoutError("tdsync sandbox did not start listening")
                if sel.select(left):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        code = self.proc.wait(5)
                        raise RuntimeError(f"tdsync sandbox exited with {code} before listening: {buffer!r}")
                    buffer += chunk
        assert f"127.0.0.1:{self.port}".encode() in buffer, buffer
        return self

    def kill(self) -> None:
        """kill -9, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.wait(15)
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def servers():
    """Every server a test starts is gone after it, whatever happened."""
    started: list[SandboxProcess] = []

    def start(*args, **kwargs) -> SandboxProcess:
        server = SandboxProcess(*args, **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        with contextlib.suppress(Exception):
            server.kill()


# ---------------------------------------------------------------------------------------------
# the data: statement k writes rows whose v is unique, into one table (or two, every 5th statement)
# ---------------------------------------------------------------------------------------------
def statement_rows(k: int) -> list[tuple[str, int, int, str, float]]:
    """(table, ts, v, s, f) rows of INSERT statement ``k``."""
    tables = [k % TABLES] + ([(k + 1) % TABLES] if k % 5 == 0 else [])
    rows = []
    for n, table in enumerate(tables):
        for r in range(ROWS_PER_STATEMENT):
            v = (k * 2 + n) * ROWS_PER_STATEMENT + r
            rows.append((f"d{table}", BASE_TS + v, v, f"s{k}_{n}_{r}", v * 0.25))
    return rows


def statement_sql(k: int) -> str:
    parts: dict[str, list[str]] = {}
    for table, ts, v, s, f in statement_rows(k):
        parts.setdefault(table, []).append(f"({ts}, {v}, '{s}', {f})")
    return "insert into " + " ".join(f"{DB}.{t} values {' '.join(values)}" for t, values in parts.items())


def setup_schema(conn) -> None:
    conn.execute(f"create database {DB} vgroups 2")
    conn.execute(f"create stable {DB}.st (ts timestamp, v bigint, s varchar(24), f double) tags (t int)")
    for i in range(TABLES):
        conn.execute(f"create table {DB}.d{i} using {DB}.st tags ({i})")
    conn.execute(f"create topic {TOPIC} as database {DB}")


def stored_rows(conn) -> list[tuple[str, int, int, str, float]]:
    rows = conn.query(f"select tbname, ts, v, s, f from {DB}.st")
    return sorted((tb, _ms(ts), v, s, f) for tb, ts, v, s, f in rows)


def _ms(value) -> int:
    """taosws renders query timestamps as text ('2023-11-14 22:13:20.005 +00:00') and TMQ ones as datetime."""
    from datetime import UTC, datetime, timedelta

    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace(" +", "+").replace(" -", "-"))
    return int((value - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


def consumer(server: SandboxProcess, group: str, **conf) -> taosws.Consumer:
    base = {"td.connect.websocket.scheme": "ws", "td.connect.ip": "127.0.0.1", "td.connect.port": str(server.port),
            "td.connect.user": server.user, "td.connect.pass": server.password, "group.id": group,
            "auto.offset.reset": "earliest", "enable.auto.commit": "false", "conn_retries": "0"}
    base.update(conf)
    return taosws.Consumer(conf=base)


def poll_values(c, timeout: float = 1.0) -> tuple[int, list[int]] | None:
    """One message: (vgroup, the v of every row), or None."""
    message = c.poll(timeout)
    if message is None:
        return None
    vgroup = message.vgroup()
    values = [row[1] for block in message for row in block.fetchall()]
    return vgroup, values, message


# ---------------------------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------------------------
def test_kill_9_keeps_acknowledged_writes_and_committed_offsets(tmp_path, servers):
    data_dir = tmp_path / "data"
    port = free_port()
    server = servers(data_dir, port)
    conn = taosws.connect(server.dsn)
    setup_schema(conn)

    # phase 1: acknowledged inserts
    acked: list[int] = []
    for k in range(PHASE1_STATEMENTS):
        assert conn.execute(statement_sql(k)) == len(statement_rows(k))
        acked.append(k)

    # group g: read some messages and commit them, then read one more without committing
    g = consumer(server, "g", **{"min.poll.rows": "20"})
    g.subscribe([TOPIC])
    committed_values: list[int] = []
    polled_vgroups = set()
    for _ in range(6):
        got = poll_values(g)
        assert got is not None
        vgroup, values, message = got
        assert values, "a data message without rows"
        committed_values.extend(values)
        polled_vgroups.add(vgroup)
        g.commit(message)
    (assignment,) = g.assignment()
    vgroups = sorted(a.vg_id() for a in assignment.assignments())
    assert len(vgroups) == 2 and polled_vgroups == set(vgroups)     # both vgroups have data
    committed_before = {vg: g.committed(TOPIC, vg) for vg in vgroups}
    assert all(offset >= 0 for offset in committed_before.values()), committed_before
    got = poll_values(g)
    assert got is not None
    uncommitted_values = got[1]                      # polled, never committed: must come again
    assert uncommitted_values and not set(uncommitted_values) & set(committed_values)

    # group g_manual: explicit commit_offset of chosen versions
    manual = consumer(server, "g_manual")
    manual.subscribe([TOPIC])
    (manual_assignment,) = manual.assignment()
    manual_offsets = {}
    for a in manual_assignment.assignments():
        target = min(a.begin() + 3 + a.vg_id(), a.end())
        manual.commit_offset(TOPIC, a.vg_id(), target)
        manual_offsets[a.vg_id()] = target
    assert {vg: manual.committed(TOPIC, vg) for vg in manual_offsets} == manual_offsets

    # phase 2: a writer thread inserting while the server is killed
    writer_conn = taosws.connect(f"{server.dsn}?{NO_RETRY}")
    in_flight: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        k = PHASE1_STATEMENTS
        while True:
            in_flight[:] = [k]
            try:
                writer_conn.execute(statement_sql(k))
            except Exception as exc:  # noqa: BLE001 - the server died under it
                errors.append(exc)
                return
            acked.append(k)
            in_flight.clear()
            k += 1

    thread = threading.Thread(target=writer, name="durability-writer", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < PHASE1_STATEMENTS + PHASE2_MIN_ACKS and thread.is_alive():
        assert time.monotonic() < deadline, "the writer thread is too slow"
        time.sleep(0.005)
    server.kill()
    thread.join(30)
    assert not thread.is_alive(), "the writer did not notice the dead server"
    assert errors, "the writer thread stopped without an error"
    assert len(in_flight) == 1 and in_flight[0] == acked[-1] + 1
    for obj in (g, manual):
        with contextlib.suppress(Exception):
            obj.close()
    for obj in (writer_conn, conn):
        with contextlib.suppress(Exception):
            obj.close()

    # restart on the same data dir (and port)
    server = servers(data_dir, port)
    conn = taosws.connect(server.dsn)
    expected = sorted((tb, ts, v, s, f) for k in acked for tb, ts, v, s, f in statement_rows(k))
    maybe = sorted(statement_rows(in_flight[0]))
    rows = stored_rows(conn)
    assert rows == expected or rows == sorted(expected + maybe), (
        f"{len(rows)} rows after the restart, {len(expected)} acknowledged (+{len(maybe)} in flight); "
        f"missing {sorted(set(expected) - set(rows))[:5]}, "
        f"unknown {sorted(set(rows) - set(expected) - set(maybe))[:5]}")
    ((count,),) = list(conn.query(f"select count(*) from {DB}.st"))
    assert count == len(rows)
    for i in range(TABLES):                          # per table, through the table itself
        table_rows = sorted((_ms(ts), v) for ts, v in conn.query(f"select ts, v from {DB}.d{i}"))
        assert table_rows == [(ts, v) for tb, ts, v, _, _ in rows if tb == f"d{i}"]
    assert [r[0] for r in conn.query("show topics")] == [TOPIC]

    # committed offsets: what was committed before the kill, as seen by new consumers of the groups
    g2 = consumer(server, "g", **{"min.poll.rows": "1000"})
    g2.subscribe([TOPIC])
    assert {vg: g2.committed(TOPIC, vg) for vg in vgroups} == committed_before
    manual2 = consumer(server, "g_manual")
    manual2.subscribe([TOPIC])
    assert {vg: manual2.committed(TOPIC, vg) for vg in manual_offsets} == manual_offsets
    manual2.close()

    # g resumes from its committed offsets: nothing committed comes again, everything else does
    resumed: list[int] = []
    for _ in range(1000):
        got = poll_values(g2, timeout=0.5)
        if got is None:
            break
        resumed.extend(got[1])
        g2.commit(got[2])
    assert len(resumed) == len(set(resumed)), "a row was delivered twice after the restart"
    assert not set(resumed) & set(committed_values), "rows committed before the kill were delivered again"
    assert set(uncommitted_values) <= set(resumed), "the uncommitted message was not delivered again"
    assert set(resumed) | set(committed_values) == {v for _, _, v, _, _ in rows}
    committed_after = {vg: g2.committed(TOPIC, vg) for vg in vgroups}

    # the restarted server keeps going: more writes, a second kill -9, a second restart
    first_new = max(acked + in_flight) + 1
    for k in range(first_new, first_new + 40):
        assert conn.execute(statement_sql(k)) == len(statement_rows(k))
        acked.append(k)
    server.kill()
    for obj in (g2, conn):
        with contextlib.suppress(Exception):
            obj.close()
    server = servers(data_dir, port)
    conn = taosws.connect(server.dsn)
    final = stored_rows(conn)
    assert final == sorted(rows + [row for k in range(first_new, first_new + 40) for row in statement_rows(k)])
    g3 = consumer(server, "g", **{"min.poll.rows": "1000"})
    g3.subscribe([TOPIC])
    assert {vg: g3.committed(TOPIC, vg) for vg in vgroups} == committed_after
    tail: list[int] = []
    while (got := poll_values(g3, timeout=0.5)) is not None:   # WAL versions went on after the restart
        tail.extend(got[1])
    assert sorted(tail) == sorted(v for k in range(first_new, first_new + 40) for _, _, v, _, _ in statement_rows(k))
    g3.close()
    conn.close()


def test_wrong_credentials_are_refused(tmp_path, servers):
    server = servers(tmp_path / "data", free_port(), user="tdsync", password="S3cret-pw")
    port = server.port
    with pytest.raises(taosws.ConnectionError, match=r"0x0357.*Authentication failure"):
        taosws.connect(f"ws://tdsync:taosdata@127.0.0.1:{port}")
    with pytest.raises(taosws.ConnectionError, match=r"0x0351.*Invalid user"):
        taosws.connect(f"ws://root:taosdata@127.0.0.1:{port}")       # the default user is not there
    with pytest.raises(taosws.ConnectionError, match=r"0x0351.*Invalid user"):
        taosws.connect(f"ws://nobody:S3cret-pw@127.0.0.1:{port}")
    conn = taosws.connect(server.dsn)
    conn.execute("create database auth_db vgroups 1")
    conn.execute("create topic auth_topic as database auth_db")
    assert [r[0] for r in conn.query("show databases") if r[0] == "auth_db"] == ["auth_db"]
    with pytest.raises(taosws.ConsumerException, match="init tscObj failed"):
        bad = consumer(server, "g_auth", **{"td.connect.pass": "wrong"})
        bad.subscribe(["auth_topic"])
    good = consumer(server, "g_auth")
    good.subscribe(["auth_topic"])
    assert good.list_topics() == ["auth_topic"]
    good.close()
    conn.close()
    server.stop()                                  # SIGTERM: a clean exit
