"""A record's row (issue 19): built once, with the same columns, values and order as before
(the old construction, kept here, is the reference), and chained to the same hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from corridor.audit import chain
from corridor.audit.events import Event, Outcome
from corridor.audit.log import AuditLog, Evidence
from corridor.audit.sinks import MemorySink


def old_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


def old_row(
    evidence: Evidence,
    event: str,
    outcome: str,
    now: float,
    rule: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """AuditLog.row before issue 19."""
    data = dict(vars(evidence))
    for structured in ("authorization_details", "resource"):
        data[structured] = old_json(data[structured])
    data["detail"] = old_json(data["detail"] or None)
    return {"time": now, "event": event, "outcome": outcome, "rule": rule or None, "error": error, **data}


def old_record_hash(record: dict[str, Any]) -> str:
    """chain.record_hash before issue 19: link_hash(link(record)) with rfc8785."""
    body = hashlib.sha256(rfc8785.dumps({name: record.get(name) for name in chain.BODY})).hexdigest()
    link = {name: record.get(name) for name in chain.LINK_FIELDS}
    link["body_sha256"] = body
    return hashlib.sha256(rfc8785.dumps(link)).hexdigest()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
OPTIONAL_TEXT = st.none() | st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        Evidence,
        issuer=st.text(max_size=40),
        request_id=st.text(max_size=40),
        client_id=OPTIONAL_TEXT,
        user_id=OPTIONAL_TEXT,
        redirect_uri=OPTIONAL_TEXT,
        scope=OPTIONAL_TEXT,
        authorization_details=st.none() | st.lists(st.dictionaries(st.text(), JSON, max_size=3), max_size=2),
        resource=st.none() | st.lists(st.text(max_size=20), max_size=2) | st.text(max_size=20),
        sender_constraint=st.none() | st.sampled_from(["dpop", "mtls"]),
        key_thumbprint=OPTIONAL_TEXT,
        grant_id=OPTIONAL_TEXT,
        token_jti=OPTIONAL_TEXT,
        detail=st.dictionaries(st.text(max_size=10), JSON, max_size=4),
    ),
    st.sampled_from(list(Event)),
    st.sampled_from(list(Outcome)),
    st.floats(min_value=0, max_value=4e9),
    st.none() | st.just("") | st.text(max_size=20),
    st.none() | st.text(max_size=20),
)
def test_a_row_is_what_it_was(
    evidence: Evidence, event: Event, outcome: Outcome, now: float, rule: str | None, error: str | None
) -> None:
    row = AuditLog.row(evidence, event, outcome, now, rule, error)
    before = old_row(evidence, event, outcome, now, rule, error)
    assert row == before
    assert list(row) == list(before)  # the same columns in the same order
    assert all(type(row[name]) is type(before[name]) for name in row)


def test_an_appended_record_is_chained_as_before() -> None:
    sink = MemorySink()
    log = AuditLog(sink)
    evidence = Evidence(
        issuer="https://as.example.com",
        request_id="r1",
        client_id="c\u00e9",
        authorization_details=[{"type": "t", "amount": 1.5}],
        resource=["https://rs.example.com"],
        detail={"interaction": "i1", "note": "\u2028\x00"},
    )
    log.append(evidence, Event.CONSENT, Outcome.SHOWN, 1_765_100_000.5)
    log.append(evidence, Event.CONSENT, Outcome.GRANTED, 1_765_100_001.0)
    first, second = sink.records
    assert first["hash"] == old_record_hash(first) and second["prev_hash"] == first["hash"]
    assert second["hash"] == old_record_hash(second)
    assert evidence.detail == {"interaction": "i1", "note": "\u2028\x00"}  # the evidence is not changed
