"""Users and their factors: passwords, TOTP secrets, passkeys (WebAuthn credentials) and
passkey enrolment links (issue 13 C4): the SQL repository."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from corridor.store import schema as t
from corridor.store.scope import Row, Scope, by

#: users.lock_enabled's statement, built once (store/scope.py runs it on the DB-API connection).
_LOCK_USER = select(t.users.c.disabled_at).where(t.users.c.id == bindparam("key")).with_for_update()


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
            select(t.users.c.id, t.users.c.username, t.users.c.created_at, t.users.c.disabled_at).order_by(
                t.users.c.created_at
            )
        )

    def set_password(self, user_id: str, password_hash: str, now: float) -> bool:
        """A new password (``corridor user passwd``); its time is kept as ``password_changed_at``."""
        with self._s.writing() as conn:
            stmt = (
                update(t.users)
                .where(t.users.c.id == user_id)
                .values(password_hash=password_hash, password_changed_at=now)
            )
            return bool(conn.execute(stmt).rowcount == 1)

    def rehash_password(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        """The same password, hashed again (its NFKC form, newer parameters): only if the stored
        hash is still ``old_hash``, so a password set meanwhile is never overwritten."""
        with self._s.writing() as conn:
            stmt = (
                update(t.users)
                .where(t.users.c.id == user_id, t.users.c.password_hash == old_hash)
                .values(password_hash=new_hash)
            )
            return bool(conn.execute(stmt).rowcount == 1)

    def set_disabled(self, user_id: str, disabled_at: float | None) -> bool:
        """Disable the account from ``disabled_at`` (None: enable it again). False if there is no
        such user, or it already is in that state (a second disable keeps the first time)."""
        users = t.users.c
        state = users.disabled_at.is_(None) if disabled_at is not None else users.disabled_at.is_not(None)
        with self._s.writing() as conn:
            stmt = update(t.users).where(users.id == user_id, state).values(disabled_at=disabled_at)
            return bool(conn.execute(stmt).rowcount == 1)

    def lock_enabled(self, user_id: str) -> bool:
        """Whether the user exists and is not disabled, the row held until the unit's transaction
        ends (FOR UPDATE on PostgreSQL; SQLite's write transaction excludes every other writer):
        a grant made in that unit commits wholly before or after a ``user disable``, whose
        revocation then covers it."""
        found = self._s.rows(_LOCK_USER, {"key": user_id}, write=True)
        return bool(found) and found[0]["disabled_at"] is None

    def set_totp_secret(self, username: str, secret: str | None) -> bool:
        with self._s.writing() as conn:
            stmt = update(t.users).where(t.users.c.username == username).values(totp_secret=secret)
            return bool(conn.execute(stmt).rowcount == 1)

    def remove(self, username: str) -> bool:
        """Remove the user and their passkeys (``corridor user remove`` also revokes their grants
        and ends their sessions, in the same unit of work)."""
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
