# TMQ raw data messages (included by codec.pyx). Layout: formats.md sections 2.3-2.5 and 2.8.

OFFSET_KINDS = {-3: "none", -2: "earliest", -1: "latest", 0: "none", 1: "log",
                2: "snapshot_data", 3: "snapshot_meta"}


class Offset(tuple):
    """A decoded STqOffsetVal: ``kind`` and, for WAL (log) offsets, ``version``."""
    __slots__ = ()

    def __new__(cls, kind, version):
        return tuple.__new__(cls, (kind, version))

    kind = property(lambda self: self[0])
    version = property(lambda self: self[1])

    def __repr__(self):
        return f"Offset({self[0]!r}, {self[1]!r})"


cdef Py_ssize_t _skip_offset(Reader *r, str field) except -1:
    """Read past one STqOffsetVal and return its start."""
    cdef Py_ssize_t start = r.pos
    cdef int64_t type_byte = read_i8(r, field)
    cdef int64_t kind = type_byte & 0x0F if type_byte > 0 else type_byte
    cdef int64_t pk_type
    cdef Py_ssize_t n
    if kind == 2 or kind == 3:
        take(r, 16, field)
        if type_byte >> 4 >= 1:
            pk_type = read_i8(r, field)
            if 0 <= pk_type < TYPE_COUNT and VAR_PREFIX[pk_type]:
                read_binary(r, field, &n)
            else:
                take(r, 8, field)
    elif kind == 1:
        take(r, 8, field)
    elif kind < -3 or kind > 3:
        codec_error(field, start, f"unknown offset type {type_byte}")
    return start


cdef object _offset_value(bytes raw):
    cdef const unsigned char *p = raw
    cdef int type_byte = <int8_t>p[0]
    cdef int kind = type_byte & 0x0F if type_byte > 0 else type_byte
    if kind == 1:
        return Offset("log", load_i64le(p + 1))
    return Offset(OFFSET_KINDS.get(kind, "unknown"), None)


cdef bytes log_offset(int64_t version):
    cdef unsigned char buf[9]
    buf[0] = 0x11
    memcpy(buf + 1, &version, 8)
    return PyBytes_FromStringAndSize(<const char *>buf, 9)


