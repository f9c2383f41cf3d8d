"""The wrapped connectors: how to open one, run SQL on it, and tell a lost connection from a SQL error.

* :class:`WsDriver` — ``taosws`` (taos-ws-py) for ``ws://``/``wss://`` endpoints.
* :class:`NativeDriver` — ``taos`` (taospy, ctypes over libtaos) for ``taos://`` endpoints.

**Lost connection or SQL error.** :func:`is_connection_lost` decides whether a failure means the
node cannot serve (fail over) or the statement was refused (raise it unchanged). Verified against
a sandbox killed with SIGKILL (``tests/test_failover_client.py``): ``taosws`` reports a dead
server as ``QueryError``/``FetchError`` ``[0xE002] WebSocket connection is closed (disconnect)``
or ``... sending on a closed channel``, and a refused connect as ``ConnectionError`` ``[0xE001]
... Connection refused``; SQL errors carry TDengine's codes (``[0x2600] ... syntax error``,
``[0x2603] Table does not exist``). The ``0xE0xx`` codes are taos-ws' own (``WS_ERROR_NO`` in
taos-connector-rust ``taos-ws/src/query/asyn.rs``); the TDengine codes below are the RPC and
"not serving" ones of ``include/util/taoserror.h`` that a server behind taosAdapter (or libtaos)
answers when it cannot reach its data.

**taosws' own reconnection is switched off.** taos-ws retries a connect 5 times with back-off
(about 5-7 s with the GIL held) and, after a drop, reconnects silently in the background; a call
on a connection that dropped can then hang until ``read_timeout`` (300 s; seen in testing). The
client therefore opens every ``taosws`` connection with ``conn_retries=0&retry_backoff_ms=0``
(overridable through the DSN), never reuses one after a lost-connection error, and puts the
current database in the DSN so that a silent reconnect still lands in it.

**A hung server is checked in Python first.** ``taosws.connect`` to a server that accepts TCP but
never answers (a stopped process, a stuck taosAdapter) does not return at all, ``conn_timeout``
notwithstanding (seen in testing: over 40 s, GIL held). So before every ``taosws.connect`` the
driver makes the same ``version`` + ``conn`` exchange itself over ``websockets`` with a timeout
(``conn_timeout``, default 5 s), which also keeps the GIL free while it waits. A server that
hangs *during* a call is only noticed after taosws' ``read_timeout`` (seconds; pass
``read_timeout=...`` in the DSN to shorten it), which then counts as a lost connection.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import ssl
from typing import Any
from urllib.parse import quote, urlencode

from engine.endpoint import Endpoint
from engine.errors import NativeLibraryMissing, TdsyncError

# taos-ws WS_ERROR_NO: WEBSOCKET_ERROR, CONN_CLOSED, SEND_MESSAGE_TIMEOUT, RECV_MESSAGE_TIMEOUT, IO_ERROR,
# WEBSOCKET_DISCONNECTED. Not: DSN_ERROR 0xE000, UNAUTHORIZED 0xE006, DE_ERROR 0xE007, TLS_ERROR 0xE009.
WS_LOST_CODES = frozenset({0xE001, 0xE002, 0xE003, 0xE004, 0xE005, 0xE008})
# TDengine: RPC_NETWORK_UNAVAIL, RPC_FQDN_ERROR, RPC_BROKEN_LINK, RPC_TIMEOUT, RPC_SOMENODE_NOT_CONNECTED,
# RPC_SOMENODE_BROKEN_LINK, RPC_NETWORK_ERROR, RPC_NETWORK_BUSY, HTTP/RPC/ASYNC_MODULE_QUIT,
# APP_IS_STARTING, APP_IS_STOPPING, TSC_DISCONNECTED
SERVER_LOST_CODES = frozenset({0x000B, 0x0015, 0x0018, 0x0019, 0x0020, 0x0021, 0x0023, 0x0024, 0x0025, 0x0026,
                               0x0027, 0x0130, 0x0131, 0x0213})
LOST_CODES = WS_LOST_CODES | SERVER_LOST_CODES
# words of a code-less error text that mean the transport is gone
_LOST_WORDS = ("connection is closed", "closed channel", "connection refused", "connection reset",
               "broken pipe", "websocket connection", "disconnected", "unable to establish connection")
_CODE = re.compile(r"\s*\[(?:0x)?([0-9A-Fa-f]{1,8})\]")
WS_DEFAULTS = {"conn_retries": "0", "retry_backoff_ms": "0"}
DEFAULT_CONN_TIMEOUT_S = 5


class ServerRefused(Exception):
    """The probe's ``version``/``conn`` got an error answer (``[0x0357] Authentication failure``, ...)."""


