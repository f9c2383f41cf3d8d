"""sd_notify over a real AF_UNIX datagram socket: the helpers, then ``tdsync serve`` as systemd sees it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from engine.replication.state import StateStore
from engine.systemd import Notifier, notify, watchdog_period
from tests.e2e.conftest import ROOT, child_env, free_port


@pytest.fixture
def notify_socket(tmp_path):
    """A bound datagram socket standing in for systemd's; yields (address for $NOTIFY_SOCKET, socket)."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def receive_all(sock: socket.socket, until, timeout: float = 10.0) -> list[str]:
    """Datagrams until ``until(messages)`` is true (or fail after ``timeout``)."""
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while not until(messages):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"timed out; got {messages}")
        sock.settimeout(remaining)
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            pytest.fail(f"timed out; got {messages}")
    return messages


def test_notify_sends_one_datagram_of_assignments(notify_socket):
    address, sock = notify_socket
    assert notify("READY=1", "STATUS=loaded", environ={"NOTIFY_SOCKET": address})
    assert sock.recv(4096) == b"READY=1\nSTATUS=loaded"


def test_notify_to_an_abstract_socket():
    name = f"tdsync-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notify("WATCHDOG=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_without_a_socket_is_a_no_op(tmp_path):
    assert not notify("READY=1", environ={})
    assert not notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "absent.sock")})   # never raises
    assert not notify("READY=1", environ={"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not Notifier(environ={}).ready("x")


def test_watchdog_period():
    assert watchdog_period({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_period({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}) == 2.0
    assert watchdog_period({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_period({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_period({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_period({}) is None


def test_notifier_dedups_status_and_paces_the_watchdog(notify_socket):
    address, sock = notify_socket
    notifier = Notifier(environ={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000"})
    assert notifier.watchdog_interval == 1.0
    assert notifier.ready("0 tasks")
    assert sock.recv(4096) == b"READY=1\nSTATUS=0 tasks"
    assert not notifier.status("0 tasks")                    # unchanged: not sent again
    assert notifier.status("1 task")
    assert sock.recv(4096) == b"STATUS=1 task"
    assert notifier.watchdog(now=100.0)
    assert not notifier.watchdog(now=100.5)                  # within a third of the period
    assert notifier.watchdog(now=101.0)
    assert sock.recv(4096) == b"WATCHDOG=1" and sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping("bye")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=bye"
    assert not Notifier(environ={"NOTIFY_SOCKET": address}).watchdog()     # no WATCHDOG_USEC: never


def test_serve_speaks_the_notify_protocol(notify_socket, tmp_path):
    address, sock = notify_socket
    state_dir = tmp_path / "state"
    env = child_env()
    env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="1500000")
    log = open(tmp_path / "serve.log", "w", encoding="utf-8")          # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--state-dir", str(state_dir)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    try:
        started = time.monotonic()
        got = receive_all(sock, lambda m: any(x.startswith("READY=1") for x in m))
        ready = next(x for x in got if x.startswith("READY=1"))
        assert "STATUS=0 task(s): 0 running, 0 interrupted, 0 stopped; 0 worker(s)" in ready, ready
        assert time.monotonic() - started < 10
        got = receive_all(sock, lambda m: m.count("WATCHDOG=1") >= 3, timeout=5)    # every 0.5 s
        assert set(got) == {"WATCHDOG=1"}, got

        # A task whose source cannot be reached yet: one worker runs (and keeps retrying); STATUS says so.
        with StateStore(state_dir) as store:
            dead = f"ws://127.0.0.1:{free_port()}"
            replica = store.create_replica(dead, dead, ["d"])
            store.add_tasks(replica.id, ["d"])
        got = receive_all(sock, lambda m: any("1 running" in x and "1 worker(s)" in x for x in m), timeout=15)
        status = next(x for x in got if "1 running" in x)
        assert status == "STATUS=1 task(s): 1 running, 0 interrupted, 0 stopped; 1 worker(s)", status
        [child] = psutil.Process(proc.pid).children()
        assert "NOTIFY_SOCKET" not in child.environ()            # the workers are not the service's main process

        time.sleep(3.0)                                          # well into its retry back-off
        assert child.is_running()
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        got = receive_all(sock, lambda m: any(x.startswith("STOPPING=1") for x in m))
        assert proc.wait(15) == 0
        assert time.monotonic() - asked < 10                     # the retrying worker does not hold it up
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
