"""audit/jcs.py (issue 19): the chain's JCS form by orjson is byte for byte ``rfc8785.dumps``, on
every record shape the AS writes and on generated objects; where the fast path does not apply it
falls back to ``rfc8785`` (the same bytes, or the same refusal); chains hashed before it verify
after it and the other way round."""

from __future__ import annotations

import contextlib
import enum
import hashlib
import math
import sys
from collections.abc import Mapping
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from corridor.audit import chain, jcs
from corridor.audit.events import Event, Outcome
from corridor.audit.log import AuditLog, EveryRefusal, Evidence, RefusalSampler
from corridor.audit.sinks import MemorySink, jsonl_line, verify_records
from corridor.audit.verify_pack import record_hash as standalone_record_hash
from corridor.core.rules import Rule

WRITER = "as:host:1:abcd"
#: Every Unicode scalar value (no surrogates), in strings of a few thousand characters.
SCALARS = [c for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]


def same(value: Any) -> bytes:
    """``jcs.dumps(value)``, asserted to be ``rfc8785.dumps(value)`` (or to fail as it does)."""
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as refused:
        with pytest.raises(type(refused)):
            jcs.dumps(value)
        raise
    assert jcs.dumps(value) == expected
    return expected


def fast(value: dict[str, Any]) -> bytes:
    """As :func:`same`, and the fast path (orjson) wrote it."""
    written = jcs._flat(value)
    assert written is not None, "the fast path was not taken"
    assert written == same(value)
    return written


# -- the old hashing, as it was before issue 19 (rfc8785 only) ----------------------------------


def old_body_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps({name: record.get(name) for name in chain.BODY})).hexdigest()


def old_record_hash(record: Mapping[str, Any]) -> str:
    fields = {name: record.get(name) for name in chain.LINK_FIELDS}
    fields["body_sha256"] = old_body_hash(record)
    return hashlib.sha256(rfc8785.dumps(fields)).hexdigest()


def old_flat_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps({name: record.get(name) for name in chain.HASHED})).hexdigest()


# -- strings --------------------------------------------------------------------------------------


def test_every_code_point_is_written_as_rfc8785_writes_it() -> None:
    """RFC 8785 3.2.2.2: each scalar value, escaped or raw, in a value and in a name's place."""
    for start in range(0, len(SCALARS), 4096):
        text = "".join(map(chr, SCALARS[start : start + 4096]))
        fast({"k": text, "a": text[::-1]})
    for code in range(0x80):  # ASCII names: the control characters escaped the same way
        fast({chr(code): chr(code), "x" + chr(code): 1})


@pytest.mark.parametrize("surrogate", ["\ud800", "\udfff", "a\udc00b", "\ud83d", "\U0001f600\ud800"])
def test_a_lone_surrogate_is_refused_as_rfc8785_refuses_it(surrogate: str) -> None:
    assert jcs._flat({"k": surrogate}) is None
    with pytest.raises(rfc8785.CanonicalizationError):
        same({"k": surrogate})


def test_surrogate_adjacent_and_special_code_points() -> None:
    for text in ["\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0010ffff", "\u2028\u2029", "\x7f", "\ufeff"]:
        fast({"k": text, text.encode("unicode_escape").decode(): text})


def test_names_are_sorted_by_utf_16_code_units() -> None:
    """RFC 8785 3.2.3: outside ASCII, UTF-16 order is not code point order (U+10000 before
    U+FF61); such names take the fallback, which sorts them right."""
    value = {"\U00010000": 1, "\uff61": 2, "b": 3, "B": 4, "_": 5, "": 6}
    assert jcs._flat(value) is None
    assert same(value) == rfc8785.dumps(value)
    fast({"b": 1, "B": 2, "_": 3, "": 4, "a b": 5, "~": 6, "0": 7, "Z": 8})


def test_records_enumerations_are_their_values() -> None:
    """Every Event, Outcome and Rule member's str content is its value (why they are plain)."""
    for kind in (Event, Outcome, Rule):
        for member in kind:
            assert str.__str__(member) == member.value
            fast({"e": member, "v": member.value})


def test_other_str_subclasses_are_written_as_their_content() -> None:
    class Odd(str):
        def __str__(self) -> str:
            return "something else"

    class Mixed(str, enum.Enum):  # noqa: UP042 (deliberately not a StrEnum)
        ONE = 1  # its str content is "1", its value the number 1

    fast({"odd": Odd("text"), "mixed": Mixed.ONE, "name": "x"})
    assert rfc8785.dumps({"mixed": Mixed.ONE}) == b'{"mixed":"1"}'


