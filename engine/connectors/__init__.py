"""Connectors to TDengine peers: a TMQ :class:`Source` and a raw-writing :class:`Sink` per endpoint kind.

``open_source``/``open_sink`` pick the implementation from the endpoint (``ws://`` ->
:mod:`engine.connectors.ws`, ``taos://`` -> ``engine.connectors.native``).
"""

from engine.connectors.base import (
    RawMessage,
    Sink,
    Source,
    VgroupAssignment,
    open_sink,
    open_source,
    run,
)

__all__ = ["RawMessage", "Sink", "Source", "VgroupAssignment", "open_sink", "open_source", "run"]
