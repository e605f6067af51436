"""DPoP proofs (RFC 9449): making them (clients) and checking them (AS and RS).

The checks follow RFC 9449 4.3 in the order of the requirements table (D1-D13).
Nonce and jti-replay checks need shared state and are done by the caller with the
returned :class:`DPoPProof` (D11, D12).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from corridor.core.b64 import b64url_encode
from corridor.core.errors import InvalidDPoPProof
from corridor.core.jose import (
    FAPI_ALGORITHMS,
    JoseFailure,
    SigningKey,
    jwk_thumbprint,
    read_header,
    verify_with_keys,
)
from corridor.core.randomness import new_secret_token
from corridor.core.rules import Rule

DPOP_TYP = "dpop+jwt"
#: Longest jti we store (RFC 9449 11.1: cap what a replay cache keeps).
MAX_JTI_LENGTH = 256
_PCT = re.compile(r"%[0-9a-fA-F]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True)
class DPoPProof:
    """A proof that passed the stateless checks."""

    jkt: str
    jti: str
    iat: float
    nonce: str | None
    claims: Mapping[str, Any]


def access_token_hash(access_token: str) -> str:
    """RFC 9449 4.2 ``ath``: base64url(SHA-256(ASCII access token))."""
    return b64url_encode(hashlib.sha256(access_token.encode("ascii", "replace")).digest())


def _normalize_pct(match: re.Match[str]) -> str:
    char = chr(int(match.group(0)[1:], 16))
    return char if char in _UNRESERVED else match.group(0).upper()


@lru_cache(maxsize=512)
def normalize_htu(url: str) -> str:
    """RFC 9449 4.3-9 with RFC 3986 6.2.2/6.2.3: scheme and host lower-cased, default port
    dropped, percent-encodings normalized, query and fragment removed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and not (scheme == "https" and port == 443) and not (scheme == "http" and port == 80):
        host = f"{host}:{port}"
    path = _PCT.sub(_normalize_pct, parts.path) or "/"
    return urlunsplit((scheme, host, path, "", ""))


def make_proof(
    key: SigningKey,
    htm: str,
    htu: str,
    *,
    nonce: str | None = None,
    access_token: str | None = None,
    iat: float | None = None,
    jti: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """A fresh DPoP proof (RFC 9449 4.2): new jti every time (RFC 9449 11.1)."""
    claims: dict[str, Any] = {
        "jti": jti or new_secret_token(),
        "htm": htm,
        "htu": htu,
        "iat": int(iat if iat is not None else time.time()),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if extra_claims:
        claims.update(extra_claims)
    return key.sign(claims, DPOP_TYP, {"jwk": key.public_jwk_without_meta()})


def verify_proof(
    values: Sequence[str],
    *,
    method: str,
    url: str,
    now: float,
    max_future: float,
    max_past: float,
    access_token: str | None = None,
    algorithms: Sequence[str] = FAPI_ALGORITHMS,
) -> DPoPProof:
    """The stateless checks of RFC 9449 4.3 (D1-D10, D13)."""
    if len(values) != 1:
        raise InvalidDPoPProof("exactly one DPoP header is required", rule=Rule.RFC_9449_4_3_1)
    value = values[0].strip()
    try:
        header = read_header(value)
    except JoseFailure as exc:
        raise InvalidDPoPProof(
            f"the DPoP proof is not a compact JWS: {exc}", rule=Rule.RFC_9449_4_3_2
        ) from exc
    if header.get("typ") != DPOP_TYP:
        raise InvalidDPoPProof('the DPoP proof typ must be "dpop+jwt"', rule=Rule.RFC_9449_4_3_4)
    if header["alg"] not in algorithms:
        raise InvalidDPoPProof("the DPoP proof alg is not allowed", rule=Rule.RFC_9449_4_3_5_FAPI2_5_4_1)
    public = header.get("jwk")
    if not isinstance(public, dict):
        raise InvalidDPoPProof("the DPoP proof has no jwk header", rule=Rule.RFC_9449_4_3_7)
    try:
        jkt = jwk_thumbprint(public)
        claims = verify_with_keys(
            value, header, [{k: v for k, v in public.items() if k != "kid"}], algorithms
        )
    except JoseFailure as exc:
        raise InvalidDPoPProof(f"the DPoP proof is invalid: {exc}", rule=Rule.RFC_9449_4_3_6) from exc
    jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise InvalidDPoPProof("the DPoP proof needs a jti", rule=Rule.RFC_9449_4_3_3)
    if not isinstance(htm, str) or not isinstance(htu, str):
        raise InvalidDPoPProof("the DPoP proof needs htm and htu", rule=Rule.RFC_9449_4_3_3)
    if not isinstance(iat, int | float) or isinstance(iat, bool) or not math.isfinite(iat):
        raise InvalidDPoPProof("the DPoP proof needs a numeric iat", rule=Rule.RFC_9449_4_3_3)
    if htm != method:
        raise InvalidDPoPProof("htm does not match the request method", rule=Rule.RFC_9449_4_3_8)
    try:
        htu_matches = normalize_htu(htu) == normalize_htu(url)
    except ValueError:
        htu_matches = False
    if not htu_matches:
        raise InvalidDPoPProof("htu does not match the request URI", rule=Rule.RFC_9449_4_3_9)
    if iat > now + max_future:
        raise InvalidDPoPProof(
            "the DPoP proof iat is in the future", rule=Rule.RFC_9449_4_3_11_FAPI2_5_3_2_1_13
        )
    if iat < now - max_past:
        raise InvalidDPoPProof("the DPoP proof is too old", rule=Rule.RFC_9449_4_3_11)
    nonce = claims.get("nonce")
    if nonce is not None and not isinstance(nonce, str):
        raise InvalidDPoPProof("the DPoP nonce must be a string", rule=Rule.RFC_9449_4_2)
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or ath != access_token_hash(access_token):
            raise InvalidDPoPProof("ath does not match the access token", rule=Rule.RFC_9449_4_3_12)
    return DPoPProof(jkt=jkt, jti=jti, iat=float(iat), nonce=nonce, claims=claims)
