"""Signed messages kept as evidence (issue 17, FAPI 2.0 Message Signing 1: non-repudiation):
the SQL repository."""

from __future__ import annotations

from sqlalchemy import delete

from corridor.store import schema as t
from corridor.store.scope import Row, Scope, by


class SqlSignedMessages:
    def __init__(self, scope: Scope) -> None:
        self._s = scope

    def keep(self, sha256: str, kind: str, client_id: str, jws: str, now: float) -> None:
        """Keep ``jws`` under its SHA-256 (a message kept twice is kept once)."""
        table = t.signed_messages
        with self._s.writing() as conn:
            conn.execute(
                self._s.db.insert(table)
                .values(sha256=sha256, kind=kind, client_id=client_id, jws=jws, created_at=now)
                .on_conflict_do_nothing(index_elements=[table.c.sha256])
            )

    def get(self, sha256: str) -> Row | None:
        return self._s.one(by(t.signed_messages, "sha256"), sha256)

    def purge_before(self, time: float) -> int:
        """Retention (issue 13 B4): messages as old as the audit records purged with them."""
        with self._s.writing() as conn:
            return int(
                conn.execute(delete(t.signed_messages).where(t.signed_messages.c.created_at < time)).rowcount
            )
