"""Endpoints: where a TDengine peer is and how tdsync talks to it, written as the seed and taosx write them.

=====================================  ==============================================
``host``                               native, port 6030
``host:port``                          native, except port 6041: WebSocket (taosAdapter)
``taos://[user[:password]@]host[:port]``   native (default port 6030)
``ws://…``, ``http://…``               WebSocket (default port 6041)
``wss://…``, ``https://…``             WebSocket over TLS (default port 6041)
=====================================  ==============================================

``taos+ws://`` and ``taos+wss://`` (taosx's spelling) are accepted as ``ws://``/``wss://``. IPv6
addresses go in brackets (``[::1]:6041``). User and password may be percent-encoded (``%40`` for
``@``). The user defaults to ``root``; the password is taken, first found, from the endpoint text,
the ``password`` argument (what a configuration file gave), ``$TDSYNC_PASSWORD``, the file named by
``$TDSYNC_PASSWORD_FILE``, else ``taosdata``.

The text of an endpoint as tdsync shows it anywhere (``str()``, ``repr()``, ``redacted``, error
messages) never contains the password: ``ws://root@db1:6041``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote

from engine.errors import EndpointError

NATIVE_PORT = 6030
WS_PORT = 6041
DEFAULT_USER = "root"
DEFAULT_PASSWORD = "taosdata"
PASSWORD_ENV = "TDSYNC_PASSWORD"
PASSWORD_FILE_ENV = "TDSYNC_PASSWORD_FILE"
MAX_USER_BYTES = 23            # TSDB_USER_LEN - 1
MAX_PASSWORD_BYTES = 255       # TSDB_PASSWORD_MAX_LEN

NATIVE, WEBSOCKET = "native", "ws"
# scheme -> (protocol, tls)
_SCHEMES = {
    "taos": (NATIVE, False),
    "ws": (WEBSOCKET, False), "http": (WEBSOCKET, False), "taos+ws": (WEBSOCKET, False),
    "wss": (WEBSOCKET, True), "https": (WEBSOCKET, True), "taos+wss": (WEBSOCKET, True),
}
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\Z")


def redact(text: str) -> str:
    """``text`` (an endpoint as a user wrote it, valid or not) with any password replaced by ``***``."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return text
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':***' if colon else ''}@{hostpart}"


def read_password_file(path: str | os.PathLike[str]) -> str:
    """The first line of a password file (without its line end)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EndpointError(f"cannot read the password file {str(path)!r}: {exc}") from None
    return text.splitlines()[0] if text else ""


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint. Build one with :meth:`parse`; ``str()`` is the redacted text."""

    protocol: str                  # "native" | "ws"
    host: str                      # as written; IPv6 without brackets
    port: int
    user: str = DEFAULT_USER
    password: str = field(default=DEFAULT_PASSWORD, repr=False)
    tls: bool = False
    password_source: str = field(default="default", compare=False)   # url|argument|env|file|default

    @classmethod
    def parse(cls, text: str, *, password: str | None = None,
              environ: Mapping[str, str] | None = None) -> Endpoint:
        """Parse ``text``; raise :class:`~engine.errors.EndpointError` naming what is wrong."""
        if not isinstance(text, str):
            raise EndpointError(f"an endpoint must be text, got {type(text).__name__}")
        shown = redact(text.strip())
        raw = text.strip()

        def bad(reason: str) -> EndpointError:
            return EndpointError(f"invalid endpoint {shown!r}: {reason}")

        if not raw:
            raise EndpointError("empty endpoint: give host[:port] or a taos://, ws://, wss:// or http:// URL")
        scheme, sep, rest = raw.partition("://")
        explicit = bool(sep)
        if explicit:
            scheme = scheme.lower()
            if scheme not in _SCHEMES:
                raise bad(f"unknown scheme {scheme + '://'!r}; use taos:// (native), ws://, wss:// or http://")
            protocol, tls = _SCHEMES[scheme]
        else:
            rest, protocol, tls = raw, NATIVE, False
        userinfo, at, hostpart = rest.rpartition("@")
        for char, what in (("/", "path"), ("?", "query parameters"), ("#", "fragment")):
            if char in hostpart:
                raise bad(f"an endpoint takes no {what}; write [user[:password]@]host[:port]")
        host, port = _split_host_port(hostpart, bad)
        if port is None:
            port = NATIVE_PORT if protocol == NATIVE else WS_PORT
        elif not explicit and port == WS_PORT:
            protocol = WEBSOCKET
        user, colon, url_password = userinfo.partition(":")
        user = unquote(user) if at else ""
        if not user:
            user = DEFAULT_USER
        if len(user.encode()) > MAX_USER_BYTES:
            raise bad(f"user name longer than {MAX_USER_BYTES} bytes")
        if any(c.isspace() or c in ":@" for c in user):
            raise bad("the user name contains a space, ':' or '@' (percent-encode them)")
        env = os.environ if environ is None else environ
        if at and colon:
            secret, source = unquote(url_password), "url"
        elif password is not None:
            secret, source = password, "argument"
        elif env.get(PASSWORD_ENV):
            secret, source = env[PASSWORD_ENV], "env"
        elif env.get(PASSWORD_FILE_ENV):
            secret, source = read_password_file(env[PASSWORD_FILE_ENV]), "file"
        else:
            secret, source = DEFAULT_PASSWORD, "default"
        if not secret:
            raise bad(f"empty password (from the {source})")
        if len(secret.encode()) > MAX_PASSWORD_BYTES:
            raise bad(f"password longer than {MAX_PASSWORD_BYTES} bytes (from the {source})")
        return cls(protocol, host, port, user, secret, tls, source)

    # -- what the connectors use ----------------------------------------------------------------
    @property
    def is_websocket(self) -> bool:
        return self.protocol == WEBSOCKET

    @property
    def scheme(self) -> str:
        return "taos" if self.protocol == NATIVE else "wss" if self.tls else "ws"

    @property
    def address(self) -> str:
        """``host:port`` (``[v6]:port``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def ws_url(self, path: str) -> str:
        """The WebSocket URL of a taosAdapter path (``/ws``, ``/rest/tmq``), without credentials."""
        if not self.is_websocket:
            raise EndpointError(f"{self} is a native endpoint, not a WebSocket one")
        return f"{self.scheme}://{self.address}{path}"

    def with_password(self, password: str, source: str = "argument") -> Endpoint:
        return replace(self, password=password, password_source=source)

    # -- what people see ------------------------------------------------------------------------
    @property
    def redacted(self) -> str:
        return f"{self.scheme}://{self.user}@{self.address}"

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"Endpoint({self.redacted!r})"


def _split_host_port(text: str, bad) -> tuple[str, int | None]:
    if text.startswith("["):
        inside, close, after = text[1:].partition("]")
        if not close:
            raise bad("missing ']' after the IPv6 address")
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise bad(f"{inside!r} is not an IPv6 address") from None
        host = inside
        if after and not after.startswith(":"):
            raise bad(f"unexpected {after!r} after the IPv6 address")
        port_text = after[1:] if after else None
    else:
        if text.count(":") > 1:
            raise bad("put an IPv6 address in brackets: [::1]:6041")
        host, colon, port_text = text.partition(":")
        if not colon:
            port_text = None
        if not host:
            raise bad("no host")
        if not _HOSTNAME.match(host):
            raise bad(f"{host!r} is not a host name or address")
    if port_text is None:
        return host, None
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise bad(f"port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)
