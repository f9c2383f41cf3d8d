"""A straightforward pure-Python (``struct``) decoder of TMQ data messages, the benchmarks' baseline.

It does the same work as the Cython ``RawDataMessage.decode`` (ext/tmqmsg.pyx, ext/rawblock.pyx):
the envelope (0x64 prefix, offset length, request and response offsets, block count, flags), per
block the 18-byte retrieve header, the raw block header, the schema entries, the column lengths
(little-endian, else big-endian), the placement of every column section, the check of every
variable-column offset (-1, or a whole length-prefixed value inside the payload), the schema
wrapper (zigzag varints, CStr names) and table name, then the sleep time (raw_type 2) or the
create-table requests (raw_type 4). Like the Cython decoder it keeps positions, not values: the
values are made only by ``PyBlock.column_values`` / ``PyBlock.rows`` (to compare with the Cython
``RawBlock.rows()``).

It is written the way a competent Python programmer would write it for speed: precompiled
``struct.Struct`` objects, bulk unpacking of the per-column arrays, ``memoryview.cast`` for the
offset arrays and fixed-width columns, single-byte fast paths for varints. Layout: formats.md
sections 1 and 2.4. Little-endian hosts only (as the codec).
"""

from __future__ import annotations

import struct
import sys
from decimal import Context, Decimal

from engine.errors import CodecError

if sys.byteorder != "little":
    raise ImportError("the pure-Python decoder, like the codec, supports little-endian hosts only")

RAW_TYPE_DATA = 2
RAW_TYPE_METADATA = 4
MQ_DATA_RSP_VERSION = 100
RETRIEVE_HEADER_SIZE = 18
BLOCK_HEADER_SIZE = 28
TYPE_COUNT = 22
TYPE_NULL, TYPE_BOOL, TYPE_VARCHAR, TYPE_NCHAR, TYPE_JSON = 0, 1, 8, 10, 15
TYPE_DECIMAL, TYPE_DECIMAL64 = 17, 21

FIXED_WIDTH = (0, 1, 1, 2, 4, 8, 4, 8, 0, 8, 0, 1, 2, 4, 8, 0, 0, 16, 0, 0, 0, 8)
VAR_PREFIX = (0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 0, 2, 2, 0, 4, 4, 2, 0)
# memoryview.cast format of each fixed-width type's values (bool via "B", decimals by hand).
CAST_FORMAT = {1: "B", 2: "b", 3: "h", 4: "i", 5: "q", 6: "f", 7: "d", 9: "q", 11: "B", 12: "H",
               13: "I", 14: "Q", 21: "q"}

_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_U16 = struct.Struct("<H")
_BLOCK_HEADER = struct.Struct("<iiiiIQ")        # version, total length, rows, columns, flag, group id
_RETRIEVE = struct.Struct("<q8sbB")              # version (LE), rows (BE, 8 bytes), compressed, precision
_SCHEMA_ENTRY = struct.Struct("<bi")             # type, bytes
_DECIMAL_CONTEXT = Context(prec=80)


def _fail(field: str, offset: int, reason: str):
    raise CodecError(field, offset, reason)


def _need(pos: int, n: int, end: int, field: str) -> None:
    if n > end - pos:
        _fail(field, pos, f"needs {n} bytes but only {end - pos} remain")


def _uvarint(buf, pos: int, end: int, max_bits: int, field: str) -> tuple[int, int]:
    """Unsigned LEB128; rejects overlong and overflowing values. Returns (value, new position)."""
    start = pos
    value = 0
    shift = 0
    while True:
        if pos >= end:
            _fail(field, start, "varint runs past the end of the data")
        byte = buf[pos]
        pos += 1
        if shift >= max_bits or (max_bits - shift < 7 and ((byte & 0x7F) >> (max_bits - shift)) != 0):
            _fail(field, start, f"varint does not fit in {max_bits} bits")
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and shift > 0:
                _fail(field, start, "overlong varint (ends in a zero byte)")
            return value, pos
        shift += 7


