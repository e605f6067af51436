"""Signed introspection responses (RFC 9701, FAPI 2.0 Message Signing 5.5.1), through real HTTPS:
the JSON answer unchanged unless the caller asks for the JWT; the JWT's header and claims, verified
against the published JWKS; inactive and not-entitled tokens; errors stay JSON; Accept parsing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from corridor.audit.events import Event
from corridor.core.jose import read_header, verify_with_keys
from corridor.server.introspection import JWT_MEDIA_TYPE, wants_signed_response
from tests.support import Client, Driver, RunningAS, decode_jwt

JWT_ACCEPT = {"Accept": JWT_MEDIA_TYPE}


def entitled(driver: Driver, identifier: str) -> tuple[Client, Client, dict[str, Any]]:
    """A resource server's introspection client, a client, and its token meant for that RS."""
    rs_client = driver.add_client()
    driver.as_.store.clients.add_resource_server(identifier, "MS RS", [], rs_client.client_id, 0.0)
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"scope": "accounts", "resource": identifier})
    return rs_client, client, tokens


def introspect(driver: Driver, caller: Client, token: str, headers: Any = None) -> httpx.Response:
    return driver.http.post(
        driver.url("/introspect"), data={**driver.client_auth(caller), "token": token}, headers=headers
    )


def verified(driver: Driver, response: httpx.Response) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JWT's header and claims, its signature checked with the keys at the AS's jwks_uri."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JWT_MEDIA_TYPE
    assert response.headers["cache-control"] == "no-store"
    metadata = driver.http.get(driver.url("/.well-known/oauth-authorization-server")).json()
    assert metadata["introspection_signing_alg_values_supported"] == [driver.as_.server.keys.signing.alg]  # type: ignore[union-attr]
    keys = driver.http.get(metadata["jwks_uri"]).json()["keys"]
    header = read_header(response.text)
    claims = verify_with_keys(response.text, header, keys)
    return header, claims


def last_introspection_record(driver: Driver, caller: Client) -> dict[str, Any]:
    records = [
        r
        for r in driver.as_.store.audit.records()
        if r["event"] == Event.INTROSPECTION and r["client_id"] == caller.client_id
    ]
    return records[-1]


def test_json_answer_is_unchanged_without_asking_for_a_jwt(driver: Driver) -> None:
    """RFC 7662 2.2: no Accept, application/json or */* keep the JSON answer, nothing signed."""
    rs_client, client, tokens = entitled(driver, "https://rs-json.example.org/api")
    for headers in (None, {"Accept": "application/json"}, {"Accept": "*/*"}):
        response = introspect(driver, rs_client, tokens["access_token"], headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body["active"] is True and body["client_id"] == client.client_id
        assert "signed_response" not in json.loads(
            last_introspection_record(driver, rs_client)["detail"] or "{}"
        )


def test_signed_answer_for_an_entitled_resource_server(driver: Driver) -> None:
    """RFC 9701 5: typ token-introspection+jwt, kid of the active key; iss, aud = the calling RS's
    client_id, iat, token_introspection = the JSON answer; no top-level sub or exp."""
    rs_client, client, tokens = entitled(driver, "https://rs-jwt.example.org/api")
    plain = introspect(driver, rs_client, tokens["access_token"]).json()
    before = int(driver.now())
    response = introspect(driver, rs_client, tokens["access_token"], JWT_ACCEPT)
    header, claims = verified(driver, response)
    key = driver.as_.server.keys.signing  # type: ignore[union-attr]
    assert header == {"alg": key.alg, "typ": "token-introspection+jwt", "kid": key.kid}
    assert set(claims) == {"iss", "aud", "iat", "token_introspection"}
    assert claims["iss"] == driver.issuer and claims["aud"] == rs_client.client_id
    assert before <= claims["iat"] <= int(driver.now())
    assert claims["token_introspection"] == plain
    assert plain["active"] is True and plain["client_id"] == client.client_id

    # The evidence: the record names the signed answer, which the AS keeps verbatim.
    record = last_introspection_record(driver, rs_client)
    sha256 = hashlib.sha256(response.text.encode()).hexdigest()
    assert (record["outcome"], record["token_jti"]) == ("active", plain["jti"])
    assert json.loads(record["detail"])["signed_response"] == {
        "sha256": sha256,
        "kid": key.kid,
        "alg": key.alg,
    }
    kept = driver.as_.store.messages.get(sha256)
    assert kept is not None and kept["jws"] == response.text
    assert (kept["kind"], kept["client_id"]) == ("introspection_response", rs_client.client_id)


def test_inactive_tokens_are_active_false_inside_the_jwt(driver: Driver) -> None:
    """RFC 9701 5, RFC 7662 2.2: an unknown or expired token: token_introspection {"active": false}."""
    rs_client, _, tokens = entitled(driver, "https://rs-inactive.example.org/api")
    _, claims = verified(driver, introspect(driver, rs_client, "not-a-token", JWT_ACCEPT))
    assert claims["token_introspection"] == {"active": False} and claims["aud"] == rs_client.client_id
    assert last_introspection_record(driver, rs_client)["outcome"] == "inactive"
    driver.as_.clock.advance(301)
    _, claims = verified(driver, introspect(driver, rs_client, tokens["access_token"], JWT_ACCEPT))
    assert claims["token_introspection"] == {"active": False}


def test_a_caller_not_entitled_gets_active_false(driver: Driver) -> None:
    """RFC 7662 4, FAPI 2.0 Message Signing 6.2: only the RS the token is meant for (or its own
    client) learns its claims; any other authenticated caller gets active false, signed for it."""
    _, _, tokens = entitled(driver, "https://rs-entitled.example.org/api")
    other_rs = driver.add_client()
    driver.as_.store.clients.add_resource_server(
        "https://rs-other.example.org/api", "Other RS", [], other_rs.client_id, 0.0
    )
    for caller in (other_rs, driver.add_client()):
        _, claims = verified(driver, introspect(driver, caller, tokens["access_token"], JWT_ACCEPT))
        assert claims["token_introspection"] == {"active": False} and claims["aud"] == caller.client_id


def test_a_client_introspecting_its_refresh_token_gets_it_signed(driver: Driver) -> None:
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"scope": "openid offline_access accounts"})
    response = driver.http.post(
        driver.url("/introspect"),
        data={
            **driver.client_auth(client),
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
        },
        headers=JWT_ACCEPT,
    )
    _, claims = verified(driver, response)
    assert claims["aud"] == client.client_id
    assert claims["token_introspection"]["token_type"] == "refresh_token"


