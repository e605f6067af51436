"""Introspection (RFC 7662) and revocation (RFC 7009); both need an authenticated client.
Introspection answers as a JWT signed by the AS when the caller asks for one (RFC 9701, FAPI 2.0
Message Signing 5.5.1)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.core.errors import OAuthError
from corridor.core.jose import FAPI_ALGORITHMS, JoseFailure, SigningKey, read_header, verify_with_keys
from corridor.core.randomness import token_hash
from corridor.core.rules import Rule
from corridor.server.authority import AuthorizationServer, Exchange
from corridor.server.checks import run
from corridor.server.checks.client_auth import authenticate_client
from corridor.server.grants import decode_grant
from corridor.server.responses import NO_STORE, json_response
from corridor.server.tokens import AT_TYP

INACTIVE = {"active": False}
#: RFC 9701 4 / 10: the media type a resource server asks for, and the JWT's ``typ`` (5).
JWT_MEDIA_TYPE = "application/token-introspection+jwt"
JWT_TYP = "token-introspection+jwt"
JSON_MEDIA_TYPE = "application/json"
#: RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Content negotiation: the answer depends on Accept (RFC 9110 12.5.5).
VARY = {"Vary": "Accept"}


def require_token_parameter(ex: Exchange) -> None:
    """RFC 7662 2.1, RFC 7009 2.1: ``token`` is required."""
    if not ex.form.get("token"):
        raise OAuthError("invalid_request", "token is required", rule=Rule.RFC_7662_2_1)


AUTHENTICATED_TOKEN_REQUEST = (authenticate_client, require_token_parameter)


def live_access_token(server: AuthorizationServer, token: str, now: float) -> dict[str, Any] | None:
    """The claims of a JWT access token this AS issued that is unexpired and not revoked."""
    try:
        header = read_header(token)
        if header.get("typ") != AT_TYP:
            return None
        claims = verify_with_keys(token, header, server.keys.public_jwks()["keys"], FAPI_ALGORITHMS)
    except JoseFailure:
        return None
    exp, jti = claims.get("exp"), claims.get("jti")
    if claims.get("iss") != server.settings.issuer or not isinstance(exp, int) or exp <= now:
        return None
    row = server.store.grants.access_token(jti) if isinstance(jti, str) else None
    if row is None or row["revoked_at"] is not None or row["grant_revoked_at"] is not None:
        return None
    return claims


def _may_introspect(server: AuthorizationServer, caller: str, token_client: str, aud: Any) -> bool:
    """RFC 7662 4: a client may introspect its own tokens; a resource server those meant for it."""
    if caller == token_client:
        return True
    audiences = aud if isinstance(aud, list) else [aud]
    servers = server.resource_servers()
    return any(servers.get(a, {}).get("introspection_client_id") == caller for a in audiences)


def _split(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside quoted strings (RFC 9110 5.6.4)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def accept_ranges(accept: str) -> list[tuple[str, str, float]]:
    """RFC 9110 12.5.1: the media ranges of an Accept header as (type, subtype, weight), in order.
    Media-type parameters (``charset``) do not narrow the range here; ``q`` gives the weight
    (default 1); a range that is not ``type/subtype`` or has a malformed ``q`` is skipped."""
    ranges = []
    for item in _split(accept, ","):
        media, *params = _split(item, ";")
        kind, slash, subtype = media.strip().lower().partition("/")
        if not slash or not _TOKEN.fullmatch(kind) or not _TOKEN.fullmatch(subtype):
            continue
        if kind == "*" and subtype != "*":
            continue
        weight: float | None = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":  # the weight; what follows are accept-ext parameters
                value = value.strip()
                weight = float(value) if _QVALUE.fullmatch(value) else None
                break
        if weight is not None:
            ranges.append((kind, subtype, weight))
    return ranges


def _preference(ranges: list[tuple[str, str, float]], media_type: str) -> tuple[float, int, int]:
    """How much ``media_type`` is wanted: the weight of its most specific range (RFC 9110
    12.5.1), that specificity, and the range's position (earlier is better)."""
    kind, _, subtype = media_type.partition("/")
    best = (0.0, -1, 0)
    for position, (k, s, weight) in enumerate(ranges):
        if (k, s) == (kind, subtype):
            specificity = 2
        elif (k, s) == (kind, "*"):
            specificity = 1
        elif (k, s) == ("*", "*"):
            specificity = 0
        else:
            continue
        if specificity > best[1]:
            best = (weight, specificity, -position)
    return best


