# Why over 450 lines: not split yet; issue 15 item 2 makes it repositories behind
# Protocols (work in progress on branch store, see wip/issue-15).
"""The SQL store on SQLAlchemy 2 Core. SQLite (WAL) by default; nothing here is
SQLite-only SQL, so PostgreSQL is a URL away (design.md 4).

Single-use artifacts are consumed in one conditional UPDATE (``... WHERE
consumed_at IS NULL``) or a unique insert, never check-then-write.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError

from corridor.core.private_files import private_sqlite_file
from corridor.store import schema as t

Row = dict[str, Any]


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
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    if mode != "NONE":
        conn.exec_driver_sql(f"BEGIN {mode}")


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


@functools.cache
def _by(table: Table, column: str) -> Select[Any]:
    """``SELECT * FROM table WHERE column = :key``, built once (statement construction is a
    large part of a small query's cost; the compiled form is cached by SQLAlchemy anyway)."""
    return select(table).where(table.c[column] == bindparam("key"))


@functools.cache
def _remember_once(dialect: str) -> Any:
    """The replay-cache upsert (Store.remember_once), built once per dialect."""
    table = t.replay_cache
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(table).values(key=bindparam("key"), expires_at=bindparam("expires_at"))
    return stmt.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={"expires_at": stmt.excluded.expires_at},
        where=table.c.expires_at < bindparam("now"),
    ).returning(table.c.key)


class RemovedClient(NamedTuple):
    """What removing a client revoked."""

    grants: int
    access_tokens: int


class NestedWrite(RuntimeError):
    """design.md 4: a write opened while this thread already has one open. A programming error,
    raised at once: the inner write would wait for the outer one's lock (SQLite, issue 13 B7)
    or for its row locks (PostgreSQL), and it would commit apart from the unit of work."""


class AttemptPolicy(Protocol):
    """How long a throttled subject waits after its n-th consecutive failure, and how long a
    quiet subject's count is kept (server/signin.py decides; the store only keeps count)."""

    def wait(self, key: str, failures: int) -> float: ...

    def forget(self, key: str) -> float: ...


