# Raw block decode/encode (included by codec.pyx). Layout: formats.md section 1.

import decimal as _decimal
from cpython.mem cimport PyMem_Malloc, PyMem_Free
cdef extern from "Python.h":
    object PyUnicode_DecodeUTF32(const char *s, Py_ssize_t size, const char *errors, int *byteorder)
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.string cimport memset
from libc.math cimport isnan

cdef object Decimal = _decimal.Decimal
cdef int32_t MAX_BLOB_BYTES = 4 * 1024 * 1024   # TSDB_MAX_BLOB_LEN
cdef object _DECIMAL_CONTEXT = _decimal.Context(prec=80)

# Element width of each fixed type (0 for variable ones), and the length prefix of variable ones.
cdef int32_t FIXED_WIDTH[22]
cdef int32_t VAR_PREFIX[22]
FIXED_WIDTH[:] = [0, 1, 1, 2, 4, 8, 4, 8, 0, 8, 0, 1, 2, 4, 8, 0, 0, 16, 0, 0, 0, 8]
VAR_PREFIX[:] = [0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 0, 2, 2, 0, 4, 4, 2, 0]

TYPE_NAMES = (
    "NULL", "BOOL", "TINYINT", "SMALLINT", "INT", "BIGINT", "FLOAT", "DOUBLE", "VARCHAR",
    "TIMESTAMP", "NCHAR", "TINYINT UNSIGNED", "SMALLINT UNSIGNED", "INT UNSIGNED",
    "BIGINT UNSIGNED", "JSON", "VARBINARY", "DECIMAL", "BLOB", "MEDIUMBLOB", "GEOMETRY",
    "DECIMAL64",
)


cdef inline bint is_decimal(int t) noexcept:
    return t == TYPE_DECIMAL or t == TYPE_DECIMAL64


cdef RawBlock parse_raw_block(ByteSource src, Reader *r, Py_ssize_t exact_len):
    """Validate the block at the reader's position and return it as a view.

    ``exact_len`` is the size the container says the block has (-1: up to the reader's end).
    Every offset a later read will follow is checked here, so values can be read unchecked.
    """
    cdef RawBlock b = RawBlock.__new__(RawBlock)
    cdef Py_ssize_t start = r.pos
    cdef Py_ssize_t total, i, schema_at
    cdef Reader hr
    cdef int64_t t, nbytes
    cdef ColumnLayout *c
    b.src = src
    b.start = start
    b.retrieve_version = -1
    b.precision = -1
    b.name_at = -1
    b.schema_at = -1
    b.version = <int32_t>read_i32le(r, "block version")
    total = read_i32le(r, "block total length")
    if total < BLOCK_HEADER_SIZE or total > r.end - start:
        codec_error("block total length", start + 4,
                    f"{total} is outside the {r.end - start} bytes available (minimum {BLOCK_HEADER_SIZE})")
    if exact_len >= 0 and total != exact_len:
        codec_error("block total length", start + 4,
                    f"{total} differs from the {exact_len} bytes its container gives it")
    hr.data = r.data
    hr.pos = r.pos
    hr.end = start + total
    b.num_rows = <int32_t>read_i32le(&hr, "block rows")
    if b.num_rows < 0:
        codec_error("block rows", start + 8, f"negative row count {b.num_rows}")
    b.num_columns = <int32_t>read_i32le(&hr, "block columns")
    if b.num_columns < 0 or b.num_columns > (total - BLOCK_HEADER_SIZE) // 9:
        codec_error("block columns", start + 12,
                    f"{b.num_columns} columns cannot fit in a {total}-byte block")
    if b.num_columns == 0 and b.num_rows != 0:
        # Nothing bounds the row count of a block without columns: rows() would make that many tuples.
        codec_error("block rows", start + 8, f"{b.num_rows} rows in a block without columns")
    b.flag = <uint32_t>read_u32le(&hr, "block flag")
    b.group_id = read_u64le(&hr, "block group id")
    b.length = total
    b.cols = <ColumnLayout *>PyMem_Malloc(sizeof(ColumnLayout) * (b.num_columns if b.num_columns else 1))
    if b.cols == NULL:
        raise MemoryError()
    memset(b.cols, 0, sizeof(ColumnLayout) * (b.num_columns if b.num_columns else 1))
    schema_at = take(&hr, 5 * b.num_columns, "column schema")   # one bounds check for all entries
    for i in range(b.num_columns):
        c = &b.cols[i]
        t = <int8_t>r.data[schema_at + 5 * i]
        hr.pos = schema_at + 5 * i + 5
        if t < 0 or t >= TYPE_COUNT:
            codec_error("column type", hr.pos - 5, f"unknown type code {t} for column {i}")
        nbytes = load_i32le(r.data + schema_at + 5 * i + 1)
        c.type = <int>t
        c.bytes = <int32_t>nbytes
        c.prefix = VAR_PREFIX[t]
        c.width = FIXED_WIDTH[t]
        if is_decimal(c.type):
            if (nbytes >> 24) & 0xFF != c.width:
                codec_error("column bytes", hr.pos - 4,
                            f"decimal column {i} declares width {(nbytes >> 24) & 0xFF}, expected {c.width}")
        elif c.prefix == 0 and t != TYPE_NULL and nbytes != c.width:
            codec_error("column bytes", hr.pos - 4,
                        f"column {i} of type {TYPE_NAMES[t]} declares {nbytes} bytes, expected {c.width}")
        elif c.prefix != 0 and nbytes < c.prefix:
            codec_error("column bytes", hr.pos - 4, f"variable column {i} declares only {nbytes} bytes")
    lengths_at = take(&hr, 4 * b.num_columns, "column lengths")
    if not _lay_out(b, r.data, lengths_at, total, False, False):
        if not _lay_out(b, r.data, lengths_at, total, True, False):
            # Report against the little-endian reading, the one every 3.3 client produces.
            _lay_out(b, r.data, lengths_at, total, False, True)
        b.big_endian_lengths = True
    _check_offsets(b, r.data)
    r.pos = start + total
    return b


