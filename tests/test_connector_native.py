"""Native connector (libtaos through ctypes): library resolution, errors, struct layouts, the ctypes
bindings against an ABI-check stub library, and — only with a real server — replication round trips.

Real-server tests run when ``TDSYNC_TEST_NATIVE=host:port[,host:port]`` is set (source[, sink]) AND
libtaos loads; otherwise they are skipped with the reason. The stub tests compile a small C library
with the libtaos signatures (compiled against TDengine's taos.h when ``TDSYNC_TAOS_HEADER`` or an
installed client header is found) — they check the ctypes plumbing, not TDengine's behaviour.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from engine.codec import RawDataMessage, encode_block
from engine.connectors import native, open_sink, open_source
from engine.connectors.base import RawMessage, VgroupAssignment
from engine.connectors.native import (
    NETWORK_CODES,
    NativeSink,
    NativeSource,
    TaosField,
    TmqRawData,
    TmqTopicAssignment,
    library_candidates,
    load_library,
)
from engine.endpoint import Endpoint
from engine.errors import ConnectionLost, ConnectorError, NativeLibraryMissing, TDengineError, UsageError

NATIVE_ENV = "TDSYNC_TEST_NATIVE"
HEADER_ENV = "TDSYNC_TAOS_HEADER"


# --- layouts ------------------------------------------------------------------------------------
def test_struct_layouts_match_taos_h():
    # typedef struct tmq_raw_data { void *raw; uint32_t raw_len; uint16_t raw_type; }
    assert ctypes.sizeof(ctypes.c_void_p) == 8, "layouts below are those of 64-bit platforms"
    assert ctypes.sizeof(TmqRawData) == 16
    assert (TmqRawData.raw.offset, TmqRawData.raw_len.offset, TmqRawData.raw_type.offset) == (0, 8, 12)
    assert (TmqRawData.raw_len.size, TmqRawData.raw_type.size) == (4, 2)
    # typedef struct tmq_topic_assignment { int32_t vgId; int64_t currentOffset; int64_t begin; int64_t end; }
    assert ctypes.sizeof(TmqTopicAssignment) == 32
    assert [getattr(TmqTopicAssignment, f).offset for f in ("vgId", "currentOffset", "begin", "end")] == \
        [0, 8, 16, 24]
    assert ctypes.sizeof(TmqTopicAssignment * 2) == 64          # arrays returned by tmq_get_topic_assignment
    # TAOS_FIELD { char name[65]; int8_t type; int32_t bytes; }
    assert ctypes.sizeof(TaosField) == 72
    assert (TaosField.type.offset, TaosField.bytes.offset) == (65, 68)


# --- finding the library ------------------------------------------------------------------------
def test_candidates_follow_the_platform_loader_then_install_dirs():
    found = library_candidates("Linux", {}, lambda name: "libtaos.so.1" if name == "taos" else None)
    assert found[:2] == ["libtaos.so", "libtaos.so.1"]          # dlopen search: LD_LIBRARY_PATH, ldconfig
    assert found.count("libtaos.so.1") == 1                     # find_library's answer, deduplicated
    assert "/usr/local/taos/driver/libtaos.so" in found and "/usr/lib/libtaos.so" in found
    assert found.index("/usr/local/taos/driver/libtaos.so") > found.index("libtaos.so.1")
    mac = library_candidates("Darwin", {}, lambda name: None)
    assert mac[0] == "libtaos.dylib" and "/usr/local/lib/libtaos.dylib" in mac
    win = library_candidates("Windows", {}, lambda name: "C:\\Windows\\taos.dll")
    assert win[:2] == ["taos.dll", "C:\\Windows\\taos.dll"] and "C:\\TDengine\\driver\\taos.dll" in win


def test_taos_library_path_is_the_only_place_looked_at(tmp_path):
    lib = tmp_path / "libtaos.so.3.3.7.5"
    lib.write_bytes(b"")
    assert library_candidates("Linux", {"TAOS_LIBRARY_PATH": str(lib)}, None) == [str(lib)]
    in_dir = library_candidates("Linux", {"TAOS_LIBRARY_PATH": str(tmp_path)}, lambda name: "libtaos.so")
    assert in_dir == [str(tmp_path / "libtaos.so"), str(tmp_path / "libtaos.so.1"), str(lib)]
    missing = tmp_path / "nowhere" / "libtaos.so"
    assert library_candidates("Linux", {"TAOS_LIBRARY_PATH": str(missing)}, None) == [str(missing)]


def test_missing_library_error_names_files_and_remedies(tmp_path):
    def absent(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file: No such file or directory")

    with pytest.raises(NativeLibraryMissing) as err:
        load_library(system="Linux", environ={}, loader=absent, find_library=None, cache=False)
    text = str(err.value)
    for expected in ("libtaos.so", "libtaos.so.1", "/usr/local/taos/driver/libtaos.so", "none of them exists",
                     "TDengine client package", "TAOS_LIBRARY_PATH", "LD_LIBRARY_PATH", "ws://"):
        assert expected in text, expected
    assert err.value.searched[:2] == ["libtaos.so", "libtaos.so.1"]

    target = tmp_path / "lib" / "libtaos.so"
    with pytest.raises(NativeLibraryMissing, match="TAOS_LIBRARY_PATH") as err:
        load_library(environ={"TAOS_LIBRARY_PATH": str(target)}, cache=False)
    assert err.value.searched == [str(target)]
    assert str(target) in str(err.value)


def test_an_unusable_file_is_reported_with_the_loader_reason(tmp_path):
    bogus = tmp_path / "libtaos.so"
    bogus.write_text("not a shared object")
    with pytest.raises(NativeLibraryMissing) as err:
        load_library(environ={"TAOS_LIBRARY_PATH": str(bogus)}, cache=False)
    assert "none of them exists" not in str(err.value)
    assert str(bogus) in err.value.reasons[0]


def test_a_library_without_the_tmq_functions_is_refused():
    libc = "libc.so.6" if sys.platform.startswith("linux") else None
    if libc is None:
        pytest.skip("uses glibc as an example of a library that is not libtaos")
    with pytest.raises(NativeLibraryMissing, match="not a TDengine 3.x client library") as err:
        load_library(environ={"TAOS_LIBRARY_PATH": libc}, cache=False)
    assert "tmq_write_raw" in str(err.value)


def test_importing_never_loads_libtaos_and_opening_reports_it(monkeypatch, tmp_path):
    code = ("import engine.connectors, engine.connectors.native as n, engine.connectors.base; "
            "print(n._loaded is None)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, TAOS_LIBRARY_PATH=str(tmp_path / "absent.so"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"

    monkeypatch.setattr(native, "_loaded", None)
    monkeypatch.setenv("TAOS_LIBRARY_PATH", str(tmp_path / "absent.so"))
    with pytest.raises(NativeLibraryMissing, match="absent.so"):
        open_source("taos://db1:6030")
    with pytest.raises(NativeLibraryMissing):
        open_sink("db1")
    with pytest.raises(ConnectorError, match="WebSocket endpoint"):
        NativeSource("ws://db1:6041", library=object())


def test_error_codes_map_to_transient_or_permanent_errors():
    for code in (0x000B, 0x0018, 0x0019, 0x0213, 0x012C):
        assert code in NETWORK_CODES
        exc = native._error(0x80000000 | code, "gone", "taos://root@h:6030", "poll")
        assert isinstance(exc, ConnectionLost) and f"0x{code:04x}" in str(exc)
    exc = native._error(native._int32(0x80002603), "Table does not exist", "taos://root@h:6030", "raw write")
    assert isinstance(exc, TDengineError) and exc.code == 0x2603
    assert exc.message == "raw write on taos://root@h:6030: Table does not exist"


# --- the ctypes bindings against an ABI-check stub --------------------------------------------------
STUB_C = r"""/*
 * ABI check for engine/connectors/native.py — NOT a TDengine: a tiny libtaos look-alike with the
 * same exported C signatures, compiled by tests/test_connector_native.py (when a C compiler exists)
 * to check the ctypes bindings (struct by value, out-pointers, int64 returns, thread-local errors,
 * frees) and the loader's TAOS_LIBRARY_PATH handling. Behaviour of a real server is tested only
 * against a real TDengine (TDSYNC_TEST_NATIVE).
 *
 * When the test finds TDengine's taos.h it compiles this file with `-include taos.h`, so every
 * definition below must agree with the real prototypes (a mismatch is a compile error).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef TDENGINE_TAOS_H /* the public declarations tdsync relies on, when taos.h is not at hand */
