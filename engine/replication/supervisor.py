"""``tdsync serve``: the supervisor that runs one worker process per source vgroup of every running task.

Processes
---------
The supervisor is one process per host and state directory (an ``flock`` on ``serve.lock`` keeps a
second one out). For every task whose desired status is ``running`` it runs as many worker processes
as the source database has vgroups; they all join the task's consumer group (``tdsync_<replica>``),
each with its own client id, so the group gives each one vgroup — and a second host running the same
state takes its share. A worker is ``python -m engine.replication.supervisor --worker NAME`` started
with fork+exec (``subprocess``: nothing of the supervisor's LMDB environment or threads is inherited);
its specification (endpoints with credentials, batch limits, ...) comes over a socketpair, never on
the command line. The worker then asks the kernel for SIGTERM when the supervisor dies
(``PR_SET_PDEATHSIG``) and also stops when that socket reaches end-of-file, so workers never outlive
the supervisor, not even a ``kill -9`` of it; either way they flush and store their offsets first.

The main loop (after gunicorn's arbiter)
----------------------------------------
Signal handlers only record the signal; ``signal.set_wakeup_fd`` and a self-pipe wake the loop, which
otherwise wakes at least twice a second to: read heartbeats, reap exited workers, take what the
discovery thread found, reload the desired state when ``StateStore.revision`` moved, start and stop
workers to match it, kill workers whose heartbeat stopped (``heartbeat_timeout``), start workers whose
back-off has passed, write the actual state (task statuses, the worker list) and talk to systemd
(``READY=1`` once, ``WATCHDOG=1``, ``STATUS=``). SIGTERM/SIGINT: every worker gets SIGTERM, has
``stop_timeout`` seconds to flush its batch and store its offsets, then gets SIGKILL; a second
SIGTERM/SIGINT kills them at once.

Heartbeats
----------
Over the same socketpair the worker sends one JSON line at least every second while its poll loop
turns (and while it retries a peer that is down): ``{"t": "beat", "vgroups": [...]}``, where
``vgroups`` is its consumer's current assignment — that is how the vgroup-to-worker mapping reaches
``WorkerInfo.vgroups`` in the state store. A worker that stops for good reports
``{"t": "error", "type": ..., "permanent": ..., "message": ...}`` before it exits.

Failures
--------
A worker that exits on its own is restarted after a capped exponential back-off
(``restart_backoff_initial`` doubled up to ``restart_backoff_max``). Errors that need an operator
(:class:`~engine.errors.ReplicationError` — WAL retention exceeded, a write the sink refused — and
:class:`~engine.errors.UsageError`) interrupt the task at once; any other failure interrupts it after
``max_failures`` crashes within ``failure_window`` seconds. An interrupted task keeps its note until
the operator starts it again (``StateStore.set_desired(..., "running")`` clears the note).

Discovery
---------
A thread with its own event loop asks the peers, so a slow or unreachable server never stalls the
main loop: the source's vgroups of every running task (at its start, then every
``vgroup_check_interval``: vgroups added to a source database get workers), whether the database
exists on the sink (with ``create_databases`` it is created there from ``SHOW CREATE DATABASE`` on
the source), and, for replicas of "all databases", every ``new_database_checking_interval`` the
databases on both sides (new ones become tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import Config, Credentials
from engine.errors import (
    ReplicationError,
    SupervisorAlreadyRunning,
    TDengineError,
    TdsyncError,
    UsageError,
)
from engine.identifiers import SYSTEM_DATABASES, quote, validate_database_name
from engine.replication.batch import BatchLimits
from engine.replication.state import (
    INTERRUPTED,
    RUNNING,
    STOPPED,
    Replica,
    StateStore,
    Task,
    WorkerInfo,
)
from engine.replication.worker import DATA_RAW_TYPES, RetryPolicy, VgroupWorker, is_transient
from engine.systemd import SYSTEMD_ENV, Notifier

log = logging.getLogger("tdsync.supervisor")
wlog = logging.getLogger("tdsync.worker")

__all__ = ["Supervisor", "SupervisedWorker", "Discovery", "TaskProbe", "serve", "cli_serve", "worker_main",
           "PERMANENT_ERRORS"]

FD_ENV = "TDSYNC_SUPERVISOR_FD"            # the worker's end of the socketpair
PARENT_ENV = "TDSYNC_SUPERVISOR_PID"       # who the worker must not outlive
WORKER_FLAG = "--worker"
BEAT_INTERVAL = 1.0                        # s between heartbeats a worker sends
SETTLE_TIMEOUT = 5.0                       # s a new worker waits for its group to rebalance before polling
LOOP_TICK = 0.5                            # s: the main loop wakes at least this often
PUBLISH_INTERVAL = 2.0                     # s between worker-list writes when nothing else changed
RELOAD_INTERVAL = 5.0                      # s between full reloads of the desired state, revision or not
PROBE_RETRY = 5.0                          # s before asking a peer again after it could not answer
PEER_TIMEOUT = 20.0                        # s for one discovery question
MAX_NOTE = 2000
PR_SET_PDEATHSIG = 1
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (ReplicationError, UsageError)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _clip(text: str, limit: int = MAX_NOTE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with code {code}"


# =================================================================================================
# The worker side
# =================================================================================================
class _StopRetrying(Exception):
    """Raised inside a retry loop once a stop was asked for: the peer is down, waiting helps nobody."""


class _BeatingRetry(RetryPolicy):
    """The worker's retry policy that counts every attempt as a heartbeat (a worker that waits for a
    peer to come back is alive) and gives up retrying once the worker is asked to stop."""

    def __init__(self, beat: Callable[[], None], stopping: Callable[[], bool]) -> None:
        super().__init__()
        object.__setattr__(self, "_beat", beat)
        object.__setattr__(self, "_stopping", stopping)
        object.__setattr__(self, "failing", 0)     # retry loops now waiting after a failed attempt

    def delays(self):
        attempts = 0
        try:
            for delay in super().delays():
                if attempts and self._stopping():
                    raise _StopRetrying("stop requested while a peer is unreachable")
                if attempts == 1:
                    object.__setattr__(self, "failing", self.failing + 1)
                attempts += 1
                self._beat()
                yield delay
        finally:                  # the loop succeeded (the generator is closed) or gave up
            if attempts > 1:
                object.__setattr__(self, "failing", self.failing - 1)


class SupervisedWorker(VgroupWorker):
    """A :class:`VgroupWorker` that shares its consumer group with other workers.

    It keeps its consumer's current assignment (``assigned``, reported in heartbeats); after
    subscribing it waits up to ``settle_timeout`` for the group to rebalance down to its ``share``
    before the first poll; and it never writes data of a vgroup the group has moved to another
    consumer (a batch held for it is dropped: the new owner re-reads it from the stored offset).
    """

    def __init__(self, *args: Any, share: int | None = None, settle_timeout: float = SETTLE_TIMEOUT,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.share = share
        self.settle_timeout = settle_timeout
        self.assigned: set[int] = set()
        self.stop_requested = False
        self._last_refresh = 0.0

    def stop(self) -> None:
        self.stop_requested = True
        super().stop()

    async def _refresh_assignment(self) -> set[int]:
        assigned = {a.vgroup_id for a in await self.source.assignment(self.topic)}
        self._last_refresh = time.monotonic()
        for vgroup in (set(self.batches) | set(self.next_offset)) - assigned:
            batch = self.batches.pop(vgroup, None)
            self.next_offset.pop(vgroup, None)
            if batch:
                wlog.info("%s: the group moved this vgroup to another consumer; dropping %d held message(s), "
                         "its new owner reads them again from the stored offset", self._where(vgroup),
                         len(batch.messages))
                batch.clear()
        if assigned != self.assigned:
            wlog.info("%s: assigned vgroups %s", self._where(None), sorted(assigned) or "none")
        self.assigned = assigned
        return assigned

    async def _try_refresh(self) -> set[int] | None:
        try:
            return await self._refresh_assignment()
        except Exception as exc:
            if not is_transient(exc) and not isinstance(exc, TDengineError):
                raise
            return None

    async def _connect_source(self) -> None:
        await super()._connect_source()
        deadline = time.monotonic() + self.settle_timeout
        while not self._stopping.is_set():
            assigned = await self._try_refresh()
            if assigned is None or self.share is None or len(assigned) <= self.share or \
                    time.monotonic() >= deadline:
                return
            self.heartbeat()
            await asyncio.sleep(0.1)

    async def _handle(self, message) -> None:
        vgroup = message.vgroup_id
        if vgroup not in self.assigned or message.raw_type not in DATA_RAW_TYPES:
            assigned = await self._try_refresh()
            if assigned is not None and vgroup not in assigned:
                return                      # polled just before the vgroup moved; its new owner has it
        await super()._handle(message)

    async def _flush(self, batch) -> None:
        assigned = await self._try_refresh()
        if assigned is not None and batch.vgroup_id not in assigned:
            batch.clear()
            return
        await super()._flush(batch)

    async def _advance_idle(self) -> None:
        if time.monotonic() - self._last_refresh >= 1.0:
            await self._try_refresh()
        await super()._advance_idle()


class _ChildChannel:
    """The worker's end of the socketpair: JSON lines out, end-of-file in when the supervisor is gone."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, message: dict[str, Any], *, wait: bool = False) -> None:
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        try:
            if wait:
                self.sock.setblocking(True)
                self.sock.settimeout(2.0)
                self.sock.sendall(data)
            else:
                self.sock.setblocking(False)
                self.sock.send(data)        # a heartbeat that does not fit now is simply skipped
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                self.sock.setblocking(False)

    def error(self, exc: BaseException) -> None:
        self.send({"t": "error", "type": type(exc).__name__, "permanent": isinstance(exc, PERMANENT_ERRORS),
                   "message": _clip(str(exc) or type(exc).__name__)}, wait=True)


