"""TDengine error codes the sandbox returns, with TDengine's own message text.

Codes and messages are those of TDengine 3.3.7 (``include/util/taoserror.h`` for the numbers,
``source/util/src/terror.c`` for the texts). Constants are the low 16 bits (what every wire
protocol carries: taosAdapter reports ``code & 0xffff``); the C value is ``0x80000000 | code``.
Names follow TDengine's ``TSDB_CODE_*`` macros without the prefix.

Parser errors (0x2600 family) reach a client with a *detailed* message formatted by the
parser (``source/libs/parser/src/parUtil.c``, ``getSyntaxErrFormat``), e.g. ``syntax error near
"foo"``; :func:`parser_message` builds those.

taosAdapter answers its own errors (bad JSON, unknown action, wrong ids, truncated frames)
with :data:`ADAPTER_ERROR` (0xffff) and a free text message.
"""

from __future__ import annotations

SUCCESS = 0x0000
# taosAdapter-originated errors (not TDengine codes): 0xffff generic, 0xfffe "unknown field/action"
ADAPTER_ERROR = 0xFFFF

# --- General / RPC
RPC_NETWORK_UNAVAIL = 0x000B
RPC_TIMEOUT = 0x0019
OPS_NOT_SUPPORT = 0x0100
OUT_OF_MEMORY = 0x0102
APP_ERROR = 0x0110
INVALID_MSG = 0x0115
INVALID_MSG_LEN = 0x0116
INVALID_PARA = 0x0118
INVALID_JSON_FORMAT = 0x011B
INVALID_TIMESTAMP = 0x0127
MSG_DECODE_ERROR = 0x0128
TIMEOUT_ERROR = 0x012C
INVALID_DATA_FMT = 0x0132

# --- Client (TSC)
TSC_INVALID_OPERATION = 0x0200
TSC_INVALID_VALUE = 0x0203
TSC_INVALID_VERSION = 0x0204
TSC_INVALID_USER_LENGTH = 0x0207
TSC_INVALID_PASS_LENGTH = 0x0208
TSC_INVALID_DB_LENGTH = 0x0209
TSC_INVALID_TABLE_ID_LENGTH = 0x020A
TSC_INVALID_CONNECTION = 0x020B
TSC_DISCONNECTED = 0x0213
TSC_SQL_SYNTAX_ERROR = 0x0216
TSC_DB_NOT_SELECTED = 0x0217
TSC_EXCEED_SQL_LIMIT = 0x0219
TSC_DUP_COL_NAMES = 0x021D
TSC_INVALID_JSON = 0x0221
TSC_VALUE_OUT_OF_RANGE = 0x0224
TSC_INVALID_INPUT = 0x0229
TSC_NOT_STABLE_ERROR = 0x022F
TSC_INTERNAL_ERROR = 0x02FF

# --- Mnode: users
MND_USER_DISABLED = 0x0315
MND_USER_ALREADY_EXIST = 0x0350
MND_USER_NOT_EXIST = 0x0351
MND_AUTH_FAILURE = 0x0357
MND_USER_NOT_AVAILABLE = 0x0358

# --- Mnode: super tables
MND_STB_ALREADY_EXIST = 0x0360
MND_STB_NOT_EXIST = 0x0362
MND_TOO_MANY_TAGS = 0x0364
MND_TOO_MANY_COLUMNS = 0x0365
MND_TAG_ALREADY_EXIST = 0x0369
MND_TAG_NOT_EXIST = 0x036A
MND_COLUMN_ALREADY_EXIST = 0x036B
MND_COLUMN_NOT_EXIST = 0x036C
MND_INVALID_STB_OPTION = 0x036E
MND_NAME_CONFLICT_WITH_TOPIC = 0x03C0
MND_FIELD_CONFLICT_WITH_TOPIC = 0x03C4

