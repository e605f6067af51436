"""Test support: a real AS on a real TLS socket (127.0.0.1, ephemeral port) with a
real SQLite file and a movable clock, plus a small black-box driver for flows."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from argon2 import PasswordHasher
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from corridor.core.clock import MovableClock
from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey
from corridor.core.pkce import new_verifier, s256_challenge
from corridor.core.randomness import new_id, new_secret_token
from corridor.server import passwords
from corridor.server.app import create_app
from corridor.server.authority import AuthorizationServer
from corridor.server.clients import build_client_metadata
from corridor.server.mtls import registered_certificates
from corridor.server.serve import Listeners
from corridor.server.settings import Settings
from corridor.store.sql import Store, database_url
from corridor.transport.tls import DevTLS, ensure_dev_tls, server_ssl_context
from corridor.transport.trust import MtlsTrust

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REDIRECT_URI = "https://client.example.org/cb"
PASSWORD = "correct horse battery staple"
RESOURCE = "https://rs.example.org/api"


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class RunningAS:
    """An AS serving HTTPS in a background thread."""

    issuer: str
    tls: DevTLS
    clock: MovableClock
    store: Store
    server: AuthorizationServer | None
    data_dir: Path
    base_url: str = ""
    #: The Prometheus scrape URL of ``running_as(metrics=True)`` (plain HTTP, loopback).
    metrics_url: str = ""
    _uvicorn: Any = None
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.issuer.rsplit(":", 1)[1])

    def http(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            verify=ssl.create_default_context(cafile=str(self.tls.ca_file)), timeout=20, **kwargs
        )

    def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(10)


@contextmanager
def running_as(
    data_dir: Path,
    tls: DevTLS,
    *,
    issuer: str | None = None,
    clock: MovableClock | None = None,
    metrics: bool = False,
    **settings: Any,
) -> Iterator[RunningAS]:
    """Both listeners of one AS: the main one and the mTLS one (endpoint aliases); with
    ``metrics`` also the plain-HTTP metrics listener (``RunningAS.metrics_url``).

    ``issuer`` and ``clock``: for one of several instances of the same AS (tests/cluster)."""
    sock, mtls_sock = free_socket(), free_socket()
    port, mtls_port = sock.getsockname()[1], mtls_sock.getsockname()[1]
    metrics_sock = free_socket() if metrics else None
    if metrics_sock is not None:
        settings["metrics_port"] = metrics_sock.getsockname()[1]
    base_url = f"https://localhost:{port}"
    issuer = issuer or base_url
    config = Settings(
        issuer=issuer, port=port, mtls_port=mtls_port, data_dir=data_dir, dev_mode=False, **settings
    )
    store = Store(config.database_url)
    clock = clock or MovableClock()
    server = AuthorizationServer(config, store, clock)
    app = create_app(server, trust_refresh_interval=0.5)
    trust = MtlsTrust(tls.cert_file, tls.key_file, config.mtls_ca_file)
    listeners = Listeners(
        app, server, server_ssl_context(tls.cert_file, tls.key_file), trust, log_level="warning"
    )
    servers = [listeners.main, listeners.mtls] + ([listeners.metrics] if listeners.metrics else [])
    for uv in servers:
        # uvicorn annotates int | None but hands it to asyncio.wait_for, which takes float seconds.
        uv.config.timeout_graceful_shutdown = 0.2  # type: ignore[assignment]
    serving = listeners.serve([sock], [mtls_sock], [metrics_sock] if metrics_sock else None)
    thread = threading.Thread(target=asyncio.run, args=(serving,), daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not all(uv.started for uv in servers):
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the AS did not start")
        time.sleep(0.02)
    running = RunningAS(
        issuer,
        tls,
        clock,
        store,
        server,
        data_dir,
        base_url=base_url if base_url != issuer else "",
        metrics_url=f"http://127.0.0.1:{config.metrics_port}/metrics" if metrics_sock else "",
        _uvicorn=listeners.main,
        _thread=thread,
    )
    try:
        yield running
    finally:
        running.stop()
        store.close()


#: An administrative PostgreSQL URL (a database the tests may CREATE DATABASE from). When it is
#: set, every test on the ``as_server`` fixture also runs on PostgreSQL; .ci/run sets it, so
#: there a missing PostgreSQL fails the run instead of skipping half of it.
POSTGRES_ENV = "CORRIDOR_TEST_POSTGRES_URL"


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one fixture; dropped afterwards."""
    name = "corridor_t_" + new_id()[:16].lower().replace("-", "_")
    # No pool: a database restart in a test (tests/cluster/test_faults.py) must not leave a dead connection.
    admin = create_engine(database_url(admin_url), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield database_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def dev_tls(directory: Path) -> DevTLS:
    return ensure_dev_tls(directory)


@dataclass
class Client:
    client_id: str
    key: SigningKey
    dpop_key: SigningKey
    redirect_uri: str = REDIRECT_URI


@dataclass
class Flow:
    """State a client keeps between PAR and the token request."""

    verifier: str
    state: str
    request_uri: str = ""
    nonce: str | None = None
    code: str = ""
    callback: dict[str, str] = field(default_factory=dict)


#: How long Driver.fresh_nonce reuses a nonce fetched from a server in another process.
NONCE_REUSE_SECONDS = 5.0


class Driver:
    """A black-box FAPI 2.0 client and browser for tests: every message is built by hand,
    so tests can break any part of it."""

    def __init__(self, running: RunningAS) -> None:
        self.as_ = running
        self.issuer = running.issuer
        self.base = running.base_url or running.issuer
        self.http = running.http()
        #: The nonce of a server in another process, and when it was fetched (fresh_nonce).
        self.dpop_nonce: str | None = None
        self._nonce_fetched_at = 0.0

    # -- registration -------------------------------------------------------------------

    def add_user(self, username: str | None = None, password: str = PASSWORD) -> str:
        username = username or "user-" + new_id()[:8]
        # The hasher of the server that verifies it (tests/conftest.py FAST_HASHER in this process,
        # the production parameters in a `corridor serve` process), so a sign-in never rehashes.
        hasher = passwords._hasher if self.as_.server is not None else PasswordHasher()
        self.as_.store.users.add(new_id(), username, hasher.hash(password), time.time())
        return username

    def add_client(
        self,
        *,
        alg: str = "ES256",
        scope: str = "openid profile offline_access accounts payments",
        redirect_uris: tuple[str, ...] = (REDIRECT_URI,),
        grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
        jwks: dict[str, Any] | None = None,
        jwks_uri: str | None = None,
        resources: tuple[str, ...] = (),
        key: SigningKey | None = None,
        auth_method: str = "private_key_jwt",
        sender_constraint: str = "dpop",
        tls_subject: dict[str, str] | None = None,
        use_mtls_endpoint_aliases: bool = False,
        require_signed_request_object: bool = False,
        response_modes: tuple[str, ...] = (),
        authorization_signed_response_alg: str | None = None,
    ) -> Client:
        key = key or SigningKey.generate(alg)
        client_id = "c-" + new_id()
        if jwks is None and jwks_uri is None and auth_method != "tls_client_auth":
            jwks = {"keys": [key.public_jwk]}
        if "authorization_code" not in grant_types:
            redirect_uris = ()
        meta = build_client_metadata(
            redirect_uris=redirect_uris,
            grant_types=grant_types,
            jwks=jwks,
            jwks_uri=jwks_uri,
            scope=scope,
            resources=resources,
            token_endpoint_auth_method=auth_method,
            sender_constraint=sender_constraint,
            tls_subject=tls_subject,
            use_mtls_endpoint_aliases=use_mtls_endpoint_aliases,
            require_signed_request_object=require_signed_request_object,
            response_modes=response_modes,
            authorization_signed_response_alg=authorization_signed_response_alg,
        )
        self.as_.store.clients.add(client_id, "Test client " + client_id[-4:], meta, time.time())
        if self.as_.server is not None and self.as_.server.mtls_trust is not None:
            # do not wait for the next refresh round
            self.as_.server.mtls_trust.refresh(registered_certificates(self.as_.store))
        return Client(client_id, key, SigningKey.generate("ES256"), redirect_uris[0] if redirect_uris else "")

    # -- messages ------------------------------------------------------------------------

    def now(self) -> float:
        return self.as_.clock.now()

    def assertion(
        self,
        client: Client,
        *,
        header: dict[str, Any] | None = None,
        key: SigningKey | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        now = int(self.now())
        body: dict[str, Any] = {
            "iss": client.client_id,
            "sub": client.client_id,
            "aud": self.issuer,
            "jti": new_secret_token(),
            "iat": now,
            "exp": now + 60,
        }
        body.update(claims)
        for name in drop:
            body.pop(name, None)
        return (key or client.key).sign(body, "JWT", header)

    def client_auth(self, client: Client, **claims: Any) -> dict[str, str]:
        return {"client_assertion_type": JWT_BEARER, "client_assertion": self.assertion(client, **claims)}

    def proof(
        self,
        client: Client,
        method: str,
        url: str,
        *,
        nonce: str | None = "current",
        access_token: str | None = None,
        key: SigningKey | None = None,
        **kwargs: Any,
    ) -> str:
        if nonce == "current":
            nonce = self.fresh_nonce()
        return make_proof(
            key or client.dpop_key,
            method,
            url,
            nonce=nonce,
            access_token=access_token,
            iat=kwargs.pop("iat", self.now()),
            **kwargs,
        )

    def fresh_nonce(self) -> str:
        if self.as_.server is not None:
            nonces = self.as_.server.nonces
            assert nonces is not None
            return nonces.current()
        # A server in another process: every PAR/token answer carries the current nonce. One
        # fetched is used for NONCE_REUSE_SECONDS: the server accepts it for at least one
        # dpop_nonce_step (10 s or more, server/settings.py), and the cluster races would
        # otherwise send a refused PAR for every proof (issue 19).
        now = time.monotonic()
        if self.dpop_nonce is None or now - self._nonce_fetched_at > NONCE_REUSE_SECONDS:
            self.dpop_nonce = self.http.post(self.url("/par"), data={}).headers["dpop-nonce"]
            self._nonce_fetched_at = now
        return self.dpop_nonce

    def url(self, path: str) -> str:
        """Where requests go (an instance may listen elsewhere than the shared issuer)."""
        return self.base + path

    def mtls_url(self, path: str) -> str:
        """The RFC 8705 alias of ``path`` on the mTLS listener."""
        assert self.as_.server is not None
        return self.as_.server.endpoints.url(path, via_mtls=True)

    def mtls_http(self, certificate: Any = None) -> httpx.Client:
        """A client for the mTLS listener, presenting ``certificate`` (a tests.pki.ClientCert) if given."""
        ca = str(self.as_.tls.ca_file)
        context = (
            certificate.ssl_context(ca) if certificate is not None else ssl.create_default_context(cafile=ca)
        )
        return httpx.Client(verify=context, timeout=20)

    def htu(self, path: str) -> str:
        """What proofs name: always derived from the issuer."""
        return self.issuer + path

    # -- the flow -------------------------------------------------------------------------

    def par(
        self,
        client: Client,
        *,
        dpop: bool = True,
        extra: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> tuple[httpx.Response, Flow]:
        flow = Flow(verifier=new_verifier(), state=new_secret_token())
        form: dict[str, Any] = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "scope": "openid accounts",
            "state": flow.state,
            "code_challenge": s256_challenge(flow.verifier),
            "code_challenge_method": "S256",
            **self.client_auth(client),
        }
        form.update(extra or {})
        for name in drop:
            form.pop(name, None)
        all_headers = dict(headers or {})
        if dpop:
            all_headers["DPoP"] = self.proof(client, "POST", self.htu("/par"))
        response = self.http.post(self.url("/par"), data=form, headers=all_headers)
        if response.status_code == 201:
            flow.request_uri = response.json()["request_uri"]
        flow.nonce = form.get("nonce")
        return response, flow

    def browser(self) -> Browser:
        return Browser(self.as_)

    def authorize(
        self,
        client: Client,
        flow: Flow,
        browser: Browser | None = None,
        username: str | None = None,
        decision: str = "approve",
    ) -> httpx.Response:
        """Drive login and consent in a browser; returns the final redirect to the client."""
        browser = browser or self.browser()
        username = username or self.add_user()
        page = browser.get(
            self.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
        )
        if page.status_code != 200:
            return page
        if 'name="username"' in page.text:
            page = browser.submit(page, {"username": username, "password": PASSWORD})
            if page.status_code != 200:
                return page
        final = browser.submit(page, {"decision": decision}, follow=False)
        if final.status_code == 303:
            location = final.headers["location"]
            if location.startswith(client.redirect_uri):
                flow.callback = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
                flow.code = flow.callback.get("code", "")
        return final

    def token_request(
        self,
        client: Client,
        form: dict[str, Any],
        *,
        dpop: bool = True,
        dpop_key: SigningKey | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> httpx.Response:
        body = dict(form)
        if auth:
            body = {**self.client_auth(client), **body}
        all_headers = dict(headers or {})
        if dpop:
            all_headers["DPoP"] = self.proof(client, "POST", self.htu("/token"), key=dpop_key)
        return self.http.post(self.url("/token"), data=body, headers=all_headers)

    def redeem(self, client: Client, flow: Flow, **kwargs: Any) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": flow.code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": flow.verifier,
        }
        form.update(kwargs.pop("form", {}))
        return self.token_request(client, form, **kwargs)

    def full_flow(self, client: Client, extra: dict[str, Any] | None = None) -> tuple[Flow, dict[str, Any]]:
        response, flow = self.par(client, extra=extra)
        assert response.status_code == 201, response.text
        final = self.authorize(client, flow)
        assert final.status_code == 303 and flow.code, final.text
        tokens = self.redeem(client, flow)
        assert tokens.status_code == 200, tokens.text
        return flow, tokens.json()

    def introspect(self, caller: Client, token: str, **extra: Any) -> httpx.Response:
        return self.http.post(
            self.url("/introspect"), data={**self.client_auth(caller), "token": token, **extra}
        )


class Browser:
    """A cookie-keeping user agent that reads forms from our server-rendered pages."""

    _FORM = re.compile(r'<form method="post" action="([^"]+)">')
    _CSRF = re.compile(r'name="csrf" value="([^"]+)"')

    def __init__(self, running: RunningAS) -> None:
        self.base = running.base_url or running.issuer
        self.http = running.http(follow_redirects=False)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        response = self.http.get(url, **kwargs)
        while response.status_code == 303 and response.headers["location"].startswith("/"):
            response = self.http.get(self.base + response.headers["location"])
        return response

    def form_of(self, page: httpx.Response) -> tuple[str, str]:
        action = self._FORM.search(page.text)
        csrf = self._CSRF.search(page.text)
        assert action and csrf, page.text
        return html.unescape(action.group(1)), html.unescape(csrf.group(1))

    def submit(self, page: httpx.Response, fields: dict[str, str], follow: bool = True) -> httpx.Response:
        action, csrf = self.form_of(page)
        response = self.http.post(self.base + action, data={"csrf": csrf, **fields})
        if follow and response.status_code == 303 and response.headers["location"].startswith("/"):
            return self.get(self.base + response.headers["location"])
        return response


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWS without verifying (for inspection in tests)."""
    from corridor.core.b64 import b64url_decode

    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def ssl_context_of(http: httpx.Client) -> ssl.SSLContext:
    """The TLS context an httpx client verifies with (httpx keeps it on its transport's pool)."""
    transport = http._transport
    assert isinstance(transport, httpx.HTTPTransport) and transport._pool._ssl_context is not None
    return transport._pool._ssl_context