cdef int _lay_out(RawBlock b, const unsigned char *data, Py_ssize_t lengths_at, Py_ssize_t total,
                  bint big_endian, bint report) except -1:
    """Place every column section for one byte order of the length array: 1 if consistent, else 0.

    With ``report`` an inconsistency raises a CodecError naming the column instead.
    """
    cdef Py_ssize_t pos = lengths_at + 4 * b.num_columns
    cdef Py_ssize_t end = b.start + total
    cdef Py_ssize_t rows = b.num_rows
    cdef int64_t n
    cdef int i
    cdef ColumnLayout *c
    for i in range(b.num_columns):
        c = &b.cols[i]
        if big_endian:
            n = <int32_t>load_u32be(data + lengths_at + 4 * i)
        else:
            n = load_i32le(data + lengths_at + 4 * i)
        if n < 0:
            if report:
                codec_error("column length", lengths_at + 4 * i, f"negative length {n} for column {i}")
            return 0
        c.data_len = <int32_t>n
        c.nulls_at = pos
        if c.prefix:
            pos += 4 * rows
        else:
            if n != c.width * rows:
                if report:
                    codec_error("column length", lengths_at + 4 * i,
                                f"column {i} has {n} bytes, {rows} rows of {TYPE_NAMES[c.type]} "
                                f"need {c.width * rows}")
                return 0
            pos += (rows + 7) >> 3
        c.data_at = pos
        if pos > end or n > end - pos:
            if report:
                codec_error("column length", lengths_at + 4 * i,
                            f"column {i} ({n} bytes) runs past the block end at byte {end}")
            return 0
        pos += n
    if pos == end or pos + 1 == end:
        b.has_blank_fill = pos + 1 == end
        return 1
    if report:
        codec_error("block total length", b.start + 4,
                    f"columns end at byte {pos} but the block declares it ends at byte {end}")
    return 0


