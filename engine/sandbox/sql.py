"""Tokenizer and parser for the SQL the sandbox understands (the TDengine 3.3 dialect).

``parse(sql)`` turns ONE statement into an immutable AST (the frozen dataclasses below) or raises
:class:`SqlSyntaxError` / :class:`UnsupportedSql`. Nothing here executes anything or looks at a
catalog: names are resolved, types checked and values converted by the executor.

The rules follow TDengine 3.3.7 (its tokenizer, its lemon grammar and its INSERT parser):

* Identifiers are case-insensitive and come back lower-cased (the client lower-cases the SQL text
  outside quotes); back-quoted identifiers keep their case. Every TDengine keyword is reserved, so
  ``value``, ``state``, ``count``... must be back-quoted to be used as names (except in an INSERT's
  column list, which TDengine's INSERT parser reads without a keyword check).
* Strings: '...' or "..."; the escapes ``\\n \\r \\t \\f \\b \\\\ \\' \\"`` are decoded, ``\\%``,
  ``\\_`` and ``\\x`` keep their backslash, any other backslash is dropped and a doubled quote is one
  quote. :class:`StringLit` keeps the decoded ``value`` and the token as written (``raw``): TDengine
  converts VARBINARY/BLOB values from the raw token (``'\\x0102'`` is hex only when written so).
* Numbers: :class:`IntLit` (decimal, ``0x`` hex, ``0b`` binary; any size, e.g. 18446744073709551615),
  :class:`FloatLit` (keeps its text, for DECIMAL columns). A sign before a number is folded into it.
* Durations ``10s`` (units b u a s m h d w n y, ``m`` = minute, ``n`` = month) are
  :class:`DurationLit`. ``NOW``, ``NOW()``, ``TODAY()`` are ``FuncCall("now"/"today")``;
  ``NOW - 1h`` stays a ``BinaryOp`` the executor folds with the database precision. Timestamp
  strings such as '2026-01-01 00:00:00.000' stay :class:`StringLit`.
* ``--`` and ``/* */`` comments are skipped; parsing stops at the first ``;`` (as TDengine does).

Errors carry TDengine's code and message: grammar errors are ``syntax error near "<rest of the
SQL>"`` (0x2600), a statement that ends too early is ``Incomplete SQL statement`` (0x2601), and the
INSERT ... VALUES parser uses its own style, ``syntax error near '<63 chars>' (<what>)`` (0x0216).
Statements TDengine accepts but the sandbox does not model (users, streams, joins, windows...)
raise :class:`UnsupportedSql` (0x0100).

Conventions of the AST: sequences are tuples, option bags are dicts with lower-case keys, table
references are :class:`TableName` (``db`` None = the session's database), column/tag types are
:class:`DataType` tuples ``(code, length, precision, scale)`` with TDengine's type codes. Nodes
compare by value; ``pos`` fields (offset of the node in the SQL, for error messages) do not take
part in comparisons. :func:`to_sql` renders any node back to SQL that parses to an equal node.
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    # errors
    "SqlError", "SqlSyntaxError", "UnsupportedSql", "insert_syntax_error",
    "PAR_SYNTAX_ERROR", "PAR_INCOMPLETE_SQL", "TSC_SQL_SYNTAX_ERROR", "TSC_INVALID_OPERATION", "OPS_NOT_SUPPORT",
    # entry points and helpers
    "parse", "tokenize", "to_sql", "decode_string", "lower_outside_quotes", "split_and", "KEYWORDS",
    # types
    "DataType", "TYPE_NAMES", "TYPE_BOOL", "TYPE_TINYINT", "TYPE_SMALLINT", "TYPE_INT", "TYPE_BIGINT", "TYPE_FLOAT",
    "TYPE_DOUBLE", "TYPE_VARCHAR", "TYPE_TIMESTAMP", "TYPE_NCHAR", "TYPE_UTINYINT", "TYPE_USMALLINT", "TYPE_UINT",
    "TYPE_UBIGINT", "TYPE_JSON", "TYPE_VARBINARY", "TYPE_DECIMAL", "TYPE_BLOB", "TYPE_MEDIUMBLOB", "TYPE_GEOMETRY",
    "TYPE_DECIMAL64",
    # expressions
    "Node", "Expr", "IntLit", "FloatLit", "StringLit", "BoolLit", "NullLit", "DurationLit", "TimestampLit",
    "Placeholder", "Column", "PseudoColumn", "Star", "FuncCall", "Cast", "UnaryOp", "BinaryOp", "Compare", "Between",
    "InList", "IsNull", "And", "Or", "Not", "Case",
    # statements and their parts
    "Statement", "TableName", "ColumnDef", "CreateDatabase", "AlterDatabase", "DropDatabase", "UseDatabase",
    "Show", "ShowCreateDatabase", "ShowCreateTable", "Describe", "CreateStable", "CreateTable", "ChildTableDef",
    "CreateChildTables", "AlterTable", "AlterAction", "AddColumn", "DropColumn", "ModifyColumn", "RenameColumn",
    "AddTag", "DropTag", "ModifyTag", "RenameTag", "SetTags", "SetTableOptions", "DropTarget", "DropTable",
    "DropStable", "InsertTarget", "Insert", "Delete", "SelectItem", "OrderItem", "Select", "CreateTopic", "DropTopic",
    "DropConsumerGroup",
]

# ---------------------------------------------------------------------------------------------
# Error codes (low 16 bits, as the wire protocols carry them) and exceptions
# ---------------------------------------------------------------------------------------------

PAR_SYNTAX_ERROR = 0x2600        # TSDB_CODE_PAR_SYNTAX_ERROR: 'syntax error near "..."'
PAR_INCOMPLETE_SQL = 0x2601      # TSDB_CODE_PAR_INCOMPLETE_SQL: "Incomplete SQL statement"
TSC_SQL_SYNTAX_ERROR = 0x0216    # TSDB_CODE_TSC_SQL_SYNTAX_ERROR: INSERT parser's "syntax error near '...' (...)"
TSC_INVALID_OPERATION = 0x0200   # TSDB_CODE_TSC_INVALID_OPERATION: e.g. "no data in sql"
OPS_NOT_SUPPORT = 0x0100         # TSDB_CODE_OPS_NOT_SUPPORT: valid TDengine SQL the sandbox does not do

_MSG_BUF = 512                   # the client's error message buffer (ERROR_MSG_BUF_DEFAULT_SIZE)


class SqlError(Exception):
    """Base of the parser's errors: ``code`` (TDengine code, low 16 bits), ``message`` (the text a
    TDengine client would show) and ``position`` (character offset in the SQL, -1 if none)."""

    code = PAR_SYNTAX_ERROR

    def __init__(self, message: str, position: int = -1, code: int | None = None) -> None:
        if code is not None:
            self.code = code
        self.message = message
        self.position = position
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.message, self.position, self.code))


class SqlSyntaxError(SqlError):
    """The SQL is not valid TDengine SQL. ``code`` is 0x2600 (syntax error), 0x2601 (incomplete
    statement), 0x0216 (INSERT parser) or 0x0200 (``no data in sql``)."""

    code = PAR_SYNTAX_ERROR


class UnsupportedSql(SqlError):
    """Valid TDengine SQL the sandbox does not implement (code 0x0100, Operation not supported)."""

    code = OPS_NOT_SUPPORT

    def __init__(self, what: str, position: int = -1, code: int | None = None) -> None:
        msg = what if what.startswith("Operation not supported") else f"Operation not supported: {what}"
        super().__init__(msg, position, code)


_QUOTED_RE = re.compile(r"""'(?:[^'\\]|\\[\s\S])*'?|"(?:[^"\\]|\\[\s\S])*"?|`(?:[^`\\]|\\[\s\S])*`?""")


def lower_outside_quotes(text: str) -> str:
    """ASCII-lower-case ``text`` except inside quotes and back-quotes (what the TDengine client does
    to every SQL statement before parsing it; error messages quote that form)."""
    out = []
    last = 0
    for m in _QUOTED_RE.finditer(text):
        out.append(_ascii_lower(text[last:m.start()]))
        out.append(m.group())
        last = m.end()
    out.append(_ascii_lower(text[last:]))
    return "".join(out)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(s: str) -> str:
    return s.translate(_ASCII_LOWER)


def _clip_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _syntax_error(sql: str, pos: int, semi: int | None) -> SqlSyntaxError:
    """The grammar parser's error for a bad token at ``pos`` (``len(sql)`` = end of input)."""
    if pos >= len(sql) and semi is None:
        return SqlSyntaxError("Incomplete SQL statement", len(sql), PAR_INCOMPLETE_SQL)
    if pos >= len(sql):
        pos = semi
    rest = lower_outside_quotes(sql[pos:])
    return SqlSyntaxError(_clip_bytes(f'syntax error near "{rest}"', _MSG_BUF - 1), pos, PAR_SYNTAX_ERROR)


def insert_syntax_error(sql: str, pos: int | None, info: str | None) -> SqlSyntaxError:
    """An error in TDengine's INSERT parser style (code 0x0216): ``syntax error near '<up to 63
    bytes of the SQL from pos>' (<info>)``; ``pos`` None or at the end: ``syntax error near '<info>'``.
    The executor uses it for value errors, e.g. ``insert_syntax_error(sql, lit.pos, "invalid int data")``."""
    if pos is None or pos < 0 or pos >= len(sql):
        return SqlSyntaxError(f"syntax error near '{info}'", len(sql) if pos is None else pos, TSC_SQL_SYNTAX_ERROR)
    near = _clip_bytes(lower_outside_quotes(sql[pos:pos + 64]), 63)
    msg = f"syntax error near '{near}' ({info})" if info is not None else f"syntax error near '{near}'"
    return SqlSyntaxError(_clip_bytes(msg, _MSG_BUF - 1), pos, TSC_SQL_SYNTAX_ERROR)


# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------

TYPE_BOOL, TYPE_TINYINT, TYPE_SMALLINT, TYPE_INT, TYPE_BIGINT, TYPE_FLOAT, TYPE_DOUBLE = 1, 2, 3, 4, 5, 6, 7
TYPE_VARCHAR, TYPE_TIMESTAMP, TYPE_NCHAR = 8, 9, 10
TYPE_UTINYINT, TYPE_USMALLINT, TYPE_UINT, TYPE_UBIGINT = 11, 12, 13, 14
TYPE_JSON, TYPE_VARBINARY, TYPE_DECIMAL, TYPE_BLOB, TYPE_MEDIUMBLOB, TYPE_GEOMETRY, TYPE_DECIMAL64 = (
    15, 16, 17, 18, 19, 20, 21)

TYPE_NAMES = {
    TYPE_BOOL: "BOOL", TYPE_TINYINT: "TINYINT", TYPE_SMALLINT: "SMALLINT", TYPE_INT: "INT", TYPE_BIGINT: "BIGINT",
    TYPE_FLOAT: "FLOAT", TYPE_DOUBLE: "DOUBLE", TYPE_VARCHAR: "VARCHAR", TYPE_TIMESTAMP: "TIMESTAMP",
    TYPE_NCHAR: "NCHAR", TYPE_UTINYINT: "TINYINT UNSIGNED", TYPE_USMALLINT: "SMALLINT UNSIGNED",
    TYPE_UINT: "INT UNSIGNED", TYPE_UBIGINT: "BIGINT UNSIGNED", TYPE_JSON: "JSON", TYPE_VARBINARY: "VARBINARY",
    TYPE_DECIMAL: "DECIMAL", TYPE_BLOB: "BLOB", TYPE_MEDIUMBLOB: "MEDIUMBLOB", TYPE_GEOMETRY: "GEOMETRY",
    TYPE_DECIMAL64: "DECIMAL",
}

JSON_LENGTH = 4095                 # user-visible width of JSON (taos_fetch_fields; 16384 in a block header)
BLOB_LENGTH = 4 * 1024 * 1024      # TSDB_MAX_BLOB_LEN
_DEFAULT_VAR_LENGTH = 65517        # CAST(x AS VARCHAR) without a length (TSDB_MAX_BINARY_LEN - 2)

_FIXED_TYPES = {  # keyword -> (code, width, unsigned code)
    "BOOL": (TYPE_BOOL, 1, None), "TINYINT": (TYPE_TINYINT, 1, TYPE_UTINYINT),
    "SMALLINT": (TYPE_SMALLINT, 2, TYPE_USMALLINT), "INT": (TYPE_INT, 4, TYPE_UINT), "INTEGER": (TYPE_INT, 4, None),
    "BIGINT": (TYPE_BIGINT, 8, TYPE_UBIGINT), "FLOAT": (TYPE_FLOAT, 4, None), "DOUBLE": (TYPE_DOUBLE, 8, None),
    "TIMESTAMP": (TYPE_TIMESTAMP, 8, None), "JSON": (TYPE_JSON, JSON_LENGTH, None),
    "BLOB": (TYPE_BLOB, BLOB_LENGTH, None), "MEDIUMBLOB": (TYPE_MEDIUMBLOB, BLOB_LENGTH, None),
}
_VAR_TYPES = {"BINARY": TYPE_VARCHAR, "VARCHAR": TYPE_VARCHAR, "NCHAR": TYPE_NCHAR, "VARBINARY": TYPE_VARBINARY,
              "GEOMETRY": TYPE_GEOMETRY}
_TYPE_KEYWORDS = frozenset(_FIXED_TYPES) | frozenset(_VAR_TYPES) | {"DECIMAL"}


