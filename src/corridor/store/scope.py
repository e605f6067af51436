"""Where a repository's statements run: on their own (one statement, or one short write
transaction each) or inside a unit of work's one write transaction (design.md 4).

The hot statements (issue 19) are SQLAlchemy Core statements built once (:func:`by`, module
level or ``functools.cache``), compiled once per dialect into :class:`Prepared` SQL text, and
run on the DB-API connection itself: sqlite3 keeps its prepared statements by SQL text, psycopg 3
prepares a statement on the server after ``prepare_threshold`` uses; SQLAlchemy's per-call
compilation, cache keys and result machinery stay on the cold paths (the schema, Alembic, the
operator's queries). The driver's errors are raised as SQLAlchemy's (``IntegrityError``,
``OperationalError``, ...), so callers see one family either way.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, Table, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from corridor.store.protocols import Row

__all__ = ["Database", "NestedWrite", "Prepared", "Row", "Scope", "by", "into", "prepare"]


class NestedWrite(RuntimeError):
    """design.md 4: a write opened while this thread already has one open. A programming error,
    raised at once: the inner write would wait for the outer one's lock (SQLite, issue 13 B7)
    or for its row locks (PostgreSQL), and it would commit apart from the unit of work."""


@functools.cache
def by(table: Table, column: str) -> Select[Any]:
    """``SELECT * FROM table WHERE column = :key``, built once (statement construction is a
    large part of a small query's cost; the compiled form is cached by SQLAlchemy anyway)."""
    return select(table).where(table.c[column] == bindparam("key"))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement compiled for one dialect: its SQL text and how its parameters are passed."""

    text: str
    #: The parameters' names, in the order of the text's placeholders when ``positional``.
    names: tuple[str, ...]
    positional: bool
    #: The bind processors SQLAlchemy would apply (e.g. an ``int`` into a ``Float`` column).
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        params = {name: values[name] for name in self.names}
        for name, process in self.processors:
            if params[name] is not None:
                params[name] = process(params[name])
        return tuple(params[name] for name in self.names) if self.positional else params


def prepare(stmt: Executable, dialect: Dialect) -> Prepared:
    """Compile ``stmt`` (parameters as named ``bindparam``s) for ``dialect``. Statements whose
    results SQLAlchemy would convert (a Boolean on SQLite) or that expand parameters at execution
    (``IN`` lists) are refused: they stay on SQLAlchemy's path."""
    assert isinstance(stmt, ClauseElement)
    compiled = stmt.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    for column in getattr(stmt, "exported_columns", ()):
        if column.type.result_processor(dialect, None) is not None:
            raise ValueError(f"{column} needs SQLAlchemy's result processing")
    if any(bind.expanding for bind in compiled.binds.values()):
        raise ValueError("expanding parameters need SQLAlchemy")
    names = tuple(compiled.positiontup or ()) if dialect.positional else tuple(compiled.binds)
    processors = []
    for name in dict.fromkeys(names):
        process = compiled.binds[name].type.bind_processor(dialect)
        if process is not None:
            processors.append((name, process))
    return Prepared(compiled.string, names, dialect.positional, tuple(processors))


@functools.cache
def into(table: Table, columns: tuple[str, ...]) -> Executable:
    """``INSERT INTO table (columns) VALUES (:column, ...)``, built once per set of columns."""
    return insert(table).values({name: bindparam(name) for name in columns})


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
        #: Statements built once (their id, kept alive by the entry) and their compiled form.
        self._prepared: dict[int, tuple[Executable, Prepared | None]] = {}
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    def prepared(self, stmt: Executable) -> Prepared | None:
        """``stmt`` compiled for this engine, once (None: it needs SQLAlchemy, see :func:`prepare`).
        Only for statements built once (module level, :func:`by`, ``functools.cache``): the cache
        holds each statement it is given."""
        entry = self._prepared.get(id(stmt))
        if entry is None:
            try:
                compiled: Prepared | None = prepare(stmt, self.engine.dialect)
            except ValueError:
                compiled = None
            entry = self._prepared[id(stmt)] = (stmt, compiled)
        return entry[1]

    def execute(
        self, conn: Connection | None, stmt: Executable, values: Mapping[str, Any], rows: bool = False
    ) -> tuple[list[Row], int]:
        """Run a statement built once on the DB-API connection under ``conn`` (a unit's, or a
        pooled one for a single statement, which is atomic on its own): its rows (``rows``) and
        the number of rows it changed."""
        prepared = self.prepared(stmt)
        if prepared is None:
            raise ValueError(f"not a statement for the DB-API path: {stmt}")
        params = prepared.parameters(values)
        if conn is not None:
            return self._run(conn, conn.connection.driver_connection, prepared, params, rows, conn)
        try:
            pooled = self.engine.raw_connection()
        except self._driver_error as exc:
            # A failed checkout (the database down or shutting down) arrives as the driver's own
            # error here, where Engine.connect would have wrapped it: wrap it the same way, so it
            # is the 503 of DATABASE_UNAVAILABLE, not a 500 (issue 13 outage behaviour).
            error, dialect = self._driver_error, self.engine.dialect
            raise DBAPIError.instance(prepared.text, params, exc, error, dialect=dialect) from exc
        try:
            result = self._run(pooled, pooled.driver_connection, prepared, params, rows, None)
            # End the read's implicit transaction (psycopg opens one) here, where a connection
            # the server dropped is invalidated quietly; the pool's reset on return then has
            # nothing to send, so it cannot fail and log a traceback.
            try:
                pooled.driver_connection.rollback()  # type: ignore[union-attr]
            except self._driver_error as exc:
                pooled.invalidate(exc)
            return result
        except DBAPIError:
            # Roll back here, as SQLAlchemy's Connection would, so that a connection the server
            # dropped is found now and invalidated quietly, not by the pool's reset on return
            # (which logs a traceback for it).
            if pooled.is_valid:
                try:
                    pooled.driver_connection.rollback()  # type: ignore[union-attr]
                except self._driver_error as exc:
                    pooled.invalidate(exc)
            raise
        finally:
            pooled.close()

    def _run(
        self, owner: Any, driver: Any, prepared: Prepared, params: Any, rows: bool, conn: Connection | None
    ) -> tuple[list[Row], int]:
        # A unit's statements still fire the engine's before/after_cursor_execute events (tests
        # count transactions with them; so may instrumentation); a single read on a pooled
        # connection has no SQLAlchemy Connection to name and fires none.
        # (The engine's own listeners are looked up first: conn.dispatch builds joined listeners
        # on every access, and the engine always has some, for BEGIN.)
        engine_events = self.engine.dispatch
        fire = engine_events.before_cursor_execute or engine_events.after_cursor_execute
        events = conn.dispatch if conn is not None and (fire or conn._has_events) else None
        try:
            cursor = driver.cursor()
            try:
                if events is not None and events.before_cursor_execute:
                    events.before_cursor_execute(conn, cursor, prepared.text, params, None, False)
                cursor.execute(prepared.text, params)
                # fetchall: a SQLite statement left unfinished would hold its read snapshot.
                found = cursor.fetchall() if rows else []
                names = [d[0] for d in cursor.description] if rows else []
                count = cursor.rowcount
                if events is not None and events.after_cursor_execute:
                    events.after_cursor_execute(conn, cursor, prepared.text, params, None, False)
            finally:
                cursor.close()
        except self._driver_error as exc:
            dialect = self.engine.dialect
            if dialect.is_disconnect(exc, driver, None):  # type: ignore[arg-type]
                owner.invalidate(exc)  # the pool opens a fresh connection next time
            error = self._driver_error
            raise DBAPIError.instance(prepared.text, params, exc, error, dialect=dialect) from exc
        return [dict(zip(names, row, strict=True)) for row in found], int(count)

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

    def rows(self, stmt: Executable, values: Mapping[str, Any], *, write: bool = False) -> list[Row]:
        """The rows of a statement built once, on the DB-API connection: a SELECT (in the unit,
        or on its own), or with ``write`` a write with RETURNING or a SELECT .. FOR UPDATE (in
        the unit, or a write transaction of its own)."""
        if write:
            with self.writing() as conn:
                return self.db.execute(conn, stmt, values, rows=True)[0]
        return self.db.execute(self.conn, stmt, values, rows=True)[0]

    def run(self, stmt: Executable, values: Mapping[str, Any]) -> int:
        """Run a write built once, in the unit or a write transaction of its own, on the DB-API
        connection: the number of rows it changed."""
        with self.writing() as conn:
            return self.db.execute(conn, stmt, values)[1]

    def one(self, stmt: Any, key: Any = None) -> Row | None:
        """One row of a single SELECT. With ``key`` (the value of a statement from :func:`by`, or
        another built once with one ``key`` parameter) it runs on the DB-API connection."""
        if key is not None and self.db.prepared(stmt) is not None:
            found = self.rows(stmt, {"key": key})
            return found[0] if found else None
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
