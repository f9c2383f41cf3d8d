"""The sandbox's meta WAL body codec against real TDengine 3.3.7 bytes (golden set) and itself."""

from __future__ import annotations

import dataclasses
import json
import random
import struct
from decimal import Decimal

import pytest

from engine.codec import RawDataMessage
from engine.errors import CodecError
from engine.sandbox import metaformat as mf
from engine.sandbox.metaformat import (
    AlterField,
    AlterSuperTable,
    AlterTable,
    CreateSuperTable,
    CreateTableRequest,
    CreateTablesBatch,
    Delete,
    DropSuperTable,
    DropTableRequest,
    DropTablesBatch,
    SchemaField,
    SuperTableAlter,
    Tags,
    TagValue,
    decode_meta,
)
from tests.golden import ITEMS, params, require_golden

META = mf.META_RAW_TYPES


def is_meta(meta):
    return meta["kind"] == "tmq_raw" and meta["raw_type"] in META


def is_metadata(meta):
    return meta["kind"] == "tmq_raw" and meta["raw_type"] == 4


def golden(prefix: str) -> tuple[dict, bytes]:
    for name, meta, data in ITEMS:
        if name.startswith(prefix):
            return meta, data
    pytest.skip("golden set not found")


# --- a tmq_get_json_meta look-alike (clientRawBlockWrite.c) over the decoded objects ----------------

