"""Users and their factors: passwords, TOTP secrets, passkeys (WebAuthn credentials) and
passkey enrolment links (issue 13 C4): the SQL repository."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from corridor.store import schema as t
from corridor.store.scope import Row, Scope, by


class SqlUsers:
    def __init__(self, scope: Scope) -> None:
        self._s = scope

    def add(self, user_id: str, username: str, password_hash: str, now: float) -> None:
        with self._s.writing() as conn:
            conn.execute(
                insert(t.users).values(
                    id=user_id, username=username, password_hash=password_hash, created_at=now
                )
            )

    def get(self, user_id: str) -> Row | None:
        return self._s.one(by(t.users, "id"), user_id)

    def by_name(self, username: str) -> Row | None:
        return self._s.one(by(t.users, "username"), username)

    def all(self) -> list[Row]:
        return self._s.all(
            select(t.users.c.id, t.users.c.username, t.users.c.created_at).order_by(t.users.c.created_at)
        )

    def set_totp_secret(self, username: str, secret: str | None) -> bool:
        with self._s.writing() as conn:
            stmt = update(t.users).where(t.users.c.username == username).values(totp_secret=secret)
            return bool(conn.execute(stmt).rowcount == 1)

    def remove(self, username: str) -> bool:
        with self._s.writing() as conn:
            user = conn.execute(select(t.users.c.id).where(t.users.c.username == username)).first()
            if user is None:
                return False
            conn.execute(delete(t.passkeys).where(t.passkeys.c.user_id == user.id))
            return bool(conn.execute(delete(t.users).where(t.users.c.id == user.id)).rowcount == 1)

    # -- passkeys ------------------------------------------------------------------------------

    def add_passkey(self, **values: Any) -> bool:
        """Store a newly registered credential; False if its ID is already registered
        (WebAuthn 7.1 step 25: a credential ID belongs to one account)."""
        try:
            with self._s.writing(savepoint=True) as conn:
                conn.execute(insert(t.passkeys).values(**values))
        except IntegrityError:
            return False
        return True

    def passkey(self, credential_id: str) -> Row | None:
        return self._s.one(by(t.passkeys, "credential_id"), credential_id)

    def passkeys(self, user_id: str) -> list[Row]:
        return self._s.all(
            select(t.passkeys).where(t.passkeys.c.user_id == user_id).order_by(t.passkeys.c.created_at)
        )

    def use_passkey(self, credential_id: str, seen_count: int, new_count: int, now: float) -> bool:
        """Advance the signature counter from ``seen_count`` (compare-and-set): of two assertions
        racing with one counter value, one wins (WebAuthn 6.1.1, cloned authenticators)."""
        with self._s.writing() as conn:
            stmt = (
                update(t.passkeys)
                .where(t.passkeys.c.credential_id == credential_id, t.passkeys.c.sign_count == seen_count)
                .values(sign_count=new_count, last_used_at=now)
            )
            return bool(conn.execute(stmt).rowcount == 1)

    def remove_passkey(self, user_id: str, credential_id: str) -> bool:
        with self._s.writing() as conn:
            stmt = delete(t.passkeys).where(
                t.passkeys.c.user_id == user_id, t.passkeys.c.credential_id == credential_id
            )
            return bool(conn.execute(stmt).rowcount == 1)

    # -- enrolment links ------------------------------------------------------------------------

    def add_enrolment_link(self, token_hash: str, user_id: str, now: float, expires_at: float) -> None:
        with self._s.writing() as conn:
            conn.execute(
                insert(t.enrolment_links).values(
                    token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
                )
            )

    def enrolment_link(self, token_hash: str) -> Row | None:
        return self._s.one(by(t.enrolment_links, "token_hash"), token_hash)

    def add_passkey_with_link(self, token_hash: str, now: float, **passkey: Any) -> bool | None:
        """Issue 13 C4: spend an enrolment link and store the passkey it binds, in one transaction.
        None if the link is not this user's, was used or expired (one conditional UPDATE decides);
        False if the credential ID is already registered (the link is then left unspent)."""
        link = t.enrolment_links.c
        try:
            with self._s.writing(savepoint=True) as conn:
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
