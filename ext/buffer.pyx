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


cdef int take_failed(Reader *r, Py_ssize_t n, str field) except -1:
    """The error path of ``take``, kept out of line so the inline readers stay small."""
    if n < 0:
        codec_error(field, r.pos, f"negative length {n}")
    codec_error(field, r.pos, f"needs {n} bytes but only {r.end - r.pos} remain")


cdef int binary_failed(Reader *r, Py_ssize_t start, uint64_t n, str field) except -1:
    # Reported where the length is, like every other length field.
    codec_error(field, start, f"length {n} exceeds the {r.end - r.pos} bytes that remain")


cdef int cstr_failed(Py_ssize_t at, str field) except -1:
    codec_error(field, at, "string is not NUL-terminated")


cdef uint64_t read_uvarint_slow(Reader *r, str field, int max_bits) except? 0xFFFFFFFFFFFFFFFF:
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
            if byte == 0 and shift > 0:
                codec_error(field, start, "overlong varint (ends in a zero byte)")
            return value
        shift += 7


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