cdef class RawDataMessage:
    """A TMQ data message (raw_type 2) or data-with-create-table message (raw_type 4).

    Blocks are validated views over the input; ``encode()`` writes the message back byte for
    byte, and ``merge_messages`` joins several of one vgroup into one.
    """

    def __init__(self):
        raise TypeError("use RawDataMessage.decode(), build_data_message() or merge_messages()")

    @staticmethod
    def decode(data, int raw_type=RAW_TYPE_DATA):
        if raw_type != RAW_TYPE_DATA and raw_type != RAW_TYPE_METADATA:
            raise ValueError(f"raw_type {raw_type} is not a data message (2 or 4)")
        cdef ByteSource src = source_of(data)
        cdef Reader r
        cdef RawDataMessage m = RawDataMessage.__new__(RawDataMessage)
        cdef int64_t prefix, offset_len, nblocks, i, nreq
        cdef Py_ssize_t at, blen, n
        cdef Reader br
        cdef RawBlock b
        cdef list blocks
        reader_init(&r, src, 0, src.size)
        m.raw_type = raw_type
        prefix = read_i8(&r, "message version")
        if prefix != MQ_DATA_RSP_VERSION:
            codec_error("message version", 0, f"expected {MQ_DATA_RSP_VERSION} (0x64), found {prefix}")
        offset_len = read_i32le(&r, "offset length")
        at = r.pos
        if offset_len < 2 or offset_len > r.end - at:
            codec_error("offset length", 1, f"{offset_len} does not fit the {r.end - at} bytes that follow")
        _skip_offset(&r, "request offset")
        m.req_raw = PyBytes_FromStringAndSize(<const char *>(src.data + at), r.pos - at)
        n = r.pos
        _skip_offset(&r, "response offset")
        m.rsp_raw = PyBytes_FromStringAndSize(<const char *>(src.data + n), r.pos - n)
        if r.pos - at != offset_len:
            codec_error("offset length", 1, f"declares {offset_len} bytes, the offsets take {r.pos - at}")
        nblocks = read_i32le(&r, "block count")
        if nblocks < 0 or nblocks > r.end - r.pos:
            codec_error("block count", r.pos - 4, f"{nblocks} blocks cannot fit in {r.end - r.pos} bytes")
        blocks = []
        if nblocks:
            m.with_table_name = read_i8(&r, "with table name flag") != 0
            m.with_schema = read_i8(&r, "with schema flag") != 0
        for i in range(nblocks):
            at = read_binary(&r, "block", &blen)
            br.data = r.data
            br.pos = at
            br.end = at + blen
            b = _parse_tmq_block(src, &br)
            if m.with_schema:
                parse_schema_wrapper(b, src, &r)
            if m.with_table_name:
                b.name_src = src
                b.name_at = read_cstr(&r, "table name", &n)
                b.name_len = n
            m.num_rows += b.num_rows
            blocks.append(b)
        m._blocks = blocks
        if raw_type == RAW_TYPE_DATA:
            if r.pos < r.end:
                m.sleep_time = read_i64le(&r, "sleep time")
                m.has_sleep_time = True
        else:
            nreq = read_i32le(&r, "create table count")
            if nreq < 0 or nreq > r.end - r.pos:
                codec_error("create table count", r.pos - 4, f"{nreq} requests cannot fit in {r.end - r.pos} bytes")
            m._create_table_requests = []
            for i in range(nreq):
                at = read_binary(&r, "create table request", &blen)
                m._create_table_requests.append(
                    PyBytes_FromStringAndSize(<const char *>(src.data + at), blen))
        if r.pos != r.end:
            codec_error("message end", r.pos, f"{r.end - r.pos} unexpected bytes after the message")
        m.nbytes = src.size
        return m

    def __repr__(self):
        return (f"<RawDataMessage raw_type={self.raw_type} offsets {self.req_offset.version}->"
                f"{self.rsp_offset.version}, {len(self._blocks)} blocks, {self.num_rows} rows>")

    @property
    def blocks(self):
        return list(self._blocks)

    @property
    def num_blocks(self):
        return len(self._blocks)

    @property
    def table_names(self):
        return [b.table_name for b in self._blocks]

    @property
    def req_offset(self):
        """Where this batch starts in the vgroup's WAL (``tmq_get_vgroup_offset``)."""
        return _offset_value(self.req_raw)

    @property
    def rsp_offset(self):
        """The next WAL version to fetch after this message."""
        return _offset_value(self.rsp_raw)

    @property
    def create_table_requests(self):
        """Encoded SVCreateTbReq of the child tables this message auto-creates (raw_type 4)."""
        return list(self._create_table_requests or ())

    cdef Py_ssize_t encoded_size(self) except -1:
        cdef Py_ssize_t size = 1 + 4 + len(self.req_raw) + len(self.rsp_raw) + 4
        cdef RawBlock b
        cdef Py_ssize_t blen
        if self._blocks:
            size += 2
        for b in self._blocks:
            blen = RETRIEVE_HEADER_SIZE + b.length
            size += uvarint_size(blen) + blen
            if self.with_schema:
                if b.schema_at < 0:
                    raise ValueError("a block of a with-schema message has no schema")
                size += b.schema_len
            if self.with_table_name:
                if b.name_at < 0:
                    raise ValueError("a block of a with-table-name message has no table name")
                size += uvarint_size(b.name_len + 1) + b.name_len + 1
        if self.raw_type == RAW_TYPE_DATA:
            if self.has_sleep_time:
                size += 8
            size -= 0
        else:
            size += 4
            for req in self._create_table_requests or ():
                size += uvarint_size(len(req)) + len(req)
        return size

    def encode(self):
        """The message as ``tmq_write_raw`` takes it."""
        cdef Writer w
        cdef RawBlock b
        cdef Py_ssize_t blen
        cdef bytes req
        writer_init_exact(&w, self.encoded_size())
        try:
            write_u8(&w, MQ_DATA_RSP_VERSION)
            write_i32le(&w, <int32_t>(len(self.req_raw) + len(self.rsp_raw)))
            write_bytes(&w, <const char *>self.req_raw, len(self.req_raw))
            write_bytes(&w, <const char *>self.rsp_raw, len(self.rsp_raw))
            write_i32le(&w, <int32_t>len(self._blocks))
            if self._blocks:
                write_u8(&w, self.with_table_name)
                write_u8(&w, self.with_schema)
            for b in self._blocks:
                blen = RETRIEVE_HEADER_SIZE + b.length
                write_uvarint(&w, blen)
                write_i64le(&w, b.retrieve_version)
                write_i64be(&w, b.retrieve_rows)
                write_u8(&w, 0)
                write_u8(&w, <uint8_t>b.precision)
                write_bytes(&w, b.src.data + b.start, b.length)
                if b.big_endian_lengths or b.version != 2:
                    # tmq_write_raw reads a version-1 block's lengths as big-endian: write version 2.
                    _patch_lengths_le(&w, b)
                if self.with_schema:
                    write_bytes(&w, b.schema_src.data + b.schema_at, b.schema_len)
                if self.with_table_name:
                    write_uvarint(&w, b.name_len + 1)
                    write_bytes(&w, b.name_src.data + b.name_at, b.name_len)
                    write_u8(&w, 0)
            if self.raw_type == RAW_TYPE_DATA:
                if self.has_sleep_time:
                    write_i64le(&w, self.sleep_time)
            else:
                write_i32le(&w, <int32_t>len(self._create_table_requests or ()))
                for req in self._create_table_requests or ():
                    write_uvarint(&w, len(req))
                    write_bytes(&w, <const char *>req, len(req))
            return writer_finish(&w)
        finally:
            writer_free(&w)


