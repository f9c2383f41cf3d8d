"""Benchmark of the failover client (``engine.client``) against ``taosws`` used directly.

    PYTHONPATH=. python -m bench.failover_bench [--kills 20] [--interval-ms 200] [--retries 2]

Prints:

1. **Per-call overhead** of the wrapper on simple statements against a ``tdsync sandbox`` child
   process: ``cursor.execute(sql); cursor.fetchall()`` against ``list(taosws_conn.query(sql))``
   (and ``execute`` for an insert), both on the same server in the same run, called alternately
   so that drift hits both sides alike; the median per-call time of each, and the overhead in
   percent (target < 5 % on a simple query). Plus the wrapper's own cost per call over a connector
   that answers instantly, which is what the percentage is made of.
2. **Failover time** over ``--kills`` SIGKILLs of the primary while a thread writes through the
   client: from detection to the first success on the secondary (``SwitchEvent.duration_s``) and
   from the SIGKILL to the application's next acknowledged write; percentiles and maximum.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_TS = 1_700_000_000_000


class SandboxProcess:
    """``python -m engine.sandbox`` on a fixed port: kill -9 it, start it again on the same data."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> SandboxProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-m", "engine.sandbox", "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.data_dir), "--exit-on-stdin-eof"]
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT)
            buffer = b""
            with selectors.DefaultSelector() as sel:
                sel.register(self.proc.stdout, selectors.EVENT_READ)
                while b"listening on ws://" not in buffer and time.monotonic() < deadline:
                    if sel.select(deadline - time.monotonic()):
                        chunk = os.read(self.proc.stdout.fileno(), 4096)
                        if not chunk:
                            break
                        buffer += chunk
            if b"listening on ws://" in buffer:
                return self
            self.kill()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"sandbox on port {self.port} did not start: {buffer!r}")
            time.sleep(0.2)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(15)
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()

    def url(self, database: str = "") -> str:
        return f"ws://root:taosdata@127.0.0.1:{self.port}" + (f"/{database}" if database else "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


# --- 1. per-call overhead ------------------------------------------------------------------------
def side_by_side(direct, wrapped, pairs: int) -> tuple[float, float]:
    """Median per-call seconds of ``direct()`` and ``wrapped()``, called alternately (order swapped each pair)."""
    clock = time.perf_counter_ns
    for _ in range(max(pairs // 20, 20)):          # warm up both
        direct()
        wrapped()
    d_times, w_times = [], []
    for k in range(pairs):
        first, second = (direct, wrapped) if k % 2 else (wrapped, direct)
        t0 = clock()
        first()
        t1 = clock()
        second()
        t2 = clock()
        if k % 2:
            d_times.append(t1 - t0)
            w_times.append(t2 - t1)
        else:
            w_times.append(t1 - t0)
            d_times.append(t2 - t1)
    return statistics.median(d_times) / 1e9, statistics.median(w_times) / 1e9


def own_cost(calls: int) -> float:
    """Seconds per ``cursor.execute + fetchall`` of the wrapper over a connector that answers at once."""
    from engine.client.connection import Connection
    from engine.client.drivers import WsDriver
    from engine.client.dsn import parse_settings

    class Result(list):
        fields = ()

    class Raw:
        def query(self, sql):
            return Result([(1,)])

        def execute(self, sql):
            return 1

        def close(self):
            pass

    class Instant(WsDriver):
        def __init__(self):
            pass

        def connect(self, endpoint, database, options):
            return Raw()

    conn = Connection(parse_settings("ws://a:6041,b:6041/db", {}, environ={}), driver=Instant())
    cur = conn.cursor()
    sql = "select server_version()"
    raw = Raw()
    best_w = best_d = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            cur.execute(sql)
            cur.fetchall()
        best_w = min(best_w, (time.perf_counter() - t0) / calls)
        t0 = time.perf_counter()
        for _ in range(calls):
            list(raw.query(sql))
        best_d = min(best_d, (time.perf_counter() - t0) / calls)
    return best_w - best_d


def overhead(tmp: Path, pairs: int) -> list[str]:
    import taosws

    from engine.client import connect

    server = SandboxProcess(tmp / "overhead", free_port()).start()
    try:
        setup = taosws.connect(server.url())
        setup.execute("create database if not exists bench")
        setup.execute("create table if not exists bench.t (ts timestamp, v bigint)")
        setup.execute("insert into bench.t values " + " ".join(f"({BASE_TS + i}, {i})" for i in range(10)))
        setup.close()
        # the same taosws options the client uses, so that only the wrapper differs
        raw = taosws.connect(server.url("bench") + "?conn_retries=0&retry_backoff_ms=0")
        conn = connect(server.url("bench"), reconnect_interval_ms=200, reconnect_retry_count=2)
        cur = conn.cursor()
        lines = [f"per-call time, median over {pairs} calls of each, taosws and client called alternately "
                 f"(sandbox on 127.0.0.1, taos-ws-py {taosws.__version__}):",
                 f"  {'statement':<44} {'taosws':>10} {'client':>10} {'overhead':>9}"]
        seq = iter(range(10, 10**9))
        cases = [
            ("select server_version()", "select server_version()", True),
            ("select ts, v from t limit 10", "select ts, v from t limit 10", True),
            ("insert into t values (<ts>, <v>)", None, False),
        ]
        results = []
        for label, sql, returns_rows in cases:
            if returns_rows:
                def direct(sql=sql):
                    return list(raw.query(sql))

                def wrapped(sql=sql):
                    cur.execute(sql)
                    return cur.fetchall()
            else:
                def direct():
                    i = next(seq)
                    return raw.execute(f"insert into t values ({BASE_TS + i}, {i})")

                def wrapped():
                    i = next(seq)
                    return cur.execute(f"insert into t values ({BASE_TS + i}, {i})")
            d, w = side_by_side(direct, wrapped, pairs)
            if returns_rows:
                results.append((w - d) / d)
            lines.append(f"  {label:<44} {d * 1e6:>8.0f}us {w * 1e6:>8.0f}us {(w - d) / d * 100:>8.1f}%")
        lines.append(f"  wrapper's own cost per execute+fetchall (connector answering instantly): "
                     f"{own_cost(20000) * 1e6:.2f} us")
        verdict = "met" if max(results) < 0.05 else "NOT met"
        lines.append(f"  target < 5 % on a simple query: {verdict} (worst {max(results) * 100:.1f} %)")
        conn.close()
        raw.close()
        return lines
    finally:
        server.kill()


# --- 2. failover time ----------------------------------------------------------------------------
def failover_times(tmp: Path, kills: int, interval_ms: int, retries: int) -> list[str]:
    from engine.client import connect

    primary = SandboxProcess(tmp / "primary", free_port()).start()
    secondary = SandboxProcess(tmp / "secondary", free_port()).start()
    import taosws

    for server in (primary, secondary):
        setup = taosws.connect(server.url())
        setup.execute("create database if not exists fo")
        setup.execute("create table if not exists fo.t (ts timestamp, v bigint)")
        setup.close()
    detect, visible, attempts = [], [], []
    counter = iter(range(1, 10**9))
    try:
        for _ in range(kills):
            if primary.proc is None:
                primary.start()
            events = []
            conn = connect(f"ws://root:taosdata@127.0.0.1:{primary.port},127.0.0.1:{secondary.port}/fo",
                           reconnect_interval_ms=interval_ms, reconnect_retry_count=retries,
                           on_switch=events.append)
            s_name = conn.endpoints[1]
            acked: list[tuple[str, float]] = []
            errors: list[BaseException] = []
            halt = threading.Event()

            def writer(conn=conn, acked=acked, errors=errors, halt=halt):
                cur = conn.cursor()
                while not halt.is_set():
                    i = next(counter)
                    try:
                        cur.execute(f"insert into t values ({BASE_TS + i}, {i})")
                    except BaseException as exc:  # noqa: BLE001
                        errors.append(exc)
                        return
                    acked.append((cur.endpoint, time.monotonic()))
                    time.sleep(0.001)

            thread = threading.Thread(target=writer, daemon=True)
            thread.start()
            time.sleep(random.uniform(0.1, 0.3))
            killed = time.monotonic()
            primary.kill()
            deadline = killed + 60
            while time.monotonic() < deadline and not errors and not any(
                    where == s_name and at >= killed for where, at in acked):
                time.sleep(0.002)
            halt.set()
            thread.join(30)
            conn.close()
            if errors:
                raise RuntimeError(f"the application saw {errors[0]!r}")
            first = next(at for where, at in acked if where == s_name and at >= killed)
            visible.append(first - killed)
            detect.append(events[0].duration_s)
            attempts.append(events[0].attempts)
    finally:
        primary.kill()
        secondary.kill()
    bound = interval_ms / 1000 * retries

    def row(label, values):
        return (f"  {label:<46} p50 {percentile(values, .5) * 1000:6.0f}  p90 {percentile(values, .9) * 1000:6.0f}  "
                f"p99 {percentile(values, .99) * 1000:6.0f}  max {max(values) * 1000:6.0f} ms")

    return [f"failover time over {kills} SIGKILLs of the primary (reconnect_interval_ms {interval_ms}, "
            f"reconnect_retry_count {retries}: interval x retries = {bound * 1000:.0f} ms):",
            row("detection -> first success on the secondary", detect),
            row("SIGKILL -> next acknowledged application write", visible),
            f"  connect attempts per failover: {min(attempts)}..{max(attempts)}; application errors: 0"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--interval-ms", type=int, default=200)
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=3000, help="calls of each side per statement")
    parser.add_argument("--verbose", action="store_true", help="show the client's switch log lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(asctime)s %(message)s")
    if not args.verbose:
        logging.getLogger("tdsync.client").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="tdsync-failover-bench-") as tmp:
        for line in overhead(Path(tmp), args.pairs):
            print(line, flush=True)
        print(flush=True)
        for line in failover_times(Path(tmp), args.kills, args.interval_ms, args.retries):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
