"""The token endpoint (RFC 6749 3.2, FAPI2 5.3.2.1): authorization_code, refresh_token and
client_credentials (server/client_credentials.py), each for the clients registered for it."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.core.errors import OAuthError
from corridor.core.pkce import verifier_matches
from corridor.core.randomness import new_secret_token, token_hash
from corridor.core.rules import Rule
from corridor.server.authority import Exchange
from corridor.server.checks import run
from corridor.server.checks.client_auth import authenticate_client
from corridor.server.checks.dpop import check_dpop_proof, require_sender_constraint
from corridor.server.client_credentials import client_credentials, unauthorized_grant
from corridor.server.grants import decode_grant
from corridor.server.responses import json_response
from corridor.server.tokens import mint_access_token, mint_id_token
from corridor.store.protocols import UnitOfWork

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


def require_supported_grant_type(ex: Exchange) -> None:
    """FAPI2 5.3.2.1-2 (no ROPC), RFC 6749 5.2: only the code, refresh and client credentials grants."""
    grant_type = ex.form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required", rule=Rule.RFC_6749_4_1_3)
    if grant_type not in GRANT_TYPES:
        rule = Rule.FAPI2_5_3_2_1_2 if grant_type == "password" else Rule.RFC_6749_5_2
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported", rule=rule)


def require_registered_grant_type(ex: Exchange) -> None:
    """RFC 6749 5.2, RFC 7591 2: a client uses only the grant types it was registered for."""
    assert ex.client is not None
    grant_type = ex.form["grant_type"]
    if grant_type not in ex.client.grant_types:
        raise unauthorized_grant(grant_type)


TOKEN = (
    check_dpop_proof,  # RFC 9449 4.3, 8
    authenticate_client,  # FAPI2 5.3.2.1-6, 5.3.2.1-8
    require_supported_grant_type,  # FAPI2 5.3.2.1-2
    require_registered_grant_type,  # RFC 6749 5.2
    require_sender_constraint,  # FAPI2 5.3.2.1-4/5, RFC 9449 5.2
)


def _cnf(ex: Exchange) -> dict[str, str]:
    """RFC 9449 6.1 ``jkt`` or RFC 8705 3.1 ``x5t#S256``, as require_sender_constraint chose."""
    cnf: dict[str, str] = ex.cnf
    return cnf


def _resources_for_token(ex: Exchange, granted: list[str]) -> list[str]:
    """RFC 8707 2.2: the token request may narrow the audience to granted resources."""
    requested = ex.form.multi.get("resource", [])
    if any(r not in granted for r in requested):
        raise OAuthError("invalid_target", "resource was not granted", rule=Rule.RFC_8707_2_2)
    return requested or granted


def _scope_for_token(ex: Exchange, granted: str) -> str:
    """RFC 6749 6: a refresh may narrow the scope, never widen it."""
    requested = ex.form.get("scope")
    if requested is None:
        return granted
    if any(s not in granted.split() for s in requested.split()):
        raise OAuthError("invalid_scope", "scope exceeds the grant", rule=Rule.RFC_6749_6)
    return " ".join(requested.split())


def _token_response(access_token: str, claims: dict[str, Any], **extra: Any) -> Response:
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": "DPoP" if "jkt" in claims["cnf"] else "Bearer",  # RFC 9449 5, RFC 8705 3
        "expires_in": claims["exp"] - claims["iat"],
        "scope": claims["scope"],
    }
    if "authorization_details" in claims:
        body["authorization_details"] = claims["authorization_details"]  # RFC 9396 7
    body.update({k: v for k, v in extra.items() if v is not None})
    return json_response(body)


def redeem_authorization_code(ex: Exchange) -> Response:
    """RFC 6749 4.1.3, RFC 7636 4.6, FAPI2 5.3.2.1-11, 5.3.2.2-9, RFC 9449 10."""
    server, store, now = ex.server, ex.server.store, ex.now
    assert ex.client is not None
    code = ex.form.get("code")
    if not code:
        raise OAuthError("invalid_request", "code is required", rule=Rule.RFC_6749_4_1_3)
    row = store.grants.code(token_hash(code))
    if row is None:
        raise OAuthError("invalid_grant", "the code is unknown", rule=Rule.RFC_6749_4_1_3)
    ex.evidence.grant_id = row["grant_id"]  # a refusal below shows in the grant's trail
    # RFC 6749 4.1.3 first: the code must be the caller's before its reuse counts, so another
    # client replaying a used code cannot revoke its owner's grant (issue 13 D1).
    if row["client_id"] != ex.client.client_id:
        raise OAuthError("invalid_grant", "the code was issued to another client", rule=Rule.RFC_6749_4_1_3)
    if row["consumed_at"] is not None:
        _code_reuse(ex, row["grant_id"])
    if now >= row["expires_at"]:
        raise OAuthError("invalid_grant", "the code has expired", rule=Rule.FAPI2_5_3_2_1_11)
    if ex.form.get("redirect_uri") != row["redirect_uri"]:
        raise OAuthError("invalid_grant", "redirect_uri does not match", rule=Rule.RFC_6749_4_1_3)
    if not verifier_matches(ex.form.get("code_verifier", ""), row["code_challenge"]):
        raise OAuthError(
            "invalid_grant", "code_verifier does not match", rule=Rule.FAPI2_5_3_2_2_5_RFC_7636_4_6
        )
    if row["dpop_jkt"] is not None and (ex.dpop is None or row["dpop_jkt"] != ex.dpop.jkt):
        raise OAuthError("invalid_grant", "the DPoP key does not match dpop_jkt", rule=Rule.RFC_9449_10_1)
    refresh_token = new_secret_token()
    with ex.unit_of_work() as uow:
        # One transaction: consume, check the grant, mint, record (design.md 4, 5b); a reuse
        # lost to a racing redemption revokes the grant in it.
        won = uow.grants.consume_code(row["code_hash"], now)
        if not won:
            _revoke_for_code_reuse(ex, uow, row["grant_id"])
        else:
            grant = _locked_grant(uow, row["grant_id"])
            if grant["revoked_at"] is not None:
                raise OAuthError("invalid_grant", "the grant was revoked", rule=Rule.RFC_6749_4_1_2)
            # RFC 8707 2.2: the token request may narrow the audience; a refusal rolls back
            # the consumption, so the client can retry with a granted resource.
            resources = _resources_for_token(ex, grant["resources"])
            uow.grants.set_refresh_token(grant["id"], token_hash(refresh_token))
            access_token, claims = mint_access_token(
                uow, server, grant, scope=grant["scope"], resources=resources, cnf=_cnf(ex), now=now
            )
            ex.evidence.user_id = grant["user_id"]
            ex.evidence.scope = grant["scope"]
            ex.evidence.token_jti = claims["jti"]
            # Issue 16: what the token carries, so the trace says what was granted with it.
            ex.evidence.authorization_details = claims.get("authorization_details")
            server.audit.append(ex.evidence, Event.TOKEN_AUTHORIZATION_CODE, Outcome.ISSUED, now, conn=uow)
    if not won:
        raise _code_already_used()
    id_token = None
    if "openid" in grant["scope"].split():
        id_token = mint_id_token(server, grant, row["nonce"], now)
    return _token_response(access_token, claims, refresh_token=refresh_token, id_token=id_token)


