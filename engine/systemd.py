"""systemd's notify protocol (sd_notify(3)) spoken directly over ``$NOTIFY_SOCKET``, without libsystemd.

A ``Type=notify`` service tells systemd it is ready (``READY=1``), that its main loop is alive
(``WATCHDOG=1``, at least every ``WatchdogSec``; systemd passes that period as ``$WATCHDOG_USEC``),
what it is doing (``STATUS=...``, shown by ``systemctl status``) and that it is stopping
(``STOPPING=1``). Each notification is one datagram of newline-separated ``KEY=VALUE`` lines sent
to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace).

Without ``$NOTIFY_SOCKET`` (run by hand, in a container) every call is a cheap no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

__all__ = ["notify", "watchdog_period", "Notifier"]

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
# Variables a child process must not inherit: it is not the service's main process.
SYSTEMD_ENV = (NOTIFY_SOCKET_ENV, WATCHDOG_USEC_ENV, WATCHDOG_PID_ENV)


def _address(environ: Mapping[str, str]) -> str | None:
    address = environ.get(NOTIFY_SOCKET_ENV, "")
    if address.startswith("@"):
        return "\0" + address[1:]                       # abstract namespace
    if address.startswith("/"):
        return address
    return None                                         # unset, or a transport we do not speak (vsock)


def notify(*assignments: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``KEY=VALUE`` lines in one datagram; ``True`` if one was sent (never raises)."""
    address = _address(os.environ if environ is None else environ)
    if address is None or not assignments:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(assignments).encode())
    except OSError:
        return False
    return True


def watchdog_period(environ: Mapping[str, str] | None = None) -> float | None:
    """``WatchdogSec`` in seconds when systemd expects ``WATCHDOG=1`` from this process, else ``None``."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get(WATCHDOG_USEC_ENV, ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get(WATCHDOG_PID_ENV)
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None                                     # meant for another process
    return usec / 1_000_000


class Notifier:
    """What ``tdsync serve`` tells systemd: ready once, watchdog pings, status lines only when they change."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self._environ = env
        self.enabled = _address(env) is not None
        period = watchdog_period(env)
        # Ping at a third of the period: one late loop turn must not look like a hang.
        self.watchdog_interval = period / 3 if period else None
        self._last_ping = float("-inf")
        self._status: str | None = None
        self.sent: list[str] = []           # what was sent, newest last (kept short; for logs and tests)

    def _send(self, *assignments: str) -> bool:
        if not self.enabled:
            return False
        ok = notify(*assignments, environ=self._environ)
        if ok:
            self.sent.append("\n".join(assignments))
            del self.sent[:-20]
        return ok

    def ready(self, status: str | None = None) -> bool:
        if status is not None:
            self._status = status
            return self._send("READY=1", f"STATUS={status}")
        return self._send("READY=1")

    def status(self, text: str) -> bool:
        if text == self._status:
            return False
        self._status = text
        return self._send(f"STATUS={text}")

    def watchdog(self, now: float | None = None) -> bool:
        """``WATCHDOG=1`` if systemd asked for it and a third of the period has passed since the last ping."""
        if self.watchdog_interval is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < self.watchdog_interval:
            return False
        self._last_ping = now
        return self._send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self._send("STOPPING=1", *([f"STATUS={status}"] if status else []))
