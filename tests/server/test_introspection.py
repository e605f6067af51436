"""Introspection (RFC 7662), revocation (RFC 7009) and UserInfo (DPoP-bound, RFC 9449 7)."""

from __future__ import annotations

from typing import Any, Literal

import httpx
import pytest

from corridor.core.jose import SigningKey
from tests.support import RESOURCE, Client, Driver, decode_jwt

#: The ``issued`` fixture: a client and its token response.
Issued = tuple[Client, dict[str, Any]]


@pytest.fixture
def issued(driver: Driver) -> Issued:
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"scope": "openid profile accounts"})
    return client, tokens


def test_introspection_needs_client_authentication(driver: Driver, issued: Issued) -> None:
    _, tokens = issued
    response = driver.http.post(driver.url("/introspect"), data={"token": tokens["access_token"]})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_introspection_of_a_dpop_token(driver: Driver, issued: Issued) -> None:
    """D18: active, cnf.jkt and token_type DPoP."""
    client, tokens = issued
    body = driver.introspect(client, tokens["access_token"]).json()
    assert body["active"] is True
    assert body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": client.dpop_key.thumbprint()}
    assert body["client_id"] == client.client_id
    assert body["scope"] == "openid profile accounts"
    # Issue 16: the grant the token comes from, as in the token itself, and the grant's records.
    grant_id = decode_jwt(tokens["access_token"])[1]["grant_id"]
    assert body["grant_id"] == grant_id
    assert any(
        r["event"] == "token.authorization_code" for r in driver.as_.store.audit.records(grant_id=grant_id)
    )


def test_introspection_requires_token_parameter(driver: Driver) -> None:
    client = driver.add_client()
    response = driver.http.post(driver.url("/introspect"), data=driver.client_auth(client))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_other_clients_see_inactive(driver: Driver, issued: Issued) -> None:
    """RFC 7662 4: a client may not introspect another client's token."""
    _, tokens = issued
    assert driver.introspect(driver.add_client(), tokens["access_token"]).json() == {"active": False}


def test_resource_server_may_introspect_tokens_for_it(driver: Driver) -> None:
    rs_client = driver.add_client()
    driver.as_.store.clients.add_resource_server(
        "https://rs2.example.org", "RS2", [], rs_client.client_id, 0.0
    )
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"resource": "https://rs2.example.org"})
    assert driver.introspect(rs_client, tokens["access_token"]).json()["active"] is True
    _, other = driver.full_flow(client, extra={"resource": RESOURCE})
    assert driver.introspect(rs_client, other["access_token"]).json() == {"active": False}


def test_introspection_of_refresh_token(driver: Driver, issued: Issued) -> None:
    client, tokens = issued
    body = driver.introspect(client, tokens["refresh_token"], token_type_hint="refresh_token").json()
    assert body["active"] is True and body["token_type"] == "refresh_token"


def test_expired_access_token_is_inactive(driver: Driver, issued: Issued) -> None:
    client, tokens = issued
    driver.as_.clock.advance(301)
    assert driver.introspect(client, tokens["access_token"]).json() == {"active": False}


def test_garbage_token_is_inactive(driver: Driver) -> None:
    assert driver.introspect(driver.add_client(), "garbage").json() == {"active": False}


def test_revoking_the_access_token(driver: Driver, issued: Issued) -> None:
    client, tokens = issued
    response = driver.http.post(
        driver.url("/revoke"), data={**driver.client_auth(client), "token": tokens["access_token"]}
    )
    assert response.status_code == 200
    assert driver.introspect(client, tokens["access_token"]).json() == {"active": False}
    assert driver.introspect(client, tokens["refresh_token"]).json()["active"] is True


