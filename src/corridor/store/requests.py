"""Pushed authorization requests (RFC 9126), browser interactions, and browser and
administrator sessions: the SQL repository."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from corridor.store import schema as t
from corridor.store.scope import Row, Scope, by, into

#: FAPI2 5.3.2.2-12 Note 3, RFC 9126 2.2: spend a pushed request once, while it lives.
_CONSUME_PUSHED = (
    update(t.pushed_requests)
    .where(
        t.pushed_requests.c.ref_hash == bindparam("ref_hash"),
        t.pushed_requests.c.consumed_at.is_(None),
        t.pushed_requests.c.expires_at > bindparam("now"),
    )
    .values(consumed_at=bindparam("now"))
)

#: An interaction and its pushed request in one statement (issue 19): each column labelled by
#: its table ("i_", "p_"), as the two tables share column names.
_INTERACTION_AND_PUSHED = (
    select(
        *(c.label(f"i_{c.name}") for c in t.interactions.c),
        *(c.label(f"p_{c.name}") for c in t.pushed_requests.c),
    )
    .select_from(t.interactions)
    .outerjoin(t.pushed_requests, t.pushed_requests.c.ref_hash == t.interactions.c.ref_hash)
    .where(t.interactions.c.id == bindparam("key"))
)


class SqlRequests:
    def __init__(self, scope: Scope) -> None:
        self._s = scope

    # -- pushed authorization requests ----------------------------------------------------------

    def save_pushed(
        self,
        ref_hash: str,
        client_id: str,
        parameters: Mapping[str, Any],
        dpop_jkt: str | None,
        now: float,
        expires_at: float,
    ) -> None:
        values = {
            "ref_hash": ref_hash,
            "client_id": client_id,
            "parameters": json.dumps(parameters),
            "dpop_jkt": dpop_jkt,
            "created_at": now,
            "expires_at": expires_at,
        }
        self._s.run(into(t.pushed_requests, tuple(values)), values)

    def pushed(self, ref_hash: str) -> Row | None:
        return self._s.one(by(t.pushed_requests, "ref_hash"), ref_hash)

    def consume_pushed(self, ref_hash: str, now: float) -> bool:
        """FAPI2 5.3.2.2-12 Note 3: single use, enforced when the authorization completes, and only
        before ``expires_in`` ends (RFC 9126 2.2; issue 13 D5): one statement decides both."""
        return self._s.run(_CONSUME_PUSHED, {"ref_hash": ref_hash, "now": now}) == 1

    # -- interactions and browser sessions -------------------------------------------------------

    def save_interaction(
        self, interaction_id: str, secret_hash: str, ref_hash: str, csrf: str, now: float, expires_at: float
    ) -> None:
        values = {
            "id": interaction_id,
            "secret_hash": secret_hash,
            "ref_hash": ref_hash,
            "csrf": csrf,
            "created_at": now,
            "expires_at": expires_at,
        }
        self._s.run(into(t.interactions, tuple(values)), values)

    def interaction(self, interaction_id: str) -> Row | None:
        return self._s.one(by(t.interactions, "id"), interaction_id)

    def interaction_and_pushed(self, interaction_id: str) -> tuple[Row | None, Row | None]:
        """An interaction and the pushed request it belongs to (None: no such interaction; no such
        pushed request any more), read in one statement."""
        row = self._s.one(_INTERACTION_AND_PUSHED, interaction_id)
        if row is None:
            return None, None
        interaction = {c.name: row[f"i_{c.name}"] for c in t.interactions.c}
        if row["p_ref_hash"] is None:
            return interaction, None
        return interaction, {c.name: row[f"p_{c.name}"] for c in t.pushed_requests.c}

    def save_browser_session(
        self, id_hash: str, user_id: str, auth_time: float, acr: str, expires_at: float
    ) -> None:
        values = {
            "id_hash": id_hash,
            "user_id": user_id,
            "auth_time": auth_time,
            "acr": acr,
            "expires_at": expires_at,
        }
        self._s.run(into(t.browser_sessions, tuple(values)), values)

    def raise_browser_session(self, id_hash: str, acr: str, auth_time: float) -> bool:
        """A second factor passed: the session's level and authentication time (RFC 9470)."""
        with self._s.writing() as conn:
            stmt = (
                update(t.browser_sessions)
                .where(t.browser_sessions.c.id_hash == id_hash)
                .values(acr=acr, auth_time=auth_time)
            )
            return bool(conn.execute(stmt).rowcount == 1)

    def browser_session(self, id_hash: str) -> Row | None:
        return self._s.one(by(t.browser_sessions, "id_hash"), id_hash)

    def end_user_sessions(self, user_id: str) -> int:
        """Issue 18: end every browser session and administrator session of a user (a new
        password, a disabled or removed account); returns how many ended."""
        with self._s.writing() as conn:
            browser = conn.execute(delete(t.browser_sessions).where(t.browser_sessions.c.user_id == user_id))
            admin = conn.execute(delete(t.admin_sessions).where(t.admin_sessions.c.user_id == user_id))
            return int(browser.rowcount) + int(admin.rowcount)

    # -- administrator sessions (issue 13 C3) ----------------------------------------------------

    def save_admin_session(self, **values: Any) -> None:
        with self._s.writing() as conn:
            conn.execute(insert(t.admin_sessions).values(**values))

    def admin_session(self, id_hash: str) -> Row | None:
        return self._s.one(by(t.admin_sessions, "id_hash"), id_hash)

    def update_admin_session(self, id_hash: str, **values: Any) -> bool:
        """Record use (``last_seen_at``) or a passed second factor (``acr``, ``expires_at``)."""
        with self._s.writing() as conn:
            stmt = update(t.admin_sessions).where(t.admin_sessions.c.id_hash == id_hash).values(**values)
            return bool(conn.execute(stmt).rowcount == 1)

    def remove_admin_session(self, id_hash: str) -> bool:
        with self._s.writing() as conn:
            stmt = delete(t.admin_sessions).where(t.admin_sessions.c.id_hash == id_hash)
            return bool(conn.execute(stmt).rowcount == 1)
