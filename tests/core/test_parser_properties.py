"""Property-based robustness of the parsers, called directly (no HTTP).

Design rule: bad input never breaks us. Every input either parses or raises the
documented error type (``InvalidDPoPProof``/``OAuthError``, ``JoseFailure``,
``AuthorizationDetailsError``, ``ValueError`` for base64url); any other exception
is a bug. Where a parser hands its result to code that stores, hashes or
serializes it, a few postconditions check that an accepted value is also safe
to use (finite times, UTF-8-encodable strings, strict JSON).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corridor.core import pkce
from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.dpop import DPOP_TYP, MAX_JTI_LENGTH, make_proof, verify_proof
from corridor.core.errors import InvalidDPoPProof, OAuthError
from corridor.core.jose import (
    FAPI_ALGORITHMS,
    JoseFailure,
    SigningKey,
    check_public_jwk,
    check_public_jwks,
    jwk_thumbprint,
    read_header,
    verify_with_keys,
)
from corridor.policy.details import AuthorizationDetailsError, parse_authorization_details
from corridor.server.forms import MAX_FIELDS, REPEATABLE, Form, parse_pairs
from tests.hostile import (
    B64URL,
    apply,
    b64ish,
    deep_json,
    dumps,
    enc,
    enc_text,
    json_objects,
    json_values,
    mutations,
    sign_json,
    sign_text,
    surrogates,
)

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

PROPS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# One key per FAPI algorithm, made once (RSA generation is slow).
ES = SigningKey.generate("ES256")
ED = SigningKey.generate("EdDSA")
PS = SigningKey.generate("PS256")
KEYS = (ES, ED, PS)
KEY_BY_ALG = {key.alg: key for key in KEYS}

NOW = 1_700_000_000.0
MAX_FUTURE = 10.0
MAX_PAST = 60.0
HTM = "POST"
HTU = "https://as.example.org/token"
SUPPORTED_TYPES = ("payment_initiation", "account_information")

UNRESERVED = B64URL + ".~"
_STRICT_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_STRICT_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")

# -- strategies --------------------------------------------------------------------------------

#: Around MAX_JWS_LENGTH (16 KiB), with and without dots.
oversized = st.builds(
    lambda n, unit: (unit * n)[:n], st.integers(16_000, 17_000), st.sampled_from(["A", "eyJ9.", "W1tb"])
)


json_part = st.one_of(
    json_values.map(enc),
    json_objects.map(enc),
    deep_json.map(enc_text),
    b64ish,
    st.text(max_size=30),
    st.binary(max_size=40).map(b64url_encode),
)
#: Strings that look more or less like a compact JWS.
compact_like = st.one_of(
    st.tuples(json_part, json_part, json_part).map(".".join),
    st.lists(json_part, max_size=5).map(".".join),
    st.text(max_size=120),
    st.text(B64URL + ".", max_size=200),
)


def proof_parts(key: SigningKey) -> tuple[dict[str, Any], dict[str, Any]]:
    header = {"alg": key.alg, "typ": DPOP_TYP, "jwk": key.public_jwk_without_meta()}
    claims = {"jti": "jti-" + key.alg, "htm": HTM, "htu": HTU, "iat": int(NOW), "nonce": "n0nce"}
    return header, claims


@st.composite
def mutated_proofs(draw: st.DrawFn) -> str:
    """A correctly signed DPoP proof with exactly one header, jwk or claim field changed."""
    key = draw(st.sampled_from(KEYS))
    header, claims = proof_parts(key)
    where = draw(st.sampled_from(["header", "jwk", "claims"]))
    if where == "header":
        apply(header, draw(mutations(("alg", "typ", "jwk", "kid", "crit", "b64", "x5c", "jku"))))
    elif where == "jwk":
        apply(header["jwk"], draw(mutations(("kty", "crv", "x", "y", "n", "e", "alg", "use", "kid", "d"))))
    else:
        apply(claims, draw(mutations(("jti", "htm", "htu", "iat", "nonce", "ath", "exp"))))
    return sign_json(key, header, claims)


@st.composite
def resigned_garbage(draw: st.DrawFn) -> str:
    """A real proof whose signature is replaced or whose parts are swapped around."""
    key = draw(st.sampled_from(KEYS))
    header, claims = proof_parts(key)
    token = sign_json(key, header, claims)
    h, p, s = token.split(".")
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return f"{h}.{p}.{b64url_encode(draw(st.binary(max_size=600)))}"
    if choice == 1:
        return f"{h}.{p}.{draw(b64ish)}"
    if choice == 2:
        return f"{h}.{draw(json_part)}.{s}"
    return f"{draw(json_part)}.{p}.{s}"


#: Deep nesting inside a header that read_header must parse.
DEEP_HEADER_JWS = enc_text("[" * 5000) + ".e30.AA"
#: A valid ES256 signature over a payload nested too deep to decode.
DEEP_PAYLOAD_JWS = sign_text(ES, {"alg": "ES256", "kid": ES.kid}, "[" * 5000)
DEEP_PAYLOAD_PROOF = sign_text(ES, proof_parts(ES)[0], '{"jti":"x","a":' + "[" * 5000)
#: Correctly signed proofs whose claims are hostile: NaN iat, a lone-surrogate jti.
NAN_IAT_PROOF = sign_json(ES, proof_parts(ES)[0], {**proof_parts(ES)[1], "iat": math.nan})
SURROGATE_JTI_PROOF = sign_json(ES, proof_parts(ES)[0], {**proof_parts(ES)[1], "jti": "\ud800"})


def utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def strict_json_ok(value: Any) -> bool:
    """What a JSON response or a signed token needs: no NaN/Infinity, only encodable strings."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    return True


