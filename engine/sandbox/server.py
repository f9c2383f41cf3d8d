"""The sandbox's WebSocket server: taosAdapter's ``/ws``, ``/rest/ws`` and ``/rest/tmq`` on uvloop.

:class:`Sandbox` runs the server in a background thread with its own event loop, so a test (or
``taosws`` in the main thread) can talk to it; :func:`serve_forever` runs it in the current loop
for ``tdsync sandbox``; :func:`cli_main` is that command's argument handling.

The wire protocol lives in :mod:`engine.sandbox.protocol`; this module only routes sockets by
path (query strings such as ``?token=...`` are ignored), answers other paths with HTTP 404 (the
Rust client then falls back to ``/rest/ws``), and feeds frames to the protocol objects.
permessage-deflate is offered, as taosAdapter does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request, Response

from engine.sandbox.protocol import ServerContext, SqlConnection, TmqConnection

log = logging.getLogger("tdsync.sandbox.server")

SQL_PATHS = ("/ws", "/rest/ws")
TMQ_PATHS = ("/rest/tmq",)
DEFAULT_MAX_MESSAGE = 1 << 30        # taosAdapter has no limit; raw writes can be large

EngineFactory = Callable[[Path, str, str], Any]
TmqFactory = Callable[[Any], Any]


def _default_engine(data_dir: Path, user: str, password: str) -> Any:
    from engine.sandbox.engine import SandboxEngine

    return SandboxEngine(data_dir, user=user, password=password)


def _default_tmq(engine: Any) -> Any:
    try:
        from engine.sandbox.tmq import TmqService
    except ImportError:           # not there yet: /rest/tmq answers subscribe with an error
        log.warning("engine.sandbox.tmq is not available; TMQ subscribe will fail")
        return None
    return TmqService(engine)


def load_factory(spec: str) -> Callable[..., Any]:
    """``"package.module:attribute"`` -> the attribute (for factories named on a command line)."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"factory must be 'module:attribute', got {spec!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _utf8_safe(text: str) -> str:
    """``text`` with lone surrogates as U+FFFD, as Go's encoding/json reads a ``"\\ud800"`` escape.

    A request can smuggle one in that way and an answer may echo it (an error message quoting the
    SQL); websockets cannot encode it and would drop the connection.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _path_of(request_path: str) -> str:
    path = request_path.split("?", 1)[0].rstrip("/")
    return path or "/"


class _App:
    """Routes sockets to protocol objects; one per running server."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.connections: set[SqlConnection | TmqConnection] = set()

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = _path_of(request.path)
        if path in SQL_PATHS or path in TMQ_PATHS:
            return None
        return connection.respond(404, "404 page not found\n")

    async def handler(self, websocket: ServerConnection) -> None:
        path = _path_of(websocket.request.path if websocket.request else "/ws")

        async def send(frame: str | bytes) -> None:
            if isinstance(frame, str) and not frame.isascii():
                frame = _utf8_safe(frame)
            with contextlib.suppress(ConnectionClosed):
                await websocket.send(frame)

        conn: SqlConnection | TmqConnection
        conn = TmqConnection(self.ctx, send) if path in TMQ_PATHS else SqlConnection(self.ctx, send)
        self.connections.add(conn)
        try:
            async for frame in websocket:
                t0 = time.perf_counter_ns()
                try:
                    if isinstance(frame, str):
                        await conn.on_text(frame, t0)
                    else:
                        await conn.on_binary(frame, t0)
                except ConnectionClosed:
                    break
                except Exception:  # noqa: BLE001 - a bug must not take the socket down
                    log.exception("unhandled error in %s", type(conn).__name__)
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(conn)
            await conn.close()

    async def close_all(self) -> None:
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await conn.close()


async def start_server(ctx: ServerContext, host: str, port: int, *,
                       max_message_size: int | None = DEFAULT_MAX_MESSAGE) -> tuple[Server, _App]:
    app = _App(ctx)
    server = await serve(
        app.handler, host, port,
        process_request=app.process_request,
        # permessage-deflate as gorilla/websocket (taosAdapter) negotiates it: no context takeover either
        # way, default window. websockets' default answer (server_max_window_bits=12) is refused by the
        # Rust client ("Extension negotiation failed").
        compression=None,
        extensions=[ServerPerMessageDeflateFactory(server_no_context_takeover=True,
                                                   client_no_context_takeover=True)],
        max_size=max_message_size,
        max_queue=64,
        ping_interval=54, ping_timeout=60,          # melody's defaults (taosAdapter)
        # The Rust client never flushes its answer to a server's close frame unless it writes something
        # else (taosAdapter never closes first), so don't wait long for it at shutdown.
        close_timeout=0.5,
        server_header=None,
    )
    sock = next(iter(server.sockets))
    bound = sock.getsockname()
    ctx.listen_address = f"{bound[0]}:{bound[1]}"
    return server, app


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.new_event_loop()


class Sandbox:
    """A sandbox server in a background thread (default) or in a child process.

    >>> sb = Sandbox(tmp_path, process=True).start()
    >>> conn = taosws.connect(sb.dsn); ...; sb.stop()

    ``engine_factory(data_dir, user, password)`` and ``tmq_factory(engine)`` default to the real
    :class:`engine.sandbox.engine.SandboxEngine` and :class:`engine.sandbox.tmq.TmqService`; in thread
    mode both are created and used only on the server thread. ``version`` overrides the version string
    the server announces (clients switch features on it: below 3.3.2.0 taos-ws uses JSON query/fetch).

    ``process=True`` runs ``python -m engine.sandbox`` instead of a thread. Use it with ``taosws``:
    taos-ws-py keeps the GIL while it waits for the server, so a server thread in the same process
    would never get to answer. Factories are then given as ``"module:attribute"`` strings.
    """

    def __init__(self, data_dir: Path | str, host: str = "127.0.0.1", port: int = 0, user: str = "root",
                 password: str = "taosdata", *, version: str | None = None,
                 engine_factory: EngineFactory | str | None = None, tmq_factory: TmqFactory | str | None = None,
                 max_message_size: int | None = DEFAULT_MAX_MESSAGE, process: bool = False,
                 trace_file: Path | str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.version = version
        self.process = process
        self._engine_spec = engine_factory if isinstance(engine_factory, str) else None
        self._tmq_spec = tmq_factory if isinstance(tmq_factory, str) else None
        if process and (callable(engine_factory) or callable(tmq_factory)):
            raise ValueError("process mode takes factories as 'module:attribute' strings")
        self.engine_factory: EngineFactory = (load_factory(engine_factory) if isinstance(engine_factory, str)
                                              else engine_factory or _default_engine)
        self.tmq_factory: TmqFactory = (load_factory(tmq_factory) if isinstance(tmq_factory, str)
                                        else tmq_factory or _default_tmq)
        self.max_message_size = max_message_size
        self.trace_file = Path(trace_file) if trace_file else None
        self._proc: subprocess.Popen | None = None
        self.engine: Any = None
        self.tmq: Any = None
        self.ctx: ServerContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def dsn(self) -> str:
        return f"ws://{self.user}:{self.password}@{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> Sandbox:
        if self._thread is not None or self._proc is not None:
            raise RuntimeError("sandbox already started")
        if self.process:
            return self._start_process(timeout)
        self._thread = threading.Thread(target=self._run, name=f"tdsync-sandbox-{id(self):x}", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("sandbox did not start")
        if self._error is not None:
            self._thread.join(5)
            self._thread = None
            raise self._error
        return self

    def _start_process(self, timeout: float) -> Sandbox:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "engine.sandbox", "--listen", f"{self.host}:{self.port}",
                "--data-dir", str(self.data_dir), "--user", self.user, "--password", self.password]
        if self.version:
            argv += ["--server-version", self.version]
        if self._engine_spec:
            argv += ["--engine-factory", self._engine_spec]
        if self._tmq_spec:
            argv += ["--tmq-factory", self._tmq_spec]
        if self.trace_file:
            argv += ["--trace-file", str(self.trace_file)]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        argv.append("--exit-on-stdin-eof")       # no orphan server if this process dies without stop()
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env,
                                      text=True)
        deadline = time.monotonic() + timeout
        assert self._proc.stdout is not None
        while True:
            line = self._proc.stdout.readline()
            if not line:
                code = self._proc.wait(5)
                self._proc = None
                raise RuntimeError(f"sandbox process exited with {code} before listening")
            if "listening on ws://" in line:
                address = line.split("ws://", 1)[1].split()[0]
                self.port = int(address.rsplit(":", 1)[1])
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("sandbox process did not start")

    def stop(self, timeout: float = 30.0) -> None:
        proc = self._proc
        if proc is not None:
            self._proc = None
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            return
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if self._stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stop.set)
        thread.join(timeout)
        self._thread = None

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
        """Run ``fn(*args)`` on the server thread (engine objects belong to it) and return its result."""
        if self._loop is None or self.process:
            raise RuntimeError("sandbox not started")

        async def run() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = _new_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001
            if not self._started.is_set():
                self._error = exc
            else:
                log.exception("sandbox server stopped with an error")
        finally:
            self._started.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()

        def created(engine: Any, tmq: Any, ctx: ServerContext) -> None:
            self.engine, self.tmq, self.ctx = engine, tmq, ctx

        def ready(address: str) -> None:
            self.port = int(address.rsplit(":", 1)[1])
            self._started.set()

        await serve_forever(self.data_dir, self.host, self.port, user=self.user, password=self.password,
                            version=self.version, stop=self._stop, ready=ready, created=created,
                            engine_factory=self.engine_factory, tmq_factory=self.tmq_factory,
                            trace_file=self.trace_file, max_message_size=self.max_message_size)


