"""TMQ for the sandbox: consumer groups, rebalance, polls assembled from the vgroup WALs, offsets.

This module plays the parts of TDengine's mnode (consumer groups and rebalance), vnode (the poll
scan over the WAL) and client library (the per-vgroup offsets a ``tmq_t`` keeps), as seen through
taosAdapter's ``/rest/tmq`` (which forces the C-level auto commit off and commits all before a
poll when its own interval elapsed). Topics and the WAL live in the engine; committed offsets in
its storage (per group/topic/vgroup, so they survive a restart). Consumer groups, positions and
subscriptions are in memory, like a freshly restarted server whose consumers reconnect.

Behaviour modelled on TDengine 3.3.7 (``TD:`` = the ZhangZui123/TDengine fork, see
/work/shared/reference/formats.md sections 2 and 4):

* Poll scan (``extractDataAndRspForDbStbSubscribe``, TD:source/dnode/vnode/src/tq/tqUtil.c):
  consecutive data entries are joined until their rows reach ``min.poll.rows`` (the entry that
  crosses the threshold is included); a meta entry ends a data batch (even one that will be
  skipped) and is otherwise sent alone; the response's ``reqOffset`` is the requested position
  and ``rspOffset`` the next version to read, skipped entries included.
* Topics without ``WITH META`` never see meta entries (``tqFetchLog``, TD:.../tq/tqRead.c) and get
  auto-create data as plain raw_type 2 (create requests dropped for ``WITH_DATA`` handles,
  ``preProcessSubmitMsg``, TD:.../tq/tqScan.c).
* ``msg.consume.excluded``: data written through a raw path and CREATE/ALTER TABLE, CREATE/ALTER
  STABLE and DELETE metas with the TAOX source are skipped; DROP TABLE/STABLE never are
  (``PROCESS_EXCLUDED_MSG``, tqUtil.c).
* A position below the WAL's first version (entries dropped by retention) is moved up to it
  (``walReaderVerifyOffset``, TD:source/libs/wal/src/walRead.c) without an error; the data
  message then still reports the requested (stale) position as its offset, because the vnode
  copies ``reqOffset`` before correcting it.
* First poll of a vgroup (reset offset): the group's committed offset, else the first WAL
  version (earliest) or the WAL end (latest: an empty answer, ``extractResetOffsetVal``), or
  ``TSDB_CODE_TQ_NO_COMMITTED_OFFSET`` for ``none``.
* ``tmq_get_vgroup_offset``: data -> ``reqOffset``, meta -> ``rspOffset`` = version + 1
  (TD:source/client/src/clientTmq.c:2788-2812; the golden corpus agrees).
* The client polls all its vgroups at once (``tmqPollImpl``): one poll here answers from the
  first vgroup (round robin) with content; other vgroups that would answer empty (only skipped
  entries, or a ``latest`` reset) have their positions moved at once, as the client processes
  empty responses before returning a message.
* Rebalance (``mndDoRebalance``, TD:source/dnode/mnode/impl/src/mndSubscribe.c) per (group,
  topic): ``n`` vgroups over ``k`` consumers, each keeps what it had up to ``n // k`` (the first
  ``n % k`` up to one more), the rest go to consumers below that; a vgroup that stays with its
  consumer keeps its local position. Consumers leave on unsubscribe/close, or when the mnode
  misses their heartbeat for ``session.timeout.ms`` or their polls for ``max.poll.interval.ms``
  (``mndCheckConsumer``); a lost consumer's polls fail with ``MND_CONSUMER_NOT_EXIST``. By default
  an open consumer counts as heartbeating (libtaos's heartbeat thread), see ``TmqService``.
* Offset APIs follow the client (clientTmq.c): ``position``/``seek``/``commit_offset`` need a poll
  or an assignment first (``TMQ_NEED_INITIALIZED``), targets must lie in [WAL begin, WAL end]
  (``TMQ_VERSION_OUT_OF_RANGE``), an unknown topic/vgroup is ``TMQ_INVALID_TOPIC``/``_VGID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine import error_codes as codes
from engine.codec import RawBlock, RawDataMessage, build_data_message, merge_messages
from engine.errors import TDengineError

MESSAGE_DATA, MESSAGE_META, MESSAGE_METADATA = 1, 2, 3      # /rest/tmq poll "message_type"
RAW_DATA, RAW_METADATA = 2, 4
NO_COMMITTED = codes.to_int32(codes.TMQ_NO_COMMITTED)        # -2147467247, what tmq_committed returns
# Metas a msg.consume.excluded consumer skips when written by a replicator (TD_REQ_FROM_TAOX).
EXCLUDABLE_META = frozenset({515, 517, 531, 533, 579})
_WAL_CHUNK = 256

# SHOW CONSUMERS (performance_schema.perf_consumers) and SHOW SUBSCRIPTIONS
# (information_schema.ins_subscriptions), TD:source/common/src/systable.c: (name, type, width),
# widths as a client sees them (VARCHAR(n) -> n).
_VARCHAR, _INT, _BIGINT, _TIMESTAMP = 8, 4, 5, 9
CONSUMER_COLUMNS = [
    ("consumer_id", _VARCHAR, 32), ("consumer_group", _VARCHAR, 193), ("client_id", _VARCHAR, 256),
    ("user", _VARCHAR, 24), ("fqdn", _VARCHAR, 128), ("status", _VARCHAR, 20), ("topics", _VARCHAR, 205),
    ("up_time", _TIMESTAMP, 8), ("subscribe_time", _TIMESTAMP, 8), ("rebalance_time", _TIMESTAMP, 8),
    ("parameters", _VARCHAR, 192), ("poll_time", _TIMESTAMP, 8),
]
SUBSCRIPTION_COLUMNS = [
    ("topic_name", _VARCHAR, 205), ("consumer_group", _VARCHAR, 193), ("vgroup_id", _INT, 4),
    ("consumer_id", _VARCHAR, 256), ("user", _VARCHAR, 24), ("fqdn", _VARCHAR, 128),
    ("offset", _VARCHAR, 64), ("rows", _BIGINT, 8),
]


def _error(code: int, message: str | None = None) -> TDengineError:
    return TDengineError(code, codes.message_for(code) if message is None else message)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _loop_clock() -> float:
    """Seconds on the running event loop's clock (monotonic), or time.monotonic() outside one."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


