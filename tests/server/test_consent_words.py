"""The consent page says what is asked in words (issue 18): the headline by the first detail type
(or the scopes, never "access your data?"), the grant's lifetime, that the app can act while the
user is away (every code comes with a refresh token), the key the tokens are bound to (its last 4
characters; the whole thumbprint behind a closed disclosure) and, after a step-up (RFC 9470),
what the new grant has spent. The page's facts are in the approval record and its hash covers
them. The payment page is checked in headless Chromium."""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import pyotp

from corridor.policy.details import DetailTypes
from corridor.server.interaction import consent_words
from tests.pki import TestPKI
from tests.server.test_browser import browser  # noqa: F401 - the Chromium fixture
from tests.server.test_details import ACCOUNTS, TOOL
from tests.server.test_mtls import code_form
from tests.server.test_mtls import par as mtls_par
from tests.server.test_mtls import token as mtls_token
from tests.support import PASSWORD, Client, Driver, Flow

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "100.00"},
    "creditorName": "Merchant A",
}
MONTH = "(January|February|March|April|May|June|July|August|September|October|November|December)"
DATE = rf"\d{{1,2}} {MONTH} \d{{4}} at \d\d:\d\d UTC"


def consent_page(
    driver: Driver, extra: dict[str, Any], username: str | None = None
) -> tuple[Client, Flow, httpx.Response]:
    client = driver.add_client()
    response, flow = driver.par(client, extra=extra)
    assert response.status_code == 201, response.text
    browser_ = driver.browser()
    page = browser_.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    page = browser_.submit(page, {"username": username or driver.add_user(), "password": PASSWORD})
    assert 'value="approve"' in page.text, page.text
    return client, flow, page


def headline(page: httpx.Response) -> str:
    match = re.search(r'<h1 class="headline">(.*?)</h1>', page.text, re.S)
    assert match, page.text
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))


def client_name(driver: Driver, client: Client) -> str:
    row = driver.as_.store.clients.get(client.client_id)
    assert row is not None
    return str(row["name"])


def shown_record(driver: Driver, client: Client) -> dict[str, Any]:
    """The client's newest "consent shown" record, its detail parsed."""
    rows = [
        r
        for r in driver.as_.store.audit.records()
        if r["client_id"] == client.client_id and r["event"] == "consent" and r["outcome"] == "shown"
    ]
    row = dict(rows[-1])
    if isinstance(row["detail"], str):
        row["detail"] = json.loads(row["detail"])
    return row


def test_the_headline_of_each_built_in_type_and_of_scopes_alone(driver: Driver) -> None:
    asked = {
        "payment_initiation": "to pay up to 100.00 EUR to Merchant A?",
        "account_information": "to read the balances and transactions of the accounts acc-1, acc-2?",
        "agent_tool": "to let its agent use the tool “make_payment” to initiate?",
    }
    for entry in (PAYMENT, ACCOUNTS, TOOL):
        extra = {"scope": "openid payments", "authorization_details": json.dumps([entry])}
        client, _, page = consent_page(driver, extra)
        said = headline(page)
        assert said == f"Allow {client_name(driver, client)} {asked[str(entry['type'])]}", said
        assert "access your data" not in page.text
    # Two entries: the first one asks, the page says there is more.
    extra = {"authorization_details": json.dumps([PAYMENT, ACCOUNTS])}
    _, _, page = consent_page(driver, extra)
    assert headline(page).endswith("to pay up to 100.00 EUR to Merchant A (and 1 more, listed below)?")
    # Scopes alone: their words, identity and lifetime scopes left to the other sentences.
    client, _, page = consent_page(driver, {"scope": "openid offline_access accounts"})
    assert headline(page) == f"Allow {client_name(driver, client)} to read your account list and balances?"
    client, _, page = consent_page(driver, {"scope": "openid"})
    name = client_name(driver, client)
    assert headline(page) == f"Allow {name} to confirm who you are (your user identifier)?"