cdef int _patch_lengths_le(Writer *w, RawBlock b) except -1:
    """TMQ form is version 2 with little-endian lengths, whatever form the block came in."""
    cdef char *p = w.buf + w.len - b.length
    cdef int i
    cdef int32_t v = 2
    memcpy(p, &v, 4)
    for i in range(b.num_columns):
        v = b.cols[i].data_len
        memcpy(p + BLOCK_HEADER_SIZE + 5 * b.num_columns + 4 * i, &v, 4)
    return 0


cdef RawBlock _parse_tmq_block(ByteSource src, Reader *br):
    """SRetrieveTableRspForTmq (18 bytes: LE version, BE rows, compressed, precision) + block."""
    cdef Py_ssize_t start = br.pos
    cdef int64_t version = read_i64le(br, "block retrieve version")
    cdef int64_t rows = read_i64be(br, "block retrieve rows")
    cdef int64_t compressed = read_i8(br, "block compressed flag")
    cdef int64_t precision = read_u8(br, "block precision")
    if compressed != 0:
        codec_error("block compressed flag", start + 16, "compressed TMQ blocks are not supported")
    if precision > 2:
        codec_error("block precision", start + 17, f"unknown precision {precision}")
    cdef RawBlock b = parse_raw_block(src, br, br.end - br.pos)
    b.retrieve_version = version
    b.retrieve_rows = rows
    b.precision = <int>precision
    return b


def merge_messages(messages):
    """Join data messages of one vgroup, in poll order, into one message.

    Blocks keep their order; the result starts at the first message's request offset and ends
    at the last one's response offset; create-table requests are kept (raw_type 4 if any).
    """
    cdef list msgs = list(messages)
    cdef RawDataMessage m, first, out
    cdef list blocks = []
    cdef list creates = []
    cdef bint any_creates = False
    if not msgs:
        raise ValueError("nothing to merge")
    first = msgs[0]
    out = RawDataMessage.__new__(RawDataMessage)
    out.with_table_name = first.with_table_name
    out.with_schema = first.with_schema
    out.has_sleep_time = False
    for m in msgs:
        if m._blocks and blocks and (m.with_table_name != out.with_table_name or m.with_schema != out.with_schema):
            raise ValueError("cannot merge messages with and without table names or schemas")
        if m._blocks and not blocks:
            out.with_table_name = m.with_table_name
            out.with_schema = m.with_schema
        blocks.extend(m._blocks)
        if m.raw_type == RAW_TYPE_METADATA:
            any_creates = True
            creates.extend(m._create_table_requests or ())
        if m.has_sleep_time:
            out.has_sleep_time = True
            out.sleep_time = m.sleep_time
        out.num_rows += m.num_rows
    out.raw_type = RAW_TYPE_METADATA if any_creates else RAW_TYPE_DATA
    if any_creates:
        out.has_sleep_time = False
        out._create_table_requests = creates
    out.req_raw = first.req_raw
    out.rsp_raw = (<RawDataMessage>msgs[len(msgs) - 1]).rsp_raw
    out._blocks = blocks
    out.nbytes = out.encoded_size()
    return out


