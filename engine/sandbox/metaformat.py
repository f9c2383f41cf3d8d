"""TDengine 3.3.7 meta WAL bodies: the DDL and delete messages a TMQ consumer gets as raw data.

A meta message (``tmq_raw_data.raw`` with ``raw_type`` = the TDMT code of the WAL entry) is an
``SMsgHead`` {i32 contLen (whole body, head included), i32 vgId}, little-endian, followed by the
request the vnode executed:

=========  =============================  =====================================
raw_type   request                        class here
=========  =============================  =====================================
515        SVCreateTbBatchReq             :class:`CreateTablesBatch` of :class:`CreateTableRequest`
517        SVAlterTbReq                   :class:`AlterTable`
519        SVDropTbBatchReq               :class:`DropTablesBatch` of :class:`DropTableRequest`
531        SVCreateStbReq                 :class:`CreateSuperTable`
533        SVCreateStbReq + SMAlterStbReq :class:`AlterSuperTable` (``alter``: :class:`SuperTableAlter`)
535        SVDropStbReq                   :class:`DropSuperTable`
579        SDeleteRes (no frame)          :class:`Delete`
=========  =============================  =====================================

Every class has ``encode(vgroup_id=None, source=None) -> bytes`` (head + body exactly as TDengine
3.3.7 writes it) and ``decode(data)`` (raises :class:`~engine.errors.CodecError` on any truncated or
inconsistent input; lengths and counts are checked against the bytes present before anything is
built).  ``decode(...).encode()`` gives the input back byte for byte for everything a 3.3.7 server
writes; fields added by newer servers at the end of a length-framed struct are kept in ``extra``,
and optional trailing fields an older server left out stay out (``trailing`` = how many of them were
present; None = all, the 3.3.7 form every freshly built object gets).

Encoding primitives (TDengine ``SEncoder``): fixed-width little-endian integers; ``…v`` varints are
LEB128 (signed ones zigzag first); Binary = U32v length + bytes; CStr = Binary of the UTF-8 text
plus its NUL; a *frame* (``tStartEncode``) is an i32 length followed by that many bytes.

Tag values (``STag``, tdataformat.c) are modelled by :class:`Tags`: a list of :class:`TagValue`
(column id, type, Python value) or, for a JSON tag, (key, type, value) pairs.  Python values:
bool -> ``bool``; integer types and timestamp -> ``int``; float/double -> ``float``; varchar ->
``str`` (UTF-8, undecodable bytes kept with ``surrogateescape``); nchar -> ``str`` (stored as
UCS-4); varbinary/geometry -> ``bytes``; JSON null -> ``None``.  A NULL tag of a normal child
table is simply absent from the STag; a NULL (or ``'{}'``) JSON tag is a JSON STag with no values.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from engine.errors import CodecError

# --- constants ------------------------------------------------------------------------------------

TSDB_DATA_TYPE_NULL = 0
TSDB_DATA_TYPE_BOOL = 1
TSDB_DATA_TYPE_TINYINT = 2
TSDB_DATA_TYPE_SMALLINT = 3
TSDB_DATA_TYPE_INT = 4
TSDB_DATA_TYPE_BIGINT = 5
TSDB_DATA_TYPE_FLOAT = 6
TSDB_DATA_TYPE_DOUBLE = 7
TSDB_DATA_TYPE_VARCHAR = 8
TSDB_DATA_TYPE_TIMESTAMP = 9
TSDB_DATA_TYPE_NCHAR = 10
TSDB_DATA_TYPE_UTINYINT = 11
TSDB_DATA_TYPE_USMALLINT = 12
TSDB_DATA_TYPE_UINT = 13
TSDB_DATA_TYPE_UBIGINT = 14
TSDB_DATA_TYPE_JSON = 15
TSDB_DATA_TYPE_VARBINARY = 16
TSDB_DATA_TYPE_DECIMAL = 17
TSDB_DATA_TYPE_BLOB = 18
TSDB_DATA_TYPE_MEDIUMBLOB = 19
TSDB_DATA_TYPE_GEOMETRY = 20
TSDB_DATA_TYPE_DECIMAL64 = 21

RAW_CREATE_TABLE = 515
RAW_ALTER_TABLE = 517
RAW_DROP_TABLE = 519
RAW_CREATE_STB = 531
RAW_ALTER_STB = 533
RAW_DROP_STB = 535
RAW_DELETE = 579
META_RAW_TYPES = frozenset({515, 517, 519, 531, 533, 535, 579})

TD_REQ_FROM_APP = 0x0
TD_REQ_FROM_TAOX = 0x8

# table types (taosdef.h)
TSDB_SUPER_TABLE = 1
TSDB_CHILD_TABLE = 2
TSDB_NORMAL_TABLE = 3
TSDB_VIRTUAL_NORMAL_TABLE = 8
TSDB_VIRTUAL_CHILD_TABLE = 9

TD_CREATE_IF_NOT_EXISTS = 0x1  # SVCreateTbReq.flags

# SSchema.flags (tmsg.h)
COL_SMA_ON = 0x01
COL_IDX_ON = 0x02
COL_IS_KEY = 0x04
COL_REF_BY_STM = 0x08
COL_SET_NULL = 0x10
COL_SET_VAL = 0x20
COL_IS_SYSINFO = 0x40
COL_HAS_TYPE_MOD = 0x80

# ALTER TABLE / ALTER STABLE actions (tmsg.h TSDB_ALTER_TABLE_*)
ALTER_ADD_TAG = 1
ALTER_DROP_TAG = 2
ALTER_UPDATE_TAG_NAME = 3
ALTER_UPDATE_TAG_VAL = 4
ALTER_ADD_COLUMN = 5
ALTER_DROP_COLUMN = 6
ALTER_UPDATE_COLUMN_BYTES = 7
ALTER_UPDATE_TAG_BYTES = 8
ALTER_UPDATE_OPTIONS = 9
ALTER_UPDATE_COLUMN_NAME = 10
ALTER_ADD_TAG_INDEX = 11
ALTER_DROP_TAG_INDEX = 12
ALTER_UPDATE_COLUMN_COMPRESS = 13
ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION = 14
ALTER_UPDATE_MULTI_TAG_VAL = 15
ALTER_ALTER_COLUMN_REF = 16
ALTER_REMOVE_COLUMN_REF = 17
ALTER_ADD_COLUMN_WITH_COLUMN_REF = 18

# Column compression (tcol.h): alg = encode << 24 | compress << 8 | level.
ENCODE_NAMES = {1: "simple8b", 2: "delta-i", 3: "bit-packing", 4: "delta-d", 0xFF: "disabled"}
COMPRESS_NAMES = {1: "lz4", 2: "zlib", 3: "zstd", 4: "tsz", 5: "xz", 0xFF: "disabled"}
LEVEL_NAMES = {1: "low", 2: "medium", 3: "high"}
_DEFAULT_ENCODE = {0: 3, 1: 3, 2: 1, 3: 1, 4: 1, 5: 1, 6: 4, 7: 4, 9: 2, 11: 1, 12: 1, 13: 1, 14: 1}
_DEFAULT_COMPRESS = {1: 3, 2: 2, 3: 2, 8: 3, 10: 3, 11: 2, 12: 2, 16: 3, 17: 3, 21: 3}
_LEVEL_MEDIUM = 2

_VAR_TYPES = frozenset({8, 10, 15, 16, 18, 19, 20})
_DECIMAL_TYPES = frozenset({17, 21})
# Value width and struct format of the fixed-size types inside an STag (tDataTypes[].bytes; NULL is 2).
_TAG_FIXED = {
    0: (2, None), 1: (1, None), 2: (1, "<b"), 3: (2, "<h"), 4: (4, "<i"), 5: (8, "<q"), 6: (4, "<f"),
    7: (8, "<d"), 9: (8, "<q"), 11: (1, "<B"), 12: (2, "<H"), 13: (4, "<I"), 14: (8, "<Q"),
}
# Width of every fixed type as a column (SSchema.bytes).
_FIXED_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 4, 7: 8, 9: 8, 11: 1, 12: 2, 13: 4, 14: 8, 17: 16, 21: 8}

_U8 = struct.Struct("<B")
_I8 = struct.Struct("<b")
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_HEAD = struct.Struct("<ii")

_STAG_HEADER = 9  # i8 flags, i16 len, i16 nTag, i32 ver
TD_TAG_JSON = 0x40
TD_TAG_LARGE = 0x20


def default_compression(type_code: int) -> int:
    """The u32 ``alg`` TDengine gives a column of this type without ENCODE/COMPRESS/LEVEL options
    (``createDefaultColCmprByType``): encode << 24 | compress << 8 | level (medium)."""
    encode = _DEFAULT_ENCODE.get(type_code, 0xFF if type_code in _VAR_TYPES or type_code in _DECIMAL_TYPES else 1)
    compress = _DEFAULT_COMPRESS.get(type_code, 1)
    return (encode << 24) | (compress << 8) | _LEVEL_MEDIUM


def compression_names(alg: int) -> tuple[str, str, str]:
    """(encode, compress, level) names of a u32 alg, as ``tmq_get_json_meta`` prints them."""
    return (ENCODE_NAMES.get((alg >> 24) & 0xFF, "unknown"), COMPRESS_NAMES.get((alg >> 8) & 0xFFFF, "unknown"),
            LEVEL_NAMES.get(alg & 0xFF, "unknown"))


def schema_bytes(type_code: int, length: int | None = None) -> int:
    """``SSchema.bytes`` of a column/tag declared with ``length`` (TDengine's ``calcTypeBytes``):
    varchar/varbinary/geometry n+2, nchar 4n+2, blob 1+4 = 5 (its declared size is 1), json 16384
    (``TSDB_MAX_JSON_TAG_LEN``), fixed types their width (decimal64 8, decimal 16: precision and
    scale are not in ``bytes`` but in the typeMod, see :func:`decimal_type_mod`)."""
    if type_code in (TSDB_DATA_TYPE_VARCHAR, TSDB_DATA_TYPE_VARBINARY, TSDB_DATA_TYPE_GEOMETRY):
        if length is None:
            raise ValueError(f"type {type_code} needs a length")
        return length + 2
    if type_code == TSDB_DATA_TYPE_NCHAR:
        if length is None:
            raise ValueError("nchar needs a length")
        return length * 4 + 2
    if type_code == TSDB_DATA_TYPE_JSON:
        return 16384
    if type_code in (TSDB_DATA_TYPE_BLOB, TSDB_DATA_TYPE_MEDIUMBLOB):
        return (1 if length is None else length) + 4
    if type_code in _FIXED_BYTES:
        return _FIXED_BYTES[type_code]
    raise ValueError(f"unknown type code {type_code}")


def user_length(type_code: int, nbytes: int) -> int | None:
    """The declared length a user sees (varchar(32) -> 32) for ``SSchema.bytes``; None for fixed types."""
    if type_code in (TSDB_DATA_TYPE_VARCHAR, TSDB_DATA_TYPE_VARBINARY, TSDB_DATA_TYPE_GEOMETRY):
        return nbytes - 2
    if type_code == TSDB_DATA_TYPE_NCHAR:
        return (nbytes - 2) // 4
    if type_code in (TSDB_DATA_TYPE_BLOB, TSDB_DATA_TYPE_MEDIUMBLOB):
        return nbytes - 4
    return None


def decimal_type_mod(precision: int, scale: int) -> int:
    """The typeMod TDengine keeps for a decimal column (``decimalCalcTypeMod``)."""
    return (precision << 8) + scale


# --- reader / writer --------------------------------------------------------------------------------

class _Reader:
    """Bounds-checked reader over ``data[pos:end]``; every failure is a CodecError."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def left(self) -> int:
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def need(self, n: int, what: str) -> None:
        if n > self.end - self.pos:
            raise CodecError(what, self.pos, f"needs {n} bytes, only {self.end - self.pos} left")

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        start = self.pos
        self.pos += n
        return bytes(self.data[start:self.pos])

    def fixed(self, st: struct.Struct, what: str) -> Any:
        self.need(st.size, what)
        (v,) = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return v

    def u8(self, what: str) -> int:
        return self.fixed(_U8, what)

    def i8(self, what: str) -> int:
        return self.fixed(_I8, what)

    def i32(self, what: str) -> int:
        return self.fixed(_I32, what)

    def u32(self, what: str) -> int:
        return self.fixed(_U32, what)

    def i64(self, what: str) -> int:
        return self.fixed(_I64, what)

    def u64(self, what: str) -> int:
        return self.fixed(_U64, what)

    def uvarint(self, what: str, bits: int) -> int:
        start = self.pos
        max_bytes = (bits + 6) // 7
        value = 0
        shift = 0
        for i in range(max_bytes):
            if self.pos >= self.end:
                raise CodecError(what, start, "varint runs past the end of its data")
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b == 0 and i > 0:
                    raise CodecError(what, start, "non-canonical varint (trailing zero byte)")
                if value >> bits:
                    raise CodecError(what, start, f"varint value does not fit in {bits} bits")
                return value
        raise CodecError(what, start, f"varint longer than {max_bytes} bytes")

    def ivarint(self, what: str, bits: int) -> int:
        z = self.uvarint(what, bits)
        return (z >> 1) ^ -(z & 1)

    def binary(self, what: str) -> bytes:
        start = self.pos
        n = self.uvarint(what + " length", 32)
        if n > self.end - self.pos:
            raise CodecError(what, start, f"length {n} exceeds the {self.end - self.pos} bytes left")
        return self.take(n, what)

    def cstr(self, what: str) -> str:
        start = self.pos
        raw = self.binary(what)
        if not raw or raw[-1] != 0:
            raise CodecError(what, start, "string is not NUL-terminated")
        if 0 in raw[:-1]:
            raise CodecError(what, start, "string contains a NUL byte before its end")
        return raw[:-1].decode("utf-8", "surrogateescape")

    def frame(self, what: str) -> _Reader:
        """Read an i32 frame length; return a reader over the frame and skip it here."""
        start = self.pos
        n = self.i32(what + " length")
        if n < 0 or n > self.end - self.pos:
            raise CodecError(what, start, f"frame length {n} does not fit in the {self.end - self.pos} bytes left")
        sub = _Reader(self.data, self.pos, self.pos + n)
        self.pos += n
        return sub

    def rest(self) -> bytes:
        out = bytes(self.data[self.pos:self.end])
        self.pos = self.end
        return out

    def count(self, n: int, min_size: int, what: str, at: int) -> int:
        if n < 0:
            raise CodecError(what, at, f"negative count {n}")
        if n * min_size > self.end - self.pos:
            raise CodecError(what, at, f"{n} entries cannot fit in {self.end - self.pos} bytes")
        return n


class _Writer:
    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def fixed(self, st: struct.Struct, v: int | float, what: str) -> None:
        try:
            self.buf += st.pack(v)
        except struct.error as exc:
            raise ValueError(f"{what}: {v!r} does not fit ({exc})") from None

    def u8(self, v: int, what: str = "u8") -> None:
        self.fixed(_U8, v, what)

    def i8(self, v: int, what: str = "i8") -> None:
        self.fixed(_I8, v, what)

    def i32(self, v: int, what: str = "i32") -> None:
        self.fixed(_I32, v, what)

    def u32(self, v: int, what: str = "u32") -> None:
        self.fixed(_U32, v, what)

    def i64(self, v: int, what: str = "i64") -> None:
        self.fixed(_I64, v, what)

    def u64(self, v: int, what: str = "u64") -> None:
        self.fixed(_U64, v, what)

    def uvarint(self, v: int, bits: int = 64, what: str = "varint") -> None:
        if v < 0 or v >> bits:
            raise ValueError(f"{what}: {v} does not fit in an unsigned {bits}-bit varint")
        while v > 0x7F:
            self.buf.append((v & 0x7F) | 0x80)
            v >>= 7
        self.buf.append(v)

    def ivarint(self, v: int, bits: int, what: str = "varint") -> None:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if not lo <= v <= hi:
            raise ValueError(f"{what}: {v} does not fit in a signed {bits}-bit varint")
        self.uvarint(((v << 1) ^ (v >> (bits - 1))) & ((1 << bits) - 1), bits, what)

    def binary(self, b: bytes) -> None:
        self.uvarint(len(b), 32, "binary length")
        self.buf += b

    def cstr(self, s: str) -> None:
        raw = s.encode("utf-8", "surrogateescape")
        if b"\0" in raw:
            raise ValueError(f"string {s!r} contains a NUL character")
        self.binary(raw + b"\0")

    def begin(self) -> int:
        at = len(self.buf)
        self.buf += b"\0\0\0\0"
        return at

    def finish(self, at: int) -> None:
        _I32.pack_into(self.buf, at, len(self.buf) - at - 4)

    def raw(self, b: bytes) -> None:
        self.buf += b


def _with_head(vgroup_id: int, body: bytes | bytearray) -> bytes:
    return _HEAD.pack(len(body) + 8, vgroup_id) + bytes(body)


def _open(data: bytes) -> tuple[int, _Reader]:
    """Check the SMsgHead; return (vgId, reader positioned after it)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("meta data must be bytes")
    data = bytes(data)
    if len(data) < 8:
        raise CodecError("SMsgHead", 0, f"needs 8 bytes, only {len(data)} present")
    cont_len, vg_id = _HEAD.unpack_from(data, 0)
    if cont_len != len(data):
        raise CodecError("SMsgHead.contLen", 0, f"says {cont_len} bytes but the message has {len(data)}")
    return vg_id, _Reader(data, 8)


def _close(r: _Reader, what: str) -> None:
    if r.pos != r.end:
        raise CodecError(what, r.pos, f"{r.end - r.pos} unexpected bytes after the request")


# --- schema ----------------------------------------------------------------------------------------

@dataclass
class SchemaField:
    """One ``SSchema`` entry: a column or tag as TDengine stores it (``bytes`` as stored: varchar(n)
    n+2, nchar(n) 4n+2; decimal 8/16 with precision/scale in the stable's type_mods)."""

    type: int
    flags: int
    bytes: int
    col_id: int
    name: str

    @classmethod
    def make(cls, type_code: int, name: str, col_id: int, length: int | None = None, *, tag: bool = False,
             indexed: bool = False, primary_key: bool = False, sma: bool = True) -> SchemaField:
        """The entry TDengine stores for a column or tag declared in CREATE TABLE/STABLE.

        Columns: ``COL_SMA_ON`` (+``COL_IS_KEY`` for a composite primary key, +``COL_HAS_TYPE_MOD``
        for decimals).  Tags: 0, except the first tag of a super table, which TDengine indexes
        (``indexed=True`` -> ``COL_IDX_ON``).  A column added by ALTER STABLE ADD COLUMN has flags
        ``COL_HAS_TYPE_MOD`` only (0x80): use ``sma=False`` and add it, or build the entry directly."""
        if tag:
            flags = COL_IDX_ON if indexed else 0
        else:
            flags = COL_SMA_ON if sma else 0
            if primary_key:
                flags |= COL_IS_KEY
            if type_code in _DECIMAL_TYPES:
                flags |= COL_HAS_TYPE_MOD
        return cls(type_code, flags, schema_bytes(type_code, length), col_id, name)

    @property
    def length(self) -> int | None:
        """User-visible length (varchar(32) -> 32), None for fixed-size types."""
        return user_length(self.type, self.bytes)

    @property
    def is_primary_key(self) -> bool:
        return bool(self.flags & COL_IS_KEY)


def _read_schema(r: _Reader, what: str) -> tuple[list[SchemaField], int]:
    at = r.pos
    n = r.ivarint(what + ".nCols", 32)
    version = r.ivarint(what + ".version", 32)
    r.count(n, 5, what + ".nCols", at)
    cols = []
    for i in range(n):
        w = f"{what}[{i}]"
        t = r.u8(w + ".type")
        flags = r.u8(w + ".flags")
        nbytes = r.ivarint(w + ".bytes", 32)
        col_id = r.ivarint(w + ".colId", 16)
        name = r.cstr(w + ".name")
        cols.append(SchemaField(t, flags, nbytes, col_id, name))
    return cols, version


def _write_schema(w: _Writer, cols: list[SchemaField], version: int) -> None:
    w.ivarint(len(cols), 32, "nCols")
    w.ivarint(version, 32, "schema version")
    for c in cols:
        w.u8(c.type, "column type")
        w.u8(c.flags & 0xFF, "column flags")
        w.ivarint(c.bytes, 32, "column bytes")
        w.ivarint(c.col_id, 16, "column id")
        w.cstr(c.name)


@dataclass
class ColumnCompression:
    """One ``SColCmpr`` entry: column id and u32 alg (see :func:`default_compression`)."""

    col_id: int
    alg: int

    @property
    def names(self) -> tuple[str, str, str]:
        return compression_names(self.alg)


def default_compressions(columns: list[SchemaField]) -> list[ColumnCompression]:
    return [ColumnCompression(c.col_id, default_compression(c.type)) for c in columns]


def _read_cmpr(r: _Reader, what: str) -> tuple[list[ColumnCompression], int]:
    at = r.pos
    n = r.ivarint(what + ".nCols", 32)
    version = r.ivarint(what + ".version", 32)
    r.count(n, 5, what + ".nCols", at)
    out = []
    for i in range(n):
        col_id = r.ivarint(f"{what}[{i}].id", 16)
        out.append(ColumnCompression(col_id, r.u32(f"{what}[{i}].alg")))
    return out, version


def _write_cmpr(w: _Writer, cmpr: list[ColumnCompression], version: int) -> None:
    w.ivarint(len(cmpr), 32, "compression nCols")
    w.ivarint(version, 32, "compression version")
    for c in cmpr:
        w.ivarint(c.col_id, 16, "compression column id")
        w.u32(c.alg, "compression alg")


@dataclass
class ColumnRef:
    """One ``SColRef`` of a virtual table (``has_ref`` false: the column has no reference)."""

    col_id: int
    has_ref: bool = False
    ref_db: str = ""
    ref_table: str = ""
    ref_column: str = ""


def _read_type_mods(r: _Reader, n: int, what: str) -> list[int]:
    r.count(n, 1, what, r.pos)
    return [r.ivarint(f"{what}[{i}]", 32) for i in range(n)]


# --- tag values (STag) -------------------------------------------------------------------------------

@dataclass
class TagValue:
    """One value in an STag: ``key`` is the tag's column id (int) or, in a JSON tag, the JSON key (str)."""

    key: int | str
    type: int
    value: Any


def _value_bytes(type_code: int, value: Any, what: str) -> bytes:
    """The stored bytes of a tag value: fixed types little-endian at their width, var types raw
    (nchar as UCS-4)."""
    if type_code in _VAR_TYPES:
        if type_code == TSDB_DATA_TYPE_JSON:
            raise ValueError(f"{what}: a JSON value cannot be nested inside an STag")
        if type_code == TSDB_DATA_TYPE_NCHAR:
            if not isinstance(value, str):
                raise ValueError(f"{what}: nchar value must be str, got {type(value).__name__}")
            return value.encode("utf-32-le")
        if type_code == TSDB_DATA_TYPE_VARCHAR:
            if isinstance(value, str):
                return value.encode("utf-8", "surrogateescape")
            if isinstance(value, bytes | bytearray):
                return bytes(value)
            raise ValueError(f"{what}: varchar value must be str or bytes")
        if isinstance(value, str):
            raise ValueError(f"{what}: type {type_code} value must be bytes, got str")
        return bytes(value)
    if type_code not in _TAG_FIXED:
        raise ValueError(f"{what}: type {type_code} cannot be a tag value")
    width, fmt = _TAG_FIXED[type_code]
    if type_code == TSDB_DATA_TYPE_NULL:
        if value is not None:
            raise ValueError(f"{what}: a NULL-typed value must be None")
        return b"\0" * width
    if type_code == TSDB_DATA_TYPE_BOOL:
        return b"\x01" if value else b"\x00"
    if fmt in ("<f", "<d"):
        return struct.pack(fmt, float(value))
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}: type {type_code} value must be int, got {type(value).__name__}")
    try:
        return struct.pack(fmt, value)
    except struct.error:
        raise ValueError(f"{what}: {value} out of range for type {type_code}") from None


def _value_from_bytes(type_code: int, raw: bytes, what: str, at: int) -> Any:
    if type_code in _VAR_TYPES:
        if type_code == TSDB_DATA_TYPE_NCHAR:
            if len(raw) % 4:
                raise CodecError(what, at, f"nchar value of {len(raw)} bytes is not UCS-4")
            try:
                return raw.decode("utf-32-le")
            except UnicodeDecodeError as exc:
                raise CodecError(what, at, f"invalid UCS-4 nchar value: {exc.reason}") from None
        if type_code == TSDB_DATA_TYPE_VARCHAR:
            return raw.decode("utf-8", "surrogateescape")
        if type_code == TSDB_DATA_TYPE_JSON:
            raise CodecError(what, at, "a JSON value cannot be nested inside an STag")
        return raw
    width, fmt = _TAG_FIXED[type_code]
    if len(raw) != width:
        raise CodecError(what, at, f"type {type_code} value needs {width} bytes, got {len(raw)}")
    if type_code == TSDB_DATA_TYPE_NULL:
        if raw != b"\0" * width:
            raise CodecError(what, at, "NULL-typed value is not zero")
        return None
    if type_code == TSDB_DATA_TYPE_BOOL:
        if raw[0] > 1:
            raise CodecError(what, at, f"bool value {raw[0]} is neither 0 nor 1")
        return raw[0] == 1
    return struct.unpack(fmt, raw)[0]


@dataclass
class Tags:
    """An ``STag``: the tag values of a child table (or the value of its JSON tag).

    Values are kept sorted as TDengine's ``tTagNew`` sorts them when encoding (by column id, or by
    JSON key bytes).  ``Tags.json({})`` / ``Tags.json(None)`` is the NULL JSON tag."""

    values: list[TagValue] = field(default_factory=list)
    is_json: bool = False
    version: int = 1

    @classmethod
    def of(cls, values: list[tuple[int, int, Any]]) -> Tags:
        """Tags from (col_id, type, value) triples; None values (NULL tags) are left out."""
        return cls([TagValue(cid, t, v) for cid, t, v in values if v is not None])

    @classmethod
    def json(cls, obj: dict[str, Any] | None) -> Tags:
        """A JSON tag from a parsed JSON object, typed as TDengine's parser types it: str -> nchar,
        number -> double, bool -> bool, null -> NULL; empty keys are skipped."""
        if obj is None:
            return cls([], True)
        if not isinstance(obj, dict):
            raise ValueError("a JSON tag must be a JSON object")
        values = []
        for key, v in obj.items():
            if not key:
                continue
            if v is None:
                values.append(TagValue(key, TSDB_DATA_TYPE_NULL, None))
            elif isinstance(v, bool):
                values.append(TagValue(key, TSDB_DATA_TYPE_BOOL, v))
            elif isinstance(v, int | float):
                values.append(TagValue(key, TSDB_DATA_TYPE_DOUBLE, float(v)))
            elif isinstance(v, str):
                values.append(TagValue(key, TSDB_DATA_TYPE_NCHAR, v))
            else:
                raise ValueError(f"JSON tag value of {key!r} must be a string, number, bool or null")
        return cls(values, True)

    def as_dict(self) -> dict[int | str, Any]:
        """{col_id or JSON key: value}."""
        return {v.key: v.value for v in self.values}

    def get(self, key: int | str, default: Any = None) -> Any:
        for v in self.values:
            if v.key == key:
                return v.value
        return default

    @property
    def is_null_json(self) -> bool:
        return self.is_json and not self.values

    def _sorted(self) -> list[TagValue]:
        if self.is_json:
            return sorted(self.values, key=lambda v: str(v.key).encode("utf-8", "surrogateescape"))
        return sorted(self.values, key=lambda v: int(v.key))

    def to_bytes(self) -> bytes:
        """The STag bytes (what ``tTagNew`` builds)."""
        body = bytearray()
        offsets = []
        for i, tv in enumerate(self._sorted()):
            offsets.append(len(body))
            w = _Writer()
            if self.is_json:
                if not isinstance(tv.key, str):
                    raise ValueError("JSON tag keys must be str")
                w.cstr(tv.key)
            else:
                if isinstance(tv.key, bool) or not isinstance(tv.key, int):
                    raise ValueError("tag keys must be int column ids")
                w.ivarint(tv.key, 16, "tag column id")
            w.u8(tv.type, "tag type")
            raw = _value_bytes(tv.type, tv.value, f"tag {i}")
            if tv.type in _VAR_TYPES:
                w.binary(raw)
            else:
                w.raw(raw)
            body += w.buf
        large = len(body) > 127
        n = len(offsets)
        total = _STAG_HEADER + (2 if large else 1) * n + len(body)
        if total > 0x7FFF:
            raise ValueError(f"tag values take {total} bytes, more than an STag can hold")
        flags = (TD_TAG_JSON if self.is_json else 0) | (TD_TAG_LARGE if large else 0)
        head = struct.pack("<bhhi", flags, total, n, self.version)
        idx = struct.pack(f"<{n}{'h' if large else 'b'}", *offsets) if n else b""
        return head + idx + bytes(body)

    @classmethod
    def from_bytes(cls, data: bytes, base: int = 0) -> Tags:
        """Decode STag bytes; ``base`` is their offset in the message (for error offsets)."""
        what = "STag"
        if len(data) < _STAG_HEADER:
            raise CodecError(what, base, f"needs {_STAG_HEADER} header bytes, only {len(data)} present")
        flags, total, n, version = struct.unpack_from("<bhhi", data, 0)
        if flags & ~(TD_TAG_JSON | TD_TAG_LARGE):
            raise CodecError(what + ".flags", base, f"unknown flag bits 0x{flags & 0xFF:02x}")
        if total != len(data):
            raise CodecError(what + ".len", base + 1, f"says {total} bytes but the tag data has {len(data)}")
        is_json = bool(flags & TD_TAG_JSON)
        large = bool(flags & TD_TAG_LARGE)
        width = 2 if large else 1
        if n < 0 or _STAG_HEADER + n * (width + 2) > total:
            raise CodecError(what + ".nTag", base + 3, f"{n} values cannot fit in {total} bytes")
        start = _STAG_HEADER + n * width
        offsets = struct.unpack_from(f"<{n}{'h' if large else 'b'}", data, _STAG_HEADER) if n else ()
        r = _Reader(data, start, total)
        values = []
        for i in range(n):
            w = f"{what}[{i}]"
            if offsets[i] != r.pos - start:
                raise CodecError(w + " offset", base + _STAG_HEADER + i * width,
                                 f"index says {offsets[i]}, value is at {r.pos - start}")
            try:
                key: int | str = r.cstr(w + ".key") if is_json else r.ivarint(w + ".cid", 16)
                t = r.u8(w + ".type")
                at = r.pos
                if t in _VAR_TYPES:
                    raw = r.binary(w + ".value")
                elif t in _TAG_FIXED:
                    raw = r.take(_TAG_FIXED[t][0], w + ".value")
                else:
                    raise CodecError(w + ".type", r.pos - 1, f"type {t} cannot be a tag value")
            except CodecError as exc:
                raise CodecError(exc.field, base + exc.offset, exc.reason) from None
            values.append(TagValue(key, t, _value_from_bytes(t, raw, w + ".value", base + at)))
        if r.pos != total:
            raise CodecError(what, base + r.pos, f"{total - r.pos} bytes after the last value")
        if (len(data) - start > 127) != large:
            raise CodecError(what + ".flags", base, "large-index flag does not match the value size")
        tags = cls(values, is_json, version)
        if tags._sorted() != values:
            raise CodecError(what, base, "values are not in TDengine's sorted order")
        return tags


def encode_tag_value(type_code: int, value: Any) -> bytes:
    """Bytes of one tag value as ALTER TABLE ... SET TAG carries it (fixed types at their width,
    nchar as UCS-4, JSON as a whole STag: pass a :class:`Tags` or a dict/None)."""
    if type_code == TSDB_DATA_TYPE_JSON:
        tags = value if isinstance(value, Tags) else Tags.json(value)
        return tags.to_bytes()
    if type_code == TSDB_DATA_TYPE_NULL:
        raise ValueError("type 0 is not a tag type")
    return _value_bytes(type_code, value, "tag value")


def decode_tag_value(type_code: int, raw: bytes, base: int = 0) -> Any:
    """Inverse of :func:`encode_tag_value` (JSON -> :class:`Tags`)."""
    if type_code == TSDB_DATA_TYPE_JSON:
        return Tags.from_bytes(raw, base)
    if type_code not in _VAR_TYPES and type_code not in _TAG_FIXED or type_code == TSDB_DATA_TYPE_NULL:
        raise CodecError("tag value", base, f"type {type_code} cannot be a tag value")
    return _value_from_bytes(type_code, raw, "tag value", base)


# --- 531 / 533: SVCreateStbReq ------------------------------------------------------------------------

@dataclass
class AlterField:
    """One field of an SMAlterStbReq: new type and ``bytes`` (as stored) and name; ``compress`` only
    for ADD COLUMN WITH COMPRESS OPTION (alter type 14)."""

    type: int
    bytes: int
    name: str
    compress: int | None = None


@dataclass
class SuperTableAlter:
    """``SMAlterStbReq`` as the mnode received it (alterOriData of a 533 message).

    ``full_name`` is ``"<acctId>.<db>.<stable>"`` (e.g. ``1.g_p_ns.dev``).  Fields per alter type:
    ADD_TAG/ADD_COLUMN/UPDATE_*_BYTES one field with the new type and bytes; DROP_* one field (type
    and bytes 0) naming what is dropped; UPDATE_*_NAME two fields (old, new name)."""

    full_name: str
    alter_type: int
    fields: list[AlterField] = field(default_factory=list)
    ttl: int = 0
    comment: str | None = ""
    keep: int | None = 0
    sql: bytes | None = b""
    type_mods: list[int] | None = None
    extra: bytes = b""

    @property
    def table_name(self) -> str:
        return self.full_name.split(".", 2)[-1]

    def to_bytes(self) -> bytes:
        w = _Writer()
        at = w.begin()
        w.cstr(self.full_name)
        w.i8(self.alter_type, "alterType")
        w.i32(len(self.fields), "numOfFields")
        for f in self.fields:
            w.i8(f.type, "field type")
            w.i32(f.bytes, "field bytes")
            w.cstr(f.name)
            if self.alter_type == ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION:
                w.u32(f.compress or 0, "field compress")
        w.i32(self.ttl, "ttl")
        _write_comment_i32(w, self.comment)
        if self.keep is not None:
            w.i64(self.keep, "keep")
            if self.sql is not None:
                w.i32(len(self.sql), "sqlLen")
                if self.sql:
                    w.binary(self.sql)
                if self.alter_type in (ALTER_ADD_COLUMN, ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION) \
                        and self.type_mods is not None:
                    if self.type_mods:
                        if len(self.type_mods) != len(self.fields):
                            raise ValueError("type_mods must have one entry per field")
                        w.i8(1)
                        for m in self.type_mods:
                            w.i32(m, "typeMod")
                    else:
                        w.i8(0)
        w.raw(self.extra)
        w.finish(at)
        return bytes(w.buf)

    @classmethod
    def from_bytes(cls, data: bytes, base: int = 0) -> SuperTableAlter:
        try:
            outer = _Reader(data)
            r = outer.frame("SMAlterStbReq")
            _close(outer, "SMAlterStbReq")
            full_name = r.cstr("SMAlterStbReq.name")
            alter_type = r.i8("SMAlterStbReq.alterType")
            at = r.pos
            n = r.count(r.i32("SMAlterStbReq.numOfFields"), 6, "SMAlterStbReq.numOfFields", at)
            fields = []
            for i in range(n):
                w = f"SMAlterStbReq.fields[{i}]"
                t = r.i8(w + ".type")
                nbytes = r.i32(w + ".bytes")
                name = r.cstr(w + ".name")
                comp = r.u32(w + ".compress") if alter_type == ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION else None
                fields.append(AlterField(t, nbytes, name, comp))
            ttl = r.i32("SMAlterStbReq.ttl")
            comment = _read_comment_i32(r, "SMAlterStbReq.comment")
            keep = sql = type_mods = None
            if not r.at_end():
                keep = r.i64("SMAlterStbReq.keep")
                if not r.at_end():
                    sql = _read_sql(r, "SMAlterStbReq.sql")
                    if not r.at_end() and alter_type in (ALTER_ADD_COLUMN, ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION):
                        has = r.i8("SMAlterStbReq.hasTypeMod")
                        if has not in (0, 1):
                            raise CodecError("SMAlterStbReq.hasTypeMod", r.pos - 1, f"flag is {has}")
                        type_mods = []
                        if has:
                            r.count(n, 4, "SMAlterStbReq.typeMods", r.pos)
                            type_mods = [r.i32(f"SMAlterStbReq.typeMods[{i}]") for i in range(n)]
            return cls(full_name, alter_type, fields, ttl, comment, keep, sql, type_mods, r.rest())
        except CodecError as exc:
            raise CodecError(exc.field, base + exc.offset, exc.reason) from None


def _read_comment_i32(r: _Reader, what: str) -> str | None:
    at = r.pos
    n = r.i32(what + "Len")
    if n == -1:
        return None
    if n < -1:
        raise CodecError(what + "Len", at, f"negative comment length {n}")
    if n == 0:
        return ""
    s = r.cstr(what)
    if len(s.encode("utf-8", "surrogateescape")) != n:
        raise CodecError(what, at, f"comment length {n} does not match the comment")
    return s


def _write_comment_i32(w: _Writer, comment: str | None) -> None:
    if comment is None:
        w.i32(-1)
    elif not comment:
        w.i32(0)
    else:
        w.i32(len(comment.encode("utf-8", "surrogateescape")), "commentLen")
        w.cstr(comment)


def _read_sql(r: _Reader, what: str) -> bytes:
    at = r.pos
    n = r.i32(what + "Len")
    if n < 0:
        raise CodecError(what + "Len", at, f"negative length {n}")
    if n == 0:
        return b""
    sql = r.binary(what)
    if len(sql) != n:
        raise CodecError(what, at, f"sqlLen {n} but the text has {len(sql)} bytes")
    return sql


def _write_sql(w: _Writer, sql: bytes) -> None:
    w.i32(len(sql), "sqlLen")
    if sql:
        w.binary(sql)


@dataclass
class CreateSuperTable:
    """531 ``SVCreateStbReq``: a super table as the mnode sends it to each vnode.

    ``schema_version``/``tag_version`` are the SSchemaWrapper versions; ``compression`` has one
    entry per column (default: :func:`default_compression`), ``compression_version`` = schema
    version in what TDengine sends; ``type_mods`` (``pExtSchemas``) one typeMod per column (decimal
    (p, s) -> p << 8 | s, else 0) or None when the stable has none.  ``keep`` is the stable's KEEP
    option in minutes (-1 when unset)."""

    RAW_TYPE = RAW_CREATE_STB

    name: str
    suid: int
    columns: list[SchemaField] = field(default_factory=list)
    tags: list[SchemaField] = field(default_factory=list)
    schema_version: int = 1
    tag_version: int = 1
    rollup: int = 0
    rsma_param: bytes = b""
    alter: SuperTableAlter | None = None
    source: int = TD_REQ_FROM_APP
    col_cmpred: int = 1
    compression: list[ColumnCompression] | None = None
    compression_version: int | None = None
    keep: int = -1
    type_mods: list[int] | None = None
    virtual: int = 0
    extra: bytes = b""
    vgroup_id: int = 0
    trailing: int | None = None

    def __post_init__(self) -> None:
        if self.compression is None:
            self.compression = default_compressions(self.columns)
        if self.compression_version is None:
            self.compression_version = self.schema_version

    def _body(self, source: int) -> bytes:
        w = _Writer()
        at = w.begin()
        w.cstr(self.name)
        w.i64(self.suid, "suid")
        w.i8(self.rollup, "rollup")
        _write_schema(w, self.columns, self.schema_version)
        _write_schema(w, self.tags, self.tag_version)
        if self.rollup:
            w.raw(self.rsma_param)
        if self.alter is not None:
            ori = self.alter.to_bytes()
            w.i32(len(ori), "alterOriDataLen")
            w.binary(ori)
        else:
            w.i32(0)
        present = 6 if self.trailing is None else self.trailing
        if present > 0:
            w.i8(source, "source")
        if present > 1:
            w.i8(self.col_cmpred, "colCmpred")
        if present > 2:
            cmpr = self.compression if self.compression is not None else default_compressions(self.columns)
            version = self.compression_version if self.compression_version is not None else self.schema_version
            _write_cmpr(w, cmpr, version)
        if present > 3:
            w.i64(self.keep, "keep")
        if present > 4:
            if self.type_mods is not None:
                if len(self.type_mods) != len(self.columns):
                    raise ValueError("type_mods must have one entry per column")
                w.i8(1)
                for m in self.type_mods:
                    w.ivarint(m, 32, "typeMod")
            else:
                w.i8(0)
        if present > 5:
            w.i8(self.virtual, "virtualStb")
        w.raw(self.extra)
        w.finish(at)
        return bytes(w.buf)

    def encode(self, vgroup_id: int | None = None, source: int | None = None) -> bytes:
        """SMsgHead + body; ``vgroup_id``/``source`` default to this object's."""
        return _with_head(self.vgroup_id if vgroup_id is None else vgroup_id,
                          self._body(self.source if source is None else source))

    @classmethod
    def decode(cls, data: bytes) -> CreateSuperTable:
        vg, outer = _open(data)
        r = outer.frame("SVCreateStbReq")
        _close(outer, "SVCreateStbReq")
        name = r.cstr("SVCreateStbReq.name")
        suid = r.i64("SVCreateStbReq.suid")
        rollup = r.i8("SVCreateStbReq.rollup")
        columns, sver = _read_schema(r, "SVCreateStbReq.schemaRow")
        tags, tver = _read_schema(r, "SVCreateStbReq.schemaTag")
        rsma = b""
        if rollup:
            start = r.pos
            for i in range(2):
                r.ivarint(f"rsmaParam.maxdelay[{i}]", 64)
                r.ivarint(f"rsmaParam.watermark[{i}]", 64)
                qlen = r.ivarint(f"rsmaParam.qmsgLen[{i}]", 32)
                if qlen > 0:
                    r.binary(f"rsmaParam.qmsg[{i}]")
            rsma = bytes(r.data[start:r.pos])
        at = r.pos
        ori_len = r.i32("SVCreateStbReq.alterOriDataLen")
        alter = None
        if ori_len < 0:
            raise CodecError("SVCreateStbReq.alterOriDataLen", at, f"negative length {ori_len}")
        if ori_len > 0:
            ori = r.binary("SVCreateStbReq.alterOriData")
            if len(ori) != ori_len:
                raise CodecError("SVCreateStbReq.alterOriData", at, f"length {ori_len} but {len(ori)} bytes present")
            alter = SuperTableAlter.from_bytes(ori, r.pos - len(ori))
        obj = cls(name, suid, columns, tags, sver, tver, rollup, rsma, alter, vgroup_id=vg)
        obj.compression = []
        obj.compression_version = 0
        obj.keep = 0
        # optional tail (tDecodeIsEnd): source, colCmpred, colCmpr, keep, ext schemas, virtualStb
        present = 0
        if not r.at_end():
            obj.source = r.i8("SVCreateStbReq.source")
            present = 1
        if not r.at_end():
            obj.col_cmpred = r.i8("SVCreateStbReq.colCmpred")
            present = 2
        if not r.at_end():
            obj.compression, obj.compression_version = _read_cmpr(r, "SVCreateStbReq.colCmpr")
            present = 3
        if not r.at_end():
            obj.keep = r.i64("SVCreateStbReq.keep")
            present = 4
        if not r.at_end():
            if _flag(r, "SVCreateStbReq.hasExtSchema"):
                obj.type_mods = _read_type_mods(r, len(columns), "SVCreateStbReq.typeMods")
            present = 5
        if not r.at_end():
            obj.virtual = r.i8("SVCreateStbReq.virtualStb")
            present = 6
        obj.trailing = None if present == 6 else present
        obj.extra = r.rest()
        return obj

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags]


