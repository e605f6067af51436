"""The demo API's ledger: accepted payments and what each grant has spent, durable and per grant
(issue 13 D6), in a SQL database through SQLAlchemy (a SQLite file by default, PostgreSQL too).

A payment is decided and booked in one transaction that holds the grant's row: on SQLite the
transaction begins with ``BEGIN IMMEDIATE`` (the database's write lock, taken up front, as
``corridor.store`` does), on PostgreSQL it locks the grant's row (``SELECT ... FOR UPDATE``).
So two payments of one grant, from two threads or two processes or two API instances on one
database, are decided one after the other, each seeing what the other spent: the cumulative
limit cannot be passed by racing it (the check and the booking are one unit of work).

What a grant spent is kept in its ``demo_grants`` row (``spent_minor``, updated in the same
transaction as the payment is inserted, and only if it still has the value the decision saw)
and, per ``payment_initiation`` entry, in the payments themselves (``entry``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from corridor.store.sql import create_store_engine

metadata = MetaData()

grants = Table(
    "demo_grants",
    metadata,
    Column("grant_key", String(64), primary_key=True),
    Column("spent_minor", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

payments = Table(
    "demo_payments",
    metadata,
    Column("payment_id", String(36), primary_key=True),
    Column("grant_key", String(64), nullable=False, index=True),
    Column("subject", String(255), nullable=False, index=True),
    #: The payment_initiation entry (index in the token's authorization_details) it went against.
    Column("entry", Integer, nullable=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("record", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

#: GET /accounts shows at most this many of the user's latest payments.
SHOWN_PAYMENTS = 1000


class LedgerConflict(RuntimeError):
    """The grant's spent amount changed under a booking (cannot happen while the lock holds)."""


@dataclass
class Booking:
    """One payment's unit of work: what the grant spent when the lock was taken, and the insert."""

    conn: Connection
    grant_key: str
    spent_minor: int
    by_entry: dict[int, int] = field(default_factory=dict)

    def add(
        self, subject: str, entry: int | None, amount_minor: int, record: Mapping[str, Any], now: float
    ) -> None:
        """Book the payment: insert it and add it to the grant's spent amount, in this transaction."""
        self.conn.execute(
            insert(payments).values(
                payment_id=record["paymentId"],
                grant_key=self.grant_key,
                subject=subject,
                entry=entry,
                amount_minor=amount_minor,
                record=json.dumps(record, sort_keys=True),
                created_at=now,
            )
        )
        changed = self.conn.execute(
            update(grants)
            .where(grants.c.grant_key == self.grant_key, grants.c.spent_minor == self.spent_minor)
            .values(spent_minor=grants.c.spent_minor + amount_minor)
        ).rowcount
        if changed != 1:
            raise LedgerConflict(self.grant_key)


class Ledger:
    """Payments and spent amounts per grant, in the database at ``url``."""

    def __init__(self, url: str) -> None:
        self.engine = create_store_engine(url)
        self.dialect = self.engine.dialect.name
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def booking(self, grant_key: str, now: float) -> Iterator[Booking]:
        """The grant's row locked for one payment's decision and booking (commit on success;
        an exception, e.g. the policy's refusal, rolls back and books nothing)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
                conn.execute(
                    dialect_insert(grants)
                    .values(grant_key=grant_key, spent_minor=0, created_at=now)
                    .on_conflict_do_nothing(index_elements=[grants.c.grant_key])
                )
                spent = conn.execute(
                    select(grants.c.spent_minor).where(grants.c.grant_key == grant_key).with_for_update()
                ).scalar_one()
                by_entry = {
                    int(entry): int(total)
                    for entry, total in conn.execute(
                        select(payments.c.entry, func.sum(payments.c.amount_minor))
                        .where(payments.c.grant_key == grant_key, payments.c.entry.is_not(None))
                        .group_by(payments.c.entry)
                    )
                }
                yield Booking(conn, grant_key, int(spent), by_entry)

    def spent_minor(self, grant_key: str) -> int:
        """What the grant has paid in all (0 for a grant that never paid)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(grants.c.spent_minor).where(grants.c.grant_key == grant_key)
            ).scalar_one_or_none()
        return int(value or 0)

    def of(self, subject: str) -> list[dict[str, Any]]:
        """The user's latest payments, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(payments.c.record)
                .where(payments.c.subject == subject)
                .order_by(payments.c.created_at.desc(), payments.c.payment_id)
                .limit(SHOWN_PAYMENTS)
            ).scalars()
            records = [json.loads(r) for r in rows]
        return records[::-1]