def checked_verify(values: list[str], access_token: str | None = None) -> None:
    """verify_proof raises only InvalidDPoPProof; what it accepts is fresh and storable."""
    try:
        proof = verify_proof(
            values,
            method=HTM,
            url=HTU,
            now=NOW,
            max_future=MAX_FUTURE,
            max_past=MAX_PAST,
            access_token=access_token,
        )
    except InvalidDPoPProof as error:
        assert error.error == "invalid_dpop_proof"
        assert isinstance(error, OAuthError) and error.status == 400
        return
    # Postconditions: the AS stores (jkt, jti) in its replay cache until iat + window.
    assert NOW - MAX_PAST <= proof.iat <= NOW + MAX_FUTURE, f"accepted iat {proof.iat!r} outside the window"
    assert isinstance(proof.jti, str) and 0 < len(proof.jti) <= MAX_JTI_LENGTH
    assert utf8_ok(proof.jti), f"accepted jti {proof.jti!r} cannot be hashed (UTF-8) for the replay cache"
    assert proof.nonce is None or isinstance(proof.nonce, str)
    assert proof.claims["htm"] == HTM


# -- base64url ---------------------------------------------------------------------------------


@given(st.text(max_size=80) | b64ish | st.text(B64URL + "=+/ \n", max_size=80))
def test_b64url_decode_raises_only_value_error(text: str) -> None:
    try:
        data = b64url_decode(text)
    except ValueError:
        return
    assert isinstance(data, bytes)


