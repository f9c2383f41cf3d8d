"""Every golden item decodes to exactly what TDengine's own client decoded."""

from __future__ import annotations

import hashlib

import pytest

from engine.codec import (
    MetaMessage,
    RawBlock,
    RawDataMessage,
    SubmitDataMessage,
    block_to_json,
    decode_message,
)
from tests.golden import params, require_golden


def is_data(meta):
    return meta["kind"] == "tmq_raw" and meta["raw_type"] in (2, 4)


def _check_blocks(got_blocks, expected_blocks):
    assert len(got_blocks) == len(expected_blocks)
    for got, want in zip(got_blocks, expected_blocks):
        got_json = block_to_json(got)
        assert got_json["table_name"] == want["table_name"]
        assert got_json["columns"] == want["columns"]
        assert len(got_json["rows"]) == len(want["rows"])
        for got_row, want_row, in zip(got_json["rows"], want["rows"]):
            assert got_row == want_row


@pytest.mark.parametrize("meta,data", params(is_data))
def test_data_message_decodes_to_expected_rows(meta, data):
    require_golden()
    assert hashlib.sha256(data).hexdigest() == meta["sha256"]
    message = RawDataMessage.decode(data, meta["raw_type"])
    assert message.raw_type == meta["raw_type"]
    envelope = meta["envelope"]
    assert message.req_offset == ("log", envelope["req_offset"]["version"])
    assert message.rsp_offset == ("log", envelope["rsp_offset"]["version"])
    assert message.req_offset.version == meta["offset"]
    assert message.num_rows == sum(len(b["rows"]) for b in meta["expected"]["blocks"])
    _check_blocks(message.blocks, meta["expected"]["blocks"])
    if meta["raw_type"] == 4:
        assert len(message.create_table_requests) == envelope["create_table_num"]


@pytest.mark.parametrize("meta,data", params(is_data))
def test_data_message_encodes_byte_identical(meta, data):
    require_golden()
    message = RawDataMessage.decode(data, meta["raw_type"])
    assert message.encode() == data
    assert message.nbytes == len(data)


@pytest.mark.parametrize("meta,data", params(lambda m: m["kind"] == "raw_block"))
def test_raw_block_decodes_to_expected_rows(meta, data):
    require_golden()
    block = RawBlock.decode(data)
    header = meta["header"]
    assert block.version == header["block_version"]
    assert (block.num_rows, block.num_columns) == (header["rows"], header["cols"])
    assert block.has_blank_fill  # 3.3.7 writes the trailing byte
    block.set_column_names([f["name"] for f in meta["fields"]])
    _check_blocks([block], meta["expected"]["blocks"])
    assert block.to_bytes() == data


@pytest.mark.parametrize("meta,data", params(lambda m: m["raw_type"] == 6))
def test_rawdata_message_envelope(meta, data):
    require_golden()
    message = decode_message(6, data)
    assert isinstance(message, SubmitDataMessage)
    envelope = meta["envelope"]
    assert message.num_blocks == envelope["block_num"]
    assert message.table_names == [b["table_name"] for b in meta["expected"]["blocks"]]
    assert message.req_offset.version == envelope["req_offset"]["version"]
    assert message.rsp_offset.version == envelope["rsp_offset"]["version"]
    assert message.submit_lengths == [b["submit"]["len"] for b in envelope["blocks"]]
    assert message.encode() == data


def _expected_meta_tables(json_meta):
    if json_meta.get("createList"):
        return [(c["tableName"], c.get("using")) for c in json_meta["createList"]]
    if "tableNameList" in json_meta:
        return [(name, None) for name in json_meta["tableNameList"]]
    if json_meta["type"] == "delete":
        table = json_meta["sql"].split("`")[1]
        return [(table, None)]
    return [(json_meta["tableName"], json_meta.get("using"))]


@pytest.mark.parametrize("meta,data", params(lambda m: m["raw_type"] in (515, 517, 519, 531, 533, 535, 579)))
def test_meta_message_kind_and_tables(meta, data):
    require_golden()
    message = decode_message(meta["raw_type"], data)
    assert isinstance(message, MetaMessage)
    assert message.vgroup_id == meta["vgroup_id"]
    json_meta = meta["expected"]["json_meta"]
    assert message.kind == json_meta["type"]
    if "tableType" in json_meta:
        assert message.table_type == json_meta["tableType"]
    got = [(name, stable) for name, _type, stable in message.tables]
    assert got == _expected_meta_tables(json_meta)
    if json_meta["type"] == "delete":
        assert f">= {message.details['start']} and" in json_meta["sql"]
        assert f"<= {message.details['end']}" in json_meta["sql"]
    assert message.encode() == data