def build_data_message(blocks, int64_t req_version, int64_t rsp_version, *, int precision=0,
                       create_table_requests=None, bint with_table_name=True, bint with_schema=True,
                       int64_t sleep_time=0):
    """Assemble a data message as a vnode and ``tmq_get_raw`` would produce it.

    ``blocks``: ``[(raw_block_bytes, schema, table_name)]`` where ``schema`` is a list of
    ``(type, flags, bytes, col_id, name)``. With ``create_table_requests`` (encoded
    SVCreateTbReq) the message is raw_type 4.
    """
    cdef RawDataMessage m = RawDataMessage.__new__(RawDataMessage)
    cdef list parsed = []
    cdef Writer w
    cdef RawBlock b
    cdef ByteSource side
    cdef Reader r
    cdef Py_ssize_t n
    m.req_raw = log_offset(req_version)
    m.rsp_raw = log_offset(rsp_version)
    m.with_table_name = with_table_name
    m.with_schema = with_schema
    for raw, schema, table_name in blocks:
        b = RawBlock.decode(raw, precision=precision)
        b.retrieve_version = 1
        b.retrieve_rows = b.num_rows
        writer_init(&w, 256)
        try:
            if with_schema:
                write_schema_wrapper(&w, list(schema))
            n = w.len
            if with_table_name:
                write_cstr(&w, table_name)
            side = source_of(writer_finish(&w))
        finally:
            writer_free(&w)
        if with_schema:
            reader_init(&r, side, 0, n)
            parse_schema_wrapper(b, side, &r)
        if with_table_name:
            reader_init(&r, side, n, side.size)
            b.name_src = side
            b.name_at = read_cstr(&r, "table name", &b.name_len)
        m.num_rows += b.num_rows
        parsed.append(b)
    m._blocks = parsed
    if create_table_requests is not None:
        m.raw_type = RAW_TYPE_METADATA
        m._create_table_requests = [bytes(req) for req in create_table_requests]
    else:
        m.raw_type = RAW_TYPE_DATA
        m.has_sleep_time = True
        m.sleep_time = sleep_time
    m.nbytes = m.encoded_size()
    return m


class SubmitDataMessage:
    """A rawdata-mode message (raw_type 6): WAL submits passed through unchanged.

    The bytes cannot be decoded into rows without the tables' schemas; tdsync reads the
    envelope (offsets, blocks, table names) and writes the bytes as they came.
    """

    raw_type = RAW_TYPE_RAWDATA

    def __init__(self, data, req_offset, rsp_offset, table_names, submit_lengths, sleep_time):
        self.data = data
        self.req_offset = req_offset
        self.rsp_offset = rsp_offset
        self.table_names = table_names
        self.submit_lengths = submit_lengths
        self.sleep_time = sleep_time

    @property
    def num_blocks(self):
        return len(self.submit_lengths)

    @property
    def nbytes(self):
        return len(self.data)

    def encode(self):
        return bytes(self.data)

    def __repr__(self):
        return (f"<SubmitDataMessage offsets {self.req_offset.version}->{self.rsp_offset.version}, "
                f"{self.num_blocks} submits>")

    @staticmethod
    def decode(data):
        cdef ByteSource src = source_of(data)
        cdef Reader r, br
        cdef Py_ssize_t at, blen, n
        cdef int64_t nblocks, i, sub_len, retrieve_version
        cdef bint with_name = False, with_schema = False
        reader_init(&r, src, 0, src.size)
        at = _skip_offset(&r, "request offset")
        req = _offset_value(PyBytes_FromStringAndSize(<const char *>(src.data + at), r.pos - at))
        at = _skip_offset(&r, "response offset")
        rsp = _offset_value(PyBytes_FromStringAndSize(<const char *>(src.data + at), r.pos - at))
        nblocks = read_i32le(&r, "block count")
        if nblocks < 0 or nblocks > r.end - r.pos:
            codec_error("block count", r.pos - 4, f"{nblocks} blocks cannot fit in {r.end - r.pos} bytes")
        if nblocks:
            with_name = read_i8(&r, "with table name flag") != 0
            with_schema = read_i8(&r, "with schema flag") != 0
            if with_schema:
                codec_error("with schema flag", r.pos - 1, "rawdata messages carry no schema")
        names = []
        lengths = []
        for i in range(nblocks):
            at = read_binary(&r, "submit block", &blen)
            br.data = r.data
            br.pos = at
            br.end = at + blen
            take(&br, 16, "submit retrieve header")
            take(&br, 2, "submit retrieve header")
            sub_len = read_u32le(&br, "submit length")
            if sub_len != br.end - br.pos:
                codec_error("submit length", br.pos - 4,
                            f"declares {sub_len} bytes, its block holds {br.end - br.pos}")
            lengths.append(sub_len)
            if with_name:
                at = read_cstr(&r, "table name", &n)
                names.append(decode_text(r.data, at, n, "table name"))
        sleep_time = read_i64le(&r, "sleep time") if r.pos < r.end else 0
        if r.pos != r.end:
            codec_error("message end", r.pos, f"{r.end - r.pos} unexpected bytes after the message")
        return SubmitDataMessage(data, req, rsp, names, lengths, sleep_time)
