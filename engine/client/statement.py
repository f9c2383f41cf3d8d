"""Parameter binding across a switch: the connector's statement, recorded so it can be prepared again.

:class:`FailoverStatement` stands for a ``taosws`` ``TaosStmt``/``TaosStmt2`` or a taospy
``TaosStmt``/``TaosStmt2``: every method of the real statement is there, with the same arguments.
It records ``prepare`` and the binding calls made since the last ``execute``
(``set_tbname``, ``set_tags``, ``bind_param``, ``add_batch``, ``bind``, ...). When a call finds
the connection lost, the connection fails over as for any statement, and the call runs on a
statement created afresh on the new node: prepared again, the recorded batch bound again, then
the call itself. The same happens on the next call after a switch made by another call (or by
failback). Reads (``affect_rows``, ``affected_rows``, ``result_set``, ``result``, ...) are not
recorded. After a successful ``execute`` the batch record starts empty again.

The bound values are the connector's own objects (``taosws.ints_to_column(...)``, lists for
taospy); they are kept until the next ``execute`` and passed again unchanged.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Any

from engine.errors import ClientClosed

if TYPE_CHECKING:
    from engine.client.connection import Connection

SETUP, BATCH, EXECUTE, READ = "setup", "batch", "execute", "read"
SETUP_METHODS = frozenset({"prepare"})
EXECUTE_METHODS = frozenset({"execute"})
READ_METHODS = frozenset({"affect_rows", "affected_rows", "result_set", "result", "use_result", "is_insert",
                          "fields", "get_fields", "get_tag_fields", "get_col_fields", "num_params"})


class FailoverStatement:
    """A prepared statement that survives a switch of node (see the module documentation)."""

    def __init__(self, connection: Connection, factory: str, args: tuple, kwargs: dict) -> None:
        self._connection = connection
        self._factory = factory
        self._factory_args = args
        self._factory_kwargs = kwargs
        self._setup: list[tuple[str, tuple, dict]] = []
        self._batch: list[tuple[str, tuple, dict]] = []
        self._raw: Any = None
        self._stmt: Any = None
        self._closed = False
        self.endpoint: str | None = None
        self.rebuilds = 0                       # how many times it was prepared again on a new connection
        _, self.endpoint = connection._call(self._ensure)

    # -- the real statement ------------------------------------------------------------------
    def _ensure(self, raw: Any) -> tuple[Any, bool]:
        """The statement on ``raw``: the current one, or a new one with the recorded calls replayed."""
        if self._stmt is not None and raw is self._raw:
            return self._stmt, False
        stmt = getattr(raw, self._factory)(*self._factory_args, **self._factory_kwargs)
        for name, args, kwargs in self._setup + self._batch:
            getattr(stmt, name)(*args, **kwargs)
        if self._stmt is not None:
            self.rebuilds += 1
            with contextlib.suppress(Exception):
                self._stmt.close()
        self._stmt, self._raw = stmt, raw
        return stmt, True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._closed:
            raise ClientClosed("the statement is closed")
        value = getattr(self._stmt, name)
        if not callable(value):
            return value                        # a property (taospy's affected_rows)
        return functools.partial(self._invoke, name)

    def _invoke(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise ClientClosed("the statement is closed")
        kind = (SETUP if name in SETUP_METHODS else EXECUTE if name in EXECUTE_METHODS
                else READ if name in READ_METHODS else BATCH)
        if kind == READ:
            return getattr(self._stmt, name)(*args, **kwargs)
        entry = (name, args, kwargs)
        saved = (self._setup, self._batch)
        if kind == SETUP:
            self._setup, self._batch = [entry], []
        elif kind == BATCH:
            self._batch = self._batch + [entry]

        def op(raw: Any) -> Any:
            stmt, rebuilt = self._ensure(raw)
            if rebuilt and kind != EXECUTE:
                return None                     # the replay just made this very call
            return getattr(stmt, name)(*args, **kwargs)

        try:
            result, self.endpoint = self._connection._call(op)
        except BaseException:
            self._setup, self._batch = saved    # the call did not happen
            raise
        if kind == EXECUTE:
            self._batch = []
        return result

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stmt is not None:
            with contextlib.suppress(Exception):
                self._stmt.close()
        self._stmt = self._raw = None
        self._setup, self._batch = [], []

    def __enter__(self) -> FailoverStatement:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FailoverStatement {self._factory} on {self.endpoint}>"
