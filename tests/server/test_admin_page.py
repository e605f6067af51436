"""The evidence trail as a page (issue 8 part 4): an admin-only timeline of a grant, looked at in
headless Chromium (a screenshot goes to test-artifacts/admin-trace.png)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pyotp
import pytest

from corridor.transport.tls import DevTLS
from tests.server.test_browser import ARTIFACTS, browser  # noqa: F401 - the Chromium fixture
from tests.support import PASSWORD, Driver, decode_jwt, running_as, ssl_context_of

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

ADMIN = "trail-admin"
#: The admin's TOTP secret: outside dev mode an admin must give a code after the password (issue 13 C3).
ADMIN_TOTP = pyotp.TOTP(pyotp.random_base32())
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "42.00"},
    "creditorName": "Merchant A",
}


@pytest.fixture(scope="module")
def admin_as(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS) -> Iterator[Driver]:
    data_dir = tmp_path_factory.mktemp("admin-as")
    with running_as(data_dir, tls, admin_users=[ADMIN]) as running:
        d = Driver(running)
        d.add_user(ADMIN)
        assert running.store.users.set_totp_secret(ADMIN, ADMIN_TOTP.secret)
        yield d
        d.http.close()


@pytest.fixture
def driver(admin_as: Driver) -> Driver:
    """Overrides the suite's driver: the Chromium fixture trusts this AS's certificate."""
    return admin_as


def admin_code(driver: Driver) -> str:
    """A code of a step not used yet (each code is accepted once): the clock moves 90 s on."""
    driver.as_.clock.advance(90)
    return ADMIN_TOTP.at(driver.now())


def story(driver: Driver) -> tuple[str, str]:
    """A grant with a payment, its token used once at UserInfo: (grant id, token jti)."""
    client = driver.add_client()
    _, tokens = driver.full_flow(client, extra={"authorization_details": json.dumps([PAYMENT])})
    token = tokens["access_token"]
    proof = driver.proof(client, "GET", driver.htu("/userinfo"), access_token=token)
    assert (
        driver.http.get(
            driver.url("/userinfo"), headers={"Authorization": f"DPoP {token}", "DPoP": proof}
        ).status_code
        == 200
    )
    jti = decode_jwt(token)[1]["jti"]
    grant = next(r["grant_id"] for r in driver.as_.store.audit.records(token_jti=jti) if r["grant_id"])
    return grant, jti


def signed_in_trace(driver: Driver, browser: WebDriver, ident: str) -> None:  # noqa: F811
    """The admin signs in (password, then a TOTP code) and lands on the trace of ``ident``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(driver.url(f"/admin/trace?id={ident}"))
    browser.find_element(By.NAME, "username").send_keys(ADMIN)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.NAME, "code")))
    browser.find_element(By.NAME, "code").send_keys(admin_code(driver))
    browser.find_element(By.CSS_SELECTOR, "button.approve").click()
    WebDriverWait(browser, 15).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "ol.timeline"))
    )


def test_the_timeline_in_chromium(driver: Driver, browser: WebDriver) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    grant, _ = story(driver)
    signed_in_trace(driver, browser, grant)
    events = [
        (li.get_attribute("data-event"), li.get_attribute("data-outcome"))
        for li in browser.find_elements(By.CSS_SELECTOR, "li.event")
    ]
    assert events[:6] == [
        ("par", "accepted"),
        ("login", "succeeded"),
        ("consent", "shown"),
        ("consent", "granted"),
        ("code", "issued"),
        ("token.authorization_code", "issued"),
    ]
    assert ("userinfo", "allowed") in events
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "What was shown" in text and "Pay up to 42.00 EUR in all to Merchant A" in text
    assert "What was granted" in text and "Bound to" in text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "admin-trace.png"))
    assert (ARTIFACTS / "admin-trace.png").stat().st_size > 10_000


