"""The Python face of the Cython codec (``engine._codec``, built from ``ext/``).

Decoding happens in C over the input buffer; this module adds what an operator or a test
needs on top: dispatch by ``raw_type``, names of types and message kinds, and the JSON value
encoding of the golden test set (``tdsync inspect --json``).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from engine._codec import (
    TYPE_NAMES,
    Column,
    Offset,
    RawBlock,
    RawDataMessage,
    SubmitDataMessage,
    build_data_message,
    encode_block,
    merge_messages,
)
from engine._codec import (
    MetaMessage as MetaMessage,
)

__all__ = [
    "TYPE_NAMES", "Column", "Offset", "RawBlock", "RawDataMessage", "SubmitDataMessage", "MetaMessage",
    "build_data_message", "encode_block", "merge_messages", "decode_message", "RAW_TYPE_NAMES",
    "META_RAW_TYPES", "DATA_RAW_TYPES", "json_value", "block_to_json", "PRECISIONS",
]

DATA_RAW_TYPES = frozenset({2, 4})
META_RAW_TYPES = frozenset({515, 517, 519, 531, 533, 535, 579})

RAW_TYPE_NAMES = {
    2: "RES_TYPE__TMQ (data)",
    4: "RES_TYPE__TMQ_METADATA (data + create tables)",
    5: "RES_TYPE__TMQ_BATCH_META",
    6: "RES_TYPE__TMQ_RAWDATA (rawdata mode)",
    515: "TDMT_VND_CREATE_TABLE",
    517: "TDMT_VND_ALTER_TABLE",
    519: "TDMT_VND_DROP_TABLE",
    531: "TDMT_VND_CREATE_STB",
    533: "TDMT_VND_ALTER_STB",
    535: "TDMT_VND_DROP_STB",
    579: "TDMT_VND_DELETE",
}

PRECISIONS = {0: "ms", 1: "us", 2: "ns"}

# Type codes whose values are bytes shown as lowercase hex (varbinary, blob, mediumblob, geometry).
_HEX_TYPES = frozenset({16, 18, 19, 20})


def decode_message(raw_type: int, data: bytes) -> RawDataMessage | SubmitDataMessage | MetaMessage:
    """Decode what ``tmq_get_raw`` returned, by its ``raw_type``."""
    if raw_type in DATA_RAW_TYPES:
        return RawDataMessage.decode(data, raw_type)
    if raw_type == 6:
        return SubmitDataMessage.decode(data)
    if raw_type in META_RAW_TYPES:
        return MetaMessage.decode(data, raw_type)
    raise ValueError(f"unsupported raw_type {raw_type}; known: {sorted(RAW_TYPE_NAMES)}")


def json_value(value: Any, type_code: int) -> Any:
    """One value in the golden set's JSON encoding (see the test data README)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return "0" if value.is_zero() else format(value, "f")
    if isinstance(value, bytes):
        return value.hex()
    return value


def block_to_json(block: RawBlock) -> dict[str, Any]:
    """``{table_name, columns, rows}`` as in the golden files' ``expected.blocks``."""
    columns = []
    for column in block.columns:
        entry: dict[str, Any] = {
            "name": column.name,
            "type_code": column.type_code,
            "type_name": column.type_name,
            "bytes": column.bytes,
        }
        if column.precision is not None:
            entry["precision"] = column.precision
            entry["scale"] = column.scale
        entry["encoded_bytes"] = column.encoded_bytes
        columns.append(entry)
    codes = [c["type_code"] for c in columns]
    rows = [[json_value(v, t) for v, t in zip(row, codes)] for row in block.rows()]
    return {"table_name": block.table_name, "columns": columns, "rows": rows}
