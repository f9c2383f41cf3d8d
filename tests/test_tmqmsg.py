"""TMQ data messages (raw_type 2 and 4): build -> encode -> decode, merge, and broken envelopes."""

from __future__ import annotations

import struct
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.codec import (
    RawBlock,
    RawDataMessage,
    block_to_json,
    build_data_message,
    encode_block,
    merge_messages,
)
from engine.errors import CodecError
from tests.golden import ITEMS, params, require_golden

NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)

# (type_code, schema bytes, value strategy) for the columns of generated blocks.
COLUMN_KINDS = [
    (9, 8, st.integers(-(2**63), 2**63 - 1)),
    (4, 4, st.integers(-(2**31), 2**31 - 1)),
    (1, 1, st.booleans()),
    (7, 8, st.floats(allow_nan=False)),
    (14, 8, st.integers(0, 2**64 - 1)),
    (8, 34, st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)),
    (10, 4 * 8 + 2, st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)),
    (16, 18, st.binary(max_size=16)),
    (18, 5, st.binary(max_size=16)),
]


@st.composite
def block_entries(draw, flags_range=(-128, 127)):
    """(raw block bytes, schema, table name, expected rows) for build_data_message."""
    rows = draw(st.integers(0, 25))
    kinds = draw(st.lists(st.sampled_from(COLUMN_KINDS), min_size=1, max_size=4))
    columns = [(t, nbytes, draw(st.lists(st.none() | values, min_size=rows, max_size=rows)))
               for t, nbytes, values in kinds]
    raw = encode_block(columns, version=draw(st.sampled_from((1, 2))),
                       big_endian_lengths=draw(st.booleans()), blank_fill=draw(st.booleans()))
    schema = [(t, draw(st.integers(*flags_range)), draw(st.integers(-(2**31), 2**31 - 1)),
               draw(st.integers(-(2**15), 2**15 - 1)), draw(NAME))
              for t, _, _ in columns]
    expected_rows = list(zip(*[values for _, _, values in columns])) if rows else []
    return raw, schema, draw(NAME), expected_rows


@st.composite
def message_specs(draw, with_table_name=None, with_schema=None, max_blocks=4):
    entries = draw(st.lists(block_entries(), max_size=max_blocks))
    creates = draw(st.none() | st.lists(st.binary(max_size=40), max_size=3))
    return dict(
        entries=entries,
        req=draw(st.integers(-(2**63), 2**63 - 1)),
        rsp=draw(st.integers(-(2**63), 2**63 - 1)),
        precision=draw(st.sampled_from((0, 1, 2))),
        creates=creates,
        with_table_name=draw(st.booleans()) if with_table_name is None else with_table_name,
        with_schema=draw(st.booleans()) if with_schema is None else with_schema,
        sleep=draw(st.integers(-(2**63), 2**63 - 1)),
    )


def build(spec) -> RawDataMessage:
    return build_data_message([(raw, schema, name) for raw, schema, name, _ in spec["entries"]],
                              spec["req"], spec["rsp"], precision=spec["precision"],
                              create_table_requests=spec["creates"], with_table_name=spec["with_table_name"],
                              with_schema=spec["with_schema"], sleep_time=spec["sleep"])


def tmq_form(raw: bytes) -> bytes:
    """The block as a TMQ message must carry it: version 2, little-endian lengths."""
    return RawBlock.decode(raw).to_bytes(version=2)


SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.data_too_large])


