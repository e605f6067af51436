"""The audit trail's rows: each writer's hash chain (records and head), signed checkpoints,
queries and retention (issue 8, issue 13 B4, E2). audit/chain.py hashes, signs and verifies;
this repository only stores, locks and reads."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlalchemy.sql.base import Executable

from corridor.store import schema as t
from corridor.store.scope import Row, Scope

#: The hash a chain starts from.
GENESIS = "0" * 64
#: Every column of a record (audit/chain.py hashes all but ``id`` and ``hash``).
RECORD_COLUMNS = tuple(column.name for column in t.audit_records.columns)


def misfit(record: Mapping[str, Any]) -> str | None:
    """Why a record does not fit the audit table's columns (type, length), or None."""
    for column in t.audit_records.columns:
        value = record.get(column.name)
        if value is None or column.name == "id":
            continue
        python = column.type.python_type
        if python is float:
            fits = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        elif python is int:
            fits = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31
        else:
            length = getattr(column.type, "length", None)
            fits = isinstance(value, str) and (length is None or len(value) <= length)
        if not fits:
            return f"{column.name} is not a {python.__name__} the trail can hold"
    return None


#: The hot statements of :meth:`SqlAudit.append`, built once (store/scope.py runs them on the
#: DB-API connection).
_HEAD = (
    select(t.audit_heads.c.seq, t.audit_heads.c.hash)
    .where(t.audit_heads.c.writer == bindparam("writer"))
    .with_for_update()
)
_ADVANCE = (
    update(t.audit_heads)
    .where(t.audit_heads.c.writer == bindparam("writer"))
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)


@functools.cache
def _insert_record(columns: tuple[str, ...]) -> Executable:
    """``INSERT INTO audit_records`` of these columns (a record's keys), built once per set."""
    return insert(t.audit_records).values({name: bindparam(name) for name in columns})


class ChainConflict(ValueError):
    """Records offered for a chain do not fit what the store holds of it (issue 16 import)."""