# --- Mnode: databases
MND_DB_NOT_SELECTED = 0x0380
MND_DB_ALREADY_EXIST = 0x0381
MND_INVALID_DB_OPTION = 0x0382
MND_INVALID_DB = 0x0383
MND_TOO_MANY_DATABASES = 0x0385
MND_DB_IN_DROPPING = 0x0386
MND_DB_NOT_EXIST = 0x0388
MND_DB_OPTION_UNCHANGED = 0x038A

# --- Mnode: topics and consumers
MND_TOPIC_ALREADY_EXIST = 0x03E0
MND_TOPIC_NOT_EXIST = 0x03E1
MND_TOO_MANY_TOPICS = 0x03E2
MND_INVALID_TOPIC = 0x03E3
MND_INVALID_TOPIC_QUERY = 0x03E4
MND_INVALID_TOPIC_OPTION = 0x03E5
MND_CONSUMER_NOT_EXIST = 0x03E6
MND_SUBSCRIBE_NOT_EXIST = 0x03E8
MND_OFFSET_NOT_EXIST = 0x03E9
MND_CONSUMER_NOT_READY = 0x03EA
MND_TOPIC_SUBSCRIBED = 0x03EB
MND_CGROUP_USED = 0x03EC
MND_TOPIC_MUST_BE_DELETED = 0x03ED

# --- Vnode
VND_INVALID_VGROUP_ID = 0x0503
VND_NO_WRITE_AUTH = 0x0512
VND_COL_ALREADY_EXISTS = 0x0525
VND_COL_NOT_EXISTS = 0x0526
VND_COL_SUBSCRIBED = 0x0527
VND_DUP_REQUEST = 0x0530

# --- Tsdb / meta
TDB_INVALID_TABLE_ID = 0x0600
TDB_INVALID_TABLE_TYPE = 0x0601
TDB_TABLE_ALREADY_EXIST = 0x0603
TDB_TIMESTAMP_OUT_OF_RANGE = 0x060B
TDB_SUBMIT_MSG_MSSED_UP = 0x060C
TDB_INVALID_CREATE_TB_MSG = 0x060E
TDB_IVLD_TAG_VAL = 0x0615
TDB_TABLE_NOT_EXIST = 0x0618
TDB_STB_ALREADY_EXIST = 0x0619
TDB_STB_NOT_EXIST = 0x061A
TDB_INVALID_TABLE_SCHEMA_VER = 0x061B
TDB_TABLE_IN_OTHER_STABLE = 0x061D

# --- TQ (vnode side of TMQ)
TQ_INVALID_CONFIG = 0x0A00
TQ_GROUP_NOT_SET = 0x0A0B
TQ_TABLE_SCHEMA_NOT_FOUND = 0x0A0C
TQ_NO_COMMITTED_OFFSET = 0x0A0D
TQ_INTERNAL_ERROR = 0x0A0E

# --- Query
QRY_INVALID_MSG = 0x0701

