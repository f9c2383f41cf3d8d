"""Mutation fuzzing of every decoder over the golden corpus: only ``CodecError`` may escape.

Each case takes one golden item (raw block, data/rawdata/meta message, or a create-table
request cut out of a raw_type 4 message), applies one to four mutations (bit flips,
interesting bytes, int16/int32/int64 overwrites with boundary values, truncation, insertion,
deletion or duplication of byte runs, splicing with another item) and decodes it with the
decoder its kind calls for. When decoding succeeds every value is materialized and the
decoded object is checked for consistency (row and NULL counts, ``encode()`` giving the input
back, re-decoding ``to_bytes()``). When it fails the ``CodecError`` must name a field and an
offset inside the input.

Decoding runs in a forked child process that copies every case into shared memory before
decoding it, so a crash (segfault, abort), a hang or an oversized allocation (the child runs
under an address-space limit) is reported as a failure with the exact bytes. The default
suite runs a hypothesis-driven fuzzer and a short seeded run; ``-m long`` (``make test-long``)
runs at least 1,000,000 seeded cases spread over the machine's cores
(``TDSYNC_FUZZ_CASES`` and ``TDSYNC_FUZZ_SEED`` override the count and seed).
"""

from __future__ import annotations

import ctypes
import mmap
import multiprocessing
import os
import random
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import _codec
from engine.codec import (
    MetaMessage,
    RawBlock,
    RawDataMessage,
    SubmitDataMessage,
    block_to_json,
    decode_message,
    merge_messages,
)
from engine.errors import CodecError
from tests.golden import ITEMS, require_golden

BLOCK = -1          # kind of a standalone raw block (raw_type None in the golden set)
CREATE_REQ = -2     # kind of one encoded SVCreateTbReq (parse_create_table_request)


@dataclass(frozen=True)
class Seed:
    name: str
    kind: int
    data: bytes
    hot: tuple[int, ...]    # offsets of structural fields: headers, lengths, offsets, counts


