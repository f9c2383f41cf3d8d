"""`tdsync inspect` as an operator runs it: a subprocess over the golden files."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.golden import ITEMS, require_golden


def run_tdsync(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=120)


def test_inspect_json_reproduces_every_golden_item():
    root = require_golden()
    names = [name for name, _, _ in ITEMS]
    result = run_tdsync("inspect", "--json", *[str(root / f"{name}.bin") for name in names])
    assert result.returncode == 0, result.stderr
    documents = json.loads(result.stdout)
    assert len(documents) == len(ITEMS)
    for (name, meta, _data), doc in zip(ITEMS, documents):
        assert doc["file"].endswith(f"{name}.bin")
        expected = meta["expected"]
        if meta["kind"] == "raw_block" or meta["raw_type"] in (2, 4):
            assert doc["blocks"] == expected["blocks"], name
        elif meta["raw_type"] == 6:
            assert [b["table_name"] for b in doc["blocks"]] == [b["table_name"] for b in expected["blocks"]], name
        else:
            json_meta = expected["json_meta"]
            assert doc["meta_kind"] == json_meta["type"], name
            names_in_meta = json_meta.get("tableNameList") or [
                c["tableName"] for c in json_meta.get("createList") or []] or [json_meta.get("tableName")]
            if json_meta["type"] != "delete":
                assert [t["name"] for t in doc["tables"]] == names_in_meta, name


def test_inspect_text_shows_table_schema_and_rows():
    root = require_golden()
    result = run_tdsync("inspect", "--rows", "2", str(root / "014_std_ms_t2_all_insert_mix.bin"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "raw_type 2" in out and "offsets: log 8 -> log 9" in out
    assert "block 1: m_hundred, 100 rows, 19 columns, precision ms" in out
    assert "ts TIMESTAMP, c_bool BOOL" in out
    assert "2026-01-01T00:00:00.000Z | false | 127 | 289" in out
    assert "… 98 more rows" in out


def test_inspect_raw_type_flag_overrides_sidecar(tmp_path):
    root = require_golden()
    copy = tmp_path / "message.bin"
    copy.write_bytes((root / "124_raw_ns_t579_ddl_delete.bin").read_bytes())
    result = run_tdsync("inspect", "--json", "--raw-type", "579", str(copy))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["meta_kind"] == "delete" and doc["tables"][0]["name"] == "dev_1"


def test_inspect_errors_are_one_line_without_traceback(tmp_path):
    unknown = tmp_path / "mystery.bin"
    unknown.write_bytes(b"\x64\x00\x00")
    result = run_tdsync("inspect", str(unknown))
    assert result.returncode == 1
    assert "pass --raw-type N" in result.stderr and "Traceback" not in result.stderr

    result = run_tdsync("inspect", "--raw-type", "2", str(unknown))
    assert result.returncode == 1
    assert "invalid offset length at byte 1" in result.stderr and "Traceback" not in result.stderr

    result = run_tdsync("inspect", str(tmp_path / "missing.bin"))
    assert result.returncode == 1 and "cannot read" in result.stderr

    result = run_tdsync("inspect")
    assert result.returncode == 2