def test_a_creditor_name_in_the_headline_is_escaped_and_isolated(driver: Driver) -> None:
    hostile = "<script>document.title='pwned'</script>"
    entry = {**PAYMENT, "creditorName": hostile}
    _, _, page = consent_page(driver, {"authorization_details": json.dumps([entry])})
    h1 = re.search(r'<h1 class="headline">(.*?)</h1>', page.text, re.S)
    assert h1 is not None
    assert "<script>" not in h1.group(1)
    assert "<bdi>&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;</bdi>" in h1.group(1)


def test_a_client_name_with_control_characters_is_shown_escaped() -> None:
    """Issue 13 E1, E3: a registered name with a U+202E and a newline reorders and breaks nothing."""
    hostile = "Shop\u202e<b>x</b>\n"
    types = DetailTypes.configured(["payment_initiation"])
    said, markup = consent_words.headline(hostile, [], [("accounts", "Read your account list")], types)
    assert said == "Allow Shop\\u202e<b>x</b>\\x0a to read your account list?"
    assert str(markup) == (
        "Allow <strong><bdi>Shop\\u202e&lt;b&gt;x&lt;/b&gt;\\x0a</bdi></strong> to read your account list?"
    )


def test_lifetime_refresh_and_key_are_said_and_recorded(driver: Driver) -> None:
    client, flow, page = consent_page(driver, {"authorization_details": json.dumps([PAYMENT])})
    shown = shown_record(driver, client)
    facts = shown["detail"]["approval_surface"]["facts"]
    jkt = facts["key_thumbprint"]
    assert jkt and shown["key_thumbprint"] == jkt  # the key the PAR bound (dpop_jkt)
    assert re.fullmatch(f"for 30 days, until {DATE}", facts["lifetime"]), facts["lifetime"]
    assert facts["headline"] == f"Allow {client_name(driver, client)} to pay up to 100.00 EUR to Merchant A?"
    assert facts["sender_words"] == f"Only the app holding key …{jkt[-4:]} can use this."
    assert "refresh token" in facts["while_away"] and facts["step_up"] is None
    text = html.unescape(re.sub(r"<[^>]+>", " ", page.text))
    for sentence in (facts["lifetime"], facts["while_away"], facts["sender_words"]):
        assert sentence in " ".join(text.split()), sentence
    assert f"<code>{jkt}</code>" in page.text
    # What the page promises holds: the code comes with a refresh token.
    assert driver.authorize(client, flow).status_code == 303 and flow.code
    tokens = driver.redeem(client, flow)
    assert tokens.status_code == 200 and tokens.json()["refresh_token"]


def test_after_a_step_up_the_page_says_what_the_new_grant_has_spent(driver: Driver) -> None:
    username = driver.add_user()
    secret = pyotp.random_base32()
    assert driver.as_.store.users.set_totp_secret(username, secret)
    client = driver.add_client()
    extra = {"acr_values": "mfa", "authorization_details": json.dumps([PAYMENT])}
    response, flow = driver.par(client, extra=extra)
    assert response.status_code == 201, response.text
    browser_ = driver.browser()
    page = browser_.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    page = browser_.submit(page, {"username": username, "password": PASSWORD})
    page = browser_.submit(page, {"code": pyotp.TOTP(secret).at(driver.now())})
    assert 'value="approve"' in page.text, page.text
    said = re.search(r'<p class="step-up">(.*?)</p>', page.text, re.S)
    assert said is not None
    assert html.unescape(said.group(1)) == (
        "You were asked to sign in more strongly (mfa). This grant is new: spent so far 0.00 EUR "
        "of 100.00 EUR. Payments made with your earlier grants do not count against this one; "
        "the service that took them keeps them."
    )


