"""The store's single-use primitives and housekeeping, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from corridor.store.sql import Store


def store_at(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    return store


def test_remember_once_is_single_use_until_expiry(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    assert store.remember_once("k", expires_at=100.0, now=10.0) is True
    assert store.remember_once("k", expires_at=200.0, now=50.0) is False  # live: a replay
    assert store.remember_once("k", expires_at=300.0, now=150.0) is True  # expired: reusable
    assert store.remember_once("k", expires_at=400.0, now=160.0) is False


def test_migrations_are_idempotent_and_purge_removes_only_expired_rows(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.migrate()  # a second start migrates nothing and fails nothing
    store.remember_once("old", expires_at=10.0, now=0.0)
    store.remember_once("live", expires_at=1000.0, now=0.0)
    store.save_pushed_request("r1", "c", {}, None, now=0.0, expires_at=10.0)
    store.save_pushed_request("r2", "c", {}, None, now=0.0, expires_at=1000.0)
    assert store.purge_expired(now=500.0) == 2
    assert store.get_pushed_request("r1") is None and store.get_pushed_request("r2") is not None
    assert store.remember_once("live", expires_at=2000.0, now=500.0) is False


def test_secret_is_created_once(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    first = store.secret("s", lambda: "one", now=0.0)
    assert store.secret("s", lambda: "two", now=1.0) == first == "one"
    assert Store(store.url).secret("s", lambda: "three", now=2.0) == "one"
