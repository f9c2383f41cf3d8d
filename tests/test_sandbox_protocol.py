"""Frame-level tests of the sandbox's taosAdapter protocol (``/ws`` and ``/rest/tmq``).

Requests are built by hand from the layouts in /work/shared/reference/formats.md sections 5-6
(taosAdapter controller/ws/ws and controller/ws/tmq; Rust taos-ws) and sent with the
``websockets`` client to a sandbox running in a thread over the fakes in ``sandbox_fakes``.
"""

from __future__ import annotations

import json
import struct
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from engine.codec import RawBlock, RawDataMessage, encode_block
from engine.sandbox.protocol import OFFSET_INVALID, BadArgs, TmqConfError, parse_args, tmq_conf_set
from engine.sandbox.server import Sandbox
from tests.sandbox_fakes import ALL_TYPES_COLUMNS, ALL_TYPES_ROWS, FakeEngine, FakeTmqService

NEW = 0xFFFFFFFFFFFFFFFF


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = Sandbox(tmp_path_factory.mktemp("sandbox"), engine_factory=FakeEngine, tmq_factory=FakeTmqService)
    sb.start()
    yield sb
    sb.stop()


class Client:
    def __init__(self, url: str, **kw) -> None:
        self.ws = connect(url, proxy=None, open_timeout=5, max_size=None, legacy=True, **kw)
        self.req = 0

    def close(self) -> None:
        self.ws.close()

    def send(self, action: str, **args) -> int:
        if "req_id" not in args:
            self.req += 1
            args["req_id"] = self.req
        self.ws.send(json.dumps({"action": action, "args": args}))
        return args["req_id"]

    def recv(self, timeout: float = 5):
        return self.ws.recv(timeout=timeout)

    def json(self, timeout: float = 5) -> dict:
        frame = self.recv(timeout)
        assert isinstance(frame, str), frame[:64]
        return json.loads(frame)

    def binary(self, timeout: float = 5) -> bytes:
        frame = self.recv(timeout)
        assert isinstance(frame, bytes), frame
        return frame

    def call(self, action: str, **args) -> dict:
        self.send(action, **args)
        return self.json()

    def nothing(self, timeout: float = 0.2) -> bool:
        try:
            self.recv(timeout)
        except TimeoutError:
            return True
        return False


def _sql(sandbox, *, connect_db: str | None = "test") -> Client:
    c = Client(sandbox.url + "/ws")
    args = {"user": "root", "password": "taosdata"}
    if connect_db:
        args["db"] = connect_db
    resp = c.call("conn", **args)
    assert resp["code"] == 0, resp
    return c


def _assert_base(resp: dict, action: str, req_id: int, code: int = 0) -> None:
    assert list(resp)[:5] == ["code", "message", "action", "req_id", "timing"]
    assert resp["action"] == action and resp["req_id"] == req_id and resp["code"] == code
    assert isinstance(resp["timing"], int) and resp["timing"] >= 0


# ---------------------------------------------------------------------------------------------
# /ws: connection, version, errors
# ---------------------------------------------------------------------------------------------
def test_version_and_conn(sandbox):
    c = Client(sandbox.url + "/ws")
    resp = c.call("version", req_id=7)
    assert resp == {"code": 0, "message": "", "action": "version", "req_id": 7, "timing": resp["timing"],
                    "version": "3.3.7.5"}
    c.ws.send('{"action":"version"}')              # no args at all is fine for version
    assert c.json()["version"] == "3.3.7.5"
    resp = c.call("conn", req_id=8, user="root", password="taosdata", db="", connector="test")
    assert list(resp) == ["code", "message", "action", "req_id", "timing", "version"]
    _assert_base(resp, "conn", 8)
    resp = c.call("conn", req_id=9, user="root", password="taosdata")
    _assert_base(resp, "conn", 9, 0xFFFF)
    assert resp["message"] == "duplicate connections"
    c.close()


@pytest.mark.parametrize("user,password,db,code,message", [
    ("root", "wrong", "", 0x0357, "Authentication failure"),
    ("nobody", "taosdata", "", 0x0351, "Invalid user"),
    ("root", "taosdata", "nodb", 0x0388, "Database not exist"),
    ("", "taosdata", "", 0x0207, "Invalid user name"),                 # taos_connect's own checks
    ("root", "", "", 0x0208, "Invalid password length"),
    ("root", "taosdata", "d" * 65, 0x0209, "Database name too long"),
])
def test_conn_refused(sandbox, user, password, db, code, message):
    c = Client(sandbox.url + "/ws")
    resp = c.call("conn", req_id=3, user=user, password=password, db=db)
    _assert_base(resp, "conn", 3, code)
    assert resp["message"] == message
    # still usable, and still not connected
    resp = c.call("query", req_id=4, sql="show databases")
    _assert_base(resp, "query", 4, 0xFFFF)
    assert resp["message"] == "server not connected"
    resp = c.call("conn", req_id=5, user="root", password="taosdata")
    assert resp["code"] == 0
    c.close()


def test_conn_mode(sandbox):
    c = Client(sandbox.url + "/ws")
    assert c.call("conn", req_id=1, user="root", password="taosdata", mode=1)["message"] == "unexpected mode:1"
    assert c.call("conn", req_id=2, user="root", password="taosdata", mode=0)["code"] == 0
    c.close()