# --- Parser (0x2600 family)
PAR_SYNTAX_ERROR = 0x2600
PAR_INCOMPLETE_SQL = 0x2601
PAR_INVALID_COLUMN = 0x2602
PAR_TABLE_NOT_EXIST = 0x2603
PAR_AMBIGUOUS_COLUMN = 0x2604
PAR_WRONG_VALUE_TYPE = 0x2605
PAR_TAGS_NOT_MATCHED = 0x260D
PAR_INVALID_TAG_NAME = 0x260E
PAR_DB_NOT_SPECIFIED = 0x2616
PAR_INVALID_IDENTIFIER_NAME = 0x2617
PAR_CORRESPONDING_STABLE_ERR = 0x2618
PAR_INVALID_DB_OPTION = 0x2619
PAR_INVALID_TABLE_OPTION = 0x261A
PAR_ONLY_ONE_JSON_TAG = 0x2633
PAR_INCORRECT_NUM_OF_COL = 0x2634
PAR_INCORRECT_TIMESTAMP_VAL = 0x2635
PAR_INVALID_TOPIC_QUERY = 0x2639
PAR_INVALID_DROP_STABLE = 0x263A
PAR_DUPLICATED_COLUMN = 0x263C
PAR_INVALID_TAGS_LENGTH = 0x263D
PAR_INVALID_ROW_LENGTH = 0x263E
PAR_INVALID_COLUMNS_NUM = 0x263F
PAR_TOO_MANY_COLUMNS = 0x2640
PAR_INVALID_FIRST_COLUMN = 0x2641
PAR_INVALID_VAR_COLUMN_LEN = 0x2642
PAR_INVALID_TAGS_NUM = 0x2643
PAR_PERMISSION_DENIED = 0x2644
PAR_INVALID_ALTER_TABLE = 0x2649
PAR_CANNOT_DROP_PRIMARY_KEY = 0x264A
PAR_INVALID_MODIFY_COL = 0x264B
PAR_INVALID_TBNAME = 0x264C
PAR_INVALID_FUNCTION_NAME = 0x264D
PAR_COMMENT_TOO_LONG = 0x264E
PAR_INVALID_DROP_COL = 0x2651
PAR_INVALID_COL_JSON = 0x2652
PAR_VALUE_TOO_LONG = 0x2653
PAR_INVALID_DELETE_WHERE = 0x2655
PAR_GET_META_ERROR = 0x2662
PAR_NOT_UNIQUE_TABLE_ALIAS = 0x2663
PAR_INVALID_VARBINARY = 0x266A
PAR_PRIMARY_KEY_IS_NULL = 0x267B
PAR_TBNAME_DUPLICATED = 0x267E
PAR_TAG_NAME_DUPLICATED = 0x267F
PAR_INTERNAL_ERROR = 0x26FF

# --- Functions / schemaless
FUNC_FUNTION_ERROR = 0x2800
FUNC_DUP_TIMESTAMP = 0x2805
SML_INVALID_PROTOCOL_TYPE = 0x3000
SML_INVALID_DATA = 0x3002

# --- TMQ (0x4000 family)
TMQ_INVALID_MSG = 0x4000
TMQ_CONSUMER_MISMATCH = 0x4001
TMQ_CONSUMER_CLOSED = 0x4002
TMQ_CONSUMER_ERROR = 0x4003
TMQ_TOPIC_OUT_OF_RANGE = 0x4004
TMQ_GROUP_OUT_OF_RANGE = 0x4005
TMQ_SNAPSHOT_ERROR = 0x4006
TMQ_VERSION_OUT_OF_RANGE = 0x4007
TMQ_INVALID_VGID = 0x4008
TMQ_INVALID_TOPIC = 0x4009
TMQ_NEED_INITIALIZED = 0x4010
TMQ_NO_COMMITTED = 0x4011
TMQ_SAME_COMMITTED_VALUE = 0x4012
TMQ_REPLAY_NEED_ONE_VGROUP = 0x4013
TMQ_REPLAY_NOT_SUPPORT = 0x4014
TMQ_NO_TABLE_QUALIFIED = 0x4015
TMQ_NO_NEED_REBALANCE = 0x4016
TMQ_INVALID_STATUS = 0x4017
TMQ_INVALID_DATA = 0x4018
TMQ_RAW_DATA_SPLIT = 0x4019