@dataclass
class AlterSuperTable(CreateSuperTable):
    """533: the same ``SVCreateStbReq`` with the stable's new schema, plus ``alter`` (the
    SMAlterStbReq the user's ALTER STABLE produced)."""

    RAW_TYPE = RAW_ALTER_STB


# --- 535 ----------------------------------------------------------------------------------------------

@dataclass
class DropSuperTable:
    """535 ``SVDropStbReq``: short stable name and suid (no source field)."""

    RAW_TYPE = RAW_DROP_STB

    name: str
    suid: int
    extra: bytes = b""
    vgroup_id: int = 0

    def encode(self, vgroup_id: int | None = None, source: int | None = None) -> bytes:
        """``source`` is accepted for symmetry; the request has no such field."""
        w = _Writer()
        at = w.begin()
        w.cstr(self.name)
        w.i64(self.suid, "suid")
        w.raw(self.extra)
        w.finish(at)
        return _with_head(self.vgroup_id if vgroup_id is None else vgroup_id, w.buf)

    @classmethod
    def decode(cls, data: bytes) -> DropSuperTable:
        vg, outer = _open(data)
        r = outer.frame("SVDropStbReq")
        _close(outer, "SVDropStbReq")
        name = r.cstr("SVDropStbReq.name")
        suid = r.i64("SVDropStbReq.suid")
        return cls(name, suid, r.rest(), vg)


