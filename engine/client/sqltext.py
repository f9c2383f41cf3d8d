"""What the failover client needs to know about a SQL text, without parsing it.

* :func:`classify` — whether a statement returns rows (``SELECT``, ``SHOW``, ``DESCRIBE``,
  ``EXPLAIN``; run with the connector's ``query`` and fetched) or not (run with ``execute``,
  which gives the affected rows), and the database of a ``USE db`` (remembered, replayed on
  the next node).
* :func:`bind_parameters` — ``?`` placeholders (qmark, as taospy) filled with SQL literals, for
  :meth:`Cursor.execute(sql, params) <engine.client.connection.Cursor.execute>`.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import ClientUsageError

ROW_KEYWORDS = frozenset({"select", "show", "desc", "describe", "explain", "with"})
# leading blanks, comments and parentheses, then the first word
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/|\()*([A-Za-z_]+)", re.S)
_USE = re.compile(r"\s*use\s+(?:`([^`]+)`|([A-Za-z0-9_]+))\s*;?\s*\Z", re.I)

_cache: dict[str, tuple[bool, str | None]] = {}
_ROWS: tuple[bool, str | None] = (True, None)
_NO_ROWS: tuple[bool, str | None] = (False, None)
_CACHE_LIMIT = 4096


def classify(sql: str) -> tuple[bool, str | None]:
    """``(returns_rows, use_database)`` of one statement; cached for repeated texts."""
    head = sql[:7].lower()
    if head.startswith("insert"):           # the common cases, without the regex or the cache
        return _NO_ROWS
    if head.startswith("select"):
        return _ROWS
    hit = _cache.get(sql)
    if hit is not None:
        return hit
    match = _FIRST_WORD.match(sql)
    word = match.group(1).lower() if match else ""
    database = None
    if word == "use":
        use = _USE.match(sql)
        if use:
            database = use.group(1) or use.group(2)
    result = (word in ROW_KEYWORDS, database)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[sql] = result
    return result


# --- parameters ----------------------------------------------------------------------------------
def bind_parameters(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> str:
    """``sql`` with each ``?`` outside quotes replaced by the next parameter as a SQL literal."""
    if isinstance(params, Mapping) or isinstance(params, (str, bytes)):
        raise ClientUsageError("parameters are a sequence for the ? placeholders (paramstyle qmark), "
                               f"got {type(params).__name__}")
    values = list(params)
    out: list[str] = []
    used = 0
    quote: str | None = None
    i, n = 0, len(sql)
    start = 0
    while i < n:
        char = sql[i]
        if quote is not None:
            if char == "\\" and quote != "`":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
        elif char == "?":
            if used >= len(values):
                raise ClientUsageError(f"the statement has more ? placeholders than the {len(values)} parameters given")
            out.append(sql[start:i])
            out.append(literal(values[used]))
            used += 1
            start = i + 1
        i += 1
    if used != len(values):
        raise ClientUsageError(f"{len(values)} parameters given for {used} ? placeholders")
    out.append(sql[start:])
    return "".join(out)


def literal(value: Any) -> str:
    """A Python value as a TDengine SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ClientUsageError(f"{value!r} has no SQL literal")
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "'\\x" + bytes(value).hex() + "'"
    if isinstance(value, _dt.datetime):
        return _quote(value.isoformat(sep=" ", timespec="microseconds"))
    if isinstance(value, _dt.date):
        return _quote(value.isoformat())
    if isinstance(value, str):
        return _quote(value)
    raise ClientUsageError(f"cannot bind a {type(value).__name__} as a SQL literal")


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