@SETTINGS
@given(spec=message_specs())
def test_build_encode_decode_round_trip(spec):
    message = build(spec)
    entries = spec["entries"]
    raw_type = 4 if spec["creates"] is not None else 2
    data = message.encode()
    assert message.raw_type == raw_type
    assert message.nbytes == len(data)

    # The envelope, read straight from the bytes (formats.md 2.4/2.5).
    assert data[0] == 0x64
    assert struct.unpack_from("<i", data, 1)[0] == 18
    assert data[5] == 0x11 and struct.unpack_from("<q", data, 6)[0] == spec["req"]
    assert data[14] == 0x11 and struct.unpack_from("<q", data, 15)[0] == spec["rsp"]
    assert struct.unpack_from("<i", data, 23)[0] == len(entries)
    if entries:
        assert data[27:29] == bytes([spec["with_table_name"], spec["with_schema"]])
        first = tmq_form(entries[0][0])
        at = 29 + (1 if 18 + len(first) < 128 else 2)
        assert struct.unpack_from("<q", data, at)[0] == 1                    # retrieve version
        assert struct.unpack_from(">q", data, at + 8)[0] == len(entries[0][3])   # rows, big-endian
        assert data[at + 16:at + 18] == bytes([0, spec["precision"]])
        assert data[at + 18:at + 18 + len(first)] == first
    if raw_type == 2:
        assert struct.unpack_from("<q", data, len(data) - 8)[0] == spec["sleep"]

    decoded = RawDataMessage.decode(data, raw_type)
    assert decoded.raw_type == raw_type
    assert decoded.req_offset == ("log", spec["req"]) and decoded.req_offset.kind == "log"
    assert decoded.rsp_offset == ("log", spec["rsp"]) and decoded.rsp_offset.version == spec["rsp"]
    assert decoded.num_blocks == len(entries)
    assert decoded.num_rows == sum(len(e[3]) for e in entries)
    assert decoded.nbytes == len(data)
    if entries:
        assert (decoded.with_table_name, decoded.with_schema) == (spec["with_table_name"], spec["with_schema"])
    want_names = [name for _, _, name, _ in entries] if spec["with_table_name"] else [None] * len(entries)
    assert decoded.table_names == want_names
    for block, (raw, schema, _, rows) in zip(decoded.blocks, entries):
        assert block.version == 2 and not block.big_endian_lengths
        assert block.to_bytes() == tmq_form(raw)
        assert block.precision == spec["precision"]
        assert (block.retrieve_version, block.retrieve_rows) == (1, len(rows))
        assert repr(block.rows()) == repr(rows)
        if spec["with_schema"]:
            assert block.schema == schema
            assert block.column_names == [entry[4] for entry in schema]
        else:
            assert block.schema is None
    if raw_type == 2:
        assert decoded.has_sleep_time and decoded.sleep_time == spec["sleep"]
        assert decoded.create_table_requests == []
    else:
        assert not decoded.has_sleep_time
        assert decoded.create_table_requests == spec["creates"]
    assert decoded.encode() == data
    assert message.create_table_requests == decoded.create_table_requests


def test_version_1_and_big_endian_blocks_are_written_in_tmq_form():
    raw_v1 = encode_block([(4, 4, [1, 2, None])], version=1)
    raw_be = encode_block([(4, 4, [7])], version=1, big_endian_lengths=True)
    schema = [(4, 0, 4, 1, "v")]
    data = build_data_message([(raw_v1, schema, "a"), (raw_be, schema, "b")], 3, 4).encode()
    for raw in (raw_v1, raw_be):
        assert tmq_form(raw) in data
        assert raw not in data
    decoded = RawDataMessage.decode(data)
    assert [b.version for b in decoded.blocks] == [2, 2]
    assert [b.rows() for b in decoded.blocks] == [[(1,), (2,), (None,)], [(7,)]]


def test_short_table_name_without_sleep_time_or_create_requests():
    # The last varint of the message has no slack after it: the exact-size writer must still fit.
    raw = encode_block([(9, 8, [1, 2])])
    for name in ("", "t", "t1", "abcdefgh"):
        message = build_data_message([(raw, [(9, 0, 8, 1, "ts")], name)], 1, 2, create_table_requests=[])
        data = message.encode()
        assert len(data) == message.nbytes
        assert data.endswith(name.encode() + b"\x00" + b"\x00\x00\x00\x00")
        decoded = RawDataMessage.decode(data, 4)
        assert decoded.table_names == [name] and decoded.create_table_requests == []


def test_empty_message():
    message = build_data_message([], 5, 6, sleep_time=9)
    data = message.encode()
    assert data == bytes([0x64]) + struct.pack("<i", 18) + b"\x11" + struct.pack("<q", 5) + b"\x11" + \
        struct.pack("<q", 6) + struct.pack("<i", 0) + struct.pack("<q", 9)
    decoded = RawDataMessage.decode(data)
    assert (decoded.num_blocks, decoded.num_rows, decoded.sleep_time) == (0, 0, 9)
    assert decoded.blocks == [] and decoded.table_names == []


# --- merge ------------------------------------------------------------------------------------------

