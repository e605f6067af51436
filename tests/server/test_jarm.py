"""Signed authorization responses (JARM, FAPI 2.0 Message Signing 5.4.1) through real HTTPS:
the response as one JWT in ``?response=``, success and errors, per-client ``response_modes``
(FAPI2 MS 5.3.3), ``authorization_signed_response_alg`` (JARM 3), and the JWS kept as evidence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from corridor.core.jose import read_header, verify_with_keys
from corridor.core.rules import Rule
from corridor.transport.tls import DevTLS
from tests.support import Client, Driver, Flow, running_as

#: Not the default 60 s, so the test shows the setting is what sets ``exp``.
JARM_LIFETIME = 120
AS_SETTINGS = {"jarm_lifetime": JARM_LIFETIME}


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text
    assert response.headers["cache-control"] == "no-store"
    assert "location" not in response.headers


def query_of(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.headers["location"]).query, keep_blank_values=True)


def verified(driver: Driver, jws: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JWT's header and claims, its signature verified with the AS's published key named by
    the header's ``kid`` (the suite's ValidateJARMSignatureUsingKid requires a kid)."""
    keys = driver.http.get(driver.url("/jwks")).json()["keys"]
    header = read_header(jws)
    named = [k for k in keys if k["kid"] == header["kid"]]
    assert len(named) == 1
    return header, verify_with_keys(jws, header, named)


def jarm_claims(driver: Driver, client: Client, flow: Flow, response: httpx.Response) -> dict[str, Any]:
    """JARM 2.3.1 / the OIDF suite's RejectNonJarmResponsesInUrlQuery: the redirect carries only
    ``response``; its JWT verifies with the AS's key and names this AS and this client."""
    location = response.headers["location"]
    assert location.startswith(client.redirect_uri + "?")
    query = query_of(response)
    assert set(query) == {"response"}, query  # no iss, code, state or error outside the JWT
    jws = query["response"][0]
    header, claims = verified(driver, jws)
    assert header["alg"] == "ES256"
    assert claims["iss"] == driver.issuer
    assert claims["aud"] == client.client_id
    assert driver.now() - 10 <= claims["iat"] <= driver.now()  # the AS's (movable) clock
    assert claims["exp"] - claims["iat"] == JARM_LIFETIME
    flow.code = claims.get("code", "")
    return claims


def records_of(driver: Driver, client: Client) -> list[dict[str, Any]]:
    return [dict(r) for r in driver.as_.store.audit.records() if r["client_id"] == client.client_id]


@pytest.mark.parametrize("mode", ["jwt", "query.jwt"])
def test_success_is_one_signed_jwt_and_its_code_works(driver: Driver, mode: str) -> None:
    """FAPI2 MS 5.4.1, JARM 2.1 / 2.3.1 (``jwt`` = ``query.jwt`` for code): iss, aud, exp, code,
    state inside the JWT; the code inside redeems at the token endpoint."""
    client = driver.add_client()
    response, flow = driver.par(client, extra={"response_mode": mode})
    assert response.status_code == 201, response.text
    final = driver.authorize(client, flow)
    claims = jarm_claims(driver, client, flow, final)
    assert set(claims) == {"iss", "aud", "exp", "iat", "code", "state"}
    assert claims["state"] == flow.state
    assert len(flow.code) >= 43
    tokens = driver.redeem(client, flow)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["token_type"] == "DPoP"


def test_without_state_the_jwt_has_none(driver: Driver) -> None:
    """RFC 6749 4.1.2: state only when the request had one (the suite's ...-without-state-success)."""
    client = driver.add_client()
    _, flow = driver.par(client, extra={"response_mode": "jwt"}, drop=("state",))
    claims = jarm_claims(driver, client, flow, driver.authorize(client, flow))
    assert "state" not in claims and flow.code
    assert driver.redeem(client, flow).status_code == 200


def test_iat_and_exp_follow_the_server_clock(driver: Driver) -> None:
    """JARM 2.1: ``exp`` is the server's now plus jarm_lifetime (the injectable clock, moved)."""
    client = driver.add_client()
    driver.as_.clock.advance(86_400)
    _, flow = driver.par(client, extra={"response_mode": "jwt"})
    claims = jarm_claims(driver, client, flow, driver.authorize(client, flow))
    assert claims["iat"] >= driver.now() - 10 > claims["iat"] - 86_400
    assert driver.redeem(client, flow).status_code == 200


def test_redirect_uri_with_a_query_keeps_it(driver: Driver) -> None:
    """RFC 6749 3.1.2: the registered URI's own query stays; ``response`` is added to it."""
    uri = "https://client.example.org/cb?tenant=7"
    client = driver.add_client(redirect_uris=(uri,))
    _, flow = driver.par(client, extra={"response_mode": "jwt"})
    final = driver.authorize(client, flow)
    query = query_of(final)
    assert set(query) == {"tenant", "response"} and query["tenant"] == ["7"]
    _, claims = verified(driver, query["response"][0])
    assert claims["state"] == flow.state and claims["code"]


