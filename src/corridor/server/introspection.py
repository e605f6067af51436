"""Introspection (RFC 7662) and revocation (RFC 7009); both need an authenticated client."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.core.errors import OAuthError
from corridor.core.jose import FAPI_ALGORITHMS, JoseFailure, read_header, verify_with_keys
from corridor.core.randomness import token_hash
from corridor.core.rules import Rule
from corridor.server.authority import AuthorizationServer, Exchange
from corridor.server.checks import run
from corridor.server.checks.client_auth import authenticate_client
from corridor.server.grants import decode_grant
from corridor.server.responses import json_response
from corridor.server.tokens import AT_TYP

INACTIVE = {"active": False}


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
    with ex.unit_of_work() as uow:  # the record and the assertion's jti: one transaction
        server.audit.append(ex.evidence, Event.INTROSPECTION, outcome, ex.now, conn=uow)
    return json_response(body)


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
