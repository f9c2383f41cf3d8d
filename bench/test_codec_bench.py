"""Codec benchmarks (pytest-benchmark): ``make bench``, not ``make test``.

One benchmark group per message size (rows x columns), so the bytes copy, the Cython decode, the
pure-Python decode, encode, merge+encode (4 messages, next to a copy of the same 4 buffers) and the
value paths sit side by side; the 1-row groups add the envelope+header decode against its 2 µs
target. ``extra_info`` carries MB/s and rows/s (from the best round). The targets are summarised by
``python -m bench.codec_report``; these tests check correctness, not speed, so a slow machine
never fails them.
"""

from __future__ import annotations

import math

import pytest

from bench import pure_python_decoder
from bench.messages import GOLDEN_1ROW, SIZES, golden_data_messages, message, workload
from engine.codec import RawDataMessage, merge_messages

SIZE_IDS = [f"{rows}r-{cols}c" for rows, cols in SIZES]
_WORKLOADS: dict = {}


def _workload(rows: int, cols: int):
    if (rows, cols) not in _WORKLOADS:
        _WORKLOADS[(rows, cols)] = workload(rows, cols)
    return _WORKLOADS[(rows, cols)]


def _run(benchmark, rows: int, cols: int, op_name: str):
    ns, ops = _workload(rows, cols)
    op = next(o for o in ops if o.name == op_name)
    call = eval(f"lambda: {op.stmt}", ns)     # the same statement codec_report times, as a function
    benchmark.group = f"rows={rows} cols={cols}"
    benchmark.extra_info.update(operation=op.name, bytes=op.nbytes, rows=op.rows)
    result = benchmark(call)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        best = stats.stats.min
        benchmark.extra_info["MB/s"] = round(op.nbytes / best / 1e6, 1)
        benchmark.extra_info["rows/s"] = round(op.rows / best)
    return result


@pytest.mark.parametrize("rows,cols", SIZES, ids=SIZE_IDS)
def test_copy(benchmark, rows, cols):
    assert _run(benchmark, rows, cols, "copy") == message(rows, cols).data


@pytest.mark.parametrize("rows,cols", SIZES, ids=SIZE_IDS)
def test_decode_cython(benchmark, rows, cols):
    assert _run(benchmark, rows, cols, "decode (Cython)").num_rows == rows


@pytest.mark.parametrize("rows,cols", SIZES, ids=SIZE_IDS)
def test_decode_pure_python(benchmark, rows, cols):
    assert _run(benchmark, rows, cols, "decode (pure Python)").num_rows == rows


@pytest.mark.parametrize("rows,cols", SIZES, ids=SIZE_IDS)
def test_encode(benchmark, rows, cols):
    assert _run(benchmark, rows, cols, "encode") == message(rows, cols).data


@pytest.mark.parametrize("rows,cols", SIZES, ids=SIZE_IDS)
def test_copy_x4_join(benchmark, rows, cols):
    assert len(_run(benchmark, rows, cols, "copy x4 (join)")) == sum(map(len, message(rows, cols).group))


@pytest.mark.parametrize("rows,cols", SIZES, ids=SIZE_IDS)
def test_merge_x4_encode(benchmark, rows, cols):
    merged = RawDataMessage.decode(_run(benchmark, rows, cols, "merge x4+encode"))
    assert merged.num_rows == 4 * rows
    assert (merged.req_offset.version, merged.rsp_offset.version) == (1000, 1004)


@pytest.mark.parametrize("rows,cols", SIZES, ids=SIZE_IDS)
def test_values_cython(benchmark, rows, cols):
    assert len(_run(benchmark, rows, cols, "values (Cython)")[0]) == rows


@pytest.mark.parametrize("rows,cols", SIZES, ids=SIZE_IDS)
def test_values_pure_python(benchmark, rows, cols):
    assert len(_run(benchmark, rows, cols, "values (pure Python)")[0]) == rows


@pytest.mark.parametrize("cols", [10, 200])
def test_envelope_header_decode_1row(benchmark, cols):
    """Target: < 2 µs for a 1-row message (envelope, retrieve header, block header, schema, name)."""
    data = message(1, cols).data
    benchmark.group = f"rows=1 cols={cols}"
    benchmark.extra_info.update(operation="envelope+header decode, 1 row", bytes=len(data), target_us=2.0)
    decoded = benchmark(RawDataMessage.decode, data)
    assert (decoded.num_rows, decoded.blocks[0].num_columns) == (1, cols)
    if benchmark.stats is not None:
        benchmark.extra_info["us"] = round(benchmark.stats.stats.min * 1e6, 3)
        benchmark.extra_info["target_met"] = benchmark.stats.stats.min < 2e-6