@given(st.binary(min_size=1, max_size=200))
def test_b64url_round_trip(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


# -- JOSE --------------------------------------------------------------------------------------


@PROPS
@given(compact_like | mutated_proofs() | resigned_garbage() | oversized)
@example(DEEP_HEADER_JWS)
def test_read_header_raises_only_jose_failure(token: str) -> None:
    try:
        header = read_header(token)
    except JoseFailure:
        return
    assert isinstance(header, dict) and isinstance(header["alg"], str)


public_jwks = st.sampled_from([k.public_jwk for k in KEYS] + [k.public_jwk_without_meta() for k in KEYS])


@st.composite
def mutated_jwks(draw: st.DrawFn) -> dict[str, Any]:
    jwk = dict(draw(public_jwks))
    fields = ("kty", "crv", "x", "y", "n", "e", "alg", "use", "kid", "d", "key_ops")
    for _ in range(draw(st.integers(1, 2))):
        apply(jwk, draw(mutations(fields)))
    return jwk


any_jwk = st.one_of(public_jwks, mutated_jwks(), json_objects)


@PROPS
@given(any_jwk | json_values)
def test_check_public_jwk_raises_only_jose_failure(data: Any) -> None:
    try:
        check_public_jwk(data)
    except JoseFailure:
        return
    assert data["kty"] in ("RSA", "EC", "OKP")


@PROPS
@given(any_jwk)
def test_jwk_thumbprint_raises_only_jose_failure(data: Any) -> None:
    try:
        thumbprint = jwk_thumbprint(data)
    except JoseFailure:
        return
    assert len(b64url_decode(thumbprint)) == 32


@PROPS
@given(
    json_values
    | st.fixed_dictionaries({"keys": json_values})
    | st.fixed_dictionaries({"keys": st.lists(any_jwk | json_values, max_size=5)})
)
def test_check_public_jwks_raises_only_jose_failure(data: Any) -> None:
    try:
        keys = check_public_jwks(data)
    except JoseFailure:
        return
    assert keys
    for key in keys:
        check_public_jwk(key)


@st.composite
def signed_tokens(draw: st.DrawFn) -> str:
    """Correctly signed tokens with a hostile header or payload."""
    key = draw(st.sampled_from(KEYS))
    header: dict[str, Any] = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    if draw(st.booleans()):
        apply(header, draw(mutations(("alg", "kid", "typ", "crit", "b64", "jwk", "zip"))))
    payload = draw(json_values.map(dumps) | deep_json | st.text(max_size=60))
    return sign_text(key, header, payload)


@PROPS
@given(
    compact_like | signed_tokens() | mutated_proofs() | resigned_garbage(),
    st.lists(any_jwk, max_size=4),
    st.lists(st.sampled_from([*FAPI_ALGORITHMS, "none", "HS256", "RS256"]), min_size=1, max_size=4),
)
@example(DEEP_PAYLOAD_JWS, [ES.public_jwk], list(FAPI_ALGORITHMS))
def test_verify_with_keys_raises_only_jose_failure(
    token: str, keys: list[Any], algorithms: list[str]
) -> None:
    try:
        header = read_header(token)
    except JoseFailure:
        return
    try:
        claims = verify_with_keys(token, header, keys, algorithms)
    except JoseFailure:
        return
    assert isinstance(claims, dict)
    assert header["alg"] in algorithms and header["alg"] in FAPI_ALGORITHMS


@PROPS
@given(st.lists(compact_like, max_size=3))
@example([DEEP_HEADER_JWS])
def test_verify_proof_random_header_lists(values: list[str]) -> None:
    checked_verify(values)


@PROPS
@given(compact_like | resigned_garbage())
@example(DEEP_HEADER_JWS)
def test_verify_proof_jws_lookalikes(value: str) -> None:
    checked_verify([value])


@PROPS
@given(mutated_proofs(), st.none() | st.text(max_size=40))
@example(DEEP_PAYLOAD_PROOF, None)
@example(NAN_IAT_PROOF, None)
@example(SURROGATE_JTI_PROOF, None)
def test_verify_proof_mutated_valid_proofs(value: str, access_token: str | None) -> None:
    checked_verify([value], access_token)


@PROPS
@given(
    st.tuples(st.sampled_from(KEYS), st.integers(0, 3)).map(
        lambda pair: sign_json(
            pair[0],
            {"alg": pair[0].alg, "typ": DPOP_TYP, "jwk": pair[0].public_jwk_without_meta()},
            {"jti": "x", "htm": HTM, "htu": HTU, "iat": int(NOW)},
        )
    ),
    st.integers(0, 3),
)
def test_verify_proof_needs_exactly_one_value(proof: str, copies: int) -> None:
    values = [proof] * copies
    if copies == 1:
        checked_verify(values)
        return
    try:
        verify_proof(values, method=HTM, url=HTU, now=NOW, max_future=MAX_FUTURE, max_past=MAX_PAST)
    except InvalidDPoPProof:
        return
    raise AssertionError(f"{copies} DPoP values were accepted")


# -- making proofs that verify -----------------------------------------------------------------

methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]) | st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12
)
hosts = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10), min_size=1, max_size=4
)
path_chars = st.text(UNRESERVED + "!$&'()*+,;=:@", max_size=10) | st.integers(0, 255).map(
    lambda b: f"%{b:02X}"
)
segments = st.lists(path_chars, max_size=4).map("".join)
paths = st.lists(segments, max_size=5).map(lambda parts: "/" + "/".join(parts))