def _zigzag(buf, pos: int, end: int, max_bits: int, field: str) -> tuple[int, int]:
    if pos < end and buf[pos] < 0x80:       # one-byte fast path
        u = buf[pos]
        pos += 1
    else:
        u, pos = _uvarint(buf, pos, end, max_bits, field)
    return (u >> 1) ^ -(u & 1), pos


def _binary(buf, pos: int, end: int, field: str) -> tuple[int, int, int]:
    """tEncodeBinary: U32v length, bytes. Returns (start, length, new position)."""
    if pos < end and buf[pos] < 0x80:
        n = buf[pos]
        pos += 1
    else:
        n, pos = _uvarint(buf, pos, end, 32, field)
    if n > end - pos:
        _fail(field, pos, f"length {n} exceeds the {end - pos} bytes that remain")
    return pos, n, pos + n


def _cstr(buf, pos: int, end: int, field: str) -> tuple[int, int, int]:
    """tEncodeCStr. Returns (start, length without the NUL, new position)."""
    at, n, pos = _binary(buf, pos, end, field)
    if n == 0 or buf[at + n - 1] != 0:
        _fail(field, at, "string is not NUL-terminated")
    return at, n - 1, pos


def _skip_offset(buf, pos: int, end: int, field: str) -> int:
    """Read past one STqOffsetVal; return the position after it."""
    _need(pos, 1, end, field)
    type_byte = buf[pos] - 256 if buf[pos] > 127 else buf[pos]
    pos += 1
    kind = type_byte & 0x0F if type_byte > 0 else type_byte
    if kind == 2 or kind == 3:
        _need(pos, 16, end, field)
        pos += 16
        if type_byte >> 4 >= 1:
            _need(pos, 1, end, field)
            pk_type = buf[pos] - 256 if buf[pos] > 127 else buf[pos]
            pos += 1
            if 0 <= pk_type < TYPE_COUNT and VAR_PREFIX[pk_type]:
                _, _, pos = _binary(buf, pos, end, field)
            else:
                _need(pos, 8, end, field)
                pos += 8
    elif kind == 1:
        _need(pos, 8, end, field)
        pos += 8
    elif kind < -3 or kind > 3:
        _fail(field, pos - 1, f"unknown offset type {type_byte}")
    return pos


