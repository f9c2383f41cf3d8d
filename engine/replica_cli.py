"""``tdsync replica``: the seed's maintenance commands (``taosx replica``), same verbs, same tables.

======================================================  ==========================================
``start -f SRC -t SINK [db...]``                        create a replica, print its id
``start -i ID [db...]``                                 add databases to a replica (never twice)
``status [id...]``                                      ``replica | task | source | sink | database | status | note``
``stop [id [db...]]`` / ``restart [id [db...]]``        no id: every replica
``diff [id [db...]]``                                   ``replica | database | ... | current | latest | diff``
``remove [id] [--force]``                               delete stopped replicas (``--force``: running ones too)
``update ID --new-database-checking-interval S``        how often new databases are looked for
======================================================  ==========================================

The CLI only writes *desired* state into the state directory
(:class:`~engine.replication.state.StateStore`); ``tdsync serve`` applies it within a second and
writes back what happened (status, the error that interrupted a task, its worker processes).
The checks ``start`` makes (both endpoints answer, every database exists on both sides) and
``diff``'s reading of the source's WAL use connect timeouts of a few seconds, so a wrong or dead
endpoint is reported at once. Every verb takes ``--json`` and ``--state-dir``.

Exit codes: 0 success, 1 failure (an endpoint, a database, an unknown replica id, a refused
removal), 2 usage (the command line is wrong). An error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.endpoint import Endpoint
from engine.errors import (
    ConnectionLost,
    ConnectorError,
    DatabaseNotFound,
    EndpointError,
    ReplicaBusy,
    ReplicaCheckFailed,
    TDengineError,
    TdsyncError,
    UsageError,
)
from engine.identifiers import SYSTEM_DATABASES, quote, topic_for, validate_database_name
from engine.tables import render

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
CONNECT_TIMEOUT = 4.0       # opening one connection
REQUEST_TIMEOUT = 8.0       # one request on it
CHECK_TIMEOUT = 10.0        # one whole exchange with an endpoint (connect + request)
STOP_WAIT = 15.0            # restart / remove --force: how long the supervisor gets to stop running tasks
                            # (a worker has the supervisor's stop_timeout, 10 s by default, to flush)
NOTE_WIDTH = 120            # the status table cuts longer notes (--json has them whole)

STATUS_COLUMNS = ("replica", "task", "source", "sink", "database", "status", "note")
DIFF_COLUMNS = ("replica", "database", "source", "sink", "vgroup_id", "current", "latest", "diff", "worker")


# --- the command line ---------------------------------------------------------------------------
def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of seconds")
    return value


def _wait_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} is not from 0 to 3600 seconds")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``tdsync replica VERB ...`` to the ``tdsync`` parser's subcommands."""
    replica = commands.add_parser(
        "replica", help="manage active-active replicas (start, status, stop, restart, diff, remove, update)",
        description="Manage replicas the local `tdsync serve` runs: the commands of `taosx replica`.")
    verbs = replica.add_subparsers(dest="replica_verb", metavar="VERB")
    verbs.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", metavar="DIR", type=Path,
                        help="the state directory (default: $TDSYNC_STATE_DIR, else /var/lib/tdsync)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    start = verbs.add_parser(
        "start", parents=[common], help="create a replica, or add databases to one",
        usage="tdsync replica start -f SOURCE -t SINK [options] [DATABASE ...]\n"
              "       tdsync replica start -i ID [--create-databases] [DATABASE ...]",
        description="Create a replica from SOURCE to SINK and print its id; with no database, every database but "
                    "information_schema, performance_schema, log and audit, and new ones that appear on both "
                    "sides. With -i, add databases to replica ID (a database it has is not added twice).")
    start.add_argument("-f", "--from", dest="source", metavar="SOURCE",
                       help="source endpoint: host:port (native), ws://host:6041, ...")
    start.add_argument("-t", "--to", dest="sink", metavar="SINK", help="sink endpoint")
    start.add_argument("-i", "--id", dest="replica_id", metavar="ID", help="an existing replica: add databases")
    start.add_argument("databases", nargs="*", metavar="DATABASE")
    start.add_argument("--new-database-checking-interval", dest="interval", type=_seconds, metavar="SECONDS",
                       help="how often to look for new databases (default 1800)")
    start.add_argument("--no-new-databases", action="store_true", help="do not pick up databases created later")
    start.add_argument("--create-databases", action="store_true",
                       help="create a database missing on the sink with the source's options instead of failing")

    status = verbs.add_parser("status", parents=[common], help="show replicas and their tasks",
                              description="replica | task | source | sink | database | status | note")
    status.add_argument("ids", nargs="*", metavar="ID")

    for name, what in (("stop", "stop"), ("restart", "restart")):
        verb = verbs.add_parser(name, parents=[common], help=f"{what} tasks (no ID: of every replica)",
                                usage=f"tdsync replica {name} [ID [DATABASE ...]] [--json] [--state-dir DIR]",
                                description=f"{what.capitalize()} every task of replica ID, or only those of the "
                                            f"databases named; with no ID, of every replica.")
        verb.add_argument("target", nargs="*", metavar="ID [DATABASE ...]")
        if name == "restart":
            verb.add_argument("--timeout", type=_wait_seconds, default=STOP_WAIT, metavar="SECONDS",
                              help=f"how long the supervisor gets to stop running tasks (default {STOP_WAIT:g})")

    diff = verbs.add_parser("diff", parents=[common], help="how far each vgroup's copy is behind the source's WAL",
                            usage="tdsync replica diff [ID [DATABASE ...]] [--json] [--state-dir DIR]",
                            description="replica | database | source | sink | vgroup_id | current | latest | diff: "
                                        "current is the offset stored for the vgroup, latest the end of the "
                                        "source's WAL; diff is WAL versions, not rows.")
    diff.add_argument("target", nargs="*", metavar="ID [DATABASE ...]")

    remove = verbs.add_parser("remove", parents=[common], help="delete stopped replicas",
                              description="Delete replica ID (no ID: every replica) with its tasks and offsets. A "
                                          "replica that is running is refused unless --force, which stops it first.")
    remove.add_argument("replica_id", nargs="?", metavar="ID")
    remove.add_argument("--force", action="store_true", help="stop running tasks and remove them")

    update = verbs.add_parser("update", parents=[common], help="change how often new databases are looked for")
    update.add_argument("replica_id", metavar="ID")
    update.add_argument("--new-database-checking-interval", dest="interval", type=_seconds, required=True,
                        metavar="SECONDS")

    replica.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run one verb; errors become one line on stderr and the exit code."""
    from engine.replication.state import UnknownReplica

    verb = args.replica_verb
    try:
        code = _VERBS[verb](args)
    except UnknownReplica as exc:        # the command line is fine; the replica is not there
        code = _fail(verb, exc, EXIT_FAILURE)
    except UsageError as exc:
        code = _fail(verb, exc, EXIT_USAGE)
    except TdsyncError as exc:
        code = _fail(verb, exc, EXIT_FAILURE)
    except BrokenPipeError:              # `tdsync replica status | head`: the reader left; so do we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + 13
    except OSError as exc:
        code = _fail(verb, exc, EXIT_FAILURE)
    except Exception as exc:  # noqa: BLE001 - lmdb errors and the like: one line, not a traceback
        if type(exc).__module__.split(".")[0] != "lmdb":
            raise
        code = _fail(verb, f"the state directory: {exc}", EXIT_FAILURE)
    _leave_if_stuck(code)
    return code


def _fail(verb: str, error: object, code: int) -> int:
    print(f"tdsync replica {verb}: {error}", file=sys.stderr)
    return code


def _warn(verb: str, text: str) -> None:
    print(f"tdsync replica {verb}: {text}", file=sys.stderr)


def _leave_if_stuck(code: int) -> None:
    """A libtaos call that timed out goes on in its thread and would hold the process at exit: leave now."""
    stuck = [t for t in threading.enumerate()
             if t is not threading.main_thread() and not t.daemon and t.name.startswith("tdsync-native")]
    if stuck:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _emit(args: argparse.Namespace, document: Any, text: str | None) -> None:
    if args.json:
        json.dump(document, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif text:
        print(text)


# --- state --------------------------------------------------------------------------------------
@contextmanager
def _state(args: argparse.Namespace, *, create: bool = False) -> Iterator[Any]:
    """The StateStore of ``--state-dir``; ``None`` when it does not exist yet and ``create`` is false."""
    from engine.replication.state import StateStore

    path = _state_path(args)
    if not create and not (path / "data.mdb").exists():
        yield None
        return
    store = StateStore(path)
    try:
        yield store
    finally:
        store.close()


def _state_path(args: argparse.Namespace) -> Path:
    """--state-dir, else $TDSYNC_STATE_DIR, else the config file's state_dir (as `tdsync serve`)."""
    from engine.config import load_config

    return Path(load_config(None, state_dir=args.state_dir).state_dir)


