"""Meta messages (515..579), rawdata messages (6) and create-table requests: golden bytes cut
short or corrupted must raise ``CodecError`` naming the field and the offset, never decode wrong."""

from __future__ import annotations

import struct

import pytest

from engine import _codec
from engine.codec import META_RAW_TYPES, MetaMessage, RawDataMessage, SubmitDataMessage, decode_message
from engine.errors import CodecError
from tests.golden import ITEMS, params, require_golden

FRAMED = (515, 517, 519, 531, 533, 535)      # everything but the delete has a tStartEncode frame


def is_meta(meta):
    return meta["kind"] == "tmq_raw" and meta["raw_type"] in META_RAW_TYPES


def is_rawdata(meta):
    return meta["kind"] == "tmq_raw" and meta["raw_type"] == 6


def is_metadata(meta):
    return meta["kind"] == "tmq_raw" and meta["raw_type"] == 4


def with_lengths(data: bytes, raw_type: int) -> bytes:
    """The SMsgHead length (and the request frame) rewritten to fit ``data``."""
    out = bytearray(data)
    if len(out) >= 4:
        struct.pack_into("<i", out, 0, len(out))
    if raw_type in FRAMED and len(out) >= 12:
        struct.pack_into("<i", out, 8, len(out) - 12)
    return bytes(out)


def expect(data: bytes, raw_type: int, field: str, offset: int) -> CodecError:
    with pytest.raises(CodecError) as info:
        MetaMessage.decode(data, raw_type)
    assert (info.value.field, info.value.offset) == (field, offset), str(info.value)
    assert f"invalid {field} at byte {offset}:" in str(info.value)
    return info.value


def summary(message: MetaMessage):
    return (message.raw_type, message.vgroup_id, message.kind, message.table_type, message.tables,
            message.details)


def zigzag_varint(value: int) -> bytes:
    u = (value << 1) ^ (value >> 63)
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


# --- meta messages -----------------------------------------------------------------------------------

@pytest.mark.parametrize("meta,data", params(is_meta))
def test_every_truncation_of_a_golden_meta_message(meta, data):
    require_golden()
    raw_type = meta["raw_type"]
    for cut in range(len(data)):
        # As cut: the SMsgHead length no longer matches.
        expect(data[:cut], raw_type, "message head length", 0)


@pytest.mark.parametrize("meta,data", params(is_meta))
def test_truncations_with_consistent_lengths_fail_or_decode_the_same(meta, data):
    """With the head and frame lengths fixed up, a prefix either raises or (when it still holds
    everything tdsync reads) decodes exactly like the whole message; never anything else."""
    require_golden()
    raw_type = meta["raw_type"]
    full = summary(MetaMessage.decode(data, raw_type))
    decodable = []
    for cut in range(len(data)):
        chopped = with_lengths(data[:cut], raw_type)
        try:
            message = MetaMessage.decode(chopped, raw_type)
        except CodecError as error:
            assert 0 <= error.offset <= cut, (cut, str(error))
            continue
        got = summary(message)
        assert got == full, (cut, got)
        decodable.append(cut)
    if raw_type == 579:
        # Only the optional tail (ctimeMs, source) may go missing: 0, 8 or 9 bytes after the names.
        assert decodable == [len(data) - 9, len(data) - 1]
    else:
        # Upward closed: once everything read is inside the prefix, every longer prefix decodes.
        assert decodable == list(range(decodable[0], len(data))) if decodable else True
        assert len(decodable) < len(data) - 12


@pytest.mark.parametrize("meta,data", params(is_meta))
def test_corrupted_head_and_frame(meta, data):
    require_golden()
    raw_type = meta["raw_type"]
    expect(data + b"\0", raw_type, "message head length", 0)
    expect(struct.pack("<i", len(data) + 1) + data[4:], raw_type, "message head length", 0)
    expect(struct.pack("<i", -1) + data[4:], raw_type, "message head length", 0)
    if raw_type in FRAMED:
        for frame in (len(data) - 11, 2**31 - 1, -1, -(2**31)):
            expect(data[:8] + struct.pack("<i", frame) + data[12:], raw_type, "request", 8)
        error = expect(data[:8] + struct.pack("<i", len(data) - 13) + data[12:], raw_type, "request", 8)
        assert f"the message at byte {len(data)}" in str(error)
    with pytest.raises(ValueError):
        MetaMessage.decode(data, 2)


def _golden(raw_type: int, name_part: str = "") -> bytes:
    for name, meta, data in ITEMS:
        if meta["kind"] == "tmq_raw" and meta["raw_type"] == raw_type and name_part in name:
            return data
    pytest.skip(f"no golden raw_type {raw_type} item")