def test_malformed_requests_keep_the_socket(sandbox):
    c = Client(sandbox.url + "/ws")
    c.ws.send("{not json")
    resp = c.json()
    _assert_base(resp, "", 0, 0xFFFF)
    assert resp["message"] == "unmarshal request error"
    c.ws.send("[1, 2]")
    assert c.json()["message"] == "unmarshal request error"
    c.ws.send('{"args": {"req_id": 12}}')
    resp = c.json()
    _assert_base(resp, "", 12, 0xFFFF)
    assert resp["message"] == "request no action"
    c.ws.send('{"action": "conn"}')                      # args missing: Go fails to unmarshal nothing
    assert c.json()["message"] == "unmarshal connect request error"
    c.ws.send('{"action": "version", "args": {"req_id": "x"}}')
    resp = c.json()
    assert resp["code"] == 0xFFFF and resp["message"] == "unmarshal version request error"
    resp = c.call("frobnicate", req_id=13)
    _assert_base(resp, "frobnicate", 13, 0xFFFF)
    assert resp["message"] == "server not connected"
    assert c.call("conn", user="root", password="taosdata")["code"] == 0
    resp = c.call("frobnicate", req_id=14)
    assert resp["message"] == "unknown action frobnicate" and resp["req_id"] == 14
    c.ws.send(json.dumps({"action": "query", "args": {"req_id": "15", "sql": 1}}))
    resp = c.json()
    _assert_base(resp, "query", 15, 0xFFFF)                # lenient req_id, as the adapter's jsoniter
    assert resp["message"] == "unmarshal query request error"
    resp = c.call("insert", req_id=16, protocol=1, precision="ms", data="m v=1")
    assert resp["code"] == 0xFFFF and "not supported" in resp["message"]
    assert c.call("version", req_id=17)["version"] == "3.3.7.5"
    c.close()


def test_binary_frame_errors(sandbox):
    c = _sql(sandbox)
    c.ws.send(b"\x01\x02")
    resp = c.json()
    assert resp["code"] == 0xFFFF and resp["message"] == "message length is too short"
    c.ws.send(struct.pack("<QQQ", 21, 0, 99))
    resp = c.json()
    _assert_base(resp, "unknown", 21, 0xFFFF)
    assert resp["message"] == "unknown binary action 99"
    # binary_query: too short, wrong version, sql longer than the frame
    c.ws.send(struct.pack("<QQQHI", 22, 0, 6, 1, 0))
    assert c.json()["message"] == "message length is too short"
    c.ws.send(struct.pack("<QQQHI", 23, 0, 6, 2, 1) + b"x")
    assert c.json()["message"] == "unknown binary query version:2"
    c.ws.send(struct.pack("<QQQHI", 24, 0, 6, 1, 100) + b"select 1")
    resp = c.json()
    _assert_base(resp, "binary_query", 24, 0xFFFF)
    assert resp["message"] == "uncompleted message, sql length:100, remainMessageLength:8"
    # write_raw with a length beyond the frame
    c.ws.send(struct.pack("<QQQIH", 25, 0, 3, 1000, 2) + b"\x00" * 10)
    resp = c.json()
    _assert_base(resp, "write_raw", 25, 0xFFFF)
    assert resp["message"].startswith("uncompleted message")
    # write_raw_block with a block length beyond the frame
    block = encode_block([(9, 8, [1]), (4, 4, [1])], version=1)
    frame = struct.pack("<QQQiH", 26, 0, 4, 1, 2) + b"t1" + block[:-5]
    c.ws.send(frame)
    resp = c.json()
    _assert_base(resp, "write_raw_block", 26, 0xFFFF)
    assert resp["message"].startswith("uncompleted message")
    assert c.call("version", req_id=27)["code"] == 0
    c.close()


def test_binary_before_conn(sandbox):
    c = Client(sandbox.url + "/ws")
    c.ws.send(struct.pack("<QQQHI", 5, 0, 6, 1, 8) + b"select 1")
    resp = c.json()
    _assert_base(resp, "binary_query", 5, 0xFFFF)
    assert resp["message"] == "server not connected"
    c.close()


# ---------------------------------------------------------------------------------------------
# /ws: queries
# ---------------------------------------------------------------------------------------------
QUERY_KEYS = ["code", "message", "action", "req_id", "timing", "id", "is_update", "affected_rows", "fields_count",
              "fields_names", "fields_types", "fields_lengths", "precision", "fields_precisions", "fields_scales"]


def test_update_query(sandbox):
    c = _sql(sandbox, connect_db=None)
    resp = c.call("query", req_id=31, sql="  insert into test.t values(now, 1)(now, 2)  ")
    assert list(resp) == QUERY_KEYS
    _assert_base(resp, "query", 31)
    assert resp["is_update"] is True and resp["affected_rows"] == 2 and resp["id"] == 0
    assert resp["fields_names"] is None and resp["fields_types"] is None and resp["fields_lengths"] is None
    resp = c.call("query", req_id=32, sql="insert into t values(now, 1)")
    _assert_base(resp, "query", 32, 0x2616)
    assert resp["message"] == "Database not specified"
    assert c.call("query", sql="use test")["is_update"] is True
    assert c.call("get_current_db", req_id=33)["db"] == "test"
    resp = c.call("query", req_id=34, sql="selec oops")
    _assert_base(resp, "query", 34, 0x2600)
    assert resp["message"] == 'syntax error near "selec"'
    c.close()