def _block_hot(block: RawBlock, start: int) -> list[int]:
    """Offsets of every header field, schema entry, column length and section start of a block."""
    ncols, rows = block.num_columns, block.num_rows
    hot = [start + k for k in (0, 4, 8, 12, 16, 20)]
    hot += [start + 28 + 5 * i for i in range(ncols)] + [start + 29 + 5 * i for i in range(ncols)]
    lengths_at = start + 28 + 5 * ncols
    hot += [lengths_at + 4 * i for i in range(ncols)]
    pos = lengths_at + 4 * ncols
    for column in block.columns:
        if column.is_variable:
            if rows:
                hot += [pos, pos + 4 * (rows // 2), pos + 4 * (rows - 1)]
            pos += 4 * rows
            hot.append(pos)            # the first value's length prefix
        else:
            hot.append(pos)            # the NULL bitmap
            pos += (rows + 7) >> 3
        pos += column.data_length
    hot.append(pos)                    # the trailing blank-fill byte
    return hot


def _seed_hot(kind: int, data: bytes) -> list[int]:
    hot = list(range(min(len(data), 32)))
    if kind == BLOCK:
        hot += _block_hot(RawBlock.decode(data), 0)
    elif kind in (2, 4):
        message = RawDataMessage.decode(data, kind)
        search = 0
        for block in message.blocks:
            start = data.index(block.to_bytes(), search)
            hot += [start - 18 - 2, start - 18 - 1, start - 18, start - 10, start - 2, start - 1]
            hot += _block_hot(block, start)
            search = start + block.nbytes
            hot += [search, search + 1, search + 2]     # schema wrapper / table name after the block
        hot += [len(data) - 8, len(data) - 4, len(data) - 1]
    elif kind == 6:
        hot += [len(data) - 8, len(data) - 1]
    return sorted({h for h in hot if 0 <= h < len(data)})


def _load_corpus() -> list[Seed]:
    seeds = []
    for name, meta, data in ITEMS:
        kind = BLOCK if meta["raw_type"] is None else meta["raw_type"]
        seeds.append(Seed(name, kind, data, tuple(_seed_hot(kind, data))))
        if kind == 4:
            for i, req in enumerate(RawDataMessage.decode(data, 4).create_table_requests):
                seeds.append(Seed(f"{name}#create{i}", CREATE_REQ, req, tuple(range(min(len(req), 48)))))
    return seeds


CORPUS = _load_corpus()
MAX_CASE = 2 * max((len(s.data) for s in CORPUS), default=0) + 4096
_BY_KIND: dict[int, list[int]] = {}
for _i, _seed in enumerate(CORPUS):
    _BY_KIND.setdefault(_seed.kind, []).append(_i)

# --- mutations -----------------------------------------------------------------------------------

OPS = ("flip", "byte", "int16", "int32", "int64", "truncate", "insert", "delete", "dup", "splice", "overwrite")
OP_WEIGHTS = (16, 12, 8, 22, 5, 8, 7, 8, 4, 5, 5)
_BYTES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE, 0x81, 0x40)
_INT16 = (0, 0xFFFF, 0x7FFF, 0x8000, 1, 3, 4, 0xFFFE)
_INT64 = (0, 0xFFFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 1, 0x80000000, 0xFFFFFFFF, 2)


def _position(buf: bytearray, seed: Seed, a: int, width: int = 1) -> int:
    """Half the time a structural offset of the seed, else anywhere; clamped so ``width`` bytes fit."""
    n = len(buf)
    if a & 1 and seed.hot:
        pos = seed.hot[(a >> 1) % len(seed.hot)]
    else:
        pos = (a >> 1) % n
    return max(0, min(pos, n - width))


def _int32(b: int, buf: bytearray, pos: int) -> int:
    current = int.from_bytes(buf[pos:pos + 4], "little")
    high = b >> 4
    choice = b & 15
    if choice == 0:
        return 0
    if choice == 1:
        return 0xFFFFFFFF                       # -1
    if choice == 2:
        return 0x7FFFFFFF                       # 2^31 - 1
    if choice == 3:
        return 0x80000000                       # 2^31 (INT32_MIN)
    if choice == 4:
        return 1
    if choice == 5:
        return high & 0xFF                      # small
    if choice == 6:
        return (high | 0x01000000) & 0x7FFFFFFF  # large positive
    if choice == 7:
        return len(buf)
    if choice == 8:
        return len(buf) - pos
    if choice == 9:
        return current + 1
    if choice == 10:
        return current - 1
    if choice == 11:
        return int.from_bytes(current.to_bytes(4, "little"), "big")   # byte-swapped
    if choice == 12:
        return current + (high & 0xFF) - 128
    if choice == 13:
        return 0xFFFFFFFF - (high & 0xFF)       # small negative
    if choice == 14:
        return high
    return 0x10000


def apply_op(buf: bytearray, seed: Seed, op: str, a: int, b: int) -> None:
    """Apply one mutation in place; ``a`` picks the position, ``b`` the value (both 32-bit)."""
    n = len(buf)
    if n == 0:
        buf.extend(b.to_bytes(4, "little")[: 1 + a % 4])
        return
    if op == "flip":
        buf[_position(buf, seed, a)] ^= 1 << (b & 7)
    elif op == "byte":
        buf[_position(buf, seed, a)] = _BYTES[b % len(_BYTES)]
    elif op == "int16":
        if n >= 2:
            pos = _position(buf, seed, a, 2)
            value = _INT16[b & 7] if b & 8 else (b >> 4) & 0xFFFF
            buf[pos:pos + 2] = value.to_bytes(2, "little")
    elif op == "int32":
        if n >= 4:
            pos = _position(buf, seed, a, 4)
            buf[pos:pos + 4] = (_int32(b, buf, pos) & 0xFFFFFFFF).to_bytes(4, "little")
    elif op == "int64":
        if n >= 8:
            pos = _position(buf, seed, a, 8)
            value = _INT64[b & 7] if b & 8 else (b >> 4) << 20
            buf[pos:pos + 8] = value.to_bytes(8, "little")
    elif op == "truncate":
        del buf[_position(buf, seed, a):]
    elif op == "insert":
        if n < MAX_CASE - 64:
            pos = _position(buf, seed, a)
            count = 1 + (b & 15)
            fill = bytes([_BYTES[(b >> 4) & 7]]) * count if b & 0x80 else (b >> 8).to_bytes(3, "little") * 6
            buf[pos:pos] = fill[:count]
    elif op == "delete":
        pos = _position(buf, seed, a)
        del buf[pos:pos + 1 + (b & 15) * (1 + ((b >> 4) & 3) * 16)]
    elif op == "dup":
        if n < MAX_CASE // 2:
            pos = _position(buf, seed, a)
            chunk = buf[pos:pos + 1 + (b & 0x3F)]
            at = (b >> 6) % (n + 1)
            buf[at:at] = chunk
    elif op == "splice":
        group = _BY_KIND[seed.kind] if b & 1 else range(len(CORPUS))
        other = CORPUS[group[(b >> 1) % len(group)]].data
        if other:
            buf[_position(buf, seed, a):] = other[(b >> 9) % len(other):]
    elif op == "overwrite":
        pos = _position(buf, seed, a)
        count = 1 + (b & 7)
        buf[pos:pos + count] = ((b >> 3) | 1).to_bytes(4, "little") * 2
    else:  # pragma: no cover - guarded by OPS
        raise ValueError(op)


def fix_lengths(buf: bytearray, kind: int) -> None:
    """Make the outer length fields agree with the mutated size, so the fuzzer gets past them."""
    n = len(buf)
    if kind == BLOCK and n >= 8:
        buf[4:8] = n.to_bytes(4, "little")
    elif kind == CREATE_REQ and n >= 4:
        buf[0:4] = (n - 4).to_bytes(4, "little")
    elif kind >= 500 and n >= 4:
        buf[0:4] = n.to_bytes(4, "little")
        if kind != 579 and n >= 12:
            buf[8:12] = (n - 12).to_bytes(4, "little")


# --- decoding and consistency checks -------------------------------------------------------------

def _check_error(exc: CodecError, size: int) -> str:
    assert isinstance(exc.field, str) and exc.field, f"CodecError without a field: {exc!r}"
    assert isinstance(exc.offset, int) and 0 <= exc.offset <= size, \
        f"CodecError offset {exc.offset} outside the {size}-byte input: {exc}"
    assert exc.field in str(exc) and str(exc.offset) in str(exc)
    return exc.field


def _same_rows(a: list, b: list) -> bool:
    return repr(a) == repr(b)       # NaN-safe and exact for floats, Decimals and bytes


def _touch_block(block: RawBlock) -> None:
    doc = block_to_json(block)      # every value, through the JSON encoding `tdsync inspect` uses
    rows = doc["rows"]
    assert len(rows) == block.num_rows
    assert all(len(row) == block.num_columns for row in rows)
    for index, column in enumerate(block.columns):
        assert column.null_count() == sum(row[index] is None for row in rows), column
        assert column.data_length >= 0
        if column.precision is not None:
            assert column.bytes in (8, 16)
    assert len(block.column_names) == block.num_columns
    assert block.table_name is None or isinstance(block.table_name, str)
    raw = block.to_bytes()
    assert len(raw) == block.nbytes
    again = RawBlock.decode(raw)
    assert not again.big_endian_lengths
    assert _same_rows(block_to_json(again)["rows"], rows)


def _touch_data_message(message: RawDataMessage, data) -> None:
    blocks = message.blocks
    assert message.num_blocks == len(blocks)
    assert message.num_rows == sum(b.num_rows for b in blocks)
    assert message.nbytes == len(data)
    assert message.req_offset.kind in ("none", "earliest", "latest", "log", "snapshot_data", "snapshot_meta",
                                       "unknown")
    assert len(message.rsp_offset) == 2
    names = message.table_names
    assert len(names) == len(blocks)
    if message.with_schema:
        for block in blocks:
            schema = block.schema
            assert [entry[0] for entry in schema] == [c.type_code for c in block.columns]
    for block in blocks:
        _touch_block(block)
    out = message.encode()
    if all(b.version == 2 and not b.big_endian_lengths for b in blocks):
        expected = bytearray(data)
        if blocks:      # the two flag bytes are booleans: any non-zero value is written back as 1
            flags_at = 5 + int.from_bytes(expected[1:5], "little") + 4
            expected[flags_at:flags_at + 2] = bytes([message.with_table_name, message.with_schema])
        assert out == expected, "decode -> encode is not byte-identical"
    again = RawDataMessage.decode(out, message.raw_type)
    assert again.table_names == names
    assert [b.num_rows for b in again.blocks] == [b.num_rows for b in blocks]
    assert merge_messages([message]).encode() == out
    for req in message.create_table_requests:
        try:
            _codec.parse_create_table_request(req)
        except CodecError as exc:
            _check_error(exc, len(req))


def check_case(kind: int, data) -> str | None:
    """Decode ``data`` as ``kind`` and check it; None when it decoded, else the CodecError field.

    Anything but a CodecError (or an offset outside the input) propagates.
    """
    try:
        if kind == BLOCK:
            _touch_block(RawBlock.decode(data))
        elif kind == CREATE_REQ:
            name, table_type, stable = _codec.parse_create_table_request(data)
            assert isinstance(name, str) and isinstance(table_type, str)
        else:
            message = decode_message(kind, data)
            if isinstance(message, RawDataMessage):
                assert message.raw_type == kind
                _touch_data_message(message, data)
            elif isinstance(message, SubmitDataMessage):
                assert message.encode() == bytes(data)
                assert len(message.table_names) in (0, message.num_blocks)
                assert message.req_offset.kind and message.rsp_offset.kind
            else:
                assert isinstance(message, MetaMessage)
                assert message.encode() == bytes(data)
                assert message.kind in ("create", "alter", "drop", "delete")
                assert all(isinstance(t[0], str) for t in message.tables)
        return None
    except CodecError as exc:
        return _check_error(exc, len(data))


# --- running cases in a child process --------------------------------------------------------------

class CaseRecord:
    """Shared memory holding the case being decoded, readable after the child dies."""

    def __init__(self) -> None:
        self.mm = mmap.mmap(-1, MAX_CASE + 16)

    def write(self, kind: int, seed_index: int, data) -> None:
        n = len(data)
        self.mm[0:12] = struct.pack("<iiI", kind, seed_index, n)
        self.mm[12:12 + n] = data

    def read(self) -> tuple[int, int, bytes]:
        kind, seed_index, n = struct.unpack("<iiI", self.mm[0:12])
        return kind, seed_index, bytes(self.mm[12:12 + min(n, MAX_CASE)])


def _describe(kind: int, seed_index: int, data: bytes) -> str:
    seed = CORPUS[seed_index].name if 0 <= seed_index < len(CORPUS) else "?"
    text = f"kind {kind} (seed {seed}), {len(data)} bytes"
    if len(data) > 4096:
        fd, path = tempfile.mkstemp(prefix="tdsync-fuzz-case-", suffix=".bin")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return f"{text}, written to {path}; first 4096 bytes hex:\n{data[:4096].hex()}"
    return f"{text}, hex:\n{data.hex()}"


def _limit_memory() -> None:
    try:
        import resource
        with open("/proc/self/status") as status:
            vm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
        limit = vm_kb * 1024 + (1 << 30)        # what the process has now, plus 1 GiB
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ImportError, OSError, ValueError, StopIteration):
        pass