typedef void TAOS;
typedef void TAOS_RES;
typedef struct tmq_t      tmq_t;
typedef struct tmq_conf_t tmq_conf_t;
typedef struct tmq_list_t tmq_list_t;
typedef struct taosField {
  char    name[65];
  int8_t  type;
  int32_t bytes;
} TAOS_FIELD;
typedef enum tmq_conf_res_t { TMQ_CONF_UNKNOWN = -2, TMQ_CONF_INVALID = -1, TMQ_CONF_OK = 0 } tmq_conf_res_t;
typedef enum tmq_res_t {
  TMQ_RES_INVALID = -1, TMQ_RES_DATA = 1, TMQ_RES_TABLE_META = 2, TMQ_RES_METADATA = 3, TMQ_RES_RAWDATA = 4
} tmq_res_t;
typedef struct tmq_topic_assignment {
  int32_t vgId;
  int64_t currentOffset;
  int64_t begin;
  int64_t end;
} tmq_topic_assignment;
typedef struct tmq_raw_data {
  void    *raw;
  uint32_t raw_len;
  uint16_t raw_type;
} tmq_raw_data;
#endif

#define ERR(x) ((int32_t)(0x80000000u | (x)))

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int32_t terr = 0;
static __thread char    errbuf[128];

/* counters: results, raw buffers, assignments, consumers, connections alive; ABI errors seen */
static int n_res, n_raw, n_assign, n_tmq, n_conn, n_abi_errors;

typedef struct Conn {
  int  magic;
  char db[65];
} Conn;

enum { KIND_QUERY = 1, KIND_TMQ = 2 };
typedef struct Res {
  int      kind;
  int32_t  code;
  char     msg[64];
  int      nfields;
  int      affected;
  int      fetched;
  int      res_type;
  char     topic[65], db[65];
  int32_t  vgid;
  int64_t  offset;
  uint16_t raw_type;
  uint32_t len;
  char    *data;
} Res;

struct tmq_t {
  int  closed;
  char topic[65];
};
struct tmq_conf_t {
  char text[4096];
};
struct tmq_list_t {
  char first[65];
  int  n;
};