def test_json_query_fetch_fetch_block(sandbox):
    c = _sql(sandbox)
    resp = c.call("query", req_id=41, sql="select * from all_types")
    assert list(resp) == QUERY_KEYS
    _assert_base(resp, "query", 41)
    rid = resp["id"]
    assert rid > 0 and resp["is_update"] is False and resp["fields_count"] == len(ALL_TYPES_COLUMNS)
    assert resp["fields_names"] == [col[0] for col in ALL_TYPES_COLUMNS]
    assert resp["fields_types"] == [col[1] for col in ALL_TYPES_COLUMNS]
    assert resp["fields_lengths"] == [col[2] for col in ALL_TYPES_COLUMNS]
    assert resp["fields_precisions"] == [col[4] for col in ALL_TYPES_COLUMNS]
    assert resp["fields_scales"] == [col[5] for col in ALL_TYPES_COLUMNS]
    assert resp["precision"] == 0
    assert c.call("num_fields", req_id=42, result_id=rid)["num_fields"] == len(ALL_TYPES_COLUMNS)

    resp = c.call("fetch_block", req_id=43, id=rid)            # before any fetch
    _assert_base(resp, "fetch_block", 43, 0xFFFF)
    assert resp["message"] == "block is nil"

    resp = c.call("fetch", req_id=44, id=rid)
    assert list(resp) == ["code", "message", "action", "req_id", "timing", "id", "completed", "lengths", "rows"]
    _assert_base(resp, "fetch", 44)
    assert resp["completed"] is False and resp["rows"] == len(ALL_TYPES_ROWS) and resp["id"] == rid
    assert resp["lengths"] == [col[3] for col in ALL_TYPES_COLUMNS][:16] + [8, 16]   # schema widths
    for _ in range(2):                                        # fetch_block can be repeated
        c.send("fetch_block", req_id=45, id=rid)
        frame = c.binary()
        timing, result_id = struct.unpack_from("<QQ", frame)
        assert result_id == rid and timing < 10**10
        block = RawBlock.decode(frame[16:], precision=0)
        assert block.version == 1 and block.rows() == ALL_TYPES_ROWS
    resp = c.call("fetch", req_id=46, id=rid)
    _assert_base(resp, "fetch", 46)
    assert resp["completed"] is True and resp["lengths"] is None and resp["rows"] == 0
    resp = c.call("fetch", req_id=47, id=rid)                  # freed on completion
    _assert_base(resp, "fetch", 47, 0xFFFF)
    assert resp["message"] == "result is nil"
    c.close()


def test_free_result_has_no_answer(sandbox):
    c = _sql(sandbox)
    rid = c.call("query", sql="select * from big")["id"]
    c.send("free_result", req_id=51, id=rid)
    assert c.nothing()
    assert c.call("fetch", req_id=52, id=rid)["message"] == "result is nil"
    c.close()


def _binary_query(c: Client, req_id: int, sql: str) -> dict:
    raw = sql.encode()
    c.ws.send(struct.pack("<QQQHI", req_id, 0, 6, 1, len(raw)) + raw)
    return c.json()


def _fetch_raw_block(c: Client, req_id: int, rid: int) -> tuple[dict, bytes | None]:
    c.ws.send(struct.pack("<QQQH", req_id, rid, 7, 1))
    frame = c.binary()
    flag, action, version, timing, got_req, code, mlen = struct.unpack_from("<QQHQQII", frame)
    assert (flag, action, version, got_req) == (NEW, 7, 1, req_id)
    message = frame[42:42 + mlen].decode()
    result_id, finished = struct.unpack_from("<QB", frame, 42 + mlen)
    head = {"code": code, "message": message, "id": result_id, "finished": finished, "timing": timing}
    if finished:
        assert len(frame) == 51 + mlen
        return head, None
    (blen,) = struct.unpack_from("<I", frame, 51 + mlen)
    assert len(frame) == 55 + mlen + blen
    return head, frame[55 + mlen:]


def test_binary_query_and_fetch_raw_block(sandbox):
    c = _sql(sandbox)
    resp = _binary_query(c, 61, "select * from big")
    assert list(resp) == QUERY_KEYS
    _assert_base(resp, "binary_query", 61)
    rid = resp["id"]
    total, blocks = 0, 0
    while True:
        head, block = _fetch_raw_block(c, 62 + blocks, rid)
        assert head["code"] == 0 and head["id"] == rid and head["message"] == ""
        if block is None:
            break
        decoded = RawBlock.decode(block, precision=0)
        assert decoded.version == 1 and not decoded.big_endian_lengths
        rows = decoded.rows()
        assert rows[0][1] == total
        total += len(rows)
        blocks += 1
    assert total == 10000 and blocks == 3                   # 4096 rows per block
    head, block = _fetch_raw_block(c, 90, rid)              # freed after the finish frame
    assert head["code"] == 0xFFFF and head["message"] == "result is nil" and head["finished"] == 1
    # all types, with NULLs
    rid = _binary_query(c, 91, "select * from all_types")["id"]
    head, block = _fetch_raw_block(c, 92, rid)
    assert RawBlock.decode(block, precision=0).rows() == ALL_TYPES_ROWS
    # errors in the binary path: JSON with action "binary_query"; bad versions of fetch_raw_block
    resp = _binary_query(c, 93, "select * from nosuch")
    _assert_base(resp, "binary_query", 93, 0x2603)
    assert resp["message"] == "Table does not exist: nosuch"
    c.ws.send(struct.pack("<QQQH", 94, rid, 7, 9))
    frame = c.binary()
    assert frame[42:42 + 31] == b"unknown fetch raw block version"
    c.ws.send(struct.pack("<QQQ", 95, rid, 7))
    assert b"message length is too short" in c.binary()
    c.close()


