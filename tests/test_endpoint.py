"""Endpoint parsing (``engine.endpoint``): the forms the seed and taosx write, defaults, redaction."""

from __future__ import annotations

import pytest

from engine.connectors import Sink, Source, open_sink, open_source
from engine.connectors.ws import WsSink, WsSource
from engine.endpoint import Endpoint, redact
from engine.errors import ConnectorError, EndpointError, TdsyncError, UsageError

NO_ENV: dict[str, str] = {}

# text -> (protocol, tls, host, port, user, password, shown)
CASES = [
    ("db1", ("native", False, "db1", 6030, "root", "taosdata", "taos://root@db1:6030")),
    ("db1:6030", ("native", False, "db1", 6030, "root", "taosdata", "taos://root@db1:6030")),
    ("db1:7030", ("native", False, "db1", 7030, "root", "taosdata", "taos://root@db1:7030")),
    ("db1:6041", ("ws", False, "db1", 6041, "root", "taosdata", "ws://root@db1:6041")),
    ("  10.0.0.5:6041 ", ("ws", False, "10.0.0.5", 6041, "root", "taosdata", "ws://root@10.0.0.5:6041")),
    ("taos://db1", ("native", False, "db1", 6030, "root", "taosdata", "taos://root@db1:6030")),
    ("taos://db1:6041", ("native", False, "db1", 6041, "root", "taosdata", "taos://root@db1:6041")),
    ("TAOS://u:pX9@db1:16030", ("native", False, "db1", 16030, "u", "pX9", "taos://u@db1:16030")),
    ("ws://db1", ("ws", False, "db1", 6041, "root", "taosdata", "ws://root@db1:6041")),
    ("ws://db1:16041", ("ws", False, "db1", 16041, "root", "taosdata", "ws://root@db1:16041")),
    ("http://admin:s3cret@db-2.example.com:6041", ("ws", False, "db-2.example.com", 6041, "admin", "s3cret",
                                                   "ws://admin@db-2.example.com:6041")),
    ("wss://cloud.example.com:443", ("ws", True, "cloud.example.com", 443, "root", "taosdata",
                                     "wss://root@cloud.example.com:443")),
    ("wss://u@h", ("ws", True, "h", 6041, "u", "taosdata", "wss://u@h:6041")),
    ("https://h:8443", ("ws", True, "h", 8443, "root", "taosdata", "wss://root@h:8443")),
    ("taos+ws://h", ("ws", False, "h", 6041, "root", "taosdata", "ws://root@h:6041")),
    ("ws://[::1]:6041", ("ws", False, "::1", 6041, "root", "taosdata", "ws://root@[::1]:6041")),
    ("[fe80::1]", ("native", False, "fe80::1", 6030, "root", "taosdata", "taos://root@[fe80::1]:6030")),
    ("[::1]:6041", ("ws", False, "::1", 6041, "root", "taosdata", "ws://root@[::1]:6041")),
    ("ws://root:p%40ss%3Aw@h", ("ws", False, "h", 6041, "root", "p@ss:w", "ws://root@h:6041")),
    ("ws://root:p@ss/w@h", ("ws", False, "h", 6041, "root", "p@ss/w", "ws://root@h:6041")),     # unencoded
    ("ws://:pw@h", ("ws", False, "h", 6041, "root", "pw", "ws://root@h:6041")),
    ("reader:pw@h:6041", ("ws", False, "h", 6041, "reader", "pw", "ws://reader@h:6041")),
]


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0] for c in CASES])
def test_parse(text, expected):
    protocol, tls, host, port, user, password, shown = expected
    ep = Endpoint.parse(text, environ=NO_ENV)
    assert (ep.protocol, ep.tls, ep.host, ep.port, ep.user, ep.password) == (protocol, tls, host, port, user, password)
    assert str(ep) == ep.redacted == shown
    assert ep.is_websocket == (protocol == "ws")
    # the text as shown anywhere never holds the password (unless it is the default's own word)
    for view in (str(ep), repr(ep), ep.redacted, f"{ep}", ep.address):
        assert password not in view
    assert Endpoint.parse(shown, password=password, environ=NO_ENV) == ep      # the shown form parses back


def test_ws_url_has_no_credentials():
    ep = Endpoint.parse("wss://u:pw@h:1234", environ=NO_ENV)
    assert ep.ws_url("/rest/tmq") == "wss://h:1234/rest/tmq"
    assert Endpoint.parse("ws://[::1]", environ=NO_ENV).ws_url("/ws") == "ws://[::1]:6041/ws"
    with pytest.raises(EndpointError, match="native"):
        Endpoint.parse("h", environ=NO_ENV).ws_url("/ws")


