"""Issue 19: the hot statements run on the DB-API connection (store/scope.py ``Database.execute``)
instead of SQLAlchemy Core's execution. Differential tests on a real SQLite file and a real
PostgreSQL database: the same statement through both paths gives the same rows; the driver's
errors arrive as SQLAlchemy's; the unit's statements still fire the engine's events; single-use
consumption and the audit chain behave as before."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from corridor.audit.chain import record_hash
from corridor.store import audit as audit_sql
from corridor.store import grants as grants_sql
from corridor.store import replay as replay_sql
from corridor.store import requests as requests_sql
from corridor.store import schema as t
from corridor.store import users as users_sql
from corridor.store.scope import by, into
from corridor.store.sql import Store
from tests.server.test_store import fresh_store  # noqa: F401 (the fixture, both databases)

NOW = 1_000_000.0


def _seed(store: Store) -> None:
    store.users.add("u1", "alice", "$argon2id$x", NOW)
    store.grants.insert(
        id="g1",
        client_id="c",
        user_id="u1",
        scope="openid",
        resources="[]",
        auth_time=NOW,
        acr="password",
        created_at=NOW,
        expires_at=NOW + 3600,
    )
    store.grants.insert_code(
        code_hash="k1",
        grant_id="g1",
        client_id="c",
        redirect_uri="https://c.example/cb",
        code_challenge="x" * 43,
        dpop_jkt=None,
        nonce="n",
        created_at=NOW,
        expires_at=NOW + 60,
    )
    store.grants.insert_access_token(
        jti="at1",
        grant_id="g1",
        client_id="c",
        cnf_method="dpop",
        cnf_thumbprint="th",
        issued_at=NOW,
        expires_at=NOW + 300,
    )
    store.requests.save_pushed("p1", "c", {"scope": "openid"}, "jkt", NOW, NOW + 60)
    store.requests.save_interaction("i1", "sh", "p1", "csrf", NOW, NOW + 600)
    store.requests.save_browser_session("s1", "u1", NOW, "password", NOW + 3600)
    assert store.replay.remember_once("r1", NOW + 60, NOW)


#: Every statement the DB-API path runs in a flow, with parameters that find the seeded rows.
HOT: list[tuple[str, Any, dict[str, Any]]] = [
    ("users by id", by(t.users, "id"), {"key": "u1"}),
    ("pushed by ref", by(t.pushed_requests, "ref_hash"), {"key": "p1"}),
    ("interaction by id", by(t.interactions, "id"), {"key": "i1"}),
    ("session by hash", by(t.browser_sessions, "id_hash"), {"key": "s1"}),
    ("code by hash", by(t.authorization_codes, "code_hash"), {"key": "k1"}),
    ("grant by id", by(t.grants, "id"), {"key": "g1"}),
    ("replay by key", by(t.replay_cache, "key"), {"key": "r1"}),
    ("client by id (none)", by(t.clients, "client_id"), {"key": "nobody"}),
    ("access token joined", grants_sql._ACCESS_TOKEN, {"key": "at1"}),
    ("interaction and pushed", requests_sql._INTERACTION_AND_PUSHED, {"key": "i1"}),
    ("grant locked", grants_sql._LOCK, {"key": "g1"}),
    ("user locked", users_sql._LOCK_USER, {"key": "u1"}),
]


@pytest.mark.parametrize(("name", "stmt", "params"), HOT, ids=[h[0] for h in HOT])
def test_the_driver_path_returns_the_rows_sqlalchemy_returns(
    fresh_store: Store,  # noqa: F811
    name: str,
    stmt: Any,
    params: dict[str, Any],
) -> None:
    _seed(fresh_store)
    db = fresh_store._db
    with fresh_store.engine.connect() as conn:
        expected = [dict(row) for row in conn.execute(stmt, params).mappings()]
    alone = db.execute(None, stmt, params, rows=True)[0]
    with fresh_store.unit_of_work() as uow:
        in_unit = db.execute(uow.audit._s.conn, stmt, params, rows=True)[0]  # type: ignore[attr-defined]
    assert alone == expected and in_unit == expected, name
    assert [{k: type(v) for k, v in r.items()} for r in alone] == [
        {k: type(v) for k, v in r.items()} for r in expected
    ]


def test_writes_through_the_driver_path_store_what_sqlalchemy_reads(fresh_store: Store) -> None:  # noqa: F811
    _seed(fresh_store)
    with fresh_store.engine.connect() as conn:
        token = conn.execute(select(t.access_tokens).where(t.access_tokens.c.jti == "at1")).mappings().one()
        pushed = conn.execute(select(t.pushed_requests)).mappings().one()
    assert dict(token) == {
        "jti": "at1",
        "grant_id": "g1",
        "client_id": "c",
        "cnf_method": "dpop",
        "cnf_thumbprint": "th",
        "issued_at": NOW,
        "expires_at": NOW + 300,
        "revoked_at": None,
    }
    assert pushed["parameters"] == '{"scope": "openid"}' and pushed["consumed_at"] is None


def test_an_int_into_a_float_column_is_a_float_both_ways(fresh_store: Store) -> None:  # noqa: F811
    """SQLAlchemy's bind processors still apply (an ``int`` time into a ``Float`` column)."""
    fresh_store.requests.save_browser_session("s2", "u1", 5, "password", 7)
    row = fresh_store.requests.browser_session("s2")
    assert row is not None and row["auth_time"] == 5.0 and type(row["auth_time"]) is float


