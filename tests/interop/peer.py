"""panva's oidc-provider (a certified FAPI 2.0 authorization server, Node) as a test peer that
issues DPoP-bound JWT access tokens, for testing Corridor's resource-server side against tokens
from a certified implementation.

``running_oidc_provider(tls)`` starts tests/interop/oidc_provider_server.mjs over HTTPS on
127.0.0.1 (the dev CA's ``localhost`` certificate) and yields an :class:`OidcProviderPeer`;
the ``oidc_provider`` fixture in tests/interop/conftest.py wraps it (module scope). Outside
tests/interop, write a fixture of your own around ``running_oidc_provider``.

``OidcProviderPeer.dpop_token()`` plays the client and the user in plain httpx: PAR with
private_key_jwt (aud = the issuer identifier), PKCE S256 and a DPoP proof; oidc-provider's
development login and consent pages; the code exchange with ``resource`` -> a DPoP-bound JWT
access token (typ at+jwt, cnf.jkt, aud = the resource). The provider requires a DPoP nonce at
PAR and token; the flow answers ``use_dpop_nonce`` with one retry.

The provider also serves userinfo, and issues a (never rotated) refresh token to a client that
asks for ``openid offline_access`` with ``prompt=consent``.

``running_oidc_provider(tls, mtls_jwk=cert.jwk())`` turns on the mTLS mode (RFC 8705): a second
static client, ``peer.mtls_client_id``, authenticating with ``self_signed_tls_client_auth`` (the
certificate in ``mtls_jwk["x5c"]``) and receiving certificate-bound access tokens. The PAR, token
and userinfo endpoints are also served on a second listener that asks for a client certificate
(``peer.mtls_origin``), published as ``mtls_endpoint_aliases``; the issuer's own listener never
asks for one. Without ``mtls_jwk`` nothing of this exists and the provider is as before.

``running_oidc_provider(tls, message_signing=True)`` turns on the Message Signing mode (FAPI 2.0
Message Signing): request objects (JAR) and JWT response modes (JARM) are enabled, and a third
static client, ``peer.ms_client_id`` (private_key_jwt with ``peer.ms_client_key``, DPoP-bound
tokens), must push a signed request object (``require_signed_request_object``; an unsigned PAR is
refused with ``invalid_request``) and may only ask for ``response_mode=jwt`` (JARM signed with
``jarm_alg``). Introspection with signed JWT responses (RFC 9701) is on too; every client gets
them when it asks (``Accept: application/token-introspection+jwt``), JSON otherwise. A fourth
static client, ``peer.rs_client_id`` (private_key_jwt with ``peer.rs_client_key``, no grant
types: it can get no token), is a resource server's introspection client, signed answers with
ES256. The first client is unchanged in this mode.

``running_oidc_provider(tls, access_token_format="opaque")``: the resource's access tokens are
opaque handles instead of RFC 9068 JWTs, for a resource server that validates by introspection
(oidc-provider refuses to introspect its own JWT access tokens: 400 unsupported_token_type).
"""

from __future__ import annotations

import html
import json
import os
import re
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey
from corridor.core.pkce import new_verifier, s256_challenge
from corridor.core.randomness import new_secret_token
from corridor.transport.tls import DevTLS
from tests.interop.node import STARTUP_TIMEOUT, NodeFlow

HERE = Path(__file__).parent
SCRIPT = HERE / "oidc_provider_server.mjs"
RESOURCE = "https://rs.example.org/api"
SCOPE = "accounts"
REDIRECT_URI = "https://client.example.org/cb"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
HTTP_TIMEOUT = 10.0
#: Redirects and pages between the authorization request and the callback (login, consent).
MAX_HOPS = 12

_FORM_ACTION = re.compile(r'<form[^>]*\baction="([^"]+)"')


class PeerFlowError(AssertionError):
    """The client flow against oidc-provider went wrong (with the response that did it)."""


def _fail(step: str, response: httpx.Response) -> PeerFlowError:
    return PeerFlowError(f"{step}: HTTP {response.status_code} {response.text[:2000]}")