def expected_sleep(specs):
    sleeps = [s["sleep"] for s in specs if s["creates"] is None]
    return sleeps[-1] if sleeps else None


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(flags=st.tuples(st.booleans(), st.booleans()), data=st.data())
def test_merge_of_random_messages_is_the_concatenation(flags, data):
    with_name, with_schema = flags
    specs = data.draw(st.lists(message_specs(with_name, with_schema, max_blocks=3), min_size=1, max_size=5))
    messages = [build(spec) for spec in specs]
    # Merging decoded messages and built ones must be the same.
    messages = [RawDataMessage.decode(m.encode(), m.raw_type) if i % 2 else m for i, m in enumerate(messages)]
    merged = merge_messages(messages)
    encoded = merged.encode()
    assert merged.nbytes == len(encoded)
    any_creates = any(s["creates"] is not None for s in specs)
    assert merged.raw_type == (4 if any_creates else 2)
    decoded = RawDataMessage.decode(encoded, merged.raw_type)
    entries = [e for s in specs for e in s["entries"]]
    assert decoded.num_blocks == len(entries)
    assert decoded.num_rows == merged.num_rows == sum(len(e[3]) for e in entries)
    assert [repr(b.rows()) for b in decoded.blocks] == [repr(e[3]) for e in entries]
    assert decoded.table_names == ([e[2] for e in entries] if with_name else [None] * len(entries))
    if with_schema:
        assert [b.schema for b in decoded.blocks] == [e[1] for e in entries]
    assert decoded.req_offset == ("log", specs[0]["req"])
    assert decoded.rsp_offset == ("log", specs[-1]["rsp"])
    if any_creates:
        assert decoded.create_table_requests == [r for s in specs for r in (s["creates"] or [])]
        assert not decoded.has_sleep_time
    else:
        assert decoded.has_sleep_time and decoded.sleep_time == expected_sleep(specs)
    assert merge_messages([decoded]).encode() == encoded


def _golden_groups():
    groups = defaultdict(list)
    for name, meta, data in ITEMS:
        if meta["kind"] == "tmq_raw" and meta["raw_type"] in (2, 4):
            groups[(meta["consumer_mode"], meta["vgroup_id"])].append((name, meta, data))
    return [pytest.param(sorted(items, key=lambda item: item[0]), id=f"{mode}-vg{vg}")
            for (mode, vg), items in sorted(groups.items()) if len(items) > 1]


@pytest.mark.parametrize("items", _golden_groups() or [pytest.param(None, id="golden-set-missing")])
def test_merge_of_golden_messages_of_one_vgroup(items):
    require_golden()
    messages = [RawDataMessage.decode(data, meta["raw_type"]) for _, meta, data in items]
    merged = merge_messages(messages)
    encoded = merged.encode()
    assert len(encoded) == merged.nbytes
    decoded = RawDataMessage.decode(encoded, merged.raw_type)
    expected_blocks = [b for _, meta, _ in items for b in meta["expected"]["blocks"]]
    assert decoded.num_blocks == len(expected_blocks)
    assert decoded.table_names == [b["table_name"] for b in expected_blocks]
    for got, want in zip(decoded.blocks, expected_blocks):
        got_json = block_to_json(got)
        assert got_json["columns"] == want["columns"]
        assert got_json["rows"] == want["rows"]
    first, last = items[0][1], items[-1][1]
    assert decoded.req_offset == ("log", first["envelope"]["req_offset"]["version"])
    assert decoded.rsp_offset == ("log", last["envelope"]["rsp_offset"]["version"])
    versions = [meta["envelope"]["req_offset"]["version"] for _, meta, _ in items]
    assert versions == sorted(versions)
    creates = [r for m in messages for r in m.create_table_requests]
    assert merged.raw_type == (4 if any(meta["raw_type"] == 4 for _, meta, _ in items) else 2)
    assert decoded.create_table_requests == creates
    # Merging in halves and then merging the halves gives the same bytes.
    half = len(messages) // 2
    assert merge_messages([merge_messages(messages[:half]), merge_messages(messages[half:])]).encode() == encoded