# --- 515: SVCreateTbReq / batch --------------------------------------------------------------------------

@dataclass
class CreateTableRequest:
    """One ``SVCreateTbReq`` (an element of 515 and of raw_type 4's create-table list).

    Child tables (``table_type`` 2): ``stable_name``, ``suid``, ``tag_num`` (the stable's number of
    tags), ``tags`` (:class:`Tags`), ``tag_names`` (names of the tags given a value; empty when every
    tag is NULL).  Normal tables (3): ``columns``, ``schema_version``, ``compression`` (default: per
    type, version 0 as the parser sends it).  ``comment`` None = no comment (commentLen -1)."""

    name: str
    table_type: int = TSDB_CHILD_TABLE
    uid: int = 0
    btime: int = 0
    ttl: int = 0
    comment: str | None = None
    flags: int = 0
    stable_name: str = ""
    suid: int = 0
    tag_num: int = 0
    tags: Tags | None = None
    tag_names: list[str] = field(default_factory=list)
    columns: list[SchemaField] = field(default_factory=list)
    schema_version: int = 1
    compression: list[ColumnCompression] | None = None
    compression_version: int = 0
    col_refs: list[ColumnRef] = field(default_factory=list)
    col_ref_version: int = 0
    type_mods: list[int] | None = None
    sql: bytes = b""
    extra: bytes = b""
    trailing: int | None = None

    def __post_init__(self) -> None:
        if self.is_child and self.tags is None:
            self.tags = Tags()
        if self.table_type in (TSDB_SUPER_TABLE, TSDB_NORMAL_TABLE) and self.compression is None:
            self.compression = default_compressions(self.columns)

    @property
    def is_child(self) -> bool:
        return self.table_type in (TSDB_CHILD_TABLE, TSDB_VIRTUAL_CHILD_TABLE)

    @property
    def is_normal(self) -> bool:
        return self.table_type in (TSDB_NORMAL_TABLE, TSDB_VIRTUAL_NORMAL_TABLE)

    def named_tags(self) -> dict[str, Any]:
        """{tag name: value} by position in ``tag_names`` (TDengine pairs them this way; for a JSON
        tag the single name maps to the JSON dict)."""
        if self.tags is None:
            return {}
        if self.tags.is_json:
            return {self.tag_names[0]: self.tags.as_dict()} if self.tag_names and self.tags.values else {}
        return {n: v.value for n, v in zip(self.tag_names, self.tags.values)}

    def _write_to(self, w: _Writer) -> None:
        at = w.begin()
        w.ivarint(self.flags, 32, "flags")
        w.cstr(self.name)
        w.i64(self.uid, "uid")
        w.i64(self.btime, "btime")
        w.i32(self.ttl, "ttl")
        w.i8(self.table_type, "type")
        _write_comment_i32(w, self.comment)
        if self.is_child:
            w.cstr(self.stable_name)
            w.u8(self.tag_num, "tagNum")
            w.i64(self.suid, "suid")
            w.binary((self.tags if self.tags is not None else Tags()).to_bytes())
            w.i32(len(self.tag_names), "tag name count")
            for n in self.tag_names:
                w.cstr(n)
        elif self.is_normal:
            _write_schema(w, self.columns, self.schema_version)
        else:
            raise ValueError(f"table type {self.table_type} cannot be created by SVCreateTbReq")
        present = 3 if self.trailing is None else self.trailing
        if present > 0:
            _write_sql(w, self.sql)
        if present > 1 and self.table_type in (TSDB_SUPER_TABLE, TSDB_NORMAL_TABLE):
            cmpr = self.compression if self.compression is not None else default_compressions(self.columns)
            _write_cmpr(w, cmpr, self.compression_version)
        if present > 1 and self.table_type in (TSDB_VIRTUAL_NORMAL_TABLE, TSDB_VIRTUAL_CHILD_TABLE):
            w.ivarint(len(self.col_refs), 32, "colRef nCols")
            w.ivarint(self.col_ref_version, 32, "colRef version")
            for c in self.col_refs:
                w.i8(1 if c.has_ref else 0)
                w.ivarint(c.col_id, 16, "colRef id")
                if c.has_ref:
                    w.cstr(c.ref_db)
                    w.cstr(c.ref_table)
                    w.cstr(c.ref_column)
        if present > 2 and self.type_mods is not None:
            if not self.is_normal or len(self.type_mods) != len(self.columns):
                raise ValueError("type_mods need a normal table and one entry per column")
            w.i8(1)
            for m in self.type_mods:
                w.ivarint(m, 32, "typeMod")
        elif present > 2:
            w.i8(0)
        w.raw(self.extra)
        w.finish(at)

    def to_bytes(self) -> bytes:
        """The framed SVCreateTbReq alone (an element of raw_type 4's createTableReq list)."""
        w = _Writer()
        self._write_to(w)
        return bytes(w.buf)

    @classmethod
    def from_bytes(cls, data: bytes) -> CreateTableRequest:
        """Decode one framed SVCreateTbReq that must span ``data`` exactly."""
        outer = _Reader(bytes(data))
        req = cls._read_from(outer, "SVCreateTbReq")
        _close(outer, "SVCreateTbReq")
        return req

    @classmethod
    def _read_from(cls, outer: _Reader, what: str) -> CreateTableRequest:
        r = outer.frame(what)
        flags = r.ivarint(what + ".flags", 32)
        name = r.cstr(what + ".name")
        uid = r.i64(what + ".uid")
        btime = r.i64(what + ".btime")
        ttl = r.i32(what + ".ttl")
        type_at = r.pos
        ttype = r.i8(what + ".type")
        comment = _read_comment_i32(r, what + ".comment")
        req = cls(name, ttype, uid, btime, ttl, comment, flags)
        if req.is_child:
            req.stable_name = r.cstr(what + ".stbName")
            req.tag_num = r.u8(what + ".tagNum")
            req.suid = r.i64(what + ".suid")
            tag_at = r.pos
            raw = r.binary(what + ".tags")
            req.tags = Tags.from_bytes(raw, r.pos - len(raw) if raw else tag_at)
            at = r.pos
            n = r.count(r.i32(what + ".tagNames"), 2, what + ".tagNames", at)
            req.tag_names = [r.cstr(f"{what}.tagNames[{i}]") for i in range(n)]
        elif req.is_normal:
            req.columns, req.schema_version = _read_schema(r, what + ".schemaRow")
        else:
            raise CodecError(what + ".type", type_at, f"table type {ttype} cannot be created by SVCreateTbReq")
        req.compression = [] if ttype in (TSDB_SUPER_TABLE, TSDB_NORMAL_TABLE) else None
        # optional tail (tDecodeIsEnd): sql, colCmpr or colRef (by table type), ext schemas
        present = 0
        if not r.at_end():
            req.sql = _read_sql(r, what + ".sql")
            present = 1
            if ttype in (TSDB_NORMAL_TABLE, TSDB_SUPER_TABLE):
                if not r.at_end():
                    req.compression, req.compression_version = _read_cmpr(r, what + ".colCmpr")
                    present = 2
            elif ttype in (TSDB_VIRTUAL_NORMAL_TABLE, TSDB_VIRTUAL_CHILD_TABLE) and not r.at_end():
                present = 2
                at = r.pos
                n = r.ivarint(what + ".colRef.nCols", 32)
                req.col_ref_version = r.ivarint(what + ".colRef.version", 32)
                r.count(n, 2, what + ".colRef.nCols", at)
                for i in range(n):
                    w = f"{what}.colRef[{i}]"
                    has = r.i8(w + ".hasRef")
                    ref = ColumnRef(r.ivarint(w + ".id", 16), bool(has))
                    if has not in (0, 1):
                        raise CodecError(w + ".hasRef", r.pos - 1, f"flag is {has}")
                    if has:
                        ref.ref_db = r.cstr(w + ".refDb")
                        ref.ref_table = r.cstr(w + ".refTable")
                        ref.ref_column = r.cstr(w + ".refColumn")
                    req.col_refs.append(ref)
            if not r.at_end():
                has_at = r.pos
                if _flag(r, what + ".hasExtSchema"):
                    if not req.is_normal:
                        raise CodecError(what + ".hasExtSchema", has_at, "a child table cannot carry ext schemas")
                    req.type_mods = _read_type_mods(r, len(req.columns), what + ".typeMods")
                present = 3
        req.trailing = None if present == 3 else present
        req.extra = r.rest()
        return req


