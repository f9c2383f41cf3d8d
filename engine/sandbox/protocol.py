"""The taosAdapter WebSocket protocol, independent of the transport.

Two connection classes answer what a taosAdapter 3.3 answers, frame for frame:

* :class:`SqlConnection` — ``GET /ws`` (and the legacy ``/rest/ws``): JSON actions ``version``,
  ``conn``, ``query``, ``fetch``, ``fetch_block``, ``free_result``, ``num_fields``,
  ``get_current_db``, ``get_server_info``, ``options_connection``, ``check_server_status``,
  ``get_connection_info``; the prepared-statement (``stmt``) actions ``init``, ``prepare``,
  ``set_table_name``, ``set_tags``, ``add_batch``, ``exec``, ``close`` and binary 1 ``set_tags``,
  2 ``bind`` (INSERT only, in ``statements.py``); binary actions 3 ``write_raw``, 4 ``write_raw_block``,
  5 ``write_raw_block_with_fields``, 6 ``binary_query``, 7 ``fetch_raw_block``.
* :class:`TmqConnection` — ``GET /rest/tmq``: one consumer per socket; ``subscribe``, ``poll``,
  ``fetch``, ``fetch_block``, ``fetch_raw``, ``fetch_raw_data``, ``fetch_json_meta``, ``commit``,
  ``commit_offset``, ``committed``, ``position``, ``seek``, ``assignment``, ``unsubscribe``,
  ``list_topics``, ``version``.

The transport (``server.py``) creates one connection object per socket with a ``send``
coroutine (``str`` for a text frame, ``bytes`` for a binary one), feeds it every frame with
``on_text``/``on_binary`` and calls ``close()`` when the socket goes away.

Conventions taken from taosAdapter (github.com/taosdata/taosadapter, controller/ws/ws and
controller/ws/tmq) and checked against the Rust client (taos-connector-rust, taos-ws):
JSON responses carry ``code`` (``code & 0xffff``), ``message``, ``action``, ``req_id`` and
``timing`` (nanoseconds since the request arrived), fields in the adapter's order; all binary
integers are little-endian; errors the adapter itself raises use code 0xffff. A request that
cannot be parsed gets an error answer and the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from engine import error_codes as codes
from engine.errors import CodecError, TDengineError
from engine.sandbox.statements import JSON_ACTIONS as STMT_ACTIONS
from engine.sandbox.statements import Statements

log = logging.getLogger("tdsync.sandbox.protocol")

Send = Callable[[str | bytes], Awaitable[None]]

ADAPTER_ERROR = 0xFFFF
OFFSET_INVALID = -2147467247          # tmq committed()/position() when there is none
NEW_FRAME_FLAG = 0xFFFFFFFFFFFFFFFF   # first u64 of "new style" binary frames
BINARY_PROTOCOL_VERSION = 1

# /ws binary actions (taosAdapter controller/ws/ws/const.go)
SET_TAGS, BIND, WRITE_RAW, WRITE_RAW_BLOCK, WRITE_RAW_BLOCK_WITH_FIELDS = 1, 2, 3, 4, 5
BINARY_QUERY, FETCH_RAW_BLOCK, STMT2_BIND, VALIDATE_SQL, STMT2_BIND_EXEC = 6, 7, 9, 10, 11
BINARY_ACTION_NAMES = {
    SET_TAGS: "set_tags", BIND: "bind", WRITE_RAW: "write_raw", WRITE_RAW_BLOCK: "write_raw_block",
    WRITE_RAW_BLOCK_WITH_FIELDS: "write_raw_block_with_fields", BINARY_QUERY: "binary_query",
    FETCH_RAW_BLOCK: "fetch_raw_block", STMT2_BIND: "stmt2_bind", VALIDATE_SQL: "validate_sql",
    STMT2_BIND_EXEC: "stmt2_bind_exec",
}
TMQ_RAW_MESSAGE = 3                   # u64 tag in fetch_raw frames
TMQ_FETCH_RAW_NEW_MESSAGE = 8         # action in fetch_raw_data frames

# TMQ message types (tmq_get_res_type)
TMQ_RES_DATA, TMQ_RES_TABLE_META, TMQ_RES_METADATA, TMQ_RES_RAWDATA = 1, 2, 3, 4

TAOS_FIELD_SIZE = 72                  # struct taosField {char name[65]; int8_t type; int32_t bytes;}
SERVER_STATUS_OK = 2                  # TSDB_SRV_STATUS_SERVICE_OK

# Var types whose schema width differs from the declared one (calcSchemaBytesFromTypeBytes).
_VARSTR_TYPES = frozenset({8, 16, 20})        # varchar/binary, varbinary, geometry
_NCHAR_TYPES = frozenset({10, 15})            # nchar, json
_BLOB_TYPES = frozenset({18, 19})


def schema_bytes(type_code: int, user_bytes: int) -> int:
    """The block width of a column from its user-visible width (TDengine ``calcSchemaBytesFromTypeBytes``)."""
    if type_code in _VARSTR_TYPES:
        return user_bytes + 2
    if type_code in _NCHAR_TYPES:
        return user_bytes * 4 + 2
    if type_code in _BLOB_TYPES:
        return user_bytes + 4
    return user_bytes


# ------------------------------------------------------------------------------------------
# Interfaces of the collaborators (engine.py / executor.py by the owner, tmq.py by the TMQ helper)
# ------------------------------------------------------------------------------------------
class FieldAPI(Protocol):
    name: str
    type: int
    bytes: int          # user-visible width (varchar(32) -> 32, nchar(16) -> 16), as taos_fetch_fields_e
    precision: int
    scale: int


class ResultAPI(Protocol):
    fields: list[FieldAPI]
    affected_rows: int
    precision: int

    def blocks(self, max_rows: int = 4096) -> list[bytes]: ...   # query-form raw blocks (version 1, LE lengths)


class SessionAPI(Protocol):
    current_db: str | None

    def execute(self, sql: str) -> ResultAPI: ...
    def write_raw(self, raw_type: int, data: bytes) -> None: ...
    def write_raw_block(self, table: str, block: bytes, fields: list[str] | None) -> None: ...


class EngineAPI(Protocol):
    server_version: str

    def authenticate(self, user: str, password: str) -> None: ...
    def session(self, db: str | None = None) -> SessionAPI: ...


class PolledMessageAPI(Protocol):
    topic: str
    database: str
    vgroup_id: int
    message_type: int     # 1 data, 2 meta, 3 metadata, 4 rawdata
    offset: int           # tmq_get_vgroup_offset
    raw_type: int         # tmq_get_raw raw_type
    raw: bytes            # tmq_get_raw bytes
    # optional: blocks: list[engine.codec.RawBlock] | None; json_meta: str | None


class TmqConsumerAPI(Protocol):
    async def poll(self, timeout_ms: int) -> PolledMessageAPI | None: ...
    def commit(self) -> None: ...
    def commit_offset(self, topic: str, vgroup_id: int, offset: int) -> None: ...
    def committed(self, topic: str, vgroup_id: int) -> int: ...
    def position(self, topic: str, vgroup_id: int) -> int: ...
    def seek(self, topic: str, vgroup_id: int, offset: int) -> None: ...
    def assignment(self, topic: str) -> list[tuple[int, int, int, int]]: ...
    def list_topics(self) -> list[str]: ...
    def unsubscribe(self) -> None: ...
    def subscribe(self, topics: list[str]) -> None: ...
    def close(self) -> None: ...


class TmqServiceAPI(Protocol):
    def subscribe(self, consumer_key: str, group_id: str, client_id: str, topics: list[str],
                  config: dict[str, str]) -> TmqConsumerAPI: ...


class ServerContext:
    """What every connection of one server shares: the engine, the TMQ service, the version."""

    def __init__(self, engine: EngineAPI, tmq: TmqServiceAPI | None = None, *, version: str | None = None,
                 build: str = "tdsync-sandbox") -> None:
        self.engine = engine
        self.tmq = tmq
        self.version = version or getattr(engine, "server_version", "3.3.7.5")
        self.server_info = f"ver:{self.version}\nbuild:{build}\ngitinfo:tdsync"
        self.max_rows_per_block = 4096
        self._consumer_ids = itertools.count(1)
        self.listen_address: str | None = None     # "host:port", for list_instances
        self.trace: Callable[[str, str], None] | None = None   # (endpoint, action) of every request, for tests

    def note(self, endpoint: str, action: str) -> None:
        if self.trace is not None:
            try:
                self.trace(endpoint, action)
            except Exception:  # noqa: BLE001
                log.exception("trace hook failed")

    def next_consumer_key(self) -> str:
        return f"ws-tmq-{next(self._consumer_ids)}"


# ------------------------------------------------------------------------------------------
# JSON helpers
# ------------------------------------------------------------------------------------------
def dumps(obj: dict[str, Any]) -> str:
    """JSON as taosAdapter writes it: compact, UTF-8 (no \\u escapes), no HTML escaping."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _elapsed(t0: int) -> int:
    return max(0, time.perf_counter_ns() - t0)


