"""Synthetic TMQ data messages (raw_type 2) for the codec benchmarks.

Each message holds one block of a meter-like table: a timestamp first, then a repeating mix of
INT, DOUBLE, FLOAT, BIGINT, BOOL, VARCHAR(32), SMALLINT, NCHAR(16), TINYINT, INT UNSIGNED,
VARCHAR(64) and BIGINT UNSIGNED columns, some of them with NULLs. The bytes are made by the codec's
own ``encode_block`` and ``build_data_message`` (the layout a vnode sends: version-2 block,
little-endian lengths, trailing byte, schema and table name, sleep time), from a fixed seed, so
every run measures the same bytes. Messages are built once per process and cached.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from engine.codec import build_data_message, encode_block

ROWS = (1, 100, 4096)
COLUMNS = (10, 200)
SIZES = tuple((rows, cols) for rows in ROWS for cols in COLUMNS)
MERGE_COUNT = 4          # merge+encode joins this many messages of one size
SEED = 20260101
BASE_TS = 1_767_225_600_000   # 2026-01-01T00:00:00Z in ms
BASE_VERSION = 1000           # WAL version of the first message

# (type code, block schema bytes, name stem, NULL rate) of the repeating column pattern.
_PATTERN = (
    (4, 4, "current_ma", 0.0),        # INT
    (7, 8, "voltage", 0.02),          # DOUBLE
    (6, 4, "phase", 0.0),             # FLOAT
    (5, 8, "energy_wh", 0.0),         # BIGINT
    (1, 1, "online", 0.10),           # BOOL
    (8, 32 + 2, "location", 0.02),    # VARCHAR(32)
    (3, 2, "temp_dc", 0.0),           # SMALLINT
    (10, 16 * 4 + 2, "label", 0.10),  # NCHAR(16)
    (2, 1, "status", 0.0),            # TINYINT
    (13, 4, "seq", 0.02),             # INT UNSIGNED
    (8, 64 + 2, "note", 0.25),        # VARCHAR(64)
    (14, 8, "counter", 0.0),          # BIGINT UNSIGNED
)

_CITIES = ("California.SanFrancisco", "California.LosAngeles", "Beijing.Chaoyang", "Shanghai.Pudong",
           "Berlin.Mitte", "Paris.11e", "Tokyo.Shibuya", "Sao Paulo.Centro")
_LABELS = ("电表-北京", "Zähler-München", "compteur-Lyon", "метр-Москва", "meter-Austin", "メーター東京",
           "sensor-01", "φ-sensor")


def column_pattern(ncols: int) -> list[tuple[int, int, str, float]]:
    """(type, schema bytes, name, NULL rate) of each column; column 0 is the timestamp."""
    cols = [(9, 8, "ts", 0.0)]
    for i in range(1, ncols):
        t, nbytes, stem, null_rate = _PATTERN[(i - 1) % len(_PATTERN)]
        cols.append((t, nbytes, f"{stem}_{i}", null_rate))
    return cols


def _values(rng: random.Random, t: int, rows: int, null_rate: float, ts0: int) -> list:
    if t == 9:
        return [ts0 + 1000 * r for r in range(rows)]
    if t == 4:
        vals = [rng.randrange(-20_000, 20_000) for _ in range(rows)]
    elif t == 7:
        vals = [round(rng.uniform(200.0, 240.0), 3) for _ in range(rows)]
    elif t == 6:
        vals = [round(rng.uniform(-1.0, 1.0), 4) for _ in range(rows)]
    elif t == 5:
        vals = [rng.randrange(0, 1 << 40) for _ in range(rows)]
    elif t == 1:
        vals = [rng.random() < 0.9 for _ in range(rows)]
    elif t == 8:
        vals = [f"{rng.choice(_CITIES)}#{rng.randrange(1000)}" for _ in range(rows)]
    elif t == 3:
        vals = [rng.randrange(-400, 1200) for _ in range(rows)]
    elif t == 10:
        vals = [rng.choice(_LABELS)[: rng.randrange(4, 16)] for _ in range(rows)]
    elif t == 2:
        vals = [rng.randrange(-128, 128) for _ in range(rows)]
    elif t == 13:
        vals = [rng.randrange(0, 1 << 32) for _ in range(rows)]
    elif t == 14:
        vals = [rng.randrange(0, 1 << 64) for _ in range(rows)]
    else:
        raise ValueError(f"no generator for type {t}")
    if null_rate:
        vals = [None if rng.random() < null_rate else v for v in vals]
    return vals


@dataclass(frozen=True)
class BenchMessage:
    rows: int
    cols: int
    data: bytes                     # one message, as tmq_get_raw returns it
    group: tuple[bytes, ...]        # MERGE_COUNT messages of this size, consecutive WAL versions

    @property
    def label(self) -> str:
        return f"rows={self.rows} cols={self.cols}"

    @property
    def nbytes(self) -> int:
        return len(self.data)


@cache
def _columns(rows: int, ncols: int) -> tuple[list, list]:
    rng = random.Random(f"{SEED}/{rows}/{ncols}")
    pattern = column_pattern(ncols)
    columns = [(t, nbytes, _values(rng, t, rows, null_rate, BASE_TS)) for t, nbytes, _, null_rate in pattern]
    schema = [(t, 1, nbytes, i + 1, name) for i, (t, nbytes, name, _) in enumerate(pattern)]
    return columns, schema


def _block(rows: int, ncols: int, index: int) -> tuple[bytes, list]:
    """Block ``index`` of a size: the same values, timestamps moved on by ``index * rows`` seconds."""
    columns, schema = _columns(rows, ncols)
    ts0 = BASE_TS + index * rows * 1000
    columns = [(9, 8, [ts0 + 1000 * r for r in range(rows)])] + columns[1:]
    return encode_block(columns), schema


@cache
def message(rows: int, ncols: int) -> BenchMessage:
    """The cached benchmark message(s) of one size."""
    group = []
    for i in range(MERGE_COUNT):
        raw, schema = _block(rows, ncols, i)
        version = BASE_VERSION + i
        built = build_data_message([(raw, schema, f"d_{ncols}c_{i:04d}")], version, version + 1,
                                   precision=0, sleep_time=0)
        group.append(built.encode())
    return BenchMessage(rows, ncols, group[0], tuple(group))


def all_messages() -> list[BenchMessage]:
    return [message(rows, cols) for rows, cols in SIZES]


def golden_dir() -> Path | None:
    """The golden set (``TDSYNC_TESTDATA`` or ../shared/testdata/tdengine-3.3.7), or None."""
    configured = os.environ.get("TDSYNC_TESTDATA")
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(__file__).resolve().parent.parent.parent / "shared" / "testdata" / "tdengine-3.3.7")
    for path in candidates:
        if (path / "README.md").is_file():
            return path
    return None


GOLDEN_1ROW = "012_std_ms_t2_all_insert_1row"   # a real 1-row, 19-column raw_type 2 message


def golden_data_messages() -> list[tuple[str, int, bytes, dict]]:
    """(name, raw_type, bytes, metadata) of every golden raw_type 2/4 message; empty without the set."""
    root = golden_dir()
    if root is None:
        return []
    out = []
    for meta_path in sorted(root.glob("[0-9]*.json")):
        meta = json.loads(meta_path.read_text())
        if meta.get("kind") == "tmq_raw" and meta.get("raw_type") in (2, 4):
            out.append((meta_path.stem, meta["raw_type"], meta_path.with_suffix(".bin").read_bytes(), meta))
    return out


@dataclass(frozen=True)
class Op:
    """One measured operation on a message size: a ``timeit`` statement and what it moves."""

    name: str
    stmt: str
    nbytes: int        # bytes handled per call (MB/s is computed from it)
    rows: int          # rows handled per call


def workload(rows: int, ncols: int) -> tuple[dict, list[Op]]:
    """The namespace and operations measured for one message size (shared by the report and tests)."""
    from bench import pure_python_decoder
    from engine.codec import RawDataMessage, merge_messages

    msg = message(rows, ncols)
    decoded = RawDataMessage.decode(msg.data)
    group = [RawDataMessage.decode(data) for data in msg.group]
    merged_size = len(merge_messages(group).encode())
    ns = {
        "data": msg.data,
        "group": msg.group,
        "decoded": decoded,
        "decoded_group": group,
        "copy": memoryview(msg.data).tobytes,         # one allocation + one memcpy of the message
        "join": b"".join,                             # one allocation + a memcpy of each of the 4 inputs
        "decode": RawDataMessage.decode,
        "merge": merge_messages,
        "py_decode": pure_python_decoder.decode,
        "py_decode_rows": pure_python_decoder.decode_rows,
    }
    joined = sum(len(d) for d in msg.group)
    ops = [
        Op("copy", "copy()", msg.nbytes, rows),
        Op("decode (Cython)", "decode(data)", msg.nbytes, rows),
        Op("decode (pure Python)", "py_decode(data)", msg.nbytes, rows),
        Op("encode", "decoded.encode()", msg.nbytes, rows),
        Op(f"copy x{MERGE_COUNT} (join)", "join(group)", joined, MERGE_COUNT * rows),
        Op(f"merge x{MERGE_COUNT}+encode", "merge(decoded_group).encode()", merged_size, MERGE_COUNT * rows),
        Op("values (Cython)", "[b.rows() for b in decode(data).blocks]", msg.nbytes, rows),
        Op("values (pure Python)", "py_decode_rows(data)", msg.nbytes, rows),
    ]
    return ns, ops
