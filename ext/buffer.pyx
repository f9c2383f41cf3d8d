# Bounds-checked reading of untrusted bytes and growable writing (included by codec.pyx).

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeUTF8


cdef class ByteSource:
    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
            self.has_view = False

    def __len__(self):
        return self.size


cdef ByteSource source_of(object data):
    """Wrap bytes (zero copy) or any contiguous buffer (bytearray, memoryview, mmap)."""
    cdef ByteSource src = ByteSource.__new__(ByteSource)
    if type(data) is bytes:
        src.owner = data
        src.data = <const unsigned char *>PyBytes_AS_STRING(data)
        src.size = len(<bytes>data)
        return src
    if isinstance(data, str):
        raise TypeError("raw data must be bytes-like, not str")
    PyObject_GetBuffer(data, &src.view, PyBUF_SIMPLE)
    src.has_view = True
    src.owner = data
    src.data = <const unsigned char *>src.view.buf
    src.size = src.view.len
    return src


cdef int codec_error(str field, Py_ssize_t offset, str reason) except -1:
    raise CodecError(field, offset, reason)


cdef Py_ssize_t take(Reader *r, Py_ssize_t n, str field) except -1:
    """Reserve ``n`` bytes at the read position and return where they start."""
    cdef Py_ssize_t at = r.pos
    if n < 0:
        codec_error(field, at, f"negative length {n}")
    if n > r.end - at:
        codec_error(field, at, f"needs {n} bytes but only {r.end - at} remain")
    r.pos = at + n
    return at


cdef int64_t read_i8(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 1, field)
    return <int8_t>r.data[at]


cdef int64_t read_u8(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 1, field)
    return r.data[at]


cdef int64_t read_i32le(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 4, field)
    return load_i32le(r.data + at)


cdef int64_t read_u32le(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 4, field)
    return load_u32le(r.data + at)


cdef int64_t read_i64le(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 8, field)
    return load_i64le(r.data + at)


cdef uint64_t read_u64le(Reader *r, str field) except? 0xFFFFFFFFFFFFFFFF:
    cdef Py_ssize_t at = take(r, 8, field)
    return load_u64le(r.data + at)


cdef int64_t read_i64be(Reader *r, str field) except? -1:
    cdef Py_ssize_t at = take(r, 8, field)
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | r.data[at + i]
    return <int64_t>v


cdef uint64_t read_uvarint(Reader *r, str field, int max_bits) except? 0xFFFFFFFFFFFFFFFF:
    """Unsigned LEB128 (TDengine's U16v/U32v/U64v); rejects overlong and overflowing values."""
    cdef Py_ssize_t start = r.pos
    cdef uint64_t value = 0
    cdef uint64_t byte
    cdef int shift = 0
    while True:
        if r.pos >= r.end:
            codec_error(field, start, "varint runs past the end of the data")
        byte = r.data[r.pos]
        r.pos += 1
        if shift >= max_bits or (max_bits - shift < 7 and ((byte & 0x7F) >> (max_bits - shift)) != 0):
            codec_error(field, start, f"varint does not fit in {max_bits} bits")
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value
        shift += 7


cdef int64_t read_zigzag(Reader *r, str field, int max_bits) except? -1:
    cdef uint64_t u = read_uvarint(r, field, max_bits)
    return <int64_t>(u >> 1) ^ -(<int64_t>(u & 1))


cdef Py_ssize_t read_binary(Reader *r, str field, Py_ssize_t *length) except -1:
    """TDengine's tEncodeBinary: U32v length then that many bytes. Returns where they start."""
    cdef uint64_t n = read_uvarint(r, field, 32)
    if <Py_ssize_t>n > r.end - r.pos:
        codec_error(field, r.pos, f"length {n} exceeds the {r.end - r.pos} bytes that remain")
    length[0] = <Py_ssize_t>n
    return take(r, <Py_ssize_t>n, field)


cdef Py_ssize_t read_cstr(Reader *r, str field, Py_ssize_t *length) except -1:
    """TDengine's tEncodeCStr: binary of strlen+1 bytes ending in NUL. ``length`` excludes the NUL."""
    cdef Py_ssize_t n
    cdef Py_ssize_t at = read_binary(r, field, &n)
    if n == 0 or r.data[at + n - 1] != 0:
        codec_error(field, at, "string is not NUL-terminated")
    length[0] = n - 1
    return at


cdef str decode_text(const unsigned char *data, Py_ssize_t at, Py_ssize_t n, str field):
    try:
        return PyUnicode_DecodeUTF8(<const char *>(data + at), n, NULL)
    except UnicodeDecodeError as exc:
        codec_error(field, at + exc.start, "text is not valid UTF-8")


cdef int writer_init(Writer *w, Py_ssize_t capacity) except -1:
    if capacity < 64:
        capacity = 64
    w.buf = <char *>PyMem_Malloc(capacity)
    if w.buf == NULL:
        raise MemoryError()
    w.len = 0
    w.cap = capacity
    w.fixed = NULL
    return 0


cdef int writer_init_exact(Writer *w, Py_ssize_t size) except -1:
    """Write straight into a new bytes object of the final size: no copy at the end."""
    cdef object out = PyBytes_FromStringAndSize(NULL, size)
    w.fixed = <PyObject *>out
    Py_INCREF(out)
    w.buf = PyBytes_AS_STRING(out)
    w.len = 0
    w.cap = size
    return 0


cdef void writer_free(Writer *w) noexcept:
    if w.fixed != NULL:
        Py_DECREF(<object>w.fixed)
        w.fixed = NULL
    elif w.buf != NULL:
        PyMem_Free(w.buf)
    w.buf = NULL


cdef int writer_grow(Writer *w, Py_ssize_t extra) except -1:
    cdef Py_ssize_t need = w.len + extra
    cdef Py_ssize_t cap = w.cap
    cdef char *grown
    if w.fixed != NULL:
        raise AssertionError(f"encoder size mismatch: needed {need} bytes, planned {w.cap}")
    while cap < need:
        cap = cap * 2
    grown = <char *>PyMem_Realloc(w.buf, cap)
    if grown == NULL:
        raise MemoryError()
    w.buf = grown
    w.cap = cap
    return 0


cdef bytes writer_finish(Writer *w):
    cdef bytes out
    if w.fixed != NULL:
        if w.len != w.cap:
            raise AssertionError(f"encoder size mismatch: wrote {w.len} bytes, planned {w.cap}")
        out = <bytes>w.fixed
        Py_DECREF(out)   # drop the writer's own reference; `out` keeps one
        w.fixed = NULL
        w.buf = NULL
        return out
    out = PyBytes_FromStringAndSize(w.buf, w.len)
    writer_free(w)
    return out


cdef int write_cstr(Writer *w, str text) except -1:
    cdef bytes raw = text.encode("utf-8")
    write_uvarint(w, len(raw) + 1)
    write_bytes(w, <const char *>raw, len(raw))
    return write_u8(w, 0)