cdef int _check_offsets(RawBlock b, const unsigned char *data) except -1:
    """Every non-NULL offset of a variable column must point at a whole value in its payload."""
    cdef int i
    cdef Py_ssize_t row, rows = b.num_rows
    cdef int64_t off, n, dlen
    cdef const unsigned char *offsets
    cdef const unsigned char *payload
    cdef ColumnLayout *c
    for i in range(b.num_columns):
        c = &b.cols[i]
        if not c.prefix:
            continue
        offsets = data + c.nulls_at
        payload = data + c.data_at
        dlen = c.data_len
        for row in range(rows):
            off = load_i32le(offsets + 4 * row)
            if off == -1:
                continue
            if off < 0 or off + c.prefix > dlen:
                codec_error("value offset", c.nulls_at + 4 * row,
                            f"column {i} row {row}: offset {off} outside its {dlen}-byte payload")
            if c.prefix == 2:
                n = load_u16le(payload + off)
            else:
                n = load_u32le(payload + off)
            if n > dlen - off - c.prefix:
                codec_error("value length", c.data_at + off,
                            f"column {i} row {row}: {n}-byte value runs past its payload")
            if c.type == TYPE_NCHAR and n % 4:
                codec_error("value length", c.data_at + off,
                            f"column {i} row {row}: NCHAR value of {n} bytes is not UCS-4")
    return 0


cdef int parse_schema_wrapper(RawBlock block, ByteSource src, Reader *r) except -1:
    """SSchemaWrapper after a TMQ block: I32v count, I32v version, then the columns."""
    cdef Py_ssize_t start = r.pos
    cdef int64_t n, i, t
    cdef Py_ssize_t name_len
    n = read_zigzag(r, "schema column count", 32)
    if n != block.num_columns:
        codec_error("schema column count", start,
                    f"schema has {n} columns but its block has {block.num_columns}")
    read_zigzag(r, "schema version", 32)
    for i in range(n):
        t = read_i8(r, "schema column type")
        if t != block.cols[i].type:
            codec_error("schema column type", r.pos - 1,
                        f"schema column {i} has type {t}, its block column has {block.cols[i].type}")
        read_i8(r, "schema column flags")
        read_zigzag(r, "schema column bytes", 32)
        read_zigzag(r, "schema column id", 16)
        read_cstr(r, "schema column name", &name_len)
    block.schema_src = src
    block.schema_at = start
    block.schema_len = r.pos - start
    return 0


cdef int write_schema_wrapper(Writer *w, list schema) except -1:
    """``schema``: list of (type, flags, bytes, col_id, name); version 0 as the vnode sends it."""
    write_zigzag(w, len(schema))
    write_zigzag(w, 0)
    for t, flags, nbytes, col_id, name in schema:
        write_u8(w, <uint8_t>(<int>t & 0xFF))
        write_u8(w, <uint8_t>(<int>flags & 0xFF))
        write_zigzag(w, nbytes)
        write_zigzag(w, col_id)
        write_cstr(w, name)
    return 0


