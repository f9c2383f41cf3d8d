# The only place that knows about bounds: every read of untrusted bytes goes through a Reader,
# every write through a Writer.

from libc.stdint cimport int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t
from cpython.buffer cimport Py_buffer
from cpython.object cimport PyObject
from libc.string cimport memcpy


cdef class ByteSource:
    """Keeps an input buffer alive and exposes its bytes to the decoders without a copy."""
    cdef Py_buffer view
    cdef bint has_view
    cdef object owner
    cdef const unsigned char *data
    cdef Py_ssize_t size


cdef ByteSource source_of(object data)


cdef struct Reader:
    const unsigned char *data   # start of the whole input: offsets in errors are absolute
    Py_ssize_t pos
    Py_ssize_t end              # reads must stay below this offset


cdef int codec_error(str field, Py_ssize_t offset, str reason) except -1

cdef inline void reader_init(Reader *r, ByteSource src, Py_ssize_t pos, Py_ssize_t end) noexcept:
    r.data = src.data
    r.pos = pos
    r.end = end

# Unchecked loads for data already validated by a Reader pass.
cdef inline int32_t load_i32le(const unsigned char *p) noexcept nogil:
    cdef int32_t v
    memcpy(&v, p, 4)
    return v

cdef inline uint32_t load_u32be(const unsigned char *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]

cdef inline uint16_t load_u16le(const unsigned char *p) noexcept nogil:
    return <uint16_t>p[0] | (<uint16_t>p[1] << 8)