def error_code(exc: BaseException) -> int | None:
    """The 16-bit code of a connector exception: ``errno`` (taospy) or a leading ``[0x2600]`` (taosws)."""
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and not isinstance(exc, OSError) and errno not in (0, 0xFFFF, -1):
        return errno & 0xFFFF
    match = _CODE.match(str(exc))
    if match:
        return int(match.group(1), 16) & 0xFFFF
    return None


def is_connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` means the node cannot serve (fail over), False for a SQL or usage error."""
    if isinstance(exc, TdsyncError):
        return False
    if isinstance(exc, (OSError, TimeoutError)):       # socket errors, builtin ConnectionError
        return True
    code = error_code(exc)
    if code is not None:
        return code in LOST_CODES
    text = str(exc).lower()
    return any(word in text for word in _LOST_WORDS)


def field_description(fields: Any) -> list[tuple] | None:
    """DB-API ``description`` (7-tuples) from a connector's field list (methods in taosws, properties in taospy)."""
    if fields is None:
        return None

    def get(obj: Any, name: str) -> Any:
        value = getattr(obj, name, None)
        return value() if callable(value) else value

    return [(get(f, "name"), get(f, "type"), None, get(f, "bytes"), None, None, None) for f in fields]


class WsDriver:
    """``taosws`` for WebSocket endpoints."""

    protocol = "ws"
    statement_factories = ("statement", "stmt2_statement")
    reopen_on_use = True          # keep the DSN's database = the session's (taos-ws reconnects with it)

    def __init__(self) -> None:
        import taosws

        self.module = taosws

    def dsn(self, endpoint: Endpoint, database: str | None, options: dict[str, Any]) -> str:
        params = dict(WS_DEFAULTS)
        params.update({k: str(v) for k, v in options.items()})
        path = "/" + quote(database, safe="") if database else ""
        userinfo = f"{quote(endpoint.user, safe='')}:{quote(endpoint.password, safe='')}"
        return f"{endpoint.scheme}://{userinfo}@{endpoint.address}{path}?{urlencode(params)}"

    def connect(self, endpoint: Endpoint, database: str | None, options: dict[str, Any]) -> Any:
        timeout = _seconds(options.get("conn_timeout"), DEFAULT_CONN_TIMEOUT_S)
        ws_probe(endpoint, database, timeout)         # a hung server would hang taosws.connect for good
        if "conn_timeout" not in options:            # taos-ws reads whole seconds
            options = {**options, "conn_timeout": max(1, math.ceil(timeout))}
        return self.module.connect(self.dsn(endpoint, database, options))

    @staticmethod
    def run(raw: Any, sql: str, returns_rows: bool) -> tuple[list[tuple] | None, Any, int]:
        """(rows or None, what holds the fields, row count) of one statement."""
        if returns_rows:
            result = raw.query(sql)
            rows = list(result)
            return rows, result, len(rows)
        return None, None, raw.execute(sql)

    @staticmethod
    def fields_of(holder: Any) -> Any:
        return holder.fields if holder is not None else None

    @staticmethod
    def close(raw: Any) -> None:
        with contextlib.suppress(Exception):
            raw.close()

    def probe(self, endpoint: Endpoint, database: str | None, timeout: float) -> None:
        """Raise unless the node answers ``version`` and accepts ``conn`` (pure Python: the GIL stays free)."""
        ws_probe(endpoint, database, timeout)


class NativeDriver:
    """``taos`` (taospy) for native endpoints; needs libtaos."""

    protocol = "native"
    statement_factories = ("statement", "statement2")
    reopen_on_use = False

    def __init__(self) -> None:
        try:
            import taos
        except Exception as exc:  # noqa: BLE001 - taospy raises its InterfaceError at import without libtaos
            from engine.connectors.native import library_candidates

            raise NativeLibraryMissing(library_candidates(), [str(exc)]) from None
        self.module = taos

    def connect(self, endpoint: Endpoint, database: str | None, options: dict[str, Any]) -> Any:
        kwargs = dict(options)
        kwargs.update(host=endpoint.host, port=endpoint.port, user=endpoint.user, password=endpoint.password)
        if database:
            kwargs["database"] = database
        return self.module.connect(**kwargs)

    @staticmethod
    def run(raw: Any, sql: str, returns_rows: bool) -> tuple[list[tuple] | None, Any, int]:
        result = raw.query(sql)
        try:
            if result.field_count:
                rows = [tuple(row) for row in result.fetch_all()]
                return rows, result.fields, len(rows)
            return None, None, result.affected_rows
        finally:
            with contextlib.suppress(Exception):
                result.close()

    @staticmethod
    def fields_of(holder: Any) -> Any:
        return holder

    @staticmethod
    def close(raw: Any) -> None:
        with contextlib.suppress(Exception):
            raw.close()

    def probe(self, endpoint: Endpoint, database: str | None, timeout: float) -> None:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
            pass
        self.close(self.connect(endpoint, database, {}))     # ctypes releases the GIL while libtaos waits


def driver_for(protocol: str) -> WsDriver | NativeDriver:
    return WsDriver() if protocol == "ws" else NativeDriver()


# --- failback probe over WebSocket ---------------------------------------------------------------
def _seconds(value: Any, default: float) -> float:
    try:
        return max(float(value), 0.1) if value is not None else default
    except (TypeError, ValueError):
        return default


def ws_probe(endpoint: Endpoint, database: str | None, timeout: float) -> None:
    """Open ``/ws`` (``/rest/ws`` on 404), ask ``version``, then ``conn`` as the endpoint's user.

    Pure Python over sockets, so the GIL is free while it waits. A transport failure or no answer
    within ``timeout`` raises the builtin :class:`ConnectionError` (a lost connection); an error
    answer raises :class:`ServerRefused` with TDengine's code, e.g. ``[0x0357] Authentication failure``.
    """
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    context = None
    if endpoint.tls:      # as taos-ws without tls_mode: encrypted, certificate not verified
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    for path in ("/ws", "/rest/ws"):
        try:
            with connect(endpoint.ws_url(path), open_timeout=timeout, close_timeout=0.2, ssl=context,
                         proxy=None, compression=None, max_size=None) as ws:
                for req_id, action, args in ((1, "version", {}),
                                             (2, "conn", {"user": endpoint.user, "password": endpoint.password,
                                                          "db": database or ""})):
                    ws.send(json.dumps({"action": action, "args": {"req_id": req_id, **args}}))
                    answer = json.loads(ws.recv(timeout=timeout))
                    code = answer.get("code", 0)
                    if code:
                        raise ServerRefused(f"[0x{code & 0xFFFF:04X}] {answer.get('message', '')}")
                return
        except ServerRefused:
            raise
        except InvalidStatus as exc:
            if exc.response.status_code == 404 and path == "/ws":
                continue
            raise ConnectionError(f"{endpoint}: {exc}") from None
        except (OSError, TimeoutError):
            raise
        except (WebSocketException, ValueError) as exc:
            raise ConnectionError(f"{endpoint}: {exc}") from None
