"""Passkeys (issue 8 part 3, server/passkeys.py): enrolment and sign-in from the sign-in pages and
step-up to acr "passkey", through real HTTP with a software authenticator; every WebAuthn check
gets the bad input and its exact refusal (a 400 page and the rule in the audit trail).
The same ceremonies in headless Chromium: tests/server/test_passkeys_chromium.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.randomness import new_id
from corridor.core.rules import Rule
from corridor.server.passkeys import CHALLENGE_LIFETIME
from corridor.store.sql import Store
from tests.passkey_device import Authenticator, passkey_form
from tests.server.test_step_up import finish, start
from tests.support import PASSWORD, Browser, Client, Driver

#: Self-service enrolment (a password-only account adds its first passkey from the sign-in
#: pages), off by default outside dev mode (issue 13 C4): these tests enrol that way.
AS_SETTINGS = {"self_service_enrolment": True}


def device(driver: Driver, **kwargs: Any) -> Authenticator:
    return Authenticator(origin=driver.issuer, rp_id="localhost", **kwargs)


def post(browser: Browser, page: httpx.Response, credential: str, follow: bool = True) -> httpx.Response:
    form = passkey_form(page)
    response = browser.http.post(browser.base + form.action, data={**form.fields, "credential": credential})
    if follow and response.status_code == 303:
        return browser.get(browser.base + response.headers["location"])
    return response


def last_record(driver: Driver, event: str) -> dict[str, Any]:
    """The newest record of ``event`` (by id: earlier tests of the module moved the clock)."""
    return max((r for r in driver.as_.store.audit.records() if r["event"] == event), key=lambda r: r["id"])


def enrol_link(consent: httpx.Response) -> str:
    """The consent page's link to passkey enrolment."""
    link = re.search(r'href="([^"]+passkey-enrol)"', consent.text)
    assert link is not None, consent.text
    return link.group(1)


def enrol(driver: Driver, client: Client, username: str, authenticator: Authenticator) -> Browser:
    """Password sign-in, "Add a passkey" on the consent page, the ceremony: back at consent."""
    browser = driver.browser()
    _flow, consent = start(driver, client, browser, username, acr=None)
    link = re.search(r'<a href="(/interaction/[0-9a-f]+/passkey-enrol)">Add a passkey', consent.text)
    assert link, consent.text
    page = browser.get(browser.base + link.group(1))
    form = passkey_form(page)
    assert form.ceremony == "create" and form.action.endswith("/passkey-enrol")
    back = post(browser, page, authenticator.create(form.options))
    assert 'value="approve"' in back.text, back.text
    return browser


def test_add_a_passkey_after_signing_in_from_the_login_page(driver: Driver) -> None:
    client, username, browser = driver.add_client(), driver.add_user(), driver.browser()
    _response, flow = driver.par(client)
    login = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    assert 'name="then" value="enrol"' in login.text
    page = browser.submit(login, {"username": username, "password": PASSWORD, "then": "enrol"})
    form = passkey_form(page)
    assert form.ceremony == "create" and form.options["user"]["name"] == username
    assert form.options["authenticatorSelection"] == {
        "residentKey": "required",
        "requireResidentKey": True,
        "userVerification": "required",
    }
    assert 'value="approve"' in post(browser, page, device(driver).create(form.options)).text
    # Unticked, the same form goes straight on to consent.
    other = driver.browser()
    _response, flow = driver.par(client)
    login = other.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    assert 'value="approve"' in other.submit(login, {"username": username, "password": PASSWORD}).text


def test_the_login_page_offers_a_passkey_under_a_strict_csp(driver: Driver) -> None:
    client, browser = driver.add_client(), driver.browser()
    _response, flow = driver.par(client)
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    csp = page.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert f'<script nonce="{nonce.group(1)}">' in page.text
    options = passkey_form(page).options
    assert options["rpId"] == "localhost" and options["userVerification"] == "required"
    assert options["allowCredentials"] == []  # a discoverable credential names its user
    assert len(b64url_decode(options["challenge"])) == 40 and options["timeout"] == CHALLENGE_LIFETIME * 1000
    # A page without a ceremony runs no script at all.
    consent = browser.submit(page, {"username": driver.add_user(), "password": PASSWORD})
    assert "script-src" not in consent.headers["content-security-policy"] and "<script" not in consent.text
    metadata = driver.http.get(driver.url("/.well-known/openid-configuration")).json()
    assert metadata["acr_values_supported"] == ["password", "mfa", "passkey"]


