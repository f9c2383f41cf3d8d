# TMQ raw data envelopes: what tmq_get_raw returns for data (raw_type 2/4) and rawdata (6).

cdef enum:
    RAW_TYPE_DATA = 2
    RAW_TYPE_METADATA = 4
    RAW_TYPE_BATCH_META = 5
    RAW_TYPE_RAWDATA = 6
    MQ_DATA_RSP_VERSION = 100
    RETRIEVE_HEADER_SIZE = 18


cdef class RawDataMessage:
    cdef readonly int raw_type
    cdef bytes req_raw
    cdef bytes rsp_raw
    cdef readonly bint with_table_name
    cdef readonly bint with_schema
    cdef readonly bint has_sleep_time
    cdef readonly int64_t sleep_time
    cdef list _blocks
    cdef list _create_table_requests
    cdef readonly int64_t num_rows
    cdef readonly Py_ssize_t nbytes

    cdef Py_ssize_t encoded_size(self) except -1