# TDengine's message for each code (terror.c).
MESSAGES: dict[int, str] = {
    SUCCESS: "success",
    # General / RPC
    RPC_NETWORK_UNAVAIL: "Unable to establish connection",
    RPC_TIMEOUT: "Conn read timeout",
    OPS_NOT_SUPPORT: "Operation not supported",
    OUT_OF_MEMORY: "Out of Memory",
    APP_ERROR: "Unexpected generic error",
    INVALID_MSG: "Invalid message",
    INVALID_MSG_LEN: "Invalid message len",
    INVALID_PARA: "Invalid parameters",
    INVALID_JSON_FORMAT: "Invalid json format",
    INVALID_TIMESTAMP: "Invalid timestamp format",
    MSG_DECODE_ERROR: "Msg decode error",
    TIMEOUT_ERROR: "Operation timeout",
    INVALID_DATA_FMT: "Invalid data format",
    # Client (TSC)
    TSC_INVALID_OPERATION: "Invalid operation",
    TSC_INVALID_VALUE: "Invalid value in client",
    TSC_INVALID_VERSION: "Invalid client version",
    TSC_INVALID_USER_LENGTH: "Invalid user name",
    TSC_INVALID_PASS_LENGTH: "Invalid password length",
    TSC_INVALID_DB_LENGTH: "Database name too long",
    TSC_INVALID_TABLE_ID_LENGTH: "Table name too long",
    TSC_INVALID_CONNECTION: "Invalid connection",
    TSC_DISCONNECTED: "Disconnected from service",
    TSC_SQL_SYNTAX_ERROR: "Syntax error in SQL",
    TSC_DB_NOT_SELECTED: "Database not specified or available",
    TSC_EXCEED_SQL_LIMIT: "SQL statement too long",
    TSC_DUP_COL_NAMES: "duplicated column names",
    TSC_INVALID_JSON: "Invalid JSON format",
    TSC_VALUE_OUT_OF_RANGE: "Value out of range",
    TSC_INVALID_INPUT: "Invalid tsc input",
    TSC_NOT_STABLE_ERROR: "Table is not a super table",
    TSC_INTERNAL_ERROR: "Internal error",
    # Mnode: users
    MND_USER_DISABLED: "User is disabled",
    MND_USER_ALREADY_EXIST: "User already exists",
    MND_USER_NOT_EXIST: "Invalid user",
    MND_AUTH_FAILURE: "Authentication failure",
    MND_USER_NOT_AVAILABLE: "User not available",
    # Mnode: super tables
    MND_STB_ALREADY_EXIST: "STable already exists",
    MND_STB_NOT_EXIST: "STable not exist",
    MND_TOO_MANY_TAGS: "Too many tags",
    MND_TOO_MANY_COLUMNS: "Too many columns",
    MND_TAG_ALREADY_EXIST: "Tag already exists",
    MND_TAG_NOT_EXIST: "Tag does not exist",
    MND_COLUMN_ALREADY_EXIST: "Column already exists",
    MND_COLUMN_NOT_EXIST: "Column does not exist",
    MND_INVALID_STB_OPTION: "Invalid stable options",
    MND_NAME_CONFLICT_WITH_TOPIC: "STable confilct with topic",
    MND_FIELD_CONFLICT_WITH_TOPIC: "Field used by topic",
    # Mnode: databases
    MND_DB_NOT_SELECTED: "Database not specified or available",
    MND_DB_ALREADY_EXIST: "Database already exists",
    MND_INVALID_DB_OPTION: "Invalid database options",
    MND_INVALID_DB: "Invalid database name",
    MND_TOO_MANY_DATABASES: "Too many databases for account",
    MND_DB_IN_DROPPING: "Database in dropping status",
    MND_DB_NOT_EXIST: "Database not exist",
    MND_DB_OPTION_UNCHANGED: "Database options not changed",
    # Mnode: topics and consumers
    MND_TOPIC_ALREADY_EXIST: "Topic already exists",
    MND_TOPIC_NOT_EXIST: "Topic not exist",
    MND_TOO_MANY_TOPICS: "Too many Topics",
    MND_INVALID_TOPIC: "Invalid topic",
    MND_INVALID_TOPIC_QUERY: "Topic with invalid query",
    MND_INVALID_TOPIC_OPTION: "Topic with invalid option",
    MND_CONSUMER_NOT_EXIST: "Consumer not exist",
    MND_SUBSCRIBE_NOT_EXIST: "Subcribe not exist",
    MND_OFFSET_NOT_EXIST: "Offset not exist",
    MND_CONSUMER_NOT_READY: "Consumer not ready",
    MND_TOPIC_SUBSCRIBED: "Topic subscribed cannot be dropped",
    MND_CGROUP_USED: "Consumer group being used by some consumer",
    MND_TOPIC_MUST_BE_DELETED: "Topic must be dropped first",
    # Vnode
    VND_INVALID_VGROUP_ID: "Vnode is closed or removed",
    VND_NO_WRITE_AUTH: "Database write operation denied",
    VND_COL_ALREADY_EXISTS: "Table column already exists",
    VND_COL_NOT_EXISTS: "Table column not exists",
    VND_COL_SUBSCRIBED: "Table column is subscribed",
    VND_DUP_REQUEST: "Duplicate write request",
    # Tsdb / meta
    TDB_INVALID_TABLE_ID: "Invalid table ID",
    TDB_INVALID_TABLE_TYPE: "Invalid table type",
    TDB_TABLE_ALREADY_EXIST: "Table already exists",
    TDB_TIMESTAMP_OUT_OF_RANGE: "Timestamp data out of range",
    TDB_SUBMIT_MSG_MSSED_UP: "Submit message is messed up",
    TDB_INVALID_CREATE_TB_MSG: "Invalid creation of table",
    TDB_IVLD_TAG_VAL: "TSDB invalid tag value",
    TDB_TABLE_NOT_EXIST: "Table not exists",
    TDB_STB_ALREADY_EXIST: "Stable already exists",
    TDB_STB_NOT_EXIST: "Stable not exists",
    TDB_INVALID_TABLE_SCHEMA_VER: "Table schema is old",
    TDB_TABLE_IN_OTHER_STABLE: "Table already exists in other stables",
    # TQ (vnode side of TMQ)
    TQ_INVALID_CONFIG: "TQ invalid config",
    TQ_GROUP_NOT_SET: "TQ group not exist",
    TQ_TABLE_SCHEMA_NOT_FOUND: "TQ table schema not found",
    TQ_NO_COMMITTED_OFFSET: "TQ no committed offset",
    TQ_INTERNAL_ERROR: "TQ internal error",
    # Query
    QRY_INVALID_MSG: "Invalid message",
    # Parser (0x2600 family)
    PAR_SYNTAX_ERROR: "syntax error near",
    PAR_INCOMPLETE_SQL: "Incomplete SQL statement",
    PAR_INVALID_COLUMN: "Invalid column name",
    PAR_TABLE_NOT_EXIST: "Table does not exist",
    PAR_AMBIGUOUS_COLUMN: "Column ambiguously defined",
    PAR_WRONG_VALUE_TYPE: "Invalid value type",
    PAR_TAGS_NOT_MATCHED: "Tags number not matched",
    PAR_INVALID_TAG_NAME: "Invalid tag name",
    PAR_DB_NOT_SPECIFIED: "Database not specified",
    PAR_INVALID_IDENTIFIER_NAME: "Invalid identifier name",
    PAR_CORRESPONDING_STABLE_ERR: "Corresponding super table not in this db",
    PAR_INVALID_DB_OPTION: "Invalid database option",
    PAR_INVALID_TABLE_OPTION: "Invalid table option",
    PAR_ONLY_ONE_JSON_TAG: "Only one tag if there is a json tag",
    PAR_INCORRECT_NUM_OF_COL: "Query block has incorrect number of result columns",
    PAR_INCORRECT_TIMESTAMP_VAL: "Incorrect TIMESTAMP value",
    PAR_INVALID_TOPIC_QUERY: "Invalid topic query",
    PAR_INVALID_DROP_STABLE: "Cannot drop super table in batch",
    PAR_DUPLICATED_COLUMN: "Duplicated column names",
    PAR_INVALID_TAGS_LENGTH: "Tags length exceeds max length",
    PAR_INVALID_ROW_LENGTH: "Row length exceeds max length",
    PAR_INVALID_COLUMNS_NUM: "Illegal number of columns",
    PAR_TOO_MANY_COLUMNS: "Too many columns",
    PAR_INVALID_FIRST_COLUMN: "First column must be timestamp",
    PAR_INVALID_VAR_COLUMN_LEN: "Invalid varbinary/binary/nchar column/tag length",
    PAR_INVALID_TAGS_NUM: "Invalid number of tag columns",
    PAR_PERMISSION_DENIED: "Permission denied or target object not exist",
    PAR_INVALID_ALTER_TABLE: "Invalid alter table statement",
    PAR_CANNOT_DROP_PRIMARY_KEY: "Primary timestamp column cannot be dropped",
    PAR_INVALID_MODIFY_COL: (
        "Only varbinary/binary/nchar/geometry column length could be modified, "
        "and the length can only be increased, not decreased"
    ),
    PAR_INVALID_TBNAME: "Invalid tbname pseudo column",
    PAR_INVALID_FUNCTION_NAME: "Invalid function name",
    PAR_COMMENT_TOO_LONG: "Comment too long",
    PAR_INVALID_DROP_COL: "No columns can be dropped",
    PAR_INVALID_COL_JSON: "Only tag can be json type",
    PAR_VALUE_TOO_LONG: "Value too long for column/tag",
    PAR_INVALID_DELETE_WHERE: "The DELETE statement must only have a definite time window range",
    PAR_GET_META_ERROR: "Fail to get table info",
    PAR_NOT_UNIQUE_TABLE_ALIAS: "Not unique table/alias",
    PAR_INVALID_VARBINARY: "Invalid varbinary value",
    PAR_PRIMARY_KEY_IS_NULL: "Primary key column should not be null",
    PAR_TBNAME_DUPLICATED: "Table name duplicated",
    PAR_TAG_NAME_DUPLICATED: "Tag name duplicated",
    PAR_INTERNAL_ERROR: "Parser internal error",
    # Functions / schemaless
    FUNC_FUNTION_ERROR: "Function internal error",
    FUNC_DUP_TIMESTAMP: "Duplicate timestamps not allowed in function",
    SML_INVALID_PROTOCOL_TYPE: "Invalid line protocol type",
    SML_INVALID_DATA: "Invalid data format",
    # TMQ (0x4000 family)
    TMQ_INVALID_MSG: "Invalid message",
    TMQ_CONSUMER_MISMATCH: "Consumer mismatch",
    TMQ_CONSUMER_CLOSED: "Consumer closed",
    TMQ_CONSUMER_ERROR: "Consumer error, to see log",
    TMQ_TOPIC_OUT_OF_RANGE: "Topic num out of range",
    TMQ_GROUP_OUT_OF_RANGE: "Group num out of range 100",
    TMQ_SNAPSHOT_ERROR: "Can not operate in snapshot mode",
    TMQ_VERSION_OUT_OF_RANGE: "Offset out of range",
    TMQ_INVALID_VGID: "VgId does not belong to this consumer",
    TMQ_INVALID_TOPIC: "Topic does not belong to this consumer",
    TMQ_NEED_INITIALIZED: "Assignment or poll interface need to be called first",
    TMQ_NO_COMMITTED: "No committed info",
    TMQ_SAME_COMMITTED_VALUE: "Same committed value",
    TMQ_REPLAY_NEED_ONE_VGROUP: "Replay need only one vgroup if subscribe super table",
    TMQ_REPLAY_NOT_SUPPORT: "Replay is disabled if subscribe db or stable",
    TMQ_NO_TABLE_QUALIFIED: "No table qualified for query",
    TMQ_NO_NEED_REBALANCE: "No need rebalance",
    TMQ_INVALID_STATUS: "Invalid status, please subscribe topic first",
    TMQ_INVALID_DATA: "Invalid data use here",
    TMQ_RAW_DATA_SPLIT: "Split submit data for rawdata",
}

