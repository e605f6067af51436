"""UserInfo (OIDC Core 5.3), a DPoP-protected resource of the AS (RFC 9449 7, RFC 6750 3)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from corridor.audit.log import Evidence
from corridor.core.dpop import verify_proof
from corridor.core.errors import OAuthError
from corridor.core.jose import FAPI_ALGORITHMS
from corridor.core.randomness import new_id, token_hash
from corridor.server.authority import AuthorizationServer
from corridor.server.forms import MAX_BODY
from corridor.server.introspection import live_access_token
from corridor.server.responses import json_response

ALGS = " ".join(FAPI_ALGORITHMS)


def _challenge(error: OAuthError | None, server: AuthorizationServer) -> Response:
    """RFC 9449 7.1 / RFC 6750 3: WWW-Authenticate with error and algs."""
    value = f'DPoP algs="{ALGS}"'
    headers: dict[str, str] = {}
    status = 401
    if error is not None:
        value = f'DPoP error="{error.error}", error_description="{error.description}", algs="{ALGS}"'
        headers.update(error.headers)
        status = 403 if error.error == "insufficient_scope" else 401
    headers["WWW-Authenticate"] = value
    return json_response(error.body() if error else {}, status=status, headers=headers)


def _authenticate(
    request: Request, server: AuthorizationServer, body_has_token: bool, evidence: Evidence
) -> dict[str, object]:
    authorizations = request.headers.getlist("authorization")
    if body_has_token or "access_token" in request.query_params:
        raise OAuthError(
            "invalid_request", "access tokens go in the Authorization header", rule="FAPI2 5.3.4-2"
        )
    if len(authorizations) != 1:
        raise OAuthError("", "", rule="RFC 6750 3")  # no credentials: a bare challenge
    scheme, _, token = authorizations[0].partition(" ")
    token = token.strip()
    if scheme.lower() not in ("dpop", "bearer") or not token:
        raise OAuthError("invalid_request", "use the DPoP authorization scheme", rule="RFC 9449 7.1")
    now = server.now()
    claims = live_access_token(server, token, now)
    if claims is None:
        raise OAuthError("invalid_token", "the access token is not valid", rule="FAPI2 5.3.4-3", status=401)
    evidence.client_id = str(claims.get("client_id"))
    evidence.user_id = str(claims.get("sub"))
    evidence.token_jti = str(claims.get("jti"))
    evidence.scope = str(claims.get("scope"))
    jkt = claims.get("cnf", {}).get("jkt") if isinstance(claims.get("cnf"), dict) else None
    if scheme.lower() == "bearer":
        raise OAuthError("invalid_token", "a DPoP-bound token must use the DPoP scheme", rule="RFC 9449 7.2")
    settings = server.settings
    proof = verify_proof(
        request.headers.getlist("dpop"),
        method=request.method,
        url=server.endpoints.userinfo,
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
    scope = str(claims.get("scope", "")).split()
    if "openid" not in scope:
        raise OAuthError(
            "insufficient_scope", "the token lacks the openid scope", rule="OIDC Core 5.3.1", status=403
        )
    return claims


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
        try:
            claims = _authenticate(request, server, body_has_token, evidence)
            user = server.store.get_user(str(claims["sub"]))
            if user is None:
                raise OAuthError(
                    "invalid_token", "the user no longer exists", rule="OIDC Core 5.3", status=401
                )
        except OAuthError as error:
            if error.error:  # a request without credentials is not a decision worth a record
                server.audit.append(
                    evidence, "userinfo", "refused", server.now(), rule=error.rule, error=error.error
                )
            return _challenge(error if error.error else None, server)
        evidence.sender_constraint = "dpop"
        evidence.key_thumbprint = str(claims["cnf"]["jkt"])  # type: ignore[index]
        server.audit.append(evidence, "userinfo", "allowed", server.now())
        info = {"sub": user["id"]}
        if "profile" in str(claims.get("scope", "")).split():
            info["preferred_username"] = user["username"]
        return json_response(info)

    return await run_in_threadpool(call)
