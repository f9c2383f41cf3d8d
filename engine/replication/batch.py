"""A vgroup's pending data messages, merged into one raw write when a limit is reached."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from engine.codec import RawDataMessage, merge_messages


@dataclass(frozen=True)
class BatchLimits:
    """When to flush: whichever of rows, bytes or age is reached first.

    Bytes bound a worker's memory (a backlog never makes a batch bigger); age bounds latency.
    The defaults come from bench/replication_bench.py: 10k-100k-row batches replicate at about the
    same speed into a sandbox, smaller ones overlap polling and writing better, and 32 MB batches
    are slower and double the memory.
    """

    max_rows: int = 20_000
    max_bytes: int = 2 * 1024 * 1024
    max_age: float = 0.1


@dataclass
class Batch:
    vgroup_id: int
    messages: list[RawDataMessage] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    started: float = 0.0

    def add(self, message: RawDataMessage) -> None:
        if not self.messages:
            self.started = time.monotonic()
        self.messages.append(message)
        self.rows += message.num_rows
        self.nbytes += message.nbytes

    def __bool__(self) -> bool:
        return bool(self.messages)

    def full(self, limits: BatchLimits) -> bool:
        return self.rows >= limits.max_rows or self.nbytes >= limits.max_bytes

    def due(self, limits: BatchLimits, now: float | None = None) -> bool:
        return bool(self.messages) and ((now or time.monotonic()) - self.started >= limits.max_age or
                                        self.full(limits))

    def merged(self) -> RawDataMessage:
        """One message: first request offset, last response offset, blocks in poll order."""
        return self.messages[0] if len(self.messages) == 1 else merge_messages(self.messages)

    def clear(self) -> None:
        self.messages.clear()
        self.rows = self.nbytes = 0
