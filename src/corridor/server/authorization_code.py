"""The end of an authorization (RFC 6749 4.1.2): the pushed request consumed, then a grant and
its code, or the denial, with their evidence records, in one transaction (issue 13 B7).

It reads the pushed request's facts and the interaction's result and nothing else (issue 15, 1).
"""

from __future__ import annotations

import json

from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.audit.log import Evidence
from corridor.core.randomness import new_id, new_secret_token, token_hash
from corridor.core.rules import Rule
from corridor.server.authority import AuthorizationServer
from corridor.server.interaction.browser import clear_interaction_cookie, end_interaction
from corridor.server.interaction.contract import InteractionResult, PushedFacts
from corridor.server.interaction.visit import refuse_page
from corridor.server.jarm import authorization_reply
from corridor.store.protocols import UnitOfWork

DENIED = {"error": "access_denied", "error_description": "the user denied the request"}
DISABLED = {"error": "access_denied", "error_description": "the user's account is disabled"}


def complete(server: AuthorizationServer, pushed: PushedFacts, result: InteractionResult) -> Response:
    """RFC 9126 Note 3 / FAPI2 5.3.2.2-12: the pushed request is used once, by the first decision;
    the reply goes to its redirect_uri with ``state`` and ``iss`` (RFC 9207 2), or as one signed
    JWT (JARM) made and kept in the transaction that issues the code (server/jarm.py)."""
    now = server.now()
    evidence = pushed.evidence(server.settings.issuer)
    evidence.user_id = result.user
    # The decision names its interaction, whose "consent shown" record says what was shown.
    evidence.detail = {
        "interaction": result.interaction_id,
        "par": pushed.ref_hash,
        "approval_surface": result.approval_surface,
        # Issue 16: how the user signed in (OIDC Core 2 acr, RFC 8176 amr), as the grant records it.
        "acr": result.acr,
        "amr": list(result.amr),
        "auth_time": result.auth_time,
    }
    response: Response | None = None
    with server.store.unit_of_work() as uow:
        # Lost to another POST, response stays None: refused after the transaction, as no write
        # may open inside one (issue 13 B7, design.md 4).
        if uow.requests.consume_pushed(pushed.ref_hash, now):
            if result.decision == "deny":
                response = authorization_reply(server, uow, evidence, pushed, dict(DENIED), now)
                server.audit.append(evidence, Event.CONSENT, Outcome.DENIED, now, conn=uow)
            elif not uow.users.lock_enabled(result.user):
                # Issue 18: disabled (or removed) since the page was shown; the row lock orders
                # this against ``corridor user disable``, so no grant outlives its revocation.
                response = authorization_reply(server, uow, evidence, pushed, dict(DISABLED), now)
                rule = Rule.ISSUE_18_ACCOUNT_DISABLED
                server.audit.append(evidence, Event.CONSENT, Outcome.DENIED, now, rule=rule, conn=uow)
            else:
                response = issue_code(server, uow, evidence, pushed, result, now)
    if response is None:
        raise end_interaction(
            result.interaction_id,
            refuse_page(
                server,
                evidence,
                Event.CONSENT,
                "invalid_request_uri",
                "This authorization request was already completed.",
                Rule.FAPI2_5_3_2_2_12,
            ),
        )
    response.headers.update({"Set-Cookie": clear_interaction_cookie(result.interaction_id)})
    return response


def issue_code(
    server: AuthorizationServer,
    uow: UnitOfWork,
    evidence: Evidence,
    pushed: PushedFacts,
    result: InteractionResult,
    now: float,
) -> Response:
    """The grant (who, what, at which level) and its code, bound to the pushed request's redirect_uri,
    PKCE challenge and DPoP key (RFC 9449 10), recorded as consent granted and code issued; the
    code issued record names the signed response that carries the code, when JARM was asked."""
    grant_id, code = new_id(), new_secret_token()
    uow.grants.insert(
        id=grant_id,
        client_id=pushed.client_id,
        user_id=result.user,
        scope=pushed.scope or "",
        authorization_details=json.dumps(pushed.authorization_details)
        if pushed.authorization_details
        else None,
        resources=json.dumps(list(pushed.resources)),
        auth_time=result.auth_time,
        acr=result.acr,
        created_at=now,
        expires_at=now + server.settings.grant_lifetime,
    )
    uow.grants.insert_code(
        code_hash=token_hash(code),
        grant_id=grant_id,
        client_id=pushed.client_id,
        redirect_uri=pushed.redirect_uri,
        code_challenge=pushed.code_challenge,
        dpop_jkt=pushed.dpop_jkt,
        nonce=pushed.nonce,
        created_at=now,
        expires_at=now + server.settings.code_lifetime,
    )
    evidence.grant_id = grant_id
    server.audit.append(evidence, Event.CONSENT, Outcome.GRANTED, now, conn=uow)
    response = authorization_reply(server, uow, evidence, pushed, {"code": code}, now)
    server.audit.append(evidence, Event.CODE, Outcome.ISSUED, now, conn=uow)
    return response