/* --- controls used by the test ------------------------------------------------------------------ */
#define QMAX 16
static Res      queue[QMAX];
static int      qlen;
static int32_t  poll_error;
static char     last_conf[4096];
static char     query_block[4096];
static int      query_block_len;
static char     written_db[65];
static uint16_t written_type;
static char     written[4096];
static uint32_t written_len;
static char     last_call[160];

void stub_push(int res_type, const char *topic, const char *db, int32_t vgid, int64_t offset, uint16_t raw_type,
               const void *data, uint32_t len) {
  pthread_mutex_lock(&mu);
  Res *r = &queue[qlen++];
  memset(r, 0, sizeof(*r));
  r->kind = KIND_TMQ;
  r->res_type = res_type;
  snprintf(r->topic, sizeof(r->topic), "%s", topic);
  snprintf(r->db, sizeof(r->db), "%s", db);
  r->vgid = vgid;
  r->offset = offset;
  r->raw_type = raw_type;
  r->len = len;
  r->data = malloc(len ? len : 1);
  memcpy(r->data, data, len);
  pthread_mutex_unlock(&mu);
}
void stub_set_poll_error(int32_t code) { poll_error = code; }
void stub_set_query_block(const void *block, int len) {
  memcpy(query_block, block, (size_t)len);
  query_block_len = len;
}
const char *stub_last_conf(void) { return last_conf; }
const char *stub_last_call(void) { return last_call; }
uint32_t    stub_last_write(char *db, uint16_t *raw_type, void *out) {
  strcpy(db, written_db);
  *raw_type = written_type;
  memcpy(out, written, written_len);
  return written_len;
}
void stub_counters(int *out) {
  out[0] = n_res;
  out[1] = n_raw;
  out[2] = n_assign;
  out[3] = n_tmq;
  out[4] = n_conn;
  out[5] = n_abi_errors;
}

/* --- connections and SQL ------------------------------------------------------------------------ */
const char *taos_get_client_info() { return "3.3.7.5-abi-stub"; }

TAOS *taos_connect(const char *ip, const char *user, const char *pass, const char *db, uint16_t port) {
  if (strcmp(ip, "unreachable.invalid") == 0) {
    terr = ERR(0x000B);
    return NULL;
  }
  if (strcmp(pass, "taosdata") != 0 || port != 6030 || strcmp(user, "root") != 0 || db != NULL) {
    terr = ERR(0x0357);
    return NULL;
  }
  Conn *c = calloc(1, sizeof(Conn));
  c->magic = 0x7a05;
  __atomic_add_fetch(&n_conn, 1, __ATOMIC_SEQ_CST);
  return c;
}
void taos_close(TAOS *taos) {
  if (((Conn *)taos)->magic != 0x7a05) n_abi_errors++;
  free(taos);
  __atomic_sub_fetch(&n_conn, 1, __ATOMIC_SEQ_CST);
}

static Res *new_res(int kind) {
  Res *r = calloc(1, sizeof(Res));
  r->kind = kind;
  __atomic_add_fetch(&n_res, 1, __ATOMIC_SEQ_CST);
  return r;
}

TAOS_RES *taos_query(TAOS *taos, const char *sql) {
  Res *r = new_res(KIND_QUERY);
  if (strncmp(sql, "select", 6) == 0) {
    r->nfields = 2;
  } else if (strncmp(sql, "bad", 3) == 0) {
    r->code = ERR(0x2600);
    snprintf(r->msg, sizeof(r->msg), "syntax error near \"%s\"", sql);
  } else if (strncmp(sql, "drop", 4) == 0) {
    r->code = ERR(0x0213); /* TSC_DISCONNECTED */
    snprintf(r->msg, sizeof(r->msg), "Disconnected from service");
  } else {
    r->affected = 7;
  }
  return r;
}
int taos_errno(TAOS_RES *res) { return res == NULL ? terr : ((Res *)res)->code; }
const char *taos_errstr(TAOS_RES *res) {
  if (res != NULL) return ((Res *)res)->msg;
  snprintf(errbuf, sizeof(errbuf), "stub error 0x%04x", terr & 0xffff);
  return errbuf;
}
void taos_free_result(TAOS_RES *res) {
  if (res == NULL) return;
  Res *r = res;
  if (r->kind != KIND_QUERY && r->kind != KIND_TMQ) n_abi_errors++;
  free(r->data);
  free(r);
  __atomic_sub_fetch(&n_res, 1, __ATOMIC_SEQ_CST);
}
int taos_field_count(TAOS_RES *res) { return ((Res *)res)->nfields; }
int taos_affected_rows(TAOS_RES *res) { return ((Res *)res)->affected; }
int taos_result_precision(TAOS_RES *res) { return 0; }
static TAOS_FIELD fields[2] = {{"ts", 9, 8}, {"v", 4, 4}};
TAOS_FIELD *taos_fetch_fields(TAOS_RES *res) { return fields; }
int taos_fetch_raw_block(TAOS_RES *res, int *numOfRows, void **pData) {
  Res *r = res;
  *numOfRows = 0;
  *pData = NULL;
  if (r->fetched++ == 0 && query_block_len > 0) {
    *numOfRows = *(int32_t *)(query_block + 8);
    *pData = query_block;
  }
  return 0;
}
int taos_select_db(TAOS *taos, const char *db) {
  if (strcmp(db, "missing") == 0) return ERR(0x0388);
  snprintf(((Conn *)taos)->db, 65, "%s", db);
  return 0;
}

