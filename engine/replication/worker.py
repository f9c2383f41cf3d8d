"""The VgroupWorker: one source vgroup of one database replicated to a sink, in WAL order.

poll → meta messages are written at once (after flushing pending data, so DDL precedes the data
that follows it) → data messages are merged into a batch → the batch is written with one raw
write when a row, byte or age limit is reached → the sink acknowledged → the offset is stored in
LMDB → the offset is committed to the source's consumer group. A restart seeks to the LMDB
offset, so nothing acknowledged is written twice and nothing unacknowledged is skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from engine.codec import RawDataMessage, decode_message
from engine.connectors.base import RawMessage, Sink, Source, VgroupAssignment
from engine.errors import (
    CodecError,
    ConnectionLost,
    SinkWriteError,
    TDengineError,
    WalRetentionExceeded,
)
from engine.identifiers import quote, topic_for
from engine.replication.batch import Batch, BatchLimits
from engine.replication.offsets import OffsetStore

log = logging.getLogger("tdsync.worker")

DATA_RAW_TYPES = (2, 4)
# Codes that mean "the sink has no such table or super table yet".
MISSING_TABLE_CODES = frozenset({0x2603, 0x0618, 0x0362, 0x061A, 0x2662})
# Codes that mean "try again later": the server is busy, restarting or unreachable.
# 0x03E6: the source dropped this consumer (no poll within max.poll.interval.ms): subscribe again.
TRANSIENT_CODES = frozenset({0x000B, 0x0019, 0x0213, 0x012C, 0x0503, 0x0102, 0x03E6})


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = 0.1
    max_delay: float = 5.0

    def delays(self):
        delay = self.first_delay
        while True:
            yield delay
            delay = min(delay * 2, self.max_delay)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionLost | asyncio.TimeoutError | OSError):
        return True
    return isinstance(exc, TDengineError) and exc.code in TRANSIENT_CODES


@dataclass
class WorkerStats:
    rows: int = 0
    bytes: int = 0
    messages: int = 0
    metas: int = 0
    writes: int = 0
    last_write: float = 0.0


class VgroupWorker:
    """Replicates the vgroups its consumer is assigned (one, when the supervisor runs one per vgroup)."""

    def __init__(self, replica: str, database: str, open_source: Callable[[], Awaitable[Source]],
                 open_sink: Callable[[], Awaitable[Sink]], offsets: OffsetStore, *,
                 limits: BatchLimits | None = None, retry: RetryPolicy | None = None,
                 client_id: str | None = None, failed_dir: Path | None = None,
                 heartbeat: Callable[[], None] | None = None, poll_timeout: float = 0.1) -> None:
        self.replica = replica
        self.database = database
        self.topic = topic_for(database)
        self.group = f"tdsync_{replica}"
        self.client_id = client_id or f"tdsync-{replica}-{database}"
        self._open_source = open_source
        self._open_sink = open_sink
        self.offsets = offsets
        self.limits = limits or BatchLimits()
        self.retry = retry or RetryPolicy()
        self.failed_dir = failed_dir
        self.heartbeat = heartbeat or (lambda: None)
        self.poll_timeout = poll_timeout
        self.source: Source | None = None
        self.sink: Sink | None = None
        self.batches: dict[int, Batch] = {}
        self.next_offset: dict[int, int] = {}   # vgroup -> next WAL version not yet on the sink
        self.polled_to: dict[int, int] = {}     # vgroup -> next WAL version after the last message polled
        self.stats = WorkerStats()
        self._stopping = asyncio.Event()
        self._last_idle_check = 0.0
        self._last_retention_check = time.monotonic()
        self._paused = False        # a write had to wait: check the WAL before polling on

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the worker to flush what it holds, store the offsets and return."""
        self._stopping.set()

    async def run(self) -> None:
        try:
            await self._connect_sink()
            await self._connect_source()
            while not self._stopping.is_set():
                self.heartbeat()
                message = await self._poll()
                if message is not None:
                    await self._handle(message)
                else:
                    await self._advance_idle()
                await self._flush_due()
            await self._flush_all()
        finally:
            await self._close()

    async def _close(self) -> None:
        for endpoint in (self.source, self.sink):
            if endpoint is not None:
                try:
                    await endpoint.close()
                except Exception:  # noqa: BLE001 - closing a broken connection may fail, nothing to do
                    pass
        self.source = self.sink = None

    async def _connect_sink(self) -> None:
        async def connect():
            self.sink = await self._open_sink()
        await self._retrying("connect to the sink", connect)

    async def _connect_source(self) -> None:
        async def connect():
            if self.source is not None:
                await _quietly_close(self.source)
            self.source = await self._open_source()
            await self.source.query(f"CREATE TOPIC IF NOT EXISTS {quote(self.topic)} WITH META "
                                    f"AS DATABASE {quote(self.database)}")
            await self.source.subscribe(self.topic, self.group, self.client_id)
            await self._position_vgroups()
        await self._retrying("subscribe to the source", connect)

    async def _position_vgroups(self) -> None:
        """Seek every assigned vgroup to the LMDB offset; refuse to skip data the WAL no longer has."""
        for assigned in await self.source.assignment(self.topic):
            record = self.offsets.get(self.replica, self.database, assigned.vgroup_id)
            if record is None:
                if assigned.begin > 0 and assigned.current < assigned.begin and assigned.current >= 0:
                    raise WalRetentionExceeded(self.database, assigned.vgroup_id, assigned.current,
                                               assigned.begin - 1)
                continue
            stored = record.offset
            if stored < assigned.begin:
                raise WalRetentionExceeded(self.database, assigned.vgroup_id, stored, assigned.begin - 1)
            self.next_offset[assigned.vgroup_id] = stored
            self.polled_to[assigned.vgroup_id] = stored
            if stored != assigned.current:
                await self.source.seek(self.topic, assigned.vgroup_id, min(stored, assigned.end))

    # -- the loop ----------------------------------------------------------------------------
    async def _poll(self) -> RawMessage | None:
        if self._paused or time.monotonic() - self._last_retention_check > 10.0:
            try:
                await self._check_retention()
            except Exception as exc:  # noqa: BLE001 - checked again before the next poll; data loss raises
                if not is_transient(exc) and not isinstance(exc, TDengineError):
                    raise
        try:
            return await self.source.poll(self.poll_timeout)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s: source connection lost (%s); reconnecting", self._where(None), exc)
            await self._flush_all()
            await self._connect_source()
            return None

    async def _handle(self, message: RawMessage) -> None:
        vgroup = message.vgroup_id
        if vgroup not in self.next_offset and self.offsets.get(self.replica, self.database, vgroup) is not None:
            await self._position_vgroups()     # a rebalance gave this worker a vgroup: check and seek
        await self._check_gap(vgroup, message.next_offset)
        if message.raw_type in DATA_RAW_TYPES:
            try:
                data = RawDataMessage.decode(message.data, message.raw_type)
            except CodecError as exc:
                self._save_failed(message.data, message.raw_type, vgroup, message.offset)
                raise SinkWriteError(f"{self._where(vgroup)}: undecodable data message at offset "
                                     f"{message.offset}: {exc}") from None
            end = data.rsp_offset.version
            if end is not None and end <= self.next_offset.get(vgroup, -1):
                return                                        # already on the sink
            batch = self.batches.setdefault(vgroup, Batch(vgroup))
            batch.add(data)
            if batch.full(self.limits):
                await self._flush(batch)
            return
        await self._flush_vgroup(vgroup)                     # DDL must follow the data before it
        if message.offset <= self.next_offset.get(vgroup, -1):
            return
        await self._write(vgroup, message.raw_type, message.data, tables=_meta_tables(message))
        self.stats.metas += 1
        await self._acknowledge(vgroup, message.offset, 0, len(message.data))

    async def _check_gap(self, vgroup: int, end: int | None) -> None:
        """A message that moves the position by more than one version may hide a purge.

        Entries skipped on purpose (replicated writes, filtered by the server) also make such steps,
        so only then is the WAL's ``begin`` asked: above what was read before, entries were lost.
        """
        before = self.polled_to.get(vgroup, self.next_offset.get(vgroup))
        if end is not None:
            self.polled_to[vgroup] = end
        if before is None or end is None or end - before <= 1:
            return
        for assigned in await self.source.assignment(self.topic):
            if assigned.vgroup_id == vgroup and assigned.begin > before:
                raise WalRetentionExceeded(self.database, vgroup, before, assigned.begin - 1)

    async def _check_retention(self) -> list[VgroupAssignment]:
        """Stop if the source dropped WAL entries this replica has not copied yet.

        TDengine moves a consumer past purged entries without a word (the next message still
        reports the offset asked for), so the WAL's ``begin`` is compared with what is on the sink,
        when idle, after the worker was held up, and every few seconds.
        """
        self._last_retention_check = time.monotonic()
        self._paused = False
        assignment = await self.source.assignment(self.topic)
        for assigned in assignment:
            stored = self.next_offset.get(assigned.vgroup_id)
            if stored is not None and stored < assigned.begin and not self.batches.get(assigned.vgroup_id):
                raise WalRetentionExceeded(self.database, assigned.vgroup_id, stored, assigned.begin - 1)
        return assignment

    async def _advance_idle(self) -> None:
        """Nothing to copy: record how far the consumer has read (past entries it filtered out).

        Replicated writes on the source are skipped by the server (msg.consume.excluded), so the
        consumer's position can run ahead of the last write; storing it keeps `diff` at zero lag.
        """
        now = time.monotonic()
        if now - self._last_idle_check < 1.0:
            return
        self._last_idle_check = now
        assignment = await self._check_retention()     # one assignment answers both questions
        try:
            for assigned in assignment:
                vgroup = assigned.vgroup_id
                if self.batches.get(vgroup):
                    continue
                position = await self.source.position(self.topic, vgroup)
                if position > self.next_offset.get(vgroup, assigned.begin) and position <= assigned.end:
                    await self._acknowledge(vgroup, position, 0, 0)
        except Exception as exc:  # noqa: BLE001 - only bookkeeping; the next poll reports real trouble
            if not is_transient(exc) and not isinstance(exc, TDengineError):
                raise

    async def _flush_due(self) -> None:
        now = time.monotonic()
        for batch in list(self.batches.values()):
            if batch.due(self.limits, now):
                await self._flush(batch)

    async def _flush_all(self) -> None:
        for batch in list(self.batches.values()):
            if batch:
                await self._flush(batch)

    async def _flush_vgroup(self, vgroup: int) -> None:
        batch = self.batches.get(vgroup)
        if batch:
            await self._flush(batch)

    async def _flush(self, batch: Batch) -> None:
        merged = batch.merged()
        payload = merged.encode()
        await self._write(batch.vgroup_id, merged.raw_type, payload, tables=merged.table_names)
        self.stats.rows += batch.rows
        self.stats.messages += len(batch.messages)
        await self._acknowledge(batch.vgroup_id, merged.rsp_offset.version, batch.rows, len(payload))
        batch.clear()

    async def _acknowledge(self, vgroup: int, next_offset: int, rows: int, nbytes: int) -> None:
        """The sink has it: store the offset in LMDB, then commit it to the source's group."""
        self.offsets.put_batch([(self.replica, self.database, vgroup, next_offset, rows, nbytes)])
        self.next_offset[vgroup] = next_offset
        self.stats.bytes += nbytes
        self.stats.writes += 1
        self.stats.last_write = time.time()
        try:
            await self.source.commit(self.topic, vgroup, next_offset)
        except Exception as exc:   # the LMDB offset is what counts; the group offset catches up next time
            if not is_transient(exc) and not isinstance(exc, TDengineError):
                raise
            log.info("%s: commit of offset %d deferred (%s)", self._where(vgroup), next_offset, exc)

    # -- writing -----------------------------------------------------------------------------
    async def _write(self, vgroup: int, raw_type: int, payload: bytes, tables: list[str]) -> None:
        """Write until the sink acknowledges: transient failures are retried with capped backoff,
        a missing table is created once from the source's definition, anything else stops the worker."""
        create_missing = False
        tried_create = False
        for delay in self.retry.delays():
            try:
                if create_missing:
                    await self._create_missing_tables(tables)
                    create_missing = False
                await self.sink.write_raw(self.database, raw_type, payload)
                return
            except TDengineError as exc:
                if exc.code in MISSING_TABLE_CODES and not tried_create and raw_type in DATA_RAW_TYPES:
                    create_missing = tried_create = True
                    continue
                if exc.code not in TRANSIENT_CODES:
                    self._save_failed(payload, raw_type, vgroup, None)
                    raise SinkWriteError(f"{self._where(vgroup)}: the sink refused a raw_type {raw_type} write "
                                         f"for table(s) {', '.join(sorted(set(tables))) or '-'}: {exc}") from None
                log.warning("%s: sink busy (%s); retrying in %.1fs", self._where(vgroup), exc, delay)
                self._paused = True
                await asyncio.sleep(delay)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("%s: sink connection lost (%s); retrying in %.1fs", self._where(vgroup), exc, delay)
                self._paused = True
                self.heartbeat()
                await asyncio.sleep(delay)
                await _quietly_close(self.sink)
                try:
                    self.sink = await self._open_sink()
                except Exception as reconnect:  # noqa: BLE001 - the next round retries
                    if not is_transient(reconnect):
                        raise

    async def _create_missing_tables(self, tables: list[str]) -> None:
        """Replication started after these tables were created: copy their definitions from the source."""
        db = quote(self.database)
        for table in dict.fromkeys(tables):
            if table is None or await self._sink_has(table):
                continue
            create = await self._source_create_sql(table)
            if create is None:
                continue
            stable = _using_stable(create)
            if stable is not None and not await self._sink_has(stable):
                stable_sql = await self._source_create_sql(stable)
                if stable_sql is not None:
                    await self.sink.execute(f"USE {db}")
                    await self.sink.execute(_if_not_exists(stable_sql))
                    log.info("%s: created super table %s on the sink from the source's definition",
                             self._where(None), stable)
            await self.sink.execute(f"USE {db}")
            await self.sink.execute(_if_not_exists(create))
            log.info("%s: created table %s on the sink from the source's definition", self._where(None), table)

    async def _sink_has(self, table: str) -> bool:
        try:
            await self.sink.query(f"DESCRIBE {quote(self.database)}.{quote(table)}")
            return True
        except TDengineError:
            return False

    async def _source_create_sql(self, table: str) -> str | None:
        try:
            rows = await self.source.query(f"SHOW CREATE TABLE {quote(self.database)}.{quote(table)}")
        except TDengineError:
            return None
        return rows[0][1] if rows else None

    # -- helpers -----------------------------------------------------------------------------
    async def _retrying(self, what: str, action: Callable[[], Awaitable[None]]) -> None:
        for delay in self.retry.delays():
            try:
                await action()
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("%s: cannot %s (%s); retrying in %.1fs", self._where(None), what, exc, delay)
                await asyncio.sleep(delay)

    def _where(self, vgroup: int | None) -> str:
        where = f"replica {self.replica} database {self.database}"
        return where if vgroup is None else f"{where} vgroup {vgroup}"

    def _save_failed(self, payload: bytes, raw_type: int, vgroup: int, offset: int | None) -> None:
        """Keep a message the sink refused, in the layout `tdsync inspect` reads (NAME.bin + NAME.json)."""
        if self.failed_dir is None:
            return
        self.failed_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{self.replica}_{self.database}_v{vgroup}_{offset if offset is not None else int(time.time())}"
        (self.failed_dir / f"{stem}.bin").write_bytes(payload)
        (self.failed_dir / f"{stem}.json").write_text(json.dumps(
            {"raw_type": raw_type, "kind": "tmq_raw", "db": self.database, "vgroup_id": vgroup,
             "offset": offset, "replica": self.replica}, indent=1))
        log.error("%s: saved the refused message as %s.bin (see `tdsync inspect`)", self._where(vgroup),
                  self.failed_dir / stem)