class SqlAudit:
    def __init__(self, scope: Scope) -> None:
        self._s = scope
        #: Heads this unit of work advanced (and so holds locked): writer -> (seq, hash).
        self._heads: dict[str, tuple[int, str]] = {}

    def append(self, writer: str, record: Mapping[str, Any], seal: Callable[[Mapping[str, Any]], str]) -> Row:
        """Append ``record`` to ``writer``'s chain: the head row is locked, so one writer's records
        are numbered in commit order and a rolled-back decision leaves no gap. ``seal`` gives the
        record's hash (audit/chain.py). Returns the row as stored."""
        db = self._s.db
        with self._s.writing() as conn:
            head = self._heads.get(writer) or self._lock_head(conn, writer)
            row = {**record, "writer": writer, "seq": head[0] + 1, "prev_hash": head[1]}
            row["hash"] = seal(row)
            db.execute(conn, _insert_record(tuple(row)), row)
            db.execute(conn, _ADVANCE, {"writer": writer, "seq": row["seq"], "hash": row["hash"]})
        if self._s.conn is not None:
            # Issue 19: the unit holds the head's lock until it commits (FOR UPDATE; SQLite's
            # write transaction), so its next append to this chain need not read it again.
            self._heads[writer] = (row["seq"], row["hash"])
        return row

    def _lock_head(self, conn: Connection, writer: str) -> tuple[int, str]:
        """``writer``'s head (seq, hash), locked until ``conn``'s transaction ends; created at
        genesis for a writer's first record (concurrent firsts wait on the unique key)."""
        heads, db = t.audit_heads, self._s.db
        found = db.execute(conn, _HEAD, {"writer": writer}, rows=True)[0]
        if not found:
            start = db.insert(heads).values(writer=writer, seq=0, hash=GENESIS)
            conn.execute(start.on_conflict_do_nothing(index_elements=[heads.c.writer]))
            found = db.execute(conn, _HEAD, {"writer": writer}, rows=True)[0]
            assert found
        return int(found[0]["seq"]), str(found[0]["hash"])

    def adopt(self, writer: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Add records another writer chained (an exported trail, issue 16) as they are, in seq
        order: those the store holds already are skipped when identical (so an import can be run
        again); the rest must continue the stored chain (the next seq, the head's hash as their
        prev_hash). Returns how many were added; raises :class:`ChainConflict` otherwise (the
        caller's transaction then adds nothing)."""
        heads, records = t.audit_heads, t.audit_records
        lock = select(heads.c.seq, heads.c.hash).where(heads.c.writer == writer).with_for_update()
        self._heads.pop(writer, None)  # moved below: the next append reads it again
        with self._s.writing() as conn:
            head = conn.execute(lock).first()
            if head is None:
                start = self._s.db.insert(heads).values(writer=writer, seq=0, hash=GENESIS)
                conn.execute(start.on_conflict_do_nothing(index_elements=[heads.c.writer]))
                head = conn.execute(lock).first()
                assert head is not None
            seq, prev, added = int(head.seq), str(head.hash), 0
            for row in sorted(rows, key=lambda r: int(r["seq"])):
                if int(row["seq"]) <= seq:
                    stored = conn.execute(
                        select(records.c.hash).where(records.c.writer == writer, records.c.seq == row["seq"])
                    ).scalar_one_or_none()
                    if stored != row["hash"]:
                        raise ChainConflict(
                            f"{writer} #{row['seq']}: differs from the record the store holds"
                            if stored is not None
                            else f"{writer} #{row['seq']}: the store no longer holds it (purged)"
                        )
                    continue
                if int(row["seq"]) != seq + 1 or row["prev_hash"] != prev:
                    raise ChainConflict(
                        f"{writer} #{row['seq']}: does not continue the stored chain at #{seq}"
                    )
                values = {name: row.get(name) for name in RECORD_COLUMNS if name != "id"}
                conn.execute(insert(records).values(**values))
                seq, prev, added = int(row["seq"]), str(row["hash"]), added + 1
            conn.execute(update(heads).where(heads.c.writer == writer).values(seq=seq, hash=prev))
        return added

    def heads(self) -> dict[str, Row]:
        """Every chain's head by writer: {writer, seq, hash}."""
        return {row["writer"]: row for row in self._s.all(select(t.audit_heads))}

    def writers(self) -> set[str]:
        """Every writer with a record (records written before migration 0003 have none)."""
        rows = self._s.all(select(t.audit_records.c.writer).distinct())
        return {row["writer"] for row in rows if row["writer"] is not None}

    def chain(self, writer: str) -> list[Row]:
        """One writer's records in storage order (row id)."""
        records = t.audit_records
        return self._s.all(select(records).where(records.c.writer == writer).order_by(records.c.id))

    def chain_between(self, writer: str, first_seq: int, last_seq: int) -> list[Row]:
        """``writer``'s records with ``first_seq`` <= seq <= ``last_seq``, by seq (issue 16: the
        links of an evidence pack, without reading the whole chain)."""
        records = t.audit_records
        stmt = (
            select(records)
            .where(records.c.writer == writer, records.c.seq >= first_seq, records.c.seq <= last_seq)
            .order_by(records.c.seq)
        )
        return self._s.all(stmt)

    def records(
        self,
        grant_id: str | None = None,
        request_id: str | None = None,
        token_jti: str | None = None,
        interaction: str | None = None,
        par: str | None = None,
    ) -> list[Row]:
        """Records in the order they were stored, filtered by any of the correlation ids."""
        records = t.audit_records
        stmt = select(records).order_by(records.c.time, records.c.id)
        if grant_id is not None:
            stmt = stmt.where(records.c.grant_id == grant_id)
        if request_id is not None:
            stmt = stmt.where(records.c.request_id == request_id)
        if token_jti is not None:
            stmt = stmt.where(records.c.token_jti == token_jti)
        if interaction is not None:
            stmt = stmt.where(records.c.detail.contains(f'"interaction":"{interaction}"', autoescape=True))
        if par is not None:
            stmt = stmt.where(records.c.detail.contains(f'"par":"{par}"', autoescape=True))
        return self._s.all(stmt)

    # -- checkpoints -------------------------------------------------------------------------------

    def checkpoints(self) -> list[Row]:
        """Every checkpoint row, oldest first."""
        return self._s.all(select(t.audit_checkpoints).order_by(t.audit_checkpoints.c.id))

    def last_checkpoint_hash(self, writer: str) -> str | None:
        cps = t.audit_checkpoints
        row = self._s.one(select(cps.c.hash).where(cps.c.writer == writer).order_by(cps.c.id.desc()).limit(1))
        return None if row is None else str(row["hash"])

    def add_checkpoint(self, row: Mapping[str, Any]) -> int:
        """Store a signed checkpoint; returns its id."""
        cps = t.audit_checkpoints
        with self._s.writing() as conn:
            return int(conn.execute(insert(cps).values(**row).returning(cps.c.id)).scalar_one())

    def checkpoint_heads_before(self, writer: str, cutoff: float) -> str | None:
        """The ``heads`` of ``writer``'s newest checkpoint made before ``cutoff``."""
        cps = t.audit_checkpoints
        row = self._s.one(
            select(cps.c.heads)
            .where(cps.c.writer == writer, cps.c.time < cutoff)
            .order_by(cps.c.id.desc())
            .limit(1)
        )
        return None if row is None or not row["heads"] else str(row["heads"])

    # -- retention ---------------------------------------------------------------------------------

    def oldest_time(self) -> float | None:
        """The time of the oldest record kept, of any writer (None: no record)."""
        row = self._s.one(select(func.min(t.audit_records.c.time).label("oldest")))
        return None if row is None or row["oldest"] is None else float(row["oldest"])

    def purge(self, writer: str, through_seq: int, batch: int = 1000) -> int:
        """Delete ``writer``'s records up to ``through_seq``, oldest first, in short transactions
        (issue 13 B4 retention; audit/chain.py purge_before chooses a signed position)."""
        records, removed = t.audit_records, 0
        while True:
            doomed = (
                select(records.c.id)
                .where(records.c.writer == writer, records.c.seq <= through_seq)
                .order_by(records.c.seq)
                .limit(batch)
                .scalar_subquery()
            )
            with self._s.writing() as conn:
                count = conn.execute(delete(records).where(records.c.id.in_(doomed))).rowcount
            removed += count
            if count < batch:
                return removed
