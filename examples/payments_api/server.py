"""Serving the demo payments API over HTTPS beside a local Corridor AS (``corridor demo-api``).

* TLS: the AS's dev TLS material in ``<data_dir>/tls`` (the same local CA, a certificate for
  ``localhost`` and ``127.0.0.1``), TLS 1.2+ with the BCP 195 suites only.
* Client certificates (RFC 8705 certificate-bound tokens): the listener asks for an optional
  one and, like the AS's mTLS listener, trusts the ``mtls_ca_file`` bundle plus every
  certificate registered in a client's JWKS ``x5c`` (``corridor client add --certificate``),
  re-read from the AS's database every few seconds. Python's ``ssl`` aborts a handshake on a
  certificate it cannot verify, so a client with any other certificate must connect without
  it. The binding itself is checked by ``corridor.resource``: the certificate's SHA-256
  thumbprint must equal the token's ``cnf.x5t#S256``.
* Tokens: RFC 9068 JWTs from ``issuer`` (keys from its metadata and ``jwks_uri``, fetched over
  TLS trusting the dev CA), with ``aud`` = ``resource``.
* Decisions: every allow or refuse is an evidence record (event ``rs.access``) appended to the
  AS's own audit table, so ``audit_records`` holds what the AS and the API decided.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx

from corridor.audit.sinks import SqlSink
from corridor.resource.guard import ResourceGuard, ResourceSettings
from corridor.server.mtls import registered_certificates
from corridor.store.sql import Store
from corridor.transport.listeners import ListenerLimits, uvicorn_server
from corridor.transport.tls import ensure_dev_tls
from corridor.transport.trust import MtlsTrust

from .app import DEFAULT_STEP_UP_THRESHOLD, STEP_UP_ACR, create_app
from .ledger import Ledger

log = logging.getLogger("payments_api")
NAME = "Demo payments API"


@dataclass(frozen=True)
class DemoConfig:
    #: The authorization server whose tokens are accepted.
    issuer: str
    #: The data directory of that AS (dev TLS material) and its database (audit, client certificates).
    data_dir: Path
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8444
    #: Resource identifier (RFC 8707): the audience tokens must name, and the base URL of DPoP
    #: ``htu``. Empty: ``https://127.0.0.1:<port>``, what dev mode registers for port 8444.
    resource: str = ""
    #: CA bundle for calls to the AS; None: the dev CA in ``<data_dir>/tls``; "": the system's.
    as_ca_file: str | None = None
    #: CA bundle for tls_client_auth client certificates (the AS's ``mtls_ca_file``).
    mtls_ca_file: str = ""
    step_up_threshold: Decimal = DEFAULT_STEP_UP_THRESHOLD
    #: The ledger (accepted payments, what each grant spent; ledger.py): a SQLAlchemy URL.
    #: Empty: the SQLite file ``<data_dir>/demo-payments.db``.
    payments_database_url: str = ""
    #: Seconds to wait for the AS to answer before starting (``make run`` starts both at once,
    #: and the AS creates the dev TLS material on its first start).
    wait_for_issuer: float = 0.0
    #: How often the trust store re-reads the registered client certificates.
    trust_refresh_interval: float = 5.0
    #: Request size and time bounds of the listener (design.md 5c), as the AS's listeners.
    limits: ListenerLimits = field(default_factory=ListenerLimits)

    @property
    def ledger_url(self) -> str:
        return self.payments_database_url or f"sqlite:///{self.data_dir / 'demo-payments.db'}"

    @property
    def resource_url(self) -> str:
        return (self.resource or f"https://127.0.0.1:{self.port}").rstrip("/")


def wait_for_issuer(issuer: str, ca_file: Path | None, timeout: float) -> bool:
    """Poll the AS metadata until it answers (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ca_file is None or ca_file.exists():
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True
            )
            try:
                response = httpx.get(
                    issuer + "/.well-known/oauth-authorization-server", verify=verify, timeout=2
                )
                if response.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    return False


def run(config: DemoConfig, echo: Callable[[str], None] | None = None) -> None:
    """Serve the API until interrupted (SIGINT / SIGTERM)."""
    say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    tls_dir = config.data_dir / "tls"
    dev_ca = tls_dir / "ca.pem"
    as_ca = str(dev_ca) if config.as_ca_file is None else config.as_ca_file
    if config.wait_for_issuer > 0 and not wait_for_issuer(
        config.issuer, Path(as_ca) if as_ca else None, config.wait_for_issuer
    ):
        say(f"{NAME}: {config.issuer} did not answer within {config.wait_for_issuer:g} s; starting anyway")
    tls = ensure_dev_tls(tls_dir)

    store = Store(config.database_url)
    store.migrate()
    resource = config.resource_url
    registered = {row["identifier"] for row in store.clients.resource_servers()}
    settings = ResourceSettings(
        resource=resource,
        authorization_servers=(config.issuer,),
        public_url=resource,
        resource_name=NAME,
        scopes_supported=("accounts", "payments"),
        authorization_details_types=("payment_initiation",),
        ca_file=as_ca,
    )
    guard = ResourceGuard(settings, sink=SqlSink(store))
    ledger = Ledger(config.ledger_url)
    app = create_app(guard, ledger, step_up_threshold=config.step_up_threshold)
    trust = MtlsTrust(tls.cert_file, tls.key_file, config.mtls_ca_file)
    trust.refresh(registered_certificates(store))

    lines = [
        NAME + " (corridor.resource + FastAPI)",
        f"  resource:    {resource}",
        f"  listening:   https://{config.host}:{config.port}",
        f"  issuer:      {config.issuer}",
        f"  routes:      GET {resource}/accounts (scope accounts), "
        f"POST {resource}/payments (scope payments + payment_initiation)",
        f"  step-up:     a grant's payments above {config.step_up_threshold:.2f} in all need acr "
        f"{STEP_UP_ACR} (RFC 9470)",
        f"  payments:    {_safe_url(config.ledger_url)} (per grant, durable)",
        f"  metadata:    {settings.metadata_url}",
        f"  decisions:   audit records (event rs.access) in {config.database_url}",
    ]
    if resource not in registered:
        lines.append(
            f"  warning:     {resource} is not registered at the AS; tokens for it need "
            f'corridor resource add {resource} --name "{NAME}" --scope "accounts payments"'
        )
    say("\n".join(lines))

    server = uvicorn_server(
        app, config.host, config.port, trust.listener_context, lifespan="off", limits=config.limits
    )

    async def serve() -> None:
        async def follow_registrations() -> None:
            while True:
                await asyncio.sleep(config.trust_refresh_interval)
                try:
                    await asyncio.to_thread(lambda: trust.refresh(registered_certificates(store)))
                except Exception:  # the old trust store stays in force; retried next round
                    log.exception("client certificate trust refresh failed")

        task = asyncio.create_task(follow_registrations())
        try:
            await server.serve()
        finally:
            task.cancel()

    try:
        asyncio.run(serve())
    finally:
        guard.http.close()
        ledger.close()
        store.close()


def _safe_url(url: str) -> str:
    """A database URL without its password, for the start-up lines."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