/* --- TMQ ---------------------------------------------------------------------------------------- */
tmq_conf_t *tmq_conf_new() { return calloc(1, sizeof(tmq_conf_t)); }
tmq_conf_res_t tmq_conf_set(tmq_conf_t *conf, const char *key, const char *value) {
  if (strcmp(key, "no.such.key") == 0) return TMQ_CONF_UNKNOWN;
  if (strcmp(key, "auto.offset.reset") == 0 && strcmp(value, "earliest") && strcmp(value, "latest") &&
      strcmp(value, "none"))
    return TMQ_CONF_INVALID;
  size_t at = strlen(conf->text);
  snprintf(conf->text + at, sizeof(conf->text) - at, "%s=%s\n", key, value);
  return TMQ_CONF_OK;
}
void        tmq_conf_destroy(tmq_conf_t *conf) { free(conf); }
tmq_list_t *tmq_list_new() { return calloc(1, sizeof(tmq_list_t)); }
int32_t     tmq_list_append(tmq_list_t *l, const char *topic) {
  if (l->n++ == 0) snprintf(l->first, sizeof(l->first), "%s", topic);
  return 0;
}
void   tmq_list_destroy(tmq_list_t *l) { free(l); }
tmq_t *tmq_consumer_new(tmq_conf_t *conf, char *errstr, int32_t errstrLen) {
  memcpy(last_conf, conf->text, sizeof(last_conf));
  if (strstr(conf->text, "group.id=\n") != NULL) {
    snprintf(errstr, (size_t)errstrLen, "group.id is required");
    terr = ERR(0x0118);
    return NULL;
  }
  __atomic_add_fetch(&n_tmq, 1, __ATOMIC_SEQ_CST);
  return calloc(1, sizeof(tmq_t));
}
int32_t tmq_subscribe(tmq_t *tmq, const tmq_list_t *topics) {
  if (topics->n != 1) n_abi_errors++;
  if (strcmp(topics->first, "missing") == 0) return ERR(0x03E0);
  snprintf(tmq->topic, sizeof(tmq->topic), "%s", topics->first);
  return 0;
}
TAOS_RES *tmq_consumer_poll(tmq_t *tmq, int64_t timeout) {
  struct timespec nap = {0, 5 * 1000 * 1000};
  for (int64_t waited = 0;; waited += 5) {
    pthread_mutex_lock(&mu);
    if (qlen > 0) {
      Res *r = new_res(KIND_TMQ);
      *r = queue[0];
      memmove(queue, queue + 1, sizeof(Res) * (size_t)(--qlen));
      pthread_mutex_unlock(&mu);
      return r;
    }
    pthread_mutex_unlock(&mu);
    if (waited >= timeout) break;
    nanosleep(&nap, NULL);
  }
  terr = poll_error;
  return NULL;
}
int32_t tmq_consumer_close(tmq_t *tmq) {
  if (tmq->closed++) n_abi_errors++;
  free(tmq);
  __atomic_sub_fetch(&n_tmq, 1, __ATOMIC_SEQ_CST);
  return 0;
}
static int32_t record(const char *what, tmq_t *tmq, const char *topic, int32_t vgId, int64_t offset) {
  snprintf(last_call, sizeof(last_call), "%s %s %d %lld", what, topic, vgId, (long long)offset);
  if (strcmp(topic, tmq->topic) != 0) return ERR(0x4000 | 0x0C);
  return offset < 0 ? ERR(0x4007) : 0;
}
int32_t tmq_commit_offset_sync(tmq_t *tmq, const char *pTopicName, int32_t vgId, int64_t offset) {
  return record("commit", tmq, pTopicName, vgId, offset);
}
int32_t tmq_offset_seek(tmq_t *tmq, const char *pTopicName, int32_t vgId, int64_t offset) {
  return record("seek", tmq, pTopicName, vgId, offset);
}
int32_t tmq_get_topic_assignment(tmq_t *tmq, const char *pTopicName, tmq_topic_assignment **assignment,
                                 int32_t *numOfAssignment) {
  if (strcmp(pTopicName, tmq->topic) != 0) return ERR(0x400C);
  tmq_topic_assignment *a = calloc(2, sizeof(tmq_topic_assignment));
  a[0] = (tmq_topic_assignment){2, 5000000000LL, 17, 6000000000LL};
  a[1] = (tmq_topic_assignment){3, -1, 0, 0};
  *assignment = a;
  *numOfAssignment = 2;
  __atomic_add_fetch(&n_assign, 1, __ATOMIC_SEQ_CST);
  return 0;
}
void tmq_free_assignment(tmq_topic_assignment *pAssignment) {
  free(pAssignment);
  __atomic_sub_fetch(&n_assign, 1, __ATOMIC_SEQ_CST);
}
int64_t tmq_position(tmq_t *tmq, const char *pTopicName, int32_t vgId) {
  return vgId == 2 ? 4294967296LL + 5 : (int64_t)ERR(0x4010);
}
int64_t tmq_committed(tmq_t *tmq, const char *pTopicName, int32_t vgId) {
  return vgId == 2 ? 77 : vgId == 3 ? (int64_t)ERR(0x4011) : (int64_t)ERR(0x0019);
}
tmq_res_t   tmq_get_res_type(TAOS_RES *res) { return (tmq_res_t)((Res *)res)->res_type; }
const char *tmq_get_topic_name(TAOS_RES *res) { return ((Res *)res)->topic; }
const char *tmq_get_db_name(TAOS_RES *res) { return ((Res *)res)->db; }
int32_t     tmq_get_vgroup_id(TAOS_RES *res) { return ((Res *)res)->vgid; }
int64_t     tmq_get_vgroup_offset(TAOS_RES *res) { return ((Res *)res)->offset; }
const char *tmq_err2str(int32_t code) {
  snprintf(errbuf, sizeof(errbuf), "stub error 0x%04x", code & 0xffff);
  return errbuf;
}
int32_t tmq_get_raw(TAOS_RES *res, tmq_raw_data *raw) {
  Res *r = res;
  if (r->kind != KIND_TMQ) return ERR(0x4016);
  raw->raw_type = r->raw_type;
  raw->raw_len = r->len;
  if (r->raw_type == 2 || r->raw_type == 4) { /* data: a fresh buffer, freed by tmq_free_raw */
    raw->raw = malloc(r->len ? r->len : 1);
    memcpy(raw->raw, r->data, r->len);
    __atomic_add_fetch(&n_raw, 1, __ATOMIC_SEQ_CST);
  } else { /* meta: points into the result */
    raw->raw = r->data;
  }
  return 0;
}
void tmq_free_raw(tmq_raw_data raw) {
  if (raw.raw_type == 2 || raw.raw_type == 4) {
    free(raw.raw);
    __atomic_sub_fetch(&n_raw, 1, __ATOMIC_SEQ_CST);
  }
}
int32_t tmq_write_raw(TAOS *taos, tmq_raw_data raw) {
  Conn *c = taos;
  if (c->magic != 0x7a05) n_abi_errors++;
  if (raw.raw == NULL || raw.raw_len == 0) return ERR(0x0118);
  if (c->db[0] == 0) return ERR(0x2616); /* PAR_DB_NOT_SPECIFIED */
  if (raw.raw_type == 9999) return ERR(0x0018); /* RPC_BROKEN_LINK */
  if (raw.raw_type == 9998) return ERR(0x2603); /* table does not exist */
  snprintf(written_db, sizeof(written_db), "%s", c->db);
  written_type = raw.raw_type;
  written_len = raw.raw_len < sizeof(written) ? raw.raw_len : (uint32_t)sizeof(written);
  memcpy(written, raw.raw, written_len);
  return 0;
}
"""


def _installed_header() -> str | None:
    for path in (os.environ.get(HEADER_ENV), "/usr/local/taos/include/taos.h", "/usr/include/taos.h"):
        if path and os.path.isfile(path):
            return path
    return None


class Stub:
    """The compiled stub: ``lib`` as native.py binds it, ``ctl`` for the test's controls."""

    def __init__(self, lib, header):
        self.lib = lib
        self.header = header
        self.ctl = ctl = ctypes.CDLL(lib.path)
        ctl.stub_push.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int64,
                                  ctypes.c_uint16, ctypes.c_char_p, ctypes.c_uint32]
        ctl.stub_set_poll_error.argtypes = [ctypes.c_int32]
        ctl.stub_set_query_block.argtypes = [ctypes.c_char_p, ctypes.c_int]
        ctl.stub_last_conf.restype = ctypes.c_char_p
        ctl.stub_last_call.restype = ctypes.c_char_p
        ctl.stub_last_write.restype = ctypes.c_uint32
        ctl.stub_last_write.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint16), ctypes.c_char_p]

    def push(self, res_type, raw_type, data, *, topic="tdsync_db1", db="db1", vgroup=2, offset=100):
        self.ctl.stub_push(res_type, topic.encode(), db.encode(), vgroup, offset, raw_type, data, len(data))

    def counters(self) -> dict[str, int]:
        out = (ctypes.c_int * 6)()
        self.ctl.stub_counters(out)
        return dict(zip(("results", "raw_buffers", "assignments", "consumers", "connections", "abi_errors"), out))

    def conf(self) -> dict[str, str]:
        lines = self.ctl.stub_last_conf().decode().splitlines()
        return dict(line.split("=", 1) for line in lines)

    def last_write(self) -> tuple[str, int, bytes]:
        db, kind, out = ctypes.create_string_buffer(65), ctypes.c_uint16(), ctypes.create_string_buffer(4096)
        n = self.ctl.stub_last_write(db, ctypes.byref(kind), out)
        return db.value.decode(), kind.value, out.raw[:n]


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build the ABI-check stub library")
    where = tmp_path_factory.mktemp("stub")
    (where / "stub.c").write_text(STUB_C)
    header = _installed_header()
    command = [cc, "-shared", "-fPIC", "-O1", "-Wall", "-Wno-unused-parameter",
               *(["-include", header] if header else []),
               "-o", str(where / "libtaos.so"), str(where / "stub.c"), "-lpthread"]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, f"{' '.join(command)}\n{built.stderr}"
    lib = load_library(environ={"TAOS_LIBRARY_PATH": str(where)}, cache=False)
    assert lib.path == str(where / "libtaos.so")
    return Stub(lib, header)