def _locked_grant(uow: UnitOfWork, grant_id: str) -> dict[str, Any]:
    """Design.md 5b, issue 13 D3: the grant is read, locked, inside the transaction that mints
    from it, so no revocation can commit between the check and the mint."""
    row = uow.grants.lock(grant_id)
    if row is None:  # purged meanwhile (a day after it expired)
        raise OAuthError("invalid_grant", "the grant has expired", rule=Rule.RFC_6749_6)
    return decode_grant(row)


def _revoke_for_code_reuse(ex: Exchange, uow: UnitOfWork, grant_id: str) -> None:
    """RFC 6749 4.1.2, FAPI2 5.3.2.2-9: a reused code revokes its grant (and says so)."""
    uow.grants.revoke(grant_id, ex.now, "code_reuse")
    ex.server.audit.append(
        ex.evidence, Event.CODE_REUSE_DETECTED, Outcome.REVOKED, ex.now, rule=Rule.RFC_6749_4_1_2, conn=uow
    )


def _code_already_used() -> OAuthError:
    return OAuthError("invalid_grant", "the code was already used", rule=Rule.FAPI2_5_3_2_2_9_RFC_6749_4_1_2)


def _code_reuse(ex: Exchange, grant_id: str) -> None:
    """RFC 6749 4.1.2, FAPI2 5.3.2.2-9: a reused code is refused and its grant revoked."""
    with ex.unit_of_work() as uow:
        _revoke_for_code_reuse(ex, uow, grant_id)
    raise _code_already_used()


def refresh(ex: Exchange) -> Response:
    """RFC 6749 6; FAPI2 5.3.2.1-9: refresh tokens are bound to the client and not rotated."""
    server, now = ex.server, ex.now
    assert ex.client is not None
    value = ex.form.get("refresh_token")
    if not value:
        raise OAuthError("invalid_request", "refresh_token is required", rule=Rule.RFC_6749_6)
    # A read first, so an unknown token costs no write transaction.
    row = server.store.grants.by_refresh_token(token_hash(value))
    if row is None or row["client_id"] != ex.client.client_id:
        raise OAuthError("invalid_grant", "the refresh token is unknown", rule=Rule.RFC_6749_6)
    ex.evidence.grant_id = row["id"]
    ex.evidence.user_id = row["user_id"]
    with ex.unit_of_work() as uow:
        # One transaction: the grant locked, checked and minted from (issue 13 D3, design.md 5b);
        # a refusal raised here rolls back before anything was written.
        grant = _locked_grant(uow, row["id"])
        if grant["revoked_at"] is not None:
            raise OAuthError("invalid_grant", "the grant was revoked", rule=Rule.RFC_7009_2_1)
        if now >= grant["expires_at"]:
            raise OAuthError("invalid_grant", "the refresh token has expired", rule=Rule.RFC_6749_6)
        scope = _scope_for_token(ex, grant["scope"])
        resources = _resources_for_token(ex, grant["resources"])
        access_token, claims = mint_access_token(
            uow, server, grant, scope=scope, resources=resources, cnf=_cnf(ex), now=now
        )
        ex.evidence.scope = scope
        ex.evidence.token_jti = claims["jti"]
        ex.evidence.authorization_details = claims.get("authorization_details")  # issue 16
        server.audit.append(ex.evidence, Event.TOKEN_REFRESH_TOKEN, Outcome.ISSUED, now, conn=uow)
    return _token_response(access_token, claims)


def token(ex: Exchange) -> Response:
    run(TOKEN, ex)
    grant_type = ex.form["grant_type"]
    if grant_type == "authorization_code":
        response = redeem_authorization_code(ex)
    elif grant_type == "refresh_token":
        response = refresh(ex)
    else:
        response = _token_response(*client_credentials(ex))  # RFC 6749 4.4.3: no refresh token
    ex.server.metrics.token_issued(grant_type, ex.cnf)  # issue 18: by grant type and sender constraint
    return response