def _replicas(store: Any, ids: list[str] | None) -> list[Any]:
    from engine.replication.state import UnknownReplica

    if store is None:
        if ids:
            raise UnknownReplica(ids[0])
        return []
    return store.replicas(list(dict.fromkeys(ids)) if ids else None)


def _scope(store: Any, target: list[str]) -> tuple[str | None, list[str] | None, list[Any]]:
    """``[ID [DATABASE ...]]`` -> (id, databases, the replicas in scope); checks each database has a task."""
    replica_id = target[0] if target else None
    databases = _database_names(target[1:]) or None
    replicas = _replicas(store, [replica_id] if replica_id else None)
    if databases:
        have = {t.database for t in store.tasks(replica_id)}
        missing = [d for d in databases if d not in have]
        if missing:
            raise ReplicaCheckFailed(f"replica {replica_id} has no task for database "
                                     f"{', '.join(f'`{d}`' for d in missing)} (see `tdsync replica status "
                                     f"{replica_id}`)")
    return replica_id, databases, replicas


def _database_names(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        db = validate_database_name(name).lower()
        if db in SYSTEM_DATABASES:
            raise UsageError(f"`{db}` is a system database; it is not replicated")
        if db not in out:
            out.append(db)
    return out


def _task_json(task: Any) -> dict[str, Any]:
    return {"replica": task.replica, "task": task.task_id, "database": task.database, "desired": task.desired,
            "status": task.status, "note": task.note}


# --- endpoints ----------------------------------------------------------------------------------
def shown(endpoint: Endpoint) -> str:
    """As the seed shows an endpoint: ``td2:6030`` (native), ``ws://td2:6041``; never a user or password."""
    return endpoint.address if not endpoint.is_websocket else f"{endpoint.scheme}://{endpoint.address}"


def _parse_endpoint(text: str, role: str) -> Endpoint:
    try:
        return Endpoint.parse(text)
    except EndpointError as exc:
        raise EndpointError(f"the {role}: {exc}") from None


def _same_peer(a: Endpoint, b: Endpoint) -> bool:
    return (a.protocol, a.host.lower(), a.port) == (b.protocol, b.host.lower(), b.port)


def _options(endpoint: Endpoint, *, source: bool) -> dict[str, float]:
    if endpoint.is_websocket or source:
        return {"open_timeout": CONNECT_TIMEOUT, "request_timeout": REQUEST_TIMEOUT}
    return {"request_timeout": REQUEST_TIMEOUT}            # NativeSink: connect happens within a request


async def _guarded(where: str, awaitable: Awaitable[Any], what: str) -> Any:
    """``awaitable`` within CHECK_TIMEOUT; connection trouble as one sentence naming ``where``."""
    try:
        return await asyncio.wait_for(awaitable, CHECK_TIMEOUT)
    except TimeoutError:
        raise ReplicaCheckFailed(f"{where} did not answer {what} within {CHECK_TIMEOUT:g} s") from None
    except ConnectionLost as exc:
        raise ReplicaCheckFailed(f"{where} is unreachable: {exc.reason}") from None
    except ConnectorError as exc:
        raise ReplicaCheckFailed(f"{where}: {exc}") from None


class _Peer:
    """SQL on one endpoint with short timeouts; errors name it as the seed does (``td2:6030``)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.where = shown(endpoint)
        self._conn: Any = None

    async def sql(self, statement: str, *, server_errors: bool = True) -> list[tuple]:
        """Rows of ``statement``; a server's refusal raises ReplicaCheckFailed (TDengineError if not
        ``server_errors``)."""
        from engine.connectors.base import open_sink

        if self._conn is None:
            self._conn = open_sink(self.endpoint, **_options(self.endpoint, source=False))
        try:
            return (await _guarded(self.where, self._conn.query(statement), statement.split(" ")[0]))[1]
        except TDengineError as exc:
            if not server_errors:
                raise
            raise ReplicaCheckFailed(f"{self.where} refused {_short(statement)}: {exc}") from None

    async def databases(self) -> set[str]:
        return {str(row[0]).lower() for row in await self.sql("SHOW DATABASES")} - SYSTEM_DATABASES

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        await _quietly_close(conn)


async def _quietly_close(conn: Any) -> None:
    if conn is None:
        return
    try:
        await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT)
    except Exception:  # noqa: BLE001 - a broken connection may fail to close; nothing more to do
        pass


def _short(statement: str, limit: int = 60) -> str:
    return statement if len(statement) <= limit else statement[:limit - 3] + "..."


def _gathered(results: list[Any]) -> list[Any]:
    """Results of ``gather(..., return_exceptions=True)``; failures raised together as one line."""
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if not isinstance(error, Exception):
            raise error
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ReplicaCheckFailed("; ".join(str(e) for e in errors))
    return results


# --- start --------------------------------------------------------------------------------------
@dataclass
class _Plan:
    databases: list[str]
    created: list[str] = field(default_factory=list)     # created on the sink (--create-databases)
    skipped: list[str] = field(default_factory=list)     # only on the source, not replicated


_CREATE_DATABASE = re.compile(r"\s*CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?", re.IGNORECASE)


async def _check(source_ep: Endpoint, sink_ep: Endpoint, wanted: list[str] | None, create: bool) -> _Plan:
    """Both endpoints answer; every wanted database is on both sides (created on the sink if ``create``)."""
    source, sink = _Peer(source_ep), _Peer(sink_ep)
    try:
        on_source, on_sink = _gathered(await asyncio.gather(source.databases(), sink.databases(),
                                                            return_exceptions=True))
        if wanted is not None:
            missing = [DatabaseNotFound(d, source.where) for d in wanted if d not in on_source]
            absent = [d for d in wanted if d not in on_sink]
            if not create:
                missing += [DatabaseNotFound(d, sink.where) for d in absent]
            if missing:
                raise missing[0] if len(missing) == 1 else ReplicaCheckFailed("; ".join(map(str, missing)))
            plan = _Plan(list(wanted))
        elif create:
            plan = _Plan(sorted(on_source))
            absent = sorted(on_source - on_sink)
        else:
            plan = _Plan(sorted(on_source & on_sink), skipped=sorted(on_source - on_sink))
            absent = []
        for database in absent:
            rows = await source.sql(f"SHOW CREATE DATABASE {quote(database)}")
            if not rows or len(rows[0]) < 2 or not _CREATE_DATABASE.match(str(rows[0][1])):
                raise ReplicaCheckFailed(f"{source.where} gave no CREATE DATABASE statement for `{database}`")
            statement = _CREATE_DATABASE.sub("CREATE DATABASE IF NOT EXISTS ", str(rows[0][1]), count=1)
            try:
                await sink.sql(statement, server_errors=False)
            except TDengineError as exc:
                raise ReplicaCheckFailed(f"cannot create database `{database}` on {sink.where} with the "
                                         f"options of {source.where}: {exc}") from None
            plan.created.append(database)
        return plan
    finally:
        await asyncio.gather(source.close(), sink.close())


def _start(args: argparse.Namespace) -> int:
    from engine.connectors.base import run
    from engine.replication.state import DEFAULT_NEW_DATABASE_CHECKING_INTERVAL, RUNNING

    if args.replica_id is not None:
        if args.source or args.sink or args.no_new_databases or args.interval is not None:
            raise UsageError("with -i ID only databases and --create-databases may be given "
                             "(change the interval with `tdsync replica update`)")
        return _start_existing(args)
    if not args.source or not args.sink:
        raise UsageError("give the source and the sink: start -f SOURCE -t SINK [DATABASE ...], "
                         "or add databases to a replica: start -i ID DATABASE ...")
    source_ep, sink_ep = _parse_endpoint(args.source, "source (-f)"), _parse_endpoint(args.sink, "sink (-t)")
    if _same_peer(source_ep, sink_ep):
        raise UsageError(f"the source and the sink are the same endpoint ({shown(source_ep)})")
    wanted = _database_names(args.databases) or None
    with _state(args) as store:                 # fail before any network check; the directory is made below
        _refuse_same_pair(store, source_ep, sink_ep)
    plan = run(_check(source_ep, sink_ep, wanted, args.create_databases))
    if wanted is None and args.no_new_databases and not plan.databases:
        raise ReplicaCheckFailed(f"no database exists on both {shown(source_ep)} and {shown(sink_ep)}: "
                                 f"nothing to replicate (name databases, or use --create-databases)")
    with _state(args, create=True) as store:
        _refuse_same_pair(store, source_ep, sink_ep)
        replica = store.create_replica(
            args.source.strip(), args.sink.strip(), wanted, watch_new_databases=not args.no_new_databases,
            new_database_checking_interval=args.interval or DEFAULT_NEW_DATABASE_CHECKING_INTERVAL,
            create_databases=args.create_databases)
        tasks = store.add_tasks(replica.id, plan.databases, RUNNING) if plan.databases else []
    if plan.skipped:
        _warn("start", f"not replicated (not on {shown(sink_ep)}): {', '.join(plan.skipped)}; "
                       f"add them with --create-databases, or create them there")
    document = {
        "replica": replica.id, "source": replica.shown_source, "sink": replica.shown_sink,
        "databases": replica.databases, "watch_new_databases": replica.watch_new_databases,
        "new_database_checking_interval": replica.new_database_checking_interval,
        "tasks": [{**_task_json(t), "added": True} for t in tasks],
        "created_databases": plan.created, "skipped_databases": plan.skipped,
    }
    _emit(args, document, replica.id)
    return EXIT_OK


def _refuse_same_pair(store: Any, source_ep: Endpoint, sink_ep: Endpoint) -> None:
    for other in store.replicas() if store is not None else []:
        if _same_peer(other.source_endpoint, source_ep) and _same_peer(other.sink_endpoint, sink_ep):
            raise TdsyncError(f"replica {other.id} already replicates {shown(source_ep)} to {shown(sink_ep)}; "
                              f"add databases to it with `tdsync replica start -i {other.id} DATABASE ...`")


def _start_existing(args: argparse.Namespace) -> int:
    from engine.connectors.base import run
    from engine.replication.state import RUNNING, UnknownReplica

    wanted = _database_names(args.databases)
    with _state(args) as store:
        if store is None:
            raise UnknownReplica(args.replica_id)
        replica = store.replica(args.replica_id)
        before = {t.database for t in store.tasks(replica.id)}
        created: list[str] = []
        if wanted:
            new = [d for d in wanted if d not in before]
            if new:
                plan = run(_check(replica.source_endpoint, replica.sink_endpoint, new,
                                  args.create_databases or replica.create_databases))
                created = plan.created
            if replica.databases is not None and any(d not in replica.databases for d in wanted):
                replica.databases = [*replica.databases, *(d for d in wanted if d not in replica.databases)]
                store.update_replica(replica)
            tasks = store.add_tasks(replica.id, wanted, RUNNING)
        else:                                           # start -i ID: start every task it has
            tasks = store.set_desired(replica.id, None, RUNNING)
    document = {
        "replica": replica.id, "source": replica.shown_source, "sink": replica.shown_sink,
        "databases": replica.databases, "watch_new_databases": replica.watch_new_databases,
        "new_database_checking_interval": replica.new_database_checking_interval,
        "tasks": [{**_task_json(t), "added": t.database not in before} for t in tasks],
        "created_databases": created, "skipped_databases": [],
    }
    _emit(args, document, replica.id)
    return EXIT_OK


# --- status -------------------------------------------------------------------------------------
def _pending(task: Any) -> str | None:
    from engine.replication.state import RUNNING, STOPPED

    if task.desired == RUNNING and task.status == STOPPED:
        return "starting"
    if task.desired == STOPPED and task.status == RUNNING:
        return "stopping"
    return None


def _local_hosts() -> set[str]:
    names = {"", "localhost", "127.0.0.1", "::1", platform.node()}
    try:
        names.add(socket.gethostname())
    except OSError:
        pass
    return {n.lower() for n in names}


WORKER_COMMAND = "engine.replication.supervisor"     # in a worker's command line (``serve --node`` renames hosts)


def _sample_workers(workers: list[Any], interval: float = 0.2) -> dict[int, dict[str, Any]]:
    """pid -> {rss, cpu_percent, cpu_seconds, ...} of this host's live worker processes (psutil).

    A worker is on this host when its host is this host's name, or when its pid here is a tdsync
    worker (a supervisor started with ``--node NAME``)."""
    import psutil

    local = _local_hosts()
    processes: dict[int, Any] = {}
    for worker in workers:
        if worker.pid in processes:
            continue
        try:
            process = psutil.Process(worker.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if str(worker.host).lower() not in local and \
                    not any(WORKER_COMMAND in part for part in process.cmdline()):
                continue
            process.cpu_percent(None)                   # starts the measuring interval
            processes[worker.pid] = process
        except (psutil.Error, ValueError):
            continue
    if processes:
        time.sleep(interval)
    sampled: dict[int, dict[str, Any]] = {}
    for pid, process in processes.items():
        try:
            with process.oneshot():
                times = process.cpu_times()
                sampled[pid] = {"rss": process.memory_info().rss, "cpu_percent": round(process.cpu_percent(None), 1),
                                "cpu_seconds": round(times.user + times.system, 2),
                                "threads": process.num_threads(), "process_started": process.create_time()}
        except psutil.Error:
            continue
    return sampled


def _worker_json(worker: Any, sampled: dict[int, dict[str, Any]]) -> dict[str, Any]:
    measured = sampled.get(worker.pid)
    local = measured is not None or str(worker.host).lower() in _local_hosts()
    return {
        "pid": worker.pid, "host": worker.host, "slot": worker.slot, "vgroups": list(worker.vgroups),
        "alive": (measured is not None) if local else None,
        "rss": measured["rss"] if measured else None,
        "cpu_percent": measured["cpu_percent"] if measured else None,
        "cpu_seconds": measured["cpu_seconds"] if measured else None,
        "threads": measured["threads"] if measured else None,
        "started": worker.started, "heartbeat": worker.heartbeat, "restarts": worker.restarts,
        "last_error": worker.last_error,
    }


def _replica_json(replica: Any) -> dict[str, Any]:
    return {"replica": replica.id, "source": replica.shown_source, "sink": replica.shown_sink,
            "databases": replica.databases, "watch_new_databases": replica.watch_new_databases,
            "new_database_checking_interval": replica.new_database_checking_interval,
            "create_databases": replica.create_databases, "created": replica.created}


def _note_cell(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= NOTE_WIDTH else text[:NOTE_WIDTH - 1] + "…"


def _status(args: argparse.Namespace) -> int:
    with _state(args) as store:
        replicas = _replicas(store, args.ids)
        tasks = {r.id: store.tasks(r.id) for r in replicas}
        workers = store.workers() if (replicas and args.json) else []
    sampled = _sample_workers(workers) if workers else {}
    rows, documents = [], []
    for replica in replicas:
        if not tasks[replica.id]:
            note = (f"no database yet; new ones are looked for every {replica.new_database_checking_interval} s"
                    if replica.watch_new_databases else "no database")
            rows.append([replica.id, "", replica.shown_source, replica.shown_sink, "", "", note])
        for task in tasks[replica.id]:
            pending = _pending(task)
            rows.append([replica.id, task.task_id, replica.shown_source, replica.shown_sink, task.database,
                         task.status, _note_cell(task.note) if task.note else pending or ""])
            mine = [w for w in workers if w.replica == replica.id and w.database == task.database]
            documents.append({**_task_json(task), "source": replica.shown_source, "sink": replica.shown_sink,
                              "pending": pending, "updated": task.updated,
                              "workers": [_worker_json(w, sampled) for w in sorted(mine, key=lambda w: w.slot)]})
    _emit(args, {"replicas": [_replica_json(r) for r in replicas], "tasks": documents},
          render(STATUS_COLUMNS, rows))
    return EXIT_OK


# --- stop / restart -----------------------------------------------------------------------------
def _stop(args: argparse.Namespace) -> int:
    from engine.replication.state import STOPPED

    with _state(args) as store:
        replica_id, databases, replicas = _scope(store, args.target)
        changed = store.set_desired(replica_id, databases, STOPPED) if replicas else []
    lines = [f"stopping {t.replica} {t.database} (task {t.task_id})" if t.status != STOPPED
             else f"{t.replica} {t.database} (task {t.task_id}) is stopped" for t in changed]
    _emit(args, {"tasks": [_task_json(t) for t in changed]}, "\n".join(lines) or "no task to stop")
    return EXIT_OK


def _wait_stopped(store: Any, keys: set[tuple[str, str]], timeout: float) -> set[tuple[str, str]]:
    """Wait until none of these (replica, database) tasks is running; the ones still running."""
    from engine.replication.state import RUNNING

    deadline = time.monotonic() + timeout
    while True:
        running = {(t.replica, t.database) for t in store.tasks() if t.status == RUNNING} & keys
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.1)


def _restart(args: argparse.Namespace) -> int:
    from engine.replication.state import RUNNING, STOPPED

    late: set[tuple[str, str]] = set()
    with _state(args) as store:
        replica_id, databases, replicas = _scope(store, args.target)
        if not replicas:
            _emit(args, {"tasks": []}, "no task to restart")
            return EXIT_OK
        scoped = store.tasks(replica_id, databases)
        running = {(t.replica, t.database) for t in scoped if t.status == RUNNING}
        if running:           # the supervisor stops them, then starts them again
            store.set_desired(replica_id, databases, STOPPED)
            late = _wait_stopped(store, running, args.timeout)
        changed = store.set_desired(replica_id, databases, RUNNING)
    lines = [f"restarting {t.replica} {t.database} (task {t.task_id})" for t in changed
             if (t.replica, t.database) not in late]
    _emit(args, {"tasks": [{**_task_json(t), "restarted": (t.replica, t.database) not in late} for t in changed]},
          "\n".join(lines) or ("" if late else "no task to restart"))
    if late:
        names = ", ".join(f"{r} {d}" for r, d in sorted(late))
        _warn("restart", f"the supervisor did not stop {names} within {args.timeout:g} s, so it was not restarted "
                         f"(is `tdsync serve` running?); it stays desired running")
        return EXIT_FAILURE
    return EXIT_OK


# --- diff ---------------------------------------------------------------------------------------
async def _wal_end(endpoint: Endpoint, database: str) -> list[Any]:
    """The source's WAL range per vgroup of ``database``, read by a throwaway consumer group (the
    replica's own group is not joined, so its consumers are not rebalanced)."""
    from engine.connectors.base import open_source
    from engine.error_codes import MND_DB_NOT_EXIST

    peer = _Peer(endpoint)
    topic = topic_for(database)
    group = f"tdsync_diff_{secrets.token_hex(4)}"
    consumer: Any = None
    try:
        try:       # the statement the workers run: the topic exists once a task has started
            await peer.sql(f"CREATE TOPIC IF NOT EXISTS {quote(topic)} WITH META AS DATABASE {quote(database)}",
                           server_errors=False)
        except TDengineError as exc:
            if exc.code == MND_DB_NOT_EXIST:
                raise DatabaseNotFound(database, peer.where) from None
            raise ReplicaCheckFailed(f"{peer.where} refused the topic {topic}: {exc}") from None
        consumer = open_source(endpoint, **_options(endpoint, source=True))

        async def assignment() -> list[Any]:
            await consumer.subscribe(topic, group, f"tdsync-diff-{os.getpid()}",
                                     {"auto.offset.reset": "latest"})
            return await consumer.assignment(topic)

        try:
            return await _guarded(peer.where, assignment(), f"a subscription to {topic}")
        except TDengineError as exc:
            raise ReplicaCheckFailed(f"{peer.where} refused a subscription to {topic}: {exc}") from None
    finally:
        await _quietly_close(consumer)
        if consumer is not None:
            await _drop_throwaway_group(peer, group, topic)
        await peer.close()