def _meta_tables(message: RawMessage) -> list[str]:
    try:
        return list(decode_message(message.raw_type, message.data).table_names)
    except (CodecError, ValueError):
        return []


def _using_stable(create_sql: str) -> str | None:
    upper = create_sql.upper()
    at = upper.find(" USING ")
    if at < 0:
        return None
    rest = create_sql[at + 7:].strip()
    name = rest.split()[0].split("(")[0]
    return name.strip("`").split(".")[-1].strip("`")


def _if_not_exists(create_sql: str) -> str:
    for prefix in ("CREATE STABLE ", "CREATE TABLE "):
        if create_sql.upper().startswith(prefix) and "IF NOT EXISTS" not in create_sql.upper():
            return prefix + "IF NOT EXISTS " + create_sql[len(prefix):]
    return create_sql


async def _quietly_close(endpoint) -> None:
    if endpoint is None:
        return
    try:
        await endpoint.close()
    except Exception:  # noqa: BLE001 - a broken connection may fail to close
        pass


def _parse_args(argv: list[str] | None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m engine.replication.worker",
                                     description="Run one replication worker in the foreground.")
    parser.add_argument("--replica", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--source", required=True, help="source endpoint")
    parser.add_argument("--sink", required=True, help="sink endpoint")
    parser.add_argument("--offsets", required=True, type=Path, help="LMDB directory of the offset store")
    parser.add_argument("--client-id")
    parser.add_argument("--max-rows", type=int, default=BatchLimits.max_rows)
    parser.add_argument("--max-bytes", type=int, default=BatchLimits.max_bytes)
    parser.add_argument("--max-age", type=float, default=BatchLimits.max_age)
    parser.add_argument("--failed-dir", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Foreground worker: SIGTERM/SIGINT flush the batch, store the offset and exit 0."""
    import signal
    import sys

    from engine.connectors.base import open_sink, open_source, run
    from engine.endpoint import Endpoint
    from engine.errors import TdsyncError

    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        source_ep, sink_ep = Endpoint.parse(args.source), Endpoint.parse(args.sink)
    except TdsyncError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2

    async def main_async() -> int:
        async def source():
            return open_source(source_ep)

        async def sink():
            return open_sink(sink_ep)

        store = OffsetStore(args.offsets)
        worker = VgroupWorker(args.replica, args.database, source, sink, store,
                              limits=BatchLimits(args.max_rows, args.max_bytes, args.max_age),
                              client_id=args.client_id, failed_dir=args.failed_dir)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        try:
            await worker.run()
        except TdsyncError as exc:
            log.error("%s", exc)
            return 1
        finally:
            store.close()
        return 0

    return run(main_async())


if __name__ == "__main__":
    raise SystemExit(main())