@st.composite
def urls(draw: st.DrawFn) -> str:
    host = ".".join(draw(hosts))
    port = draw(st.none() | st.integers(1, 65535))
    netloc = host if port is None else f"{host}:{port}"
    return f"https://{netloc}{draw(paths)}"


@PROPS
@given(
    st.sampled_from(KEYS),
    methods,
    urls(),
    st.none() | st.text(B64URL, min_size=1, max_size=40),
    st.none() | st.text(UNRESERVED, min_size=1, max_size=60),
    st.text("abcdefghij=&", max_size=20),
)
def test_made_proofs_verify(
    key: SigningKey, method: str, url: str, nonce: str | None, access_token: str | None, query: str
) -> None:
    proof = make_proof(key, method, url, nonce=nonce, access_token=access_token, iat=NOW)
    # RFC 9449 4.3-9: query and fragment are not part of htu; scheme and host are case-blind.
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    variant = f"{scheme.upper()}://{host.upper()}/{path}?{query}#frag"
    for target in (url, variant):
        verified = verify_proof(
            [proof],
            method=method,
            url=target,
            now=NOW,
            max_future=MAX_FUTURE,
            max_past=MAX_PAST,
            access_token=access_token,
        )
        assert verified.jkt == key.thumbprint()
        assert verified.nonce == nonce
        assert verified.iat == NOW


# -- authorization_details ---------------------------------------------------------------------

detail_entries = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"type": st.sampled_from([*SUPPORTED_TYPES, "unknown"]) | json_values},
        optional={
            "locations": st.lists(st.text(max_size=10), max_size=3) | json_values,
            "actions": st.lists(st.text(max_size=10), max_size=3) | json_values,
            "datatypes": st.lists(st.text(max_size=10), max_size=3) | json_values,
            "privileges": st.lists(st.text(max_size=10), max_size=3) | json_values,
            "identifier": st.text(max_size=10) | json_values,
            "amount": json_values,
        },
    ),
)
details_text = st.one_of(
    st.text(max_size=60),
    json_values.map(dumps),
    st.lists(detail_entries, max_size=20).map(dumps),
    deep_json,
)


@PROPS
@given(details_text)
@example("[" * 5000)
def test_parse_authorization_details_raises_only_its_error(text: str) -> None:
    try:
        details = parse_authorization_details(text, SUPPORTED_TYPES)
    except AuthorizationDetailsError:
        return
    assert isinstance(details, list) and details
    assert all(isinstance(d, dict) and d["type"] in SUPPORTED_TYPES for d in details)


@PROPS
@given(st.lists(detail_entries, min_size=1, max_size=4).map(dumps))
@example('[{"type":"payment_initiation","amount":NaN}]')
@example('[{"type":"payment_initiation","amount":1e999}]')
@example('[{"type":"payment_initiation","note":"\\ud800"}]')
def test_accepted_authorization_details_are_strict_json(text: str) -> None:
    """Accepted details end up in JSON responses and signed tokens (RFC 9396 7, 9.1)."""
    try:
        details = parse_authorization_details(text, SUPPORTED_TYPES)
    except AuthorizationDetailsError:
        return
    assert strict_json_ok(details), f"accepted authorization_details are not strict JSON: {text!r}"


