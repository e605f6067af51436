"""FAPI 2.0 Message Signing on the client side: the signed request object it pushes (JAR,
RFC 9101, FMS 5.3.2) and the checks of a signed authorization response (JARM, FMS 5.4.2).

FMS = FAPI 2.0 Message Signing (Final); JARM = JWT Secured Authorization Response Mode
(Final), whose processing rules (2.4) are: iss, aud, exp, then the signature."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from corridor.client.errors import AuthorizationResponseError, ClientError
from corridor.core.jose import (
    FAPI_ALGORITHMS,
    JoseFailure,
    SigningKey,
    read_header,
    select_keys,
    verify_with_keys,
)
from corridor.core.randomness import new_secret_token

#: RFC 9101 4 / FMS 5.3.2-5: the media type of a request object.
REQUEST_OBJECT_TYP = "oauth-authz-req+jwt"
#: FMS 5.3.2-4: ``exp`` no more than 60 minutes after ``nbf``.
MAX_REQUEST_OBJECT_LIFETIME = 3600
#: Five minutes, as the OIDF suite sends (oauth4webapi sends 60 s); well inside FMS 5.3.2-4.
DEFAULT_REQUEST_OBJECT_LIFETIME = 300
#: JARM 2.3: for response_type ``code``, ``jwt`` is ``query.jwt`` (FMS 5.4.2-1 names ``jwt``).
JARM_MODES = ("jwt", "query.jwt")
#: What ``response_mode`` may be: absent (the default, query), explicit query, or JARM.
RESPONSE_MODES = (None, "query", *JARM_MODES)
#: Clock skew the client allows on times set by the server (as for an ID token's iat).
CLOCK_SKEW = 60

RULE_JAR = "FAPI2 MS 5.3.2-1, RFC 9101 4"
RULE_JARM_MODE = "FAPI2 MS 5.4.2-1, JARM 2.3.1"
RULE_JARM_ALG = "FAPI2 MS 5.4.2-2, FAPI2 5.4.1, JARM 2.2"
RULE_JARM_ISS = "FAPI2 MS 5.4.2-2, JARM 2.4-2"
RULE_JARM_AUD = "FAPI2 MS 5.4.2-2, JARM 2.4-3"
RULE_JARM_EXP = "FAPI2 MS 5.4.2-2, JARM 2.4-4"
RULE_JARM_SIGNATURE = "FAPI2 MS 5.4.2-2, JARM 2.4-5"
RULE_JARM_NBF = "JARM 2.1, RFC 7519 4.1.5"


def check_options(response_mode: str | None, lifetime: int) -> None:
    """Refuse a response mode this client cannot verify and a request object lifetime that
    FMS 5.3.2-4 forbids."""
    if response_mode not in RESPONSE_MODES:
        raise ClientError(
            f"response_mode must be one of query, jwt, query.jwt, not {response_mode!r}", RULE_JARM_MODE
        )
    if isinstance(lifetime, bool) or not isinstance(lifetime, int):
        raise ClientError("the request object lifetime is a number of seconds", "FAPI2 MS 5.3.2-4")
    if not 0 < lifetime <= MAX_REQUEST_OBJECT_LIFETIME:
        raise ClientError("a request object lives at most 60 minutes after its nbf", "FAPI2 MS 5.3.2-4")


def require_key(key: SigningKey | None) -> None:
    """FMS 5.3.2-1: a signed request object needs the client's own signing key, also for a
    client that authenticates with mTLS."""
    if key is None:
        raise ClientError("a signed request object needs the client's signing key (key=...)", RULE_JAR)


def request_object(
    key: SigningKey, *, client_id: str, issuer: str, params: Mapping[str, Any], now: float, lifetime: int
) -> str:
    """FMS 5.3.2: every authorization parameter inside a JWS signed with the client's key;
    ``aud`` the issuer as a string (-2), ``nbf`` now (-3), ``exp`` at most 60 min later (-4),
    ``typ`` oauth-authz-req+jwt (-5); ``iss`` = client_id and ``iat`` (RFC 9101 4, OIDC Core
    6.1), a fresh ``jti`` so each request object is unique."""
    issued = int(now)
    claims = {
        **params,
        "iss": client_id,
        "aud": issuer,
        "client_id": client_id,
        "jti": new_secret_token(),
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
    }
    return key.sign(claims, REQUEST_OBJECT_TYP)


def verify_jarm(
    response: str,
    *,
    issuer: str,
    client_id: str,
    server_keys: Callable[[bool], Sequence[Mapping[str, Any]]],
    advertised_algs: object,
    now: float,
) -> dict[str, Any]:
    """JARM 2.4 / FMS 5.4.2-2: the signed authorization response's claims, after its checks:
    a FAPI alg (and one the AS advertises in ``authorization_signing_alg_values_supported``),
    the signature with the issuer's keys (fetched again once for an unknown ``kid``), ``iss``
    exactly the issuer, ``aud`` this client, ``exp`` not past."""
    try:
        header = read_header(response)
    except JoseFailure as exc:
        message = f"the JARM response is not a JWS: {exc}"
        raise AuthorizationResponseError(message, RULE_JARM_SIGNATURE) from exc
    alg = header.get("alg")
    if alg not in FAPI_ALGORITHMS:
        message = f"the JARM response alg {str(alg)[:20]!r} is not allowed"
        raise AuthorizationResponseError(message, RULE_JARM_ALG)
    if isinstance(advertised_algs, list) and alg not in advertised_algs:
        raise AuthorizationResponseError(
            f"the JARM response alg {alg} is not in the AS's authorization_signing_alg_values_supported",
            RULE_JARM_ALG,
        )
    kid = header.get("kid")
    keys = server_keys(False)
    if not select_keys(keys, str(alg), kid if isinstance(kid, str) else None):
        keys = server_keys(True)  # a key the AS rotated in since we fetched its JWKS
    try:
        claims = verify_with_keys(response, header, keys)
    except JoseFailure as exc:
        raise AuthorizationResponseError(
            f"the JARM response signature does not verify with the issuer's keys: {exc}", RULE_JARM_SIGNATURE
        ) from exc
    if claims.get("iss") != issuer:
        raise AuthorizationResponseError("the JARM response comes from another issuer", RULE_JARM_ISS)
    aud = claims.get("aud")
    if not (aud == client_id or (isinstance(aud, list) and client_id in aud)):
        raise AuthorizationResponseError("the JARM response is for another client", RULE_JARM_AUD)
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise AuthorizationResponseError("the JARM response has no exp", RULE_JARM_EXP)
    if exp + CLOCK_SKEW <= now:
        raise AuthorizationResponseError("the JARM response has expired", RULE_JARM_EXP)
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and not isinstance(nbf, bool) and nbf > now + CLOCK_SKEW:
        raise AuthorizationResponseError("the JARM response is not valid yet", RULE_JARM_NBF)
    return claims


__all__ = [
    "DEFAULT_REQUEST_OBJECT_LIFETIME",
    "JARM_MODES",
    "REQUEST_OBJECT_TYP",
    "check_options",
    "request_object",
    "verify_jarm",
]