def test_batch_counts():
    require_golden()
    create = _golden(515, "create_children_multi")
    assert MetaMessage.decode(create, 515).tables[0] == ("m_nulls", "child", "meters")
    count_len = 1
    for count in (2**31 - 1, -1, -(2**31), 10**6):
        bad = with_lengths(create[:12] + zigzag_varint(count) + create[12 + count_len:], 515)
        expect(bad, 515, "create table count", 12)
    bad = with_lengths(create[:12] + b"\xff" * 6 + create[13:], 515)
    assert "does not fit in 32 bits" in str(expect(bad, 515, "create table count", 12))
    bad = with_lengths(create[:12] + bytes([create[12] | 0x80, 0x00]) + create[13:], 515)
    assert "overlong" in str(expect(bad, 515, "create table count", 12))
    # The first request's frame: longer than what remains, negative.
    for frame in (len(create), -1):
        bad = create[:13] + struct.pack("<i", frame) + create[17:]
        expect(bad, 515, "create table request", 13)

    drop = _golden(519)
    for count in (2**31 - 1, -1):
        bad = with_lengths(drop[:12] + zigzag_varint(count) + drop[13:], 519)
        expect(bad, 519, "drop table count", 12)
    expect(drop[:13] + struct.pack("<i", 2**31 - 1) + drop[17:], 519, "drop table request", 13)
    # A name longer than its request frame.
    bad = drop[:13] + struct.pack("<i", 2) + drop[17:]
    expect(bad, 519, "drop table request", 23)


def test_names_must_be_terminated_utf8():
    require_golden()
    stable = _golden(531, "all_create_stable")          # CStr "meters" at 12
    assert stable[12:20] == b"\x07meters\x00"
    expect(stable[:19] + b"x" + stable[20:], 531, "stable name", 13)
    expect(stable[:13] + b"\xff" + stable[14:], 531, "stable name", 13)
    expect(stable[:15] + b"\xc3\x28" + stable[17:], 531, "stable name", 15)
    expect(stable[:12] + b"\x00" + stable[13:], 531, "stable name", 13)     # zero-length CStr has no NUL
    expect(with_lengths(stable[:12] + b"\xff\x7f" + stable[13:], 531), 531, "stable name", 12)
    alter = _golden(517, "set_tag")                     # CStr "dev_2" at 12, then the action byte
    assert MetaMessage.decode(alter, 517).details == {"action": 4}
    assert alter[12:19] == b"\x06dev_2\x00"
    expect(alter[:18] + b"!" + alter[19:], 517, "alter table name", 13)
    expect(with_lengths(alter[:19], 517), 517, "alter table action", 19)
    expect(with_lengths(alter[:18], 517), 517, "alter table name", 12)


def test_delete_message():
    require_golden()
    delete = _golden(579, "ddl_delete")
    message = MetaMessage.decode(delete, 579)
    assert message.tables == [("dev_1", None, None)] and message.details["ts_column"] == "ts"
    assert message.details["start"] == 1767312000000000000 and message.details["end"] == 1767312002000000000
    # nUid (I32v at 16): more uids than bytes, negative.
    for count in (2**31 - 1, 8, -1):
        bad = with_lengths(delete[:16] + zigzag_varint(count) + delete[17:], 579)
        expect(bad, 579, "delete table count", 16)
    expect(with_lengths(delete + b"\x00\x00", 579), 579, "message end", len(delete) - 9)
    expect(with_lengths(delete[:-2], 579), 579, "message end", len(delete) - 9)
    name_at = delete.index(b"\x06dev_1\x00")
    expect(delete[:name_at] + b"\x05" + delete[name_at + 1:], 579, "delete table name", name_at + 1)


# --- create-table requests (raw_type 4) ---------------------------------------------------------------

@pytest.mark.parametrize("meta,data", params(is_metadata))
def test_create_table_requests_match_json_meta(meta, data):
    require_golden()
    message = RawDataMessage.decode(data, 4)
    requests = message.create_table_requests
    json_meta = meta["expected"]["json_meta"]
    expected = [(c["tableName"], c.get("using")) for c in json_meta["createList"]]
    assert len(requests) == meta["envelope"]["create_table_num"] == len(expected)
    parsed = [_codec.parse_create_table_request(r) for r in requests]
    assert [(name, stable) for name, _, stable in parsed] == expected
    assert all(table_type == json_meta["tableType"] == "child" for _, table_type, _ in parsed)
    assert (parsed[0][0], parsed[0][2]) == (json_meta["tableName"], json_meta["using"])
    for request in requests:
        for cut in range(len(request)):
            with pytest.raises(CodecError) as info:
                _codec.parse_create_table_request(request[:cut])
            assert 0 <= info.value.offset <= cut
        with pytest.raises(CodecError) as info:
            _codec.parse_create_table_request(request + b"\x00")
        assert (info.value.field, info.value.offset) == ("create table request", len(request))
        frame = struct.unpack_from("<i", request)[0]
        assert frame == len(request) - 4
        with pytest.raises(CodecError) as info:
            _codec.parse_create_table_request(struct.pack("<i", frame + 1) + request[4:])
        assert (info.value.field, info.value.offset) == ("create table request", 0)


