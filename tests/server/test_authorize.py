"""The authorization endpoint and its pages: AS13, AS23, AS27, AS30-AS33, Note 3 of 5.3.2.2."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support import PASSWORD, Driver


def assert_error_page(response: httpx.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert f'<code id="error">{error}</code>' in response.text
    assert "Traceback" not in response.text


def test_unpushed_request_is_refused(driver: Driver) -> None:
    """AS23 / FAPI2 5.3.2.2-3: a full front-channel request without request_uri gets no code."""
    client = driver.add_client()
    response = driver.http.get(
        driver.url("/authorize"),
        params={
            "client_id": client.client_id,
            "response_type": "code",
            "redirect_uri": client.redirect_uri,
            "scope": "openid",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
    )
    assert_error_page(response, "invalid_request")


def test_unknown_client_or_request_uri_gets_error_page(driver: Driver) -> None:
    """AS13 / RFC 9700 4.11: no redirect before the client and redirect URI are trusted."""
    client = driver.add_client()
    bad = driver.http.get(driver.url("/authorize"), params={"client_id": "nobody", "request_uri": "urn:x"})
    assert_error_page(bad, "invalid_request")
    unknown = driver.http.get(
        driver.url("/authorize"),
        params={"client_id": client.client_id, "request_uri": "urn:ietf:params:oauth:request_uri:nope"},
    )
    assert_error_page(unknown, "invalid_request_uri")


def test_request_uri_bound_to_pushing_client(driver: Driver) -> None:
    """RFC 9126 4: another client_id cannot use a pushed request."""
    client, other = driver.add_client(), driver.add_client()
    _, flow = driver.par(client)
    response = driver.http.get(
        driver.url("/authorize"), params={"client_id": other.client_id, "request_uri": flow.request_uri}
    )
    assert_error_page(response, "invalid_request_uri")


def test_expired_request_uri(driver: Driver) -> None:
    """AS32 / FAPI2 5.3.2.2-12: after expires_in, the request_uri gives no code."""
    client = driver.add_client()
    response, flow = driver.par(client)
    driver.as_.clock.advance(response.json()["expires_in"] + 1)
    page = driver.browser().get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    assert_error_page(page, "invalid_request_uri")


def test_success_response_has_code_state_iss_and_303(driver: Driver) -> None:
    """AS27 / RFC 9207, AS31: 303 with code, state, iss."""
    client = driver.add_client()
    _, flow = driver.par(client)
    final = driver.authorize(client, flow)
    assert final.status_code == 303
    assert set(flow.callback) == {"code", "state", "iss"}
    assert flow.callback["iss"] == driver.issuer
    assert len(flow.code) >= 43  # FAPI2 5.4.1-4


def test_deny_returns_access_denied_with_iss(driver: Driver) -> None:
    """AS27: the error response carries iss and state too."""
    client = driver.add_client()
    _, flow = driver.par(client)
    final = driver.authorize(client, flow, decision="deny")
    assert final.status_code == 303
    assert flow.callback == {
        "error": "access_denied",
        "error_description": "the user denied the request",
        "state": flow.state,
        "iss": driver.issuer,
    }


def test_login_post_redirects_with_303(driver: Driver) -> None:
    """AS30 / FAPI2 5.3.2.2-10: the credential POST is answered with 303, never 307."""
    client = driver.add_client()
    _, flow = driver.par(client)
    browser = driver.browser()
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    action, csrf = browser.form_of(page)
    response = browser.http.post(
        driver.url(action), data={"csrf": csrf, "username": driver.add_user(), "password": PASSWORD}
    )
    assert response.status_code == 303


def test_wrong_password_shows_the_form_again(driver: Driver) -> None:
    client = driver.add_client()
    _, flow = driver.par(client)
    browser = driver.browser()
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    again = browser.submit(page, {"username": driver.add_user(), "password": "wrong"})
    assert again.status_code == 400
    assert "Wrong user name or password" in again.text and 'name="password"' in again.text


def test_forms_need_the_csrf_token(driver: Driver) -> None:
    client = driver.add_client()
    _, flow = driver.par(client)
    browser = driver.browser()
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    action, _ = browser.form_of(page)
    response = browser.http.post(
        driver.url(action), data={"csrf": "forged", "username": "x", "password": "y"}
    )
    assert_error_page(response, "invalid_request")


def test_interaction_is_bound_to_the_browser(driver: Driver) -> None:
    """A second browser that learns the interaction URL cannot use it (no session swapping)."""
    client = driver.add_client()
    _, flow = driver.par(client)
    browser = driver.browser()
    first = browser.http.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    assert first.status_code == 303
    other = driver.browser().http.get(driver.url(first.headers["location"]))
    assert_error_page(other, "invalid_request")


def test_request_uri_single_use_enforced_at_completion(driver: Driver) -> None:
    """FAPI2 5.3.2.2-12 Note 3: two browsers load the same request; only one can complete it."""
    client = driver.add_client()
    _, flow = driver.par(client)
    user = driver.add_user()
    pages = []
    for _ in range(2):
        browser = driver.browser()
        page = browser.get(
            driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
        )
        pages.append((browser, browser.submit(page, {"username": user, "password": PASSWORD})))
    first = pages[0][0].submit(pages[0][1], {"decision": "approve"}, follow=False)
    second = pages[1][0].submit(pages[1][1], {"decision": "approve"}, follow=False)
    assert first.status_code == 303 and "code=" in first.headers["location"]
    assert_error_page(second, "invalid_request_uri")
    # And the used request_uri can no longer start a flow.
    again = driver.browser().get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    assert_error_page(again, "invalid_request_uri")


def test_pages_have_anti_framing_csp_and_no_store(driver: Driver) -> None:
    client = driver.add_client()
    _, flow = driver.par(client)
    browser = driver.browser()
    login = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    consent = browser.submit(login, {"username": driver.add_user(), "password": PASSWORD})
    for page in (login, consent):
        assert page.headers["x-frame-options"] == "DENY"
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert page.headers["cache-control"] == "no-store"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # Script runs only by nonce, and only on pages with a passkey ceremony (the login page).
    nonce = re.search(r"script-src 'nonce-([^']+)'", login.headers["content-security-policy"])
    assert nonce and re.findall(r"<script[^>]*>", login.text) == [f'<script nonce="{nonce.group(1)}">']
    assert "script-src" not in consent.headers["content-security-policy"] and "<script" not in consent.text
    # The consent form may redirect only to the client's origin after the POST.
    assert "form-action 'self' https://client.example.org;" in consent.headers["content-security-policy"]


def test_consent_page_shows_what_is_granted(driver: Driver) -> None:
    """AS33 / FAPI2 5.3.2.2-13: client, redirect host, scopes in words, resources, sender constraint."""
    import json

    from tests.support import RESOURCE

    client = driver.add_client()
    details = [
        {
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": "12.00"},
            "creditorName": "Shop",
        }
    ]
    _, flow = driver.par(
        client,
        extra={
            "scope": "openid payments",
            "resource": RESOURCE,
            "authorization_details": json.dumps(details),
        },
    )
    browser = driver.browser()
    login = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    consent = browser.submit(login, {"username": driver.add_user(), "password": PASSWORD})
    text = consent.text.replace("<bdi>", "").replace("</bdi>", "")  # values are isolated (issue 13 E3)
    assert "Test client" in text and "client.example.org" in text
    assert "Initiate payments from your accounts" in text
    assert "payment_initiation" in text and "Pay up to 12.00 EUR in all to Shop" in text
    assert RESOURCE in text
    assert client.dpop_key.thumbprint() in text
    assert 'value="approve"' in text and ">Approve<" in text and ">Deny<" in text


def test_existing_session_skips_login(driver: Driver) -> None:
    client = driver.add_client()
    browser = driver.browser()
    user = driver.add_user()
    _, first = driver.par(client)
    driver.authorize(client, first, browser=browser, username=user)
    _, second = driver.par(client)
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": second.request_uri}
    )
    assert ">Approve<" in page.text


def test_prompt_login_forces_a_new_login(driver: Driver) -> None:
    client = driver.add_client()
    browser = driver.browser()
    user = driver.add_user()
    _, first = driver.par(client)
    driver.authorize(client, first, browser=browser, username=user)
    _, second = driver.par(client, extra={"prompt": "login"})
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": second.request_uri}
    )
    assert 'name="password"' in page.text


def test_prompt_none_is_answered_with_consent_required(driver: Driver) -> None:
    client = driver.add_client()
    _, flow = driver.par(client, extra={"prompt": "none"})
    response = driver.http.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["consent_required"] and query["iss"] == [driver.issuer]
