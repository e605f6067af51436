"""The sign-in throttle's rows are locked in one order everywhere (store/replay.py), so two
attempts at once never deadlock on PostgreSQL. A double submit of the enrolment form found one:
``count_attempt`` locked "source:.." then "user:.." (sorted), while ``forgive_attempt`` of the
other attempt had deleted "user:.." and then waited for "source:..": PostgreSQL's "deadlock
detected", answered 503. Real PostgreSQL; the other transaction is a second real connection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from corridor.store import schema as t
from corridor.store.sql import Store
from tests.support import postgres_database

NOW = 1_000_000.0
ACCOUNT, SOURCE = "user:u1", "source:198.51.100.7"


class Policy:
    """Five failures, then 30 s (the shape of server/signin.py's policy)."""

    def wait(self, key: str, failures: int) -> float:
        return 30.0 if failures >= 5 else 0.0

    def forget(self, key: str) -> float:
        return 86_400.0


@pytest.fixture
def store(postgres_admin: str) -> Iterator[Store]:
    with postgres_database(postgres_admin) as url:
        store = Store(url)
        store.migrate()
        yield store
        store.close()


def _holds_no_lock_on(store: Store, key: str) -> bool:
    """Whether ``key``'s row can be locked at once by a third transaction (NOWAIT)."""
    with store.engine.connect() as conn:
        try:
            conn.execute(
                select(t.sign_in_throttle.c.key)
                .where(t.sign_in_throttle.c.key == key)
                .with_for_update(nowait=True)
            ).all()
        except OperationalError:  # psycopg LockNotAvailable
            return False
        finally:
            conn.rollback()
    return True


def test_forgiving_an_attempt_locks_in_the_order_counting_does(store: Store) -> None:
    policy = Policy()
    counted, _ = store.replay.count_attempt([ACCOUNT, SOURCE], NOW, policy)
    assert counted
    # Another attempt's transaction holds "source:..", the first key in the sorted order.
    with store.engine.connect() as other:
        other.execute(text("SET lock_timeout = '20s'"))
        other.execute(
            select(t.sign_in_throttle).where(t.sign_in_throttle.c.key == SOURCE).with_for_update()
        ).all()
        done = threading.Event()
        failed: list[BaseException] = []

        def forgive() -> None:
            try:
                store.replay.forgive_attempt([ACCOUNT], [SOURCE], NOW + 1, policy)
            except BaseException as exc:  # reported below
                failed.append(exc)
            finally:
                done.set()

        worker = threading.Thread(target=forgive)
        worker.start()
        try:
            assert not done.wait(1.0), failed  # it waits for "source:.." ...
            # ... holding nothing after it in the order: the other attempt can still lock
            # "user:.." (before the fix it was already deleted there, and locked: the cycle).
            assert _holds_no_lock_on(store, ACCOUNT)
        finally:
            other.rollback()
            worker.join(30)
    assert done.is_set() and not failed, failed
    assert store.replay.throttle_state(ACCOUNT, NOW + 1) == {"failures": 0, "locked_until": 0.0}
    assert store.replay.throttle_state(SOURCE, NOW + 1) == {"failures": 0, "locked_until": 0.0}


def test_one_attempt_forgiven_while_another_counts_never_deadlocks(store: Store) -> None:
    """Many rounds of one attempt's forgive_attempt at the same moment as another's count_attempt,
    on the same two keys (the interleaving of the double submit)."""

    class Patient(Policy):
        def wait(self, key: str, failures: int) -> float:
            return 0.0  # nobody waits: every round counts

    policy = Patient()
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def rounds(step: Callable[[float], object]) -> None:
        for i in range(100):
            try:
                start.wait(10)
                step(NOW + i)
            except BaseException as exc:  # reported below
                errors.append(exc)
                start.abort()
                return

    threads = [
        threading.Thread(
            target=rounds, args=(lambda now: store.replay.count_attempt([ACCOUNT, SOURCE], now, policy),)
        ),
        threading.Thread(
            target=rounds, args=(lambda now: store.replay.forgive_attempt([ACCOUNT], [SOURCE], now, policy),)
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