_NAMES: dict[int, str] = {
    v: k for k, v in list(globals().items()) if k.isupper() and isinstance(v, int) and k not in ("ADAPTER_ERROR",)
}


# Short aliases for the codes the sandbox returns most (defined after _NAMES: name_for() gives the
# TDengine name). Which code real TDengine returns where:
#   wrong password -> MND_AUTH_FAILURE; unknown user -> MND_USER_NOT_EXIST ("Invalid user");
#   conn/USE with an unknown db -> MND_DB_NOT_EXIST; CREATE DATABASE existing -> MND_DB_ALREADY_EXIST;
#   CREATE TABLE existing -> TDB_TABLE_ALREADY_EXIST; CREATE STABLE existing -> MND_STB_ALREADY_EXIST;
#   no current db -> PAR_DB_NOT_SPECIFIED; unknown table in a query -> PAR_TABLE_NOT_EXIST (parser text).
AUTH_FAILURE = MND_AUTH_FAILURE
INVALID_USER = MND_USER_NOT_EXIST
DB_NOT_EXIST = MND_DB_NOT_EXIST
DB_ALREADY_EXIST = MND_DB_ALREADY_EXIST
DB_NOT_SPECIFIED = PAR_DB_NOT_SPECIFIED
TABLE_NOT_EXIST = PAR_TABLE_NOT_EXIST
TABLE_ALREADY_EXIST = TDB_TABLE_ALREADY_EXIST
STABLE_NOT_EXIST = MND_STB_NOT_EXIST
STABLE_ALREADY_EXIST = MND_STB_ALREADY_EXIST
SYNTAX_ERROR = PAR_SYNTAX_ERROR
INVALID_COLUMN = PAR_INVALID_COLUMN
TOPIC_NOT_EXIST = MND_TOPIC_NOT_EXIST
TOPIC_ALREADY_EXIST = MND_TOPIC_ALREADY_EXIST
CONSUMER_NOT_EXIST = MND_CONSUMER_NOT_EXIST


