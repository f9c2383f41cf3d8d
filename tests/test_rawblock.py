"""Raw blocks: ``encode_block`` -> ``RawBlock.decode`` round trips and hostile headers.

The expected bytes, sizes and offsets here are computed independently of the codec from the
layout in formats.md section 1, so a symmetric encoder/decoder mistake still shows up.
"""

from __future__ import annotations

import ctypes
import json
import math
import struct
import time
import tracemalloc
from decimal import Context, Decimal
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.codec import TYPE_NAMES, RawBlock, encode_block
from engine.errors import CodecError

NULL, BOOL, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, VARCHAR, TIMESTAMP, NCHAR = range(11)
UTINYINT, USMALLINT, UINT, UBIGINT, JSON, VARBINARY, DECIMAL, BLOB, MEDIUMBLOB, GEOMETRY, DECIMAL64 = range(11, 22)

WIDTH = {NULL: 0, BOOL: 1, TINYINT: 1, SMALLINT: 2, INT: 4, BIGINT: 8, FLOAT: 4, DOUBLE: 8, TIMESTAMP: 8,
         UTINYINT: 1, USMALLINT: 2, UINT: 4, UBIGINT: 8, DECIMAL: 16, DECIMAL64: 8}
PREFIX = {VARCHAR: 2, NCHAR: 2, JSON: 2, VARBINARY: 2, GEOMETRY: 2, BLOB: 4, MEDIUMBLOB: 4}
INT_RANGE = {TINYINT: (-(2**7), 2**7 - 1), SMALLINT: (-(2**15), 2**15 - 1), INT: (-(2**31), 2**31 - 1),
             BIGINT: (-(2**63), 2**63 - 1), TIMESTAMP: (-(2**63), 2**63 - 1), UTINYINT: (0, 2**8 - 1),
             USMALLINT: (0, 2**16 - 1), UINT: (0, 2**32 - 1), UBIGINT: (0, 2**64 - 1)}
MAX_BLOB = 4 * 1024 * 1024
EXACT = Context(prec=80)     # decimal(38) values must not be rounded to the default 28 digits

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)   # includes non-BMP code points


def f32(value: float) -> float:
    """What a FLOAT column stores: the value rounded to float32 (as C does), widened back."""
    return ctypes.c_float(value).value


def payload(type_code: int, value) -> bytes:
    if type_code == NCHAR:
        return value.encode("utf-32-le")
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def data_length(type_code: int, values: list) -> int:
    if type_code in PREFIX:
        return sum(PREFIX[type_code] + len(payload(type_code, v)) for v in values if v is not None)
    return WIDTH[type_code] * len(values)


def section_size(type_code: int, values: list) -> int:
    rows = len(values)
    head = 4 * rows if type_code in PREFIX else (rows + 7) >> 3
    return head + data_length(type_code, values)


def same_value(got, want) -> bool:
    if isinstance(want, float):
        return isinstance(got, float) and (
            (math.isnan(got) and math.isnan(want)) or struct.pack("<d", got) == struct.pack("<d", want))
    if isinstance(want, Decimal):
        return isinstance(got, Decimal) and str(got) == str(want)
    return type(got) is type(want) and got == want


def bswap32(n: int) -> int:
    return int.from_bytes(n.to_bytes(4, "little"), "big")


def layout(data: bytes) -> list[SimpleNamespace]:
    """Column sections of a block, from its little-endian lengths (independent of the codec)."""
    rows, ncols = struct.unpack_from("<ii", data, 8)
    lengths_at = 28 + 5 * ncols
    pos = lengths_at + 4 * ncols
    out = []
    for i in range(ncols):
        type_code = data[28 + 5 * i]
        n = struct.unpack_from("<i", data, lengths_at + 4 * i)[0]
        nulls_at = pos
        pos += 4 * rows if type_code in PREFIX else (rows + 7) >> 3
        out.append(SimpleNamespace(type=type_code, type_at=28 + 5 * i, bytes_at=29 + 5 * i,
                                   length_at=lengths_at + 4 * i, nulls_at=nulls_at, data_at=pos, data_len=n))
        pos += n
    return out


# --- strategies ------------------------------------------------------------------------------------