# -- forms -------------------------------------------------------------------------------------

form_words = st.text(max_size=12) | st.sampled_from(["resource", "scope", "client_id", "state", "code"])
pct_bytes = st.binary(min_size=1, max_size=6).map(lambda b: "".join(f"%{x:02X}" for x in b))
form_atoms = st.one_of(form_words, pct_bytes, st.sampled_from(["%", "%z", "%f", "+", "=", "&", ";"]))
form_texts = st.one_of(
    st.text(max_size=200),
    st.text(st.characters() | surrogates, max_size=50),
    st.lists(
        st.tuples(
            st.lists(form_atoms, max_size=3).map("".join), st.lists(form_atoms, max_size=3).map("".join)
        ),
        max_size=MAX_FIELDS + 12,
    ).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
)


@PROPS
@given(form_texts)
def test_parse_pairs_raises_only_oauth_error(text: str) -> None:
    try:
        pairs = parse_pairs(text)
    except OAuthError as error:
        assert error.error == "invalid_request"
        return
    assert len(pairs) <= MAX_FIELDS
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in pairs)


@PROPS
@given(form_texts | st.lists(st.tuples(form_words, st.text(max_size=10)), max_size=20))
def test_form_raises_only_oauth_error(data: str | list[tuple[str, str]]) -> None:
    try:
        pairs = parse_pairs(data) if isinstance(data, str) else data
        form = Form(pairs)
    except OAuthError as error:
        assert error.error == "invalid_request"
        return
    names = [k for k, _ in pairs]
    for name, value in form.items():
        assert name not in REPEATABLE and names.count(name) == 1 and isinstance(value, str)
    for name, values in form.multi.items():
        assert name in REPEATABLE and len(values) == names.count(name)


# -- PKCE --------------------------------------------------------------------------------------

pkce_texts = st.one_of(
    st.text(max_size=140),
    st.text(UNRESERVED, min_size=40, max_size=130),
    st.text(B64URL, min_size=42, max_size=44),
    st.tuples(st.text(UNRESERVED, min_size=43, max_size=128), st.sampled_from(["\n", " ", "\x00", "é"])).map(
        "".join
    ),
)


@given(pkce_texts)
@example("a" * 43 + "\n")
def test_is_valid_verifier_accepts_only_rfc7636_verifiers(verifier: str) -> None:
    """RFC 7636 4.1: 43-128 unreserved characters, nothing else."""
    valid = pkce.is_valid_verifier(verifier)
    assert valid is (_STRICT_VERIFIER.fullmatch(verifier) is not None), repr(verifier)


@given(pkce_texts)
@example("A" * 43 + "\n")
def test_is_valid_s256_challenge_accepts_only_s256_values(challenge: str) -> None:
    """RFC 7636 4.2: an S256 challenge is 43 base64url characters."""
    valid = pkce.is_valid_s256_challenge(challenge)
    assert valid is (_STRICT_CHALLENGE.fullmatch(challenge) is not None), repr(challenge)


@given(pkce_texts, pkce_texts)
@example("a" * 43, "é" * 43)
def test_verifier_matches_is_total(verifier: str, challenge: str) -> None:
    assert pkce.verifier_matches(verifier, challenge) in (True, False)


@given(st.text(UNRESERVED, min_size=43, max_size=128))
def test_verifier_matches_its_own_challenge(verifier: str) -> None:
    challenge = pkce.s256_challenge(verifier)
    assert pkce.is_valid_s256_challenge(challenge)
    assert pkce.verifier_matches(verifier, challenge)
    assert not pkce.verifier_matches(verifier, challenge[::-1]) or challenge == challenge[::-1]


def test_generated_verifiers_are_valid() -> None:
    for _ in range(20):
        verifier = pkce.new_verifier()
        assert pkce.is_valid_verifier(verifier)
        assert pkce.verifier_matches(verifier, pkce.s256_challenge(verifier))
