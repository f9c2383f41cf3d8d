"""Failback: while a connection runs on another node, watch the primary until it has been healthy long enough.

A daemon thread probes the primary every ``period`` seconds (``Driver.probe``: for WebSocket a
pure-Python ``version`` + ``conn`` exchange, so the probe never holds the GIL the way ``taosws``
does while it waits). :meth:`FailbackWatch.ready` turns true once every probe for
``failback_interval_s`` has succeeded; any failure restarts the clock. The switch itself is made
by the connection, in the caller's thread, at the start of its next call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("tdsync.client")


class FailbackWatch:
    def __init__(self, probe: Callable[[], None], hold_s: float, period_s: float, label: str) -> None:
        self._probe = probe
        self.hold_s = hold_s
        self.period_s = period_s
        self.label = label
        self._healthy_since: float | None = None
        self.last_error: str | None = None
        self.probes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tdsync-failback-{label}", daemon=True)

    def start(self) -> FailbackWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def ready(self) -> bool:
        since = self._healthy_since
        return since is not None and time.monotonic() - since >= self.hold_s

    def healthy_for(self) -> float:
        since = self._healthy_since
        return 0.0 if since is None else time.monotonic() - since

    def reset(self) -> None:
        """The switch back failed after all: start counting again."""
        self._healthy_since = None

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._probe()
            except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
                if self._healthy_since is not None:
                    log.info("failback: primary %s failed a health probe (%s); waiting again", self.label, exc)
                self._healthy_since = None
                self.last_error = str(exc)
            else:
                if self._healthy_since is None:
                    self._healthy_since = started
                    log.info("failback: primary %s answers again; switching back after %g s of health",
                             self.label, self.hold_s)
            self.probes += 1
            self._stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))