@pytest.mark.parametrize("meta,data", params(lambda m: is_meta(m) and m["raw_type"] == 515))
def test_requests_inside_a_create_batch_parse_alone(meta, data):
    """Walk the batch independently (I32v count, then int32-framed requests) and parse each."""
    require_golden()
    message = MetaMessage.decode(data, 515)
    pos, shift, u = 12, 0, 0
    while True:
        byte = data[pos]
        pos += 1
        u |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    count = (u >> 1) ^ -(u & 1)
    requests = []
    for _ in range(count):
        frame = struct.unpack_from("<i", data, pos)[0]
        requests.append(data[pos:pos + 4 + frame])
        pos += 4 + frame
    assert len(data) - pos == 1      # the batch's trailing int8 source
    assert [_codec.parse_create_table_request(r) for r in requests] == message.tables
    expected = meta["expected"]["json_meta"]
    if expected.get("createList"):
        assert [t[0] for t in message.tables] == [c["tableName"] for c in expected["createList"]]
    else:
        assert [t[0] for t in message.tables] == [expected["tableName"]]


# --- rawdata messages (raw_type 6) ---------------------------------------------------------------------

@pytest.mark.parametrize("meta,data", params(is_rawdata))
def test_every_truncation_of_a_golden_rawdata_message(meta, data):
    require_golden()
    full = SubmitDataMessage.decode(data)
    cuts = range(len(data)) if len(data) <= 20000 else sorted(set(range(0, len(data), 53)) | {len(data) - 1})
    for cut in cuts:
        if cut == len(data) - 8:
            short = decode_message(6, data[:cut])      # the sleep time is optional
            assert (short.table_names, short.submit_lengths, short.sleep_time) == \
                (full.table_names, full.submit_lengths, 0)
            continue
        with pytest.raises(CodecError) as info:
            SubmitDataMessage.decode(data[:cut])
        assert 0 <= info.value.offset <= cut, (cut, str(info.value))


def _rawdata_layout(data: bytes):
    """Offsets in a one-or-more-block rawdata message: count, flags, first block's varint, submit length."""
    assert data[0] == 0x11 and data[9] == 0x11
    count_at = 18
    flags_at = 22
    varint_at = 24
    pos = varint_at
    while data[pos] & 0x80:
        pos += 1
    block_at = pos + 1
    return count_at, flags_at, varint_at, block_at, block_at + 18


@pytest.mark.parametrize("meta,data", params(is_rawdata))
def test_corrupted_rawdata_message(meta, data):
    require_golden()
    count_at, flags_at, varint_at, block_at, submit_len_at = _rawdata_layout(data)
    message = SubmitDataMessage.decode(data)
    assert struct.unpack_from("<i", data, count_at)[0] == message.num_blocks
    assert struct.unpack_from("<I", data, submit_len_at)[0] == message.submit_lengths[0]

    def expect6(bad: bytes, field: str, offset: int) -> None:
        with pytest.raises(CodecError) as info:
            SubmitDataMessage.decode(bad)
        assert (info.value.field, info.value.offset) == (field, offset), str(info.value)

    def patch(at: int, fmt: str, value) -> bytes:
        out = bytearray(data)
        struct.pack_into(fmt, out, at, value)
        return bytes(out)

    expect6(patch(0, "<B", 0x15), "request offset", 0)
    expect6(patch(9, "<b", -5), "response offset", 9)
    expect6(patch(count_at, "<i", -1), "block count", count_at)
    expect6(patch(count_at, "<i", 2**31 - 1), "block count", count_at)
    expect6(patch(flags_at + 1, "<B", 1), "with schema flag", flags_at + 1)
    expect6(data[:varint_at] + b"\xff\xff\x7f" + data[varint_at + 3:], "submit block", varint_at)
    for delta in (1, -1):
        value = message.submit_lengths[0] + delta
        expect6(patch(submit_len_at, "<I", value), "submit length", submit_len_at)
    expect6(patch(submit_len_at, "<I", 2**32 - 1), "submit length", submit_len_at)
    expect6(data + b"\x00", "message end", len(data))
    expect6(data[:-8] + b"\x00" * 5, "sleep time", len(data) - 8)
    # The first table name: invalid UTF-8 is reported at its byte.
    name = message.table_names[0].encode()
    name_at = data.index(bytes([len(name) + 1]) + name + b"\x00", block_at) + 1
    expect6(patch(name_at, "<B", 0xFF), "table name", name_at)
    expect6(patch(name_at + len(name), "<B", 0x41), "table name", name_at)