def test_revoking_the_refresh_token_revokes_the_grant(driver: Driver, issued: Issued) -> None:
    """RFC 7009 2.1: revoking the RT also ends the access tokens of its grant."""
    client, tokens = issued
    response = driver.http.post(
        driver.url("/revoke"), data={**driver.client_auth(client), "token": tokens["refresh_token"]}
    )
    assert response.status_code == 200
    assert driver.introspect(client, tokens["access_token"]).json() == {"active": False}
    refresh = driver.token_request(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


def test_revocation_by_another_client_does_nothing(driver: Driver, issued: Issued) -> None:
    client, tokens = issued
    other = driver.add_client()
    response = driver.http.post(
        driver.url("/revoke"), data={**driver.client_auth(other), "token": tokens["refresh_token"]}
    )
    assert response.status_code == 200
    assert driver.introspect(client, tokens["access_token"]).json()["active"] is True


def test_revocation_of_unknown_token_is_200(driver: Driver) -> None:
    client = driver.add_client()
    response = driver.http.post(driver.url("/revoke"), data={**driver.client_auth(client), "token": "nope"})
    assert response.status_code == 200


# -- UserInfo ------------------------------------------------------------------------------------------


def userinfo(
    driver: Driver,
    client: Client,
    token: str,
    *,
    scheme: str = "DPoP",
    key: SigningKey | Literal[False] | None = None,
    nonce: str | None = "current",
    ath_token: str | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if key is not False:
        headers["DPoP"] = driver.proof(
            client, "GET", driver.url("/userinfo"), key=key, nonce=nonce, access_token=ath_token or token
        )
    return driver.http.get(driver.url("/userinfo"), headers=headers)


def test_userinfo_with_dpop(driver: Driver, issued: Issued) -> None:
    client, tokens = issued
    response = userinfo(driver, client, tokens["access_token"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sub"] and body["preferred_username"].startswith("user-")


def test_userinfo_scheme_is_case_insensitive(driver: Driver, issued: Issued) -> None:
    client, tokens = issued
    assert userinfo(driver, client, tokens["access_token"], scheme="dpop").status_code == 200


def test_userinfo_refuses_dpop_token_as_bearer(driver: Driver, issued: Issued) -> None:
    """RFC 9449 7.2: a DPoP-bound token presented as Bearer."""
    _client, tokens = issued
    response = driver.http.get(
        driver.url("/userinfo"), headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_userinfo_proof_by_another_key(driver: Driver, issued: Issued) -> None:
    """D14: token bound to key A, proof by key B."""
    client, tokens = issued
    response = userinfo(driver, client, tokens["access_token"], key=SigningKey.generate("ES256"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('DPoP error="invalid_token"')


def test_userinfo_wrong_ath(driver: Driver, issued: Issued) -> None:
    """D13."""
    client, tokens = issued
    response = userinfo(driver, client, tokens["access_token"], ath_token="another-token")
    assert response.status_code == 401
    assert 'error="invalid_dpop_proof"' in response.headers["www-authenticate"]
    assert 'algs="PS256 ES256 EdDSA"' in response.headers["www-authenticate"]


def test_userinfo_without_proof(driver: Driver, issued: Issued) -> None:
    _, tokens = issued
    response = driver.http.get(
        driver.url("/userinfo"), headers={"Authorization": f"DPoP {tokens['access_token']}"}
    )
    assert response.status_code == 401
    assert 'error="invalid_dpop_proof"' in response.headers["www-authenticate"]


def test_userinfo_nonce(driver: Driver, issued: Issued) -> None:
    client, tokens = issued
    response = userinfo(driver, client, tokens["access_token"], nonce=None)
    assert response.status_code == 401
    assert 'error="use_dpop_nonce"' in response.headers["www-authenticate"]
    assert response.headers["dpop-nonce"]


def test_userinfo_without_credentials(driver: Driver) -> None:
    response = driver.http.get(driver.url("/userinfo"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'DPoP algs="PS256 ES256 EdDSA"'


def test_userinfo_two_authorization_headers(driver: Driver, issued: Issued) -> None:
    """RFC 6750 2.1, 3.1 / RFC 9449 7.1: a malformed request, 400 invalid_request, as at the RS."""
    client, tokens = issued
    token = tokens["access_token"]
    headers = [
        ("Authorization", f"DPoP {token}"),
        ("Authorization", f"DPoP {token}"),
        ("DPoP", driver.proof(client, "GET", driver.url("/userinfo"), access_token=token)),
    ]
    response = driver.http.get(driver.url("/userinfo"), headers=headers)
    assert response.status_code == 400
    assert response.headers["www-authenticate"].startswith('DPoP error="invalid_request"')
    assert response.json()["error"] == "invalid_request"


def test_userinfo_refuses_query_token(driver: Driver, issued: Issued) -> None:
    """R3 / FAPI2 5.3.4-2 at the AS's own resource."""
    _, tokens = issued
    response = driver.http.get(driver.url("/userinfo"), params={"access_token": tokens["access_token"]})
    assert response.status_code == 401


def test_userinfo_after_revocation(driver: Driver, issued: Issued) -> None:
    client, tokens = issued
    driver.http.post(
        driver.url("/revoke"), data={**driver.client_auth(client), "token": tokens["refresh_token"]}
    )
    response = userinfo(driver, client, tokens["access_token"])
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_userinfo_needs_openid_scope(driver: Driver) -> None:
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"scope": "accounts"})
    response = userinfo(driver, client, tokens["access_token"])
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