def _die_with_parent(parent: int) -> bool:
    """SIGTERM when the supervisor dies (Linux); False if it is already gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    return not parent or os.getppid() == parent


def _read_spec(sock: socket.socket, timeout: float = 30.0) -> dict[str, Any]:
    sock.settimeout(timeout)
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the supervisor closed the channel before sending the worker's specification")
        data += chunk
    sock.setblocking(False)
    return json.loads(data.split(b"\n", 1)[0])


def worker_main(argv: list[str] | None = None) -> int:
    """The worker process: ``python -m engine.replication.supervisor --worker NAME`` (started by serve only)."""
    fd = os.environ.get(FD_ENV)
    if not fd or not fd.isdigit():
        print("this is the worker entry point of `tdsync serve`; run a worker by hand with "
              "`python -m engine.replication.worker`", file=sys.stderr)
        return 2
    if not _die_with_parent(int(os.environ.get(PARENT_ENV, "0") or 0)):
        return 0
    sock = socket.socket(fileno=int(fd))
    try:
        spec = _read_spec(sock)
    except (OSError, ValueError) as exc:
        print(f"tdsync worker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=getattr(logging, str(spec.get("log_level", "info")).upper(), logging.INFO),
                        format=f"%(asctime)s %(levelname)s %(name)s[{spec['name']} pid %(process)d]: %(message)s")
    from engine.connectors.base import run

    return run(_run_worker(spec, _ChildChannel(sock)))


async def _run_worker(spec: dict[str, Any], channel: _ChildChannel) -> int:
    from engine.connectors.base import open_sink, open_source
    from engine.replication.offsets import OffsetStore

    loop = asyncio.get_running_loop()
    credentials = Credentials.from_json(spec.get("credentials") or {})
    try:
        source_ep, sink_ep = credentials.resolve(spec["source"]), credentials.resolve(spec["sink"])
        store = OffsetStore(spec["state_dir"])
    except TdsyncError as exc:
        wlog.error("%s", exc)
        channel.error(exc)
        return 1

    async def source():
        return open_source(source_ep)

    async def sink():
        return open_sink(sink_ep)

    worker: SupervisedWorker | None = None
    last = [float("-inf"), None]

    def beat() -> None:
        now = time.monotonic()
        vgroups = worker.assigned if worker is not None else set()
        if now - last[0] >= BEAT_INTERVAL or vgroups != last[1]:
            last[0], last[1] = now, set(vgroups)
            channel.send({"t": "beat", "vgroups": sorted(vgroups),
                          "rows": worker.stats.rows if worker is not None else 0})

    limits = spec.get("limits") or {}
    retry = _BeatingRetry(beat, lambda: worker.stop_requested)
    worker = SupervisedWorker(
        spec["replica"], spec["database"], source, sink, store,
        limits=BatchLimits(int(limits.get("max_rows", BatchLimits.max_rows)),
                           int(limits.get("max_bytes", BatchLimits.max_bytes)),
                           float(limits.get("max_age", BatchLimits.max_age))),
        retry=retry, client_id=spec["client_id"],
        failed_dir=Path(spec["failed_dir"]) if spec.get("failed_dir") else None, heartbeat=beat,
        share=spec.get("share"))

    def hard_exit() -> None:
        wlog.error("did not stop within %g s; exiting without a final flush", spec["stop_timeout"])
        os._exit(1)

    running = asyncio.current_task()

    def request_stop(reason: str) -> None:
        if worker.stop_requested:
            return
        worker.stop()
        loop.call_later(float(spec["stop_timeout"]), hard_exit)
        if retry.failing:         # waiting for a peer that is down: nothing can be written, do not wait
            wlog.warning("stopping (%s) while a peer is unreachable: nothing more can be written", reason)
            running.cancel()
        else:
            wlog.info("stopping (%s): flushing the batch and storing the offsets", reason)

    def on_channel() -> None:
        try:
            data = channel.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(channel.sock.fileno())
            request_stop("the supervisor is gone")

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, signal.Signals(signum).name)
    loop.add_reader(channel.sock.fileno(), on_channel)
    beat()
    try:
        await worker.run()
    except asyncio.CancelledError:
        if not worker.stop_requested:
            raise
        wlog.warning("stopped without a final flush: a peer is unreachable (%d rows written)", worker.stats.rows)
        return 0
    except _StopRetrying as exc:
        wlog.warning("stopped without a final flush: %s (%d rows written)", exc, worker.stats.rows)
        return 0
    except TdsyncError as exc:
        wlog.error("%s", exc)
        channel.error(exc)
        return 1
    except Exception as exc:
        wlog.exception("worker failed")
        channel.error(exc)
        return 1
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(channel.sock.fileno())
        store.close()
    wlog.info("stopped: %d rows written, offsets stored", worker.stats.rows)
    return 0


# =================================================================================================
# Discovery: what the peers say (a thread with its own event loop)
# =================================================================================================
@dataclass(frozen=True)
class TaskProbe:
    """What the peers said about one task's database."""

    vgroups: int | None                 # source vgroups, None when unknown
    problem: str | None = None          # needs an operator: the task is interrupted with this note
    error: str | None = None            # could not ask (peer down ...): asked again soon
    at: float = field(default_factory=time.monotonic)