@dataclass
class CreateTablesBatch:
    """515 ``SVCreateTbBatchReq``: the tables of one statement that live in this vgroup."""

    RAW_TYPE = RAW_CREATE_TABLE

    requests: list[CreateTableRequest] = field(default_factory=list)
    source: int = TD_REQ_FROM_APP
    extra: bytes = b""
    vgroup_id: int = 0
    trailing: int | None = None

    def encode(self, vgroup_id: int | None = None, source: int | None = None) -> bytes:
        w = _Writer()
        at = w.begin()
        w.ivarint(len(self.requests), 32, "nReqs")
        for req in self.requests:
            req._write_to(w)
        if self.trailing is None or self.trailing > 0:
            w.i8(self.source if source is None else source, "source")
        w.raw(self.extra)
        w.finish(at)
        return _with_head(self.vgroup_id if vgroup_id is None else vgroup_id, w.buf)

    @classmethod
    def decode(cls, data: bytes) -> CreateTablesBatch:
        vg, outer = _open(data)
        r = outer.frame("SVCreateTbBatchReq")
        _close(outer, "SVCreateTbBatchReq")
        at = r.pos
        n = r.count(r.ivarint("SVCreateTbBatchReq.nReqs", 32), 4, "SVCreateTbBatchReq.nReqs", at)
        reqs = [CreateTableRequest._read_from(r, f"SVCreateTbReq[{i}]") for i in range(n)]
        if r.at_end():
            return cls(reqs, TD_REQ_FROM_APP, b"", vg, 0)
        source = r.i8("SVCreateTbBatchReq.source")
        return cls(reqs, source, r.rest(), vg)