def test_empty_result(sandbox):
    c = _sql(sandbox)
    resp = _binary_query(c, 101, "select * from empty")
    assert resp["fields_count"] == 1
    head, block = _fetch_raw_block(c, 102, resp["id"])
    assert block is None and head["finished"] == 1 and head["code"] == 0
    c.close()


def test_misc_actions(sandbox):
    c = _sql(sandbox)
    assert c.call("get_server_info", req_id=111)["info"].startswith("ver:3.3.7.5")
    resp = c.call("options_connection", req_id=112, options=[{"option": 0, "value": "UTC"}])
    assert list(resp) == ["code", "message", "action", "req_id", "timing"] and resp["code"] == 0
    resp = c.call("check_server_status", req_id=113, fqdn=None, port=0)
    assert resp["status"] == 2 and resp["details"] == ""
    assert c.call("get_connection_info", req_id=114, info=0)["info"] == "root"
    c.close()


# ---------------------------------------------------------------------------------------------
# /ws: raw writes
# ---------------------------------------------------------------------------------------------
def test_write_raw(sandbox):
    c = _sql(sandbox)
    data = next(m for m in sandbox.tmq.messages if m.message_type == 1).raw
    c.ws.send(struct.pack("<QQQIH", 121, 121, 3, len(data), 2) + data)
    resp = c.json()
    assert list(resp) == ["code", "message", "action", "req_id", "timing"]
    _assert_base(resp, "write_raw", 121)
    assert sandbox.engine.raw_writes[-1] == (2, data)
    bad = b"\x00\x01garbage"
    c.ws.send(struct.pack("<QQQIH", 122, 122, 3, len(bad), 2) + bad)
    resp = c.json()
    _assert_base(resp, "write_raw", 122, resp["code"])
    assert resp["code"] != 0
    c.close()
    c = _sql(sandbox, connect_db=None)                     # no current database
    c.ws.send(struct.pack("<QQQIH", 123, 123, 3, len(data), 2) + data)
    assert c.json()["code"] == 0x2616
    c.close()


def _taos_field(name: str, type_code: int, nbytes: int) -> bytes:
    return name.encode().ljust(65, b"\0") + struct.pack("<bxxi", type_code, nbytes)


def test_write_raw_block_and_with_fields(sandbox):
    c = _sql(sandbox)
    block = encode_block([(9, 8, [1700000000000, 1700000000001]), (4, 4, [1, None])], version=1)
    c.ws.send(struct.pack("<QQQiH", 131, 131, 4, 2, 2) + b"t1" + block)
    resp = c.json()
    _assert_base(resp, "write_raw_block", 131)
    assert sandbox.engine.block_writes[-1] == ("t1", block, None)
    fields = _taos_field("ts", 9, 8) + _taos_field("v", 4, 4)
    assert len(fields) == 144
    c.ws.send(struct.pack("<QQQiH", 132, 132, 5, 2, 2) + b"t2" + block + fields)
    resp = c.json()
    _assert_base(resp, "write_raw_block_with_fields", 132)
    assert sandbox.engine.block_writes[-1] == ("t2", block, ["ts", "v"])
    c.ws.send(struct.pack("<QQQiH", 133, 133, 5, 2, 2) + b"t2" + block + fields[:100])
    assert c.json()["message"].startswith("uncompleted message, fields length:144")
    c.ws.send(struct.pack("<QQQiH", 134, 134, 4, 2, 6) + b"nosuch" + block)
    resp = c.json()
    _assert_base(resp, "write_raw_block", 134, 0x2603)
    c.close()


# ---------------------------------------------------------------------------------------------
# HTTP: paths, query strings, compression
# ---------------------------------------------------------------------------------------------
def test_paths_and_compression(sandbox):
    c = Client(sandbox.url + "/ws?token=abc")
    assert c.call("version")["code"] == 0
    assert "permessage-deflate" in c.ws.response.headers.get("Sec-WebSocket-Extensions", "")
    c.close()
    c = Client(sandbox.url + "/rest/ws")
    assert c.call("version")["code"] == 0
    c.close()
    c = Client(sandbox.url + "/ws", compression=None)
    assert "Sec-WebSocket-Extensions" not in c.ws.response.headers
    c.close()
    with pytest.raises(InvalidStatus) as info:
        Client(sandbox.url + "/nope")
    assert info.value.response.status_code == 404


def test_large_frame(sandbox):
    c = _sql(sandbox)
    sql = "insert into t values " + "(now, 1)" * 300000               # 2.4 MB, above websockets' 1 MiB default
    resp = _binary_query(c, 141, sql)
    assert resp["code"] == 0 and resp["affected_rows"] == 300000
    c.close()


# ---------------------------------------------------------------------------------------------
# /rest/tmq
# ---------------------------------------------------------------------------------------------
SUBSCRIBE = dict(user="root", password="taosdata", db="", group_id="g1", client_id="c1", offset_rest="earliest",
                 topics=["topic_all"], auto_commit="false", auto_commit_interval_ms="5000", snapshot_enable="false",
                 with_table_name="true", offset_seek=None, enable_batch_meta="1", connector="test",
                 config={"msg.consume.excluded": "1"})


