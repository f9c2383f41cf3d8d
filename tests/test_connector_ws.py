"""The WebSocket connector (``engine.connectors.ws``) against real sandboxes, on uvloop.

A source sandbox gets a SQL workload (metas, plain data, auto-created tables, alter, delete,
drop); its TMQ messages are decoded with ``engine.codec`` and replayed into a second sandbox with
``write_raw``. Connection loss is a sandbox stopped under a running poll; a timeout is a
WebSocket server that never answers; ``wss://`` goes through a TLS proxy in front of a sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess

import pytest
from websockets.asyncio.server import serve

from engine import error_codes as codes
from engine.codec import MetaMessage, RawDataMessage, decode_message
from engine.connectors import RawMessage, VgroupAssignment, run
from engine.connectors.ws import WsSink, WsSource
from engine.errors import ConnectionLost, ConnectorError, TDengineError
from engine.sandbox.server import Sandbox

T = 1_700_000_000_000
WORKLOAD = [
    "create database src vgroups 2",
    "create stable src.st (ts timestamp, v int, s varchar(16), n nchar(8), f double) tags (loc varchar(16), gid int)",
    "create table src.d0 using src.st tags ('a', 0)",
    "create table src.d1 using src.st tags ('b', 1)",
    "create table src.plain (ts timestamp, x bigint, b bool)",
    "create topic tp_all with meta as database src",
    f"insert into src.d0 values ({T}, 1, 'x', 'ü', 1.5) ({T + 1}, null, null, null, null)",
    f"insert into src.plain values ({T}, 10, true) ({T + 1}, -7, false)",
    f"insert into src.d2 using src.st tags ('c', 2) values ({T + 2}, 3, 'y', 'n', 2.5)",
    "alter stable src.st add column extra int",
    f"insert into src.d1 values ({T + 3}, 4, 'z', 'm', 3.5, 7)",
    f"delete from src.d0 where ts = {T}",
    "create table src.gone using src.st tags ('g', 9)",
    f"insert into src.gone values ({T + 9}, 9, 'g', 'g', 9.0, 9)",
    "drop table src.gone",
]
# Rows each table received, in insert order (what the data messages must carry).
INSERTED = {
    "d0": [(T, 1, "x", "ü", 1.5), (T + 1, None, None, None, None)],
    "plain": [(T, 10, True), (T + 1, -7, False)],
    "d2": [(T + 2, 3, "y", "n", 2.5)],
    "d1": [(T + 3, 4, "z", "m", 3.5, 7)],
    "gone": [(T + 9, 9, "g", "g", 9.0, 9)],
}
COMPARE = ["select tbname, * from {db}.st order by tbname, ts", "select * from {db}.plain order by ts",
           "describe {db}.st", "select count(*) from {db}.st"]


def _start(path, **kw) -> Sandbox:
    return Sandbox(path, **kw).start()


@pytest.fixture(scope="module")
def source_sb(tmp_path_factory):
    sb = _start(tmp_path_factory.mktemp("source"))
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def sink_sb(tmp_path_factory):
    sb = _start(tmp_path_factory.mktemp("sink"))
    yield sb
    sb.stop()


async def _drain(src: WsSource, timeout: float = 0.3) -> list[RawMessage]:
    out = []
    while (message := await src.poll(timeout)) is not None:
        out.append(message)
    return out


@pytest.fixture(scope="module")
def polled(source_sb) -> list[RawMessage]:
    """Every message of the workload, polled once by group ``g_all``."""
    async def main():
        async with WsSink(source_sb.url) as sql:
            for statement in WORKLOAD:
                await sql.execute(statement)
        async with WsSource(source_sb.url) as src:
            await src.subscribe("tp_all", "g_all", "test")
            return await _drain(src)
    return run(main())


@pytest.fixture(scope="module")
def replica(polled, source_sb, sink_sb):
    """The polled messages written into database ``rep`` of the sink, plus a local insert there."""
    async def main():
        async with WsSink(sink_sb.url, max_in_flight=4) as sink:
            await sink.execute("create database rep vgroups 2")
            await sink.execute("create topic rep_all with meta as database rep")
            for message in polled:
                await sink.write_raw("rep", message.raw_type, message.data)
            affected = await sink.execute(f"insert into rep.d0 values ({T + 50}, 50, 'local', 'l', 5.0, 5)")
            assert affected == 1
    run(main())
    return "rep"


# -- source ------------------------------------------------------------------------------------------

def test_poll_returns_raw_messages_that_decode(polled):
    kinds = {m.raw_type for m in polled}
    assert {2, 4, 515, 519, 531, 533, 579} <= kinds, kinds
    assert all(m.topic == "tp_all" and m.database == "src" and m.vgroup_id in (2, 3) for m in polled)
    rows: dict[str, list[tuple]] = {}
    for m in polled:
        decoded = decode_message(m.raw_type, m.data)
        if m.raw_type in (2, 4):
            assert isinstance(decoded, RawDataMessage) and decoded.raw_type == m.raw_type
            assert decoded.req_offset.version == m.offset and decoded.rsp_offset.version == m.next_offset
            assert decoded.with_table_name and decoded.with_schema
            for block in decoded.blocks:
                rows.setdefault(block.table_name, []).extend(block.rows())
            if m.raw_type == 4:
                assert decoded.create_table_requests         # d2 was created by the insert
        else:
            assert isinstance(decoded, MetaMessage)
            assert m.next_offset == m.offset                 # a meta reports version + 1 already
    assert rows == INSERTED
    metas = [(m.raw_type, decode_message(m.raw_type, m.data).table_names) for m in polled if m.raw_type > 6]
    assert (579, ["d0"]) in metas and (519, ["gone"]) in metas
    # per vgroup the offsets only grow
    for vgroup in (2, 3):
        offsets = [m.offset for m in polled if m.vgroup_id == vgroup]
        assert offsets == sorted(offsets)


def test_offsets_commit_seek_assignment_position_committed(polled, source_sb):
    async def main():
        src = WsSource(source_sb.url)
        await src.subscribe("tp_all", "g_offsets", "c1")
        before = await src.assignment("tp_all")
        assert [a.vgroup_id for a in before] == [2, 3]
        assert all(isinstance(a, VgroupAssignment) and a.current == a.begin and a.end > a.begin for a in before)
        assert [await src.committed("tp_all", a.vgroup_id) for a in before] == [None, None]
        assert [await src.position("tp_all", a.vgroup_id) for a in before] == [a.begin for a in before]

        first = await src.poll(1)
        vg = first.vgroup_id
        assert await src.position("tp_all", vg) == first.next_offset
        await src.commit("tp_all", vg, first.next_offset)
        assert await src.committed("tp_all", vg) == first.next_offset
        assert await src.position("tp_all", vg) == first.next_offset          # commit does not move

        rest = await _drain(src)
        assert len(rest) + 1 == len(polled)
        after = {a.vgroup_id: a for a in await src.assignment("tp_all")}
        for a in after.values():
            assert await src.position("tp_all", a.vgroup_id) == a.end
            last = [m for m in [first, *rest] if m.vgroup_id == a.vgroup_id][-1]
            assert a.current == (last.offset if last.is_data else last.next_offset)

        # seek back: the same message again, and nothing committed by it
        await src.seek("tp_all", vg, first.offset if first.is_data else after[vg].begin)
        again = await src.poll(1)
        assert (again.vgroup_id, again.raw_type, again.offset, again.data) == \
            (vg, first.raw_type, first.offset, first.data)
        assert await src.committed("tp_all", vg) == first.next_offset

        with pytest.raises(TDengineError) as info:
            await src.commit("tp_all", vg, after[vg].end + 100)
        assert info.value.code == codes.TMQ_VERSION_OUT_OF_RANGE
        with pytest.raises(TDengineError) as info:
            await src.seek("tp_all", vg, -5)
        assert info.value.code == codes.TMQ_VERSION_OUT_OF_RANGE
        with pytest.raises(TDengineError) as info:
            await src.position("tp_all", 999)
        assert info.value.code == codes.TMQ_INVALID_VGID
        await src.close()

        # a new consumer of the group starts where the group committed
        src = WsSource(source_sb.url)
        await src.subscribe("tp_all", "g_offsets", "c2")
        assert await src.committed("tp_all", vg) == first.next_offset
        resumed = [m for m in await _drain(src) if m.vgroup_id == vg]
        assert resumed and resumed[0].offset >= first.next_offset
        assert len(resumed) == len([m for m in polled if m.vgroup_id == vg]) - 1
        await src.close()

    run(main())


def test_source_query_and_server_errors(polled, source_sb):
    async def main():
        async with WsSource(source_sb.url) as src:
            topics = await src.query("show topics")
            assert "tp_all" in [row[0] for row in topics]
            with pytest.raises(ConnectorError, match="subscribe"):
                await src.poll(0.1)
            with pytest.raises(TDengineError) as info:
                await src.subscribe("no_such_topic", "g", "c")
            assert info.value.code == codes.MND_TOPIC_NOT_EXIST
            with pytest.raises(TDengineError) as info:
                await src.query("selec nothing")
            assert info.value.code == codes.PAR_SYNTAX_ERROR
            assert await src.query("select count(*) from src.plain") == [(2,)]    # the connection lives on

    run(main())


def test_lost_poll_answer_is_announced_again(source_sb):
    """A poll given up by the caller still takes a message on the server; the next poll gets it."""
    async def main():
        async with WsSink(source_sb.url) as sql, WsSource(source_sb.url) as src:
            await sql.execute("create database late vgroups 1")
            await sql.execute("create table late.t (ts timestamp, v int)")
            await sql.execute("create topic tp_late as database late")
            await src.subscribe("tp_late", "g_late", "c")
            assert await src.poll(0.2) is None
            waiting = asyncio.ensure_future(src.poll(3))
            await asyncio.sleep(0.2)
            waiting.cancel()
            await sql.execute(f"insert into late.t values ({T}, 42)")
            message = await src.poll(3)
            assert message is not None and message.raw_type == 2
            assert [b.rows() for b in decode_message(2, message.data).blocks] == [[(T, 42)]]
            assert await src.poll(0.2) is None

    run(main())


# -- sink --------------------------------------------------------------------------------------------

def test_write_raw_replica_selects_identical(replica, source_sb, sink_sb):
    async def main():
        async with WsSink(source_sb.url) as a, WsSink(sink_sb.url) as b:
            for template in COMPARE:
                src_names, src_rows = await a.query(template.format(db="src"))
                dst_names, dst_rows = await b.query(template.format(db=replica))
                if "tbname" in template:                      # the sink has one more row: its local insert
                    dst_rows = [r for r in dst_rows if r[3] != "local"]
                elif "count" in template:
                    dst_rows = [(dst_rows[0][0] - 1,)]
                assert (dst_names, dst_rows) == (src_names, src_rows), template
            _, tables = await b.query(f"show {replica}.tables")
            assert sorted(t[0] for t in tables) == ["d0", "d1", "d2", "plain"]

    run(main())


def test_excluded_consumer_does_not_see_replicated_writes(replica, sink_sb):
    async def main():
        async with WsSource(sink_sb.url) as excluded, WsSource(sink_sb.url) as everything:
            await excluded.subscribe("rep_all", "g_excl", "c")
            await everything.subscribe("rep_all", "g_every", "c", {"msg.consume.excluded": "0"})
            seen = await _drain(excluded)
            all_ = await _drain(everything)
        data = [b.rows() for m in seen if m.is_data for b in decode_message(m.raw_type, m.data).blocks]
        assert data == [[(T + 50, 50, "local", "l", 5.0, 5)]]
        assert {m.raw_type for m in seen if not m.is_data} <= {519}       # DROP TABLE is never excluded
        assert {2, 4, 515, 531, 533, 579} <= {m.raw_type for m in all_}

    run(main())


def test_many_writes_in_flight_with_metas_as_barriers(source_sb, sink_sb):
    async def main():
        async with WsSink(source_sb.url) as sql:
            await sql.execute("create database bulk vgroups 1")
            await sql.execute("create table bulk.t (ts timestamp, v int)")
            await sql.execute("create topic tp_bulk with meta as database bulk")
            for i in range(150):
                if i == 100:
                    await sql.execute("alter table bulk.t add column w int")
                tail = f", {-i}" if i >= 100 else ""
                await sql.execute(f"insert into bulk.t values ({T + i}, {i}{tail})")
        async with WsSource(source_sb.url) as src:
            await src.subscribe("tp_bulk", "g_bulk", "c", {"min.poll.rows": "1"})
            messages = await _drain(src)
        assert sum(m.is_data for m in messages) == 150
        assert [m.raw_type for m in messages if not m.is_data] == [515, 517]
        async with WsSink(sink_sb.url, max_in_flight=32) as sink:
            await sink.execute("create database bulk_rep vgroups 1")
            futures, peak, meta = [], 0, None
            for m in messages:
                future = await sink.send_raw("bulk_rep", m.raw_type, m.data)
                if meta is not None:                     # nothing goes out before the meta is acknowledged
                    assert meta.done()
                    meta = None
                if not m.is_data:                        # ...and the meta waited for all earlier writes
                    assert all(f.done() for f in futures)
                    meta = future
                futures.append(future)
                peak = max(peak, sum(not f.done() for f in futures))
            await sink.flush()
            assert all(f.done() for f in futures)
            await asyncio.gather(*futures)
            assert 1 < peak <= 32, peak
            expected = [(T + i, i, -i if i >= 100 else None) for i in range(150)]
            assert await sink.query("select * from bulk_rep.t order by ts") == (["ts", "v", "w"], expected)

    run(main())


def test_sink_errors_and_metas_are_barriers(sink_sb):
    async def main():
        async with WsSink(sink_sb.url) as sink:
            with pytest.raises(TDengineError) as info:
                await sink.write_raw("no_such_db", 2, b"\x64")
            assert info.value.code == codes.DB_NOT_EXIST
            await sink.execute("create database errs vgroups 1")
            with pytest.raises(TDengineError):
                await sink.write_raw("errs", 2, b"\x64garbage")
            with pytest.raises(TDengineError):
                await sink.write_raw("errs", 531, b"\x00" * 12)
            # the same connection keeps working; a failed barrier does not block later writes
            fut = await sink.send_raw("errs", 535, b"\x00")
            with pytest.raises(TDengineError):
                await fut
            with pytest.raises(TDengineError) as info:
                await sink.execute("insert into errs.nothing values (now, 1)")
            assert info.value.code == codes.PAR_TABLE_NOT_EXIST
            assert await sink.execute("create table errs.t (ts timestamp, v int)") == 0

    run(main())


# -- connection loss, timeouts, old adapters, TLS -----------------------------------------------------

def test_connection_loss_and_recovery(tmp_path):
    sb = _start(tmp_path)
    port = sb.port

    async def main():
        nonlocal sb
        sink, src = WsSink(sb.url), WsSource(sb.url)
        await sink.execute("create database lossy vgroups 1")
        await sink.execute("create table lossy.t (ts timestamp, v int)")
        await sink.execute("create topic tp_lossy as database lossy")
        await sink.execute("create database lossy_rep vgroups 1")
        await sink.execute("create table lossy_rep.t (ts timestamp, v int)")
        await sink.execute(f"insert into lossy.t values ({T}, 1)")
        await src.subscribe("tp_lossy", "g_lossy", "c")
        first = await src.poll(1)
        await src.commit("tp_lossy", first.vgroup_id, first.next_offset)
        await sink.execute(f"insert into lossy.t values ({T + 1}, 2)")
        second = await src.poll(1)
        pending = asyncio.ensure_future(src.poll(10))          # blocks on the server
        writing = await sink.send_raw("lossy_rep", first.raw_type, first.data)
        await writing
        await asyncio.sleep(0.1)

        await asyncio.to_thread(sb.stop)
        with pytest.raises(ConnectionLost) as info:
            await pending
        assert info.value.transient and "127.0.0.1" in str(info.value)
        with pytest.raises(ConnectionLost):
            await src.poll(0.1)                                 # reconnecting fails while it is down
        with pytest.raises(ConnectionLost):
            await sink.write_raw("lossy_rep", second.raw_type, second.data)
        with pytest.raises(ConnectionLost):
            await sink.execute("show databases")

        sb = await asyncio.to_thread(_start, tmp_path, port=port)
        # both reconnect by themselves; the source subscribes again from the committed offset
        again = await src.poll(2)
        assert (again.offset, again.data) == (second.offset, second.data)
        await sink.write_raw("lossy_rep", again.raw_type, again.data)
        assert await sink.query("select * from lossy_rep.t") == (["ts", "v"], [(T, 1), (T + 1, 2)])
        await src.close()
        await sink.close()

    try:
        run(main())
    finally:
        sb.stop()


def test_unreachable_and_silent_servers_are_connection_lost():
    async def main():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
        with pytest.raises(ConnectionLost, match="cannot connect"):
            await WsSink(f"ws://127.0.0.1:{free}", open_timeout=2).execute("show databases")

        async def silent(ws):
            await ws.wait_closed()

        async with serve(silent, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            sink = WsSink(f"ws://127.0.0.1:{port}", request_timeout=0.3)
            with pytest.raises(ConnectionLost, match="no answer to version within 0.3 s"):
                await sink.execute("show databases")
            await sink.close()

    run(main())


def test_adapter_before_3_3_2_uses_json_query_and_fetch_raw(tmp_path):
    sb = _start(tmp_path, version="3.3.0.0")

    async def main():
        async with WsSink(sb.url) as sink, WsSource(sb.url) as src:
            await sink.execute("create database old vgroups 1")
            await sink.execute("create table old.t (ts timestamp, v int, s nchar(4))")
            await sink.execute("create topic tp_old as database old")
            await sink.execute(f"insert into old.t values ({T}, 1, 'ä') ({T + 1}, null, null)")
            assert await sink.query("select * from old.t") == (["ts", "v", "s"], [(T, 1, "ä"), (T + 1, None, None)])
            assert not sink._admin.binary
            await src.subscribe("tp_old", "g", "c")
            message = await src.poll(1)
            assert message.raw_type == 2
            assert decode_message(2, message.data).blocks[0].rows() == [(T, 1, "ä"), (T + 1, None, None)]
            await sink.execute("create database old_rep vgroups 1")
            await sink.execute("create table old_rep.t (ts timestamp, v int, s nchar(4))")
            await sink.write_raw("old_rep", message.raw_type, message.data)
            assert (await sink.query("select * from old_rep.t"))[1] == [(T, 1, "ä"), (T + 1, None, None)]

    try:
        run(main())
    finally:
        sb.stop()


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                        "-out", str(cert)], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no openssl to make a test certificate: {exc}")
    return cert, key


def test_wss_through_a_tls_proxy(sink_sb, certificate):
    """The sandbox has no TLS; a TLS-terminating TCP proxy in front of it makes a wss:// server."""
    cert, key = certificate

    async def pipe(reader, writer):
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def proxy(reader, writer):
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", sink_sb.port)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def main():
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        server = await asyncio.start_server(proxy, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            trusted = ssl.create_default_context(cafile=str(cert))
            async with WsSink(f"wss://127.0.0.1:{port}", ssl_context=trusted) as sink:
                assert (await sink.query("select 1"))[1] == [(1,)]
            with pytest.raises(ConnectorError, match="not trusted"):
                await WsSink(f"wss://127.0.0.1:{port}").execute("select 1")
        finally:
            server.close()

    run(main())
