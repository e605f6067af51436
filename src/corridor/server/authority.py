"""The authorization server's shared parts, built once per process."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.datastructures import Headers

from corridor.audit.log import AuditLog, Evidence
from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.clock import Clock, SystemClock
from corridor.core.dpop import DPoPProof
from corridor.core.randomness import new_id, new_secret_token
from corridor.server.clients import ClientRecord, ClientRegistry
from corridor.server.forms import Form
from corridor.server.keys import ServerKeys
from corridor.server.nonces import DPoPNonces
from corridor.server.settings import Settings
from corridor.store.sql import Store


@dataclass(frozen=True)
class Endpoints:
    """Absolute endpoint URLs, derived from the configured issuer (design.md 5), never the Host header."""

    issuer: str

    def url(self, path: str) -> str:
        return self.issuer + path

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
        self.endpoints = Endpoints(settings.issuer)
        self.keys = ServerKeys(store, self.clock, settings.signing_alg)
        self.audit = AuditLog(store)
        # FAPI2 5.2.1: calls to others (jwks_uri) check server certificates (RFC 9525).
        context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if settings.trust_ca_file:
            context.load_verify_locations(settings.trust_ca_file)
        self.http = httpx.Client(verify=context, timeout=5.0, follow_redirects=False)
        self.clients = ClientRegistry(store, self.clock, self.http)
        self.nonces: DPoPNonces | None = None

    def start(self) -> None:
        """Migrate, load keys and the shared nonce secret."""
        self.store.migrate()
        self.keys.ensure()
        secret = self.store.secret(
            "dpop_nonce", lambda: b64url_encode(new_secret_token().encode()), self.clock.now()
        )
        self.nonces = DPoPNonces(b64url_decode(secret), self.settings.dpop_nonce_step, self.clock)

    def close(self) -> None:
        self.http.close()

    def now(self) -> float:
        return self.clock.now()

    def resource_servers(self) -> dict[str, dict[str, Any]]:
        return {
            row["identifier"]: {**row, "scopes": json.loads(row["scopes"])}
            for row in self.store.list_resource_servers()
        }

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
    client: ClientRecord | None = None
    dpop: DPoPProof | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def begin(
        cls, server: AuthorizationServer, endpoint_url: str, method: str, headers: Headers, form: Form
    ) -> Exchange:
        return cls(
            server=server,
            endpoint_url=endpoint_url,
            method=method,
            headers=headers,
            form=form,
            now=server.now(),
            evidence=Evidence(issuer=server.settings.issuer, request_id=new_id()),
        )