def test_user_denial_is_a_signed_error(driver: Driver) -> None:
    """JARM 2.1: error responses are JWTs too (the suite's user-rejects-authentication)."""
    client = driver.add_client()
    _, flow = driver.par(client, extra={"response_mode": "jwt"})
    final = driver.authorize(client, flow, decision="deny")
    claims = jarm_claims(driver, client, flow, final)
    assert {k: claims[k] for k in ("error", "error_description", "state")} == {
        "error": "access_denied",
        "error_description": "the user denied the request",
        "state": flow.state,
    }
    assert "code" not in claims


def test_error_redirect_is_a_signed_error(driver: Driver) -> None:
    """RFC 6749 4.1.2.1, OIDC Core 3.1.2.6: prompt=none is answered consent_required, as a JWT."""
    client = driver.add_client()
    _, flow = driver.par(client, extra={"response_mode": "query.jwt", "prompt": "none"})
    response = driver.http.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    claims = jarm_claims(driver, client, flow, response)
    assert claims["error"] == "consent_required"
    assert claims["error_description"] == "this server always asks for consent"
    assert claims["state"] == flow.state
    refused = [r for r in records_of(driver, client) if r["event"] == "authorize"]
    assert [(r["outcome"], r["error"], r["rule"]) for r in refused] == [
        ("refused", "consent_required", Rule.OIDC_CORE_3_1_2_6)
    ]
    jws = query_of(response)["response"][0]
    evidence = json.loads(refused[0]["detail"])["authorization_response"]
    assert evidence["sha256"] == hashlib.sha256(jws.encode()).hexdigest()
    assert evidence["mode"] == "query.jwt"
    kept = driver.as_.store.messages.get(evidence["sha256"])
    assert kept is not None and kept["jws"] == jws and kept["kind"] == "authorization_response"


def test_plain_response_is_unchanged(driver: Driver) -> None:
    """Positive control: without response_mode (or with query) the answer is as before, with iss
    in the query (RFC 9207 2), and nothing is kept as a signed message."""
    client = driver.add_client()
    for extra in ({}, {"response_mode": "query"}):
        _, flow = driver.par(client, extra=extra)
        final = driver.authorize(client, flow)
        assert set(flow.callback) == {"code", "state", "iss"}, final.headers
        assert flow.callback["iss"] == driver.issuer
        assert driver.redeem(client, flow).status_code == 200
    code_records = [r for r in records_of(driver, client) if r["event"] == "code"]
    assert len(code_records) == 2
    assert all("authorization_response" not in json.loads(r["detail"]) for r in code_records)


# -- the modes a request may ask for ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fragment", "form_post", "fragment.jwt", "form_post.jwt", "jwt ", "x"])
def test_unsupported_response_modes_are_refused(driver: Driver, mode: str) -> None:
    """OAuth Multiple Response Types 2.1, JARM 2.3: code responses go in the query only."""
    response, _ = driver.par(driver.add_client(), extra={"response_mode": mode})
    assert_error(response, 400, "invalid_request")
    assert response.json()["error_description"] == "response_mode is not supported; use query, jwt, query.jwt"


@pytest.mark.parametrize("asked", [None, "", "query", "query.jwt"])
def test_jarm_only_client_asking_otherwise_is_refused(driver: Driver, asked: str | None) -> None:
    """FAPI2 MS 5.3.3: a client registered for ``jwt`` only may not ask for a plain response; an
    absent response_mode is ``query`` (as oidc-provider resolves it; an empty one is absent,
    RFC 6749 3.1), and registered modes match exactly."""
    client = driver.add_client(response_modes=("jwt",))
    response, _ = driver.par(client, extra={} if asked is None else {"response_mode": asked})
    assert_error(response, 400, "invalid_request")
    assert response.json()["error_description"] == (
        f"response_mode {asked or 'query'} is not registered for this client (FAPI2 MS 5.3.3 response_modes)"
    )
    refused = records_of(driver, client)
    assert [(r["event"], r["outcome"], r["rule"]) for r in refused] == [
        ("par", "refused", Rule.FAPI2_MS_5_3_3)
    ]
    # Positive control: the same client, asking for jwt, is served.
    ok, flow = driver.par(client, extra={"response_mode": "jwt"})
    assert ok.status_code == 201, ok.text
    jarm_claims(driver, client, flow, driver.authorize(client, flow))
    assert driver.redeem(client, flow).status_code == 200


def test_query_only_client_asking_jwt_is_refused(driver: Driver) -> None:
    """FAPI2 MS 5.3.3: a client registered for ``query`` only may not ask for JARM."""
    client = driver.add_client(response_modes=("query",))
    for mode in ("jwt", "query.jwt"):
        response, _ = driver.par(client, extra={"response_mode": mode})
        assert_error(response, 400, "invalid_request")
        assert response.json()["error_description"] == (
            f"response_mode {mode} is not registered for this client (FAPI2 MS 5.3.3 response_modes)"
        )
    _, flow = driver.par(client)
    driver.authorize(client, flow)
    assert set(flow.callback) == {"code", "state", "iss"}


