"""What every connector offers: a TMQ :class:`Source`, a raw-writing :class:`Sink`, their messages.

The vocabulary is confluent-kafka's (subscribe, poll, commit, seek, assignment, position,
committed). All methods are coroutines. Errors: :class:`~engine.errors.TDengineError` for what a
server refused (permanent unless the caller knows better), :class:`~engine.errors.ConnectionLost`
for drops and timeouts (transient: retry), :class:`~engine.errors.ConnectorError` for answers
that make no sense.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engine.endpoint import Endpoint
from engine.errors import ConnectorError

DATA_RAW_TYPES = frozenset({2, 4, 6})          # data, data + auto-created tables, rawdata
_OFFSET_LOG = 0x11                              # STqOffsetVal type byte of a WAL version (3.3)
_OFFSETS = struct.Struct("<bibqbq")             # 0x64, offsetLen, req type, req version, rsp type, rsp version


@dataclass(frozen=True)
class RawMessage:
    """One polled TMQ message as ``tmq_get_raw`` gives it."""

    topic: str
    database: str
    vgroup_id: int
    raw_type: int            # 2/4 data (6 rawdata), the TDMT code for a meta
    offset: int              # tmq_get_vgroup_offset: data -> its first version; meta -> version + 1
    data: bytes = field(repr=False)

    @property
    def is_data(self) -> bool:
        return self.raw_type in DATA_RAW_TYPES

    @property
    def next_offset(self) -> int | None:
        """The version after this message (what to commit once it is written), if the bytes say.

        Data (raw_type 2/4): the ``rspOffset`` in the message header; meta: ``offset`` (already
        version + 1). ``None`` when the header holds no WAL version (e.g. a snapshot offset).
        """
        if self.raw_type not in (2, 4):
            return None if self.raw_type in DATA_RAW_TYPES else self.offset
        if len(self.data) < _OFFSETS.size or self.data[0] != 0x64:
            return None
        _, _, req_type, _, rsp_type, rsp = _OFFSETS.unpack_from(self.data)
        return rsp if req_type == rsp_type == _OFFSET_LOG else None


@dataclass(frozen=True)
class VgroupAssignment:
    """``tmq_topic_assignment``: current offset and the WAL range [begin, end) of one vgroup."""

    vgroup_id: int
    current: int
    begin: int
    end: int


@runtime_checkable
class Source(Protocol):
    async def subscribe(self, topic: str, group_id: str, client_id: str,
                        config: dict[str, str] | None = None) -> None: ...
    async def poll(self, timeout: float) -> RawMessage | None: ...
    async def commit(self, topic: str, vgroup_id: int, offset: int) -> None: ...
    async def seek(self, topic: str, vgroup_id: int, offset: int) -> None: ...
    async def assignment(self, topic: str) -> list[VgroupAssignment]: ...
    async def position(self, topic: str, vgroup_id: int) -> int: ...
    async def committed(self, topic: str, vgroup_id: int) -> int | None: ...
    async def query(self, sql: str) -> list[tuple]: ...
    async def close(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    async def write_raw(self, database: str, raw_type: int, data: bytes) -> None: ...
    async def execute(self, sql: str) -> int: ...
    async def query(self, sql: str) -> tuple[list[str], list[tuple]]: ...
    async def close(self) -> None: ...


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` to completion on a uvloop event loop (asyncio's own when uvloop is missing)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(main)
    return uvloop.run(main)


def _endpoint(endpoint: Endpoint | str) -> Endpoint:
    return endpoint if isinstance(endpoint, Endpoint) else Endpoint.parse(endpoint)


def open_source(endpoint: Endpoint | str, **options: Any) -> Source:
    """A :class:`Source` for ``endpoint`` (no I/O yet: connections open on first use).

    WebSocket endpoints get :class:`engine.connectors.ws.WsSource`, native ones
    ``engine.connectors.native.NativeSource``; ``options`` go to that class.
    """
    ep = _endpoint(endpoint)
    if ep.is_websocket:
        from engine.connectors.ws import WsSource

        return WsSource(ep, **options)
    return _native().NativeSource(ep, **options)


def open_sink(endpoint: Endpoint | str, **options: Any) -> Sink:
    """A :class:`Sink` for ``endpoint`` (no I/O yet); see :func:`open_source`."""
    ep = _endpoint(endpoint)
    if ep.is_websocket:
        from engine.connectors.ws import WsSink

        return WsSink(ep, **options)
    return _native().NativeSink(ep, **options)


def _native() -> Any:
    try:
        import engine.connectors.native as native
    except ModuleNotFoundError as exc:
        if exc.name != "engine.connectors.native":
            raise
        raise ConnectorError("this tdsync has no native (taos://) connector; use a ws:// endpoint") from None
    return native
