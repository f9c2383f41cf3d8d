"""The failover connection: DB-API 2.0 style, over ``taosws`` or ``taos``, moving between nodes by itself.

Every call (a cursor's ``execute``, a statement's ``bind``/``execute``, ...) runs on the current
node. When it fails because the connection is lost (:func:`~engine.client.drivers.is_connection_lost`;
a SQL error never counts), the connection

1. reconnects to the same node up to ``reconnect_retry_count`` times, waiting
   ``reconnect_interval_ms`` before each try, re-running the failed call on the new connection;
2. then goes to the next node (the secondary), trying at once and then up to
   ``reconnect_retry_count`` times in all with the same wait between tries (and so on round the
   list when it has more than two nodes);
3. returns the call's result from the node that ran it, or, when every node failed, raises
   :class:`~engine.errors.ConnectionUnavailable` naming each endpoint and its last error.

A switch away from a dead node (connection refused or reset) takes ``interval × retries`` plus
the connect attempts (a few ms each); a hung node (accepts TCP, answers nothing) adds taosws'
``read_timeout`` for the call in flight and the connect check's ``conn_timeout`` per try (see
:mod:`engine.client.drivers`; both can be set in the DSN). Calls on one connection are serialised
(it may be shared between threads); a recovery holds the others back until it ends. The first
connect follows steps 2-3 from the primary (a primary that is down at start-up is not fatal);
so does the next call after every node had failed. ``USE db`` is remembered and every new
connection opens in that database. With ``failback_interval_s`` set, a thread watches the primary
while the connection is elsewhere and the first call after it has been healthy that long moves
back. Every switch is logged (logger ``tdsync.client``, WARNING for failover, INFO for failback)
and given to ``on_switch(event)`` as a :class:`SwitchEvent`; :attr:`Connection.endpoint` is
where the connection is now, :attr:`Cursor.endpoint` where a cursor's last statement ran.

A call that was in flight when the connection dropped may or may not have been applied on the old
node; it is run again on the new one (at-least-once). TDengine overwrites a row with the same
timestamp, so repeated inserts of the same rows are harmless; ``now``-stamped inserts are not
idempotent — give explicit timestamps where that matters.

Results are read completely at ``execute`` time (so a switch never leaves a half-read result
behind); page very large results with ``LIMIT``/``OFFSET``. Values are the wrapped connector's
(``taosws`` gives timestamps as text, taospy as ``datetime``).
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from engine.client.drivers import driver_for, field_description, is_connection_lost
from engine.client.dsn import ClientSettings
from engine.client.failback import FailbackWatch
from engine.client.sqltext import bind_parameters, classify
from engine.client.statement import FailoverStatement
from engine.errors import ClientClosed, ClientError, ClientUsageError, ConnectionUnavailable

log = logging.getLogger("tdsync.client")

FAILOVER, FAILBACK, STARTUP = "failover", "failback", "startup"
PROBE_TIMEOUT_S = 2.0
_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")


@dataclass(frozen=True)
class SwitchEvent:
    """One move of a connection to another node."""

    kind: str                 # "failover", "failback", or "startup" (primary unavailable at connect)
    source: str | None        # redacted endpoint it left (the primary for "startup")
    target: str               # redacted endpoint it uses now
    reason: str               # why: the error that ended the old connection, or the primary's health
    duration_s: float         # from the failure (or the failback decision) to the first success on target
    attempts: int             # connect attempts made
    at: float                 # time.time() of the switch

    def __str__(self) -> str:
        return (f"{self.kind} from {self.source} to {self.target} after {self.duration_s:.3f} s "
                f"({self.attempts} attempt{'s' if self.attempts != 1 else ''}): {self.reason}")


class Connection:
    """A connection that fails over between nodes; build it with :func:`engine.client.connect`."""

    def __init__(self, settings: ClientSettings, *, on_switch: Callable[[SwitchEvent], Any] | None = None,
                 driver: Any = None) -> None:
        self.settings = settings
        self._driver = driver if driver is not None else driver_for(settings.protocol)
        self._nodes = settings.nodes
        self._names = [str(node) for node in settings.nodes]
        self._options = dict(settings.connector_options)
        self._secrets = {node.password for node in self._nodes if len(node.password) >= 4}
        self.on_switch = on_switch
        self._lock = threading.RLock()
        self._closing = threading.Event()       # set by close(); recovery waits on it
        self._closed = False
        self._raw: Any = None
        self._index = 0
        self._connected_once = False
        self._database = settings.database
        self._lost: str | None = None            # auto_reconnect off and the connection dropped: why
        self._watch: FailbackWatch | None = None
        self.switches: collections.deque[SwitchEvent] = collections.deque(maxlen=100)
        self.switch_count = 0
        log.debug("connecting: %s", settings.describe())
        with self._lock:
            self._recover(None, (), None, initial=True)

    # -- where it is -------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The node in use (redacted, e.g. ``ws://root@td2:6041``)."""
        return self._names[self._index]

    @property
    def endpoints(self) -> list[str]:
        return list(self._names)

    @property
    def primary(self) -> str:
        return self._names[0]

    @property
    def on_primary(self) -> bool:
        return self._index == 0

    @property
    def database(self) -> str | None:
        """The database of the session (from the DSN or the last ``USE``)."""
        return self._database

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def raw(self) -> Any:
        """The wrapped connector's connection now in use (``None`` between nodes); it changes on a switch."""
        return self._raw

    # -- DB-API ------------------------------------------------------------------------------
    def cursor(self) -> Cursor:
        self._check_open()
        return Cursor(self)

    def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> int:
        """Run one statement; the affected rows (as ``taosws``/``taos`` ``Connection.execute``)."""
        cursor = Cursor(self)
        return cursor.execute(sql, parameters)

    def query(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        """Run one statement and return the cursor holding its rows (iterate it, or ``fetchall()``)."""
        cursor = Cursor(self)
        cursor.execute(sql, parameters)
        return cursor

    def schemaless_insert(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped connector's ``schemaless_insert`` (same arguments), re-run on the new node after a switch."""
        return self._call(_schemaless, args, kwargs)[0]

    def commit(self) -> None:
        """TDengine has no transactions; present for DB-API."""

    def rollback(self) -> None:
        """TDengine has no transactions; present for DB-API."""

    def close(self) -> None:
        """Close the connection (and stop watching the primary). A recovery under way stops at its next wait."""
        self._closed = True
        self._closing.set()
        with self._lock:
            if self._watch is not None:
                self._watch.stop()
                self._watch = None
            raw, self._raw = self._raw, None
            if raw is not None:
                self._driver.close(raw)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.endpoint
        return f"<engine.client.Connection {state} of {self.endpoints}>"

    # -- parameter binding (the wrapped connector's statement API) ---------------------------
    def statement(self, *args: Any, **kwargs: Any) -> FailoverStatement:
        """``taosws`` ``Connection.statement()`` / taospy ``statement(sql)``, surviving a switch."""
        return self._statement("statement", args, kwargs)

    def stmt2_statement(self, *args: Any, **kwargs: Any) -> FailoverStatement:
        """``taosws`` ``Connection.stmt2_statement()``, surviving a switch."""
        return self._statement("stmt2_statement", args, kwargs)

    def statement2(self, *args: Any, **kwargs: Any) -> FailoverStatement:
        """taospy ``statement2(sql, option)``, surviving a switch."""
        return self._statement("statement2", args, kwargs)

    def _statement(self, factory: str, args: tuple, kwargs: dict) -> FailoverStatement:
        self._check_open()
        if factory not in self._driver.statement_factories:
            raise ClientUsageError(f"{factory}() is not offered by the {self.settings.protocol} connector; use "
                                   f"{' or '.join(f + '()' for f in self._driver.statement_factories)}")
        return FailoverStatement(self, factory, args, kwargs)

    # -- the failover machinery --------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("the connection is closed")

    def _execute_sql(self, sql: str) -> tuple[tuple, str]:
        """((rows, fields, rowcount), endpoint) of one statement."""
        returns_rows, use_database = classify(sql)
        result = self._call(self._driver.run, sql, returns_rows)
        if use_database is not None:
            self._after_use(use_database)
        return result

    def _call(self, op: Callable[..., Any], *args: Any) -> tuple[Any, str]:
        """``op(raw, *args)`` on the current node, failing over when the connection is lost; (result, endpoint)."""
        with self._lock:
            if self._closed:
                raise ClientClosed("the connection is closed")
            watch = self._watch
            if watch is not None and watch.ready():
                self._fail_back(watch)
            raw = self._raw
            if raw is None:
                if self._lost is not None:
                    raise ConnectionUnavailable([(self.endpoint, self._lost)],
                                                "auto_reconnect is off: no reconnection, no failover")
                return self._recover(op, args, None, initial=True)
            try:
                return op(raw, *args), self._names[self._index]
            except Exception as exc:
                if not is_connection_lost(exc):
                    raise
                lost = exc
            self._raw = None
            self._driver.close(raw)
            if not self.settings.auto_reconnect:
                self._lost = self._describe(lost)
                log.warning("tdsync client: connection to %s lost (%s); auto_reconnect is off",
                            self.endpoint, self._lost)
                raise lost
            log.warning("tdsync client: connection to %s lost (%s); reconnecting", self.endpoint,
                        self._describe(lost))
            return self._recover(op, args, lost, initial=False)

    def _plan(self, start: int, initial: bool) -> list[tuple[int, bool]]:
        """(node index, wait before the try) for one recovery."""
        retries = self.settings.reconnect_retry_count
        if not self.settings.auto_reconnect:
            return [(0, False)]
        plan: list[tuple[int, bool]] = []
        for k in range(len(self._nodes)):
            index = (start + k) % len(self._nodes)
            if k == 0 and not initial:       # the node that just failed: retries only, each after the interval
                plan += [(index, True)] * retries
            else:
                plan += [(index, False)] + [(index, True)] * (max(retries, 1) - 1)
        return plan

    def _recover(self, op: Callable[..., Any] | None, args: tuple, first_error: BaseException | None, *,
                 initial: bool) -> Any:
        started = time.monotonic()
        start = 0 if initial else self._index
        failures: dict[int, str] = {}
        first_text = self._describe(first_error) if first_error is not None else None
        if first_text is not None:
            failures[start] = first_text
        refused: set[int] = set()
        attempts = 0
        interval = self.settings.interval_s
        for index, wait in self._plan(start, initial):
            if index in refused:
                continue
            if wait and interval > 0 and self._closing.wait(interval):
                raise ClientClosed("the connection was closed while reconnecting")
            if self._closing.is_set():
                raise ClientClosed("the connection was closed while reconnecting")
            attempts += 1
            node = self._nodes[index]
            try:
                raw = self._driver.connect(node, self._database, self._options)
            except Exception as exc:  # noqa: BLE001 - every failure is reported in the end
                failures[index] = self._describe(exc)
                if not is_connection_lost(exc):
                    refused.add(index)        # the node answered "no" (auth, missing database): next node
                log.info("tdsync client: connect to %s failed: %s", node, failures[index])
                continue
            if op is None:
                self._install(raw, index, failures, started, attempts, first_text)
                return None
            try:
                result = op(raw, *args)
            except Exception as exc:
                if is_connection_lost(exc):
                    self._driver.close(raw)
                    failures[index] = self._describe(exc)
                    log.info("tdsync client: %s lost again at once: %s", node, failures[index])
                    continue
                self._install(raw, index, failures, started, attempts, first_text)
                raise                          # the node serves; it refused the statement itself
            self._install(raw, index, failures, started, attempts, first_text)
            return result, self._names[index]
        self._raw = None
        tried = sorted(set(failures) | {index for index, _ in self._plan(start, initial)})
        note = "" if self.settings.auto_reconnect else "auto_reconnect is off: no failover"
        error = ConnectionUnavailable([(str(self._nodes[i]), failures.get(i, "not tried")) for i in tried], note)
        log.error("tdsync client: %s", error)
        raise error

    def _install(self, raw: Any, index: int, failures: dict[int, str], started: float, attempts: int,
                 first_text: str | None) -> None:
        """Use ``raw`` (on node ``index``) from now on; report a switch if it is one."""
        old_raw, old_index = self._raw, self._index
        first_connect = not self._connected_once
        self._raw, self._index, self._connected_once = raw, index, True
        if old_raw is not None and old_raw is not raw:
            self._driver.close(old_raw)
        elapsed = time.monotonic() - started
        others = "; ".join(f"{self._names[i]}: {text}" for i, text in failures.items()
                           if i != index and text != first_text)
        if first_connect and index != 0:
            self._switched(SwitchEvent(STARTUP, self._names[0], self._names[index],
                                       f"primary unavailable at connect ({others})", elapsed, attempts, time.time()))
        elif not first_connect and index != old_index:
            if first_text is not None:
                reason = f"connection lost ({first_text})" + (f"; then {others}" if others else "")
            else:
                reason = f"no node had answered; {self._names[old_index]}: {failures.get(old_index, 'not tried')}"
            self._switched(SwitchEvent(FAILOVER, self._names[old_index], self._names[index], reason, elapsed,
                                       attempts, time.time()))
        elif not first_connect:
            log.info("tdsync client: reconnected to %s after %.3f s (%d attempts)", self._names[index], elapsed,
                     attempts)
        self._update_watch()

    def _fail_back(self, watch: FailbackWatch) -> None:
        started = time.monotonic()
        healthy = watch.healthy_for()
        primary = self._nodes[0]
        try:
            raw = self._driver.connect(primary, self._database, self._options)
        except Exception as exc:  # noqa: BLE001
            watch.reset()
            log.info("tdsync client: failback to %s failed (%s); staying on %s", primary, self._describe(exc),
                     self.endpoint)
            return
        old_raw, source = self._raw, self.endpoint
        self._raw, self._index = raw, 0
        if old_raw is not None:
            self._driver.close(old_raw)
        self._switched(SwitchEvent(FAILBACK, source, str(primary),
                                   f"primary healthy for {healthy:.1f} s (failback_interval_s "
                                   f"{self.settings.failback_interval_s:g})",
                                   time.monotonic() - started, 1, time.time()))
        self._update_watch()

    def _switched(self, event: SwitchEvent) -> None:
        self.switches.append(event)
        self.switch_count += 1
        log.log(logging.INFO if event.kind == FAILBACK else logging.WARNING, "tdsync client: %s", event)
        callback = self.on_switch
        if callback is not None:
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - the application's callback must not break its own call
                log.exception("tdsync client: the on_switch callback raised")

    def _update_watch(self) -> None:
        want = (self.settings.failback_interval_s is not None and self.settings.auto_reconnect
                and self._index != 0 and not self._closing.is_set())
        if want and self._watch is None:
            hold = self.settings.failback_interval_s or 0.0
            period = min(1.0, max(0.05, hold / 4))
            primary = self._nodes[0]
            database = self._database
            driver = self._driver
            self._watch = FailbackWatch(lambda: driver.probe(primary, database, PROBE_TIMEOUT_S),
                                        hold, period, str(primary)).start()
        elif not want and self._watch is not None:
            self._watch.stop()
            self._watch = None

    def _after_use(self, database: str) -> None:
        """Remember ``USE``'s database; for taosws also reopen in it (its silent reconnects use the DSN's)."""
        with self._lock:
            unchanged = database == self._database
            self._database = database
            if unchanged or not self._driver.reopen_on_use or self._raw is None:
                return
            node = self._nodes[self._index]
            try:
                raw = self._driver.connect(node, database, self._options)
            except Exception as exc:  # noqa: BLE001 - keep the working connection; the next switch opens in it
                log.debug("tdsync client: reopening %s in database %s failed: %s", node, database, exc)
                return
            old, self._raw = self._raw, raw
            self._driver.close(old)

    def _describe(self, exc: BaseException) -> str:
        text = _URL_CREDENTIALS.sub(r"\1:***@", str(exc))
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return f"{type(exc).__name__}: {text}"


def _schemaless(raw: Any, args: tuple, kwargs: dict) -> Any:
    return raw.schemaless_insert(*args, **kwargs)


class Cursor:
    """DB-API 2.0 cursor over a failover :class:`Connection` (paramstyle ``qmark``)."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.rowcount = -1
        self.endpoint: str | None = None          # where the last statement ran
        self._rows: list[tuple] | None = None
        self._pos = 0
        self._fields: Any = None
        self._description: list[tuple] | None = None
        self._closed = False

    @property
    def description(self) -> list[tuple] | None:
        if self._fields is None:
            return None
        if self._description is None:
            self._description = field_description(self.connection._driver.fields_of(self._fields))
        return self._description

    @property
    def field_count(self) -> int:
        description = self.description
        return len(description) if description else 0

    def execute(self, operation: str, parameters: Sequence[Any] | None = None) -> int:
        """Run one statement (``?`` placeholders filled from ``parameters``); the row count."""
        if self._closed:
            raise ClientClosed("the cursor is closed")
        sql = operation if parameters is None else bind_parameters(operation, parameters)
        (self._rows, self._fields, count), self.endpoint = self.connection._execute_sql(sql)
        self._pos = 0
        self._description = None
        self.rowcount = count
        return count

    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]]) -> int:
        """``execute`` once per parameter sequence (each one failover-safe on its own); the total row count."""
        total = 0
        for parameters in seq_of_parameters:
            count = self.execute(operation, parameters)
            total += max(count, 0)
        self._rows, self._fields, self._description = None, None, None
        self.rowcount = total
        return total

    def _result(self) -> list[tuple]:
        if self._closed:
            raise ClientClosed("the cursor is closed")
        if self._rows is None:
            raise ClientUsageError("no result set: the last statement returned no rows (or none was executed)")
        return self._rows

    def fetchone(self) -> tuple | None:
        rows = self._result()
        if self._pos >= len(rows):
            return None
        row = rows[self._pos]
        self._pos += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        rows = self._result()
        size = self.arraysize if size is None else size
        chunk = rows[self._pos:self._pos + max(size, 0)]
        self._pos += len(chunk)
        return chunk

    def fetchall(self) -> list[tuple]:
        rows = self._result()
        chunk = rows[self._pos:] if self._pos else rows
        self._pos = len(rows)
        return chunk

    def __iter__(self) -> Iterator[tuple]:
        rows = self._result()
        while self._pos < len(rows):
            row = rows[self._pos]
            self._pos += 1
            yield row

    def setinputsizes(self, sizes: Any) -> None:
        """DB-API no-op."""

    def setoutputsizes(self, size: Any, column: Any = None) -> None:
        """DB-API no-op."""

    def close(self) -> None:
        self._closed = True
        self._rows = None

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Connection", "Cursor", "SwitchEvent", "ClientError", "FAILOVER", "FAILBACK", "STARTUP"]
