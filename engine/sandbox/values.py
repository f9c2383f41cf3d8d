"""Turning SQL literals into typed column values, as TDengine checks and converts them."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from engine import error_codes as codes
from engine.error_codes import error
from engine.sandbox.catalog import (
    BIGINT,
    BLOB,
    BOOL,
    BYTES_TYPES,
    DECIMAL,
    DECIMAL64,
    DOUBLE,
    FLOAT,
    GEOMETRY,
    INT,
    JSON,
    MEDIUMBLOB,
    NCHAR,
    SMALLINT,
    TIMESTAMP,
    TINYINT,
    UBIGINT,
    UINT,
    USMALLINT,
    UTINYINT,
    VARBINARY,
    VARCHAR,
    ColumnDef,
)

INT_RANGES = {TINYINT: (-128, 127), SMALLINT: (-32768, 32767), INT: (-(1 << 31), (1 << 31) - 1),
              BIGINT: (-(1 << 63), (1 << 63) - 1), UTINYINT: (0, 255), USMALLINT: (0, 65535),
              UINT: (0, (1 << 32) - 1), UBIGINT: (0, (1 << 64) - 1)}
UNITS_PER_SECOND = {0: 1_000, 1: 1_000_000, 2: 1_000_000_000}
DURATION_UNITS_NS = {"b": 1, "u": 1_000, "a": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
                     "h": 3_600_000_000_000, "d": 86_400_000_000_000, "w": 604_800_000_000_000}

_TS_TEXT = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,9}))?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$")


def parse_timestamp_text(text: str, precision: int) -> int:
    """'2026-01-01 00:00:00.123' (local time unless it carries a zone) in the database precision."""
    match = _TS_TEXT.match(text)
    if not match:
        raise error(codes.PAR_INCORRECT_TIMESTAMP_VAL,
                    codes.parser_message(codes.PAR_INCORRECT_TIMESTAMP_VAL, text))
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    if zone:
        from datetime import timedelta, timezone

        if zone == "Z":
            tz = UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        moment = moment.replace(tzinfo=tz)
    else:
        moment = moment.astimezone()          # naive: the server's local time zone, as TDengine
    per_second = UNITS_PER_SECOND[precision]
    digits = len(str(per_second)) - 1
    sub = int((fraction or "0").ljust(9, "0")[:digits]) if fraction else 0
    return int(moment.timestamp()) * per_second + sub


def duration_in_precision(amount: int, unit: str, precision: int) -> int:
    nanos = amount * DURATION_UNITS_NS[unit]
    return nanos // (1_000_000_000 // UNITS_PER_SECOND[precision])


def to_column_value(value: Any, column: ColumnDef, precision: int) -> Any:
    """Check and convert one literal (int, float, str, bool, None) for a column or tag."""
    if value is None:
        return None
    t = column.type
    try:
        if t == TIMESTAMP:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, str):
                value = int(value) if value.lstrip("-").isdigit() else parse_timestamp_text(value, precision)
            value = int(value)
            if not -(1 << 63) <= value < (1 << 63):
                raise OverflowError
            return value
        if t == BOOL:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("true", "false"):
                    return lowered == "true"
                return float(lowered) != 0
            return bool(value)
        if t in INT_RANGES:
            if isinstance(value, str):
                value = float(value) if any(ch in value for ch in ".eE") else int(value, 0)
            if isinstance(value, float):
                if math.isnan(value) or math.isinf(value):
                    raise ValueError
                value = int(value)
            if isinstance(value, bool):
                value = int(value)
            low, high = INT_RANGES[t]
            if not low <= value <= high:
                raise OverflowError
            return value
        if t in (FLOAT, DOUBLE):
            result = float(value)
            if t == FLOAT and math.isfinite(result) and abs(result) > 3.4028234663852886e38:
                raise OverflowError
            return result
        if t in (DECIMAL, DECIMAL64):
            number = Decimal(str(value))
            quantized = number.quantize(Decimal(1).scaleb(-column.scale))
            if len(quantized.as_tuple().digits) > column.precision and quantized != 0:
                raise OverflowError
            return quantized
        if t in (VARCHAR, NCHAR, JSON):
            text = value if isinstance(value, str) else _literal_text(value)
            if t == JSON:
                return _json_tag(text)
            size = len(text) if t == NCHAR else len(text.encode())
            if size > column.length:
                raise error(codes.PAR_VALUE_TOO_LONG,
                            codes.parser_message(codes.PAR_VALUE_TOO_LONG, column.name))
            return text
        if t in BYTES_TYPES:
            raw = _bytes_literal(value, t)
            limit = column.length if t not in (BLOB, MEDIUMBLOB) else 4 * 1024 * 1024
            if len(raw) > limit:
                raise error(codes.PAR_VALUE_TOO_LONG,
                            codes.parser_message(codes.PAR_VALUE_TOO_LONG, column.name))
            return raw
    except (ValueError, TypeError, InvalidOperation):
        raise error(codes.PAR_WRONG_VALUE_TYPE,
                    codes.parser_message(codes.PAR_WRONG_VALUE_TYPE, f"{value!r} for column {column.name}")) from None
    except OverflowError:
        raise error(codes.TSC_VALUE_OUT_OF_RANGE) from None
    raise error(codes.PAR_WRONG_VALUE_TYPE, f"unsupported type {t}")


def _literal_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_tag(text: str) -> str | None:
    """A JSON tag must be an object; '{}' and 'null' are stored as NULL, as TDengine does."""
    stripped = text.strip()
    if stripped.lower() == "null" or stripped == "{}" or stripped == "":
        return None
    parsed = json.loads(stripped)
    if not isinstance(parsed, dict):
        raise ValueError("json tag must be an object")
    return json_tag_text(parsed)


def json_tag_text(obj: dict | None) -> str | None:
    """A JSON tag as TDengine returns it: keys sorted, numbers kept as doubles (3.0 prints as 3)."""
    if not obj:
        return None

    def value(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, int | float):
            number = float(v)
            return int(number) if number.is_integer() and abs(number) < 1e15 else number
        raise ValueError("a JSON tag value must be a string, number, bool or null")

    return json.dumps({k: value(v) for k, v in obj.items() if k}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def _bytes_literal(value: Any, type_code: int) -> bytes:
    if isinstance(value, bytes):
        return value
    text = str(value)
    if type_code == VARBINARY and text[:2] in ("\\x", "0x", "\\X", "0X"):
        return bytes.fromhex(text[2:])
    if type_code == GEOMETRY:
        return geometry_from_wkt(text)
    if type_code in (BLOB, MEDIUMBLOB) and text[:2] in ("\\x", "0x"):
        return bytes.fromhex(text[2:])
    return text.encode()


_WKT = re.compile(r"^\s*(POINT|LINESTRING|POLYGON)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)


def geometry_from_wkt(text: str) -> bytes:
    """Well-known text to little-endian WKB, for POINT, LINESTRING and POLYGON."""
    import struct

    match = _WKT.match(text)
    if not match:
        raise ValueError(f"not a geometry: {text}")
    kind, body = match.group(1).upper(), match.group(2)

    def points(chunk: str) -> list[tuple[float, float]]:
        out = []
        for pair in chunk.split(","):
            x, y = pair.split()
            out.append((float(x), float(y)))
        return out

    if kind == "POINT":
        (x, y), = points(body)
        return struct.pack("<BIdd", 1, 1, x, y)
    if kind == "LINESTRING":
        pts = points(body)
        return struct.pack("<BII", 1, 2, len(pts)) + b"".join(struct.pack("<dd", *p) for p in pts)
    rings = re.findall(r"\(([^()]*)\)", body)
    out = struct.pack("<BII", 1, 3, len(rings))
    for ring in rings:
        pts = points(ring)
        out += struct.pack("<I", len(pts)) + b"".join(struct.pack("<dd", *p) for p in pts)
    return out


def from_storage(value: Any, column: ColumnDef) -> Any:
    """Rows keep decimals as text; everything else as it was written."""
    if value is not None and column.type in (DECIMAL, DECIMAL64):
        return Decimal(value)
    return value


__all__ = ["to_column_value", "parse_timestamp_text", "duration_in_precision", "from_storage",
           "geometry_from_wkt", "MEDIUMBLOB"]