def _child(conn, record: CaseRecord, target, args) -> None:
    _limit_memory()
    try:
        result = target(record, *args)
    except BaseException:   # noqa: BLE001 - everything goes back to the parent
        conn.send({"error": traceback.format_exc()})
        conn.close()
        os._exit(1)
    conn.send(result)
    conn.close()
    os._exit(0)


def run_children(target, arg_sets: list[tuple], timeout: float) -> list[dict]:
    """Run ``target(record, *args)`` in one forked child per arg set, in parallel; fail on any crash."""
    ctx = multiprocessing.get_context("fork")
    running = []
    for args in arg_sets:
        record = CaseRecord()
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(send, record, target, args), daemon=True)
        proc.start()
        send.close()
        running.append((proc, receive, record))
    deadline = time.monotonic() + timeout
    results, problems = [], []
    for proc, receive, record in running:
        result = None
        if receive.poll(max(0.0, deadline - time.monotonic())):
            try:
                result = receive.recv()
            except EOFError:
                result = None
        proc.join(max(0.0, min(10.0, deadline - time.monotonic())))
        if proc.is_alive():
            proc.kill()
            proc.join()
            kind, seed_index, data = record.read()
            problems.append(f"fuzz child hung (> {timeout:.0f} s); last case: {_describe(kind, seed_index, data)}")
        elif result is None:
            kind, seed_index, data = record.read()
            problems.append(f"fuzz child died with exit code {proc.exitcode} (negative: signal) on "
                            f"{_describe(kind, seed_index, data)}")
        elif "error" in result:
            problems.append(result["error"])
        else:
            results.append(result)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
    return results


