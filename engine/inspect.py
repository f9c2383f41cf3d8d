"""``tdsync inspect``: show what a raw TMQ message or raw block file holds.

This is what an operator runs when a task stops on a message it could not write: tdsync saves
such a message as ``NAME.bin`` with a ``NAME.json`` beside it (the golden set's layout), and
the JSON tells what the bytes are.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from engine.codec import (
    PRECISIONS,
    RAW_TYPE_NAMES,
    MetaMessage,
    RawBlock,
    RawDataMessage,
    SubmitDataMessage,
    block_to_json,
    decode_message,
    json_value,
)
from engine.errors import CodecError, InputFileError

RAW_BLOCK = "raw_block"


def identify(path: Path, raw_type: int | None, raw_block: bool) -> tuple[str | int, dict]:
    """What the file holds: ``RAW_BLOCK`` or a raw_type, and its sidecar metadata (or {})."""
    sidecar: dict = {}
    side_path = path.with_suffix(".json")
    if side_path.is_file() and side_path != path:
        try:
            sidecar = json.loads(side_path.read_text())
        except (OSError, ValueError) as exc:
            raise InputFileError(f"{side_path}: not readable JSON ({exc})") from None
    if raw_block:
        return RAW_BLOCK, sidecar
    if raw_type is not None:
        return raw_type, sidecar
    if sidecar.get("kind") == RAW_BLOCK:
        return RAW_BLOCK, sidecar
    if isinstance(sidecar.get("raw_type"), int):
        return sidecar["raw_type"], sidecar
    raise InputFileError(
        f"{path}: the bytes alone do not say what they are; pass --raw-type N (2, 4, 6, 515...) "
        f"or --raw-block, or put {side_path.name} with a \"raw_type\" beside it"
    )


def decode_file(path: Path, raw_type: int | None = None, raw_block: bool = False):
    """Decode one file; returns (decoded object, kind, sidecar)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror})") from None
    kind, sidecar = identify(path, raw_type, raw_block)
    try:
        if kind == RAW_BLOCK:
            precision = {v: k for k, v in PRECISIONS.items()}.get(sidecar.get("precision"), -1)
            decoded = RawBlock.decode(data, precision=precision)
            fields = sidecar.get("fields")
            if fields and len(fields) == decoded.num_columns:
                decoded.set_column_names([f["name"] for f in fields])
        else:
            decoded = decode_message(kind, data)
    except CodecError as exc:
        raise CodecError(exc.field, exc.offset, f"{exc.reason} (in {path})") from None
    except ValueError as exc:
        raise InputFileError(f"{path}: {exc}") from None
    return decoded, kind, sidecar


def _offsets(message) -> dict[str, Any]:
    return {"request": list(message.req_offset), "response": list(message.rsp_offset)}


def to_json(decoded, kind) -> dict[str, Any]:
    """The full decoded content; ``blocks`` has the golden files' ``expected`` shape."""
    if isinstance(decoded, RawBlock):
        return {"kind": RAW_BLOCK, "blocks": [block_to_json(decoded)]}
    out: dict[str, Any] = {"raw_type": kind, "kind": RAW_TYPE_NAMES.get(kind, str(kind)),
                           "bytes": decoded.nbytes}
    if isinstance(decoded, RawDataMessage):
        out["offsets"] = _offsets(decoded)
        out["rows"] = decoded.num_rows
        out["blocks"] = [block_to_json(b) for b in decoded.blocks]
        if decoded.raw_type == 4:
            out["create_table_requests"] = len(decoded.create_table_requests)
    elif isinstance(decoded, SubmitDataMessage):
        out["offsets"] = _offsets(decoded)
        out["blocks"] = [{"table_name": name, "submit_bytes": size}
                         for name, size in zip(decoded.table_names, decoded.submit_lengths)]
    elif isinstance(decoded, MetaMessage):
        out.update(vgroup_id=decoded.vgroup_id, meta_kind=decoded.kind, table_type=decoded.table_type,
                   tables=[{"name": n, "type": t, "stable": s} for n, t, s in decoded.tables],
                   details=decoded.details)
    return out


_TIMESTAMP = 9
_UNITS_PER_SECOND = {0: 1_000, 1: 1_000_000, 2: 1_000_000_000}


def _format_timestamp(value: int, precision: int) -> str:
    """ISO 8601 UTC with the precision's digits, for people; JSON keeps the integer."""
    per_second = _UNITS_PER_SECOND.get(precision)
    if per_second is None:
        return str(value)
    seconds, fraction = divmod(value, per_second)
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return str(value)
    digits = len(str(per_second)) - 1
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:0{digits}d}Z"


def _format_row(row, codes, precision: int, width: int = 24) -> str:
    cells = []
    for value, code in zip(row, codes):
        if value is None:
            text = "NULL"
        elif code == _TIMESTAMP:
            text = _format_timestamp(value, precision)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(json_value(value, code))
        cells.append(text if len(text) <= width or code == _TIMESTAMP else text[: width - 1] + "…")
    return " | ".join(cells)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def print_text(path: Path, decoded, kind, out: TextIO, max_rows: int) -> None:
    name = "raw block" if kind == RAW_BLOCK else f"raw_type {kind} {RAW_TYPE_NAMES.get(kind, '')}".rstrip()
    print(f"{path}: {name}, {decoded.nbytes} bytes", file=out)
    blocks = []
    if isinstance(decoded, RawBlock):
        blocks = [decoded]
    elif isinstance(decoded, (RawDataMessage, SubmitDataMessage)):
        req, rsp = decoded.req_offset, decoded.rsp_offset
        print(f"  offsets: {req.kind} {req.version} -> {rsp.kind} {rsp.version}", file=out)
        if isinstance(decoded, SubmitDataMessage):
            print(f"  {_plural(decoded.num_blocks, 'submit')} (rawdata mode: rows need the tables' schemas)",
                  file=out)
            for table, size in zip(decoded.table_names, decoded.submit_lengths):
                print(f"    {table}: {size} bytes", file=out)
            return
        blocks = decoded.blocks
        extra = ""
        if decoded.raw_type == 4:
            extra = f", creates {len(decoded.create_table_requests)} tables"
        print(f"  {_plural(len(blocks), 'block')}, {_plural(decoded.num_rows, 'row')}{extra}", file=out)
    elif isinstance(decoded, MetaMessage):
        what = f"{decoded.kind} {decoded.table_type}" if decoded.table_type else decoded.kind
        print(f"  {what} on vgroup {decoded.vgroup_id}", file=out)
        for table, table_type, stable in decoded.tables:
            using = f" using {stable}" if stable else ""
            print(f"    {table}{f' ({table_type})' if table_type else ''}{using}", file=out)
        for key, value in decoded.details.items():
            print(f"    {key}: {value}", file=out)
        return
    for index, block in enumerate(blocks, 1):
        precision = PRECISIONS.get(block.precision, "unknown")
        table = block.table_name or "(no table name)"
        print(f"  block {index}: {table}, {_plural(block.num_rows, 'row')}, "
              f"{_plural(block.num_columns, 'column')}, precision {precision}", file=out)
        columns = block.columns
        schema = ", ".join(f"{c.name} {c.type_name}" + (f"({c.bytes})" if c.is_variable else "")
                           for c in columns)
        print(f"    schema: {schema}", file=out)
        codes = [c.type_code for c in columns]
        shown = block.rows()[:max_rows]
        for row in shown:
            print(f"    {_format_row(row, codes, block.precision)}", file=out)
        if block.num_rows > len(shown):
            print(f"    … {block.num_rows - len(shown)} more rows", file=out)