@dataclass
class OidcProviderPeer:
    """A running oidc-provider with one static private_key_jwt client."""

    issuer: str
    ca_file: Path
    resource: str
    scope: str
    client_id: str
    client_key: SigningKey
    redirect_uri: str
    metadata: dict[str, Any]
    _flow: NodeFlow = field(repr=False)
    #: mTLS mode only: the self_signed_tls_client_auth client and the aliases' origin.
    mtls_client_id: str | None = None
    mtls_origin: str | None = None
    #: Message Signing mode only: the client that must sign its requests and gets JARM.
    ms_client_id: str | None = None
    ms_client_key: SigningKey | None = None
    #: Message Signing mode only: the resource server's introspection client (no grants).
    rs_client_id: str | None = None
    rs_client_key: SigningKey | None = None
    #: ``use_dpop_nonce`` retries per step of the last ``dpop_token()`` run, e.g. ``{"par": 1}``.
    last_retries: dict[str, int] = field(default_factory=dict)

    @property
    def jwks_uri(self) -> str:
        return str(self.metadata["jwks_uri"])

    def http(self, **kwargs: Any) -> httpx.Client:
        """An httpx client that trusts the dev CA (and nothing else)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return httpx.Client(verify=context, timeout=HTTP_TIMEOUT, **kwargs)

    def jwks(self) -> list[dict[str, Any]]:
        """The provider's public signing keys, fetched from its jwks_uri."""
        with self.http() as http:
            response = http.get(self.jwks_uri)
        if response.status_code != 200:
            raise _fail("jwks", response)
        keys = response.json()["keys"]
        assert isinstance(keys, list)
        return keys

    def dpop_token(
        self, dpop_key: SigningKey | None = None, *, username: str = "alice"
    ) -> tuple[str, SigningKey]:
        """Run the whole FAPI 2.0 flow and return ``(access_token, dpop_key)``: a DPoP-bound
        JWT access token for ``self.resource`` (``sub`` = ``username``) and the key whose
        thumbprint is its ``cnf.jkt``. A new key is generated unless ``dpop_key`` is given
        (ES256 or EdDSA, the provider's dpop_signing_alg_values_supported)."""
        key = dpop_key or SigningKey.generate("ES256")
        with self.http(follow_redirects=False) as http:
            flow = _Flow(self, http, key)
            try:
                return flow.run(username), key
            finally:
                self.last_retries = flow.retries

    def diagnostics(self) -> str:
        return self._flow.diagnostics()


