"""Replicas and tasks in the LMDB state directory: what the CLI wants and what the supervisor did.

The CLI (``tdsync replica ...``) writes desired state; ``tdsync serve`` reads it about every second
(it watches ``revision``), runs the workers and writes back the actual status, the last error and
the workers it runs. Both share one LMDB environment with the offset store; every change is a
short write transaction, so several processes can use the directory at once.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgpack

from engine.endpoint import Endpoint
from engine.errors import UsageError
from engine.replication.offsets import release_environment, shared_environment

DEFAULT_STATE_DIR = Path("/var/lib/tdsync")
DEFAULT_NEW_DATABASE_CHECKING_INTERVAL = 1800

RUNNING, INTERRUPTED, STOPPED = "running", "interrupted", "stopped"
STATUSES = (RUNNING, INTERRUPTED, STOPPED)

# Replica ids are short common words, as taosx gives them, so an operator can say and type them.
WORDS = """
amber anchor apple arrow aspen atlas autumn badger bamboo basil beacon birch bison blossom breeze brook
cabin cactus canyon cedar cherry cinder clover cobalt comet coral cotton crane crystal cypress dahlia
delta dune eagle ember falcon fern fjord flint forest fox frost garnet geyser ginger glacier granite
grove harbor hawk hazel heron hickory holly horizon indigo iris ivory jade jasmine juniper kelp kestrel
lagoon lark laurel lemon lilac linden lotus lynx maple marble meadow mesa mint moss nectar nova oak
ocean olive onyx opal orchid osprey otter palm pebble pepper pine plum poppy prairie quartz quill raven
reed ridge river robin rose ruby saffron sage salmon sequoia shadow sierra silver sparrow spruce stone
summit swift thistle thunder tide topaz tulip tundra valley violet walnut willow wren yarrow zephyr
""".split()


@dataclass
class Replica:
    id: str
    source: str                      # endpoint text with credentials (the state dir is 0700)
    sink: str
    databases: list[str] | None      # None: every database, and new ones as they appear
    new_database_checking_interval: int = DEFAULT_NEW_DATABASE_CHECKING_INTERVAL
    watch_new_databases: bool = True
    create_databases: bool = False
    created: float = field(default_factory=time.time)

    @property
    def source_endpoint(self) -> Endpoint:
        return Endpoint.parse(self.source)

    @property
    def sink_endpoint(self) -> Endpoint:
        return Endpoint.parse(self.sink)

    @property
    def shown_source(self) -> str:
        """As status shows it: host:port, never the password."""
        return _shown(self.source_endpoint)

    @property
    def shown_sink(self) -> str:
        return _shown(self.sink_endpoint)


def _shown(endpoint: Endpoint) -> str:
    """``td1:6030`` for native endpoints, ``ws://td1:6041`` for WebSocket ones: no user, no password."""
    return endpoint.address if not endpoint.is_websocket else f"{endpoint.scheme}://{endpoint.address}"


@dataclass
class Task:
    replica: str
    database: str
    task_id: int
    desired: str = RUNNING
    status: str = STOPPED            # what the supervisor last did
    note: str = ""                   # the error that interrupted it
    updated: float = field(default_factory=time.time)


@dataclass
class WorkerInfo:
    """A worker process the supervisor runs for a task (written by the supervisor)."""

    replica: str
    database: str
    slot: int
    pid: int
    host: str
    vgroups: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    heartbeat: float = field(default_factory=time.time)
    restarts: int = 0
    last_error: str = ""


class UnknownReplica(UsageError):
    def __init__(self, replica_id: str) -> None:
        super().__init__(f"no replica named {replica_id!r} (see `tdsync replica status`)")


def default_state_dir() -> Path:
    return Path(os.environ.get("TDSYNC_STATE_DIR") or DEFAULT_STATE_DIR)


def _pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(raw: bytes):
    return msgpack.unpackb(raw, raw=False)


