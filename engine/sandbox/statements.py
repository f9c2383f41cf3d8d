"""Prepared statements (taosAdapter ``stmt``) on a ``/ws`` connection.

taos-ws-py's ``conn.statement()`` (Rust ``taos_ws::Stmt``) opens a second ``/ws`` socket, logs in
with ``conn`` and then speaks these JSON actions: ``init`` -> ``stmt_id``, ``prepare`` (``sql``)
-> ``is_insert``, ``set_table_name`` (``name``), ``set_tags`` (``tags``: JSON values), ``add_batch``,
``exec`` -> ``affected``, ``close`` (no answer); plus binary frames ``req_id u64, stmt_id u64,
action u64`` followed by a raw block: action 1 ``set_tags`` (one row) and 2 ``bind`` (the rows, one
column per ``?`` of the VALUES list). Every answer carries ``stmt_id`` (the client routes on it),
errors included.

Only INSERT is supported: ``insert into t [(cols)] values (?, ...)``, ``insert into ? values (...)``
(table named by ``set_table_name``) and ``insert into ? using st [(tags)] tags (?, ...) values
(...)`` (child table auto-created with the tags of ``set_tags``). At ``exec`` the batches are turned
into a plain INSERT (placeholders replaced by literals) and run by the session, so the rows take the
ordinary write path (engine.write: WAL, TMQ). ``stmt2_*`` is not implemented here.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from engine import error_codes as codes
from engine.codec import RawBlock
from engine.error_codes import error
from engine.errors import CodecError, TDengineError
from engine.sandbox import sql as ast

ADAPTER_ERROR = 0xFFFF
TSC_STMT_API_ERROR, TSC_STMT_TBNAME_ERROR = 0x0225, 0x0226     # taoserror.h
BINARY_SET_TAGS, BINARY_BIND = 1, 2
JSON_ACTIONS = frozenset({"init", "prepare", "set_table_name", "set_tags", "add_batch", "exec", "close"})
log = logging.getLogger("tdsync.sandbox.statements")
TBNAME_SENTINEL = "__tdsync_stmt_tbname__"
_INTO_PLACEHOLDER = re.compile(r"(\binto\s+)\?", re.IGNORECASE)


class StmtError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _literal(value: Any) -> ast.Expr:
    """A bound Python value as the SQL literal the INSERT path understands."""
    if value is None:
        return ast.NullLit()
    if isinstance(value, bool):
        return ast.BoolLit(value)
    if isinstance(value, int):
        return ast.IntLit(value, str(value))
    if isinstance(value, float):
        return ast.FloatLit(value, repr(value))
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value)
        try:
            return ast.StringLit(value.decode("utf-8"))
        except UnicodeDecodeError:
            return ast.StringLit("\\x" + value.hex())
    if hasattr(value, "timestamp") and hasattr(value, "tzinfo"):   # datetime
        return ast.StringLit(value.isoformat())
    return ast.StringLit(str(value))


_VARIABLE_TYPES = frozenset({8, 10, 15, 16, 18, 19, 20})
_BLOCK_HEADER = 28


def _fix_schema(block: bytes) -> bytes:
    """The client declares 0 bytes for a variable column whose values are all NULL; the adapter
    accepts it, the raw block decoder does not: declare the length prefix alone."""
    if len(block) < _BLOCK_HEADER:
        return block
    cols = struct.unpack_from("<i", block, 12)[0]
    if cols <= 0 or len(block) < _BLOCK_HEADER + cols * 5:
        return block
    out = None
    for i in range(cols):
        pos = _BLOCK_HEADER + i * 5
        if block[pos] in _VARIABLE_TYPES and struct.unpack_from("<i", block, pos + 1)[0] <= 0:
            out = out if out is not None else bytearray(block)
            struct.pack_into("<i", out, pos + 1, 2)
    return bytes(out) if out is not None else block


def _internal(exc: BaseException) -> StmtError:
    log.exception("sandbox stmt internal error", exc_info=exc)
    return StmtError(codes.TSC_INTERNAL_ERROR, f"{codes.message_for(codes.TSC_INTERNAL_ERROR)}: {exc}")


@dataclass
class _Statement:
    stmt_id: int
    template: ast.InsertTarget | None = None
    db: str | None = None
    needs_name: bool = False
    table: str | None = None
    tags: list[Any] | None = None
    pending: list[tuple] = field(default_factory=list)          # bound, not yet added
    batches: list[tuple[str | None, tuple | None, list[tuple]]] = field(default_factory=list)

    @property
    def placeholders(self) -> int:
        assert self.template is not None
        return sum(isinstance(e, ast.Placeholder) for e in self.template.rows[0])

    @property
    def tag_placeholders(self) -> int:
        assert self.template is not None
        return sum(isinstance(e, ast.Placeholder) for e in self.template.tag_values)


class Statements:
    """The prepared statements of one ``/ws`` connection."""

    def __init__(self, send: Callable[[str | bytes], Awaitable[None]], session: Callable[[], Any]) -> None:
        self.send = send
        self._session = session
        self.stmts: dict[int, _Statement] = {}
        self._ids = itertools.count(1)

    # -- framing ---------------------------------------------------------------------------
    async def _answer(self, action: str, req_id: int, t0: int, code: int = 0, message: str = "",
                      **extra: Any) -> None:
        body = {"code": code & 0xFFFF, "message": message, "action": action, "req_id": req_id,
                "timing": max(0, time.perf_counter_ns() - t0)}
        body.update(extra)
        await self.send(_dumps(body))

    async def on_text(self, action: str, args: Any, t0: int) -> None:
        args = args if isinstance(args, dict) else {}
        raw_req_id = args.get("req_id")
        # u64 as the adapter reads it (a negative or oversized value is not echoed back as is)
        req_id = raw_req_id & 0xFFFF_FFFF_FFFF_FFFF if isinstance(raw_req_id, int) and not isinstance(
            raw_req_id, bool) and raw_req_id >= 0 else 0
        if action == "init":
            stmt_id = next(self._ids)
            self.stmts[stmt_id] = _Statement(stmt_id)
            await self._answer(action, req_id, t0, stmt_id=stmt_id)
            return
        raw_stmt_id = args.get("stmt_id")
        stmt_id = raw_stmt_id & 0xFFFF_FFFF_FFFF_FFFF if isinstance(raw_stmt_id, int) and raw_stmt_id >= 0 else 0
        stmt = self.stmts.get(stmt_id)
        if stmt is None:
            if action != "close":
                more = {"is_insert": False} if action == "prepare" else {}
                await self._answer(action, req_id, t0, ADAPTER_ERROR, "stmt is nil", stmt_id=stmt_id, **more)
            return
        try:
            try:
                extra = self._run(stmt, action, args)
            except (StmtError, TDengineError):
                raise
            except Exception as exc:  # noqa: BLE001 - the client waits for an answer in any case
                raise _internal(exc) from exc
        except (StmtError, TDengineError) as exc:
            # taos-ws cannot parse a prepare answer without is_insert (it would panic and hang)
            more = {"is_insert": False} if action == "prepare" else {}
            await self._answer(action, req_id, t0, exc.code, exc.message, stmt_id=stmt_id, **more)
            return
        if extra is not None:
            await self._answer(action, req_id, t0, stmt_id=stmt_id, **extra)

    async def on_binary(self, action: int, req_id: int, stmt_id: int, data: bytes, t0: int) -> None:
        name = "set_tags" if action == BINARY_SET_TAGS else "bind"
        stmt = self.stmts.get(stmt_id)
        if stmt is None:
            await self._answer(name, req_id, t0, ADAPTER_ERROR, "stmt is nil", stmt_id=stmt_id)
            return
        try:
            try:
                block = RawBlock.decode(_fix_schema(bytes(data[24:])))
            except CodecError as exc:
                raise StmtError(codes.INVALID_MSG, f"Invalid message: {exc}") from None
            if action == BINARY_SET_TAGS:
                rows = block.rows()
                if len(rows) != 1:
                    raise StmtError(ADAPTER_ERROR, "rows not equal 1")
                self._set_tags(stmt, list(rows[0]))
            else:
                self._bind(stmt, block)
        except (StmtError, TDengineError) as exc:
            await self._answer(name, req_id, t0, exc.code, exc.message, stmt_id=stmt_id)
            return
        except Exception as exc:  # noqa: BLE001 - the client waits for an answer in any case
            err = _internal(exc)
            await self._answer(name, req_id, t0, err.code, err.message, stmt_id=stmt_id)
            return
        await self._answer(name, req_id, t0, stmt_id=stmt_id)

    def close(self) -> None:
        self.stmts.clear()

    # -- actions ---------------------------------------------------------------------------
    def _run(self, stmt: _Statement, action: str, args: dict) -> dict | None:
        if action == "close":
            self.stmts.pop(stmt.stmt_id, None)
            return None
        if action == "prepare":
            return self._prepare(stmt, str(args.get("sql") or ""))
        if stmt.template is None:
            raise StmtError(TSC_STMT_API_ERROR, "Stmt API usage error: prepare first")
        if action == "set_table_name":
            self._set_table(stmt, str(args.get("name") or ""))
            return {}
        if action == "set_tags":
            tags = args.get("tags")
            if not isinstance(tags, list):
                raise StmtError(ADAPTER_ERROR, "stmt parse tag json:tags is not an array")
            self._set_tags(stmt, tags)
            return {}
        if action == "add_batch":
            if stmt.pending:
                stmt.batches.append((stmt.table, tuple(stmt.tags) if stmt.tags is not None else None,
                                     stmt.pending))
                stmt.pending = []
            return {}
        if action == "exec":
            return {"affected": self._exec(stmt)}
        raise StmtError(ADAPTER_ERROR, f"unknown action {action}")

    def _prepare(self, stmt: _Statement, sql: str) -> dict:
        text = _INTO_PLACEHOLDER.sub(lambda m: m.group(1) + TBNAME_SENTINEL, sql, count=1)
        try:
            parsed = ast.parse(text)
        except ast.SqlError as exc:
            raise StmtError(exc.code, exc.message) from None
        if not isinstance(parsed, ast.Insert):
            raise StmtError(codes.OPS_NOT_SUPPORT,
                            "Operation not supported: only INSERT can be prepared in the tdsync sandbox")
        if len(parsed.targets) != 1 or len(parsed.targets[0].rows) != 1:
            raise StmtError(codes.OPS_NOT_SUPPORT,
                            "Operation not supported: a prepared INSERT takes one table and one row of values")
        target = parsed.targets[0]
        session = self._session()
        db = target.table.db or session.current_db
        if db is None:
            raise error(codes.PAR_DB_NOT_SPECIFIED, "Database not specified")
        engine = session.engine
        engine.database(db)
        if target.using is not None:
            sdb, sname = target.using.qualified(db)
            engine.stable(sdb, sname)                     # raises when the super table is unknown
        stmt.template, stmt.db = target, db
        stmt.needs_name = target.table.name == TBNAME_SENTINEL
        stmt.table = None if stmt.needs_name else target.table.name
        stmt.tags = None if stmt.tag_placeholders else []
        stmt.pending, stmt.batches = [], []
        if stmt.table is not None and target.using is None:
            engine.table(db, stmt.table)                  # "Table does not exist"
        return {"is_insert": True}

    def _set_table(self, stmt: _Statement, name: str) -> None:
        assert stmt.template is not None
        if "." in name:
            db, _, name = name.partition(".")
            db, name = db.strip("`"), name.strip("`")
            if db != stmt.db:
                raise StmtError(codes.OPS_NOT_SUPPORT, "Operation not supported: table of another database")
        name = name.strip("`")
        if not name:
            raise StmtError(codes.PAR_INVALID_TBNAME, "Invalid tbname")
        if stmt.pending:                                # TDengine adds the rows bound so far
            stmt.batches.append((stmt.table, tuple(stmt.tags) if stmt.tags is not None else None, stmt.pending))
            stmt.pending = []
        engine = self._session().engine
        if stmt.template.using is None or (stmt.db, name) in engine.tables:
            engine.table(stmt.db, name)
        stmt.table = name
        if stmt.tag_placeholders:
            stmt.tags = None

    def _set_tags(self, stmt: _Statement, tags: list[Any]) -> None:
        if stmt.template is None:
            raise StmtError(TSC_STMT_API_ERROR, "Stmt API usage error: prepare first")
        if stmt.template.using is None:
            if tags:
                raise StmtError(ADAPTER_ERROR, "stmt tags count not match")
            return
        if len(tags) != stmt.tag_placeholders:
            raise StmtError(ADAPTER_ERROR, "stmt tags count not match")
        stmt.tags = list(tags)

    def _bind(self, stmt: _Statement, block: RawBlock) -> None:
        if stmt.template is None:
            raise StmtError(TSC_STMT_API_ERROR, "Stmt API usage error: prepare first")
        if stmt.table is None:
            raise StmtError(TSC_STMT_TBNAME_ERROR, "Stmt table name not set")
        if block.num_columns != stmt.placeholders:
            raise StmtError(ADAPTER_ERROR, "stmt column count not match")
        stmt.pending.extend(block.rows())

    def _exec(self, stmt: _Statement) -> int:
        assert stmt.template is not None
        batches = stmt.batches + ([(stmt.table, tuple(stmt.tags) if stmt.tags is not None else None, stmt.pending)]
                                  if stmt.pending else [])
        stmt.batches, stmt.pending = [], []
        targets = []
        template = stmt.template
        for table, tags, rows in batches:
            if template.using is not None and tags is None:
                raise StmtError(codes.PAR_TAGS_NOT_MATCHED, "Tags number not matched: tags not set")
            tag_iter = iter(tags or ())
            tag_values = tuple(_literal(next(tag_iter)) if isinstance(e, ast.Placeholder) else e
                               for e in template.tag_values)
            out_rows = []
            for row in rows:
                values = iter(row)
                out_rows.append(tuple(_literal(next(values)) if isinstance(e, ast.Placeholder) else e
                                      for e in template.rows[0]))
            targets.append(ast.InsertTarget(ast.TableName(stmt.db, table), template.columns, tuple(out_rows),
                                            template.using, template.tag_names, tag_values,
                                            dict(template.options)))
        if not targets:
            return 0
        result = self._session()._run_Insert(ast.Insert(tuple(targets)))
        return int(result.affected_rows or 0)
