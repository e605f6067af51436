"""Mutual TLS (RFC 8705) through real TLS sockets: tls_client_auth, self_signed_tls_client_auth,
certificate-bound tokens, endpoint aliases and the proxy header source. Rows M1-M8, AS4."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from corridor.core.pkce import new_verifier, s256_challenge
from corridor.core.randomness import new_secret_token
from corridor.server.clients import ClientMetadataError, build_client_metadata
from corridor.transport.tls import DevTLS
from tests.pki import ClientCert, TestPKI
from tests.support import Client, Driver, Flow, RunningAS, decode_jwt, running_as

PKI_DN = "CN=client-one,O=Test"


def par(
    driver: Driver,
    client: Client,
    cert: ClientCert | None,
    *,
    jwt_auth: bool = False,
    dpop: bool = False,
    http: httpx.Client | None = None,
    url: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> tuple[httpx.Response, Flow]:
    """PAR at the mTLS alias, authenticated by the certificate (or by private_key_jwt)."""
    flow = Flow(verifier=new_verifier(), state=new_secret_token())
    form = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid accounts",
        "state": flow.state,
        "code_challenge": s256_challenge(flow.verifier),
        "code_challenge_method": "S256",
    }
    form.update(extra or {})
    if jwt_auth:
        form.update(driver.client_auth(client))
    url = url or driver.mtls_url("/par")
    all_headers = dict(headers or {})
    if dpop:
        all_headers["DPoP"] = driver.proof(client, "POST", url)
    with http or driver.mtls_http(cert) as session:
        response = session.post(url, data=form, headers=all_headers)
    if response.status_code == 201:
        flow.request_uri = response.json()["request_uri"]
    return response, flow


def token(
    driver: Driver,
    client: Client,
    cert: ClientCert | None,
    form: dict[str, str],
    *,
    jwt_auth: bool = False,
    dpop: bool = False,
    url: str | None = None,
) -> httpx.Response:
    url = url or driver.mtls_url("/token")
    body = {**form, "client_id": client.client_id}
    if jwt_auth:
        body.update(driver.client_auth(client))
    headers = {"DPoP": driver.proof(client, "POST", url)} if dpop else {}
    with driver.mtls_http(cert) as session:
        return session.post(url, data=body, headers=headers)


def authorized(driver: Driver, client: Client, cert: ClientCert, **kwargs: Any) -> Flow:
    response, flow = par(driver, client, cert, **kwargs)
    assert response.status_code == 201, response.text
    driver.authorize(client, flow)
    assert flow.code
    return flow


def code_form(client: Client, flow: Flow) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": flow.code,
        "redirect_uri": client.redirect_uri,
        "code_verifier": flow.verifier,
    }


def userinfo(
    driver: Driver, cert: ClientCert | None, access_token: str, scheme: str = "Bearer"
) -> httpx.Response:
    with driver.mtls_http(cert) as session:
        return session.get(
            driver.mtls_url("/userinfo"), headers={"Authorization": f"{scheme} {access_token}"}
        )


def assert_invalid_client(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


# -- the four combinations --------------------------------------------------------------------------


def test_tls_client_auth_with_certificate_bound_tokens(driver: Driver, pki: TestPKI) -> None:
    cert = pki.issue(PKI_DN)
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": PKI_DN},
    )
    flow = authorized(driver, client, cert)
    response = token(driver, client, cert, code_form(client, flow))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert decode_jwt(body["access_token"])[1]["cnf"] == {"x5t#S256": cert.thumbprint}
    assert userinfo(driver, cert, body["access_token"]).status_code == 200
    refreshed = token(
        driver, client, cert, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert decode_jwt(refreshed.json()["access_token"])[1]["cnf"] == {"x5t#S256": cert.thumbprint}


def test_self_signed_tls_client_auth_with_certificate_bound_tokens(driver: Driver, pki: TestPKI) -> None:
    cert = pki.self_signed("CN=self-signed one")
    client = driver.add_client(
        auth_method="self_signed_tls_client_auth", sender_constraint="mtls", jwks={"keys": [cert.jwk()]}
    )
    flow = authorized(driver, client, cert)
    response = token(driver, client, cert, code_form(client, flow))
    assert response.status_code == 200, response.text
    assert decode_jwt(response.json()["access_token"])[1]["cnf"] == {"x5t#S256": cert.thumbprint}
    assert userinfo(driver, cert, response.json()["access_token"]).status_code == 200


def test_private_key_jwt_with_certificate_bound_tokens(driver: Driver, pki: TestPKI) -> None:
    """M4: any client authentication with an mTLS-bound token."""
    cert = pki.issue("CN=jwt client,O=Test")
    client = driver.add_client(sender_constraint="mtls")
    flow = authorized(driver, client, cert, jwt_auth=True)
    response = token(driver, client, cert, code_form(client, flow), jwt_auth=True)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"
    assert decode_jwt(response.json()["access_token"])[1]["cnf"] == {"x5t#S256": cert.thumbprint}


def test_tls_client_auth_with_dpop_bound_tokens(driver: Driver, pki: TestPKI) -> None:
    cert = pki.issue("CN=dpop client,O=Test", dns="dpop.client.example")
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="dpop",
        tls_subject={"tls_client_auth_san_dns": "dpop.client.example"},
    )
    flow = authorized(driver, client, cert, dpop=True)
    response = token(driver, client, cert, code_form(client, flow), dpop=True)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    assert decode_jwt(response.json()["access_token"])[1]["cnf"] == {"jkt": client.dpop_key.thumbprint()}


@pytest.mark.parametrize(
    "parameter,value,cert_args",
    [
        ("tls_client_auth_san_uri", "https://client.example/id", {"uri": "https://client.example/id"}),
        ("tls_client_auth_san_ip", "192.0.2.7", {"ip": "192.0.2.7"}),
        ("tls_client_auth_san_email", "ops@client.example", {"email": "ops@client.example"}),
    ],
)
def test_subject_alternative_names(
    driver: Driver, pki: TestPKI, parameter: str, value: str, cert_args: dict[str, Any]
) -> None:
    """M2: each subject parameter matches."""
    cert = pki.issue("CN=san client,O=Test", **cert_args)
    client = driver.add_client(
        auth_method="tls_client_auth", sender_constraint="mtls", tls_subject={parameter: value}
    )
    assert par(driver, client, cert)[0].status_code == 201


# -- negatives ----------------------------------------------------------------------------------------


def test_no_certificate_where_one_is_required(driver: Driver, pki: TestPKI) -> None:
    """M1/M2: at the alias without a certificate, and at the main endpoint (which never asks)."""
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": PKI_DN},
    )
    assert_invalid_client(par(driver, client, None)[0])
    main_response, _ = par(driver, client, None, http=driver.http, url=driver.url("/par"))
    assert_invalid_client(main_response)


def test_mtls_client_must_send_client_id(driver: Driver, pki: TestPKI) -> None:
    """M1: RFC 8705 2 requires the client_id parameter."""
    cert = pki.issue(PKI_DN)
    with driver.mtls_http(cert) as session:
        response = session.post(driver.mtls_url("/par"), data={"response_type": "code"})
    assert_invalid_client(response)


def test_certificate_with_another_subject(driver: Driver, pki: TestPKI) -> None:
    """M2: a valid certificate of the trusted CA with another DN."""
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": PKI_DN},
    )
    assert_invalid_client(par(driver, client, pki.issue("CN=someone else,O=Test"))[0])


def test_registered_self_signed_certificate_does_not_pass_as_pki(driver: Driver, pki: TestPKI) -> None:
    """The trust store holds registered self-signed certificates; tls_client_auth still re-verifies
    the chain against the CA bundle only."""
    impostor = pki.self_signed(PKI_DN)
    driver.add_client(
        auth_method="self_signed_tls_client_auth", sender_constraint="mtls", jwks={"keys": [impostor.jwk()]}
    )  # gets it into the trust store
    victim = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": PKI_DN},
    )
    assert_invalid_client(par(driver, victim, impostor)[0])


def test_unregistered_self_signed_certificate(driver: Driver, pki: TestPKI) -> None:
    """M3: an unknown self-signed certificate fails the handshake; one registered by another
    client passes TLS but not client authentication."""
    mine, theirs = pki.self_signed("CN=mine"), pki.self_signed("CN=theirs")
    client = driver.add_client(
        auth_method="self_signed_tls_client_auth", sender_constraint="mtls", jwks={"keys": [mine.jwk()]}
    )
    driver.add_client(
        auth_method="self_signed_tls_client_auth", sender_constraint="mtls", jwks={"keys": [theirs.jwk()]}
    )
    stranger = pki.self_signed("CN=stranger")
    with pytest.raises(httpx.HTTPError):
        par(driver, client, stranger)
    assert_invalid_client(par(driver, client, theirs)[0])
    assert par(driver, client, mine)[0].status_code == 201  # positive control


def test_certificate_bound_token_without_certificate_at_token(driver: Driver, pki: TestPKI) -> None:
    """Never a bearer token: an mTLS-bound client that shows no certificate gets an error."""
    cert = pki.issue("CN=jwt client 2,O=Test")
    client = driver.add_client(sender_constraint="mtls")
    flow = authorized(driver, client, cert, jwt_auth=True)
    response = token(driver, client, None, code_form(client, flow), jwt_auth=True, url=driver.url("/token"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "access_token" not in response.text


def test_token_bound_to_certificate_a_used_with_certificate_b(driver: Driver, pki: TestPKI) -> None:
    """M5 / R6: userinfo with another certificate, with none, or as DPoP -> 401 invalid_token."""
    cert_a, cert_b = pki.issue(PKI_DN), pki.issue("CN=other,O=Test")
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": PKI_DN},
    )
    flow = authorized(driver, client, cert_a)
    access_token = token(driver, client, cert_a, code_form(client, flow)).json()["access_token"]
    for response in (
        userinfo(driver, cert_b, access_token),
        userinfo(driver, None, access_token),
        userinfo(driver, cert_a, access_token, scheme="DPoP"),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert userinfo(driver, cert_a, access_token).status_code == 200  # positive control


def test_introspection_of_certificate_bound_token(driver: Driver, pki: TestPKI) -> None:
    cert = pki.issue("CN=jwt client 3,O=Test")
    client = driver.add_client(sender_constraint="mtls")
    flow = authorized(driver, client, cert, jwt_auth=True)
    access_token = token(driver, client, cert, code_form(client, flow), jwt_auth=True).json()["access_token"]
    body = driver.introspect(client, access_token).json()
    assert body["active"] is True and body["token_type"] == "Bearer"
    assert body["cnf"] == {"x5t#S256": cert.thumbprint}


def test_forged_client_cert_header_from_untrusted_address(driver: Driver, pki: TestPKI) -> None:
    """M8 / RFC 9700 4.13: without configured proxies the header is stripped and ignored."""
    cert = pki.issue(PKI_DN)
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": PKI_DN},
    )
    response, _ = par(driver, client, None, headers={"Client-Cert": cert.header_value()})
    assert_invalid_client(response)


@pytest.fixture(scope="module")
def proxied_as(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, pki: TestPKI) -> Iterator[RunningAS]:
    """An AS that believes certificate headers from 127.0.0.1 (as behind a local proxy)."""
    with running_as(
        tmp_path_factory.mktemp("proxied"),
        tls,
        mtls_ca_file=str(pki.ca_file),
        trusted_proxies=["127.0.0.1/32"],
    ) as running:
        yield running


@pytest.mark.parametrize("header", ["Client-Cert", "X-SSL-Client-Escaped-Cert"])
def test_client_cert_header_from_trusted_proxy(proxied_as: RunningAS, pki: TestPKI, header: str) -> None:
    """Positive control for the test above: the same header from a configured proxy address works."""
    from urllib.parse import quote

    driver = Driver(proxied_as)
    cert = pki.issue(PKI_DN)
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": PKI_DN},
    )
    value = cert.header_value() if header == "Client-Cert" else quote(Path(cert.cert_file).read_text())
    response, _ = par(driver, client, None, headers={header: value})
    assert response.status_code == 201, response.text
    bad, _ = par(driver, client, None, headers={header: value[:-10]})
    assert_invalid_client(bad)


# -- aliases and metadata -------------------------------------------------------------------------------


def test_aliases_advertised(driver: Driver) -> None:
    """AS4 / M6 / M7: only *_endpoint keys, never the authorization endpoint, on the mTLS port."""
    meta = driver.http.get(driver.url("/.well-known/openid-configuration")).json()
    aliases = meta["mtls_endpoint_aliases"]
    assert set(aliases) == {
        "token_endpoint",
        "pushed_authorization_request_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "userinfo_endpoint",
    }
    assert driver.as_.server is not None
    port = driver.as_.server.settings.mtls_port
    assert all(url.startswith(f"https://localhost:{port}/") for url in aliases.values())
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )
    with driver.mtls_http() as session:
        assert session.get(aliases["token_endpoint"].rsplit("/", 1)[0] + "/jwks").status_code == 200


def test_aliases_honoured_for_dpop_htu(driver: Driver, pki: TestPKI) -> None:
    """At an alias the DPoP htu is the alias URL; a proof for the main URL is refused there."""
    cert = pki.issue("CN=dpop client 2,O=Test", dns="dpop2.client.example")
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="dpop",
        tls_subject={"tls_client_auth_san_dns": "dpop2.client.example"},
    )
    wrong = driver.proof(client, "POST", driver.url("/par"))
    response, _ = par(driver, client, cert, headers={"DPoP": wrong})
    assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"


# -- registration ------------------------------------------------------------------------------------------


def test_registration_rules(pki: TestPKI) -> None:
    base: dict[str, Any] = {"redirect_uris": ["https://c.example/cb"]}
    cases: list[dict[str, Any]] = [
        # M2: two subject parameters
        {
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_subject": {"tls_client_auth_subject_dn": PKI_DN, "tls_client_auth_san_dns": "c.example"},
        },
        # tls_client_auth without any subject
        {"token_endpoint_auth_method": "tls_client_auth"},
        # self-signed without a jwks / without x5c
        {"token_endpoint_auth_method": "self_signed_tls_client_auth"},
        {
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": [{k: v for k, v in pki.self_signed().jwk().items() if k != "x5c"}]},
        },
        # a CA certificate as a self-signed client certificate (design.md 5)
        {
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": [pki.self_signed("CN=ca-like", ca=True).jwk()]},
        },
        # x5c that does not hold the JWK's key
        {
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": {"keys": [{**pki.self_signed().jwk(), "x5c": [pki.self_signed().der_b64()]}]},
        },
        # a malformed DN
        {
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_subject": {"tls_client_auth_subject_dn": "not a dn"},
        },
    ]
    for case in cases:
        with pytest.raises(ClientMetadataError):
            build_client_metadata(**base, **case)


def test_cli_registers_mtls_clients(tmp_path: Path, pki: TestPKI) -> None:
    from tests.test_serve import corridor

    data_dir = tmp_path / "data"
    assert corridor("db", "upgrade", data_dir=data_dir).returncode == 0  # issue 13 F2
    added = corridor(
        "client",
        "add",
        "--name",
        "PKI app",
        "--redirect-uri",
        "https://a.example/cb",
        "--auth-method",
        "tls_client_auth",
        "--tls-client-auth-subject-dn",
        PKI_DN,
        "--sender-constraint",
        "mtls",
        "--json",
        data_dir=data_dir,
    )
    assert added.returncode == 0, added.stderr
    meta = json.loads(added.stdout)
    assert meta["tls_client_auth_subject_dn"] == PKI_DN
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    cert = pki.self_signed("CN=cli self-signed")
    added = corridor(
        "client",
        "add",
        "--name",
        "Self app",
        "--redirect-uri",
        "https://a.example/cb",
        "--auth-method",
        "self_signed_tls_client_auth",
        "--certificate",
        str(cert.cert_file),
        "--sender-constraint",
        "mtls",
        "--use-mtls-endpoint-aliases",
        "--json",
        data_dir=data_dir,
    )
    assert added.returncode == 0, added.stderr
    meta = json.loads(added.stdout)
    assert meta["jwks"]["keys"][0]["x5c"] == [cert.der_b64()]
    assert meta["use_mtls_endpoint_aliases"] is True
    two = corridor(
        "client",
        "add",
        "--name",
        "x",
        "--redirect-uri",
        "https://a.example/cb",
        "--auth-method",
        "tls_client_auth",
        "--tls-client-auth-subject-dn",
        PKI_DN,
        "--tls-client-auth-san-dns",
        "a.example",
        data_dir=data_dir,
    )
    assert two.returncode == 1 and "exactly one" in two.stderr and "Traceback" not in two.stderr
    missing = corridor(
        "client",
        "add",
        "--name",
        "x",
        "--redirect-uri",
        "https://a.example/cb",
        "--auth-method",
        "self_signed_tls_client_auth",
        data_dir=data_dir,
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_consent_page_names_the_certificate_binding(driver: Driver, pki: TestPKI) -> None:
    """AS33: the user sees how the tokens will be bound."""
    from tests.support import PASSWORD

    cert = pki.issue("CN=jwt client 4,O=Test")
    client = driver.add_client(sender_constraint="mtls")
    response, flow = par(driver, client, cert, jwt_auth=True)
    assert response.status_code == 201
    browser = driver.browser()
    login = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    consent = browser.submit(login, {"username": driver.add_user(), "password": PASSWORD})
    # Issue 18: in words, by the certificate the PAR came with (the whole thumbprint disclosed).
    assert (
        "Only the app holding its TLS client certificate can use this "
        f"(it asked with certificate …{cert.thumbprint[-4:]})."
    ) in consent.text
    assert f"<code>{cert.thumbprint}</code>" in consent.text


# -- issue 13 C5: Extended Key Usage must allow client authentication --------------------------------

SERVER_AUTH = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
EKU_CASES = [
    pytest.param((SERVER_AUTH,), False, id="serverAuth-only"),
    pytest.param((x509.oid.ExtendedKeyUsageOID.CODE_SIGNING,), False, id="codeSigning-only"),
    pytest.param((x509.oid.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,), False, id="anyEKU-only"),
    pytest.param((CLIENT_AUTH,), True, id="clientAuth"),
    pytest.param((SERVER_AUTH, CLIENT_AUTH), True, id="serverAuth+clientAuth"),
    pytest.param(None, True, id="no-EKU"),
]


def _eku_client(driver: Driver, pki: TestPKI, eku: Any) -> tuple[Client, ClientCert]:
    dn = f"CN=eku-{new_secret_token()[:8]},O=Test"
    cert = pki.issue(dn, eku=eku)
    client = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": dn},
    )
    return client, cert


def _first_bytes(driver: Driver, cert: ClientCert) -> bytes:
    """What the mTLS listener answers a request over a connection presenting ``cert``: the
    first bytes of its HTTP response, or b"" when it closes the connection without one."""
    url = httpx.URL(driver.mtls_url("/par"))
    context = cert.ssl_context(driver.as_.tls.ca_file)
    try:
        with (
            socket.create_connection((url.host, url.port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=url.host) as tls,
        ):
            tls.sendall(b"GET /par HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return tls.recv(9)
    except (ssl.SSLError, ConnectionError):
        return b""


@pytest.mark.parametrize(("eku", "accepted"), EKU_CASES)
def test_tls_client_auth_needs_client_auth_eku_on_the_mtls_listener(
    driver: Driver, pki: TestPKI, eku: Any, accepted: bool
) -> None:
    """issue 13 C5, RFC 5280 4.2.1.12: a certificate whose EKU does not allow clientAuth does not
    authenticate a client; with clientAuth, or without EKU, it does (positive controls).

    On the direct listener OpenSSL itself checks the purpose of a client certificate it verifies
    (Python's ssl offers no way to hand that decision to the app), so such a certificate is
    refused in the handshake, with a TLS alert, before any request reaches the app: it never
    authenticates a client. Behind a trusted proxy the app decides (the next test)."""
    client, cert = _eku_client(driver, pki, eku)
    if accepted:
        response, _ = par(driver, client, cert)
        assert response.status_code == 201, response.text
    else:
        assert _first_bytes(driver, cert) == b""  # closed in the handshake, no HTTP at all
        with pytest.raises(httpx.TransportError):
            par(driver, client, cert)
        # The same client, with a clientAuth certificate of the same subject, is fine.
        same = pki.issue(cert.cert.subject.rfc4514_string())
        assert _first_bytes(driver, same) == b"HTTP/1.1 "
        response, _ = par(driver, client, same)
        assert response.status_code == 201, response.text


@pytest.mark.parametrize(("eku", "accepted"), EKU_CASES)
def test_tls_client_auth_needs_client_auth_eku_behind_a_trusted_proxy(
    proxied_as: RunningAS, pki: TestPKI, eku: Any, accepted: bool
) -> None:
    """issue 13 C5: the same through a trusted proxy's Client-Cert header (RFC 9440)."""
    driver = Driver(proxied_as)
    client, cert = _eku_client(driver, pki, eku)
    response, _ = par(driver, client, None, headers={"Client-Cert": cert.header_value()})
    if accepted:
        assert response.status_code == 201, response.text
    else:
        assert_invalid_client(response)
