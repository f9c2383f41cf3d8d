"""Settings of the failover client: a DSN with one or more hosts, keyword arguments, the seed's names.

A DSN names every node, primary first::

    ws://user:password@td1:6041,td2:6041/db?reconnect_interval_ms=2000&reconnect_retry_count=3
    taos://root@td1:6030,td2:6030/db                     (native: taospy + libtaos)

``wss://`` (TLS), ``http(s)://`` and ``taos+ws(s)://`` and ``taosws://`` are accepted as for
:mod:`engine.endpoint`; a host without a scheme is native unless its port is 6041. The secondary
can also be given apart, as the seed's Java driver does (``secondary="td2:6041"`` or
``secondary_host``/``secondary_port``, alias ``slave_cluster_host``/``slave_cluster_port``); it
inherits the primary's scheme and credentials unless it is a full URL.

Settings come from the DSN's query string and from keyword arguments (which win). Each has the
seed's JDBC property name as an alias (``enableAutoReconnect``, ``reconnectIntervalMs``,
``reconnectRetryCount``, ``slaveClusterHost``, ``slaveClusterPort``). Anything else is handed to
the wrapped connector unchanged (``timezone``, ``conn_timeout``, ``read_timeout``, ... for
``taosws``; ``config``, ``timezone``, ... for ``taos``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from engine.endpoint import NATIVE_PORT, WS_PORT, Endpoint, redact
from engine.errors import ClientSettingsError, EndpointError

DEFAULT_INTERVAL_MS = 2000
DEFAULT_RETRY_COUNT = 3

# canonical name -> accepted spellings (DSN query keys and keyword arguments)
ALIASES: dict[str, tuple[str, ...]] = {
    "secondary": ("secondary",),
    "secondary_host": ("secondary_host", "slave_cluster_host", "slaveClusterHost"),
    "secondary_port": ("secondary_port", "slave_cluster_port", "slaveClusterPort"),
    "auto_reconnect": ("auto_reconnect", "enable_auto_reconnect", "enableAutoReconnect"),
    "reconnect_interval_ms": ("reconnect_interval_ms", "reconnectIntervalMs"),
    "reconnect_retry_count": ("reconnect_retry_count", "reconnectRetryCount"),
    "failback_interval_s": ("failback_interval_s", "failbackIntervalS"),
    "user": ("user", "username"),
    "password": ("password", "pass"),
    "database": ("database", "db"),
}
_CANONICAL = {alias: name for name, aliases in ALIASES.items() for alias in aliases}
_SCHEME_ALIASES = {"taosws": "ws", "taoswss": "wss"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ClientSettings:
    """Everything :func:`engine.client.connect` needs, validated. ``nodes[0]`` is the primary."""

    nodes: tuple[Endpoint, ...]
    database: str | None = None
    auto_reconnect: bool = True
    reconnect_interval_ms: int = DEFAULT_INTERVAL_MS
    reconnect_retry_count: int = DEFAULT_RETRY_COUNT
    failback_interval_s: float | None = None          # None: no failback
    connector_options: dict[str, Any] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return self.nodes[0].protocol

    @property
    def interval_s(self) -> float:
        return self.reconnect_interval_ms / 1000.0

    def describe(self) -> str:
        """One line for logs: the nodes (redacted) and the retry policy."""
        nodes = ", ".join(str(node) for node in self.nodes)
        failback = f"{self.failback_interval_s:g} s" if self.failback_interval_s is not None else "off"
        return (f"nodes [{nodes}], database {self.database or '-'}, auto_reconnect {self.auto_reconnect}, "
                f"reconnect_interval_ms {self.reconnect_interval_ms}, reconnect_retry_count "
                f"{self.reconnect_retry_count}, failback {failback}")


def parse_settings(dsn: str | None = None, options: Mapping[str, Any] | None = None,
                   environ: Mapping[str, str] | None = None) -> ClientSettings:
    """Build :class:`ClientSettings` from a DSN and keyword options; raise :class:`ClientSettingsError`."""
    raw: dict[str, Any] = {}
    passthrough: dict[str, Any] = {}
    hosts: list[str] = []
    scheme = userinfo = ""
    dsn_db: str | None = None
    shown = redact(dsn) if isinstance(dsn, str) else ""
    if dsn is not None:
        if not isinstance(dsn, str):
            raise ClientSettingsError(f"the DSN must be text, got {type(dsn).__name__}")
        scheme, userinfo, hosts, dsn_db, query = _split_dsn(dsn.strip(), shown)
        for key, value in query:
            _put(raw, passthrough, key, value)
    for key, value in (options or {}).items():
        if key in _CANONICAL:
            raw.pop(_CANONICAL[key], None)        # a keyword argument wins over the DSN
        elif key in passthrough:
            passthrough.pop(key)
        if value is not None:
            _put(raw, passthrough, key, value)
    password = raw.get("password")
    if password is not None and not isinstance(password, str):
        raise ClientSettingsError("password must be text")
    user = raw.get("user")
    if user is not None:
        userinfo = _with_user(userinfo, str(user))
    if not hosts:
        host = passthrough.pop("host", None)
        if host is None:
            raise ClientSettingsError("no host: give a DSN such as ws://root@td1:6041,td2:6041/db")
        port = passthrough.pop("port", None)
        hosts = [f"{host}:{port}" if port is not None else str(host)]

    nodes = [_endpoint(scheme, userinfo, host, password, environ, shown) for host in hosts]
    secondary = _secondary(raw, nodes[0], scheme, userinfo, password, environ)
    if secondary is not None and secondary not in nodes:
        nodes.append(secondary)
    protocols = {node.protocol for node in nodes}
    if len(protocols) > 1:
        raise ClientSettingsError(
            f"all nodes must use the same connector; got {', '.join(str(n) for n in nodes)} (native and WebSocket)")
    if len({(n.host.lower(), n.port) for n in nodes}) != len(nodes):
        raise ClientSettingsError(f"a node is named twice: {', '.join(str(n) for n in nodes)}")

    database = raw.get("database", dsn_db)
    if database is not None:
        database = str(database).strip() or None
    return ClientSettings(
        nodes=tuple(nodes),
        database=database,
        auto_reconnect=_bool(raw.get("auto_reconnect", True), "auto_reconnect"),
        reconnect_interval_ms=_int(raw.get("reconnect_interval_ms", DEFAULT_INTERVAL_MS), "reconnect_interval_ms"),
        reconnect_retry_count=_int(raw.get("reconnect_retry_count", DEFAULT_RETRY_COUNT), "reconnect_retry_count"),
        failback_interval_s=_failback(raw.get("failback_interval_s")),
        connector_options=passthrough,
    )


# --- pieces ------------------------------------------------------------------------------------
def _split_dsn(text: str, shown: str) -> tuple[str, str, list[str], str | None, list[tuple[str, str]]]:
    """``scheme://userinfo@h1,h2/db?query`` -> (scheme, userinfo, [h1, h2], db, query pairs)."""
    if not text:
        raise ClientSettingsError("empty DSN: give one such as ws://root@td1:6041,td2:6041/db")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    scheme = _SCHEME_ALIASES.get(scheme.lower(), scheme.lower())
    rest, _, query_text = rest.partition("?")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        userinfo = ""
    hostpart, slash, path = hostpart.partition("/")
    database = unquote(path.strip("/")) or None if slash else None
    if database is not None and "/" in database:
        raise ClientSettingsError(f"invalid DSN {shown!r}: the path names one database, got {database!r}")
    hosts = [h.strip() for h in hostpart.split(",")]
    if not hostpart or any(not h for h in hosts):
        raise ClientSettingsError(f"invalid DSN {shown!r}: no host, or an empty one between commas")
    try:
        query = parse_qsl(query_text, keep_blank_values=True, strict_parsing=bool(query_text))
    except ValueError as exc:
        raise ClientSettingsError(f"invalid DSN {shown!r}: bad query string ({exc})") from None
    return scheme, userinfo, hosts, database, query