class DataType(NamedTuple):
    """A column/tag type: ``(code, length, precision, scale)``.

    ``code`` is TDengine's type code (bool 1 ... geometry 20, decimal64 21). ``length`` is the
    user-visible width: the declared n of VARCHAR/BINARY(n), NCHAR(n) (characters), VARBINARY(n),
    GEOMETRY(n); the byte width of fixed types (TIMESTAMP 8, INT 4, ...); 8 for DECIMAL(p<=18)
    (code 21) and 16 for DECIMAL(p>18) (code 17); 4095 for JSON; 4194304 for BLOB/MEDIUMBLOB.
    ``precision``/``scale`` are set for decimals only."""

    code: int
    length: int
    precision: int = 0
    scale: int = 0

    @property
    def name(self) -> str:
        """TDengine's name of the type (``VARCHAR``, ``INT UNSIGNED``, ``DECIMAL`` ...)."""
        return TYPE_NAMES.get(self.code, f"TYPE{self.code}")

    def sql(self) -> str:
        """The type as SQL text: ``VARCHAR(32)``, ``DECIMAL(12,3)``, ``BIGINT UNSIGNED``..."""
        if self.code in (TYPE_VARCHAR, TYPE_NCHAR, TYPE_VARBINARY, TYPE_GEOMETRY):
            return f"{self.name}({self.length})"
        if self.code in (TYPE_DECIMAL, TYPE_DECIMAL64):
            return f"DECIMAL({self.precision},{self.scale})"
        return self.name


def _decimal_type(precision: int, scale: int) -> DataType:
    if precision <= 18:
        return DataType(TYPE_DECIMAL64, 8, precision, scale)
    return DataType(TYPE_DECIMAL, 16, precision, scale)


# ---------------------------------------------------------------------------------------------
# AST: expressions
# ---------------------------------------------------------------------------------------------

_NODE = dict(frozen=True, slots=True)


def _pos() -> Any:
    return field(default=-1, compare=False, repr=False)


class Node:
    """Base of every AST node."""

    __slots__ = ()


class Expr(Node):
    """Base of expression nodes."""

    __slots__ = ()


@dataclass(**_NODE)
class IntLit(Expr):
    """An integer literal; ``text`` as written (sign folded in: ``-5``, ``0x1f``, ``0b101``)."""

    value: int
    text: str
    pos: int = _pos()


@dataclass(**_NODE)
class FloatLit(Expr):
    """A floating point literal; ``text`` as written (``1.5``, ``-2e10``), exact for DECIMAL columns."""

    value: float
    text: str
    pos: int = _pos()


@dataclass(**_NODE)
class StringLit(Expr):
    """A string literal: ``value`` decoded (escapes, doubled quotes), ``raw`` = the token with its quotes."""

    value: str
    raw: str = field(default="", compare=False, repr=False)
    pos: int = _pos()


@dataclass(**_NODE)
class BoolLit(Expr):
    value: bool
    pos: int = _pos()


@dataclass(**_NODE)
class NullLit(Expr):
    pos: int = _pos()


@dataclass(**_NODE)
class DurationLit(Expr):
    """``10s`` -> DurationLit(10, "s"). Units (lower-cased): b ns, u us, a ms, s, m minute, h, d, w,
    n month, y year."""

    value: int
    unit: str
    pos: int = _pos()

    @property
    def text(self) -> str:
        return f"{self.value}{self.unit}"


@dataclass(**_NODE)
class TimestampLit(Expr):
    """``TIMESTAMP '2026-01-01 00:00:00'``: the string is converted by the executor."""

    value: str
    pos: int = _pos()


@dataclass(**_NODE)
class Placeholder(Expr):
    """``?`` (prepared statements)."""

    pos: int = _pos()


@dataclass(**_NODE)
class Column(Expr):
    """A column or tag reference, ``name`` or ``table.name`` (``table`` is the table name or alias)."""

    name: str
    table: str | None = None
    pos: int = _pos()


@dataclass(**_NODE)
class PseudoColumn(Expr):
    """``tbname`` and the ``_xxx`` pseudo columns (``_rowts``, ``_wstart``, ``_qstart``...), lower-cased."""

    name: str
    table: str | None = None
    pos: int = _pos()


@dataclass(**_NODE)
class Star(Expr):
    """``*`` or ``t.*`` in a select list, and the ``*`` of COUNT(*)/FIRST(*)/LAST(*)/LAST_ROW(*)."""

    table: str | None = None
    pos: int = _pos()


@dataclass(**_NODE)
class FuncCall(Expr):
    """A function call, name lower-cased: ``count``, ``last_row``, ``sum``... Also ``now``/``today``
    (written with or without ``()``) and ``server_version``, ``database``, ``client_version``,
    ``server_status``, ``current_user``, ``user``, ``timezone``, ``pi`` (no arguments)."""

    name: str
    args: tuple[Expr, ...] = ()
    pos: int = _pos()


@dataclass(**_NODE)
class Cast(Expr):
    """``CAST(expr AS type)``."""

    expr: Expr
    type: DataType
    pos: int = _pos()


@dataclass(**_NODE)
class UnaryOp(Expr):
    """``-x`` / ``+x`` when x is not a number literal (those are folded into the literal)."""

    op: str
    operand: Expr
    pos: int = _pos()


@dataclass(**_NODE)
class BinaryOp(Expr):
    """Arithmetic ``+ - * / %``, bitwise ``& |`` and JSON ``->`` (``info->'site'``, right is a
    StringLit). Time arithmetic: ``now - 1h``, ``'2026-01-01' + 1d``, ``ts + 10s``."""

    op: str
    left: Expr
    right: Expr
    pos: int = _pos()


@dataclass(**_NODE)
class Compare(Expr):
    """``left op right`` with op one of ``= <> < > <= >= like, not like, match, nmatch, contains``
    (``==`` is ``=``, ``!=`` is ``<>``, ``regexp`` is ``match``, ``not regexp`` is ``nmatch``)."""

    op: str
    left: Expr
    right: Expr
    pos: int = _pos()


@dataclass(**_NODE)
class Between(Expr):
    """``expr [NOT] BETWEEN low AND high``."""

    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False
    pos: int = _pos()


@dataclass(**_NODE)
class InList(Expr):
    """``expr [NOT] IN (item, ...)``."""

    expr: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    pos: int = _pos()


@dataclass(**_NODE)
class IsNull(Expr):
    """``expr IS [NOT] NULL``."""

    expr: Expr
    negated: bool = False
    pos: int = _pos()


@dataclass(**_NODE)
class And(Expr):
    """``a AND b AND c`` (flattened, two or more operands)."""

    args: tuple[Expr, ...]
    pos: int = _pos()


@dataclass(**_NODE)
class Or(Expr):
    """``a OR b OR c`` (flattened, two or more operands)."""

    args: tuple[Expr, ...]
    pos: int = _pos()


@dataclass(**_NODE)
class Not(Expr):
    arg: Expr
    pos: int = _pos()


@dataclass(**_NODE)
class Case(Expr):
    """``CASE [operand] WHEN w THEN t ... [ELSE e] END``; ``whens`` = ((w, t), ...)."""

    operand: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    else_: Expr | None = None
    pos: int = _pos()


def split_and(expr: Expr | None) -> tuple[Expr, ...]:
    """The conjuncts of a condition (``a AND (b AND c)`` -> (a, b, c)); () for None."""
    if expr is None:
        return ()
    if isinstance(expr, And):
        out: list[Expr] = []
        for a in expr.args:
            out.extend(split_and(a))
        return tuple(out)
    return (expr,)


# ---------------------------------------------------------------------------------------------
# AST: statements
# ---------------------------------------------------------------------------------------------


class Statement(Node):
    """Base of statement nodes (what :func:`parse` returns)."""

    __slots__ = ()


@dataclass(**_NODE)
class TableName(Node):
    """``[db.]name``; ``db`` None means the session's current database."""

    db: str | None
    name: str

    def qualified(self, default_db: str | None) -> tuple[str | None, str]:
        return (self.db if self.db is not None else default_db, self.name)

    def __str__(self) -> str:
        return f"{self.db}.{self.name}" if self.db else self.name


@dataclass(**_NODE)
class ColumnDef(Node):
    """A column (or tag) definition. ``options``: lower-case keys ``encode``, ``compress``,
    ``level`` (column compression options), ``comment``; values as written (strings)."""

    name: str
    type: DataType
    primary_key: bool = False
    options: dict[str, str] = field(default_factory=dict)


@dataclass(**_NODE)
class CreateDatabase(Statement):
    """``CREATE DATABASE [IF NOT EXISTS] name [options]``. ``options``: lower-case option name ->
    int (``vgroups``, ``buffer``, ``wal_retention_period`` (may be -1), ``replica`` (REPLICAS too)...),
    str (``precision`` 'ms'|'us'|'ns', ``cachemodel``, durations such as ``duration`` '10d'), or a
    tuple for the list options (``keep`` (3650,) / ('100h', '10d'), ``retentions``,
    ``compact_time_range``). Only the options written are present."""

    name: str
    if_not_exists: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def vgroups(self) -> int | None:
        return self.options.get("vgroups")

    @property
    def precision(self) -> str | None:
        return self.options.get("precision")

    @property
    def wal_retention_period(self) -> int | None:
        return self.options.get("wal_retention_period")

    @property
    def wal_retention_size(self) -> int | None:
        return self.options.get("wal_retention_size")


@dataclass(**_NODE)
class AlterDatabase(Statement):
    """``ALTER DATABASE name option value ...`` (options as in CreateDatabase)."""

    name: str
    options: dict[str, Any]


@dataclass(**_NODE)
class DropDatabase(Statement):
    name: str
    if_exists: bool = False
    force: bool = False


@dataclass(**_NODE)
class UseDatabase(Statement):
    name: str


@dataclass(**_NODE)
class Show(Statement):
    """``SHOW ...`` forms without arguments. ``what`` is the lower-cased keyword(s): ``databases``,
    ``vgroups``, ``stables``, ``tables``, ``vtables``, ``topics``, ``consumers``, ``subscriptions``,
    ``dnodes``, ``mnodes``, ``qnodes``, ``snodes``, ``bnodes``, ``anodes``, ``users``, ``cluster``,
    ``variables``, ``local variables``, ``cluster variables``, ``streams``, ``views``, ``functions``,
    ``vnodes``, ``transactions``, ``connections``, ``queries``, ``apps``, ``grants``, ``licences``,
    ``compacts``, ``tsmas``, ``alive``, ``cluster alive``, ``disk_info``... (``users full``,
    ``grants logs``, ``user privileges`` keep their extra word).
    ``db``: ``SHOW db.VGROUPS``/``db.TABLES``/...; ``like``: ``LIKE 'pattern'`` (decoded);
    ``kind``: ``normal``/``child``/``virtual`` for tables, ``user``/``system`` for databases."""

    what: str
    db: str | None = None
    like: str | None = None
    kind: str | None = None


@dataclass(**_NODE)
class ShowCreateDatabase(Statement):
    name: str


@dataclass(**_NODE)
class ShowCreateTable(Statement):
    """``SHOW CREATE TABLE t`` (``stable`` False) or ``SHOW CREATE STABLE t`` (True)."""

    table: TableName
    stable: bool = False


@dataclass(**_NODE)
class Describe(Statement):
    """``DESCRIBE t`` / ``DESC t``."""

    table: TableName


@dataclass(**_NODE)
class CreateStable(Statement):
    """``CREATE STABLE`` (or ``CREATE TABLE ... TAGS (...)``). ``options``: ``comment`` str, ``ttl``
    int, ``keep`` int|str, ``max_delay``/``watermark``/``delete_mark`` tuples of durations,
    ``rollup`` tuple of function names, ``sma`` tuple of column names, ``virtual`` int."""

    table: TableName
    columns: tuple[ColumnDef, ...]
    tags: tuple[ColumnDef, ...]
    if_not_exists: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(**_NODE)
class CreateTable(Statement):
    """``CREATE TABLE [IF NOT EXISTS] t (columns) [options]`` (a normal table)."""

    table: TableName
    columns: tuple[ColumnDef, ...]
    if_not_exists: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(**_NODE)
class ChildTableDef(Node):
    """One ``[IF NOT EXISTS] t USING st [(tag_names)] TAGS (tag_values) [options]`` clause.
    ``tag_names`` None = all tags in the stable's order. Tag values are literals (IntLit, FloatLit,
    StringLit, BoolLit, NullLit), ``FuncCall('now'|'today'|...)`` or a ``BinaryOp`` adding/subtracting
    a DurationLit to one of those. ``options``: ``ttl`` int, ``comment`` str."""

    table: TableName
    stable: TableName
    tag_values: tuple[Expr, ...]
    tag_names: tuple[str, ...] | None = None
    if_not_exists: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(**_NODE)
class CreateChildTables(Statement):
    """``CREATE TABLE clause [clause ...]`` creating child tables (one or more)."""

    tables: tuple[ChildTableDef, ...]


@dataclass(**_NODE)
class AddColumn(Node):
    column: ColumnDef


@dataclass(**_NODE)
class DropColumn(Node):
    name: str


@dataclass(**_NODE)
class ModifyColumn(Node):
    """``MODIFY COLUMN c type`` (``type`` set: widen a VARCHAR/NCHAR...) or ``MODIFY COLUMN c
    ENCODE '..' COMPRESS '..' LEVEL '..'`` (``type`` None, ``options`` set)."""

    name: str
    type: DataType | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(**_NODE)
