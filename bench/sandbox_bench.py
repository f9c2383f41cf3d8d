"""Throughput of ``tdsync sandbox``: ``python -m bench.sandbox_bench [--rows N] [--profile]``.

A sandbox runs as a child process (``python -m engine.cli sandbox``; taos-ws-py holds the GIL while
it waits, so a server thread in this process could not answer it). Measured, one after the other
on the same data:

(a) INSERT rows/s through ``taosws``: multi-row statements (``--batch`` rows x 10 columns into one
    child table each), prepared before the clock starts;
(b) a ``taosws.Consumer`` reading every row back (``fetch_raw_data`` underneath);
(c) our own WebSocket client on ``/rest/tmq``: subscribe, poll, fetch_raw_data until the topic is
    drained, bytes counted from the fetch_raw_data frames (rows decoded after the clock stops).
    Twice: with TDengine's default ``min.poll.rows`` (4096: several WAL entries are merged into one
    message, so the server decodes, merges and re-encodes per poll) and with ``min.poll.rows=1``
    (one stored entry per poll, served as written);
(d) "no re-encode per poll": after the server stops, every payload of the ``min.poll.rows=1`` run
    is compared with the WAL entry it came from (``Storage.wal_read`` on the same data dir), and
    the per-poll work the server still does (one decode) is timed against the whole poll.

For each phase the server's CPU time (``/proc/PID/stat``) is shown next to the wall time: a server
busy ~100% of the wall time is the bottleneck. ``--profile`` adds a cProfile of the INSERT path in
a thread-mode sandbox (same statements, sent as ``binary_query`` frames), top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB, TOPIC = "bench", "bench_topic"
COLUMNS = ("ts timestamp, c_int int, c_bigint bigint, c_float float, c_double double, c_bool bool, "
           "c_small smallint, c_tiny tinyint, c_text varchar(16), c_nchar nchar(8)")
TABLES = 8
BASE_TS = 1_700_000_000_000
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python -m engine.cli sandbox`` on a free port; ``cpu()`` = its user+system seconds so far."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "sandbox", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", str(data_dir)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, cwd=ROOT)
        assert self.proc.stdout is not None
        buffer = b""
        deadline = time.monotonic() + 30
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"listening on ws://" not in buffer:
                chunk = os.read(self.proc.stdout.fileno(), 4096) if sel.select(1) else None
                if chunk == b"" or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the sandbox did not start: {buffer!r}")
                buffer += chunk or b""

    @property
    def dsn(self) -> str:
        return f"ws://root:taosdata@127.0.0.1:{self.port}"

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ---------------------------------------------------------------------------------------------
# the workload
# ---------------------------------------------------------------------------------------------
def statements(total_rows: int, batch: int, seed: int = 7) -> list[str]:
    """INSERT statements of ``batch`` rows x 10 columns, one child table each (round robin)."""
    rng = random.Random(seed)
    out = []
    for k in range(max(1, total_rows // batch)):
        table = k % TABLES
        first = (k // TABLES) * batch
        values = []
        for r in range(first, first + batch):
            values.append(f"({BASE_TS + r}, {rng.randrange(-2**31, 2**31)}, {rng.getrandbits(62)}, "
                          f"{rng.random():.6f}, {rng.random() * 1e6!r}, {'true' if r & 1 else 'false'}, "
                          f"{rng.randrange(-32768, 32768)}, {rng.randrange(-128, 128)}, 'text_{r % 9973}', "
                          f"'n{r % 97}')")
        out.append(f"insert into {DB}.d{table} values " + " ".join(values))
    return out


def setup_sql() -> list[str]:
    sql = [f"create database {DB} vgroups 2", f"create stable {DB}.st ({COLUMNS}) tags (t int)"]
    sql += [f"create table {DB}.d{i} using {DB}.st tags ({i})" for i in range(TABLES)]
    sql.append(f"create topic {TOPIC} as database {DB}")
    return sql


@dataclass
class Phase:
    name: str
    rows: int
    seconds: float
    server_cpu: float
    nbytes: int | None = None
    note: str = ""

    def line(self) -> str:
        mb = f"{self.nbytes / 1e6:8.1f}" if self.nbytes is not None else f"{'':>8}"
        mbs = f"{self.nbytes / 1e6 / self.seconds:8.1f}" if self.nbytes is not None else f"{'':>8}"
        return (f"{self.name:<44} {self.rows:>9,} {self.seconds:>7.2f} {self.rows / self.seconds:>10,.0f} "
                f"{mb} {mbs} {self.server_cpu:>7.2f} {100 * self.server_cpu / self.seconds:>5.0f}%  {self.note}")


HEADER = (f"{'phase':<44} {'rows':>9} {'wall s':>7} {'rows/s':>10} {'MB':>8} {'MB/s':>8} {'srv cpu':>7} "
          f"{'busy':>6}")


def insert_phase(server: Server, sql: list[str], rows_per_statement: int, budget: float) -> Phase:
    import taosws

    conn = taosws.connect(server.dsn)
    for statement in setup_sql():
        conn.execute(statement)
    cpu0, t0 = server.cpu(), time.perf_counter()
    rows = 0
    for statement in sql:
        rows += conn.execute(statement)
        if time.perf_counter() - t0 > budget:
            break
    seconds = time.perf_counter() - t0
    cpu = server.cpu() - cpu0
    conn.close()
    nbytes = sum(len(s) for s in sql[:rows // rows_per_statement])
    return Phase(f"(a) INSERT via taosws ({rows_per_statement} rows/stmt)", rows, seconds, cpu, nbytes,
                 "MB = SQL text")


def taosws_consumer_phase(server: Server, group: str, expected: int, budget: float) -> Phase:
    import taosws

    conf = {"td.connect.websocket.scheme": "ws", "td.connect.ip": "127.0.0.1", "td.connect.port": str(server.port),
            "td.connect.user": "root", "td.connect.pass": "taosdata", "group.id": group,
            "auto.offset.reset": "earliest", "enable.auto.commit": "false"}
    cpu0, t0 = server.cpu(), time.perf_counter()
    consumer = taosws.Consumer(conf=conf)
    consumer.subscribe([TOPIC])
    rows = 0
    while rows < expected and time.perf_counter() - t0 < budget:
        message = consumer.poll(1.0)
        if message is None:
            break
        for block in message:
            rows += block.nrows()
    seconds = time.perf_counter() - t0
    cpu = server.cpu() - cpu0
    consumer.close()
    return Phase("(b) taosws.Consumer poll (blocks, nrows)", rows, seconds, cpu)


class RawClient:
    """Just enough of /rest/tmq: subscribe, poll, fetch_raw_data (websockets' sync client, no deflate)."""

    def __init__(self, port: int, group: str, config: dict[str, str]) -> None:
        from websockets.sync.client import connect

        self.ws = connect(f"ws://127.0.0.1:{port}/rest/tmq", compression=None, max_size=None, proxy=None, legacy=True)
        self.req = 0
        resp = self.call("subscribe", user="root", password="taosdata", group_id=group, client_id="bench",
                         offset_rest="earliest", topics=[TOPIC], auto_commit="false", with_table_name="true",
                         config=config)
        assert resp["code"] == 0, resp

    def call(self, action: str, **args) -> dict:
        self.req += 1
        self.ws.send(json.dumps({"action": action, "args": dict(args, req_id=self.req)}))
        return json.loads(self.ws.recv(timeout=30))

    def fetch_raw_data(self, message_id: int) -> tuple[int, bytes]:
        self.req += 1
        self.ws.send(json.dumps({"action": "fetch_raw_data", "args": {"req_id": self.req, "message_id": message_id}}))
        frame = self.ws.recv(timeout=30)
        code, mlen = struct.unpack_from("<II", frame, 34)
        assert code == 0, frame[42:42 + mlen]
        raw_type, raw_len = struct.unpack_from("<HI", frame, 50 + mlen)
        return raw_type, frame[56 + mlen:56 + mlen + raw_len]

    def close(self) -> None:
        self.ws.close()


def raw_consumer_phase(server: Server, label: str, group: str, config: dict[str, str], budget: float,
                       keep: list | None = None) -> Phase:
    from engine.codec import RawDataMessage

    client = RawClient(server.port, group, config)
    payloads: list[tuple[int, int, int, bytes]] = []          # (vgroup, offset, raw_type, raw)
    frame_bytes = 0
    cpu0, t0 = server.cpu(), time.perf_counter()
    while time.perf_counter() - t0 < budget:
        resp = client.call("poll", blocking_time=100)
        if not resp["have_message"]:
            break
        raw_type, raw = client.fetch_raw_data(resp["message_id"])
        frame_bytes += len(raw)
        payloads.append((resp["vgroup_id"], resp["offset"], raw_type, raw))
    seconds = time.perf_counter() - t0
    cpu = server.cpu() - cpu0
    client.close()
    rows = sum(RawDataMessage.decode(raw, raw_type).num_rows for _, _, raw_type, raw in payloads if raw_type in (2, 4))
    if keep is not None:
        keep.extend(payloads)
    note = (f"{len(payloads)} polls, {frame_bytes / len(payloads) / 1e3:.0f} kB/poll, "
            f"server {cpu / len(payloads) * 1e3:.2f} ms/poll") if payloads else "no data"
    return Phase(label, rows, seconds, cpu, frame_bytes, note)


def no_reencode_check(data_dir: Path, payloads: list[tuple[int, int, int, bytes]]) -> list[str]:
    """Compare each single-entry payload with its WAL entry; time the per-poll decode the server does."""
    from engine.codec import RawDataMessage, merge_messages
    from engine.sandbox.storage import Storage

    storage = Storage(data_dir)
    same = shifted = other = 0
    entries = []
    chunk_ms = one_ms = 0.0
    try:
        if payloads:       # what one poll's WAL scan reads (tmq._Backend.entries: chunks of 256) vs one entry
            vgroup, offset = payloads[0][0], payloads[0][1]
            t0 = time.perf_counter()
            chunk = list(storage.wal_read(vgroup, offset, max_entries=256))
            chunk_ms = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            list(storage.wal_read(vgroup, offset, max_entries=1))
            one_ms = (time.perf_counter() - t0) * 1e3
            chunk_mb = sum(len(e.payload) for e in chunk) / 1e6
        for vgroup, offset, raw_type, raw in payloads:
            message = RawDataMessage.decode(raw, raw_type)
            rsp = message.rsp_offset.version
            # the data entry this single-entry message came from: the last version before rsp
            (entry,) = list(storage.wal_read(vgroup, rsp - 1, max_entries=1))
            entries.append(entry)
            if entry.payload == raw and entry.version == offset:
                same += 1
            elif message.req_offset.version == offset < entry.version and message.blocks and \
                    RawDataMessage.decode(entry.payload, entry.raw_type).num_rows == message.num_rows:
                shifted += 1         # the poll started at skipped entries (metas): offsets rewritten
            else:
                other += 1
    finally:
        storage.close()
    lines = [f"(d) min.poll.rows=1 payloads byte-identical to their stored WAL entry: {same}/{len(payloads)}; "
             f"re-assembled because the poll position was on skipped (meta) entries: {shifted}; other: {other}"]
    if not entries:
        return lines
    sample = entries[:200]
    t0 = time.perf_counter()
    for entry in sample:
        RawDataMessage.decode(entry.payload, entry.raw_type)
    decode_us = (time.perf_counter() - t0) / len(sample) * 1e6
    groups = [sample[i:i + 5] for i in range(0, len(sample) - 4, 5)]
    t0 = time.perf_counter()
    for group in groups:
        merge_messages([RawDataMessage.decode(e.payload, e.raw_type) for e in group]).encode()
    merge_us = (time.perf_counter() - t0) / max(len(groups), 1) * 1e6
    size = sum(len(e.payload) for e in sample) / len(sample)
    lines.append(f"    per poll the server still decodes the entry once (tmq._assemble): {decode_us:,.0f} µs for "
                 f"{size / 1e3:.0f} kB ({size / decode_us:,.0f} MB/s); the multi-entry path "
                 f"(decode 5 + merge + encode) costs {merge_us:,.0f} µs per 5 entries")
    lines.append(f"    WAL reads: a 256-entry chunk ({len(chunk)} entries = {chunk_mb:.1f} MB) takes "
                 f"{chunk_ms:.2f} ms, one entry {one_ms:.3f} ms; polls read chunks that grow from one entry "
                 f"(tmq._Backend.entries)")
    return lines


# ---------------------------------------------------------------------------------------------
# profile of the insert path (thread-mode sandbox, binary_query frames from this thread)
# ---------------------------------------------------------------------------------------------
def profile_inserts(sql: list[str], top: int = 25) -> str:
    from websockets.sync.client import connect

    from engine.sandbox.server import Sandbox

    with tempfile.TemporaryDirectory(prefix="tdsync-bench-prof-") as tmp:
        sb = Sandbox(Path(tmp)).start()
        try:
            ws = connect(sb.url + "/ws", compression=None, max_size=None, proxy=None, legacy=True)

            def query(req_id: int, text: str) -> dict:
                raw = text.encode()
                ws.send(struct.pack("<QQQHI", req_id, 0, 6, 1, len(raw)) + raw)
                resp = json.loads(ws.recv(timeout=60))
                assert resp["code"] == 0, resp
                return resp

            ws.send(json.dumps({"action": "conn", "args": {"req_id": 1, "user": "root", "password": "taosdata"}}))
            assert json.loads(ws.recv(timeout=10))["code"] == 0
            for i, text in enumerate(setup_sql()):
                query(10 + i, text)
            profiler = cProfile.Profile()
            sb.call(profiler.enable)                     # profiles the server thread only
            t0 = time.perf_counter()
            rows = 0
            for i, text in enumerate(sql):
                rows += query(100 + i, text)["affected_rows"]
            seconds = time.perf_counter() - t0
            sb.call(profiler.disable)
            ws.close()
        finally:
            sb.stop()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    body = (text[text.index("   ncalls"):] if "   ncalls" in text else text).rstrip()
    total = sum(v[2] for v in stats.stats.values())        # type: ignore[attr-defined]
    return (f"cProfile of the INSERT path (thread mode, {rows:,} rows in {seconds:.2f} s under the profiler, "
            f"{total:.2f} s own time profiled), top {top} by own time:\n{body}")


# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows to insert (default 300000)")
    parser.add_argument("--batch", type=int, default=1000, help="rows per INSERT statement (default 1000)")
    parser.add_argument("--budget", type=float, default=25.0, help="seconds per phase at most (default 25)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each read phase (median shown)")
    parser.add_argument("--profile", action="store_true", help="also cProfile the insert path (thread mode)")
    parser.add_argument("--profile-rows", type=int, default=60_000)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    sql = statements(args.rows, args.batch)
    print(f"tdsync sandbox benchmark: {len(sql)} INSERT statements x {args.batch} rows x 10 columns "
          f"({sum(map(len, sql)) / 1e6:.1f} MB of SQL), {TABLES} child tables in 2 vgroups; "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    tmp = Path(tempfile.mkdtemp(prefix="tdsync-bench-"))
    single: list[tuple[int, int, int, bytes]] = []
    try:
        server = Server(tmp / "data")
        try:
            phases = [insert_phase(server, sql, args.batch, args.budget)]
            inserted = phases[0].rows
            runs: dict[str, list[Phase]] = {"b": [], "merged": [], "single": []}
            for r in range(args.repeat):                     # each run: a new consumer group, from the start
                runs["b"].append(taosws_consumer_phase(server, f"bench_taosws_{r}", inserted, args.budget))
                runs["merged"].append(raw_consumer_phase(server, "(c) raw fetch_raw_data, min.poll.rows=4096",
                                                         f"bench_raw_merged_{r}", {}, args.budget))
                single.clear()
                runs["single"].append(raw_consumer_phase(server, "(c) raw fetch_raw_data, min.poll.rows=1",
                                                         f"bench_raw_single_{r}", {"min.poll.rows": "1"},
                                                         args.budget, keep=single))
            phases += [sorted(found, key=lambda p: p.seconds)[len(found) // 2] for found in runs.values()]
        finally:
            server.stop()
        print(HEADER)
        for phase in phases:
            print(phase.line())
        insert, taosws_read, merged, direct = phases

        def rate(phase: Phase) -> float:
            return phase.rows / phase.seconds

        print(f"(median of {args.repeat} runs for the read phases)")
        print()
        print(f"ratios: taosws consumer / INSERT rows/s = {rate(taosws_read) / rate(insert):.1f}x; "
              f"raw merged / taosws consumer rows/s = {rate(merged) / rate(taosws_read):.2f}x; "
              f"raw single-entry / raw merged = {rate(direct) / rate(merged):.2f}x; "
              f"server CPU per MB served: merged {merged.server_cpu / (merged.nbytes / 1e6) * 1e3:.1f} ms, "
              f"single-entry {direct.server_cpu / (direct.nbytes / 1e6) * 1e3:.1f} ms")
        for phase in phases[1:]:
            if phase.rows != inserted:
                print(f"WARNING: {phase.name} read {phase.rows} rows of {inserted} (time budget?)")
        for line in no_reencode_check(tmp / "data", single):
            print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.profile:
        print()
        print(profile_inserts(statements(args.profile_rows, args.batch)))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