def run(coro):
    return asyncio.run(coro)


SOURCE = Endpoint.parse("taos://root:taosdata@db1:6030")


def test_stub_loads_through_taos_library_path(stub):
    assert stub.lib.client_version == "3.3.7.5-abi-stub"
    assert stub.counters()["abi_errors"] == 0


def test_subscribe_sets_the_consumer_configuration(stub):
    async def main():
        source = NativeSource(SOURCE, library=stub.lib)
        await source.subscribe("tdsync_db1", "tdsync_r1", "worker-1",
                               {"auto.offset.reset": "latest", "enable.auto.commit": "true",
                                "session.timeout.ms": "20000"})
        conf = stub.conf()
        assert conf["group.id"] == "tdsync_r1" and conf["client.id"] == "worker-1"
        assert (conf["td.connect.ip"], conf["td.connect.port"]) == ("db1", "6030")
        assert (conf["td.connect.user"], conf["td.connect.pass"]) == ("root", "taosdata")
        assert conf["msg.consume.excluded"] == "1" and conf["msg.with.table.name"] == "true"
        assert conf["auto.offset.reset"] == "latest"            # config wins over the defaults ...
        assert conf["enable.auto.commit"] == "false"            # ... but never over explicit commits
        assert conf["session.timeout.ms"] == "20000"
        assert stub.counters()["consumers"] == 1
        await source.subscribe("tdsync_db1", "tdsync_r1", "worker-1")   # a new subscription replaces it
        assert stub.conf()["auto.offset.reset"] == "earliest"
        assert stub.counters()["consumers"] == 1
        await source.close()
        with pytest.raises(UsageError, match="no.such.key.*unknown key"):
            await NativeSource(SOURCE, library=stub.lib).subscribe("t", "g", "c", {"no.such.key": "1"})
        with pytest.raises(UsageError, match="auto.offset.reset='sometime'.*invalid value"):
            await NativeSource(SOURCE, library=stub.lib).subscribe("t", "g", "c", {"auto.offset.reset": "sometime"})
        with pytest.raises(TDengineError, match="group.id is required"):
            await NativeSource(SOURCE, library=stub.lib).subscribe("t", "", "c")
        with pytest.raises(TDengineError) as err:
            await NativeSource(SOURCE, library=stub.lib).subscribe("missing", "g", "c")
        assert err.value.code == 0x03E0 and "topic missing" in str(err.value)
        with pytest.raises(ConnectorError, match="subscribe"):
            await NativeSource(SOURCE, library=stub.lib).poll(0)

    run(main())
    assert stub.counters() == {"results": 0, "raw_buffers": 0, "assignments": 0, "consumers": 0,
                               "connections": 0, "abi_errors": 0}


