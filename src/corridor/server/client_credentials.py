"""The client credentials grant (RFC 6749 4.4) under FAPI 2.0 (issue 20, 1): a confidential
client acting for itself. It authenticates as at every token request (private_key_jwt or mTLS,
FAPI2 5.3.2.1-6) and gets a sender-constrained access token only (DPoP or mTLS, FAPI2
5.3.2.1-4/5); ``scope``, ``resource`` and ``authorization_details`` are checked as at PAR; no
refresh token (RFC 6749 4.4.3) and no ID token. A grant row with no user holds the token, so
revoking the client's grants, or the grant, ends it as any other token; the record names the
client as the actor and says that no user was involved."""

from __future__ import annotations

import json
from typing import Any

from corridor.audit.events import Event, Outcome
from corridor.core.errors import OAuthError
from corridor.core.randomness import new_id
from corridor.core.rules import Rule
from corridor.server.authority import Exchange
from corridor.server.checks import run
from corridor.server.checks.par import (
    check_authorization_details,
    check_resource,
    check_scope,
    require_something_to_authorize,
)
from corridor.server.grants import decode_grant
from corridor.server.tokens import mint_access_token


def reject_user_scopes(ex: Exchange) -> None:
    """RFC 6749 4.4.2, OIDC Core 3.1.2.1: ``openid`` asks about a user, and this grant has none."""
    if "openid" in ex.scope.split():
        raise OAuthError(
            "invalid_scope",
            "openid needs a user; the client credentials grant has none",
            rule=Rule.RFC_6749_4_4_2,
        )


def reject_grant_parameters(ex: Exchange) -> None:
    """RFC 6749 4.4.2: the request is the client's own; a code, refresh token or user name in it
    means the client meant another grant."""
    stray = [name for name in ("code", "refresh_token", "username", "password") if name in ex.form]
    if stray:
        raise OAuthError(
            "invalid_request", f"{stray[0]} is not a parameter of this grant", rule=Rule.RFC_6749_4_4_2
        )


#: After the token endpoint's own pipeline (proof, client, grant type, sender constraint).
CLIENT_CREDENTIALS = (
    reject_grant_parameters,  # RFC 6749 4.4.2
    check_scope,  # RFC 6749 3.3: registered for the client
    reject_user_scopes,  # RFC 6749 4.4.2
    check_resource,  # RFC 8707 2
    check_authorization_details,  # RFC 9396 6
    require_something_to_authorize,  # RFC 9396 3 / RFC 6749 3.3
)


def client_credentials(ex: Exchange) -> tuple[str, dict[str, Any]]:
    """RFC 6749 4.4.3: the access token, minted with its grant and record in one transaction."""
    run(CLIENT_CREDENTIALS, ex)
    server, now = ex.server, ex.now
    assert ex.client is not None
    lifetime = server.settings.access_token_lifetime
    grant_id = new_id()
    row: dict[str, Any] = {
        "id": grant_id,
        "client_id": ex.client.client_id,
        "user_id": None,  # RFC 6749 4.4: the client acts for itself
        "scope": ex.scope,
        "authorization_details": json.dumps(ex.authorization_details) if ex.authorization_details else None,
        "resources": json.dumps(ex.resources),
        "auth_time": None,
        "acr": None,
        "created_at": now,
        "expires_at": int(now) + lifetime,  # the grant ends with its one token (no refresh)
    }
    ex.evidence.grant_id = grant_id
    ex.evidence.detail.update({"actor": "client", "user_involved": False})
    with ex.unit_of_work() as uow:
        uow.grants.insert(**row)
        grant = decode_grant(row)
        access_token, claims = mint_access_token(
            uow, server, grant, scope=ex.scope, resources=ex.resources, cnf=ex.cnf, now=now
        )
        ex.evidence.token_jti = claims["jti"]
        server.audit.append(ex.evidence, Event.TOKEN_CLIENT_CREDENTIALS, Outcome.ISSUED, now, conn=uow)
    return access_token, claims


def unauthorized_grant(grant_type: str) -> OAuthError:
    """RFC 6749 5.2: the client is not registered for this grant type."""
    return OAuthError(
        "unauthorized_client",
        f"the client is not registered for the {grant_type} grant",
        rule=Rule.RFC_6749_5_2,
    )