def _tmq(sandbox, **over) -> Client:
    c = Client(sandbox.url + "/rest/tmq")
    args = dict(SUBSCRIBE)
    args.update(over)
    resp = c.call("subscribe", **args)
    assert resp["code"] == 0, resp
    return c


def _poll(c: Client, message_id=None, blocking_time=100) -> dict:
    args = {"blocking_time": blocking_time}
    if message_id is not None:
        args["message_id"] = message_id
    return c.call("poll", **args)


POLL_KEYS = ["code", "message", "action", "req_id", "timing", "have_message", "topic", "database", "vgroup_id",
             "message_type", "message_id", "offset"]


def test_tmq_subscribe_and_errors(sandbox):
    c = Client(sandbox.url + "/rest/tmq")
    resp = c.call("version", req_id=1)
    assert list(resp) == ["code", "message", "action", "req_id", "timing", "version"]
    for action in ("poll", "commit", "assignment", "list_topics", "unsubscribe"):
        resp = c.call(action, req_id=2)
        _assert_base(resp, action, 2, 0xFFFF)
        assert resp["message"] == "tmq not init"
    resp = c.call("fetch", req_id=3, message_id=1)
    assert resp["message"] == "tmq not init" and resp["message_id"] == 1
    bad = dict(SUBSCRIBE, password="nope")
    resp = c.call("subscribe", req_id=4, **bad)
    _assert_base(resp, "subscribe", 4, 0xFFFF)
    assert resp["message"] == "init tscObj failed"
    resp = c.call("subscribe", req_id=5, **dict(SUBSCRIBE, config={"no.such.key": "1"}))
    _assert_base(resp, "subscribe", 5, 0x0118)
    assert resp["message"] == "unknown configuration key: no.such.key"
    resp = c.call("subscribe", req_id=6, **dict(SUBSCRIBE, offset_rest="sideways"))
    assert resp["code"] == 0x0118 and resp["message"] == "invalid value for key 'auto.offset.reset': sideways"
    resp = c.call("subscribe", req_id=7, **dict(SUBSCRIBE, group_id=""))
    assert resp["code"] == 0xFFFF and resp["message"] == "malloc tmq element failed or group is empty"
    resp = c.call("subscribe", req_id=8, **dict(SUBSCRIBE, topics=["nope"]))
    assert resp["code"] == 0x03E1 and resp["message"] == "Topic not exist"
    resp = c.call("subscribe", req_id=9, **dict(SUBSCRIBE, auto_commit="maybe"))
    assert resp["code"] == 0xFFFF and resp["message"] == 'strconv.ParseBool: parsing "maybe": invalid syntax'
    c.ws.send(json.dumps({"action": "subscribe", "args": dict(SUBSCRIBE, req_id=10, auto_commit=True)}))
    resp = c.json()                                  # every subscribe field is a string
    assert resp["code"] == 0xFFFF and resp["message"] == "unmarshal subscribe args error"
    c.ws.send("nonsense")
    assert c.json()["message"] == "unmarshal request error"
    assert c.call("frob", req_id=11)["message"] == "unknown action frob"
    resp = c.call("subscribe", req_id=12, **SUBSCRIBE)
    assert list(resp) == ["code", "message", "action", "req_id", "timing", "version"]
    _assert_base(resp, "subscribe", 12)
    consumer = sandbox.tmq.consumers[-1]
    assert consumer.group == "g1" and consumer.topics == ["topic_all"]
    assert consumer.config["enable.auto.commit"] == "false"          # the adapter forces it off
    assert consumer.config["auto.offset.reset"] == "earliest" and consumer.config["msg.consume.excluded"] == "1"
    assert "td.connect.pass" not in consumer.config
    resp = c.call("subscribe", req_id=13, **SUBSCRIBE)
    assert resp["code"] == 0xFFFF and resp["message"] == "tmq should have unsubscribed first"
    assert c.call("list_topics", req_id=14)["topics"] == ["topic_all"]
    c.close()
    deadline = time.time() + 5
    while not consumer.closed and time.time() < deadline:
        time.sleep(0.01)
    assert consumer.closed                                          # socket closed -> consumer closed


def test_tmq_poll_fetch_raw_data(sandbox):
    c = _tmq(sandbox, group_id="g_raw")
    expected = [m for m in sandbox.tmq.messages if m.topic == "topic_all"]
    for i, want in enumerate(expected, start=1):
        resp = _poll(c)
        assert list(resp) == POLL_KEYS
        _assert_base(resp, "poll", resp["req_id"])
        assert resp["have_message"] is True and resp["message_id"] == i
        assert (resp["topic"], resp["database"], resp["vgroup_id"], resp["message_type"], resp["offset"]) == \
            (want.topic, want.database, want.vgroup_id, 1, want.offset)
        c.send("fetch_raw_data", req_id=500 + i, message_id=i)
        frame = c.binary()
        flag, action, version, timing, req_id, code, mlen = struct.unpack_from("<QQHQQII", frame)
        assert (flag, action, version, req_id, code, mlen) == (NEW, 8, 1, 500 + i, 0, 0)
        message_id, raw_type, raw_len = struct.unpack_from("<QHI", frame, 42)
        assert (message_id, raw_type, raw_len) == (i, 2, len(want.raw))
        assert frame[56:] == want.raw
        assert RawDataMessage.decode(frame[56:], 2).num_rows > 0
    resp = _poll(c)
    assert resp["have_message"] is False and resp["message_id"] == 0 and resp["topic"] == ""
    # errors of fetch_raw_data are binary too: wrong id
    c.send("fetch_raw_data", req_id=599, message_id=1)
    frame = c.binary()
    (mlen,) = struct.unpack_from("<I", frame, 38)
    assert struct.unpack_from("<I", frame, 34)[0] == 0xFFFF
    assert frame[42:42 + mlen] == b"message ID is not equal" and len(frame) == 50 + mlen
    c.close()