def _norm(code: int) -> int:
    return code & 0xFFFF


def message_for(code: int) -> str:
    """TDengine's message for ``code`` (accepts the 16-bit form or the negative int32 C form)."""
    c = _norm(code)
    msg = MESSAGES.get(c)
    if msg is not None:
        return msg
    if c == ADAPTER_ERROR:
        return "unknown error"
    return f"Unknown error 0x{c:04x}"


def name_for(code: int) -> str:
    """The constant name of ``code`` (e.g. ``"MND_DB_NOT_EXIST"``), or a hex string if unknown."""
    return _NAMES.get(_norm(code), f"0x{_norm(code):04X}")


def to_int32(code: int) -> int:
    """The C ``int32_t`` value of a code (``0x80000000 | code`` as a signed int), 0 for success."""
    c = _norm(code)
    if c == 0:
        return 0
    return (0x80000000 | c) - (1 << 32)


# Detailed parser messages (getSyntaxErrFormat in TDengine's parUtil.c). The client-visible
# text of a parser error is this formatted string, not the terror.c text.
PARSER_FORMATS: dict[int, str] = {
    PAR_SYNTAX_ERROR: 'syntax error near "{}"',
    PAR_INCOMPLETE_SQL: "Incomplete SQL statement",
    PAR_INVALID_COLUMN: "Invalid column name: {}",
    PAR_TABLE_NOT_EXIST: "Table does not exist: {}",
    PAR_GET_META_ERROR: "Fail to get table info, error: {}",
    PAR_AMBIGUOUS_COLUMN: "Column ambiguously defined: {}",
    PAR_WRONG_VALUE_TYPE: "Invalid value type: {}",
    PAR_INVALID_VARBINARY: "Invalid varbinary value: {}",
    PAR_TAGS_NOT_MATCHED: "Tags number not matched",
    PAR_INVALID_TAG_NAME: "Invalid tag name: {}",
    PAR_DB_NOT_SPECIFIED: "Database not specified",
    PAR_INVALID_IDENTIFIER_NAME: "Invalid identifier name: {}",
    PAR_CORRESPONDING_STABLE_ERR: "Corresponding super table not in this db",
}


def parser_message(code: int, detail: str = "") -> str:
    """The parser's detailed message for ``code`` with ``detail`` filled in where it takes one."""
    fmt = PARSER_FORMATS.get(_norm(code))
    if fmt is None:
        return message_for(code)
    return fmt.format(detail) if "{}" in fmt else fmt


def error(code: int, message: str | None = None):
    """A :class:`engine.errors.TDengineError` for ``code`` (TDengine's text unless ``message`` given)."""
    from engine.errors import TDengineError

    return TDengineError(code, message if message is not None else message_for(code))