# -- numbers --------------------------------------------------------------------------------------

EDGE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    0.1 + 0.2,
    1e-4,
    -1e-4,
    9.999999999999999e-05,
    1.0000000000000001e-4,
    1e-5,
    1e-6,
    1e-7,
    5e-324,
    2.2250738585072014e-308,
    1e15,
    9999999999999998.0,
    1e16,
    1e20,
    1e21,
    1e22,
    sys.float_info.max,
    123456789.123456789,
    1_700_000_000.0,
    1_765_100_000.123456,
    2.0**53,
    2.0**53 + 2,
    -(2.0**60),
    333333333.33333329,
    1e23,
    4.35,
    0.000001,
]


@pytest.mark.parametrize("number", EDGE_FLOATS)
def test_floats_at_the_notation_edges(number: float) -> None:
    """RFC 8785 3.2.2.3 (ECMA-262 Number::toString): the fast path writes positional floats, the
    rest go to rfc8785; either way the same bytes."""
    value = {"time": number, "n": -number}
    assert jcs.dumps(value) == rfc8785.dumps(value)
    text = jcs.es_number(number)
    if text is not None:
        assert text.encode() == rfc8785.dumps(number)
        assert jcs._flat(value) is not None


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused(number: float) -> None:
    assert jcs.es_number(number) is None
    with pytest.raises(rfc8785.CanonicalizationError):
        same({"time": number})


@pytest.mark.parametrize(
    "number", [0, 1, -1, 2**31, 2**53 - 1, -(2**53 - 1), 2**53, -(2**53), 2**64, -(2**70), 10**30]
)
def test_integers_in_and_out_of_the_safe_range(number: int) -> None:
    value = {"seq": number}
    if abs(number) <= jcs.SAFE_INTEGER:
        fast(value)
    else:
        assert jcs._flat(value) is None
        with pytest.raises(rfc8785.CanonicalizationError):
            same(value)


def test_booleans_null_and_other_types() -> None:
    fast({"t": True, "f": False, "n": None})

    class Count(enum.IntEnum):
        ONE = 1

    class Ratio(float):
        pass

    others: list[dict[Any, Any]] = [{"i": Count.ONE}, {"r": Ratio(0.5)}, {"l": [1, "a"]}, {"d": {"a": 1}}]
    for value in [*others, {"t": (1, 2)}]:
        assert jcs._flat(value) is None
        assert jcs.dumps(value) == rfc8785.dumps(value)
    refusals: list[dict[Any, Any]] = [{"b": b"bytes"}, {"s": {1, 2}}, {1: "not a name"}]
    for refused in refusals:
        assert jcs._flat(refused) is None
        with pytest.raises(rfc8785.CanonicalizationError):
            same(refused)
    assert jcs.dumps([1, "a", None]) == rfc8785.dumps([1, "a", None])
    assert jcs.dumps("text") == rfc8785.dumps("text")


# -- generated objects ----------------------------------------------------------------------------

SCALAR_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None, exclude_categories=()))
    | st.sampled_from([*Event, *Outcome, *Rule])
)
VALUES = st.recursive(
    SCALAR_VALUES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(alphabet=st.characters(max_codepoint=0x7F)), SCALAR_VALUES, max_size=24))
def test_generated_flat_objects(value: dict[str, Any]) -> None:
    with contextlib.suppress(rfc8785.CanonicalizationError):
        same(value)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), VALUES, max_size=8))
def test_generated_objects_of_any_shape(value: dict[str, Any]) -> None:
    with contextlib.suppress(rfc8785.CanonicalizationError):
        same(value)


# -- every record shape the AS writes -------------------------------------------------------------


def rich(event: str) -> Evidence:
    """A record's evidence with every member filled in, non-ASCII and control characters too."""
    return Evidence(
        issuer="https://as.example.com",
        request_id="r-\u00e9\u2028",
        client_id="client \u202e\u0007",
        user_id="u" * 22,
        redirect_uri="https://client.example.com/cb?x=\u00fc",
        scope="openid accounts",
        authorization_details=[
            {"type": "payment_initiation", "instructedAmount": {"currency": "EUR", "amount": "123.50"}},
            {"type": "tool", "name": "Zo\u00eb \U0001f600", "limit": 12.5, "n": 2**40},
        ],
        resource=["https://rs.example.com", "urn:x:\u00e9"],
        sender_constraint="dpop",
        key_thumbprint="k" * 43,
        grant_id="g" * 22,
        token_jti="j" * 22,
        detail={
            "interaction": "i" * 22,
            "approval_surface": {
                "surface": "consent_page",
                "body_sha256": "a" * 64,
                "facts": {"headline": 'Allow \u201cZo\u00eb\u201d to pay \u20ac1?\n\t"\\'},
            },
            "event": event,
        },
    )