def test_tmq_fetch_and_fetch_block(sandbox):
    c = _tmq(sandbox, group_id="g_fetch")
    first = sandbox.tmq.messages[0]
    assert _poll(c)["message_id"] == 1
    resp = c.call("fetch_block", req_id=601, message_id=1)
    assert resp["message"] == "no fetch data" and resp["message_id"] == 1
    tables = []
    while True:
        resp = c.call("fetch", req_id=602, message_id=1)
        assert list(resp) == ["code", "message", "action", "req_id", "timing", "message_id", "completed",
                              "table_name", "rows", "fields_count", "fields_names", "fields_types",
                              "fields_lengths", "precision"]
        if resp["completed"]:
            break
        assert resp["fields_names"] == [col[0] for col in ALL_TYPES_COLUMNS]
        assert resp["fields_types"] == [col[1] for col in ALL_TYPES_COLUMNS]
        assert resp["fields_lengths"][:16] == [col[2] for col in ALL_TYPES_COLUMNS][:16]
        c.send("fetch_block", req_id=603, message_id=1)
        frame = c.binary()
        timing, req_id, message_id = struct.unpack_from("<QQQ", frame)
        assert (req_id, message_id) == (602, 1)              # the req_id of the fetch that staged it
        block = RawBlock.decode(frame[24:], precision=0)
        assert block.num_rows == resp["rows"]
        tables.append((resp["table_name"], block.rows()))
    assert tables == [("d0", ALL_TYPES_ROWS[:2]), ("d1", ALL_TYPES_ROWS[2:])]
    decoded = RawDataMessage.decode(first.raw, 2)
    assert [b.table_name for b in decoded.blocks] == ["d0", "d1"]
    # fetch_raw: 38-byte header
    c.send("fetch_raw", req_id=604, message_id=1)
    frame = c.binary()
    timing, req_id, message_id, tag, raw_len, raw_type = struct.unpack_from("<QQQQIH", frame)
    assert (req_id, message_id, tag, raw_len, raw_type) == (604, 1, 3, len(first.raw), 2)
    assert frame[38:] == first.raw
    # wrong ids and types
    assert c.call("fetch", req_id=605, message_id=9)["message"] == "message ID are not equal"
    assert c.call("fetch_block", req_id=606, message_id=9)["message"] == "message is nil"
    assert c.call("fetch_raw", req_id=607, message_id=9)["message"] == "message ID is not equal"
    resp = c.call("fetch_json_meta", req_id=608, message_id=1)
    assert resp["message"] == "message type can not get meta, type: 1"
    c.close()


def test_tmq_meta_message(sandbox):
    c = _tmq(sandbox, group_id="g_meta", topics=["topic_meta"])
    resp = _poll(c)
    assert resp["message_type"] == 2
    mid = resp["message_id"]
    resp = c.call("fetch_json_meta", req_id=701, message_id=mid)
    assert list(resp) == ["code", "message", "action", "req_id", "timing", "message_id", "data"]
    assert resp["data"]["tableName"] == "t_meta"
    assert c.call("fetch", req_id=702, message_id=mid)["message"] == "message type is not data"
    c.send("fetch_raw", req_id=703, message_id=mid)
    frame = c.binary()
    assert struct.unpack_from("<QIH", frame, 24) == (3, 16, 531)
    c.close()


def test_tmq_lost_poll_answer_is_announced_again(sandbox):
    c = _tmq(sandbox, group_id="g_lost")
    assert _poll(c, message_id=0)["message_id"] == 1
    again = _poll(c, message_id=0)                      # the client never saw message 1
    assert again["message_id"] == 1 and again["vgroup_id"] == sandbox.tmq.messages[0].vgroup_id
    assert _poll(c, message_id=1)["message_id"] == 2
    c.close()