def test_merge_rejects_mixed_framing():
    raw = encode_block([(4, 4, [1])])
    schema = [(4, 0, 4, 1, "v")]
    plain = build_data_message([(raw, schema, "t")], 1, 2)
    no_schema = build_data_message([(raw, schema, "t")], 2, 3, with_schema=False)
    no_name = build_data_message([(raw, schema, "t")], 2, 3, with_table_name=False)
    with pytest.raises(ValueError):
        merge_messages([plain, no_schema])
    with pytest.raises(ValueError):
        merge_messages([no_name, plain])
    with pytest.raises(ValueError):
        merge_messages([])
    with pytest.raises(TypeError):
        merge_messages([plain, b"not a message"])
    # A message without blocks carries no framing of its own: it merges with either kind.
    empty = build_data_message([], 0, 1, with_schema=False, with_table_name=False)
    merged = merge_messages([empty, plain, build_data_message([], 2, 9)])
    decoded = RawDataMessage.decode(merged.encode())
    assert (decoded.with_schema, decoded.with_table_name, decoded.table_names) == (True, True, ["t"])
    assert (decoded.req_offset.version, decoded.rsp_offset.version) == (0, 9)


# --- broken envelopes -------------------------------------------------------------------------------

def is_data(meta):
    return meta["kind"] == "tmq_raw" and meta["raw_type"] in (2, 4)


def _cuts(size: int) -> list[int]:
    if size <= 8192:
        return list(range(size))
    return sorted(set(range(0, 2048)) | set(range(size - 2048, size)) | set(range(0, size, 97)))


@pytest.mark.parametrize("meta,data", params(is_data))
def test_every_truncation_of_a_golden_data_message(meta, data):
    require_golden()
    raw_type = meta["raw_type"]
    full = RawDataMessage.decode(data, raw_type)
    for cut in _cuts(len(data)):
        if raw_type == 2 and cut == len(data) - 8:
            # Only the optional sleep time is missing: still the same message.
            short = RawDataMessage.decode(data[:cut], raw_type)
            assert not short.has_sleep_time and short.table_names == full.table_names
            assert short.num_rows == full.num_rows
            continue
        with pytest.raises(CodecError) as info:
            RawDataMessage.decode(data[:cut], raw_type)
        assert 0 <= info.value.offset <= cut, (cut, str(info.value))
    for cut, field, offset in ((0, "message version", 0), (3, "offset length", 1), (10, "offset length", 1),
                               (24, "block count", 23), (27, "block count", 23)):
        with pytest.raises(CodecError) as info:
            RawDataMessage.decode(data[:cut], raw_type)
        assert (info.value.field, info.value.offset) == (field, offset)


SIMPLE = build_data_message([(encode_block([(9, 8, [1, 2]), (8, 12, ["a", None])]),
                              [(9, 0, 8, 1, "ts"), (8, 0, 12, 2, "s")], "tb")], 7, 8, precision=1)
SIMPLE_BYTES = SIMPLE.encode()
BLOCK_LEN = SIMPLE_BYTES[29] - 18     # a one-byte varint: 18-byte retrieve header + the raw block
BLOCK_AT = 29 + 1
RAW_AT = BLOCK_AT + 18


def _patched(at: int, fmt: str, *values, data: bytes = SIMPLE_BYTES) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, *values)
    return bytes(out)


def _expect(data: bytes, field: str, offset: int, raw_type: int = 2) -> CodecError:
    with pytest.raises(CodecError) as info:
        RawDataMessage.decode(data, raw_type)
    assert (info.value.field, info.value.offset) == (field, offset), str(info.value)
    return info.value


def test_simple_message_layout():
    assert BLOCK_LEN == RawBlock.decode(SIMPLE_BYTES[RAW_AT:RAW_AT + BLOCK_LEN]).nbytes == 75
    decoded = RawDataMessage.decode(SIMPLE_BYTES)
    assert decoded.table_names == ["tb"] and decoded.blocks[0].rows() == [(1, "a"), (2, None)]