class PyBlock:
    """A validated raw block: column positions only; values on request."""

    __slots__ = ("buf", "start", "length", "version", "num_rows", "num_columns", "flag", "group_id",
                 "big_endian_lengths", "has_blank_fill", "types", "col_bytes", "data_lens", "nulls_at",
                 "data_at", "retrieve_version", "retrieve_rows", "precision", "schema_at", "schema_len",
                 "name_at", "name_len")

    @property
    def table_name(self) -> str | None:
        if self.name_at < 0:
            return None
        return str(self.buf[self.name_at:self.name_at + self.name_len], "utf-8")

    def column_values(self, i: int) -> list:
        """One column as Python values (None for NULL), like the Cython ``Column.to_pylist()``."""
        buf, rows, t = self.buf, self.num_rows, self.types[i]
        nulls_at, data_at = self.nulls_at[i], self.data_at[i]
        mv = memoryview(buf)
        prefix = VAR_PREFIX[t]
        if prefix:
            out = []
            append = out.append
            u16 = _U16.unpack_from
            u32 = _U32.unpack_from
            if t == TYPE_VARCHAR or t == TYPE_JSON:
                encoding = "utf-8"
            elif t == TYPE_NCHAR:
                encoding = "utf-32-le"
            else:
                encoding = None
            for off in mv[nulls_at:nulls_at + 4 * rows].cast("i"):
                if off == -1:
                    append(None)
                    continue
                q = data_at + off
                if prefix == 2:
                    n = u16(buf, q)[0]
                else:
                    n = u32(buf, q)[0]
                q += prefix
                if encoding is None:
                    append(bytes(mv[q:q + n]))
                else:
                    try:
                        append(str(mv[q:q + n], encoding))
                    except UnicodeDecodeError as exc:
                        _fail("text value", q + exc.start, f"not valid {encoding}")
            return out
        if t == TYPE_NULL:
            return [None] * rows
        width = FIXED_WIDTH[t]
        raw = mv[data_at:data_at + width * rows]
        if t == TYPE_DECIMAL:
            scale = -(self.col_bytes[i] & 0xFF)
            vals = [Decimal(int.from_bytes(raw[k:k + 16], "little", signed=True)).scaleb(scale, _DECIMAL_CONTEXT)
                    for k in range(0, 16 * rows, 16)]
        elif t == TYPE_DECIMAL64:
            scale = -(self.col_bytes[i] & 0xFF)
            vals = [Decimal(v).scaleb(scale, _DECIMAL_CONTEXT) for v in raw.cast("q")]
        elif t == TYPE_BOOL:
            vals = [v != 0 for v in raw]
        else:
            vals = raw.cast(CAST_FORMAT[t]).tolist()
        bitmap = bytes(mv[nulls_at:nulls_at + ((rows + 7) >> 3)])
        if bitmap.count(0) != len(bitmap):
            for k, byte in enumerate(bitmap):
                if byte:
                    base = k << 3
                    for bit in range(min(8, rows - base)):    # padding bits past the last row are ignored
                        if byte & (0x80 >> bit):
                            vals[base + bit] = None
        return vals

    def rows(self) -> list[tuple]:
        """All rows as tuples, like the Cython ``RawBlock.rows()``."""
        if not self.num_columns:
            return [() for _ in range(self.num_rows)]
        return list(zip(*[self.column_values(i) for i in range(self.num_columns)]))


class PyDataMessage:
    __slots__ = ("raw_type", "req_raw", "rsp_raw", "with_table_name", "with_schema", "blocks",
                 "num_rows", "has_sleep_time", "sleep_time", "create_table_requests", "nbytes")

    @property
    def table_names(self) -> list[str | None]:
        return [b.table_name for b in self.blocks]


def _lay_out(blk: PyBlock, lengths: tuple, first_at: int, end: int) -> bool:
    """Place every column section for one reading of the length array; False if inconsistent."""
    rows = blk.num_rows
    bitmap_len = (rows + 7) >> 3
    pos = first_at
    nulls_at = []
    data_at = []
    for t, n in zip(blk.types, lengths):
        if n < 0:
            return False
        nulls_at.append(pos)
        if VAR_PREFIX[t]:
            pos += 4 * rows
        else:
            if n != FIXED_WIDTH[t] * rows:
                return False
            pos += bitmap_len
        data_at.append(pos)
        if n > end - pos:
            return False
        pos += n
    if pos == end:
        blk.has_blank_fill = False
    elif pos + 1 == end:
        blk.has_blank_fill = True
    else:
        return False
    blk.data_lens = lengths
    blk.nulls_at = nulls_at
    blk.data_at = data_at
    return True


def _raise_layout(blk: PyBlock, lengths: tuple, lengths_at: int, end: int):
    """Explain why the little-endian reading of the lengths does not fit (as the codec does)."""
    rows = blk.num_rows
    pos = lengths_at + 4 * blk.num_columns
    for i, (t, n) in enumerate(zip(blk.types, lengths)):
        if n < 0:
            _fail("column length", lengths_at + 4 * i, f"negative length {n} for column {i}")
        if VAR_PREFIX[t]:
            pos += 4 * rows
        else:
            if n != FIXED_WIDTH[t] * rows:
                _fail("column length", lengths_at + 4 * i,
                      f"column {i} has {n} bytes, {rows} rows of type {t} need {FIXED_WIDTH[t] * rows}")
            pos += (rows + 7) >> 3
        if pos > end or n > end - pos:
            _fail("column length", lengths_at + 4 * i, f"column {i} ({n} bytes) runs past the block end at byte {end}")
        pos += n
    _fail("block total length", blk.start + 4,
          f"columns end at byte {pos} but the block declares it ends at byte {end}")