def test_enrol_then_sign_in_with_the_passkey_alone(driver: Driver) -> None:
    client, username = driver.add_client(), driver.add_user()
    authenticator = device(driver)
    enrol(driver, client, username, authenticator)
    record = last_record(driver, "passkey")
    assert record["outcome"] == "enrolled" and json.loads(record["detail"])["session_acr"] == "password"
    stored = driver.as_.store.users.passkey(b64url_encode(authenticator.credentials[0].credential_id))
    assert stored is not None and stored["sign_count"] == 0 and stored["backed_up"]
    assert json.loads(stored["transports"]) == ["internal"]
    # Another browser: "Sign in with a passkey", no user name, no password.
    browser = driver.browser()
    _response, flow = driver.par(client)
    login = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    reply = post(browser, login, authenticator.get(passkey_form(login).options), follow=False)
    assert reply.status_code == 303 and "__Host-corridor-session=" in reply.headers["set-cookie"]
    consent = browser.get(browser.base + reply.headers["location"])
    claims = finish(driver, client, browser, flow, consent)
    assert claims["acr"] == "passkey" and abs(claims["auth_time"] - driver.now()) < 5
    login_record = last_record(driver, "login")
    detail = json.loads(login_record["detail"])
    assert login_record["outcome"] == "succeeded" and detail["factor"] == "passkey"
    assert detail["credential_id"] == stored["credential_id"] and detail["sign_count"] == 1


def test_step_up_from_password_to_passkey(driver: Driver) -> None:
    client, username = driver.add_client(), driver.add_user()
    authenticator = device(driver)
    enrol(driver, client, username, authenticator)
    browser = driver.browser()
    flow, page = start(driver, client, browser, username, acr="passkey")
    assert "Confirm it is you" in page.text and 'name="code"' not in page.text
    options = passkey_form(page).options
    allowed = [c["id"] for c in options["allowCredentials"]]
    assert allowed == [b64url_encode(authenticator.credentials[0].credential_id)]
    consent = post(browser, page, authenticator.get(options))
    assert 'value="approve"' in consent.text, consent.text
    assert finish(driver, client, browser, flow, consent)["acr"] == "passkey"
    # acr_values=mfa is met by a passkey too; the raised session asks no more.
    _flow, again = start(driver, client, browser, username, acr="mfa")
    assert 'value="approve"' in again.text


def test_a_user_with_totp_and_a_passkey_is_offered_both_for_mfa(driver: Driver) -> None:
    client, username = driver.add_client(), driver.add_user()
    authenticator = device(driver)
    enrol(driver, client, username, authenticator)
    secret = pyotp.random_base32()
    driver.as_.store.users.set_totp_secret(username, secret)
    _flow, page = start(driver, client, driver.browser(), username, acr="mfa")
    assert 'name="code"' in page.text and passkey_form(page).ceremony == "get"
    _flow, page = start(driver, client, driver.browser(), username, acr="passkey")
    assert 'name="code"' not in page.text  # a TOTP code does not reach "passkey"


def refused(driver: Driver, page: httpx.Response, rule: str) -> None:
    assert page.status_code == 400, page.text
    assert 'role="alert"' in page.text
    record = last_record(driver, "login")
    assert record["outcome"] == "refused" and record["rule"] == rule, record


def login_page(driver: Driver, client: Client) -> tuple[Browser, httpx.Response]:
    browser = driver.browser()
    response, flow = driver.par(client)
    assert response.status_code == 201
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    return browser, page


def test_assertion_checks_refuse_exactly(driver: Driver) -> None:
    client, username = driver.add_client(), driver.add_user()
    authenticator = device(driver)
    enrol(driver, client, username, authenticator)

    def attempt(rule: str, **kwargs: Any) -> None:
        browser, page = login_page(driver, client)
        refused(driver, post(browser, page, authenticator.get(passkey_form(page).options, **kwargs)), rule)

    # WebAuthn 7.2 steps 13 (origin), 11 (type), 15 (rpIdHash), 17 (user verified).
    attempt("WebAuthn 7.2", origin="https://evil.example")
    attempt("WebAuthn 7.2", kind="webauthn.create")
    attempt("WebAuthn 7.2", rp_id="evil.example")
    authenticator.user_verified = False
    attempt("WebAuthn 7.2")
    authenticator.user_verified = True
    # Step 6: a user handle that is not the credential's user.
    attempt("WebAuthn 7.2 step 6 (user handle)", user_handle=b"someone-else")
    # An unknown credential.
    stranger = device(driver)
    stranger.create({"user": {"id": b64url_encode(b"x")}, "challenge": "AA"})
    browser, page = login_page(driver, client)
    refused(
        driver,
        post(browser, page, stranger.get(passkey_form(page).options)),
        "WebAuthn 7.2 step 6 (unknown credential)",
    )
    # After all that, the real thing still works ...
    browser, page = login_page(driver, client)
    assert 'value="approve"' in post(browser, page, authenticator.get(passkey_form(page).options)).text
    stored = driver.as_.store.users.passkey(b64url_encode(authenticator.credentials[0].credential_id))
    assert stored is not None and stored["sign_count"] == authenticator.credentials[0].sign_count
    # ... and then a counter that does not move forward (WebAuthn 6.1.1, a cloned authenticator).
    attempt("WebAuthn 7.2", advance=False)