cdef class RawBlock:
    """A validated raw block; columns are views over the input, values are made on request."""

    def __dealloc__(self):
        if self.cols != NULL:
            PyMem_Free(self.cols)
            self.cols = NULL

    def __init__(self):
        raise TypeError("use RawBlock.decode() or encode_block()")

    @staticmethod
    def decode(data, *, int precision=-1):
        """Decode a standalone raw block (as ``taos_fetch_raw_block`` returns it)."""
        cdef ByteSource src = source_of(data)
        cdef Reader r
        reader_init(&r, src, 0, src.size)
        cdef RawBlock b = parse_raw_block(src, &r, src.size)
        b.precision = precision
        return b

    def __len__(self):
        return self.num_rows

    def __repr__(self):
        name = self.table_name
        return (f"<RawBlock {name + ' ' if name else ''}{self.num_rows} rows x "
                f"{self.num_columns} columns, {self.length} bytes>")

    @property
    def nbytes(self):
        """Size of the block in bytes."""
        return self.length

    @property
    def table_name(self):
        """The table the block belongs to (TMQ messages carry it), or None."""
        if self._table_name is None and self.name_at >= 0:
            self._table_name = decode_text(self.name_src.data, self.name_at, self.name_len, "table name")
        return self._table_name

    @property
    def schema(self):
        """Column definitions from the TMQ message, as (type, flags, bytes, col_id, name), or None."""
        cdef Reader r
        cdef Py_ssize_t at, n
        cdef list out
        cdef int64_t count, i
        if self._schema is None and self.schema_at >= 0:
            reader_init(&r, self.schema_src, self.schema_at, self.schema_at + self.schema_len)
            count = read_zigzag(&r, "schema column count", 32)
            read_zigzag(&r, "schema version", 32)
            out = []
            for i in range(count):
                t = read_i8(&r, "schema column type")
                flags = read_i8(&r, "schema column flags")
                nbytes = read_zigzag(&r, "schema column bytes", 32)
                col_id = read_zigzag(&r, "schema column id", 16)
                at = read_cstr(&r, "schema column name", &n)
                out.append((t, flags, nbytes, col_id,
                            decode_text(r.data, at, n, "schema column name")))
            self._schema = out
        return self._schema

    @property
    def column_names(self):
        """Names from the TMQ schema, else ``col1``, ``col2``… (a bare block carries none)."""
        if self._names is None:
            schema = self.schema
            if schema is not None:
                self._names = [entry[4] for entry in schema]
            else:
                self._names = [f"col{i + 1}" for i in range(self.num_columns)]
        return self._names

    def set_column_names(self, names):
        """Name the columns of a bare block (e.g. from the query's field list)."""
        names = list(names)
        if len(names) != self.num_columns:
            raise ValueError(f"{len(names)} names for {self.num_columns} columns")
        self._names = names

    @property
    def columns(self):
        return [Column._make(self, i) for i in range(self.num_columns)]

    def column(self, int index):
        if index < 0 or index >= self.num_columns:
            raise IndexError(f"column {index} of a {self.num_columns}-column block")
        return Column._make(self, index)

    def rows(self):
        """All rows as tuples of Python values (None for NULL)."""
        values = [self.column_values(i) for i in range(self.num_columns)]
        return list(zip(*values)) if values else [() for _ in range(self.num_rows)]

    def to_bytes(self, *, int version=-1):
        """The block's bytes with little-endian column lengths (what every writer accepts).

        ``version`` rewrites the header version (1 for query form, 2 for TMQ form).
        """
        cdef bytes out = PyBytes_FromStringAndSize(<const char *>(self.src.data + self.start), self.length)
        cdef unsigned char *p
        cdef int i
        cdef int32_t v
        if version < 0 and not self.big_endian_lengths:
            return out
        p = <unsigned char *>PyBytes_AS_STRING(out)
        if version >= 0:
            v = version
            memcpy(p, &v, 4)
        if self.big_endian_lengths:
            for i in range(self.num_columns):
                v = self.cols[i].data_len
                memcpy(p + BLOCK_HEADER_SIZE + 5 * self.num_columns + 4 * i, &v, 4)
        return out

    cdef object value(self, int column, Py_ssize_t row):
        cdef ColumnLayout *c = &self.cols[column]
        cdef const unsigned char *d = self.src.data
        cdef const unsigned char *p
        cdef int32_t off
        cdef Py_ssize_t n
        if c.prefix:
            off = load_i32le(d + c.nulls_at + 4 * row)
            if off == -1:
                return None
            # Checked again: a mutable input (bytearray, mmap) may have changed since decoding.
            if off < 0 or <Py_ssize_t>off + c.prefix > c.data_len:
                codec_error("value offset", c.nulls_at + 4 * row,
                            f"column {column} row {row}: offset {off} outside its {c.data_len}-byte payload")
            p = d + c.data_at + off
            if c.prefix == 2:
                n = load_u16le(p)
            else:
                n = load_u32le(p)
            if n > <Py_ssize_t>c.data_len - off - c.prefix:
                codec_error("value length", c.data_at + off,
                            f"column {column} row {row}: {n}-byte value runs past its payload")
            p += c.prefix
            if c.type == TYPE_VARCHAR or c.type == TYPE_JSON:
                return decode_text(d, (p - d), n, "text value")
            if c.type == TYPE_NCHAR:
                return _decode_ucs4(d, p - d, n)
            return PyBytes_FromStringAndSize(<const char *>p, n)
        if c.type == TYPE_NULL or d[c.nulls_at + (row >> 3)] & (0x80 >> (row & 7)):
            return None
        p = d + c.data_at + row * c.width
        return _fixed_value(c, p)

    cdef list column_values(self, int column):
        cdef Py_ssize_t row
        return [self.value(column, row) for row in range(self.num_rows)]


