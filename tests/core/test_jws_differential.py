"""Differential tests of the direct ``cryptography`` JWS check (core/jose.py ``verify_jws``) against
joserfc, the reference (design.md 5b): the same good and bad inputs, the same verdicts.

The one intended difference: we refuse ``crit`` and RFC 7797 ``b64`` headers outright (we
understand no extension), where joserfc may accept some."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.errors import JoseError

from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.jose import (
    JoseFailure,
    SigningKey,
    _claims,
    _registry,
    import_public_jwk,
    read_header,
    verify_with_keys,
)

KEYS = {alg: SigningKey.generate(alg) for alg in ("ES256", "PS256", "EdDSA")}
OTHER = {alg: SigningKey.generate(alg) for alg in ("ES256", "PS256", "EdDSA")}


def ours(token: str, keys: list[dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return verify_with_keys(token, read_header(token), keys)
    except JoseFailure:
        return None


def reference(token: str, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        alg = read_header(token)["alg"]
        obj = jws.deserialize_compact(
            token, import_public_jwk(key), algorithms=[alg], registry=_registry(alg)
        )
        return _claims(obj.payload)
    except (JoseError, JoseFailure, ValueError, TypeError, KeyError, IndexError):
        return None


def reheader(token: str, header: dict[str, Any], key: SigningKey) -> str:
    """The same payload under another header, properly signed by ``key``."""
    payload = token.split(".")[1]
    head = b64url_encode(json.dumps(header).encode())
    signing_input = f"{head}.{payload}".encode()
    signature = _sign(key, signing_input)
    return f"{head}.{payload}.{b64url_encode(signature)}"


def _sign(key: SigningKey, message: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    private = key.key.private_key
    if key.alg == "ES256":
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(private.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if key.alg == "PS256":
        assert isinstance(private, rsa.RSAPrivateKey)
        return bytes(private.sign(message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()))
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    return bytes(private.sign(message))


MUTATIONS = st.sampled_from(
    [
        "none",
        "flip-signature",
        "flip-payload",
        "truncate-signature",
        "extend-signature",
        "other-key",
        "empty-signature",
        "swap-alg",
        "kid-int",
        "typ-list",
        "jwk-string",
        "trailing-bits",
        "extra-part",
    ]
)


def mutate(token: str, mutation: str, alg: str) -> str:
    head, payload, signature = token.split(".")
    key = KEYS[alg]
    if mutation == "flip-signature":
        raw = bytearray(b64url_decode(signature))
        raw[len(raw) // 2] ^= 1
        return f"{head}.{payload}.{b64url_encode(bytes(raw))}"
    if mutation == "flip-payload":
        return f"{head}.{b64url_encode(b64url_decode(payload) + b' ')}.{signature}"
    if mutation == "truncate-signature":
        return f"{head}.{payload}.{signature[:-4]}"
    if mutation == "extend-signature":
        return f"{head}.{payload}.{signature}AAAA"
    if mutation == "other-key":
        return OTHER[alg].sign(json.loads(b64url_decode(payload)), "JWT")
    if mutation == "empty-signature":
        return f"{head}.{payload}."
    if mutation == "swap-alg":
        other = {"ES256": "PS256", "PS256": "EdDSA", "EdDSA": "ES256"}[alg]
        return reheader(token, {**json.loads(b64url_decode(head)), "alg": other}, key)
    if mutation == "kid-int":
        return reheader(token, {**json.loads(b64url_decode(head)), "kid": 7}, key)
    if mutation == "typ-list":
        return reheader(token, {**json.loads(b64url_decode(head)), "typ": ["JWT"]}, key)
    if mutation == "jwk-string":
        return reheader(token, {**json.loads(b64url_decode(head)), "jwk": "x"}, key)
    if mutation == "trailing-bits":
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last = alphabet[(alphabet.index(signature[-1]) + 1) % 64]
        return f"{head}.{payload}.{signature[:-1]}{last}"
    if mutation == "extra-part":
        return f"{token}.x"
    return token


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    alg=st.sampled_from(sorted(KEYS)),
    claims=st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=12)), max_size=4),
    mutation=MUTATIONS,
)
@example(alg="ES256", claims={}, mutation="none")
@example(alg="PS256", claims={"a": 1}, mutation="trailing-bits")
@example(alg="EdDSA", claims={"a": "b"}, mutation="swap-alg")
def test_same_verdict_as_joserfc(alg: str, claims: dict[str, Any], mutation: str) -> None:
    token = mutate(KEYS[alg].sign(claims, "JWT"), mutation, alg)
    key = KEYS[alg].public_jwk
    fast, slow = ours(token, [key]), reference(token, key)
    assert fast == slow, (mutation, fast, slow)
    if mutation == "none":
        assert fast == claims


@pytest.mark.parametrize(
    "extension", [{"crit": ["exp"], "exp": 1}, {"b64": False, "crit": ["b64"]}, {"b64": True}]
)
def test_extensions_are_refused(extension: dict[str, Any]) -> None:
    key = KEYS["ES256"]
    token = reheader(key.sign({"a": 1}, "JWT"), {"alg": "ES256", "kid": key.kid, **extension}, key)
    assert ours(token, [key.public_jwk]) is None