async def _drop_throwaway_group(peer: _Peer, group: str, topic: str) -> None:
    """Best effort: the server may not have seen the consumer leave yet (MND_CGROUP_USED): try for 2 s."""
    from engine.error_codes import MND_CGROUP_USED

    for _attempt in range(10):
        try:
            await peer.sql(f"DROP CONSUMER GROUP IF EXISTS {group} ON {topic}", server_errors=False)
            return
        except TDengineError as exc:
            if exc.code != MND_CGROUP_USED:
                return
        except Exception:  # noqa: BLE001 - an idle empty group costs nothing; never fail diff for it
            return
        await asyncio.sleep(0.2)


async def _wal_ends(jobs: list[tuple[Endpoint, str]]) -> list[Any]:
    return await asyncio.gather(*(_wal_end(ep, db) for ep, db in jobs), return_exceptions=True)


def _diff(args: argparse.Namespace) -> int:
    from engine.connectors.base import run
    from engine.replication.offsets import OffsetStore

    with _state(args) as store:
        replica_id, databases, replicas = _scope(store, args.target)
        tasks = [(r, t) for r in replicas for t in store.tasks(r.id, databases)]
        workers = store.workers() if tasks else []
        stored: dict[tuple[str, str, int], int] = {}
        if tasks:
            with OffsetStore(_state_path(args)) as offsets:
                for replica in replicas:
                    stored.update({(o.replica, o.database, o.vgroup): o.offset for o in offsets.all(replica.id)})
    holders = {(w.replica, w.database, v): w for w in workers for v in w.vgroups}
    results = run(_wal_ends([(r.source_endpoint, t.database) for r, t in tasks])) if tasks else []
    rows, documents, errors = [], [], []
    for (replica, task), result in zip(tasks, results):
        if isinstance(result, BaseException):
            if not isinstance(result, TdsyncError):
                raise result
            errors.append({"replica": replica.id, "database": task.database, "error": str(result)})
            continue
        for assigned in sorted(result, key=lambda a: a.vgroup_id):
            current = stored.get((replica.id, task.database, assigned.vgroup_id))
            latest = max(assigned.end, 0)
            behind = max(0, latest - (current if current is not None else max(assigned.begin, 0)))
            holder = holders.get((replica.id, task.database, assigned.vgroup_id))
            rows.append([replica.id, task.database, replica.shown_source, replica.shown_sink, assigned.vgroup_id,
                         "-" if current is None else current, latest, behind, holder.pid if holder else ""])
            documents.append({"replica": replica.id, "database": task.database, "source": replica.shown_source,
                              "sink": replica.shown_sink, "vgroup_id": assigned.vgroup_id, "current": current,
                              "latest": latest, "diff": behind, "wal_begin": assigned.begin,
                              "worker_pid": holder.pid if holder else None,
                              "worker_host": holder.host if holder else None})
    _emit(args, {"vgroups": documents, "errors": errors}, render(DIFF_COLUMNS, rows))
    for error in errors:
        _warn("diff", f"replica {error['replica']} database {error['database']}: {error['error']}")
    return EXIT_FAILURE if errors else EXIT_OK


