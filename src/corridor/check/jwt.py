"""JWTs the checker makes, good and deliberately bad: any algorithm its key can do (RS256 for
the negative modules), any header and claims, and tampering helpers. The verifier's side
(the server under test) decides; nothing here is used to accept anything."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from joserfc import jwk, jws
from joserfc.jws import JWSRegistry

from corridor.core.b64 import b64url_decode, b64url_encode

#: Remove a claim or header member instead of setting it.
DROP: Any = object()

_ALGS_FOR_KTY = {"RSA": ("PS256", "RS256"), "EC": ("ES256",), "OKP": ("EdDSA",)}


def import_private(data: Mapping[str, Any]) -> jwk.Key:
    """The key of a JWK, imported once: an RSA private key's import checks the key, about 25 ms
    of CPU, and the checker signs thousands of assertions and proofs (issue 19)."""
    return _imported(json.dumps(dict(data), sort_keys=True))


@lru_cache(maxsize=256)
def _imported(canonical_jwk: str) -> jwk.Key:
    return jwk.import_key(json.loads(canonical_jwk))


def generate(kty: str) -> dict[str, Any]:
    """A fresh private JWK: ``EC`` (P-256), ``RSA`` (2048) or ``OKP`` (Ed25519)."""
    key: jwk.Key
    if kty == "RSA":
        key = jwk.RSAKey.generate_key(2048)
    elif kty == "OKP":
        key = jwk.OKPKey.generate_key("Ed25519")
    else:
        key = jwk.ECKey.generate_key("P-256")
    data = dict(key.as_dict(private=True))
    data["kid"] = key.thumbprint()
    return data


def algorithms_for(data: Mapping[str, Any]) -> tuple[str, ...]:
    return _ALGS_FOR_KTY.get(str(data.get("kty")), ())


def public(data: Mapping[str, Any]) -> dict[str, Any]:
    return dict(import_private(data).as_dict(private=False))


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, value in overrides.items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def sign(
    private_jwk: Mapping[str, Any],
    claims: Mapping[str, Any],
    header: Mapping[str, Any],
) -> str:
    """A compact JWS of ``claims`` under ``header`` (which names the ``alg``)."""
    alg = str(header["alg"])
    # The header decides: a JWK's own ``alg`` member would make joserfc refuse any other
    # algorithm (RS256 by a PS256 key), as the suite's ChangeClientJwksAlgToRS256 rewrites it.
    key = import_private({k: v for k, v in private_jwk.items() if k != "alg"})
    payload = json.dumps(dict(claims), separators=(",", ":"), ensure_ascii=False)
    registry = JWSRegistry(algorithms=[alg], strict_check_header=False)
    return jws.serialize_compact(dict(header), payload, key, algorithms=[alg], registry=registry)


def flip_signature(token: str) -> str:
    """The same JWS with one bit of its signature changed (RFC 9449 4.3-6 negative case)."""
    head, payload, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64url_encode(bytes(raw))}"


def unsigned(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """An ``alg: none`` JWT (RFC 7519 6): header and claims, empty signature."""
    head = b64url_encode(json.dumps(dict(header), separators=(",", ":")).encode())
    body = b64url_encode(json.dumps(dict(claims), separators=(",", ":")).encode())
    return f"{head}.{body}."


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, without any check (for reading what a server sent)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("not a JWT")
    return header, claims
