"""Issue 13 C4: a password alone never reaches acr "passkey" (default settings, not dev mode).

A password-only account cannot add its first passkey from the sign-in pages; the operator's
single-use enrolment link (``corridor user enrol NAME``, 15 minutes, 256 bits, spent atomically
with the passkey it binds) plus the account's password can. An account with a second factor
keeps the old gate: prove it first. Real HTTPS, the software authenticator of
tests/passkey_device.py, both databases; the race uses two OS processes.
"""

from __future__ import annotations

import multiprocessing
import re
import ssl
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from corridor.core.randomness import token_hash
from corridor.server.enrolment import CSRF_COOKIE, issue_link
from corridor.server.settings import Settings
from corridor.store import schema
from corridor.transport.tls import DevTLS
from tests.passkey_device import Authenticator, passkey_form
from tests.server.test_passkeys import device, login_page, post
from tests.server.test_step_up import start
from tests.support import PASSWORD, Browser, Driver, running_as
from tests.test_serve import corridor

LIFETIME = 900


def link_for(driver: Driver, username: str) -> str:
    assert driver.as_.server is not None
    user = driver.as_.store.users.by_name(username)
    assert user is not None
    return issue_link(driver.as_.store, driver.as_.server.settings, user, driver.now())


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def open_link(driver: Driver, link: str, browser: Browser | None = None) -> tuple[Browser, httpx.Response]:
    browser = browser or driver.browser()
    parts = urlsplit(link)
    return browser, browser.http.get(driver.url(f"{parts.path}?{parts.query}"))


def enrol_form(
    page: httpx.Response, authenticator: Authenticator, password: str = PASSWORD
) -> dict[str, str]:
    form = passkey_form(page)
    assert form.ceremony == "create" and form.action == "/enrol", form
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token
    return {
        **form.fields,
        "token": token.group(1),
        "password": password,
        "credential": authenticator.create(form.options),
    }


def passkeys_of(driver: Driver, username: str) -> int:
    user = driver.as_.store.users.by_name(username)
    assert user is not None
    return len(driver.as_.store.users.passkeys(user["id"]))


def assert_refused_page(response: httpx.Response, status: int = 400, error: str = "access_denied") -> None:
    assert response.status_code == status, response.text
    assert f'<code id="error">{error}</code>' in response.text
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


# -- without a link -------------------------------------------------------------------------------


def test_the_default_outside_dev_mode_is_no_self_service(tmp_path: Path) -> None:
    """Dev mode (``make run``) keeps self-service enrolment; elsewhere it is an explicit setting."""
    assert Settings(data_dir=tmp_path).self_service_enrolment is True  # loopback issuer: dev mode
    assert Settings(data_dir=tmp_path, issuer="https://as.example.com").self_service_enrolment is False
    assert Settings(data_dir=tmp_path, dev_mode=False).self_service_enrolment is False
    assert Settings(data_dir=tmp_path, dev_mode=False, self_service_enrolment=True).self_service_enrolment
    assert Settings(data_dir=tmp_path, self_service_enrolment=False).self_service_enrolment is False


def test_a_password_alone_cannot_add_the_first_passkey(driver: Driver) -> None:
    client, username = driver.add_client(), driver.add_user()
    browser = driver.browser()
    _flow, consent = start(driver, client, browser, username, acr=None)
    assert ">Approve<" in consent.text and "passkey-enrol" not in consent.text  # not offered
    interaction = re.search(r'action="(/interaction/[0-9a-f]+)/consent"', consent.text)
    assert interaction
    page = browser.get(driver.url(interaction.group(1) + "/passkey-enrol"))
    assert page.status_code == 403, page.text
    assert "enrolment link from your administrator" in page.text
    assert "data-passkey" not in page.text and "<script" not in page.text  # no ceremony
    csrf = re.search(r'name="csrf" value="([^"]+)"', consent.text)
    assert csrf
    refused = browser.http.post(
        driver.url(interaction.group(1) + "/passkey-enrol"), data={"csrf": csrf.group(1), "credential": "{}"}
    )
    assert_refused_page(refused)
    records = [r for r in driver.as_.store.audit.records() if r["event"] == "passkey"]
    assert records[-1]["rule"] == "issue 13 C4 (self_service_enrolment off)"
    assert passkeys_of(driver, username) == 0
    # "Add a passkey after signing in" on the login page leads to the same answer.
    browser, login = login_page(driver, client)
    page = browser.submit(login, {"username": username, "password": PASSWORD, "then": "enrol"})
    assert page.status_code == 403 and "enrolment link" in page.text