def test_only_administrators_get_in(driver: Driver) -> None:
    grant, _ = story(driver)
    http = driver.as_.http(follow_redirects=False)
    page = http.get(driver.url(f"/admin/trace?id={grant}"))
    assert (
        page.status_code == 200 and 'name="password"' in page.text and grant not in page.text.split("next")[0]
    )
    assert (
        page.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    )
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    someone = driver.add_user()
    refused = http.post(
        driver.url("/admin/login"),
        data={"csrf": csrf, "next": "/admin/trace", "username": someone, "password": PASSWORD},
    )
    assert refused.status_code == 400 and "not an administrator" in refused.text
    # Without the CSRF cookie's twin the form is refused before any password is checked.
    forged = httpx.Client(verify=ssl_context_of(http), timeout=20)
    no_cookie = forged.post(
        driver.url("/admin/login"), data={"csrf": csrf, "username": ADMIN, "password": PASSWORD}
    )
    assert no_cookie.status_code == 400 and "expired" in no_cookie.text
    # The real admin, then an open redirect attempt is ignored, then a tampered session cookie.
    page = http.get(driver.url("/admin/trace"))
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    signed_in = http.post(
        driver.url("/admin/login"),
        data={"csrf": csrf, "next": "//evil.example/x", "username": ADMIN, "password": PASSWORD},
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/admin/trace"
    code_page = http.get(driver.url(f"/admin/trace?id={grant}"))
    assert 'name="code"' in code_page.text and 'class="timeline"' not in code_page.text
    csrf = code_page.text.split('name="csrf" value="')[1].split('"')[0]
    confirmed = http.post(
        driver.url("/admin/second-factor"),
        data={"csrf": csrf, "next": "/admin/trace", "code": admin_code(driver)},
    )
    assert confirmed.status_code == 303
    session = next(
        c for c in signed_in.headers.get_list("set-cookie") if c.startswith("__Host-corridor-admin=")
    )
    assert "SameSite=Strict" in session and "HttpOnly" in session and "Secure" in session
    timeline = http.get(driver.url(f"/admin/trace?id={grant}")).text
    assert 'class="timeline"' in timeline and 'name="password"' not in timeline
    cookie = http.cookies.get("__Host-corridor-admin")
    assert cookie
    tampered = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    for value, admitted in ((cookie, True), (tampered, False), ("", False)):
        page = forged.get(
            driver.url(f"/admin/trace?id={grant}"), headers={"Cookie": f"__Host-corridor-admin={value}"}
        )
        assert ('name="password"' not in page.text) is admitted
    views = [r for r in driver.as_.store.audit.records() if r["event"] == "admin.view"]
    assert views and json.loads(views[-1]["detail"])["viewed"] == grant


def test_consent_page_in_chromium_says_each_detail_type_in_words(driver: Driver, browser: WebDriver) -> None:  # noqa: F811
    """Issue 8 part 1: the consent page shows each authorization_details type in words, in a real
    browser, and the record of what was shown has the same words."""
    from urllib.parse import urlencode

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.server.test_details import ACCOUNTS, TOOL
    from tests.server.test_details import PAYMENT as FULL_PAYMENT

    client = driver.add_client()
    username = driver.add_user()
    details = [FULL_PAYMENT, ACCOUNTS, TOOL]
    response, flow = driver.par(client, extra={"authorization_details": json.dumps(details)})
    assert response.status_code == 201, response.text
    browser.get(
        driver.url("/authorize")
        + "?"
        + urlencode({"client_id": client.client_id, "request_uri": flow.request_uri})
    )
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "li.detail"))
    )
    shown = {
        li.get_attribute("data-type"): li.text.split("\n")[0].strip()
        for li in browser.find_elements(By.CSS_SELECTOR, "li.detail")
    }
    assert set(shown) == {"payment_initiation", "account_information", "agent_tool"}
    assert shown["payment_initiation"].startswith("Pay up to 123.50 EUR in all to Merchant A")
    assert shown["account_information"].startswith(
        "Read the balances, transactions of the accounts acc-1, acc-2"
    )
    assert shown["agent_tool"].startswith("Let the agent use the tool “make_payment” to initiate")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "consent-details.png"))
    record = next(
        r
        for r in reversed(driver.as_.store.audit.records())
        if r["event"] == "consent" and r["outcome"] == "shown" and r["client_id"] == client.client_id
    )
    facts = json.loads(record["detail"])["approval_surface"]["facts"]
    assert {d["type"]: d["words"] for d in facts["details"]} == shown