# --- 519 -------------------------------------------------------------------------------------------------

@dataclass
class DropTableRequest:
    """One ``SVDropTbReq``: short table name, suid (the stable's uid for a child table, 0 for a
    normal table), uid."""

    name: str
    suid: int = 0
    uid: int = 0
    ig_not_exists: int = 0
    is_virtual: int = 0
    extra: bytes = b""
    trailing: int | None = None


@dataclass
class DropTablesBatch:
    """519 ``SVDropTbBatchReq`` (no source field: drops are never hidden from excluded consumers)."""

    RAW_TYPE = RAW_DROP_TABLE

    requests: list[DropTableRequest] = field(default_factory=list)
    extra: bytes = b""
    vgroup_id: int = 0

    def encode(self, vgroup_id: int | None = None, source: int | None = None) -> bytes:
        w = _Writer()
        at = w.begin()
        w.ivarint(len(self.requests), 32, "nReqs")
        for req in self.requests:
            inner = w.begin()
            w.cstr(req.name)
            w.u64(req.suid, "suid")
            w.i64(req.uid, "uid")
            w.i8(req.ig_not_exists, "igNotExists")
            if req.trailing is None or req.trailing > 0:
                w.i8(req.is_virtual, "isVirtual")
            w.raw(req.extra)
            w.finish(inner)
        w.raw(self.extra)
        w.finish(at)
        return _with_head(self.vgroup_id if vgroup_id is None else vgroup_id, w.buf)

    @classmethod
    def decode(cls, data: bytes) -> DropTablesBatch:
        vg, outer = _open(data)
        r = outer.frame("SVDropTbBatchReq")
        _close(outer, "SVDropTbBatchReq")
        at = r.pos
        n = r.count(r.ivarint("SVDropTbBatchReq.nReqs", 32), 22, "SVDropTbBatchReq.nReqs", at)
        reqs = []
        for i in range(n):
            what = f"SVDropTbReq[{i}]"
            f = r.frame(what)
            req = DropTableRequest(f.cstr(what + ".name"), f.u64(what + ".suid"), f.i64(what + ".uid"),
                                   f.i8(what + ".igNotExists"))
            if not f.at_end():
                req.is_virtual = f.i8(what + ".isVirtual")
            else:
                req.trailing = 0
            req.extra = f.rest()
            reqs.append(req)
        return cls(reqs, r.rest(), vg)

    @property
    def table_names(self) -> list[str]:
        return [r.name for r in self.requests]