cdef str _decode_ucs4(const unsigned char *d, Py_ssize_t at, Py_ssize_t n):
    cdef int order = -1
    try:
        return PyUnicode_DecodeUTF32(<const char *>(d + at), n, NULL, &order)
    except UnicodeDecodeError as exc:
        codec_error("NCHAR value", at + exc.start, "not valid UCS-4")


cdef object _fixed_value(ColumnLayout *c, const unsigned char *p):
    cdef int t = c.type
    cdef float f
    cdef double g
    cdef uint64_t lo
    cdef int64_t hi
    if t == TYPE_TIMESTAMP or t == TYPE_BIGINT:
        return load_i64le(p)
    if t == TYPE_INT:
        return load_i32le(p)
    if t == TYPE_BOOL:
        return p[0] != 0
    if t == TYPE_TINYINT:
        return <int8_t>p[0]
    if t == TYPE_SMALLINT:
        return <int16_t>load_u16le(p)
    if t == TYPE_FLOAT:
        memcpy(&f, p, 4)
        return <double>f
    if t == TYPE_DOUBLE:
        memcpy(&g, p, 8)
        return g
    if t == TYPE_UTINYINT:
        return p[0]
    if t == TYPE_USMALLINT:
        return load_u16le(p)
    if t == TYPE_UINT:
        return load_u32le(p)
    if t == TYPE_UBIGINT:
        return load_u64le(p)
    if t == TYPE_DECIMAL64:
        return Decimal(load_i64le(p)).scaleb(-(c.bytes & 0xFF), _DECIMAL_CONTEXT)
    if t == TYPE_DECIMAL:
        lo = load_u64le(p)
        hi = load_i64le(p + 8)
        return Decimal((<object>hi << 64) | <object>lo).scaleb(-(c.bytes & 0xFF), _DECIMAL_CONTEXT)
    return None


cdef class Column:
    """One column of a RawBlock: a view, with values made only by ``to_pylist()``."""
    cdef RawBlock block
    cdef int index

    @staticmethod
    cdef Column _make(RawBlock block, int index):
        cdef Column c = Column.__new__(Column)
        c.block = block
        c.index = index
        return c

    def __len__(self):
        return self.block.num_rows

    def __repr__(self):
        return f"<Column {self.name} {self.type_name} x {len(self)}>"

    @property
    def name(self):
        return self.block.column_names[self.index]

    @property
    def type_code(self):
        return self.block.cols[self.index].type

    @property
    def type_name(self):
        return TYPE_NAMES[self.block.cols[self.index].type]

    @property
    def encoded_bytes(self):
        """The schema entry exactly as in the block (var types include the length prefix)."""
        return self.block.cols[self.index].bytes

    @property
    def bytes(self):
        """The width a user declared: varchar(32) -> 32, nchar(16) -> 16, decimals 8 or 16."""
        cdef ColumnLayout *c = &self.block.cols[self.index]
        if is_decimal(c.type):
            return c.width
        if c.type == TYPE_NCHAR or c.type == TYPE_JSON:
            return (c.bytes - 2) // 4     # declared in UCS-4 characters (json: 16384 -> 4095)
        if c.type == TYPE_BLOB or c.type == TYPE_MEDIUMBLOB:
            return MAX_BLOB_BYTES     # the block entry says 5; a blob holds up to 4 MiB
        if c.prefix:
            return c.bytes - c.prefix
        return c.bytes

    @property
    def precision(self):
        """Decimal precision (digits), or None for other types."""
        cdef ColumnLayout *c = &self.block.cols[self.index]
        return (c.bytes >> 8) & 0xFF if is_decimal(c.type) else None

    @property
    def scale(self):
        cdef ColumnLayout *c = &self.block.cols[self.index]
        return c.bytes & 0xFF if is_decimal(c.type) else None

    @property
    def is_variable(self):
        return self.block.cols[self.index].prefix != 0

    @property
    def data_length(self):
        return self.block.cols[self.index].data_len

    def null_count(self):
        cdef ColumnLayout *c = &self.block.cols[self.index]
        cdef const unsigned char *d = self.block.src.data
        cdef Py_ssize_t row, nulls = 0
        for row in range(self.block.num_rows):
            if c.prefix:
                nulls += load_i32le(d + c.nulls_at + 4 * row) == -1
            else:
                nulls += c.type == TYPE_NULL or (d[c.nulls_at + (row >> 3)] & (0x80 >> (row & 7))) != 0
        return nulls

    def to_pylist(self):
        return self.block.column_values(self.index)


