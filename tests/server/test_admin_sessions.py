"""Administrator sign-in at /admin/trace (issue 13 C3): the admin's strongest enrolled factor (a
TOTP code after the password), ``admin_require_mfa`` (on outside dev mode), sign-out (POST with
CSRF, cookie cleared, the stored session gone) and a session lifetime (idle and absolute), on
both databases through real HTTPS, the clock moved for lifetimes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pyotp
import pytest
from sqlalchemy import func, select

from corridor.server.settings import Settings
from corridor.store import schema
from corridor.transport.tls import DevTLS
from tests.support import PASSWORD, Driver, RunningAS, running_as

ADMIN_COOKIE = "__Host-corridor-admin"


@pytest.fixture(scope="module")
def admin_as(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, database: str) -> Iterator[RunningAS]:
    data_dir = tmp_path_factory.mktemp("admin-sessions")
    admins = [f"admin-{n}" for n in range(40)]
    with running_as(data_dir, tls, database_url=database, admin_users=admins) as running:
        yield running


@pytest.fixture
def driver(admin_as: RunningAS) -> Iterator[Driver]:
    start = admin_as.clock._offset
    d = Driver(admin_as)
    yield d
    admin_as.clock.advance(start - admin_as.clock._offset)
    d.http.close()


_admins = iter(range(40))


def new_admin(driver: Driver, totp: bool = True) -> tuple[str, pyotp.TOTP | None]:
    name = f"admin-{next(_admins)}"
    driver.add_user(name)
    if not totp:
        return name, None
    secret = pyotp.random_base32()
    assert driver.as_.store.users.set_totp_secret(name, secret)
    return name, pyotp.TOTP(secret)


def field(page: httpx.Response, name: str) -> str:
    return page.text.split(f'name="{name}" value="')[1].split('"')[0]


def password_step(http: httpx.Client, driver: Driver, username: str) -> httpx.Response:
    page = http.get(driver.url("/admin/trace?id=x"))
    assert page.status_code == 200 and 'name="password"' in page.text
    return http.post(
        driver.url("/admin/login"),
        data={
            "csrf": field(page, "csrf"),
            "next": "/admin/trace?id=x",
            "username": username,
            "password": PASSWORD,
        },
    )


def sign_in(driver: Driver, username: str, totp: pyotp.TOTP) -> httpx.Client:
    http = driver.as_.http(follow_redirects=False)
    assert password_step(http, driver, username).status_code == 303
    page = http.get(driver.url("/admin/trace?id=x"))
    assert 'name="code"' in page.text
    done = http.post(
        driver.url("/admin/second-factor"),
        data={"csrf": field(page, "csrf"), "next": "/admin/trace?id=x", "code": totp.at(driver.now())},
    )
    assert done.status_code == 303 and done.headers["location"] == "/admin/trace?id=x"
    return http


def stored_sessions(driver: Driver, username: str) -> int:
    user = driver.as_.store.users.by_name(username)
    assert user is not None
    table = schema.admin_sessions
    with driver.as_.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(table.c.user_id == user["id"])).scalar_one())


def test_an_admin_with_totp_gives_the_code_after_the_password(driver: Driver) -> None:
    username, totp = new_admin(driver)
    assert totp is not None
    http = driver.as_.http(follow_redirects=False)
    first = password_step(http, driver, username)
    assert first.status_code == 303
    # The password alone does not open the trail: the code is asked for.
    page = http.get(driver.url("/admin/trace?id=x"))
    assert page.status_code == 200 and 'name="code"' in page.text and 'class="timeline"' not in page.text
    right = totp.at(driver.now())
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    refused = http.post(
        driver.url("/admin/second-factor"),
        data={"csrf": field(page, "csrf"), "next": "/admin/trace", "code": wrong},
    )
    assert refused.status_code == 400 and "not right" in refused.text
    assert 'class="timeline"' not in http.get(driver.url("/admin/trace?id=x")).text
    done = http.post(
        driver.url("/admin/second-factor"),
        data={"csrf": field(page, "csrf"), "next": "/admin/trace", "code": right},
    )
    assert done.status_code == 303
    timeline = http.get(driver.url("/admin/trace?id=x"))
    assert 'class="timeline"' in timeline.text and 'name="code"' not in timeline.text
    user = driver.as_.store.users.by_name(username)
    assert user is not None
    logins = [
        r
        for r in driver.as_.store.audit.records()
        if r["event"] == "admin.login" and r["user_id"] == user["id"]
    ]
    assert [r["outcome"] for r in logins] == ["refused", "succeeded"]
    assert json.loads(logins[-1]["detail"])["acr"] == "mfa"


def test_mfa_is_required_for_admins_outside_dev_mode(driver: Driver) -> None:
    username, _ = new_admin(driver, totp=False)
    http = driver.as_.http(follow_redirects=False)
    refused = password_step(http, driver, username)
    assert refused.status_code == 403 and "second factor" in refused.text
    assert ADMIN_COOKIE + "=" not in " ".join(refused.headers.get_list("set-cookie")).replace(
        ADMIN_COOKIE + "-csrf", ""
    )
    assert stored_sessions(driver, username) == 0
    # The setting's default follows dev mode, and can be set either way.
    assert Settings(dev_mode=False).admin_require_mfa is True
    assert Settings(dev_mode=True).admin_require_mfa is False
    assert Settings(dev_mode=False, admin_require_mfa=False).admin_require_mfa is False


def test_password_only_admins_when_the_setting_allows(
    tmp_path_factory: pytest.TempPathFactory, tls: DevTLS
) -> None:
    with running_as(
        tmp_path_factory.mktemp("no-mfa"), tls, admin_users=["plain"], admin_require_mfa=False
    ) as running:
        driver = Driver(running)
        driver.add_user("plain")
        http = running.http(follow_redirects=False)
        assert password_step(http, driver, "plain").status_code == 303
        assert 'class="timeline"' in http.get(driver.url("/admin/trace?id=x")).text
        driver.http.close()


def test_sign_out_clears_the_cookie_and_ends_the_stored_session(driver: Driver) -> None:
    username, totp = new_admin(driver)
    assert totp is not None
    http = sign_in(driver, username, totp)
    page = http.get(driver.url("/admin/trace?id=x"))
    assert 'action="/admin/logout"' in page.text
    cookie = http.cookies[ADMIN_COOKIE]
    assert stored_sessions(driver, username) == 1
    # Without the form's CSRF token: refused, still signed in.
    forged = http.post(driver.url("/admin/logout"), data={"csrf": "nope"})
    assert forged.status_code == 400 and stored_sessions(driver, username) == 1
    out = http.post(driver.url("/admin/logout"), data={"csrf": field(page, "csrf")})
    assert out.status_code == 303 and out.headers["location"] == "/admin/trace"
    cleared = [c for c in out.headers.get_list("set-cookie") if c.startswith(ADMIN_COOKIE + "=")]
    assert cleared and "Max-Age=0" in cleared[0]
    assert stored_sessions(driver, username) == 0
    # The old cookie value no longer opens anything.
    replay = driver.as_.http(follow_redirects=False)
    again = replay.get(driver.url("/admin/trace?id=x"), headers={"Cookie": f"{ADMIN_COOKIE}={cookie}"})
    assert 'name="password"' in again.text and 'class="timeline"' not in again.text


def test_a_disabled_admin_s_session_ends_and_the_password_no_longer_opens_the_page(driver: Driver) -> None:
    """Issue 18 (`corridor user disable`, `user passwd`): the user's stored admin sessions end
    (Requests.end_user_sessions), a session begun in the same instant is refused by the flag, and
    the right password then gets the same answer as a wrong one."""
    username, totp = new_admin(driver)
    assert totp is not None
    http = sign_in(driver, username, totp)
    user = driver.as_.store.users.by_name(username)
    assert user is not None and stored_sessions(driver, username) == 1
    assert driver.as_.store.users.set_disabled(user["id"], driver.now())
    page = http.get(driver.url("/admin/trace?id=x"))  # the flag alone refuses the session
    assert 'name="password"' in page.text and 'class="timeline"' not in page.text
    assert driver.as_.store.requests.end_user_sessions(user["id"]) == 1
    assert stored_sessions(driver, username) == 0
    refused = password_step(driver.as_.http(follow_redirects=False), driver, username)
    assert refused.status_code == 400
    assert "Wrong user name or password, or not an administrator." in refused.text


def test_a_session_ends_after_15_idle_minutes_and_after_30_in_all(driver: Driver) -> None:
    username, totp = new_admin(driver)
    assert totp is not None
    http = sign_in(driver, username, totp)
    driver.as_.clock.advance(899)
    assert 'class="timeline"' in http.get(driver.url("/admin/trace?id=x")).text  # use keeps it alive
    driver.as_.clock.advance(901)
    idle = http.get(driver.url("/admin/trace?id=x"))
    assert 'name="password"' in idle.text and 'class="timeline"' not in idle.text
    # Kept busy, it still ends 30 minutes after sign-in.
    driver.as_.clock.advance(60)
    http = sign_in(driver, username, totp)
    for _ in range(2):
        driver.as_.clock.advance(600)
        assert 'class="timeline"' in http.get(driver.url("/admin/trace?id=x")).text
    driver.as_.clock.advance(601)
    page = http.get(driver.url("/admin/trace?id=x"))
    assert 'name="password"' in page.text and 'class="timeline"' not in page.text


def test_an_admin_with_a_passkey_uses_it_not_the_code(driver: Driver) -> None:
    """The strongest enrolled factor: an admin with a passkey and TOTP is asked for the passkey
    (its challenge bound to this session), and a TOTP code is not enough."""
    from tests.passkey_device import Authenticator, passkey_form

    server = driver.as_.server
    assert server is not None and server.passkeys.available
    username, totp = new_admin(driver)
    assert totp is not None
    user = driver.as_.store.users.by_name(username)
    assert user is not None
    device = Authenticator(origin=driver.issuer, rp_id="localhost")
    options = json.loads(server.passkeys.registration_options(user, "setup", driver.now()))
    server.passkeys.register(device.create(options), user, "setup", driver.now())
    http = driver.as_.http(follow_redirects=False)
    assert password_step(http, driver, username).status_code == 303
    page = http.get(driver.url("/admin/trace?id=x"))
    assert 'data-passkey="get"' in page.text and 'name="code"' not in page.text
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    code = http.post(
        driver.url("/admin/second-factor"),
        data={"csrf": field(page, "csrf"), "next": "/admin/trace", "code": totp.at(driver.now())},
    )
    assert code.status_code == 400 and "Use your passkey" in code.text
    form = passkey_form(page)
    # An assertion for another session's challenge is refused.
    other = driver.as_.http(follow_redirects=False)
    assert password_step(other, driver, username).status_code == 303
    foreign = passkey_form(other.get(driver.url("/admin/trace?id=x")))
    refused = http.post(
        driver.url(form.action), data={**form.fields, "credential": device.get(foreign.options)}
    )
    assert refused.status_code == 400 and 'class="timeline"' not in refused.text
    done = http.post(driver.url(form.action), data={**form.fields, "credential": device.get(form.options)})
    assert done.status_code == 303 and done.headers["location"] == "/admin/trace?id=x"
    assert 'class="timeline"' in http.get(driver.url("/admin/trace?id=x")).text
    logins = [
        r
        for r in driver.as_.store.audit.records()
        if r["event"] == "admin.login" and r["user_id"] == user["id"]
    ]
    assert [r["outcome"] for r in logins] == ["refused", "succeeded"]
    assert json.loads(logins[-1]["detail"])["acr"] == "passkey"


@pytest.mark.parametrize("path", ["/admin/login", "/admin/second-factor", "/admin/passkey", "/admin/logout"])
def test_hostile_admin_posts_get_a_page_never_a_500(driver: Driver, path: str) -> None:
    username, totp = new_admin(driver)
    assert totp is not None
    signed_in = driver.as_.http(follow_redirects=False)
    assert password_step(signed_in, driver, username).status_code == 303  # half signed in
    junk_cookies = ["", "x" * 5000, "\x7f", "a.b.c", signed_in.cookies[ADMIN_COOKIE] + "x"]
    forms = [
        {},
        {"csrf": "x" * 5000, "code": "1" * 7, "credential": "{" * 3000, "next": "//evil.example"},
        {"csrf": "", "code": "abcdef", "credential": '{"id": 1}', "username": "\u202e" * 300, "password": ""},
    ]
    for cookie in junk_cookies:
        for form in forms:
            http = driver.as_.http(follow_redirects=False)
            if cookie:
                http.cookies.set(ADMIN_COOKIE, cookie, domain="localhost")
            response = http.post(driver.url(path), data=form)
            assert response.status_code in (303, 400, 403, 429), (path, cookie[:20], response.text[:200])
            assert "evil.example" not in response.headers.get("location", "")
    # The half-signed-in session with junk forms: refused, never advanced.
    for form in forms:
        response = signed_in.post(driver.url(path), data=form)
        assert response.status_code in (303, 400), response.text[:200]
        assert "evil.example" not in response.headers.get("location", "")
    assert 'name="code"' in signed_in.get(driver.url("/admin/trace")).text or path == "/admin/logout"