class BadArgs(Exception):
    """The ``args`` of a request do not unmarshal into the adapter's request struct."""


_MISSING = object()
_U64_MAX = (1 << 64) - 1


def _check_int(value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadArgs(f"bad integer {value!r}")
    return value


def _convert(kind: str, value: Any) -> Any:
    """One field, with Go ``encoding/json`` strictness (JSON null leaves the zero value)."""
    if value is None:
        return {"u64": 0, "i64": 0, "i32": 0, "int": 0, "str": "", "bool": False, "strlist": None,
                "strmap": None, "tvlist": None, "opt_u64": None, "opt_int": None, "any": None,
                "options": None}[kind]
    if kind == "u64" or kind == "opt_u64":
        return _check_int(value, 0, _U64_MAX)
    if kind in ("i64", "int", "opt_int"):
        return _check_int(value, -(1 << 63), (1 << 63) - 1)
    if kind == "i32":
        return _check_int(value, -(1 << 31), (1 << 31) - 1)
    if kind == "str":
        if not isinstance(value, str):
            raise BadArgs(f"bad string {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise BadArgs(f"bad bool {value!r}")
        return value
    if kind == "strlist":
        if not isinstance(value, list):
            raise BadArgs("bad list")
        return [_convert("str", v) for v in value]
    if kind == "strmap":
        if not isinstance(value, dict):
            raise BadArgs("bad map")
        return {k: _convert("str", v) for k, v in value.items()}
    if kind == "tvlist":
        if not isinstance(value, list):
            raise BadArgs("bad list")
        return [parse_args(v, {"topic": "str", "vgroup_id": "i32"}) for v in value]
    if kind == "options":
        if not isinstance(value, list):
            raise BadArgs("bad list")
        out = []
        for v in value:
            item = parse_args(v, {"option": "int", "value": "any"})
            if item["value"] is not None and not isinstance(item["value"], str):
                raise BadArgs("bad option value")
            out.append(item)
        return out
    return value


def parse_args(args: Any, spec: dict[str, str]) -> dict[str, Any]:
    """Unmarshal ``args`` into ``spec`` (field -> kind) the way Go does; raise :class:`BadArgs`.

    Absent ``args`` is an error (``json.Unmarshal`` of nothing), ``null`` gives all zero values,
    keys match case-insensitively, unknown keys are ignored.
    """
    if args is _MISSING:
        raise BadArgs("unexpected end of JSON input")
    out = {name: _convert(kind, None) for name, kind in spec.items()}
    if args is None:
        return out
    if not isinstance(args, dict):
        raise BadArgs("args is not an object")
    lower = {name.lower(): name for name in spec}
    for key, value in args.items():
        name = key if key in spec else lower.get(key.lower())
        if name is not None:
            out[name] = _convert(spec[name], value)
    return out


def lenient_req_id(args: Any) -> int:
    """``req_id`` the way the adapter digs it out of args it could not unmarshal (jsoniter ToUint64)."""
    if not isinstance(args, dict):
        return 0
    value = args.get("req_id")
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return value & _U64_MAX if value >= 0 else 0
    if isinstance(value, float):
        return int(value) & _U64_MAX if value >= 0 else 0
    if isinstance(value, str):
        try:
            number = int(float(value)) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return 0
        return number & _U64_MAX if number >= 0 else 0
    return 0


def decode_request(data: str | bytes) -> tuple[str, Any]:
    """``{"action": ..., "args": ...}`` -> (action, args or _MISSING); raise BadArgs if it is not that."""
    try:
        request = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadArgs(str(exc)) from None
    if request is None:
        return "", _MISSING
    if not isinstance(request, dict):
        raise BadArgs("request is not an object")
    action: Any = ""
    args: Any = _MISSING
    for key, value in request.items():
        low = key.lower()
        if low == "action":
            if value is not None and not isinstance(value, str):
                raise BadArgs("action is not a string")
            action = value or ""
        elif low == "args":
            args = value
    return action, args


def error_response(action: str, req_id: int, code: int, message: str, t0: int, **extra: Any) -> str:
    body = {"code": code & 0xFFFF, "message": message, "action": action, "req_id": req_id,
            "timing": _elapsed(t0)}
    body.update(extra)
    return dumps(body)


def _ok(action: str, req_id: int, t0: int, **fields: Any) -> str:
    body = {"code": 0, "message": "", "action": action, "req_id": req_id, "timing": _elapsed(t0)}
    body.update(fields)
    return dumps(body)


def _tdengine_error(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, TDengineError):
        return exc.code, exc.message
    if isinstance(exc, CodecError):         # bytes a raw write could not decode
        return codes.INVALID_MSG, f"{codes.message_for(codes.INVALID_MSG)}: {exc}"
    log.exception("sandbox internal error", exc_info=exc)
    return codes.TSC_INTERNAL_ERROR, f"{codes.message_for(codes.TSC_INTERNAL_ERROR)}: {exc}"


TSDB_USER_LEN, TSDB_PASSWORD_MAX_LEN, TSDB_DB_NAME_LEN = 24, 255, 65


def check_connect_args(user: str, password: str, db: str) -> None:
    """What ``taos_connect`` checks before it talks to the server (empty or over-long strings).

    taosAdapter hands the JSON strings over as C strings, so an empty user or password is not
    replaced by the default: it fails here.
    """
    if not 0 < len(user.encode()) <= TSDB_USER_LEN - 1:
        raise codes.error(codes.TSC_INVALID_USER_LENGTH)
    if db and len(db.encode()) > TSDB_DB_NAME_LEN - 1:
        raise codes.error(codes.TSC_INVALID_DB_LENGTH)
    if not 0 < len(password.encode()) <= TSDB_PASSWORD_MAX_LEN:
        raise codes.error(codes.TSC_INVALID_PASS_LENGTH)


def _go_parse_bool(value: str) -> bool:
    """Go ``strconv.ParseBool``."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


# ------------------------------------------------------------------------------------------
# Binary frames
# ------------------------------------------------------------------------------------------
_NEW_HEAD = struct.Struct("<QQHQQII")          # flag, action, version, timing, req_id, code, msg_len


def fetch_raw_block_frame(timing: int, req_id: int, result_id: int, *, code: int = 0, message: str = "",
                          block: bytes | None = None) -> bytes:
    """The ``fetch_raw_block`` (action 7) answer; ``block=None`` is the finished/error form."""
    msg = message.encode()
    head = _NEW_HEAD.pack(NEW_FRAME_FLAG, FETCH_RAW_BLOCK, BINARY_PROTOCOL_VERSION, timing, req_id,
                          code & 0xFFFF, len(msg))
    if block is None:
        return head + msg + struct.pack("<QB", result_id, 1)
    return head + msg + struct.pack("<QBI", result_id, 0, len(block)) + block


def tmq_fetch_raw_data_frame(timing: int, req_id: int, message_id: int, raw_type: int, raw: bytes) -> bytes:
    """The TMQ ``fetch_raw_data`` answer (``wsFetchRawBlockMessage``)."""
    head = _NEW_HEAD.pack(NEW_FRAME_FLAG, TMQ_FETCH_RAW_NEW_MESSAGE, BINARY_PROTOCOL_VERSION, timing, req_id, 0, 0)
    return head + struct.pack("<QHI", message_id, raw_type, len(raw)) + raw


def tmq_fetch_raw_data_error_frame(timing: int, req_id: int, code: int, message: str, message_id: int) -> bytes:
    msg = message.encode()
    head = _NEW_HEAD.pack(NEW_FRAME_FLAG, TMQ_FETCH_RAW_NEW_MESSAGE, BINARY_PROTOCOL_VERSION, timing, req_id,
                          code & 0xFFFF, len(msg))
    return head + msg + struct.pack("<Q", message_id)


def tmq_fetch_raw_frame(timing: int, req_id: int, message_id: int, raw_type: int, raw: bytes) -> bytes:
    """The TMQ ``fetch_raw`` answer (38-byte header)."""
    return struct.pack("<QQQQIH", timing, req_id, message_id, TMQ_RAW_MESSAGE, len(raw), raw_type) + raw


def ws_fetch_block_frame(timing: int, result_id: int, block: bytes) -> bytes:
    """The ``/ws`` ``fetch_block`` answer: [timing][result id][block]."""
    return struct.pack("<QQ", timing, result_id) + block


def tmq_fetch_block_frame(timing: int, req_id: int, message_id: int, block: bytes) -> bytes:
    """The TMQ ``fetch_block`` answer: [timing][req_id of the fetch][message id][block]."""
    return struct.pack("<QQQ", timing, req_id, message_id) + block


def block_rows(block: bytes) -> int:
    return struct.unpack_from("<i", block, 8)[0] if len(block) >= 12 else 0


def block_cols(block: bytes) -> int:
    return struct.unpack_from("<i", block, 12)[0] if len(block) >= 16 else 0


def parse_taos_fields(data: bytes, count: int) -> list[tuple[str, int, int]]:
    """``count`` C ``TAOS_FIELD`` structs (72 bytes: name[65], int8 type, pad, int32 bytes)."""
    out = []
    for i in range(count):
        base = i * TAOS_FIELD_SIZE
        raw_name = data[base:base + 65]
        name = raw_name.split(b"\0", 1)[0].decode("utf-8", "replace")
        type_code = struct.unpack_from("<b", data, base + 65)[0]
        nbytes = struct.unpack_from("<i", data, base + 68)[0]
        out.append((name, type_code, nbytes))
    return out


# ------------------------------------------------------------------------------------------
# /ws
# ------------------------------------------------------------------------------------------
class _QueryResult:
    __slots__ = ("id", "fields", "precision", "_blocks", "_index", "block", "rows")

    def __init__(self, result_id: int, fields: list[Any], precision: int, blocks: list[bytes]) -> None:
        self.id = result_id
        self.fields = fields
        self.precision = precision
        self._blocks = blocks
        self._index = 0
        self.block: bytes | None = None
        self.rows = 0

    def next_block(self) -> bytes | None:
        """taos_fetch_raw_block: the next block, or None at the end."""
        while self._index < len(self._blocks):
            block = self._blocks[self._index]
            self._index += 1
            if block_rows(block) > 0:
                return block
        return None


_SQL_ACTIONS_WITHOUT_CONN = ("version", "conn", "check_server_status")
_UNSUPPORTED_SQL_ACTIONS = frozenset({
    "insert", "bind", "get_tag_fields", "get_col_fields", "use_result", "stmt_num_params", "stmt_get_param",
    "stmt2_init", "stmt2_prepare", "stmt2_exec", "stmt2_bind_exec", "stmt2_result", "stmt2_close",
})


class SqlConnection:
    """One ``/ws`` WebSocket: a TDengine connection plus its open result sets."""

    def __init__(self, ctx: ServerContext, send: Send) -> None:
        self.ctx = ctx
        self.send = send
        self.session: SessionAPI | None = None
        self.user: str | None = None
        self.results: dict[int, _QueryResult] = {}
        self._result_ids = itertools.count(1)
        self.closed = False
        self.stmts = Statements(send, lambda: self.session)     # stmt actions (statements.py)

    # -- entry points --------------------------------------------------------------------
    async def on_text(self, data: str | bytes, t0: int | None = None) -> None:
        t0 = t0 if t0 is not None else time.perf_counter_ns()
        try:
            action, args = decode_request(data)
        except BadArgs:
            await self.send(error_response("", 0, ADAPTER_ERROR, "unmarshal request error", t0))
            return
        if not action:
            await self.send(error_response("", lenient_req_id(args), ADAPTER_ERROR, "request no action", t0))
            return
        self.ctx.note("ws", action)
        handler = self._JSON_HANDLERS.get(action)
        if handler is None and action in STMT_ACTIONS and self.session is not None:
            await self.stmts.on_text(action, args, t0)
            return
        if handler is None:
            if action in _UNSUPPORTED_SQL_ACTIONS and self.session is not None:
                await self.send(error_response(action, lenient_req_id(args), ADAPTER_ERROR,
                                               f"action {action} is not supported by the tdsync sandbox", t0))
                return
            if self.session is None and action not in _SQL_ACTIONS_WITHOUT_CONN:
                await self.send(error_response(action, lenient_req_id(args), ADAPTER_ERROR,
                                               "server not connected", t0))
                return
            await self.send(error_response(action, lenient_req_id(args), ADAPTER_ERROR,
                                           f"unknown action {action}", t0))
            return
        spec, method, needs_conn = handler
        if action == "version" and args is _MISSING:
            args = None
        try:
            req = parse_args(args, spec)
        except BadArgs:
            what = "connect" if action == "conn" else action.replace("_", " ")
            await self.send(error_response(action, lenient_req_id(args), ADAPTER_ERROR,
                                           f"unmarshal {what} request error", t0))
            return
        if needs_conn and self.session is None:
            await self.send(error_response(action, lenient_req_id(args), ADAPTER_ERROR, "server not connected", t0))
            return
        await method(self, req, t0)

    async def on_binary(self, data: bytes, t0: int | None = None) -> None:
        t0 = t0 if t0 is not None else time.perf_counter_ns()
        if len(data) < 24:
            req_id = struct.unpack_from("<Q", data)[0] if len(data) >= 8 else 0
            await self.send(error_response("", req_id, ADAPTER_ERROR, "message length is too short", t0))
            return
        req_id, resource_id, action = struct.unpack_from("<QQQ", data)
        name = BINARY_ACTION_NAMES.get(action, "unknown")
        self.ctx.note("ws", name)
        if self.session is None:
            await self.send(error_response(name, req_id, ADAPTER_ERROR, "server not connected", t0))
            return
        if action == WRITE_RAW:
            await self._write_raw(name, req_id, data, t0)
        elif action in (WRITE_RAW_BLOCK, WRITE_RAW_BLOCK_WITH_FIELDS):
            await self._write_raw_block(name, req_id, data, t0, with_fields=action == WRITE_RAW_BLOCK_WITH_FIELDS)
        elif action == BINARY_QUERY:
            await self._binary_query(name, req_id, data, t0)
        elif action == FETCH_RAW_BLOCK:
            await self._fetch_raw_block(req_id, resource_id, data, t0)
        elif action in (SET_TAGS, BIND):
            await self.stmts.on_binary(action, req_id, resource_id, data, t0)
        elif action in BINARY_ACTION_NAMES:
            await self.send(error_response(name, req_id, ADAPTER_ERROR,
                                           f"binary action {name} is not supported by the tdsync sandbox", t0))
        else:
            await self.send(error_response(name, req_id, ADAPTER_ERROR, f"unknown binary action {action}", t0))

    async def close(self) -> None:
        self.closed = True
        self.results.clear()
        self.stmts.close()
        self.session = None

    # -- JSON actions --------------------------------------------------------------------
    async def _version(self, req: dict, t0: int) -> None:
        await self.send(_ok("version", req["req_id"], t0, version=self.ctx.version))

    async def _conn(self, req: dict, t0: int) -> None:
        req_id = req["req_id"]
        if self.session is not None:
            await self.send(error_response("conn", req_id, ADAPTER_ERROR, "duplicate connections", t0))
            return
        try:
            check_connect_args(req["user"], req["password"], req["db"])
            self.ctx.engine.authenticate(req["user"], req["password"])
            session = self.ctx.engine.session(req["db"] or None)
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the client
            code, message = _tdengine_error(exc)
            await self.send(error_response("conn", req_id, code, message, t0))
            return
        if req["mode"] is not None and req["mode"] != 0:
            await self.send(error_response("conn", req_id, ADAPTER_ERROR, f"unexpected mode:{req['mode']}", t0))
            return
        self.session = session
        self.user = req["user"]
        extra: dict[str, Any] = {"version": self.ctx.version}
        if req["list_instances"]:
            extra["list_instances"] = [self.ctx.listen_address] if self.ctx.listen_address else []
        await self.send(_ok("conn", req_id, t0, **extra))

    async def _query(self, req: dict, t0: int) -> None:
        await self._do_query("query", req["req_id"], req["sql"], t0)

    async def _do_query(self, action: str, req_id: int, sql: str, t0: int) -> None:
        assert self.session is not None
        try:
            result = self.session.execute(sql.strip())
            fields = list(result.fields or [])
            blocks = result.blocks(self.ctx.max_rows_per_block) if fields else []
        except Exception as exc:  # noqa: BLE001
            code, message = _tdengine_error(exc)
            await self.send(error_response(action, req_id, code, message, t0))
            return
        if not fields:
            # taos_is_update_query: no result columns
            await self.send(dumps({
                "code": 0, "message": "", "action": action, "req_id": req_id, "timing": _elapsed(t0),
                "id": 0, "is_update": True, "affected_rows": int(result.affected_rows or 0), "fields_count": 0,
                "fields_names": None, "fields_types": None, "fields_lengths": None, "precision": 0,
                "fields_precisions": None, "fields_scales": None,
            }))
            return
        result_id = next(self._result_ids)
        precision = int(result.precision or 0)
        self.results[result_id] = _QueryResult(result_id, fields, precision, list(blocks))
        await self.send(dumps({
            "code": 0, "message": "", "action": action, "req_id": req_id, "timing": _elapsed(t0),
            "id": result_id, "is_update": False, "affected_rows": 0, "fields_count": len(fields),
            "fields_names": [f.name for f in fields],
            "fields_types": [int(f.type) for f in fields],
            "fields_lengths": [int(f.bytes) & 0xFFFFFFFF for f in fields],
            "precision": precision,
            "fields_precisions": [int(getattr(f, "precision", 0) or 0) for f in fields],
            "fields_scales": [int(getattr(f, "scale", 0) or 0) for f in fields],
        }))

    async def _fetch(self, req: dict, t0: int) -> None:
        req_id, result_id = req["req_id"], req["id"]
        item = self.results.get(result_id)
        if item is None:
            await self.send(error_response("fetch", req_id, ADAPTER_ERROR, "result is nil", t0))
            return
        block = item.next_block()
        if block is None:
            del self.results[result_id]
            await self.send(dumps({"code": 0, "message": "", "action": "fetch", "req_id": req_id,
                                   "timing": _elapsed(t0), "id": result_id, "completed": True,
                                   "lengths": None, "rows": 0}))
            return
        item.block = block
        item.rows = block_rows(block)
        lengths = [schema_bytes(int(f.type), int(f.bytes)) for f in item.fields]
        await self.send(dumps({"code": 0, "message": "", "action": "fetch", "req_id": req_id,
                               "timing": _elapsed(t0), "id": result_id, "completed": False,
                               "lengths": lengths, "rows": item.rows}))

    async def _fetch_block(self, req: dict, t0: int) -> None:
        req_id, result_id = req["req_id"], req["id"]
        item = self.results.get(result_id)
        if item is None:
            await self.send(error_response("fetch_block", req_id, ADAPTER_ERROR, "result is nil", t0))
            return
        if item.block is None:
            await self.send(error_response("fetch_block", req_id, ADAPTER_ERROR, "block is nil", t0))
            return
        await self.send(ws_fetch_block_frame(_elapsed(t0), result_id, item.block))

    async def _free_result(self, req: dict, t0: int) -> None:
        self.results.pop(req["id"], None)           # no answer, as taosAdapter

    async def _num_fields(self, req: dict, t0: int) -> None:
        item = self.results.get(req["result_id"])
        if item is None:
            await self.send(error_response("num_fields", req["req_id"], ADAPTER_ERROR, "result is nil", t0))
            return
        await self.send(_ok("num_fields", req["req_id"], t0, num_fields=len(item.fields)))

    async def _get_current_db(self, req: dict, t0: int) -> None:
        db = getattr(self.session, "current_db", None) or ""
        await self.send(_ok("get_current_db", req["req_id"], t0, db=db))

    async def _get_server_info(self, req: dict, t0: int) -> None:
        await self.send(_ok("get_server_info", req["req_id"], t0, info=self.ctx.server_info))

    async def _options_connection(self, req: dict, t0: int) -> None:
        await self.send(_ok("options_connection", req["req_id"], t0))

    async def _check_server_status(self, req: dict, t0: int) -> None:
        await self.send(_ok("check_server_status", req["req_id"], t0, status=SERVER_STATUS_OK, details=""))

    async def _get_connection_info(self, req: dict, t0: int) -> None:
        # TSDB_CONNECTION_INFO_USER = 0, TSDB_CONNECTION_INFO_DATABASE = 1 (others: empty)
        info = {0: self.user or "", 1: getattr(self.session, "current_db", None) or ""}.get(req["info"], "")
        await self.send(_ok("get_connection_info", req["req_id"], t0, info=info))

    _JSON_HANDLERS: dict[str, tuple[dict[str, str], Callable[..., Awaitable[None]], bool]] = {}

    # -- binary actions ------------------------------------------------------------------
    async def _write_raw(self, name: str, req_id: int, data: bytes, t0: int) -> None:
        if len(data) < 30:
            await self.send(error_response(name, req_id, ADAPTER_ERROR, "message length is too short", t0))
            return
        length, raw_type = struct.unpack_from("<IH", data, 24)
        remain = len(data) - 30
        if length > remain:
            await self.send(error_response(
                name, req_id, ADAPTER_ERROR,
                f"uncompleted message, raw length:{length}, remainMessageLength:{remain}", t0))
            return
        assert self.session is not None
        try:
            self.session.write_raw(raw_type, bytes(data[30:30 + length]))
        except Exception as exc:  # noqa: BLE001
            code, message = _tdengine_error(exc)
            await self.send(error_response(name, req_id, code, message, t0))
            return
        await self.send(_ok(name, req_id, t0))

    async def _write_raw_block(self, name: str, req_id: int, data: bytes, t0: int, *, with_fields: bool) -> None:
        if len(data) < 30:
            await self.send(error_response(name, req_id, ADAPTER_ERROR, "message length is too short", t0))
            return
        _num_rows, name_len = struct.unpack_from("<iH", data, 24)
        block_start = 30 + name_len
        if len(data) < block_start + 28:
            await self.send(error_response(
                name, req_id, ADAPTER_ERROR,
                f"uncompleted message, table name length:{name_len}, remainMessageLength:{len(data) - 30}", t0))
            return
        table = data[30:block_start].decode("utf-8", "replace")
        block_len = struct.unpack_from("<i", data, block_start + 4)[0]
        remain = len(data) - block_start
        if block_len < 28 or block_len > remain:
            await self.send(error_response(
                name, req_id, ADAPTER_ERROR,
                f"uncompleted message, block length:{block_len}, remainMessageLength:{remain}", t0))
            return
        block = bytes(data[block_start:block_start + block_len])
        fields: list[str] | None = None
        if with_fields:
            ncols = block_cols(block)
            fields_start = block_start + block_len
            need = max(ncols, 0) * TAOS_FIELD_SIZE
            if ncols < 0 or len(data) - fields_start < need:
                await self.send(error_response(
                    name, req_id, ADAPTER_ERROR,
                    f"uncompleted message, fields length:{need}, remainMessageLength:{len(data) - fields_start}", t0))
                return
            fields = [f[0] for f in parse_taos_fields(bytes(data[fields_start:fields_start + need]), ncols)]
        assert self.session is not None
        try:
            self.session.write_raw_block(table, block, fields)
        except Exception as exc:  # noqa: BLE001
            code, message = _tdengine_error(exc)
            await self.send(error_response(name, req_id, code, message, t0))
            return
        await self.send(_ok(name, req_id, t0))

    async def _binary_query(self, name: str, req_id: int, data: bytes, t0: int) -> None:
        if len(data) < 31:
            await self.send(error_response(name, req_id, ADAPTER_ERROR, "message length is too short", t0))
            return
        version = struct.unpack_from("<H", data, 24)[0]
        if version != BINARY_PROTOCOL_VERSION:
            await self.send(error_response(name, req_id, ADAPTER_ERROR,
                                           f"unknown binary query version:{version}", t0))
            return
        sql_len = struct.unpack_from("<I", data, 26)[0]
        remain = len(data) - 30
        if remain < sql_len:
            await self.send(error_response(
                name, req_id, ADAPTER_ERROR,
                f"uncompleted message, sql length:{sql_len}, remainMessageLength:{remain}", t0))
            return
        sql = bytes(data[30:30 + sql_len]).decode("utf-8", "replace")
        await self._do_query(name, req_id, sql, t0)

    async def _fetch_raw_block(self, req_id: int, result_id: int, data: bytes, t0: int) -> None:
        if len(data) < 26:
            await self.send(fetch_raw_block_frame(_elapsed(t0), req_id, result_id, code=ADAPTER_ERROR,
                                                  message="message length is too short"))
            return
        version = struct.unpack_from("<H", data, 24)[0]
        if version != BINARY_PROTOCOL_VERSION:
            await self.send(fetch_raw_block_frame(_elapsed(t0), req_id, result_id, code=ADAPTER_ERROR,
                                                  message="unknown fetch raw block version"))
            return
        item = self.results.get(result_id)
        if item is None:
            await self.send(fetch_raw_block_frame(_elapsed(t0), req_id, result_id, code=ADAPTER_ERROR,
                                                  message="result is nil"))
            return
        block = item.next_block()
        if block is None:
            del self.results[result_id]
            await self.send(fetch_raw_block_frame(_elapsed(t0), req_id, result_id))
            return
        item.block = block
        item.rows = block_rows(block)
        await self.send(fetch_raw_block_frame(_elapsed(t0), req_id, result_id, block=block))


SqlConnection._JSON_HANDLERS = {
    "version": ({"req_id": "u64"}, SqlConnection._version, False),
    "conn": ({"req_id": "u64", "user": "str", "password": "str", "db": "str", "mode": "opt_int", "tz": "str",
              "app": "str", "ip": "str", "connector": "str", "totp_code": "str", "bearer_token": "str",
              "list_instances": "bool"}, SqlConnection._conn, False),
    "check_server_status": ({"req_id": "u64", "fqdn": "any", "port": "i32"},
                            SqlConnection._check_server_status, False),
    "query": ({"req_id": "u64", "sql": "str"}, SqlConnection._query, True),
    "fetch": ({"req_id": "u64", "id": "u64"}, SqlConnection._fetch, True),
    "fetch_block": ({"req_id": "u64", "id": "u64"}, SqlConnection._fetch_block, True),
    "free_result": ({"req_id": "u64", "id": "u64"}, SqlConnection._free_result, True),
    "num_fields": ({"req_id": "u64", "result_id": "u64"}, SqlConnection._num_fields, True),
    "get_current_db": ({"req_id": "u64"}, SqlConnection._get_current_db, True),
    "get_server_info": ({"req_id": "u64"}, SqlConnection._get_server_info, True),
    "options_connection": ({"req_id": "u64", "options": "options"}, SqlConnection._options_connection, True),
    "get_connection_info": ({"req_id": "u64", "info": "int"}, SqlConnection._get_connection_info, True),
}


# ------------------------------------------------------------------------------------------
# /rest/tmq
# ------------------------------------------------------------------------------------------
class TmqConfError(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind           # "unknown" | "invalid"


def _int_in(value: str, lo: int, hi: int, bits: int = 64) -> int:
    """taosStr2int64/32 with a range check; raise TmqConfError("invalid")."""
    try:
        number = int(value.strip(), 10)
    except ValueError:
        raise TmqConfError("invalid") from None
    if not -(1 << (bits - 1)) <= number < (1 << (bits - 1)) or not lo <= number <= hi:
        raise TmqConfError("invalid")
    return number


def _bool_word(value: str) -> str:
    low = value.lower()
    if low not in ("true", "false"):
        raise TmqConfError("invalid")
    return low


def _flag(value: str) -> str:
    try:
        return "1" if int(value.strip(), 10) != 0 else "0"
    except ValueError:
        return "0"


def tmq_conf_set(conf: dict[str, str], key: str, value: str) -> None:
    """What the C client's ``tmq_conf_set`` accepts; stores a normalised value under the lower-case key.

    Raises ``TmqConfError("unknown")`` / ``TmqConfError("invalid")`` as TMQ_CONF_UNKNOWN / TMQ_CONF_INVALID.
    """
    k = key.lower()
    if k == "group.id":
        if ":" in value:
            raise TmqConfError("invalid")
        conf[k] = value[:191]
    elif k == "client.id":
        conf[k] = value[:255]
    elif k in ("enable.auto.commit", "msg.with.table.name", "experimental.snapshot.enable", "enable.replay"):
        conf[k] = _bool_word(value)
    elif k == "auto.commit.interval.ms":
        conf[k] = str(min(_int_in(value, 0, 1 << 62), 2**31 - 1))
    elif k == "session.timeout.ms":
        conf[k] = str(_int_in(value, 6000, 1800000))
    elif k == "heartbeat.interval.ms":
        session_timeout = int(conf.get("session.timeout.ms", "12000"))
        conf[k] = str(_int_in(value, 1000, session_timeout - 1))
    elif k == "max.poll.interval.ms":
        conf[k] = str(_int_in(value, 1000, 2**31 - 1, bits=32))
    elif k == "auto.offset.reset":
        low = value.lower()
        if low not in ("none", "earliest", "latest"):
            raise TmqConfError("invalid")
        conf[k] = low
    elif k in ("td.connect.ip", "td.connect.user", "td.connect.pass", "td.connect.db"):
        conf[k] = value
    elif k == "td.connect.port":
        conf[k] = str(_int_in(value, 1, 65535))
    elif k in ("msg.consume.excluded", "msg.consume.rawdata", "msg.enable.batchmeta"):
        conf[k] = _flag(value)
    elif k in ("fetch.max.wait.ms", "min.poll.rows"):
        conf[k] = str(_int_in(value, 1, 2**31 - 1))
    else:
        raise TmqConfError("unknown")


class _TmqMessage:
    """The one polled message a socket holds (taosAdapter ``tmpMessage``)."""

    __slots__ = ("index", "msg", "_blocks", "_block_index", "staged")

    def __init__(self, index: int, msg: PolledMessageAPI) -> None:
        self.index = index
        self.msg = msg
        self._blocks: list[Any] | None = None
        self._block_index = 0
        self.staged: bytearray | None = None     # fetch_block frame prepared by the last fetch

    def blocks(self) -> list[Any]:
        if self._blocks is None:
            blocks = getattr(self.msg, "blocks", None)
            if blocks is None:
                from engine.codec import RawDataMessage

                raw_type = int(self.msg.raw_type)
                blocks = list(RawDataMessage.decode(bytes(self.msg.raw), raw_type).blocks) \
                    if raw_type in (2, 4) else []
            self._blocks = list(blocks)
        return self._blocks

    def next_block(self) -> Any | None:
        blocks = self.blocks()
        while self._block_index < len(blocks):
            block = blocks[self._block_index]
            self._block_index += 1
            if block.num_rows > 0:
                return block
        return None


_TMQ_SPECS: dict[str, dict[str, str]] = {
    "version": {"req_id": "u64"},
    "subscribe": {
        "req_id": "u64", "user": "str", "password": "str", "db": "str", "group_id": "str", "client_id": "str",
        "offset_rest": "str", "offset_reset": "str", "topics": "strlist", "auto_commit": "str",
        "auto_commit_interval_ms": "str", "snapshot_enable": "str", "with_table_name": "str",
        "enable_batch_meta": "str", "msg_consume_excluded": "str", "session_timeout_ms": "str",
        "max_poll_interval_ms": "str", "tz": "str", "app": "str", "ip": "str", "connector": "str",
        "msg_consume_rawdata": "str", "list_instances": "bool", "config": "strmap",
    },
    "poll": {"req_id": "u64", "blocking_time": "i64", "message_id": "opt_u64"},
    "fetch": {"req_id": "u64", "message_id": "u64"},
    "fetch_block": {"req_id": "u64", "message_id": "u64"},
    "fetch_raw": {"req_id": "u64", "message_id": "u64"},
    "fetch_raw_data": {"req_id": "u64", "message_id": "u64"},
    "fetch_json_meta": {"req_id": "u64", "message_id": "u64"},
    "commit": {"req_id": "u64", "message_id": "u64"},
    "unsubscribe": {"req_id": "u64"},
    "assignment": {"req_id": "u64", "topic": "str"},
    "seek": {"req_id": "u64", "topic": "str", "vgroup_id": "i32", "offset": "i64"},
    "committed": {"req_id": "u64", "topic_vgroup_ids": "tvlist"},
    "position": {"req_id": "u64", "topic_vgroup_ids": "tvlist"},
    "list_topics": {"req_id": "u64"},
    "commit_offset": {"req_id": "u64", "topic": "str", "vgroup_id": "i32", "offset": "i64"},
}

# subscribe JSON field -> tmq_conf key (taosAdapter controller/ws/tmq/tmq.go subscribe)
_SUBSCRIBE_OPTIONS = (
    ("group_id", "group.id"), ("client_id", "client.id"), ("db", "td.connect.db"),
    ("snapshot_enable", "experimental.snapshot.enable"), ("enable_batch_meta", "msg.enable.batchmeta"),
    ("session_timeout_ms", "session.timeout.ms"), ("max_poll_interval_ms", "max.poll.interval.ms"),
    ("msg_consume_rawdata", "msg.consume.rawdata"), ("with_table_name", "msg.with.table.name"),
    ("msg_consume_excluded", "msg.consume.excluded"), ("auto_commit", "enable.auto.commit"),
    ("auto_commit_interval_ms", "auto.commit.interval.ms"),
)
_IGNORED_SUBSCRIBE_CONFIG = frozenset({"td.connect.user", "td.connect.pass", "td.connect.ip", "td.connect.port"})


class TmqConnection:
    """One ``/rest/tmq`` WebSocket: at most one consumer and one held message."""

    def __init__(self, ctx: ServerContext, send: Send) -> None:
        self.ctx = ctx
        self.send = send
        self.consumer: TmqConsumerAPI | None = None
        self.consumer_key: str | None = None
        self.subscribe_args: tuple[str, str, dict[str, str]] | None = None
        self.unsubscribed = False
        self.message: _TmqMessage | None = None
        self._index = 0
        self.auto_commit = False
        self.auto_commit_interval = 5.0
        self.next_commit = 0.0
        self.closed = False
        self._lock = asyncio.Lock()
        self._polls: asyncio.Queue[tuple[dict, int]] = asyncio.Queue(maxsize=1)
        self._poll_task: asyncio.Task | None = None

    # -- entry points --------------------------------------------------------------------
    async def on_text(self, data: str | bytes, t0: int | None = None) -> None:
        t0 = t0 if t0 is not None else time.perf_counter_ns()
        try:
            action, args = decode_request(data)
        except BadArgs:
            # taosAdapter only logs this; answering keeps pending clients from hanging and is harmless
            # to the official clients (they drop answers they cannot match).
            await self.send(error_response("", 0, ADAPTER_ERROR, "unmarshal request error", t0))
            return
        self.ctx.note("tmq", action)
        spec = _TMQ_SPECS.get(action)
        if spec is None:
            await self.send(error_response(action, lenient_req_id(args), ADAPTER_ERROR,
                                           f"unknown action {action}" if action else "request no action", t0))
            return
        if action == "version" and args is _MISSING:
            args = None
        try:
            req = parse_args(args, spec)
        except BadArgs:
            await self.send(error_response(action, lenient_req_id(args), ADAPTER_ERROR,
                                           f"unmarshal {action} args error", t0))
            return
        if action == "poll":
            self._enqueue_poll(req, t0)
            return
        await getattr(self, "_" + action)(req, t0)

    async def on_binary(self, data: bytes, t0: int | None = None) -> None:
        # taosAdapter's TMQ endpoint has no binary actions (the frame is ignored there).
        t0 = t0 if t0 is not None else time.perf_counter_ns()
        req_id = struct.unpack_from("<Q", data)[0] if len(data) >= 8 else 0
        await self.send(error_response("", req_id, ADAPTER_ERROR, "binary messages are not supported on /rest/tmq", t0))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        task = self._poll_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self.message = None
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except Exception:  # noqa: BLE001
                log.exception("closing TMQ consumer failed")

    # -- helpers -------------------------------------------------------------------------
    async def _not_init(self, action: str, req: dict, t0: int, with_message_id: bool = False) -> bool:
        if self.consumer is not None:
            return False
        extra = {"message_id": req["message_id"]} if with_message_id else {}
        await self.send(error_response(action, req["req_id"], ADAPTER_ERROR, "tmq not init", t0, **extra))
        return True

    async def _err(self, action: str, req_id: int, exc: BaseException, t0: int, **extra: Any) -> None:
        code, message = _tdengine_error(exc)
        await self.send(error_response(action, req_id, code, message, t0, **extra))

    # -- version / subscribe / unsubscribe -----------------------------------------------
    async def _version(self, req: dict, t0: int) -> None:
        await self.send(_ok("version", req["req_id"], t0, version=self.ctx.version))

    async def _subscribe(self, req: dict, t0: int) -> None:
        action, req_id = "subscribe", req["req_id"]
        async with self._lock:
            if self.closed:
                return
            extra: dict[str, Any] = {"version": self.ctx.version}
            if req["list_instances"]:
                extra["list_instances"] = [self.ctx.listen_address] if self.ctx.listen_address else []
            if self.consumer is not None:
                if not self.unsubscribed:
                    await self.send(error_response(action, req_id, ADAPTER_ERROR,
                                                   "tmq should have unsubscribed first", t0))
                    return
                try:
                    self._resubscribe(list(req["topics"] or []))
                except Exception as exc:  # noqa: BLE001
                    await self._err(action, req_id, exc, t0)
                    return
                self.unsubscribed = False
                await self.send(_ok(action, req_id, t0, **extra))
                return
            if self.ctx.tmq is None:
                await self.send(error_response(action, req_id, ADAPTER_ERROR, "tmq is not available", t0))
                return
            options: dict[str, str] = {}
            for field, key in _SUBSCRIBE_OPTIONS:
                if req[field]:
                    options[key] = req[field]
            options["td.connect.user"] = req["user"]
            options["td.connect.pass"] = req["password"]
            offset_reset = req["offset_reset"] or req["offset_rest"]
            if offset_reset:
                options["auto.offset.reset"] = offset_reset
            for key, value in (req["config"] or {}).items():
                if key not in _IGNORED_SUBSCRIBE_CONFIG:
                    options[key] = value
            auto_commit = False
            interval = 5.0
            if "enable.auto.commit" in options:
                try:
                    auto_commit = _go_parse_bool(options["enable.auto.commit"])
                except ValueError as exc:
                    await self.send(error_response(action, req_id, ADAPTER_ERROR, str(exc), t0))
                    return
            options["enable.auto.commit"] = "false"
            if "auto.commit.interval.ms" in options:
                text = options["auto.commit.interval.ms"]
                try:
                    interval = int(text, 10) / 1000.0
                except ValueError:
                    await self.send(error_response(action, req_id, ADAPTER_ERROR,
                                                   f'strconv.ParseInt: parsing "{text}": invalid syntax', t0))
                    return
            conf: dict[str, str] = {}
            for key, value in options.items():
                try:
                    tmq_conf_set(conf, key, value)
                except TmqConfError as exc:
                    message = (f"unknown configuration key: {key}" if exc.kind == "unknown"
                               else f"invalid value for key '{key}': {value}")
                    await self.send(error_response(action, req_id, codes.INVALID_PARA, message, t0))
                    return
            if not conf.get("group.id"):
                await self.send(error_response(action, req_id, ADAPTER_ERROR,
                                               "malloc tmq element failed or group is empty", t0))
                return
            user = conf.pop("td.connect.user", "")
            password = conf.pop("td.connect.pass", "")
            try:
                check_connect_args(user, password, "")
                self.ctx.engine.authenticate(user, password)
            except TDengineError:
                # tmq_consumer_new fails with errstr "init tscObj failed"; the adapter reports it as 0xffff
                await self.send(error_response(action, req_id, ADAPTER_ERROR, "init tscObj failed", t0))
                return
            key = self.ctx.next_consumer_key()
            try:
                consumer = self.ctx.tmq.subscribe(key, conf["group.id"], conf.get("client.id", ""),
                                                  list(req["topics"] or []), dict(conf))
            except Exception as exc:  # noqa: BLE001
                await self._err(action, req_id, exc, t0)
                return
            self.consumer = consumer
            self.consumer_key = key
            self.subscribe_args = (conf["group.id"], conf.get("client.id", ""), dict(conf))
            self.unsubscribed = False
            self.auto_commit = auto_commit
            self.auto_commit_interval = interval
            self.next_commit = 0.0
            if self._poll_task is None:
                self._poll_task = asyncio.get_running_loop().create_task(self._poll_loop())
            await self.send(_ok(action, req_id, t0, **extra))

    def _resubscribe(self, topics: list[str]) -> None:
        assert self.consumer is not None
        resubscribe = getattr(self.consumer, "subscribe", None)
        if callable(resubscribe):
            resubscribe(topics)
            return
        assert self.ctx.tmq is not None and self.subscribe_args is not None and self.consumer_key
        group, client, conf = self.subscribe_args
        self.consumer = self.ctx.tmq.subscribe(self.consumer_key, group, client, topics, dict(conf))

    async def _unsubscribe(self, req: dict, t0: int) -> None:
        async with self._lock:
            if self.closed:
                return
            if await self._not_init("unsubscribe", req, t0):
                return
            assert self.consumer is not None
            try:
                self.consumer.unsubscribe()
            except Exception as exc:  # noqa: BLE001
                await self._err("unsubscribe", req["req_id"], exc, t0)
                return
            self.message = None
            self.unsubscribed = True
            await self.send(_ok("unsubscribe", req["req_id"], t0))

    # -- poll ----------------------------------------------------------------------------
    def _enqueue_poll(self, req: dict, t0: int) -> None:
        """One pending poll at a time; a newer one replaces a queued older one (taosAdapter setPollRequest)."""
        try:
            self._polls.put_nowait((req, t0))
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                dropped = self._polls.get_nowait()
                log.warning("drop poll request %s", dropped[0])
            self._polls.put_nowait((req, t0))
        if self._poll_task is None and not self.closed:
            self._poll_task = asyncio.get_running_loop().create_task(self._poll_loop())

    async def _poll_loop(self) -> None:
        while not self.closed:
            req, t0 = await self._polls.get()
            try:
                await self._poll(req, t0)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("poll failed")

    async def _poll(self, req: dict, t0: int) -> None:
        action, req_id = "poll", req["req_id"]
        if self.consumer is None:
            await self.send(error_response(action, req_id, ADAPTER_ERROR, "tmq not init", t0))
            return
        held = self.message
        if req["message_id"] is not None and held is not None and req["message_id"] != held.index:
            # the client lost our previous answer: announce the held message again
            await self.send(self._poll_answer(req_id, t0, held))
            return
        consumer = self.consumer
        now = time.monotonic()
        if self.auto_commit and now > self.next_commit:
            try:
                consumer.commit()
            except Exception:  # noqa: BLE001
                log.exception("tmq autocommit error")
            self.next_commit = now + self.auto_commit_interval
        try:
            msg = await consumer.poll(int(req["blocking_time"]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            await self._err(action, req_id, exc, t0)
            return
        if self.closed:
            return
        if msg is None:
            await self.send(dumps({
                "code": 0, "message": "", "action": action, "req_id": req_id, "timing": _elapsed(t0),
                "have_message": False, "topic": "", "database": "", "vgroup_id": 0, "message_type": 0,
                "message_id": 0, "offset": 0,
            }))
            return
        message_type = int(msg.message_type)
        if message_type not in (TMQ_RES_DATA, TMQ_RES_TABLE_META, TMQ_RES_METADATA, TMQ_RES_RAWDATA):
            await self.send(error_response(action, req_id, ADAPTER_ERROR, f"unavailable tmq type:{message_type}", t0))
            return
        self._index += 1
        self.message = _TmqMessage(self._index, msg)
        await self.send(self._poll_answer(req_id, t0, self.message))

    @staticmethod
    def _poll_answer(req_id: int, t0: int, held: _TmqMessage) -> str:
        msg = held.msg
        return dumps({
            "code": 0, "message": "", "action": "poll", "req_id": req_id, "timing": _elapsed(t0),
            "have_message": True, "topic": msg.topic, "database": msg.database, "vgroup_id": int(msg.vgroup_id),
            "message_type": int(msg.message_type), "message_id": held.index, "offset": int(msg.offset),
        })

    # -- message access ------------------------------------------------------------------
    async def _held_for(self, action: str, req: dict, t0: int, mismatch: str, *,
                        data: bool = False) -> _TmqMessage | None:
        """The held message a fetch action asks for, or None once the refusal has been sent.

        ``mismatch`` is the adapter's text for a wrong message id (it differs per action);
        ``data`` refuses meta messages, as fetch and fetch_block do.
        """
        if await self._not_init(action, req, t0, True):
            return None
        held = await self._held(action, req, t0, mismatch)
        if held is not None and data and int(held.msg.message_type) not in (TMQ_RES_DATA, TMQ_RES_METADATA):
            await self.send(error_response(action, req["req_id"], ADAPTER_ERROR, "message type is not data", t0,
                                           message_id=req["message_id"]))
            return None
        return held

    async def _held(self, action: str, req: dict, t0: int, mismatch: str) -> _TmqMessage | None:
        held = self.message
        if held is None:
            await self.send(error_response(action, req["req_id"], ADAPTER_ERROR, "message has been freed", t0,
                                           message_id=req["message_id"]))
            return None
        if held.index != req["message_id"]:
            await self.send(error_response(action, req["req_id"], ADAPTER_ERROR, mismatch, t0,
                                           message_id=req["message_id"]))
            return None
        return held

    async def _fetch(self, req: dict, t0: int) -> None:
        action, req_id, message_id = "fetch", req["req_id"], req["message_id"]
        held = await self._held_for(action, req, t0, "message ID are not equal", data=True)
        if held is None:
            return
        try:
            block = held.next_block()
        except Exception as exc:  # noqa: BLE001
            await self._err(action, req_id, exc, t0, message_id=message_id)
            return
        if block is None:
            held.staged = None
            await self.send(dumps({
                "code": 0, "message": "", "action": action, "req_id": req_id, "timing": 0,
                "message_id": message_id, "completed": True, "table_name": "", "rows": 0, "fields_count": 0,
                "fields_names": None, "fields_types": None, "fields_lengths": None, "precision": 0,
            }))
            return
        columns = [block.column(i) for i in range(block.num_columns)]
        names = list(block.column_names)
        data = block.to_bytes()
        held.staged = bytearray(tmq_fetch_block_frame(0, req_id, message_id, data))
        precision = block.precision
        await self.send(dumps({
            "code": 0, "message": "", "action": action, "req_id": req_id, "timing": _elapsed(t0),
            "message_id": message_id, "completed": False, "table_name": block.table_name or "",
            "rows": block.num_rows, "fields_count": len(columns), "fields_names": names,
            "fields_types": [c.type_code for c in columns],
            "fields_lengths": [c.bytes for c in columns],
            "precision": precision if precision is not None and precision >= 0 else 0,
        }))

    async def _fetch_block(self, req: dict, t0: int) -> None:
        action, req_id, message_id = "fetch_block", req["req_id"], req["message_id"]
        held = await self._held_for(action, req, t0, "message is nil", data=True)
        if held is None:
            return
        if not held.staged:
            await self.send(error_response(action, req_id, ADAPTER_ERROR, "no fetch data", t0,
                                           message_id=message_id))
            return
        struct.pack_into("<Q", held.staged, 0, _elapsed(t0))
        await self.send(bytes(held.staged))

    async def _fetch_raw(self, req: dict, t0: int) -> None:
        action, req_id, message_id = "fetch_raw", req["req_id"], req["message_id"]
        held = await self._held_for(action, req, t0, "message ID is not equal")
        if held is None:
            return
        await self.send(tmq_fetch_raw_frame(_elapsed(t0), req_id, message_id, int(held.msg.raw_type),
                                            bytes(held.msg.raw)))

    async def _fetch_raw_data(self, req: dict, t0: int) -> None:
        req_id, message_id = req["req_id"], req["message_id"]
        if self.consumer is None:
            await self.send(tmq_fetch_raw_data_error_frame(_elapsed(t0), req_id, ADAPTER_ERROR, "tmq not init",
                                                           message_id))
            return
        held = self.message
        if held is None or held.index != message_id:
            text = "message has been freed" if held is None else "message ID is not equal"
            await self.send(tmq_fetch_raw_data_error_frame(_elapsed(t0), req_id, ADAPTER_ERROR, text, message_id))
            return
        await self.send(tmq_fetch_raw_data_frame(_elapsed(t0), req_id, message_id, int(held.msg.raw_type),
                                                 bytes(held.msg.raw)))

    async def _fetch_json_meta(self, req: dict, t0: int) -> None:
        action, req_id, message_id = "fetch_json_meta", req["req_id"], req["message_id"]
        if await self._not_init(action, req, t0, True):
            return
        held = self.message
        if held is None:
            await self.send(error_response(action, req_id, ADAPTER_ERROR, "message has been freed", t0,
                                           message_id=message_id))
            return
        message_type = int(held.msg.message_type)
        if message_type not in (TMQ_RES_TABLE_META, TMQ_RES_METADATA):
            await self.send(error_response(action, req_id, ADAPTER_ERROR,
                                           f"message type can not get meta, type: {message_type}", t0,
                                           message_id=message_id))
            return
        if held.index != message_id:
            await self.send(error_response(action, req_id, ADAPTER_ERROR, "message ID is not equal", t0,
                                           message_id=message_id))
            return
        meta = getattr(held.msg, "json_meta", None)
        data: Any = None
        if meta:
            try:
                data = json.loads(meta) if isinstance(meta, str | bytes) else meta
            except ValueError:
                data = None
        await self.send(dumps({"code": 0, "message": "", "action": action, "req_id": req_id,
                               "timing": _elapsed(t0), "message_id": message_id, "data": data}))

    # -- offsets -------------------------------------------------------------------------
    async def _commit(self, req: dict, t0: int) -> None:
        if await self._not_init("commit", req, t0):
            return
        assert self.consumer is not None
        try:
            self.consumer.commit()
        except Exception as exc:  # noqa: BLE001
            await self._err("commit", req["req_id"], exc, t0)
            return
        await self.send(_ok("commit", req["req_id"], t0, message_id=req["message_id"]))

    async def _commit_offset(self, req: dict, t0: int) -> None:
        if await self._not_init("commit_offset", req, t0):
            return
        assert self.consumer is not None
        try:
            self.consumer.commit_offset(req["topic"], req["vgroup_id"], req["offset"])
        except Exception as exc:  # noqa: BLE001
            await self._err("commit_offset", req["req_id"], exc, t0)
            return
        await self.send(_ok("commit_offset", req["req_id"], t0, topic=req["topic"], vgroup_id=req["vgroup_id"],
                            offset=req["offset"]))

    async def _offsets(self, action: str, req: dict, t0: int) -> None:
        if await self._not_init(action, req, t0):
            return
        assert self.consumer is not None
        getter = self.consumer.committed if action == "committed" else self.consumer.position
        values: list[int] = []
        for tv in req["topic_vgroup_ids"] or []:
            try:
                value = int(getter(tv["topic"], tv["vgroup_id"]))
            except Exception as exc:  # noqa: BLE001
                await self._err(action, req["req_id"], exc, t0)
                return
            if value < 0 and value != OFFSET_INVALID:
                await self.send(error_response(action, req["req_id"], value, codes.message_for(value), t0))
                return
            values.append(value)
        await self.send(_ok(action, req["req_id"], t0, **{action: values}))

    async def _committed(self, req: dict, t0: int) -> None:
        await self._offsets("committed", req, t0)

    async def _position(self, req: dict, t0: int) -> None:
        await self._offsets("position", req, t0)

    async def _seek(self, req: dict, t0: int) -> None:
        if await self._not_init("seek", req, t0):
            return
        assert self.consumer is not None
        try:
            self.consumer.seek(req["topic"], req["vgroup_id"], req["offset"])
        except Exception as exc:  # noqa: BLE001
            await self._err("seek", req["req_id"], exc, t0)
            return
        await self.send(_ok("seek", req["req_id"], t0))

    async def _assignment(self, req: dict, t0: int) -> None:
        if await self._not_init("assignment", req, t0):
            return
        assert self.consumer is not None
        try:
            items = self.consumer.assignment(req["topic"])
        except Exception as exc:  # noqa: BLE001
            await self._err("assignment", req["req_id"], exc, t0)
            return
        assignment = [{"vgroup_id": int(v), "offset": int(o), "begin": int(b), "end": int(e)} for v, o, b, e in items]
        await self.send(_ok("assignment", req["req_id"], t0, assignment=assignment))

    async def _list_topics(self, req: dict, t0: int) -> None:
        if await self._not_init("list_topics", req, t0):
            return
        assert self.consumer is not None
        try:
            topics = list(self.consumer.list_topics())
        except Exception as exc:  # noqa: BLE001
            await self._err("list_topics", req["req_id"], exc, t0)
            return
        await self.send(_ok("list_topics", req["req_id"], t0, topics=topics))
