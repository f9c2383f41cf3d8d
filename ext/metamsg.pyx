# TMQ meta messages (included by _codec.pyx): the WAL body of a DDL or delete, passed through
# unchanged; tdsync reads its kind and the tables it touches. Layout: formats.md 2.6.

TABLE_TYPES = {1: "super", 2: "child", 3: "normal", 8: "virtual normal", 9: "virtual child"}
META_KINDS = {515: ("create", None), 517: ("alter", None), 519: ("drop", None), 531: ("create", "super"),
              533: ("alter", "super"), 535: ("drop", "super"), 579: ("delete", None)}
# SVAlterTbReq actions that change tags, which only child tables have (tmsg.h: SET_TAG, SET_MULTI_TAG).
_CHILD_ALTER_ACTIONS = (4, 15)


cdef Py_ssize_t _open_frame(Reader *r, str field) except -1:
    """tStartEncode: an int32 LE length, then that many bytes. Returns where they end."""
    cdef int64_t n = read_i32le(r, field)
    if n < 0 or n > r.end - r.pos:
        codec_error(field, r.pos - 4, f"frame of {n} bytes does not fit the {r.end - r.pos} that remain")
    return r.pos + n


cdef str _read_name(Reader *r, str field):
    cdef Py_ssize_t n
    cdef Py_ssize_t at = read_cstr(r, field, &n)
    return decode_text(r.data, at, n, field)


cdef tuple _create_table_request(Reader *r):
    """One framed SVCreateTbReq: (name, table type, stable name or None); reader ends after it."""
    cdef Py_ssize_t end = _open_frame(r, "create table request")
    cdef Reader q
    q.data = r.data
    q.pos = r.pos
    q.end = end
    read_zigzag(&q, "create table flags", 32)
    name = _read_name(&q, "create table name")
    take(&q, 20, "create table uid, btime and ttl")
    cdef int64_t table_type = read_i8(&q, "create table type")
    cdef int64_t comment_len = read_i32le(&q, "create table comment length")
    if comment_len > 0:
        _read_name(&q, "create table comment")
    stable = None
    if table_type == 2 or table_type == 9:
        stable = _read_name(&q, "create table stable name")
    r.pos = end
    return (name, TABLE_TYPES.get(table_type, f"type {table_type}"), stable)


def parse_create_table_request(data):
    """Describe an encoded SVCreateTbReq (as raw_type 4 messages carry): (name, type, stable)."""
    cdef ByteSource src = source_of(data)
    cdef Reader r
    reader_init(&r, src, 0, src.size)
    out = _create_table_request(&r)
    if r.pos != r.end:
        codec_error("create table request", r.pos, f"{r.end - r.pos} unexpected bytes after it")
    return out


class MetaMessage:
    """A DDL or delete from the WAL (raw_type = the TDMT code): written through unchanged.

    ``tables`` lists ``(name, table_type, stable)`` for every table the message touches.
    """

    def __init__(self, data, raw_type, vgroup_id, kind, table_type, tables, details):
        self.data = data
        self.raw_type = raw_type
        self.vgroup_id = vgroup_id
        self.kind = kind
        self.table_type = table_type
        self.tables = tables
        self.details = details

    @property
    def table_names(self):
        return [t[0] for t in self.tables]

    @property
    def nbytes(self):
        return len(self.data)

    def encode(self):
        return bytes(self.data)

    def __repr__(self):
        return (f"<MetaMessage {self.raw_type} {self.kind} {self.table_type or ''} "
                f"{', '.join(self.table_names)}>")

    @staticmethod
    def decode(data, int raw_type):
        if raw_type not in META_KINDS:
            raise ValueError(f"raw_type {raw_type} is not a meta message ({sorted(META_KINDS)})")
        cdef ByteSource src = source_of(data)
        cdef Reader r
        cdef Py_ssize_t end, count_at
        cdef int64_t count, i, action, skey, ekey
        reader_init(&r, src, 0, src.size)
        cont_len = read_i32le(&r, "message head length")
        if cont_len != src.size:
            codec_error("message head length", 0, f"declares {cont_len} bytes, the message has {src.size}")
        vgroup_id = read_i32le(&r, "message head vgroup id")
        kind, table_type = META_KINDS[raw_type]
        tables = []
        details = {}
        if raw_type == 579:
            details["suid"] = read_u64le(&r, "delete stable uid")
            count_at = r.pos
            count = read_zigzag(&r, "delete table count", 32)
            if count < 0 or count > (r.end - r.pos) // 8:
                codec_error("delete table count", count_at, f"{count} uids cannot fit in {r.end - r.pos} bytes")
            take(&r, 8 * count, "delete table uids")
            skey = read_i64le(&r, "delete start key")
            ekey = read_i64le(&r, "delete end key")
            read_zigzag(&r, "delete affected rows", 64)
            name = _read_name(&r, "delete table name")
            details.update(start=skey, end=ekey, ts_column=_read_name(&r, "delete timestamp column"))
            if r.end - r.pos not in (0, 8, 9):
                codec_error("message end", r.pos, f"{r.end - r.pos} unexpected bytes after the delete")
            tables.append((name, None, None))
            return MetaMessage(data, raw_type, vgroup_id, kind, table_type, tables, details)
        end = _open_frame(&r, "request")
        if end != r.end:
            codec_error("request", 8, f"frame ends at byte {end}, the message at byte {r.end}")
        if raw_type in (531, 533, 535):
            name = _read_name(&r, "stable name")
            tables.append((name, "super", None))
        elif raw_type == 515:
            count = read_zigzag(&r, "create table count", 32)
            if count < 0 or count > r.end - r.pos:
                codec_error("create table count", 12, f"{count} requests cannot fit in {r.end - r.pos} bytes")
            for i in range(count):
                tables.append(_create_table_request(&r))
            types = {t[1] for t in tables}
            table_type = types.pop() if len(types) == 1 else ("mixed" if types else None)
        elif raw_type == 519:
            count = read_zigzag(&r, "drop table count", 32)
            if count < 0 or count > r.end - r.pos:
                codec_error("drop table count", 12, f"{count} requests cannot fit in {r.end - r.pos} bytes")
            for i in range(count):
                end = _open_frame(&r, "drop table request")
                name = _read_name(&r, "drop table name")
                if r.pos > end:
                    codec_error("drop table request", r.pos, "table name runs past its request")
                r.pos = end
                tables.append((name, None, None))
        elif raw_type == 517:
            name = _read_name(&r, "alter table name")
            action = read_i8(&r, "alter table action")
            details["action"] = action
            table_type = "child" if action in _CHILD_ALTER_ACTIONS else "normal"
            tables.append((name, table_type, None))
        return MetaMessage(data, raw_type, vgroup_id, kind, table_type, tables, details)
