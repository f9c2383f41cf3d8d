"""One-run report of the codec's throughput and its three targets: ``python -m bench.codec_report``.

Every operation of ``bench.messages.workload`` is timed with ``timeit`` (an inline loop, GC off
during the loop, ``time.perf_counter``), best of several repeats, on the same cached messages. A
"copy" is one allocation plus one memcpy of the same bytes (``memoryview(data).tobytes()``); the
merge baseline copies the same four input buffers into one new bytes object (``b"".join``), which
is the data movement any merge+encode must do at least.

Targets (from the issue):
  (a) merge+encode of 4096-row messages at >= 50% of the copy's bandwidth;
  (b) decoding a 1-row message (envelope and header) in < 2 µs;
  (c) Cython decode >= 30x the pure-Python decoder on 4096-row messages.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import timeit

from bench.messages import GOLDEN_1ROW, SIZES, all_messages, golden_dir, workload

TARGET_MERGE_VS_COPY = 0.5
TARGET_DECODE_1ROW_US = 2.0
TARGET_CYTHON_VS_PYTHON = 30.0


def best_time(stmt: str, ns: dict, min_time: float, repeats: int, op_budget: float) -> float:
    """Seconds per call: best of ``repeats`` loops of at least ``min_time`` seconds each."""
    timer = timeit.Timer(stmt, globals=ns)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= min_time:
            break
        number = max(number * 2, int(number * min_time * 1.2 / max(elapsed, 1e-9)))
    # Slow operations (the pure-Python values path) get fewer repeats, never fewer than 3.
    repeats = max(3, min(repeats, int(op_budget / max(elapsed, 1e-9))))
    times = [elapsed] + timer.repeat(repeat=repeats - 1, number=number)
    return min(times) / number


def fmt_rate(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats per operation (best is kept)")
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per timing repeat, at least")
    parser.add_argument("--op-budget", type=float, default=1.0, help="seconds per operation, roughly")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        from Cython import __version__ as cython_version
    except ImportError:          # Cython is a build requirement; the built extension does not need it
        cython_version = "not installed"

    print(f"tdsync codec benchmark - Python {platform.python_version()}, Cython {cython_version}, "
          f"{platform.machine()} {platform.processor() or ''}".rstrip())
    all_messages()      # build (and cache) every message before timing anything
    print(f"messages built in {time.perf_counter() - started:.1f} s; best of up to {args.repeats} repeats "
          f"of >= {args.min_time * 1e3:.0f} ms each\n")

    results: dict[tuple[int, int], dict[str, tuple[float, object]]] = {}
    header = f"{'message':<18} {'operation':<22} {'µs/call':>11} {'MB/s':>10} {'rows/s':>9} {'bw vs copy':>11}"
    print(header)
    print("-" * len(header))
    for rows, cols in SIZES:
        ns, ops = workload(rows, cols)
        measured = {}
        for op in ops:
            seconds = best_time(op.stmt, ns, args.min_time, args.repeats, args.op_budget)
            measured[op.name] = (seconds, op)
        results[(rows, cols)] = measured
        label = f"rows={rows} cols={cols}"
        for name, (seconds, op) in measured.items():
            baseline = "copy x4 (join)" if "x4" in name else "copy"
            base_seconds, base_op = measured[baseline]
            bw = op.nbytes / seconds
            rel = bw / (base_op.nbytes / base_seconds)
            print(f"{label:<18} {name:<22} {seconds * 1e6:>11.2f} {bw / 1e6:>10.0f} {fmt_rate(op.rows / seconds):>9} "
                  f"{rel:>10.3f}x")
            label = ""
        print()

    misses = 0
    print("TARGETS")
    print(f"(a) merge x4 + encode bandwidth / copy bandwidth, 4096-row messages (target >= {TARGET_MERGE_VS_COPY})")
    for cols in (10, 200):
        m = results[(4096, cols)]
        t_merge, op_merge = m["merge x4+encode"]
        t_join, op_join = m["copy x4 (join)"]
        t_copy, op_copy = m["copy"]
        bw_merge = op_merge.nbytes / t_merge
        ratio = bw_merge / (op_join.nbytes / t_join)
        single = bw_merge / (op_copy.nbytes / t_copy)
        misses += ratio < TARGET_MERGE_VS_COPY
        print(f"    cols={cols:<4} merge+encode {bw_merge / 1e6:8.0f} MB/s, copy of the same 4 buffers "
              f"{op_join.nbytes / t_join / 1e6:8.0f} MB/s -> {ratio:.2f}  {verdict(ratio >= TARGET_MERGE_VS_COPY)}"
              f"   (vs one-message copy bandwidth: {single:.2f})")

    print(f"(b) decode of a 1-row message, envelope + block header + schema (target < {TARGET_DECODE_1ROW_US:g} µs)")
    one_row = []
    for cols in (10, 200):
        m = results[(1, cols)]
        one_row.append((f"synthetic {cols} cols", m["decode (Cython)"][1].nbytes, m["decode (Cython)"][0],
                        m["copy"][0]))
    root = golden_dir()
    if root is not None and (root / f"{GOLDEN_1ROW}.bin").is_file():
        from engine.codec import RawDataMessage

        data = (root / f"{GOLDEN_1ROW}.bin").read_bytes()
        ns = {"decode": RawDataMessage.decode, "data": data, "copy": memoryview(data).tobytes}
        one_row.append((f"golden {GOLDEN_1ROW[:3]} (19 cols)", len(data),
                        best_time("decode(data)", ns, args.min_time, args.repeats, args.op_budget),
                        best_time("copy()", ns, args.min_time, args.repeats, args.op_budget)))
    for name, nbytes, t_decode, t_copy in one_row:
        ok = t_decode * 1e6 < TARGET_DECODE_1ROW_US
        misses += not ok
        print(f"    {name:<24} {nbytes:6d} B: {t_decode * 1e6:6.2f} µs  {verdict(ok)}   "
              f"(= {t_decode / t_copy:.0f}x a bytes copy of it, {t_copy * 1e6:.3f} µs)")

    print(f"(c) Cython decode / pure-Python decode, 4096-row messages (target >= {TARGET_CYTHON_VS_PYTHON:g}x)")
    for cols in (10, 200):
        m = results[(4096, cols)]
        ratio = m["decode (pure Python)"][0] / m["decode (Cython)"][0]
        values = m["values (pure Python)"][0] / m["values (Cython)"][0]
        misses += ratio < TARGET_CYTHON_VS_PYTHON
        t_cy, t_py = m["decode (Cython)"][0], m["decode (pure Python)"][0]
        print(f"    cols={cols:<4} decode {ratio:6.1f}x  {verdict(ratio >= TARGET_CYTHON_VS_PYTHON)}   "
              f"(Cython {t_cy * 1e6:.0f} µs, pure Python {t_py * 1e6:.0f} µs);"
              f"  values (decode + every value as Python objects): {values:.2f}x, no target")
    print(f"\n{misses} target(s) missed; total run time {time.perf_counter() - started:.1f} s")
    return 1 if misses and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