def test_broken_envelopes_name_field_and_offset():
    _expect(_patched(0, "<B", 0x65), "message version", 0)
    _expect(_patched(1, "<i", 1), "offset length", 1)
    _expect(_patched(1, "<i", 2**31 - 1), "offset length", 1)
    _expect(_patched(1, "<i", 19), "offset length", 1)
    _expect(_patched(5, "<B", 0x14), "request offset", 5)
    _expect(_patched(14, "<b", -4), "response offset", 14)
    _expect(_patched(23, "<i", -1), "block count", 23)
    _expect(_patched(23, "<i", 2**31 - 1), "block count", 23)
    # A second block would start in the sleep time: a zero length, then no room for its header.
    _expect(_patched(23, "<i", 2), "block retrieve version", len(SIMPLE_BYTES) - 7)
    _expect(_patched(29, "<B", 0xFF), "block", 29)
    _expect(_patched(29, "<B", 18 + BLOCK_LEN - 1), "block total length", RAW_AT + 4)
    _expect(_patched(29, "<B", 18 + BLOCK_LEN + 1), "block total length", RAW_AT + 4)
    _expect(_patched(BLOCK_AT + 16, "<B", 1), "block compressed flag", BLOCK_AT + 16)
    _expect(_patched(BLOCK_AT + 17, "<B", 3), "block precision", BLOCK_AT + 17)
    schema_at = RAW_AT + BLOCK_LEN
    _expect(_patched(schema_at, "<B", 2), "schema column count", schema_at)
    _expect(_patched(schema_at + 2, "<B", 4), "schema column type", schema_at + 2)
    name_at = len(SIMPLE_BYTES) - 8 - 4
    _expect(_patched(name_at + 3, "<B", ord("x")), "table name", name_at + 1)
    _expect(SIMPLE_BYTES + b"\x00", "message end", len(SIMPLE_BYTES))
    _expect(SIMPLE_BYTES[:-8] + b"\x00\x00\x00", "sleep time", len(SIMPLE_BYTES) - 8)


def test_overlong_varint_is_rejected():
    # 0x80|n, 0x00 encodes the same length in two bytes: not what TDengine writes, and not byte-exact.
    length = SIMPLE_BYTES[29]
    overlong = SIMPLE_BYTES[:29] + bytes([0x80 | length, 0x00]) + SIMPLE_BYTES[30:]
    error = _expect(overlong, "block", 29)
    assert "overlong" in str(error)


def test_create_table_count_of_a_metadata_message():
    message = build_data_message([(encode_block([(9, 8, [1])]), [(9, 0, 8, 1, "ts")], "t")], 1, 2,
                                 create_table_requests=[b"abc"])
    data = message.encode()
    assert data.endswith(struct.pack("<i", 1) + b"\x03abc")
    count_at = len(data) - 8
    _expect(_patched(count_at, "<i", -1, data=data), "create table count", count_at, raw_type=4)
    _expect(_patched(count_at, "<i", 5, data=data), "create table count", count_at, raw_type=4)
    _expect(_patched(count_at, "<i", 2, data=data), "create table request", len(data), raw_type=4)
    _expect(_patched(count_at + 4, "<B", 9, data=data), "create table request", count_at + 4, raw_type=4)
    _expect(data + b"\x00", "message end", len(data), raw_type=4)
    with pytest.raises(ValueError):
        RawDataMessage.decode(data, 6)


def test_other_offset_kinds():
    tail = struct.pack("<i", 0) + struct.pack("<q", 0)
    log = b"\x11" + struct.pack("<q", 42)
    for head, kind in ((b"\xfe", "earliest"), (b"\xff", "latest"), (b"\xfd", "none")):
        offsets = head + log
        data = b"\x64" + struct.pack("<i", len(offsets)) + offsets + tail
        decoded = RawDataMessage.decode(data)
        assert decoded.req_offset == (kind, None) and decoded.rsp_offset == ("log", 42)
        assert decoded.encode() == data
    # Snapshot offsets: uid, ts, then a primary key (int64 or binary for var types).
    snap_int = b"\x12" + bytes(16) + b"\x05" + struct.pack("<q", 3)
    snap_var = b"\x13" + bytes(16) + b"\x08" + b"\x03abc"
    offsets = snap_int + snap_var
    data = b"\x64" + struct.pack("<i", len(offsets)) + offsets + tail
    decoded = RawDataMessage.decode(data)
    assert decoded.req_offset == ("snapshot_data", None) and decoded.rsp_offset == ("snapshot_meta", None)
    assert decoded.encode() == data
    bad = b"\x13" + bytes(16) + b"\x08" + b"\x7fabc"
    offsets = snap_int + bad
    _expect(b"\x64" + struct.pack("<i", len(offsets)) + offsets + tail, "response offset",
            5 + len(snap_int) + 18)
