"""panva's oidc-provider (the pinned interop peer, a certified FAPI 2.0 authorization server)
configured for FAPI 2.0 Security Profile Final, with a resource server for its tokens and a
``corridor check`` configuration file that points at both (issue 14).

``running_fapi_peer(directory, tls)`` starts, on 127.0.0.1 over HTTPS with the dev CA's
``localhost`` certificate:

- tests/check/oidc_provider_fapi.mjs: the provider (its header says what is configured and why),
  with eight static clients, two for each client-authentication x sender-constraint pair
  (``private_key_jwt+dpop``, ``private_key_jwt+mtls``, ``mtls+dpop``, ``mtls+mtls``). Every client
  has its own keys and certificate. In each pair the first client's redirect URI is
  ``https://client.example/cb`` and the second's ``https://client.example/cb?dummy1=lorem&dummy2=ipsum``
  (the OIDF suite's style; neither is ever requested). The private_key_jwt clients sign with PS256
  (the first, so the suite's RS256-assertion module has an RSA key to misuse) and ES256 (the
  second). mTLS client authentication is self_signed_tls_client_auth: the certificate is
  registered in the client's jwks ``x5c`` (RFC 8705 2.2).
- A resource server: Corridor's RS library (corridor.resource) in front of ``GET /accounts``
  (scope ``accounts``), on its own TLS port, asking every TLS client for a certificate (the eight
  clients' self-signed certificates are its trust anchors for that; a connection without one is
  fine). It accepts the provider's JWT access tokens (RFC 9068) for its resource indicator
  ``https://localhost:PORT`` (every token's ``aud``: the provider defaults every authorization to
  it, as the OIDF suite sends no ``resource``; a client that sends one may also name the
  resource URL, ``https://localhost:PORT/accounts``), checks the DPoP proof (RFC 9449 7: ath,
  htu, its own nonce, a jti replay cache) or the certificate binding (RFC 8705 3), and refuses a
  token in the query or a form body (FAPI2 5.3.4-2).

and writes ``check.toml`` (src/corridor/check/config.py's format) with every file it names
beside it: ``ca.pem``; per client ``<client_id>.private.jwk.json`` (private_key_jwt clients),
``<client_id>.pem`` and ``<client_id>.key`` (every client: mTLS client auth, certificate-bound
tokens, and a certificate for the suite's wrong-certificate checks).

The [login] is ``html-form`` with ``alice`` / ``anything``: oidc-provider's development login
page takes any login name (it becomes ``sub``) and any password; its consent page has one
"Continue" button (form post, hidden ``prompt=consent``); denying is its "[ Cancel ]" link
(a GET of ``/interaction/<uid>/abort``, which redirects with ``error=access_denied``). Both pages
are plain HTML (no script). A browser that already signed in and consented for a client is sent
straight back with a code on its next authorization request (no page at all) unless the request
asks ``prompt=login`` or ``prompt=consent``.

The resource server's TLS layer trusts exactly the eight clients' certificates: a connection
presenting any other certificate fails the handshake (a refusal before HTTP), one presenting
another client's certificate reaches the RS and gets 401 (the binding does not match).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corridor.core.jose import SigningKey
from corridor.core.private_files import write_private
from corridor.resource.asgi import ProtectedResource, protected, require
from corridor.resource.guard import ResourceGuard, ResourceSettings
from corridor.transport.listeners import uvicorn_server
from corridor.transport.tls import TLS12_CIPHERS, DevTLS
from tests.interop.node import STARTUP_TIMEOUT, NodeFlow
from tests.pki import ClientCert, TestPKI
from tests.support import free_socket

HERE = Path(__file__).parent
SCRIPT = HERE / "oidc_provider_fapi.mjs"
#: The check configuration's file name, in the directory given to running_fapi_peer.
CONFIG_NAME = "check.toml"
RESOURCE_SCOPE = "accounts"
RESOURCE_PATH = "/accounts"
SCOPE = f"openid offline_access {RESOURCE_SCOPE}"
REDIRECT_URIS = ("https://client.example/cb", "https://client.example/cb?dummy1=lorem&dummy2=ipsum")
USERNAME = "alice"
PASSWORD = "anything"
#: The check's client-authentication x sender pairs (config.py's names) and the provider's names.
PAIRS = ("private_key_jwt+dpop", "private_key_jwt+mtls", "mtls+dpop", "mtls+mtls")
AUTH_METHODS = {"private_key_jwt": "private_key_jwt", "mtls": "self_signed_tls_client_auth"}
#: private_key_jwt signing algorithms of a pair's first and second client (FAPI2 5.4.1).
PKJWT_ALGS = ("PS256", "ES256")
HTTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class PeerClient:
    """One registered client and its credentials (the same files check.toml names)."""

    client_id: str
    #: ``client_auth+sender`` as in the check configuration, e.g. ``mtls+dpop``.
    pair: str
    redirect_uri: str
    scope: str
    #: Every client has a certificate (its own self-signed one).
    cert: ClientCert
    #: The private_key_jwt signing key; None for mTLS client authentication.
    key: SigningKey | None = None
    #: Message Signing: the key its request objects are signed with (its jwk_file): the
    #: private_key_jwt key, or for mTLS clients the certificate's (registered in x5c already).
    request_key: SigningKey | None = None

    @property
    def client_auth(self) -> str:
        return self.pair.split("+")[0]

    @property
    def sender(self) -> str:
        return self.pair.split("+")[1]


@dataclass
class FapiPeer:
    """The running provider, its resource server and the check configuration for both."""

    #: check.toml; every file it names is in the same directory.
    config_path: Path
    issuer: str
    #: The resource server's URL for the check ([resource] url): GET it with a token.
    resource_url: str
    #: The resource indicator (RFC 8707) the access tokens name in ``aud``.
    resource: str
    ca_file: Path
    #: The provider's discovery document (.well-known/openid-configuration).
    metadata: dict[str, Any]
    clients: tuple[PeerClient, ...]
    #: The origin of the listener that asks for client certificates (mtls_endpoint_aliases).
    mtls_origin: str
    guard: ResourceGuard
    _flow: NodeFlow = field(repr=False)

    def client(self, pair: str, number: int = 1) -> PeerClient:
        """The ``number``-th (1 or 2) client registered for ``pair`` (e.g. ``mtls+mtls``)."""
        return [c for c in self.clients if c.pair == pair][number - 1]

    def endpoint(self, name: str, client: PeerClient) -> str:
        """``name`` (e.g. ``token_endpoint``) as ``client`` must call it: the mTLS alias when the
        client authenticates or binds its tokens with its certificate (RFC 8705 5)."""
        if client.pair != "private_key_jwt+dpop":
            aliases = self.metadata["mtls_endpoint_aliases"]
            if name in aliases:
                return str(aliases[name])
        return str(self.metadata[name])

    def http(self, client: PeerClient | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client that trusts the dev CA (only), presenting ``client``'s certificate
        when given."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if client is not None:
            context.load_cert_chain(str(client.cert.cert_file), str(client.cert.key_file))
        return httpx.Client(verify=context, timeout=HTTP_TIMEOUT, **kwargs)

    def diagnostics(self) -> str:
        """For failure messages: the provider's exit status and stderr (its error events, with
        oidc-provider's error_detail), and the resource server's last decisions."""
        decisions = [
            f"{row['outcome']} {row['client_id'] or '-'} {row['error'] or ''} ({row['rule'] or ''})"
            for row in self.guard.decisions[-20:]
        ]
        return f"provider: {self._flow.diagnostics()}; resource server: {decisions}"


# -- the resource server ----------------------------------------------------------------------


@protected(require(scope=RESOURCE_SCOPE))
async def accounts(request: Request) -> Response:
    token = request.state.access_token
    return JSONResponse(
        {
            "accounts": ["DE89 3704 0044 0532 0130 00"],
            "sub": token.subject,
            "client": token.client_id,
            "sender_constraint": token.sender_constraint,
        }
    )


@contextmanager
def _running_resource(
    sock: Any, settings: ResourceSettings, tls: DevTLS, client_anchors: Path
) -> Iterator[ResourceGuard]:
    """The RS on an already bound socket: TLS 1.2+ with Corridor's suites, a client certificate
    asked for (CERT_OPTIONAL, verified against ``client_anchors``) for RFC 8705 3 bindings."""
    guard = ResourceGuard(settings)
    app = Starlette(routes=[Route(RESOURCE_PATH, accounts)])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(str(client_anchors))
    port = sock.getsockname()[1]
    server = uvicorn_server(
        ProtectedResource(app, guard), "127.0.0.1", port, context, log_level="warning", lifespan="off"
    )
    # uvicorn annotates int | None but hands it to asyncio.wait_for, which takes float seconds.
    server.config.timeout_graceful_shutdown = 0.2  # type: ignore[assignment]
    thread = threading.Thread(target=asyncio.run, args=(server.serve([sock]),), daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "the resource server did not start"
        time.sleep(0.02)
    try:
        yield guard
    finally:
        server.should_exit = True
        thread.join(10)


# -- credentials and the configuration file --------------------------------------------------


def _save_cert(directory: Path, name: str, made: ClientCert) -> ClientCert:
    """The certificate and key under the client's own names (the key 0600)."""
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(made.cert.public_bytes(serialization.Encoding.PEM))
    write_private(
        key_file,
        made.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    return ClientCert(made.cert, made.key, cert_file, key_file)


def _make_clients(
    directory: Path, pairs: tuple[str, ...] = PAIRS, *, message_signing: bool = False
) -> tuple[PeerClient, ...]:
    pki = TestPKI(directory / ".pki")
    clients: list[PeerClient] = []
    for pair in pairs:
        auth = pair.split("+")[0]
        for number in (1, 2):
            client_id = f"{pair.replace('private_key_jwt', 'pkjwt').replace('+', '-')}-{number}"
            cert = _save_cert(directory, client_id, pki.self_signed(f"CN={client_id},O=Corridor check peer"))
            key = None
            if auth == "private_key_jwt":
                key = SigningKey.generate(PKJWT_ALGS[number - 1])
                write_private(
                    directory / f"{client_id}.private.jwk.json", json.dumps(key.private_jwk()).encode()
                )
            request_key = None
            if message_signing:
                request_key = key or cert.signing_key()
                if key is None:
                    write_private(
                        directory / f"{client_id}.private.jwk.json",
                        json.dumps(request_key.private_jwk()).encode(),
                    )
            clients.append(
                PeerClient(client_id, pair, REDIRECT_URIS[number - 1], SCOPE, cert, key, request_key)
            )
    shutil.rmtree(directory / ".pki")
    return tuple(clients)


def _provider_clients(clients: tuple[PeerClient, ...]) -> list[dict[str, Any]]:
    """What oidc_provider_fapi.mjs registers: public keys only."""
    specs = []
    for client in clients:
        # mTLS client auth: the certificate's key, with the certificate in x5c (RFC 8705 2.2).
        jwk = client.key.public_jwk if client.key is not None else client.cert.jwk()
        specs.append(
            {
                "client_id": client.client_id,
                "redirect_uri": client.redirect_uri,
                "auth": AUTH_METHODS[client.client_auth],
                "sender": client.sender,
                "jwk": jwk,
            }
        )
    return specs


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of these ASCII values is a TOML basic string


def _write_config(
    path: Path,
    issuer: str,
    resource_url: str,
    clients: tuple[PeerClient, ...],
    *,
    message_signing: bool = False,
) -> None:
    lines = [
        "# corridor check against panva's oidc-provider (FAPI 2.0 profile), tests/check/peer.py",
        f"issuer = {_toml_string(issuer)}",
        f'plan = "{"message-signing" if message_signing else "security-profile"}"',
        'ca_file = "ca.pem"',
        "",
        "[resource]",
        f"url = {_toml_string(resource_url)}",
        'method = "GET"',
        "",
        "[login]",
        'method = "html-form"',
        f"username = {_toml_string(USERNAME)}",
        f"password = {_toml_string(PASSWORD)}",
    ]
    for client in clients:
        lines += [
            "",
            "[[clients]]",
            f"client_id = {_toml_string(client.client_id)}",
        ]
        if client.key is not None or client.request_key is not None:
            lines.append(f"jwk_file = {_toml_string(client.client_id + '.private.jwk.json')}")
        lines += [
            f"cert_file = {_toml_string(client.cert.cert_file.name)}",
            f"cert_key_file = {_toml_string(client.cert.key_file.name)}",
            f"redirect_uri = {_toml_string(client.redirect_uri)}",
            f"scope = {_toml_string(client.scope)}",
            f"variants = [{_toml_string(client.pair + ('+jar+jarm' if message_signing else ''))}]",
        ]
    path.write_text("\n".join(lines) + "\n")


# -- the whole thing ----------------------------------------------------------------------------


@contextmanager
def running_fapi_peer(
    tmp_path: Path,
    tls: DevTLS,
    *,
    pairs: tuple[str, ...] = PAIRS,
    message_signing: bool = False,
    fault: str | None = None,
) -> Iterator[FapiPeer]:
    """Start the provider and its resource server, write ``tmp_path/check.toml``; stop both on
    exit. ``tmp_path`` should be empty or new (it receives keys, certificates and the file).

    ``message_signing``: FAPI 2.0 Message Signing for every client (signed request objects
    required, JARM only; the configuration's plan is ``message-signing`` and its clients'
    variants ``pair+jar+jarm``). ``pairs``: only these client-auth x sender pairs get clients.
    ``fault``: one of the provider script's test-only FAULTS (a planted fault to be caught)."""
    directory = tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    clients = _make_clients(directory, pairs, message_signing=message_signing)
    ca_file = directory / "ca.pem"
    shutil.copyfile(tls.ca_file, ca_file)
    anchors = directory / "resource-client-anchors.pem"
    anchors.write_bytes(b"".join(c.cert.cert_file.read_bytes() for c in clients))

    # The RS's port first: the provider names the RS's identifier in every access token.
    sock = free_socket()
    resource = f"https://localhost:{sock.getsockname()[1]}"
    resource_url = resource + RESOURCE_PATH
    env = {
        **os.environ,
        "CORRIDOR_PEER_CERT": str(tls.cert_file),
        "CORRIDOR_PEER_KEY": str(tls.key_file),
        "CORRIDOR_PEER_TLS12_CIPHERS": TLS12_CIPHERS,
        "CORRIDOR_PEER_RESOURCE": resource,
        "CORRIDOR_PEER_RESOURCE_URL": resource_url,
        "CORRIDOR_PEER_RESOURCE_SCOPE": RESOURCE_SCOPE,
        "CORRIDOR_PEER_CLIENTS": json.dumps(_provider_clients(clients)),
        "CORRIDOR_PEER_MESSAGE_SIGNING": "1" if message_signing else "",
        "CORRIDOR_PEER_FAULT": fault or "",
    }
    flow = NodeFlow(str(SCRIPT), env)
    try:
        ready = flow.read(timeout=STARTUP_TIMEOUT)
        assert ready.get("ready") is True, ready
        issuer = str(ready["issuer"])
        context = ssl.create_default_context(cafile=str(ca_file))
        with httpx.Client(verify=context, timeout=HTTP_TIMEOUT) as http:
            response = http.get(issuer + "/.well-known/openid-configuration")
        assert response.status_code == 200, f"discovery: {response.status_code} {flow.diagnostics()}"
        metadata = response.json()
        assert metadata["issuer"] == issuer, metadata
        settings = ResourceSettings(
            resource=resource,
            authorization_servers=(issuer,),
            public_url=resource,
            resource_name="oidc-provider peer's resource",
            scopes_supported=(RESOURCE_SCOPE,),
            ca_file=str(ca_file),
        )
        config_path = directory / CONFIG_NAME
        _write_config(config_path, issuer, resource_url, clients, message_signing=message_signing)
        with _running_resource(sock, settings, tls, anchors) as guard:
            yield FapiPeer(
                config_path=config_path,
                issuer=issuer,
                resource_url=resource_url,
                resource=resource,
                ca_file=ca_file,
                metadata=metadata,
                clients=clients,
                mtls_origin=f"https://localhost:{ready['mtls_port']}",
                guard=guard,
                _flow=flow,
            )
    finally:
        flow.close()
        sock.close()
