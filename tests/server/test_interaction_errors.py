"""The sign-in and consent pages when what they rest on is gone (issue 13 B6, D5).

An interaction outlives its pushed request (600 s against 90 s): a request that expired or was
purged, a client removed, a user removed while signed in each end in a safe error page (400,
CSP and anti-framing) or a fresh sign-in, never a 500 and never a code. ``max_age=0`` is
satisfied by a sign-in in the same interaction (OIDC Core 3.1.2.1). Real HTTPS, both databases.
"""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from corridor.core.randomness import token_hash
from corridor.server.par import REQUEST_URI_PREFIX
from corridor.store import schema
from tests.support import PASSWORD, Browser, Client, Driver, Flow, decode_jwt


def assert_error_page(response: httpx.Response, error: str, words: str) -> None:
    """RFC 9700 4.11: no redirect; the page is framed like every other one."""
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert f'<code id="error">{error}</code>' in response.text
    assert words in response.text, response.text
    assert response.headers["x-frame-options"] == "DENY"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert response.headers["cache-control"] == "no-store"


def open_interaction(driver: Driver, client: Client, flow: Flow, browser: Browser) -> httpx.Response:
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    assert page.status_code == 200 and 'name="password"' in page.text, page.text
    return page


def codes_and_grants(driver: Driver, client: Client) -> tuple[int, int]:
    with driver.as_.store.engine.connect() as conn:
        codes = conn.execute(
            select(func.count())
            .select_from(schema.authorization_codes)
            .where(schema.authorization_codes.c.client_id == client.client_id)
        ).scalar_one()
        grants = conn.execute(
            select(func.count())
            .select_from(schema.grants)
            .where(schema.grants.c.client_id == client.client_id)
        ).scalar_one()
    return codes, grants


def par_hash(flow: Flow) -> str:
    return token_hash(flow.request_uri[len(REQUEST_URI_PREFIX) :])


# -- D5: the pushed request's lifetime holds until the code is issued -----------------------------


def test_approval_after_the_pushed_request_expired_gives_no_code(driver: Driver) -> None:
    """FAPI2 5.3.2.2-12 / RFC 9126 2.2: a consent page shown in time, approved 95 s after a 90 s
    ``expires_in``: no code, an error page, the request left unconsumed."""
    client = driver.add_client()
    response, flow = driver.par(client)
    lifetime = response.json()["expires_in"]
    browser = driver.browser()
    consent = browser.submit(
        open_interaction(driver, client, flow, browser), {"username": driver.add_user(), "password": PASSWORD}
    )
    assert ">Approve<" in consent.text
    driver.as_.clock.advance(lifetime + 5)
    final = browser.submit(consent, {"decision": "approve"}, follow=False)
    assert_error_page(final, "invalid_request_uri", "expired")
    assert codes_and_grants(driver, client) == (0, 0)
    pushed = driver.as_.store.requests.pushed(par_hash(flow))
    assert pushed is not None and pushed["consumed_at"] is None
    refused = [
        (r["event"], r["outcome"], r["error"], r["rule"])
        for r in driver.as_.store.audit.records(par=par_hash(flow))
        if r["outcome"] == "refused"
    ]
    assert refused == [("interaction", "refused", "invalid_request_uri", "FAPI2 5.3.2.2-12")]


def test_sign_in_after_the_pushed_request_expired_is_refused(driver: Driver) -> None:
    """The login form of an expired request says so instead of asking for a password in vain."""
    client = driver.add_client()
    response, flow = driver.par(client)
    browser = driver.browser()
    login = open_interaction(driver, client, flow, browser)
    driver.as_.clock.advance(response.json()["expires_in"] + 1)
    answer = browser.submit(login, {"username": driver.add_user(), "password": PASSWORD}, follow=False)
    assert_error_page(answer, "invalid_request_uri", "expired")
    assert "set-cookie" not in answer.headers  # no session was started for it


def test_consume_checks_expiry_in_the_same_statement(driver: Driver) -> None:
    """Design.md 4: the store's atomic consume refuses an expired request (no check-then-act)."""
    client = driver.add_client()
    response, flow = driver.par(client)
    ref, now = par_hash(flow), driver.now()
    expires = now + response.json()["expires_in"]
    store = driver.as_.store
    with store.unit_of_work() as uow:
        assert uow.requests.consume_pushed(ref, expires) is False  # at expires_at: expired
        assert uow.requests.consume_pushed(ref, expires + 5) is False
    pushed = store.requests.pushed(ref)
    assert pushed is not None and pushed["consumed_at"] is None
    with store.unit_of_work() as uow:
        assert uow.requests.consume_pushed(ref, expires - 1) is True
        assert uow.requests.consume_pushed(ref, expires - 1) is False  # single use