_TaskKey = tuple[str, str]


class Discovery:
    """Asks the source and the sink of each replica, off the main loop; results are read by the supervisor."""

    def __init__(self, credentials: Credentials, vgroup_check_interval: float, wake: Callable[[], None]) -> None:
        self.credentials = credentials
        self.vgroup_check_interval = vgroup_check_interval
        self._wake = wake
        self._lock = threading.Lock()
        self._tasks: dict[_TaskKey, Replica] = {}
        self._watch: dict[str, tuple[Replica, frozenset[str], str]] = {}
        self._results: dict[_TaskKey, TaskProbe] = {}
        self._due: dict[_TaskKey, float] = {}
        self._list_due: dict[str, float] = {}
        self._found: list[tuple[str, list[str], str]] = []
        self._peers: dict[tuple[str, str], tuple[str, Any]] = {}
        self._event = threading.Event()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._main, name="tdsync-discovery", daemon=True)

    # -- the supervisor's side --------------------------------------------------------------------
    def start(self) -> Discovery:
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._halt.set()
        self._event.set()
        self._thread.join(timeout)

    def update(self, tasks: dict[_TaskKey, Replica], watch: dict[str, tuple[Replica, frozenset[str], str]]) -> None:
        """The running tasks to probe, and the all-database replicas to list (with their existing databases
        and the desired status for new ones)."""
        with self._lock:
            changed = set(tasks) != set(self._tasks) or set(watch) != set(self._watch)
            for key in set(self._tasks) - set(tasks):
                self._results.pop(key, None)
                self._due.pop(key, None)
            for replica_id in set(self._list_due) - set(watch):
                del self._list_due[replica_id]
            self._tasks = dict(tasks)
            self._watch = dict(watch)
        if changed:
            self._event.set()

    def request(self, key: _TaskKey) -> None:
        """Forget what is known about a task and ask again now."""
        with self._lock:
            self._results.pop(key, None)
            self._due[key] = 0.0
        self._event.set()

    def result(self, key: _TaskKey) -> TaskProbe | None:
        with self._lock:
            return self._results.get(key)

    def take_found(self) -> list[tuple[str, list[str], str]]:
        with self._lock:
            found, self._found = self._found, []
        return found

    # -- the thread -------------------------------------------------------------------------------
    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while not self._halt.is_set():
                try:
                    if loop.run_until_complete(self._step()):
                        self._wake()
                except Exception:  # noqa: BLE001 - discovery must go on; the next round asks again
                    log.exception("discovery round failed")
                self._event.wait(0.5)
                self._event.clear()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(self._close_peers(set(self._peers)))
            loop.close()

    async def _step(self) -> bool:
        now = time.monotonic()
        with self._lock:
            tasks = [(key, replica) for key, replica in self._tasks.items() if self._due.get(key, 0.0) <= now]
            watch = [(rid, entry) for rid, entry in self._watch.items() if self._list_due.get(rid, 0.0) <= now]
            wanted_peers = {(r.id, side) for r in self._tasks.values() for side in ("source", "sink")}
            wanted_peers |= {(rid, side) for rid in self._watch for side in ("source", "sink")}
        await self._close_peers(set(self._peers) - wanted_peers)
        news = False
        for replica_id, (replica, existing, desired) in watch:
            found, error = await self._list(replica, existing)
            interval = replica.new_database_checking_interval if replica.watch_new_databases else float("inf")
            with self._lock:
                self._list_due[replica_id] = time.monotonic() + (PROBE_RETRY if error else max(1.0, interval))
                if found:
                    self._found.append((replica_id, found, desired))
                    news = True
        for key, replica in tasks:
            probe = await self._probe(replica, key[1])
            with self._lock:
                if key not in self._tasks:
                    continue
                old = self._results.get(key)
                self._results[key] = probe
                self._due[key] = time.monotonic() + (PROBE_RETRY if probe.error else self.vgroup_check_interval)
            if old is None or (old.vgroups, old.problem) != (probe.vgroups, probe.problem):
                news = True
        return news

    async def _peer(self, replica: Replica, side: str):
        from engine.connectors.base import open_sink, open_source

        text = replica.source if side == "source" else replica.sink
        cached = self._peers.get((replica.id, side))
        if cached is not None and cached[0] == text:
            return cached[1]
        if cached is not None:
            await self._close_peers({(replica.id, side)})
        endpoint = self.credentials.resolve(text)
        conn = open_source(endpoint) if side == "source" else open_sink(endpoint)
        self._peers[(replica.id, side)] = (text, conn)
        return conn

    async def _close_peers(self, keys: Iterable[tuple[str, str]]) -> None:
        for key in list(keys):
            entry = self._peers.pop(key, None)
            if entry is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(entry[1].close(), 5)

    async def _query(self, replica: Replica, side: str, sql: str) -> list[tuple]:
        conn = await self._peer(replica, side)
        try:
            result = await asyncio.wait_for(conn.query(sql), PEER_TIMEOUT)
        except (TDengineError, UsageError):
            raise
        except BaseException:
            await self._close_peers({(replica.id, side)})      # reconnect next time
            raise
        return result if side == "source" else result[1]

    async def _databases(self, replica: Replica, side: str) -> set[str]:
        return {str(row[0]) for row in await self._query(replica, side, "SHOW DATABASES")}

    async def _list(self, replica: Replica, existing: frozenset[str]) -> tuple[list[str], str | None]:
        try:
            source = await self._databases(replica, "source") - SYSTEM_DATABASES
            sink = await self._databases(replica, "sink") - SYSTEM_DATABASES
        except (TimeoutError, TdsyncError, OSError) as exc:
            log.warning("replica %s: cannot list databases (%s); trying again in %g s", replica.id, exc, PROBE_RETRY)
            return [], str(exc)
        candidates = source if replica.create_databases else source & sink
        found = []
        for name in sorted(candidates - existing):
            try:
                found.append(validate_database_name(name))
            except UsageError:
                log.warning("replica %s: database %r has a name tdsync cannot replicate; skipped", replica.id, name)
        if found:
            log.info("replica %s: new database(s) %s", replica.id, ", ".join(found))
        return found, None

    async def _probe(self, replica: Replica, database: str) -> TaskProbe:
        try:
            validate_database_name(database)
            if database not in await self._databases(replica, "source"):
                return TaskProbe(None, problem=f"database {database} does not exist on the source "
                                               f"{replica.shown_source}")
            vgroups = len(await self._query(replica, "source", f"SHOW {quote(database)}.VGROUPS"))
            if database not in await self._databases(replica, "sink"):
                if not replica.create_databases:
                    return TaskProbe(vgroups, problem=(
                        f"database {database} does not exist on the sink {replica.shown_sink}: create it there "
                        f"(SHOW CREATE DATABASE {database} on the source gives its options) or let the replica "
                        f"create databases, then start the task again"))
                await self._create_on_sink(replica, database)
            return TaskProbe(vgroups or None)
        except UsageError as exc:
            return TaskProbe(None, problem=str(exc))
        except (TimeoutError, TdsyncError, OSError) as exc:
            log.warning("replica %s database %s: cannot ask the peers (%s); trying again in %g s", replica.id,
                        database, exc or type(exc).__name__, PROBE_RETRY)
            return TaskProbe(None, error=str(exc) or type(exc).__name__)

    async def _create_on_sink(self, replica: Replica, database: str) -> None:
        rows = await self._query(replica, "source", f"SHOW CREATE DATABASE {quote(database)}")
        create = str(rows[0][1])
        sql, count = re.subn(r"(?is)^\s*CREATE\s+DATABASE\s+(IF\s+NOT\s+EXISTS\s+)?",
                             "CREATE DATABASE IF NOT EXISTS ", create, count=1)
        if not count:
            raise UsageError(f"unexpected SHOW CREATE DATABASE answer from the source: {create[:200]!r}")
        sink = await self._peer(replica, "sink")
        await asyncio.wait_for(sink.execute(sql), PEER_TIMEOUT)
        log.info("replica %s: created database %s on the sink %s with the source's options", replica.id, database,
                 replica.shown_sink)