# -- configuration (tmq_conf_set, TD:source/client/src/clientTmq.c:334-555) ---------------------------

@dataclass(frozen=True)
class ConsumerConfig:
    group_id: str
    client_id: str = ""
    auto_offset_reset: str = "latest"          # earliest | latest | none
    auto_commit: bool = True                   # done as taosAdapter does: commit all before a poll
    auto_commit_interval_ms: int = 5000
    session_timeout_ms: int = 12000
    heartbeat_interval_ms: int = 3000
    max_poll_interval_ms: int = 300000
    with_table_name: bool = False              # accepted; the vnode ignores it for DB topics
    consume_excluded: bool = False
    min_poll_rows: int = 4096
    fetch_max_wait_ms: int = 1000
    enable_batch_meta: bool = False            # accepted and ignored (no raw_type 5 here)
    user: str = "root"


_INT_PREFIX = re.compile(r"\s*([+-]?\d+)")


def _strtoll(value: str) -> int | None:
    """C strtoll as taosStr2int64 uses it: a leading integer, the rest ignored; None if none."""
    match = _INT_PREFIX.match(value)
    if match is None:
        return None
    number = int(match.group(1))
    return number if -(1 << 63) <= number < (1 << 63) else None


def parse_config(config: dict[str, Any], *, min_session_timeout_ms: int = 6000) -> ConsumerConfig:
    """Validate ``tmq_conf_set`` keys/values (case-insensitive keys, string values).

    Errors are what taosAdapter answers for a rejected ``tmq_conf_set``: ``INVALID_PARA`` with
    "unknown configuration key: K" or "invalid value for key 'K': V".
    """
    out: dict[str, Any] = {"group_id": ""}

    def bad(key: str, value: str) -> TDengineError:
        return _error(codes.INVALID_PARA, f"invalid value for key '{key}': {value}")

    def boolean(key: str, value: str) -> bool:
        low = value.lower()
        if low not in ("true", "false"):
            raise bad(key, value)
        return low == "true"

    def integer(key: str, value: str, lo: int, hi: int) -> int:
        number = _strtoll(value)
        if number is None or not lo <= number <= hi:
            raise bad(key, value)
        return number

    items = [(str(k), v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v))
             for k, v in config.items()]
    session = 12000
    for key, value in items:           # session.timeout.ms first: heartbeat.interval.ms is checked against it
        if key.lower() == "session.timeout.ms":
            session = integer(key, value, min_session_timeout_ms, 1_800_000)
    out["session_timeout_ms"] = session
    for key, value in items:
        k = key.lower()
        if k == "group.id":
            if ":" in value:
                raise bad(key, value)
            out["group_id"] = value[:192]
        elif k == "client.id":
            out["client_id"] = value[:255]
        elif k == "enable.auto.commit":
            out["auto_commit"] = boolean(key, value)
        elif k == "auto.commit.interval.ms":
            out["auto_commit_interval_ms"] = min(integer(key, value, 0, (1 << 63) - 1), 2**31 - 1)
        elif k == "session.timeout.ms":
            pass
        elif k == "heartbeat.interval.ms":
            out["heartbeat_interval_ms"] = integer(key, value, 1000, session - 1)
        elif k == "max.poll.interval.ms":
            out["max_poll_interval_ms"] = integer(key, value, 1000, 2**31 - 1)
        elif k == "auto.offset.reset":
            if value.lower() not in ("none", "earliest", "latest"):
                raise bad(key, value)
            out["auto_offset_reset"] = value.lower()
        elif k == "msg.with.table.name":
            out["with_table_name"] = boolean(key, value)
        elif k == "experimental.snapshot.enable":
            if boolean(key, value):
                raise _error(codes.OPS_NOT_SUPPORT, "Operation not supported: experimental.snapshot.enable=true "
                             "(the sandbox serves TMQ from the WAL only)")
        elif k == "enable.replay":
            if boolean(key, value):
                # Every sandbox topic is a database topic, for which TDengine refuses replay.
                raise _error(codes.TMQ_REPLAY_NOT_SUPPORT)
        elif k == "msg.consume.excluded":
            number = _strtoll(value)
            out["consume_excluded"] = bool(number)
        elif k == "msg.consume.rawdata":
            if _strtoll(value):
                raise _error(codes.OPS_NOT_SUPPORT, "Operation not supported: msg.consume.rawdata "
                             "(the sandbox does not produce raw_type 6 messages)")
        elif k == "fetch.max.wait.ms":
            out["fetch_max_wait_ms"] = integer(key, value, 1, 2**31 - 1)
        elif k == "min.poll.rows":
            out["min_poll_rows"] = integer(key, value, 1, 2**31 - 1)
        elif k == "msg.enable.batchmeta":
            out["enable_batch_meta"] = bool(_strtoll(value))
        elif k == "td.connect.user":
            out["user"] = value
        elif k == "td.connect.port":
            integer(key, value, 1, 65535)
        elif k in ("td.connect.ip", "td.connect.pass", "td.connect.db"):
            pass
        else:
            raise _error(codes.INVALID_PARA, f"unknown configuration key: {key}")
    if not out["group_id"]:
        # tmq_consumer_new fails; taosAdapter reports the client's text with its own code.
        raise _error(codes.ADAPTER_ERROR, "malloc tmq element failed or group is empty")
    return ConsumerConfig(**out)


