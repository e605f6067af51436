"""UserInfo (OIDC Core 5.3), a DPoP- or certificate-protected resource of the AS. It is
protected as every Corridor resource is (corridor.resource: one protector, one sender-binding
module, RFC 9449 7, RFC 8705 3, RFC 6750 3); only the token verifier is the AS's own."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.audit.log import Evidence
from corridor.core.request_context import current_request_id
from corridor.core.rules import Rule
from corridor.resource.binding import challenge
from corridor.resource.protector import ResourceProtector, ResourceRequest
from corridor.resource.tokens import AccessToken, ResourceError, access_token
from corridor.server.authority import AuthorizationServer
from corridor.server.checks.dpop import proof_policy
from corridor.server.forms import MAX_BODY
from corridor.server.introspection import live_access_token
from corridor.server.offload import off_loop
from corridor.server.responses import json_response, source_address
from corridor.transport.certificates import peer_certificate
from corridor.transport.trust import via_mtls_listener


class IssuedAccessTokens:
    """The AS verifying its own access tokens (a TokenVerifier, FAPI2 5.3.4-3): signed by its
    keys, unexpired, and neither the token nor its grant revoked (design.md 5b)."""

    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server

    def verify(self, token: str) -> AccessToken:
        claims = live_access_token(self.server, token, self.server.now())
        if claims is None:
            raise ResourceError("invalid_token", "the access token is not valid", rule=Rule.FAPI2_5_3_4_3)
        return access_token(claims, self.server.settings.issuer)


def protector(server: AuthorizationServer) -> ResourceProtector:
    """The resource protector of UserInfo: the AS's tokens, the AS's nonces and replay cache."""
    return ResourceProtector(IssuedAccessTokens(server), proof_policy(server, "u:"), server.clock)


def _refusal(error: ResourceError) -> Response:
    """RFC 6750 3 / RFC 9449 7.1: the challenge; without credentials a bare DPoP one."""
    refusal = error if error.error else None
    response = json_response(refusal.body() if refusal is not None else {}, status=error.status)
    for name, value in challenge(refusal, bare_schemes=("DPoP",)):
        response.headers.append(name, value)
    return response


def require_openid(access: AccessToken) -> None:
    """OIDC Core 5.3.1: UserInfo answers tokens granted the openid scope."""
    if "openid" not in access.scopes:
        raise ResourceError(
            "insufficient_scope",
            "the token lacks the openid scope",
            rule=Rule.OIDC_CORE_5_3_1,
            status=403,
            scheme=access.scheme,
        )


def _token_facts(evidence: Evidence, access: AccessToken) -> None:
    claims = access.claims
    evidence.client_id = str(claims.get("client_id"))
    evidence.user_id = str(claims.get("sub"))
    evidence.token_jti = str(claims.get("jti"))
    evidence.scope = str(claims.get("scope"))


def _authenticate(
    request: Request, server: AuthorizationServer, body_has_token: bool, evidence: Evidence
) -> AccessToken:
    """FAPI2 5.3.4: the token from the Authorization header, valid, and bound to this sender."""
    resource_request = ResourceRequest(
        method=request.method,
        url=server.endpoints.url("/userinfo", via_mtls_listener(request.scope)),
        authorization=request.headers.getlist("authorization"),
        dpop=request.headers.getlist("dpop"),
        certificate=peer_certificate(request.scope),
        token_elsewhere=body_has_token or "access_token" in request.query_params,
    )
    try:
        access = protector(server).authenticate(resource_request)
    except ResourceError as error:
        if error.access is not None:  # verified, then refused: the record names the token
            _token_facts(evidence, error.access)
        raise
    _token_facts(evidence, access)
    evidence.sender_constraint, evidence.key_thumbprint = access.sender_constraint, access.thumbprint
    require_openid(access)
    return access


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
        evidence = Evidence(issuer=server.settings.issuer, request_id=current_request_id())
        try:
            access = _authenticate(request, server, body_has_token, evidence)
            claims = access.claims
            user = server.store.users.get(str(claims["sub"]))
            if user is None:
                raise ResourceError(
                    "invalid_token",
                    "the user no longer exists",
                    rule=Rule.OIDC_CORE_5_3,
                    scheme=access.scheme,
                )
        except ResourceError as error:
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
            return _refusal(error)
        server.audit.append(evidence, Event.USERINFO, Outcome.ALLOWED, server.now())
        info = {"sub": user["id"]}
        if "profile" in access.scopes:
            info["preferred_username"] = user["username"]
        return json_response(info)

    return await off_loop(call)
