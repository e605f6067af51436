"""AS23 (issue 13 A1): the front channel of GET /authorize beside a pushed request.

With a valid ``request_uri`` every parameter other than ``client_id`` and ``request_uri`` is
ignored (RFC 9101 5, RFC 9126 4, FAPI issue 340): only the pushed values are used or echoed,
the evidence record names what was ignored (never the values), and ``client_id`` or
``request_uri`` twice is still refused. Driven with the parameter shapes the OIDF
fapi2-security-profile-final test plan sends, in both orders, over real HTTPS on both databases.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest

from corridor.core.randomness import new_secret_token, token_hash
from corridor.server.par import REQUEST_URI_PREFIX
from tests.support import PASSWORD, REDIRECT_URI, Browser, Client, Driver, Flow, decode_jwt

OTHER_REDIRECT = "https://client.example.org/other-cb"
PUSHED_SCOPE = "openid accounts"


def assert_error_page(response: httpx.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert f'<code id="error">{error}</code>' in response.text
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def query(pairs: list[tuple[str, str]], order: str, client: Client, flow: Flow) -> str:
    """The query string: the outside parameters before or after client_id and request_uri."""
    core = [("client_id", client.client_id), ("request_uri", flow.request_uri)]
    return urlencode(pairs + core if order == "before" else core + pairs)


def complete(driver: Driver, browser: Browser, raw_query: str, user: str | None = None) -> httpx.Response:
    """GET /authorize with ``raw_query``, sign in if asked, approve; the final response."""
    first = browser.http.get(driver.url("/authorize") + "?" + raw_query)
    assert first.status_code == 303, first.text
    assert first.headers["location"].startswith("/interaction/"), first.headers["location"]
    page = browser.get(driver.url(first.headers["location"]))
    assert page.status_code == 200, page.text
    if 'name="password"' in page.text:
        page = browser.submit(page, {"username": user or driver.add_user(), "password": PASSWORD})
        assert page.status_code == 200, page.text
    final = browser.submit(page, {"decision": "approve"}, follow=False)
    assert final.status_code == 303, final.text
    return final


def callback(final: httpx.Response, redirect_uri: str) -> dict[str, str]:
    location = final.headers["location"]
    assert location.startswith(redirect_uri + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def ignored_records(driver: Driver, flow: Flow) -> list[dict[str, Any]]:
    """The ("authorize", "accepted") records of this pushed request, with their detail parsed."""
    par = token_hash(flow.request_uri[len(REQUEST_URI_PREFIX) :])
    return [
        {**r, "detail": json.loads(r["detail"])}
        for r in driver.as_.store.audit.records(par=par)
        if (r["event"], r["outcome"]) == ("authorize", "accepted")
    ]


@pytest.mark.parametrize("order", ["before", "after"])
@pytest.mark.parametrize("shape", ["oauth", "openid"])
def test_oidf_parameter_shapes_complete_a_flow(driver: Driver, order: str, shape: str) -> None:
    """The OIDF suite's front channel: response_type, scope, redirect_uri (and for OpenID the
    nonce and state again) beside client_id and request_uri, equal to the pushed ones."""
    client = driver.add_client()
    nonce = "n-" + new_secret_token()[:20]
    response, flow = driver.par(client, extra={"scope": PUSHED_SCOPE, "nonce": nonce})
    assert response.status_code == 201, response.text
    outside = [("response_type", "code"), ("scope", PUSHED_SCOPE), ("redirect_uri", client.redirect_uri)]
    if shape == "openid":
        outside += [("nonce", nonce), ("state", flow.state)]
    final = complete(driver, driver.browser(), query(outside, order, client, flow))
    flow.callback = callback(final, client.redirect_uri)
    assert set(flow.callback) == {"code", "state", "iss"}
    assert flow.callback["state"] == flow.state and flow.callback["iss"] == driver.issuer
    flow.code = flow.callback["code"]
    tokens = driver.redeem(client, flow)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == PUSHED_SCOPE
    assert decode_jwt(tokens.json()["id_token"])[1]["nonce"] == nonce
    [record] = ignored_records(driver, flow)
    assert record["detail"]["ignored_parameters"] == sorted(name for name, _ in outside)


@pytest.mark.parametrize("order", ["before", "after"])
def test_conflicting_outside_values_are_neither_used_nor_echoed(driver: Driver, order: str) -> None:
    """RFC 9101 5 / RFC 9126 4: another state, nonce, redirect_uri (even a registered one),
    scope, prompt, response_type, PKCE or resource outside changes nothing."""
    client = driver.add_client(redirect_uris=(REDIRECT_URI, OTHER_REDIRECT))
    nonce = "n-" + new_secret_token()[:20]
    response, flow = driver.par(client, extra={"scope": PUSHED_SCOPE, "nonce": nonce})
    assert response.status_code == 201, response.text
    outside_state, outside_nonce = "outside-" + new_secret_token(), "outside-" + new_secret_token()
    outside = [
        ("response_type", "code id_token"),
        ("scope", "openid payments offline_access"),
        ("redirect_uri", OTHER_REDIRECT),
        ("state", outside_state),
        ("nonce", outside_nonce),
        ("prompt", "none"),
        ("max_age", "0"),
        ("acr_values", "passkey"),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "plain"),
        ("resource", "https://evil.example/api"),
        ("resource", "https://evil.example/other"),
        ("authorization_details", '[{"type":"payment_initiation"}]'),
    ]
    final = complete(driver, driver.browser(), query(outside, order, client, flow))
    assert outside_state not in final.headers["location"]
    flow.callback = callback(final, REDIRECT_URI)  # the pushed redirect_uri, not OTHER_REDIRECT
    assert set(flow.callback) == {"code", "state", "iss"}
    assert flow.callback["state"] == flow.state
    flow.code = flow.callback["code"]
    # The code is bound to the pushed redirect_uri and PKCE challenge.
    wrong = driver.redeem(client, flow, form={"redirect_uri": OTHER_REDIRECT})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # (a refused redemption does not consume the code)
    tokens = driver.redeem(client, flow)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["scope"] == PUSHED_SCOPE
    assert "authorization_details" not in body
    _, access = decode_jwt(body["access_token"])
    assert access["scope"] == PUSHED_SCOPE and "evil.example" not in json.dumps(access)
    assert decode_jwt(body["id_token"])[1]["nonce"] == nonce
    [record] = ignored_records(driver, flow)
    detail = record["detail"]
    assert detail["ignored_parameters"] == sorted({name for name, _ in outside})
    # Names, never values: nothing sent outside reaches the evidence trail.
    everything = json.dumps([dict(r) for r in driver.as_.store.audit.records()], default=str)
    for value in (outside_state, outside_nonce, OTHER_REDIRECT, "evil.example", "code id_token"):
        assert value not in everything


def test_outside_prompt_changes_nothing(driver: Driver) -> None:
    """Only the pushed prompt counts: an outside prompt=login does not force a sign-in and an
    outside prompt=none does not end the request with consent_required."""
    client = driver.add_client()
    browser, user = driver.browser(), driver.add_user()
    _, first = driver.par(client)
    assert driver.authorize(client, first, browser=browser, username=user).status_code == 303
    for prompt in ("login", "none"):
        _, flow = driver.par(client)
        page = browser.get(
            driver.url("/authorize") + "?" + query([("prompt", prompt)], "after", client, flow)
        )
        assert page.status_code == 200 and ">Approve<" in page.text, page.text


def test_pushed_prompt_none_still_answers_with_the_pushed_state(driver: Driver) -> None:
    """The error redirect of a pushed prompt=none carries the pushed state, not the outside one."""
    client = driver.add_client()
    _, flow = driver.par(client, extra={"prompt": "none"})
    response = driver.http.get(
        driver.url("/authorize")
        + "?"
        + query([("state", "outside"), ("prompt", "login")], "before", client, flow)
    )
    assert response.status_code == 303
    reply = callback(response, client.redirect_uri)
    assert reply["error"] == "consent_required" and reply["state"] == flow.state
    assert reply["iss"] == driver.issuer


@pytest.mark.parametrize(
    "pairs",
    [
        [("client_id", "{client}"), ("client_id", "{client}"), ("request_uri", "{uri}")],
        [("client_id", "{client}"), ("request_uri", "{uri}"), ("client_id", "{client}")],
        [("client_id", "{client}"), ("request_uri", "{uri}"), ("client_id", "someone-else")],
        [("request_uri", "{uri}"), ("client_id", "{client}"), ("request_uri", "{uri}")],
        [("request_uri", "{uri}"), ("request_uri", "urn:other"), ("client_id", "{client}")],
    ],
    ids=["client_id-twice-first", "client_id-twice-last", "client_id-conflict", "uri-twice", "uri-conflict"],
)
def test_repeated_client_id_or_request_uri_is_refused(driver: Driver, pairs: list[tuple[str, str]]) -> None:
    """RFC 6749 3.1: the two parameters that are used may not repeat (error page, no redirect)."""
    client = driver.add_client()
    _, flow = driver.par(client)
    filled = [(n, v.format(client=client.client_id, uri=flow.request_uri)) for n, v in pairs]
    response = driver.http.get(driver.url("/authorize") + "?" + urlencode(filled))
    assert_error_page(response, "invalid_request")
    # The pushed request is still usable with a proper front channel.
    assert driver.authorize(client, flow).status_code == 303 and flow.code


def test_oidf_parameters_without_request_uri_are_refused(driver: Driver) -> None:
    """AS23 / FAPI2 5.3.2.2-3: the same shapes without request_uri (or an empty one) give no code."""
    client = driver.add_client()
    for extra in ([], [("request_uri", "")]):
        pairs = [
            ("client_id", client.client_id),
            ("response_type", "code"),
            ("scope", PUSHED_SCOPE),
            ("redirect_uri", client.redirect_uri),
            ("state", "s"),
            ("nonce", "n"),
            *extra,
        ]
        response = driver.http.get(driver.url("/authorize") + "?" + urlencode(pairs))
        assert_error_page(response, "invalid_request")


@pytest.mark.parametrize("order", ["before", "after"])
def test_hostile_outside_parameters_are_ignored_safely(driver: Driver, order: str) -> None:
    """Huge values, control characters, bidi overrides, invalid UTF-8 and repeats outside: still
    ignored (no 4xx, no 500), and the evidence names are bounded and escaped."""
    client = driver.add_client()
    _, flow = driver.par(client)
    core = urlencode([("client_id", client.client_id), ("request_uri", flow.request_uri)])
    hostile = "&".join(
        [
            "state=" + "A" * 8000,
            "scope=%00%0d%0aSet-Cookie:%20x=1",
            "nonce=%1b%5b31mred%e2%80%ae",
            "redirect_uri=%ff%fe",
            "state2=%ff",
            "%0aevil%1b=1",
            quote("x" * 300) + "=1",
            "prompt=none",
            "prompt=login",
        ]
    )
    raw = hostile + "&" + core if order == "before" else core + "&" + hostile
    final = complete(driver, driver.browser(), raw)
    flow.callback = callback(final, client.redirect_uri)
    assert flow.callback["state"] == flow.state and set(flow.callback) == {"code", "state", "iss"}
    flow.code = flow.callback["code"]
    assert driver.redeem(client, flow).status_code == 200
    [record] = ignored_records(driver, flow)
    names = record["detail"]["ignored_parameters"]
    assert isinstance(names, list)
    assert {"state", "scope", "nonce", "redirect_uri", "state2", "prompt"} <= set(names)
    assert "\\x0aevil\\x1b" in names  # control characters escaped, never stored raw
    assert all(len(name) <= 64 and name.isprintable() for name in names)
    assert all(isinstance(record[k], str) or record[k] is None for k in ("client_id", "rule"))