def test_challenges_are_single_use_bound_and_short_lived(driver: Driver) -> None:
    client, username = driver.add_client(), driver.add_user()
    # Counter 0 on every use, as synced passkeys do: only the spent challenge stops a replay.
    authenticator = device(driver, counter_step=0)
    enrol(driver, client, username, authenticator)
    browser, page = login_page(driver, client)
    form = passkey_form(page)
    response = authenticator.get(form.options)
    assert post(browser, page, response, follow=False).status_code == 303
    replay = browser.http.post(browser.base + form.action, data={**form.fields, "credential": response})
    refused(driver, replay, "WebAuthn 13.4.3 (challenge reused)")
    # Bound to its interaction: a challenge from one page does not work on another.
    _browser_a, page_a = login_page(driver, client)
    browser_b, page_b = login_page(driver, client)
    refused(
        driver,
        post(browser_b, page_b, authenticator.get(passkey_form(page_a).options)),
        "WebAuthn 7.2 (challenge)",
    )
    # Short-lived: CHALLENGE_LIFETIME seconds, moved on the clock (the interaction lives longer;
    # so must the pushed request, which gives nothing once it expired: issue 13 D5).
    assert driver.as_.server is not None
    settings = driver.as_.server.settings
    default, settings.par_lifetime = settings.par_lifetime, CHALLENGE_LIFETIME + 60
    try:
        browser, page = login_page(driver, client)
    finally:
        settings.par_lifetime = default
    options = passkey_form(page).options
    driver.as_.clock.advance(CHALLENGE_LIFETIME + 1)
    refused(driver, post(browser, page, authenticator.get(options)), "WebAuthn 13.4.3 (challenge expired)")


def test_another_users_passkey_does_not_step_up_this_session(driver: Driver) -> None:
    client = driver.add_client()
    alice, bob = driver.add_user(), driver.add_user()
    alices, bobs = device(driver), device(driver)
    enrol(driver, client, alice, alices)
    enrol(driver, client, bob, bobs)
    browser = driver.browser()
    _flow, page = start(driver, client, browser, alice, acr="passkey")
    # Bob's authenticator answers Alice's step-up challenge.
    page = post(browser, page, bobs.get(passkey_form(page).options))
    refused(driver, page, "WebAuthn 7.2 step 6 (unknown credential)")
    assert passkey_form(page).ceremony == "get"  # the step-up page again, with a fresh challenge


def test_registration_checks_refuse_exactly(driver: Driver) -> None:
    client, username = driver.add_client(), driver.add_user()
    authenticator = device(driver)
    browser = driver.browser()
    _flow, consent = start(driver, client, browser, username, acr=None)
    path = enrol_link(consent)
    interaction_id = path.split("/")[2]

    def attempt(rule: str, **kwargs: Any) -> None:
        page = browser.get(browser.base + path)
        reply = post(browser, page, authenticator.create(passkey_form(page).options, **kwargs))
        authenticator.credentials.pop()
        assert reply.status_code == 400 and "Create a passkey" in reply.text, reply.text
        record = last_record(driver, "passkey")
        assert record["outcome"] == "refused" and record["rule"] == rule, record

    # WebAuthn 7.1 steps 9 (origin), 7 (type), 13 (rpIdHash), 15 (user verified).
    attempt("WebAuthn 7.1", origin="https://evil.example")
    attempt("WebAuthn 7.1", kind="webauthn.get")
    attempt("WebAuthn 7.1", rp_id="evil.example")
    authenticator.user_verified = False
    attempt("WebAuthn 7.1")
    authenticator.user_verified = True
    # A sign-in ("get") challenge used to register: the purpose is inside the MAC.
    server = driver.as_.server
    assert server is not None
    login_options = json.loads(server.passkeys.authentication_options(interaction_id, driver.now()))
    attempt("WebAuthn 7.1 (challenge)", challenge=login_options["challenge"])
    user = driver.as_.store.users.by_name(username)
    assert user is not None and driver.as_.store.users.passkeys(user["id"]) == []
    # Now a good one; a second one needs the first (the account has a factor now) ...
    page = browser.get(browser.base + path)
    assert 'value="approve"' in post(browser, page, authenticator.create(passkey_form(page).options)).text
    page = browser.get(browser.base + path)
    form = passkey_form(page)
    assert form.ceremony == "get" and form.fields["then"] == "enrol"
    # ... and its page excludes the credential already there (WebAuthn 5.4.3 excludeCredentials).
    enrol_page = post(browser, page, authenticator.get(form.options))
    excluded = [c["id"] for c in passkey_form(enrol_page).options["excludeCredentials"]]
    assert excluded == [b64url_encode(authenticator.credentials[0].credential_id)]