_GROUP_SHARE = {"block": 0.25, "data": 0.3, "rawdata": 0.15, "meta": 0.2, "create": 0.1}


def _group(kind: int) -> str:
    return {BLOCK: "block", CREATE_REQ: "create", 2: "data", 4: "data", 6: "rawdata"}.get(kind, "meta")


def _pick_weights() -> list[float]:
    """Each family of decoder gets its share of the cases; within one, small items are picked most
    (a 100 kB message ~25 times less often than a 1 kB one)."""
    raw = [1.0 / (1.0 + len(seed.data) / 4096.0) for seed in CORPUS]
    totals: Counter = Counter()
    for seed, weight in zip(CORPUS, raw):
        totals[_group(seed.kind)] += weight
    return [w * _GROUP_SHARE[_group(s.kind)] / totals[_group(s.kind)] for s, w in zip(CORPUS, raw)]


def fuzz_seeded(record: CaseRecord, seed: int, cases: int, max_failures: int = 5) -> dict:
    """``cases`` deterministic random cases from ``seed``; the child's result dictionary."""
    rng = random.Random(seed)
    cum_weights = []
    total = 0.0
    for weight in _pick_weights():
        total += weight
        cum_weights.append(total)
    indices = range(len(CORPUS))
    choices, getrandbits, rand = rng.choices, rng.getrandbits, rng.random
    fields: Counter = Counter()
    failures = []
    decoded = 0
    slowest = (0.0, "")
    started = time.perf_counter()
    for _ in range(cases):
        seed_index = choices(indices, cum_weights=cum_weights)[0]
        seed_item = CORPUS[seed_index]
        buf = bytearray(seed_item.data)
        nops = 1 + (rand() < 0.3) + (rand() < 0.15) + (rand() < 0.05)
        for op in choices(OPS, weights=OP_WEIGHTS, k=nops):
            apply_op(buf, seed_item, op, getrandbits(32), getrandbits(32))
        if rand() < 0.5:
            fix_lengths(buf, seed_item.kind)
        record.write(seed_item.kind, seed_index, buf)
        t0 = time.perf_counter()
        try:
            field = check_case(seed_item.kind, buf)
        except BaseException:   # noqa: BLE001 - report the reproducer, whatever it was
            failures.append(f"{traceback.format_exc()}\non {_describe(seed_item.kind, seed_index, bytes(buf))}")
            if len(failures) >= max_failures:
                break
            continue
        dt = time.perf_counter() - t0
        if dt > slowest[0]:
            slowest = (dt, f"{seed_item.name} ({len(buf)} bytes)")
        if field is None:
            decoded += 1
        else:
            fields[field] += 1
    elapsed = time.perf_counter() - started
    if failures:
        return {"error": f"{len(failures)} failing case(s) with seed {seed}:\n\n" + "\n\n".join(failures)}
    return {"cases": cases, "decoded": decoded, "fields": dict(fields), "elapsed": elapsed,
            "slowest": slowest}