# -- B6: reachable asserts -------------------------------------------------------------------


def test_purged_pushed_request_gives_an_error_page(driver: Driver) -> None:
    """An interaction whose pushed request the housekeeping removed: a page, not a 500."""
    client = driver.add_client()
    response, flow = driver.par(client)
    browser = driver.browser()
    login = open_interaction(driver, client, flow, browser)
    interaction = browser.http.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    ).headers["location"]
    driver.as_.clock.advance(response.json()["expires_in"] + 1)
    assert driver.as_.store.purge_expired(driver.now()) >= 1
    assert driver.as_.store.requests.pushed(par_hash(flow)) is None
    assert_error_page(browser.http.get(driver.url(interaction)), "invalid_request_uri", "expired")
    answer = browser.submit(login, {"username": driver.add_user(), "password": PASSWORD}, follow=False)
    assert_error_page(answer, "invalid_request_uri", "expired")


def test_client_removed_while_its_user_signs_in(driver: Driver) -> None:
    """``corridor client remove`` during the sign-in: no page names it, no code, no redirect."""
    client = driver.add_client()
    _, flow = driver.par(client)
    browser = driver.browser()
    login = open_interaction(driver, client, flow, browser)
    assert driver.as_.store.clients.remove(client.client_id, driver.now())
    answer = browser.submit(login, {"username": driver.add_user(), "password": PASSWORD})
    assert_error_page(answer, "invalid_request", "no longer registered")


def test_client_removed_before_the_consent_page(driver: Driver) -> None:
    client = driver.add_client()
    _, flow = driver.par(client)
    browser = driver.browser()
    login = open_interaction(driver, client, flow, browser)
    signed_in = browser.submit(login, {"username": driver.add_user(), "password": PASSWORD}, follow=False)
    assert signed_in.status_code == 303
    assert driver.as_.store.clients.remove(client.client_id, driver.now())
    assert_error_page(
        browser.get(driver.url(signed_in.headers["location"])), "invalid_request", "no longer registered"
    )
    assert codes_and_grants(driver, client) == (0, 0)


def test_user_removed_while_signed_in_signs_in_again(driver: Driver) -> None:
    """``corridor user remove`` while its browser session lives: the session no longer counts."""
    client = driver.add_client()
    _, flow = driver.par(client)
    browser, user = driver.browser(), driver.add_user()
    consent = browser.submit(
        open_interaction(driver, client, flow, browser), {"username": user, "password": PASSWORD}
    )
    assert ">Approve<" in consent.text
    assert driver.as_.store.users.remove(user)
    again = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    assert again.status_code == 200 and 'name="password"' in again.text, again.text
    approve = browser.submit(consent, {"decision": "approve"}, follow=False)
    assert approve.status_code == 303 and approve.headers["location"].startswith("/interaction/")
    assert codes_and_grants(driver, client) == (0, 0)


def test_max_age_zero_completes_after_a_fresh_sign_in(driver: Driver) -> None:
    """OIDC Core 3.1.2.1: max_age=0 asks for a fresh sign-in, and one in this interaction is it."""
    client = driver.add_client()
    browser, user = driver.browser(), driver.add_user()
    _, first = driver.par(client)
    assert driver.authorize(client, first, browser=browser, username=user).status_code == 303
    driver.as_.clock.advance(2)
    _, flow = driver.par(client, extra={"max_age": "0"})
    login = open_interaction(driver, client, flow, browser)  # the earlier session is too old
    driver.as_.clock.advance(1)
    # The fresh sign-in happens after this instant and the first one 3 s before it; a bound taken
    # here, not at the end, keeps a loaded machine's real seconds out of the comparison.
    signing_in = int(driver.now())
    consent = browser.submit(login, {"username": user, "password": PASSWORD})
    assert consent.status_code == 200 and ">Approve<" in consent.text, consent.text
    driver.as_.clock.advance(1)
    final = browser.submit(consent, {"decision": "approve"}, follow=False)
    assert final.status_code == 303 and "code=" in final.headers["location"], final.headers
    flow.code = httpx.URL(final.headers["location"]).params["code"]
    tokens = driver.redeem(client, flow)
    assert tokens.status_code == 200, tokens.text
    id_token = decode_jwt(tokens.json()["id_token"])[1]
    assert signing_in <= id_token["auth_time"] <= int(driver.now())
