"""Smoke test of the check's certified peer (tests/check/peer.py), without corridor check: with
plain httpx and corridor.core, every client-authentication x sender pair gets through the flow
the OIDF suite runs (PAR with the suite's parameters, the front channel with response_type,
scope and redirect_uri beside client_id and request_uri, the development login and consent,
the token request) to a sender-constrained JWT access token the resource server accepts with
its proof and refuses without it. The check configuration file describes exactly these clients."""

from __future__ import annotations

import html
import re
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from corridor.check.config import ALL_VARIANTS, load_config
from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey, read_header, verify_with_keys
from corridor.core.pkce import new_verifier, s256_challenge
from corridor.core.randomness import new_secret_token
from corridor.core.x509 import thumbprint_s256
from corridor.transport.tls import DevTLS
from tests.check.peer import (
    PAIRS,
    PASSWORD,
    RESOURCE_SCOPE,
    USERNAME,
    FapiPeer,
    PeerClient,
    running_fapi_peer,
)
from tests.pki import TestPKI
from tests.support import decode_jwt

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_HOPS = 12
_FORM_ACTION = re.compile(r'<form[^>]*\baction="([^"]+)"')


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS) -> Iterator[FapiPeer]:
    with running_fapi_peer(tmp_path_factory.mktemp("fapi-peer"), tls) as running:
        yield running


def fail(step: str, response: httpx.Response, peer: FapiPeer) -> AssertionError:
    return AssertionError(f"{step}: HTTP {response.status_code} {response.text[:1500]}; {peer.diagnostics()}")