def test_poll_copies_raw_bytes_and_frees_everything(stub):
    data = bytes([0x64]) + bytes(range(256)) * 3
    meta = b"\x64\x01\x00\x00\x04\x00\x00\x00" + b"create stable bytes"

    async def main():
        async with NativeSource(SOURCE, library=stub.lib) as source:
            await source.subscribe("tdsync_db1", "g", "c")
            stub.push(1, 2, data, vgroup=2, offset=2**33 + 1)
            stub.push(2, 531, meta, vgroup=3, offset=42)
            first = await source.poll(1.0)
            second = await source.poll(1.0)
            assert await source.poll(0.02) is None
            return first, second

    first, second = run(main())
    assert first == RawMessage("tdsync_db1", "db1", 2, 2, 2**33 + 1, data)
    assert second == RawMessage("tdsync_db1", "db1", 3, 531, 42, meta)
    assert stub.counters()["results"] == stub.counters()["raw_buffers"] == 0


def test_poll_errors_are_reported_by_kind(stub):
    async def main():
        async with NativeSource(SOURCE, library=stub.lib) as source:
            await source.subscribe("tdsync_db1", "g", "c")
            try:
                stub.ctl.stub_set_poll_error(native._int32(0x8000000B))
                with pytest.raises(ConnectionLost, match="0x000b"):
                    await source.poll(0.01)
                stub.ctl.stub_set_poll_error(native._int32(0x80004002))
                with pytest.raises(TDengineError) as err:
                    await source.poll(0.01)
                assert err.value.code == 0x4002
            finally:
                stub.ctl.stub_set_poll_error(0)
            assert await source.poll(0.01) is None

    run(main())


def test_a_cancelled_poll_does_not_lose_its_message(stub):
    async def main():
        async with NativeSource(SOURCE, library=stub.lib) as source:
            await source.subscribe("tdsync_db1", "g", "c")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(source.poll(1.0), 0.05)     # the C poll keeps waiting ...
            stub.push(1, 2, b"\x64late", offset=7)                 # ... and gets this message
            message = await source.poll(0.0)                      # handed to the next poll
            assert message is not None and message.offset == 7 and message.data == b"\x64late"
            assert await source.poll(0.01) is None

    run(main())
    assert stub.counters()["results"] == 0


