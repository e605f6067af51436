"""The SQLAlchemy engine of the store: SQLite (WAL) by default, PostgreSQL a URL away
(design.md 4); nothing the repositories write is SQLite-only SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from corridor.core.private_files import private_sqlite_file

#: A database URL parsed (``render_as_string(hide_password=True)`` names it in messages).
parse_url = make_url
#: Anything the database driver raised (a failed connection, a refused statement).
DatabaseError = DBAPIError
#: What the store raises while the database cannot be reached (a restart, a network cut, no
#: free connection in the pool). The transaction it was in has rolled back: nothing half-written.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (the pysqlite recipe).
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Write transactions take the write lock up front (BEGIN IMMEDIATE), so a
    # transaction never has to upgrade a read snapshot and fail with SQLITE_BUSY.
    # A single SELECT is atomic on its own: it runs without BEGIN/COMMIT ("NONE").
    # Issue 19: sent on the DB-API connection itself (SQLAlchemy's statement execution costs more
    # than the BEGIN); the driver's error is raised as SQLAlchemy's (a busy database: the 503).
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    if mode != "NONE":
        begin = f"BEGIN {mode}"
        try:
            conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            raise DBAPIError.instance(begin, (), exc, sqlite3.Error, dialect=conn.dialect) from exc


def database_url(url: str) -> URL:
    """A SQLAlchemy URL; plain ``postgresql://`` means psycopg 3 (the driver we install)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_store_engine(
    url: str, pool_size: int = 10, max_overflow: int = 10, pool_timeout: float = 5.0
) -> Engine:
    parsed = database_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            private_sqlite_file(Path(parsed.database))
        engine = create_engine(parsed, pool_size=8, max_overflow=8, pool_pre_ping=False)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # Stateless instances on one PostgreSQL (design.md 5b): a bounded pool per instance
    # (pool_size + max_overflow connections at most; size max_connections for all instances),
    # connections checked before use, so a restarted database is noticed and reconnected, and a
    # short wait for a free connection, after which the request gets 503 instead of queueing.
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5},
    )
