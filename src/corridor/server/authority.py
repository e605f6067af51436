"""The authorization server's shared parts, built once per process."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from starlette.datastructures import Headers

from corridor.audit import chain
from corridor.audit.log import AuditLog, Evidence, RefusalSampler
from corridor.audit.sinks import SqlSink
from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.clock import Clock, SystemClock
from corridor.core.dpop import DPoPProof
from corridor.core.errors import OAuthError
from corridor.core.nonces import DPoPNonces
from corridor.core.randomness import new_secret_token
from corridor.core.request_context import current_request_id
from corridor.core.x509 import PkiVerifier
from corridor.policy.details import DetailTypes
from corridor.server.clients import ClientRecord, ClientRegistry, RegistrationCache
from corridor.server.forms import Form
from corridor.server.keys import ServerKeys
from corridor.server.metrics import Metrics
from corridor.server.passkeys import Passkeys
from corridor.server.settings import Settings
from corridor.server.signin import SignIns
from corridor.store.protocols import UnitOfWork
from corridor.store.sql import Store
from corridor.transport.tls import outbound_context

if TYPE_CHECKING:
    from corridor.server.checks.request_object import RequestObject
    from corridor.transport.trust import MtlsTrust


log = logging.getLogger("corridor.server")

#: RFC 8705 5: the endpoints that have an mTLS alias (never the authorization endpoint).
ALIASED = {
    "/par": "pushed_authorization_request_endpoint",
    "/token": "token_endpoint",
    "/introspect": "introspection_endpoint",
    "/revoke": "revocation_endpoint",
    "/userinfo": "userinfo_endpoint",
}


@dataclass(frozen=True)
class Endpoints:
    """Absolute endpoint URLs, derived from the configured issuer (design.md 5), never the Host header."""

    issuer: str
    mtls_base: str = ""

    def url(self, path: str, via_mtls: bool = False) -> str:
        """The public URL of ``path`` on the listener the request came through."""
        return (self.mtls_base if via_mtls and path in ALIASED else self.issuer) + path

    def mtls_aliases(self) -> dict[str, str]:
        return {name: self.mtls_base + path for path, name in ALIASED.items()}

    @property
    def authorization(self) -> str:
        return self.url("/authorize")

    @property
    def par(self) -> str:
        return self.url("/par")

    @property
    def token(self) -> str:
        return self.url("/token")

    @property
    def introspection(self) -> str:
        return self.url("/introspect")

    @property
    def revocation(self) -> str:
        return self.url("/revoke")

    @property
    def userinfo(self) -> str:
        return self.url("/userinfo")

    @property
    def jwks(self) -> str:
        return self.url("/jwks")


class AuthorizationServer:
    """Settings, store, clock, keys, nonces, client registry and audit log of one AS process."""

    def __init__(self, settings: Settings, store: Store, clock: Clock | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock or SystemClock()
        self.endpoints = Endpoints(settings.issuer, settings.mtls_base_url)
        self.pki = PkiVerifier.from_pem_file(settings.mtls_ca_file)
        #: The mTLS listener's trust store, when this process serves one (set by the server runner).
        self.mtls_trust: MtlsTrust | None = None
        self.keys = ServerKeys(
            store,
            self.clock,
            settings.signing_alg,
            keep=settings.access_token_lifetime + settings.max_clock_skew,
        )
        #: This server's Prometheus metrics, in its own registry (issue 18, server/metrics.py).
        self.metrics = Metrics(self.clock.now)
        self.audit = AuditLog(
            SqlSink(store),
            sampler=RefusalSampler(
                settings.audit_refusals_per_source,
                settings.audit_refusal_window,
                settings.audit_refusal_sources,
            ),
            observer=self.metrics.audit_appended,
        )
        #: Password checks and the sign-in throttle (issue 13 C1, C2, B3).
        self.sign_ins = SignIns(store, settings, self.metrics)
        # FAPI2 5.2.1: calls to others (jwks_uri) check server certificates (RFC 9525).
        context = outbound_context(extra_ca_file=settings.trust_ca_file)
        self.http = httpx.Client(verify=context, timeout=5.0, follow_redirects=False)
        self.clients = ClientRegistry(
            store, self.clock, self.http, registration_cache_seconds=settings.registration_cache_seconds
        )
        self._resource_servers: RegistrationCache[dict[str, dict[str, Any]]] = RegistrationCache(
            store, settings.registration_cache_seconds
        )
        self.nonces: DPoPNonces | None = None
        #: RFC 9396 types with their schemas and consent-page words, compiled once.
        self.detail_types = DetailTypes.configured(
            settings.authorization_details_types, settings.authorization_details_type_files
        )
        self._challenge_key = b""
        #: The WebAuthn relying party (sign-in and step-up with passkeys).
        self.passkeys = Passkeys(
            store,
            settings.issuer,
            rp_name=urlsplit(settings.issuer).hostname or settings.issuer,
            mac_key=lambda: self._challenge_key,
        )

    def start(self) -> None:
        """Migrate, load keys and the shared nonce secret."""
        self.store.migrate()
        self.keys.ensure()
        self.nonces = DPoPNonces(self._shared_key("dpop_nonce"), self.settings.dpop_nonce_step, self.clock)
        self._challenge_key = self._shared_key("webauthn_challenge")

    def _shared_key(self, name: str) -> bytes:
        """A random key that every instance on this database shares (made by the first one)."""
        secret = self.store.keys.secret(
            name, lambda: b64url_encode(new_secret_token().encode()), self.clock.now()
        )
        return b64url_decode(secret)

    def purge(self) -> None:
        """The periodic clean-up (server/app.py): expired rows, the aggregate records of closed
        refusal windows, and audit records past ``audit_retention_days`` (issue 13 B4)."""
        now = self.now()
        self.store.purge_expired(now)
        self.audit.flush(now)
        if self.settings.audit_retention_days is not None:
            chain.purge_before(self.store, now - self.settings.audit_retention_days * 86_400)

    def close(self) -> None:
        try:  # the counts of the open refusal window too (issue 13 B4)
            self.audit.flush(self.now() + self.settings.audit_refusal_window)
        except Exception as exc:  # shutting down: one line, the rest of the shutdown goes on
            log.warning("audit: the last aggregate records were not written (%s)", type(exc).__name__)
        self.http.close()

    def now(self) -> float:
        return self.clock.now()

    def resource_servers(self) -> dict[str, dict[str, Any]]:
        """Registered resource servers by identifier (cached; never mutate the result)."""

        def load() -> dict[str, dict[str, Any]]:
            return {
                row["identifier"]: {**row, "scopes": json.loads(row["scopes"])}
                for row in self.store.clients.resource_servers()
            }

        return self._resource_servers.get("all", load) or {}

    def default_audience(self) -> str:
        return self.settings.default_resource or self.settings.issuer


@dataclass
class Exchange:
    """One request travelling through an endpoint pipeline (design.md 2)."""

    server: AuthorizationServer
    endpoint_url: str
    method: str
    headers: Headers
    form: Form
    now: float
    evidence: Evidence
    #: The client certificate of this request (RFC 8705), from the TLS socket or a trusted proxy.
    certificate: x509.Certificate | None = None
    client: ClientRecord | None = None
    dpop: DPoPProof | None = None
    #: RFC 6749 3.3: the requested scope, normalised (check_scope).
    scope: str = ""
    #: RFC 8707 2: the requested resources, each once (check_resource).
    resources: list[str] = field(default_factory=list)
    #: RFC 9396 2: the parsed authorization details, None when none were sent (check_authorization_details).
    authorization_details: list[dict[str, Any]] | None = None
    #: RFC 9101, RFC 9126 3: the pushed request object, once read (checks/request_object.py).
    request_object: RequestObject | None = None
    #: RFC 9449 10.1: the key the code is bound to (bind_dpop_key).
    dpop_jkt: str | None = None
    #: RFC 9449 6.1 / RFC 8705 3.1: the token's confirmation claim (require_sender_constraint).
    cnf: dict[str, str] = field(default_factory=dict)
    #: Single-use keys the checks passed (client assertion and DPoP proof ``jti``): spent in the
    #: request's one write transaction, with the refusal to raise if a racing replay won.
    single_use: list[tuple[str, float, OAuthError]] = field(default_factory=list)

    def spend_once(self, key: str, expires_at: float, replayed: OAuthError) -> None:
        """RFC 9449 11.1, OIDC Core 9: refuse a key already spent (a read now), and spend it in
        this request's unit of work (:meth:`unit_of_work`), where one unique upsert decides."""
        if self.server.store.replay.is_remembered(key, self.now):
            raise replayed
        self.single_use.append((key, expires_at, replayed))

    @contextmanager
    def unit_of_work(self, refusing: bool = False) -> Iterator[UnitOfWork]:
        """This request's one write transaction (design.md 4): its single-use keys are spent
        first (a replay that won a race since the check is refused here, and everything rolls
        back; ``refusing``: the request is refused anyway, a lost race changes nothing), then
        the endpoint's writes and its evidence record commit together or not at all."""
        with self.server.store.unit_of_work() as uow:
            for key, expires_at, replayed in self.single_use:
                if not uow.replay.remember_once(key, expires_at, self.now) and not refusing:
                    raise replayed
            yield uow
        self.single_use.clear()

    @classmethod
    def begin(
        cls,
        server: AuthorizationServer,
        endpoint_url: str,
        method: str,
        headers: Headers,
        form: Form,
        certificate: x509.Certificate | None = None,
    ) -> Exchange:
        return cls(
            server=server,
            endpoint_url=endpoint_url,
            method=method,
            headers=headers,
            form=form,
            now=server.now(),
            evidence=Evidence(issuer=server.settings.issuer, request_id=current_request_id()),
            certificate=certificate,
        )