def test_an_account_with_totp_proves_it_first_then_adds_a_passkey(driver: Driver) -> None:
    """The existing gate stays: a password session of an account with TOTP is asked for a code."""
    client, username = driver.add_client(), driver.add_user()
    secret = pyotp.random_base32()
    assert driver.as_.store.users.set_totp_secret(username, secret)
    browser = driver.browser()
    _flow, consent = start(driver, client, browser, username, acr=None)
    link = re.search(r'<a href="(/interaction/[0-9a-f]+/passkey-enrol)">Add a passkey', consent.text)
    assert link, consent.text
    second = browser.get(driver.url(link.group(1)))
    assert second.status_code == 200 and 'name="code"' in second.text
    enrol_page = browser.submit(second, {"code": pyotp.TOTP(secret).now(), "then": "enrol"})
    back = post(browser, enrol_page, device(driver).create(passkey_form(enrol_page).options))
    assert ">Approve<" in back.text and passkeys_of(driver, username) == 1


# -- with a link ----------------------------------------------------------------------------------


def test_an_enrolment_link_binds_one_passkey_once(driver: Driver) -> None:
    client, username = driver.add_client(), driver.add_user()
    link = link_for(driver, username)
    token = token_of(link)
    assert link.startswith(driver.issuer + "/enrol?token=") and len(token) >= 22  # 128+ bits
    stored = driver.as_.store.users.enrolment_link(token_hash(token))
    assert stored is not None and stored["expires_at"] - stored["created_at"] == LIFETIME
    assert token not in repr(stored)  # only the hash is kept
    browser, page = open_link(driver, link)
    assert page.status_code == 200 and username in page.text, page.text
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    authenticator = device(driver)
    done = browser.http.post(driver.url("/enrol"), data=enrol_form(page, authenticator))
    assert done.status_code == 303 and done.headers["location"] == "/enrol?done=1", done.text
    assert "Your passkey was added" in browser.get(driver.url(done.headers["location"])).text
    assert passkeys_of(driver, username) == 1
    spent = driver.as_.store.users.enrolment_link(token_hash(token))
    assert spent is not None and spent["consumed_at"] is not None
    record = max(
        (r for r in driver.as_.store.audit.records() if r["event"] == "passkey"), key=lambda r: r["id"]
    )
    assert record["outcome"] == "enrolled" and '"via":"enrolment_link"' in record["detail"]
    # The passkey signs in alone, at the strongest level.
    other, login = login_page(driver, client)
    consent = post(other, login, authenticator.get(passkey_form(login).options))
    assert ">Approve<" in consent.text, consent.text
    # Second use: neither the page nor a post with another new credential.
    _, again = open_link(driver, link)
    assert_refused_page(again)
    form = enrol_form(page, device(driver))
    with driver.as_.http(cookies={CSRF_COOKIE: form["csrf"]}) as replay:
        assert_refused_page(replay.post(driver.url("/enrol"), data=form))
    assert passkeys_of(driver, username) == 1


def test_an_enrolment_link_expires_after_15_minutes(driver: Driver) -> None:
    username = driver.add_user()
    link = link_for(driver, username)
    browser, page = open_link(driver, link)
    assert page.status_code == 200
    form = enrol_form(page, device(driver))
    driver.as_.clock.advance(LIFETIME + 1)
    assert_refused_page(browser.http.post(driver.url("/enrol"), data=form))
    assert_refused_page(open_link(driver, link)[1])
    assert passkeys_of(driver, username) == 0
    stored = driver.as_.store.users.enrolment_link(token_hash(token_of(link)))
    assert stored is not None and stored["consumed_at"] is None


def test_an_enrolment_link_needs_the_password_and_its_own_form(driver: Driver) -> None:
    username, other = driver.add_user(), driver.add_user()
    link = link_for(driver, username)
    browser, page = open_link(driver, link)
    wrong = browser.http.post(driver.url("/enrol"), data=enrol_form(page, device(driver), password="wrong"))
    assert wrong.status_code == 400 and "Wrong password" in wrong.text
    assert passkeys_of(driver, username) == 0
    # The link is not spent by a wrong password; the form again, with the right one, works.
    done = browser.http.post(driver.url("/enrol"), data=enrol_form(wrong, device(driver)))
    assert done.status_code == 303 and passkeys_of(driver, username) == 1
    # Another user's password, an unknown token, a missing CSRF cookie: refused.
    link = link_for(driver, other)
    browser, page = open_link(driver, link)
    form = enrol_form(page, device(driver))
    assert_refused_page(
        browser.http.post(driver.url("/enrol"), data={**form, "token": "A" * 43}), error="access_denied"
    )
    fresh = driver.browser()  # no CSRF cookie
    assert_refused_page(fresh.http.post(driver.url("/enrol"), data=form), error="invalid_request")
    for hostile in ("", "x", "A" * 5000, "%00", "../../etc"):
        assert_refused_page(driver.http.get(driver.url("/enrol"), params={"token": hostile}))
    assert passkeys_of(driver, other) == 0


