"""Tamper evidence for the audit trail (issue 8, design.md 5b).

Every record belongs to the chain of its writer (one AS process, one resource server), has a
sequence number in that chain, the hash of the record before it, and its own hash: SHA-256 of the
JCS form (RFC 8785) of every column but ``id`` and ``hash``. Appends lock the chain's head row, so
one writer's records are numbered in commit order and a rolled-back decision leaves no gap.

:func:`verify` proves each chain intact or names its first broken record: edited (the hash does
not match the content), missing (a gap in the numbers, or fewer records than the head says),
out of order (records stored out of their chain order, as a swap leaves them). Checkpoints are
JWS statements "chain W had hash H at record S", signed with the AS key, so a chain can be
checked outside Corridor and a chain rewritten from scratch still shows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from corridor.core.jose import JoseFailure, SigningKey, read_header, verify_with_keys
from corridor.store import schema as t
from corridor.store.sql import Store

GENESIS = "0" * 64
CHECKPOINT_TYP = "audit-checkpoint+jwt"
#: The columns a record's hash covers: all of them but the row id and the hash itself.
HASHED = tuple(c.name for c in t.audit_records.columns if c.name not in ("id", "hash"))


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps({name: record.get(name) for name in HASHED})).hexdigest()


def append(conn: Connection, dialect: str, writer: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Append ``record`` to ``writer``'s chain inside ``conn``'s transaction; returns the row."""
    heads = t.audit_heads
    lock = select(heads.c.seq, heads.c.hash).where(heads.c.writer == writer).with_for_update()
    head = conn.execute(lock).first()
    if head is None:  # this writer's first record: create its head (concurrent firsts wait here)
        dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        start = dialect_insert(heads).values(writer=writer, seq=0, hash=GENESIS)
        conn.execute(start.on_conflict_do_nothing(index_elements=[heads.c.writer]))
        head = conn.execute(lock).first()
        assert head is not None
    row = {**record, "writer": writer, "seq": head.seq + 1, "prev_hash": head.hash}
    row["hash"] = record_hash(row)
    conn.execute(insert(t.audit_records).values(**row))
    conn.execute(update(heads).where(heads.c.writer == writer).values(seq=row["seq"], hash=row["hash"]))
    return row


@dataclass(frozen=True)
class ChainReport:
    writer: str
    records: int
    #: None when intact; else the first broken record and what is wrong with it.
    broken_id: int | None = None
    broken_seq: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify_chain(
    writer: str, records: Iterable[Mapping[str, Any]], head: Mapping[str, Any] | None
) -> ChainReport:
    """Walk one writer's records in storage order (row id); the first problem is reported."""
    records = list(records)
    present = {record["seq"] for record in records}
    expected_seq, prev, count = 1, GENESIS, 0
    last_id: int | None = None
    for record in records:
        count += 1
        where = {"broken_id": record["id"], "broken_seq": record["seq"]}
        if (
            record["seq"] is None
            or record["seq"] < expected_seq
            or (record["seq"] > expected_seq and expected_seq in present)
        ):
            return ChainReport(writer, count, **where, problem="out of order (moved or swapped)")
        if record["seq"] > expected_seq:
            gap = expected_seq if record["seq"] == expected_seq + 1 else f"{expected_seq}-{record['seq'] - 1}"
            return ChainReport(writer, count, **where, problem=f"record(s) {gap} missing before it (deleted)")
        if record["prev_hash"] != prev:
            return ChainReport(
                writer, count, **where, problem="does not follow the record before it (swapped)"
            )
        if record_hash(record) != record["hash"]:
            return ChainReport(writer, count, **where, problem="content does not match its hash (edited)")
        prev, expected_seq, last_id = record["hash"], expected_seq + 1, record["id"]
    if head is not None and (head["seq"] != expected_seq - 1 or head["hash"] != prev):
        return ChainReport(
            writer,
            count,
            last_id,
            expected_seq - 1,
            problem=f"ends at record {expected_seq - 1}, its head says {head['seq']} (deleted at the end)",
        )
    return ChainReport(writer, count)


def verify(store: Store) -> list[ChainReport]:
    """Every chain in the store (records written before migration 0003 have no chain)."""
    with store.read() as conn:
        heads = {row.writer: row._asdict() for row in conn.execute(select(t.audit_heads))}
        writers = set(heads) | {
            w for (w,) in conn.execute(select(t.audit_records.c.writer).distinct()) if w is not None
        }
        reports = []
        for writer in sorted(writers):
            rows = conn.execute(
                select(t.audit_records)
                .where(t.audit_records.c.writer == writer)
                .order_by(t.audit_records.c.id)
            ).mappings()
            reports.append(verify_chain(writer, (dict(row) for row in rows), heads.get(writer)))
    return reports


# -- signed checkpoints -------------------------------------------------------------------------


def checkpoint(store: Store, key: SigningKey, issuer: str, now: float) -> list[dict[str, Any]]:
    """Sign the head of every chain with the AS key (a JWS any JOSE library can check)."""
    made = []
    with store.write() as conn:
        for head in conn.execute(select(t.audit_heads).where(t.audit_heads.c.seq > 0)).mappings().all():
            claims = {
                "iss": issuer,
                "iat": int(now),
                "writer": head["writer"],
                "seq": head["seq"],
                "hash": head["hash"],
            }
            row = {
                **{k: claims[k] for k in ("writer", "seq", "hash")},
                "time": now,
                "jws": key.sign(claims, CHECKPOINT_TYP),
            }
            conn.execute(insert(t.audit_checkpoints).values(**row))
            made.append(row)
    return made


@dataclass(frozen=True)
class CheckpointReport:
    id: int
    writer: str
    seq: int
    problem: str | None = None


def verify_checkpoints(store: Store, public_keys: list[dict[str, Any]]) -> list[CheckpointReport]:
    """Each checkpoint's signature (any key the AS ever had) and that its chain still has the
    signed hash at the signed position."""
    reports = []
    with store.read() as conn:
        for cp in conn.execute(select(t.audit_checkpoints).order_by(t.audit_checkpoints.c.id)).mappings():
            problem = None
            try:
                claims = verify_with_keys(cp["jws"], read_header(cp["jws"]), public_keys)
            except JoseFailure:
                claims, problem = {}, "the signature does not verify with any AS key"
            if problem is None and (claims.get("writer"), claims.get("seq"), claims.get("hash")) != (
                cp["writer"],
                cp["seq"],
                cp["hash"],
            ):
                problem = "the stored checkpoint differs from what was signed"
            if problem is None:
                record = conn.execute(
                    select(t.audit_records.c.hash).where(
                        t.audit_records.c.writer == cp["writer"], t.audit_records.c.seq == cp["seq"]
                    )
                ).first()
                if record is None or record.hash != cp["hash"]:
                    problem = "the chain no longer has the signed hash at that record (rewritten)"
            reports.append(CheckpointReport(cp["id"], cp["writer"], cp["seq"], problem))
    return reports