# --- 517 -------------------------------------------------------------------------------------------------

@dataclass
class MultiTagValue:
    """One entry of ALTER TABLE ... SET TAG a=.., b=.. (action 15)."""

    col_id: int
    tag_name: str
    tag_type: int
    is_null: bool = False
    raw_value: bytes = b""

    @property
    def value(self) -> Any:
        return None if self.is_null else decode_tag_value(self.tag_type, self.raw_value)


@dataclass
class AlterTable:
    """517 ``SVAlterTbReq`` (ALTER TABLE on a child or normal table).

    Fields by ``action``: ADD_COLUMN (5) ``col_name, col_type, col_flags, col_bytes`` (+``type_mod``);
    DROP_COLUMN (6) ``col_name``; UPDATE_COLUMN_BYTES (7) ``col_name, col_type, col_bytes``;
    UPDATE_COLUMN_NAME (10) ``col_name, new_col_name``; UPDATE_TAG_VAL (4) ``tag_name, tag_type,
    tag_is_null, tag_raw`` (see :attr:`tag_value`); UPDATE_MULTI_TAG_VAL (15) ``multi_tags``;
    UPDATE_OPTIONS (9) ``update_ttl, new_ttl, new_comment``; UPDATE_COLUMN_COMPRESS (13)
    ``col_name, compress``; ADD_COLUMN_WITH_COMPRESS_OPTION (14) like 5 plus ``compress``;
    column-reference actions (16-18) ``col_name``, ``ref_db/ref_table/ref_column`` (18 also type,
    flags, bytes).  ``col_id`` is the id of the column/tag concerned (ALTER of a tag value: the
    tag's column id; ADD COLUMN: 0 as the parser sends it)."""

    RAW_TYPE = RAW_ALTER_TABLE

    table_name: str
    action: int
    col_id: int = 0
    col_name: str = ""
    col_type: int = 0
    col_flags: int = 0
    col_bytes: int = 0
    new_col_name: str = ""
    tag_name: str = ""
    tag_type: int = 0
    tag_is_null: bool = False
    tag_raw: bytes = b""
    multi_tags: list[MultiTagValue] = field(default_factory=list)
    update_ttl: bool = False
    new_ttl: int = 0
    new_comment: str | None = None
    compress: int = 0
    ref_db: str = ""
    ref_table: str = ""
    ref_column: str = ""
    ctime_ms: int = 0
    source: int = TD_REQ_FROM_APP
    type_mod: int = 0
    extra: bytes = b""
    vgroup_id: int = 0
    trailing: int | None = None

    @classmethod
    def set_tag(cls, table_name: str, tag_name: str, col_id: int, tag_type: int, value: Any,
                ctime_ms: int = 0) -> AlterTable:
        """ALTER TABLE t SET TAG tag_name = value (None = NULL; JSON: dict/None/:class:`Tags`)."""
        obj = cls(table_name, ALTER_UPDATE_TAG_VAL, col_id, tag_name=tag_name, tag_type=tag_type, ctime_ms=ctime_ms)
        if value is None and tag_type != TSDB_DATA_TYPE_JSON:
            obj.tag_is_null = True
        else:
            obj.tag_raw = encode_tag_value(tag_type, value)
        return obj

    @classmethod
    def add_column(cls, table_name: str, column: SchemaField, ctime_ms: int = 0, type_mod: int = 0) -> AlterTable:
        """ALTER TABLE t ADD COLUMN (``column.bytes`` as stored, e.g. varchar(8) -> 10)."""
        return cls(table_name, ALTER_ADD_COLUMN, 0, col_name=column.name, col_type=column.type,
                   col_flags=column.flags, col_bytes=column.bytes, ctime_ms=ctime_ms, type_mod=type_mod)

    @property
    def tag_value(self) -> Any:
        """The new tag value of action 4 as a Python value (None for NULL; JSON -> :class:`Tags`)."""
        if self.tag_is_null:
            return None
        return decode_tag_value(self.tag_type, self.tag_raw)

    @property
    def table_type_hint(self) -> str:
        """What ``tmq_get_json_meta`` reports as tableType ("child" for tag-value changes)."""
        return "child" if self.action in (ALTER_UPDATE_TAG_VAL, ALTER_UPDATE_MULTI_TAG_VAL) else "normal"

    def encode(self, vgroup_id: int | None = None, source: int | None = None) -> bytes:
        w = _Writer()
        at = w.begin()
        w.cstr(self.table_name)
        w.i8(self.action, "action")
        w.i32(self.col_id, "colId")
        a = self.action
        if a in (ALTER_ADD_COLUMN, ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION, ALTER_ADD_COLUMN_WITH_COLUMN_REF):
            w.cstr(self.col_name)
            w.i8(self.col_type, "type")
            w.u8(self.col_flags & 0xFF, "flags")
            w.ivarint(self.col_bytes, 32, "bytes")
            if a == ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION:
                w.u32(self.compress, "compress")
            elif a == ALTER_ADD_COLUMN_WITH_COLUMN_REF:
                w.cstr(self.ref_db)
                w.cstr(self.ref_table)
                w.cstr(self.ref_column)
        elif a in (ALTER_DROP_COLUMN, ALTER_REMOVE_COLUMN_REF):
            w.cstr(self.col_name)
        elif a == ALTER_UPDATE_COLUMN_BYTES:
            w.cstr(self.col_name)
            w.i8(self.col_type, "colModType")
            w.ivarint(self.col_bytes, 32, "colModBytes")
        elif a == ALTER_UPDATE_COLUMN_NAME:
            w.cstr(self.col_name)
            w.cstr(self.new_col_name)
        elif a == ALTER_UPDATE_TAG_VAL:
            w.cstr(self.tag_name)
            w.i8(1 if self.tag_is_null else 0)
            w.i8(self.tag_type, "tagType")
            if not self.tag_is_null:
                w.binary(self.tag_raw)
        elif a == ALTER_UPDATE_MULTI_TAG_VAL:
            w.ivarint(len(self.multi_tags), 32, "nTags")
            for t in self.multi_tags:
                w.ivarint(t.col_id, 32, "colId")
                w.cstr(t.tag_name)
                w.i8(1 if t.is_null else 0)
                w.i8(t.tag_type, "tagType")
                if not t.is_null:
                    w.binary(t.raw_value)
        elif a == ALTER_UPDATE_OPTIONS:
            w.i8(1 if self.update_ttl else 0)
            if self.update_ttl:
                w.ivarint(self.new_ttl, 32, "newTTL")
            if self.new_comment is None:
                w.ivarint(-1, 32)
            else:
                raw = self.new_comment.encode("utf-8", "surrogateescape")
                w.ivarint(len(raw), 32, "newCommentLen")
                if raw:
                    w.cstr(self.new_comment)
        elif a == ALTER_UPDATE_COLUMN_COMPRESS:
            w.cstr(self.col_name)
            w.u32(self.compress, "compress")
        elif a == ALTER_ALTER_COLUMN_REF:
            w.cstr(self.col_name)
            w.cstr(self.ref_db)
            w.cstr(self.ref_table)
            w.cstr(self.ref_column)
        present = 3 if self.trailing is None else self.trailing
        if present > 0:
            w.i64(self.ctime_ms, "ctimeMs")
        if present > 1:
            w.i8(self.source if source is None else source, "source")
        if present > 2 and a in (ALTER_ADD_COLUMN, ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION):
            w.i32(self.type_mod, "typeMod")
        w.raw(self.extra)
        w.finish(at)
        return _with_head(self.vgroup_id if vgroup_id is None else vgroup_id, w.buf)

    @classmethod
    def decode(cls, data: bytes) -> AlterTable:
        vg, outer = _open(data)
        r = outer.frame("SVAlterTbReq")
        _close(outer, "SVAlterTbReq")
        p = "SVAlterTbReq."
        obj = cls(r.cstr(p + "tbName"), r.i8(p + "action"), r.i32(p + "colId"), vgroup_id=vg)
        a = obj.action
        if a in (ALTER_ADD_COLUMN, ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION, ALTER_ADD_COLUMN_WITH_COLUMN_REF):
            obj.col_name = r.cstr(p + "colName")
            obj.col_type = r.i8(p + "type")
            obj.col_flags = r.u8(p + "flags")
            obj.col_bytes = r.ivarint(p + "bytes", 32)
            if a == ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION:
                obj.compress = r.u32(p + "compress")
            elif a == ALTER_ADD_COLUMN_WITH_COLUMN_REF:
                obj.ref_db, obj.ref_table, obj.ref_column = (r.cstr(p + "refDbName"), r.cstr(p + "refTbName"),
                                                             r.cstr(p + "refColName"))
        elif a in (ALTER_DROP_COLUMN, ALTER_REMOVE_COLUMN_REF):
            obj.col_name = r.cstr(p + "colName")
        elif a == ALTER_UPDATE_COLUMN_BYTES:
            obj.col_name = r.cstr(p + "colName")
            obj.col_type = r.i8(p + "colModType")
            obj.col_bytes = r.ivarint(p + "colModBytes", 32)
        elif a == ALTER_UPDATE_COLUMN_NAME:
            obj.col_name = r.cstr(p + "colName")
            obj.new_col_name = r.cstr(p + "colNewName")
        elif a == ALTER_UPDATE_TAG_VAL:
            obj.tag_name = r.cstr(p + "tagName")
            obj.tag_is_null = _flag(r, p + "isNull")
            obj.tag_type = r.i8(p + "tagType")
            if not obj.tag_is_null:
                at = r.pos
                obj.tag_raw = r.binary(p + "tagVal")
                _check_tag_raw(obj.tag_type, obj.tag_raw, p + "tagVal", at)
        elif a == ALTER_UPDATE_MULTI_TAG_VAL:
            at = r.pos
            n = r.count(r.ivarint(p + "nTags", 32), 5, p + "nTags", at)
            for i in range(n):
                w = f"{p}multiTag[{i}]."
                t = MultiTagValue(r.ivarint(w + "colId", 32), r.cstr(w + "tagName"), 0)
                t.is_null = _flag(r, w + "isNull")
                t.tag_type = r.i8(w + "tagType")
                if not t.is_null:
                    at = r.pos
                    t.raw_value = r.binary(w + "tagVal")
                    _check_tag_raw(t.tag_type, t.raw_value, w + "tagVal", at)
                obj.multi_tags.append(t)
        elif a == ALTER_UPDATE_OPTIONS:
            obj.update_ttl = _flag(r, p + "updateTTL")
            if obj.update_ttl:
                obj.new_ttl = r.ivarint(p + "newTTL", 32)
            at = r.pos
            n = r.ivarint(p + "newCommentLen", 32)
            if n < -1:
                raise CodecError(p + "newCommentLen", at, f"negative length {n}")
            if n == -1:
                obj.new_comment = None
            elif n == 0:
                obj.new_comment = ""
            else:
                obj.new_comment = r.cstr(p + "newComment")
                if len(obj.new_comment.encode("utf-8", "surrogateescape")) != n:
                    raise CodecError(p + "newComment", at, f"length {n} does not match the comment")
        elif a == ALTER_UPDATE_COLUMN_COMPRESS:
            obj.col_name = r.cstr(p + "colName")
            obj.compress = r.u32(p + "compress")
        elif a == ALTER_ALTER_COLUMN_REF:
            obj.col_name = r.cstr(p + "colName")
            obj.ref_db, obj.ref_table, obj.ref_column = (r.cstr(p + "refDbName"), r.cstr(p + "refTbName"),
                                                         r.cstr(p + "refColName"))
        # optional tail (tDecodeIsEnd): ctimeMs, source, typeMod (add-column actions only)
        present = 0
        if not r.at_end():
            obj.ctime_ms = r.i64(p + "ctimeMs")
            present = 1
        if not r.at_end():
            obj.source = r.i8(p + "source")
            present = 2
        if a in (ALTER_ADD_COLUMN, ALTER_ADD_COLUMN_WITH_COMPRESS_OPTION):
            if not r.at_end():
                obj.type_mod = r.i32(p + "typeMod")
                present = 3
            obj.trailing = None if present == 3 else present
        else:
            obj.trailing = None if present == 2 else present
        obj.extra = r.rest()
        return obj