# -- messages -----------------------------------------------------------------------------------------

@dataclass
class PolledMessage:
    """One TMQ message as ``tmq_consumer_poll`` returns it."""

    message_id: int
    topic: str
    database: str
    vgroup_id: int
    message_type: int          # 1 data, 2 meta, 3 metadata (data + auto-created tables)
    offset: int                # tmq_get_vgroup_offset: data -> first version asked, meta -> version + 1
    raw_type: int              # tmq_get_raw: 2 / 4 for data, the TDMT code for a meta
    raw: bytes                 # tmq_get_raw bytes
    end_offset: int            # the position after this message (rspOffset)
    rows: int = 0
    message: RawDataMessage | None = None     # decoded data message (None for metas)

    @property
    def blocks(self) -> list[RawBlock]:
        """The data blocks (with table names and schemas) for fetch / fetch_block."""
        return self.message.blocks if self.message is not None else []


class Assignment(NamedTuple):
    """tmq_topic_assignment."""

    vgroup_id: int
    offset: int
    begin: int
    end: int


@dataclass
class _VgState:
    """What a client keeps per assigned vgroup (SMqClientVg.offsetInfo)."""

    pos: int | None = None          # endOffset as a WAL version; None while still a reset offset
    begin_offset: int | None = None  # beginOffset (start of the last message / seek target)
    committed: int | None = None    # last offset this consumer committed
    initialized: bool = False       # walVerBegin/End known (after a poll or an assignment)
    rows: int = 0


@dataclass
class _Subscription:
    """One (group, topic): which consumer holds which vgroups (SMqSubscribeObj)."""

    group: str
    topic: str
    owners: dict[int, list[int]] = field(default_factory=dict)    # consumer id -> vgroups (join order)
    unassigned: list[int] = field(default_factory=list)
    history: dict[int, tuple[str, int]] = field(default_factory=dict)   # vgid -> (offset text, rows)