def test_an_mtls_client_is_told_by_the_certificate_it_pushed_with(driver: Driver, pki: TestPKI) -> None:
    """RFC 8705: the certificate of the PAR (x5t#S256) is named by its last 4 characters, the whole
    thumbprint behind the disclosure, and it is the PAR record's key thumbprint."""
    cert = pki.self_signed("CN=consent words mtls")
    client = driver.add_client(
        auth_method="self_signed_tls_client_auth", sender_constraint="mtls", jwks={"keys": [cert.jwk()]}
    )
    response, flow = mtls_par(driver, client, cert)
    assert response.status_code == 201, response.text
    browser_ = driver.browser()
    page = browser_.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    page = browser_.submit(page, {"username": driver.add_user(), "password": PASSWORD})
    said = (
        "Only the app holding its TLS client certificate can use this "
        f"(it asked with certificate …{cert.thumbprint[-4:]})."
    )
    assert f"<p>{said}</p>" in page.text, page.text
    assert f"<code>{cert.thumbprint}</code>" in page.text and "x5t#S256" in page.text
    shown = shown_record(driver, client)
    assert shown["key_thumbprint"] == cert.thumbprint and shown["sender_constraint"] == "mtls"
    # The code still redeems with that certificate, and the token is bound to it.
    driver.authorize(client, flow, browser_)
    assert flow.code
    tokens = mtls_token(driver, client, cert, code_form(client, flow))
    assert tokens.status_code == 200, tokens.text


def test_durations_and_sender_constraints_in_words() -> None:
    assert consent_words.duration(30 * 86_400) == "30 days"
    assert consent_words.duration(86_400) == "1 day"
    assert consent_words.duration(7200) == "2 hours"
    assert consent_words.duration(300) == "5 minutes"
    assert consent_words.moment(1798977600.0) == "3 January 2027 at 12:00 UTC"
    assert consent_words.sender_constraint(False, "abc1p7T") == "Only the app holding key …1p7T can use this."
    assert consent_words.sender_constraint(True, None) == (
        "Only the app holding its TLS client certificate can use this."
    )
    assert consent_words.step_up(("password",), [PAYMENT]) is None
    assert consent_words.step_up(("mfa",), [ACCOUNTS]) == (
        "You were asked to sign in more strongly (mfa). This grant is new: nothing has been done with it yet."
    )


def test_the_payment_consent_page_in_chromium(driver: Driver, browser: WebDriver) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    client = driver.add_client()
    username = driver.add_user()
    response, flow = driver.par(client, extra={"authorization_details": json.dumps([PAYMENT])})
    assert response.status_code == 201
    query = urlencode({"client_id": client.client_id, "request_uri": flow.request_uri})
    browser.get(driver.url("/authorize") + "?" + query)
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 15).until(
        expected_conditions.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Approve']"))
    )
    name = client_name(driver, client)
    asked = f"Allow {name} to pay up to 100.00 EUR to Merchant A?"
    assert browser.find_element(By.TAG_NAME, "h1").text == asked
    assert browser.title.startswith(asked)
    lifetime = browser.find_element(By.CSS_SELECTOR, "p.lifetime").text
    assert re.search(f"this lasts for 30 days, until {DATE}", lifetime), lifetime
    assert "It can act while you are away" in lifetime
    jkt = shown_record(driver, client)["key_thumbprint"]
    sender = browser.find_element(By.CSS_SELECTOR, "div.sender")
    assert sender.find_element(By.TAG_NAME, "p").text == f"Only the app holding key …{jkt[-4:]} can use this."
    disclosure = sender.find_element(By.CSS_SELECTOR, "details.thumbprint")
    code = disclosure.find_element(By.TAG_NAME, "code")
    assert disclosure.get_attribute("open") is None and not code.is_displayed()  # closed
    assert jkt not in sender.text
    disclosure.find_element(By.TAG_NAME, "summary").click()
    WebDriverWait(browser, 5).until(lambda _: code.is_displayed())
    assert code.text == jkt
