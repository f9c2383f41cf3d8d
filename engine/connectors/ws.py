"""tdsync's own client of the taosAdapter WebSocket protocol (asyncio + ``websockets``; run it on uvloop).

* :class:`WsSource` — ``/rest/tmq``: one consumer (subscribe, poll + ``fetch_raw_data``,
  ``commit_offset``, ``seek``, ``assignment``, ``position``, ``committed``) and a ``/ws``
  connection for SQL.
* :class:`WsSink` — ``/ws``: binary ``write_raw`` (action 3) on one connection per target
  database (``conn`` with that ``db``, so ``tmq_write_raw`` writes there), several writes in
  flight matched by ``req_id``; SQL with ``binary_query`` + ``fetch_raw_block`` (JSON
  ``query``/``fetch``/``fetch_block`` for adapters older than 3.3.2.0).
* :class:`_Channel` — one WebSocket with request/response matching: JSON answers by their
  ``req_id``, binary answers by the ``req_id`` in their header (byte 26 of "new" frames that
  start with ``u64::MAX``, byte 8 of older ones).

Protocol: /work/shared/reference/formats.md sections 5-6 (taosAdapter controller/ws/tmq and
controller/ws/ws). Server errors raise :class:`~engine.errors.TDengineError`; a dropped or
unopenable connection, or a request without an answer in time, raises
:class:`~engine.errors.ConnectionLost` (the channel is then closed; the next call opens a new one,
and a source subscribes again, from the group's committed offsets).

taosAdapter handles every frame of a ``/ws`` socket on its own goroutine
(TA:controller/ws/ws/ws.go:43-66), so writes in flight may be applied in any order; a write sent
with ``barrier=True`` (the default for metas) waits for the writes before it and holds back the
ones after it until it is acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import ssl as ssl_module
import struct
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from engine.codec import RawBlock
from engine.connectors.base import DATA_RAW_TYPES, RawMessage, VgroupAssignment
from engine.endpoint import Endpoint
from engine.errors import ConnectionLost, ConnectorError, TDengineError

log = logging.getLogger("tdsync.connectors.ws")

OFFSET_INVALID = -2147467247               # committed/position: "none"
NEW_FRAME_FLAG = 0xFFFFFFFFFFFFFFFF
_NEW_HEAD = struct.Struct("<QQHQQII")      # flag, action, version, timing, req_id, code, message length (42)
_REQUEST_HEAD = struct.Struct("<QQQ")      # /ws binary request: req_id, resource id, action
WRITE_RAW, BINARY_QUERY, FETCH_RAW_BLOCK = 3, 6, 7
BINARY_VERSION = 1
NEW_API_VERSION = (3, 3, 2, 0)             # binary_query / fetch_raw_block / fetch_raw_data from here on

_req_ids = itertools.count(1)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in str(text).split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _new_frame_tail(frame: bytes) -> int:
    """Offset of what follows the header and message of a "new" binary answer."""
    return _NEW_HEAD.size + _NEW_HEAD.unpack_from(frame)[6]


def _discard(fut: asyncio.Future) -> None:
    """Forget a future nobody will await (its failure, if any, is already being raised)."""
    if fut.done():
        if not fut.cancelled():
            fut.exception()
    else:
        fut.cancel()


class _Channel:
    """One WebSocket to one taosAdapter path; requests matched to answers by ``req_id``."""

    def __init__(self, ws: ClientConnection, label: str, request_timeout: float) -> None:
        self.ws = ws
        self.label = label                 # redacted endpoint + path, for messages
        self.request_timeout = request_timeout
        self.version: tuple[int, ...] = ()
        self._pending: dict[int, asyncio.Future] = {}
        self._legacy: dict[int, asyncio.Future] = {}     # old /ws fetch_block frames, keyed by result id
        self._lost: str | None = None               # why the socket is gone
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, endpoint: Endpoint, path: str, *, open_timeout: float, request_timeout: float,
                   ssl: ssl_module.SSLContext | None, compression: bool) -> _Channel:
        label = f"{endpoint.redacted}{path}"
        try:
            ws = await connect(endpoint.ws_url(path), open_timeout=open_timeout, max_size=None,
                               compression="deflate" if compression else None, proxy=None,
                               ssl=(ssl or ssl_module.create_default_context()) if endpoint.tls else None,
                               ping_interval=20, ping_timeout=20, close_timeout=2)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if 400 <= status < 500:
                raise ConnectorError(f"{label} answered HTTP {status}: is it a taosAdapter 3.x?") from None
            raise ConnectionLost(label, f"HTTP {status}") from None
        except ssl_module.SSLCertVerificationError as exc:
            raise ConnectorError(f"TLS certificate of {label} not trusted: {exc.verify_message}") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise ConnectionLost(label, f"cannot connect ({exc or type(exc).__name__})") from None
        return cls(ws, label, request_timeout)

    @property
    def closed(self) -> bool:
        return self._lost is not None

    def lost(self) -> ConnectionLost:
        return ConnectionLost(self.label, self._lost or "closed")

    # -- requests ---------------------------------------------------------------------------
    def _expect(self, key: int, action: str, timeout: float | None, table: dict | None = None) -> asyncio.Future:
        if self._lost is not None:
            raise self.lost()
        table = self._pending if table is None else table
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        table[key] = fut
        seconds = self.request_timeout if timeout is None else timeout
        timer = loop.call_later(seconds, self._timed_out, fut, action, seconds)

        def done(_: asyncio.Future) -> None:
            timer.cancel()
            if table.get(key) is fut:
                del table[key]

        fut.add_done_callback(done)
        return fut

    def _timed_out(self, fut: asyncio.Future, action: str, seconds: float) -> None:
        if not fut.done():
            fut.set_exception(ConnectionLost(self.label, f"no answer to {action} within {seconds:g} s"))
            self.abort(f"a request timed out ({action})")

    async def _send(self, data: str | bytes) -> None:
        if self._lost is not None:
            raise self.lost()
        try:
            await self.ws.send(data)
        except ConnectionClosed as exc:
            self.abort(f"closed while sending ({exc})")
            raise self.lost() from None

    async def call(self, action: str, args: dict[str, Any] | None = None, *, timeout: float | None = None,
                   legacy_key: int | None = None) -> Any:
        """Send a JSON request; its answer: a dict (JSON) or bytes (a binary frame).

        ``legacy_key``: the answer is an old-style binary frame that carries this id at byte 8
        instead of the req_id (``/ws`` ``fetch_block``).
        """
        req_id = next(_req_ids)
        if legacy_key is None:
            fut = self._expect(req_id, action, timeout)
        else:
            fut = self._expect(legacy_key, action, timeout, self._legacy)
        try:
            await self._send(json.dumps({"action": action, "args": {"req_id": req_id, **(args or {})}}))
        except BaseException:
            _discard(fut)
            raise
        return await fut

    async def tell(self, action: str, args: dict[str, Any]) -> None:
        """Send a JSON request that has no answer (``free_result``)."""
        await self._send(json.dumps({"action": action, "args": {"req_id": next(_req_ids), **args}}))

    async def send_binary(self, req_id: int, frame: bytes, action: str) -> asyncio.Future:
        """Send a binary request; the future of its answer (for several in flight)."""
        fut = self._expect(req_id, action, None)
        try:
            await self._send(frame)
        except BaseException:
            _discard(fut)
            raise
        return fut

    async def call_binary(self, req_id: int, frame: bytes, action: str) -> Any:
        return await (await self.send_binary(req_id, frame, action))

    # -- answers ----------------------------------------------------------------------------
    async def _read(self) -> None:
        reason = "closed by the server"
        try:
            async for frame in self.ws:
                try:
                    self._deliver(frame)
                except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the reader
                    log.warning("%s: cannot read an answer: %s", self.label, exc)
        except ConnectionClosed as exc:
            reason = f"closed ({exc})"
        except Exception as exc:  # noqa: BLE001
            reason = f"read failed ({exc})"
        self._fail_all(reason)

    def _deliver(self, frame: str | bytes) -> None:
        if isinstance(frame, str):
            answer = json.loads(frame)
            fut = self._pending.get(answer.get("req_id"))
            if fut is None or fut.done():
                log.debug("%s: unmatched answer %.200s", self.label, frame)
                return
            code = answer.get("code") or 0
            if code:
                fut.set_exception(TDengineError(code, answer.get("message") or ""))
            else:
                fut.set_result(answer)
            return
        if len(frame) >= _NEW_HEAD.size and frame[:8] == b"\xff" * 8:
            _, _, _, _, req_id, code, msg_len = _NEW_HEAD.unpack_from(frame)
            fut = self._pending.get(req_id)
            if fut is not None and not fut.done():
                if code:
                    message = bytes(frame[_NEW_HEAD.size:_NEW_HEAD.size + msg_len]).decode("utf-8", "replace")
                    fut.set_exception(TDengineError(code, message))
                else:
                    fut.set_result(frame)
                return
        elif len(frame) >= 16:
            (key,) = struct.unpack_from("<Q", frame, 8)
            fut = self._legacy.get(key) or self._pending.get(key)
            if fut is not None and not fut.done():
                fut.set_result(frame)
                return
        log.debug("%s: unmatched binary answer of %d bytes", self.label, len(frame))

    def _fail_all(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        for table in (self._pending, self._legacy):
            for fut in list(table.values()):
                if not fut.done():
                    fut.set_exception(self.lost())
            table.clear()

    def abort(self, reason: str) -> None:
        """Fail what is in flight and drop the socket (without waiting)."""
        self._fail_all(reason)
        self.ws.transport.abort()

    async def close(self) -> None:
        self._fail_all("closed by tdsync")
        try:
            await self.ws.close()
        except Exception:  # noqa: BLE001
            self.ws.transport.abort()
        self._reader.cancel()
        try:
            await self._reader
        except BaseException:  # noqa: BLE001 - the reader's own end
            pass


class _Options:
    """Connection settings shared by sources and sinks."""

    def __init__(self, endpoint: Endpoint | str, *, request_timeout: float = 60.0, open_timeout: float = 10.0,
                 ssl_context: ssl_module.SSLContext | None = None, compression: bool = False) -> None:
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else Endpoint.parse(endpoint)
        if not self.endpoint.is_websocket:
            raise ConnectorError(f"{self.endpoint} is not a WebSocket endpoint (use ws://, wss:// or port 6041)")
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.ssl_context = ssl_context
        self.compression = compression

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.endpoint}>"

    async def channel(self, path: str) -> _Channel:
        ch = await _Channel.open(self.endpoint, path, open_timeout=self.open_timeout,
                                 request_timeout=self.request_timeout, ssl=self.ssl_context,
                                 compression=self.compression)
        try:
            answer = await ch.call("version")
            ch.version = _version(answer.get("version", ""))
        except BaseException:
            await ch.close()
            raise
        return ch


class _SqlConnection:
    """One ``/ws`` connection (``conn`` done, optionally with a current database)."""

    def __init__(self, channel: _Channel, database: str | None) -> None:
        self.channel = channel
        self.database = database
        self.binary = channel.version >= NEW_API_VERSION
        self._order = asyncio.Lock()
        self._in_flight: set[asyncio.Future] = set()
        self._barrier: asyncio.Future | None = None

    @classmethod
    async def open(cls, options: _Options, database: str | None = None) -> _SqlConnection:
        ch = await options.channel("/ws")
        ep = options.endpoint
        try:
            await ch.call("conn", {"user": ep.user, "password": ep.password, "db": database or ""})
        except BaseException:
            await ch.close()
            raise
        return cls(ch, database)

    @property
    def closed(self) -> bool:
        return self.channel.closed

    async def query(self, sql: str) -> tuple[list[str], list[tuple], int]:
        """(column names, rows, affected rows) of one statement."""
        ch = self.channel
        if self.binary:
            text = sql.encode()
            req_id = next(_req_ids)
            frame = b"".join((_REQUEST_HEAD.pack(req_id, 0, BINARY_QUERY),
                              struct.pack("<HI", BINARY_VERSION, len(text)), text))
            answer = await ch.call_binary(req_id, frame, "binary_query")
        else:
            answer = await ch.call("query", {"sql": sql})
        if answer.get("is_update") or not answer.get("fields_count"):
            return [], [], int(answer.get("affected_rows") or 0)
        names = list(answer.get("fields_names") or [])
        precision = int(answer.get("precision") or 0)
        result_id = int(answer["id"])
        rows: list[tuple] = []
        try:
            async for block in self._blocks(result_id):
                rows.extend(RawBlock.decode(block, precision=precision).rows())
        except TDengineError:
            raise
        except BaseException:
            if not ch.closed:     # the adapter keeps a result until it is read to the end or freed
                await ch.tell("free_result", {"id": result_id})
            raise
        return names, rows, 0

    async def _blocks(self, result_id: int):
        ch = self.channel
        while True:
            if self.binary:
                req_id = next(_req_ids)
                frame = _REQUEST_HEAD.pack(req_id, result_id, FETCH_RAW_BLOCK) + struct.pack("<H", BINARY_VERSION)
                answer = await ch.call_binary(req_id, frame, "fetch_raw_block")
                at = _new_frame_tail(answer)
                _, finished = struct.unpack_from("<QB", answer, at)
                if finished:
                    return
                (length,) = struct.unpack_from("<I", answer, at + 9)
                yield answer[at + 13:at + 13 + length]
            else:
                fetched = await ch.call("fetch", {"id": result_id})
                if fetched.get("completed"):
                    return
                answer = await ch.call("fetch_block", {"id": result_id}, legacy_key=result_id)
                yield answer[16:]

    async def send_raw(self, raw_type: int, data: bytes, window: asyncio.Semaphore, barrier: bool) -> asyncio.Future:
        """Send one ``write_raw`` in order; the future of its acknowledgement."""
        async with self._order:
            if self._barrier is not None:
                await asyncio.wait([self._barrier])
                self._barrier = None
            if barrier and self._in_flight:
                await asyncio.wait(list(self._in_flight))
            await window.acquire()
            req_id = next(_req_ids)
            frame = b"".join((_REQUEST_HEAD.pack(req_id, req_id, WRITE_RAW), struct.pack("<IH", len(data), raw_type),
                              data))
            try:
                fut = await self.channel.send_binary(req_id, frame, "write_raw")
            except BaseException:
                window.release()
                raise
            self._in_flight.add(fut)

            def done(f: asyncio.Future) -> None:
                window.release()
                self._in_flight.discard(f)
                if not f.cancelled():
                    f.exception()          # retrieved: an unawaited failure is not "never retrieved"

            fut.add_done_callback(done)
            if barrier:
                self._barrier = fut
            return fut

    async def drain(self) -> None:
        if self._in_flight:
            await asyncio.wait(list(self._in_flight))

    async def close(self) -> None:
        await self.channel.close()


class WsSource(_Options):
    """A TMQ consumer on ``/rest/tmq`` (one topic, one group) plus SQL on ``/ws``.

    Subscriptions always use ``enable.auto.commit=false`` (offsets are committed explicitly)
    and by default ``msg.consume.excluded=1``, ``auto.offset.reset=earliest`` and
    ``msg.with.table.name=true``; ``config`` entries are passed to ``tmq_conf_set`` as given
    (they win over those defaults).
    """

    def __init__(self, endpoint: Endpoint | str, **options: Any) -> None:
        super().__init__(endpoint, **options)
        self._tmq: _Channel | None = None
        self._sql: _SqlConnection | None = None
        self._subscription: dict[str, Any] | None = None
        self._message_id = 0
        self._lock = asyncio.Lock()
        self._polling = asyncio.Lock()           # one poll at a time: the message id is per socket

    async def subscribe(self, topic: str, group_id: str, client_id: str,
                        config: dict[str, str] | None = None) -> None:
        conf = {"msg.consume.excluded": "1", "auto.offset.reset": "earliest", "msg.with.table.name": "true"}
        conf.update({str(k): str(v) for k, v in (config or {}).items()})
        conf.pop("enable.auto.commit", None)
        ep = self.endpoint
        self._subscription = {
            "user": ep.user, "password": ep.password, "group_id": group_id, "client_id": client_id,
            "offset_rest": conf.pop("auto.offset.reset"), "with_table_name": conf.pop("msg.with.table.name"),
            "msg_consume_excluded": conf.pop("msg.consume.excluded"), "auto_commit": "false",
            "topics": [topic], "config": conf,
        }
        async with self._lock:
            if self._tmq is not None:
                await self._tmq.close()
                self._tmq = None
        await self._consumer()

    async def _consumer(self) -> _Channel:
        async with self._lock:
            if self._tmq is not None and not self._tmq.closed:
                return self._tmq
            if self._subscription is None:
                raise ConnectorError("WsSource: subscribe() before polling or reading offsets")
            self._tmq = None
            ch = await self.channel("/rest/tmq")
            try:
                await ch.call("subscribe", self._subscription)
            except BaseException:
                await ch.close()
                raise
            self._tmq = ch
            self._message_id = 0
            return ch

    async def poll(self, timeout: float) -> RawMessage | None:
        """One message, or None if none arrived within ``timeout`` seconds."""
        async with self._polling:
            return await self._poll(timeout)

    async def _poll(self, timeout: float) -> RawMessage | None:
        ch = await self._consumer()
        wait_ms = max(0, int(timeout * 1000))
        answer = await ch.call("poll", {"blocking_time": wait_ms, "message_id": self._message_id},
                               timeout=timeout + self.request_timeout)
        if not answer.get("have_message"):
            return None
        # A message the adapter announces again (our earlier poll's answer was lost) comes the same way.
        message_id = int(answer["message_id"])
        self._message_id = message_id
        if ch.version >= NEW_API_VERSION:
            frame = await ch.call("fetch_raw_data", {"message_id": message_id})
            at = _new_frame_tail(frame)
            got_id, raw_type, length = struct.unpack_from("<QHI", frame, at)
            data = frame[at + 14:at + 14 + length]
        else:
            frame = await ch.call("fetch_raw", {"message_id": message_id})
            _, _, got_id, _, length, raw_type = struct.unpack_from("<QQQQIH", frame)
            data = frame[38:38 + length]
        if got_id != message_id or len(data) != length:
            raise ConnectorError(f"{ch.label}: raw data of message {got_id} ({len(data)} of {length} bytes) "
                                 f"for message {message_id}")
        return RawMessage(answer.get("topic", ""), answer.get("database", ""), int(answer["vgroup_id"]), raw_type,
                          int(answer["offset"]), bytes(data))

    async def commit(self, topic: str, vgroup_id: int, offset: int) -> None:
        ch = await self._consumer()
        await ch.call("commit_offset", {"topic": topic, "vgroup_id": vgroup_id, "offset": offset})

    async def seek(self, topic: str, vgroup_id: int, offset: int) -> None:
        ch = await self._consumer()
        await ch.call("seek", {"topic": topic, "vgroup_id": vgroup_id, "offset": offset})

    async def assignment(self, topic: str) -> list[VgroupAssignment]:
        ch = await self._consumer()
        answer = await ch.call("assignment", {"topic": topic})
        return [VgroupAssignment(int(a["vgroup_id"]), int(a["offset"]), int(a["begin"]), int(a["end"]))
                for a in answer.get("assignment") or []]

    async def _offset(self, action: str, topic: str, vgroup_id: int) -> int:
        ch = await self._consumer()
        answer = await ch.call(action, {"topic_vgroup_ids": [{"topic": topic, "vgroup_id": vgroup_id}]})
        values = answer.get(action) or []
        if len(values) != 1:
            raise ConnectorError(f"{ch.label}: {action} answered {values!r} for one vgroup")
        return int(values[0])

    async def position(self, topic: str, vgroup_id: int) -> int:
        return await self._offset("position", topic, vgroup_id)

    async def committed(self, topic: str, vgroup_id: int) -> int | None:
        value = await self._offset("committed", topic, vgroup_id)
        return None if value == OFFSET_INVALID else value

    async def query(self, sql: str) -> list[tuple]:
        async with self._lock:
            if self._sql is None or self._sql.closed:
                self._sql = await _SqlConnection.open(self)
            conn = self._sql
        return (await conn.query(sql))[1]

    async def close(self) -> None:
        async with self._lock:
            tmq, sql, self._tmq, self._sql = self._tmq, self._sql, None, None
        if tmq is not None:
            await tmq.close()
        if sql is not None:
            await sql.close()

    async def __aenter__(self) -> WsSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class WsSink(_Options):
    """Raw writes and SQL on ``/ws``; one connection per target database, ``max_in_flight`` writes at once.

    ``await write_raw(db, raw_type, data)`` writes one message; ``fut = await send_raw(...)``
    only sends it (in call order) and returns the future of its acknowledgement, for pipelines.
    """

    def __init__(self, endpoint: Endpoint | str, *, max_in_flight: int = 16, **options: Any) -> None:
        super().__init__(endpoint, **options)
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self._window = asyncio.Semaphore(max_in_flight)
        self._writers: dict[str, _SqlConnection] = {}
        self._admin: _SqlConnection | None = None
        self._lock = asyncio.Lock()

    async def _writer(self, database: str) -> _SqlConnection:
        conn = self._writers.get(database)
        if conn is not None and not conn.closed:
            return conn
        async with self._lock:
            conn = self._writers.get(database)
            if conn is None or conn.closed:
                conn = self._writers[database] = await _SqlConnection.open(self, database)
            return conn

    async def send_raw(self, database: str, raw_type: int, data: bytes, *,
                       barrier: bool | None = None) -> asyncio.Future:
        """Send a raw message to ``database``; returns the future of the server's acknowledgement.

        ``barrier`` (default: true for metas) makes the write wait for earlier ones and hold back later ones.
        """
        conn = await self._writer(database)
        return await conn.send_raw(raw_type, data, self._window,
                                   raw_type not in DATA_RAW_TYPES if barrier is None else barrier)

    async def write_raw(self, database: str, raw_type: int, data: bytes) -> None:
        await (await self.send_raw(database, raw_type, data))

    async def flush(self) -> None:
        """Wait until every write sent so far is acknowledged (failures stay with their futures)."""
        for conn in list(self._writers.values()):
            await conn.drain()

    async def _admin_connection(self) -> _SqlConnection:
        async with self._lock:
            if self._admin is None or self._admin.closed:
                self._admin = await _SqlConnection.open(self)
            return self._admin

    async def execute(self, sql: str) -> int:
        """Run a statement; the number of affected rows."""
        return (await (await self._admin_connection()).query(sql))[2]

    async def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        names, rows, _ = await (await self._admin_connection()).query(sql)
        return names, rows

    async def close(self) -> None:
        async with self._lock:
            conns = [*self._writers.values(), *([self._admin] if self._admin else [])]
            self._writers.clear()
            self._admin = None
        for conn in conns:
            await conn.close()

    async def __aenter__(self) -> WsSink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
