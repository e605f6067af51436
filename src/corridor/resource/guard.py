"""The resource server's checks, in the order FAPI2 5.3.4 lists them: where the token is
(5.3.4-1/-2), that it is valid (5.3.4-3, RFC 9068), that it is bound to this sender
(5.3.4-5: RFC 9449 7 or RFC 8705 3), and that it covers the request (5.3.4-4, RFC 9470).
The first three are the ResourceProtector's (protector.py: a verifier from verifiers.py, the
binding of binding.py); this module configures it and adds the last, policy and evidence."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from corridor.audit.events import Event, Outcome
from corridor.audit.log import AuditLog, EveryRefusal, Evidence
from corridor.audit.sinks import EvidenceSink, MemorySink
from corridor.core.acr import AcrLevels
from corridor.core.clock import Clock, SystemClock
from corridor.core.jose import FAPI_ALGORITHMS
from corridor.core.nonces import DPoPNonces
from corridor.core.randomness import new_id
from corridor.core.replay import MemoryReplayCache, ReplayCache
from corridor.core.rules import Rule
from corridor.policy.cedar import Policies, PolicyDecision, grant_context
from corridor.resource.binding import ProofPolicy
from corridor.resource.evidence import ActionFacts, compared
from corridor.resource.keys import IssuerKeys
from corridor.resource.protector import ResourceProtector, ResourceRequest, header_values
from corridor.resource.tokens import AccessToken, ResourceError
from corridor.resource.verifiers import (
    Audience,
    Introspection,
    IntrospectionVerifier,
    JWTVerifier,
    TokenVerifier,
)
from corridor.transport.tls import outbound_context

METADATA_PATH = "/.well-known/oauth-protected-resource"


@dataclass(frozen=True)
class ResourceSettings:
    """How one protected resource is configured."""

    #: The resource identifier (RFC 8707, RFC 9728 ``resource``): the audience tokens must name.
    resource: str
    #: Issuers whose tokens are accepted (RFC 9728 ``authorization_servers``).
    authorization_servers: tuple[str, ...]
    #: Public base URL of this API (``https://host[:port][/prefix]``), as its clients reach it;
    #: DPoP ``htu`` derives from it, so proxies and sub-paths work (RFC 9449 4.3-9). Required:
    #: the socket cannot tell what URL a client behind a proxy used (issue 13 F5).
    public_url: str = ""
    resource_name: str = ""
    scopes_supported: tuple[str, ...] = ()
    authorization_details_types: tuple[str, ...] = ()
    #: RFC 9449 9: resource-server nonces (separate from the AS's).
    dpop_nonce_required: bool = True
    nonce_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    nonce_step: int = 60
    #: FAPI2 5.3.2.1-13 window for iat in the future; RFC 9449 11.1 age limit of proofs.
    max_clock_skew: int = 10
    dpop_max_age: int = 60
    #: CA bundle for calls to the authorization server (empty: the system's).
    ca_file: str = ""
    #: Named authentication levels, weakest first (design.md 5b).
    acr_levels: tuple[str, ...] = ("password", "mfa", "passkey")
    #: Cedar policy files added to Corridor's defaults (policy/cedar.py), parsed once.
    policy_files: tuple[str, ...] = ()
    #: Validate tokens by introspection instead of locally (opaque tokens, immediate revocation).
    #: With local JWT validation the access-token lifetime bounds revocation (the Corridor AS
    #: issues 300 s tokens by default for that reason).
    introspection: Introspection | None = None

    def __post_init__(self) -> None:
        require_public_url(self.public_url)

    @property
    def metadata_url(self) -> str:
        return self.public_url.rstrip("/") + METADATA_PATH


def require_public_url(url: str) -> None:
    """issue 13 F5, RFC 9449 4.3-9: every DPoP proof names the URL its client used (``htu``);
    without the API's public URL no proof can match, so refuse to start instead."""
    hint = (
        "ResourceSettings(public_url=...) must be the API's external base URL, "
        "https://host[:port][/prefix], as clients reach it (DPoP proofs name it in htu, RFC 9449 4.3)"
    )
    if not url:
        raise ValueError(f"{hint}; none was given")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parses the port; a bad one raises)
    except ValueError:
        raise ValueError(f"{hint}; {url!r} is not a URL") from None
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{hint}; {url!r} is not one")