def _put(raw: dict[str, Any], passthrough: dict[str, Any], key: str, value: Any) -> None:
    name = _CANONICAL.get(key)
    if name is None:
        passthrough[key] = value
    else:
        raw[name] = value


def _with_user(userinfo: str, user: str) -> str:
    _, colon, secret = userinfo.partition(":")
    return quote(user, safe="") + (f":{secret}" if colon else "")


def _endpoint(scheme: str, userinfo: str, host: str, password: str | None,
              environ: Mapping[str, str] | None, shown: str) -> Endpoint:
    text = (f"{scheme}://" if scheme else "") + (f"{userinfo}@" if userinfo else "") + host
    try:
        return Endpoint.parse(text, password=password, environ=environ)
    except EndpointError as exc:
        raise ClientSettingsError(f"invalid DSN {shown!r}: {exc}") from None


def _secondary(raw: dict[str, Any], primary: Endpoint, scheme: str, userinfo: str, password: str | None,
               environ: Mapping[str, str] | None) -> Endpoint | None:
    text = raw.get("secondary")
    host = raw.get("secondary_host")
    port = raw.get("secondary_port")
    if text is not None and (host is not None or port is not None):
        raise ClientSettingsError("give the secondary either as `secondary` or as host and port, not both")
    if text is None and host is None:
        if port is not None:
            raise ClientSettingsError("secondary_port (slave_cluster_port) given without secondary_host")
        return None
    if text is None:
        text = str(host).strip()
        if ":" in text and not text.startswith("["):
            text = f"[{text}]" if text.count(":") > 1 else text
        if port is not None:
            text = f"{text}:{_int(port, 'secondary_port')}"
        else:
            text = f"{text}:{NATIVE_PORT if primary.protocol == 'native' else WS_PORT}"
    text = str(text).strip()
    if "://" not in text:      # host[:port]: the primary's scheme and credentials
        scheme = scheme or primary.scheme
        try:
            node = Endpoint.parse(f"{scheme}://{userinfo + '@' if userinfo else ''}{text}",
                                  password=password, environ=environ)
        except EndpointError as exc:
            raise ClientSettingsError(f"invalid secondary {redact(text)!r}: {exc}") from None
        return node
    try:
        return Endpoint.parse(text, password=password, environ=environ)
    except EndpointError as exc:
        raise ClientSettingsError(f"invalid secondary: {exc}") from None


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ClientSettingsError(f"{name} must be true or false, got {value!r}")


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ClientSettingsError(f"{name} must be a whole number, got {value!r}")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ClientSettingsError(f"{name} must be a whole number, got {value!r}") from None
    if number < 0:
        raise ClientSettingsError(f"{name} must be 0 or more, got {number}")
    return number


def _failback(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none", "false")):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ClientSettingsError(f"failback_interval_s must be a number of seconds, got {value!r}") from None
    if seconds < 0 or seconds != seconds:
        raise ClientSettingsError(f"failback_interval_s must be 0 or more, got {value!r}")
    return seconds