cdef inline uint32_t load_u32le(const unsigned char *p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v

cdef inline int64_t load_i64le(const unsigned char *p) noexcept nogil:
    cdef int64_t v
    memcpy(&v, p, 8)
    return v

cdef inline uint64_t load_u64le(const unsigned char *p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v

cdef inline int uvarint_size(uint64_t v) noexcept nogil:
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


# Bounds-checked readers: inline fast paths, errors raised out of line (buffer.pyx).
cdef int take_failed(Reader *r, Py_ssize_t n, str field) except -1
cdef int binary_failed(Reader *r, Py_ssize_t start, uint64_t n, str field) except -1
cdef int cstr_failed(Py_ssize_t at, str field) except -1
cdef uint64_t read_uvarint_slow(Reader *r, str field, int max_bits) except? 0xFFFFFFFFFFFFFFFF

cdef inline Py_ssize_t take(Reader *r, Py_ssize_t n, str field) except -1:
    """Reserve ``n`` bytes at the read position and return where they start."""
    cdef Py_ssize_t at = r.pos
    if n < 0 or n > r.end - at:
        take_failed(r, n, field)
        return -1
    r.pos = at + n
    return at

cdef inline int64_t read_i8(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 1, field)
    return <int8_t>r.data[at]

cdef inline int64_t read_u8(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 1, field)
    return r.data[at]

cdef inline int64_t read_i32le(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 4, field)
    return load_i32le(r.data + at)

cdef inline int64_t read_u32le(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 4, field)
    return load_u32le(r.data + at)

cdef inline int64_t read_i64le(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 8, field)
    return load_i64le(r.data + at)

cdef inline uint64_t read_u64le(Reader *r, str field) except? 0xFFFFFFFFFFFFFFFF:
    cdef Py_ssize_t at = take(r, 8, field)
    return load_u64le(r.data + at)

cdef inline int64_t read_i64be(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 8, field)
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | r.data[at + i]
    return <int64_t>v

cdef inline uint64_t read_uvarint(Reader *r, str field, int max_bits) except? 0xFFFFFFFFFFFFFFFF:
    """Unsigned LEB128; one- and two-byte values (almost all of them) without a call."""
    cdef Py_ssize_t p = r.pos
    cdef uint64_t first, second
    if p < r.end:
        first = r.data[p]
        if first < 0x80:
            r.pos = p + 1
            return first
        if p + 1 < r.end and max_bits >= 14:
            second = r.data[p + 1]
            if 0 < second < 0x80:
                r.pos = p + 2
                return (first & 0x7F) | (second << 7)
    return read_uvarint_slow(r, field, max_bits)

cdef inline int64_t read_zigzag(Reader *r, str field, int max_bits) except? -1:
    cdef uint64_t u = read_uvarint(r, field, max_bits)
    return <int64_t>(u >> 1) ^ -(<int64_t>(u & 1))

cdef inline Py_ssize_t read_binary(Reader *r, str field, Py_ssize_t *length) except -1:
    """TDengine's tEncodeBinary: U32v length then that many bytes. Returns where they start."""
    cdef Py_ssize_t start = r.pos
    cdef uint64_t n = read_uvarint(r, field, 32)
    if <Py_ssize_t>n > r.end - r.pos:
        binary_failed(r, start, n, field)
        return -1
    length[0] = <Py_ssize_t>n
    return take(r, <Py_ssize_t>n, field)

cdef inline Py_ssize_t read_cstr(Reader *r, str field, Py_ssize_t *length) except -1:
    """TDengine's tEncodeCStr: binary of strlen+1 bytes ending in NUL. ``length`` excludes the NUL."""
    cdef Py_ssize_t n
    cdef Py_ssize_t at = read_binary(r, field, &n)
    if n == 0 or r.data[at + n - 1] != 0:
        cstr_failed(at, field)
        return -1
    length[0] = n - 1
    return at



cdef struct Writer:
    char *buf
    Py_ssize_t len
    Py_ssize_t cap
    PyObject *fixed     # a bytes object being filled in place (exact size known), or NULL


cdef int writer_init(Writer *w, Py_ssize_t capacity) except -1
cdef int writer_init_exact(Writer *w, Py_ssize_t size) except -1
cdef void writer_free(Writer *w) noexcept
cdef bytes writer_finish(Writer *w)
cdef int writer_grow(Writer *w, Py_ssize_t extra) except -1

cdef inline int writer_ensure(Writer *w, Py_ssize_t extra) except -1:
    if w.len + extra > w.cap:
        return writer_grow(w, extra)
    return 0

cdef inline int write_bytes(Writer *w, const void *src, Py_ssize_t n) except -1:
    writer_ensure(w, n)
    memcpy(w.buf + w.len, src, n)
    w.len += n
    return 0

cdef inline int write_u8(Writer *w, uint8_t v) except -1:
    writer_ensure(w, 1)
    w.buf[w.len] = <char>v
    w.len += 1
    return 0

cdef inline int write_i32le(Writer *w, int32_t v) except -1:
    return write_bytes(w, &v, 4)

cdef inline int write_u32be(Writer *w, uint32_t v) except -1:
    cdef unsigned char b[4]
    b[0] = (v >> 24) & 0xFF
    b[1] = (v >> 16) & 0xFF
    b[2] = (v >> 8) & 0xFF
    b[3] = v & 0xFF
    return write_bytes(w, b, 4)

cdef inline int write_i64le(Writer *w, int64_t v) except -1:
    return write_bytes(w, &v, 8)

cdef inline int write_i64be(Writer *w, int64_t v) except -1:
    cdef unsigned char b[8]
    cdef uint64_t u = <uint64_t>v
    cdef int i
    for i in range(8):
        b[7 - i] = (u >> (8 * i)) & 0xFF
    return write_bytes(w, b, 8)

cdef inline int write_uvarint(Writer *w, uint64_t v) except -1:
    writer_ensure(w, uvarint_size(v))     # exactly: an exact-size writer may have no slack left
    while v >= 0x80:
        w.buf[w.len] = <char>((v & 0x7F) | 0x80)
        w.len += 1
        v >>= 7
    w.buf[w.len] = <char>v
    w.len += 1
    return 0

cdef inline int write_zigzag(Writer *w, int64_t v) except -1:
    return write_uvarint(w, (<uint64_t>v << 1) ^ <uint64_t>(v >> 63))

cdef int write_cstr(Writer *w, str text) except -1

