"""SQL execution for the sandbox: one ``Session`` per connection, statements from ``sql.parse``.

Queries run over rows as dicts (``column name -> value``, plus ``tbname`` and tags), which keeps
one pipeline for tables, super tables and the ``information_schema`` views: filter, group,
aggregate, order, limit. The sandbox is a test peer; per-row Python here is fine.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine import error_codes as codes
from engine.codec import encode_block
from engine.error_codes import error
from engine.errors import TDengineError
from engine.sandbox import sql as ast
from engine.sandbox import wal_meta
from engine.sandbox.catalog import (
    BIGINT,
    DECIMAL,
    DECIMAL64,
    DOUBLE,
    FLOAT,
    INT,
    JSON,
    PRECISION_CODES,
    PRECISION_NAMES,
    TBNAME_LENGTH,
    TIMESTAMP,
    UBIGINT,
    UINT,
    USMALLINT,
    UTINYINT,
    VARCHAR,
    ColumnDef,
    SuperTable,
    Table,
)
from engine.sandbox.engine import TableWrite
from engine.sandbox.values import (
    UNITS_PER_SECOND,
    duration_in_precision,
    from_storage,
    parse_timestamp_text,
    to_column_value,
)

if TYPE_CHECKING:
    from engine.sandbox.engine import SandboxEngine

INFORMATION_SCHEMA = "information_schema"
PERFORMANCE_SCHEMA = "performance_schema"
MAX_BLOCK_ROWS = 4096
MAX_SQL_LENGTH = 1024 * 1024          # libtaos refuses longer statements (TSDB_MAX_ALLOWED_SQL_LEN)
MAX_RESULT_COLUMNS = 4096             # TSDB_MAX_COLUMNS
AGGREGATES = frozenset({"count", "sum", "avg", "min", "max", "first", "last", "last_row", "spread"})
UNSIGNED = frozenset({UTINYINT, USMALLINT, UINT, UBIGINT})
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass
class Field:
    """A result column as ``taos_fetch_fields`` describes it (``bytes``: the user-visible width)."""

    name: str
    type: int
    bytes: int
    precision: int = 0
    scale: int = 0

    @property
    def encoded_bytes(self) -> int:
        if self.type == VARCHAR and self.bytes == TBNAME_LENGTH:
            return TBNAME_LENGTH + 2
        return ColumnDef(self.name, self.type, self.bytes, precision=self.precision, scale=self.scale).encoded_bytes


def field_of(column: ColumnDef, name: str | None = None) -> Field:
    return Field(name or column.name, column.type, column.length, column.precision, column.scale)


@dataclass
class Result:
    fields: list[Field]
    rows: list[tuple]
    affected_rows: int = 0
    is_update: bool = False
    precision: int = 0

    def blocks(self, max_rows: int = MAX_BLOCK_ROWS) -> list[bytes]:
        """The rows as raw blocks in the query form (version 1, little-endian lengths)."""
        out = []
        for start in range(0, len(self.rows), max_rows):
            chunk = self.rows[start:start + max_rows]
            columns = [(f.type, f.encoded_bytes, [row[i] for row in chunk]) for i, f in enumerate(self.fields)]
            out.append(encode_block(columns, version=1))
        return out


def update_result(affected: int = 0) -> Result:
    return Result([], [], affected, True)


class Session:
    """One client connection: its current database and the statements it runs."""

    def __init__(self, engine: SandboxEngine) -> None:
        self.engine = engine
        self.current_db: str | None = None

    def use(self, db: str) -> None:
        if db not in (INFORMATION_SCHEMA, PERFORMANCE_SCHEMA):
            self.engine.database(db)
        self.current_db = db

    def execute(self, sql: str) -> Result:
        if len(sql) > MAX_SQL_LENGTH:
            raise error(codes.TSC_EXCEED_SQL_LIMIT, "SQL statement too long")
        try:
            sql.encode("utf-8")
        except UnicodeEncodeError:
            sql = sql.encode("utf-8", "replace").decode("utf-8")   # as Go's JSON reader: U+FFFD
        try:
            statement = ast.parse(sql)
        except ast.SqlError as exc:
            raise TDengineError(exc.code, exc.message) from None
        handler = getattr(self, f"_run_{type(statement).__name__}", None)
        if handler is None:
            raise error(codes.OPS_NOT_SUPPORT, f"Operation not supported: {type(statement).__name__}")
        return handler(statement)

    def write_raw(self, raw_type: int, data: bytes) -> None:
        self.engine.write_raw(self._db(None), raw_type, data)

    def write_raw_block(self, table: str, block: bytes, fields: list[str] | None = None) -> None:
        self.engine.write_raw_block(self._db(None), table, block, fields)

    # -- helpers -----------------------------------------------------------------------------
    def _db(self, name: str | None) -> str:
        db = name if name is not None else self.current_db
        if db is None:
            raise error(codes.PAR_DB_NOT_SPECIFIED, "Database not specified")
        return db

    def _precision(self, db: str) -> int:
        database = self.engine.databases.get(db)
        return database.precision if database else 0

    def _literal(self, expr: ast.Expr, precision: int) -> Any:
        """A constant expression: literals, NOW/TODAY with duration arithmetic."""
        if isinstance(expr, ast.IntLit | ast.FloatLit | ast.StringLit | ast.BoolLit):
            return expr.value
        if isinstance(expr, ast.NullLit):
            return None
        if isinstance(expr, ast.TimestampLit):
            return parse_timestamp_text(expr.value, precision)
        if isinstance(expr, ast.FuncCall) and expr.name in ("now", "today"):
            per_second = UNITS_PER_SECOND[precision]
            current = time.time_ns() // (1_000_000_000 // per_second)
            if expr.name == "today":                       # local midnight, as TDengine computes it
                day = 86_400 * per_second
                offset = -time.timezone * per_second
                current = (current + offset) // day * day - offset
            return current
        if isinstance(expr, ast.DurationLit):
            return duration_in_precision(expr.value, expr.unit, precision)
        if isinstance(expr, ast.UnaryOp) and expr.op == "-":
            value = self._literal(expr.operand, precision)
            return -value
        if isinstance(expr, ast.BinaryOp) and expr.op in ("+", "-"):
            left = self._literal(expr.left, precision)
            right = self._literal(expr.right, precision)
            if isinstance(left, str):
                left = parse_timestamp_text(left, precision)
            return left + right if expr.op == "+" else left - right
        raise error(codes.PAR_WRONG_VALUE_TYPE,
                    codes.parser_message(codes.PAR_WRONG_VALUE_TYPE, type(expr).__name__))

    def _value_for(self, expr: ast.Expr, column: ColumnDef, precision: int) -> Any:
        """A literal for a column: decimals keep the digits as written (a float would round them)."""
        if column.type in (DECIMAL, DECIMAL64) and isinstance(expr, ast.FloatLit | ast.IntLit):
            return Decimal(expr.text) if expr.text and not expr.text.lower().startswith(("0x", "0b")) else expr.value
        return self._literal(expr, precision)

    # -- databases ---------------------------------------------------------------------------
    def _run_CreateDatabase(self, s: ast.CreateDatabase) -> Result:
        precision = s.precision or "ms"
        if precision not in PRECISION_CODES:
            raise error(codes.PAR_INVALID_DB_OPTION, f"Invalid option precision: {precision}")
        options = {k: list(v) if isinstance(v, tuple) else v for k, v in s.options.items()
                   if k not in ("vgroups", "precision")}
        options.setdefault("wal_retention_period", 3600)
        options.setdefault("wal_retention_size", -1)
        self.engine.create_database(s.name, s.vgroups or 2, PRECISION_CODES[precision], options, s.if_not_exists)
        return update_result()

    def _run_DropDatabase(self, s: ast.DropDatabase) -> Result:
        self.engine.drop_database(s.name, s.if_exists)
        if self.current_db == s.name:
            self.current_db = None
        return update_result()

    def _run_UseDatabase(self, s: ast.UseDatabase) -> Result:
        self.use(s.name)
        return update_result()

    # -- tables ------------------------------------------------------------------------------
    def _columns(self, defs: tuple[ast.ColumnDef, ...]) -> list[ColumnDef]:
        return [ColumnDef(d.name, d.type.code, d.type.length, 0, d.type.precision, d.type.scale, dict(d.options))
                for d in defs]

    def _run_CreateStable(self, s: ast.CreateStable) -> Result:
        db, name = s.table.qualified(self.current_db)
        if not s.tags:
            raise error(codes.PAR_INVALID_TAGS_NUM)
        if len(s.tags) > 1 and any(t.type.code == JSON for t in s.tags):
            raise error(codes.PAR_ONLY_ONE_JSON_TAG, "Only one tag if there is a json tag")
        self.engine.create_stable(self._db(db), name, self._columns(s.columns), self._columns(s.tags),
                                  s.if_not_exists)
        return update_result()

    def _run_CreateTable(self, s: ast.CreateTable) -> Result:
        db, name = s.table.qualified(self.current_db)
        self.engine.create_tables(self._db(db), [(name, None, [], self._columns(s.columns))], s.if_not_exists)
        return update_result()

    def _tag_values(self, stable: SuperTable, names: tuple[str, ...] | None, values: tuple[ast.Expr, ...],
                    precision: int) -> list[Any]:
        targets = stable.tags if names is None else [self._tag(stable, n) for n in names]
        if len(values) != len(targets):
            raise error(codes.PAR_TAGS_NOT_MATCHED)
        given = {t.name: to_column_value(self._value_for(v, t, precision), t, precision)
                 for t, v in zip(targets, values)}
        return [given.get(t.name) for t in stable.tags]

    def _tag(self, stable: SuperTable, name: str) -> ColumnDef:
        tag = stable.tag(name)
        if tag is None:
            raise error(codes.PAR_INVALID_TAG_NAME, codes.parser_message(codes.PAR_INVALID_TAG_NAME, name))
        return tag

    def _run_CreateChildTables(self, s: ast.CreateChildTables) -> Result:
        by_db: dict[str, list] = defaultdict(list)
        flags: dict[str, bool] = {}
        for child in s.tables:
            db, name = child.table.qualified(self.current_db)
            db = self._db(db)
            stable_db, stable_name = child.stable.qualified(db)
            stable = self.engine.stable(stable_db, stable_name)
            tags = self._tag_values(stable, child.tag_names, child.tag_values, self._precision(db))
            by_db[db].append((name, stable_name, tags, []))
            flags[db] = flags.get(db, True) and child.if_not_exists
        for db, specs in by_db.items():
            self.engine.create_tables(db, specs, flags[db])
        return update_result()

    def _run_AlterTable(self, s: ast.AlterTable) -> Result:
        db, name = s.table.qualified(self.current_db)
        db = self._db(db)
        action = s.action
        precision = self._precision(db)
        if (db, name) in self.engine.stables:
            column = None
            if isinstance(action, ast.AddColumn):
                kind, column = "add_column", self._columns((action.column,))[0]
            elif isinstance(action, ast.AddTag):
                kind, column = "add_tag", ColumnDef(action.name, action.type.code, action.type.length)
            elif isinstance(action, ast.DropColumn):
                kind, column = "drop_column", ColumnDef(action.name, 0)
            elif isinstance(action, ast.DropTag):
                kind, column = "drop_tag", ColumnDef(action.name, 0)
            elif isinstance(action, ast.ModifyColumn) and action.type is not None:
                kind, column = "modify_column", ColumnDef(action.name, action.type.code, action.type.length)
            elif isinstance(action, ast.ModifyTag):
                kind, column = "modify_tag", ColumnDef(action.name, action.type.code, action.type.length)
            if column is None:
                raise error(codes.OPS_NOT_SUPPORT, f"Operation not supported: ALTER STABLE {type(action).__name__}")
            self.engine.alter_stable(db, name, kind, column)
            return update_result()
        table = self.engine.table(db, name)
        if isinstance(action, ast.SetTags) and table.stable is not None:
            stable = self.engine.stables[(db, table.stable)]
            for tag_name, value in action.values:
                tag = self._tag(stable, tag_name)
                self.engine.set_tag(db, name, tag_name, to_column_value(self._literal(value, precision), tag,
                                                                        precision))
            return update_result()
        if isinstance(action, ast.AddColumn) and table.stable is None:
            self.engine.add_column(db, name, self._columns((action.column,))[0])
            return update_result()
        raise error(codes.PAR_INVALID_ALTER_TABLE)

    def _run_DropTable(self, s: ast.DropTable) -> Result:
        for target in s.tables:
            db, name = target.table.qualified(self.current_db)
            db = self._db(db)
            if (db, name) in self.engine.stables:
                self.engine.drop_stable(db, name, target.if_exists)
            else:
                self.engine.drop_tables(db, [name], target.if_exists)
        return update_result()

    def _run_DropStable(self, s: ast.DropStable) -> Result:
        db, name = s.table.qualified(self.current_db)
        self.engine.drop_stable(self._db(db), name, s.if_exists)
        return update_result()

    # -- writes ------------------------------------------------------------------------------
    def _run_Insert(self, s: ast.Insert) -> Result:
        writes: dict[str, list[TableWrite]] = defaultdict(list)
        new_tables: dict[str, list[Table]] = defaultdict(list)
        pending: dict[tuple[str, str], Table] = {}
        with self.engine.storage.write() as txn:   # ids for auto-created tables
            for target in s.targets:
                db, name = target.table.qualified(self.current_db)
                db = self._db(db)
                database = self.engine.database(db)
                precision = database.precision
                table = self.engine.tables.get((db, name)) or pending.get((db, name))
                created = None
                if table is None and target.using is not None:
                    stable_db, stable_name = target.using.qualified(db)
                    stable = self.engine.stable(stable_db, stable_name)
                    tags = self._tag_values(stable, target.tag_names, target.tag_values, precision)
                    table = self.engine.new_child(txn, database, name, stable, tags)
                    pending[(db, name)] = table
                    new_tables[db].append(table)
                    created = wal_meta.encode_create_request(self.engine, table)
                if table is None:
                    if (db, name) in self.engine.stables:
                        raise error(codes.PAR_INVALID_TBNAME, "Invalid tbname: insert into a super table "
                                    "needs tbname in the column list")
                    self.engine.table(db, name)   # raises "Table does not exist"
                columns = self.engine.columns_of(table)
                writes[db].append(self._table_write(table, columns, target, precision, created))
        affected = 0
        for db, table_writes in writes.items():
            affected += self.engine.write(db, table_writes, new_tables=new_tables.get(db, []))
        for db, tables in new_tables.items():
            for table in tables:
                if (db, table.name) not in self.engine.tables:   # a target without rows still creates it
                    self.engine.tables[(db, table.name)] = table
        return update_result(affected)

    def _table_write(self, table: Table, columns: list[ColumnDef], target: ast.InsertTarget, precision: int,
                     created: bytes | None) -> TableWrite:
        if target.columns is None:
            chosen = columns
        else:
            by_name = {c.name: c for c in columns}
            chosen_set = []
            for name in target.columns:
                column = by_name.get(name)
                if column is None:
                    raise error(codes.PAR_INVALID_COLUMN, codes.parser_message(codes.PAR_INVALID_COLUMN, name))
                chosen_set.append(column)
            if columns[0] not in chosen_set:
                raise error(codes.PAR_INVALID_FIRST_COLUMN, "Primary timestamp column should not be null")
            order = [target.columns.index(c.name) for c in columns if c in chosen_set]
            chosen = [c for c in columns if c in chosen_set]
        rows: dict[int, list[Any]] = {}
        for values in target.rows:
            if len(values) != len(chosen):
                raise error(codes.PAR_INVALID_COLUMNS_NUM, "Illegal number of columns")
            if target.columns is not None:
                values = tuple(values[i] for i in order)
            row = [to_column_value(self._value_for(v, c, precision), c, precision) for v, c in zip(values, chosen)]
            if row[0] is None:
                raise error(codes.PAR_PRIMARY_KEY_IS_NULL, "Primary timestamp column should not be null")
            rows[row[0]] = row                       # same timestamp twice: the last one wins
        return TableWrite(table, chosen, [rows[ts] for ts in sorted(rows)], created)

    def _run_Delete(self, s: ast.Delete) -> Result:
        db, name = s.table.qualified(self.current_db)
        db = self._db(db)
        precision = self._precision(db)
        ts_name = self._ts_name(db, name)
        lo, hi = self._ts_bounds(s.where, ts_name, precision, strict=True)
        return update_result(self.engine.delete(db, name, lo, hi))

    def _ts_name(self, db: str, name: str) -> str:
        stable = self.engine.stables.get((db, name))
        if stable is not None:
            return stable.columns[0].name
        return self.engine.columns_of(self.engine.table(db, name))[0].name

    def _ts_bounds(self, where: ast.Expr | None, ts_name: str, precision: int,
                   strict: bool = False) -> tuple[int | None, int | None]:
        """The inclusive timestamp range a condition implies (used to scan, and by DELETE)."""
        lo: int | None = None
        hi: int | None = None
        for term in ast.split_and(where):
            bounds = self._ts_term(term, ts_name, precision)
            if bounds is None:
                if strict:
                    raise error(codes.PAR_INVALID_DELETE_WHERE,
                                "The DELETE statement must only have a definite time window range")
                continue
            low, high = bounds
            if low is not None:
                lo = low if lo is None else max(lo, low)
            if high is not None:
                hi = high if hi is None else min(hi, high)
        return lo, hi

    def _ts_term(self, term: ast.Expr, ts_name: str, precision: int) -> tuple[int | None, int | None] | None:
        def is_ts(e: ast.Expr) -> bool:
            return isinstance(e, ast.Column) and e.name == ts_name

        def value(e: ast.Expr) -> int:
            v = self._literal(e, precision)
            v = parse_timestamp_text(v, precision) if isinstance(v, str) else int(v)
            if not INT64_MIN <= v <= INT64_MAX:
                raise error(codes.TSC_VALUE_OUT_OF_RANGE, "Timestamp out of range")
            return v

        try:
            if isinstance(term, ast.Between) and is_ts(term.expr) and not term.negated:
                return value(term.low), value(term.high)
            if isinstance(term, ast.Compare):
                op, left, right = term.op, term.left, term.right
                if is_ts(right) and not is_ts(left):
                    op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
                    left, right = right, left
                if is_ts(left):
                    v = value(right)
                    return {">=": (v, None), ">": (v + 1, None), "<=": (None, v), "<": (None, v - 1),
                            "=": (v, v)}.get(op)
        except TDengineError:
            return None
        return None

    # -- topics ------------------------------------------------------------------------------
    def _run_CreateTopic(self, s: ast.CreateTopic) -> Result:
        if s.kind != "database":
            raise error(codes.OPS_NOT_SUPPORT, "Operation not supported: only topics AS DATABASE are supported")
        self.engine.create_topic(s.name, s.database, s.with_meta, s.if_not_exists)
        return update_result()

    def _run_DropTopic(self, s: ast.DropTopic) -> Result:
        tmq = getattr(self.engine, "tmq", None)
        if tmq is not None and s.name in self.engine.topics:
            tmq.check_drop_topic(s.name, s.force)
        self.engine.drop_topic(s.name, s.if_exists)
        return update_result()

    def _run_DropConsumerGroup(self, s: ast.DropConsumerGroup) -> Result:
        tmq = getattr(self.engine, "tmq", None)
        if tmq is None:
            raise error(codes.MND_SUBSCRIBE_NOT_EXIST)
        tmq.drop_consumer_group(s.group, s.topic, s.if_exists, s.force)
        return update_result()

    # -- queries -----------------------------------------------------------------------------
    def _run_Select(self, s: ast.Select) -> Result:
        if s.table is None:
            return self._select_constants(s)
        db, name = s.table.qualified(self.current_db)
        db = self._db(db)
        precision = self._precision(db)
        fields, rows = self._source(db, name, s, precision)
        return self._query(s, fields, rows, precision)

    def _select_constants(self, s: ast.Select) -> Result:
        if len(s.items) > MAX_RESULT_COLUMNS:
            raise error(codes.PAR_INVALID_COLUMNS_NUM, "Too many columns in the result")
        fields, values = [], []
        for item in s.items:
            expr = item.expr
            if isinstance(expr, ast.FuncCall) and expr.name == "server_version":
                value, f = self.engine.server_version, Field(item.name, VARCHAR, 32)
            elif isinstance(expr, ast.FuncCall) and expr.name == "database":
                value, f = self.current_db, Field(item.name, VARCHAR, 64)
            elif isinstance(expr, ast.FuncCall) and expr.name == "client_version":
                value, f = self.engine.server_version, Field(item.name, VARCHAR, 32)
            elif isinstance(expr, ast.FuncCall) and expr.name == "server_status":
                value, f = 1, Field(item.name, INT, 4)
            elif isinstance(expr, ast.FuncCall) and expr.name in ("now", "today"):
                value, f = self._literal(expr, 0), Field(item.name, TIMESTAMP, 8)
            else:
                value = self._literal(expr, 0)
                f = _field_for_value(item.name, value)
            fields.append(f)
            values.append(value)
        return Result(fields, [tuple(values)])

    def _source(self, db: str, name: str, s: ast.Select, precision: int):
        """Field definitions and an iterable of row dicts for the FROM clause."""
        if db == INFORMATION_SCHEMA:
            return self._information_schema(name)
        if db == PERFORMANCE_SCHEMA:
            raise error(codes.PAR_TABLE_NOT_EXIST, codes.parser_message(codes.PAR_TABLE_NOT_EXIST, name))
        self.engine.database(db)
        stable = self.engine.stables.get((db, name))
        if stable is not None:
            tables = self.engine.children_of(db, name)
            tables = self._prune_by_tbname(tables, s.where, precision)
            fields = {c.name: c for c in stable.columns + stable.tags}
            star = stable.columns + stable.tags
        else:
            table = self.engine.table(db, name)
            tables = [table]
            columns = self.engine.columns_of(table)
            tag_defs = self.engine.stables[(db, table.stable)].tags if table.stable else []
            fields = {c.name: c for c in columns + tag_defs}
            star = columns
        ts_name = star[0].name
        lo, hi = self._ts_bounds(s.where, ts_name, precision)
        return (fields, star), self._scan(db, tables, lo, hi)

    def _prune_by_tbname(self, tables: list[Table], where: ast.Expr | None, precision: int) -> list[Table]:
        for term in ast.split_and(where):
            if isinstance(term, ast.InList) and isinstance(term.expr, ast.PseudoColumn) and \
                    term.expr.name == "tbname" and not term.negated:
                wanted = {self._literal(i, precision) for i in term.items}
                tables = [t for t in tables if t.name in wanted]
            elif isinstance(term, ast.Compare) and term.op == "=" and isinstance(term.left, ast.PseudoColumn) \
                    and term.left.name == "tbname":
                wanted = {self._literal(term.right, precision)}
                tables = [t for t in tables if t.name in wanted]
        return tables

    def _scan(self, db: str, tables: list[Table], lo: int | None, hi: int | None):
        storage = self.engine.storage
        with storage.read() as txn:
            out = []
            for table in sorted(tables, key=lambda t: t.name):
                columns = self.engine.columns_of(table)
                ids = [(c.col_id, c.name, c) for c in columns]
                base: dict[str, Any] = {"tbname": table.name}
                if table.stable is not None:
                    stable = self.engine.stables[(db, table.stable)]
                    for tag, value in zip(stable.tags, table.tags):
                        base[tag.name] = value
                for _ts, stored in storage.scan_rows(txn, db, table.name, lo, hi):
                    row = dict(base)
                    for col_id, name, column in ids:
                        row[name] = from_storage(stored.get(col_id), column)
                    out.append(row)
        return out

    def _information_schema(self, name: str):
        views = {"ins_vgroups": self._view_vgroups, "ins_databases": self._view_databases,
                 "ins_topics": self._view_topics, "ins_stables": self._view_stables,
                 "ins_tables": self._view_tables, "ins_consumers": self._view_consumers,
                 "ins_subscriptions": self._view_subscriptions}
        view = views.get(name)
        if view is None:
            raise error(codes.PAR_TABLE_NOT_EXIST, codes.parser_message(codes.PAR_TABLE_NOT_EXIST, name))
        result = view(None)
        columns = [ColumnDef(f.name, f.type, f.bytes, precision=f.precision, scale=f.scale) for f in result.fields]
        rows = [dict(zip((f.name for f in result.fields), row)) for row in result.rows]
        return ({c.name: c for c in columns}, columns), rows

    def _query(self, s: ast.Select, source: tuple[dict[str, ColumnDef], list[ColumnDef]], rows: list[dict],
               precision: int) -> Result:
        defs, star = source
        context = _Context(self, defs, precision)
        if s.where is not None:
            rows = [r for r in rows if context.truthy(s.where, r)]
        items = _expand_star(s.items, star)
        if len(items) > MAX_RESULT_COLUMNS:
            raise error(codes.PAR_INVALID_COLUMNS_NUM, "Too many columns in the result")
        group_keys = [p.expr for p in s.partition_by] + list(s.group_by)
        aggregate = bool(group_keys) or any(_has_aggregate(item.expr) for item in items)
        fields = [context.field(item) for item in items]
        if aggregate:
            groups: dict[tuple, list[dict]] = defaultdict(list)
            for row in rows:
                groups[tuple(context.value(k, row) for k in group_keys)].append(row)
            if not groups and not group_keys:
                groups[()] = []
            output = []
            for members in groups.values():
                members.sort(key=lambda r: r[star[0].name] if star else 0)
                output.append((tuple(context.aggregate(item.expr, members) for item in items),
                               members[-1] if members else {}))
        else:
            output = [(tuple(context.value(item.expr, row) for item in items), row) for row in rows]
        if s.order_by:
            names = [item.name for item in items]
            for order in reversed(s.order_by):
                key = _order_key(order.expr, names, context)
                output.sort(key=lambda pair, key=key: _sortable(key(pair)), reverse=order.desc)
        elif not aggregate and star and star[0].type == TIMESTAMP and len({r.get("tbname") for _, r in output}) <= 1:
            pass   # a single table is already in timestamp order
        start = s.offset or 0
        end = None if s.limit is None else start + s.limit
        values = [row for row, _ in output[start:end]]
        return Result(fields, values, precision=precision)

    # -- SHOW and DESCRIBE -------------------------------------------------------------------
    def _run_Show(self, s: ast.Show) -> Result:
        views = {"databases": self._view_databases, "vgroups": self._view_vgroups, "topics": self._view_topics,
                 "stables": self._view_stables, "tables": self._view_tables, "consumers": self._view_consumers,
                 "subscriptions": self._view_subscriptions}
        view = views.get(s.what)
        if view is None:
            raise error(codes.OPS_NOT_SUPPORT, f"Operation not supported: SHOW {s.what.upper()}")
        if s.what in ("vgroups", "stables", "tables"):
            result = view(self._db(s.db))
        else:
            result = view(None)
        if s.like:
            pattern = _like_pattern(s.like)
            result.rows = [r for r in result.rows if pattern.match(str(r[0]))]
        return result

    def _view_databases(self, _db) -> Result:
        fields = [Field("name", VARCHAR, 64), Field("create_time", TIMESTAMP, 8), Field("vgroups", INT, 4),
                  Field("ntables", BIGINT, 8), Field("replica", 2, 1), Field("precision", VARCHAR, 2),
                  Field("status", VARCHAR, 10), Field("keep", VARCHAR, 32),
                  Field("wal_retention_period", INT, 4), Field("wal_retention_size", BIGINT, 8)]
        rows = [(INFORMATION_SCHEMA, None, None, 0, None, None, "ready", None, None, None),
                (PERFORMANCE_SCHEMA, None, None, 0, None, None, "ready", None, None, None)]
        for db in self.engine.databases.values():
            ntables = sum(1 for (d, _) in self.engine.tables if d == db.name)
            keep = db.options.get("keep")
            rows.append((db.name, db.created_ms, len(db.vgroups), ntables, 1, PRECISION_NAMES[db.precision],
                         "ready", ",".join(map(str, keep)) if isinstance(keep, list) else keep,
                         db.wal_retention_period, db.wal_retention_size))
        return Result(fields, rows)

    def _view_vgroups(self, db_name: str | None) -> Result:
        fields = [Field("vgroup_id", INT, 4), Field("db_name", VARCHAR, 64), Field("tables", INT, 4),
                  Field("v1_dnode", 3, 2), Field("v1_status", VARCHAR, 9), Field("cacheload", INT, 4),
                  Field("tsma", 2, 1)]
        rows = []
        for db in self.engine.databases.values():
            if db_name is not None and db.name != db_name:
                continue
            for vgid in db.vgroups:
                count = sum(1 for (d, _), t in self.engine.tables.items() if d == db.name and t.vgroup == vgid)
                rows.append((vgid, db.name, count, 1, "leader", 0, 0))
        if db_name is not None:
            self.engine.database(db_name)
        return Result(fields, rows)

    def _view_topics(self, _db) -> Result:
        fields = [Field("topic_name", VARCHAR, 192), Field("db_name", VARCHAR, 64), Field("create_time", TIMESTAMP, 8),
                  Field("sql", VARCHAR, 1024), Field("schema", VARCHAR, 1024), Field("meta", VARCHAR, 4),
                  Field("type", VARCHAR, 8)]
        rows = [(t.name, t.db, t.created_ms, f"create topic {t.name} {'with meta ' if t.with_meta else ''}"
                 f"as database {t.db}", None, "yes" if t.with_meta else "no", "db")
                for t in self.engine.topics.values()]
        return Result(fields, rows)

    def _view_stables(self, db_name: str | None) -> Result:
        fields = [Field("stable_name", VARCHAR, 192), Field("db_name", VARCHAR, 64), Field("create_time", TIMESTAMP, 8),
                  Field("columns", INT, 4), Field("tags", INT, 4), Field("last_update", TIMESTAMP, 8),
                  Field("table_comment", VARCHAR, 1024)]
        rows = [(st.name, st.db, st.created_ms, len(st.columns), len(st.tags), st.created_ms, None)
                for (d, _), st in self.engine.stables.items() if db_name is None or d == db_name]
        return Result(fields, rows)

    def _view_tables(self, db_name: str | None) -> Result:
        fields = [Field("table_name", VARCHAR, 192), Field("db_name", VARCHAR, 64), Field("create_time", TIMESTAMP, 8),
                  Field("columns", INT, 4), Field("stable_name", VARCHAR, 192), Field("uid", BIGINT, 8),
                  Field("vgroup_id", INT, 4), Field("ttl", INT, 4), Field("table_comment", VARCHAR, 1024),
                  Field("type", VARCHAR, 21)]
        rows = []
        for (d, _), t in self.engine.tables.items():
            if db_name is not None and d != db_name:
                continue
            rows.append((t.name, d, t.created_ms, len(self.engine.columns_of(t)), t.stable, t.uid, t.vgroup, 0, None,
                         "CHILD_TABLE" if t.stable else "NORMAL_TABLE"))
        return Result(fields, rows)

    def _view_consumers(self, _db) -> Result:
        from engine.sandbox.tmq import CONSUMER_COLUMNS

        return Result([Field(*column) for column in CONSUMER_COLUMNS],
                      [tuple(r) for r in _safe_rows(getattr(self.engine, "tmq", None), "consumers")])

    def _view_subscriptions(self, _db) -> Result:
        from engine.sandbox.tmq import SUBSCRIPTION_COLUMNS

        return Result([Field(*column) for column in SUBSCRIPTION_COLUMNS],
                      [tuple(r) for r in _safe_rows(getattr(self.engine, "tmq", None), "subscriptions")])

    def _run_Describe(self, s: ast.Describe) -> Result:
        db, name = s.table.qualified(self.current_db)
        db = self._db(db)
        stable = self.engine.stables.get((db, name))
        if stable is not None:
            columns, tags = stable.columns, stable.tags
        else:
            table = self.engine.table(db, name)
            columns = self.engine.columns_of(table)
            tags = self.engine.stables[(db, table.stable)].tags if table.stable else []
        fields = [Field("field", VARCHAR, 64), Field("type", VARCHAR, 32), Field("length", INT, 4),
                  Field("note", VARCHAR, 16)]
        rows = [(c.name, _type_text(c), c.length, "") for c in columns]
        rows += [(t.name, _type_text(t), t.length, "TAG") for t in tags]
        return Result(fields, rows)

    def _run_ShowCreateDatabase(self, s: ast.ShowCreateDatabase) -> Result:
        db = self.engine.database(s.name)
        text = (f"CREATE DATABASE `{db.name}` VGROUPS {len(db.vgroups)} PRECISION "
                f"'{PRECISION_NAMES[db.precision]}' WAL_RETENTION_PERIOD {db.wal_retention_period} "
                f"WAL_RETENTION_SIZE {db.wal_retention_size}")
        return Result([Field("Database", VARCHAR, 64), Field("Create Database", VARCHAR, 1024)], [(db.name, text)])

    def _run_ShowCreateTable(self, s: ast.ShowCreateTable) -> Result:
        db, name = s.table.qualified(self.current_db)
        db = self._db(db)
        stable = self.engine.stables.get((db, name))
        if stable is not None:
            text = (f"CREATE STABLE `{name}` ({', '.join(_column_sql(c) for c in stable.columns)}) "
                    f"TAGS ({', '.join(_column_sql(t) for t in stable.tags)})")
        else:
            table = self.engine.table(db, name)
            if table.stable:
                parent = self.engine.stables[(db, table.stable)]
                values = ", ".join(_value_sql(v) for v in table.tags)
                text = (f"CREATE TABLE `{name}` USING `{table.stable}` "
                        f"({', '.join(f'`{t.name}`' for t in parent.tags)}) TAGS ({values})")
            else:
                text = f"CREATE TABLE `{name}` ({', '.join(_column_sql(c) for c in table.columns)})"
        return Result([Field("Table", VARCHAR, 192), Field("Create Table", VARCHAR, 4096)], [(name, text)])


def _safe_rows(tmq, method: str) -> list:
    if tmq is None or not hasattr(tmq, method):
        return []
    return list(getattr(tmq, method)())


def _type_text(c: ColumnDef) -> str:
    from engine.codec import TYPE_NAMES

    name = TYPE_NAMES[c.type]
    if c.type in (DECIMAL, DECIMAL64):
        return f"DECIMAL({c.precision}, {c.scale})"
    if c.type in (8, 10, 16, 20):
        return f"{name}({c.length})"
    return name


def _column_sql(c: ColumnDef) -> str:
    return f"`{c.name}` {_type_text(c)}"


def _value_sql(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"'\\x{value.hex()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _like_pattern(pattern: str):
    import re

    out = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile(out + r"\Z", re.IGNORECASE)


def _field_for_value(name: str, value: Any) -> Field:
    if isinstance(value, str) and len(value.encode()) > 65_533:
        raise error(codes.PAR_VALUE_TOO_LONG, codes.parser_message(codes.PAR_VALUE_TOO_LONG, name))
    if isinstance(value, bool):
        return Field(name, 1, 1)
    if isinstance(value, int):
        return Field(name, BIGINT, 8)
    if isinstance(value, float):
        return Field(name, DOUBLE, 8)
    if value is None:
        return Field(name, VARCHAR, 0)
    return Field(name, VARCHAR, max(1, len(str(value).encode())))


def _expand_star(items: tuple[ast.SelectItem, ...], star: list[ColumnDef]) -> list[ast.SelectItem]:
    out = []
    for item in items:
        expr = item.expr
        if isinstance(expr, ast.Star):
            out.extend(ast.SelectItem(ast.Column(c.name), None, c.name) for c in star)
        elif isinstance(expr, ast.FuncCall) and expr.args and isinstance(expr.args[0], ast.Star) \
                and expr.name in ("last_row", "last", "first"):
            out.extend(ast.SelectItem(ast.FuncCall(expr.name, (ast.Column(c.name),)), None,
                                      f"{expr.name}({c.name})") for c in star)
        else:
            out.append(item)
    return out


def _has_aggregate(expr: ast.Expr) -> bool:
    if isinstance(expr, ast.FuncCall):
        return expr.name in AGGREGATES or any(_has_aggregate(a) for a in expr.args)
    for attr in ("left", "right", "operand", "expr"):
        child = getattr(expr, attr, None)
        if isinstance(child, ast.Expr) and _has_aggregate(child):
            return True
    return False


def _sortable(value: Any) -> tuple:
    """Sort NULLs first (TDengine's ASC default), then by value."""
    if value is None:
        return (0, 0)
    if isinstance(value, float) and math.isnan(value):
        return (1, float("-inf"))
    return (1, value)


def _order_key(expr: ast.Expr, names: list[str], context: _Context):
    if isinstance(expr, ast.Column | ast.PseudoColumn) and expr.name in names:
        index = names.index(expr.name)
        return lambda pair: pair[0][index]
    if isinstance(expr, ast.IntLit) and 1 <= expr.value <= len(names):
        index = expr.value - 1
        return lambda pair: pair[0][index]
    return lambda pair: context.value(expr, pair[1]) if pair[1] else None


class _Context:
    """Evaluates expressions over row dicts for one query."""

    def __init__(self, session: Session, defs: dict[str, ColumnDef], precision: int) -> None:
        self.session = session
        self.defs = defs
        self.precision = precision

    def column(self, name: str) -> ColumnDef:
        column = self.defs.get(name)
        if column is None:
            raise error(codes.PAR_INVALID_COLUMN, codes.parser_message(codes.PAR_INVALID_COLUMN, name))
        return column

    def field(self, item: ast.SelectItem) -> Field:
        expr = item.expr
        name = item.name
        if isinstance(expr, ast.Column):
            return field_of(self.column(expr.name), name)
        if isinstance(expr, ast.PseudoColumn) and expr.name == "tbname":
            return Field(name, VARCHAR, TBNAME_LENGTH)
        if isinstance(expr, ast.FuncCall):
            fn = expr.name
            if fn == "count":
                return Field(name, BIGINT, 8)
            if fn in ("avg", "spread"):
                return Field(name, DOUBLE, 8)
            if fn == "sum":
                arg = self.field(ast.SelectItem(expr.args[0], None, ""))
                if arg.type in (FLOAT, DOUBLE):
                    return Field(name, DOUBLE, 8)
                if arg.type in (DECIMAL, DECIMAL64):
                    return Field(name, DECIMAL, 16, 38, arg.scale)
                return Field(name, UBIGINT if arg.type in UNSIGNED else BIGINT, 8)
            if fn in ("min", "max", "first", "last", "last_row") and expr.args:
                arg = self.field(ast.SelectItem(expr.args[0], None, ""))
                return Field(name, arg.type, arg.bytes, arg.precision, arg.scale)
            if fn in ("now", "today"):
                return Field(name, TIMESTAMP, 8)
        if isinstance(expr, ast.Compare | ast.And | ast.Or | ast.Not | ast.IsNull | ast.InList | ast.Between):
            return Field(name, 1, 1)
        if isinstance(expr, ast.BinaryOp):
            return Field(name, DOUBLE, 8)
        try:
            return _field_for_value(name, self.session._literal(expr, self.precision))
        except TDengineError:
            raise error(codes.OPS_NOT_SUPPORT, f"Operation not supported: {item.text or name}") from None

    def value(self, expr: ast.Expr, row: dict) -> Any:
        if isinstance(expr, ast.Column):
            if expr.name not in row:
                self.column(expr.name)
            return row.get(expr.name)
        if isinstance(expr, ast.PseudoColumn):
            if expr.name == "tbname":
                return row.get("tbname")
            raise error(codes.OPS_NOT_SUPPORT, f"Operation not supported: {expr.name}")
        if isinstance(expr, ast.Compare):
            left, right = self._coerced(expr.left, expr.right, row)
            if left is None or right is None:
                return None
            op = expr.op
            if op in ("=", "=="):
                return left == right
            if op in ("!=", "<>"):
                return left != right
            if op == "<":
                return left < right
            if op == "<=":
                return left <= right
            if op == ">":
                return left > right
            if op == ">=":
                return left >= right
            if op in ("like", "not like"):
                matched = bool(_like_pattern(str(right)).match(str(left)))
                return matched if op == "like" else not matched
            raise error(codes.OPS_NOT_SUPPORT, f"Operation not supported: operator {op}")
        if isinstance(expr, ast.Between):
            value, low = self._coerced(expr.expr, expr.low, row)
            _, high = self._coerced(expr.expr, expr.high, row)
            if value is None or low is None or high is None:
                return None
            inside = low <= value <= high
            return not inside if expr.negated else inside
        if isinstance(expr, ast.InList):
            value = self.value(expr.expr, row)
            items = [self._coerced(expr.expr, item, row)[1] for item in expr.items]
            inside = value in items
            return not inside if expr.negated else inside
        if isinstance(expr, ast.IsNull):
            is_null = self.value(expr.expr, row) is None
            return not is_null if expr.negated else is_null
        if isinstance(expr, ast.And):
            return all(self.truthy(a, row) for a in expr.args)
        if isinstance(expr, ast.Or):
            return any(self.truthy(a, row) for a in expr.args)
        if isinstance(expr, ast.Not):
            return not self.truthy(expr.arg, row)
        if isinstance(expr, ast.BinaryOp) and expr.op in ("+", "-", "*", "/", "%"):
            left, right = self.value(expr.left, row), self.value(expr.right, row)
            if left is None or right is None:
                return None
            try:
                left, right = float(left), float(right)
            except (TypeError, ValueError):
                raise error(codes.PAR_WRONG_VALUE_TYPE,
                            codes.parser_message(codes.PAR_WRONG_VALUE_TYPE, f"operator {expr.op}")) from None
            if expr.op == "+":
                return left + right
            if expr.op == "-":
                return left - right
            if expr.op == "*":
                return left * right
            if expr.op == "/":
                return left / right if right else None
            return math.fmod(left, right) if right else None
        return self.session._literal(expr, self.precision)

    def truthy(self, expr: ast.Expr, row: dict) -> bool:
        return bool(self.value(expr, row))

    def _coerced(self, left: ast.Expr, right: ast.Expr, row: dict) -> tuple[Any, Any]:
        """Compare a timestamp column with a string literal as TDengine does: as a timestamp."""
        a, b = self.value(left, row), self.value(right, row)
        ta = self.defs.get(left.name).type if isinstance(left, ast.Column) and left.name in self.defs else None
        tb = self.defs.get(right.name).type if isinstance(right, ast.Column) and right.name in self.defs else None
        if ta == TIMESTAMP and isinstance(b, str):
            b = parse_timestamp_text(b, self.precision)
        if tb == TIMESTAMP and isinstance(a, str):
            a = parse_timestamp_text(a, self.precision)
        if isinstance(a, Decimal) and isinstance(b, float):
            b = Decimal(str(b))
        if isinstance(b, Decimal) and isinstance(a, float):
            a = Decimal(str(a))
        if isinstance(a, bytes) and isinstance(b, str):
            b = b.encode()
        return a, b

    def aggregate(self, expr: ast.Expr, rows: list[dict]) -> Any:
        if isinstance(expr, ast.FuncCall) and expr.name in AGGREGATES:
            fn = expr.name
            arg = expr.args[0] if expr.args else None
            if fn == "count":
                if arg is None or isinstance(arg, ast.Star) or isinstance(arg, ast.IntLit):
                    return len(rows)
                return sum(1 for r in rows if self.value(arg, r) is not None)
            if fn == "last_row":
                return self.value(arg, rows[-1]) if rows else None
            values = [v for v in (self.value(arg, r) for r in rows) if v is not None]
            if fn == "first":
                return values[0] if values else None
            if fn == "last":
                return values[-1] if values else None
            if not values:
                return None
            if fn == "sum":
                return sum(values) if not any(isinstance(v, float) for v in values) else float(sum(values))
            if fn == "avg":
                return float(sum(values)) / len(values)
            if fn == "min":
                return min(values)
            if fn == "max":
                return max(values)
            if fn == "spread":
                return float(max(values) - min(values))
        if isinstance(expr, ast.Column | ast.PseudoColumn):
            return self.value(expr, rows[-1]) if rows else None
        return self.value(expr, rows[-1] if rows else {})
