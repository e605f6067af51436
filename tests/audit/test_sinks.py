"""The evidence sinks (issue 15, 2): the SQL table, a JSON Lines file and a list hold the same
hash chains; a JSON Lines trail verifies, and a tampered, removed or torn line is found."""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from corridor.audit import chain
from corridor.audit.events import Event, Outcome
from corridor.audit.log import AuditLog, EveryRefusal, Evidence
from corridor.audit.sinks import (
    EvidenceSink,
    JsonLinesSink,
    MemorySink,
    SqlSink,
    read_records,
    verify_file,
)
from corridor.store.sql import Store

WRITER = "rs:host:1:abcd"
#: The columns a caller gives (the chain adds writer, seq, prev_hash and hash).
CONTENT = tuple(name for name in chain.HASHED if name not in ("writer", "seq", "prev_hash"))


def record(n: int, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {name: None for name in CONTENT}
    base.update(time=1_700_000_000.0 + n, event=Event.RS_ACCESS, outcome=Outcome.ALLOWED, request_id=f"r{n}")
    return {**base, **values}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'trail.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def jsonl(tmp_path: Path) -> Iterator[JsonLinesSink]:
    sink = JsonLinesSink(tmp_path / "trail.jsonl")
    yield sink
    sink.close()


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def test_the_same_records_chain_to_the_same_hashes_in_every_sink(store: Store, jsonl: JsonLinesSink) -> None:
    records = [record(1), record(2, outcome=Outcome.REFUSED, error="invalid_token"), record(3, scope="a b")]
    memory = MemorySink()
    sinks: list[EvidenceSink] = [SqlSink(store), jsonl, memory]
    chains = [sink.append(WRITER, records[:1]) + sink.append(WRITER, records[1:]) for sink in sinks]
    hashes = [[row["hash"] for row in rows] for rows in chains]
    assert hashes[0] == hashes[1] == hashes[2] and len(set(hashes[0])) == 3
    assert [row["seq"] for row in chains[0]] == [1, 2, 3]
    assert chains[0][0]["prev_hash"] == chain.GENESIS and chains[0][1]["prev_hash"] == hashes[0][0]
    # What each holds is the same records, and each verifies.
    stored = [{k: v for k, v in row.items() if k != "id"} for row in store.audit.records()]
    in_file = [{k: v for k, v in row.items() if k != "id"} for row in read_records(jsonl.path)]
    in_memory = [{k: v for k, v in row.items() if k != "id"} for row in memory.records]
    assert stored == in_file == in_memory
    expected = f"{WRITER}: 3 records, intact"
    assert [r.line() for r in chain.verify(store)] == [expected]
    assert [r.line() for r in verify_file(jsonl.path)] == [expected]
    assert [r.line() for r in memory.verify()] == [expected]


def test_a_sql_sink_writes_inside_the_callers_transaction(store: Store) -> None:
    sink = SqlSink(store)
    with pytest.raises(RuntimeError), store.unit_of_work() as conn:
        sink.append(WRITER, [record(1)], conn)
        raise RuntimeError("the decision rolls back")
    assert store.audit.records() == []
    with store.unit_of_work() as conn:
        sink.append(WRITER, [record(1)], conn)
    assert [r["request_id"] for r in store.audit.records()] == ["r1"]


def test_writers_have_chains_of_their_own_in_one_file(jsonl: JsonLinesSink) -> None:
    for n in range(3):
        jsonl.append("agent:a", [record(n)])
        jsonl.append("agent:b", [record(n)])
    assert [r.line() for r in verify_file(jsonl.path)] == [
        "agent:a: 3 records, intact",
        "agent:b: 3 records, intact",
    ]
    # Opened again, the file continues each writer's chain where it ends.
    again = JsonLinesSink(jsonl.path)
    try:
        (row,) = again.append("agent:a", [record(9)])
    finally:
        again.close()
    assert row["seq"] == 4
    assert "agent:a: 4 records, intact" in [r.line() for r in verify_file(jsonl.path)]


def test_the_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    """design.md 5c: secrets at rest readable by the service only, from the first byte."""
    previous = os.umask(0)
    try:
        sink = JsonLinesSink(tmp_path / "new.jsonl")
    finally:
        os.umask(previous)
    sink.append(WRITER, [record(1)])
    sink.close()
    assert stat.S_IMODE((tmp_path / "new.jsonl").stat().st_mode) == 0o600


def test_a_loose_existing_file_is_tightened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "loose.jsonl"
    path.write_bytes(b"")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, "corridor.files"):
        JsonLinesSink(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "readable by others" in caplog.text


def test_each_record_is_one_canonical_line(jsonl: JsonLinesSink) -> None:
    jsonl.append(WRITER, [record(1, detail=json.dumps({"route": "/a\nb"}), user_id="zoë\u2028")])
    first, end = lines(jsonl.path)
    assert end == ""  # the file ends with the line's newline
    parsed = json.loads(first)
    assert parsed["user_id"] == "zoë\u2028" and json.loads(parsed["detail"]) == {"route": "/a\nb"}
    assert first.encode() == rfc8785.dumps(parsed)  # JCS: keys sorted, no whitespace


def edited(jsonl: JsonLinesSink, edit: Callable[[list[str]], list[str]]) -> list[str]:
    """Three records written, the file's lines changed by ``edit``; what verify says of it."""
    for n in range(3):
        jsonl.append(WRITER, [record(n)])
    jsonl.path.write_text("\n".join(edit(lines(jsonl.path))), encoding="utf-8")
    return [report.line() for report in verify_file(jsonl.path)]


def test_an_edited_line_is_found(jsonl: JsonLinesSink) -> None:
    def refused(text: list[str]) -> list[str]:
        return [text[0], text[1].replace('"outcome":"allowed"', '"outcome":"refused"'), *text[2:]]

    assert edited(jsonl, refused) == [
        f"{WRITER}: broken at record id 2 (#2): content does not match its hash (edited)"
    ]


def test_a_removed_line_is_found(jsonl: JsonLinesSink) -> None:
    assert edited(jsonl, lambda text: text[:1] + text[2:]) == [
        f"{WRITER}: broken at record id 2 (#3): record(s) 2 missing before it (deleted)"
    ]


def test_a_line_that_is_no_longer_a_record_is_found(jsonl: JsonLinesSink) -> None:
    assert edited(jsonl, lambda text: [text[0], text[1][:-1], *text[2:]]) == [
        f"{WRITER}: broken at record id 3 (#3): record(s) 2 missing before it (deleted)",
        f"{jsonl.path}: line 2 is not a record (edited)",
    ]


def test_a_torn_last_line_is_found_and_cut_off_on_open(
    jsonl: JsonLinesSink, caplog: pytest.LogCaptureFixture
) -> None:
    """A crash mid-write leaves a line without its end; verify names it, and the next open cuts
    it off (its append never returned, like a transaction that never committed)."""
    for n in range(2):
        jsonl.append(WRITER, [record(n)])
    whole = jsonl.path.read_bytes()
    torn = rfc8785.dumps({**record(2), "writer": WRITER, "seq": 3})[:40]
    with jsonl.path.open("ab") as file:
        file.write(torn)
    reports = [r.line() for r in verify_file(jsonl.path)]
    assert reports == [
        f"{WRITER}: 2 records, intact",
        f"{jsonl.path}: line 3 is torn (no end of line: a crash while it was written)",
    ]
    with caplog.at_level(logging.WARNING, "corridor.audit"):
        reopened = JsonLinesSink(jsonl.path)
    try:
        assert reopened.torn == torn and jsonl.path.read_bytes() == whole
        assert "line 3 was torn" in caplog.text
        (row,) = reopened.append(WRITER, [record(3)])
    finally:
        reopened.close()
    assert row["seq"] == 3
    assert [r.line() for r in verify_file(jsonl.path)] == [f"{WRITER}: 3 records, intact"]


def test_a_memory_sink_keeps_its_last_records() -> None:
    sink = MemorySink(keep=2)
    for n in range(5):
        sink.append(WRITER, [record(n)])
    assert [(r["id"], r["seq"]) for r in sink.records] == [(4, 4), (5, 5)]


def test_the_audit_log_samples_unauthenticated_refusals_in_any_sink() -> None:
    """issue 13 B4 stays the AuditLog's: 3 per source one by one, whatever the sink; a sink
    that bounds itself may record every one (EveryRefusal: a resource server's memory trail)."""
    evidence = Evidence(issuer="https://as.example", request_id="r")
    sampled, every = MemorySink(), MemorySink()
    for log in (AuditLog(sampled), AuditLog(every, sampler=EveryRefusal())):
        for _ in range(10):
            log.append(
                evidence, Event.PAR, Outcome.REFUSED, 60.0, error="x", unauthenticated_source="192.0.2.1"
            )
        log.flush(200.0)
    assert len(sampled.records) == 4 and sampled.records[-1]["outcome"] == Outcome.AGGREGATED
    assert json.loads(sampled.records[-1]["detail"])["aggregate"]["count"] == 7
    assert len(every.records) == 10


# -- any content round-trips -----------------------------------------------------------------------

#: Any text but lone surrogates (not encodable as UTF-8): control characters, bidirectional
#: formatting, line and paragraph separators, astral planes.
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
TIMES = st.floats(min_value=0, max_value=1e11, allow_nan=False, allow_infinity=False)


@st.composite
def contents(draw: st.DrawFn) -> dict[str, Any]:
    values: dict[str, Any] = {name: draw(st.none() | ANY_TEXT) for name in CONTENT if name != "time"}
    values.update(time=draw(TIMES), event=draw(ANY_TEXT), outcome=draw(ANY_TEXT))
    return values


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, JsonLinesSink]]:
    directory = tmp_path_factory.mktemp("any")
    store = Store(f"sqlite:///{directory / 'trail.db'}")
    store.migrate()
    sink = JsonLinesSink(directory / "trail.jsonl")
    yield store, sink
    sink.close()
    store.close()


@settings(deadline=None, max_examples=60)
@given(st.lists(contents(), min_size=1, max_size=3))
def test_any_record_content_round_trips_with_the_same_chain(
    shared: tuple[Store, JsonLinesSink], records: list[Mapping[str, Any]]
) -> None:
    store, jsonl = shared
    name = f"rs:{secrets.token_hex(8)}"  # a chain of its own in the shared store and file
    memory = MemorySink()
    rows = memory.append(name, records)
    assert [r["hash"] for r in jsonl.append(name, records)] == [r["hash"] for r in rows]
    assert [r["hash"] for r in SqlSink(store).append(name, records)] == [r["hash"] for r in rows]
    mine = [r for r in read_records(jsonl.path) if r["writer"] == name]
    assert [{k: v for k, v in r.items() if k != "id"} for r in mine] == [
        {k: v for k, v in r.items() if k != "id"} for r in rows
    ]
    assert all(chain.record_hash(r) == r["hash"] for r in mine)
    assert all(report.intact for report in verify_file(jsonl.path))
    assert all(report.intact for report in chain.verify(store))