class _Backend:
    """The engine surface used here (the real engine keeps topics and databases on itself)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.storage = engine.storage

    def topic(self, name: str):
        topics = getattr(self.engine, "topics", None)
        if isinstance(topics, dict):
            return topics.get(name)
        try:
            return self.storage.topic(name)
        except (KeyError, LookupError, TDengineError):
            return None

    def vgroups(self, db: str) -> list[int]:
        databases = getattr(self.engine, "databases", None)
        if isinstance(databases, dict):
            database = databases.get(db)
            return sorted(database.vgroups) if database is not None else []
        return sorted(self.storage.vgroups(db))

    def entries(self, vgid: int, start: int) -> Iterator:
        """WAL entries from ``start`` on, in chunks that grow from 1 (a poll usually needs few; no read
        transaction is left open between chunks)."""
        size = 1
        while True:
            chunk = list(self.storage.wal_read(vgid, start, max_entries=size))
            yield from chunk
            if len(chunk) < size:
                return
            start = chunk[-1].version + 1
            size = min(size * 4, _WAL_CHUNK)


# -- consumers ----------------------------------------------------------------------------------------

class Consumer:
    """One ``tmq_t`` (one /rest/tmq connection): its subscription, positions and polls."""

    def __init__(self, service: TmqService, key: Any, config: ConsumerConfig) -> None:
        self.service = service
        self.key = key
        self.config = config
        self.group = config.group_id
        self.client_id = config.client_id
        self.consumer_id = secrets.randbits(62) | (1 << 60)
        self.topics: list[str] = []
        self.status = "init"             # init | ready | lost | closed
        self._vgs: dict[tuple[str, int], _VgState] = {}
        self._rr = 0
        self._message_ids = itertools.count(1)
        self._wakeup = asyncio.Event()
        self._pending_polls = 0
        now = service._clock()
        self._last_heartbeat = now
        self._last_poll = now
        self._next_auto_commit = float("-inf")
        self.up_time_ms = _now_ms()
        self.subscribe_time_ms = 0
        self.rebalance_time_ms = 0
        self.poll_time_ms = 0

    def __repr__(self) -> str:
        return f"<Consumer 0x{self.consumer_id:x} group={self.group!r} topics={self.topics} {self.status}>"

    # -- liveness ---------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """What libtaos's heartbeat thread does while the consumer exists: keep it in its group."""
        if self.status == "ready":
            self._last_heartbeat = self.service._clock()

    def _enter(self, *, allow_lost: bool = False) -> None:
        if self.status == "closed":
            raise _error(codes.TMQ_CONSUMER_CLOSED)
        self.service.check_sessions()
        if self.status == "lost" and not allow_lost:
            raise _error(codes.MND_CONSUMER_NOT_EXIST)
        self.heartbeat()

    @property
    def alive(self) -> bool:
        return self.status == "ready"

    # -- subscription -----------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str]) -> None:
        """tmq_subscribe: replace the topic list (an empty list unsubscribes)."""
        self._enter(allow_lost=True)
        names = list(dict.fromkeys(topics))
        for name in names:
            if self.service._backend.topic(name) is None:
                raise _error(codes.MND_TOPIC_NOT_EXIST)
        if self.status == "lost":        # a new consumer object on the mnode
            self.status = "ready"
            self.topics = []
            self._last_poll = self._last_heartbeat = self.service._clock()
        self.service._set_topics(self, names)
        self.status = "ready"
        self.subscribe_time_ms = _now_ms()
        self.heartbeat()

    def unsubscribe(self) -> None:
        if self.status == "closed":
            raise _error(codes.TMQ_CONSUMER_CLOSED)
        if self.status == "lost":
            self.topics = []
            self._vgs.clear()
            return
        self.service._set_topics(self, [])
        self._wakeup.set()

    def close(self) -> None:
        if self.status == "closed":
            return
        if self.status != "lost":
            self.service._set_topics(self, [])
        self.topics = []
        self._vgs.clear()
        self.status = "closed"
        self.service._forget(self)
        self._wakeup.set()

    def list_topics(self) -> list[str]:
        if self.status == "closed":
            raise _error(codes.TMQ_CONSUMER_CLOSED)
        return list(self.topics)

    # -- polling ----------------------------------------------------------------------------
    async def poll(self, timeout_ms: int) -> PolledMessage | None:
        """tmq_consumer_poll: a message, or None when nothing arrived within ``timeout_ms``."""
        self._enter()
        if self.status == "init":
            raise _error(codes.TMQ_INVALID_STATUS)
        loop = asyncio.get_running_loop()
        if self.config.auto_commit:
            now = self.service._clock()
            if now >= self._next_auto_commit:
                self.commit()
                self._next_auto_commit = now + self.config.auto_commit_interval_ms / 1000
        deadline = None if timeout_ms is None or timeout_ms < 0 else loop.time() + timeout_ms / 1000
        self._pending_polls += 1
        self._mark_polled()
        try:
            while True:
                if self.status == "closed":
                    return None
                if self.status == "lost":
                    raise _error(codes.MND_CONSUMER_NOT_EXIST)
                self._wakeup.clear()
                message = self._fetch()
                if message is not None:
                    return message
                wait = self.service.check_interval
                if deadline is not None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return None
                    wait = min(wait, remaining)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wait)
                self.service.check_sessions()
        finally:
            self._pending_polls -= 1
            self._mark_polled()

    def _mark_polled(self) -> None:
        now = self.service._clock()
        self._last_poll = self._last_heartbeat = now
        self.poll_time_ms = _now_ms()

    def _assigned(self) -> list[tuple[str, int]]:
        return sorted(self._vgs, key=lambda key: (self.topics.index(key[0]) if key[0] in self.topics else 0,
                                                  key[1]))

    def _fetch(self) -> PolledMessage | None:
        """One round of poll requests to every assigned vgroup, as the C client sends them.

        The first vgroup (round robin) with something to deliver answers this poll. The others
        are only peeked at: an empty answer (nothing but skipped entries up to the WAL end, or a
        ``latest`` reset) moves their position at once, as the client processes empty responses;
        one with content is left for a later poll (its response would still be queued).
        """
        keys = self._assigned()
        message = None
        start = self._rr % len(keys) if keys else 0
        for i in range(len(keys)):
            index = (start + i) % len(keys)
            if message is None:
                message = self._scan(*keys[index])
                if message is not None:
                    self._rr = index + 1
            else:
                self._scan(*keys[index], peek=True)
        return message

    def _scan(self, topic_name: str, vgid: int, *, peek: bool = False) -> PolledMessage | None:
        """The vnode's answer to one poll request for one vgroup (tqExtractDataForMq).

        With ``peek``, only an empty answer is applied (see ``_fetch``); nothing is returned.
        """
        backend = self.service._backend
        topic = backend.topic(topic_name)
        state = self._vgs[(topic_name, vgid)]
        if topic is None:
            return None
        storage = backend.storage
        begin, end = storage.wal_range(vgid)
        pos = state.pos
        if pos is None:
            committed = storage.committed(self.group, topic_name, vgid)
            reset = self.config.auto_offset_reset
            if committed is not None:
                pos = committed
            elif reset == "earliest":
                pos = begin
            elif reset == "latest":
                state.pos = end         # answered at once with an empty response
                state.initialized = True
                return None
            elif peek:
                return None
            else:
                raise _error(codes.TQ_NO_COMMITTED_OFFSET)
        requested = pos
        fetch = max(requested, begin)   # walReaderVerifyOffset: below the retained WAL -> its start
        excluded = self.config.consume_excluded
        min_rows = self.config.min_poll_rows
        data = []
        rows = 0
        meta = None
        for entry in backend.entries(vgid, fetch) if fetch < end else ():
            fetch = max(fetch, entry.version)
            if entry.kind != "data":
                if not topic.with_meta:
                    fetch = entry.version + 1
                    continue
                if data:
                    break               # a meta closes the data batch; it is read next time
                if excluded and entry.from_replica and entry.raw_type in EXCLUDABLE_META:
                    fetch = entry.version + 1
                    continue
                if peek:
                    return None
                fetch = entry.version + 1
                meta = entry
                break
            if excluded and entry.from_replica:
                fetch = entry.version + 1
                continue
            if peek:
                return None
            fetch = entry.version + 1
            data.append(entry)
            rows += entry.rows
            if rows >= min_rows:
                break
        state.pos = fetch
        state.initialized = True
        if meta is not None:
            state.begin_offset = fetch
            return PolledMessage(next(self._message_ids), topic_name, topic.db, vgid, MESSAGE_META, fetch,
                                 meta.raw_type, meta.payload, fetch)
        if not data:
            return None
        message, raw = _assemble(data, requested, fetch, keep_creates=topic.with_meta)
        state.begin_offset = requested
        state.rows += message.num_rows
        kind = MESSAGE_METADATA if message.raw_type == RAW_METADATA else MESSAGE_DATA
        return PolledMessage(next(self._message_ids), topic_name, topic.db, vgid, kind, requested,
                             message.raw_type, raw, fetch, message.num_rows, message)

    # -- offsets ----------------------------------------------------------------------------
    def _vg(self, topic: str, vgid: int) -> _VgState:
        """getClientVg: the topic must be subscribed and the vgroup assigned to this consumer."""
        if topic not in self.topics:
            raise _error(codes.TMQ_INVALID_TOPIC)
        state = self._vgs.get((topic, vgid))
        if state is None:
            raise _error(codes.TMQ_INVALID_VGID)
        return state

    def _check_range(self, state: _VgState, vgid: int, offset: int | None) -> None:
        """checkWalRange: known WAL range needed; ``offset`` within [begin, end] (-1 passes)."""
        if not state.initialized:
            raise _error(codes.TMQ_NEED_INITIALIZED)
        if offset is None or offset == -1:
            return
        begin, end = self.service._backend.storage.wal_range(vgid)
        if not begin <= offset <= end:
            raise _error(codes.TMQ_VERSION_OUT_OF_RANGE)

    def commit(self) -> None:
        """tmq_commit_sync(tmq, NULL): commit the position of every positioned vgroup."""
        self._enter()
        storage = self.service._backend.storage
        for (topic, vgid), state in list(self._vgs.items()):
            if state.pos is not None and state.pos != state.committed:
                storage.commit(self.group, topic, vgid, state.pos)
                state.committed = state.pos

    def commit_offset(self, topic: str, vgid: int, offset: int) -> None:
        """tmq_commit_offset_sync: commit ``offset`` for one vgroup; the position is unchanged."""
        self._enter()
        state = self._vg(topic, vgid)
        self._check_range(state, vgid, offset)
        self.service._backend.storage.commit(self.group, topic, vgid, offset)
        state.committed = offset

    def committed(self, topic: str, vgid: int) -> int:
        """tmq_committed: the committed offset, or NO_COMMITTED (-2147467247)."""
        self._enter()
        state = self._vg(topic, vgid)
        if state.committed is not None:
            return state.committed
        value = self.service._backend.storage.committed(self.group, topic, vgid)
        return NO_COMMITTED if value is None else value

    def position(self, topic: str, vgid: int) -> int:
        """tmq_position: the next version this consumer reads from the vgroup."""
        self._enter()
        state = self._vg(topic, vgid)
        self._check_range(state, vgid, None)
        if state.pos is not None:
            return state.pos
        value = self.service._backend.storage.committed(self.group, topic, vgid)
        if value is not None:
            return value
        begin, end = self.service._backend.storage.wal_range(vgid)
        reset = self.config.auto_offset_reset
        return begin if reset == "earliest" else end if reset == "latest" else 0

    def seek(self, topic: str, vgid: int, offset: int) -> None:
        """tmq_offset_seek: move the position (range-checked, not committed); wakes a waiting poll."""
        self._enter()
        state = self._vg(topic, vgid)
        self._check_range(state, vgid, offset)
        state.pos = offset
        state.begin_offset = offset
        self._wakeup.set()

    def assignment(self, topic: str) -> list[Assignment]:
        """tmq_get_topic_assignment: (vgroup, current offset, WAL begin, WAL end) per assigned vgroup."""
        self._enter()
        if topic not in self.topics:
            raise _error(codes.TMQ_INVALID_TOPIC)
        storage = self.service._backend.storage
        keys = sorted(vgid for name, vgid in self._vgs if name == topic)
        result = []
        for vgid in keys:
            state = self._vgs[(topic, vgid)]
            begin, end = storage.wal_range(vgid)
            state.initialized = True
            if state.begin_offset is not None:
                current = state.begin_offset
            else:
                # TDMT_VND_TMQ_VG_WALINFO (TD:source/dnode/vnode/src/tq/tq.c:560-596): the stored offset,
                # else the first version (earliest) or the LAST version, end - 1 (latest).
                committed = storage.committed(self.group, topic, vgid)
                reset = self.config.auto_offset_reset
                if committed is not None:
                    current = committed
                elif reset == "earliest":
                    current = begin
                elif reset == "latest":
                    current = end - 1
                else:
                    current = 0
            result.append(Assignment(vgid, current, begin, end))
        return result