# --- the tests --------------------------------------------------------------------------------------

def test_pristine_corpus_decodes_and_passes_the_checks():
    require_golden()
    kinds = Counter(seed.kind for seed in CORPUS)
    assert kinds[BLOCK] >= 10 and kinds[2] >= 10 and kinds[6] >= 10 and kinds[CREATE_REQ] >= 2
    for seed in CORPUS:
        assert check_case(seed.kind, seed.data) is None, seed.name
        assert check_case(seed.kind, bytearray(seed.data)) is None, seed.name


def test_mutations_change_the_bytes_and_are_deterministic():
    require_golden()
    seed = next(s for s in CORPUS if s.kind == BLOCK)
    for op in OPS:
        for a, b in ((0, 0), (7, 12345), (0xFFFFFFFF, 0xFFFFFFFF), (123456789, 987654321)):
            first, second = bytearray(seed.data), bytearray(seed.data)
            apply_op(first, seed, op, a, b)
            apply_op(second, seed, op, a, b)
            assert first == second
    changed = 0
    for a in range(200):
        buf = bytearray(seed.data)
        apply_op(buf, seed, "int32", a * 7919, a * 104729)
        changed += buf != seed.data
    assert changed > 150


def test_check_case_rejects_misreported_errors():
    # The checker itself must flag an error whose offset lies outside the input.
    with pytest.raises(AssertionError):
        _check_error(CodecError("block rows", 500, "x"), 100)
    assert _check_error(CodecError("block rows", 8, "x"), 100) == "block rows"