def _check_offsets(blk: PyBlock, mv: memoryview) -> None:
    """Every non-NULL offset of a variable column must point at a whole value in its payload."""
    buf = blk.buf
    rows = blk.num_rows
    for i, t in enumerate(blk.types):
        prefix = VAR_PREFIX[t]
        if not prefix:
            continue
        nulls_at = blk.nulls_at[i]
        payload = blk.data_at[i]
        dlen = blk.data_lens[i]
        limit = dlen - prefix                  # the largest offset a value can start at
        offsets = mv[nulls_at:nulls_at + 4 * rows].cast("i")
        if prefix == 2:
            nchar = t == TYPE_NCHAR
            for off in offsets:
                if off == -1:
                    continue
                if off < 0 or off > limit:
                    _bad_offset(blk, i, offsets, off, dlen)
                q = payload + off
                n = buf[q] | (buf[q + 1] << 8)
                if n > limit - off or (nchar and n & 3):
                    _bad_length(blk, i, offsets, off, n, nchar)
        else:
            u32 = _U32.unpack_from
            for off in offsets:
                if off == -1:
                    continue
                if off < 0 or off > limit:
                    _bad_offset(blk, i, offsets, off, dlen)
                if u32(buf, payload + off)[0] > limit - off:
                    _bad_length(blk, i, offsets, off, u32(buf, payload + off)[0], False)


def _bad_offset(blk: PyBlock, i: int, offsets, off: int, dlen: int):
    row = list(offsets).index(off)
    _fail("value offset", blk.nulls_at[i] + 4 * row,
          f"column {i} row {row}: offset {off} outside its {dlen}-byte payload")


def _bad_length(blk: PyBlock, i: int, offsets, off: int, n: int, nchar: bool):
    row = list(offsets).index(off)
    if n > blk.data_lens[i] - off - VAR_PREFIX[blk.types[i]]:
        _fail("value length", blk.data_at[i] + off, f"column {i} row {row}: {n}-byte value runs past its payload")
    _fail("value length", blk.data_at[i] + off, f"column {i} row {row}: NCHAR value of {n} bytes is not UCS-4")