@st.composite
def column_specs(draw, rows: int):
    """(type_code, schema_bytes, values given to the encoder, values the decoder must return)."""
    t = draw(st.sampled_from(range(22)))
    scale = precision = None
    if t == NULL:
        value = st.just(None)
    elif t == BOOL:
        value = st.booleans()
    elif t in INT_RANGE:
        value = st.integers(*INT_RANGE[t])
    elif t == FLOAT:
        value = st.floats(width=32) | st.floats()
    elif t == DOUBLE:
        value = st.floats()
    elif t in (VARCHAR, NCHAR):
        value = TEXT
    elif t == JSON:
        value = st.dictionaries(TEXT, st.integers() | TEXT | st.booleans() | st.none(), max_size=3).map(
            lambda d: json.dumps(d, ensure_ascii=False))
    elif t in (VARBINARY, GEOMETRY, BLOB, MEDIUMBLOB):
        value = st.binary(max_size=40)
    else:   # DECIMAL64, DECIMAL
        precision = draw(st.integers(1, 18 if t == DECIMAL64 else 38))
        scale = draw(st.integers(0, precision))
        value = st.integers(-(10**precision - 1), 10**precision - 1).map(
            lambda u, s=scale: Decimal(u).scaleb(-s, EXACT))
    mode = draw(st.sampled_from(("none", "mixed", "all")))
    if mode == "all" or t == NULL:
        given_values = [None] * rows
    elif mode == "none":
        given_values = draw(st.lists(value, min_size=rows, max_size=rows))
    else:
        given_values = draw(st.lists(st.none() | value, min_size=rows, max_size=rows))
    expected = [f32(v) if t == FLOAT and v is not None else v for v in given_values]
    longest = max((len(payload(t, v)) for v in given_values if v is not None), default=0) if t in PREFIX else 0
    extra = draw(st.integers(0, 3))
    if t in WIDTH and t not in (DECIMAL, DECIMAL64):
        schema_bytes = WIDTH[t] if t != NULL else draw(st.sampled_from((0, 1)))
        user_bytes = schema_bytes
    elif t in (DECIMAL, DECIMAL64):
        schema_bytes = (WIDTH[t] << 24) | (precision << 8) | scale
        user_bytes = WIDTH[t]
    elif t == NCHAR:
        chars = longest // 4 + extra
        schema_bytes, user_bytes = 4 * chars + 2, chars
    elif t == JSON:
        schema_bytes, user_bytes = 16384, 4095
    elif t in (BLOB, MEDIUMBLOB):
        schema_bytes, user_bytes = 5, MAX_BLOB
    else:
        schema_bytes, user_bytes = longest + extra + 2, longest + extra
    return SimpleNamespace(type=t, schema_bytes=schema_bytes, user_bytes=user_bytes, given=given_values,
                           expected=expected, precision=precision, scale=scale)


@st.composite
def block_specs(draw):
    rows = draw(st.integers(0, 12) | st.integers(1, 300))
    columns = draw(st.lists(column_specs(rows), min_size=1, max_size=6))
    return SimpleNamespace(
        rows=rows, columns=columns, version=draw(st.sampled_from((1, 2))), blank_fill=draw(st.booleans()),
        big_endian=draw(st.booleans()), flag=draw(st.sampled_from((0x80000000, 0, 0xFFFFFFFF))),
        group_id=draw(st.integers(0, 2**64 - 1)), precision=draw(st.sampled_from((-1, 0, 1, 2))))


def encode(spec, **overrides) -> bytes:
    kwargs = dict(version=spec.version, blank_fill=spec.blank_fill, flag=spec.flag, group_id=spec.group_id,
                  big_endian_lengths=spec.big_endian)
    kwargs.update(overrides)
    return encode_block([(c.type, c.schema_bytes, c.given) for c in spec.columns], **kwargs)


