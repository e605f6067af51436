"""Tamper evidence for the audit trail (issue 8, design.md 5b).

Every record belongs to the chain of its writer (one AS process, one resource server), has a
sequence number in that chain, the hash of the record before it, and its own hash: SHA-256 of the
JCS form (RFC 8785) of every column but ``id`` and ``hash``. Appends lock the chain's head row, so
one writer's records are numbered in commit order and a rolled-back decision leaves no gap.

:func:`verify` proves each chain intact or names its first broken record: edited (the hash does
not match the content), missing (a gap in the numbers, or fewer records than the head says),
out of order (records stored out of their chain order, as a swap leaves them). Checkpoints are
JWS statements signed with the AS key, so a chain can be checked outside Corridor and a chain
rewritten from scratch still shows.

Each checkpoint names every writer with its head (issue 13 E2): {writer: {seq, hash}} for all
chains at that moment, signed as one statement. So neither a writer deleted entirely (records,
head and its checkpoint rows) nor the records of one writer cut back to an earlier checkpoint can
pass: the newest checkpoint still names the writer and the record it had reached. What stays
undetectable from the database alone is a cut of the records after the newest checkpoint (with
the head rewound), or of the newest checkpoints themselves together with what they vouch for;
exported checkpoints (``corridor audit checkpoints --json`` to an append-only store, checked with
``corridor audit verify --checkpoints FILE``) close the second gap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from corridor.audit import jcs
from corridor.core.jose import JoseFailure, SigningKey, read_header, verify_with_keys
from corridor.store.audit import GENESIS as GENESIS  # the chain rule every sink follows
from corridor.store.audit import RECORD_COLUMNS
from corridor.store.protocols import Repositories, UnitOfWork
from corridor.store.sql import Store

CHECKPOINT_TYP = "audit-checkpoint+jwt"
#: The ``writer`` of a checkpoint row that names every writer (issue 13 E2); writer ids are
#: ``role:host:pid:random`` (audit/log.py), so it is never a writer's.
ALL_WRITERS = "*"
#: The columns a record's hash covers: all of them but the row id and the hash itself (as plain
#: ``str``: SQLAlchemy's names are a subclass, which audit/jcs.py's fast path does not take).
HASHED = tuple(str(name) for name in RECORD_COLUMNS if name not in ("id", "hash"))


#: What a link of the chain shows in the clear (issue 16): enough to check that one record follows
#: another without its content, so an evidence pack proves a grant's records up to a signed
#: checkpoint with the hashes of the records in between, not their content. ``grant_id`` is in the
#: clear so that a pack which hides one of its grant's own records behind a link is caught.
LINK_FIELDS = ("writer", "seq", "prev_hash", "grant_id")
#: The columns of a record's body: what its ``body_sha256`` covers.
BODY = tuple(name for name in HASHED if name not in LINK_FIELDS)


def body_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of the JCS (RFC 8785) form of the record's body columns."""
    return hashlib.sha256(jcs.dumps({name: record.get(name) for name in BODY})).hexdigest()