class Store:
    """Everything that must survive a restart or be shared between instances."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        self.url = url
        self.engine = create_store_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self.dialect = self.engine.dialect.name
        # SQLite has one writer at a time: threads of this process queue here instead of
        # sleeping in SQLite's busy handler (its back-off adds tens of ms under load); other
        # processes still meet the busy timeout.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        #: Whether this thread has a write open (design.md 4: one unit of work, never nested).
        self._writing = threading.local()
        #: Bumped by every registration change made through this Store, so caches of clients
        #: and resource servers (server/clients.py) see this process's changes at once.
        self.registrations_changed = 0

    # -- lifecycle -------------------------------------------------------------------

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

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; pass its connection to everything the unit of work writes.
        Opening another write on this thread while it is open raises :class:`NestedWrite`."""
        if getattr(self._writing, "open", False):
            raise NestedWrite("a write transaction is already open on this thread; pass its connection")
        self._writing.open = True
        try:
            with self._write_lock or contextlib.nullcontext(), self.engine.connect() as conn:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        finally:
            self._writing.open = False

    def _one(self, stmt: Any, key: Any = None) -> Row | None:
        """One row of a single SELECT (``key``: the value of a statement from :func:`_by`)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="NONE")  # one statement: atomic by itself
            result = conn.execute(stmt) if key is None else conn.execute(stmt, {"key": key})
            row = result.mappings().first()
            return dict(row) if row is not None else None

    def _all(self, stmt: Any) -> list[Row]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="NONE")
            return [dict(r) for r in conn.execute(stmt).mappings()]

    # -- clients, users, resource servers ---------------------------------------------

    def add_client(self, client_id: str, name: str, client_metadata: Mapping[str, Any], now: float) -> None:
        with self.write() as conn:
            conn.execute(
                insert(t.clients).values(
                    client_id=client_id, name=name, metadata=json.dumps(client_metadata), created_at=now
                )
            )
        self.registrations_changed += 1

    def get_client(self, client_id: str) -> Row | None:
        return self._one(_by(t.clients, "client_id"), client_id)

    def list_clients(self) -> list[Row]:
        return self._all(select(t.clients).order_by(t.clients.c.created_at))

    def remove_client(self, client_id: str, now: float) -> RemovedClient | None:
        """Remove a client and, in the same transaction, revoke every grant and access token it
        holds (issue 13 D2): introspection, UserInfo and refresh refuse them at once, here and
        on every instance. None if there is no such client."""
        with self.write() as conn:
            if conn.execute(delete(t.clients).where(t.clients.c.client_id == client_id)).rowcount != 1:
                return None
            grants = conn.execute(
                update(t.grants)
                .where(t.grants.c.client_id == client_id, t.grants.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason="client_removed")
            ).rowcount
            tokens = conn.execute(
                update(t.access_tokens)
                .where(t.access_tokens.c.client_id == client_id, t.access_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
        self.registrations_changed += 1
        return RemovedClient(grants, tokens)

    def add_user(self, user_id: str, username: str, password_hash: str, now: float) -> None:
        with self.write() as conn:
            conn.execute(
                insert(t.users).values(
                    id=user_id, username=username, password_hash=password_hash, created_at=now
                )
            )

    def get_user(self, user_id: str) -> Row | None:
        return self._one(_by(t.users, "id"), user_id)

    def get_user_by_name(self, username: str) -> Row | None:
        return self._one(_by(t.users, "username"), username)

    def list_users(self) -> list[Row]:
        return self._all(
            select(t.users.c.id, t.users.c.username, t.users.c.created_at).order_by(t.users.c.created_at)
        )

    def set_totp_secret(self, username: str, secret: str | None) -> bool:
        with self.write() as conn:
            stmt = update(t.users).where(t.users.c.username == username).values(totp_secret=secret)
            return conn.execute(stmt).rowcount == 1

    def remove_user(self, username: str) -> bool:
        with self.write() as conn:
            user = conn.execute(select(t.users.c.id).where(t.users.c.username == username)).first()
            if user is None:
                return False
            conn.execute(delete(t.passkeys).where(t.passkeys.c.user_id == user.id))
            return conn.execute(delete(t.users).where(t.users.c.id == user.id)).rowcount == 1

    # -- passkeys (WebAuthn credentials) ------------------------------------------------------

    def add_passkey(self, **values: Any) -> bool:
        """Store a newly registered credential; False if its ID is already registered
        (WebAuthn 7.1 step 25: a credential ID belongs to one account)."""
        try:
            with self.write() as conn:
                conn.execute(insert(t.passkeys).values(**values))
        except IntegrityError:
            return False
        return True

    def add_enrolment_link(self, token_hash: str, user_id: str, now: float, expires_at: float) -> None:
        with self.write() as conn:
            conn.execute(
                insert(t.enrolment_links).values(
                    token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
                )
            )

    def get_enrolment_link(self, token_hash: str) -> Row | None:
        return self._one(_by(t.enrolment_links, "token_hash"), token_hash)

    def add_passkey_with_link(self, token_hash: str, now: float, **passkey: Any) -> bool | None:
        """Issue 13 C4: spend an enrolment link and store the passkey it binds, in one transaction.
        None if the link is not this user's, was used or expired (one conditional UPDATE decides);
        False if the credential ID is already registered (the link is then left unspent)."""

        link = t.enrolment_links.c
        try:
            with self.write() as conn:
                spent = conn.execute(
                    update(t.enrolment_links)
                    .where(
                        link.token_hash == token_hash,
                        link.user_id == passkey["user_id"],
                        link.consumed_at.is_(None),
                        link.expires_at > now,
                    )
                    .values(consumed_at=now)
                ).rowcount
                if spent != 1:
                    return None
                conn.execute(insert(t.passkeys).values(**passkey))  # rolls the spend back if taken
        except IntegrityError:
            return False
        return True

    def get_passkey(self, credential_id: str) -> Row | None:
        return self._one(_by(t.passkeys, "credential_id"), credential_id)

    def user_passkeys(self, user_id: str) -> list[Row]:
        return self._all(
            select(t.passkeys).where(t.passkeys.c.user_id == user_id).order_by(t.passkeys.c.created_at)
        )

    def use_passkey(self, credential_id: str, seen_count: int, new_count: int, now: float) -> bool:
        """Advance the signature counter from ``seen_count`` (compare-and-set): of two assertions
        racing with one counter value, one wins (WebAuthn 6.1.1, cloned authenticators)."""
        with self.write() as conn:
            stmt = (
                update(t.passkeys)
                .where(t.passkeys.c.credential_id == credential_id, t.passkeys.c.sign_count == seen_count)
                .values(sign_count=new_count, last_used_at=now)
            )
            return conn.execute(stmt).rowcount == 1

    def remove_passkey(self, user_id: str, credential_id: str) -> bool:
        with self.write() as conn:
            stmt = delete(t.passkeys).where(
                t.passkeys.c.user_id == user_id, t.passkeys.c.credential_id == credential_id
            )
            return conn.execute(stmt).rowcount == 1

    def add_resource_server(
        self, identifier: str, name: str, scopes: list[str], introspection_client_id: str | None, now: float
    ) -> None:
        with self.write() as conn:
            conn.execute(
                insert(t.resource_servers).values(
                    identifier=identifier,
                    name=name,
                    scopes=json.dumps(scopes),
                    introspection_client_id=introspection_client_id,
                    created_at=now,
                )
            )
        self.registrations_changed += 1

    def list_resource_servers(self) -> list[Row]:
        return self._all(select(t.resource_servers).order_by(t.resource_servers.c.created_at))

    def remove_resource_server(self, identifier: str) -> bool:
        with self.write() as conn:
            stmt = delete(t.resource_servers).where(t.resource_servers.c.identifier == identifier)
            removed = conn.execute(stmt).rowcount == 1
        self.registrations_changed += 1
        return removed

    # -- keys and secrets ----------------------------------------------------------------

    def signing_keys(self) -> list[Row]:
        return self._all(select(t.signing_keys).order_by(t.signing_keys.c.created_at))

    def add_signing_key(
        self,
        kid: str,
        alg: str,
        private_jwk: Mapping[str, Any],
        state: str,
        now: float,
        activates_at: float | None = None,
    ) -> None:
        with self.write() as conn:
            conn.execute(
                insert(t.signing_keys).values(
                    kid=kid,
                    alg=alg,
                    private_jwk=json.dumps(private_jwk),
                    state=state,
                    created_at=now,
                    activates_at=now if activates_at is None else activates_at,
                )
            )

    def add_first_signing_key(self, kid: str, alg: str, private_jwk: Mapping[str, Any], now: float) -> bool:
        """The first key, unless another instance made one first (False then)."""
        with self.write() as conn:
            if self.dialect == "postgresql":  # instances starting together: one at a time here
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(74202)")
            if conn.execute(select(t.signing_keys.c.kid).limit(1)).first() is not None:
                return False
            conn.execute(
                insert(t.signing_keys).values(
                    kid=kid,
                    alg=alg,
                    private_jwk=json.dumps(private_jwk),
                    state="active",
                    created_at=now,
                    activates_at=now,
                )
            )
            return True

    def secret(self, name: str, make: Callable[[], str], now: float) -> str:
        """The shared secret ``name``, created once; every instance reads the same value."""
        row = self._one(select(t.server_secrets.c.value).where(t.server_secrets.c.name == name))
        if row is not None:
            return str(row["value"])
        try:
            with self.write() as conn:
                conn.execute(insert(t.server_secrets).values(name=name, value=make(), created_at=now))
        except IntegrityError:
            pass  # another instance created it first; read theirs below
        row = self._one(select(t.server_secrets.c.value).where(t.server_secrets.c.name == name))
        assert row is not None
        return str(row["value"])

    # -- replay caches (RFC 9449 11.1, OIDC Core 9 jti) ---------------------------------

    def remember_once(self, key: str, expires_at: float, now: float) -> bool:
        """Record ``key`` until ``expires_at``; False if it is already recorded and live.

        One atomic upsert: a live row is left alone (replay), an expired one is reused.
        """
        with self.write() as conn:
            params = {"key": key, "expires_at": expires_at, "now": now}
            # RETURNING names the row written (inserted, or an expired one reused); rowcount is
            # not reliable for INSERT .. ON CONFLICT on every driver (psycopg 3 reports -1).
            return conn.execute(_remember_once(self.dialect), params).first() is not None

    def is_remembered(self, key: str, now: float) -> bool:
        """Whether ``key`` is recorded and live (a read; :meth:`remember_once` writes)."""
        row = self._one(_by(t.replay_cache, "key"), key)
        return row is not None and row["expires_at"] >= now

    # -- sign-in throttling (issue 13 C1, C2) ----------------------------------------------

    def _lock_throttle_rows(self, conn: Connection, keys: Sequence[str], now: float) -> dict[str, Row]:
        """The live rows of ``keys`` (an expired row counts as none), locked for this
        transaction: on PostgreSQL by FOR UPDATE, on SQLite by BEGIN IMMEDIATE."""
        table = t.sign_in_throttle
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        for key in sorted(set(keys)):  # one order everywhere: no deadlock between two attempts
            conn.execute(
                dialect_insert(table)
                .values(key=key, failures=0, locked_until=0.0, expires_at=now)
                .on_conflict_do_nothing(index_elements=[table.c.key])
            )
        stmt = select(table).where(table.c.key.in_(sorted(set(keys)))).order_by(table.c.key).with_for_update()
        rows = {}
        for row in conn.execute(stmt).mappings():
            live = row["expires_at"] >= now
            rows[row["key"]] = {
                "failures": row["failures"] if live else 0,
                "locked_until": row["locked_until"] if live else 0.0,
            }
        return rows

    def count_attempt(
        self, keys: Sequence[str], now: float, policy: AttemptPolicy
    ) -> tuple[bool, dict[str, Row]]:
        """Count one attempt against every key at once, before its credential is checked (so
        concurrent attempts cannot slip past the count), unless one of them is waiting. Returns
        whether it was counted and each key's ``failures`` and ``locked_until`` after it."""
        table = t.sign_in_throttle
        with self.write() as conn:
            rows = self._lock_throttle_rows(conn, keys, now)
            if any(row["locked_until"] > now for row in rows.values()):
                return False, rows
            for key, row in rows.items():
                row["failures"] += 1
                wait = policy.wait(key, row["failures"])
                row["locked_until"] = now + wait if wait > 0 else 0.0
                conn.execute(
                    update(table)
                    .where(table.c.key == key)
                    .values(
                        failures=row["failures"],
                        locked_until=row["locked_until"],
                        expires_at=max(now, row["locked_until"]) + policy.forget(key),
                    )
                )
            return True, rows

    def forgive_attempt(
        self, reset: Sequence[str], undo: Sequence[str], now: float, policy: AttemptPolicy
    ) -> None:
        """A counted attempt succeeded: ``reset`` keys start again from zero, ``undo`` keys take
        the attempt back (and stop waiting if that brings them below their threshold)."""
        table = t.sign_in_throttle
        with self.write() as conn:
            if reset:
                conn.execute(delete(table).where(table.c.key.in_(list(reset))))
            if not undo:
                return
            for key, row in self._lock_throttle_rows(conn, undo, now).items():
                failures = max(row["failures"] - 1, 0)
                values: dict[str, Any] = {"failures": failures}
                if policy.wait(key, failures) == 0:
                    values["locked_until"] = 0.0
                conn.execute(update(table).where(table.c.key == key).values(**values))

    def throttle_state(self, key: str, now: float) -> Row:
        """``failures`` and ``locked_until`` of one key (a read; zero when unknown or expired)."""
        row = self._one(_by(t.sign_in_throttle, "key"), key)
        if row is None or row["expires_at"] < now:
            return {"failures": 0, "locked_until": 0.0}
        return {"failures": row["failures"], "locked_until": row["locked_until"]}

    def purge_expired(self, now: float, batch: int = 1000) -> int:
        """Delete expired rows; returns rows removed. Single-use artifacts and replay entries go
        when they expire; codes, access tokens and grants a day after (introspection of an
        expired token answers inactive either way; the audit trail keeps the evidence). Rows go
        in batches of ``batch``, one short transaction each, so requests never wait long."""
        day = 86_400
        expiring = [
            (t.replay_cache, t.replay_cache.c.key, now),
            (t.pushed_requests, t.pushed_requests.c.ref_hash, now),
            (t.interactions, t.interactions.c.id, now),
            (t.enrolment_links, t.enrolment_links.c.token_hash, now),
            (t.browser_sessions, t.browser_sessions.c.id_hash, now),
            (t.sign_in_throttle, t.sign_in_throttle.c.key, now),
            (t.admin_sessions, t.admin_sessions.c.id_hash, now),
            (t.authorization_codes, t.authorization_codes.c.code_hash, now - day),
            (t.access_tokens, t.access_tokens.c.jti, now - day),
            (t.grants, t.grants.c.id, now - day),
        ]
        removed = 0
        for table, key, before in expiring:
            while True:
                doomed = select(key).where(table.c.expires_at < before).limit(batch).scalar_subquery()
                with self.write() as conn:
                    count = conn.execute(delete(table).where(key.in_(doomed))).rowcount
                removed += count
                if count < batch:
                    break
        return removed

    # -- pushed authorization requests (RFC 9126) ------------------------------------------

    def save_pushed_request(
        self,
        ref_hash: str,
        client_id: str,
        parameters: Mapping[str, Any],
        dpop_jkt: str | None,
        now: float,
        expires_at: float,
    ) -> None:
        with self.write() as conn:
            conn.execute(
                insert(t.pushed_requests).values(
                    ref_hash=ref_hash,
                    client_id=client_id,
                    parameters=json.dumps(parameters),
                    dpop_jkt=dpop_jkt,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    def get_pushed_request(self, ref_hash: str) -> Row | None:
        return self._one(_by(t.pushed_requests, "ref_hash"), ref_hash)

    @staticmethod
    def consume_pushed_request(conn: Connection, ref_hash: str, now: float) -> bool:
        """FAPI2 5.3.2.2-12 Note 3: single use, enforced when the authorization completes, and only
        before ``expires_in`` ends (RFC 9126 2.2; issue 13 D5): one statement decides both."""
        stmt = (
            update(t.pushed_requests)
            .where(
                t.pushed_requests.c.ref_hash == ref_hash,
                t.pushed_requests.c.consumed_at.is_(None),
                t.pushed_requests.c.expires_at > now,
            )
            .values(consumed_at=now)
        )
        return bool(conn.execute(stmt).rowcount == 1)

    # -- browser interactions and sessions ----------------------------------------------------

    def save_interaction(
        self, interaction_id: str, secret_hash: str, ref_hash: str, csrf: str, now: float, expires_at: float
    ) -> None:
        with self.write() as conn:
            conn.execute(
                insert(t.interactions).values(
                    id=interaction_id,
                    secret_hash=secret_hash,
                    ref_hash=ref_hash,
                    csrf=csrf,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    def get_interaction(self, interaction_id: str) -> Row | None:
        return self._one(_by(t.interactions, "id"), interaction_id)

    def save_browser_session(
        self, id_hash: str, user_id: str, auth_time: float, acr: str, expires_at: float
    ) -> None:
        with self.write() as conn:
            conn.execute(
                insert(t.browser_sessions).values(
                    id_hash=id_hash, user_id=user_id, auth_time=auth_time, acr=acr, expires_at=expires_at
                )
            )

    def raise_browser_session(self, id_hash: str, acr: str, auth_time: float) -> bool:
        """A second factor passed: the session's level and authentication time (RFC 9470)."""
        with self.write() as conn:
            stmt = (
                update(t.browser_sessions)
                .where(t.browser_sessions.c.id_hash == id_hash)
                .values(acr=acr, auth_time=auth_time)
            )
            return conn.execute(stmt).rowcount == 1

    def get_browser_session(self, id_hash: str) -> Row | None:
        return self._one(_by(t.browser_sessions, "id_hash"), id_hash)

    # -- administrator sessions (issue 13 C3) ---------------------------------------------------

    def save_admin_session(self, **values: Any) -> None:
        with self.write() as conn:
            conn.execute(insert(t.admin_sessions).values(**values))

    def get_admin_session(self, id_hash: str) -> Row | None:
        return self._one(_by(t.admin_sessions, "id_hash"), id_hash)

    def update_admin_session(self, id_hash: str, **values: Any) -> bool:
        """Record use (``last_seen_at``) or a passed second factor (``acr``, ``expires_at``)."""
        with self.write() as conn:
            stmt = update(t.admin_sessions).where(t.admin_sessions.c.id_hash == id_hash).values(**values)
            return bool(conn.execute(stmt).rowcount == 1)

    def remove_admin_session(self, id_hash: str) -> bool:
        with self.write() as conn:
            stmt = delete(t.admin_sessions).where(t.admin_sessions.c.id_hash == id_hash)
            return bool(conn.execute(stmt).rowcount == 1)

    # -- grants, codes and tokens ------------------------------------------------------------------

    @staticmethod
    def insert_grant(conn: Connection, **values: Any) -> None:
        conn.execute(insert(t.grants).values(**values))

    @staticmethod
    def insert_code(conn: Connection, **values: Any) -> None:
        conn.execute(insert(t.authorization_codes).values(**values))

    @staticmethod
    def insert_access_token(conn: Connection, **values: Any) -> None:
        conn.execute(insert(t.access_tokens).values(**values))

    def get_code(self, code_hash: str) -> Row | None:
        return self._one(_by(t.authorization_codes, "code_hash"), code_hash)

    @staticmethod
    def consume_code(conn: Connection, code_hash: str, now: float) -> bool:
        """RFC 6749 4.1.2: a code is used once; one conditional UPDATE decides the winner."""
        stmt = (
            update(t.authorization_codes)
            .where(
                t.authorization_codes.c.code_hash == code_hash, t.authorization_codes.c.consumed_at.is_(None)
            )
            .values(consumed_at=now)
        )
        return bool(conn.execute(stmt).rowcount == 1)

    @staticmethod
    def revoke_grant(conn: Connection, grant_id: str, now: float, reason: str) -> bool:
        """Revocation is a flag on the grant (design.md 5b); it covers every token of the grant."""
        stmt = (
            update(t.grants)
            .where(t.grants.c.id == grant_id, t.grants.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        return bool(conn.execute(stmt).rowcount == 1)

    @staticmethod
    def lock_grant(conn: Connection, grant_id: str) -> Row | None:
        """The grant row, held until ``conn``'s transaction ends, so a revocation commits wholly
        before or wholly after a check-and-mint (issue 13 D3): PostgreSQL locks the row (FOR
        UPDATE; a racing UPDATE waits, and we read its committed result); SQLite's write
        transaction (BEGIN IMMEDIATE) already excludes every other writer."""
        stmt = select(t.grants).where(t.grants.c.id == grant_id).with_for_update()
        row = conn.execute(stmt).mappings().first()
        return dict(row) if row is not None else None

    @staticmethod
    def set_refresh_token(conn: Connection, grant_id: str, rt_hash: str) -> None:
        conn.execute(update(t.grants).where(t.grants.c.id == grant_id).values(refresh_token_hash=rt_hash))

    def get_grant(self, grant_id: str) -> Row | None:
        return self._one(_by(t.grants, "id"), grant_id)

    def get_grant_by_refresh_token(self, rt_hash: str) -> Row | None:
        return self._one(_by(t.grants, "refresh_token_hash"), rt_hash)

    def get_access_token(self, jti: str) -> Row | None:
        """The token row joined with its grant's revocation flag."""
        stmt = (
            select(
                t.access_tokens,
                t.grants.c.revoked_at.label("grant_revoked_at"),
                t.grants.c.user_id,
            )
            .join(t.grants, t.grants.c.id == t.access_tokens.c.grant_id)
            .where(t.access_tokens.c.jti == jti)
        )
        return self._one(stmt)

    @staticmethod
    def revoke_access_token(conn: Connection, jti: str, now: float) -> bool:
        stmt = (
            update(t.access_tokens)
            .where(t.access_tokens.c.jti == jti, t.access_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(conn.execute(stmt).rowcount == 1)

    # -- audit --------------------------------------------------------------------------------

    def purge_audit_chain(self, writer: str, through_seq: int, batch: int = 1000) -> int:
        """Delete ``writer``'s records up to ``through_seq``, oldest first, in short transactions
        (issue 13 B4 retention; audit/chain.py purge_before chooses a signed position)."""
        records, removed = t.audit_records, 0
        while True:
            doomed = (
                select(records.c.id)
                .where(records.c.writer == writer, records.c.seq <= through_seq)
                .order_by(records.c.seq)
                .limit(batch)
                .scalar_subquery()
            )
            with self.write() as conn:
                count = conn.execute(delete(records).where(records.c.id.in_(doomed))).rowcount
            removed += count
            if count < batch:
                return removed

    def audit_records(
        self,
        grant_id: str | None = None,
        request_id: str | None = None,
        token_jti: str | None = None,
        interaction: str | None = None,
        par: str | None = None,
    ) -> list[Row]:
        """Records in the order they were stored, filtered by any of the correlation ids."""
        stmt = select(t.audit_records).order_by(t.audit_records.c.time, t.audit_records.c.id)
        if grant_id is not None:
            stmt = stmt.where(t.audit_records.c.grant_id == grant_id)
        if request_id is not None:
            stmt = stmt.where(t.audit_records.c.request_id == request_id)
        if token_jti is not None:
            stmt = stmt.where(t.audit_records.c.token_jti == token_jti)
        if interaction is not None:
            stmt = stmt.where(
                t.audit_records.c.detail.contains(f'"interaction":"{interaction}"', autoescape=True)
            )
        if par is not None:
            stmt = stmt.where(t.audit_records.c.detail.contains(f'"par":"{par}"', autoescape=True))
        return self._all(stmt)
