"""The resource server's checks, in the order FAPI2 5.3.4 lists them: where the token is
(5.3.4-1/-2), that it is valid (5.3.4-3, RFC 9068), that it is bound to this sender
(5.3.4-5: RFC 9449 7 or RFC 8705 3), and that it covers the request (5.3.4-4, RFC 9470)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import httpx
from cryptography import x509

from corridor.audit.events import Event, Outcome
from corridor.audit.log import AuditLog, EveryRefusal, Evidence
from corridor.audit.sinks import EvidenceSink, MemorySink
from corridor.core import strictjson
from corridor.core.acr import AcrLevels
from corridor.core.clock import Clock, SystemClock
from corridor.core.dpop import verify_proof
from corridor.core.errors import OAuthError, safe_description
from corridor.core.jose import (
    FAPI_ALGORITHMS,
    JoseFailure,
    SigningKey,
    read_header,
    verify_jws,
)
from corridor.core.nonces import DPoPNonces
from corridor.core.randomness import new_id, token_hash
from corridor.core.replay import MemoryReplayCache, ReplayCache
from corridor.core.x509 import thumbprint_s256
from corridor.policy.cedar import Policies, PolicyDecision, grant_context
from corridor.resource.keys import IssuerKeys
from corridor.transport.tls import outbound_context

ALGS = " ".join(FAPI_ALGORITHMS)
METADATA_PATH = "/.well-known/oauth-protected-resource"
AT_TYPES = ("at+jwt", "application/at+jwt")


@dataclass(frozen=True)
class Introspection:
    """RFC 7662 token validation: the RS calls the AS's introspection endpoint as a registered
    confidential client (private_key_jwt, ``aud`` = the issuer, FAPI2 5.3.2.1-8).

    Not cached by default, so a revoked token is refused at once (design.md 5b). A cache of
    ``cache_seconds`` means a revoked token may be accepted for at most that long."""

    client_id: str
    key: SigningKey
    cache_seconds: float = 0.0


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


@dataclass(frozen=True)
class Requirement:
    """What a route needs (FAPI2 5.3.4-4, RFC 9470): scopes, authorization_details entries
    (each a subset to match, e.g. ``{"type": "payment_initiation"}``), an acr level, a max_age."""

    scopes: frozenset[str] = frozenset()
    details: tuple[Mapping[str, Any], ...] = ()
    acr: str | None = None
    max_age: int | None = None


class ResourceError(OAuthError):
    """A refusal at the resource server, rendered as an RFC 6750 / RFC 9449 challenge."""

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
        #: The tool action and the policy decision, when a policy refused (issue 8).
        self.action: str | None = None
        self.policy: PolicyDecision | None = None


def insufficient_scope(
    description: str, rule: str = "FAPI2 5.3.4-4, RFC 6750 3.1", **params: str
) -> ResourceError:
    return ResourceError("insufficient_scope", description, rule=rule, status=403, params=params)


def step_up(description: str, *, acr_values: str | None = None, max_age: int | None = None) -> ResourceError:
    """RFC 9470 3: the token's authentication is not strong or recent enough."""
    params = {"acr_values": acr_values} if acr_values else {}
    if max_age is not None:
        params["max_age"] = str(max_age)
    return ResourceError("insufficient_user_authentication", description, rule="RFC 9470 3", params=params)


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
        self._introspected: dict[str, tuple[float, dict[str, Any]]] = {}
        self.replay = replay or MemoryReplayCache()
        self.nonces = DPoPNonces(settings.nonce_secret, settings.nonce_step, self.clock)
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

    # -- the challenge ---------------------------------------------------------------------------

    def challenge_headers(self, error: ResourceError | None) -> list[tuple[str, str]]:
        """RFC 6750 3, RFC 9449 7.1, RFC 9728 5.1: one WWW-Authenticate per scheme."""
        metadata = f'resource_metadata="{self.settings.metadata_url}"'
        if error is None:  # no credentials: both schemes, without an error code
            return [
                ("WWW-Authenticate", f'DPoP algs="{ALGS}", {metadata}'),
                ("WWW-Authenticate", f"Bearer {metadata}"),
            ]
        params = [f'error="{error.error}"']
        if error.description:
            params.append(f'error_description="{safe_description(error.description)}"')
        params += [f'{k}="{safe_description(v)}"' for k, v in error.params.items()]
        if error.scheme == "DPoP":
            params.append(f'algs="{ALGS}"')
        params.append(metadata)
        headers = [("WWW-Authenticate", f"{error.scheme} {', '.join(params)}")]
        headers += list(error.headers.items())
        return headers

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
        if query and "access_token" in query:
            raise ResourceError(
                "invalid_request",
                "access tokens go in the Authorization header",
                rule="FAPI2 5.3.4-2, RFC 6750 2.3",
            )
        authorizations = [v for k, v in headers if k.lower() == "authorization"]
        if not authorizations:
            raise ResourceError("", rule="RFC 6750 3")  # no credentials: a bare challenge
        if len(authorizations) != 1:
            raise ResourceError(
                "invalid_request", "one Authorization header", rule="RFC 6750 2.1", status=400
            )
        scheme, _, token = authorizations[0].partition(" ")
        scheme, token = scheme.lower(), token.strip()
        if scheme not in ("dpop", "bearer") or not token or " " in token:
            raise ResourceError(
                "invalid_request", "use the DPoP or Bearer scheme", rule="FAPI2 5.3.4-1", status=400
            )
        access = self.verify_token(token)
        now = self.clock.now()
        if access.sender_constraint == "dpop":
            self._check_dpop(method, path, headers, token, access, scheme, now)
        else:
            self._check_certificate(access, scheme, certificate)
        return access

    def verify_token(self, token: str) -> AccessToken:
        """FAPI2 5.3.4-3: local RFC 9068 validation, or RFC 7662 introspection when configured."""
        if self.settings.introspection is not None:
            return self._introspect(token, self.settings.introspection)
        return self._verify_jwt(token)

    def _introspect(self, token: str, config: Introspection) -> AccessToken:
        """RFC 7662 2: ask the (single) authorization server; ``active: false`` is invalid_token."""
        now = self.clock.now()
        cache_key = token_hash(token)
        cached = self._introspected.get(cache_key)
        if cached is not None and cached[0] > now:
            claims = cached[1]
        else:
            issuer = self.settings.authorization_servers[0]
            try:
                endpoint = self.issuers[issuer].metadata().get("introspection_endpoint")
            except (httpx.HTTPError, ValueError):
                raise ResourceError(
                    "invalid_token", "the token cannot be checked now", rule="RFC 7662 2", status=503
                ) from None
            if not isinstance(endpoint, str) or not endpoint.startswith("https://"):
                raise ResourceError(
                    "invalid_token", "the authorization server offers no introspection", rule="RFC 7662 2"
                )
            assertion = config.key.sign(
                {
                    "iss": config.client_id,
                    "sub": config.client_id,
                    "aud": issuer,
                    "jti": new_id(),
                    "iat": int(now),
                    "exp": int(now) + 60,
                },
                "JWT",
            )
            try:
                response = self.http.post(
                    endpoint,
                    data={
                        "token": token,
                        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        "client_assertion": assertion,
                    },
                )
                claims = strictjson.loads(response.content) if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                raise ResourceError(
                    "invalid_token", "the token cannot be checked now", rule="RFC 7662 2", status=503
                ) from None
            if not isinstance(claims, dict):
                claims = {}
            if config.cache_seconds > 0:
                self._introspected[cache_key] = (now + config.cache_seconds, claims)
                if len(self._introspected) > 100_000:
                    self._introspected = {k: v for k, v in self._introspected.items() if v[0] > now}
        if claims.get("active") is not True:
            raise ResourceError("invalid_token", "the access token is not active", rule="RFC 7662 2.2")
        issuer = claims.get("iss", self.settings.authorization_servers[0])
        if issuer not in self.issuers:
            raise ResourceError("invalid_token", "the token comes from another issuer", rule="FAPI2 6.3")
        return self._claims_to_token(claims, issuer, now)

    def _verify_jwt(self, token: str) -> AccessToken:
        """RFC 9068 4: typ, alg, signature by the issuer, iss, aud, exp, iat."""
        now = self.clock.now()
        try:
            header = read_header(token)
        except JoseFailure as exc:
            raise ResourceError("invalid_token", "the access token is not a JWT", rule="RFC 9068 4") from exc
        if header.get("typ") not in AT_TYPES:
            raise ResourceError("invalid_token", "the access token typ must be at+jwt", rule="RFC 9068 4")
        if header["alg"] not in FAPI_ALGORITHMS:
            raise ResourceError("invalid_token", "the access token alg is not allowed", rule="FAPI2 5.4.1")
        unverified = self._unverified_claims(token)
        claimed = unverified.get("iss")
        issuer = claimed if isinstance(claimed, str) else ""
        keys = self.issuers.get(issuer)
        if keys is None:
            raise ResourceError(
                "invalid_token", "the token comes from another issuer", rule="RFC 9068 4, FAPI2 6.3"
            )
        try:
            try:
                verify_jws(token, header, keys.signing_keys())
            except JoseFailure:
                verify_jws(token, header, keys.signing_keys(refresh=True))
        except JoseFailure as exc:
            raise ResourceError(
                "invalid_token", "the access token signature is not valid", rule="RFC 9068 4"
            ) from exc
        # The signature covers exactly the payload those claims were parsed from.
        return self._claims_to_token(unverified, issuer, now)

    def _unverified_claims(self, token: str) -> dict[str, Any]:
        from corridor.core.b64 import b64url_decode

        try:
            claims = strictjson.loads(b64url_decode(token.split(".")[1]))
        except (ValueError, IndexError) as exc:
            raise ResourceError(
                "invalid_token", "the access token payload is not JSON", rule="RFC 9068 4"
            ) from exc
        if not isinstance(claims, dict):
            raise ResourceError(
                "invalid_token", "the access token payload is not a JSON object", rule="RFC 9068 4"
            )
        return claims

    def _claims_to_token(self, claims: Mapping[str, Any], issuer: str, now: float) -> AccessToken:
        settings = self.settings
        if claims.get("iss") != issuer:
            raise ResourceError("invalid_token", "iss does not match", rule="RFC 9068 4")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if settings.resource not in audiences:
            raise ResourceError("invalid_token", "the token is meant for another resource", rule="RFC 9068 4")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not _number(exp) or exp <= now:
            raise ResourceError("invalid_token", "the access token has expired", rule="FAPI2 5.3.4-3")
        if not _number(iat) or iat > now + settings.max_clock_skew:
            raise ResourceError("invalid_token", "the access token iat is not valid", rule="RFC 9068 4")
        for name in ("sub", "client_id", "jti"):
            if not isinstance(claims.get(name), str):
                raise ResourceError("invalid_token", f"the access token has no {name}", rule="RFC 9068 2.2")
        cnf = claims.get("cnf")
        if isinstance(cnf, dict) and isinstance(cnf.get("jkt"), str):
            constraint, thumbprint = "dpop", cnf["jkt"]
        elif isinstance(cnf, dict) and isinstance(cnf.get("x5t#S256"), str):
            constraint, thumbprint = "mtls", cnf["x5t#S256"]
        else:
            raise ResourceError(
                "invalid_token", "the access token is not sender-constrained", rule="FAPI2 5.3.4-5"
            )
        details = claims.get("authorization_details")
        scope = claims.get("scope")
        return AccessToken(
            issuer=issuer,
            subject=claims["sub"],
            client_id=claims["client_id"],
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
            authorization_details=tuple(d for d in details if isinstance(d, dict))
            if isinstance(details, list)
            else (),
            acr=claims.get("acr") if isinstance(claims.get("acr"), str) else None,
            auth_time=int(claims["auth_time"]) if _number(claims.get("auth_time")) else None,
            sender_constraint=constraint,
            thumbprint=thumbprint,
            jti=claims["jti"],
            expires_at=int(exp),
            claims=dict(claims),
        )

    def _check_dpop(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        token: str,
        access: AccessToken,
        scheme: str,
        now: float,
    ) -> None:
        """RFC 9449 7 (D1-D14): the DPoP scheme, a proof for this request and this token, by the bound key."""
        if scheme != "dpop":
            raise ResourceError(
                "invalid_token", "a DPoP-bound token must use the DPoP scheme", rule="RFC 9449 7.2"
            )
        settings = self.settings
        proofs = [v for k, v in headers if k.lower() == "dpop"]
        if not proofs:
            raise ResourceError("invalid_dpop_proof", "a DPoP proof is required", rule="RFC 9449 7.1")
        try:
            proof = verify_proof(
                proofs,
                method=method,
                url=settings.public_url.rstrip("/") + path,
                now=now,
                max_future=settings.max_clock_skew,
                max_past=settings.dpop_max_age,
                access_token=token,
            )
        except OAuthError as exc:
            raise ResourceError("invalid_dpop_proof", exc.description, rule=exc.rule) from exc
        if settings.dpop_nonce_required and (proof.nonce is None or not self.nonces.is_valid(proof.nonce)):
            raise ResourceError(
                "use_dpop_nonce",
                "a DPoP nonce is required",
                rule="RFC 9449 9",
                headers={"DPoP-Nonce": self.nonces.current()},
            )
        if not hmac.compare_digest(proof.jkt, access.thumbprint):
            raise ResourceError("invalid_token", "Invalid DPoP key binding", rule="RFC 9449 7.1, 6.1")
        expires = proof.iat + settings.dpop_max_age + settings.max_clock_skew
        if not self.replay.remember_once("rs:" + token_hash(f"{proof.jkt}\x00{proof.jti}"), expires, now):
            raise ResourceError("invalid_dpop_proof", "the DPoP proof was already used", rule="RFC 9449 11.1")

    @staticmethod
    def _check_certificate(access: AccessToken, scheme: str, certificate: x509.Certificate | None) -> None:
        """RFC 8705 3 (M5): the certificate of this connection is the one the token is bound to."""
        if scheme != "bearer":
            raise ResourceError(
                "invalid_token",
                "a certificate-bound token uses the Bearer scheme",
                rule="RFC 8705 3",
                scheme="Bearer",
            )
        if certificate is None or not hmac.compare_digest(thumbprint_s256(certificate), access.thumbprint):
            raise ResourceError(
                "invalid_token",
                "the client certificate does not match the token binding",
                rule="RFC 8705 3",
                scheme="Bearer",
            )

    # -- authorization -------------------------------------------------------------------------------

    def authorize(self, access: AccessToken, requirement: Requirement) -> None:
        """FAPI2 5.3.4-4 (RFC 6750 3.1 insufficient_scope) and RFC 9470 (step-up)."""
        scheme = "DPoP" if access.sender_constraint == "dpop" else "Bearer"
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
    ) -> PolicyDecision:
        """Issue 8: may this client, for this user, perform ``action`` (a tool, or
        ``tool:action``) here, with these request values? Decided by the Cedar policies from the
        token's facts and grant; a refusal is 403 ``insufficient_scope`` whose rule names the
        deciding policies. ``spent_minor`` is what the grant has paid in all, ``spent_by_entry``
        what it paid against each payment_initiation entry (policy/cedar.py grant_context)."""
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
        if not decision.allowed:
            error = insufficient_scope(
                f"{action} refused by policy: {', '.join(decision.policies)}", rule=decision.rule
            )
            error.scheme = "DPoP" if access.sender_constraint == "dpop" else "Bearer"
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
        action: str | None = None,
        policy: PolicyDecision | None = None,
        source: str | None = None,
    ) -> None:
        """One evidence record per enforcement decision (the AS's fields plus resource, route, method,
        and for allowed requests the status the route answered). ``source``: the peer address; a
        refusal without a verified token is sampled per source (issue 13 B4, audit/log.py)."""
        evidence = Evidence(
            issuer=access.issuer if access else "", request_id=new_id(), resource=self.settings.resource
        )
        if access is not None:
            evidence.client_id, evidence.user_id = access.client_id, access.subject
            evidence.scope = " ".join(sorted(access.scopes))
            evidence.authorization_details = list(access.authorization_details) or None
            evidence.sender_constraint, evidence.key_thumbprint = access.sender_constraint, access.thumbprint
            evidence.token_jti = access.jti
        evidence.detail = {"route": route, "method": method}
        if status:
            evidence.detail["status"] = status
        if error is not None and error.policy is not None:
            action, policy = error.action, error.policy
        if action is not None:
            evidence.detail["tool_action"] = action
        if policy is not None:
            evidence.detail["policy"] = {
                "decision": "allow" if policy.allowed else "deny",
                "policies": list(policy.policies),
                "engine": "cedar",
            }
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


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e11


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
    "AccessToken",
    "Requirement",
    "ResourceError",
    "ResourceGuard",
    "ResourceSettings",
    "insufficient_scope",
    "requirement",
    "step_up",
]
