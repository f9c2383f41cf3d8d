"""``make demo``: until replication lands, run the codec over real TDengine 3.3 messages.

Decodes every message of the golden set the way a worker will (data messages re-encoded
byte for byte, one vgroup's messages merged), and shows a few of them as ``tdsync inspect``
prints them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

from engine.codec import RawDataMessage, merge_messages
from engine.errors import TdsyncError
from engine.inspect import RAW_BLOCK, decode_file, print_text

SHOWN = ("014_std_ms_t2_all_insert_mix", "023_std_ms_t4_all_insert_autocreate",
         "096_raw_ns_t533_ddl_alter_stable_add_column", "124_raw_ns_t579_ddl_delete")


def run(testdata: Path) -> int:
    files = sorted(testdata.glob("[0-9]*.bin"))
    if not files:
        print(f"demo: no golden files in {testdata} (set TESTDATA=...)", file=sys.stderr)
        return 1
    print(f"Decoding {len(files)} raw TMQ messages and raw blocks captured from TDengine 3.3.7\n")
    started = time.perf_counter()
    kinds: dict[str, int] = defaultdict(int)
    rows = identical = 0
    by_vgroup: dict[tuple, list[RawDataMessage]] = defaultdict(list)
    for path in files:
        decoded, kind, sidecar = decode_file(path)
        kinds["raw block" if kind == RAW_BLOCK else f"raw_type {kind}"] += 1
        if isinstance(decoded, RawDataMessage):
            rows += decoded.num_rows
            identical += decoded.encode() == path.read_bytes()
            by_vgroup[(sidecar.get("consumer_mode"), sidecar.get("db"), sidecar.get("vgroup_id"))].append(decoded)
    elapsed = time.perf_counter() - started
    data_messages = sum(len(v) for v in by_vgroup.values())
    for kind, count in sorted(kinds.items()):
        print(f"  {kind:<16} {count:>4} files")
    print(f"\n  {data_messages} data messages, {rows} rows: {identical} re-encoded byte-identical")
    merged = [merge_messages(group) for group in by_vgroup.values() if len(group) > 1]
    merged_rows = sum(m.num_rows for m in merged)
    print(f"  merged per vgroup into {len(merged)} batches of {merged_rows} rows "
          f"({sum(len(m.encode()) for m in merged)} bytes)")
    print(f"  all decoded in {elapsed * 1000:.1f} ms\n")
    for name in SHOWN:
        path = testdata / f"{name}.bin"
        if path.exists():
            decoded, kind, _ = decode_file(path)
            print_text(path.relative_to(testdata.parent) if path.is_relative_to(testdata.parent) else path,
                       decoded, kind, sys.stdout, max_rows=3)
            print()
    print("Next: `tdsync inspect FILE [--json]` on any of them.")
    return 0 if identical == data_messages else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.demo")
    parser.add_argument("--testdata", type=Path, default=Path("../shared/testdata/tdengine-3.3.7"))
    args = parser.parse_args(argv)
    try:
        return run(args.testdata)
    except TdsyncError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