class StateStore:
    def __init__(self, state_dir: Path | str) -> None:
        self.path = Path(state_dir)
        self._env = shared_environment(self.path)
        self._replicas = self._env.open_db(b"replicas")
        self._tasks = self._env.open_db(b"tasks")
        self._workers = self._env.open_db(b"workers")
        self._meta = self._env.open_db(b"meta")

    def close(self) -> None:
        if self._env is not None:
            release_environment(self.path)
            self._env = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _write(self):
        return self._env.begin(write=True)

    def _bump(self, txn) -> None:
        raw = txn.get(b"revision", db=self._meta)
        txn.put(b"revision", _pack((_unpack(raw) if raw else 0) + 1), db=self._meta)

    @property
    def revision(self) -> int:
        """Changes whenever desired state changes: the supervisor reloads when it moves."""
        with self._env.begin() as txn:
            raw = txn.get(b"revision", db=self._meta)
        return _unpack(raw) if raw else 0

    # -- replicas ----------------------------------------------------------------------------
    def create_replica(self, source: str, sink: str, databases: list[str] | None, *,
                       watch_new_databases: bool = True,
                       new_database_checking_interval: int = DEFAULT_NEW_DATABASE_CHECKING_INTERVAL,
                       create_databases: bool = False) -> Replica:
        with self._write() as txn:
            taken = {key.decode() for key, _ in txn.cursor(db=self._replicas)}
            replica = Replica(_new_id(taken), source, sink, databases, new_database_checking_interval,
                              watch_new_databases and databases is None, create_databases)
            txn.put(replica.id.encode(), _pack(asdict(replica)), db=self._replicas)
            self._bump(txn)
        return replica

    def replica(self, replica_id: str) -> Replica:
        with self._env.begin() as txn:
            raw = txn.get(replica_id.encode(), db=self._replicas)
        if raw is None:
            raise UnknownReplica(replica_id)
        return Replica(**_unpack(raw))

    def replicas(self, ids: list[str] | None = None) -> list[Replica]:
        if ids:
            return [self.replica(i) for i in ids]
        with self._env.begin() as txn:
            return [Replica(**_unpack(v)) for _, v in txn.cursor(db=self._replicas)]

    def update_replica(self, replica: Replica) -> None:
        with self._write() as txn:
            txn.put(replica.id.encode(), _pack(asdict(replica)), db=self._replicas)
            self._bump(txn)

    # -- tasks -------------------------------------------------------------------------------
    def add_tasks(self, replica_id: str, databases: list[str], desired: str = RUNNING) -> list[Task]:
        """Tasks for these databases; one that exists is set to ``desired``, never duplicated."""
        self.replica(replica_id)
        out = []
        with self._write() as txn:
            for database in databases:
                key = _task_key(replica_id, database)
                raw = txn.get(key, db=self._tasks)
                if raw is None:
                    task = Task(replica_id, database, self._next_task_id(txn), desired)
                else:
                    task = Task(**_unpack(raw))
                    task.desired = desired
                task.updated = time.time()
                txn.put(key, _pack(asdict(task)), db=self._tasks)
                out.append(task)
            self._bump(txn)
        return out

    def _next_task_id(self, txn) -> int:
        raw = txn.get(b"next_task_id", db=self._meta)
        value = _unpack(raw) if raw else 1
        txn.put(b"next_task_id", _pack(value + 1), db=self._meta)
        return value

    def tasks(self, replica_id: str | None = None, databases: list[str] | None = None) -> list[Task]:
        with self._env.begin() as txn:
            prefix = f"{replica_id}\0".encode() if replica_id else b""
            cursor = txn.cursor(db=self._tasks)
            found = []
            if cursor.set_range(prefix):
                for key, value in cursor:
                    if not key.startswith(prefix):
                        break
                    task = Task(**_unpack(value))
                    if databases is None or task.database in databases:
                        found.append(task)
        return sorted(found, key=lambda t: (t.replica, t.task_id))

    def set_desired(self, replica_id: str | None, databases: list[str] | None, desired: str) -> list[Task]:
        if replica_id is not None:
            self.replica(replica_id)
        changed = []
        with self._write() as txn:
            for task in self._scoped(txn, replica_id, databases):
                task.desired = desired
                if desired == RUNNING and task.status == INTERRUPTED:
                    task.note = ""
                task.updated = time.time()
                txn.put(_task_key(task.replica, task.database), _pack(asdict(task)), db=self._tasks)
                changed.append(task)
            self._bump(txn)
        return changed

    def _scoped(self, txn, replica_id: str | None, databases: list[str] | None) -> list[Task]:
        out = []
        for _, value in txn.cursor(db=self._tasks):
            task = Task(**_unpack(value))
            if replica_id is not None and task.replica != replica_id:
                continue
            if databases and task.database not in databases:
                continue
            out.append(task)
        return out

    def set_status(self, replica_id: str, database: str, status: str, note: str = "") -> None:
        """The supervisor reports what happened (does not move ``revision``)."""
        with self._write() as txn:
            key = _task_key(replica_id, database)
            raw = txn.get(key, db=self._tasks)
            if raw is None:
                return
            task = Task(**_unpack(raw))
            if (task.status, task.note) != (status, note):
                task.status, task.note, task.updated = status, note, time.time()
                txn.put(key, _pack(asdict(task)), db=self._tasks)

    def remove_tasks(self, replica_id: str, databases: list[str] | None = None) -> list[Task]:
        """Delete tasks (and the replica when none is left); the caller checks they are stopped."""
        self.replica(replica_id)
        removed = []
        with self._write() as txn:
            for task in self._scoped(txn, replica_id, databases):
                txn.delete(_task_key(task.replica, task.database), db=self._tasks)
                removed.append(task)
            if not databases:
                txn.delete(replica_id.encode(), db=self._replicas)
            self._bump(txn)
        return removed

    # -- workers (actual state, written by the supervisor) -----------------------------------
    def put_workers(self, workers: list[WorkerInfo], host: str) -> None:
        """Replace this host's worker list."""
        with self._write() as txn:
            cursor = txn.cursor(db=self._workers)
            doomed = [key for key, value in cursor if _unpack(value)["host"] == host]
            for key in doomed:
                txn.delete(key, db=self._workers)
            for w in workers:
                txn.put(f"{w.host}\0{w.replica}\0{w.database}\0{w.slot}".encode(), _pack(asdict(w)),
                        db=self._workers)

    def workers(self, replica_id: str | None = None) -> list[WorkerInfo]:
        with self._env.begin() as txn:
            found = [WorkerInfo(**_unpack(v)) for _, v in txn.cursor(db=self._workers)]
        return [w for w in found if replica_id is None or w.replica == replica_id]


def _task_key(replica_id: str, database: str) -> bytes:
    return f"{replica_id}\0{database}".encode()


def _new_id(taken: set[str]) -> str:
    free = [w for w in WORDS if w not in taken]
    if free:
        return random.choice(free)
    for n in range(2, 10_000):
        free = [f"{w}{n}" for w in WORDS if f"{w}{n}" not in taken]
        if free:
            return random.choice(free)
    raise UsageError("no free replica id left in this state directory")


__all__ = ["StateStore", "Replica", "Task", "WorkerInfo", "UnknownReplica", "RUNNING", "INTERRUPTED", "STOPPED",
           "default_state_dir"]
