"""What a protected resource works with: a verified access token (RFC 9068 2.2 claims and its
sender constraint, FAPI2 5.3.4-5) and a refusal (RFC 6750 3 / RFC 9449 7.1), whichever
verifier produced the token and whichever server (an API or the AS's UserInfo) refuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from corridor.core.errors import OAuthError
from corridor.core.rules import Rule
from corridor.policy.cedar import PolicyDecision


@dataclass(frozen=True)
class AccessToken:
    """A verified access token, as handlers see it."""

    issuer: str
    subject: str
    client_id: str
    scopes: frozenset[str]
    authorization_details: tuple[Mapping[str, Any], ...]
    acr: str | None
    auth_time: int | None
    #: "dpop" (cnf.jkt) or "mtls" (cnf.x5t#S256), with the key or certificate thumbprint.
    sender_constraint: str
    thumbprint: str
    jti: str
    expires_at: int
    claims: Mapping[str, Any]
    #: RFC 9701 / FAPI 2.0 Message Signing: the AS's signed introspection answer this token was
    #: verified with (``sha256``, ``kid``, ``alg`` and the compact ``jws``, for an API that keeps
    #: it as evidence of what the AS said; decision records name it by hash); None otherwise.
    signed_introspection: Mapping[str, str] | None = None

    @property
    def grant_id(self) -> str | None:
        """The grant the token comes from (issue 16: the AS's ``grant_id`` claim, as in FAPI Grant
        Management), so a resource server's records link to the grant without guessing."""
        value = self.claims.get("grant_id")
        return value if isinstance(value, str) and value else None

    @property
    def user(self) -> str | None:
        """The resource owner, or None for a token the client got for itself (RFC 9068 2.2: its
        ``sub`` is then the client's identifier, as in the client credentials grant)."""
        return None if self.subject == self.client_id else self.subject

    @property
    def scheme(self) -> str:
        """RFC 9449 7.1 / RFC 6750 3: DPoP for DPoP-bound tokens, Bearer for certificate-bound ones."""
        return "DPoP" if self.sender_constraint == "dpop" else "Bearer"


class ResourceError(OAuthError):
    """A refusal at a protected resource, rendered as an RFC 6750 / RFC 9449 challenge. An empty
    ``error`` is a request without credentials: a bare challenge (RFC 6750 3)."""

    def __init__(
        self,
        error: str,
        description: str = "",
        *,
        rule: str,
        status: int = 401,
        scheme: str = "DPoP",
        params: Mapping[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error, description, rule=rule, status=status, headers=headers)
        self.scheme = scheme
        self.params = dict(params or {})
        #: The token, when it was verified and a later check (its binding, a route) refused.
        self.access: AccessToken | None = None
        #: The tool action and the policy decision, when a policy refused (issue 8).
        self.action: str | None = None
        self.policy: PolicyDecision | None = None


def number(value: Any) -> TypeGuard[float]:
    """A JSON number usable as a time (RFC 7519 2 NumericDate), not a boolean."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e11


def sender_constraint(claims: Mapping[str, Any]) -> tuple[str, str]:
    """FAPI2 5.3.4-5, RFC 9449 6.1, RFC 8705 3.1: the token's cnf names a key (jkt) or a
    certificate (x5t#S256); never a bearer token."""
    cnf = claims.get("cnf")
    if isinstance(cnf, dict) and isinstance(cnf.get("jkt"), str):
        return "dpop", cnf["jkt"]
    if isinstance(cnf, dict) and isinstance(cnf.get("x5t#S256"), str):
        return "mtls", cnf["x5t#S256"]
    raise ResourceError(
        "invalid_token", "the access token is not sender-constrained", rule=Rule.FAPI2_5_3_4_5
    )


def access_token(claims: Mapping[str, Any], issuer: str, *, jti: str | None = None) -> AccessToken:
    """RFC 9068 2.2: the claims a handler relies on, from claims a verifier has checked. ``jti``
    names the token when the claims have no ``jti`` member at all (an introspection answer,
    where it is optional: RFC 7662 2.2); a JWT access token must carry its own."""
    named = {**claims, "jti": jti} if jti is not None and "jti" not in claims else claims
    for name in ("sub", "client_id", "jti"):
        if not isinstance(named.get(name), str):
            raise ResourceError("invalid_token", f"the access token has no {name}", rule=Rule.RFC_9068_2_2)
    constraint, thumbprint = sender_constraint(claims)
    details, scope, exp = claims.get("authorization_details"), claims.get("scope"), claims.get("exp")
    return AccessToken(
        issuer=issuer,
        subject=claims["sub"],
        client_id=claims["client_id"],
        scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        authorization_details=tuple(d for d in details if isinstance(d, dict))
        if isinstance(details, list)
        else (),
        acr=claims.get("acr") if isinstance(claims.get("acr"), str) else None,
        auth_time=int(claims["auth_time"]) if number(claims.get("auth_time")) else None,
        sender_constraint=constraint,
        thumbprint=thumbprint,
        jti=named["jti"],
        expires_at=int(exp) if number(exp) else 0,
        claims=dict(claims),
    )
