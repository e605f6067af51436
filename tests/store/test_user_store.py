"""The store functions behind ``corridor user passwd/disable/enable/remove`` (issue 18), on a real
SQLite file and a real PostgreSQL database: migration 0010 on existing rows, the password and its
compare-and-set rehash, the disabled flag, the per-user end of sessions and revocation of grants."""

from __future__ import annotations

from alembic import command
from sqlalchemy import insert

from corridor.store import schema as t
from corridor.store.migrate import HEAD_REVISION as HEAD
from corridor.store.migrate import alembic_config, current_revision, upgrade
from corridor.store.protocols import RevokedGrants
from corridor.store.sql import Store
from tests.server.test_store import fresh_store  # noqa: F401 (the fixture, both databases)

NOW = 1_000_000.0


def _user(store: Store, user_id: str) -> None:
    store.users.add(user_id, f"name-{user_id}", "$argon2id$old", NOW)


def _grant(store: Store, grant_id: str, user_id: str, expires_at: float = NOW + 3600) -> None:
    store.grants.insert(
        id=grant_id,
        client_id="c",
        user_id=user_id,
        scope="openid",
        resources="[]",
        auth_time=NOW,
        acr="password",
        created_at=NOW,
        expires_at=expires_at,
    )
    store.grants.insert_access_token(
        jti=f"at-{grant_id}",
        grant_id=grant_id,
        client_id="c",
        cnf_method="dpop",
        cnf_thumbprint="x",
        issued_at=NOW,
        expires_at=NOW + 300,
    )


def test_migration_0010_keeps_existing_users_enabled(fresh_store: Store) -> None:  # noqa: F811
    store = fresh_store
    command.downgrade(alembic_config(store.engine), "0009")
    with store.engine.begin() as conn:  # a user of the schema before 0010
        conn.execute(insert(t.users).values(id="old", username="old", password_hash="h", created_at=NOW))
    upgrade(store.engine)
    assert current_revision(store.engine) == HEAD
    row = store.users.get("old")
    assert row is not None and row["disabled_at"] is None and row["password_changed_at"] is None


def test_set_password_and_a_rehash_that_never_overwrites_a_new_password(fresh_store: Store) -> None:  # noqa: F811
    store = fresh_store
    _user(store, "u1")
    assert store.users.rehash_password("u1", "$argon2id$old", "$argon2id$nfkc") is True
    assert store.users.get("u1")["password_hash"] == "$argon2id$nfkc"  # type: ignore[index]
    assert store.users.set_password("u1", "$argon2id$new", NOW + 5) is True
    # A sign-in that read the hash before the change loses: the new password stays.
    assert store.users.rehash_password("u1", "$argon2id$nfkc", "$argon2id$stale") is False
    row = store.users.get("u1")
    assert row is not None and row["password_hash"] == "$argon2id$new"
    assert row["password_changed_at"] == NOW + 5
    assert store.users.set_password("nobody", "h", NOW) is False


def test_disabled_flag_and_lock_enabled(fresh_store: Store) -> None:  # noqa: F811
    store = fresh_store
    _user(store, "u1")
    with store.unit_of_work() as uow:
        assert uow.users.lock_enabled("u1") is True
        assert uow.users.lock_enabled("nobody") is False
    assert store.users.set_disabled("u1", NOW) is True
    assert store.users.set_disabled("u1", NOW + 9) is False  # the first time stays
    assert store.users.get("u1")["disabled_at"] == NOW  # type: ignore[index]
    with store.unit_of_work() as uow:
        assert uow.users.lock_enabled("u1") is False
    assert store.users.set_disabled("u1", None) is True
    assert store.users.set_disabled("u1", None) is False
    assert store.users.set_disabled("nobody", NOW) is False
    assert [r["disabled_at"] for r in store.users.all()] == [None]


def test_end_user_sessions_ends_browser_and_admin_sessions_of_that_user_only(fresh_store: Store) -> None:  # noqa: F811
    store = fresh_store
    for user_id in ("u1", "u2"):
        store.requests.save_browser_session(f"b-{user_id}", user_id, NOW, "password", NOW + 60)
        store.requests.save_admin_session(
            id_hash=f"a-{user_id}",
            user_id=user_id,
            acr="mfa",
            csrf="x",
            created_at=NOW,
            last_seen_at=NOW,
            expires_at=NOW + 60,
        )
    store.requests.save_browser_session("b-u1-2", "u1", NOW, "mfa", NOW + 60)
    assert store.requests.end_user_sessions("u1") == 3
    assert store.requests.browser_session("b-u1") is None and store.requests.admin_session("a-u1") is None
    assert store.requests.browser_session("b-u2") is not None
    assert store.requests.admin_session("a-u2") is not None
    assert store.requests.end_user_sessions("u1") == 0


def test_revoke_user_revokes_live_grants_and_their_access_tokens_of_that_user_only(
    fresh_store: Store,  # noqa: F811
) -> None:
    store = fresh_store
    _grant(store, "g1", "u1")
    _grant(store, "g2", "u1")
    _grant(store, "g3", "u2")
    _grant(store, "old", "u1", expires_at=NOW - 1)
    assert store.grants.revoke("g2", NOW, "revoked_by_client") is True
    assert store.grants.count_active("u1", NOW) == 1
    with store.unit_of_work() as uow:
        revoked = uow.grants.revoke_user("u1", NOW + 1, "user_disabled")
    # g1 and the expired grant are flagged, with their live tokens; g2 kept its reason (its own
    # revocation already covers its tokens, design.md 5b).
    assert revoked == RevokedGrants(grants=2, access_tokens=2)
    assert store.grants.get("g1")["revoked_reason"] == "user_disabled"  # type: ignore[index]
    assert store.grants.get("g2")["revoked_reason"] == "revoked_by_client"  # type: ignore[index]
    assert store.grants.access_token("at-g1")["revoked_at"] == NOW + 1  # type: ignore[index]
    assert store.grants.get("g3")["revoked_at"] is None  # type: ignore[index]
    assert store.grants.access_token("at-g3")["revoked_at"] is None  # type: ignore[index]
    assert store.grants.count_active("u1", NOW) == 0 and store.grants.count_active("u2", NOW) == 1
    assert store.grants.revoke_user("u1", NOW + 2, "user_disabled") == RevokedGrants(0, 0)


def test_migration_0011_keeps_user_grants_and_allows_grants_without_a_user(fresh_store: Store) -> None:  # noqa: F811
    """Issue 20: user_id, auth_time and acr may be NULL (a client credentials grant); a downgrade
    to 0010 removes those grants (the old schema cannot hold them) and keeps the users' grants."""
    store = fresh_store
    command.downgrade(alembic_config(store.engine), "0010")
    _user(store, "u1")
    _grant(store, "g-user", "u1")  # a grant of the schema before 0011
    upgrade(store.engine)
    assert current_revision(store.engine) == HEAD
    store.grants.insert(
        id="g-client",
        client_id="c",
        user_id=None,
        scope="accounts",
        resources="[]",
        auth_time=None,
        acr=None,
        created_at=NOW,
        expires_at=NOW + 300,
    )
    kept = store.grants.get("g-user")
    assert kept is not None and kept["user_id"] == "u1" and kept["acr"] == "password"
    assert store.grants.get("g-client") is not None
    command.downgrade(alembic_config(store.engine), "0010")
    assert store.grants.get("g-client") is None and store.grants.get("g-user") is not None
    upgrade(store.engine)