@dataclass
class Flow:
    """One client's run through the suite's happy path, as the check will run it."""

    peer: FapiPeer
    client: PeerClient
    openid: bool = True
    #: RFC 8707 resource in PAR and the token request (the suite sends none).
    resource: str | None = None
    dpop_key: SigningKey = field(default_factory=lambda: SigningKey.generate("ES256"))
    nonce: str | None = None
    retries: dict[str, int] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        scopes = self.client.scope.split()
        return " ".join(scopes if self.openid else [s for s in scopes if s != "openid"])

    def assertion(self, *, skew: int = 0, aud: Any = None) -> str:
        """private_key_jwt (RFC 7523 3) with aud = the issuer identifier (FAPI2 5.3.2.1-8)."""
        assert self.client.key is not None
        now = int(time.time()) + skew
        claims = {
            "iss": self.client.client_id,
            "sub": self.client.client_id,
            "aud": self.peer.issuer if aud is None else aud,
            "jti": new_secret_token(),
            "iat": now,
            "nbf": now,
            "exp": now + 60,
        }
        return self.client.key.sign(claims, "JWT")

    def authentication(self) -> dict[str, str]:
        if self.client.client_auth == "private_key_jwt":
            return {"client_assertion_type": JWT_BEARER, "client_assertion": self.assertion()}
        return {"client_id": self.client.client_id}  # RFC 8705 2: the certificate authenticates

    def post(self, step: str, endpoint: str, form: dict[str, str]) -> httpx.Response:
        """POST to the endpoint as this client calls it (the mTLS alias with its certificate
        where needed); with DPoP, a proof, and one retry on use_dpop_nonce (RFC 9449 8)."""
        url = self.peer.endpoint(endpoint, self.client)
        uses_cert = self.client.pair != "private_key_jwt+dpop"
        with self.peer.http(self.client if uses_cert else None) as http:
            for _ in range(2):
                headers = {}
                if self.client.sender == "dpop":
                    headers["DPoP"] = make_proof(self.dpop_key, "POST", url, nonce=self.nonce)
                response = http.post(url, data={**form, **self.authentication()}, headers=headers)
                if "dpop-nonce" in response.headers:
                    self.nonce = response.headers["dpop-nonce"]
                if response.status_code == 400 and response.json().get("error") == "use_dpop_nonce":
                    self.retries[step] = self.retries.get(step, 0) + 1
                    continue
                return response
        raise fail(f"{step} after a DPoP nonce retry", response, self.peer)

    def par(self, verifier: str, state: str, nonce: str | None) -> httpx.Response:
        form = {
            "client_id": self.client.client_id,
            "response_type": "code",
            "redirect_uri": self.client.redirect_uri,
            "scope": self.scope,
            "state": state,
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if nonce is not None:
            form["nonce"] = nonce
        if self.resource is not None:
            form["resource"] = self.resource
        return self.post("par", "pushed_authorization_request_endpoint", form)

    def user(self, request_uri: str) -> str:
        """The browser: the front channel as the suite sends it, then the development login
        (any name, any password) and consent pages; returns the URL it is sent back to."""
        query = {
            "client_id": self.client.client_id,
            "request_uri": request_uri,
            "response_type": "code",
            "scope": self.scope,
            "redirect_uri": self.client.redirect_uri,
        }
        with self.peer.http(follow_redirects=False) as browser:
            response = browser.get(self.peer.metadata["authorization_endpoint"], params=query)
            for _ in range(MAX_HOPS):
                if response.status_code in (302, 303):
                    location = urljoin(str(response.url), response.headers["location"])
                    if urlsplit(location).netloc == "client.example":
                        return location
                    assert location.startswith(self.peer.issuer + "/"), (
                        f"redirect off the provider: {location}"
                    )
                    response = browser.get(location)
                elif response.status_code == 200 and 'name="prompt" value="login"' in response.text:
                    response = submit(
                        browser, response, {"prompt": "login", "login": USERNAME, "password": PASSWORD}
                    )
                elif response.status_code == 200 and 'name="prompt" value="consent"' in response.text:
                    response = submit(browser, response, {"prompt": "consent"})
                else:
                    raise fail("authorization (user interaction)", response, self.peer)
        raise AssertionError(f"no redirect to the client after {MAX_HOPS} steps")

    def run(self) -> dict[str, Any]:
        """PAR, front channel, token request; returns the token response."""
        verifier, state = new_verifier(), new_secret_token()
        nonce = new_secret_token() if self.openid else None
        par = self.par(verifier, state, nonce)
        assert par.status_code == 201, fail("PAR", par, self.peer)
        assert par.json()["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
        callback = self.user(par.json()["request_uri"])
        assert callback.startswith(self.client.redirect_uri), callback
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        assert "code" in params, callback
        assert params["state"] == state and params["iss"] == self.peer.issuer, callback  # RFC 9207
        form = {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": self.client.redirect_uri,
            "code_verifier": verifier,
        }
        if self.resource is not None:
            form["resource"] = self.resource
        token = self.post("token", "token_endpoint", form)
        assert token.status_code == 200, fail("token", token, self.peer)
        body = token.json()
        assert isinstance(body, dict)
        if nonce is not None:
            assert decode_jwt(body["id_token"])[1]["nonce"] == nonce
        return body


def submit(browser: httpx.Client, page: httpx.Response, fields: dict[str, str]) -> httpx.Response:
    match = _FORM_ACTION.search(page.text)
    assert match, page.text
    return browser.post(urljoin(str(page.url), html.unescape(match.group(1))), data=fields)


def call_resource(
    peer: FapiPeer,
    client: PeerClient,
    token: str | None,
    *,
    dpop_key: SigningKey | None = None,
    cert_of: PeerClient | None = None,
    query: str = "",
) -> httpx.Response:
    """GET the resource; with a DPoP key, the proof (and the RS's nonce on its request,
    RFC 9449 9); ``cert_of``: whose certificate the TLS connection presents."""
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = f"{'DPoP' if client.sender == 'dpop' else 'Bearer'} {token}"
    with peer.http(cert_of) as http:
        nonce = None
        for _ in range(2):
            if dpop_key is not None:
                headers["DPoP"] = make_proof(
                    dpop_key, "GET", peer.resource_url, nonce=nonce, access_token=token
                )
            response = http.get(peer.resource_url + query, headers=headers)
            if response.status_code == 401 and 'error="use_dpop_nonce"' in response.headers.get(
                "www-authenticate", ""
            ):
                nonce = response.headers["dpop-nonce"]
                continue
            return response
    return response


# -- tests --------------------------------------------------------------------------------------


def test_discovery_says_fapi2_with_par_required(peer: FapiPeer) -> None:
    metadata = peer.metadata
    assert metadata["issuer"] == peer.issuer
    assert metadata["require_pushed_authorization_requests"] is True
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["token_endpoint_auth_methods_supported"] == [
        "private_key_jwt",
        "self_signed_tls_client_auth",
    ]
    assert set(metadata["token_endpoint_auth_signing_alg_values_supported"]) == {"ES256", "PS256", "EdDSA"}
    assert set(metadata["dpop_signing_alg_values_supported"]) == {"ES256", "PS256", "EdDSA"}
    assert metadata["tls_client_certificate_bound_access_tokens"] is True
    aliases = metadata["mtls_endpoint_aliases"]
    assert set(aliases) == {"pushed_authorization_request_endpoint", "token_endpoint", "userinfo_endpoint"}
    assert all(url.startswith(peer.mtls_origin + "/") for url in aliases.values())


def test_the_fapi2_profile_is_on(peer: FapiPeer) -> None:
    """Only the FAPI 2.0 profile makes oidc-provider refuse an assertion whose aud is the
    endpoint's URL or an array (FAPI2 5.3.2.1-8: the issuer identifier, as a string); without
    the profile both are accepted. PKCE is required and a request outside PAR is refused."""
    flow = Flow(peer, peer.client("private_key_jwt+dpop"))
    par_url = peer.metadata["pushed_authorization_request_endpoint"]
    form = {
        "client_id": flow.client.client_id,
        "response_type": "code",
        "redirect_uri": flow.client.redirect_uri,
        "scope": flow.scope,
        "code_challenge": s256_challenge(new_verifier()),
        "code_challenge_method": "S256",
        "client_assertion_type": JWT_BEARER,
    }
    with peer.http() as http:
        for aud in (par_url, peer.metadata["token_endpoint"], [peer.issuer]):
            response = http.post(par_url, data={**form, "client_assertion": flow.assertion(aud=aud)})
            assert response.status_code == 401, response.text
            assert response.json()["error"] == "invalid_client"
        # Positive control: the issuer as a string.
        response = http.post(par_url, data={**form, "client_assertion": flow.assertion()})
        assert response.status_code == 201, fail("PAR", response, peer)
        # PKCE is required (FAPI2 5.3.2.2-5).
        unchallenged = {k: v for k, v in form.items() if not k.startswith("code_challenge")}
        response = http.post(par_url, data={**unchallenged, "client_assertion": flow.assertion()})
        assert response.status_code == 400 and response.json()["error"] == "invalid_request", response.text
        # No authorization request without PAR (FAPI2 5.3.2.2-3).
        front = {k: v for k, v in form.items() if not k.startswith("client_assertion")}
        response = http.get(peer.metadata["authorization_endpoint"], params=front, follow_redirects=False)
    assert response.status_code == 303
    error = parse_qs(urlsplit(response.headers["location"]).query)
    assert error["error"] == ["invalid_request"] and error["iss"] == [peer.issuer]
    assert response.headers["strict-transport-security"].startswith("max-age=")  # FAPI2 5.2.3-1


def test_the_front_channel_may_also_carry_only_client_id_and_request_uri(peer: FapiPeer) -> None:
    """The suite's front channel repeats response_type, scope and redirect_uri (Flow.user); one
    module sends only client_id and request_uri (RFC 9126 4): both reach the login page."""
    flow = Flow(peer, peer.client("mtls+dpop", 2))
    response = flow.par(new_verifier(), new_secret_token(), new_secret_token())
    assert response.status_code == 201, fail("PAR", response, peer)
    query = {"client_id": flow.client.client_id, "request_uri": response.json()["request_uri"]}
    with peer.http(follow_redirects=False) as browser:
        response = browser.get(peer.metadata["authorization_endpoint"], params=query)
    assert response.status_code == 303 and response.headers["location"].startswith("/interaction/"), (
        response.text
    )


@pytest.mark.parametrize("origin", ["issuer", "mtls_origin", "resource"])
def test_tls_offers_only_recommended_suites(peer: FapiPeer, origin: str) -> None:
    """FAPI2 5.2.2 / RFC 9325 4.2: TLS 1.2 with ECDHE and AEAD suites only (a CBC suite is
    refused, a GCM one is the positive control), on all three listeners."""
    port = urlsplit(getattr(peer, origin)).port
    assert port is not None

    def handshake(ciphers: str) -> str:
        context = ssl.create_default_context(cafile=str(peer.ca_file))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls_socket,
        ):
            cipher = tls_socket.cipher()
            assert cipher is not None
            return cipher[0]

    assert handshake("ECDHE-ECDSA-AES128-GCM-SHA256") == "ECDHE-ECDSA-AES128-GCM-SHA256"
    with pytest.raises(ssl.SSLError):
        handshake("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA")


def test_the_resource_server_refuses_a_foreign_certificate_at_tls(
    peer: FapiPeer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Its TLS layer trusts the eight clients' certificates only: another self-signed one ends
    the connection before any HTTP (with TLS 1.3, on the first read)."""
    stranger = TestPKI(tmp_path_factory.mktemp("stranger")).self_signed("CN=stranger")
    client = peer.client("mtls+mtls")
    foreign = PeerClient("stranger", client.pair, client.redirect_uri, client.scope, stranger)
    with pytest.raises(httpx.TransportError):
        call_resource(peer, client, "x", cert_of=foreign)
    assert call_resource(peer, client, "x", cert_of=client).status_code == 401  # positive control


def test_the_clock_window_is_the_suites(peer: FapiPeer) -> None:
    """FAPI2 5.3.2.1-13: an assertion 8 s in the future is accepted (the suite's
    ...nbf-8-seconds-in-the-future-is-accepted), one over 60 s refused (...over-60...-fails)."""
    flow = Flow(peer, peer.client("private_key_jwt+dpop", 2))
    par_url = peer.metadata["pushed_authorization_request_endpoint"]
    form = {
        "client_id": flow.client.client_id,
        "response_type": "code",
        "redirect_uri": flow.client.redirect_uri,
        "scope": flow.scope,
        "code_challenge": s256_challenge(new_verifier()),
        "code_challenge_method": "S256",
        "client_assertion_type": JWT_BEARER,
    }
    with peer.http() as http:
        ahead = http.post(par_url, data={**form, "client_assertion": flow.assertion(skew=8)})
        assert ahead.status_code == 201, ahead.text
        far = http.post(par_url, data={**form, "client_assertion": flow.assertion(skew=61)})
        assert far.status_code == 401 and far.json()["error"] == "invalid_client", far.text


def test_the_configuration_file_describes_the_clients(peer: FapiPeer) -> None:
    config = load_config(peer.config_path)
    assert config.issuer == peer.issuer
    assert config.ca_file == peer.ca_file.resolve()
    assert config.resource is not None and config.resource.url == peer.resource_url
    assert (config.login.method, config.login.username, config.login.password) == (
        "html-form",
        USERNAME,
        PASSWORD,
    )
    assert {c.client_id for c in config.clients} == {c.client_id for c in peer.clients}
    for variant in ALL_VARIANTS:  # two clients per variant, with different credentials
        first, second = config.clients_for(variant)
        assert first.redirect_uri == "https://client.example/cb"
        assert second.redirect_uri == "https://client.example/cb?dummy1=lorem&dummy2=ipsum"
        assert first.cert_file != second.cert_file
        assert first.cert_file is not None and second.cert_file is not None
        assert first.cert_file.read_bytes() != second.cert_file.read_bytes()
        if variant.client_auth == "private_key_jwt":
            assert first.jwk is not None and second.jwk is not None
            assert (first.jwk["alg"], second.jwk["alg"]) == ("PS256", "ES256")
        for client in (first, second):
            assert client.scope == ("openid", "offline_access", RESOURCE_SCOPE)
    for path in peer.config_path.parent.glob("*.key"):
        assert path.stat().st_mode & 0o077 == 0, path


@pytest.mark.parametrize("pair", PAIRS)
def test_each_pair_gets_a_sender_constrained_jwt_for_the_resource(peer: FapiPeer, pair: str) -> None:
    """The first client of the pair with openid, the second as plain OAuth (no openid scope)."""
    for number, openid in ((1, True), (2, False)):
        client = peer.client(pair, number)
        flow = Flow(peer, client, openid=openid)
        body = flow.run()
        if client.sender == "dpop":
            assert flow.retries.get("par") == 1  # the provider demands its DPoP nonce (RFC 9449 8)
        assert ("id_token" in body) is openid
        assert isinstance(body.get("refresh_token"), str)
        token = body["access_token"]
        header = read_header(token)
        assert header["typ"] == "at+jwt"
        with peer.http() as http:
            jwks = http.get(peer.metadata["jwks_uri"]).json()["keys"]
        claims = verify_with_keys(token, header, jwks)
        assert claims["iss"] == peer.issuer and claims["aud"] == peer.resource
        assert claims["client_id"] == client.client_id and claims["sub"] == USERNAME
        assert claims["scope"] == RESOURCE_SCOPE
        other = peer.client(pair, 3 - number)
        if client.sender == "dpop":
            assert body["token_type"] == "DPoP"
            assert claims["cnf"] == {"jkt": flow.dpop_key.thumbprint()}
            ok = call_resource(peer, client, token, dpop_key=flow.dpop_key)
            wrong_key = call_resource(peer, client, token, dpop_key=SigningKey.generate("ES256"))
            assert wrong_key.status_code == 401, wrong_key.text
            without = call_resource(peer, client, token)
        else:
            assert body["token_type"] == "Bearer"
            assert claims["cnf"] == {"x5t#S256": thumbprint_s256(client.cert.cert)}
            ok = call_resource(peer, client, token, cert_of=client)
            wrong_cert = call_resource(peer, client, token, cert_of=other)
            assert wrong_cert.status_code == 401, wrong_cert.text
            without = call_resource(peer, client, token)
        assert ok.status_code == 200, ok.text
        assert ok.json()["client"] == client.client_id and ok.json()["sender_constraint"] == client.sender
        assert without.status_code == 401, without.text
        assert call_resource(peer, client, None).status_code == 401
        in_query = call_resource(peer, client, None, query=f"?access_token={token}", cert_of=client)
        assert in_query.status_code == 401, in_query.text  # FAPI2 5.3.4-2: the header only
        assert 'error="invalid_request"' in in_query.headers["www-authenticate"]


def test_a_client_may_name_the_resource_by_its_url(peer: FapiPeer) -> None:
    """RFC 8707: the suite sends no resource (every token defaults to the resource server's
    identifier); a client that does may name it by the URL it calls; anything else is
    invalid_target."""
    flow = Flow(peer, peer.client("mtls+mtls", 2), resource=peer.resource_url)
    body = flow.run()
    assert decode_jwt(body["access_token"])[1]["aud"] == peer.resource
    elsewhere = Flow(peer, flow.client, resource="https://elsewhere.example/api")
    response = elsewhere.par(new_verifier(), new_secret_token(), None)
    assert response.status_code == 400 and response.json()["error"] == "invalid_target", response.text


def test_refresh_tokens_are_not_rotated(peer: FapiPeer) -> None:
    """FAPI2 5.3.2.1-9: the refresh grant answers without a new refresh token (or the same), and
    the refresh token works again."""
    flow = Flow(peer, peer.client("private_key_jwt+dpop"))
    refresh_token = flow.run()["refresh_token"]
    for _ in range(2):
        response = flow.post(
            "refresh", "token_endpoint", {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )
        assert response.status_code == 200, fail("refresh", response, peer)
        assert response.json().get("refresh_token", refresh_token) == refresh_token
        claims = decode_jwt(response.json()["access_token"])[1]
        assert claims["aud"] == peer.resource and claims["cnf"] == {"jkt": flow.dpop_key.thumbprint()}


def test_files_stay_beside_the_configuration(peer: FapiPeer) -> None:
    directory = peer.config_path.parent
    assert peer.ca_file.parent == directory
    names = {p.name for p in directory.iterdir()}
    for client in peer.clients:
        assert {f"{client.client_id}.pem", f"{client.client_id}.key"} <= names
        assert (f"{client.client_id}.private.jwk.json" in names) is (client.client_auth == "private_key_jwt")
    assert Path(directory / "check.toml") == peer.config_path