# --- property tests --------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(spec=block_specs())
def test_encode_decode_round_trip(spec):
    raw = encode(spec)
    ncols, rows = len(spec.columns), spec.rows
    lengths = [data_length(c.type, c.given) for c in spec.columns]

    # The bytes, checked against the format rather than against the decoder.
    size = 28 + 9 * ncols + sum(section_size(c.type, c.given) for c in spec.columns) + spec.blank_fill
    assert len(raw) == size
    assert struct.unpack_from("<iiiiIQ", raw, 0) == (spec.version, size, rows, ncols, spec.flag, spec.group_id)
    for i, column in enumerate(spec.columns):
        assert struct.unpack_from("<bi", raw, 28 + 5 * i) == (column.type, column.schema_bytes)
        order = ">i" if spec.big_endian else "<i"
        assert struct.unpack_from(order, raw, 28 + 5 * ncols + 4 * i)[0] == lengths[i]
    if spec.blank_fill:
        assert raw[-1] == 0

    block = RawBlock.decode(raw, precision=spec.precision)
    assert (block.version, block.num_rows, block.num_columns, block.flag, block.group_id) == \
        (spec.version, rows, ncols, spec.flag, spec.group_id)
    assert block.nbytes == len(raw) and len(block) == rows
    assert block.has_blank_fill == spec.blank_fill
    assert block.big_endian_lengths == (spec.big_endian and any(bswap32(n) != n for n in lengths))
    assert block.precision == spec.precision
    assert block.table_name is None and block.schema is None

    got_rows = block.rows()
    assert len(got_rows) == rows
    for r, got_row in enumerate(got_rows):
        assert len(got_row) == ncols
        for column, got in zip(spec.columns, got_row):
            assert same_value(got, column.expected[r]), (column.type, r, got, column.expected[r])

    for i, (column, meta) in enumerate(zip(spec.columns, block.columns)):
        assert meta.type_code == column.type
        assert meta.type_name == TYPE_NAMES[column.type]
        assert meta.name == f"col{i + 1}"
        assert meta.encoded_bytes == column.schema_bytes
        assert meta.bytes == column.user_bytes
        assert (meta.precision, meta.scale) == (column.precision, column.scale)
        assert meta.null_count() == sum(v is None for v in column.expected)
        assert meta.is_variable == (column.type in PREFIX)
        assert meta.data_length == lengths[i]
        assert len(meta) == rows
        assert all(same_value(g, w) for g, w in zip(meta.to_pylist(), column.expected))
        assert block.column(i).type_code == column.type

    # to_bytes(): little-endian lengths, whichever order the block came in.
    little = encode(spec, big_endian_lengths=False)
    assert block.to_bytes() == little
    other = 3 - spec.version
    assert block.to_bytes(version=other) == struct.pack("<i", other) + little[4:]
    again = RawBlock.decode(block.to_bytes())
    assert not again.big_endian_lengths
    assert repr(again.rows()) == repr(got_rows)
    # The buffer protocol path decodes the same bytes the same way.
    assert repr(RawBlock.decode(memoryview(b"\xff" * 3 + raw)[3:]).rows()) == repr(got_rows)
    assert repr(RawBlock.decode(bytearray(raw)).rows()) == repr(got_rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=block_specs())