# --- correctness: the pure-Python baseline does the same work as the codec ---------------------------

def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _log_version(raw: bytes) -> int | None:
    """The WAL version of an encoded STqOffsetVal of kind log (type byte 0x11 or 0x01)."""
    return int.from_bytes(raw[1:9], "little", signed=True) if raw[0] & 0x0F == 1 else None


def _assert_same_message(data: bytes, raw_type: int) -> None:
    cy = RawDataMessage.decode(data, raw_type)
    py = pure_python_decoder.decode(data, raw_type)
    assert py.num_rows == cy.num_rows
    assert py.table_names == cy.table_names
    assert [b.num_rows for b in py.blocks] == [b.num_rows for b in cy.blocks]
    assert [b.num_columns for b in py.blocks] == [b.num_columns for b in cy.blocks]
    assert (py.with_table_name, py.with_schema) == (cy.with_table_name, cy.with_schema)
    assert (py.has_sleep_time, py.sleep_time) == (cy.has_sleep_time, cy.sleep_time)
    assert (_log_version(py.req_raw), _log_version(py.rsp_raw)) == (cy.req_offset.version, cy.rsp_offset.version)
    assert (py.create_table_requests or []) == cy.create_table_requests
    for py_block, cy_block in zip(py.blocks, cy.blocks):
        assert (py_block.retrieve_version, py_block.retrieve_rows, py_block.precision) == (
            cy_block.retrieve_version, cy_block.retrieve_rows, cy_block.precision)
        assert (py_block.version, py_block.flag, py_block.group_id, py_block.has_blank_fill) == (
            cy_block.version, cy_block.flag, cy_block.group_id, cy_block.has_blank_fill)
        py_rows, cy_rows = py_block.rows(), cy_block.rows()
        assert len(py_rows) == len(cy_rows)
        for py_row, cy_row in zip(py_rows, cy_rows):
            assert all(_same(a, b) for a, b in zip(py_row, cy_row, strict=True)), (py_row, cy_row)


GOLDEN = golden_data_messages()


@pytest.mark.parametrize("name,raw_type,data,meta", [pytest.param(*g, id=g[0]) for g in GOLDEN]
                         or [pytest.param(None, None, None, None, id="golden-set-missing")])
def test_pure_python_decoder_agrees_on_golden(name, raw_type, data, meta):
    if data is None:
        pytest.skip("golden set not found beside the repository; set TDSYNC_TESTDATA")
    _assert_same_message(data, raw_type)
    py = pure_python_decoder.decode(data, raw_type)
    expected = meta["expected"]["blocks"]
    assert py.table_names == [b["table_name"] for b in expected]
    assert py.num_rows == sum(len(b["rows"]) for b in expected)


def test_golden_1row_message_is_present():
    names = [g[0] for g in GOLDEN]
    if not names:
        pytest.skip("golden set not found")
    assert GOLDEN_1ROW in names


@pytest.mark.parametrize("rows,cols", SIZES, ids=SIZE_IDS)
def test_pure_python_decoder_agrees_on_bench_messages(rows, cols):
    msg = message(rows, cols)
    for data in msg.group:
        _assert_same_message(data, 2)
    merged = merge_messages([RawDataMessage.decode(d) for d in msg.group]).encode()
    _assert_same_message(merged, 2)


@pytest.mark.parametrize("cut", [1, 5, 40, -9, -1])
def test_pure_python_decoder_rejects_what_the_codec_rejects(cut):
    data = message(100, 10).data
    broken = data[:cut] if cut > 0 else data[:cut]
    with pytest.raises(ValueError):
        RawDataMessage.decode(broken)
    with pytest.raises(ValueError):
        pure_python_decoder.decode(broken)


def test_pure_python_decoder_checks_variable_offsets():
    """An offset pointing past its payload is refused by both decoders."""
    data = bytearray(message(100, 10).data)
    blk = pure_python_decoder.decode(bytes(data)).blocks[0]
    varchar = blk.types.index(8)
    data[blk.nulls_at[varchar]:blk.nulls_at[varchar] + 4] = (blk.data_lens[varchar] - 1).to_bytes(4, "little")
    with pytest.raises(ValueError, match="value"):
        RawDataMessage.decode(bytes(data))
    with pytest.raises(ValueError, match="value"):
        pure_python_decoder.decode(bytes(data))
