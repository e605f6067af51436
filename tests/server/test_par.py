"""Pushed authorization requests: AS10, AS21-AS28, AS32, AS34, D15-D17 and RFC 9126 details."""

from __future__ import annotations

import json

import httpx
import pytest

from corridor.core.jose import SigningKey
from tests.support import RESOURCE, Driver


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"


def test_par_answers_201_with_short_lived_request_uri(driver: Driver) -> None:
    """AS22 / RFC 9126 2.2, AS32 / FAPI2 5.3.2.2-12: 201, urn request_uri, expires_in < 600."""
    response, _ = driver.par(driver.add_client())
    assert response.status_code == 201
    body = response.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert len(body["request_uri"].rsplit(":", 1)[1]) >= 43  # FAPI2 5.4.1-4
    assert 30 <= body["expires_in"] < 600


def test_par_without_client_authentication(driver: Driver) -> None:
    """AS10 / AS24: client_id alone is not authentication."""
    client = driver.add_client()
    response, _ = driver.par(client, drop=("client_assertion", "client_assertion_type"))
    assert_error(response, 401, "invalid_client")
    assert "www-authenticate" not in response.headers  # no Authorization header was used


def test_par_rejects_request_uri_parameter(driver: Driver) -> None:
    """RFC 9126 2.1."""
    response, _ = driver.par(
        driver.add_client(), extra={"request_uri": "urn:ietf:params:oauth:request_uri:x"}
    )
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("response_type", ["code id_token", "token", "id_token"])
def test_par_requires_response_type_code(driver: Driver, response_type: str) -> None:
    """AS21 / FAPI2 5.3.2.2-1."""
    response, _ = driver.par(driver.add_client(), extra={"response_type": response_type})
    assert_error(response, 400, "unsupported_response_type")


def test_par_without_response_type(driver: Driver) -> None:
    response, _ = driver.par(driver.add_client(), drop=("response_type",))
    assert_error(response, 400, "invalid_request")


def test_par_requires_pkce(driver: Driver) -> None:
    """AS25 / FAPI2 5.3.2.2-5: no challenge, plain, or a malformed challenge are refused."""
    client = driver.add_client()
    assert_error(driver.par(client, drop=("code_challenge",))[0], 400, "invalid_request")
    assert_error(driver.par(client, drop=("code_challenge_method",))[0], 400, "invalid_request")
    assert_error(driver.par(client, extra={"code_challenge_method": "plain"})[0], 400, "invalid_request")
    assert_error(driver.par(client, extra={"code_challenge": "short"})[0], 400, "invalid_request")


def test_par_requires_redirect_uri_even_with_one_registered(driver: Driver) -> None:
    """AS26 / FAPI2 5.3.2.2-6."""
    response, _ = driver.par(driver.add_client(), drop=("redirect_uri",))
    assert_error(response, 400, "invalid_request")


def test_par_rejects_unregistered_redirect_uri(driver: Driver) -> None:
    response, _ = driver.par(driver.add_client(), extra={"redirect_uri": "https://attacker.example/cb"})
    assert_error(response, 400, "invalid_request")


def test_par_rejects_plain_http_redirect_uri(driver: Driver) -> None:
    """AS28 / FAPI2 5.3.2.2-8: http is refused except for loopback."""
    response, _ = driver.par(driver.add_client(), extra={"redirect_uri": "http://client.example/cb"})
    assert_error(response, 400, "invalid_request")


def test_par_accepts_loopback_http_redirect_uri(driver: Driver) -> None:
    """AS28: RFC 8252 7.3 loopback redirect URIs stay allowed."""
    client = driver.add_client(redirect_uris=("http://127.0.0.1:8765/callback",))
    response, _ = driver.par(client)
    assert response.status_code == 201, response.text


def test_par_nonce_up_to_64_characters(driver: Driver) -> None:
    """AS34 / FAPI2 5.3.2.2-14: 64 accepted (and echoed), 65 refused."""
    client = driver.add_client()
    nonce = "n" * 64
    _, tokens = driver.full_flow(client, extra={"nonce": nonce})
    from tests.support import decode_jwt

    assert decode_jwt(tokens["id_token"])[1]["nonce"] == nonce
    assert_error(driver.par(client, extra={"nonce": "n" * 65})[0], 400, "invalid_request")


def test_openid_without_nonce_works(driver: Driver) -> None:
    """AS35 / FAPI2 5.3.2.3: nonce is optional; the ID token then has none."""
    from tests.support import decode_jwt

    _, tokens = driver.full_flow(driver.add_client())
    header, claims = decode_jwt(tokens["id_token"])
    assert header["alg"] in {"PS256", "ES256", "EdDSA"}
    assert "nonce" not in claims


def test_long_state_is_accepted(driver: Driver) -> None:
    """FAPI2 5.3.2.2 Note 4: state may exceed 1000 characters."""
    client = driver.add_client()
    state = "s" * 2000
    response, flow = driver.par(client, extra={"state": state})
    assert response.status_code == 201
    flow.state = state
    driver.authorize(client, flow)
    assert flow.callback["state"] == state


def test_par_unknown_scope(driver: Driver) -> None:
    response, _ = driver.par(driver.add_client(scope="openid"), extra={"scope": "openid payments"})
    assert_error(response, 400, "invalid_scope")


def test_par_unknown_resource(driver: Driver) -> None:
    """RFC 8707 2: an unregistered resource is invalid_target."""
    response, _ = driver.par(driver.add_client(), extra={"resource": "https://unknown.example/api"})
    assert_error(response, 400, "invalid_target")


