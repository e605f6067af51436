"""Registered clients and resource servers (design.md 5b): the SQL repository."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update

from corridor.store import schema as t
from corridor.store.protocols import RemovedClient
from corridor.store.scope import Row, Scope, by


class SqlClients:
    """Clients and resource servers; every change bumps the registrations counter."""

    def __init__(self, scope: Scope) -> None:
        self._s = scope

    @property
    def changes(self) -> int:
        """How many registration changes this process made (caches compare it)."""
        return self._s.db.registrations_changed

    def _changed(self) -> None:
        self._s.db.registrations_changed += 1

    def add(self, client_id: str, name: str, client_metadata: Mapping[str, Any], now: float) -> None:
        with self._s.writing() as conn:
            conn.execute(
                insert(t.clients).values(
                    client_id=client_id, name=name, metadata=json.dumps(client_metadata), created_at=now
                )
            )
        self._changed()

    def get(self, client_id: str) -> Row | None:
        return self._s.one(by(t.clients, "client_id"), client_id)

    def update(self, client_id: str, name: str, client_metadata: Mapping[str, Any]) -> bool:
        """Replace a client's name and metadata (``corridor client update``); False if unknown.
        Other instances see it within ``registration_cache_seconds``, this process at once."""
        stmt = (
            update(t.clients)
            .where(t.clients.c.client_id == client_id)
            .values(name=name, metadata=json.dumps(client_metadata))
        )
        with self._s.writing() as conn:
            changed = conn.execute(stmt).rowcount == 1
        self._changed()
        return bool(changed)

    def all(self) -> list[Row]:
        return self._s.all(select(t.clients).order_by(t.clients.c.created_at))

    def remove(self, client_id: str, now: float) -> RemovedClient | None:
        """Remove a client and, in the same transaction, revoke every grant and access token it
        holds (issue 13 D2): introspection, UserInfo and refresh refuse them at once, here and
        on every instance. None if there is no such client."""
        with self._s.writing() as conn:
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
        self._changed()
        return RemovedClient(grants, tokens)

    def add_resource_server(
        self, identifier: str, name: str, scopes: list[str], introspection_client_id: str | None, now: float
    ) -> None:
        with self._s.writing() as conn:
            conn.execute(
                insert(t.resource_servers).values(
                    identifier=identifier,
                    name=name,
                    scopes=json.dumps(scopes),
                    introspection_client_id=introspection_client_id,
                    created_at=now,
                )
            )
        self._changed()

    def resource_servers(self) -> list[Row]:
        return self._s.all(select(t.resource_servers).order_by(t.resource_servers.c.created_at))

    def remove_resource_server(self, identifier: str) -> bool:
        with self._s.writing() as conn:
            stmt = delete(t.resource_servers).where(t.resource_servers.c.identifier == identifier)
            removed = bool(conn.execute(stmt).rowcount == 1)
        self._changed()
        return removed