def test_single_use_consumption_on_the_driver_path(fresh_store: Store) -> None:  # noqa: F811
    _seed(fresh_store)
    with fresh_store.unit_of_work() as uow:
        assert uow.grants.consume_code("k1", NOW + 1) is True
        assert uow.grants.consume_code("k1", NOW + 2) is False
        assert uow.requests.consume_pushed("p1", NOW + 1) is True
        assert uow.requests.consume_pushed("p1", NOW + 1) is False
        assert uow.replay.remember_once("r1", NOW + 60, NOW + 1) is False  # live: a replay
        assert uow.replay.remember_once("r2", NOW + 60, NOW + 1) is True
    assert fresh_store.replay.remember_once("r1", NOW + 200, NOW + 61) is True  # expired: reused
    code = fresh_store.grants.code("k1")
    assert code is not None and code["consumed_at"] == NOW + 1


def test_a_rolled_back_unit_leaves_nothing_of_the_driver_path(fresh_store: Store) -> None:  # noqa: F811
    _seed(fresh_store)
    with pytest.raises(RuntimeError), fresh_store.unit_of_work() as uow:
        assert uow.grants.consume_code("k1", NOW + 1)
        uow.replay.remember_once("r3", NOW + 60, NOW)
        raise RuntimeError("refused after the consume")
    code = fresh_store.grants.code("k1")
    assert code is not None and code["consumed_at"] is None
    assert not fresh_store.replay.is_remembered("r3", NOW)


def test_driver_errors_arrive_as_sqlalchemy_errors(fresh_store: Store) -> None:  # noqa: F811
    """Callers catch SQLAlchemy's IntegrityError (a credential ID taken); the unit rolls back."""
    _seed(fresh_store)
    with pytest.raises(IntegrityError), fresh_store.unit_of_work() as uow:
        uow.requests.save_interaction("i9", "sh", "p1", "csrf", NOW, NOW + 600)
        uow.requests.save_interaction("i1", "sh", "p1", "csrf", NOW, NOW + 600)  # taken
    assert fresh_store.requests.interaction("i9") is None


def test_the_units_statements_fire_the_engines_events(fresh_store: Store) -> None:  # noqa: F811
    """tests/store/test_units_of_work.py counts transactions with these events."""
    seen: list[str] = []

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append(sql.split()[0].upper())

    event.listen(fresh_store.engine, "before_cursor_execute", statement)
    try:
        with fresh_store.unit_of_work() as uow:
            uow.requests.save_pushed("p9", "c", {}, None, NOW, NOW + 60)
            uow.requests.consume_pushed("p9", NOW)
    finally:
        event.remove(fresh_store.engine, "before_cursor_execute", statement)
    assert seen[-2:] == ["INSERT", "UPDATE"], seen


def test_statements_sqlalchemy_must_convert_stay_on_its_path(fresh_store: Store) -> None:  # noqa: F811
    """A Boolean column (passkeys.backed_up) is converted by SQLAlchemy on SQLite: not prepared."""
    fresh_store.users.add("u2", "bob", "$argon2id$x", NOW)
    assert fresh_store.users.add_passkey(
        credential_id="cred",
        user_id="u2",
        public_key="pk",
        sign_count=0,
        aaguid="0" * 36,
        transports="[]",
        backed_up=True,
        created_at=NOW,
    )
    row = fresh_store.users.passkey("cred")
    assert row is not None and row["backed_up"] is True


