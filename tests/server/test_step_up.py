"""Step-up at the AS (issue 8 part 3, RFC 9470 4, OIDC Core 3.1.2.1): acr_values ask for mfa,
a TOTP code (RFC 6238) raises the browser session, tokens carry acr and auth_time; codes are
single use and guessing is cut off."""

from __future__ import annotations

from typing import Any

import httpx
import pyotp

from corridor.core.rules import Rule
from tests.support import PASSWORD, Browser, Client, Driver, Flow, decode_jwt


def enrolled(driver: Driver) -> tuple[str, pyotp.TOTP]:
    username = driver.add_user()
    secret = pyotp.random_base32()
    assert driver.as_.store.users.set_totp_secret(username, secret)
    return username, pyotp.TOTP(secret)


def start(
    driver: Driver, client: Client, browser: Browser, username: str, acr: str | None = "mfa"
) -> tuple[Flow, httpx.Response]:
    response, flow = driver.par(client, extra={"acr_values": acr} if acr else None)
    assert response.status_code == 201, response.text
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    if 'name="password"' in page.text:
        page = browser.submit(page, {"username": username, "password": PASSWORD})
    return flow, page


def finish(
    driver: Driver, client: Client, browser: Browser, flow: Flow, consent: httpx.Response
) -> dict[str, Any]:
    final = browser.submit(consent, {"decision": "approve"}, follow=False)
    assert final.status_code == 303
    flow.code = dict(p.split("=", 1) for p in final.headers["location"].split("?", 1)[1].split("&"))["code"]
    tokens = driver.redeem(client, flow)
    assert tokens.status_code == 200, tokens.text
    return decode_jwt(tokens.json()["access_token"])[1]


def test_a_totp_code_raises_the_session_to_mfa(driver: Driver) -> None:
    client, browser = driver.add_client(), driver.browser()
    username, totp = enrolled(driver)
    flow, page = start(driver, client, browser, username)
    assert 'name="code"' in page.text and "mfa" in page.text
    consent = browser.submit(page, {"code": totp.at(driver.now())})
    assert 'value="approve"' in consent.text, consent.text
    claims = finish(driver, client, browser, flow, consent)
    assert claims["acr"] == "mfa" and abs(claims["auth_time"] - driver.now()) < 5
    # The same session asks no more: it is at mfa now.
    flow, page = start(driver, client, browser, username)
    assert 'value="approve"' in page.text and 'name="code"' not in page.text


def test_a_code_is_accepted_once(driver: Driver) -> None:
    client = driver.add_client()
    username, totp = enrolled(driver)
    code = totp.at(driver.now())
    first, second = driver.browser(), driver.browser()
    _, page = start(driver, client, first, username)
    assert 'value="approve"' in first.submit(page, {"code": code}).text
    _, page = start(driver, client, second, username)  # another browser, the same code
    again = second.submit(page, {"code": code})
    assert again.status_code == 400 and "already used" in again.text


def test_wrong_codes_are_cut_off(driver: Driver) -> None:
    client, browser = driver.add_client(), driver.browser()
    username, totp = enrolled(driver)
    _flow, page = start(driver, client, browser, username)
    right = totp.at(driver.now())
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    for attempt in range(6):  # the sixth is refused unchecked: 429 with Retry-After (issue 13 C2)
        page = browser.submit(page, {"code": wrong})
        assert page.status_code == (429 if attempt == 5 else 400)
    assert "Too many wrong codes" in page.text
    locked = browser.submit(page, {"code": right})  # now even the right code waits
    assert locked.status_code == 429 and "Too many wrong codes" in locked.text
    refusals = [
        r for r in driver.as_.store.audit.records() if r["event"] == "login" and r["outcome"] == "refused"
    ]
    assert refusals[-1]["rule"] == Rule.RFC_6238_5_2_TOO_MANY_WRONG_CODES


def test_without_a_second_factor_the_request_goes_on_at_password(driver: Driver) -> None:
    """acr_values are voluntary (OIDC Core 3.1.2.1): the token's acr tells the truth."""
    client, browser = driver.add_client(), driver.browser()
    username = driver.add_user()
    flow, page = start(driver, client, browser, username)
    assert 'value="approve"' in page.text
    assert finish(driver, client, browser, flow, page)["acr"] == "password"