def test_client_registered_for_both_jarm_modes_uses_either(driver: Driver) -> None:
    client = driver.add_client(response_modes=("jwt", "query.jwt"))
    for mode in ("jwt", "query.jwt"):
        response, flow = driver.par(client, extra={"response_mode": mode})
        assert response.status_code == 201, response.text
        assert jarm_claims(driver, client, flow, driver.authorize(client, flow))["code"]


# -- authorization_signed_response_alg -------------------------------------------------------------


def test_registered_alg_of_the_server_key_is_honoured(driver: Driver) -> None:
    """JARM 3: the JWT is signed with the client's authorization_signed_response_alg."""
    client = driver.add_client(response_modes=("jwt",), authorization_signed_response_alg="ES256")
    _, flow = driver.par(client, extra={"response_mode": "jwt"})
    final = driver.authorize(client, flow)
    assert jarm_claims(driver, client, flow, final)["code"]
    assert read_header(query_of(final)["response"][0])["alg"] == "ES256"


def test_registered_alg_the_server_cannot_sign_is_refused_at_par(driver: Driver) -> None:
    """JARM 3: this AS signs with its one active key (ES256 here); a client that wants PS256
    responses is told at PAR, not after the user consented."""
    client = driver.add_client(authorization_signed_response_alg="PS256")
    response, _ = driver.par(client, extra={"response_mode": "jwt"})
    assert_error(response, 400, "invalid_request")
    assert response.json()["error_description"] == (
        "authorization_signed_response_alg PS256 is not this server's signing alg ES256"
    )
    assert records_of(driver, client)[-1]["rule"] == Rule.JARM_3
    # The alg concerns signed responses only: a plain request of the same client is served.
    ok, _ = driver.par(client)
    assert ok.status_code == 201, ok.text


# -- evidence ------------------------------------------------------------------------------------


def test_code_record_names_the_signed_response_and_the_jws_is_kept(driver: Driver) -> None:
    """Issue 17 evidence: the code issued record keeps the JWS's SHA-256, kid, alg and mode; the
    signed messages store gives back the exact JWS the client received."""
    client = driver.add_client()
    _, flow = driver.par(client, extra={"response_mode": "jwt"})
    final = driver.authorize(client, flow)
    jarm_claims(driver, client, flow, final)
    jws = query_of(final)["response"][0]
    sha256 = hashlib.sha256(jws.encode()).hexdigest()
    records = records_of(driver, client)
    par = next(r for r in records if r["event"] == "par")
    assert json.loads(par["detail"])["response_mode"] == "jwt"
    code = next(r for r in records if r["event"] == "code")
    assert code["outcome"] == "issued"
    assert json.loads(code["detail"])["authorization_response"] == {
        "sha256": sha256,
        "kid": read_header(jws)["kid"],
        "alg": "ES256",
        "mode": "jwt",
    }
    kept = driver.as_.store.messages.get(sha256)
    assert kept is not None
    assert kept["jws"] == jws
    assert kept["kind"] == "authorization_response" and kept["client_id"] == client.client_id


def test_denial_record_names_the_signed_response(driver: Driver) -> None:
    client = driver.add_client()
    _, flow = driver.par(client, extra={"response_mode": "jwt"})
    final = driver.authorize(client, flow, decision="deny")
    jws = query_of(final)["response"][0]
    denied = next(r for r in records_of(driver, client) if r["outcome"] == "denied")
    evidence = json.loads(denied["detail"])["authorization_response"]
    assert evidence["sha256"] == hashlib.sha256(jws.encode()).hexdigest()
    kept = driver.as_.store.messages.get(evidence["sha256"])
    assert kept is not None and kept["jws"] == jws


def test_server_wide_jarm_requirement(tmp_path: Path, tls: DevTLS) -> None:
    """settings.require_signed_authorization_response (FAPI2 MS 5.4.1, "require use of" JARM): a
    client registered for any mode is refused a plain response, and served a signed one."""
    with running_as(
        tmp_path, tls, require_signed_authorization_response=True, jarm_lifetime=JARM_LIFETIME
    ) as as_:
        driver = Driver(as_)
        try:
            client = driver.add_client()
            for asked in ({}, {"response_mode": "query"}):
                response, _ = driver.par(client, extra=asked)
                assert_error(response, 400, "invalid_request")
                assert response.json()["error_description"] == (
                    "this server answers with signed authorization responses only: send "
                    "response_mode=jwt (FAPI2 MS 5.4.1)"
                )
            ok, flow = driver.par(client, extra={"response_mode": "jwt"})
            assert ok.status_code == 201, ok.text
            jarm_claims(driver, client, flow, driver.authorize(client, flow))
            assert driver.redeem(client, flow).status_code == 200
        finally:
            driver.http.close()
