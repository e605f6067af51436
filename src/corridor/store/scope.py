"""Where a repository's statements run: on their own (one statement, or one short write
transaction each) or inside a unit of work's one write transaction (design.md 4)."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from corridor.store.protocols import Row

__all__ = ["Database", "NestedWrite", "Row", "Scope", "by"]


class NestedWrite(RuntimeError):
    """design.md 4: a write opened while this thread already has one open. A programming error,
    raised at once: the inner write would wait for the outer one's lock (SQLite, issue 13 B7)
    or for its row locks (PostgreSQL), and it would commit apart from the unit of work."""


@functools.cache
def by(table: Table, column: str) -> Select[Any]:
    """``SELECT * FROM table WHERE column = :key``, built once (statement construction is a
    large part of a small query's cost; the compiled form is cached by SQLAlchemy anyway)."""
    return select(table).where(table.c[column] == bindparam("key"))


class Database:
    """The engine and its write discipline, shared by every repository of one Store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # SQLite has one writer at a time: threads of this process queue here instead of
        # sleeping in SQLite's busy handler (its back-off adds tens of ms under load); other
        # processes still meet the busy timeout.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        #: Whether this thread has a write open (design.md 4: one unit of work, never nested).
        self._writing = threading.local()
        #: Bumped by every registration change made through this Store, so caches of clients
        #: and resource servers (server/clients.py) see this process's changes at once.
        self.registrations_changed = 0

    def insert(self, table: Table) -> Any:
        """The dialect's INSERT (for ``ON CONFLICT``)."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction. Opening another on this thread while it is open raises
        :class:`NestedWrite`."""
        if getattr(self._writing, "open", False):
            raise NestedWrite("a write transaction is already open on this thread; pass its unit of work")
        self._writing.open = True
        try:
            with self._write_lock or contextlib.nullcontext(), self.engine.connect() as conn:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        finally:
            self._writing.open = False

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read transaction (a consistent snapshot on SQLite)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn


class Scope:
    """A repository's statements: on their own (``conn`` None) or in one unit's transaction."""

    def __init__(self, db: Database, conn: Connection | None = None) -> None:
        self.db = db
        self.conn = conn

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @contextmanager
    def writing(self, savepoint: bool = False) -> Iterator[Connection]:
        """The unit's connection, or a write transaction of its own. ``savepoint``: a failure
        (a unique key taken) rolls back only this part of the unit."""
        if self.conn is None:
            with self.db.transaction() as conn:
                yield conn
        elif savepoint:
            with self.conn.begin_nested():
                yield self.conn
        else:
            yield self.conn

    def one(self, stmt: Any, key: Any = None) -> Row | None:
        """One row of a single SELECT (``key``: the value of a statement from :func:`by`)."""
        params = None if key is None else {"key": key}
        if self.conn is not None:
            row = self.conn.execute(stmt, params).mappings().first()
            return dict(row) if row is not None else None
        with self.db.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="NONE")  # one statement: atomic by itself
            row = conn.execute(stmt, params).mappings().first()
            return dict(row) if row is not None else None

    def all(self, stmt: Any) -> list[Row]:
        if self.conn is not None:
            return [dict(r) for r in self.conn.execute(stmt).mappings()]
        with self.db.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="NONE")
            return [dict(r) for r in conn.execute(stmt).mappings()]