def chained_rows(log: AuditLog) -> list[dict[str, Any]]:
    sink = log.sink
    assert isinstance(sink, MemorySink)
    return sink.records


def check_rows(rows: list[dict[str, Any]]) -> None:
    """Each row: body, link, flat and JSON Lines forms as rfc8785 writes them, by the fast path,
    and its hash what the old code and the standalone verifier compute."""
    for row in rows:
        body = {name: row.get(name) for name in chain.BODY}
        fields = {name: row.get(name) for name in chain.LINK_FIELDS}
        fields["body_sha256"] = chain.body_hash(row)
        fast(body)
        fast(fields)
        fast({name: row.get(name) for name in chain.HASHED})
        assert jsonl_line(row) == rfc8785.dumps(dict(row)) + b"\n"
        assert jcs._flat(dict(row)) is not None
        assert row["hash"] == chain.record_hash(row) == old_record_hash(row) == standalone_record_hash(row)
        assert chain.flat_hash(row) == old_flat_hash(row)
        assert chain.sealed(row)


@pytest.mark.parametrize("event", list(Event))
def test_every_event_and_outcome(event: Event) -> None:
    log = AuditLog(MemorySink(), sampler=EveryRefusal())
    for outcome in Outcome:
        log.append(rich(event), event, outcome, 1_765_100_000.123456, rule=Rule.FAPI2_5_3_2_2_3, error="x")
        log.append(Evidence(issuer="https://as.example.com", request_id="r"), event, outcome, 1_765_100_001.0)
        log.append(rich(event), event, outcome, 1_765_100_002.5, rule="CSRF")
    rows = chained_rows(log)
    check_rows(rows)
    assert all(report.intact for report in verify_records(rows))


def test_refusal_aggregates() -> None:
    log = AuditLog(MemorySink(), sampler=RefusalSampler(per_source=1, window=60.0))
    for n in range(5):
        log.append(
            Evidence(issuer="https://as.example.com", request_id=f"r{n}"),
            Event.TOKEN,
            Outcome.REFUSED,
            1_765_100_000.0 + n,
            rule=Rule.FAPI2_5_3_2_1_2,
            error="invalid_client",
            unauthenticated_source="2001:db8::1",
        )
    assert log.flush(1_765_100_200.0) == 1
    rows = chained_rows(log)
    assert any(row["outcome"] == Outcome.AGGREGATED for row in rows)
    check_rows(rows)


def test_checkpoint_heads() -> None:
    """A checkpoint's digest is of a nested object (the fallback), the same as before."""
    heads: dict[str, Any] = {
        WRITER: {"seq": 12, "hash": "a" * 64},
        "rs:h\u00f6st:2:ef01": {"seq": 2**40, "hash": "b" * 64},
    }
    assert chain.heads_digest(heads) == hashlib.sha256(rfc8785.dumps(heads)).hexdigest()


def test_chains_hashed_before_verify_after_and_the_other_way_round() -> None:
    """Records chained with the old hashing (rfc8785) verify with the new, records chained now
    verify with the old one and with the standalone verifier; records of before issue 16 (one flat
    hash) still seal."""
    log = AuditLog(MemorySink())
    for n, event in enumerate(Event):
        log.append(rich(event), event, Outcome.ACCEPTED, 1_765_100_000.25 + n)
    new = chained_rows(log)
    old: list[dict[str, Any]] = []
    prev = chain.GENESIS
    for n, row in enumerate(new, 1):
        content = {
            name: row[name] for name in row if name not in ("id", "writer", "seq", "prev_hash", "hash")
        }
        rebuilt = {"id": n, **content, "writer": WRITER, "seq": n, "prev_hash": prev}
        rebuilt["hash"] = prev = old_record_hash(rebuilt)
        old.append(rebuilt)
        flat = {**rebuilt}
        flat["hash"] = old_flat_hash(flat)
        assert chain.sealed(flat)
    assert all(report.intact for report in verify_records(old))
    assert all(report.intact for report in verify_records(new))
    assert all(row["hash"] == old_record_hash(row) for row in new)