@dataclass(frozen=True)
class Requirement:
    """What a route needs (FAPI2 5.3.4-4, RFC 9470): scopes, authorization_details entries
    (each a subset to match, e.g. ``{"type": "payment_initiation"}``), an acr level, a max_age."""

    scopes: frozenset[str] = frozenset()
    details: tuple[Mapping[str, Any], ...] = ()
    acr: str | None = None
    max_age: int | None = None


def insufficient_scope(
    description: str, rule: str = Rule.FAPI2_5_3_4_4_RFC_6750_3_1, **params: str
) -> ResourceError:
    return ResourceError("insufficient_scope", description, rule=rule, status=403, params=params)


def step_up(description: str, *, acr_values: str | None = None, max_age: int | None = None) -> ResourceError:
    """RFC 9470 3: the token's authentication is not strong or recent enough."""
    params = {"acr_values": acr_values} if acr_values else {}
    if max_age is not None:
        params["max_age"] = str(max_age)
    return ResourceError("insufficient_user_authentication", description, rule=Rule.RFC_9470_3, params=params)


def _contains(entry: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(entry.get(k) == v for k, v in wanted.items())


class ResourceGuard:
    """Verifies requests to one protected resource; one instance per API, shared by all requests."""

    def __init__(
        self,
        settings: ResourceSettings,
        *,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
        replay: ReplayCache | None = None,
        sink: EvidenceSink | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        if http is None:
            context = outbound_context(settings.ca_file)
            http = httpx.Client(verify=context, timeout=5.0, follow_redirects=False)
        self.http = http
        self.issuers = {iss: IssuerKeys(iss, http, self.clock) for iss in settings.authorization_servers}
        self.replay = replay or MemoryReplayCache()
        self.nonces = DPoPNonces(settings.nonce_secret, settings.nonce_step, self.clock)
        self.verifier = self._token_verifier()
        #: Where the decisions go: ``sink`` (SQL, JSON Lines), else the last 1000 in memory, each
        #: one recorded (the memory bounds itself: no sampling of refusals).
        self.audit = (
            AuditLog(sink, role="rs")
            if sink is not None
            else AuditLog(MemorySink(keep=1000), role="rs", sampler=EveryRefusal())
        )
        self.policies = Policies.load(settings.policy_files)

    @property
    def decisions(self) -> list[dict[str, Any]]:
        """The decisions kept in memory (most recent last); none when they go to another sink."""
        sink = self.audit.sink
        return sink.records if isinstance(sink, MemorySink) else []

    # -- authentication ----------------------------------------------------------------------------

    def authenticate(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        certificate: x509.Certificate | None,
        query: Mapping[str, str] | None = None,
    ) -> AccessToken:
        """FAPI2 5.3.4-1/-2/-3/-5: the token from the Authorization header, valid and sender-bound."""
        request = ResourceRequest(
            method=method,
            url=self.settings.public_url.rstrip("/") + path,
            authorization=header_values(headers, "authorization"),
            dpop=header_values(headers, "dpop"),
            certificate=certificate,
            token_elsewhere="access_token" in (query or {}),
        )
        return self.protector.authenticate(request)

    @property
    def protector(self) -> ResourceProtector:
        """FAPI2 5.3.4-1/-2/-3/-5 with this guard's verifier, nonces and replay cache (as they are
        now: a guard's replay cache may be replaced after it is made)."""
        proofs = ProofPolicy.of(self.settings, self.nonces, self.replay, "rs:")
        return ResourceProtector(self.verifier, proofs, self.clock)

    def _token_verifier(self) -> TokenVerifier:
        """FAPI2 5.3.4-3: local RFC 9068 validation, or RFC 7662 introspection when configured."""
        audience = Audience(self.settings.resource, self.settings.max_clock_skew)
        if self.settings.introspection is not None:
            return IntrospectionVerifier(
                self.settings.introspection, self.issuers, audience, self.http, self.clock
            )
        return JWTVerifier(self.issuers, audience, self.clock)

    def verify_token(self, token: str) -> AccessToken:
        """FAPI2 5.3.4-3: the token, verified by this resource's :class:`TokenVerifier`."""
        return self.verifier.verify(token)

    # -- authorization -------------------------------------------------------------------------------

    def authorize(self, access: AccessToken, requirement: Requirement) -> None:
        """FAPI2 5.3.4-4 (RFC 6750 3.1 insufficient_scope) and RFC 9470 (step-up)."""
        scheme = access.scheme
        missing = requirement.scopes - access.scopes
        if missing:
            error = insufficient_scope(
                "the token lacks a required scope", scope=" ".join(sorted(requirement.scopes))
            )
            error.scheme = scheme
            raise error
        for wanted in requirement.details:
            if not any(_contains(entry, wanted) for entry in access.authorization_details):
                error = insufficient_scope("the token's authorization_details do not cover this request")
                error.scheme = scheme
                raise error
        if requirement.acr is not None and not AcrLevels(self.settings.acr_levels).reaches(
            access.acr, requirement.acr
        ):
            error = step_up("a stronger authentication is required", acr_values=requirement.acr)
            error.scheme = scheme
            raise error
        if requirement.max_age is not None and (
            access.auth_time is None or self.clock.now() - access.auth_time > requirement.max_age
        ):
            error = step_up("a more recent authentication is required", max_age=requirement.max_age)
            error.scheme = scheme
            raise error

    def decide_action(
        self,
        access: AccessToken,
        action: str,
        *,
        route_scopes: frozenset[str] = frozenset(),
        request: Mapping[str, Any] | None = None,
        spent_minor: int = 0,
        spent_by_entry: Mapping[int, int] | None = None,
        facts: ActionFacts | None = None,
    ) -> PolicyDecision:
        """Issue 8: may this client, for this user, perform ``action`` (a tool, or
        ``tool:action``) here, with these request values? Decided by the Cedar policies from the
        token's facts and grant; a refusal is 403 ``insufficient_scope`` whose rule names the
        deciding policies. ``spent_minor`` is what the grant has paid in all, ``spent_by_entry``
        what it paid against each payment_initiation entry (policy/cedar.py grant_context).
        ``facts``: the request's action facts, which get the values the decision compared (issue 16)."""
        context = grant_context(
            access.authorization_details,
            user=access.subject,
            scopes=access.scopes,
            acr=access.acr,
            auth_time=access.auth_time,
            sender_constraint=access.sender_constraint,
            spent_minor=spent_minor,
            request=request,
            spent_by_entry=spent_by_entry,
        )
        context["route_scope_granted"] = bool(route_scopes) and route_scopes <= access.scopes
        decision = self.policies.decide(access.client_id, action, self.settings.resource, context)
        if facts is not None:
            facts.compared = compared(context)
        if not decision.allowed:
            error = insufficient_scope(
                f"{action} refused by policy: {', '.join(decision.policies)}", rule=decision.rule
            )
            error.scheme = access.scheme
            error.action, error.policy = action, decision
            raise error
        return decision

    # -- RFC 9728 metadata and evidence ---------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """RFC 9728 2: what an agent that knows only this API's URL needs to find its AS."""
        s = self.settings
        body: dict[str, Any] = {
            "resource": s.resource,
            "authorization_servers": list(s.authorization_servers),
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": list(FAPI_ALGORITHMS),
            "dpop_bound_access_tokens_required": False,
            "tls_client_certificate_bound_access_tokens": True,
        }
        if s.resource_name:
            body["resource_name"] = s.resource_name
        if s.scopes_supported:
            body["scopes_supported"] = list(s.scopes_supported)
        if s.authorization_details_types:
            body["authorization_details_types_supported"] = list(s.authorization_details_types)
        return body

    def record(
        self,
        *,
        route: str,
        method: str,
        access: AccessToken | None,
        error: ResourceError | None,
        status: int | None = None,
        facts: ActionFacts | None = None,
        policy: PolicyDecision | None = None,
        source: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """One evidence record per enforcement decision (the AS's fields plus resource, route, method,
        and for allowed requests the status the route answered). ``facts``: the action, its
        parameters and the values the policy compared (issue 16); with a result, a second record
        (``rs.result``) follows, with the same ``request_id``. ``source``: the peer address; a
        refusal without a verified token is sampled per source (issue 13 B4, audit/log.py)."""
        evidence = self._evidence(access, route, method, request_id)
        if status:
            evidence.detail["status"] = status
        if error is not None and error.policy is not None:
            policy = error.policy
            if facts is None and error.action is not None:
                facts = ActionFacts(error.action)
        if facts is not None:
            evidence.detail["tool_action"] = facts.action
            evidence.detail["action"] = facts.detail()
        if policy is not None:
            evidence.detail["policy"] = {
                "decision": "allow" if policy.allowed else "deny",
                "policies": list(policy.policies),
                "engine": "cedar",
            }
            if facts is not None and facts.compared:
                evidence.detail["policy"]["compared"] = facts.compared
        outcome = Outcome.ALLOWED if error is None else Outcome.REFUSED
        now = self.clock.now()
        rule = error.rule if error else (policy.rule if policy is not None else None)
        code = (error.error or None) if error else None
        unauthenticated = source if error is not None and access is None else None
        self.audit.append(
            evidence,
            Event.RS_ACCESS,
            outcome,
            now,
            rule=rule,
            error=code,
            unauthenticated_source=unauthenticated,
        )
        if error is None and facts is not None and facts.result is not None:
            result = self._evidence(access, route, method, evidence.request_id)
            result.detail.update(status=status, action=facts.action, result=facts.result)
            self.audit.append(result, Event.RS_RESULT, Outcome.COMPLETED, now)

    def _evidence(
        self, access: AccessToken | None, route: str, method: str, request_id: str | None
    ) -> Evidence:
        evidence = Evidence(
            issuer=access.issuer if access else "",
            request_id=request_id or new_id(),
            resource=self.settings.resource,
        )
        if access is not None:
            evidence.client_id, evidence.user_id = access.client_id, access.user
            evidence.scope = " ".join(sorted(access.scopes))
            evidence.authorization_details = list(access.authorization_details) or None
            evidence.sender_constraint, evidence.key_thumbprint = access.sender_constraint, access.thumbprint
            evidence.token_jti, evidence.grant_id = access.jti, access.grant_id
        evidence.detail = {"route": route, "method": method}
        if access is not None and access.user is None:  # issue 20: the client acts for itself
            evidence.detail.update({"actor": "client", "user_involved": False})
        if access is not None and access.signed_introspection is not None:
            # RFC 9701: which signed answer the token was accepted on, by hash (no JWT in a
            # record; the AS keeps the JWS under that hash, the token holds it for the API).
            signed = access.signed_introspection
            evidence.detail["signed_introspection"] = {
                k: signed[k] for k in ("sha256", "kid", "alg") if k in signed
            }
        return evidence


def requirement(
    scope: str | Iterable[str] = (),
    details: Mapping[str, Any] | Sequence[Mapping[str, Any]] = (),
    acr: str | None = None,
    max_age: int | None = None,
) -> Requirement:
    scopes = scope.split() if isinstance(scope, str) else list(scope)
    entries = (details,) if isinstance(details, Mapping) else tuple(details)
    return Requirement(frozenset(scopes), entries, acr, max_age)


__all__ = [
    "Requirement",
    "ResourceGuard",
    "ResourceSettings",
    "insufficient_scope",
    "requirement",
    "step_up",
]