def test_tmq_offsets(sandbox):
    c = _tmq(sandbox, group_id="g_off")
    assert _poll(c)["message_id"] == 1
    resp = c.call("commit", req_id=801, message_id=1)
    assert list(resp) == ["code", "message", "action", "req_id", "timing", "message_id"]
    _assert_base(resp, "commit", 801)
    resp = c.call("committed", req_id=802, topic_vgroup_ids=[{"topic": "topic_all", "vgroup_id": 2},
                                                             {"topic": "topic_all", "vgroup_id": 3}])
    assert list(resp) == ["code", "message", "action", "req_id", "timing", "committed"]
    assert resp["committed"] == [1, 0]
    resp = c.call("position", req_id=803, topic_vgroup_ids=[{"topic": "topic_all", "vgroup_id": 2}])
    assert resp["position"] == [1]
    resp = c.call("commit_offset", req_id=804, topic="topic_all", vgroup_id=3, offset=1)
    assert list(resp) == ["code", "message", "action", "req_id", "timing", "topic", "vgroup_id", "offset"]
    assert (resp["topic"], resp["vgroup_id"], resp["offset"]) == ("topic_all", 3, 1)
    resp = c.call("committed", req_id=805, topic_vgroup_ids=[{"topic": "topic_all", "vgroup_id": 3}])
    assert resp["committed"] == [1]
    resp = c.call("seek", req_id=806, topic="topic_all", vgroup_id=2, offset=0)
    assert list(resp) == ["code", "message", "action", "req_id", "timing"] and resp["code"] == 0
    resp = c.call("assignment", req_id=807, topic="topic_all")
    assert resp["assignment"] == [{"vgroup_id": 2, "offset": 0, "begin": 0, "end": 2},
                                  {"vgroup_id": 3, "offset": 0, "begin": 0, "end": 1}]
    resp = c.call("assignment", req_id=808, topic="other")
    _assert_base(resp, "assignment", 808, 0x4009)
    assert resp["message"] == "Topic does not belong to this consumer"
    resp = c.call("committed", req_id=809, topic_vgroup_ids=[{"topic": "topic_all", "vgroup_id": 99}])
    assert resp["code"] == 0x4008
    resp = c.call("seek", req_id=810, topic="topic_all", vgroup_id=99, offset=0)
    assert resp["code"] == 0x4008 and resp["message"] == "VgId does not belong to this consumer"
    c.close()


def test_tmq_committed_none(sandbox):
    c = _tmq(sandbox, group_id="g_none")
    resp = c.call("committed", req_id=811, topic_vgroup_ids=[{"topic": "topic_all", "vgroup_id": 2}])
    assert resp["committed"] == [OFFSET_INVALID]
    c.close()


def test_tmq_unsubscribe_and_resubscribe(sandbox):
    c = _tmq(sandbox, group_id="g_re")
    assert _poll(c)["have_message"] is True
    resp = c.call("unsubscribe", req_id=901)
    assert list(resp) == ["code", "message", "action", "req_id", "timing"] and resp["code"] == 0
    assert c.call("fetch", req_id=902, message_id=1)["message"] == "message has been freed"
    resp = c.call("subscribe", req_id=903, **dict(SUBSCRIBE, topics=["topic_meta"]))
    assert resp["code"] == 0
    assert c.call("list_topics", req_id=904)["topics"] == ["topic_meta"]
    assert _poll(c)["message_type"] == 2
    c.close()


def test_tmq_adapter_auto_commit(sandbox):
    c = _tmq(sandbox, group_id="g_auto", auto_commit="true", auto_commit_interval_ms="0")
    consumer = sandbox.tmq.consumers[-1]
    _poll(c)
    _poll(c)
    assert [call for call in consumer.calls if call[0] == "commit"] == [("commit",), ("commit",)]
    assert consumer.config["enable.auto.commit"] == "false"
    c.close()


def test_tmq_poll_blocks_without_blocking_other_actions(sandbox):
    c = _tmq(sandbox, group_id="g_block", topics=["empty_topic"])
    c.send("poll", req_id=950, blocking_time=300)
    resp = c.call("list_topics", req_id=951)                # answered while the poll waits
    assert resp["req_id"] == 951
    resp = c.json()
    assert resp["req_id"] == 950 and resp["have_message"] is False
    c.close()


# ---------------------------------------------------------------------------------------------
# unit helpers
# ---------------------------------------------------------------------------------------------
def test_parse_args_like_go():
    spec = {"req_id": "u64", "sql": "str"}
    assert parse_args(None, spec) == {"req_id": 0, "sql": ""}
    assert parse_args({"REQ_ID": 5, "Sql": "x", "other": [1]}, spec) == {"req_id": 5, "sql": "x"}
    for bad in ({"req_id": -1}, {"req_id": 1.5}, {"req_id": "1"}, {"sql": 3}, [1]):
        with pytest.raises(BadArgs):
            parse_args(bad, spec)


def test_tmq_conf_set_rules():
    conf: dict[str, str] = {}
    tmq_conf_set(conf, "Auto.Offset.Reset", "EARLIEST")
    tmq_conf_set(conf, "msg.consume.excluded", "7")
    tmq_conf_set(conf, "session.timeout.ms", "6000")
    assert conf == {"auto.offset.reset": "earliest", "msg.consume.excluded": "1", "session.timeout.ms": "6000"}
    for key, value in (("session.timeout.ms", "10"), ("group.id", "a:b"), ("enable.auto.commit", "yes"),
                       ("heartbeat.interval.ms", "7000"), ("nope", "1")):
        with pytest.raises(TmqConfError):
            tmq_conf_set(conf, key, value)


# ---------------------------------------------------------------------------------------------
# raw-write round trips over the real engine (taosws has no raw-write API, so frames only)
# ---------------------------------------------------------------------------------------------
def _real_engine_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("engine.sandbox.engine", "engine.sandbox.executor", "engine.sandbox.tmq"))


@pytest.fixture(scope="module")
def real_sandbox(tmp_path_factory):
    if not _real_engine_available():
        pytest.skip("the sandbox engine is not there yet")
    sb = Sandbox(tmp_path_factory.mktemp("real"))
    sb.start()
    yield sb
    sb.stop()