def test_a_credential_id_belongs_to_one_account(driver: Driver) -> None:
    client = driver.add_client()
    alice, bob = driver.add_user(), driver.add_user()
    authenticator = device(driver)
    enrol(driver, client, alice, authenticator)
    browser = driver.browser()
    _flow, consent = start(driver, client, browser, bob, acr=None)
    page = browser.get(browser.base + enrol_link(consent))
    # Bob's browser registers a response that reuses Alice's credential ID.
    response = json.loads(authenticator.create(passkey_form(page).options))
    authenticator.credentials.pop()
    alices_id = b64url_encode(authenticator.credentials[0].credential_id)
    attestation = response["response"]["attestationObject"]
    from webauthn.helpers import encode_cbor, parse_cbor

    decoded = parse_cbor(b64url_decode(attestation))
    auth_data = decoded["authData"]
    length = int.from_bytes(auth_data[53:55], "big")
    new_data = auth_data[:55] + b64url_decode(alices_id) + auth_data[55 + length :]
    decoded["authData"] = new_data
    response["response"]["attestationObject"] = b64url_encode(encode_cbor(decoded))
    response["id"] = response["rawId"] = alices_id
    reply = post(browser, page, json.dumps(response))
    assert reply.status_code == 400
    assert last_record(driver, "passkey")["rule"] == Rule.WEBAUTHN_7_1_STEP_25


def test_enrolment_needs_the_second_factor_the_account_has(driver: Driver) -> None:
    """NIST SP 800-63B 6.1.2.1: with a password alone, no passkey for an account that has TOTP."""
    client, username = driver.add_client(), driver.add_user()
    secret = pyotp.random_base32()
    driver.as_.store.users.set_totp_secret(username, secret)
    browser = driver.browser()
    _flow, consent = start(driver, client, browser, username, acr=None)
    path = enrol_link(consent)
    page = browser.get(browser.base + path)
    assert 'name="code"' in page.text and 'name="then" value="enrol"' in page.text
    # Posting a registration straight away is refused.
    _action, csrf = browser.form_of(page)
    forced = browser.http.post(browser.base + path, data={"csrf": csrf, "credential": "{}"})
    assert forced.status_code == 400
    assert last_record(driver, "passkey")["rule"] == "NIST SP 800-63B 6.1.2.1"
    # The TOTP code first, then the enrolment page.
    enrol_page = browser.submit(page, {"code": pyotp.TOTP(secret).at(driver.now()), "then": "enrol"})
    form = passkey_form(enrol_page)
    assert form.ceremony == "create"
    back = post(browser, enrol_page, device(driver).create(form.options))
    assert 'value="approve"' in back.text
    assert json.loads(last_record(driver, "passkey")["detail"])["session_acr"] == "mfa"


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    member=st.sampled_from(["clientDataJSON", "authenticatorData", "signature", "userHandle"]),
    junk=st.one_of(
        st.text(max_size=300),
        st.binary(max_size=200).map(b64url_encode),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
            lambda inner: (
                st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(json.dumps),
    ),
)
def test_hostile_credentials_get_a_refusal_never_a_500(driver: Driver, member: str, junk: str) -> None:
    client = driver.add_client()
    browser, page = login_page(driver, client)
    form = passkey_form(page)
    authenticator = device(driver)
    authenticator.create({"user": {"id": "eA"}, "challenge": "AA"})
    # A well-formed assertion with one member replaced by junk, the junk itself, and too much.
    shaped = json.loads(authenticator.get(form.options))
    shaped["response"][member] = junk
    for credential in (junk, json.dumps(shaped), "x" * 20_000):
        reply = browser.http.post(browser.base + form.action, data={**form.fields, "credential": credential})
        assert reply.status_code == 400, reply.text


