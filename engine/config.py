"""tdsync's configuration file (TOML): state directory, log level, batch limits, default credentials.

Looked for, first found: ``--config FILE``, ``$TDSYNC_CONFIG``, ``/etc/tdsync/tdsync.toml`` (only
if it exists; without any file the built-in defaults apply). ``--state-dir`` and then
``$TDSYNC_STATE_DIR`` win over the file's ``state_dir``. Every key is optional; an unknown key or a
value of the wrong kind is an error naming the file and the key (``tdsync serve --check-config``).

.. code-block:: toml

    state_dir = "/var/lib/tdsync"
    log_level = "info"                  # debug, info, warning, error

    [batch]                             # when a worker writes its batch: whichever comes first
    max_rows = 20000
    max_bytes = 2097152
    max_age = 0.1                       # seconds

    [credentials]                       # for endpoints written without user / password
    user = "root"
    password = "taosdata"               # or: password_file = "/etc/tdsync/password"

    [supervisor]
    heartbeat_timeout = 30              # s without a heartbeat before a worker is killed and restarted
    stop_timeout = 10                   # s a worker has to flush and store its offsets on stop
    restart_backoff_initial = 1         # s before the first restart of a crashed worker, doubled ...
    restart_backoff_max = 60            # ... up to this
    max_failures = 5                    # crashes within failure_window that interrupt the task
    failure_window = 300                # s
    vgroup_check_interval = 60          # s between checks of a source database's vgroups
"""

from __future__ import annotations

import math
import os
import socket
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.endpoint import MAX_PASSWORD_BYTES, MAX_USER_BYTES, Endpoint, read_password_file
from engine.errors import ConfigError, ConfigFileUnreadable, EndpointError
from engine.replication.batch import BatchLimits
from engine.replication.state import DEFAULT_STATE_DIR

__all__ = ["Config", "Credentials", "SupervisorSettings", "load_config", "DEFAULT_CONFIG_PATH", "CONFIG_ENV",
           "STATE_DIR_ENV", "LOG_LEVELS"]