# =================================================================================================
# The supervisor
# =================================================================================================
@dataclass
class _Slot:
    """One worker position of a task; its process comes and goes."""

    replica: str
    database: str
    index: int
    proc: subprocess.Popen | None = None
    sock: socket.socket | None = None
    buffer: bytes = b""
    started_wall: float = 0.0
    beat: float = 0.0                  # monotonic time of the last heartbeat (or of the start)
    beat_wall: float = 0.0
    vgroups: list[int] = field(default_factory=list)
    spawns: int = 0
    failures: list[float] = field(default_factory=list)
    last_error: str = ""
    reported: dict[str, Any] | None = None
    next_start: float = 0.0
    stopping_since: float | None = None
    kill_reason: str | None = None
    killed: bool = False
    wanted: bool = True

    @property
    def name(self) -> str:
        return f"{self.replica}/{self.database}/{self.index}"


@dataclass
class _Run:
    """A running task: its slots, the target count, and whether it is being stopped."""

    replica: str
    database: str
    endpoints: tuple[str, str, bool]
    created: float = field(default_factory=time.monotonic)
    slots: dict[int, _Slot] = field(default_factory=dict)
    count: int | None = None
    stopping: bool = False
    final: tuple[str, str] | None = None       # status to write once every worker has exited
    reported_running: bool = False