def _flag(r: _Reader, what: str) -> bool:
    v = r.i8(what)
    if v not in (0, 1):
        raise CodecError(what, r.pos - 1, f"flag is {v}, not 0 or 1")
    return v == 1


def _check_tag_raw(tag_type: int, raw: bytes, what: str, at: int) -> None:
    """A SET TAG value must decode as its type (fixed types at their width, JSON as an STag)."""
    try:
        decode_tag_value(tag_type, raw, at)
    except CodecError as exc:
        raise CodecError(what, exc.offset, exc.reason) from None


# --- 579 -------------------------------------------------------------------------------------------------

@dataclass
class Delete:
    """579 ``SDeleteRes`` (not framed): DELETE FROM ``table_name`` WHERE ts BETWEEN skey AND ekey.

    ``table_name`` is the plain name of the table (the stable's for a DELETE on a stable; the C
    field is called tableFName); ``suid`` the stable uid for child/stable deletes (0 for a normal
    table); ``uids`` the tables deleted from in this vgroup."""

    RAW_TYPE = RAW_DELETE

    suid: int
    uids: list[int]
    skey: int
    ekey: int
    affected_rows: int
    table_name: str
    ts_col_name: str
    ctime_ms: int = 0
    source: int = TD_REQ_FROM_APP
    extra: bytes = b""
    vgroup_id: int = 0
    trailing: int | None = None

    def encode(self, vgroup_id: int | None = None, source: int | None = None) -> bytes:
        w = _Writer()
        w.u64(self.suid, "suid")
        w.ivarint(len(self.uids), 32, "nUid")
        for uid in self.uids:
            w.u64(uid, "uid")
        w.i64(self.skey, "skey")
        w.i64(self.ekey, "ekey")
        w.ivarint(self.affected_rows, 64, "affectedRows")
        w.cstr(self.table_name)
        w.cstr(self.ts_col_name)
        if self.trailing is None or self.trailing > 0:
            w.i64(self.ctime_ms, "ctimeMs")
        if self.trailing is None or self.trailing > 1:
            w.i8(self.source if source is None else source, "source")
        w.raw(self.extra)
        return _with_head(self.vgroup_id if vgroup_id is None else vgroup_id, w.buf)

    @classmethod
    def decode(cls, data: bytes) -> Delete:
        vg, r = _open(data)
        p = "SDeleteRes."
        suid = r.u64(p + "suid")
        at = r.pos
        n = r.count(r.ivarint(p + "nUid", 32), 8, p + "nUid", at)
        uids = [r.u64(f"{p}uids[{i}]") for i in range(n)]
        obj = cls(suid, uids, r.i64(p + "skey"), r.i64(p + "ekey"), r.ivarint(p + "affectedRows", 64),
                  r.cstr(p + "tableFName"), r.cstr(p + "tsColName"), vgroup_id=vg)
        # optional tail (tDecodeIsEnd): ctimeMs, source
        if r.at_end():
            obj.trailing = 0
        else:
            if r.left < 8:
                raise CodecError(p + "ctimeMs", r.pos, f"{r.left} bytes left, needs 8")
            obj.ctime_ms = r.i64(p + "ctimeMs")
            if r.at_end():
                obj.trailing = 1
            else:
                obj.source = r.i8(p + "source")
        obj.extra = r.rest()
        return obj


# --- dispatch ----------------------------------------------------------------------------------------------

MetaRequest = CreateTablesBatch | AlterTable | DropTablesBatch | CreateSuperTable | DropSuperTable | Delete

_DECODERS: dict[int, Any] = {
    RAW_CREATE_TABLE: CreateTablesBatch,
    RAW_ALTER_TABLE: AlterTable,
    RAW_DROP_TABLE: DropTablesBatch,
    RAW_CREATE_STB: CreateSuperTable,
    RAW_ALTER_STB: AlterSuperTable,
    RAW_DROP_STB: DropSuperTable,
    RAW_DELETE: Delete,
}


def decode_meta(raw_type: int, data: bytes) -> MetaRequest:
    """Decode a meta WAL body (``tmq_write_raw`` data) by its raw_type."""
    cls = _DECODERS.get(raw_type)
    if cls is None:
        raise CodecError("raw_type", 0, f"{raw_type} is not a meta raw_type (known: {sorted(_DECODERS)})")
    return cls.decode(data)