def test_offsets_assignment_position_committed(stub):
    async def main():
        async with NativeSource(SOURCE, library=stub.lib) as source:
            await source.subscribe("tdsync_db1", "g", "c")
            await source.commit("tdsync_db1", 2, 2**40)
            assert stub.ctl.stub_last_call().decode() == f"commit tdsync_db1 2 {2**40}"
            await source.seek("tdsync_db1", 3, 17)
            assert stub.ctl.stub_last_call().decode() == "seek tdsync_db1 3 17"
            with pytest.raises(TDengineError) as err:
                await source.seek("tdsync_db1", 3, -5)
            assert err.value.code == 0x4007
            assert await source.assignment("tdsync_db1") == [VgroupAssignment(2, 5_000_000_000, 17, 6_000_000_000),
                                                             VgroupAssignment(3, -1, 0, 0)]
            assert await source.position("tdsync_db1", 2) == 2**32 + 5
            with pytest.raises(TDengineError) as err:
                await source.position("tdsync_db1", 3)
            assert err.value.code == 0x4010
            assert await source.committed("tdsync_db1", 2) == 77
            assert await source.committed("tdsync_db1", 3) is None
            with pytest.raises(ConnectionLost):
                await source.committed("tdsync_db1", 4)

    run(main())
    assert stub.counters()["assignments"] == 0


def test_sql_results_are_decoded_from_raw_blocks(stub):
    block = encode_block([(9, 8, [1_700_000_000_000, 1_700_000_001_000]), (4, 4, [10, None])], version=1)
    stub.ctl.stub_set_query_block(block, len(block))

    async def main():
        async with NativeSource(SOURCE, library=stub.lib) as source:
            assert await source.query("select ts, v from db1.t") == [(1_700_000_000_000, 10),
                                                                      (1_700_000_001_000, None)]
            with pytest.raises(TDengineError) as err:
                await source.query("bad sql")
            assert err.value.code == 0x2600 and 'syntax error near "bad sql"' in err.value.message
        async with NativeSink(SOURCE, library=stub.lib) as sink:
            assert await sink.execute("create table x (ts timestamp, v int)") == 7
            assert await sink.query("select ts, v from db1.t") == (["ts", "v"], [(1_700_000_000_000, 10),
                                                                                (1_700_000_001_000, None)])
            with pytest.raises(ConnectionLost, match="Disconnected"):
                await sink.execute("drop database x")

    run(main())
    assert stub.counters()["results"] == 0 and stub.counters()["connections"] == 0


def test_write_raw_passes_the_struct_by_value_into_the_selected_database(stub):
    payload = bytes([0x64]) + os.urandom(1500)

    async def main():
        async with NativeSink(SOURCE, library=stub.lib) as sink:
            await sink.write_raw("db1", 2, payload)
            assert stub.last_write() == ("db1", 2, payload)
            await sink.write_raw("db2", 531, b"meta")
            assert stub.last_write() == ("db2", 531, b"meta")
            await sink.write_raw("db1", 4, payload[:100])            # back to db1: its own connection
            assert stub.last_write() == ("db1", 4, payload[:100])
            assert stub.counters()["connections"] == 2
            with pytest.raises(TDengineError) as err:
                await sink.write_raw("missing", 2, payload)
            assert err.value.code == 0x0388 and "cannot use database missing" in str(err.value)
            with pytest.raises(TDengineError) as err:
                await sink.write_raw("db1", 9998, payload)
            assert err.value.code == 0x2603
            with pytest.raises(ConnectionLost, match="0x0018"):
                await sink.write_raw("db1", 9999, payload)
            with pytest.raises(UsageError):
                await sink.write_raw("db1", 70000, payload)
            with pytest.raises(UsageError):
                await sink.write_raw("db1", 2, b"")

        sink = NativeSink(SOURCE, library=stub.lib)
        await sink.write_raw("db1", 2, payload)
        await sink.close()
        await sink.write_raw("db3", 2, payload)                      # usable again after close, like WsSink
        assert stub.last_write() == ("db3", 2, payload)
        await sink.close()

    run(main())
    assert stub.counters()["connections"] == 0


def test_connect_failures(stub):
    async def main():
        async with NativeSink("taos://unreachable.invalid:6030", library=stub.lib) as sink:
            with pytest.raises(ConnectionLost, match="unreachable.invalid"):
                await sink.execute("create database x")
        wrong = Endpoint.parse("taos://root:Secret-123@db1:6030")
        async with NativeSource(wrong, library=stub.lib) as source:
            with pytest.raises(TDengineError) as err:
                await source.query("select 1")
        assert err.value.code == 0x0357
        assert "Secret-123" not in str(err.value) and "taos://root@db1:6030" in str(err.value)

    run(main())
    counters = stub.counters()
    assert counters == {"results": 0, "raw_buffers": 0, "assignments": 0, "consumers": 0, "connections": 0,
                        "abi_errors": 0}


def test_factories_build_native_endpoints(stub, monkeypatch):
    monkeypatch.setattr(native, "_loaded", stub.lib)
    source, sink = open_source("db1"), open_sink("taos://db2:7030")
    assert isinstance(source, NativeSource) and isinstance(sink, NativeSink)
    assert (source.label, sink.label) == ("taos://root@db1:6030", "taos://root@db2:7030")


# --- a real TDengine (TDSYNC_TEST_NATIVE=host:port[,host:port]) -------------------------------------
def _real_endpoints() -> tuple[Endpoint, Endpoint, native.TaosLibrary]:
    """(source, sink, library) or skip with the reason."""
    spec = os.environ.get(NATIVE_ENV, "").strip()
    if not spec:
        pytest.skip(f"{NATIVE_ENV} is not set (host:port[,host:port] of TDengine 3.3 servers: source[, sink])")
    try:
        library = load_library()
    except NativeLibraryMissing as exc:
        pytest.skip(f"{NATIVE_ENV} is set but libtaos could not be loaded: {exc}")
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    endpoints = [Endpoint.parse(part if "://" in part else f"taos://{part}") for part in parts]
    return endpoints[0], endpoints[-1], library