class RenameColumn(Node):
    name: str
    new_name: str


@dataclass(**_NODE)
class AddTag(Node):
    name: str
    type: DataType


@dataclass(**_NODE)
class DropTag(Node):
    name: str


@dataclass(**_NODE)
class ModifyTag(Node):
    name: str
    type: DataType


@dataclass(**_NODE)
class RenameTag(Node):
    name: str
    new_name: str


@dataclass(**_NODE)
class SetTags(Node):
    """``SET TAG a = 1, b = 'x'`` on a child table: ((name, value), ...), values as ChildTableDef's."""

    values: tuple[tuple[str, Expr], ...]


@dataclass(**_NODE)
class SetTableOptions(Node):
    """``ALTER TABLE t COMMENT 'x' TTL 10 KEEP 10d``: ``comment`` str, ``ttl`` int, ``keep`` int|str."""

    options: dict[str, Any]


AlterAction = AddColumn | DropColumn | ModifyColumn | RenameColumn | AddTag | DropTag | ModifyTag | RenameTag | \
    SetTags | SetTableOptions


@dataclass(**_NODE)
class AlterTable(Statement):
    """``ALTER TABLE t <action>`` (``stable`` False) or ``ALTER STABLE st <action>`` (True). The
    grammar is the same for both; the executor decides what applies to which kind of table."""

    table: TableName
    action: AlterAction
    stable: bool = False


@dataclass(**_NODE)
class DropTarget(Node):
    table: TableName
    if_exists: bool = False


@dataclass(**_NODE)
class DropTable(Statement):
    """``DROP TABLE [IF EXISTS] a, [IF EXISTS] b`` (TDengine: IF EXISTS is per table)."""

    tables: tuple[DropTarget, ...]


@dataclass(**_NODE)
class DropStable(Statement):
    table: TableName
    if_exists: bool = False


@dataclass(**_NODE)
class InsertTarget(Node):
    """One table of an INSERT: ``table [USING st [(tag_names)] TAGS (tag_values) [options]]
    [(columns)] VALUES (row) (row) ...``.

    ``columns`` None = every column in schema order; otherwise the names as written (lower-cased
    unless back-quoted) - may hold ``tbname`` and tag names for the super-table syntax
    (``INSERT INTO st (tbname, tag, ts, col) VALUES ...``). ``rows``: tuples of value expressions:
    IntLit, FloatLit, StringLit, BoolLit, NullLit, DurationLit, Placeholder, FuncCall('now'|'today')
    or a BinaryOp('+'|'-', <one of those>, DurationLit). ``using`` is set for auto-create (the
    values of ``tag_values`` as in ChildTableDef; ``options`` ``ttl``/``comment``)."""

    table: TableName
    columns: tuple[str, ...] | None
    rows: tuple[tuple[Expr, ...], ...]
    using: TableName | None = None
    tag_names: tuple[str, ...] | None = None
    tag_values: tuple[Expr, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    pos: int = _pos()


@dataclass(**_NODE)
class Insert(Statement):
    """``INSERT INTO target [target ...]`` (``IMPORT INTO`` is the same)."""

    targets: tuple[InsertTarget, ...]


@dataclass(**_NODE)
class Delete(Statement):
    """``DELETE FROM t [WHERE cond]`` (TDengine allows conditions on the timestamp column only)."""

    table: TableName
    where: Expr | None = None


@dataclass(**_NODE)
class SelectItem(Node):
    """An entry of a select list (or PARTITION BY). ``text`` is the expression as written,
    lower-cased outside quotes (not compared); ``name`` is the result column's name as TDengine
    gives it: the alias, else the column's name, else ``text`` (first 64 characters)."""

    expr: Expr
    alias: str | None = None
    text: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        if self.alias is not None:
            return self.alias
        if isinstance(self.expr, (Column, PseudoColumn)):
            return self.expr.name
        return self.text[:64]


@dataclass(**_NODE)
class OrderItem(Node):
    """``expr [ASC|DESC] [NULLS FIRST|LAST]``; ``nulls`` None, "first" or "last"."""

    expr: Expr
    desc: bool = False
    nulls: str | None = None


@dataclass(**_NODE)
class Select(Statement):
    """``SELECT [DISTINCT] items [FROM [db.]t [[AS] alias]] [WHERE c] [PARTITION BY ...]
    [GROUP BY ...] [HAVING c] [ORDER BY ...] [SLIMIT n [SOFFSET m]] [LIMIT n [OFFSET m]]``.
    ``table`` None: no FROM (``SELECT SERVER_VERSION()``). ``LIMIT m, n`` is offset m, limit n.
    Joins, subqueries, UNION and window clauses (INTERVAL, SESSION, FILL...) raise UnsupportedSql."""

    items: tuple[SelectItem, ...]
    table: TableName | None = None
    alias: str | None = None
    where: Expr | None = None
    partition_by: tuple[SelectItem, ...] = ()
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
    slimit: int | None = None
    soffset: int | None = None
    distinct: bool = False


@dataclass(**_NODE)
class CreateTopic(Statement):
    """``CREATE TOPIC [IF NOT EXISTS] name [WITH META | ONLY META] AS DATABASE db`` (``kind``
    "database"), ``... AS STABLE [db.]st [WHERE cond]`` ("stable"), ``AS SELECT ...`` ("query":
    ``query`` is the parsed Select and ``query_text`` its SQL as written). ``meta``: "" (plain AS),
    "with" or "only"."""

    name: str
    kind: str
    if_not_exists: bool = False
    meta: str = ""
    database: str | None = None
    stable: TableName | None = None
    where: Expr | None = None
    query: Select | None = None
    query_text: str | None = field(default=None, compare=False)

    @property
    def with_meta(self) -> bool:
        return self.meta == "with"


@dataclass(**_NODE)
class DropTopic(Statement):
    name: str
    if_exists: bool = False
    force: bool = False


@dataclass(**_NODE)
class DropConsumerGroup(Statement):
    """``DROP CONSUMER GROUP [IF EXISTS] [FORCE] group ON topic``."""

    group: str
    topic: str
    if_exists: bool = False
    force: bool = False


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------

# TDengine 3.3.7's keyword table (parTokenizer.c); all of them are reserved words.
KEYWORDS = frozenset("""
ACCOUNT ACCOUNTS ADD AGGREGATE ALIVE ALL ALTER ANALYZE AND ANODE ANODES ANOMALY_WINDOW ANTI ANY APPS ARBGROUPS
AS ASC ASOF ASSIGN AUTO BALANCE BATCH_SCAN BETWEEN BIGINT BINARY BLOB BNODE BNODES BOOL BOTH BUFFER BUFSIZE
BWLIMIT BY CACHE CACHEMODEL CACHESIZE CALC_NOTIFY_ONLY CASE CAST CHILD CLIENT_VERSION CLUSTER COLS COLUMN
COMMENT COMP COMPACT COMPACTS COMPACT_INTERVAL COMPACT_TIME_OFFSET COMPACT_TIME_RANGE COMPOSITE CONNECTION
CONNECTIONS CONNS CONSUMER CONSUMERS CONTAINS COUNT COUNT_WINDOW CREATE CREATEDB CURRENT_USER DATABASE
DATABASES DBS DECIMAL DELETE DELETE_MARK DELETE_OUTPUT_TABLE DELETE_RECALC DESC DESCRIBE DISK_INFO DISTINCT
DISTRIBUTED DNODE DNODES DOUBLE DROP DURATION ELSE ENABLE ENCRYPTIONS ENCRYPT_ALGORITHM ENCRYPT_KEY END
EVENT_TYPE EVENT_WINDOW EVERY EXISTS EXPIRED_TIME EXPLAIN FILE FILL FILL_HISTORY FILL_HISTORY_FIRST FIRST
FLOAT FLUSH FOR FORCE FORCE_OUTPUT FROM FULL FUNCTION FUNCTIONS GEOMETRY GRANT GRANTS GROUP HASH_JOIN HAVING
HOST IF IGNORE IGNORE_DISORDER IGNORE_NODATA_TRIGGER IMPORT IN INDEX INDEXES INNER INSERT INT INTEGER
INTERVAL INTO IS IS_IMPORT JLIMIT JOIN JSON KEEP KEEP_TIME_OFFSET KEY KILL LANGUAGE LAST LAST_ROW LEADER
LEADING LEFT LICENCES LIKE LIMIT LINEAR LOCAL LOGS LOW_LATENCY_CALC MACHINES MATCH MAXROWS MAX_DELAY
MEDIUMBLOB MERGE META META_ONLY MINROWS MINUS MNODE MNODES MODIFY MODULES MOUNT MOUNTS NCHAR NEAR NEXT NMATCH
NONE NORMAL NOT NOTIFY NOTIFY_HISTORY NOTIFY_OPTIONS NOW NO_BATCH_SCAN NULL NULLS NULL_F OFFSET ON ONLY OR
ORDER OUTER OUTPUTTYPE OUTPUT_SUBTABLE PAGES PAGESIZE PARA_TABLES_SORT PARTITION PARTITION_FIRST PASS PERIOD
PI PORT POSITION PPS PRECISION PREV PRE_FILTER PRIMARY PRIVILEGES QNODE QNODES QTIME QUERIES QUERY RAND
RANGE RATIO READ RECALCULATE RECURSIVE REDISTRIBUTE REGEXP RENAME REPLACE REPLICA REPLICAS RESET RESTORE
RETENTIONS REVOKE RIGHT ROLLUP SCHEMALESS SCORES SELECT SEMI SERVER_STATUS SERVER_VERSION SESSION SET SHOW
SINGLE_STABLE SKIP_TSMA SLIDING SLIMIT SMA SMALLDATA_TS_SORT SMALLINT SNODE SNODES SOFFSET SORT_FOR_GROUP
SPLIT SSMIGRATE SS_CHUNKPAGES SS_COMPACT SS_KEEPLOCAL STABLE STABLES START STATE STATE_WINDOW STOP STORAGE
STREAM STREAMS STREAM_OPTIONS STRICT STT_TRIGGER SUBSCRIBE SUBSCRIPTIONS SUBSTR SUBSTRING SYSINFO SYSTEM
TABLE TABLES TABLE_PREFIX TABLE_SUFFIX TAG TAGS TBNAME THEN TIMESTAMP TIMEZONE TINYINT TO TODAY TOPIC TOPICS
TRAILING TRANSACTION TRANSACTIONS TRIM TROWS TRUE_FOR TSDB_PAGESIZE TSERIES TSMA TSMAS TTL UNION UNSAFE
UNSIGNED UNTREATED UPDATE USE USER USERS USING VALUE VALUES VALUE_F VARBINARY VARCHAR VARIABLES VERBOSE
VGROUP VGROUPS VIEW VIEWS VIRTUAL VNODE VNODES VTABLE VTABLES WAL_FSYNC_PERIOD WAL_LEVEL WAL_RETENTION_PERIOD
WAL_RETENTION_SIZE WAL_ROLL_PERIOD WAL_SEGMENT_SIZE WATERMARK WHEN WHERE WINDOW WINDOW_CLOSE WINDOW_OFFSET
WINDOW_OPEN WITH WRITE _C0 _FHIGH _FLOW _FROWTS _IROWTS _IROWTS_ORIGIN _ISFILLED _QDURATION _QEND _QSTART
_ROWTS _TAGS _TCURRENT_TS _TGRPID _TLOCALTIME _TNEXT_LOCALTIME _TNEXT_TS _TPREV_LOCALTIME _TPREV_TS
_TWDURATION _TWEND _TWROWNUM _TWSTART _WDURATION _WEND _WSTART
""".split())

# One alternation, most frequent tokens first; leading whitespace is absorbed by every match (the
# token is the last matched group). "int" only takes digit runs nothing else can extend; the rest
# fall through to hex/bin/duration/ip/float/"int2".
_TOKEN_RE = re.compile(r"""[ \t\n\r\f\v]*(?:
  (?P<op>,|\(|\)|->|<=|>=|<>|!=|==|<<|>>|\|\||%%|-(?!-)|/(?!\*)|\.(?![0-9])|[;+*%=<>|&~?:])
| (?P<int>[1-9][0-9]*(?![0-9.eEbBuUaAsSmMhHdDnNyYwWxX])|0(?![0-9.eEbBuUaAsSmMhHdDnNyYwWxX]))
| (?P<str>'[^'\\]*(?:(?:\\[\s\S]|'')[^'\\]*)*'|"[^"\\]*(?:(?:\\[\s\S]|"")[^"\\]*)*")
| (?P<word>[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)
| (?P<comment>--[^\n]*|/\*[\s\S]*?(?:\*/|\Z))
| (?P<qid>`[^`]*(?:``[^`]*)*`)
| (?P<hex>0[xX][0-9a-fA-F]+)
| (?P<bin>0[bB][01]+)
| (?P<dur>[0-9]+[bBuUaAsSmMhHdDnNyYwW](?![A-Za-z0-9_]))
| (?P<ip>[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)
| (?P<float>[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|\.[0-9]+(?:[eE][+-]?[0-9]+)?)
| (?P<int2>[0-9]+)
| (?P<end>\Z)
| (?P<bad>[\s\S])
)""", re.VERBOSE)

# Token: (kind, value, pos, text). Kinds and values:
#   id     plain identifier, value lower-cased       qid    back-quoted identifier, value unquoted
#   kw     keyword, value upper-cased                alias  word with non-ASCII letters (aliases only)
#   str    string, value = raw token                 int/float/hex/bin/dur/ip  value = text
#   bool   value True/False                          op     value = operator text
#   bad    an unrecognized character (tokenizing stops there)
#   eof    end of input (or the first ';')
_EOF = "eof"


def _tokens(sql: str) -> tuple[list[tuple], int | None]:
    toks: list[tuple] = []
    append = toks.append
    semi = None
    keywords = KEYWORDS
    for m in _TOKEN_RE.finditer(sql):
        kind = m.lastgroup
        idx = m.lastindex
        if kind == "op":
            text = m[idx]
            if text == ";":
                semi = m.start(idx)
                break
            append(("op", text, m.start(idx), text))
        elif kind == "int" or kind == "str":
            text = m[idx]
            append((kind, text, m.start(idx), text))
        elif kind == "word":
            text = m[idx]
            if text.isascii():
                up = text.upper()
                if up in keywords:
                    append(("kw", up, m.start(idx), text))
                elif up == "TRUE" or up == "FALSE":
                    append(("bool", up == "TRUE", m.start(idx), text))
                else:
                    append(("id", _ascii_lower(text), m.start(idx), text))
            else:
                append(("alias", text, m.start(idx), text))
        elif kind == "comment" or kind == "end":
            continue
        elif kind == "qid":
            text = m[idx]
            append(("qid", text[1:-1].replace("``", "`"), m.start(idx), text))
        elif kind == "bad":
            # TDengine parses token by token: an earlier error wins, so the parser reports this
            # one when it gets there (and nothing after it is tokenized).
            text = m[idx]
            append(("bad", text, m.start(idx), text))
            break
        else:
            text = m[idx]
            append(("int" if kind == "int2" else kind, text, m.start(idx), text))
    eof = (_EOF, None, len(sql), "")
    toks.extend((eof, eof, eof))
    return toks, semi


def _unrecognized(sql: str, pos: int) -> SqlSyntaxError:
    rest = lower_outside_quotes(sql[pos:])
    return SqlSyntaxError(_clip_bytes(f'unrecognized token: "{rest}"', _MSG_BUF - 1), pos, PAR_SYNTAX_ERROR)


def tokenize(sql: str) -> list[tuple[str, Any, int, str]]:
    """The tokens of ``sql`` up to the first ``;`` as ``(kind, value, pos, text)`` tuples (see the
    kinds above), without the end marker. Raises SqlSyntaxError on an unrecognized token."""
    toks, _ = _tokens(sql)
    toks = toks[:-3]
    if toks and toks[-1][0] == "bad":
        raise _unrecognized(sql, toks[-1][2])
    return toks


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"', "f": "\f", "b": "\b",
            "%": "\\%", "_": "\\_", "x": "\\x"}
