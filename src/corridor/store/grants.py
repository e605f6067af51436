"""Grants, authorization codes, access tokens, refresh tokens and revocation (RFC 6749,
RFC 7009; revocation is a flag on the grant, design.md 5b): the SQL repository."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select, update

from corridor.store import schema as t
from corridor.store.protocols import RevokedGrants
from corridor.store.scope import Row, Scope, by, into

#: The hot statements of a flow, built once (store/scope.py runs them on the DB-API connection).
_LOCK = select(t.grants).where(t.grants.c.id == bindparam("key")).with_for_update()
_SET_REFRESH_TOKEN = (
    update(t.grants).where(t.grants.c.id == bindparam("key")).values(refresh_token_hash=bindparam("rt_hash"))
)
#: RFC 6749 4.1.2: a code is used once; one conditional UPDATE decides the winner.
_CONSUME_CODE = (
    update(t.authorization_codes)
    .where(
        t.authorization_codes.c.code_hash == bindparam("key"), t.authorization_codes.c.consumed_at.is_(None)
    )
    .values(consumed_at=bindparam("now"))
)
#: The token row joined with its grant's revocation flag and user.
_ACCESS_TOKEN = (
    select(t.access_tokens, t.grants.c.revoked_at.label("grant_revoked_at"), t.grants.c.user_id)
    .join(t.grants, t.grants.c.id == t.access_tokens.c.grant_id)
    .where(t.access_tokens.c.jti == bindparam("key"))
)


class SqlGrants:
    def __init__(self, scope: Scope) -> None:
        self._s = scope

    def _write(self, stmt: Any) -> int:
        with self._s.writing() as conn:
            return int(conn.execute(stmt).rowcount)

    # -- grants ----------------------------------------------------------------------------------

    def insert(self, **values: Any) -> None:
        self._s.run(into(t.grants, tuple(values)), values)

    def get(self, grant_id: str) -> Row | None:
        return self._s.one(by(t.grants, "id"), grant_id)

    def by_refresh_token(self, rt_hash: str) -> Row | None:
        return self._s.one(by(t.grants, "refresh_token_hash"), rt_hash)

    def lock(self, grant_id: str) -> Row | None:
        """The grant row, held until the unit's transaction ends, so a revocation commits wholly
        before or wholly after a check-and-mint (issue 13 D3): PostgreSQL locks the row (FOR
        UPDATE; a racing UPDATE waits, and we read its committed result); SQLite's write
        transaction (BEGIN IMMEDIATE) already excludes every other writer."""
        found = self._s.rows(_LOCK, {"key": grant_id}, write=True)
        return found[0] if found else None

    def revoke(self, grant_id: str, now: float, reason: str) -> bool:
        """Revocation is a flag on the grant (design.md 5b); it covers every token of the grant."""
        stmt = (
            update(t.grants)
            .where(t.grants.c.id == grant_id, t.grants.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        return self._write(stmt) == 1

    def listed(self, user_id: str | None = None, client_id: str | None = None, limit: int = 100) -> list[Row]:
        """The newest ``limit`` grants (of a user, of a client), each with its user's name
        (``username``, None once the user is removed): what an operator lists."""
        grants = t.grants
        stmt = (
            select(grants, t.users.c.username)
            .outerjoin(t.users, t.users.c.id == grants.c.user_id)
            .order_by(grants.c.created_at.desc(), grants.c.id)
            .limit(limit)
        )
        if user_id is not None:
            stmt = stmt.where(grants.c.user_id == user_id)
        if client_id is not None:
            stmt = stmt.where(grants.c.client_id == client_id)
        return self._s.all(stmt)

    def access_tokens(self, grant_id: str) -> list[Row]:
        """The access tokens issued under a grant, oldest first (jti, times, revocation, binding)."""
        tokens = t.access_tokens
        return self._s.all(select(tokens).where(tokens.c.grant_id == grant_id).order_by(tokens.c.issued_at))

    def revoke_all(
        self,
        now: float,
        reason: str,
        *,
        grant_id: str | None = None,
        user_id: str | None = None,
        client_id: str | None = None,
    ) -> list[Row]:
        """Revoke, in one transaction, every live grant that is ``grant_id``, or of ``user_id``,
        or of ``client_id`` (exactly one is given), and mark their access tokens revoked: the
        refresh token and every access token are refused at once, here and on every instance
        (RFC 7009 2.1: a grant's revocation covers its tokens). Returns the grants revoked
        (revoked now), each with ``access_tokens`` = how many live tokens it had."""
        grants, tokens = t.grants, t.access_tokens
        chosen = {"id": grant_id, "user_id": user_id, "client_id": client_id}
        given = [(column, value) for column, value in chosen.items() if value is not None]
        if len(given) != 1:
            raise ValueError("revoke_all takes exactly one of grant_id, user_id, client_id")
        column, value = given[0]
        with self._s.writing() as conn:
            stmt = (
                update(grants)
                .where(grants.c[column] == value, grants.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
                .returning(*grants.c)
            )
            revoked = [dict(r) for r in conn.execute(stmt).mappings()]
            if not revoked:
                return []
            # Their tokens, by a subquery (a client may hold more grants than a statement takes
            # parameters): the grants of the chosen one just revoked by this statement.
            just_revoked = select(grants.c.id).where(
                grants.c[column] == value, grants.c.revoked_at == now, grants.c.revoked_reason == reason
            )
            of_them = (tokens.c.grant_id.in_(just_revoked), tokens.c.revoked_at.is_(None))
            counts: dict[str, int] = dict(
                conn.execute(
                    select(tokens.c.grant_id, func.count())
                    .where(*of_them, tokens.c.expires_at > now)
                    .group_by(tokens.c.grant_id)
                ).all()
            )
            conn.execute(update(tokens).where(*of_them).values(revoked_at=now))
        for row in revoked:
            row["access_tokens"] = int(counts.get(row["id"], 0))
        return revoked

    def revoke_user(self, user_id: str, now: float, reason: str) -> RevokedGrants:
        """Issue 18: revoke every live grant of a user (their refresh tokens with them) and every
        access token of those grants, in one write (``revoke_all``): introspection, UserInfo and
        refresh refuse them at once, on every instance."""
        revoked = self.revoke_all(now, reason, user_id=user_id)
        return RevokedGrants(len(revoked), sum(row["access_tokens"] for row in revoked))

    def count_active(self, user_id: str, now: float) -> int:
        """How many of a user's grants are neither revoked nor expired."""
        grants = t.grants.c
        stmt = select(func.count().label("n")).where(
            grants.user_id == user_id, grants.revoked_at.is_(None), grants.expires_at > now
        )
        row = self._s.one(stmt)
        return int(row["n"]) if row else 0

    def set_refresh_token(self, grant_id: str, rt_hash: str) -> None:
        self._s.run(_SET_REFRESH_TOKEN, {"key": grant_id, "rt_hash": rt_hash})

    # -- authorization codes ---------------------------------------------------------------------

    def insert_code(self, **values: Any) -> None:
        self._s.run(into(t.authorization_codes, tuple(values)), values)

    def code(self, code_hash: str) -> Row | None:
        return self._s.one(by(t.authorization_codes, "code_hash"), code_hash)

    def consume_code(self, code_hash: str, now: float) -> bool:
        """RFC 6749 4.1.2: a code is used once; one conditional UPDATE decides the winner."""
        return self._s.run(_CONSUME_CODE, {"key": code_hash, "now": now}) == 1

    # -- access tokens ---------------------------------------------------------------------------

    def insert_access_token(self, **values: Any) -> None:
        self._s.run(into(t.access_tokens, tuple(values)), values)

    def access_token(self, jti: str) -> Row | None:
        """The token row joined with its grant's revocation flag."""
        return self._s.one(_ACCESS_TOKEN, jti)

    def revoke_access_token(self, jti: str, now: float) -> bool:
        tokens = t.access_tokens
        stmt = update(tokens).where(tokens.c.jti == jti, tokens.c.revoked_at.is_(None)).values(revoked_at=now)
        return self._write(stmt) == 1
