"""The demo API's ledger (examples/payments_api/ledger.py) under real concurrency, on SQLite and
PostgreSQL (issue 13 D6): OS processes book payments of one grant at once; the decision made
inside each booking sees what the others booked, so together they never pass the limit."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from examples.payments_api.ledger import Ledger, payments
from sqlalchemy import func, select

LIMIT = 10_000  # 100.00
WORKERS = 6


class Refused(Exception):
    pass


def _book(url: str, grant: str, entry: int, amount: int, barrier: Any) -> bool:
    ledger = Ledger(url)
    try:
        barrier.wait()
        try:
            with ledger.booking(grant, time.time()) as booking:
                spent = booking.by_entry.get(entry, 0)
                if spent + amount > LIMIT or booking.spent_minor + amount > 2 * LIMIT:
                    raise Refused
                time.sleep(0.05)  # a slow decision: a check-then-act ledger lets others in here
                record = {"paymentId": str(uuid.uuid4())}
                booking.add("user-1", entry, amount, record, time.time())
        except Refused:
            return False
        return True
    finally:
        ledger.close()


def _race(url: str, grant: str, entries: list[int], amount: int) -> list[bool]:
    # fork: the workers need nothing of the parent but the function (spawn re-imports the
    # example's FastAPI app and the AS for each worker); the parent holds no engine here.
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, ProcessPoolExecutor(len(entries), mp_context=context) as pool:
        barrier = manager.Barrier(len(entries))
        futures = [pool.submit(_book, url, grant, entry, amount, barrier) for entry in entries]
        return [f.result(timeout=120) for f in futures]


def _stored(url: str, grant: str) -> tuple[int, dict[int, int]]:
    ledger = Ledger(url)
    try:
        with ledger.engine.connect() as conn:
            rows = conn.execute(
                select(payments.c.entry, func.count())
                .where(payments.c.grant_key == grant)
                .group_by(payments.c.entry)
            ).all()
        return ledger.spent_minor(grant), {int(e): int(n) for e, n in rows}
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def ledger_url(database: str) -> str:
    Ledger(database).close()  # tables created once, before the processes start
    return database


def test_concurrent_bookings_of_one_grant_stay_within_the_limit(ledger_url: str) -> None:
    """Six processes book 40.00 at once against 100.00: exactly two are booked, 80.00 stored."""
    grant = uuid.uuid4().hex
    booked = _race(ledger_url, grant, [0] * WORKERS, 4000)
    assert sorted(booked) == [False] * 4 + [True] * 2, booked
    assert _stored(ledger_url, grant) == (8000, {0: 2})


def test_entries_are_counted_apart_and_the_grant_in_all(ledger_url: str) -> None:
    """Two entries of one grant, three bookings each at once: each entry gets two (its 100.00),
    the grant's total is 160.00 in its row."""
    grant = uuid.uuid4().hex
    booked = _race(ledger_url, grant, [0, 1] * 3, 4000)
    assert booked.count(True) == 4, booked
    assert _stored(ledger_url, grant) == (16000, {0: 2, 1: 2})


def test_a_refused_booking_stores_nothing(ledger_url: str) -> None:
    grant = uuid.uuid4().hex
    ledger = Ledger(ledger_url)
    try:
        with pytest.raises(Refused), ledger.booking(grant, time.time()) as booking:
            booking.add("user-1", 0, 100, {"paymentId": str(uuid.uuid4())}, time.time())
            raise Refused
        assert ledger.spent_minor(grant) == 0
    finally:
        ledger.close()
    assert _stored(ledger_url, grant) == (0, {})