def _crashing_target(record: CaseRecord) -> dict:
    record.write(2, 0, b"\x64\xde\xad\xbe\xef")
    ctypes.string_at(0)     # a NULL dereference: SIGSEGV, the way a codec bug would die
    return {}


def _hanging_target(record: CaseRecord) -> dict:
    record.write(BLOCK, 1, b"\x02\x00\x00\x00")
    time.sleep(60)
    return {}


def _greedy_target(record: CaseRecord) -> dict:
    return {"size": len(bytearray(8 << 30))}    # beyond the child's address-space limit


def test_harness_reports_crash_hang_and_oversized_allocation_with_the_case():
    with pytest.raises(pytest.fail.Exception) as info:
        run_children(_crashing_target, [()], timeout=60)
    assert "died with exit code -11" in str(info.value) and "64deadbeef" in str(info.value)
    with pytest.raises(pytest.fail.Exception) as info:
        run_children(_hanging_target, [()], timeout=1)
    assert "hung" in str(info.value) and "02000000" in str(info.value)
    with pytest.raises(pytest.fail.Exception) as info:
        run_children(_greedy_target, [()], timeout=60)
    assert "MemoryError" in str(info.value)


_OP = st.tuples(st.sampled_from(OPS), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))


@settings(max_examples=600, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(seed_index=st.integers(0, max(len(CORPUS) - 1, 0)), ops=st.lists(_OP, min_size=1, max_size=4),
       fix=st.booleans())
def _hypothesis_fuzz(record: CaseRecord, seed_index: int, ops: list, fix: bool) -> None:
    seed = CORPUS[seed_index]
    buf = bytearray(seed.data)
    for op, a, b in ops:
        apply_op(buf, seed, op, a, b)
    if fix:
        fix_lengths(buf, seed.kind)
    record.write(seed.kind, seed_index, buf)
    try:
        check_case(seed.kind, buf)
    except BaseException as exc:
        raise AssertionError(f"{type(exc).__name__}: {exc}\non {_describe(seed.kind, seed_index, bytes(buf))}") \
            from exc


def _run_hypothesis(record: CaseRecord) -> dict:
    _hypothesis_fuzz(record)
    return {"ok": True}


def test_fuzz_hypothesis_mutations_of_golden_files():
    require_golden()
    [result] = run_children(_run_hypothesis, [()], timeout=300)
    assert result == {"ok": True}


def test_fuzz_seeded_brief():
    require_golden()
    [result] = run_children(fuzz_seeded, [(20260101, 20_000)], timeout=300)
    assert result["cases"] == 20_000
    # The mix must exercise both outcomes broadly: many successful decodes and many error kinds.
    assert result["decoded"] > 1000
    assert len(result["fields"]) >= 25, result["fields"]
    assert result["slowest"][0] < 2.0, result["slowest"]


@pytest.mark.long
def test_fuzz_seeded_long(capsys):
    require_golden()
    total = int(os.environ.get("TDSYNC_FUZZ_CASES", "1000000"))
    base_seed = int(os.environ.get("TDSYNC_FUZZ_SEED", "3370"))
    workers = max(1, min(os.cpu_count() or 1, 8))
    per_worker = -(-total // workers)
    started = time.perf_counter()
    results = run_children(fuzz_seeded, [(base_seed + w, per_worker) for w in range(workers)], timeout=3600)
    elapsed = time.perf_counter() - started
    cases = sum(r["cases"] for r in results)
    decoded = sum(r["decoded"] for r in results)
    fields: Counter = Counter()
    for r in results:
        fields.update(r["fields"])
    slowest = max(r["slowest"] for r in results)
    with capsys.disabled():
        print(f"\nfuzz: {cases} cases in {elapsed:.1f} s on {workers} processes ({cases / elapsed:.0f} cases/s), "
              f"{decoded} decoded, {cases - decoded} CodecError over {len(fields)} fields, 0 crashes; "
              f"slowest case {slowest[0] * 1000:.1f} ms ({slowest[1]})", file=sys.stderr)
    assert cases >= total >= 1
    assert decoded > cases // 50
    assert slowest[0] < 2.0