_ESC_SQ = re.compile(r"\\([\s\S])|''")
_ESC_DQ = re.compile(r'\\([\s\S])|""')


def _esc_repl(m: re.Match) -> str:
    c = m.group(1)
    if c is None:
        return m.group()[0]
    return _ESCAPES.get(c, c)


def decode_string(raw: str) -> str:
    """The value of a string token (with its quotes), decoded as TDengine's ``trimString`` does."""
    q = raw[0]
    inner = raw[1:-1]
    if "\\" not in inner and (q + q) not in inner:
        return inner
    return (_ESC_SQ if q == "'" else _ESC_DQ).sub(_esc_repl, inner)


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------

_COMPARE_OPS = {"=": "=", "==": "=", "<>": "<>", "!=": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_KW_COMPARE = {"LIKE": "like", "MATCH": "match", "NMATCH": "nmatch", "REGEXP": "match", "CONTAINS": "contains"}
_STAR_FUNCS = frozenset({"COUNT", "FIRST", "LAST", "LAST_ROW"})
_NOARG_FUNCS = frozenset({"NOW", "TODAY", "TIMEZONE", "DATABASE", "CLIENT_VERSION", "SERVER_VERSION",
                          "SERVER_STATUS", "CURRENT_USER", "USER", "PI"})
_KW_FUNCS = frozenset({"SUBSTR", "SUBSTRING", "REPLACE", "RAND", "TRIM", "POSITION"})
_WINDOW_KWS = frozenset({"INTERVAL", "SESSION", "STATE_WINDOW", "EVENT_WINDOW", "COUNT_WINDOW",
                         "ANOMALY_WINDOW", "FILL", "RANGE", "EVERY", "SLIDING"})
_JOIN_KWS = frozenset({"JOIN", "INNER", "LEFT", "RIGHT", "FULL", "OUTER", "SEMI", "ANTI", "ASOF", "WINDOW"})

# Database options: keyword -> value grammar (sql.y db_options / alter_db_option).
_DB_OPTIONS = {
    "BUFFER": "int", "CACHEMODEL": "str", "CACHESIZE": "int", "COMP": "int", "DURATION": "int|dur",
    "MAXROWS": "int", "MINROWS": "int", "KEEP": "keep", "PAGES": "int", "PAGESIZE": "int", "TSDB_PAGESIZE": "int",
    "PRECISION": "str", "REPLICA": "int", "REPLICAS": "int", "VGROUPS": "int", "SINGLE_STABLE": "int",
    "RETENTIONS": "retentions", "SCHEMALESS": "int", "WAL_LEVEL": "int", "WAL_FSYNC_PERIOD": "int",
    "WAL_RETENTION_PERIOD": "-int", "WAL_RETENTION_SIZE": "-int", "WAL_ROLL_PERIOD": "int",
    "WAL_SEGMENT_SIZE": "int", "STT_TRIGGER": "int", "TABLE_PREFIX": "signed", "TABLE_SUFFIX": "signed",
    "SS_CHUNKPAGES": "int", "SS_KEEPLOCAL": "int|dur", "SS_COMPACT": "int", "KEEP_TIME_OFFSET": "int|dur",
    "ENCRYPT_ALGORITHM": "str", "DNODES": "str", "COMPACT_INTERVAL": "int|dur",
    "COMPACT_TIME_RANGE": "signed_dur_list", "COMPACT_TIME_OFFSET": "int|dur",
}
_ALTER_DB_OPTIONS = frozenset({
    "BUFFER", "CACHEMODEL", "CACHESIZE", "WAL_FSYNC_PERIOD", "KEEP", "PAGES", "REPLICA", "REPLICAS", "WAL_LEVEL",
    "STT_TRIGGER", "MINROWS", "WAL_RETENTION_PERIOD", "WAL_RETENTION_SIZE", "SS_KEEPLOCAL", "SS_COMPACT",
    "KEEP_TIME_OFFSET", "ENCRYPT_ALGORITHM", "COMPACT_INTERVAL", "COMPACT_TIME_RANGE", "COMPACT_TIME_OFFSET",
})
_COLUMN_OPTION_NAMES = frozenset({"encode", "compress", "level"})

# Statements TDengine has and the sandbox does not (first keyword, second keyword or None = any).
_UNSUPPORTED_CREATE = frozenset({"ACCOUNT", "USER", "ENCRYPT_KEY", "ANODE", "DNODE", "QNODE", "SNODE", "BNODE",
                                 "MNODE", "MOUNT", "TSMA", "RECURSIVE", "SMA", "INDEX", "FUNCTION", "AGGREGATE",
                                 "OR", "VIEW", "STREAM", "VTABLE"})
_UNSUPPORTED_DROP = frozenset({"USER", "ANODE", "DNODE", "QNODE", "SNODE", "BNODE", "MNODE", "MOUNT", "TSMA",
                               "INDEX", "FUNCTION", "VIEW", "STREAM", "VTABLE"})
_UNSUPPORTED_ALTER = frozenset({"ACCOUNT", "USER", "DNODE", "ALL", "CLUSTER", "LOCAL", "VTABLE"})
_UNSUPPORTED_FIRST = frozenset({"GRANT", "REVOKE", "UPDATE", "RESTORE", "FLUSH", "TRIM", "SSMIGRATE", "COMPACT",
                                "KILL", "BALANCE", "ASSIGN", "MERGE", "REDISTRIBUTE", "SPLIT", "EXPLAIN", "RESET",
                                "STOP", "START", "RECALCULATE"})

_SHOW_PLAIN = frozenset({"DNODES", "MNODES", "QNODES", "SNODES", "BNODES", "ARBGROUPS", "FUNCTIONS", "APPS",
                         "CONNECTIONS", "LICENCES", "MOUNTS", "ENCRYPTIONS", "QUERIES", "SCORES", "TOPICS",
                         "TRANSACTIONS", "CONSUMERS", "SUBSCRIPTIONS", "COMPACTS", "DATABASES"})
_SHOW_WITH_DB = frozenset({"VGROUPS", "STREAMS", "ALIVE", "VIEWS", "TSMAS", "DISK_INFO"})
_SHOW_TABLES = frozenset({"TABLES", "VTABLES", "STABLES"})


class _Parser:
    __slots__ = ("sql", "toks", "i", "semi")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.toks, self.semi = _tokens(sql)
        self.i = 0

    # -- token helpers -------------------------------------------------------------------------

    def error(self, tok: tuple | None = None) -> SqlSyntaxError:
        if tok is None:
            tok = self.toks[self.i]
        if tok[0] == "bad":
            return _unrecognized(self.sql, tok[2])
        return _syntax_error(self.sql, tok[2], self.semi)

    def unsupported(self, what: str, tok: tuple | None = None) -> UnsupportedSql:
        if tok is None:
            tok = self.toks[self.i]
        return UnsupportedSql(what, tok[2])

    def ins_error(self, info: str | None, tok: tuple | None = None) -> SqlSyntaxError:
        if tok is None:
            tok = self.toks[self.i]
        return insert_syntax_error(self.sql, tok[2], info)

    def is_kw(self, name: str, k: int = 0) -> bool:
        t = self.toks[self.i + k]
        return t[0] == "kw" and t[1] == name

    def is_op(self, op: str, k: int = 0) -> bool:
        t = self.toks[self.i + k]
        return t[0] == "op" and t[1] == op

    def accept_kw(self, name: str) -> bool:
        t = self.toks[self.i]
        if t[0] == "kw" and t[1] == name:
            self.i += 1
            return True
        return False

    def accept_op(self, op: str) -> bool:
        t = self.toks[self.i]
        if t[0] == "op" and t[1] == op:
            self.i += 1
            return True
        return False

    def expect_kw(self, name: str) -> tuple:
        t = self.toks[self.i]
        if t[0] == "kw" and t[1] == name:
            self.i += 1
            return t
        raise self.error(t)

    def expect_op(self, op: str) -> tuple:
        t = self.toks[self.i]
        if t[0] == "op" and t[1] == op:
            self.i += 1
            return t
        raise self.error(t)

    def expect_end(self) -> None:
        t = self.toks[self.i]
        if t[0] != _EOF:
            raise self.error(t)

    def ident(self, allow_alias: bool = False) -> str:
        t = self.toks[self.i]
        k = t[0]
        if k == "id" or k == "qid" or (allow_alias and k == "alias"):
            self.i += 1
            return t[1]
        raise self.error(t)

    def is_ident(self, k: int = 0) -> bool:
        kind = self.toks[self.i + k][0]
        return kind == "id" or kind == "qid"

    def table_name(self) -> TableName:
        first = self.ident()
        if self.is_op("."):
            self.i += 1
            return TableName(first, self.ident())
        return TableName(None, first)

    def int_value(self) -> int:
        t = self.toks[self.i]
        if t[0] != "int":
            raise self.error(t)
        self.i += 1
        return int(t[1])

    def string_value(self) -> str:
        t = self.toks[self.i]
        if t[0] != "str":
            raise self.error(t)
        self.i += 1
        return decode_string(t[1])

    def span_text(self, start: int, end: int) -> str:
        """The SQL text of tokens [start, end) as the client sees it (lower-cased outside quotes)."""
        toks = self.toks
        a = toks[start][2]
        last = toks[end - 1]
        return lower_outside_quotes(self.sql[a:last[2] + len(last[3])])

    # -- entry ---------------------------------------------------------------------------------

    def statement(self) -> Statement:
        t = self.toks[self.i]
        if t[0] == "kw":
            kw = t[1]
            if kw == "SELECT":
                stmt: Statement = self.select()
            elif kw == "INSERT" or kw == "IMPORT":
                return self.insert()
            elif kw == "CREATE":
                stmt = self.create()
            elif kw == "DROP":
                stmt = self.drop()
            elif kw == "ALTER":
                stmt = self.alter()
            elif kw == "USE":
                self.i += 1
                stmt = UseDatabase(self.ident())
            elif kw == "SHOW":
                stmt = self.show()
            elif kw == "DESC" or kw == "DESCRIBE":
                self.i += 1
                stmt = Describe(self.table_name())
            elif kw == "DELETE":
                stmt = self.delete()
            elif kw in _UNSUPPORTED_FIRST:
                raise self.unsupported(f"{kw} statements", t)
            else:
                raise self.error(t)
        elif t[0] == "op" and t[1] == "(":
            raise self.unsupported("subqueries", t)
        else:
            raise self.error(t)
        self.expect_end()
        return stmt

    # -- databases ---------------------------------------------------------------------------

    def if_not_exists(self) -> bool:
        if self.is_kw("IF"):
            self.i += 1
            self.expect_kw("NOT")
            self.expect_kw("EXISTS")
            return True
        return False

    def if_exists(self) -> bool:
        if self.is_kw("IF"):
            self.i += 1
            self.expect_kw("EXISTS")
            return True
        return False

    def db_options(self, allowed: frozenset | None) -> dict[str, Any]:
        options: dict[str, Any] = {}
        while True:
            t = self.toks[self.i]
            if t[0] != "kw" or t[1] not in _DB_OPTIONS or (allowed is not None and t[1] not in allowed):
                return options
            self.i += 1
            name = t[1]
            kind = _DB_OPTIONS[name]
            key = "replica" if name == "REPLICAS" else name.lower()
            options[key] = self.db_option_value(kind)

    def db_option_value(self, kind: str) -> Any:
        t = self.toks[self.i]
        k = t[0]
        if kind == "int":
            return self.int_value()
        if kind == "str":
            return self.string_value()
        if kind == "int|dur":
            if k == "dur":
                self.i += 1
                return _ascii_lower(t[1])
            return self.int_value()
        if kind == "-int":
            if self.accept_op("-"):
                return -self.int_value()
            return self.int_value()
        if kind == "signed":
            sign = -1 if self.accept_op("-") else 1
            if sign == 1:
                self.accept_op("+")
            t = self.toks[self.i]
            if t[0] == "int":
                self.i += 1
                return sign * int(t[1])
            if t[0] == "float":
                self.i += 1
                return sign * float(t[1])
            raise self.error(t)
        if kind == "keep":  # integer_list | variable_list
            want = "dur" if k == "dur" else "int"
            values = []
            while True:
                t = self.toks[self.i]
                if t[0] != want:
                    raise self.error(t)
                self.i += 1
                values.append(_ascii_lower(t[1]) if want == "dur" else int(t[1]))
                if not self.accept_op(","):
                    return tuple(values)
        if kind == "retentions":  # dur:dur | -:dur, ...
            values = []
            while True:
                t = self.toks[self.i]
                if t[0] == "dur":
                    first = _ascii_lower(t[1])
                elif t[0] == "op" and t[1] == "-":
                    first = "-"
                else:
                    raise self.error(t)
                self.i += 1
                self.expect_op(":")
                t = self.toks[self.i]
                if t[0] != "dur":
                    raise self.error(t)
                self.i += 1
                values.append(f"{first}:{_ascii_lower(t[1])}")
                if not self.accept_op(","):
                    return tuple(values)
        # signed_dur_list: [+|-]int or [+|-]dur, comma separated
        values = []
        while True:
            sign = ""
            if self.accept_op("-"):
                sign = "-"
            else:
                self.accept_op("+")
            t = self.toks[self.i]
            if t[0] == "int":
                values.append(int(sign + t[1]))
            elif t[0] == "dur":
                values.append(sign + _ascii_lower(t[1]))
            else:
                raise self.error(t)
            self.i += 1
            if not self.accept_op(","):
                return tuple(values)

    # -- CREATE ------------------------------------------------------------------------------

    def create(self) -> Statement:
        self.i += 1
        t = self.toks[self.i]
        if t[0] != "kw":
            raise self.error(t)
        kw = t[1]
        if kw == "DATABASE":
            self.i += 1
            ine = self.if_not_exists()
            name = self.ident()
            return CreateDatabase(name, ine, self.db_options(None))
        if kw == "TABLE":
            self.i += 1
            return self.create_table()
        if kw == "STABLE":
            self.i += 1
            ine = self.if_not_exists()
            table = self.table_name()
            columns = self.column_defs()
            self.expect_kw("TAGS")
            tags = self.tag_defs()
            return CreateStable(table, columns, tags, ine, self.table_options())
        if kw == "TOPIC":
            self.i += 1
            return self.create_topic()
        if kw in _UNSUPPORTED_CREATE:
            raise self.unsupported(f"CREATE {kw}", t)
        raise self.error(t)

    def create_table(self) -> Statement:
        start = self.i
        ine = self.if_not_exists()
        if self.is_kw("USING"):
            raise self.unsupported("CREATE TABLE ... USING ... FILE")
        table = self.table_name()
        if self.is_op("("):
            columns = self.column_defs()
            if self.accept_kw("TAGS"):
                tags = self.tag_defs()
                return CreateStable(table, columns, tags, ine, self.table_options())
            return CreateTable(table, columns, ine, self.table_options())
        self.i = start
        clauses = [self.child_table_def()]
        while self.toks[self.i][0] != _EOF:
            clauses.append(self.child_table_def())
        return CreateChildTables(tuple(clauses))

    def child_table_def(self) -> ChildTableDef:
        ine = self.if_not_exists()
        table = self.table_name()
        self.expect_kw("USING")
        stable = self.table_name()
        tag_names = self.name_list() if self.is_op("(") else None
        self.expect_kw("TAGS")
        self.expect_op("(")
        values = [self.value(False)]
        while self.accept_op(","):
            values.append(self.value(False))
        self.expect_op(")")
        return ChildTableDef(table, stable, tuple(values), tag_names, ine, self.table_options())

    def name_list(self) -> tuple[str, ...]:
        """``(name, name, ...)``; ``tbname`` allowed."""
        self.expect_op("(")
        names = [self.col_name()]
        while self.accept_op(","):
            names.append(self.col_name())
        self.expect_op(")")
        return tuple(names)

    def col_name(self) -> str:
        if self.is_kw("TBNAME"):
            self.i += 1
            return "tbname"
        return self.ident()

    def column_defs(self) -> tuple[ColumnDef, ...]:
        self.expect_op("(")
        cols = [self.column_def()]
        while self.accept_op(","):
            cols.append(self.column_def())
        self.expect_op(")")
        return tuple(cols)

    def column_def(self) -> ColumnDef:
        name = self.ident()
        dtype = self.data_type()
        pk, options = self.column_options()
        return ColumnDef(name, dtype, pk, options)

    def column_options(self) -> tuple[bool, dict[str, str]]:
        pk = False
        options: dict[str, str] = {}
        while True:
            t = self.toks[self.i]
            if t[0] == "kw" and (t[1] == "PRIMARY" or t[1] == "COMPOSITE") and self.is_kw("KEY", 1):
                self.i += 2
                pk = True
            elif t[0] == "id" and self.toks[self.i + 1][0] == "str":
                if t[1] not in _COLUMN_OPTION_NAMES:
                    raise self.error(t)
                self.i += 1
                options[t[1]] = self.string_value()
            elif t[0] == "kw" and t[1] == "COMMENT" and self.toks[self.i + 1][0] == "str":
                self.i += 1
                options["comment"] = self.string_value()
            elif t[0] == "kw" and t[1] == "FROM":
                raise self.unsupported("virtual table column references", t)
            else:
                return pk, options

    def tag_defs(self) -> tuple[ColumnDef, ...]:
        self.expect_op("(")
        tags = [ColumnDef(self.ident(), self.data_type())]
        while self.accept_op(","):
            tags.append(ColumnDef(self.ident(), self.data_type()))
        self.expect_op(")")
        return tuple(tags)

    def data_type(self, default_len: bool = False) -> DataType:
        t = self.toks[self.i]
        if t[0] != "kw" or t[1] not in _TYPE_KEYWORDS:
            raise self.error(t)
        kw = t[1]
        self.i += 1
        fixed = _FIXED_TYPES.get(kw)
        if fixed is not None:
            code, width, ucode = fixed
            if ucode is not None and self.accept_kw("UNSIGNED"):
                code = ucode
            return DataType(code, width)
        if kw == "DECIMAL":
            self.expect_op("(")
            precision = self.int_value()
            scale = self.int_value() if self.accept_op(",") else 0
            self.expect_op(")")
            return _decimal_type(precision, scale)
        code = _VAR_TYPES[kw]
        if default_len and not self.is_op("(") and code != TYPE_GEOMETRY:
            return DataType(code, _DEFAULT_VAR_LENGTH // 4 if code == TYPE_NCHAR else _DEFAULT_VAR_LENGTH)
        self.expect_op("(")
        length = self.int_value()
        self.expect_op(")")
        return DataType(code, length)

    def table_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        while True:
            t = self.toks[self.i]
            if t[0] != "kw":
                return options
            kw = t[1]
            if kw == "COMMENT":
                self.i += 1
                options["comment"] = self.string_value()
            elif kw == "TTL":
                self.i += 1
                options["ttl"] = self.int_value()
            elif kw == "KEEP":
                self.i += 1
                t = self.toks[self.i]
                if t[0] == "dur":
                    self.i += 1
                    options["keep"] = _ascii_lower(t[1])
                else:
                    options["keep"] = self.int_value()
            elif kw == "VIRTUAL":
                self.i += 1
                options["virtual"] = self.int_value()
            elif kw in ("MAX_DELAY", "WATERMARK", "DELETE_MARK"):
                self.i += 1
                values = []
                while True:
                    t = self.toks[self.i]
                    if t[0] != "dur":
                        raise self.error(t)
                    self.i += 1
                    values.append(_ascii_lower(t[1]))
                    if not self.accept_op(","):
                        break
                options[kw.lower()] = tuple(values)
            elif kw == "ROLLUP":
                self.i += 1
                self.expect_op("(")
                funcs = [self.rollup_func()]
                while self.accept_op(","):
                    funcs.append(self.rollup_func())
                self.expect_op(")")
                options["rollup"] = tuple(funcs)
            elif kw == "SMA":
                self.i += 1
                options["sma"] = self.name_list()
            else:
                return options

    def rollup_func(self) -> str:
        t = self.toks[self.i]
        if t[0] == "kw" and t[1] in ("FIRST", "LAST"):
            self.i += 1
            return t[1].lower()
        return self.ident()

    def create_topic(self) -> CreateTopic:
        ine = self.if_not_exists()
        name = self.ident()
        meta = ""
        if self.accept_kw("WITH"):
            self.expect_kw("META")
            meta = "with"
        elif self.accept_kw("ONLY"):
            self.expect_kw("META")
            meta = "only"
        self.expect_kw("AS")
        t = self.toks[self.i]
        if t[0] == "kw" and t[1] == "DATABASE":
            self.i += 1
            return CreateTopic(name, "database", ine, meta, database=self.ident())
        if t[0] == "kw" and t[1] == "STABLE":
            self.i += 1
            stable = self.table_name()
            where = self.condition() if self.accept_kw("WHERE") else None
            return CreateTopic(name, "stable", ine, meta, stable=stable, where=where)
        if not meta and t[0] == "kw" and t[1] == "SELECT":
            query = self.select()
            text = self.sql[t[2]:self.semi if self.semi is not None else len(self.sql)]
            return CreateTopic(name, "query", ine, meta, query=query, query_text=text.strip())
        if not meta and t[0] == "op" and t[1] == "(":
            raise self.unsupported("subqueries", t)
        raise self.error(t)

    # -- DROP --------------------------------------------------------------------------------

    def drop(self) -> Statement:
        self.i += 1
        t = self.toks[self.i]
        if t[0] != "kw":
            raise self.error(t)
        kw = t[1]
        self.i += 1
        if kw == "DATABASE":
            ie = self.if_exists()
            name = self.ident()
            return DropDatabase(name, ie, self.accept_kw("FORCE"))
        if kw == "TABLE":
            self.accept_kw("WITH")
            targets = [DropTarget(*self.drop_target())]
            while self.accept_op(","):
                targets.append(DropTarget(*self.drop_target()))
            return DropTable(tuple(targets))
        if kw == "STABLE":
            self.accept_kw("WITH")
            ie, table = self.if_exists(), self.table_name()
            return DropStable(table, ie)
        if kw == "TOPIC":
            ie = self.if_exists()
            force = self.accept_kw("FORCE")
            return DropTopic(self.ident(), ie, force)
        if kw == "CONSUMER":
            self.expect_kw("GROUP")
            ie = self.if_exists()
            force = self.accept_kw("FORCE")
            group = self.ident()
            self.expect_kw("ON")
            return DropConsumerGroup(group, self.ident(), ie, force)
        if kw in _UNSUPPORTED_DROP:
            raise self.unsupported(f"DROP {kw}", t)
        raise self.error(t)

    def drop_target(self) -> tuple[TableName, bool]:
        ie = self.if_exists()
        return self.table_name(), ie

    # -- ALTER -------------------------------------------------------------------------------

    def alter(self) -> Statement:
        self.i += 1
        t = self.toks[self.i]
        if t[0] != "kw":
            raise self.error(t)
        kw = t[1]
        if kw == "DATABASE":
            self.i += 1
            name = self.ident()
            options = self.db_options(_ALTER_DB_OPTIONS)
            if not options:
                raise self.error()
            return AlterDatabase(name, options)
        if kw == "TABLE" or kw == "STABLE":
            self.i += 1
            table = self.table_name()
            return AlterTable(table, self.alter_action(), kw == "STABLE")
        if kw in _UNSUPPORTED_ALTER:
            raise self.unsupported(f"ALTER {kw}", t)
        raise self.error(t)

    def alter_action(self) -> AlterAction:
        t = self.toks[self.i]
        if t[0] != "kw":
            raise self.error(t)
        kw = t[1]
        if kw in ("COMMENT", "TTL", "KEEP"):
            options = self.table_options()
            if set(options) - {"comment", "ttl", "keep"}:
                raise self.error()
            return SetTableOptions(options)
        self.i += 1
        if kw == "SET":
            self.expect_kw("TAG")
            values = [self.tag_assignment()]
            while self.accept_op(","):
                values.append(self.tag_assignment())
            return SetTags(tuple(values))
        t2 = self.toks[self.i]
        if t2[0] != "kw" or t2[1] not in ("COLUMN", "TAG"):
            raise self.error(t2)
        self.i += 1
        is_col = t2[1] == "COLUMN"
        if kw == "ADD":
            name = self.ident()
            dtype = self.data_type()
            if not is_col:
                return AddTag(name, dtype)
            pk, options = self.column_options()
            return AddColumn(ColumnDef(name, dtype, pk, options))
        if kw == "DROP":
            name = self.ident()
            return DropColumn(name) if is_col else DropTag(name)
        if kw == "MODIFY":
            name = self.ident()
            if not is_col:
                return ModifyTag(name, self.data_type())
            nt = self.toks[self.i]
            if nt[0] == "kw" and nt[1] in _TYPE_KEYWORDS:
                return ModifyColumn(name, self.data_type())
            _pk, options = self.column_options()
            return ModifyColumn(name, None, options)
        if kw == "RENAME":
            name = self.ident()
            new = self.ident()
            return RenameColumn(name, new) if is_col else RenameTag(name, new)
        if kw == "ALTER" and is_col:
            raise self.unsupported("ALTER COLUMN ... SET (virtual tables)", t)
        raise self.error(t)

    def tag_assignment(self) -> tuple[str, Expr]:
        name = self.ident()
        t = self.toks[self.i]
        if not (t[0] == "op" and (t[1] == "=" or t[1] == "==")):
            raise self.error(t)
        self.i += 1
        return name, self.value(False)

    # -- SHOW --------------------------------------------------------------------------------

    def show(self) -> Statement:
        self.i += 1
        t = self.toks[self.i]
        if t[0] == "kw" and t[1] == "CREATE":
            self.i += 1
            t = self.toks[self.i]
            if t[0] == "kw" and t[1] == "DATABASE":
                self.i += 1
                return ShowCreateDatabase(self.ident())
            if t[0] == "kw" and t[1] in ("TABLE", "STABLE"):
                self.i += 1
                return ShowCreateTable(self.table_name(), t[1] == "STABLE")
            if t[0] == "kw" and t[1] in ("VIEW", "VTABLE"):
                raise self.unsupported(f"SHOW CREATE {t[1]}", t)
            raise self.error(t)
        if t[0] == "kw" and t[1] in ("USER", "SYSTEM") and self.is_kw("DATABASES", 1):
            self.i += 2
            return Show("databases", kind=t[1].lower())
        if t[0] == "kw" and t[1] == "USER" and self.is_kw("PRIVILEGES", 1):
            self.i += 2
            return Show("user privileges")
        kind = None
        if t[0] == "kw" and t[1] in ("NORMAL", "CHILD", "VIRTUAL"):
            kind = t[1].lower()
            self.i += 1
        db = None
        if self.is_ident() and self.is_op(".", 1):
            db = self.ident()
            self.i += 1
        t = self.toks[self.i]
        if t[0] != "kw":
            raise self.error(t)
        kw = t[1]
        self.i += 1
        if kw in _SHOW_TABLES:
            return Show(kw.lower(), db, self.like_opt(), kind)
        if kind is not None:
            raise self.error(t)
        if kw in _SHOW_WITH_DB:
            return Show(kw.lower(), db, self.like_opt() if kw == "VIEWS" else None)
        if db is not None:
            raise self.error(t)
        if kw in _SHOW_PLAIN:
            return Show(kw.lower())
        if kw in ("USERS", "ANODES"):
            return Show(kw.lower() + (" full" if self.accept_kw("FULL") else ""))
        if kw == "GRANTS":
            if self.accept_kw("FULL"):
                return Show("grants full")
            if self.accept_kw("LOGS"):
                return Show("grants logs")
            return Show("grants")
        if kw == "VARIABLES":
            return Show("variables", like=self.like_opt())
        if kw == "LOCAL":
            self.expect_kw("VARIABLES")
            return Show("local variables", like=self.like_opt())
        if kw == "CLUSTER":
            if self.accept_kw("VARIABLES"):
                return Show("cluster variables", like=self.like_opt())
            for extra in ("ALIVE", "MACHINES"):
                if self.accept_kw(extra):
                    return Show("cluster " + extra.lower())
            return Show("cluster")
        if kw == "VNODES":
            if self.is_kw("ON"):
                raise self.unsupported("SHOW VNODES ON DNODE")
            return Show("vnodes")
        if kw in ("INDEXES", "TAGS", "TABLE", "DNODE", "TRANSACTION", "COMPACT", "ACCOUNTS"):
            raise self.unsupported(f"SHOW {kw}", t)
        raise self.error(t)

    def like_opt(self) -> str | None:
        if self.accept_kw("LIKE"):
            return self.string_value()
        return None

    # -- DELETE ------------------------------------------------------------------------------

    def delete(self) -> Delete:
        self.i += 1
        self.expect_kw("FROM")
        table = self.table_name()
        where = self.condition() if self.accept_kw("WHERE") else None
        return Delete(table, where)

    # -- values (INSERT rows, tag values) -----------------------------------------------------

    def value(self, insert: bool) -> Expr:
        """A tag or INSERT value: a (signed) literal, NULL, a bool, a string, ``?``, NOW/TODAY[()]
        (tags: any no-argument function), optionally ``+/- duration``."""
        toks = self.toks
        t = toks[self.i]
        k = t[0]
        if k == "int":
            self.i += 1
            node: Expr = IntLit(int(t[1]), t[1], t[2])
        elif k == "str":
            self.i += 1
            node = StringLit(decode_string(t[1]), t[1], t[2])
        elif k == "float":
            self.i += 1
            node = FloatLit(float(t[1]), t[1], t[2])
        elif k == "kw" and t[1] == "NULL":
            self.i += 1
            node = NullLit(t[2])
        elif k == "bool":
            self.i += 1
            node = BoolLit(t[1], t[2])
        elif k == "op" and (t[1] == "-" or t[1] == "+"):
            n = toks[self.i + 1]
            if n[0] not in ("int", "float", "hex", "bin"):
                raise self.ins_error("invalid data or symbol", t) if insert else self.error(n)
            self.i += 2
            node = _number(n, t[1], t[2])
        elif k == "hex" or k == "bin":
            self.i += 1
            node = _number(t, "", t[2])
        elif k == "kw" and t[1] in _NOARG_FUNCS and (not insert or t[1] == "NOW" or t[1] == "TODAY"):
            self.i += 1
            if self.is_op("("):
                self.i += 1
                self.expect_op(")")
            elif t[1] != "NOW" and t[1] != "TODAY":
                raise self.error()
            node = FuncCall(t[1].lower(), (), t[2])
        elif k == "op" and t[1] == "?":
            self.i += 1
            node = Placeholder(t[2])
        elif k == "dur":
            self.i += 1
            node = _duration(t)
        else:
            raise self.ins_error("invalid data or symbol", t) if insert else self.error(t)
        t = toks[self.i]
        while t[0] == "op" and (t[1] == "+" or t[1] == "-") and toks[self.i + 1][0] == "dur":
            node = BinaryOp(t[1], node, _duration(toks[self.i + 1]), t[2])
            self.i += 2
            t = toks[self.i]
        return node

    # -- INSERT ------------------------------------------------------------------------------

    def insert(self) -> Insert:
        self.i += 1
        if not self.accept_kw("INTO"):
            raise self.ins_error("keyword INTO is expected")
        targets: list[InsertTarget] = []
        toks = self.toks
        while True:
            t = toks[self.i]
            if t[0] == _EOF:
                if not targets:
                    raise SqlSyntaxError("no data in sql", t[2], TSC_INVALID_OPERATION)
                return Insert(tuple(targets))
            if t[0] != "id" and t[0] != "qid":
                raise self.ins_error("table_name is expected", t)
            targets.append(self.insert_target(not targets))

    def insert_target(self, first: bool) -> InsertTarget:
        toks = self.toks
        start = toks[self.i][2]
        table = self.table_name()
        columns = self.insert_columns() if self.is_op("(") else None
        using = None
        tag_names = None
        tag_values: tuple[Expr, ...] = ()
        options: dict[str, Any] = {}
        if self.accept_kw("USING"):
            using = self.table_name()
            if self.is_op("("):
                tag_names = self.insert_columns()
            if not self.accept_kw("TAGS"):
                raise self.ins_error("TAGS is expected")
            if not self.accept_op("("):
                raise self.ins_error("( is expected")
            values = [self.value(True)]
            while self.accept_op(","):
                values.append(self.value(True))
            if not self.accept_op(")"):
                raise self.ins_error(") is expected")
            tag_values = tuple(values)
            while True:
                if self.accept_kw("TTL"):
                    t = toks[self.i]
                    if t[0] != "int":
                        raise self.ins_error("Invalid option ttl", t)
                    self.i += 1
                    options["ttl"] = int(t[1])
                elif self.accept_kw("COMMENT"):
                    t = toks[self.i]
                    if t[0] != "str":
                        raise self.ins_error("Invalid option comment", t)
                    self.i += 1
                    options["comment"] = decode_string(t[1])
                else:
                    break
            if columns is None and self.is_op("("):
                columns = self.insert_columns()
        t = toks[self.i]
        if t[0] == "kw" and t[1] == "VALUES":
            self.i += 1
            rows = self.insert_rows()
        elif t[0] == "kw" and t[1] == "FILE":
            raise self.unsupported("INSERT ... FILE", t)
        elif first and using is None and ((t[0] == "kw" and t[1] == "SELECT") or (t[0] == "op" and t[1] == "(")):
            raise self.unsupported("INSERT ... SELECT", t)
        else:
            raise self.ins_error("keyword VALUES or FILE is expected", t)
        return InsertTarget(table, columns, rows, using, tag_names, tag_values, options, start)

    def insert_columns(self) -> tuple[str, ...]:
        """``(name, ...)`` of an INSERT: keywords are taken as names too (the INSERT parser does not
        reserve them); ``tbname`` is allowed."""
        self.i += 1
        names = []
        toks = self.toks
        while True:
            t = toks[self.i]
            k = t[0]
            if k == "id" or k == "qid":
                names.append(t[1])
            elif k == "kw":
                names.append(_ascii_lower(t[3]))
            else:
                raise self.error(t)
            self.i += 1
            t = toks[self.i]
            if t[0] == "op" and t[1] == ",":
                self.i += 1
                continue
            if t[0] == "op" and t[1] == ")":
                self.i += 1
                return tuple(names)
            raise self.ins_error(") expected", t)

    def insert_rows(self) -> tuple[tuple[Expr, ...], ...]:
        """``(v, ...) [,] (v, ...) ...`` after VALUES. The common literals are built inline (this is
        the hot path of bulk inserts); anything else goes through :meth:`value`."""
        rows = []
        toks = self.toks
        i = self.i
        while True:
            t = toks[i]
            if not (t[0] == "op" and t[1] == "("):
                break
            i += 1
            row = []
            while True:
                t = toks[i]
                k = t[0]
                nxt = toks[i + 1]
                if nxt[0] == "op" and (nxt[1] == "," or nxt[1] == ")"):
                    if k == "int":
                        row.append(IntLit(int(t[1]), t[1], t[2]))
                    elif k == "str":
                        row.append(StringLit(decode_string(t[1]), t[1], t[2]))
                    elif k == "float":
                        row.append(FloatLit(float(t[1]), t[1], t[2]))
                    elif k == "kw" and t[1] == "NULL":
                        row.append(NullLit(t[2]))
                    elif k == "bool":
                        row.append(BoolLit(t[1], t[2]))
                    else:
                        self.i = i
                        row.append(self.value(True))
                        i = self.i - 1
                    i += 1
                else:
                    self.i = i
                    row.append(self.value(True))
                    i = self.i
                t = toks[i]
                if t[0] == "op":
                    if t[1] == ",":
                        i += 1
                        continue
                    if t[1] == ")":
                        i += 1
                        break
                raise self.ins_error(") expected", t)
            rows.append(tuple(row))
            t = toks[i]
            if t[0] == "op" and t[1] == "," and toks[i + 1][0] == "op" and toks[i + 1][1] == "(":
                i += 1  # TDengine skips one comma between rows
        self.i = i
        if not rows:
            raise self.ins_error("no any data points", self.toks[-1])
        return tuple(rows)

    # -- SELECT ------------------------------------------------------------------------------

    def select(self) -> Select:
        self.expect_kw("SELECT")
        distinct = False
        if self.accept_kw("DISTINCT"):
            distinct = True
        else:
            self.accept_kw("ALL")
        if self.is_kw("TAGS"):
            raise self.unsupported("SELECT TAGS")
        items = [self.select_item()]
        while self.accept_op(","):
            items.append(self.select_item())
        table = alias = where = having = None
        if self.accept_kw("FROM"):
            if self.is_op("("):
                raise self.unsupported("subqueries")
            table = self.table_name()
            if self.accept_kw("AS"):
                alias = self.ident()
            elif self.is_ident():
                alias = self.ident()
            t = self.toks[self.i]
            if (t[0] == "op" and t[1] == ",") or (t[0] == "kw" and t[1] in _JOIN_KWS):
                raise self.unsupported("joins", t)
        if self.accept_kw("WHERE"):
            where = self.condition()
        partition_by: tuple[SelectItem, ...] = ()
        if self.accept_kw("PARTITION"):
            self.expect_kw("BY")
            parts = [self.partition_item()]
            while self.accept_op(","):
                parts.append(self.partition_item())
            partition_by = tuple(parts)
        t = self.toks[self.i]
        if t[0] == "kw" and t[1] in _WINDOW_KWS:
            raise self.unsupported(f"{t[1]} clauses", t)
        group_by: tuple[Expr, ...] = ()
        if self.accept_kw("GROUP"):
            self.expect_kw("BY")
            groups = [self.expr()]
            while self.accept_op(","):
                groups.append(self.expr())
            group_by = tuple(groups)
        if self.accept_kw("HAVING"):
            having = self.condition()
        if self.is_kw("UNION"):
            raise self.unsupported("UNION")
        order_by: tuple[OrderItem, ...] = ()
        if self.accept_kw("ORDER"):
            self.expect_kw("BY")
            orders = [self.order_item()]
            while self.accept_op(","):
                orders.append(self.order_item())
            order_by = tuple(orders)
        slimit = soffset = limit = offset = None
        if self.accept_kw("SLIMIT"):
            slimit = self.int_value()
            if self.accept_kw("SOFFSET"):
                soffset = self.int_value()
            elif self.accept_op(","):
                slimit, soffset = self.int_value(), slimit
        if self.accept_kw("LIMIT"):
            limit = self.int_value()
            if self.accept_kw("OFFSET"):
                offset = self.int_value()
            elif self.accept_op(","):
                limit, offset = self.int_value(), limit
        return Select(tuple(items), table, alias, where, partition_by, group_by, having, order_by, limit, offset,
                      slimit, soffset, distinct)

    def select_item(self) -> SelectItem:
        t = self.toks[self.i]
        if t[0] == "op" and t[1] == "*":
            self.i += 1
            return SelectItem(Star(None, t[2]), None, "*")
        if self.is_ident() and self.is_op(".", 1) and self.is_op("*", 2):
            self.i += 3
            return SelectItem(Star(t[1], t[2]), None, self.span_text(self.i - 3, self.i))
        start = self.i
        expr = self.condition()
        text = self.span_text(start, self.i)
        return SelectItem(expr, self.alias_opt(), text)

    def alias_opt(self) -> str | None:
        if self.accept_kw("AS"):
            return self.ident(allow_alias=True)
        k = self.toks[self.i][0]
        if k == "id" or k == "qid" or k == "alias":
            return self.ident(allow_alias=True)
        return None

    def partition_item(self) -> SelectItem:
        start = self.i
        expr = self.expr()
        text = self.span_text(start, self.i)
        return SelectItem(expr, self.alias_opt(), text)

    def order_item(self) -> OrderItem:
        expr = self.expr()
        desc = False
        if self.accept_kw("DESC"):
            desc = True
        else:
            self.accept_kw("ASC")
        nulls = None
        if self.accept_kw("NULLS"):
            if self.accept_kw("FIRST"):
                nulls = "first"
            else:
                self.expect_kw("LAST")
                nulls = "last"
        return OrderItem(expr, desc, nulls)

    # -- expressions -------------------------------------------------------------------------

    def condition(self) -> Expr:
        """common_expression: an expression or a boolean combination of predicates."""
        pos = self.toks[self.i][2]
        first = self.and_cond()
        if not self.is_kw("OR"):
            return first
        args = [first]
        while self.accept_kw("OR"):
            args.append(self.and_cond())
        return Or(tuple(args), pos)

    def and_cond(self) -> Expr:
        pos = self.toks[self.i][2]
        first = self.not_cond()
        if not self.is_kw("AND"):
            return first
        args = [first]
        while self.accept_kw("AND"):
            args.append(self.not_cond())
        return And(tuple(args), pos)

    def not_cond(self) -> Expr:
        t = self.toks[self.i]
        if t[0] == "kw" and t[1] == "NOT":
            self.i += 1
            return Not(self.not_cond(), t[2])
        return self.predicate()

    def predicate(self) -> Expr:
        pos = self.toks[self.i][2]
        left = self.expr()
        t = self.toks[self.i]
        k, v = t[0], t[1]
        if k == "op":
            op = _COMPARE_OPS.get(v)
            if op is None:
                return left
            self.i += 1
            return Compare(op, left, self.expr(), pos)
        if k != "kw":
            return left
        negated = False
        if v == "NOT":
            n = self.toks[self.i + 1]
            if n[0] != "kw" or n[1] not in ("LIKE", "REGEXP", "IN", "BETWEEN"):
                return left
            negated = True
            self.i += 1
            v = n[1]
        if v in _KW_COMPARE:
            self.i += 1
            op = _KW_COMPARE[v]
            if negated:
                op = "not like" if op == "like" else "nmatch"
            return Compare(op, left, self.expr(), pos)
        if v == "BETWEEN":
            self.i += 1
            low = self.expr()
            self.expect_kw("AND")
            return Between(left, low, self.expr(), negated, pos)
        if v == "IN":
            self.i += 1
            self.expect_op("(")
            if self.is_kw("SELECT"):
                raise self.unsupported("subqueries")
            items = [self.expr()]
            while self.accept_op(","):
                items.append(self.expr())
            self.expect_op(")")
            return InList(left, tuple(items), negated, pos)
        if v == "IS":
            self.i += 1
            neg = self.accept_kw("NOT")
            self.expect_kw("NULL")
            return IsNull(left, neg, pos)
        return left

    def expr(self) -> Expr:
        """An expression (no predicates): bitwise, additive, multiplicative, unary, ``->``."""
        return self._left_assoc(self.additive, ("&", "|"))

    def additive(self) -> Expr:
        return self._left_assoc(self.multiplicative, ("+", "-"))

    def multiplicative(self) -> Expr:
        return self._left_assoc(self.unary, ("*", "/", "%"))

    def _left_assoc(self, operand, ops: tuple[str, ...]) -> Expr:
        """``operand (op operand)*`` folded to the left: one precedence level of binary operators."""
        left = operand()
        t = self.toks[self.i]
        while t[0] == "op" and t[1] in ops:
            self.i += 1
            left = BinaryOp(t[1], left, operand(), t[2])
            t = self.toks[self.i]
        return left

    def unary(self) -> Expr:
        t = self.toks[self.i]
        if t[0] == "op" and (t[1] == "-" or t[1] == "+"):
            n = self.toks[self.i + 1]
            if n[0] in ("int", "float", "hex", "bin"):
                self.i += 2
                return self.postfix(_number(n, t[1], t[2]))
            self.i += 1
            operand = self.unary()
            if isinstance(operand, (IntLit, FloatLit)):
                return _negate(operand, t[1], t[2])
            return UnaryOp(t[1], operand, t[2])
        return self.postfix(self.primary())

    def postfix(self, node: Expr) -> Expr:
        while self.is_op("->"):
            t = self.toks[self.i]
            self.i += 1
            s = self.toks[self.i]
            if s[0] != "str":
                raise self.error(s)
            self.i += 1
            node = BinaryOp("->", node, StringLit(decode_string(s[1]), s[1], s[2]), t[2])
        return node

    def primary(self) -> Expr:
        toks = self.toks
        t = toks[self.i]
        k = t[0]
        pos = t[2]
        if k == "id" or k == "qid":
            n = toks[self.i + 1]
            if n[0] == "op":
                if n[1] == "(":
                    self.i += 2
                    return FuncCall(t[1], self.func_args(False), pos)
                if n[1] == ".":
                    nn = toks[self.i + 2]
                    if nn[0] == "id" or nn[0] == "qid":
                        self.i += 3
                        return Column(nn[1], t[1], pos)
                    if nn[0] == "kw" and (nn[1] == "TBNAME" or nn[1].startswith("_")):
                        self.i += 3
                        return PseudoColumn(nn[1].lower(), t[1], pos)
                    raise self.error(nn)
            self.i += 1
            return Column(t[1], None, pos)
        if k == "int" or k == "float" or k == "hex" or k == "bin":
            self.i += 1
            return _number(t, "", pos)
        if k == "str":
            self.i += 1
            return StringLit(decode_string(t[1]), t[1], pos)
        if k == "bool":
            self.i += 1
            return BoolLit(t[1], pos)
        if k == "dur":
            self.i += 1
            return _duration(t)
        if k == "alias":
            self.i += 1
            return Column(t[1], None, pos)
        if k == "op":
            if t[1] == "(":
                self.i += 1
                if self.is_kw("SELECT"):
                    raise self.unsupported("subqueries")
                inner = self.condition()
                self.expect_op(")")
                return inner
            if t[1] == "?":
                self.i += 1
                return Placeholder(pos)
            raise self.error(t)
        if k != "kw":
            raise self.error(t)
        kw = t[1]
        if kw == "NULL":
            self.i += 1
            return NullLit(pos)
        if kw == "TBNAME" or kw.startswith("_"):
            self.i += 1
            return PseudoColumn(kw.lower(), None, pos)
        if kw in _STAR_FUNCS:
            self.i += 1
            self.expect_op("(")
            return FuncCall(kw.lower(), self.func_args(True), pos)
        if kw in _NOARG_FUNCS:
            self.i += 1
            if self.accept_op("("):
                self.expect_op(")")
            elif kw != "NOW" and kw != "TODAY":
                raise self.error()
            return FuncCall(kw.lower(), (), pos)
        if kw == "TIMESTAMP":
            s = toks[self.i + 1]
            if s[0] != "str":
                raise self.error(s)
            self.i += 2
            return TimestampLit(decode_string(s[1]), pos)
        if kw == "CAST":
            self.i += 1
            self.expect_op("(")
            inner = self.condition()
            self.expect_kw("AS")
            dtype = self.data_type(default_len=True)
            self.expect_op(")")
            return Cast(inner, dtype, pos)
        if kw == "CASE":
            return self.case()
        if kw in _KW_FUNCS:
            self.i += 1
            self.expect_op("(")
            if kw == "TRIM" and toks[self.i][0] == "kw" and toks[self.i][1] in ("BOTH", "LEADING", "TRAILING"):
                raise self.unsupported("TRIM(BOTH|LEADING|TRAILING ...)")
            if kw == "RAND" and self.accept_op(")"):
                return FuncCall("rand", (), pos)
            args = [self.expr()]
            while self.accept_op(","):
                args.append(self.expr())
            n = toks[self.i]
            if n[0] == "kw" and n[1] in ("FROM", "IN", "FOR"):
                raise self.unsupported(f"{kw}(... {n[1]} ...)", n)
            self.expect_op(")")
            return FuncCall(kw.lower(), tuple(args), pos)
        if kw == "COLS":
            raise self.unsupported("COLS()", t)
        raise self.error(t)

    def func_args(self, star: bool) -> tuple[Expr, ...]:
        """Arguments after ``(`` up to and including ``)``."""
        if self.accept_op(")"):
            return ()
        toks = self.toks
        t = toks[self.i]
        if star and t[0] == "op" and t[1] == "*":  # a bare * is the only argument (COUNT(*))
            self.i += 1
            self.expect_op(")")
            return (Star(None, t[2]),)
        args = []
        while True:
            t = toks[self.i]
            if star and (t[0] == "id" or t[0] == "qid") and self.is_op(".", 1) and self.is_op("*", 2):
                self.i += 3
                args.append(Star(t[1], t[2]))
            else:
                args.append(self.expr())
            if self.accept_op(","):
                continue
            self.expect_op(")")
            return tuple(args)

    def case(self) -> Case:
        pos = self.toks[self.i][2]
        self.i += 1
        operand = None if self.is_kw("WHEN") else self.condition()
        whens = []
        while self.accept_kw("WHEN"):
            cond = self.condition()
            self.expect_kw("THEN")
            whens.append((cond, self.condition()))
        if not whens:
            raise self.error()
        else_ = self.condition() if self.accept_kw("ELSE") else None
        self.expect_kw("END")
        return Case(operand, tuple(whens), else_, pos)


def _number(t: tuple, sign: str, pos: int) -> Expr:
    k, text = t[0], t[1]
    if k == "int":
        v = int(text)
    elif k == "float":
        f = float(text)
        return FloatLit(-f if sign == "-" else f, sign + text if sign == "-" else text, pos)
    elif k == "hex":
        v = int(text[2:], 16)
    else:
        v = int(text[2:], 2)
    return IntLit(-v if sign == "-" else v, sign + text if sign == "-" else text, pos)


def _negate(lit: IntLit | FloatLit, sign: str, pos: int) -> Expr:
    if sign == "+":
        return lit
    text = lit.text[1:] if lit.text.startswith("-") else "-" + lit.text
    return type(lit)(-lit.value, text, pos)


def _duration(t: tuple) -> DurationLit:
    text = t[1]
    return DurationLit(int(text[:-1]), _ascii_lower(text[-1]), t[2])


_GC_PAUSE_CHARS = 32 * 1024


def parse(sql: str) -> Statement:
    """Parse one SQL statement (a trailing ``;`` is fine; anything after the first ``;`` is ignored,
    as TDengine does). Raises SqlSyntaxError or UnsupportedSql."""
    if len(sql) < _GC_PAUSE_CHARS or not gc.isenabled():
        return _Parser(sql).statement()
    # A bulk INSERT allocates hundreds of thousands of small acyclic objects: the cyclic GC would
    # run full collections over the whole heap for nothing (it doubles the parse time).
    gc.disable()
    try:
        return _Parser(sql).statement()
    finally:
        gc.enable()


# ---------------------------------------------------------------------------------------------
# Rendering back to SQL
# ---------------------------------------------------------------------------------------------

_PLAIN_IDENT = re.compile(r"[a-z_][a-z0-9_]*\Z")


def _ident(name: str) -> str:
    if _PLAIN_IDENT.match(name) and name.upper() not in KEYWORDS and name not in ("true", "false"):
        return name
    return "`" + name.replace("`", "``") + "`"


def _quote(value: str) -> str:
    out = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return "'" + out.replace("\t", "\\t").replace("\f", "\\f").replace("\b", "\\b") + "'"


def _table(t: TableName) -> str:
    return f"{_ident(t.db)}.{_ident(t.name)}" if t.db is not None else _ident(t.name)


def _opt_value(v: Any) -> str:
    """An option value that is not a string option: int, float, duration/retention text or a tuple."""
    if isinstance(v, tuple):
        return ",".join(_opt_value(x) for x in v)
    return str(v)


def _db_options(options: dict[str, Any]) -> str:
    parts = []
    for k, v in options.items():
        if k in ("precision", "cachemodel", "encrypt_algorithm", "dnodes"):
            parts.append(f"{k.upper()} {_quote(v)}")
        else:
            parts.append(f"{k.upper()} {_opt_value(v)}")
    return "".join(" " + p for p in parts)


def _table_options(options: dict[str, Any]) -> str:
    parts = []
    for k, v in options.items():
        if k == "comment":
            parts.append(f"COMMENT {_quote(v)}")
        elif k in ("rollup", "sma"):
            parts.append(f"{k.upper()}({', '.join(_ident(x) for x in v)})")
        elif isinstance(v, tuple):
            parts.append(f"{k.upper()} {','.join(v)}")
        else:
            parts.append(f"{k.upper()} {v}")
    return "".join(" " + p for p in parts)


def _column_def(c: ColumnDef) -> str:
    out = f"{_ident(c.name)} {c.type.sql()}"
    if c.primary_key:
        out += " PRIMARY KEY"
    for k, v in c.options.items():
        out += f" {k.upper()} {_quote(v)}"
    return out


def _names(names: tuple[str, ...]) -> str:
    return "(" + ", ".join(_ident(n) if n != "tbname" else "tbname" for n in names) + ")"


_SIMPLE_EXPR = (IntLit, FloatLit, StringLit, BoolLit, NullLit, DurationLit, TimestampLit, Placeholder, Column,
                PseudoColumn, Star, FuncCall, Cast, Case)


def _wrap(e: Expr) -> str:
    s = to_sql(e)
    return s if isinstance(e, _SIMPLE_EXPR) else f"({s})"


def _expr_sql(e: Expr) -> str:
    if isinstance(e, IntLit) or isinstance(e, FloatLit):
        return e.text
    if isinstance(e, StringLit):
        return e.raw or _quote(e.value)
    if isinstance(e, BoolLit):
        return "true" if e.value else "false"
    if isinstance(e, NullLit):
        return "NULL"
    if isinstance(e, DurationLit):
        return e.text if e.value >= 0 else f"-({-e.value}{e.unit})"
    if isinstance(e, TimestampLit):
        return f"TIMESTAMP {_quote(e.value)}"
    if isinstance(e, Placeholder):
        return "?"
    if isinstance(e, Column):
        return f"{_ident(e.table)}.{_ident(e.name)}" if e.table is not None else _ident(e.name)
    if isinstance(e, PseudoColumn):
        return f"{_ident(e.table)}.{e.name}" if e.table is not None else e.name
    if isinstance(e, Star):
        return f"{_ident(e.table)}.*" if e.table is not None else "*"
    if isinstance(e, FuncCall):
        name = e.name if e.name.upper() in KEYWORDS else _ident(e.name)
        return f"{name}({', '.join(to_sql(a) for a in e.args)})"
    if isinstance(e, Cast):
        return f"CAST({to_sql(e.expr)} AS {e.type.sql()})"
    if isinstance(e, UnaryOp):
        return f"{e.op}({to_sql(e.operand)})"
    if isinstance(e, BinaryOp):
        if e.op == "->":
            return f"{_wrap(e.left)}->{to_sql(e.right)}"
        return f"{_wrap(e.left)} {e.op} {_wrap(e.right)}"
    if isinstance(e, Compare):
        return f"{_wrap(e.left)} {e.op.upper()} {_wrap(e.right)}"
    if isinstance(e, Between):
        neg = " NOT" if e.negated else ""
        return f"{_wrap(e.expr)}{neg} BETWEEN {_wrap(e.low)} AND {_wrap(e.high)}"
    if isinstance(e, InList):
        neg = " NOT" if e.negated else ""
        return f"{_wrap(e.expr)}{neg} IN ({', '.join(to_sql(i) for i in e.items)})"
    if isinstance(e, IsNull):
        return f"{_wrap(e.expr)} IS {'NOT ' if e.negated else ''}NULL"
    if isinstance(e, And):
        return " AND ".join(_wrap(a) for a in e.args)
    if isinstance(e, Or):
        return " OR ".join(_wrap(a) for a in e.args)
    if isinstance(e, Not):
        return f"NOT {_wrap(e.arg)}"
    if isinstance(e, Case):
        out = "CASE"
        if e.operand is not None:
            out += " " + _wrap(e.operand)
        for w, r in e.whens:
            out += f" WHEN {_wrap(w)} THEN {_wrap(r)}"
        if e.else_ is not None:
            out += f" ELSE {_wrap(e.else_)}"
        return out + " END"
    raise TypeError(f"not an expression: {e!r}")


def _select_sql(s: Select) -> str:
    def item(i: SelectItem) -> str:
        out = to_sql(i.expr)
        return out + (f" AS {_ident(i.alias)}" if i.alias is not None else "")

    out = "SELECT " + ("DISTINCT " if s.distinct else "") + ", ".join(item(i) for i in s.items)
    if s.table is not None:
        out += " FROM " + _table(s.table) + (f" {_ident(s.alias)}" if s.alias else "")
    if s.where is not None:
        out += " WHERE " + to_sql(s.where)
    if s.partition_by:
        out += " PARTITION BY " + ", ".join(item(i) for i in s.partition_by)
    if s.group_by:
        out += " GROUP BY " + ", ".join(to_sql(g) for g in s.group_by)
    if s.having is not None:
        out += " HAVING " + to_sql(s.having)
    if s.order_by:
        def order(o: OrderItem) -> str:
            return to_sql(o.expr) + (" DESC" if o.desc else "") + (f" NULLS {o.nulls.upper()}" if o.nulls else "")
        out += " ORDER BY " + ", ".join(order(o) for o in s.order_by)
    if s.slimit is not None:
        out += f" SLIMIT {s.slimit}" + (f" SOFFSET {s.soffset}" if s.soffset is not None else "")
    if s.limit is not None:
        out += f" LIMIT {s.limit}" + (f" OFFSET {s.offset}" if s.offset is not None else "")
    return out


def _alter_action_sql(a: AlterAction) -> str:
    if isinstance(a, AddColumn):
        return "ADD COLUMN " + _column_def(a.column)
    if isinstance(a, DropColumn):
        return f"DROP COLUMN {_ident(a.name)}"
    if isinstance(a, ModifyColumn):
        if a.type is not None:
            return f"MODIFY COLUMN {_ident(a.name)} {a.type.sql()}"
        return f"MODIFY COLUMN {_ident(a.name)}" + "".join(f" {k.upper()} {_quote(v)}" for k, v in a.options.items())
    if isinstance(a, RenameColumn):
        return f"RENAME COLUMN {_ident(a.name)} {_ident(a.new_name)}"
    if isinstance(a, AddTag):
        return f"ADD TAG {_ident(a.name)} {a.type.sql()}"
    if isinstance(a, DropTag):
        return f"DROP TAG {_ident(a.name)}"
    if isinstance(a, ModifyTag):
        return f"MODIFY TAG {_ident(a.name)} {a.type.sql()}"
    if isinstance(a, RenameTag):
        return f"RENAME TAG {_ident(a.name)} {_ident(a.new_name)}"
    if isinstance(a, SetTags):
        return "SET TAG " + ", ".join(f"{_ident(n)} = {to_sql(v)}" for n, v in a.values)
    if isinstance(a, SetTableOptions):
        return _table_options(a.options).strip()
    raise TypeError(f"not an ALTER action: {a!r}")


def _child_sql(c: ChildTableDef) -> str:
    out = ("IF NOT EXISTS " if c.if_not_exists else "") + f"{_table(c.table)} USING {_table(c.stable)}"
    if c.tag_names is not None:
        out += " " + _names(c.tag_names)
    return out + " TAGS (" + ", ".join(to_sql(v) for v in c.tag_values) + ")" + _table_options(c.options)


def _insert_target_sql(t: InsertTarget) -> str:
    out = _table(t.table)
    if t.using is not None:
        out += f" USING {_table(t.using)}"
        if t.tag_names is not None:
            out += " " + _names(t.tag_names)
        out += " TAGS (" + ", ".join(to_sql(v) for v in t.tag_values) + ")" + _table_options(t.options)
    if t.columns is not None:
        out += " " + _names(t.columns)
    return out + " VALUES " + " ".join("(" + ", ".join(to_sql(v) for v in row) + ")" for row in t.rows)


def to_sql(node: Node) -> str:
    """Render an AST node (statement, expression, TableName, ColumnDef...) as SQL text that
    :func:`parse` turns back into an equal node."""
    if isinstance(node, Expr):
        return _expr_sql(node)
    if isinstance(node, TableName):
        return _table(node)
    if isinstance(node, ColumnDef):
        return _column_def(node)
    if isinstance(node, Select):
        return _select_sql(node)
    if isinstance(node, Insert):
        return "INSERT INTO " + " ".join(_insert_target_sql(t) for t in node.targets)
    if isinstance(node, CreateDatabase):
        return "CREATE DATABASE " + ("IF NOT EXISTS " if node.if_not_exists else "") + _ident(node.name) + \
            _db_options(node.options)
    if isinstance(node, AlterDatabase):
        return "ALTER DATABASE " + _ident(node.name) + _db_options(node.options)
    if isinstance(node, DropDatabase):
        return "DROP DATABASE " + ("IF EXISTS " if node.if_exists else "") + _ident(node.name) + \
            (" FORCE" if node.force else "")
    if isinstance(node, UseDatabase):
        return "USE " + _ident(node.name)
    if isinstance(node, Show):
        out = "SHOW "
        if node.kind:
            out += node.kind.upper() + " "
        if node.db is not None:
            out += _ident(node.db) + "."
        out += node.what.upper()
        if node.like is not None:
            out += " LIKE " + _quote(node.like)
        return out
    if isinstance(node, ShowCreateDatabase):
        return "SHOW CREATE DATABASE " + _ident(node.name)
    if isinstance(node, ShowCreateTable):
        return f"SHOW CREATE {'STABLE' if node.stable else 'TABLE'} {_table(node.table)}"
    if isinstance(node, Describe):
        return "DESCRIBE " + _table(node.table)
    if isinstance(node, CreateStable):
        return "CREATE STABLE " + ("IF NOT EXISTS " if node.if_not_exists else "") + _table(node.table) + \
            " (" + ", ".join(_column_def(c) for c in node.columns) + ") TAGS (" + \
            ", ".join(_column_def(c) for c in node.tags) + ")" + _table_options(node.options)
    if isinstance(node, CreateTable):
        return "CREATE TABLE " + ("IF NOT EXISTS " if node.if_not_exists else "") + _table(node.table) + \
            " (" + ", ".join(_column_def(c) for c in node.columns) + ")" + _table_options(node.options)
    if isinstance(node, ChildTableDef):
        return _child_sql(node)
    if isinstance(node, CreateChildTables):
        return "CREATE TABLE " + " ".join(_child_sql(c) for c in node.tables)
    if isinstance(node, AlterTable):
        return f"ALTER {'STABLE' if node.stable else 'TABLE'} {_table(node.table)} {_alter_action_sql(node.action)}"
    if isinstance(node, DropTable):
        return "DROP TABLE " + ", ".join(("IF EXISTS " if t.if_exists else "") + _table(t.table)
                                         for t in node.tables)
    if isinstance(node, DropStable):
        return "DROP STABLE " + ("IF EXISTS " if node.if_exists else "") + _table(node.table)
    if isinstance(node, Delete):
        return "DELETE FROM " + _table(node.table) + (f" WHERE {to_sql(node.where)}" if node.where else "")
    if isinstance(node, CreateTopic):
        out = "CREATE TOPIC " + ("IF NOT EXISTS " if node.if_not_exists else "") + _ident(node.name)
        out += {"": "", "with": " WITH META", "only": " ONLY META"}[node.meta] + " AS "
        if node.kind == "database":
            return out + "DATABASE " + _ident(node.database or "")
        if node.kind == "stable" and node.stable is not None:
            return out + "STABLE " + _table(node.stable) + (f" WHERE {to_sql(node.where)}" if node.where else "")
        if node.query is not None:
            return out + _select_sql(node.query)
        raise TypeError(f"incomplete topic: {node!r}")
    if isinstance(node, DropTopic):
        return "DROP TOPIC " + ("IF EXISTS " if node.if_exists else "") + ("FORCE " if node.force else "") + \
            _ident(node.name)
    if isinstance(node, DropConsumerGroup):
        return "DROP CONSUMER GROUP " + ("IF EXISTS " if node.if_exists else "") + \
            ("FORCE " if node.force else "") + f"{_ident(node.group)} ON {_ident(node.topic)}"
    if isinstance(node, SelectItem):
        return to_sql(node.expr) + (f" AS {_ident(node.alias)}" if node.alias is not None else "")
    if isinstance(node, InsertTarget):
        return _insert_target_sql(node)
    raise TypeError(f"cannot render {node!r}")