def wants_signed_response(accept: str | None) -> bool:
    """RFC 9701 4: the caller asks for a JWT response with ``Accept:
    application/token-introspection+jwt``; it gets one when it prefers that type to JSON (by
    weight, then by how specifically it names it, then by order). No Accept header, ``*/*`` or
    ``application/json`` keep the plain RFC 7662 JSON answer."""
    if not accept:
        return False
    ranges = accept_ranges(accept[:4096])
    jwt, json = _preference(ranges, JWT_MEDIA_TYPE), _preference(ranges, JSON_MEDIA_TYPE)
    return jwt[0] > 0 and jwt > json


def signed_introspection_response(ex: Exchange, key: SigningKey, body: dict[str, Any]) -> str:
    """RFC 9701 5, FAPI 2.0 Message Signing 5.5.1: a JWS by the AS's active key, ``typ``
    token-introspection+jwt, with ``iss``, ``aud`` = the calling resource server (its
    introspection client_id), ``iat`` and ``token_introspection`` = the RFC 7662 answer. No
    ``sub`` or ``exp`` at the top (RFC 9701 5 SHOULD NOT: it must not pass for an access token)."""
    assert ex.client is not None
    claims = {
        "iss": ex.server.settings.issuer,
        "aud": ex.client.client_id,
        "iat": int(ex.now),
        "token_introspection": body,
    }
    return key.sign(claims, JWT_TYP)


def introspect(ex: Exchange) -> Response:
    run(AUTHENTICATED_TOKEN_REQUEST, ex)
    assert ex.client is not None
    server, token = ex.server, ex.form["token"]
    hint = ex.form.get("token_type_hint")
    body: dict[str, Any] = dict(INACTIVE)
    claims = live_access_token(server, token, ex.now) if hint != "refresh_token" else None
    if claims is not None and _may_introspect(
        server, ex.client.client_id, claims["client_id"], claims["aud"]
    ):
        body = {"active": True, **claims, "token_type": "DPoP" if "jkt" in claims["cnf"] else "Bearer"}
        ex.evidence.token_jti = claims["jti"]
    elif claims is None:
        row = server.store.grants.by_refresh_token(token_hash(token))
        if row is not None and row["client_id"] == ex.client.client_id:
            grant = decode_grant(row)
            if grant["revoked_at"] is None and grant["expires_at"] > ex.now:
                body = {
                    "active": True,
                    "token_type": "refresh_token",
                    "client_id": grant["client_id"],
                    "sub": grant["user_id"],
                    "scope": grant["scope"],
                    "exp": int(grant["expires_at"]),
                    "iss": server.settings.issuer,
                }
                ex.evidence.grant_id = grant["id"]
    outcome = Outcome.ACTIVE if body["active"] else Outcome.INACTIVE
    signed, sha256 = None, ""
    if wants_signed_response(", ".join(ex.headers.getlist("accept"))):
        key = server.keys.signing
        signed = signed_introspection_response(ex, key, body)
        sha256 = hashlib.sha256(signed.encode("ascii")).hexdigest()
        ex.evidence.detail["signed_response"] = {"sha256": sha256, "kid": key.kid, "alg": key.alg}
    # The record, the assertion's jti and the signed answer kept as evidence: one transaction.
    with ex.unit_of_work() as uow:
        if signed is not None:
            uow.messages.keep(sha256, "introspection_response", ex.client.client_id, signed, ex.now)
        server.audit.append(ex.evidence, Event.INTROSPECTION, outcome, ex.now, conn=uow)
    if signed is not None:
        return Response(signed, media_type=JWT_MEDIA_TYPE, headers={**NO_STORE, **VARY})
    return json_response(body, headers=VARY)


def revoke(ex: Exchange) -> Response:
    """RFC 7009 2.1: revoke a refresh token (its whole grant) or one access token; 200 either way."""
    run(AUTHENTICATED_TOKEN_REQUEST, ex)
    assert ex.client is not None
    server, token, now = ex.server, ex.form["token"], ex.now
    claims = live_access_token(server, token, now)
    # A read first, so the write transaction only writes.
    row = None if claims is not None else server.store.grants.by_refresh_token(token_hash(token))
    with ex.unit_of_work() as uow:
        if claims is not None and claims["client_id"] == ex.client.client_id:
            uow.grants.revoke_access_token(claims["jti"], now)
            ex.evidence.token_jti = claims["jti"]
            server.audit.append(ex.evidence, Event.REVOCATION_ACCESS_TOKEN, Outcome.REVOKED, now, conn=uow)
        elif row is not None and row["client_id"] == ex.client.client_id:
            uow.grants.revoke(row["id"], now, "revoked_by_client")
            ex.evidence.grant_id = row["id"]
            server.audit.append(ex.evidence, Event.REVOCATION_GRANT, Outcome.REVOKED, now, conn=uow)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})
