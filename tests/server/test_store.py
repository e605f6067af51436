"""The store's single-use primitives and housekeeping, on a real SQLite file and a real
PostgreSQL database (a fresh one per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from corridor.store.schema import metadata
from corridor.store.sql import Store
from tests.support import postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'store.db'}")
        store.migrate()
        yield store
        store.close()
        return
    with postgres_database(request.getfixturevalue("postgres_admin")) as url:
        store = Store(url)
        store.migrate()
        yield store
        store.close()


def test_the_migrations_build_exactly_the_declared_schema(fresh_store: Store) -> None:
    """One Alembic history for both databases; it must end where store/schema.py says."""
    with fresh_store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_remember_once_is_single_use_until_expiry(fresh_store: Store) -> None:
    store = fresh_store
    assert store.replay.remember_once("k", expires_at=100.0, now=10.0) is True
    assert store.replay.remember_once("k", expires_at=200.0, now=50.0) is False  # live: a replay
    assert store.replay.remember_once("k", expires_at=300.0, now=150.0) is True  # expired: reusable
    assert store.replay.remember_once("k", expires_at=400.0, now=160.0) is False


def test_migrations_are_idempotent_and_purge_removes_only_expired_rows(fresh_store: Store) -> None:
    store = fresh_store
    store.migrate()  # a second start migrates nothing and fails nothing
    store.replay.remember_once("old", expires_at=10.0, now=0.0)
    store.replay.remember_once("live", expires_at=1000.0, now=0.0)
    store.requests.save_pushed("r1", "c", {}, None, now=0.0, expires_at=10.0)
    store.requests.save_pushed("r2", "c", {}, None, now=0.0, expires_at=1000.0)
    assert store.purge_expired(now=500.0) == 2
    assert store.requests.pushed("r1") is None and store.requests.pushed("r2") is not None
    assert store.replay.remember_once("live", expires_at=2000.0, now=500.0) is False


def test_secret_is_created_once(fresh_store: Store) -> None:
    store = fresh_store
    first = store.keys.secret("s", lambda: "one", now=0.0)
    assert store.keys.secret("s", lambda: "two", now=1.0) == first == "one"
    assert Store(store.url).keys.secret("s", lambda: "three", now=2.0) == "one"


def test_purge_takes_expired_tokens_and_grants_in_batches_a_day_after_expiry(fresh_store: Store) -> None:
    """Expired rows go in small batches (each its own short transaction), live ones stay."""
    from sqlalchemy import func, insert, select

    from corridor.store import schema as t

    day = 86_400.0
    with fresh_store.engine.begin() as conn:
        conn.execute(
            insert(t.grants),
            [
                {
                    "id": f"g{i}",
                    "client_id": "c",
                    "user_id": "u",
                    "scope": "openid",
                    "resources": "[]",
                    "auth_time": 0.0,
                    "acr": "password",
                    "created_at": 0.0,
                    "expires_at": 100.0 if i < 2500 else 10 * day,
                }
                for i in range(2600)
            ],
        )
        conn.execute(
            insert(t.access_tokens),
            [
                {
                    "jti": f"t{i}",
                    "grant_id": f"g{i}",
                    "client_id": "c",
                    "cnf_method": "dpop",
                    "cnf_thumbprint": "x",
                    "issued_at": 0.0,
                    "expires_at": 100.0 if i < 2500 else 10 * day,
                }
                for i in range(2600)
            ],
        )
    assert fresh_store.purge_expired(now=day + 50.0, batch=1000) == 0  # expired less than a day ago
    assert fresh_store.purge_expired(now=day + 101.0, batch=1000) == 5000
    with fresh_store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.grants)).scalar_one() == 100
        assert conn.execute(select(func.count()).select_from(t.access_tokens)).scalar_one() == 100
    assert fresh_store.grants.get("g2599") is not None and fresh_store.grants.get("g0") is None


def test_a_nested_write_raises_at_once_and_rolls_the_outer_one_back(fresh_store: Store) -> None:
    """Issue 13 B7, design.md 4: a write opened inside a write on the same thread is a programming
    error raised at once (never a wait on the write lock); the outer unit of work rolls back, and
    the store goes on serving writes, from this thread and from others."""
    import threading

    from corridor.audit.log import AuditLog, Evidence
    from corridor.audit.sinks import SqlSink
    from corridor.store.sql import NestedWrite

    store = fresh_store
    audit = AuditLog(SqlSink(store))
    outcome: list[BaseException | None] = []

    def nest(inner: str) -> None:
        try:
            with store.unit_of_work() as uow:
                uow.requests.consume_pushed("r", now=1.0)
                if inner == "store":
                    store.replay.remember_once("nested", expires_at=100.0, now=1.0)
                else:  # an audit record without the open unit is a write of its own
                    audit.append(
                        Evidence(issuer="https://as.example", request_id="r"), "test", "refused", 1.0
                    )
        except BaseException as error:
            outcome.append(error)
        else:
            outcome.append(None)

    store.requests.save_pushed("r", "c", {}, None, now=0.0, expires_at=1000.0)
    for inner in ("store", "audit"):
        worker = threading.Thread(target=nest, args=(inner,), daemon=True)
        worker.start()
        worker.join(5)
        assert not worker.is_alive(), f"a nested {inner} write waited instead of raising"
        assert isinstance(outcome[-1], NestedWrite), outcome[-1]
    row = store.requests.pushed("r")
    assert row is not None and row["consumed_at"] is None  # the outer transaction rolled back
    assert store.replay.is_remembered("nested", now=2.0) is False
    assert store.audit.records() == []
    # Not wedged: plain writes still work, here and on another thread.
    assert store.replay.remember_once("after", expires_at=100.0, now=1.0) is True
    other = threading.Thread(target=store.replay.remember_once, args=("other", 100.0, 1.0))
    other.start()
    other.join(5)
    assert store.replay.is_remembered("other", now=2.0) is True


def test_a_unit_of_work_commits_together_or_not_at_all(fresh_store: Store) -> None:
    """Design.md 4: what a unit writes (a consume, a mint, its evidence record) commits when the
    ``with`` block ends and rolls back together when it raises; reads inside see its writes."""
    from corridor.audit.log import AuditLog, Evidence
    from corridor.audit.sinks import SqlSink

    store = fresh_store
    audit = AuditLog(SqlSink(store))
    evidence = Evidence(issuer="https://as.example", request_id="r")
    store.requests.save_pushed("r", "c", {}, None, now=0.0, expires_at=1000.0)
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        assert uow.requests.consume_pushed("r", now=1.0) is True
        assert uow.replay.remember_once("jti", expires_at=100.0, now=1.0) is True
        audit.append(evidence, "test", "granted", 1.0, conn=uow)
        assert uow.requests.pushed("r")["consumed_at"] == 1.0  # type: ignore[index]
        raise RuntimeError("the mint failed")
    assert store.requests.pushed("r")["consumed_at"] is None  # type: ignore[index]
    assert not store.replay.is_remembered("jti", now=2.0) and store.audit.records() == []
    with store.unit_of_work() as uow:
        assert uow.requests.consume_pushed("r", now=1.0) is True
        audit.append(evidence, "test", "granted", 1.0, conn=uow)
    assert store.requests.pushed("r")["consumed_at"] == 1.0  # type: ignore[index]
    assert [row["event"] for row in store.audit.records()] == ["test"]
