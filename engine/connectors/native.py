"""Native connector: the TDengine C client (libtaos) through ctypes.

The same asyncio Source/Sink interface as the WebSocket connector (see ``engine.connectors.base``):
every blocking C call runs in a thread executor owned by the endpoint. A source has one TMQ consumer
whose calls all run, in order, on one thread (libtaos keeps the error code of a call in a
thread-local ``terrno``, and poll/commit/seek must not overlap), plus one SQL connection on another
thread. A sink has one connection and thread per target database, so raw writes to a database are
applied in the order they were awaited; ``tmq_write_raw`` writes into the connection's *current*
database, so each writer connection has its database selected (``taos_select_db``) first. SQL
(``execute``/``query``) goes over a separate connection. Connections open on first use.

Loading libtaos happens when a native endpoint is opened (``NativeSource``/``NativeSink``, which
``engine.connectors.open_source``/``open_sink`` build for ``taos://`` endpoints), never when this
module is imported;
:func:`library_candidates` lists where it is looked for (``TAOS_LIBRARY_PATH`` first, then the names
the platform loader finds the way taospy does, then ``ctypes.util.find_library('taos')``, then the
TDengine client package's install directories). If none loads, :class:`NativeLibraryMissing` names
every candidate and says how to install or point to the library.

Signatures and struct layouts are those of ``include/client/taos.h`` of TDengine 3.3.7
(``tmq_raw_data`` 16 bytes, ``tmq_topic_assignment`` 32 bytes, ``TAOS_FIELD`` 72 bytes on 64-bit
platforms); formats of the raw bytes are in /work/shared/reference/formats.md sections 2-4.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import glob
import ntpath
import os
import platform
import posixpath
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from ctypes import POINTER, c_char, c_char_p, c_int, c_int32, c_int64, c_uint16, c_uint32, c_void_p
from typing import Any

from engine.codec import RawBlock
from engine.connectors.base import RawMessage, VgroupAssignment
from engine.endpoint import Endpoint
from engine.errors import (
    ConnectionLost,
    ConnectorError,
    NativeLibraryMissing,
    TDengineError,
    TdsyncError,
    UsageError,
)

__all__ = [
    "LIBRARY_ENV", "TaosLibrary", "TmqRawData", "TmqTopicAssignment", "TaosField", "library_candidates",
    "load_library", "NativeSource", "NativeSink", "NETWORK_CODES",
]

LIBRARY_ENV = "TAOS_LIBRARY_PATH"

# File names of the client library per platform.system(): the loader's search path finds the first;
# the TDengine client package links libtaos.so -> libtaos.so.1 -> driver/libtaos.so.<version>.
LIBRARY_NAMES: dict[str, tuple[str, ...]] = {
    "Linux": ("libtaos.so", "libtaos.so.1"),
    "Darwin": ("libtaos.dylib", "libtaos.1.dylib"),
    "Windows": ("taos.dll",),
}
# Where the TDengine client package installs it (packaging/tools/install_client.sh of TDengine).
INSTALL_DIRS: dict[str, tuple[str, ...]] = {
    "Linux": ("/usr/local/taos/driver", "/usr/lib", "/usr/lib64", "/usr/local/lib"),
    "Darwin": ("/usr/local/lib", "/usr/local/taos/driver"),
    "Windows": ("C:\\TDengine\\driver",),
}
# 3.3.6+: libtaos is a thin wrapper that dlopen()s this library by bare name at first use.
_NATIVE_DRIVER_GLOB = {"Linux": "libtaosnative.so*", "Darwin": "libtaosnative*.dylib", "Windows": "taosnative.dll"}
_VERSIONED_GLOB = {"Linux": "libtaos.so.*", "Darwin": "libtaos.*.dylib", "Windows": "taos.dll"}

# Error codes (low 16 bits) that mean the connection or the network failed, not the request:
# RPC_NETWORK_UNAVAIL, RPC_FQDN_ERROR, RPC_BROKEN_LINK, RPC_TIMEOUT, RPC_SOMENODE_NOT_CONNECTED,
# RPC_SOMENODE_BROKEN_LINK, RPC_NETWORK_ERROR, RPC_NETWORK_BUSY, RPC_MODULE_QUIT, RPC_ASYNC_MODULE_QUIT,
# TIMEOUT_ERROR, TSC_DISCONNECTED, TSC_CONN_KILLED (TDengine include/util/taoserror.h).
NETWORK_CODES = frozenset({0x000B, 0x0015, 0x0018, 0x0019, 0x0020, 0x0021, 0x0023, 0x0024, 0x0026, 0x0027,
                           0x012C, 0x0213, 0x0215})
TMQ_NO_COMMITTED = 0x4011
TMQ_CONF_RESULTS = {-2: "unknown key", -1: "invalid value"}
# A tdsync consumer's defaults (replication_design.md): its own writes are excluded and it starts at
# the WAL's beginning; enable.auto.commit=false is forced (offsets are committed once the sink has them).
DEFAULT_TMQ_CONFIG = {
    "msg.consume.excluded": "1",
    "auto.offset.reset": "earliest",
    "msg.with.table.name": "true",
}


# --- C structures (taos.h) ---------------------------------------------------------------------
class TmqRawData(ctypes.Structure):
    """``typedef struct tmq_raw_data { void *raw; uint32_t raw_len; uint16_t raw_type; }``"""

    _fields_ = [("raw", c_void_p), ("raw_len", c_uint32), ("raw_type", c_uint16)]


class TmqTopicAssignment(ctypes.Structure):
    """``typedef struct tmq_topic_assignment { int32_t vgId; int64_t currentOffset; int64_t begin; int64_t end; }``"""

    _fields_ = [("vgId", c_int32), ("currentOffset", c_int64), ("begin", c_int64), ("end", c_int64)]


class TaosField(ctypes.Structure):
    """``typedef struct taosField { char name[65]; int8_t type; int32_t bytes; } TAOS_FIELD``"""

    _fields_ = [("name", c_char * 65), ("type", ctypes.c_int8), ("bytes", c_int32)]


# name: (restype, argtypes) — every function tdsync calls, checked when the library is loaded.
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "taos_get_client_info": (c_char_p, []),
    "taos_connect": (c_void_p, [c_char_p, c_char_p, c_char_p, c_char_p, c_uint16]),
    "taos_close": (None, [c_void_p]),
    "taos_query": (c_void_p, [c_void_p, c_char_p]),
    "taos_errno": (c_int, [c_void_p]),
    "taos_errstr": (c_char_p, [c_void_p]),
    "taos_free_result": (None, [c_void_p]),
    "taos_field_count": (c_int, [c_void_p]),
    "taos_affected_rows": (c_int, [c_void_p]),
    "taos_result_precision": (c_int, [c_void_p]),
    "taos_fetch_fields": (POINTER(TaosField), [c_void_p]),
    "taos_fetch_raw_block": (c_int, [c_void_p, POINTER(c_int), POINTER(c_void_p)]),
    "taos_select_db": (c_int, [c_void_p, c_char_p]),
    "tmq_conf_new": (c_void_p, []),
    "tmq_conf_set": (c_int, [c_void_p, c_char_p, c_char_p]),
    "tmq_conf_destroy": (None, [c_void_p]),
    "tmq_list_new": (c_void_p, []),
    "tmq_list_append": (c_int32, [c_void_p, c_char_p]),
    "tmq_list_destroy": (None, [c_void_p]),
    "tmq_consumer_new": (c_void_p, [c_void_p, POINTER(c_char), c_int32]),
    "tmq_subscribe": (c_int32, [c_void_p, c_void_p]),
    "tmq_consumer_poll": (c_void_p, [c_void_p, c_int64]),
    "tmq_consumer_close": (c_int32, [c_void_p]),
    "tmq_commit_offset_sync": (c_int32, [c_void_p, c_char_p, c_int32, c_int64]),
    "tmq_get_topic_assignment": (c_int32, [c_void_p, c_char_p, POINTER(POINTER(TmqTopicAssignment)),
                                           POINTER(c_int32)]),
    "tmq_free_assignment": (None, [POINTER(TmqTopicAssignment)]),
    "tmq_offset_seek": (c_int32, [c_void_p, c_char_p, c_int32, c_int64]),
    "tmq_position": (c_int64, [c_void_p, c_char_p, c_int32]),
    "tmq_committed": (c_int64, [c_void_p, c_char_p, c_int32]),
    "tmq_get_res_type": (c_int, [c_void_p]),
    "tmq_get_topic_name": (c_char_p, [c_void_p]),
    "tmq_get_db_name": (c_char_p, [c_void_p]),
    "tmq_get_vgroup_id": (c_int32, [c_void_p]),
    "tmq_get_vgroup_offset": (c_int64, [c_void_p]),
    "tmq_err2str": (c_char_p, [c_int32]),
    "tmq_get_raw": (c_int32, [c_void_p, POINTER(TmqRawData)]),
    "tmq_write_raw": (c_int32, [c_void_p, TmqRawData]),
    "tmq_free_raw": (None, [TmqRawData]),
}


class TaosLibrary:
    """A loaded libtaos with the prototypes above bound; ``lib.<function>`` calls it."""

    def __init__(self, cdll: Any, path: str) -> None:
        missing = [name for name in _PROTOTYPES if not hasattr(cdll, name)]
        if missing:
            raise AttributeError(f"{path} lacks {', '.join(missing)} (not a TDengine 3.x client library)")
        for name, (restype, argtypes) in _PROTOTYPES.items():
            function = getattr(cdll, name)
            function.restype = restype
            function.argtypes = argtypes
            setattr(self, name, function)
        self.path = path
        self._cdll = cdll

    @property
    def client_version(self) -> str:
        return (self.taos_get_client_info() or b"").decode("utf-8", "replace")

    def error_text(self, code: int) -> str:
        """TDengine's text for a code a call returned (with the client's detail message when it has one)."""
        text = self.tmq_err2str(_int32(code))
        return text.decode("utf-8", "replace") if text else f"error 0x{code & 0xFFFFFFFF:08x}"

    def last_error(self, res: int | None = None) -> tuple[int, str]:
        """The calling thread's error (``terrno``) or a result's error: (code, text)."""
        code = self.taos_errno(res)
        text = self.taos_errstr(res)
        return code, (text.decode("utf-8", "replace") if text else "")


# --- finding and loading the library -----------------------------------------------------------
def library_candidates(system: str | None = None, environ: Mapping[str, str] | None = None,
                       find_library: Callable[[str], str | None] | None = ctypes.util.find_library) -> list[str]:
    """Every path or name to try, in order, without loading anything.

    1. ``$TAOS_LIBRARY_PATH``: the library file itself, or a directory holding it — when set, nothing else;
    2. the platform's file names, resolved by the dynamic loader (LD_LIBRARY_PATH and ldconfig on Linux,
       DYLD_* and /usr/local/lib on macOS, PATH on Windows) — what taospy does;
    3. ``ctypes.util.find_library("taos")``;
    4. the TDengine client package's install directories.
    """
    system = system or platform.system()
    environ = os.environ if environ is None else environ
    names = LIBRARY_NAMES.get(system, LIBRARY_NAMES["Linux"])
    join = ntpath.join if system == "Windows" else posixpath.join
    out: list[str] = []
    configured = environ.get(LIBRARY_ENV, "").strip()
    if configured:   # an explicit setting is the only place looked at: no surprise library from elsewhere
        if not os.path.isdir(configured):
            return [configured]
        out += [join(configured, name) for name in names]
        out += sorted(glob.glob(join(configured, _VERSIONED_GLOB.get(system, "libtaos.so.*"))))
        return list(dict.fromkeys(out))
    out += list(names)
    if find_library is not None:
        found = find_library("taos")
        if found:
            out.append(found)
    for directory in INSTALL_DIRS.get(system, ()):
        out += [join(directory, name) for name in names]
        if directory.endswith("driver"):
            out += sorted(glob.glob(join(directory, _VERSIONED_GLOB.get(system, "libtaos.so.*"))))
    return list(dict.fromkeys(out))


def _preload_native_driver(path: str, system: str, loader: Callable[..., Any]) -> None:
    """3.3.6+ wrappers look for libtaosnative by bare name; load it from the same directory first so that
    a library found through TAOS_LIBRARY_PATH works without LD_LIBRARY_PATH (best effort).

    Loaded RTLD_LOCAL: the dynamic loader matches the wrapper's later dlopen() by name/SONAME among
    loaded objects anyway, and a global load would let the driver's taos_* symbols interpose the
    wrapper's own ones.
    """
    directory = os.path.dirname(path)
    if not directory or not os.path.exists(path):
        return
    for driver in sorted(glob.glob(os.path.join(directory, _NATIVE_DRIVER_GLOB.get(system, "libtaosnative.so*")))):
        try:
            loader(driver)
            return
        except OSError:
            continue


_loaded: TaosLibrary | None = None
_load_lock = threading.Lock()


def load_library(*, system: str | None = None, environ: Mapping[str, str] | None = None,
                 loader: Callable[..., Any] = ctypes.CDLL,
                 find_library: Callable[[str], str | None] | None = ctypes.util.find_library,
                 cache: bool = True) -> TaosLibrary:
    """Load libtaos (once per process when ``cache``); raise :class:`NativeLibraryMissing` naming every candidate."""
    global _loaded
    with _load_lock:
        if cache and _loaded is not None:
            return _loaded
        system = system or platform.system()
        candidates = library_candidates(system, environ, find_library)
        reasons = []
        for candidate in candidates:
            try:
                _preload_native_driver(candidate, system, loader)
                library = TaosLibrary(loader(candidate), candidate)
            except (OSError, AttributeError) as exc:
                reasons.append(str(exc) if candidate in str(exc) else f"{candidate}: {exc}")
                continue
            if cache:
                _loaded = library
            return library
        raise NativeLibraryMissing(candidates, reasons)


# --- helpers -----------------------------------------------------------------------------------
def _int32(code: int) -> int:
    code &= 0xFFFFFFFF
    return code - (1 << 32) if code & 0x80000000 else code


def _error(code: int, message: str, label: str, context: str) -> TdsyncError:
    """A libtaos error code as tdsync reports it: network failures are transient (ConnectionLost)."""
    low = code & 0xFFFF
    if low in NETWORK_CODES:
        return ConnectionLost(label, f"{context}: [0x{low:04x}] {message}")
    return TDengineError(low, f"{context} on {label}: {message}")


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value else ""


def _shorten(sql: str, limit: int = 120) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= limit else sql[:limit - 3] + "..."


def _block_length(pointer: int) -> int:
    # Raw block header: int32 version, int32 total length (formats.md 1.1), native byte order.
    return ctypes.c_int32.from_address(pointer + 4).value


class _Thread:
    """A single thread running blocking C calls in submission order, with an optional time limit."""

    def __init__(self, name: str, label: str, timeout: float | None) -> None:
        self.name = name
        self.label = label
        self.timeout = timeout
        self.executor: ThreadPoolExecutor | None = None

    def submit(self, function: Callable[..., Any], *args: Any) -> asyncio.Future:
        if self.executor is None:       # first use, or used again after close(): a fresh thread
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tdsync-native-{self.name}")
        return asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def run(self, function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        limit = self.timeout if timeout is None else timeout
        future = self.submit(function, *args)
        if limit is None:
            return await future
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            # The C call goes on in its thread (libtaos cannot be interrupted); what it did is unknown.
            future.add_done_callback(_consume)
            raise ConnectionLost(self.label, f"no answer within {limit:g} s") from None

    def shutdown(self) -> None:
        executor, self.executor = self.executor, None
        if executor is not None:
            executor.shutdown(wait=False)


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class _Connection:
    """One ``TAOS*`` and the thread that uses it (a connection is never used from two threads at once)."""

    def __init__(self, lib: TaosLibrary, endpoint: Endpoint, name: str, database: str | None,
                 request_timeout: float | None) -> None:
        self.lib = lib
        self.endpoint = endpoint
        self.label = str(endpoint)
        self.database = database
        self.thread = _Thread(name, self.label, request_timeout)
        self.handle: int | None = None
        self.current_db: str | None = None

    # the methods below run on self.thread
    def connect(self) -> None:
        if self.handle:
            return
        ep = self.endpoint
        handle = self.lib.taos_connect(ep.host.encode(), ep.user.encode(), ep.password.encode(), None, ep.port)
        if not handle:
            code, text = self.lib.last_error(None)
            raise _error(code or 0x000B, text or "connection refused", self.label, f"cannot log in as {ep.user}")
        self.handle = handle
        if self.database is not None:
            self.select_db(self.database)

    def close(self) -> None:
        if self.handle:
            handle, self.handle = self.handle, None
            self.lib.taos_close(handle)

    def sql(self, sql: str) -> tuple[list[str], list[tuple], int]:
        """Run one statement: (column names, rows, affected rows)."""
        self.connect()
        lib = self.lib
        res = lib.taos_query(self.handle, sql.encode())
        try:
            code = lib.taos_errno(res)
            if code:
                raise _error(code, _text(lib.taos_errstr(res)), self.label, _shorten(sql))
            ncols = lib.taos_field_count(res)
            if ncols == 0:
                return [], [], lib.taos_affected_rows(res)
            fields = lib.taos_fetch_fields(res)
            names = [fields[i].name.decode("utf-8", "replace") for i in range(ncols)]
            precision = lib.taos_result_precision(res)
            rows: list[tuple] = []
            nrows, data = c_int(0), c_void_p(None)
            while True:
                code = lib.taos_fetch_raw_block(res, ctypes.byref(nrows), ctypes.byref(data))
                if code:
                    raise _error(code, lib.error_text(code), self.label, f"fetching {_shorten(sql)}")
                if nrows.value == 0 or not data.value:
                    break
                block = RawBlock.decode(ctypes.string_at(data.value, _block_length(data.value)), precision=precision)
                rows.extend(block.rows())
            return names, rows, len(rows)
        finally:
            lib.taos_free_result(res)

    def select_db(self, database: str) -> None:
        if self.current_db == database:
            return
        code = self.lib.taos_select_db(self.handle, database.encode())
        if code:
            raise _error(code, self.lib.error_text(code), self.label, f"cannot use database {database}")
        self.current_db = database

    def write_raw(self, database: str, raw_type: int, data: bytes) -> None:
        self.connect()
        self.select_db(database)               # tmq_write_raw writes into the current database
        # libtaos may rewrite the buffer in place while decoding: hand it a private copy.
        buffer = (c_char * len(data)).from_buffer_copy(data)
        raw = TmqRawData(ctypes.cast(buffer, c_void_p), len(data), raw_type)
        code = self.lib.tmq_write_raw(self.handle, raw)
        if code:
            raise _error(code, self.lib.error_text(code), self.label,
                         f"raw write (raw_type {raw_type}, {len(data)} bytes) into {database}")


def _native_endpoint(endpoint: Endpoint | str) -> Endpoint:
    ep = endpoint if isinstance(endpoint, Endpoint) else Endpoint.parse(endpoint)
    if ep.is_websocket:
        raise ConnectorError(f"{ep} is a WebSocket endpoint; the native connector needs taos:// or host:port")
    return ep


# --- Source ------------------------------------------------------------------------------------
class NativeSource:
    """A TMQ consumer (one topic, one group) plus a SQL connection, through libtaos.

    No I/O happens in the constructor, but libtaos is loaded there: a missing library shows when the
    endpoint is opened (:class:`NativeLibraryMissing`). Subscriptions always use
    ``enable.auto.commit=false``; by default ``msg.consume.excluded=1``, ``auto.offset.reset=earliest``
    and ``msg.with.table.name=true``, which ``config`` entries override (as in the WebSocket source).
    ``request_timeout`` bounds every call but a poll (which gets its own timeout plus this).
    """

    def __init__(self, endpoint: Endpoint | str, *, library: TaosLibrary | None = None,
                 request_timeout: float | None = 60.0, open_timeout: float | None = 30.0) -> None:
        self.endpoint = _native_endpoint(endpoint)
        self.lib = library or load_library()
        self.label = str(self.endpoint)
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self._sql = _Connection(self.lib, self.endpoint, "source-sql", None, request_timeout)
        self._thread = _Thread("tmq", self.label, request_timeout)   # every tmq_* call of the consumer
        self._tmq: int | None = None
        self._topic: str | None = None
        self._pending_poll: asyncio.Future | None = None   # a poll whose awaiting caller was cancelled

    def __repr__(self) -> str:
        return f"<NativeSource {self.label} topic={self._topic}>"

    async def __aenter__(self) -> NativeSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _consumer(self) -> int:
        if self._tmq is None:
            raise ConnectorError(f"NativeSource {self.label}: subscribe() before polling or reading offsets")
        return self._tmq

    async def subscribe(self, topic: str, group_id: str, client_id: str,
                        config: dict[str, str] | None = None) -> None:
        settings = {"group.id": group_id, "client.id": client_id, "td.connect.ip": self.endpoint.host,
                    "td.connect.port": str(self.endpoint.port), "td.connect.user": self.endpoint.user,
                    "td.connect.pass": self.endpoint.password}
        settings.update(DEFAULT_TMQ_CONFIG)
        settings.update({str(k): str(v) for k, v in (config or {}).items()})
        settings["enable.auto.commit"] = "false"
        await self._close_consumer()
        self._tmq = await self._thread.run(self._subscribe_blocking, topic, settings, timeout=self.open_timeout)
        self._topic = topic

    def _subscribe_blocking(self, topic: str, settings: dict[str, str]) -> int:
        lib = self.lib
        conf = lib.tmq_conf_new()
        if not conf:
            raise TDengineError(0x0102, "tmq_conf_new failed (out of memory)")
        try:
            for key, value in settings.items():
                result = lib.tmq_conf_set(conf, key.encode(), value.encode())
                if result != 0:
                    shown = "***" if key == "td.connect.pass" else repr(value)
                    raise UsageError(f"TMQ setting {key}={shown} refused by libtaos: "
                                     f"{TMQ_CONF_RESULTS.get(result, f'code {result}')}")
            errstr = ctypes.create_string_buffer(512)
            tmq = lib.tmq_consumer_new(conf, errstr, len(errstr))
            if not tmq:
                code, _ = lib.last_error(None)
                raise _error(code or 0x0118, errstr.value.decode("utf-8", "replace") or "tmq_consumer_new failed",
                             self.label, f"cannot create a consumer in group {settings.get('group.id')}")
        finally:
            lib.tmq_conf_destroy(conf)
        topics = lib.tmq_list_new()
        try:
            lib.tmq_list_append(topics, topic.encode())
            code = lib.tmq_subscribe(tmq, topics)
        finally:
            lib.tmq_list_destroy(topics)
        if code:
            text = lib.error_text(code)
            lib.tmq_consumer_close(tmq)
            raise _error(code, text, self.label, f"cannot subscribe to topic {topic}")
        return tmq

    async def poll(self, timeout: float) -> RawMessage | None:
        """The next message, or None when none came within ``timeout`` seconds.

        Cancelling a poll does not lose its message: the C call keeps running and the next poll()
        returns what it got (a consumed-but-dropped message would be skipped by later commits).
        """
        tmq = self._consumer()
        if self._pending_poll is None:
            self._pending_poll = self._thread.submit(self._poll_blocking, tmq, max(0, int(timeout * 1000)))
        pending = self._pending_poll
        limit = None if self.request_timeout is None else timeout + self.request_timeout
        try:
            return await asyncio.wait_for(asyncio.shield(pending), limit)
        except TimeoutError:
            raise ConnectionLost(self.label, f"poll gave no answer within {limit:g} s") from None
        finally:
            if pending.done():
                self._pending_poll = None

    def _poll_blocking(self, tmq: int, timeout_ms: int) -> RawMessage | None:
        lib = self.lib
        res = lib.tmq_consumer_poll(tmq, timeout_ms)
        if not res:
            code, text = lib.last_error(None)      # terrno of this thread: 0 after a plain timeout
            if code:
                raise _error(code, text, self.label, f"poll of topic {self._topic}")
            return None
        raw = TmqRawData()
        try:
            code = lib.tmq_get_raw(res, ctypes.byref(raw))
            if code:
                raise _error(code, lib.error_text(code), self.label, "tmq_get_raw")
            try:
                data = ctypes.string_at(raw.raw, raw.raw_len) if raw.raw and raw.raw_len else b""
            finally:
                lib.tmq_free_raw(raw)
            return RawMessage(_text(lib.tmq_get_topic_name(res)), _text(lib.tmq_get_db_name(res)),
                              lib.tmq_get_vgroup_id(res), raw.raw_type, lib.tmq_get_vgroup_offset(res), data)
        finally:
            lib.taos_free_result(res)

    async def commit(self, topic: str, vgroup_id: int, offset: int) -> None:
        code = await self._thread.run(self.lib.tmq_commit_offset_sync, self._consumer(), topic.encode(),
                                      vgroup_id, offset)
        if code:
            raise _error(code, self.lib.error_text(code), self.label,
                         f"commit of offset {offset} (topic {topic} vgroup {vgroup_id})")

    async def seek(self, topic: str, vgroup_id: int, offset: int) -> None:
        code = await self._thread.run(self.lib.tmq_offset_seek, self._consumer(), topic.encode(), vgroup_id, offset)
        if code:
            raise _error(code, self.lib.error_text(code), self.label,
                         f"seek of topic {topic} vgroup {vgroup_id} to {offset}")

    async def assignment(self, topic: str) -> list[VgroupAssignment]:
        return await self._thread.run(self._assignment_blocking, self._consumer(), topic)

    def _assignment_blocking(self, tmq: int, topic: str) -> list[VgroupAssignment]:
        lib = self.lib
        array = POINTER(TmqTopicAssignment)()
        count = c_int32(0)
        code = lib.tmq_get_topic_assignment(tmq, topic.encode(), ctypes.byref(array), ctypes.byref(count))
        if code:
            raise _error(code, lib.error_text(code), self.label, f"assignment of topic {topic}")
        try:
            return [VgroupAssignment(array[i].vgId, array[i].currentOffset, array[i].begin, array[i].end)
                    for i in range(count.value)]
        finally:
            if array:
                lib.tmq_free_assignment(array)

    async def position(self, topic: str, vgroup_id: int) -> int:
        value = await self._thread.run(self.lib.tmq_position, self._consumer(), topic.encode(), vgroup_id)
        if value < 0:
            raise _error(value, self.lib.error_text(value), self.label, f"position of {topic} vgroup {vgroup_id}")
        return value

    async def committed(self, topic: str, vgroup_id: int) -> int | None:
        value = await self._thread.run(self.lib.tmq_committed, self._consumer(), topic.encode(), vgroup_id)
        if value < 0:
            if value & 0xFFFF == TMQ_NO_COMMITTED:
                return None
            raise _error(value, self.lib.error_text(value), self.label, f"committed of {topic} vgroup {vgroup_id}")
        return value

    async def query(self, sql: str) -> list[tuple]:
        """Rows of one SQL statement on the source (its own connection, opened on first use)."""
        return (await self._sql.thread.run(self._sql.sql, sql))[1]

    async def _close_consumer(self) -> None:
        pending, self._pending_poll = self._pending_poll, None
        tmq, self._tmq = self._tmq, None
        if pending is not None:
            pending.add_done_callback(_consume)
        if tmq is not None:
            # Queued behind a poll still running on the consumer's thread, so the two never overlap.
            try:
                await self._thread.run(self.lib.tmq_consumer_close, tmq)
            except ConnectionLost:
                pass                             # the server is gone; the handle is abandoned

    async def close(self) -> None:
        await self._close_consumer()
        try:
            await self._sql.thread.run(self._sql.close)
        except ConnectionLost:
            pass
        self._thread.shutdown()
        self._sql.thread.shutdown()


# --- Sink --------------------------------------------------------------------------------------
class NativeSink:
    """Raw writes through libtaos: one connection (and thread) per target database, plus one for SQL.

    Writes to one database are applied in the order they were awaited; each connection has its
    database selected (``taos_select_db``) before ``tmq_write_raw``, which writes into the current one.
    """

    def __init__(self, endpoint: Endpoint | str, *, library: TaosLibrary | None = None,
                 request_timeout: float | None = 60.0) -> None:
        self.endpoint = _native_endpoint(endpoint)
        self.lib = library or load_library()
        self.label = str(self.endpoint)
        self.request_timeout = request_timeout
        self._writers: dict[str, _Connection] = {}
        self._admin: _Connection | None = None

    def __repr__(self) -> str:
        return f"<NativeSink {self.label}>"

    async def __aenter__(self) -> NativeSink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _writer(self, database: str) -> _Connection:
        conn = self._writers.get(database)
        if conn is None:
            conn = self._writers[database] = _Connection(self.lib, self.endpoint, "sink", database,
                                                         self.request_timeout)
        return conn

    async def write_raw(self, database: str, raw_type: int, data: bytes) -> None:
        if not 0 <= raw_type <= 0xFFFF:
            raise UsageError(f"raw_type {raw_type} does not fit the uint16 of tmq_raw_data")
        if not data:
            raise UsageError(f"raw write of raw_type {raw_type} into {database} has no bytes")
        conn = self._writer(database)
        await conn.thread.run(conn.write_raw, database, raw_type, data)

    def _admin_connection(self) -> _Connection:
        if self._admin is None:
            self._admin = _Connection(self.lib, self.endpoint, "sink-sql", None, self.request_timeout)
        return self._admin

    async def execute(self, sql: str) -> int:
        """Run a statement; the number of affected rows."""
        conn = self._admin_connection()
        return (await conn.thread.run(conn.sql, sql))[2]

    async def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        conn = self._admin_connection()
        names, rows, _ = await conn.thread.run(conn.sql, sql)
        return names, rows

    async def close(self) -> None:
        conns = [*self._writers.values(), *([self._admin] if self._admin else [])]
        self._writers.clear()
        self._admin = None
        for conn in conns:
            try:
                await conn.thread.run(conn.close)
            except ConnectionLost:
                pass
            conn.thread.shutdown()