def _parse_block(buf, mv: memoryview, at: int, end: int) -> PyBlock:
    """SRetrieveTableRspForTmq (18 bytes) then the raw block, which must fill ``[at, end)``."""
    _need(at, RETRIEVE_HEADER_SIZE, end, "block retrieve header")
    retrieve_version, rows_be, compressed, precision = _RETRIEVE.unpack_from(buf, at)
    if compressed != 0:
        _fail("block compressed flag", at + 16, "compressed TMQ blocks are not supported")
    if precision > 2:
        _fail("block precision", at + 17, f"unknown precision {precision}")
    start = at + RETRIEVE_HEADER_SIZE
    _need(start, 8, end, "block header")
    total = _I32.unpack_from(buf, start + 4)[0]
    if total < BLOCK_HEADER_SIZE or total > end - start:
        _fail("block total length", start + 4,
              f"{total} is outside the {end - start} bytes available (minimum {BLOCK_HEADER_SIZE})")
    if total != end - start:
        _fail("block total length", start + 4, f"{total} differs from the {end - start} bytes its container gives it")
    version, total, rows, ncols, flag, group_id = _BLOCK_HEADER.unpack_from(buf, start)
    if rows < 0:
        _fail("block rows", start + 8, f"negative row count {rows}")
    if ncols < 0 or ncols > (total - BLOCK_HEADER_SIZE) // 9:
        _fail("block columns", start + 12, f"{ncols} columns cannot fit in a {total}-byte block")
    if ncols == 0 and rows != 0:
        _fail("block rows", start + 8, f"{rows} rows in a block without columns")
    blk = PyBlock()
    blk.buf = buf
    blk.start = start
    blk.length = total
    blk.version = version
    blk.num_rows = rows
    blk.num_columns = ncols
    blk.flag = flag
    blk.group_id = group_id
    blk.retrieve_version = retrieve_version
    blk.retrieve_rows = int.from_bytes(rows_be, "big", signed=True)
    blk.precision = precision
    blk.schema_at = blk.name_at = -1
    blk.schema_len = blk.name_len = 0
    blk.big_endian_lengths = False
    # Schema entries: (type, bytes) per column, checked against the type's width.
    entries_at = start + BLOCK_HEADER_SIZE
    types = []
    col_bytes = []
    for i, (t, nbytes) in enumerate(_SCHEMA_ENTRY.iter_unpack(mv[entries_at:entries_at + 5 * ncols])):
        if t < 0 or t >= TYPE_COUNT:
            _fail("column type", entries_at + 5 * i, f"unknown type code {t} for column {i}")
        width = FIXED_WIDTH[t]
        prefix = VAR_PREFIX[t]
        if t == TYPE_DECIMAL or t == TYPE_DECIMAL64:
            if (nbytes >> 24) & 0xFF != width:
                _fail("column bytes", entries_at + 5 * i + 1,
                      f"decimal column {i} declares width {(nbytes >> 24) & 0xFF}, expected {width}")
        elif prefix == 0 and t != TYPE_NULL and nbytes != width:
            _fail("column bytes", entries_at + 5 * i + 1,
                  f"column {i} of type {t} declares {nbytes} bytes, expected {width}")
        elif prefix != 0 and nbytes < prefix:
            _fail("column bytes", entries_at + 5 * i + 1, f"variable column {i} declares only {nbytes} bytes")
        types.append(t)
        col_bytes.append(nbytes)
    blk.types = types
    blk.col_bytes = col_bytes
    # Column lengths: little-endian (TMQ form), else big-endian (a version-1 block from the server).
    lengths_at = entries_at + 5 * ncols
    block_end = start + total
    fmt = f"{ncols}i"
    if not _lay_out(blk, struct.unpack_from("<" + fmt, buf, lengths_at), lengths_at + 4 * ncols, block_end):
        if not _lay_out(blk, struct.unpack_from(">" + fmt, buf, lengths_at), lengths_at + 4 * ncols, block_end):
            _raise_layout(blk, struct.unpack_from("<" + fmt, buf, lengths_at), lengths_at, block_end)
        blk.big_endian_lengths = True
    _check_offsets(blk, mv)
    return blk


def _parse_schema(blk: PyBlock, buf, pos: int, end: int) -> int:
    """SSchemaWrapper: I32v count, I32v version, count x {i8 type, i8 flags, I32v bytes, I16v id, CStr}."""
    start = pos
    n, pos = _zigzag(buf, pos, end, 32, "schema column count")
    if n != blk.num_columns:
        _fail("schema column count", start, f"schema has {n} columns but its block has {blk.num_columns}")
    _, pos = _zigzag(buf, pos, end, 32, "schema version")
    types = blk.types
    for i in range(n):
        if pos >= end:
            _need(pos, 1, end, "schema column type")
        t = buf[pos]
        if t > 127:
            t -= 256
        if t != types[i]:
            _fail("schema column type", pos, f"schema column {i} has type {t}, its block column has {types[i]}")
        if pos + 1 >= end:
            _need(pos + 1, 1, end, "schema column flags")
        pos += 2                                             # type, flags
        # bytes (I32v) and column id (I16v): one-byte fast paths, else the checked varint reader
        if pos < end and buf[pos] < 0x80:
            pos += 1
        else:
            _, pos = _uvarint(buf, pos, end, 32, "schema column bytes")
        if pos < end and buf[pos] < 0x80:
            pos += 1
        else:
            _, pos = _uvarint(buf, pos, end, 16, "schema column id")
        _, _, pos = _cstr(buf, pos, end, "schema column name")
    blk.schema_at = start
    blk.schema_len = pos - start
    return pos