def _exec(c: Client, sql: str) -> dict:
    resp = c.call("query", sql=sql)
    assert resp["code"] == 0, (sql, resp)
    return resp


def _select(c: Client, sql: str) -> list[tuple]:
    resp = _binary_query(c, 7000, sql)
    assert resp["code"] == 0, (sql, resp)
    rows = []
    while True:
        head, block = _fetch_raw_block(c, 7001, resp["id"])
        assert head["code"] == 0, head
        if block is None:
            return rows
        rows.extend(RawBlock.decode(block, precision=resp["precision"]).rows())


def test_real_write_raw_round_trip(real_sandbox):
    c = _sql(real_sandbox, connect_db=None)
    for db in ("rt_src", "rt_dst"):
        _exec(c, f"create database {db} vgroups 1")
        _exec(c, f"create stable {db}.st (ts timestamp, v int, s varchar(8)) tags (t int)")
        _exec(c, f"create table {db}.d0 using {db}.st tags (1)")
    _exec(c, "create topic rt_topic as database rt_src")
    _exec(c, "insert into rt_src.d0 values (1700000000000, 1, 'a') (1700000000001, null, null)")
    t = _tmq(real_sandbox, group_id="g_rt", topics=["rt_topic"])
    raws = []
    for _ in range(10):
        resp = _poll(t, blocking_time=200)
        if not resp["have_message"]:
            break
        t.send("fetch_raw_data", req_id=7100, message_id=resp["message_id"])
        frame = t.binary()
        (mlen,) = struct.unpack_from("<I", frame, 38)
        _, raw_type, raw_len = struct.unpack_from("<QHI", frame, 42 + mlen)
        raws.append((raw_type, frame[56 + mlen:56 + mlen + raw_len]))
    t.close()
    assert raws and all(raw_type in (2, 4) for raw_type, _ in raws)
    assert _exec(c, "use rt_dst")["code"] == 0
    for i, (raw_type, raw) in enumerate(raws):
        c.ws.send(struct.pack("<QQQIH", 7200 + i, 7200 + i, 3, len(raw), raw_type) + raw)
        resp = c.json()
        _assert_base(resp, "write_raw", 7200 + i)
    assert _select(c, "select ts, v, s from rt_dst.d0") == [(1700000000000, 1, "a"), (1700000000001, None, None)]

    # taos_write_raw_block_with_fields: a query block of rt_src written into a new table of rt_dst
    _exec(c, "create table rt_dst.plain (ts timestamp, v int, s varchar(8))")
    resp = _binary_query(c, 7300, "select ts, v, s from rt_src.d0")
    _, block = _fetch_raw_block(c, 7301, resp["id"])
    fields = _taos_field("ts", 9, 8) + _taos_field("v", 4, 4) + _taos_field("s", 8, 8)
    c.ws.send(struct.pack("<QQQiH", 7302, 7302, 5, 2, 5) + b"plain" + block + fields)
    resp = c.json()
    _assert_base(resp, "write_raw_block_with_fields", 7302)
    c.ws.send(struct.pack("<QQQiH", 7303, 7303, 4, 2, 5) + b"plain" + block)      # same rows again: overwrite
    _assert_base(c.json(), "write_raw_block", 7303)
    assert _select(c, "select * from rt_dst.plain") == [(1700000000000, 1, "a"), (1700000000001, None, None)]
    c.ws.send(struct.pack("<QQQiH", 7304, 7304, 4, 2, 6) + b"nosuch" + block)
    resp = c.json()
    assert resp["code"] != 0 and resp["action"] == "write_raw_block"
    c.close()


def test_garbage_never_kills_a_socket(sandbox, caplog):
    import logging
    import random

    caplog.set_level(logging.WARNING, logger="tdsync")

    rng = random.Random(1234)
    sql, tmq = _sql(sandbox), _tmq(sandbox, group_id="g_fuzz")
    texts = ["", "null", "1", '"x"', "[" * 5000, '{"action": 1}', '{"action": "query", "args": 5}',
             '{"action": "fetch", "args": {"id": {"x": 1}}}', '{"action": "seek", "args": null}',
             '{"action": "committed", "args": {"topic_vgroup_ids": [1]}}',
             '{"action": "options_connection", "args": {"options": [{"option": "x"}]}}',
             '{"action": "poll", "args": {"blocking_time": "soon"}}', "\u2028"]
    frames: list[str | bytes] = list(texts)
    for _ in range(300):
        size = rng.choice([0, 1, 7, 8, 23, 24, 25, 26, 29, 30, 31, 40, 100, 300])
        body = bytes(rng.getrandbits(8) for _ in range(size))
        if size >= 24 and rng.random() < 0.8:
            body = body[:16] + struct.pack("<Q", rng.choice([3, 4, 5, 6, 7, 10, 99])) + body[24:]
        frames.append(body)
    for c in (sql, tmq):
        for frame in frames:
            c.ws.send(frame)
        c.send("version", req_id=424242)                # answered after everything above
        while True:
            frame = c.recv()
            if isinstance(frame, str) and json.loads(frame).get("req_id") == 424242:
                break
    assert sql.call("query", req_id=2, sql="select * from all_types")["code"] == 0
    assert tmq.call("list_topics", req_id=3)["topics"] == ["topic_all"]
    sql.close()
    tmq.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []   # no unexpected paths
