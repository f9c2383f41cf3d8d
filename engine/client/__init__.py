"""tdsync's failover client: a DB-API 2.0 style connection that moves between TDengine nodes by itself.

>>> from engine.client import connect
>>> conn = connect("ws://root:taosdata@td1:6041,td2:6041/power?reconnect_interval_ms=2000&reconnect_retry_count=3",
...                failback_interval_s=30, on_switch=print)
>>> cur = conn.cursor()
>>> cur.execute("insert into d1001 values (now, 10.3, 219, 0.31)")
>>> cur.execute("select count(*) from meters"); cur.fetchall()
>>> conn.endpoint          # 'ws://root@td1:6041' -- or td2 after a failover

It wraps the official connectors (``taosws`` for ``ws://``/``wss://``, ``taos`` for ``taos://``)
and follows the seed's Java driver settings (``secondary`` / ``slave_cluster_host`` +
``slave_cluster_port``, ``auto_reconnect``, ``reconnect_interval_ms``, ``reconnect_retry_count``)
without its limits: ``USE`` is replayed, parameter binding (the connector's statement API) is
prepared again on the new node, the first connect fails over too, and failback is optional.
See :mod:`engine.client.connection` for the behaviour and :mod:`engine.client.dsn` for settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.client.connection import FAILBACK, FAILOVER, STARTUP, Connection, Cursor, SwitchEvent
from engine.client.drivers import is_connection_lost
from engine.client.dsn import ClientSettings, parse_settings
from engine.client.statement import FailoverStatement
from engine.errors import ClientClosed, ClientError, ClientSettingsError, ClientUsageError, ConnectionUnavailable

apilevel = "2.0"
threadsafety = 2          # connections may be shared between threads: calls are serialised
paramstyle = "qmark"


def connect(dsn: str | None = None, *, on_switch: Callable[[SwitchEvent], Any] | None = None,
            **settings: Any) -> Connection:
    """Open a failover connection.

    ``dsn`` names the nodes, primary first (``ws://user:pass@td1:6041,td2:6041/db?...``); keyword
    settings (``secondary``, ``slave_cluster_host``, ``slave_cluster_port``, ``auto_reconnect``,
    ``reconnect_interval_ms``, ``reconnect_retry_count``, ``failback_interval_s``, ``user``,
    ``password``, ``database``) override the DSN's query string; any other keyword goes to the
    wrapped connector. ``on_switch(event)`` is called after every switch of node.

    Raises :class:`ConnectionUnavailable` when no node can be reached, :class:`ClientSettingsError`
    for a bad DSN or setting, :class:`~engine.errors.NativeLibraryMissing` for ``taos://`` without libtaos.
    """
    return Connection(parse_settings(dsn, settings), on_switch=on_switch)


__all__ = [
    "connect", "Connection", "Cursor", "SwitchEvent", "FailoverStatement", "ClientSettings", "parse_settings",
    "is_connection_lost", "ClientError", "ClientClosed", "ClientSettingsError", "ClientUsageError",
    "ConnectionUnavailable", "FAILOVER", "FAILBACK", "STARTUP", "apilevel", "threadsafety", "paramstyle",
]