def test_no_acr_values_no_second_factor(driver: Driver) -> None:
    client, browser = driver.add_client(), driver.browser()
    username, _ = enrolled(driver)
    flow, page = start(driver, client, browser, username, acr=None)
    assert 'value="approve"' in page.text
    assert finish(driver, client, browser, flow, page)["acr"] == "password"


def test_wrong_codes_count_per_user_not_per_browser_session(driver: Driver) -> None:
    """Issue 13 C2: a new password sign-in gives no fresh guesses, and the right code waits too;
    the count is the user's, in the database; after the wait the right code works."""
    from sqlalchemy import select

    from corridor.store import schema

    client = driver.add_client()
    username, totp = enrolled(driver)
    user = driver.as_.store.users.by_name(username)
    assert user is not None
    right = totp.at(driver.now())
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    browser = driver.browser()
    _flow, page = start(driver, client, browser, username)
    for _ in range(5):
        page = browser.submit(page, {"code": wrong})
        assert page.status_code == 400 and "not right" in page.text
    # Sign in again with the password, in another browser: still waiting, even for the right code.
    other = driver.browser()
    flow, page = start(driver, client, other, username)
    assert 'name="code"' in page.text and "Too many wrong codes" in page.text  # the page says so
    locked = other.submit(page, {"code": right})
    assert locked.status_code == 429 and "Too many wrong codes" in locked.text and "UTC" in locked.text
    assert 25 <= int(locked.headers["retry-after"]) <= 30
    table = schema.sign_in_throttle
    with driver.as_.store.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.key == f"totp:{user['id']}")).mappings().one()
    assert row["failures"] == 5 and row["locked_until"] > driver.now()
    # After the wait the right code (of the moved clock) is accepted, and the count starts again.
    driver.as_.clock.advance(31)
    consent = other.submit(locked, {"code": totp.at(driver.now())})
    assert 'value="approve"' in consent.text, consent.text
    with driver.as_.store.engine.connect() as conn:
        assert conn.execute(select(table).where(table.c.key == f"totp:{user['id']}")).first() is None
    assert finish(driver, client, other, flow, consent)["acr"] == "mfa"


def test_the_passkey_on_the_same_page_does_not_lift_the_code_lock(driver: Driver) -> None:
    """Issue 13 C2: where the passkey shares the second-factor page, a refused assertion leaves
    the user's code lock as it is (the right code still waits). A valid passkey assertion is a
    signature, not a guess: it steps the session up (the stronger factor), and the lock stays."""
    import json

    from sqlalchemy import select

    from corridor.store import schema
    from tests.passkey_device import Authenticator, passkey_form

    server = driver.as_.server
    assert server is not None and server.passkeys.available
    client, browser = driver.add_client(), driver.browser()
    username, totp = enrolled(driver)
    user = driver.as_.store.users.by_name(username)
    assert user is not None
    device = Authenticator(origin=driver.issuer, rp_id="localhost")
    options = json.loads(server.passkeys.registration_options(user, "setup", driver.now()))
    server.passkeys.register(device.create(options), user, "setup", driver.now())
    flow, page = start(driver, client, browser, username)
    assert 'name="code"' in page.text and 'data-passkey="get"' in page.text
    right = totp.at(driver.now())
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    for _ in range(5):
        page = browser.submit(page, {"code": wrong})
    form = passkey_form(page)
    stale = dict(form.options, challenge="A" * 43)  # an assertion for a challenge we never made
    refused = browser.http.post(
        browser.base + form.action, data={**form.fields, "credential": device.get(stale)}
    )
    assert refused.status_code == 400 and 'name="code"' in refused.text
    locked = browser.submit(refused, {"code": right})
    assert locked.status_code == 429 and "Too many wrong codes" in locked.text
    form = passkey_form(locked)
    stepped = browser.http.post(
        browser.base + form.action, data={**form.fields, "credential": device.get(form.options)}
    )
    assert stepped.status_code == 303
    consent = browser.get(browser.base + stepped.headers["location"])
    assert finish(driver, client, browser, flow, consent)["acr"] == "passkey"
    table = schema.sign_in_throttle
    with driver.as_.store.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.key == f"totp:{user['id']}")).mappings().one()
    assert row["failures"] == 5 and row["locked_until"] > driver.now()