def _as_plain_data(message: RawDataMessage, req: int, rsp: int) -> RawDataMessage:
    """The same blocks as raw_type 2 (a topic without meta gets no create-table requests)."""
    blocks = message.blocks
    precision = blocks[0].precision if blocks else 0
    return build_data_message([(b.to_bytes(), b.schema, b.table_name) for b in blocks], req, rsp,
                              precision=precision, with_table_name=message.with_table_name,
                              with_schema=message.with_schema)


def _assemble(entries: list, req: int, rsp: int, *, keep_creates: bool) -> tuple[RawDataMessage, bytes]:
    """One data message for WAL ``entries``: offsets ``req`` -> ``rsp`` as the vnode answers."""
    messages = []
    changed = False
    for entry in entries:
        message = RawDataMessage.decode(entry.payload, entry.raw_type)
        if message.raw_type == RAW_METADATA and not keep_creates:
            message = _as_plain_data(message, entry.version, entry.version + 1)
            changed = True
        messages.append(message)
    first, last = entries[0], entries[-1]
    if len(entries) == 1 and not changed and req == first.version and rsp == last.version + 1:
        return messages[0], first.payload               # served as written, byte for byte
    if req != messages[0].req_offset.version:
        messages.insert(0, build_data_message([], req, req))
    if rsp != messages[-1].rsp_offset.version:
        messages.append(build_data_message([], rsp, rsp))
    merged = merge_messages(messages)
    return merged, merged.encode()


