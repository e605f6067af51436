"""The chain's link form (issue 16): a record's hash is over its link fields (writer, seq,
prev_hash, grant_id) and its body's hash, so a link is checked without the body; records chained
before issue 16 (one hash over every column) still verify, and an edit of either kind is found."""

from __future__ import annotations

from typing import Any

from corridor.audit import chain
from corridor.audit.chain import GENESIS, flat_hash, link, link_hash, record_hash, sealed, verify_chain
from corridor.audit.events import Event, Outcome

WRITER = "as:host:1:abcd"


def row(seq: int, prev: str, seal: Any = record_hash, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {name: None for name in chain.HASHED}
    base.update(
        time=1_700_000_000.0 + seq,
        event=Event.RS_ACCESS,
        outcome=Outcome.ALLOWED,
        request_id=f"r{seq}",
        writer=WRITER,
        seq=seq,
        prev_hash=prev,
        id=seq,
        **values,
    )
    base["hash"] = seal(base)
    return base


def chained(count: int, seal: Any = record_hash, start: int = 1, prev: str = GENESIS) -> list[dict[str, Any]]:
    rows = []
    for seq in range(start, start + count):
        rows.append(row(seq, prev, seal, grant_id="g1" if seq % 2 else None))
        prev = rows[-1]["hash"]
    return rows


def test_a_link_alone_gives_the_record_hash_and_shows_no_body() -> None:
    record = row(1, GENESIS, grant_id="g1", client_id="agent", scope="payments")
    shown = link(record)
    assert set(shown) == {"writer", "seq", "prev_hash", "grant_id", "body_sha256", "hash"}
    assert link_hash(shown) == record["hash"] == record_hash(record)
    assert "agent" not in str(shown) and "payments" not in str(shown)
    # Each link field is covered: a changed grant_id, seq or prev_hash changes the hash.
    for name, value in (("grant_id", "g2"), ("seq", 2), ("prev_hash", "1" * 64), ("writer", "other")):
        assert link_hash({**shown, name: value}) != record["hash"], name
    assert link_hash({**shown, "body_sha256": "0" * 64}) != record["hash"]


def test_a_body_edit_changes_the_body_hash() -> None:
    record = row(1, GENESIS, scope="payments")
    assert sealed(record)
    edited = {**record, "scope": "payments admin"}
    assert not sealed(edited)
    assert link(edited)["body_sha256"] != link(record)["body_sha256"]


def test_records_chained_before_issue_16_still_verify_and_edits_are_still_found() -> None:
    old = chained(3, seal=flat_hash)
    new = chained(3, start=4, prev=old[-1]["hash"])
    head = {"seq": 6, "hash": new[-1]["hash"]}
    assert verify_chain(WRITER, old + new, head).intact
    edited = [*old[:1], {**old[1], "outcome": Outcome.REFUSED}, *old[2:], *new]
    report = verify_chain(WRITER, edited, head)
    assert (report.broken_seq, report.problem) == (2, "content does not match its hash (edited)")
    # Neither form stands in for the other: a flat hash of a new record's content is not its hash.
    assert flat_hash(new[0]) != new[0]["hash"]


def test_the_trace_marks_records_after_a_purge_by_retention_as_verified(tmp_path: Any) -> None:
    """issue 16: the admin page's marks start a chain purged by retention at the position a
    verified checkpoint signed (as ``corridor audit verify`` does), and an edit is still found."""
    from sqlalchemy import update

    from corridor.audit.chain import checkpoint, purge_before
    from corridor.audit.log import AuditLog, Evidence
    from corridor.audit.sinks import SqlSink
    from corridor.audit.trace import chain_marks
    from corridor.core.jose import SigningKey
    from corridor.store import schema as t
    from corridor.store.sql import Store

    store = Store(f"sqlite:///{tmp_path / 'trail.db'}")
    store.migrate()
    key = SigningKey.generate()
    store.keys.add_first_signing_key(key.kid, key.alg, key.private_jwk(), 1.0)
    log = AuditLog(SqlSink(store), role="as")
    for n in range(3):
        log.append(
            Evidence(issuer="https://as.example", request_id=f"old{n}"), Event.TOKEN, Outcome.ISSUED, 10.0
        )
    assert checkpoint(store, key, "https://as.example", 20.0)
    for n in range(2):
        log.append(
            Evidence(issuer="https://as.example", request_id=f"new{n}"), Event.TOKEN, Outcome.ISSUED, 30.0
        )
    assert purge_before(store, 25.0) == 3
    kept = store.audit.records()
    marks = chain_marks(store, kept)
    assert [marks[r["id"]].verified for r in kept] == [True, True], [marks[r["id"]] for r in kept]
    with store.engine.begin() as conn:
        conn.execute(update(t.audit_records).where(t.audit_records.c.id == kept[0]["id"]).values(outcome="x"))
    marks = chain_marks(store, store.audit.records())
    assert [marks[r["id"]].verified for r in kept] == [False, False]
    store.close()