def test_errors_stay_json(driver: Driver) -> None:
    """RFC 9701 4 (errors as RFC 7662 2.3): no client authentication is 401 invalid_client, no
    token 400 invalid_request, both JSON even when a JWT was asked for."""
    rs_client, _, tokens = entitled(driver, "https://rs-errors.example.org/api")
    response = driver.http.post(
        driver.url("/introspect"), data={"token": tokens["access_token"]}, headers=JWT_ACCEPT
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "invalid_client"
    response = driver.http.post(
        driver.url("/introspect"), data=driver.client_auth(rs_client), headers=JWT_ACCEPT
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "invalid_request"


@pytest.fixture(scope="module")
def negotiating(as_server: RunningAS) -> tuple[Client, Client, dict[str, Any]]:
    return entitled(Driver(as_server), "https://rs-accept.example.org/api")


@pytest.mark.parametrize(
    ("accept", "signed"),
    [
        ("application/token-introspection+jwt", True),
        ("Application/Token-Introspection+JWT; charset=utf-8", True),
        ("application/json;q=0.5, application/token-introspection+jwt", True),
        ("text/html, application/token-introspection+jwt;q=0.9, */*;q=0.1", True),
        ("application/token-introspection+jwt, application/json", True),
        ("application/token-introspection+jwt ; q=1.000, application/json;q=0.999", True),
        ("application/token-introspection+jwt;q=0.5, application/json", False),
        ("application/json, application/token-introspection+jwt", False),
        ("application/token-introspection+jwt;q=0", False),
        ("application/token-introspection+jwt;q=1.5", False),  # not a qvalue: the range is ignored
        ("application/token-introspection+jwt;q=", False),
        ("application/*", False),
        ("text/plain", False),
        ('application/token-introspection+jwt;x="a,b;q=0", application/json;q=0.1', True),
        ("garbage, ;;, /, */json", False),
    ],
)
def test_accept_header_negotiation(
    driver: Driver, negotiating: tuple[Client, Client, dict[str, Any]], accept: str, signed: bool
) -> None:
    """RFC 9701 4 with RFC 9110 12.5.1: media ranges, parameters and q-values, through HTTPS."""
    rs_client, _, tokens = negotiating
    response = introspect(driver, rs_client, tokens["access_token"], {"Accept": accept})
    assert response.status_code == 200
    expected = JWT_MEDIA_TYPE if signed else "application/json"
    assert response.headers["content-type"] == expected
    assert response.headers["vary"] == "Accept"
    if signed:
        assert decode_jwt(response.text)[1]["token_introspection"]["active"] is True
    else:
        assert response.json()["active"] is True


def test_accept_split_over_several_header_lines(driver: Driver) -> None:
    """RFC 9110 5.3: several Accept lines are one list."""
    rs_client, _, tokens = entitled(driver, "https://rs-lines.example.org/api")
    headers = [("Accept", "application/json;q=0.1"), ("Accept", JWT_MEDIA_TYPE)]
    response = introspect(driver, rs_client, tokens["access_token"], headers)
    assert response.headers["content-type"] == JWT_MEDIA_TYPE


@given(st.text(max_size=200))
def test_any_accept_header_gives_an_answer(accept: str) -> None:
    """Property: no Accept value makes the negotiation raise."""
    assert wants_signed_response(accept) in (True, False)