async def purge_wal_periodically(engine: Any, interval: float = 1.0) -> None:
    """TDengine drops WAL entries older than WAL_RETENTION_PERIOD; the sandbox checks every second."""
    purge = getattr(engine, "purge_wal", None)
    if purge is None:
        return
    while True:
        await asyncio.sleep(interval)
        try:
            purge()
        except Exception:  # noqa: BLE001 - retention must never take the server down
            log.exception("WAL purge failed")


def _file_tracer(path: Path) -> Callable[[str, str], None]:
    def trace(endpoint: str, action: str) -> None:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{endpoint} {action}\n")

    return trace


async def serve_forever(data_dir: Path | str, host: str = "127.0.0.1", port: int = 6041, *, user: str = "root",
                        password: str = "taosdata", version: str | None = None,
                        stop: asyncio.Event | None = None, ready: Callable[[str], None] | None = None,
                        engine_factory: EngineFactory | None = None, tmq_factory: TmqFactory | None = None,
                        trace_file: Path | str | None = None,
                        created: Callable[[Any, Any, ServerContext], None] | None = None,
                        max_message_size: int | None = DEFAULT_MAX_MESSAGE) -> None:
    """Run the sandbox in the current event loop until ``stop`` is set (or the task is cancelled).

    ``created(engine, tmq, ctx)`` sees the objects before the server listens; ``ready(address)``
    is called once it does.
    """
    engine = (engine_factory or _default_engine)(Path(data_dir), user, password)
    tmq = None
    try:
        tmq = (tmq_factory or _default_tmq)(engine)
        ctx = ServerContext(engine, tmq, version=version)
        ctx.trace = _file_tracer(Path(trace_file)) if trace_file else None
        if created is not None:
            created(engine, tmq, ctx)
        server, app = await start_server(ctx, host, port, max_message_size=max_message_size)
        if ready is not None:
            ready(ctx.listen_address or f"{host}:{port}")
        purger = asyncio.ensure_future(purge_wal_periodically(engine))
        try:
            await (stop.wait() if stop is not None else asyncio.Future())
        finally:
            purger.cancel()
            server.close(close_connections=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 10)
            await app.close_all()
    finally:
        for obj in (tmq, engine):
            close = getattr(obj, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"--listen must be HOST:PORT, got {text!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def build_parser(prog: str = "tdsync sandbox") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run an embedded TDengine 3.3 peer that speaks the taosAdapter WebSocket protocol "
                    "(/ws for SQL and raw writes, /rest/tmq for TMQ).")
    parser.add_argument("--listen", type=_parse_listen, default=("127.0.0.1", 6041), metavar="HOST:PORT",
                        help="address to listen on (default 127.0.0.1:6041)")
    parser.add_argument("--data-dir", required=True, type=Path, metavar="DIR",
                        help="directory of the sandbox's databases (created if missing)")
    parser.add_argument("--user", default="root", help="the one user (default root)")
    parser.add_argument("--password", default="taosdata", help="its password (default taosdata)")
    parser.add_argument("--server-version", default=None, metavar="VERSION",
                        help="version string to announce (default the engine's, 3.3.7.5)")
    parser.add_argument("--log-level", default="WARNING", help="Python logging level (default WARNING)")
    parser.add_argument("--engine-factory", default=None, help=argparse.SUPPRESS)   # tests: module:attr
    parser.add_argument("--tmq-factory", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--trace-file", default=None, help=argparse.SUPPRESS)      # tests: actions served
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)   # Sandbox(process=True)
    return parser


def cli_main(argv: list[str] | None = None) -> int:
    """``tdsync sandbox --listen 127.0.0.1:6041 --data-dir DIR [--user root --password taosdata]``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = args.listen
    args.data_dir.mkdir(parents=True, exist_ok=True)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()

    def ready(address: str) -> None:
        print(f"tdsync sandbox listening on ws://{address} (data dir {args.data_dir})", flush=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if args.exit_on_stdin_eof:
        fd = sys.stdin.fileno()

        def on_stdin() -> None:
            if not os.read(fd, 4096):
                loop.remove_reader(fd)
                stop.set()

        loop.add_reader(fd, on_stdin)
    try:
        engine_factory = load_factory(args.engine_factory) if args.engine_factory else None
        tmq_factory = load_factory(args.tmq_factory) if args.tmq_factory else None
        loop.run_until_complete(serve_forever(args.data_dir, host, port, user=args.user, password=args.password,
                                              version=args.server_version, stop=stop, ready=ready,
                                              engine_factory=engine_factory, tmq_factory=tmq_factory,
                                              trace_file=args.trace_file))
    except OSError as exc:
        print(f"tdsync sandbox: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli_main())
