"""The store's composition root (design.md 4): the engine, migrations, the repositories
(store/protocols.py says what each offers), and the unit of work that runs them in one write
transaction.

Outside a unit, a repository runs each read as one statement and each write in a short
transaction of its own; inside ``with store.unit_of_work() as uow:`` everything done through
``uow`` commits together or not at all, and a write opened beside it on the same thread raises
:class:`NestedWrite` at once. Single-use artifacts are consumed in one conditional UPDATE
(``... WHERE consumed_at IS NULL``) or a unique insert, never check-then-write.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Table, delete, select
from sqlalchemy.engine import make_url

from corridor.store import schema as t
from corridor.store.audit import SqlAudit
from corridor.store.clients import SqlClients
from corridor.store.engine import create_store_engine, database_url
from corridor.store.grants import SqlGrants
from corridor.store.keys import SqlKeys
from corridor.store.messages import SqlSignedMessages
from corridor.store.protocols import AttemptPolicy, RemovedClient, UnitOfWork
from corridor.store.replay import SqlReplay
from corridor.store.requests import SqlRequests
from corridor.store.scope import Database, NestedWrite, Row, Scope
from corridor.store.users import SqlUsers

__all__ = [
    "AttemptPolicy",
    "NestedWrite",
    "RemovedClient",
    "Row",
    "SqlRepositories",
    "Store",
    "create_store_engine",
    "database_url",
]


class SqlRepositories:
    """The SQL repositories of one scope: a Store's (each statement on its own) or a unit's."""

    def __init__(self, scope: Scope) -> None:
        self.clients = SqlClients(scope)
        self.users = SqlUsers(scope)
        self.requests = SqlRequests(scope)
        self.grants = SqlGrants(scope)
        self.replay = SqlReplay(scope)
        self.keys = SqlKeys(scope)
        self.audit = SqlAudit(scope)
        self.messages = SqlSignedMessages(scope)


#: What purge_expired removes: single-use artifacts and replay entries when they expire; codes,
#: access tokens and grants a day after (introspection of an expired token answers inactive
#: either way; the audit trail keeps the evidence).
_EXPIRING: tuple[tuple[Table, str, float], ...] = (
    (t.replay_cache, "key", 0),
    (t.pushed_requests, "ref_hash", 0),
    (t.interactions, "id", 0),
    (t.enrolment_links, "token_hash", 0),
    (t.browser_sessions, "id_hash", 0),
    (t.sign_in_throttle, "key", 0),
    (t.admin_sessions, "id_hash", 0),
    (t.authorization_codes, "code_hash", 86_400),
    (t.access_tokens, "jti", 86_400),
    (t.grants, "id", 86_400),
)


class Store(SqlRepositories):
    """Everything that must survive a restart or be shared between instances."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        self.url = url
        self.engine = create_store_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self.dialect = self.engine.dialect.name
        self._db = Database(self.engine)
        super().__init__(Scope(self._db))

    # -- lifecycle -------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Apply Alembic migrations under a lock, so several instances may start together."""
        from corridor.store.migrate import upgrade

        with self._migration_lock():
            upgrade(self.engine)

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT pg_advisory_lock(74201)")
                try:
                    yield
                finally:
                    conn.exec_driver_sql("SELECT pg_advisory_unlock(74201)")
            return
        database = make_url(self.url).database
        if not database or database == ":memory:":
            yield
            return
        with open(Path(database).with_suffix(".migrate.lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Readiness (issue 18): one trivial read of a table every instance reads (the signing
        keys); raises what the driver raises while the database cannot answer."""
        with self.engine.connect() as conn:
            conn.execute(select(t.signing_keys.c.kid).limit(1)).all()

    # -- units of work ---------------------------------------------------------------------------

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """One write transaction (design.md 4); pass the unit to everything the request writes.
        Opening another write on this thread while it is open raises :class:`NestedWrite`."""
        with self._db.transaction() as conn:
            yield SqlRepositories(Scope(self._db, conn))

    @contextmanager
    def snapshot(self) -> Iterator[SqlRepositories]:
        """Reads in one read transaction (one snapshot on SQLite), e.g. to verify the audit chains."""
        with self._db.snapshot() as conn:
            yield SqlRepositories(Scope(self._db, conn))

    # -- housekeeping ----------------------------------------------------------------------------

    def purge_expired(self, now: float, batch: int = 1000) -> int:
        """Delete expired rows (:data:`_EXPIRING`); returns rows removed. Rows go in batches of
        ``batch``, one short transaction each, so requests never wait long."""
        removed = 0
        for table, column, grace in _EXPIRING:
            key = table.c[column]
            while True:
                doomed = select(key).where(table.c.expires_at < now - grace).limit(batch).scalar_subquery()
                with self._db.transaction() as conn:
                    count = conn.execute(delete(table).where(key.in_(doomed))).rowcount
                removed += count
                if count < batch:
                    break
        return removed