# --- remove / update ----------------------------------------------------------------------------
async def _drop_groups(endpoint: Endpoint, group: str, databases: list[str]) -> list[str]:
    """Drop the replica's consumer group on each topic; what could not be dropped, as sentences."""
    peer = _Peer(endpoint)
    problems = []
    try:
        for database in databases:
            try:
                await peer.sql(f"DROP CONSUMER GROUP IF EXISTS {group} ON {topic_for(database)}",
                               server_errors=False)
            except TDengineError as exc:
                if "not exist" not in exc.message.lower():     # no topic (never started): nothing to drop
                    problems.append(f"cannot drop consumer group {group} on {peer.where}: {exc}")
            except TdsyncError as exc:
                problems.append(f"cannot drop consumer group {group}: {exc}")
                break
    finally:
        await peer.close()
    return problems


def _remove(args: argparse.Namespace) -> int:
    from engine.connectors.base import run
    from engine.replication.offsets import OffsetStore
    from engine.replication.state import RUNNING, STOPPED

    removed: list[tuple[Any, list[Any]]] = []
    with _state(args) as store:
        replicas = _replicas(store, [args.replica_id] if args.replica_id else None)
        scoped = {r.id: store.tasks(r.id) for r in replicas}
        busy = [t for tasks in scoped.values() for t in tasks if t.desired == RUNNING]
        if busy and not args.force:
            by_replica: dict[str, list[str]] = {}
            for t in busy:
                by_replica.setdefault(t.replica, []).append(t.database)
            first = next(iter(by_replica))
            raise ReplicaBusy("; ".join(f"replica {r} is running ({', '.join(dbs)})" for r, dbs in by_replica.items())
                              + f": stop it first (`tdsync replica stop {args.replica_id or first}`), "
                                f"or remove it with --force")
        for replica in replicas:
            if any(t.desired == RUNNING for t in scoped[replica.id]):
                store.set_desired(replica.id, None, STOPPED)
        running = {(t.replica, t.database) for tasks in scoped.values() for t in tasks if t.status == RUNNING}
        if running:          # give the supervisor a moment to stop the workers before their tasks vanish
            _wait_stopped(store, running, STOP_WAIT if args.force else 2.0)
        for replica in replicas:
            removed.append((replica, store.remove_tasks(replica.id)))
        if replicas:
            with OffsetStore(_state_path(args)) as offsets:
                for replica in replicas:
                    offsets.delete(replica.id)
    problems: list[str] = []
    for replica, tasks in removed:
        if tasks:
            try:
                problems += run(_drop_groups(replica.source_endpoint, f"tdsync_{replica.id}",
                                             [t.database for t in tasks]))
            except TdsyncError as exc:
                problems.append(str(exc))
    lines = [f"removed replica {r.id}" + (f" ({len(ts)} task{'s' if len(ts) != 1 else ''}: "
                                          f"{', '.join(t.database for t in ts)})" if ts else "")
             for r, ts in removed]
    _emit(args, {"removed": [{**_replica_json(r), "tasks": [_task_json(t) for t in ts]} for r, ts in removed],
                 "warnings": problems}, "\n".join(lines) or "no replica to remove")
    for problem in problems:
        _warn("remove", problem)
    return EXIT_OK


def _update(args: argparse.Namespace) -> int:
    from engine.replication.state import UnknownReplica

    with _state(args) as store:
        if store is None:
            raise UnknownReplica(args.replica_id)
        replica = store.replica(args.replica_id)
        replica.new_database_checking_interval = args.interval
        store.update_replica(replica)
    text = f"replica {replica.id}: new databases are looked for every {args.interval} s"
    if not replica.watch_new_databases:
        text += " (this replica does not pick up new databases: it was started with databases or --no-new-databases)"
    _emit(args, _replica_json(replica), text)
    return EXIT_OK


_VERBS = {"start": _start, "status": _status, "stop": _stop, "restart": _restart, "diff": _diff,
          "remove": _remove, "update": _update}
