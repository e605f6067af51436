"""Signing keys (in the database, design.md 5b) and shared secrets: the SQL repository."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from corridor.store import schema as t
from corridor.store.scope import Row, Scope


def _signing_key(
    kid: str,
    alg: str,
    private_jwk: Mapping[str, Any],
    state: str,
    now: float,
    activates_at: float | None = None,
) -> Any:
    return insert(t.signing_keys).values(
        kid=kid,
        alg=alg,
        private_jwk=json.dumps(private_jwk),
        state=state,
        created_at=now,
        activates_at=now if activates_at is None else activates_at,
    )


class SqlKeys:
    def __init__(self, scope: Scope) -> None:
        self._s = scope

    def signing_keys(self) -> list[Row]:
        return self._s.all(select(t.signing_keys).order_by(t.signing_keys.c.created_at))

    def add_signing_key(
        self,
        kid: str,
        alg: str,
        private_jwk: Mapping[str, Any],
        state: str,
        now: float,
        activates_at: float | None = None,
    ) -> None:
        with self._s.writing() as conn:
            conn.execute(_signing_key(kid, alg, private_jwk, state, now, activates_at))

    def add_first_signing_key(self, kid: str, alg: str, private_jwk: Mapping[str, Any], now: float) -> bool:
        """The first key, unless another instance made one first (False then)."""
        with self._s.writing() as conn:
            if self._s.dialect == "postgresql":  # instances starting together: one at a time here
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(74202)")
            if conn.execute(select(t.signing_keys.c.kid).limit(1)).first() is not None:
                return False
            conn.execute(_signing_key(kid, alg, private_jwk, "active", now))
            return True

    def secret(self, name: str, make: Callable[[], str], now: float) -> str:
        """The shared secret ``name``, created once; every instance reads the same value."""
        stmt = select(t.server_secrets.c.value).where(t.server_secrets.c.name == name)
        row = self._s.one(stmt)
        if row is not None:
            return str(row["value"])
        try:
            with self._s.writing(savepoint=True) as conn:
                conn.execute(insert(t.server_secrets).values(name=name, value=make(), created_at=now))
        except IntegrityError:
            pass  # another instance created it first; read theirs below
        row = self._s.one(stmt)
        assert row is not None
        return str(row["value"])
