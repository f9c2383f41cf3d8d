"""OffsetStore: LMDB offsets per (replica, database, vgroup), shared by several processes."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time

import pytest

from engine.errors import OffsetStoreError, UsageError
from engine.replication import offsets as offsets_module
from engine.replication.offsets import OffsetRecord, OffsetStore


@pytest.fixture
def store(tmp_path):
    s = OffsetStore(tmp_path / "state")
    yield s
    s.close()


def test_round_trip(store):
    assert store.get("r1", "power", 2) is None
    before = time.time()
    store.put_batch([("r1", "power", 2, 1050, 4000, 180_000)])
    record = store.get("r1", "power", 2)
    assert isinstance(record, OffsetRecord)
    assert (record.replica, record.database, record.vgroup) == ("r1", "power", 2)
    assert (record.offset, record.rows, record.bytes) == (1050, 4000, 180_000)
    assert before <= record.time <= time.time()


def test_increments_add_up_and_offset_is_replaced(store):
    store.put_batch([("r1", "power", 2, 10, 5, 50)])
    store.put_batch([("r1", "power", 2, 20, 7, 70)])
    # the same key twice in one batch: both increments count, the last offset wins
    store.put_batch([("r1", "power", 2, 25, 1, 1), ("r1", "power", 2, 30, 2, 2)])
    record = store.get("r1", "power", 2)
    assert (record.offset, record.rows, record.bytes) == (30, 15, 123)
    store.put_batch([("r1", "power", 2, 31, 0, 0)])          # a meta write: no rows
    assert store.get("r1", "power", 2).rows == 15


def test_all_and_delete_scan_exact_prefixes(store):
    rows = [("ab", "db", 1, 1, 1, 1), ("ab", "db", 300, 2, 1, 1), ("ab", "db2", 1, 3, 1, 1),
            ("abc", "db", 1, 4, 1, 1), ("a", "db", 1, 5, 1, 1), ("ab", "d", 7, 6, 1, 1),
            ("ü-replica", "база", 70000, 2**40, 1, 1)]
    store.put_batch(rows)
    assert {(r.replica, r.database, r.vgroup) for r in store.all()} == {r[:3] for r in rows}
    assert {(r.database, r.vgroup) for r in store.all("ab")} == {("db", 1), ("db", 300), ("db2", 1), ("d", 7)}
    assert [r.offset for r in store.all("ü-replica")] == [2**40]
    assert store.all("nobody") == []
    assert store.delete("ab", "db") == 2
    assert {(r.database, r.vgroup) for r in store.all("ab")} == {("db2", 1), ("d", 7)}
    assert store.delete("ab") == 2
    assert store.all("ab") == []
    assert {r.replica for r in store.all()} == {"abc", "a", "ü-replica"}   # neighbours untouched
    assert store.delete("ab") == 0


def test_failure_mid_batch_writes_nothing(store, monkeypatch):
    store.put_batch([("r1", "db", 1, 100, 10, 1000)])
    real = offsets_module._encode_value
    calls = []

    def failing(*args):
        calls.append(args)
        if len(calls) == 3:
            raise OSError("disk went away")      # after two records of the batch were put in the txn
        return real(*args)

    monkeypatch.setattr(offsets_module, "_encode_value", failing)
    with pytest.raises(OSError):
        store.put_batch([("r1", "db", 1, 200, 5, 5), ("r1", "db", 2, 300, 5, 5), ("r1", "db", 3, 400, 5, 5)])
    monkeypatch.setattr(offsets_module, "_encode_value", real)
    assert len(calls) == 3
    record = store.get("r1", "db", 1)
    assert (record.offset, record.rows, record.bytes) == (100, 10, 1000)
    assert store.get("r1", "db", 2) is None and store.get("r1", "db", 3) is None


def test_invalid_item_mid_batch_writes_nothing(store):
    with pytest.raises(UsageError, match="rows must be >= 0"):
        store.put_batch([("r1", "db", 1, 200, 5, 5), ("r1", "db", 2, 300, -1, 5)])
    with pytest.raises(UsageError, match="offset must be an integer"):
        store.put_batch([("r1", "db", 1, 200, 5, 5), ("r1", "db", 2, "300", 1, 5)])
    with pytest.raises(UsageError, match="replica must be a non-empty string"):
        store.put_batch([("r1", "db", 1, 200, 5, 5), ("", "db", 2, 300, 1, 5)])
    assert store.all() == []


def test_persists_across_reopen_and_processes(tmp_path):
    path = tmp_path / "state"
    with OffsetStore(path) as s:
        s.put_batch([("r1", "db", 4, 77, 3, 30)])
    with OffsetStore(path) as s:
        record = s.get("r1", "db", 4)
        assert (record.offset, record.rows, record.bytes) == (77, 3, 30)
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_write_many, args=(str(path), 0, 1, 3))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    with OffsetStore(path) as s:
        assert s.get("r1", "db", 4).rows == 3
        assert s.get("writer0", "db", 0).rows == 3


def test_several_store_objects_share_one_environment(tmp_path):
    a = OffsetStore(tmp_path / "state")
    b = OffsetStore(tmp_path / "state")
    assert a._env is b._env
    a.put_batch([("r", "db", 1, 5, 1, 1)])
    assert b.get("r", "db", 1).offset == 5
    a.close()
    assert b.get("r", "db", 1).offset == 5        # b still works after a closed
    b.close()
    with pytest.raises(OffsetStoreError, match="is closed"):
        b.get("r", "db", 1)


def test_files_are_private(tmp_path):
    old = os.umask(0)            # the modes must not depend on a narrow umask
    try:
        with OffsetStore(tmp_path / "state") as s:
            s.put_batch([("r", "db", 1, 1, 1, 1)])
    finally:
        os.umask(old)
    path = tmp_path / "state"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert sorted(os.listdir(path)) == ["data.mdb", "lock.mdb"]
    for name in ("data.mdb", "lock.mdb"):
        assert stat.S_IMODE(os.stat(path / name).st_mode) == 0o600, name
    # files widened by someone else are narrowed again on open
    os.chmod(path / "data.mdb", 0o644)
    os.chmod(path / "lock.mdb", 0o666)
    with OffsetStore(path):
        pass
    for name in ("data.mdb", "lock.mdb"):
        assert stat.S_IMODE(os.stat(path / name).st_mode) == 0o600, name


def test_unopenable_path_names_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OffsetStoreError, match=str(blocker)):
        OffsetStore(blocker)


def _write_many(path: str, index: int, rounds: int, rows_each: int) -> None:
    """One worker process: its own key each round, plus the key every process shares."""
    store = OffsetStore(path)
    for n in range(rounds):
        store.put_batch([(f"writer{index}", "db", 0, n, rows_each, 10 * rows_each),
                         ("shared", "db", 9, index * 1_000_000 + n, 1, 10)])
    store.close()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_concurrent_writers_in_several_processes(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {method} not available here")
    path = str(tmp_path / "state")
    parent = OffsetStore(path)            # open in the parent too: a forked child must not reuse it
    parent.put_batch([("parent", "db", 1, 1, 1, 1)])
    ctx = multiprocessing.get_context(method)
    procs, rounds = 6, 150
    workers = [ctx.Process(target=_write_many, args=(path, i, rounds, 2)) for i in range(procs)]
    for w in workers:
        w.start()
    for n in range(rounds):                  # the parent writes meanwhile as well
        parent.put_batch([("shared", "db", 9, -1 - n, 1, 10)])
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    shared = parent.get("shared", "db", 9)
    assert shared.rows == (procs + 1) * rounds
    assert shared.bytes == 10 * (procs + 1) * rounds
    last_offsets = {i * 1_000_000 + rounds - 1 for i in range(procs)} | {-rounds}
    assert shared.offset in last_offsets
    for i in range(procs):
        record = parent.get(f"writer{i}", "db", 0)
        assert (record.offset, record.rows, record.bytes) == (rounds - 1, 2 * rounds, 20 * rounds)
    assert parent.get("parent", "db", 1).offset == 1
    parent.close()


def _use_inherited(store: OffsetStore) -> None:
    store.put_batch([("child", "db", 1, os.getpid(), 1, 1)])
    store.close()


def test_forked_child_can_use_an_inherited_store_object(tmp_path):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork() on this platform")
    store = OffsetStore(tmp_path / "state")
    store.put_batch([("parent", "db", 1, 1, 1, 1)])
    proc = multiprocessing.get_context("fork").Process(target=_use_inherited, args=(store,))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert store.get("child", "db", 1).offset == proc.pid
    store.put_batch([("parent", "db", 1, 2, 1, 1)])       # the parent's handle is unaffected
    assert store.get("parent", "db", 1).rows == 2
    store.close()


def test_the_map_grows_when_full(tmp_path, monkeypatch):
    monkeypatch.setattr(offsets_module, "INITIAL_MAP_SIZE", 64 * 1024)
    with OffsetStore(tmp_path / "state") as store:
        start = store._env.info()["map_size"]
        for chunk in range(20):
            store.put_batch([("r", f"database_{chunk:03d}", v, v, 1, 1) for v in range(200)])
        assert store._env.info()["map_size"] > start
        assert len(store.all("r")) == 4000
    with OffsetStore(tmp_path / "state") as store:      # reopened with the small size: LMDB adopts the file's
        assert len(store.all()) == 4000
        store.put_batch([("r", "database_000", 0, 9, 1, 1)])
        assert store.get("r", "database_000", 0).rows == 2
