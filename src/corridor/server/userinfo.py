"""UserInfo (OIDC Core 5.3), a DPoP-protected resource of the AS (RFC 9449 7, RFC 6750 3)."""

from __future__ import annotations

import hmac
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.audit.log import Evidence
from corridor.core.dpop import verify_proof
from corridor.core.errors import OAuthError
from corridor.core.jose import FAPI_ALGORITHMS
from corridor.core.randomness import new_id, token_hash
from corridor.core.x509 import thumbprint_s256
from corridor.server.authority import AuthorizationServer
from corridor.server.forms import MAX_BODY
from corridor.server.introspection import live_access_token
from corridor.server.responses import json_response, source_address
from corridor.transport.certificates import peer_certificate
from corridor.transport.trust import via_mtls_listener

ALGS = " ".join(FAPI_ALGORITHMS)


def _challenge(error: OAuthError | None, scheme: str) -> Response:
    """RFC 6750 3 / RFC 9449 7.1: WWW-Authenticate with error (and algs for DPoP)."""
    params = [f'error="{error.error}"', f'error_description="{error.description}"'] if error else []
    if scheme == "DPoP":
        params.append(f'algs="{ALGS}"')
    headers: dict[str, str] = dict(error.headers) if error else {}
    headers["WWW-Authenticate"] = f"{scheme} {', '.join(params)}"
    status = 403 if error is not None and error.error == "insufficient_scope" else 401
    return json_response(error.body() if error else {}, status=status, headers=headers)


def _authenticate(
    request: Request,
    server: AuthorizationServer,
    body_has_token: bool,
    evidence: Evidence,
    challenge: dict[str, str],
) -> dict[str, Any]:
    """FAPI2 5.3.4: the token from the Authorization header, valid, and bound to this sender."""
    authorizations = request.headers.getlist("authorization")
    if body_has_token or "access_token" in request.query_params:
        raise OAuthError(
            "invalid_request", "access tokens go in the Authorization header", rule="FAPI2 5.3.4-2"
        )
    if len(authorizations) != 1:
        raise OAuthError("", "", rule="RFC 6750 3")  # no credentials: a bare challenge
    scheme, _, token = authorizations[0].partition(" ")
    token, scheme = token.strip(), scheme.lower()
    if scheme not in ("dpop", "bearer") or not token:
        raise OAuthError(
            "invalid_request", "use the DPoP or Bearer authorization scheme", rule="RFC 9449 7.1"
        )
    now = server.now()
    claims = live_access_token(server, token, now)
    if claims is None:
        raise OAuthError("invalid_token", "the access token is not valid", rule="FAPI2 5.3.4-3", status=401)
    evidence.client_id = str(claims.get("client_id"))
    evidence.user_id = str(claims.get("sub"))
    evidence.token_jti = str(claims.get("jti"))
    evidence.scope = str(claims.get("scope"))
    cnf: dict[str, Any] = claims["cnf"] if isinstance(claims.get("cnf"), dict) else {}
    if "x5t#S256" in cnf:
        challenge["scheme"] = "Bearer"
        check_certificate_binding(request, cnf["x5t#S256"], scheme)
        evidence.sender_constraint, evidence.key_thumbprint = "mtls", cnf["x5t#S256"]
    else:
        check_dpop_binding(request, server, token, str(cnf.get("jkt")), scheme, now)
        evidence.sender_constraint, evidence.key_thumbprint = "dpop", str(cnf.get("jkt"))
    if "openid" not in str(claims.get("scope", "")).split():
        raise OAuthError(
            "insufficient_scope", "the token lacks the openid scope", rule="OIDC Core 5.3.1", status=403
        )
    return claims


def check_certificate_binding(request: Request, thumbprint: str, scheme: str) -> None:
    """RFC 8705 3 (M5): the certificate of this connection is the one the token is bound to."""
    if scheme != "bearer":
        raise OAuthError(
            "invalid_token", "a certificate-bound token uses the Bearer scheme", rule="RFC 8705 3"
        )
    certificate = peer_certificate(request.scope)
    if certificate is None or not hmac.compare_digest(thumbprint_s256(certificate), thumbprint):
        raise OAuthError(
            "invalid_token",
            "the client certificate does not match the token binding",
            rule="RFC 8705 3",
            status=401,
        )


def check_dpop_binding(
    request: Request, server: AuthorizationServer, token: str, jkt: str, scheme: str, now: float
) -> None:
    """RFC 9449 7 (D1-D14): a DPoP-bound token with a fresh proof of its key."""
    if scheme != "dpop":
        raise OAuthError("invalid_token", "a DPoP-bound token must use the DPoP scheme", rule="RFC 9449 7.2")
    settings = server.settings
    proof = verify_proof(
        request.headers.getlist("dpop"),
        method=request.method,
        url=server.endpoints.url("/userinfo", via_mtls_listener(request.scope)),
        now=now,
        max_future=settings.max_clock_skew,
        max_past=settings.dpop_max_age,
        access_token=token,
    )
    assert server.nonces is not None
    if settings.dpop_nonce_required and (proof.nonce is None or not server.nonces.is_valid(proof.nonce)):
        raise OAuthError(
            "use_dpop_nonce",
            "a DPoP nonce is required",
            rule="RFC 9449 9",
            headers={"DPoP-Nonce": server.nonces.current()},
        )
    if proof.jkt != jkt:
        raise OAuthError(
            "invalid_token", "the DPoP key does not match the token binding", rule="RFC 9449 7.1"
        )
    expires = proof.iat + settings.dpop_max_age + settings.max_clock_skew
    if not server.store.remember_once("u:" + token_hash(f"{proof.jkt}\x00{proof.jti}"), expires, now):
        raise OAuthError("invalid_dpop_proof", "the DPoP proof was already used", rule="RFC 9449 11.1")


async def userinfo(request: Request, server: AuthorizationServer) -> Response:
    body_has_token = False
    if request.method == "POST":
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return json_response({"error": "invalid_request"}, status=413)
        body_has_token = b"access_token=" in body

    def call() -> Response:
        evidence = Evidence(issuer=server.settings.issuer, request_id=new_id())
        challenge = {"scheme": "DPoP"}
        try:
            claims = _authenticate(request, server, body_has_token, evidence, challenge)
            user = server.store.get_user(str(claims["sub"]))
            if user is None:
                raise OAuthError(
                    "invalid_token", "the user no longer exists", rule="OIDC Core 5.3", status=401
                )
        except OAuthError as error:
            if error.error:  # a request without credentials is not a decision worth a record
                server.audit.append(
                    evidence,
                    Event.USERINFO,
                    Outcome.REFUSED,
                    server.now(),
                    rule=error.rule,
                    error=error.error,
                    unauthenticated_source=source_address(request),  # no token proved: issue 13 B4
                )
            return _challenge(error if error.error else None, challenge["scheme"])
        server.audit.append(evidence, Event.USERINFO, Outcome.ALLOWED, server.now())
        info = {"sub": user["id"]}
        if "profile" in str(claims.get("scope", "")).split():
            info["preferred_username"] = user["username"]
        return json_response(info)

    return await run_in_threadpool(call)