# -- the race: one link posted twice at once, by two processes ------------------------------------


def _post_after_barrier(
    url: str, form: dict[str, str], cookies: dict[str, str], ca: str, barrier: Any
) -> int:
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=30, cookies=cookies) as http:
        http.get(url.rsplit("/", 1)[0] + "/jwks")  # connect before the barrier
        barrier.wait()
        return http.post(url, data=form).status_code


def test_one_link_posted_twice_at_once_binds_one_passkey(driver: Driver) -> None:
    context = multiprocessing.get_context("spawn")
    ca = str(driver.as_.tls.ca_file)
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        for _ in range(3):
            username = driver.add_user()
            link = link_for(driver, username)
            # Two pages of the same link (two challenges): only the link's atomic spend decides.
            posts = []
            for _ in range(2):
                browser, page = open_link(driver, link)
                posts.append(
                    (enrol_form(page, device(driver)), {CSRF_COOKIE: browser.http.cookies[CSRF_COOKIE]})
                )
            barrier = manager.Barrier(2)
            futures = [
                pool.submit(_post_after_barrier, driver.url("/enrol"), form, cookies, ca, barrier)
                for form, cookies in posts
            ]
            statuses = sorted(f.result() for f in futures)
            assert statuses == [303, 400], statuses
            user = driver.as_.store.users.by_name(username)
            assert user is not None
            with driver.as_.store.engine.connect() as conn:
                count = conn.execute(
                    select(func.count()).where(schema.passkeys.c.user_id == user["id"])
                ).scalar_one()
            assert count == 1


# -- the CLI ---------------------------------------------------------------------------------------


def test_corridor_user_enrol_prints_a_working_link(tmp_path: Path, tls: DevTLS) -> None:
    """``corridor user enrol NAME`` on the data directory of a running AS: its link works there."""
    assert corridor("db", "upgrade", data_dir=tmp_path).returncode == 0  # issue 13 F2: made on purpose
    assert (
        corridor(
            "user", "add", "erin", "--password-stdin", data_dir=tmp_path, stdin=PASSWORD + "\n"
        ).returncode
        == 0
    )
    missing = corridor("user", "enrol", "nobody", data_dir=tmp_path)
    assert (
        missing.returncode == 1 and "no user 'nobody'" in missing.stderr and "Traceback" not in missing.stderr
    )
    before = time.time()
    printed = corridor("user", "enrol", "erin", data_dir=tmp_path)
    assert printed.returncode == 0, printed.stderr
    link = printed.stdout.strip()
    assert re.fullmatch(r"https://localhost:8443/enrol\?token=[A-Za-z0-9_-]{43}", link), link
    assert "valid 15 minutes, once" in printed.stderr
    with running_as(tmp_path, tls) as running:
        stored = running.store.users.enrolment_link(token_hash(token_of(link)))
        assert (
            stored is not None
            and before - 1 <= stored["created_at"]
            and stored["expires_at"] == stored["created_at"] + LIFETIME
        )
        driver = Driver(running)
        browser, page = open_link(driver, link)
        assert page.status_code == 200 and "erin" in page.text
        done = browser.http.post(driver.url("/enrol"), data=enrol_form(page, device(driver)))
        assert done.status_code == 303, done.text
        assert passkeys_of(driver, "erin") == 1
        driver.http.close()


# -- hostile input ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.dictionaries(
        st.sampled_from(["token", "csrf", "password", "credential", "done", "x"]),
        st.text(max_size=80) | st.sampled_from(["A" * 43, "{}", '{"id":1}', "\x00", "1", "c"]),
        max_size=5,
    ),
    st.booleans(),
)
def test_hostile_enrolment_requests_get_a_page_never_a_500(
    driver: Driver, fields: dict[str, str], with_cookie: bool
) -> None:
    """Design.md 8: any query or form at /enrol is answered with a precise page."""
    cookies = {CSRF_COOKIE: "c"} if with_cookie else {}  # a form with csrf=c passes the CSRF check
    with driver.as_.http(cookies=cookies) as http:
        for response in (
            http.get(driver.url("/enrol"), params=fields),
            http.post(driver.url("/enrol"), data=fields),
        ):
            assert response.status_code in (200, 400), (response.status_code, response.text[:300])
            assert "Traceback" not in response.text