def test_every_truncation_and_extension_is_an_error(spec):
    raw = encode(spec)
    step = max(1, len(raw) // 64)
    for cut in sorted(set(range(0, len(raw), step)) | {len(raw) - 1, 0, 27, 28}):
        if cut >= len(raw):
            continue
        with pytest.raises(CodecError) as info:
            RawBlock.decode(raw[:cut])
        assert 0 <= info.value.offset <= cut
        assert info.value.field in ("block version", "block total length")
    with pytest.raises(CodecError) as info:
        RawBlock.decode(raw + b"\0")
    assert (info.value.field, info.value.offset) == ("block total length", 4)


def test_empty_block_and_zero_rows():
    raw = encode_block([])
    block = RawBlock.decode(raw)
    assert (block.num_rows, block.num_columns, block.rows(), block.columns) == (0, 0, [], [])
    assert len(raw) == 29
    raw = encode_block([(INT, 4, []), (VARCHAR, 12, [])], version=1, blank_fill=False)
    block = RawBlock.decode(raw)
    assert (block.num_rows, block.num_columns, block.rows(), block.has_blank_fill) == (0, 2, [], False)
    assert [c.null_count() for c in block.columns] == [0, 0]


def test_extreme_values_of_every_fixed_type():
    columns = [
        (BOOL, 1, [True, False, None]),
        (TINYINT, 1, [-128, 127, None]),
        (SMALLINT, 2, [-32768, 32767, None]),
        (INT, 4, [-(2**31), 2**31 - 1, None]),
        (BIGINT, 8, [-(2**63), 2**63 - 1, None]),
        (TIMESTAMP, 8, [-(2**63), 2**63 - 1, None]),
        (UTINYINT, 1, [0, 255, None]),
        (USMALLINT, 2, [0, 65535, None]),
        (UINT, 4, [0, 2**32 - 1, None]),
        (UBIGINT, 8, [0, 2**64 - 1, None]),
        (FLOAT, 4, [-0.0, math.inf, math.nan]),
        (DOUBLE, 8, [-0.0, -math.inf, 5e-324]),
        (DECIMAL64, (8 << 24) | (18 << 8) | 4, [Decimal("-99999999999999.9999"), Decimal("99999999999999.9999"), None]),
        (DECIMAL, (16 << 24) | (38 << 8) | 10, [Decimal("-" + "9" * 28 + "." + "9" * 10), Decimal(10) ** -10, None]),
    ]
    block = RawBlock.decode(encode_block(columns))
    got = list(zip(*block.rows()))
    for (t, _, values), column in zip(columns, got):
        for g, w in zip(column, values):
            assert same_value(g, w), (t, g, w)
    floats = got[10]
    assert math.copysign(1.0, floats[0]) == -1.0 and floats[1] == math.inf and math.isnan(floats[2])
    assert [c.null_count() for c in block.columns] == [1] * 10 + [0, 0, 1, 1]
    assert block.column(12).precision == 18 and block.column(12).scale == 4
    assert block.column(13).precision == 38 and block.column(13).scale == 10


def test_float_column_rounds_to_float32():
    values = [0.1, 1e39, -1e39, 3.4028235677973366e38, 1e-46, 16777217.0]
    block = RawBlock.decode(encode_block([(FLOAT, 4, values)]))
    got = block.column(0).to_pylist()
    assert got == [f32(v) for v in values]
    assert got[0] == 0.10000000149011612 and got[1] == math.inf and got[2] == -math.inf
    assert got[4] == 0.0 and got[5] == 16777216.0


def test_decimals_accept_int_str_and_decimal_and_reject_extra_digits():
    d64 = (8 << 24) | (10 << 8) | 2
    d128 = (16 << 24) | (38 << 8) | 5
    block = RawBlock.decode(encode_block([(DECIMAL64, d64, [12, "-3.5", Decimal("0.01")]),
                                          (DECIMAL, d128, [-(10**20), "123.45678", Decimal("-0.00001")])]))
    assert [str(v) for v in block.column(0).to_pylist()] == ["12.00", "-3.50", "0.01"]
    assert [str(v) for v in block.column(1).to_pylist()] == ["-100000000000000000000.00000", "123.45678",
                                                             "-0.00001"]
    with pytest.raises(ValueError):
        encode_block([(DECIMAL64, d64, [Decimal("0.001")])])
    with pytest.raises(OverflowError):
        encode_block([(DECIMAL, d128, [10**40])])


def test_text_types_non_bmp_and_large_blob():
    text = ["", "a", "é€😀𝄞", "\U0010ffff" * 3, None]
    blob = [b"", b"\x00" * 70000, None, bytes(range(256))]
    block = RawBlock.decode(encode_block([(NCHAR, 4 * 4 + 2, text), (VARCHAR, 16 + 2, text),
                                          (JSON, 16384, ['{"k":"😀"}', None, "null", "{}", "[]"])]))
    assert block.column(0).to_pylist() == text
    assert block.column(1).to_pylist() == text
    assert block.column(0).data_length == sum(2 + 4 * len(t) for t in text if t is not None)
    assert block.column(1).data_length == sum(2 + len(t.encode()) for t in text if t is not None)
    assert block.column(2).bytes == 4095
    block = RawBlock.decode(encode_block([(BLOB, 5, blob), (MEDIUMBLOB, 5, blob[::-1])]))
    assert block.column(0).to_pylist() == blob
    assert block.column(1).to_pylist() == blob[::-1]
    assert block.column(0).data_length == 4 * 3 + 70000 + 256
    with pytest.raises(ValueError):
        encode_block([(VARBINARY, 10, [b"\x00" * 65536])])


def test_null_type_column():
    block = RawBlock.decode(encode_block([(NULL, 1, [None] * 9), (INT, 4, list(range(9)))]))
    assert block.column(0).to_pylist() == [None] * 9
    assert block.column(0).null_count() == 9 and block.column(0).data_length == 0
    assert block.column(1).to_pylist() == list(range(9))


def test_column_names_and_misuse():
    block = RawBlock.decode(encode_block([(INT, 4, [1]), (BOOL, 1, [True])]))
    assert block.column_names == ["col1", "col2"]
    block.set_column_names(["a", "b"])
    assert [c.name for c in block.columns] == ["a", "b"]
    with pytest.raises(ValueError):
        block.set_column_names(["a"])
    with pytest.raises(IndexError):
        block.column(2)
    with pytest.raises(IndexError):
        block.column(-1)
    with pytest.raises(TypeError):
        RawBlock()
    with pytest.raises(TypeError):
        RawBlock.decode("not bytes")
    with pytest.raises(ValueError):
        encode_block([(INT, 4, [1, 2]), (INT, 4, [1])])
    with pytest.raises(ValueError):
        encode_block([(22, 4, [1])])
    with pytest.raises(OverflowError):
        encode_block([(TINYINT, 1, [128])])
    with pytest.raises(OverflowError):
        encode_block([(UINT, 4, [-1])])


# --- hostile input ---------------------------------------------------------------------------------

BASE = encode_block([(INT, 4, [1, None, 3]), (VARCHAR, 12, ["a", None, "xyz"]), (NCHAR, 4 * 3 + 2, ["ab", None, "😀"])])
LAYOUT = layout(BASE)


def patched(data: bytes, at: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, *values)
    return bytes(out)


def expect_error(data, field: str, offset: int) -> CodecError:
    with pytest.raises(CodecError) as info:
        RawBlock.decode(data)
    error = info.value
    assert (error.field, error.offset) == (field, offset), str(error)
    assert f"invalid {field} at byte {offset}:" in str(error)
    return error


def test_base_layout_is_what_the_tests_assume():
    block = RawBlock.decode(BASE)
    assert block.rows() == [(1, "a", "ab"), (None, None, None), (3, "xyz", "😀")]
    assert [c.data_len for c in LAYOUT] == [12, 3 + 5, 10 + 6]
    assert LAYOUT[0].data_at == LAYOUT[0].nulls_at + 1
    assert LAYOUT[2].data_at + LAYOUT[2].data_len == len(BASE) - 1


@pytest.mark.parametrize("total", [2**31, 2**31 - 1, 2**32 - 1, 101, 10**9])
def test_huge_total_length_on_a_100_byte_buffer_fails_fast_without_allocating(total):
    data = patched(BASE.ljust(100, b"\0")[:100], 4, "<I", total)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        expect_error(data, "block total length", 4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 0.5
    assert peak < 64 * 1024


@pytest.mark.parametrize("at,value,field,offset", [
    # 2^31-1 rows: the first column's 12 bytes cannot hold them.
    (8, 2**31 - 1, "column length", LAYOUT[0].length_at),
    (12, 2**31 - 1, "block columns", 12), (12, 100, "block columns", 12),
    (LAYOUT[1].length_at, 2**31 - 1, "column length", LAYOUT[1].length_at),
    (LAYOUT[0].length_at, 2**31 - 4, "column length", LAYOUT[0].length_at),
])
def test_huge_counts_fail_fast_without_allocating(at, value, field, offset):
    data = patched(BASE, at, "<i", value)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        expect_error(data, field, offset)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 0.5
    assert peak < 64 * 1024


def test_short_buffers():
    expect_error(b"", "block version", 0)
    expect_error(BASE[:3], "block version", 0)
    expect_error(BASE[:7], "block total length", 4)
    for cut in range(8, 28):
        expect_error(BASE[:cut], "block total length", 4)


def test_total_length_disagreeing_with_the_buffer():
    expect_error(patched(BASE, 4, "<i", len(BASE) - 1), "block total length", 4)
    expect_error(patched(BASE, 4, "<i", 27), "block total length", 4)
    expect_error(patched(BASE, 4, "<i", -1), "block total length", 4)
    # Two bytes more than the columns need (one trailing byte is the blank fill).
    longer = patched(BASE + b"\0", 4, "<i", len(BASE) + 1)
    error = expect_error(longer, "block total length", 4)
    assert f"columns end at byte {len(BASE) - 1} but the block declares it ends at byte {len(BASE) + 1}" \
        in str(error)


def test_negative_rows_and_columns():
    expect_error(patched(BASE, 8, "<i", -1), "block rows", 8)
    expect_error(patched(BASE, 8, "<i", -(2**31)), "block rows", 8)
    expect_error(patched(BASE, 12, "<i", -1), "block columns", 12)
    expect_error(patched(BASE, 12, "<i", -(2**31)), "block columns", 12)


def test_column_count_that_cannot_fit():
    expect_error(patched(BASE, 12, "<i", (len(BASE) - 28) // 9 + 1), "block columns", 12)
    # Fits the header arithmetic, so a 4th schema entry is read from the length array: 0x0C
    # (SMALLINT UNSIGNED) with 0x08000000 bytes.
    error = expect_error(patched(BASE, 12, "<i", 4), "column bytes", 28 + 5 * 3 + 1)
    assert "column 3 of type SMALLINT UNSIGNED" in str(error)


def test_rows_without_columns():
    empty = encode_block([])
    expect_error(patched(empty, 8, "<i", 1), "block rows", 8)
    expect_error(patched(empty, 8, "<i", 2**31 - 1), "block rows", 8)


@pytest.mark.parametrize("code", [22, 23, 0x7F, 0x80, 0xFF])
@pytest.mark.parametrize("column", [0, 2])
def test_unknown_type_code(code, column):
    error = expect_error(patched(BASE, LAYOUT[column].type_at, "<B", code), "column type", LAYOUT[column].type_at)
    assert f"column {column}" in str(error)


def test_schema_bytes_that_contradict_the_type():
    expect_error(patched(BASE, LAYOUT[0].bytes_at, "<i", 8), "column bytes", LAYOUT[0].bytes_at)
    expect_error(patched(BASE, LAYOUT[0].bytes_at, "<i", -4), "column bytes", LAYOUT[0].bytes_at)
    expect_error(patched(BASE, LAYOUT[1].bytes_at, "<i", 1), "column bytes", LAYOUT[1].bytes_at)
    blob = encode_block([(BLOB, 5, [b"x"])])
    expect_error(patched(blob, 29, "<i", 3), "column bytes", 29)
    d64 = encode_block([(DECIMAL64, (8 << 24) | (10 << 8) | 2, [Decimal("1.5")])])
    expect_error(patched(d64, 29, "<i", (16 << 24) | (10 << 8) | 2), "column bytes", 29)
    d128 = encode_block([(DECIMAL, (16 << 24) | (20 << 8) | 2, [Decimal("1.5")])])
    expect_error(patched(d128, 29, "<i", (8 << 24) | (20 << 8) | 2), "column bytes", 29)


def test_fixed_column_length_mismatch():
    error = expect_error(patched(BASE, LAYOUT[0].length_at, "<i", 8), "column length", LAYOUT[0].length_at)
    assert "column 0 has 8 bytes, 3 rows of INT need 12" in str(error)
    expect_error(patched(BASE, LAYOUT[0].length_at, "<i", 16), "column length", LAYOUT[0].length_at)


def test_negative_and_overlong_column_lengths():
    error = expect_error(patched(BASE, LAYOUT[1].length_at, "<i", -1), "column length", LAYOUT[1].length_at)
    assert "negative length" in str(error)
    expect_error(patched(BASE, LAYOUT[2].length_at, "<i", LAYOUT[2].data_len + 2), "column length",
                 LAYOUT[2].length_at)
    # One byte more is taken from the blank fill: the sections still add up, but the next
    # column's offset array now starts a byte late and its first offset is garbage.
    shifted = patched(BASE, LAYOUT[1].length_at, "<i", LAYOUT[1].data_len + 1)
    expect_error(shifted, "value offset", LAYOUT[2].nulls_at + 1)


def test_big_endian_lengths_are_detected_and_errors_reported_little_endian():
    big = encode_block([(INT, 4, [1, None, 3]), (VARCHAR, 12, ["a", None, "xyz"])], big_endian_lengths=True)
    block = RawBlock.decode(big)
    assert block.big_endian_lengths and block.rows() == [(1, "a"), (None, None), (3, "xyz")]
    lengths_at = 28 + 5 * 2
    bad = patched(big, lengths_at, ">i", 8)
    error = expect_error(bad, "column length", lengths_at)
    assert f"column 0 has {bswap32(8)} bytes" in str(error)


@pytest.mark.parametrize("offset", [-2, -(2**31), 2**31 - 1, 8, 7])
def test_variable_offset_out_of_range(offset):
    column = LAYOUT[1]      # VARCHAR payload: "\x01\x00a" + "\x03\x00xyz" = 8 bytes
    error = expect_error(patched(BASE, column.nulls_at, "<i", offset), "value offset", column.nulls_at)
    assert "column 1 row 0" in str(error)
    row2 = column.nulls_at + 8
    expect_error(patched(BASE, row2, "<i", offset), "value offset", row2)


def test_variable_value_running_past_its_payload():
    column = LAYOUT[1]
    at = column.data_at + 3     # the length prefix of "xyz"
    error = expect_error(patched(BASE, at, "<H", 4), "value length", at)
    assert "column 1 row 2" in str(error)
    expect_error(patched(BASE, at, "<H", 0xFFFF), "value length", at)
    blob = encode_block([(BLOB, 5, [b"abc", b"de"])])
    sections = layout(blob)
    at = sections[0].data_at + 7
    expect_error(patched(blob, at, "<I", 2**32 - 1), "value length", at)


def test_nchar_length_not_a_multiple_of_four():
    column = LAYOUT[2]
    for length in (7, 1, 2, 3):
        error = expect_error(patched(BASE, column.data_at, "<H", length), "value length", column.data_at)
        assert "not UCS-4" in str(error)


def test_invalid_text_is_reported_when_values_are_made():
    column = LAYOUT[1]
    bad = patched(BASE, column.data_at + 5 + 1, "<B", 0xFF)     # second byte of "xyz"
    block = RawBlock.decode(bad)
    with pytest.raises(CodecError) as info:
        block.rows()
    assert (info.value.field, info.value.offset) == ("text value", column.data_at + 6)
    column = LAYOUT[2]
    bad = patched(BASE, column.data_at + 10 + 2, "<I", 0x110000)    # the code point of "😀"
    block = RawBlock.decode(bad)
    with pytest.raises(CodecError) as info:
        block.column(2).to_pylist()
    assert info.value.field == "NCHAR value"
    assert column.data_at + 12 <= info.value.offset < column.data_at + 16
    bad = patched(BASE, column.data_at + 10 + 2, "<I", 0xD800)      # a surrogate is not a character
    with pytest.raises(CodecError):
        RawBlock.decode(bad).rows()


def test_buffer_changed_after_decoding_is_an_error_not_a_crash():
    data = bytearray(BASE)
    block = RawBlock.decode(data)
    column = LAYOUT[1]
    data[column.nulls_at:column.nulls_at + 4] = (0x7FFFFF00).to_bytes(4, "little")
    with pytest.raises(CodecError) as info:
        block.rows()
    assert (info.value.field, info.value.offset) == ("value offset", column.nulls_at)
    data[:] = BASE
    data[column.data_at:column.data_at + 2] = (0xFFFF).to_bytes(2, "little")
    with pytest.raises(CodecError) as info:
        block.column(1).to_pylist()
    assert (info.value.field, info.value.offset) == ("value length", column.data_at)
    data[:] = BASE
    assert block.rows() == [(1, "a", "ab"), (None, None, None), (3, "xyz", "😀")]


@settings(max_examples=200, deadline=None)
@given(at=st.integers(0, len(BASE) - 1), value=st.integers(0, 255))
def test_any_single_byte_change_decodes_or_raises_codec_error(at, value):
    data = patched(BASE, at, "<B", value)
    assume(data != BASE)
    try:
        block = RawBlock.decode(data)
        rows = block.rows()
    except CodecError as error:
        assert 0 <= error.offset <= len(data)
        return
    assert len(rows) == block.num_rows