class Supervisor:
    def __init__(self, config: Config, *, environ: dict[str, str] | None = None) -> None:
        self.config = config
        self.settings = config.supervisor
        self.node = config.node
        self.state_dir = Path(config.state_dir)
        self.notifier = Notifier(environ)
        self.store: StateStore | None = None
        self.replicas: dict[str, Replica] = {}
        self.tasks: dict[_TaskKey, Task] = {}
        self.runs: dict[_TaskKey, _Run] = {}
        self._revision = -1
        self._last_reload = 0.0
        self._last_publish = 0.0
        self._published: Any = None
        self._signals: list[int] = []
        self._stop_requested = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock_fd: int | None = None
        self.discovery = Discovery(config.credentials, self.settings.vgroup_check_interval, self.wake)
        env = dict(os.environ if environ is None else environ)
        for name in SYSTEMD_ENV:
            env.pop(name, None)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        self._child_env = env

    # -- plumbing --------------------------------------------------------------------------------
    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals.append(signum)            # handled in the loop; the wakeup fd wakes it

    def _install_signals(self) -> dict[int, Any]:
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            previous[signum] = signal.signal(signum, self._on_signal)
        previous[-1] = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        signal.set_wakeup_fd(previous.pop(-1, -1))
        for signum, handler in previous.items():
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(signum, handler)

    def _lock_state_dir(self) -> None:
        path = self.state_dir / "serve.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise SupervisorAlreadyRunning(str(self.state_dir), f"pid {holder}") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _wait(self, timeout: float) -> None:
        for key, _ in self._selector.select(max(0.0, timeout)):
            if key.data is None:
                with contextlib.suppress(OSError):
                    while os.read(self._wake_r, 4096):
                        pass
            else:
                self._read_channel(key.data)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> int:
        self.store = StateStore(self.state_dir)
        try:
            self._lock_state_dir()
        except BaseException:
            self.store.close()
            raise
        previous = self._install_signals()
        self.discovery.start()
        code = 0
        try:
            self._reload(force=True)
            self._apply()
            self._spawn_due()
            self._publish(force=True)
            self.notifier.ready(self._status_line())
            log.info("tdsync serve: node %s, state %s, %d task(s), %d worker(s) started", self.node, self.state_dir,
                     len(self.tasks), self._live_workers())
            while not self._stop_requested:
                self._wait(LOOP_TICK)
                self._handle_signals()
                if not self._stop_requested:
                    self._turn()
        except Exception:
            log.exception("the supervisor loop failed; stopping every worker")
            code = 1
        finally:
            self._shutdown()
            self._restore_signals(previous)
        return code

    def _turn(self) -> None:
        self._reap()
        self._take_found()
        self._reload()
        self._apply()
        self._murder()
        self._spawn_due()
        self._publish()
        self.notifier.watchdog()
        self.notifier.status(self._status_line())

    def _handle_signals(self) -> None:
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("%s: stopping every worker (flush and store offsets, at most %g s)",
                         signal.Signals(signum).name, self.settings.stop_timeout)
                self._stop_requested = True
            elif signum == signal.SIGHUP:
                log.info("SIGHUP: reloading the desired state")
                self._revision = -1

    # -- desired state -------------------------------------------------------------------------------
    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        revision = self.store.revision
        if not force and revision == self._revision and now - self._last_reload < RELOAD_INTERVAL:
            return
        self._revision = revision
        self._last_reload = now
        self.replicas = {r.id: r for r in self.store.replicas()}
        self.tasks = {(t.replica, t.database): t for t in self.store.tasks()}

    def _wants(self, task: Task) -> bool:
        if task.replica not in self.replicas or task.desired != RUNNING:
            return False
        return not (task.status == INTERRUPTED and task.note)

    def _set_status(self, key: _TaskKey, status: str, note: str = "") -> None:
        task = self.tasks.get(key)
        if task is None or (task.status, task.note) == (status, note):
            return
        self.store.set_status(key[0], key[1], status, note)
        task.status, task.note = status, note

    def _apply(self) -> None:
        now = time.monotonic()
        wanted = {key: task for key, task in self.tasks.items() if self._wants(task)}
        for key, run in list(self.runs.items()):
            replica = self.replicas.get(run.replica)
            if run.stopping:
                continue
            if key not in wanted:
                task = self.tasks.get(key)
                final = None if task is None else (STOPPED if task.status != INTERRUPTED else INTERRUPTED, task.note)
                log.info("task %s/%s: stopping its workers (%s)", *key,
                         "task removed" if task is None else f"desired {task.desired}")
                self._stop_run(run, final)
            elif replica is not None and run.endpoints != _endpoints(replica):
                log.info("task %s/%s: the replica's endpoints changed; restarting its workers", *key)
                self._stop_run(run, None)
        for key in wanted:
            run = self.runs.get(key)
            if run is None:
                run = self.runs[key] = _Run(key[0], key[1], _endpoints(self.replicas[key[0]]))
                self.discovery.request(key)
            if not run.stopping:
                self._size(run, now)
        for key, task in self.tasks.items():
            if key not in self.runs and key not in wanted and task.status == RUNNING:
                self._set_status(key, STOPPED, task.note)      # left "running" by a supervisor that died
        self.discovery.update({key: self.replicas[key[0]] for key, run in self.runs.items() if not run.stopping},
                              self._watched())

    def _watched(self) -> dict[str, tuple[Replica, frozenset[str], str]]:
        out = {}
        for replica in self.replicas.values():
            if replica.databases is not None:
                continue
            tasks = [t for (rid, _), t in self.tasks.items() if rid == replica.id]
            if tasks and not replica.watch_new_databases:
                continue            # its databases were listed once; later ones are not picked up
            desired = STOPPED if tasks and all(t.desired == STOPPED for t in tasks) else RUNNING
            out[replica.id] = (replica, frozenset(t.database for t in tasks), desired)
        return out

    def _take_found(self) -> None:
        for replica_id, databases, desired in self.discovery.take_found():
            if replica_id not in self.replicas:
                continue
            known = {db for (rid, db) in self.tasks if rid == replica_id}
            new = [db for db in databases if db not in known]
            if new:
                self.store.add_tasks(replica_id, new, desired)
                log.info("replica %s: added task(s) for %s (%s)", replica_id, ", ".join(new), desired)
                self._revision = -1
                self._reload()

    def _size(self, run: _Run, now: float) -> None:
        key = (run.replica, run.database)
        probe = self.discovery.result(key)
        if probe is not None:
            if probe.problem:
                self._interrupt(run, probe.problem)
                return
            if probe.vgroups:
                if run.count is not None and probe.vgroups != run.count:
                    log.info("task %s/%s: the source database now has %d vgroup(s) (was %d)", *key, probe.vgroups,
                             run.count)
                run.count = probe.vgroups
            elif run.count is None:
                run.count = 1       # the source cannot be asked now: one worker takes every vgroup meanwhile
        if run.count is None:
            return                  # waiting for the first answer (milliseconds, usually)
        for index in range(run.count):
            slot = run.slots.get(index)
            if slot is None:
                run.slots[index] = _Slot(run.replica, run.database, index, next_start=now)
            elif not slot.wanted and slot.proc is None:
                slot.wanted = True
        for index, slot in list(run.slots.items()):
            if index >= run.count and slot.wanted:
                slot.wanted = False
                if slot.proc is None:
                    del run.slots[index]
                else:
                    self._stop_slot(slot)

    # -- processes -------------------------------------------------------------------------------
    def _spawn_due(self) -> None:
        now = time.monotonic()
        for run in list(self.runs.values()):
            if run.stopping:
                continue
            started = False
            for slot in run.slots.values():
                if slot.wanted and slot.proc is None and slot.next_start <= now:
                    started |= self._spawn(run, slot)
            if started and not run.reported_running:
                run.reported_running = True
                self._set_status((run.replica, run.database), RUNNING, "")

    def _spawn(self, run: _Run, slot: _Slot) -> bool:
        replica = self.replicas[run.replica]
        batch = self.config.batch
        spec = {
            "name": slot.name, "replica": run.replica, "database": run.database, "slot": slot.index,
            "source": replica.source, "sink": replica.sink, "state_dir": str(self.state_dir),
            "client_id": f"tdsync-{run.replica}-{run.database}-{self.node}-{slot.index}",
            "limits": {"max_rows": batch.max_rows, "max_bytes": batch.max_bytes, "max_age": batch.max_age},
            "credentials": self.config.credentials.to_json(), "log_level": self.config.log_level,
            "share": -(-run.count // len([s for s in run.slots.values() if s.wanted] or [slot])),
            "stop_timeout": self.settings.stop_timeout, "failed_dir": str(self.state_dir / "failed"),
        }
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(self._child_env)
        env[FD_ENV] = str(child.fileno())
        env[PARENT_ENV] = str(os.getpid())
        try:
            proc = subprocess.Popen([sys.executable, "-m", "engine.replication.supervisor", WORKER_FLAG, slot.name],
                                    env=env, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
                                    process_group=0, close_fds=True)
        except OSError as exc:
            parent.close()
            self._failed(run, slot, f"cannot start a worker process: {exc}", permanent=False)
            return False
        finally:
            child.close()
        try:
            parent.sendall((json.dumps(spec) + "\n").encode())
        except OSError:
            pass                    # it died at once: reaped as a failure
        parent.setblocking(False)
        self._selector.register(parent, selectors.EVENT_READ, slot)
        now = time.monotonic()
        slot.proc, slot.sock, slot.buffer = proc, parent, b""
        slot.started_wall = slot.beat_wall = time.time()
        slot.beat = now
        slot.vgroups = []
        slot.reported = slot.kill_reason = None
        slot.killed = False
        slot.stopping_since = None
        slot.spawns += 1
        log.info("worker %s started (pid %d)%s", slot.name, proc.pid,
                 f", restart {slot.spawns - 1}" if slot.spawns > 1 else "")
        return True

    def _read_channel(self, slot: _Slot, drain: bool = False) -> None:
        sock = slot.sock
        if sock is None:
            return
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
                break
            slot.buffer += data
            if not drain:
                break
        *lines, slot.buffer = slot.buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            kind = message.get("t")
            if kind == "beat":
                slot.beat, slot.beat_wall = time.monotonic(), time.time()
                slot.vgroups = [int(v) for v in message.get("vgroups") or []]
            elif kind == "error":
                slot.reported = message

    def _stop_slot(self, slot: _Slot, signum: int = signal.SIGTERM) -> None:
        if slot.proc is None or slot.proc.returncode is not None:
            return
        if signum == signal.SIGTERM and slot.stopping_since is not None:
            return
        if slot.stopping_since is None:
            slot.stopping_since = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            slot.proc.send_signal(signum)

    def _stop_run(self, run: _Run, final: tuple[str, str] | None) -> None:
        run.stopping = True
        run.final = final
        for index, slot in list(run.slots.items()):
            slot.wanted = False
            if slot.proc is None:
                del run.slots[index]
            else:
                self._stop_slot(slot)
        self._finish_runs()

    def _interrupt(self, run: _Run, note: str) -> None:
        key = (run.replica, run.database)
        note = _clip(note)
        log.error("task %s/%s interrupted: %s", *key, note)
        self._set_status(key, INTERRUPTED, note)
        self._stop_run(run, None)

    def _finish_runs(self) -> None:
        for key, run in list(self.runs.items()):
            if run.stopping and not run.slots:
                del self.runs[key]
                if run.final is not None:
                    self._set_status(key, *run.final)

    def _reap(self) -> None:
        for run in list(self.runs.values()):
            for slot in list(run.slots.values()):
                if slot.proc is not None and slot.proc.poll() is not None:
                    self._exited(run, slot)
        self._finish_runs()

    def _exited(self, run: _Run, slot: _Slot) -> None:
        proc = slot.proc
        self._read_channel(slot, drain=True)
        if slot.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(slot.sock)
            slot.sock.close()
        slot.proc, slot.sock, slot.buffer, slot.vgroups = None, None, b"", []
        code = proc.returncode
        asked = slot.stopping_since is not None and not slot.kill_reason
        slot.stopping_since = None
        reported, slot.reported = slot.reported, None
        if asked or run.stopping or not slot.wanted:
            log.info("worker %s (pid %d) stopped: %s", slot.name, proc.pid,
                     "flushed and stored its offsets" if code == 0 else describe_exit(code))
            if not slot.wanted or run.stopping:
                run.slots.pop(slot.index, None)
            return
        if slot.kill_reason:
            error = slot.kill_reason
        elif reported:
            error = f"{reported.get('type', 'Error')}: {reported.get('message', '')}"
        else:
            error = f"the worker process {describe_exit(code)}"
        slot.kill_reason = None
        self._failed(run, slot, error, permanent=bool(reported and reported.get("permanent")), pid=proc.pid)

    def _failed(self, run: _Run, slot: _Slot, error: str, *, permanent: bool, pid: int | None = None) -> None:
        now = time.monotonic()
        window = self.settings.failure_window
        slot.failures = [t for t in slot.failures if now - t <= window] + [now]
        slot.last_error = _clip(error, 500)
        who = f"worker {slot.name}" + (f" (pid {pid})" if pid else "")
        if permanent:
            self._interrupt(run, f"{who}: {error}")
            return
        if len(slot.failures) >= self.settings.max_failures:
            self._interrupt(run, f"{who} failed {len(slot.failures)} times within {window:g} s; last error: {error}")
            return
        delay = self.settings.backoff(len(slot.failures))
        slot.next_start = now + delay
        log.warning("%s failed (%s); restarting in %g s (failure %d of %d allowed within %g s)", who, error, delay,
                    len(slot.failures), self.settings.max_failures, window)

    def _murder(self) -> None:
        now = time.monotonic()
        timeout = self.settings.heartbeat_timeout
        for run in self.runs.values():
            for slot in run.slots.values():
                if slot.proc is None or slot.killed:
                    continue
                if slot.stopping_since is not None:
                    if now - slot.stopping_since > self.settings.stop_timeout:
                        log.warning("worker %s (pid %d) did not stop within %g s; killing it", slot.name,
                                    slot.proc.pid, self.settings.stop_timeout)
                        slot.killed = True
                        self._stop_slot(slot, signal.SIGKILL)
                elif now - slot.beat > timeout:
                    slot.kill_reason = f"no heartbeat for {timeout:g} s (hung); killed"
                    log.error("worker %s (pid %d): %s", slot.name, slot.proc.pid, slot.kill_reason)
                    slot.killed = True
                    self._stop_slot(slot, signal.SIGKILL)

    # -- actual state ----------------------------------------------------------------------------
    def _worker_infos(self) -> list[WorkerInfo]:
        infos = []
        for run in self.runs.values():
            for slot in run.slots.values():
                if slot.proc is None:
                    continue
                infos.append(WorkerInfo(run.replica, run.database, slot.index, slot.proc.pid, self.node,
                                        list(slot.vgroups), slot.started_wall, slot.beat_wall,
                                        max(0, slot.spawns - 1), slot.last_error))
        return infos

    def _publish(self, force: bool = False) -> None:
        infos = self._worker_infos()
        signature = sorted((w.replica, w.database, w.slot, w.pid, tuple(w.vgroups), w.restarts) for w in infos)
        now = time.monotonic()
        if force or signature != self._published or now - self._last_publish >= PUBLISH_INTERVAL:
            self.store.put_workers(infos, self.node)
            self._published = signature
            self._last_publish = now

    def _live_workers(self) -> int:
        return sum(1 for run in self.runs.values() for slot in run.slots.values() if slot.proc is not None)

    def _status_line(self) -> str:
        counts = {RUNNING: 0, INTERRUPTED: 0, STOPPED: 0}
        for task in self.tasks.values():
            counts[task.status] = counts.get(task.status, 0) + 1
        return (f"{len(self.tasks)} task(s): {counts[RUNNING]} running, {counts[INTERRUPTED]} interrupted, "
                f"{counts[STOPPED]} stopped; {self._live_workers()} worker(s)")

    # -- the end ---------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        live = self._live_workers()
        self.notifier.stopping(f"stopping {live} worker(s)")
        for run in self.runs.values():
            for slot in run.slots.values():
                slot.wanted = False
                self._stop_slot(slot)
        deadline = time.monotonic() + self.settings.stop_timeout
        killed_at: float | None = None
        while self._live_workers():
            now = time.monotonic()
            if killed_at is None and now >= deadline:
                log.warning("%d worker(s) still running after %g s; killing them", self._live_workers(),
                            self.settings.stop_timeout)
                for run in self.runs.values():
                    for slot in run.slots.values():
                        self._stop_slot(slot, signal.SIGKILL)
                killed_at = now
            elif killed_at is not None and now - killed_at > 5.0:
                log.error("worker process(es) did not go away after SIGKILL; giving up on them")
                break
            self._wait(0.05)
            if killed_at is None and any(s in (signal.SIGTERM, signal.SIGINT) for s in self._signals):
                log.warning("second stop signal: killing every worker now")
                deadline = time.monotonic()
            self._signals.clear()
            for run in self.runs.values():
                for slot in list(run.slots.values()):
                    if slot.proc is not None and slot.proc.poll() is not None:
                        self._exited(run, slot)
        self.discovery.close()
        if self.store is not None:
            try:
                for key, task in self.tasks.items():      # nothing runs them any more
                    if task.status == RUNNING:
                        self._set_status(key, STOPPED, "")
                self.store.put_workers([], self.node)
            finally:
                self.store.close()
        self.runs.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        log.info("tdsync serve stopped (%d worker(s) were running)", live)


def _endpoints(replica: Replica) -> tuple[str, str, bool]:
    return (replica.source, replica.sink, replica.create_databases)


# =================================================================================================
# Entry points and reporting
# =================================================================================================
def serve(config: Config) -> int:
    return Supervisor(config).run()


def cli_serve(args: Any) -> int:
    """``tdsync serve [--config FILE] [--state-dir DIR] [--log-level L] [--check-config]``.

    Exit codes: 0 fine; 1 the configuration is invalid (the message names the file and key) or serving
    failed; 2 the configuration file cannot be read.
    """
    from dataclasses import replace

    from engine.config import load_config
    from engine.errors import ConfigError, ConfigFileUnreadable

    try:
        config = load_config(args.config, state_dir=args.state_dir)
    except ConfigFileUnreadable as exc:
        print(f"tdsync serve: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"tdsync serve: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "log_level", None):
        config = replace(config, log_level=args.log_level)
    if args.check_config:
        print(f"tdsync serve: configuration ok: {config.describe()}")
        return 0
    logging.basicConfig(level=getattr(logging, config.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return serve(config)
    except TdsyncError as exc:
        print(f"tdsync serve: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == WORKER_FLAG:
        raise SystemExit(worker_main(sys.argv[2:]))
    print("usage: tdsync serve (this module's command line is the worker entry point of tdsync serve)",
          file=sys.stderr)
    raise SystemExit(2)