def test_hostile_registrations_get_a_refusal_never_a_500(driver: Driver) -> None:
    client, username = driver.add_client(), driver.add_user()
    browser = driver.browser()
    _flow, consent = start(driver, client, browser, username, acr=None)
    path = enrol_link(consent)
    page = browser.get(browser.base + path)
    form = passkey_form(page)
    good = json.loads(device(driver).create(form.options))
    attestation = b64url_decode(good["response"]["attestationObject"])

    def variant(**response: str) -> str:
        return json.dumps({**good, "response": {**good["response"], **response}})

    hostile = [
        "",
        "null",
        "[]",
        "{}",
        "x" * 20_000,
        json.dumps({**good, "type": "password"}),
        json.dumps({**good, "rawId": "!!"}),
        variant(attestationObject=b64url_encode(attestation[:40])),  # truncated CBOR
        variant(attestationObject=b64url_encode(b"\xbf" * 64)),  # unterminated maps
        variant(attestationObject=b64url_encode(b"\x9b" + b"\xff" * 8)),  # a 2**64-item array
        variant(clientDataJSON=b64url_encode(b'{"type":"webauthn.create","challenge":7}')),
        variant(clientDataJSON=b64url_encode(b"\xff\xfe")),
    ]
    for credential in hostile:
        reply = browser.http.post(browser.base + form.action, data={**form.fields, "credential": credential})
        assert reply.status_code == 400 and "Create a passkey" in reply.text, (
            hostile.index(credential),
            reply.text,
        )
    user = driver.as_.store.users.by_name(username)
    assert user is not None and driver.as_.store.users.passkeys(user["id"]) == []
    # The unspoilt response still registers: nothing above spent its challenge.
    assert (
        browser.http.post(
            browser.base + form.action, data={**form.fields, "credential": json.dumps(good)}
        ).status_code
        == 303
    )


def test_cli_lists_and_removes_passkeys(tmp_path: Path) -> None:
    corridor = [sys.executable, "-m", "corridor.cli"]
    upgrade = subprocess.run(  # issue 13 F2: only db upgrade (or serve) makes an installation
        [*corridor, "db", "upgrade", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert upgrade.returncode == 0, upgrade.stderr
    add = subprocess.run(
        [*corridor, "user", "add", "carol", "--password-stdin", "--data-dir", str(tmp_path)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert add.returncode == 0, add.stderr
    store = Store(f"sqlite:///{tmp_path / 'corridor.db'}")
    user = store.users.by_name("carol")
    assert user is not None
    credential_id = b64url_encode(new_id().encode())
    assert store.users.add_passkey(
        credential_id=credential_id,
        user_id=user["id"],
        public_key="AA",
        sign_count=3,
        aaguid="00000000-0000-0000-0000-000000000000",
        transports='["internal"]',
        backed_up=True,
        created_at=time.time(),
        last_used_at=None,
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*corridor, "user", "passkeys", "carol", *args, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = json.loads(run("--json").stdout)
    assert [(p["credential_id"], p["sign_count"], p["transports"]) for p in listed] == [
        (credential_id, 3, ["internal"])
    ]
    assert run("--remove", "nope").returncode != 0
    assert run("--remove", credential_id).returncode == 0
    assert json.loads(run("--json").stdout) == []
    store.close()


def test_a_disabled_account_cannot_sign_in_with_its_passkey(driver: Driver) -> None:
    """Issue 18 (`corridor user disable`): a valid assertion of a disabled account gives no session;
    the page may say why, as only the passkey's holder gets this far. Enabled again, it works."""
    client, username = driver.add_client(), driver.add_user()
    authenticator = device(driver)
    enrol(driver, client, username, authenticator)
    user = driver.as_.store.users.by_name(username)
    assert user is not None and driver.as_.store.users.set_disabled(user["id"], driver.now())
    browser = driver.browser()
    _response, flow = driver.par(client)
    login = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    reply = post(browser, login, authenticator.get(passkey_form(login).options), follow=False)
    assert reply.status_code == 403 and "set-cookie" not in reply.headers
    assert "This account is disabled. Ask your administrator." in reply.text
    record = last_record(driver, "login")
    assert record["outcome"] == "refused" and record["rule"] == Rule.ISSUE_18_ACCOUNT_DISABLED
    assert driver.as_.store.users.set_disabled(user["id"], None)
    login = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    reply = post(browser, login, authenticator.get(passkey_form(login).options), follow=False)
    assert reply.status_code == 303 and "__Host-corridor-session=" in reply.headers["set-cookie"]