class _Flow:
    """One run of the client (PAR, user, token) with the provider's DPoP nonce kept."""

    def __init__(
        self,
        peer: OidcProviderPeer,
        http: httpx.Client,
        dpop_key: SigningKey,
        *,
        client_id: str | None = None,
        client_key: SigningKey | None = None,
    ) -> None:
        self.peer = peer
        self.http = http
        self.dpop_key = dpop_key
        #: The authenticating client: the first static client unless another is named.
        self.client_id = client_id or peer.client_id
        self.client_key = client_key or peer.client_key
        self.nonce: str | None = None
        self.retries: dict[str, int] = {}

    def assertion(self) -> str:
        """private_key_jwt (RFC 7523) with aud = the issuer identifier (FAPI2 5.3.2.1-8)."""
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.peer.issuer,
            "jti": new_secret_token(),
            "iat": now,
            "nbf": now,
            "exp": now + 60,
        }
        return self.client_key.sign(claims, "JWT")

    def post_with_dpop(self, step: str, url: str, form: dict[str, str]) -> httpx.Response:
        """POST with client authentication and a DPoP proof; on ``use_dpop_nonce`` retry once
        with the nonce (and a fresh assertion and proof: both are one-time)."""
        for _ in range(2):
            body = {**form, "client_assertion_type": JWT_BEARER, "client_assertion": self.assertion()}
            proof = make_proof(self.dpop_key, "POST", url, nonce=self.nonce)
            response = self.http.post(url, data=body, headers={"DPoP": proof})
            if "dpop-nonce" in response.headers:
                self.nonce = response.headers["dpop-nonce"]
            if response.status_code == 400 and response.json().get("error") == "use_dpop_nonce":
                self.retries[step] = self.retries.get(step, 0) + 1
                continue
            return response
        raise _fail(f"{step} (after a DPoP nonce retry)", response)

    def run(self, username: str) -> str:
        metadata = self.peer.metadata
        verifier = new_verifier()
        state = new_secret_token()

        par = self.post_with_dpop(
            "par",
            metadata["pushed_authorization_request_endpoint"],
            {
                "client_id": self.client_id,
                "response_type": "code",
                "redirect_uri": self.peer.redirect_uri,
                "scope": self.peer.scope,
                "resource": self.peer.resource,
                "state": state,
                "code_challenge": s256_challenge(verifier),
                "code_challenge_method": "S256",
            },
        )
        if par.status_code != 201:
            raise _fail("PAR", par)
        request_uri = par.json()["request_uri"]

        callback = self.user(
            metadata["authorization_endpoint"],
            {"client_id": self.client_id, "request_uri": request_uri},
            username,
        )
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        if "code" not in params:
            raise PeerFlowError(f"authorization error response: {callback}")
        if params.get("state") != state or params.get("iss") != self.peer.issuer:
            raise PeerFlowError(f"state or iss mismatch in the authorization response: {callback}")

        token = self.post_with_dpop(
            "token",
            metadata["token_endpoint"],
            {
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": self.peer.redirect_uri,
                "code_verifier": verifier,
                "resource": self.peer.resource,
            },
        )
        if token.status_code != 200:
            raise _fail("token", token)
        body = token.json()
        if body.get("token_type") != "DPoP":
            raise PeerFlowError(f"token_type is not DPoP: {body}")
        access_token = body["access_token"]
        assert isinstance(access_token, str)
        return access_token

    def user(self, authorization_endpoint: str, query: dict[str, str], username: str) -> str:
        """The user agent: follow the provider's redirects, fill in its development login
        page (any login name) and consent page, and return the callback URL."""
        response = self.http.get(authorization_endpoint, params=query)
        for _ in range(MAX_HOPS):
            if response.status_code in (302, 303):
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(self.peer.redirect_uri + "?"):
                    return location
                if not location.startswith(self.peer.issuer + "/"):
                    raise PeerFlowError(f"redirect off the provider: {location}")
                response = self.http.get(location)
            elif response.status_code == 200 and 'name="prompt" value="login"' in response.text:
                response = self.submit(response, {"prompt": "login", "login": username, "password": "any"})
            elif response.status_code == 200 and 'name="prompt" value="consent"' in response.text:
                response = self.submit(response, {"prompt": "consent"})
            else:
                raise _fail("authorization (user interaction)", response)
        raise PeerFlowError(f"no callback after {MAX_HOPS} steps")

    def submit(self, page: httpx.Response, fields: dict[str, str]) -> httpx.Response:
        match = _FORM_ACTION.search(page.text)
        if not match:
            raise _fail("no form on the interaction page", page)
        return self.http.post(urljoin(str(page.url), html.unescape(match.group(1))), data=fields)