# -- the service --------------------------------------------------------------------------------------

class TmqService:
    """Consumer groups over the engine's topics and WALs.

    ``clock`` (seconds, monotonic; default: the running event loop's clock) drives session and
    poll-interval timeouts; ``check_interval`` is how often a waiting poll re-checks them.
    ``min_session_timeout_ms`` lowers TDengine's 6000 ms floor of ``session.timeout.ms`` for tests.

    ``implicit_heartbeat`` (default): an open consumer counts as heartbeating, as libtaos's
    heartbeat thread keeps a taosAdapter consumer alive while its socket is open; only
    ``max.poll.interval.ms`` (no poll) removes it. With ``implicit_heartbeat=False`` a consumer
    must also call (or be called with) ``heartbeat()``, any API call, or poll within
    ``session.timeout.ms``.
    """

    def __init__(self, engine: Any, *, clock: Callable[[], float] | None = None, check_interval: float = 1.0,
                 min_session_timeout_ms: int = 6000, implicit_heartbeat: bool = True,
                 fqdn: str | None = None) -> None:
        self.engine = engine
        self.implicit_heartbeat = implicit_heartbeat
        self._backend = _Backend(engine)
        self._clock = clock or _loop_clock
        self.check_interval = check_interval
        self.min_session_timeout_ms = min_session_timeout_ms
        self.fqdn = fqdn if fqdn is not None else socket.gethostname()
        self._consumers: dict[Any, Consumer] = {}
        self._subs: dict[tuple[str, str], _Subscription] = {}
        listeners = getattr(engine, "wal_listeners", None)
        if listeners is not None:
            listeners.append(self._on_wal_append)
        if getattr(engine, "tmq", None) is None:
            with contextlib.suppress(AttributeError):
                engine.tmq = self          # the executor finds SHOW CONSUMERS / DROP TOPIC state here

    def close(self) -> None:
        for consumer in list(self._consumers.values()):
            consumer.close()
        listeners = getattr(self.engine, "wal_listeners", None)
        if listeners is not None and self._on_wal_append in listeners:
            listeners.remove(self._on_wal_append)
        if getattr(self.engine, "tmq", None) is self:
            self.engine.tmq = None

    # -- consumers --------------------------------------------------------------------------
    def subscribe(self, consumer_key: Any, group_id: str | None, client_id: str | None, topics: Iterable[str],
                  config: dict[str, Any] | None = None) -> Consumer:
        """tmq_consumer_new + tmq_subscribe. ``config`` entries override group_id/client_id (as
        taosAdapter's ``config`` map does). An existing consumer of ``consumer_key`` re-subscribes
        with its first configuration (taosAdapter's subscribe after unsubscribe)."""
        self.check_sessions()
        consumer = self._consumers.get(consumer_key)
        if consumer is None:
            merged: dict[str, Any] = {}
            if group_id:
                merged["group.id"] = group_id
            if client_id:
                merged["client.id"] = client_id
            merged.update(config or {})
            consumer = Consumer(self, consumer_key, parse_config(merged,
                                                                 min_session_timeout_ms=self.min_session_timeout_ms))
            topics = list(topics)
            for name in topics:
                if self._backend.topic(name) is None:
                    raise _error(codes.MND_TOPIC_NOT_EXIST)
            self._consumers[consumer_key] = consumer
        try:
            consumer.subscribe(topics)
        except TDengineError:
            if consumer.status == "init":
                self._consumers.pop(consumer_key, None)
            raise
        return consumer

    def consumer(self, consumer_key: Any) -> Consumer | None:
        return self._consumers.get(consumer_key)

    def _forget(self, consumer: Consumer) -> None:
        if self._consumers.get(consumer.key) is consumer:
            del self._consumers[consumer.key]

    def check_sessions(self) -> None:
        """The mnode's consumer check: drop consumers whose heartbeats or polls stopped."""
        now = self._clock()
        for consumer in list(self._consumers.values()):
            if consumer.status != "ready" or not consumer.topics or consumer._pending_polls:
                continue
            config = consumer.config
            silent = not self.implicit_heartbeat and \
                (now - consumer._last_heartbeat) * 1000 >= config.session_timeout_ms
            if silent or (now - consumer._last_poll) * 1000 >= config.max_poll_interval_ms:
                self._lose(consumer)

    def _lose(self, consumer: Consumer) -> None:
        topics = list(consumer.topics)
        self._set_topics(consumer, [])
        consumer.topics = topics          # the client still believes it is subscribed
        consumer.status = "lost"
        consumer._wakeup.set()

    # -- groups and rebalance ---------------------------------------------------------------
    def _set_topics(self, consumer: Consumer, topics: list[str]) -> None:
        old = set(consumer.topics)
        new = set(topics)
        consumer.topics = list(topics)
        for name in old - new:
            sub = self._subs.get((consumer.group, name))
            if sub is not None and consumer.consumer_id in sub.owners:
                for vgid in sub.owners.pop(consumer.consumer_id):
                    self._release(consumer, sub, vgid)
                self._rebalance(sub)
        for name in new - old:
            sub = self._subs.setdefault((consumer.group, name), _Subscription(consumer.group, name))
            sub.owners[consumer.consumer_id] = []
            self._rebalance(sub)

    def _release(self, consumer: Consumer, sub: _Subscription, vgid: int) -> None:
        """A vgroup leaves a consumer: its local position is gone; remember what it reported."""
        state = consumer._vgs.pop((sub.topic, vgid), None)
        if state is not None:
            old_rows = sub.history.get(vgid, ("", 0))[1]
            sub.history[vgid] = (self._offset_text(consumer, state, vgid), old_rows + state.rows)

    def _rebalance(self, sub: _Subscription) -> None:
        topic = self._backend.topic(sub.topic)
        vgroups = self._backend.vgroups(topic.db) if topic is not None else []
        live = [cid for cid in sub.owners if self._by_id(cid) is not None]
        for cid in list(sub.owners):
            if cid not in live:
                del sub.owners[cid]
        valid = set(vgroups)
        before = {cid: list(vgs) for cid, vgs in sub.owners.items()}
        held: set[int] = set()
        for vgs in sub.owners.values():
            vgs[:] = [v for v in vgs if v in valid]
            held.update(vgs)
        pool = [v for v in vgroups if v not in held]
        if sub.owners:
            minimum, remainder = divmod(len(vgroups), len(sub.owners))
            extra = 0
            for vgs in sub.owners.values():          # processModifiedConsumers
                if len(vgs) > minimum:
                    keep = minimum + 1 if extra < remainder else minimum
                    if keep == minimum + 1:
                        extra += 1
                    pool.extend(vgs[keep:])
                    del vgs[keep:]
            pool.sort()
            for vgs in sub.owners.values():          # assignVgroups: up to the average ...
                while len(vgs) < minimum and pool:
                    vgs.append(pool.pop(0))
            for vgs in sub.owners.values():          # ... then one more while some are left
                if len(vgs) == minimum and pool:
                    vgs.append(pool.pop(0))
            sub.unassigned = []
        else:
            sub.unassigned = sorted(vgroups)
        stamp = _now_ms()
        for cid, vgs in sub.owners.items():
            consumer = self._by_id(cid)
            old = set(before.get(cid, []))
            for vgid in [key[1] for key in consumer._vgs if key[0] == sub.topic]:
                if vgid not in vgs:
                    self._release(consumer, sub, vgid)
            for vgid in vgs:
                consumer._vgs.setdefault((sub.topic, vgid), _VgState())
            if set(vgs) != old or cid not in before:
                consumer.rebalance_time_ms = stamp
            consumer._wakeup.set()

    def _by_id(self, consumer_id: int) -> Consumer | None:
        for consumer in self._consumers.values():
            if consumer.consumer_id == consumer_id and consumer.status in ("ready", "init"):
                return consumer
        return None

    # -- engine hooks -----------------------------------------------------------------------
    def _on_wal_append(self, vgid: int) -> None:
        for consumer in self._consumers.values():
            if consumer._pending_polls and any(key[1] == vgid for key in consumer._vgs):
                consumer._wakeup.set()

    def topic_in_use(self, topic: str) -> bool:
        return any(c.alive and topic in c.topics for c in self._consumers.values())

    def check_drop_topic(self, topic: str, force: bool = False) -> None:
        """Call before DROP TOPIC: MND_TOPIC_SUBSCRIBED while consumers use it; FORCE drops them."""
        self.check_sessions()
        users = [c for c in self._consumers.values() if c.alive and topic in c.topics]
        if users and not force:
            raise _error(codes.MND_TOPIC_SUBSCRIBED)
        for consumer in users:
            self._lose(consumer)
        for key in [k for k in self._subs if k[1] == topic]:
            del self._subs[key]

    def drop_consumer_group(self, group: str, topic: str, if_exists: bool = False, force: bool = False) -> None:
        """DROP CONSUMER GROUP [IF EXISTS] group ON topic: refused while consumers are in it (unless FORCE).

        TODO: TDengine also deletes the group's committed offsets on the vnodes; storage has no call for it yet.
        """
        self.check_sessions()
        sub = self._subs.get((group, topic))
        if sub is None:
            if if_exists:
                return
            raise _error(codes.MND_SUBSCRIBE_NOT_EXIST)
        if sub.owners and not force:
            raise _error(codes.MND_CGROUP_USED)
        for cid in list(sub.owners):
            consumer = self._by_id(cid)
            if consumer is not None:
                self._lose(consumer)
        self._subs.pop((group, topic), None)

    # -- SHOW CONSUMERS / SHOW SUBSCRIPTIONS -------------------------------------------------
    def consumers(self) -> list[tuple]:
        """Rows of SHOW CONSUMERS (CONSUMER_COLUMNS): one per consumer and subscribed topic.

        ``parameters`` says ``commit:0``: taosAdapter always creates the C consumer with auto
        commit off (it commits by itself). Times are epoch milliseconds, None for "never".
        """
        self.check_sessions()
        rows = []
        for consumer in self._consumers.values():
            if not consumer.alive or not consumer.topics:
                continue
            config = consumer.config
            parameters = (f"tbname:{int(config.with_table_name)},commit:0,"
                          f"interval:{config.auto_commit_interval_ms}ms,reset:{config.auto_offset_reset}")
            for topic in consumer.topics:
                rows.append((f"0x{consumer.consumer_id:x}", consumer.group, consumer.client_id, config.user,
                             self.fqdn, "ready", topic, consumer.up_time_ms, consumer.subscribe_time_ms,
                             consumer.rebalance_time_ms or None, parameters, consumer.poll_time_ms or None))
        return rows

    def subscriptions(self) -> list[tuple]:
        """Rows of SHOW SUBSCRIPTIONS (SUBSCRIPTION_COLUMNS): one per (topic, group, vgroup).

        ``offset`` is ``wal:<position>/<wal end>`` (or the reset name before the first poll), as
        consumers report them in heartbeats; vgroups without a consumer show the last values
        their previous consumer reported (NULL if none).
        """
        self.check_sessions()
        rows = []
        for sub in self._subs.values():
            for cid, vgs in sub.owners.items():
                consumer = self._by_id(cid)
                if consumer is None:
                    continue
                for vgid in vgs:
                    state = consumer._vgs.get((sub.topic, vgid))
                    if state is None:
                        continue
                    rows.append((sub.topic, sub.group, vgid, f"0x{cid:x}", consumer.config.user, self.fqdn,
                                 self._offset_text(consumer, state, vgid), state.rows))
            for vgid in sub.unassigned:
                offset, count = sub.history.get(vgid, (None, None))
                rows.append((sub.topic, sub.group, vgid, None, None, None, offset, count))
        return rows

    def _offset_text(self, consumer: Consumer, state: _VgState, vgid: int) -> str:
        end = self._backend.storage.wal_range(vgid)[1] if state.initialized else 0
        where = f"wal:{state.pos}" if state.pos is not None else consumer.config.auto_offset_reset
        return f"{where}/{end}"


__all__ = [
    "TmqService", "Consumer", "ConsumerConfig", "PolledMessage", "Assignment", "parse_config",
    "NO_COMMITTED", "MESSAGE_DATA", "MESSAGE_META", "MESSAGE_METADATA", "CONSUMER_COLUMNS",
    "SUBSCRIPTION_COLUMNS", "EXCLUDABLE_META",
]