def _length(type_code: int, nbytes: int) -> dict:
    if type_code in (8, 16, 20):
        return {"length": nbytes - 2}
    if type_code == 10:
        return {"length": (nbytes - 2) // 4}
    if type_code in (18, 19):
        return {"length": nbytes - 4}
    return {}


def _columns(cols, cmpr):
    out = []
    for c, z in zip(cols, cmpr):
        assert z.col_id == c.col_id
        encode, compress, level = z.names
        out.append({"name": c.name, "type": c.type, **_length(c.type, c.bytes),
                    "isPrimarykey": c.is_primary_key, "encode": encode, "compress": compress, "level": level})
    return out


def _tag_json_value(tv: TagValue):
    """The value as json_meta prints it, with its documented quirks."""
    t, v = tv.type, tv.value
    if t in (8, 10):
        return f'"{v}"'
    if t == 16:
        return '"\\x' + v.hex().upper() + '"'
    if t == 20:
        return '"' + v.split(b"\0", 1)[0].decode("latin-1")
    return float(v)


def _child(req: CreateTableRequest) -> dict:
    out = {"tableName": req.name, "using": req.stable_name, "tagNum": req.tag_num, "tags": []}
    if req.tags.is_json:
        if req.tags.values:
            out["tags"].append({"name": req.tag_names[0], "type": 15, "value": req.tags.as_dict()})
        return out
    for name, tv in zip(req.tag_names, req.tags.values):
        if tv.type == mf.TSDB_DATA_TYPE_NCHAR and tv.value == "":
            # json_meta quirk: converting an empty nchar fails and ends the list, value-less
            out["tags"].append({"name": name, "type": tv.type})
            break
        out["tags"].append({"name": name, "type": tv.type, "value": _tag_json_value(tv)})
    return out


def _create_tables(reqs: list[CreateTableRequest]) -> dict:
    first = reqs[0]
    if first.table_type == mf.TSDB_NORMAL_TABLE:
        return {"type": "create", "tableType": "normal", "tableName": first.name,
                "columns": _columns(first.columns, first.compression), "tags": []}
    out = {"type": "create", "tableType": "child", **_child(first), "createList": []}
    if len(reqs) > 1:
        out["createList"] = [_child(r) for r in reqs]
    return out


def _col_length(type_code: int, nbytes: int) -> dict:
    length = _length(type_code, nbytes).get("length")
    return {"colLength": length} if length is not None and type_code not in (18, 19) else {}


def render_json_meta(obj) -> dict:
    if isinstance(obj, AlterSuperTable):
        a = obj.alter
        assert a.table_name == obj.name
        out = {"type": "alter", "tableType": "super", "tableName": a.table_name, "alterType": a.alter_type}
        if a.alter_type in (mf.ALTER_ADD_TAG, mf.ALTER_ADD_COLUMN, mf.ALTER_UPDATE_TAG_BYTES,
                            mf.ALTER_UPDATE_COLUMN_BYTES):
            f = a.fields[0]
            out.update({"colName": f.name, "colType": f.type, **_col_length(f.type, f.bytes)})
        elif a.alter_type in (mf.ALTER_DROP_TAG, mf.ALTER_DROP_COLUMN):
            out["colName"] = a.fields[0].name
        return out
    if isinstance(obj, CreateSuperTable):
        return {"type": "create", "tableType": "super", "tableName": obj.name,
                "columns": _columns(obj.columns, obj.compression),
                "tags": [{"name": t.name, "type": t.type, **_length(t.type, t.bytes)} for t in obj.tags]}
    if isinstance(obj, DropSuperTable):
        return {"type": "drop", "tableType": "super", "tableName": obj.name}
    if isinstance(obj, CreateTablesBatch):
        return _create_tables(obj.requests)
    if isinstance(obj, DropTablesBatch):
        return {"type": "drop", "tableNameList": obj.table_names}
    if isinstance(obj, Delete):
        return {"type": "delete", "sql": f"delete from `{obj.table_name}` where `{obj.ts_col_name}` >= {obj.skey} "
                                         f"and `{obj.ts_col_name}` <= {obj.ekey}"}
    if isinstance(obj, AlterTable):
        out = {"type": "alter", "tableType": obj.table_type_hint, "tableName": obj.table_name,
               "alterType": obj.action}
        if obj.action == mf.ALTER_ADD_COLUMN:
            out.update({"colName": obj.col_name, "colType": obj.col_type, **_col_length(obj.col_type, obj.col_bytes)})
        elif obj.action == mf.ALTER_UPDATE_TAG_VAL:
            out["colName"] = obj.tag_name
            value = obj.tag_value
            is_null = value is None or (isinstance(value, Tags) and not value.values)
            if not is_null:
                if isinstance(value, Tags):
                    out["colValue"] = value.as_dict()
                elif obj.tag_type in (8, 10):
                    out["colValue"] = f'"{value}"'
                else:
                    out["colValue"] = str(value if obj.tag_type != 1 else int(value))
            out["colValueNull"] = is_null
        return out
    raise AssertionError(f"no renderer for {type(obj).__name__}")


def expected_json_meta(meta) -> dict:
    expected = json.loads(meta["expected"]["json_meta_text"], parse_float=Decimal)
    assert json.loads(meta["expected"]["json_meta_text"]) == meta["expected"]["json_meta"]
    return expected


def assert_json_like(got, want, path="$"):
    """Equal, except floats compare to 14 significant digits (json_meta prints %.15g at times, e.g.
    1.79769313486232e+308, which no longer parses as a finite double; ``want`` holds Decimals) and a
    JSON tag value (a dict here) is compared with the parsed JSON text."""
    if isinstance(got, dict) and isinstance(want, str):
        want = json.loads(want)
    if isinstance(got, float) and isinstance(want, Decimal):
        assert abs(Decimal(got) - want) <= abs(want) * Decimal("1e-14"), f"{path}: {got} != {want}"
        return
    if isinstance(got, float) and isinstance(want, int) and not isinstance(want, bool):
        assert got == want, f"{path}: {got} != {want}"
        return
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{path}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            assert_json_like(got[k], want[k], f"{path}.{k}")
        return
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_json_like(g, w, f"{path}[{i}]")
        return
    assert got == want and type(got) is type(want), f"{path}: {got!r} != {want!r}"


# --- 1 + 2: every golden meta item decodes to its json_meta and re-encodes byte-identically -------------

@pytest.mark.parametrize("meta,data", params(is_meta))
def test_golden_meta_decodes_to_json_meta(meta, data):
    require_golden()
    obj = decode_meta(meta["raw_type"], data)
    assert obj.RAW_TYPE == meta["raw_type"]
    assert obj.vgroup_id == meta["vgroup_id"]
    assert_json_like(render_json_meta(obj), expected_json_meta(meta))


@pytest.mark.parametrize("meta,data", params(is_meta))
def test_golden_meta_reencodes_byte_identical(meta, data):
    require_golden()
    obj = decode_meta(meta["raw_type"], data)
    assert obj.extra == b""
    assert obj.encode() == data
    assert obj.encode(meta["vgroup_id"], getattr(obj, "source", 0)) == data
    again = decode_meta(meta["raw_type"], obj.encode())
    assert again == obj


# --- 3: raw_type 4 create-table requests ----------------------------------------------------------------------

@pytest.mark.parametrize("meta,data", params(is_metadata))
def test_golden_metadata_create_requests_roundtrip(meta, data):
    require_golden()
    raw_reqs = RawDataMessage.decode(data, 4).create_table_requests
    assert raw_reqs
    reqs = []
    for raw in raw_reqs:
        req = CreateTableRequest.from_bytes(raw)
        assert req.to_bytes() == raw
        assert CreateTableRequest.from_bytes(req.to_bytes()) == req
        reqs.append(req)
    assert_json_like(_create_tables(reqs), expected_json_meta(meta))
    assert {r.name for r in reqs} <= {b["table_name"] for b in meta["expected"]["blocks"]}


# --- decoded content details --------------------------------------------------------------------------------

def test_create_stable_all_types_content():
    meta, data = golden("001_")
    obj = decode_meta(531, data)
    assert obj.name == "meters" and obj.rollup == 0 and obj.alter is None
    by_name = {c.name: c for c in obj.columns}
    assert by_name["c_vc"].bytes == 34 and by_name["c_vc"].length == 32
    assert by_name["c_nc"].bytes == 66 and by_name["c_nc"].length == 16
    assert (by_name["c_d64"].type, by_name["c_d64"].bytes, by_name["c_d64"].flags) == (21, 8, 0x81)
    assert (by_name["c_d128"].type, by_name["c_d128"].bytes) == (17, 16)
    assert obj.type_mods[16:18] == [mf.decimal_type_mod(12, 3), mf.decimal_type_mod(32, 8)]
    assert [c.alg for c in obj.compression] == [mf.default_compression(c.type) for c in obj.columns]
    assert obj.tags[0].flags == mf.COL_IDX_ON and all(t.flags == 0 for t in obj.tags[1:])
    assert (obj.schema_version, obj.tag_version, obj.compression_version, obj.keep) == (1, 1, 1, -1)


def test_child_tags_all_types_and_nulls():
    _, data = golden("005_")
    req = decode_meta(515, data).requests[0]
    assert req.named_tags() == {
        "t_id": 2147483647, "t_name": "fbMangXcw:peHJ:rHVQCITQb", "t_label": "度据电力🚀深Y圳圳ß😀中",
        "t_weight": 1.7976931348623157e308, "t_on": True, "t_born": 2082585600000,
        "t_code": 18446744073709551615, "t_raw": bytes.fromhex("1ce91ccadc0803ff"),
        "t_pos": bytes.fromhex("0101000000000000000000f03f000000000000f03f"),
    }
    _, data = golden("007_")
    nulls = {r.name: r for r in decode_meta(515, data).requests}["m_nulls"]
    assert nulls.tag_names == ["t_id"] and nulls.named_tags() == {"t_id": 0}


def test_json_tags():
    seen = {}
    for prefix in ("046_", "047_", "048_", "049_"):
        _, data = golden(prefix)
        req = decode_meta(515, data).requests[0]
        assert req.tags.is_json
        seen[req.name] = req
    assert seen["ev_a"].named_tags() == {"info": {"level": 3.0, "ok": True, "site": "北京"}}
    assert seen["ev_b"].tags.as_dict() == {"emoji": "😀", "k": None, "pi": 3.14159}
    # '{}' and NULL are both an empty JSON STag; only the tag-name list differs
    assert seen["ev_c"].tags.is_null_json and seen["ev_c"].tag_names == ["info"]
    assert seen["ev_d"].tags.is_null_json and seen["ev_d"].tag_names == []


def test_alter_stable_content():
    expect = {"096_": (5, "c", 7, 8, 2, 1), "102_": (8, "t2", 8, 18, 2, 2), "106_": (1, "t3", 10, 18, 2, 3),
              "114_": (7, "b", 8, 22, 3, 3), "118_": (6, "a", 0, 0, 4, 3)}
    for prefix, (alter_type, name, ftype, fbytes, sver, tver) in expect.items():
        _, data = golden(prefix)
        obj = decode_meta(533, data)
        assert isinstance(obj, AlterSuperTable)
        assert obj.alter.full_name == "1.g_p_ns.dev" and obj.alter.alter_type == alter_type
        assert obj.alter.fields == [AlterField(ftype, fbytes, name)]
        assert obj.alter.sql.startswith(b"alter stable g_p_ns.dev ")
        assert (obj.schema_version, obj.tag_version) == (sver, tver)
        assert obj.compression_version == obj.schema_version
    added = decode_meta(533, golden("096_")[1])
    assert added.columns[-1] == SchemaField(7, mf.COL_HAS_TYPE_MOD, 8, 6, "c")
    assert added.alter.type_mods == [0] and added.type_mods == [0, 0, 0, 0]


def test_alter_table_delete_drop_content():
    set_tag = decode_meta(517, golden("110_")[1])
    assert (set_tag.table_name, set_tag.action, set_tag.col_id, set_tag.tag_name, set_tag.tag_value) == \
        ("dev_2", 4, 4, "t1", 42)
    add = decode_meta(517, golden("112_")[1])
    assert (add.action, add.col_name, add.col_type, add.col_bytes, add.col_flags) == (5, "y", 8, 10, 1)
    delete = decode_meta(579, golden("124_")[1])
    assert (delete.table_name, delete.ts_col_name, delete.affected_rows, len(delete.uids)) == ("dev_1", "ts", 3, 1)
    assert delete.suid != 0 and decode_meta(579, golden("126_")[1]).suid == 0
    drop = decode_meta(519, golden("128_")[1])
    assert drop.requests[0].name == "ntab" and drop.requests[0].suid == 0 and drop.requests[0].uid != 0
    assert decode_meta(535, golden("130_")[1]).name == "dev"


# --- built from scratch with the module's defaults: the same bytes TDengine wrote ---------------------------

def test_built_create_stable_matches_golden():
    meta, data = golden("082_")
    suid = decode_meta(531, data).suid
    obj = CreateSuperTable(
        "dev", suid,
        columns=[SchemaField.make(9, "ts", 1), SchemaField.make(4, "a", 2), SchemaField.make(8, "b", 3, 10)],
        tags=[SchemaField.make(4, "t1", 4, tag=True, indexed=True), SchemaField.make(8, "t2", 5, 8, tag=True)])
    assert obj.encode(meta["vgroup_id"]) == data


def test_built_alter_stable_matches_golden():
    meta, data = golden("096_")
    suid = decode_meta(533, data).suid
    obj = AlterSuperTable(
        "dev", suid,
        columns=[SchemaField.make(9, "ts", 1), SchemaField.make(4, "a", 2), SchemaField.make(8, "b", 3, 10),
                 SchemaField(7, mf.COL_HAS_TYPE_MOD, 8, 6, "c")],
        tags=[SchemaField.make(4, "t1", 4, tag=True, indexed=True), SchemaField.make(8, "t2", 5, 8, tag=True)],
        schema_version=2, type_mods=[0, 0, 0, 0],
        alter=SuperTableAlter("1.g_p_ns.dev", mf.ALTER_ADD_COLUMN, [AlterField(7, 8, "c")],
                              sql=b"alter stable g_p_ns.dev add column c double", type_mods=[0]))
    assert obj.encode(meta["vgroup_id"]) == data


def test_built_tables_match_golden():
    meta, data = golden("086_")
    got = decode_meta(515, data).requests[0]
    req = CreateTableRequest("dev_2", uid=got.uid, btime=got.btime, stable_name="dev", suid=got.suid, tag_num=2,
                             tags=Tags.of([(4, 4, -670), (5, 8, "a")]), tag_names=["t1", "t2"])
    assert CreateTablesBatch([req]).encode(meta["vgroup_id"]) == data

    meta, data = golden("046_")
    got = decode_meta(515, data).requests[0]
    req = CreateTableRequest("ev_a", uid=got.uid, btime=got.btime, stable_name="events", suid=got.suid, tag_num=1,
                             tags=Tags.json(json.loads('{"site":"北京","level":3,"ok":true}')), tag_names=["info"])
    assert CreateTablesBatch([req]).encode(meta["vgroup_id"]) == data

    meta, data = golden("090_")
    got = decode_meta(515, data).requests[0]
    req = CreateTableRequest("ntab", mf.TSDB_NORMAL_TABLE, uid=got.uid, btime=got.btime,
                             columns=[SchemaField.make(9, "ts", 1), SchemaField.make(4, "x", 2)])
    assert CreateTablesBatch([req]).encode(meta["vgroup_id"]) == data


def test_built_alter_delete_drop_match_golden():
    meta, data = golden("110_")
    ctime = decode_meta(517, data).ctime_ms
    assert AlterTable.set_tag("dev_2", "t1", 4, 4, 42, ctime).encode(meta["vgroup_id"]) == data

    meta, data = golden("112_")
    ctime = decode_meta(517, data).ctime_ms
    assert AlterTable.add_column("ntab", SchemaField.make(8, "y", 0, 8), ctime).encode(meta["vgroup_id"]) == data

    meta, data = golden("124_")
    got = decode_meta(579, data)
    built = Delete(got.suid, list(got.uids), got.skey, got.ekey, 3, "dev_1", "ts", got.ctime_ms)
    assert built.encode(meta["vgroup_id"]) == data

    meta, data = golden("128_")
    uid = decode_meta(519, data).requests[0].uid
    assert DropTablesBatch([DropTableRequest("ntab", 0, uid)]).encode(meta["vgroup_id"]) == data

    meta, data = golden("130_")
    suid = decode_meta(535, data).suid
    assert DropSuperTable("dev", suid).encode(meta["vgroup_id"]) == data


def test_source_and_vgroup_override():
    meta, data = golden("110_")
    obj = decode_meta(517, data)
    replicated = obj.encode(7, source=mf.TD_REQ_FROM_TAOX)
    again = decode_meta(517, replicated)
    assert again.source == mf.TD_REQ_FROM_TAOX and again.vgroup_id == 7
    assert struct.unpack_from("<ii", replicated) == (len(replicated), 7)
    assert len(replicated) == len(data)


# --- 4: truncated / corrupted input raises CodecError only -------------------------------------------------------

def _meta_items():
    return [(meta["raw_type"], data) for _, meta, data in ITEMS if is_meta(meta)]


def _fix_head(raw: bytes) -> bytes:
    return struct.pack("<i", len(raw)) + raw[4:] if len(raw) >= 4 else raw


def test_every_prefix_is_rejected():
    require_golden()
    for raw_type, data in _meta_items():
        for cut in range(len(data)):
            with pytest.raises(CodecError):
                decode_meta(raw_type, data[:cut])


def test_prefixes_with_consistent_head_raise_codec_error_only():
    require_golden()
    for raw_type, data in _meta_items():
        for cut in range(len(data)):
            chopped = _fix_head(data[:cut])
            try:
                decode_meta(raw_type, chopped)
            except CodecError:
                continue
            # only the optional tail of the unframed delete (ctimeMs, source) may go missing
            assert raw_type == 579 and cut in (len(data) - 1, len(data) - 9), (raw_type, cut)


def test_create_request_prefixes_rejected():
    require_golden()
    for _, meta, data in ITEMS:
        if not is_metadata(meta):
            continue
        for raw in RawDataMessage.decode(data, 4).create_table_requests:
            for cut in range(len(raw)):
                with pytest.raises(CodecError):
                    CreateTableRequest.from_bytes(raw[:cut])


def _mutate(rng: random.Random, data: bytes, first: int) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        mode = rng.random()
        if mode < 0.6:
            buf[rng.randrange(first, len(buf))] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif mode < 0.8:
            at = rng.randrange(first, len(buf) + 1)
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif len(buf) > first + 1:
            at = rng.randrange(first, len(buf) - 1)
            del buf[at:at + rng.randint(1, 4)]
    return bytes(buf)


def test_random_corruption_raises_codec_error_only():
    """Flipped, inserted and deleted bytes (with a consistent contLen): CodecError or a decode that
    encodes back to exactly the corrupted bytes - never another exception."""
    require_golden()
    rng = random.Random(20260101)
    decoded = 0
    for raw_type, data in _meta_items():
        for _ in range(80):
            buf = _fix_head(_mutate(rng, data, 8))
            try:
                obj = decode_meta(raw_type, buf)
            except CodecError:
                continue
            decoded += 1
            assert obj.encode() == buf
    for _, meta, data in ITEMS:
        if is_metadata(meta):
            for raw in RawDataMessage.decode(data, 4).create_table_requests:
                for _ in range(200):
                    buf = _mutate(rng, raw, 0)
                    try:
                        req = CreateTableRequest.from_bytes(buf)
                    except CodecError:
                        continue
                    decoded += 1
                    assert req.to_bytes() == buf
    assert decoded  # some mutations (e.g. inside names or values) are still valid messages


def test_hostile_counts_and_lengths():
    huge_batch = mf._with_head(1, struct.pack("<i", 5) + b"\xfe\xff\xff\xff\x0f")  # nReqs 2^31-1
    with pytest.raises(CodecError, match="nReqs"):
        decode_meta(515, huge_batch)
    negative_frame = mf._with_head(1, struct.pack("<i", -4) + b"\0" * 8)
    with pytest.raises(CodecError, match="frame length"):
        decode_meta(535, negative_frame)
    long_varint = mf._with_head(1, struct.pack("<i", 7) + b"\xff" * 7)
    with pytest.raises(CodecError, match="varint"):
        decode_meta(519, long_varint)
    non_canonical = mf._with_head(1, struct.pack("<i", 2) + b"\x82\x00")
    with pytest.raises(CodecError, match="non-canonical"):
        decode_meta(519, non_canonical)
    no_nul = mf._with_head(1, struct.pack("<i", 12) + b"\x03dev" + b"\0" * 8)
    with pytest.raises(CodecError, match="NUL"):
        decode_meta(535, no_nul)
    many_uids = mf._with_head(1, b"\0" * 8 + b"\xfe\xff\xff\xff\x0f")
    with pytest.raises(CodecError, match="nUid"):
        decode_meta(579, many_uids)
    trailing = DropSuperTable("dev", 1).encode(1) + b"\0"
    with pytest.raises(CodecError, match="contLen"):
        decode_meta(535, trailing)
    with pytest.raises(CodecError, match="raw_type"):
        decode_meta(2, DropSuperTable("dev", 1).encode(1))
    with pytest.raises(CodecError):
        Tags.from_bytes(b"\x00\x09\x00\x05\x00\x01\x00\x00\x00")  # 5 values announced, none present


def test_stag_corruptions():
    good = Tags.of([(1, 4, 7), (2, 8, "abc")]).to_bytes()
    assert Tags.from_bytes(good).as_dict() == {1: 7, 2: "abc"}
    for at in range(len(good)):
        for value in (0x00, 0x7F, 0x80, 0xFF):
            buf = bytearray(good)
            buf[at] = value
            try:
                tags = Tags.from_bytes(bytes(buf))
            except CodecError:
                continue
            assert tags.to_bytes() == bytes(buf)
    unsorted = bytearray(Tags.of([(1, 4, 7), (2, 4, 8)]).to_bytes())
    unsorted[mf._STAG_HEADER + 2] = 6  # first cid 1 -> 3: now 3 before 2
    with pytest.raises(CodecError, match="sorted"):
        Tags.from_bytes(bytes(unsorted))


# --- 5: freshly built objects round-trip -------------------------------------------------------------------------

ALL_TAGS = [
    (1, mf.TSDB_DATA_TYPE_BOOL, True), (2, mf.TSDB_DATA_TYPE_TINYINT, -128), (3, mf.TSDB_DATA_TYPE_SMALLINT, 32767),
    (4, mf.TSDB_DATA_TYPE_INT, -2147483648), (5, mf.TSDB_DATA_TYPE_BIGINT, 2**63 - 1),
    (6, mf.TSDB_DATA_TYPE_FLOAT, 1.5), (7, mf.TSDB_DATA_TYPE_DOUBLE, -2.25e300),
    (8, mf.TSDB_DATA_TYPE_VARCHAR, "héllo"), (9, mf.TSDB_DATA_TYPE_TIMESTAMP, 1767225600000123),
    (10, mf.TSDB_DATA_TYPE_NCHAR, "北京😀"), (11, mf.TSDB_DATA_TYPE_UTINYINT, 255),
    (12, mf.TSDB_DATA_TYPE_USMALLINT, 65535), (13, mf.TSDB_DATA_TYPE_UINT, 4294967295),
    (14, mf.TSDB_DATA_TYPE_UBIGINT, 2**64 - 1), (15, mf.TSDB_DATA_TYPE_VARBINARY, b"\x00\xff\x10"),
    (16, mf.TSDB_DATA_TYPE_GEOMETRY, bytes.fromhex("0101000000000000000000f03f000000000000f03f")),
    (17, mf.TSDB_DATA_TYPE_VARCHAR, ""), (18, mf.TSDB_DATA_TYPE_NCHAR, ""), (19, mf.TSDB_DATA_TYPE_BOOL, False),
]


def _roundtrip(obj, raw_type):
    data = obj.encode(3)
    back = decode_meta(raw_type, data)
    assert back == dataclasses.replace(obj, vgroup_id=3)
    assert back.encode() == data
    return back


def test_tags_roundtrip_every_type_small_and_large():
    small = Tags.of(ALL_TAGS[:3])
    assert Tags.from_bytes(small.to_bytes()) == small and not small.to_bytes()[0] & mf.TD_TAG_LARGE
    full = Tags.of(ALL_TAGS)
    raw = full.to_bytes()
    assert raw[0] & mf.TD_TAG_LARGE
    assert Tags.from_bytes(raw) == full
    assert Tags.of([(1, 4, None), (2, 8, None)]) == Tags([])  # NULL tags are absent
    unordered = Tags([TagValue(5, 4, 1), TagValue(2, 4, 2)])
    assert [v.key for v in Tags.from_bytes(unordered.to_bytes()).values] == [2, 5]


def test_json_tags_roundtrip():
    value = {"z": "last", "a": 1, "b": True, "n": None, "s": "北京", "": "skipped"}
    tags = Tags.json(value)
    back = Tags.from_bytes(tags.to_bytes())
    assert back.is_json and [v.key for v in back.values] == ["a", "b", "n", "s", "z"]
    assert back.as_dict() == {"a": 1.0, "b": True, "n": None, "s": "北京", "z": "last"}
    assert Tags.from_bytes(Tags.json(None).to_bytes()).is_null_json
    assert Tags.json({}).to_bytes() == Tags.json(None).to_bytes() == b"\x40\x09\x00\x00\x00\x01\x00\x00\x00"
    with pytest.raises(ValueError):
        Tags.json({"nested": {"x": 1}})


def test_create_tables_roundtrip_all_tag_kinds():
    reqs = [
        CreateTableRequest("c_all", uid=11, btime=1, stable_name="st", suid=99, tag_num=19, tags=Tags.of(ALL_TAGS),
                           tag_names=[f"t{i}" for i, _, _ in ALL_TAGS]),
        CreateTableRequest("c_null", uid=12, stable_name="st", suid=99, tag_num=19, tags=Tags.of([]), tag_names=[]),
        CreateTableRequest("c_json", uid=13, stable_name="sj", suid=98, tag_num=1,
                           tags=Tags.json({"k": "v", "x": 2.5}), tag_names=["info"], comment="hello", ttl=30),
        CreateTableRequest("c_json_null", uid=14, stable_name="sj", suid=98, tag_num=1, tags=Tags.json(None)),
        CreateTableRequest("n1", mf.TSDB_NORMAL_TABLE, uid=15, comment="",
                           columns=[SchemaField.make(9, "ts", 1), SchemaField.make(10, "s", 2, 5),
                                    SchemaField.make(21, "d", 3)], type_mods=[0, 0, mf.decimal_type_mod(10, 2)]),
    ]
    batch = CreateTablesBatch(reqs, source=mf.TD_REQ_FROM_TAOX)
    back = _roundtrip(batch, 515)
    assert back.requests[0].named_tags()["t10"] == "北京😀"
    assert back.requests[2].named_tags() == {"info": {"k": "v", "x": 2.5}}
    assert back.requests[4].compression[2].alg == mf.default_compression(21)
    for req in reqs:
        assert CreateTableRequest.from_bytes(req.to_bytes()) == req


def test_stable_and_alter_roundtrip():
    cols = [SchemaField.make(9, "ts", 1), SchemaField.make(5, "v", 2, primary_key=True),
            SchemaField.make(18, "b", 3), SchemaField.make(17, "d", 4)]
    tags = [SchemaField.make(15, "j", 5, tag=True, indexed=True)]
    stb = CreateSuperTable("s", 123, cols, tags, type_mods=[0, 0, 0, mf.decimal_type_mod(30, 5)])
    back = _roundtrip(stb, 531)
    assert back.compression_version == 1 and back.tags[0].bytes == 16384 and back.columns[2].bytes == 5
    for alter in (
        SuperTableAlter("1.db.s", mf.ALTER_ADD_TAG, [AlterField(10, 42, "t2")], sql=b"alter stable db.s add tag"),
        SuperTableAlter("1.db.s", mf.ALTER_ADD_COLUMN, [AlterField(8, 12, "c2")], type_mods=[0]),
        SuperTableAlter("1.db.s", mf.ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION, [AlterField(4, 4, "c3", 0x01000102)],
                        type_mods=[]),
        SuperTableAlter("1.db.s", mf.ALTER_DROP_TAG, [AlterField(0, 0, "t2")], comment=None, ttl=5),
        SuperTableAlter("1.db.s", mf.ALTER_UPDATE_COLUMN_NAME, [AlterField(0, 0, "a"), AlterField(0, 0, "b")],
                        comment="c"),
    ):
        obj = AlterSuperTable("s", 123, cols, tags, schema_version=2, alter=alter, source=mf.TD_REQ_FROM_TAOX)
        assert _roundtrip(obj, 533).alter == alter
    _roundtrip(DropSuperTable("s", 123), 535)


def test_alter_table_roundtrip_every_action():
    objs = [AlterTable.set_tag("c", f"t{cid}", cid, t, v, ctime_ms=5) for cid, t, v in ALL_TAGS]
    objs += [
        AlterTable.set_tag("c", "t1", 1, mf.TSDB_DATA_TYPE_INT, None),
        AlterTable.set_tag("c", "j", 2, mf.TSDB_DATA_TYPE_JSON, {"a": 1}),
        AlterTable.set_tag("c", "j", 2, mf.TSDB_DATA_TYPE_JSON, None),
        AlterTable.add_column("n", SchemaField.make(10, "x", 0, 4), ctime_ms=9, type_mod=0),
        AlterTable("n", mf.ALTER_DROP_COLUMN, 3, col_name="x"),
        AlterTable("n", mf.ALTER_UPDATE_COLUMN_BYTES, 3, col_name="x", col_type=8, col_bytes=22),
        AlterTable("n", mf.ALTER_UPDATE_COLUMN_NAME, 3, col_name="x", new_col_name="y"),
        AlterTable("n", mf.ALTER_UPDATE_OPTIONS, update_ttl=True, new_ttl=7, new_comment="hi"),
        AlterTable("n", mf.ALTER_UPDATE_OPTIONS, new_comment=None),
        AlterTable("n", mf.ALTER_UPDATE_COLUMN_COMPRESS, 2, col_name="x", compress=0x03000000),
        AlterTable("n", mf.ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION, col_name="z", col_type=4, col_flags=1, col_bytes=4,
                   compress=0x01000102, type_mod=0),
        AlterTable("c", mf.ALTER_UPDATE_MULTI_TAG_VAL, multi_tags=[
            mf.MultiTagValue(1, "t1", 4, raw_value=mf.encode_tag_value(4, 3)),
            mf.MultiTagValue(2, "t2", 8, is_null=True)]),
        AlterTable("v", mf.ALTER_ALTER_COLUMN_REF, 2, col_name="x", ref_db="d", ref_table="t", ref_column="c"),
        AlterTable("n", mf.ALTER_DROP_TAG_INDEX, source=mf.TD_REQ_FROM_TAOX),
    ]
    for obj in objs:
        back = _roundtrip(obj, 517)
        if obj.action == mf.ALTER_UPDATE_TAG_VAL:
            want = obj.tag_value
            assert back.tag_value == want
    assert objs[0].tag_value is True and objs[9].tag_value == "北京😀"
    assert objs[len(ALL_TAGS)].tag_value is None and objs[len(ALL_TAGS) + 1].tag_value.as_dict() == {"a": 1.0}
    assert objs[len(ALL_TAGS) + 2].tag_value.is_null_json


def test_shorter_older_encodings_roundtrip():
    """Optional trailing fields a decoder must accept missing (older servers) stay missing."""
    stb = CreateSuperTable("s", 1, [SchemaField.make(9, "ts", 1)], [SchemaField.make(4, "t", 2, tag=True)])
    full = len(stb.encode(1))
    sizes = []
    for k in range(7):
        obj = dataclasses.replace(stb, trailing=None if k == 6 else k)
        data = obj.encode(1)
        assert decode_meta(531, data).trailing == obj.trailing and decode_meta(531, data).encode() == data
        sizes.append(len(data))
    assert sizes == sorted(sizes) and sizes[-1] == full
    for k in (0, 1):
        delete = Delete(1, [2], 3, 4, 5, "t", "ts", 6, 0, trailing=k)
        back = decode_meta(579, delete.encode(1))
        assert back.trailing == k and back.ctime_ms == (6 if k else 0) and back.encode() == delete.encode(1)
    for k in (0, 1, 2):
        alter = dataclasses.replace(AlterTable.add_column("n", SchemaField.make(4, "x", 0), 9), trailing=k)
        back = decode_meta(517, alter.encode(1))
        assert back.trailing == k and back.col_name == "x" and back.encode() == alter.encode(1)
    for k in (0, 1, 2):
        req = CreateTableRequest("n", mf.TSDB_NORMAL_TABLE, columns=[SchemaField.make(9, "ts", 1)], trailing=k)
        back = CreateTableRequest.from_bytes(req.to_bytes())
        assert back.trailing == k and back.to_bytes() == req.to_bytes()
    batch = CreateTablesBatch([CreateTableRequest("c", stable_name="s", tags=Tags.of([(2, 4, 1)]))], trailing=0)
    assert decode_meta(515, batch.encode(1)) == dataclasses.replace(batch, vgroup_id=1)
    drop = DropTablesBatch([DropTableRequest("a", 1, 2, trailing=0)])
    assert decode_meta(519, drop.encode(1)) == dataclasses.replace(drop, vgroup_id=1)


def test_drop_and_delete_roundtrip():
    _roundtrip(DropTablesBatch([DropTableRequest("a", 1, 2), DropTableRequest("b", 0, 3, 1, 1)]), 519)
    _roundtrip(Delete(0, [], -(2**63), 2**63 - 1, 0, "t", "ts"), 579)
    _roundtrip(Delete(7, [1, 2, 2**64 - 1], 0, 10, 2**40, "stb", "ts", 12345, mf.TD_REQ_FROM_TAOX), 579)


def test_encoder_rejects_bad_values():
    with pytest.raises(ValueError):
        Tags.of([(1, mf.TSDB_DATA_TYPE_TINYINT, 300)]).to_bytes()
    with pytest.raises(ValueError):
        Tags.of([(1, mf.TSDB_DATA_TYPE_NCHAR, b"bytes")]).to_bytes()
    with pytest.raises(ValueError):
        DropSuperTable("bad\0name", 1).encode(1)
    with pytest.raises(ValueError):
        CreateTableRequest("x", mf.TSDB_SUPER_TABLE).to_bytes()


def test_helpers():
    assert mf.compression_names(mf.default_compression(9)) == ("delta-i", "lz4", "medium")
    assert mf.compression_names(mf.default_compression(1)) == ("bit-packing", "zstd", "medium")
    assert mf.compression_names(mf.default_compression(20)) == ("disabled", "lz4", "medium")
    assert mf.compression_names(mf.default_compression(15)) == ("disabled", "lz4", "medium")
    assert mf.schema_bytes(10, 16) == 66 and mf.user_length(10, 66) == 16
    assert mf.schema_bytes(8, 32) == 34 and mf.user_length(18, 5) == 1
    assert mf.decode_tag_value(4, mf.encode_tag_value(4, -5)) == -5