def encode_block(columns, *, int version=2, bint blank_fill=True, uint32_t flag=0x80000000,
                 uint64_t group_id=0, bint big_endian_lengths=False):
    """Encode a raw block from ``[(type_code, schema_bytes, values), ...]``.

    ``schema_bytes`` is the block's column entry (varchar(n) -> n+2, nchar(n) -> 4n+2,
    decimals ``(width << 24) | (precision << 8) | scale``). Values are Python objects, None for
    NULL: int, float, bool, str (varchar, nchar, json), bytes (varbinary, geometry, blob),
    and Decimal, int or str for decimals. The default is the TMQ form (version 2,
    little-endian lengths, trailing byte); version 1 is the query form.
    """
    cdef list cols = list(columns)
    cdef Py_ssize_t ncols = len(cols), rows = -1, i
    cdef Writer w
    cdef Py_ssize_t lengths_at
    cdef int32_t total
    for col in cols:
        if len(col[2]) != rows and rows != -1:
            raise ValueError("every column needs the same number of values")
        rows = len(col[2])
    if rows < 0:
        rows = 0
    writer_init(&w, 64 + ncols * (16 + rows * 9))
    try:
        write_i32le(&w, version)
        write_i32le(&w, 0)                      # total length, patched below
        write_i32le(&w, <int32_t>rows)
        write_i32le(&w, <int32_t>ncols)
        write_bytes(&w, &flag, 4)
        write_bytes(&w, &group_id, 8)
        for t, nbytes, _ in cols:
            if not 0 <= t < TYPE_COUNT:
                raise ValueError(f"unknown type code {t}")
            write_u8(&w, <uint8_t>t)
            write_i32le(&w, <int32_t>nbytes)
        lengths_at = w.len
        writer_ensure(&w, 4 * ncols)
        w.len += 4 * ncols
        for i in range(ncols):
            t, nbytes, values = cols[i]
            n = _encode_column(&w, t, nbytes, values, rows)
            if big_endian_lengths:
                p = <unsigned char *>(w.buf + lengths_at + 4 * i)
                p[0] = (n >> 24) & 0xFF
                p[1] = (n >> 16) & 0xFF
                p[2] = (n >> 8) & 0xFF
                p[3] = n & 0xFF
            else:
                total = n
                memcpy(w.buf + lengths_at + 4 * i, &total, 4)
        if blank_fill:
            write_u8(&w, 0)
        total = <int32_t>w.len
        memcpy(w.buf + 4, &total, 4)
        return writer_finish(&w)
    finally:
        writer_free(&w)


