# The raw block: TDengine's column-oriented wire encoding of a result or TMQ data block.

cdef enum:
    TYPE_NULL = 0
    TYPE_BOOL = 1
    TYPE_TINYINT = 2
    TYPE_SMALLINT = 3
    TYPE_INT = 4
    TYPE_BIGINT = 5
    TYPE_FLOAT = 6
    TYPE_DOUBLE = 7
    TYPE_VARCHAR = 8
    TYPE_TIMESTAMP = 9
    TYPE_NCHAR = 10
    TYPE_UTINYINT = 11
    TYPE_USMALLINT = 12
    TYPE_UINT = 13
    TYPE_UBIGINT = 14
    TYPE_JSON = 15
    TYPE_VARBINARY = 16
    TYPE_DECIMAL = 17
    TYPE_BLOB = 18
    TYPE_MEDIUMBLOB = 19
    TYPE_GEOMETRY = 20
    TYPE_DECIMAL64 = 21
    TYPE_COUNT = 22
    BLOCK_HEADER_SIZE = 28


cdef struct ColumnLayout:
    int type
    int32_t bytes           # the schema entry as written (decimals pack width/precision/scale)
    int32_t width           # element size of a fixed-width type, 0 for a variable one
    int32_t prefix          # size of a variable value's length prefix (2 or 4), 0 if fixed
    int32_t data_len        # the column length entry: payload bytes, without bitmap or offsets
    Py_ssize_t nulls_at     # absolute offset of the NULL bitmap (fixed) or offset array (variable)
    Py_ssize_t data_at      # absolute offset of the values (fixed) or payload (variable)


cdef class RawBlock:
    cdef ByteSource src
    cdef Py_ssize_t start
    cdef Py_ssize_t length
    cdef readonly int32_t version
    cdef readonly int32_t num_rows
    cdef readonly int32_t num_columns
    cdef readonly uint32_t flag
    cdef readonly uint64_t group_id
    cdef readonly bint big_endian_lengths
    cdef readonly bint has_blank_fill
    cdef ColumnLayout *cols
    # Context a TMQ message adds around the block (defaults when decoded alone).
    cdef readonly int64_t retrieve_version
    cdef readonly int64_t retrieve_rows
    cdef readonly int precision
    cdef ByteSource schema_src
    cdef Py_ssize_t schema_at
    cdef Py_ssize_t schema_len
    cdef ByteSource name_src
    cdef Py_ssize_t name_at
    cdef Py_ssize_t name_len
    cdef object _names
    cdef object _table_name
    cdef object _schema

    cdef object value(self, int column, Py_ssize_t row)
    cdef list column_values(self, int column)


cdef RawBlock parse_raw_block(ByteSource src, Reader *r, Py_ssize_t exact_len)
cdef int parse_schema_wrapper(RawBlock block, ByteSource src, Reader *r) except -1
cdef int write_schema_wrapper(Writer *w, list schema) except -1