@contextmanager
def running_oidc_provider(
    tls: DevTLS,
    *,
    resource: str = RESOURCE,
    scope: str = SCOPE,
    access_token_alg: str = "ES256",
    client_key: SigningKey | None = None,
    mtls_jwk: dict[str, Any] | None = None,
    message_signing: bool = False,
    ms_client_key: SigningKey | None = None,
    jarm_alg: str = "ES256",
    access_token_format: str = "jwt",
    jwt_introspection: bool = True,
) -> Iterator[OidcProviderPeer]:
    """Start oidc-provider (FAPI 2.0 profile) over HTTPS with ``tls``'s certificate; stop it on exit.

    ``access_token_alg`` (ES256, PS256 or EdDSA) is the JWS alg of the access tokens.
    ``mtls_jwk`` (a public JWK with the client's self-signed certificate in ``x5c``, e.g.
    ``pki.self_signed(...).jwk()``) turns on the mTLS mode described above. ``message_signing``
    turns on the Message Signing mode (``ms_client_key``: the MS client's key, ES256 by default;
    ``jarm_alg``: the provider's JARM alg for it) and registers the resource server's
    introspection client; ``jwt_introspection=False`` leaves RFC 9701 off in that mode (every
    introspection answer is JSON). ``access_token_format``: ``jwt`` (RFC 9068) or ``opaque``."""
    client_key = client_key or SigningKey.generate("ES256")
    client_id = "corridor-rs-peer-" + new_secret_token()[:12]
    mtls_client_id = "corridor-mtls-peer-" + new_secret_token()[:12] if mtls_jwk else None
    ms_client_id = "corridor-ms-peer-" + new_secret_token()[:12] if message_signing else None
    rs_client_id = "corridor-rs-introspection-" + new_secret_token()[:12] if message_signing else None
    rs_client_key = SigningKey.generate("ES256") if message_signing else None
    if message_signing:
        ms_client_key = ms_client_key or SigningKey.generate("ES256")
    env = {
        **os.environ,
        "CORRIDOR_PEER_PORT": "0",
        "CORRIDOR_PEER_CERT": str(tls.cert_file),
        "CORRIDOR_PEER_KEY": str(tls.key_file),
        "CORRIDOR_PEER_RESOURCE": resource,
        "CORRIDOR_PEER_SCOPE": scope,
        "CORRIDOR_PEER_AT_ALG": access_token_alg,
        "CORRIDOR_PEER_AT_FORMAT": access_token_format,
        "CORRIDOR_CLIENT_ID": client_id,
        "CORRIDOR_CLIENT_JWK": json.dumps(client_key.public_jwk),
        "CORRIDOR_REDIRECT_URI": REDIRECT_URI,
    }
    if mtls_jwk:
        assert "d" not in mtls_jwk and mtls_jwk.get("x5c"), "a public JWK with the certificate in x5c"
        env["CORRIDOR_MTLS_CLIENT_ID"] = str(mtls_client_id)
        env["CORRIDOR_MTLS_CLIENT_JWK"] = json.dumps(mtls_jwk)
    if ms_client_key is not None and message_signing:
        env["CORRIDOR_MS_CLIENT_ID"] = str(ms_client_id)
        env["CORRIDOR_MS_CLIENT_JWK"] = json.dumps(ms_client_key.public_jwk)
        env["CORRIDOR_MS_JARM_ALG"] = jarm_alg
        env["CORRIDOR_PEER_JWT_INTROSPECTION"] = "1" if jwt_introspection else "0"
    if rs_client_id and rs_client_key:
        env["CORRIDOR_RS_CLIENT_ID"] = rs_client_id
        env["CORRIDOR_RS_CLIENT_JWK"] = json.dumps(rs_client_key.public_jwk)
    flow = NodeFlow(SCRIPT.name, env)
    try:
        ready = flow.read(timeout=STARTUP_TIMEOUT)
        assert ready.get("ready") is True, ready
        issuer = ready["issuer"]
        peer = OidcProviderPeer(
            issuer=issuer,
            ca_file=tls.ca_file,
            resource=resource,
            scope=scope,
            client_id=client_id,
            client_key=client_key,
            redirect_uri=REDIRECT_URI,
            metadata={},
            _flow=flow,
            mtls_client_id=mtls_client_id,
            mtls_origin=f"https://localhost:{ready['mtls_port']}" if mtls_jwk else None,
            ms_client_id=ms_client_id,
            ms_client_key=ms_client_key if message_signing else None,
            rs_client_id=rs_client_id,
            rs_client_key=rs_client_key,
        )
        with peer.http() as http:
            response = http.get(issuer + "/.well-known/openid-configuration")
        if response.status_code != 200:
            raise _fail("discovery", response)
        peer.metadata = response.json()
        assert peer.metadata["issuer"] == issuer, peer.metadata
        yield peer
    finally:
        flow.close()