BAD = [
    ("", "empty endpoint"),
    ("   ", "empty endpoint"),
    ("ftp://h", "unknown scheme 'ftp://'"),
    ("h:0", "port '0'"),
    ("h:65536", "port '65536'"),
    ("h:abc", "port 'abc'"),
    ("h:", "port ''"),
    ("ws://h:-1", "port '-1'"),
    ("ws://", "no host"),
    ("ws://:6041", "no host"),
    ("ws://h/db", "takes no path"),
    ("ws://h:6041?x=1", "takes no query parameters"),
    ("h#frag", "takes no fragment"),
    ("::1", "brackets"),
    ("[::1", "missing ']'"),
    ("[nothost]:1", "not an IPv6 address"),
    ("[::1]x", "unexpected 'x'"),
    ("bad host:6041", "not a host name"),
    ("ws://h!:6041", "not a host name"),
    ("ws://averyveryveryverylonguser1:pw@h", "longer than 23 bytes"),
    ("ws://us er:pw@h", "contains a space"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[b[0] or "empty" for b in BAD])
def test_bad_endpoints_name_the_problem(text, message):
    with pytest.raises(EndpointError) as info:
        Endpoint.parse(text, environ=NO_ENV)
    assert message in str(info.value)
    assert isinstance(info.value, UsageError) and isinstance(info.value, TdsyncError)


def test_errors_never_show_the_password():
    for text in ("ws://root:Sup3rSecret@h:99999", "ws://root:Sup3rSecret@bad host", "ftp://u:Sup3rSecret@h",
                 "u:Sup3rSecret@h:abc", "ws://root:Sup3rSecret@h/db"):
        with pytest.raises(EndpointError) as info:
            Endpoint.parse(text, environ=NO_ENV)
        assert "Sup3rSecret" not in str(info.value) and "***" in str(info.value), str(info.value)
    with pytest.raises(EndpointError) as info:
        Endpoint.parse("ws://h", password="x" * 300, environ=NO_ENV)
    assert "x" * 20 not in str(info.value) and "argument" in str(info.value)
    with pytest.raises(EndpointError, match="empty password"):
        Endpoint.parse("ws://u:@h", environ=NO_ENV)


@pytest.mark.parametrize("text, shown", [
    ("ws://root:pw@h:6041", "ws://root:***@h:6041"),
    ("u:pw@h", "u:***@h"),
    ("ws://u@h", "ws://u@h"),
    ("h:6041", "h:6041"),
    ("ws://root:p@w@h", "ws://root:***@h"),
])
def test_redact(text, shown):
    assert redact(text) == shown


def test_password_sources(tmp_path):
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\nignored\n")
    env = {"TDSYNC_PASSWORD": "from-env", "TDSYNC_PASSWORD_FILE": str(secret_file)}
    assert Endpoint.parse("ws://u:from-url@h", password="from-config", environ=env).password_source == "url"
    ep = Endpoint.parse("ws://u:from-url@h", password="from-config", environ=env)
    assert ep.password == "from-url"
    ep = Endpoint.parse("ws://u@h", password="from-config", environ=env)
    assert (ep.password, ep.password_source) == ("from-config", "argument")
    ep = Endpoint.parse("ws://u@h", environ=env)
    assert (ep.password, ep.password_source) == ("from-env", "env")
    ep = Endpoint.parse("ws://u@h", environ={"TDSYNC_PASSWORD_FILE": str(secret_file)})
    assert (ep.password, ep.password_source) == ("from-file", "file")
    ep = Endpoint.parse("ws://u@h", environ=NO_ENV)
    assert (ep.password, ep.password_source) == ("taosdata", "default")
    for shown in (str(ep), repr(ep)):
        assert "from-" not in shown
    with pytest.raises(EndpointError, match="cannot read the password file"):
        Endpoint.parse("h", environ={"TDSYNC_PASSWORD_FILE": str(tmp_path / "missing")})
    # the process environment is the default source
    import os
    os.environ["TDSYNC_PASSWORD"] = "process-env"
    try:
        assert Endpoint.parse("h").password == "process-env"
    finally:
        del os.environ["TDSYNC_PASSWORD"]
    assert Endpoint.parse("h").with_password("new").password == "new"


def test_factories_pick_the_connector():
    source = open_source("ws://u:hidden@h:6041")
    assert isinstance(source, WsSource) and isinstance(source, Source)
    assert repr(source) == "<WsSource ws://u@h:6041>"
    sink = open_sink(Endpoint.parse("wss://h"))
    assert isinstance(sink, WsSink) and isinstance(sink, Sink)
    with pytest.raises(ConnectorError, match="not a WebSocket endpoint"):
        WsSource("h:6030")
    try:
        native = open_source("taos://h")
    except ConnectorError as exc:            # no native connector in this tree (yet)
        assert "native" in str(exc)
    except TdsyncError as exc:               # the native connector reports a missing libtaos
        assert "taos" in str(exc).lower()
    else:
        assert type(native).__name__ == "NativeSource"