@pytest.fixture
def real():
    source_ep, sink_ep, library = _real_endpoints()
    suffix = uuid.uuid4().hex[:8]
    return {"source": source_ep, "sink": sink_ep, "lib": library, "db": f"tdsync_nt_{suffix}",
            "copy": f"tdsync_nt_{suffix}_copy", "topic": f"tdsync_nt_{suffix}"}


async def _drain(source: NativeSource, want_rows: int, deadline: float) -> list[RawMessage]:
    """Poll until ``want_rows`` data rows arrived (or the deadline), keeping every message in order."""
    messages, rows = [], 0
    while rows < want_rows and time.monotonic() < deadline:
        message = await source.poll(0.5)
        if message is None:
            continue
        messages.append(message)
        if message.raw_type in (2, 4):
            rows += RawDataMessage.decode(message.data, message.raw_type).num_rows
    assert rows >= want_rows, f"only {rows} of {want_rows} rows arrived"
    return messages


async def _drop(conn: NativeSink, statement: str, attempts: int = 20) -> None:
    for _ in range(attempts):
        try:
            await conn.execute(statement)
            return
        except (TDengineError, ConnectionLost):
            await asyncio.sleep(0.5)


def test_real_server_round_trip(real):
    """Source → TMQ raw messages → sink database on the same or a second server: rows and offsets."""
    db, copy, topic = real["db"], real["copy"], real["topic"]

    async def main():
        source = NativeSource(real["source"], library=real["lib"])
        sink = NativeSink(real["sink"], library=real["lib"])
        admin = NativeSink(real["source"], library=real["lib"])
        try:
            assert isinstance(await admin.query("SELECT SERVER_VERSION()"), tuple)
            await admin.execute(f"CREATE DATABASE {db} VGROUPS 2 WAL_RETENTION_PERIOD 3600")
            await admin.execute(f"CREATE STABLE {db}.meters (ts TIMESTAMP, v INT, s VARCHAR(16)) TAGS (site INT)")
            base = 1_700_000_000_000
            for table, site in (("d1", 1), ("d2", 2), ("d3", 3)):
                values = " ".join(f"({base + i}, {i}, 'r{i}')" for i in range(10))
                assert await admin.execute(
                    f"INSERT INTO {db}.{table} USING {db}.meters TAGS ({site}) VALUES {values}") == 10
            await admin.execute(f"CREATE TOPIC {topic} WITH META AS DATABASE {db}")
            await sink.execute(f"CREATE DATABASE IF NOT EXISTS {copy} VGROUPS 1")

            await source.subscribe(topic, f"tdsync_test_{topic}", "native-test")
            messages = await _drain(source, 30, time.monotonic() + 60)
            assert {m.topic for m in messages} == {topic} and {m.database for m in messages} == {db}
            for message in messages:                  # metas (create stable / tables) then data, WAL order
                await sink.write_raw(copy, message.raw_type, message.data)
            _, rows = await sink.query(f"SELECT COUNT(*) FROM {copy}.meters")
            assert rows[0][0] == 30
            _, rows = await sink.query(f"SELECT ts, v, s FROM {copy}.d2 ORDER BY ts LIMIT 2")
            assert rows == [(base, 0, "r0"), (base + 1, 1, "r1")]

            assignments = await source.assignment(topic)
            assert {m.vgroup_id for m in messages} <= {a.vgroup_id for a in assignments}
            for a in assignments:
                position = await source.position(topic, a.vgroup_id)
                assert a.begin <= position <= a.end
                assert await source.committed(topic, a.vgroup_id) is None
                await source.commit(topic, a.vgroup_id, position)
                assert await source.committed(topic, a.vgroup_id) == position
            # seek back to the start of one vgroup: its data comes again
            first = next(m for m in messages if m.raw_type in (2, 4))
            await source.seek(topic, first.vgroup_id, first.offset)
            again = await _drain(source, 1, time.monotonic() + 30)
            assert any(m.vgroup_id == first.vgroup_id and m.offset == first.offset for m in again)
        finally:
            await source.close()
            await _drop(admin, f"DROP TOPIC IF EXISTS {topic}")   # refused while the group still looks alive
            await _drop(admin, f"DROP DATABASE IF EXISTS {db}")
            await _drop(sink, f"DROP DATABASE IF EXISTS {copy}")
            await admin.close()
            await sink.close()

    run(main())


def test_real_server_errors(real):
    async def main():
        async with NativeSink(real["sink"], library=real["lib"]) as sink:
            with pytest.raises(TDengineError) as err:
                await sink.write_raw(f"{real['db']}_absent", 2, b"\x64" + bytes(40))
            assert "cannot use database" in str(err.value)
            with pytest.raises(TDengineError):
                await sink.execute("THIS IS NOT SQL")
        async with NativeSource(real["source"], library=real["lib"]) as source:
            with pytest.raises(TDengineError):
                await source.subscribe(f"{real['topic']}_absent", "tdsync_test_absent", "native-test")
        bad = real["source"].with_password("definitely-wrong-" + uuid.uuid4().hex[:6])
        async with NativeSink(bad, library=real["lib"]) as sink:
            with pytest.raises(TDengineError) as err:
                await sink.execute("SELECT 1")
            assert bad.password not in str(err.value)

    run(main())