def test_par_resource_sets_token_audience(driver: Driver) -> None:
    from tests.support import decode_jwt

    _, tokens = driver.full_flow(driver.add_client(), extra={"resource": RESOURCE})
    assert decode_jwt(tokens["access_token"])[1]["aud"] == RESOURCE


@pytest.mark.parametrize(
    "details",
    [
        "not json",
        json.dumps({"type": "payment_initiation"}),
        json.dumps([{"type": "unknown_type"}]),
        json.dumps([{"no_type": 1}]),
        json.dumps([{"type": "payment_initiation", "actions": "pay"}]),
    ],
)
def test_par_invalid_authorization_details(driver: Driver, details: str) -> None:
    """RFC 9396 5."""
    response, _ = driver.par(driver.add_client(), extra={"authorization_details": details})
    assert_error(response, 400, "invalid_authorization_details")


def test_authorization_details_reach_the_token(driver: Driver) -> None:
    """RFC 9396 7, 9.1: granted details in the token response and the access token."""
    from tests.support import decode_jwt

    details = [
        {
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": "123.50"},
            "creditorName": "Merchant A",
        }
    ]
    _, tokens = driver.full_flow(driver.add_client(), extra={"authorization_details": json.dumps(details)})
    assert tokens["authorization_details"] == details
    assert decode_jwt(tokens["access_token"])[1]["authorization_details"] == details


def test_par_repeated_parameter(driver: Driver) -> None:
    """RFC 6749 3.1: parameters must not repeat."""
    client = driver.add_client()
    form = [("scope", "openid"), ("scope", "accounts"), *driver.client_auth(client).items()]
    response = driver.http.post(
        driver.url("/par"),
        content="&".join(f"{k}={v}" for k, v in form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(response, 400, "invalid_request")


def test_par_requires_form_encoding(driver: Driver) -> None:
    response = driver.http.post(driver.url("/par"), json={"response_type": "code"})
    assert_error(response, 400, "invalid_request")


def test_par_request_object_that_is_not_a_jws(driver: Driver) -> None:
    """RFC 9101 6.2 (signed request objects: tests/server/test_request_object.py)."""
    response, _ = driver.par(driver.add_client(), extra={"request": "eyJ.eyJ.sig"})
    assert_error(response, 400, "invalid_request_object")


# -- DPoP at PAR (RFC 9449 10.1; D15-D17) --------------------------------------------------------


def test_dpop_jkt_mismatching_the_par_proof_is_refused(driver: Driver) -> None:
    """D17: dpop_jkt and the DPoP header name different keys."""
    other = SigningKey.generate("ES256")
    response, _ = driver.par(driver.add_client(), extra={"dpop_jkt": other.thumbprint()})
    assert_error(response, 400, "invalid_dpop_proof")


def test_malformed_dpop_jkt(driver: Driver) -> None:
    response, _ = driver.par(driver.add_client(), dpop=False, extra={"dpop_jkt": "not-a-thumbprint"})
    assert_error(response, 400, "invalid_request")


def test_code_bound_by_dpop_jkt_needs_that_key(driver: Driver) -> None:
    """D15: PAR dpop_jkt = thumb(A); token proof with B is refused; with A it works."""
    client = driver.add_client()
    response, flow = driver.par(client, dpop=False, extra={"dpop_jkt": client.dpop_key.thumbprint()})
    assert response.status_code == 201
    driver.authorize(client, flow)
    other = SigningKey.generate("ES256")
    assert_error(driver.redeem(client, flow, dpop_key=other), 400, "invalid_grant")


def test_code_bound_by_dpop_jkt_with_right_key(driver: Driver) -> None:
    client = driver.add_client()
    _response, flow = driver.par(client, dpop=False, extra={"dpop_jkt": client.dpop_key.thumbprint()})
    driver.authorize(client, flow)
    assert driver.redeem(client, flow).status_code == 200


def test_code_bound_by_par_proof_needs_that_key(driver: Driver) -> None:
    """D16: a DPoP header at PAR binds the code like dpop_jkt."""
    client = driver.add_client()
    _response, flow = driver.par(client)
    driver.authorize(client, flow)
    other = SigningKey.generate("ES256")
    assert_error(driver.redeem(client, flow, dpop_key=other), 400, "invalid_grant")


def test_par_proof_with_wrong_htu(driver: Driver) -> None:
    """D9: a proof made for the token endpoint is refused at PAR."""
    client = driver.add_client()
    proof = driver.proof(client, "POST", driver.url("/token"))
    response, _ = driver.par(client, dpop=False, headers={"DPoP": proof})
    assert_error(response, 400, "invalid_dpop_proof")


@pytest.mark.parametrize(
    "extra",
    [
        {"response_mode": "form_post"},  # query or JARM (jwt, query.jwt) only: tests/server/test_jarm.py
        {"max_age": "²"},  # OIDC Core 3.1.2.1: a non-negative ASCII integer
        {"max_age": "-1"},
        {"prompt": "select_account"},
        {"prompt": "none login"},
        {"acr_values": "x" * 65},
        {"dpop_jkt": "A" * 43 + "\n"},  # a thumbprint, exactly
    ],
)
def test_par_malformed_optional_parameters(driver: Driver, extra: dict[str, str]) -> None:
    response, _ = driver.par(driver.add_client(), dpop="dpop_jkt" not in extra, extra=extra)
    assert_error(response, 400, "invalid_request")


def test_par_code_challenge_with_trailing_newline(driver: Driver) -> None:
    """FAPI2 5.3.2.2-5 / RFC 7636 4.2: an S256 challenge is exactly 43 base64url characters."""
    response, _ = driver.par(driver.add_client(), extra={"code_challenge": "A" * 43 + "\n"})
    assert_error(response, 400, "invalid_request")