DEFAULT_CONFIG_PATH = Path("/etc/tdsync/tdsync.toml")
CONFIG_ENV = "TDSYNC_CONFIG"
STATE_DIR_ENV = "TDSYNC_STATE_DIR"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class Credentials:
    """Defaults for endpoints that do not name a user or a password themselves."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None

    def resolve(self, text: str) -> Endpoint:
        """Parse an endpoint, filling in the user and password it does not give."""
        password = self.password
        if password is None and self.password_file is not None:
            password = read_password_file(self.password_file)
        endpoint = Endpoint.parse(text, password=password)
        if self.user and not _names_user(text):
            endpoint = replace(endpoint, user=self.user)
        return endpoint

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "password": self.password,
                "password_file": str(self.password_file) if self.password_file else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Credentials:
        return cls(data.get("user"), data.get("password"),
                   Path(data["password_file"]) if data.get("password_file") else None)


def _names_user(text: str) -> bool:
    rest = text.strip().partition("://")[2] or text.strip()
    userinfo, at, _ = rest.rpartition("@")
    return bool(at and userinfo.partition(":")[0])


@dataclass(frozen=True)
class SupervisorSettings:
    heartbeat_timeout: float = 30.0
    stop_timeout: float = 10.0
    restart_backoff_initial: float = 1.0
    restart_backoff_max: float = 60.0
    max_failures: int = 5
    failure_window: float = 300.0
    vgroup_check_interval: float = 60.0

    def backoff(self, failures: int) -> float:
        """Delay before restarting a worker after its ``failures``-th crash in a row (1 s, 2 s, 4 s ... cap)."""
        exponent = max(0, failures - 1)
        return min(self.restart_backoff_max, self.restart_backoff_initial * (2 ** min(exponent, 30)))


@dataclass(frozen=True)
class Config:
    path: Path | None = None                 # the file it came from (None: built-in defaults)
    state_dir: Path = DEFAULT_STATE_DIR
    state_dir_from: str = "default"          # default | file | env | option
    log_level: str = "info"
    node: str = field(default_factory=socket.gethostname)     # WorkerInfo.host; not a file key
    batch: BatchLimits = field(default_factory=BatchLimits)
    credentials: Credentials = field(default_factory=Credentials)
    supervisor: SupervisorSettings = field(default_factory=SupervisorSettings)

    def describe(self) -> str:
        source = str(self.path) if self.path else "built-in defaults"
        return (f"{source}: state dir {self.state_dir} (from the {self.state_dir_from}), log level {self.log_level}, "
                f"node {self.node}, batches of up to {self.batch.max_rows} rows / {self.batch.max_bytes} bytes / "
                f"{self.batch.max_age:g} s, heartbeat timeout {self.supervisor.heartbeat_timeout:g} s")


# --- loading -----------------------------------------------------------------------------------
def config_path(option: str | os.PathLike | None, environ: dict[str, str] | None = None) -> tuple[Path | None, bool]:
    """(the file to read, whether it must exist): ``--config``, ``$TDSYNC_CONFIG``, else the default if present."""
    env = os.environ if environ is None else environ
    if option:
        return Path(option), True
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]), True
    return (DEFAULT_CONFIG_PATH, False) if DEFAULT_CONFIG_PATH.exists() else (None, False)


def load_config(option: str | os.PathLike | None = None, *, state_dir: str | os.PathLike | None = None,
                environ: dict[str, str] | None = None) -> Config:
    """The configuration ``tdsync serve`` runs with (see the module documentation for the order)."""
    env = os.environ if environ is None else environ
    path, required = config_path(option, env)
    data: dict[str, Any] = {}
    if path is not None:
        data = _read(path, required)
    config = _parse(data, path) if data or path is not None else Config()
    if state_dir:
        config = replace(config, state_dir=Path(state_dir), state_dir_from="option")
    elif env.get(STATE_DIR_ENV):
        config = replace(config, state_dir=Path(env[STATE_DIR_ENV]), state_dir_from="env")
    return config


def _read(path: Path, required: bool) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if not required:
            return {}
        raise ConfigFileUnreadable(str(path), "no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigFileUnreadable(str(path), exc.strerror or str(exc)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), None, f"invalid TOML: {exc}") from None


class _Reader:
    """Takes typed values out of one TOML table, naming the dotted key in every error."""

    def __init__(self, path: str, table: dict[str, Any], prefix: str = "") -> None:
        self.path = path
        self.table = table
        self.prefix = prefix
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def error(self, name: str, reason: str) -> ConfigError:
        return ConfigError(self.path, self.key(name), reason)

    def _get(self, name: str) -> Any:
        self.used.add(name)
        return self.table.get(name)

    def string(self, name: str, default: str | None, choices: tuple[str, ...] | None = None) -> str | None:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise self.error(name, f"must be a non-empty string, got {_show(value)}")
        if choices is not None and value.lower() not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {_show(value)}")
        return value.lower() if choices is not None else value

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(name, f"must be an integer, got {_show(value)}")
        if value < minimum:
            raise self.error(name, f"must be at least {minimum}, got {value}")
        return value

    def seconds(self, name: str, default: float, minimum: float = 0.0, *, above: bool = True) -> float:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise self.error(name, f"must be a number of seconds, got {_show(value)}")
        if value < minimum or (above and value <= minimum):
            raise self.error(name, f"must be {'greater than' if above else 'at least'} {minimum:g}, got {value}")
        return float(value)

    def table_of(self, name: str) -> _Reader:
        value = self._get(name)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(name, f"must be a table ([{self.key(name)}]), got {_show(value)}")
        return _Reader(self.path, value, f"{self.key(name)}.")

    def no_unknown_keys(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used))
            raise self.error(unknown[0], f"unknown key (known here: {known})")


def _show(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "a table",
            list: "an array"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def _parse(data: dict[str, Any], path: Path | None) -> Config:
    top = _Reader(str(path) if path else "<defaults>", data)
    defaults = Config()
    state_dir = top.string("state_dir", None)
    log_level = top.string("log_level", defaults.log_level, LOG_LEVELS)

    batch = top.table_of("batch")
    limits = BatchLimits(batch.integer("max_rows", BatchLimits.max_rows),
                         batch.integer("max_bytes", BatchLimits.max_bytes, minimum=1024),
                         batch.seconds("max_age", BatchLimits.max_age))
    batch.no_unknown_keys()

    creds = top.table_of("credentials")
    user = creds.string("user", None)
    password = creds.string("password", None)
    password_file = creds.string("password_file", None)
    if user is not None and (len(user.encode()) > MAX_USER_BYTES or any(c.isspace() or c in ":@" for c in user)):
        raise creds.error("user", f"must be at most {MAX_USER_BYTES} bytes without spaces, ':' or '@'")
    if password is not None and len(password.encode()) > MAX_PASSWORD_BYTES:
        raise creds.error("password", f"must be at most {MAX_PASSWORD_BYTES} bytes")
    if password is not None and password_file is not None:
        raise creds.error("password_file", "give either password or password_file, not both")
    if password_file is not None:
        try:
            read_password_file(password_file)
        except EndpointError as exc:
            raise creds.error("password_file", str(exc)) from None
    creds.no_unknown_keys()

    sup = top.table_of("supervisor")
    base = SupervisorSettings()
    settings = SupervisorSettings(
        heartbeat_timeout=sup.seconds("heartbeat_timeout", base.heartbeat_timeout),
        stop_timeout=sup.seconds("stop_timeout", base.stop_timeout),
        restart_backoff_initial=sup.seconds("restart_backoff_initial", base.restart_backoff_initial),
        restart_backoff_max=sup.seconds("restart_backoff_max", base.restart_backoff_max),
        max_failures=sup.integer("max_failures", base.max_failures),
        failure_window=sup.seconds("failure_window", base.failure_window),
        vgroup_check_interval=sup.seconds("vgroup_check_interval", base.vgroup_check_interval),
    )
    if settings.restart_backoff_max < settings.restart_backoff_initial:
        raise sup.error("restart_backoff_max", f"must be at least restart_backoff_initial "
                                               f"({settings.restart_backoff_initial:g}), got "
                                               f"{settings.restart_backoff_max:g}")
    sup.no_unknown_keys()
    top.no_unknown_keys()
    return Config(path=path, state_dir=Path(state_dir) if state_dir else defaults.state_dir,
                  state_dir_from="file" if state_dir else "default", log_level=log_level,
                  batch=limits,
                  credentials=Credentials(user, password, Path(password_file) if password_file else None),
                  supervisor=settings)
