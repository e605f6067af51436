"""Minting access tokens (RFC 9068 JWTs) and ID tokens (OIDC Core 2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corridor.core.randomness import new_id
from corridor.server.authority import AuthorizationServer
from corridor.store.protocols import UnitOfWork

AT_TYP = "at+jwt"


def audience(resources: list[str], server: AuthorizationServer) -> str | list[str]:
    """RFC 8707 / RFC 9068 3: the resource(s) the token is for; a configured default otherwise."""
    if not resources:
        return server.default_audience()
    return resources[0] if len(resources) == 1 else resources


def mint_access_token(
    uow: UnitOfWork,
    server: AuthorizationServer,
    grant: Mapping[str, Any],
    *,
    scope: str,
    resources: list[str],
    cnf: dict[str, str],
    now: float,
) -> tuple[str, dict[str, Any]]:
    """RFC 9068 2.2 claims plus ``cnf`` (RFC 9449 6, RFC 8705 3.1); the row records jti and binding."""
    jti = new_id()
    lifetime = server.settings.access_token_lifetime
    claims: dict[str, Any] = {
        "iss": server.settings.issuer,
        # RFC 9068 2.2: with no resource owner (the client credentials grant), the client.
        "sub": grant["user_id"] if grant["user_id"] is not None else grant["client_id"],
        "aud": audience(resources, server),
        "exp": int(now) + lifetime,
        "iat": int(now),
        "jti": jti,
        "client_id": grant["client_id"],
        "scope": scope,
        "cnf": cnf,
        # Which grant the token comes from (as in FAPI Grant Management's grant_id): a resource
        # server that keeps limits per grant needs it (issue 13 D6); refreshes keep it.
        "grant_id": grant["id"],
    }
    if grant["auth_time"] is not None:  # RFC 9068 2.2.1: only when a user authenticated
        claims["auth_time"] = int(grant["auth_time"])
        claims["acr"] = grant["acr"]
    if grant.get("authorization_details"):
        claims["authorization_details"] = grant["authorization_details"]
    token = server.keys.signing.sign(claims, AT_TYP)
    method, thumbprint = next(iter(cnf.items()))
    uow.grants.insert_access_token(
        jti=jti,
        grant_id=grant["id"],
        client_id=grant["client_id"],
        cnf_method="dpop" if method == "jkt" else "mtls",
        cnf_thumbprint=thumbprint,
        issued_at=now,
        expires_at=int(now) + lifetime,
    )
    return token, claims


def mint_id_token(
    server: AuthorizationServer, grant: Mapping[str, Any], nonce: str | None, now: float
) -> str:
    """OIDC Core 2: signed with a FAPI algorithm (FAPI2 5.3.2.3, 5.4.1); nonce only when sent."""
    claims: dict[str, Any] = {
        "iss": server.settings.issuer,
        "sub": grant["user_id"],
        "aud": grant["client_id"],
        "exp": int(now) + server.settings.access_token_lifetime,
        "iat": int(now),
        "auth_time": int(grant["auth_time"]),
        "acr": grant["acr"],
    }
    if nonce:
        claims["nonce"] = nonce
    return server.keys.signing.sign(claims, "JWT")
