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

cdef Py_ssize_t take(Reader *r, Py_ssize_t n, str field) except -1
cdef int64_t read_i8(Reader *r, str field) except? -1
cdef int64_t read_u8(Reader *r, str field) except? -1
cdef int64_t read_i32le(Reader *r, str field) except? -1
cdef int64_t read_u32le(Reader *r, str field) except? -1
cdef int64_t read_i64le(Reader *r, str field) except? -1
cdef uint64_t read_u64le(Reader *r, str field) except? 0xFFFFFFFFFFFFFFFF
cdef int64_t read_i64be(Reader *r, str field) except? -1
cdef uint64_t read_uvarint(Reader *r, str field, int max_bits) except? 0xFFFFFFFFFFFFFFFF
cdef int64_t read_zigzag(Reader *r, str field, int max_bits) except? -1
cdef Py_ssize_t read_binary(Reader *r, str field, Py_ssize_t *length) except -1
cdef Py_ssize_t read_cstr(Reader *r, str field, Py_ssize_t *length) except -1

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
    writer_ensure(w, 10)
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