def link(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as a chain link: the link fields and its body's hash (and its own hash)."""
    out = {name: record.get(name) for name in LINK_FIELDS}
    out["body_sha256"] = body_hash(record)
    out["hash"] = record.get("hash")
    return out


def link_hash(link: Mapping[str, Any]) -> str:
    """A record's hash from its link: SHA-256 of the JCS form of the link fields and body_sha256."""
    fields = {name: link.get(name) for name in LINK_FIELDS}
    fields["body_sha256"] = link.get("body_sha256")
    return hashlib.sha256(jcs.dumps(fields)).hexdigest()


def record_hash(record: Mapping[str, Any]) -> str:
    """The hash a record is chained with (issue 16): of its link fields and its body's hash, so a
    link can be checked without the body. (``link_hash(link(record))``, without building the link
    twice: issue 19.)"""
    fields = {name: record.get(name) for name in LINK_FIELDS}
    fields["body_sha256"] = body_hash(record)
    return hashlib.sha256(jcs.dumps(fields)).hexdigest()


def flat_hash(record: Mapping[str, Any]) -> str:
    """The hash of records written before issue 16: SHA-256 of the JCS form of all columns at once."""
    return hashlib.sha256(jcs.dumps({name: record.get(name) for name in HASHED})).hexdigest()


def sealed(record: Mapping[str, Any]) -> bool:
    """Whether the record's content matches its hash (either form: each commits to every column,
    and the two hash different JSON objects, so neither can stand in for the other)."""
    stored = record.get("hash")
    return record_hash(record) == stored or flat_hash(record) == stored


def append(unit: UnitOfWork, writer: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Append ``record`` to ``writer``'s chain inside ``unit``'s transaction; returns the row."""
    return unit.audit.append(writer, record, record_hash)


@dataclass(frozen=True)
class Signed:
    """A position a verified checkpoint vouches for: writer's record ``seq`` had hash ``hash``."""

    seq: int
    hash: str
    checkpoint: int
    time: float


@dataclass(frozen=True)
class ChainReport:
    writer: str
    records: int
    #: None when intact; else the first broken record and what is wrong with it.
    broken_id: int | None = None
    broken_seq: int | None = None
    problem: str | None = None
    #: Records removed by retention before the first kept one (anchored by a checkpoint).
    purged: int = 0

    @property
    def intact(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        """One line for ``corridor audit verify``."""
        if self.intact:
            purged = f" (records 1-{self.purged} purged by retention)" if self.purged else ""
            return f"{self.writer}: {self.records} records, intact{purged}"
        if self.broken_id is None:
            return f"{self.writer}: {self.problem}"
        return f"{self.writer}: broken at record id {self.broken_id} (#{self.broken_seq}): {self.problem}"


def _anchor(
    writer: str,
    records: list[Mapping[str, Any]],
    head: Mapping[str, Any] | None,
    signed: list[Signed],
    retention: bool,
) -> tuple[int, str, ChainReport | None]:
    """Where the kept chain starts: (records before it, the hash it follows, a problem).

    Retention removes a chain's oldest records only up to a position a checkpoint signed
    (:func:`purge_before`), so a chain that starts later must follow such a position."""
    if records:
        start_seq, start_hash = (records[0]["seq"] or 1) - 1, records[0]["prev_hash"]
    elif head is not None:
        start_seq, start_hash = head["seq"], head["hash"]
    else:
        return 0, GENESIS, None
    if start_seq <= 0:
        return 0, GENESIS, None
    vouched = any(s.seq == start_seq and s.hash == start_hash for s in signed)
    if vouched and retention:
        return start_seq, start_hash, None
    gap = "1" if start_seq == 1 else f"1-{start_seq}"
    why = (
        "deleted; a checkpoint signed that record, but audit_retention_days is off" if vouched else "deleted"
    )
    if not records:
        problem = (
            f"records {gap} missing ({why})"
            if vouched
            else (f"ends at record 0, its head says {start_seq} (deleted at the end)")
        )
        return 0, GENESIS, ChainReport(writer, 0, problem=problem)
    where = {"broken_id": records[0]["id"], "broken_seq": records[0]["seq"]}
    return 0, GENESIS, ChainReport(writer, 1, **where, problem=f"record(s) {gap} missing before it ({why})")


def verify_chain(
    writer: str,
    records: Iterable[Mapping[str, Any]],
    head: Mapping[str, Any] | None,
    signed: Iterable[Signed] = (),
    retention: bool = False,
) -> ChainReport:
    """Walk one writer's records in storage order (row id); the first problem is reported.

    ``signed``: the positions verified checkpoints vouch for in this chain; each must still be
    there with the signed hash (issue 13 E2). ``retention``: whether a purged start is expected."""
    records, signed = list(records), sorted(signed, key=lambda s: s.seq)
    if not records and head is None:
        if not signed:
            return ChainReport(writer, 0)
        return ChainReport(
            writer,
            0,
            problem=f"missing: a signed checkpoint names this writer at record {signed[-1].seq}, "
            "but no record or head of it is stored (deleted)",
        )
    purged, prev, refused = _anchor(writer, records, head, signed, retention)
    if refused is not None:
        return refused
    present = {record["seq"] for record in records}
    expected_seq, count = purged + 1, 0
    last_id: int | None = None
    walked: dict[int, Mapping[str, Any]] = {}
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
        if not sealed(record):
            return ChainReport(writer, count, **where, problem="content does not match its hash (edited)")
        prev, expected_seq, last_id = record["hash"], expected_seq + 1, record["id"]
        walked[record["seq"]] = record
    last_seq = expected_seq - 1
    if head is not None and (head["seq"] != last_seq or head["hash"] != prev):
        return ChainReport(
            writer,
            count,
            last_id,
            last_seq,
            problem=f"ends at record {last_seq}, its head says {head['seq']} (deleted at the end)",
        )
    for position in signed:
        signed_record = walked.get(position.seq)
        if signed_record is not None and signed_record["hash"] != position.hash:
            return ChainReport(
                writer,
                count,
                signed_record["id"],
                position.seq,
                problem=f"differs from what checkpoint {position.checkpoint} signed (rewritten)",
            )
    if signed and signed[-1].seq > last_seq:
        gap = f"{last_seq + 1}" if signed[-1].seq == last_seq + 1 else f"{last_seq + 1}-{signed[-1].seq}"
        return ChainReport(
            writer,
            count,
            problem=f"missing: records {gap} (the chain ends at record {last_seq}, "
            f"a signed checkpoint names record {signed[-1].seq}; cut)",
        )
    return ChainReport(writer, count, purged=purged)


def verify(
    store: Store, signed: Mapping[str, list[Signed]] | None = None, retention: bool = False
) -> list[ChainReport]:
    """Every chain in the store (records written before migration 0003 have no chain), and every
    writer a verified checkpoint names (``signed``, from :func:`signed_positions`)."""
    signed = signed or {}
    reports = []
    with store.snapshot() as reads:
        heads = reads.audit.heads()
        for writer in sorted(set(heads) | set(signed) | reads.audit.writers()):
            records = reads.audit.chain(writer)
            reports.append(
                verify_chain(writer, records, heads.get(writer), signed.get(writer, ()), retention)
            )
    return reports


# -- signed checkpoints -------------------------------------------------------------------------


def heads_digest(heads: Mapping[str, Any]) -> str:
    """SHA-256 of the JCS form of {writer: {seq, hash}}: what a checkpoint signs."""
    return hashlib.sha256(jcs.dumps(dict(heads))).hexdigest()


def checkpoint(
    store: Store, key: SigningKey, issuer: str, now: float, again: bool = False
) -> list[dict[str, Any]]:
    """Sign the heads of all chains as one statement with the AS key (a JWS any JOSE library can
    check, with the ``heads`` it names). Nothing is made when no head moved since the last one,
    unless ``again`` (issue 16: an evidence pack needs one for its issuer, and the last may have
    been signed for another by a CLI run without the AS's configuration)."""
    with store.unit_of_work() as uow:
        heads = {
            writer: {"seq": head["seq"], "hash": head["hash"]}
            for writer, head in uow.audit.heads().items()
            if head["seq"] > 0
        }
        if not heads:
            return []
        digest = heads_digest(heads)
        if not again and uow.audit.last_checkpoint_hash(ALL_WRITERS) == digest:
            return []
        claims = {"iss": issuer, "iat": int(now), "writers": len(heads), "heads_sha256": digest}
        row: dict[str, Any] = {
            "writer": ALL_WRITERS,
            "seq": len(heads),
            "hash": digest,
            "time": now,
            "jws": key.sign(claims, CHECKPOINT_TYP),
            "heads": json.dumps(heads, sort_keys=True, separators=(",", ":")),
        }
        row["id"] = uow.audit.add_checkpoint(row)
    return [row]


def stored_checkpoints(store: Repositories) -> list[dict[str, Any]]:
    """Every checkpoint row, oldest first (what ``corridor audit checkpoints`` exports)."""
    return store.audit.checkpoints()


@dataclass(frozen=True)
class CheckpointReport:
    id: int
    writer: str
    seq: int
    problem: str | None = None
    #: What the checkpoint vouches for once verified: {writer: (seq, hash)}.
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    time: float = 0.0
    #: "stored" (the database) or "exported" (``--checkpoints FILE``).
    source: str = "stored"

    def line(self) -> str:
        state = "verified" if self.problem is None else f"FAILED: {self.problem}"
        where = "" if self.source == "stored" else f"{self.source} "
        if self.writer == ALL_WRITERS:
            return f"{where}checkpoint {self.id} ({self.seq} writers): {state}"
        return f"{where}checkpoint {self.id} ({self.writer} #{self.seq}): {state}"


def _signed_heads(
    row: Mapping[str, Any], claims: Mapping[str, Any]
) -> tuple[dict[str, tuple[int, str]], str | None]:
    """What one checkpoint row vouches for, or why it vouches for nothing."""
    if row["writer"] != ALL_WRITERS:  # one statement per writer (before issue 13 E2)
        if (claims.get("writer"), claims.get("seq"), claims.get("hash")) != (
            row["writer"],
            row["seq"],
            row["hash"],
        ):
            return {}, "the stored checkpoint differs from what was signed"
        return {row["writer"]: (row["seq"], row["hash"])}, None
    try:
        heads = json.loads(row["heads"] or "")
        digest = heads_digest(heads)
        named = {str(w): (int(h["seq"]), str(h["hash"])) for w, h in heads.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}, "the stored heads are not readable"
    if (claims.get("heads_sha256"), claims.get("writers")) != (digest, len(named)) or row["hash"] != digest:
        return {}, "the stored heads differ from what was signed"
    return named, None


def verify_checkpoints(
    store: Repositories, public_keys: list[dict[str, Any]], exported: Iterable[Mapping[str, Any]] = ()
) -> list[CheckpointReport]:
    """Each checkpoint's signature (any key the AS ever had) and that its stored form is what was
    signed; ``exported``: checkpoint rows read back from an append-only copy. What the verified ones
    vouch for goes to :func:`verify` through :func:`signed_positions`."""
    reports = []
    sources = [(row, "stored") for row in stored_checkpoints(store)] + [(row, "exported") for row in exported]
    for cp, source in sources:
        heads: dict[str, tuple[int, str]] = {}
        try:
            claims = verify_with_keys(str(cp.get("jws")), read_header(str(cp.get("jws"))), public_keys)
        except JoseFailure:
            problem: str | None = "the signature does not verify with any AS key"
        else:
            heads, problem = _signed_heads(cp, claims)
        reports.append(
            CheckpointReport(
                cp["id"], cp["writer"], cp["seq"], problem, heads, float(cp.get("time") or 0.0), source
            )
        )
    return reports


def signed_positions(reports: Iterable[CheckpointReport]) -> dict[str, list[Signed]]:
    """Per writer, every position a verified checkpoint vouches for."""
    signed: dict[str, list[Signed]] = {}
    for report in reports:
        if report.problem is None:
            for writer, (seq, hash_) in report.heads.items():
                signed.setdefault(writer, []).append(Signed(seq, hash_, report.id, report.time))
    return signed


# -- retention (issue 13 B4) ----------------------------------------------------------------------


def purge_before(store: Repositories, cutoff: float) -> int:
    """Delete the records a checkpoint made before ``cutoff`` vouches for: per writer, those up
    to the position the newest such checkpoint signed. The kept chain then starts right after a
    signed position, which :func:`verify` accepts as a purge when retention is configured, and the
    checkpoint (kept for ever) still proves what the first kept record follows. Records after the
    newest checkpoint before the cut stay, however old. Signed messages older than every kept
    record go too."""
    heads = store.audit.checkpoint_heads_before(ALL_WRITERS, cutoff)
    if heads is None:
        return 0
    purged = sum(store.audit.purge(writer, int(head["seq"])) for writer, head in json.loads(heads).items())
    # Issue 17: the signed messages go with the records that named them. A record names only a
    # message of its own request (same time), so none older than the oldest kept record is named.
    oldest = store.audit.oldest_time()
    if purged and oldest is not None:
        store.messages.purge_before(oldest)
    return purged
