"""corridor.client against our own AS, through real HTTPS: PAR + PKCE + private_key_jwt +
DPoP with server nonces, iss/state checks, refresh, userinfo through FapiAuth; and the
mTLS variant with certificate-bound tokens at the aliases."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from corridor.client import FapiClient
from corridor.client.errors import AuthorizationResponseError, MetadataError
from tests.pki import TestPKI
from tests.support import PASSWORD, Client, Driver, decode_jwt, ssl_context_of


def consent(driver: Driver, url: str) -> str:
    """Play the user on our pages; return the authorization response URL."""
    browser = driver.browser()
    page = browser.get(url)
    page = browser.submit(page, {"username": driver.add_user(), "password": PASSWORD})
    final = browser.submit(page, {"decision": "approve"}, follow=False)
    assert final.status_code == 303, final.text
    return str(final.headers["location"])


def make_client(driver: Driver, registered: Client, **kwargs: Any) -> FapiClient:
    return FapiClient(
        driver.issuer,
        registered.client_id,
        redirect_uri=registered.redirect_uri,
        key=registered.key,
        ca_file=str(driver.as_.tls.ca_file),
        **kwargs,
    )


def test_full_flow_with_dpop(driver: Driver) -> None:
    registered = driver.add_client()
    client = make_client(driver, registered)
    url, handle = client.start("openid profile accounts")
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"client_id", "request_uri"}  # C20
    tokens = client.finish(consent(driver, url), handle)
    assert tokens.token_type == "DPoP"
    assert decode_jwt(tokens.access_token)[1]["cnf"] == {"jkt": client.dpop_key.thumbprint()}
    assert tokens.id_token_claims is not None and tokens.id_token_claims["nonce"] == handle.nonce
    assert client.metadata_evidence["source"].endswith("/.well-known/openid-configuration")
    assert len(client.metadata_evidence["sha256"]) == 64
    refreshed = client.refresh(tokens)
    assert refreshed.access_token != tokens.access_token
    assert refreshed.refresh_token == tokens.refresh_token  # not rotated: the old one is kept
    with httpx.Client(
        verify=ssl_context_of(client.http),
        auth=client.auth(refreshed),
    ) as http:
        info = http.get(client.endpoint("userinfo_endpoint"))
    assert info.status_code == 200, info.text
    assert tokens.id_token_claims is not None
    assert info.json()["sub"] == tokens.id_token_claims["sub"]


def test_two_flows_never_share_a_verifier(driver: Driver) -> None:
    client = make_client(driver, driver.add_client())
    _, first = client.start("openid")
    _, second = client.start("openid")
    assert first.code_verifier != second.code_verifier and first.state != second.state


def test_wrong_state_and_missing_or_wrong_iss_are_refused(driver: Driver) -> None:
    client = make_client(driver, driver.add_client())
    url, handle = client.start("openid")
    callback = consent(driver, url)
    for bad in (
        callback.replace(f"state={handle.state}", "state=forged"),
        callback.replace("&iss=", "&x="),
        callback.replace("iss=https", "iss=http"),
    ):
        with pytest.raises(AuthorizationResponseError):
            client.finish(bad, handle)
    assert client.finish(callback, handle).token_type == "DPoP"  # positive control


def test_metadata_issuer_must_match(driver: Driver) -> None:
    registered = driver.add_client()
    client = FapiClient(
        driver.issuer + "/",
        registered.client_id,
        redirect_uri=registered.redirect_uri,
        key=registered.key,
        ca_file=str(driver.as_.tls.ca_file),
    )
    with pytest.raises(MetadataError):
        client.discover()


def test_mtls_client_with_certificate_bound_tokens(driver: Driver, pki: TestPKI) -> None:
    cert = pki.issue("CN=library client,O=Test")
    registered = driver.add_client(
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        tls_subject={"tls_client_auth_subject_dn": "CN=library client,O=Test"},
    )
    client = make_client(
        driver,
        registered,
        auth_method="tls_client_auth",
        sender_constraint="mtls",
        certificate=(str(cert.cert_file), str(cert.key_file)),
    )
    assert client.endpoint("token_endpoint") == driver.mtls_url("/token")  # C3 / C10
    url, handle = client.start("openid accounts")
    tokens = client.finish(consent(driver, url), handle)
    assert tokens.token_type == "Bearer"
    assert decode_jwt(tokens.access_token)[1]["cnf"] == {"x5t#S256": cert.thumbprint}
    with httpx.Client(
        verify=ssl_context_of(client.http),
        auth=client.auth(tokens),
    ) as http:
        assert http.get(client.endpoint("userinfo_endpoint")).status_code == 200


def test_private_key_jwt_assertions_use_the_issuer_string(driver: Driver) -> None:
    client = make_client(driver, driver.add_client())
    client.discover()
    first, second = client.client_authentication(), client.client_authentication()
    a, b = decode_jwt(first["client_assertion"])[1], decode_jwt(second["client_assertion"])[1]
    assert a["aud"] == driver.issuer and isinstance(a["aud"], str)  # C8
    assert a["jti"] != b["jti"] and a["exp"] - a["iat"] <= 60
    assert client.proof("GET", driver.issuer + "/x") != client.proof("GET", driver.issuer + "/x")  # C22


def test_key_is_required_for_private_key_jwt() -> None:
    from corridor.client.errors import ClientError

    with pytest.raises(ClientError):
        FapiClient("https://as.example", "c", redirect_uri="https://c.example/cb")
