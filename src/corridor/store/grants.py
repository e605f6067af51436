"""Grants, authorization codes, access tokens, refresh tokens and revocation (RFC 6749,
RFC 7009; revocation is a flag on the grant, design.md 5b): the SQL repository."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update

from corridor.store import schema as t
from corridor.store.protocols import RevokedGrants
from corridor.store.scope import Row, Scope, by


class SqlGrants:
    def __init__(self, scope: Scope) -> None:
        self._s = scope

    def _write(self, stmt: Any) -> int:
        with self._s.writing() as conn:
            return int(conn.execute(stmt).rowcount)

    # -- grants ----------------------------------------------------------------------------------

    def insert(self, **values: Any) -> None:
        self._write(insert(t.grants).values(**values))

    def get(self, grant_id: str) -> Row | None:
        return self._s.one(by(t.grants, "id"), grant_id)

    def by_refresh_token(self, rt_hash: str) -> Row | None:
        return self._s.one(by(t.grants, "refresh_token_hash"), rt_hash)

    def lock(self, grant_id: str) -> Row | None:
        """The grant row, held until the unit's transaction ends, so a revocation commits wholly
        before or wholly after a check-and-mint (issue 13 D3): PostgreSQL locks the row (FOR
        UPDATE; a racing UPDATE waits, and we read its committed result); SQLite's write
        transaction (BEGIN IMMEDIATE) already excludes every other writer."""
        with self._s.writing() as conn:
            row = conn.execute(select(t.grants).where(t.grants.c.id == grant_id).with_for_update())
            found = row.mappings().first()
            return dict(found) if found is not None else None

    def revoke(self, grant_id: str, now: float, reason: str) -> bool:
        """Revocation is a flag on the grant (design.md 5b); it covers every token of the grant."""
        stmt = (
            update(t.grants)
            .where(t.grants.c.id == grant_id, t.grants.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        return self._write(stmt) == 1

    def revoke_user(self, user_id: str, now: float, reason: str) -> RevokedGrants:
        """Issue 18: revoke every live grant of a user (their refresh tokens with them) and every
        access token of those grants, in one write: introspection, UserInfo and refresh refuse
        them at once, on every instance."""
        grants, tokens = t.grants.c, t.access_tokens.c
        of_user = select(grants.id).where(grants.user_id == user_id).scalar_subquery()
        with self._s.writing() as conn:
            revoked = conn.execute(
                update(t.grants)
                .where(grants.user_id == user_id, grants.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
            ).rowcount
            access = conn.execute(
                update(t.access_tokens)
                .where(tokens.grant_id.in_(of_user), tokens.revoked_at.is_(None), tokens.expires_at > now)
                .values(revoked_at=now)
            ).rowcount
        return RevokedGrants(int(revoked), int(access))

    def count_active(self, user_id: str, now: float) -> int:
        """How many of a user's grants are neither revoked nor expired."""
        grants = t.grants.c
        stmt = select(func.count().label("n")).where(
            grants.user_id == user_id, grants.revoked_at.is_(None), grants.expires_at > now
        )
        row = self._s.one(stmt)
        return int(row["n"]) if row else 0

    def set_refresh_token(self, grant_id: str, rt_hash: str) -> None:
        self._write(update(t.grants).where(t.grants.c.id == grant_id).values(refresh_token_hash=rt_hash))

    # -- authorization codes ---------------------------------------------------------------------

    def insert_code(self, **values: Any) -> None:
        self._write(insert(t.authorization_codes).values(**values))

    def code(self, code_hash: str) -> Row | None:
        return self._s.one(by(t.authorization_codes, "code_hash"), code_hash)

    def consume_code(self, code_hash: str, now: float) -> bool:
        """RFC 6749 4.1.2: a code is used once; one conditional UPDATE decides the winner."""
        codes = t.authorization_codes
        stmt = (
            update(codes)
            .where(codes.c.code_hash == code_hash, codes.c.consumed_at.is_(None))
            .values(consumed_at=now)
        )
        return self._write(stmt) == 1

    # -- access tokens ---------------------------------------------------------------------------

    def insert_access_token(self, **values: Any) -> None:
        self._write(insert(t.access_tokens).values(**values))

    def access_token(self, jti: str) -> Row | None:
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
        return self._s.one(stmt)

    def revoke_access_token(self, jti: str, now: float) -> bool:
        tokens = t.access_tokens
        stmt = update(tokens).where(tokens.c.jti == jti, tokens.c.revoked_at.is_(None)).values(revoked_at=now)
        return self._write(stmt) == 1