def test_appends_in_one_unit_chain_in_order(fresh_store: Store) -> None:  # noqa: F811
    """The unit reads its chain head once and keeps it (it holds the head's lock): the records
    still follow each other (seq, prev_hash), and the head names the last one."""
    record = {"time": NOW, "event": "consent", "outcome": "shown"}
    first = fresh_store.audit.append("w", record, record_hash)
    with fresh_store.unit_of_work() as uow:
        second = uow.audit.append("w", record, record_hash)
        third = uow.audit.append("w", {**record, "outcome": "granted"}, record_hash)
    with pytest.raises(RuntimeError), fresh_store.unit_of_work() as uow:
        uow.audit.append("w", record, record_hash)
        raise RuntimeError("rolled back: no gap")
    fourth = fresh_store.audit.append("w", record, record_hash)
    rows = [first, second, third, fourth]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    assert fresh_store.audit.heads()["w"] == {"writer": "w", "seq": 4, "hash": fourth["hash"]}
    assert [r["hash"] for r in fresh_store.audit.chain("w")] == [r["hash"] for r in rows]


def test_an_adoption_between_appends_is_followed(fresh_store: Store) -> None:  # noqa: F811
    record = {"time": NOW, "event": "consent", "outcome": "shown"}
    with fresh_store.unit_of_work() as uow:
        first = uow.audit.append("w", record, record_hash)
        row = {**record, "writer": "w", "seq": 2, "prev_hash": first["hash"]}
        row["hash"] = record_hash(row)
        assert uow.audit.adopt("w", [row]) == 1
        third = uow.audit.append("w", record, record_hash)
    assert third["seq"] == 3 and third["prev_hash"] == row["hash"]


def test_the_hot_statements_are_prepared_for_both_dialects(fresh_store: Store) -> None:  # noqa: F811
    """Every statement the flow runs on the DB-API path compiles for this dialect."""
    db = fresh_store._db
    statements = [h[1] for h in HOT] + [
        audit_sql._HEAD,
        audit_sql._ADVANCE,
        grants_sql._SET_REFRESH_TOKEN,
        grants_sql._CONSUME_CODE,
        requests_sql._CONSUME_PUSHED,
        replay_sql._remember_once(fresh_store.dialect),
        into(t.grants, ("id", "scope")),
    ]
    assert all(db.prepared(stmt) is not None for stmt in statements)


def test_an_interaction_and_its_pushed_request_in_one_read(fresh_store: Store) -> None:  # noqa: F811
    """What the interaction pages read in one statement is what the two reads give."""
    _seed(fresh_store)
    fresh_store.requests.save_interaction("i2", "sh", "gone", "csrf", NOW, NOW + 600)
    requests = fresh_store.requests
    assert requests.interaction_and_pushed("i1") == (requests.interaction("i1"), requests.pushed("p1"))
    assert requests.interaction_and_pushed("i2") == (requests.interaction("i2"), None)
    assert requests.interaction_and_pushed("nope") == (None, None)


def test_a_database_that_does_not_answer_is_an_outage_error_not_a_driver_error() -> None:
    """A single read on the driver path whose pool checkout fails (the server down or shutting
    down) raises SQLAlchemy's OperationalError, one of DATABASE_UNAVAILABLE (the 503 with
    Retry-After), as Engine.connect would; the driver's own error was a 500 (the fresh-clone run
    of tests/cluster/test_faults.py::test_postgresql_restarted_under_load found it)."""
    from sqlalchemy.exc import OperationalError

    from corridor.store.engine import DATABASE_UNAVAILABLE, create_store_engine
    from corridor.store.scope import Database, Scope

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = create_store_engine(f"postgresql://root@127.0.0.1:{port}/test", pool_timeout=1.0)
    try:
        with pytest.raises(OperationalError) as caught:
            Scope(Database(engine)).one(by(t.users, "id"), "u1")
        assert isinstance(caught.value, DATABASE_UNAVAILABLE)
    finally:
        engine.dispose()