cdef int32_t _encode_column(Writer *w, int t, int32_t nbytes, values, Py_ssize_t rows) except -1:
    cdef int32_t width = FIXED_WIDTH[t], prefix = VAR_PREFIX[t]
    cdef Py_ssize_t row, offsets_at, payload_at, bitmap_at
    cdef int32_t off
    cdef bytes raw
    cdef unsigned char *bitmap
    cdef uint16_t n16
    cdef uint32_t n32
    cdef int32_t minus_one = -1
    if prefix:
        offsets_at = w.len
        writer_ensure(w, 4 * rows)
        w.len += 4 * rows
        payload_at = w.len
        for row in range(rows):
            v = values[row]
            if v is None:
                memcpy(w.buf + offsets_at + 4 * row, &minus_one, 4)
                continue
            off = <int32_t>(w.len - payload_at)
            memcpy(w.buf + offsets_at + 4 * row, &off, 4)
            if t == TYPE_NCHAR:
                raw = (<str>v).encode("utf-32-le")
            elif isinstance(v, str):
                raw = (<str>v).encode("utf-8")
            else:
                raw = bytes(v)
            if prefix == 2:
                if len(raw) > 0xFFFF:
                    raise ValueError(f"value of {len(raw)} bytes is too long for type {TYPE_NAMES[t]}")
                n16 = <uint16_t>len(raw)
                write_bytes(w, &n16, 2)
            else:
                n32 = <uint32_t>len(raw)
                write_bytes(w, &n32, 4)
            write_bytes(w, <const char *>raw, len(raw))
        return <int32_t>(w.len - payload_at)
    bitmap_at = w.len
    writer_ensure(w, ((rows + 7) >> 3) + width * rows)
    memset(w.buf + bitmap_at, 0, (rows + 7) >> 3)
    w.len += (rows + 7) >> 3
    for row in range(rows):
        v = values[row]
        if v is None:
            w.buf[bitmap_at + (row >> 3)] |= <char>(0x80 >> (row & 7))
            memset(w.buf + w.len, 0, width)
            w.len += width
        else:
            _encode_fixed(w, t, nbytes, v)
    return width * <int32_t>rows


cdef int _encode_fixed(Writer *w, int t, int32_t nbytes, v) except -1:
    cdef int64_t i64
    cdef uint64_t u64
    cdef float f
    cdef double g
    cdef char *p = w.buf + w.len
    if t == TYPE_FLOAT:
        f = v
        memcpy(p, &f, 4)
    elif t == TYPE_DOUBLE:
        g = v
        memcpy(p, &g, 8)
    elif t == TYPE_DECIMAL64 or t == TYPE_DECIMAL:
        unscaled = _unscaled(v, nbytes & 0xFF)
        if t == TYPE_DECIMAL64:
            i64 = unscaled
            memcpy(p, &i64, 8)
        else:
            if not -(1 << 127) <= unscaled < (1 << 127):
                raise OverflowError(f"decimal {v} does not fit in 128 bits")
            u64 = unscaled & 0xFFFFFFFFFFFFFFFF
            memcpy(p, &u64, 8)
            i64 = unscaled >> 64
            memcpy(p + 8, &i64, 8)
    elif t == TYPE_UBIGINT:
        u64 = v
        memcpy(p, &u64, 8)
    elif t == TYPE_BOOL:
        p[0] = 1 if v else 0
    else:
        i64 = v
        if t == TYPE_TINYINT and not -128 <= i64 <= 127 or \
           t == TYPE_SMALLINT and not -32768 <= i64 <= 32767 or \
           t == TYPE_INT and not -2147483648 <= i64 <= 2147483647 or \
           t == TYPE_UTINYINT and not 0 <= i64 <= 255 or \
           t == TYPE_USMALLINT and not 0 <= i64 <= 65535 or \
           t == TYPE_UINT and not 0 <= i64 <= 4294967295:
            raise OverflowError(f"{v} is out of range for {TYPE_NAMES[t]}")
        memcpy(p, &i64, FIXED_WIDTH[t])   # little-endian host: the low bytes come first
    w.len += FIXED_WIDTH[t]
    return 0


cdef object _unscaled(v, int scale):
    if isinstance(v, int):
        return v * (<object>10) ** scale    # Python ints: a C `10 ** scale` is a double and rounds
    d = Decimal(v) if not isinstance(v, Decimal) else v
    q = d.scaleb(scale, _DECIMAL_CONTEXT)
    if q != q.to_integral_value():
        raise ValueError(f"decimal {v} has more than {scale} fractional digits")
    return int(q)
