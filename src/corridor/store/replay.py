"""Replay caches (RFC 9449 11.1, OIDC Core 9 jti) and the sign-in throttle (issue 13 C1, C2):
the SQL repository."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from corridor.store import schema as t
from corridor.store.protocols import AttemptPolicy
from corridor.store.scope import Row, Scope, by


@functools.cache
def _remember_once(dialect: str) -> Any:
    """The replay-cache upsert (:meth:`SqlReplay.remember_once`), built once per dialect."""
    table = t.replay_cache
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = dialect_insert(table).values(key=bindparam("key"), expires_at=bindparam("expires_at"))
    return stmt.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={"expires_at": stmt.excluded.expires_at},
        where=table.c.expires_at < bindparam("now"),
    ).returning(table.c.key)


class SqlReplay:
    def __init__(self, scope: Scope) -> None:
        self._s = scope

    def remember_once(self, key: str, expires_at: float, now: float) -> bool:
        """Record ``key`` until ``expires_at``; False if it is already recorded and live.

        One atomic upsert: a live row is left alone (replay), an expired one is reused.
        """
        params = {"key": key, "expires_at": expires_at, "now": now}
        # RETURNING names the row written (inserted, or an expired one reused); rowcount is
        # not reliable for INSERT .. ON CONFLICT on every driver (psycopg 3 reports -1).
        return bool(self._s.rows(_remember_once(self._s.dialect), params, write=True))

    def is_remembered(self, key: str, now: float) -> bool:
        """Whether ``key`` is recorded and live (a read; :meth:`remember_once` writes)."""
        row = self._s.one(by(t.replay_cache, "key"), key)
        return row is not None and row["expires_at"] >= now

    # -- sign-in throttling ------------------------------------------------------------------------

    def _lock_throttle_rows(self, conn: Connection, keys: Sequence[str], now: float) -> dict[str, Row]:
        """The live rows of ``keys`` (an expired row counts as none), locked for this
        transaction: on PostgreSQL by FOR UPDATE, on SQLite by BEGIN IMMEDIATE."""
        table = t.sign_in_throttle
        for key in sorted(set(keys)):  # one order everywhere: no deadlock between two attempts
            conn.execute(
                self._s.db.insert(table)
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
        with self._s.writing() as conn:
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
        with self._s.writing() as conn:
            # The rows are locked in count_attempt's order (sorted keys), each key when it is
            # reached: a DELETE of "user:.." first and "source:.." after would hold one row
            # while waiting for the other, which a concurrent count_attempt holds the other way
            # round (PostgreSQL "deadlock detected" on a double submit of one form).
            for key in sorted(set(reset) | set(undo)):
                if key in reset:
                    conn.execute(delete(table).where(table.c.key == key))
                    continue
                row = self._lock_throttle_rows(conn, [key], now)[key]
                failures = max(row["failures"] - 1, 0)
                values: dict[str, Any] = {"failures": failures}
                if policy.wait(key, failures) == 0:
                    values["locked_until"] = 0.0
                conn.execute(update(table).where(table.c.key == key).values(**values))

    def throttle_state(self, key: str, now: float) -> Row:
        """``failures`` and ``locked_until`` of one key (a read; zero when unknown or expired)."""
        row = self._s.one(by(t.sign_in_throttle, "key"), key)
        if row is None or row["expires_at"] < now:
            return {"failures": 0, "locked_until": 0.0}
        return {"failures": row["failures"], "locked_until": row["locked_until"]}
