"""Differential tests of the faster parse paths (issue 19) against the code they replaced, kept
here verbatim as the reference: the same inputs, the same verdicts and the same values.

- core/b64.py ``b64url_encode``: binascii directly, the same text as base64's.
- core/b64.py ``b64url_decode``: one C pass (binascii strict mode) instead of a regex and
  ``str.translate``; still unpadded, canonical base64url only (RFC 4648 3.5, 5).
- core/json_limits.py ``check_json_limits``: documents with no more openers than the depth limit
  skip the scan (issue 13 B5): no document nests deeper than it has ``[`` and ``{``.
- core/strictjson.py ``loads``: one decoder built once instead of per call.
- core/jose.py ``SigningKey.sign``: straight on ``cryptography`` instead of joserfc's
  ``serialize_compact``; the same header and payload bytes, signatures joserfc verifies.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from joserfc import jwk, jws
from joserfc.errors import JoseError

from corridor.core import strictjson
from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.jose import SigningKey, _registry
from corridor.core.json_limits import JSONLimitError, check_json_limits, nesting_depth
from tests.hostile import B64URL

# -- the reference: the code before issue 19 ------------------------------------------------------

_OLD_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_OLD_TO_STANDARD = str.maketrans("-_", "+/")
_OLD_SPARE_BITS = {0: 0, 2: 0b1111, 3: 0b11}


def old_b64url_decode(text: str) -> bytes:
    if not text or len(text) % 4 == 1 or not _OLD_BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    spare = _OLD_SPARE_BITS[len(text) % 4]
    if spare and B64URL.index(text[-1]) & spare:
        raise ValueError("not canonical base64url")
    return binascii.a2b_base64(text.translate(_OLD_TO_STANDARD) + "=" * (-len(text) % 4))


def old_check_json_limits(data: str | bytes, max_depth: int, max_size: int) -> None:
    if len(data) > max_size:
        raise JSONLimitError("too large")
    if nesting_depth(data, max_depth) > max_depth:
        raise JSONLimitError("too deep")


def _no_constants(name: str) -> float:
    raise ValueError(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def old_strict_loads(data: str | bytes) -> Any:
    check_json_limits(data)
    try:
        if isinstance(data, bytes | bytearray):
            text, unchecked = data.decode("utf-8"), False
        else:
            text, unchecked = data, not data.isascii()
        value = json.loads(text, parse_constant=_no_constants, parse_float=_finite)
        if unchecked or "\\u" in text:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (RecursionError, UnicodeError, TypeError) as exc:
        raise ValueError("not acceptable JSON") from exc
    return value


def verdict(function: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", function(*args)
    except JSONLimitError:
        return "limit", None
    except ValueError:
        return "refused", None


# -- base64url -------------------------------------------------------------------------------------

#: Near-base64url text: the alphabet, the standard alphabet's own characters, padding, space,
#: non-ASCII lookalikes; any length mod 4.
near_b64 = st.text(B64URL + "+/= \n\t.\u00e9\uff21\x00", max_size=40)


@settings(max_examples=2000, deadline=None)
@given(near_b64 | st.text(max_size=40) | st.text(B64URL, max_size=90))
@example("")
@example("QQ")
@example("QR")  # not canonical: unused bits set
@example("QUJ")
@example("QUI")
@example("QQ==")
@example("QUJD====")
@example("QU=J")
@example("a+b/")
@example("Zm9v\n")
@example("\uff21")
def test_b64url_decode_agrees_with_the_regex_version(text: str) -> None:
    assert verdict(b64url_decode, text) == verdict(old_b64url_decode, text)


@given(st.binary(max_size=300))
def test_b64url_decode_reads_what_base64_writes(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert encoded == base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
    if data:
        assert b64url_decode(encoded) == data == base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))


# -- JSON limits and strict JSON ---------------------------------------------------------------------

brackets = st.text(st.sampled_from('[]{}"\\a,:1 '), max_size=80)


@settings(max_examples=1000, deadline=None)
@given(brackets | st.text(max_size=60), st.integers(0, 6), st.booleans())
@example("[[[[]]]]", 3, False)
@example('["[[[["]', 1, True)
def test_check_json_limits_agrees_with_the_scan(text: str, max_depth: int, as_bytes: bool) -> None:
    data: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    assert verdict(check_json_limits, data, max_depth, 64) == verdict(
        old_check_json_limits, data, max_depth, 64
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=12,
)
json_like = st.text(st.sampled_from('{}[]":,0123456789.eE+-tfnaNIu\\ud800x '), max_size=40)


@settings(max_examples=1000, deadline=None)
@given(
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False)) | json_like | st.text(max_size=30),
    st.booleans(),
)
@example('{"a":1,"a":2}', True)
@example('"\\ud800"', False)
@example("1e400", True)
@example("\ufeff{}", True)
@example("NaN", False)
@example("9223372036854775808", False)
@example("-9223372036854775809", True)
@example("18446744073709551616.5e3", True)
@example('{"a":"\\udc00\\ud800"}', True)
@example("\u00e9", False)
@example(" [1,2] \n", True)
@example("[1]\u00a0", False)
@example("0.1e-400", True)
@example("-0.0", True)
@example("1E+2", False)
def test_strict_loads_agrees_with_the_json_module_path(text: str, as_bytes: bool) -> None:
    data: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    ours, theirs = verdict(strictjson.loads, data), verdict(old_strict_loads, data)
    assert ours[0] == theirs[0]
    if ours[0] == "ok":
        assert json.dumps(ours[1], sort_keys=True) == json.dumps(theirs[1], sort_keys=True)


# -- signing (core/jose.py SigningKey.sign straight on cryptography) -------------------------------

SIGNERS = {alg: SigningKey.generate(alg) for alg in ("ES256", "PS256", "EdDSA")}
claims_values = st.dictionaries(
    st.text(max_size=8),
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.text(max_size=12)
    | st.lists(st.text(max_size=4), max_size=3),
    max_size=6,
)
extra_headers = st.sampled_from(
    [
        None,
        {"kid": "other"},
        {"jwk": SIGNERS["ES256"].public_jwk_without_meta()},
        {"x": "\u00e9"},
        {"cty": "JWT"},
    ]
)


def joserfc_compact(key: SigningKey, claims: dict[str, Any], typ: str, extra: dict[str, Any] | None) -> str:
    """What SigningKey.sign returned before: joserfc's serialize_compact of the same header and payload."""
    header: dict[str, Any] = {"alg": key.alg, "typ": typ, **(extra or {})}
    if "jwk" not in header:
        header.setdefault("kid", key.kid)
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False)
    return jws.serialize_compact(header, payload, key.key, algorithms=[key.alg], registry=_registry(key.alg))


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(sorted(SIGNERS)),
    claims_values,
    st.sampled_from(["JWT", "at+jwt", "dpop+jwt"]),
    extra_headers,
)
def test_signatures_verify_with_joserfc_and_match_its_bytes(
    alg: str, claims: dict[str, Any], typ: str, extra: dict[str, Any] | None
) -> None:
    key = SIGNERS[alg]
    ours = key.sign(claims, typ, extra)
    theirs = joserfc_compact(key, claims, typ, extra)
    # Header and payload segments byte for byte; EdDSA is deterministic, so the whole JWS too.
    assert ours.rpartition(".")[0] == theirs.rpartition(".")[0]
    if alg == "EdDSA":
        assert ours == theirs
    public = jwk.import_key(key.public_jwk)
    obj = jws.deserialize_compact(ours, public, algorithms=[alg], registry=_registry(alg))
    assert json.loads(obj.payload) == claims
    assert obj.protected == json.loads(b64url_decode(theirs.split(".")[0]))


def test_signing_refusals_still_come_from_joserfc() -> None:
    """An alg the key is not for, or RFC 7797 b64, goes through joserfc, which refuses as before."""
    key = SIGNERS["ES256"]
    for extra in ({"alg": "none"}, {"alg": "HS256"}, {"alg": "PS256"}, {"crit": ["exp"], "exp": 1}):
        with pytest.raises((JoseError, ValueError)):
            key.sign({"a": 1}, "JWT", extra)
        with pytest.raises((JoseError, ValueError)):
            joserfc_compact(key, {"a": 1}, "JWT", extra)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v).encode()))
@example(b"\xef\xbb\xbf{}")
@example(b'"\xed\xa0\x80"')
@example(b'"\xff"')
def test_strict_loads_of_any_bytes_agrees(data: bytes) -> None:
    ours, theirs = verdict(strictjson.loads, data), verdict(old_strict_loads, data)
    assert ours[0] == theirs[0]
    if ours[0] == "ok":
        assert json.dumps(ours[1], sort_keys=True) == json.dumps(theirs[1], sort_keys=True)
