"""The tamper-evident trail (issue 8 part 4): hash-chained, append-only records; ``corridor audit
verify`` proves a chain intact or names the first broken record (edited, deleted, swapped);
checkpoints signed with the AS key; ``corridor audit trace`` tells a grant's story in order."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from corridor.audit import jcs
from corridor.audit.chain import BODY, LINK_FIELDS, verify, verify_checkpoints
from corridor.audit.verify_pack import record_hash as standalone_record_hash
from corridor.store import schema as t
from corridor.transport.tls import DevTLS
from tests.support import Driver, RunningAS, decode_jwt, postgres_database, running_as

CORRIDOR = [str(Path(sys.executable).parent / "corridor")]


@pytest.fixture(params=["sqlite", "postgresql"])
def driver(request: pytest.FixtureRequest, tmp_path: Path, tls: DevTLS) -> Iterator[Driver]:
    """An AS of this test's own: these tests tamper with the trail."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'audit.db'}"
        else:
            url = stack.enter_context(postgres_database(request.getfixturevalue("postgres_admin")))
        running = stack.enter_context(running_as(tmp_path, tls, database_url=url))
        d = Driver(running)
        yield d
        d.http.close()


def audit(running: RunningAS, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CORRIDOR, "audit", *args, "--database", running.store.url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def chain_of(running: RunningAS) -> tuple[str, list[dict[str, Any]]]:
    assert running.server is not None
    writer = running.server.audit.writer
    with running.store.engine.connect() as conn:
        rows = conn.execute(
            select(t.audit_records).where(t.audit_records.c.writer == writer).order_by(t.audit_records.c.id)
        ).mappings()
        return writer, [dict(r) for r in rows]


def test_records_are_chained_and_verify_intact(driver: Driver) -> None:
    driver.full_flow(driver.add_client())
    writer, rows = chain_of(driver.as_)
    assert rows and [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(rows))
    reports = {r.writer: r for r in verify(driver.as_.store)}
    assert reports[writer].intact and reports[writer].records == len(rows)
    result = audit(driver.as_, "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{writer}: {len(rows)} records, intact" in result.stdout


def test_stored_records_hash_as_rfc8785_hashes_them(driver: Driver) -> None:
    """Issue 19: the records the AS stores (a flow, a refusal and a replayed code) are hashed by
    audit/jcs.py's fast path to what the standalone verifier (rfc8785 only) computes."""
    client = driver.add_client()
    flow, _ = driver.full_flow(client)
    assert driver.redeem(client, flow).status_code == 400  # the code again: refused, reuse detected
    _, rows = chain_of(driver.as_)
    assert {"par", "consent", "token.authorization_code", "code.reuse_detected"} <= {r["event"] for r in rows}
    for row in rows:
        assert jcs._flat({name: row[name] for name in BODY}) is not None
        assert jcs._flat({**{name: row[name] for name in LINK_FIELDS}, "body_sha256": "0" * 64}) is not None
        assert standalone_record_hash(row) == row["hash"]


def test_verify_names_an_edited_record(driver: Driver) -> None:
    driver.full_flow(driver.add_client())
    writer, rows = chain_of(driver.as_)
    victim = rows[len(rows) // 2]
    with driver.as_.store.engine.begin() as conn:
        conn.execute(
            update(t.audit_records).where(t.audit_records.c.id == victim["id"]).values(outcome="allowed")
        )
    result = audit(driver.as_, "verify")
    assert result.returncode == 1
    assert (
        f"{writer}: broken at record id {victim['id']} (#{victim['seq']}): "
        "content does not match its hash (edited)" in result.stdout
    )


def test_verify_names_a_deleted_record(driver: Driver) -> None:
    driver.full_flow(driver.add_client())
    writer, rows = chain_of(driver.as_)
    victim, after = rows[-3], rows[-2]
    with driver.as_.store.engine.begin() as conn:
        conn.execute(delete(t.audit_records).where(t.audit_records.c.id == victim["id"]))
    result = audit(driver.as_, "verify")
    assert result.returncode == 1
    assert (
        f"{writer}: broken at record id {after['id']} (#{after['seq']}): record(s) {victim['seq']} missing"
        in result.stdout
    )


def test_verify_names_a_deleted_last_record(driver: Driver) -> None:
    driver.full_flow(driver.add_client())
    _writer, rows = chain_of(driver.as_)
    with driver.as_.store.engine.begin() as conn:
        conn.execute(delete(t.audit_records).where(t.audit_records.c.id == rows[-1]["id"]))
    result = audit(driver.as_, "verify")
    assert result.returncode == 1 and "(deleted at the end)" in result.stdout


def test_verify_names_swapped_records(driver: Driver) -> None:
    driver.full_flow(driver.add_client())
    writer, rows = chain_of(driver.as_)
    a, b = rows[-4], rows[-3]
    columns = [c for c in a if c != "id"]
    with driver.as_.store.engine.begin() as conn:  # exchange the two rows' contents, ids stay
        conn.execute(update(t.audit_records).where(t.audit_records.c.id == a["id"]).values(seq=-1))
        conn.execute(
            update(t.audit_records).where(t.audit_records.c.id == b["id"]).values({c: a[c] for c in columns})
        )
        conn.execute(
            update(t.audit_records).where(t.audit_records.c.id == a["id"]).values({c: b[c] for c in columns})
        )
    result = audit(driver.as_, "verify")
    assert result.returncode == 1
    assert f"{writer}: broken at record id {a['id']} (#{b['seq']}): out of order" in result.stdout


def test_signed_checkpoints_verify_and_catch_a_rewritten_chain(driver: Driver) -> None:
    driver.full_flow(driver.add_client())
    made = audit(driver.as_, "checkpoint")
    assert made.returncode == 0, made.stderr
    keys = driver.http.get(driver.url("/jwks")).json()["keys"]
    assert all(r.problem is None for r in verify_checkpoints(driver.as_.store, keys))
    writer, rows = chain_of(driver.as_)
    # Rewrite the whole chain consistently (recomputed hashes): only the checkpoint can tell.
    from corridor.audit.chain import record_hash

    prev = "0" * 64
    with driver.as_.store.engine.begin() as conn:
        for row in rows:
            changed = {**row, "prev_hash": prev, "outcome": row["outcome"] if row["seq"] != 1 else "forged"}
            changed["hash"] = record_hash(changed)
            conn.execute(
                update(t.audit_records)
                .where(t.audit_records.c.id == row["id"])
                .values(prev_hash=prev, outcome=changed["outcome"], hash=changed["hash"])
            )
            prev = changed["hash"]
        conn.execute(update(t.audit_heads).where(t.audit_heads.c.writer == writer).values(hash=prev))
    assert {r.writer: r for r in verify(driver.as_.store)}[writer].intact  # the chain alone looks fine
    result = audit(driver.as_, "verify")
    assert result.returncode == 1
    assert "rewritten" in result.stdout


def test_trace_of_a_grant_tells_the_story_in_order(driver: Driver) -> None:
    client = driver.add_client()
    _flow, tokens = driver.full_flow(client)
    jti = decode_jwt(tokens["access_token"])[1]["jti"]
    grant_id = next(r["grant_id"] for r in driver.as_.store.audit.records() if r["token_jti"] == jti)
    token = tokens["access_token"]
    proof = driver.proof(client, "GET", driver.htu("/userinfo"), access_token=token)
    used = driver.http.get(driver.url("/userinfo"), headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert used.status_code == 200
    result = audit(driver.as_, "trace", grant_id, "--json")
    assert result.returncode == 0, result.stderr
    story = json.loads(result.stdout)
    events = [(r["event"], r["outcome"]) for r in story]
    assert events[:6] == [
        ("par", "accepted"),
        ("login", "succeeded"),  # the sign-in that the token's acr rests on
        ("consent", "shown"),
        ("consent", "granted"),
        ("code", "issued"),
        ("token.authorization_code", "issued"),
    ]
    assert events[-1][0] == "userinfo"  # a decision made with the token is part of its story
    shown = story[2]
    assert shown["detail"]["approval_surface"]["facts"]["client_id"] == client.client_id
    for record in story:
        for field in ("client_id", "issuer", "request_id", "hash"):
            assert record[field], (field, record)
        assert record["user_id"] or record["event"] == "par", record  # the user is known after login
    assert all(r["grant_id"] == grant_id for r in story[3:6])
    text = audit(driver.as_, "trace", jti)
    assert text.returncode == 0 and "token.authorization_code issued" in text.stdout


# -- issue 13 E2: the set of writers is anchored in every signed checkpoint -----------------------


def second_writer(running: RunningAS, count: int = 3) -> str:
    """Another chain on the same database (a resource server's, say)."""
    from corridor.audit.log import AuditLog, Evidence
    from corridor.audit.sinks import SqlSink

    rs = AuditLog(SqlSink(running.store), role="rs")
    for n in range(count):
        rs.append(Evidence(issuer=running.issuer, request_id=f"rs-{n}"), "rs.access", "allowed", 1.0)
    return rs.writer


def test_intact_trail_with_several_writers_and_checkpoints_verifies(driver: Driver) -> None:
    """issue 13 E2: the positive control of the two tests below."""
    client = driver.add_client()
    driver.full_flow(client)
    rs = second_writer(driver.as_)
    assert audit(driver.as_, "checkpoint").returncode == 0
    driver.full_flow(client)
    assert audit(driver.as_, "checkpoint").returncode == 0
    result = audit(driver.as_, "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    writer, rows = chain_of(driver.as_)
    assert f"{writer}: {len(rows)} records, intact" in result.stdout
    assert f"{rs}: 3 records, intact" in result.stdout


def test_verify_names_a_writer_deleted_entirely(driver: Driver) -> None:
    """issue 13 E2: records, head and the checkpoint rows of one writer deleted; the other writers
    are intact. The signed checkpoint names every writer, so the missing one is reported."""
    driver.full_flow(driver.add_client())
    victim = second_writer(driver.as_)
    assert audit(driver.as_, "checkpoint").returncode == 0
    with driver.as_.store.engine.begin() as conn:
        conn.execute(delete(t.audit_records).where(t.audit_records.c.writer == victim))
        conn.execute(delete(t.audit_heads).where(t.audit_heads.c.writer == victim))
        conn.execute(delete(t.audit_checkpoints).where(t.audit_checkpoints.c.writer == victim))
    result = audit(driver.as_, "verify")
    assert result.returncode == 1, result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith(victim)]
    assert lines == [
        f"{victim}: missing: a signed checkpoint names this writer at record 3, "
        "but no record or head of it is stored (deleted)"
    ], result.stdout


def test_verify_names_a_cut_before_the_last_checkpoint(driver: Driver) -> None:
    """issue 13 E2: the records after checkpoint k (k < last) cut, the head rewound to k and the
    checkpoint rows about that writer after k removed: the last checkpoint still vouches for them."""
    client = driver.add_client()
    driver.full_flow(client)
    assert audit(driver.as_, "checkpoint").returncode == 0
    writer, at_k = chain_of(driver.as_)
    kept = at_k[-1]
    driver.full_flow(client)
    assert audit(driver.as_, "checkpoint").returncode == 0
    _, at_last = chain_of(driver.as_)
    last = at_last[-1]
    driver.full_flow(client)  # records after the last checkpoint too
    with driver.as_.store.engine.begin() as conn:
        records = t.audit_records.c
        conn.execute(delete(t.audit_records).where(records.writer == writer, records.seq > kept["seq"]))
        conn.execute(
            update(t.audit_heads)
            .where(t.audit_heads.c.writer == writer)
            .values(seq=kept["seq"], hash=kept["hash"])
        )
        cps = t.audit_checkpoints.c
        conn.execute(delete(t.audit_checkpoints).where(cps.writer == writer, cps.seq > kept["seq"]))
    result = audit(driver.as_, "verify")
    assert result.returncode == 1, result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith(writer)]
    assert lines == [
        f"{writer}: missing: records {kept['seq'] + 1}-{last['seq']} "
        f"(the chain ends at record {kept['seq']}, a signed checkpoint names record {last['seq']}; cut)"
    ], result.stdout


def test_exported_checkpoints_catch_a_cut_with_its_checkpoints(driver: Driver, tmp_path: Path) -> None:
    """issue 13 E2: checkpoints exported to an append-only place (`corridor audit checkpoints
    --json`) still vouch for records after the stored checkpoints were cut with them."""
    client = driver.add_client()
    driver.full_flow(client)
    assert audit(driver.as_, "checkpoint").returncode == 0
    writer, at_k = chain_of(driver.as_)
    kept = at_k[-1]
    first_id = max(row["id"] for row in driver.as_.store.audit.checkpoints())
    driver.full_flow(client)
    assert audit(driver.as_, "checkpoint").returncode == 0
    exported = audit(driver.as_, "checkpoints", "--json")
    assert exported.returncode == 0, exported.stderr
    worm = tmp_path / "checkpoints.jsonl"
    worm.write_text(exported.stdout)
    assert [json.loads(line)["id"] for line in exported.stdout.splitlines()][-1] > first_id
    _, at_last = chain_of(driver.as_)
    with driver.as_.store.engine.begin() as conn:
        records = t.audit_records.c
        conn.execute(delete(t.audit_records).where(records.writer == writer, records.seq > kept["seq"]))
        conn.execute(
            update(t.audit_heads)
            .where(t.audit_heads.c.writer == writer)
            .values(seq=kept["seq"], hash=kept["hash"])
        )
        conn.execute(delete(t.audit_checkpoints).where(t.audit_checkpoints.c.id > first_id))
    alone = audit(driver.as_, "verify")
    assert alone.returncode == 0, alone.stdout  # a cut after the last stored checkpoint: undetectable
    result = audit(driver.as_, "verify", "--checkpoints", str(worm))
    assert result.returncode == 1, result.stdout
    end = at_last[-1]["seq"]
    assert (
        f"{writer}: missing: records {kept['seq'] + 1}-{end} "
        f"(the chain ends at record {kept['seq']}, a signed checkpoint names record {end}; cut)"
    ) in result.stdout