def decode(data, raw_type: int = RAW_TYPE_DATA) -> PyDataMessage:
    """Validate a raw_type 2 or 4 message and return it as positions over ``data``."""
    if raw_type != RAW_TYPE_DATA and raw_type != RAW_TYPE_METADATA:
        raise ValueError(f"raw_type {raw_type} is not a data message (2 or 4)")
    buf = data if type(data) is bytes or type(data) is bytearray else memoryview(data).cast("B")
    mv = memoryview(buf)
    end = len(buf)
    m = PyDataMessage()
    m.raw_type = raw_type
    _need(0, 5, end, "message version")
    prefix = buf[0]
    if prefix != MQ_DATA_RSP_VERSION:
        found = prefix - 256 if prefix > 127 else prefix
        _fail("message version", 0, f"expected {MQ_DATA_RSP_VERSION} (0x64), found {found}")
    offset_len = _I32.unpack_from(buf, 1)[0]
    if offset_len < 2 or offset_len > end - 5:
        _fail("offset length", 1, f"{offset_len} does not fit the {end - 5} bytes that follow")
    pos = _skip_offset(buf, 5, end, "request offset")
    m.req_raw = bytes(buf[5:pos])
    at = pos
    pos = _skip_offset(buf, pos, end, "response offset")
    m.rsp_raw = bytes(buf[at:pos])
    if pos - 5 != offset_len:
        _fail("offset length", 1, f"declares {offset_len} bytes, the offsets take {pos - 5}")
    _need(pos, 4, end, "block count")
    nblocks = _I32.unpack_from(buf, pos)[0]
    pos += 4
    if nblocks < 0 or nblocks > end - pos:
        _fail("block count", pos - 4, f"{nblocks} blocks cannot fit in {end - pos} bytes")
    m.with_table_name = m.with_schema = False
    if nblocks:
        _need(pos, 2, end, "with table name flag")
        m.with_table_name = buf[pos] != 0
        m.with_schema = buf[pos + 1] != 0
        pos += 2
    blocks = []
    num_rows = 0
    for _ in range(nblocks):
        at, blen, pos = _binary(buf, pos, end, "block")
        blk = _parse_block(buf, mv, at, at + blen)
        if m.with_schema:
            pos = _parse_schema(blk, buf, pos, end)
        if m.with_table_name:
            blk.name_at, blk.name_len, pos = _cstr(buf, pos, end, "table name")
        num_rows += blk.num_rows
        blocks.append(blk)
    m.blocks = blocks
    m.num_rows = num_rows
    m.has_sleep_time = False
    m.sleep_time = 0
    m.create_table_requests = None
    if raw_type == RAW_TYPE_DATA:
        if pos < end:
            _need(pos, 8, end, "sleep time")
            m.sleep_time = _I64.unpack_from(buf, pos)[0]
            m.has_sleep_time = True
            pos += 8
    else:
        _need(pos, 4, end, "create table count")
        nreq = _I32.unpack_from(buf, pos)[0]
        pos += 4
        if nreq < 0 or nreq > end - pos:
            _fail("create table count", pos - 4, f"{nreq} requests cannot fit in {end - pos} bytes")
        requests = []
        for _ in range(nreq):
            at, blen, pos = _binary(buf, pos, end, "create table request")
            requests.append(bytes(buf[at:at + blen]))
        m.create_table_requests = requests
    if pos != end:
        _fail("message end", pos, f"{end - pos} unexpected bytes after the message")
    m.nbytes = end
    return m


def decode_rows(data, raw_type: int = RAW_TYPE_DATA) -> list[list[tuple]]:
    """Decode and make every value: the rows of each block (the 'values' path)."""
    return [blk.rows() for blk in decode(data, raw_type).blocks]
