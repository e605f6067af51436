"""The login drivers of ``corridor check`` (issue 14, ``[login] method``) on a fake
authorization server's pages (a Starlette app on real TLS, 127.0.0.1), on Corridor itself and on
panva's oidc-provider: sign-in with and without CSRF fields, a differently named password input,
consent by buttons or by Continue + a Cancel/Abort link, a reused session, 303/307 after POST,
a Retry-After on the sign-in POST, a page that submits itself and a meta refresh; the redirect
URI and foreign origins are never requested, the password never reaches the transcript."""

from __future__ import annotations

import asyncio
import html
import io
import json
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, quote_plus, urlencode

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from corridor.check.browser import Browser
from corridor.check.config import LoginConfig
from corridor.check.http import Transcript
from corridor.check.login import HtmlFormBrowser, LoginError, ManualBrowser, make_browser, pages
from corridor.check.outcome import FrontChannelResult, Landing
from corridor.client import FapiClient
from corridor.transport.listeners import uvicorn_server
from corridor.transport.tls import DevTLS, server_ssl_context
from tests.interop.peer import OidcProviderPeer, running_oidc_provider
from tests.pki import TestPKI
from tests.server.test_browser import chromium_or_skip
from tests.stubserver import stub_server
from tests.support import PASSWORD as CORRIDOR_PASSWORD
from tests.support import Driver, free_socket

USER = "alice"
#: Spaces, "+", "&" and a non-ASCII letter: the password must vanish in every encoding.
SECRET = "hunter2 & friends+é/x"
REDIRECT_URI = "https://client.example/cb"
LOGIN = LoginConfig("html-form", USER, SECRET)
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Corridor on SQLite only here: the drivers are under test, not the storage."""
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'corridor.db'}"


# -- the fake authorization server -----------------------------------------------------------------


@dataclass
class FakeAS:
    issuer: str = ""
    #: (method, path, form fields in order) of every request.
    seen: list[tuple[str, str, list[tuple[str, str]]]] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    throttled: set[str] = field(default_factory=set)

    def posts(self, path: str) -> list[list[tuple[str, str]]]:
        return [fields for method, p, fields in self.seen if method == "POST" and p == path]

    def paths(self) -> list[str]:
        """The pages asked for (a browser's own /favicon.ico aside)."""
        return [p for _, p, _ in self.seen if p != "/favicon.ico"]


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>", status
    )


def _to_client(fake: FakeAS, state: str, **params: str) -> RedirectResponse:
    query = urlencode({**params, "state": state, "iss": fake.issuer})
    return RedirectResponse(f"{REDIRECT_URI}?{query}", 303)


def build_app(fake: FakeAS) -> Starlette:
    async def handle(request: Request) -> Response:
        path = request.url.path
        body = (await request.body()).decode()
        fields = parse_qsl(body, keep_blank_values=True)
        form = dict(fields)
        fake.seen.append((request.method, path, fields))
        flow, _, step = path.strip("/").partition("/")
        state = request.query_params.get("state", "")
        q = f"?state={quote(state)}"
        sid = request.cookies.get("sid", "")
        signed_in = sid in fake.sessions

        def signed(response: Response) -> Response:
            new = secrets.token_urlsafe(8)
            fake.sessions.add(new)
            response.set_cookie("sid", new, secure=True, httponly=True, path="/")
            return response

        # Flows whose first page is the sign-in page (GET .../authorize -> 303 .../login).
        if step == "authorize":
            if flow == "error":
                return _page("Error", "<h1>Invalid request</h1><p>unknown client_id</p>", 400)
            if flow == "boom":
                return PlainTextResponse("internal error", 500)
            if flow == "evil":
                return RedirectResponse("https://evil.example/steal?code=stolen", 302)
            if flow == "loop":
                return RedirectResponse(request.query_params["to"] + "?code=c0de&state=" + quote(state), 303)
            if flow == "sso" and signed_in:
                return _to_client(fake, state, code="sso-code")
            return RedirectResponse(f"/{flow}/login{q}", 303)

        if flow == "csrf":
            if step == "login" and request.method == "GET":
                if signed_in:  # a reused session skips the sign-in page
                    return RedirectResponse(f"/csrf/consent{q}", 303)
                token = secrets.token_urlsafe(12)
                response = _page(
                    "Sign in",
                    f'<form method="post" action="/csrf/login{html.escape(q)}">'
                    f'<input type="hidden" name="csrf_token" value="{token}">'
                    '<label>User <input type="text" name="username"></label>'
                    '<input type="checkbox" name="remember" value="yes">'
                    '<label>Password <input type="password" name="password"></label>'
                    '<button type="submit">Sign in</button></form>',
                )
                response.set_cookie("csrf", token, secure=True, path="/")
                return response
            if step == "login":
                if form.get("csrf_token") != request.cookies.get("csrf"):
                    return _page("Forbidden", "<p>bad CSRF token</p>", 403)
                if (form.get("username"), form.get("password")) != (USER, SECRET):
                    return _page("Sign in", "<p>wrong password</p>", 401)
                return signed(RedirectResponse(f"/csrf/consent{q}", 303))
            if step == "consent" and request.method == "GET" and signed_in:
                return _page(
                    "Allow access?",
                    f'<form method="post" action="consent{html.escape(q)}">'
                    '<input type="hidden" name="csrf_token" value="consent-token">'
                    '<button type="submit" name="decision" value="approve">Approve</button>'
                    '<button type="submit" name="decision" value="deny">Deny</button></form>',
                )
            if step == "consent" and signed_in and form.get("csrf_token") == "consent-token":
                if form.get("decision") == "approve":
                    return _to_client(fake, state, code="csrf-code")
                return _to_client(fake, state, error="access_denied")

        if flow == "bare":  # no CSRF field, a relative action, other input names, Cancel first
            if step == "login" and request.method == "GET":
                return _page(
                    "Welcome",
                    f'<form method="POST" action="login{html.escape(q)}">'
                    '<input type="email" name="identifier" autocomplete="username">'
                    '<input type="password" name="pass_phrase">'
                    '<button type="submit" name="action" value="cancel">Cancel</button>'
                    '<button type="submit" name="action" value="login">Log in</button></form>'
                    '<p><a href="/bare/signup">Don\'t have an account?</a></p>',
                )
            if step == "login":
                if form.get("action") == "cancel":
                    return _to_client(fake, state, error="access_denied")
                if (form.get("identifier"), form.get("pass_phrase")) == (USER, SECRET):
                    return signed(RedirectResponse(f"/bare/grant{q}", 302))
                return _page("Welcome", "<p>wrong password</p>", 401)
            if step == "grant" and request.method == "GET" and signed_in:
                return _page(
                    "Grant",
                    '<form method="post"><input type="submit" name="yes" value="Allow">'
                    '<input type="submit" name="no" value="Do not allow"></form>',
                )
            if step == "grant" and signed_in:
                if "yes" in form:
                    return _to_client(fake, state, code="bare-code")
                return _to_client(fake, state, error="access_denied")

        if flow == "peer":  # oidc-provider's development pages: Continue + [ Cancel ] / [ Abort ]
            if step == "login" and request.method == "GET":
                if signed_in:
                    return RedirectResponse(f"/peer/consent{q}", 303)
                return _page(
                    "Sign-in",
                    f'<form autocomplete="off" action="/peer/login{html.escape(q)}" method="post">'
                    '<input type="hidden" name="prompt" value="login"/>'
                    '<input required type="text" name="login" placeholder="Enter any login">'
                    '<input required type="password" name="password" placeholder="and password">'
                    '<button type="submit" class="login login-submit">Sign-in</button></form>'
                    f'<div class="login-help"><a href="/peer/abort{html.escape(q)}">[ Cancel ]</a></div>',
                )
            if step == "login":
                return signed(RedirectResponse(f"/peer/consent{q}", 303))
            if step == "consent" and request.method == "GET" and signed_in:
                return _page(
                    "Authorize",
                    f'<form autocomplete="off" action="/peer/confirm{html.escape(q)}" method="post">'
                    '<input type="hidden" name="prompt" value="consent"/>'
                    '<button autofocus type="submit" class="login login-submit">Continue</button></form>'
                    f'<div class="login-help"><a href="/peer/abort{html.escape(q)}">[ Abort ]</a>'
                    '<a href="https://client.example/tos">[ Terms of Service ]</a></div>',
                )
            if step == "confirm" and signed_in:
                return _to_client(fake, state, code="peer-code")
            if step == "abort":
                return _to_client(fake, state, error="access_denied")

        if flow == "sso":  # a session skips everything: straight back to the client
            if step == "login" and request.method == "GET":
                return _page(
                    "Sign in",
                    f'<form method="post" action="/sso/login{html.escape(q)}"><input name="user">'
                    '<input type="password" name="password"><input type="submit" value="Go"></form>',
                )
            if step == "login":
                return signed(_to_client(fake, state, code="sso-first"))

        if flow == "throttle":  # the sign-in POST is throttled once (503 + Retry-After)
            if step == "login" and request.method == "GET":
                return _page(
                    "Sign in",
                    f'<form method="post" action="/throttle/login{html.escape(q)}"><input name="username">'
                    '<input type="password" name="password"><button>Sign in</button></form>',
                )
            if step == "login":
                if state not in fake.throttled:
                    fake.throttled.add(state)
                    return PlainTextResponse("slow down", 503, headers={"Retry-After": "1"})
                return _to_client(fake, state, code="throttle-code")

        if flow == "moved":  # 307 after POST, a self-submitting page, a meta refresh
            if step == "login" and request.method == "GET":
                return _page(
                    "Sign in",
                    f'<form method="post" action="/moved/login{html.escape(q)}"><input name="username">'
                    '<input type="password" name="pass"><button>Sign in</button></form>',
                )
            if step == "login":
                return RedirectResponse(f"/moved/verify{q}", 307)
            if step == "verify" and request.method == "POST" and form.get("pass") == SECRET:
                return _page(
                    "Submitting",
                    f'<form method="post" action="/moved/finish{html.escape(q)}">'
                    '<input type="hidden" name="ticket" value="t-1">'
                    '<noscript><button type="submit">Continue</button></noscript></form>'
                    "<script>document.forms[0].submit()</script>",
                )
            if step == "finish" and form.get("ticket") == "t-1":
                return HTMLResponse(
                    f'<html><head><meta http-equiv="refresh" content="0; url=/moved/done{html.escape(q)}">'
                    "</head><body>One moment</body></html>"
                )
            if step == "done":
                return _to_client(fake, state, code="moved-code")

        return _page("Not found", "<p>no such page</p>", 404)

    return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


@pytest.fixture(scope="module")
def fake_as(tls: DevTLS) -> Iterator[FakeAS]:
    fake = FakeAS()
    sock = free_socket()
    fake.issuer = f"https://localhost:{sock.getsockname()[1]}"
    server = uvicorn_server(
        build_app(fake),
        "127.0.0.1",
        sock.getsockname()[1],
        server_ssl_context(tls.cert_file, tls.key_file),
        log_level="warning",
        lifespan="off",
    )
    # uvicorn annotates int | None but hands it to asyncio.wait_for, which takes float seconds.
    server.config.timeout_graceful_shutdown = 0.2  # type: ignore[assignment]
    thread = threading.Thread(target=asyncio.run, args=(server.serve([sock]),), daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "the fake AS did not start"
        time.sleep(0.02)
    yield fake
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def fake(fake_as: FakeAS) -> FakeAS:
    fake_as.seen.clear()
    return fake_as


def start(fake: FakeAS, flow: str, state: str = "", **extra: str) -> str:
    return f"{fake.issuer}/{flow}/authorize?" + urlencode(
        {"state": state or secrets.token_urlsafe(6), **extra}
    )


def html_browser(tls: DevTLS, transcript: Transcript, login: LoginConfig = LOGIN) -> HtmlFormBrowser:
    return HtmlFormBrowser(login, transcript=transcript, allowed_hosts=LOOPBACK, ca_file=tls.ca_file)


def success(fake: FakeAS, state: str, code: str) -> dict[str, str]:
    return {"code": code, "state": state, "iss": fake.issuer}


def no_secret(transcript: Transcript, secret: str = SECRET) -> None:
    """The password in no form at all: plain, percent-encoded (both ways), HTML-escaped."""
    dump = json.dumps([e.as_dict() for e in transcript.exchanges], ensure_ascii=False)
    for form in (secret, quote(secret, safe=""), quote_plus(secret), html.escape(secret)):
        assert form not in dump


# -- html-form on the fake pages -------------------------------------------------------------------


def test_csrf_login_and_consent_then_a_reused_session(fake: FakeAS, tls: DevTLS) -> None:
    transcript = Transcript()
    browser = html_browser(tls, transcript)
    try:
        result = browser.authorize(start(fake, "csrf", "s1"), REDIRECT_URI)
        assert result == FrontChannelResult(
            Landing.SUCCESS,
            f"{REDIRECT_URI}?code=csrf-code&state=s1&iss={quote_plus(fake.issuer)}",
            success(fake, "s1", "csrf-code"),
        )
        [login] = fake.posts("/csrf/login")
        token = dict(login)["csrf_token"]
        assert login == [("csrf_token", token), ("username", USER), ("password", SECRET)]  # no unchecked box
        assert fake.posts("/csrf/consent") == [[("csrf_token", "consent-token"), ("decision", "approve")]]
        assert REDIRECT_URI not in " ".join(e.url for e in transcript.exchanges)  # never requested
        no_secret(transcript)

        # The same browser again: its session skips the sign-in page, straight to consent.
        fake.seen.clear()
        again = browser.authorize(start(fake, "csrf", "s2"), REDIRECT_URI, approve=False)
        assert again.landing is Landing.ERROR_REDIRECT
        assert again.params == {"error": "access_denied", "state": "s2", "iss": fake.issuer}
        assert fake.posts("/csrf/login") == []
        assert fake.posts("/csrf/consent") == [[("csrf_token", "consent-token"), ("decision", "deny")]]
    finally:
        browser.close()


def test_no_csrf_other_field_names_and_a_cancel_button_first(fake: FakeAS, tls: DevTLS) -> None:
    transcript = Transcript()
    browser = html_browser(tls, transcript)
    try:
        result = browser.authorize(start(fake, "bare", "b1"), REDIRECT_URI)
        assert (result.landing, result.params) == (Landing.SUCCESS, success(fake, "b1", "bare-code"))
        # The text input before the password, the Sign-in button (not Cancel), the Allow input.
        assert fake.posts("/bare/login") == [
            [("identifier", USER), ("pass_phrase", SECRET), ("action", "login")]
        ]
        assert fake.posts("/bare/grant") == [[("yes", "Allow")]]
        [sign_in] = [e for e in transcript.exchanges if e.method == "POST" and "/bare/login" in e.url]
        assert "pass_phrase=[redacted]" in sign_in.request_body  # the form's own password name
        no_secret(transcript)
    finally:
        browser.close()

    # Deny at the first chance: the sign-in form's Cancel button, with nothing filled in.
    fake.seen.clear()
    browser = html_browser(tls, Transcript())
    try:
        denied = browser.authorize(start(fake, "bare", "b2"), REDIRECT_URI, approve=False)
        assert (denied.landing, denied.params) == (
            Landing.ERROR_REDIRECT,
            {"error": "access_denied", "state": "b2", "iss": fake.issuer},
        )
        assert fake.posts("/bare/login") == [[("identifier", ""), ("pass_phrase", ""), ("action", "cancel")]]
    finally:
        browser.close()


def test_continue_button_and_cancel_or_abort_links(fake: FakeAS, tls: DevTLS) -> None:
    browser = html_browser(tls, Transcript())
    try:
        result = browser.authorize(start(fake, "peer", "p1"), REDIRECT_URI)
        assert (result.landing, result.params) == (Landing.SUCCESS, success(fake, "p1", "peer-code"))
        assert fake.posts("/peer/login") == [[("prompt", "login"), ("login", USER), ("password", SECRET)]]
        assert fake.posts("/peer/confirm") == [[("prompt", "consent")]]  # Continue has no name
        # Signed in now: the consent page comes at once, and its [ Abort ] link denies.
        fake.seen.clear()
        denied = browser.authorize(start(fake, "peer", "p2"), REDIRECT_URI, approve=False)
        assert (denied.landing, denied.params) == (
            Landing.ERROR_REDIRECT,
            {"error": "access_denied", "state": "p2", "iss": fake.issuer},
        )
        assert fake.paths() == ["/peer/authorize", "/peer/login", "/peer/consent", "/peer/abort"]
    finally:
        browser.close()
    # A fresh browser denies on the sign-in page itself ([ Cancel ]): no sign-in at all.
    fake.seen.clear()
    browser = html_browser(tls, Transcript())
    try:
        denied = browser.authorize(start(fake, "peer", "p3"), REDIRECT_URI, approve=False)
        assert denied.params == {"error": "access_denied", "state": "p3", "iss": fake.issuer}
        assert fake.paths() == ["/peer/authorize", "/peer/login", "/peer/abort"]
    finally:
        browser.close()


def test_a_session_that_skips_everything(fake: FakeAS, tls: DevTLS) -> None:
    browser = html_browser(tls, Transcript())
    try:
        first = browser.authorize(start(fake, "sso", "o1"), REDIRECT_URI)
        assert first.params == success(fake, "o1", "sso-first")
        assert fake.posts("/sso/login") == [[("user", USER), ("password", SECRET)]]
        fake.seen.clear()
        second = browser.authorize(start(fake, "sso", "o2"), REDIRECT_URI)
        assert (second.landing, second.params) == (Landing.SUCCESS, success(fake, "o2", "sso-code"))
        assert fake.paths() == ["/sso/authorize"]
    finally:
        browser.close()
    # Another browser has its own cookies: it must sign in.
    fake.seen.clear()
    other = html_browser(tls, Transcript())
    try:
        assert other.authorize(start(fake, "sso", "o3"), REDIRECT_URI).params == success(
            fake, "o3", "sso-first"
        )
        assert len(fake.posts("/sso/login")) == 1
    finally:
        other.close()


def test_retry_after_on_the_sign_in_post(fake: FakeAS, tls: DevTLS) -> None:
    naps: list[float] = []
    browser = HtmlFormBrowser(
        LOGIN, transcript=Transcript(), allowed_hosts=LOOPBACK, ca_file=tls.ca_file, sleep=naps.append
    )
    try:
        result = browser.authorize(start(fake, "throttle", "t1"), REDIRECT_URI)
        assert result.params == success(fake, "t1", "throttle-code")
        sent = [("username", USER), ("password", SECRET)]
        assert fake.posts("/throttle/login") == [sent, sent]  # the same form, once more
        assert len(naps) == 1 and 0.5 <= naps[0] <= 1.5  # what Retry-After said (capped at 5 s), jittered
    finally:
        browser.close()


def test_307_keeps_the_post_a_self_submitting_page_and_a_meta_refresh(fake: FakeAS, tls: DevTLS) -> None:
    transcript = Transcript()
    browser = html_browser(tls, transcript)
    try:
        result = browser.authorize(start(fake, "moved", "m1"), REDIRECT_URI)
        assert (result.landing, result.params) == (Landing.SUCCESS, success(fake, "m1", "moved-code"))
        # RFC 9110 15.4.8: the 307 repeats the POST with its body.
        assert fake.posts("/moved/verify") == [[("username", USER), ("pass", SECRET)]]
        assert fake.posts("/moved/finish") == [[("ticket", "t-1")]]  # no <noscript> button pressed
        assert fake.paths()[-1] == "/moved/done"
        no_secret(transcript)
    finally:
        browser.close()


def test_the_redirect_uri_and_foreign_origins_are_never_requested(fake: FakeAS, tls: DevTLS) -> None:
    hits: list[str] = []

    def client(path: str) -> tuple[int, str, bytes]:
        hits.append(path)
        return 200, "text/plain", b"the client"

    with stub_server(client, tls=(tls.cert_file, tls.key_file)) as base:
        # A redirect URI on an allowed host (loopback), even: stop at its Location.
        redirect_uri = base.replace("localhost", "127.0.0.1") + "/cb"
        transcript = Transcript()
        browser = html_browser(tls, transcript)
        try:
            result = browser.authorize(start(fake, "loop", "l1", to=redirect_uri), redirect_uri)
            assert result == FrontChannelResult(
                Landing.SUCCESS, f"{redirect_uri}?code=c0de&state=l1", {"code": "c0de", "state": "l1"}
            )
            assert hits == []
            assert [e.url.split("?")[0] for e in transcript.exchanges] == [f"{fake.issuer}/loop/authorize"]
            # A foreign origin: not followed, and not a refusal either.
            evil = browser.authorize(start(fake, "evil"), REDIRECT_URI)
            assert evil.landing is Landing.FOREIGN_REDIRECT and evil.status == 302
            assert evil.url == "https://evil.example/steal"  # the origin and path only
            assert not any("evil.example" in e.url for e in transcript.exchanges)
            [redirect] = [e for e in transcript.exchanges if e.status == 302]
            assert redirect.response_headers["location"] == "https://evil.example/steal?code=[redacted]"
            assert "foreign origin" in evil.describe()
        finally:
            browser.close()


def test_error_pages_and_server_errors(fake: FakeAS, tls: DevTLS) -> None:
    browser = html_browser(tls, Transcript())
    try:
        error = browser.authorize(start(fake, "error"), REDIRECT_URI)
        assert (error.landing, error.status) == (Landing.ERROR_PAGE, 400)
        assert "unknown client_id" in error.text and error.params == {}
        boom = browser.authorize(start(fake, "boom"), REDIRECT_URI)
        assert (boom.landing, boom.status, boom.text) == (Landing.SERVER_ERROR, 500, "internal error")
        # A page the user cannot go on with (a 404 with no form) is an error page too.
        lost = browser.authorize(f"{fake.issuer}/nowhere", REDIRECT_URI)
        assert (lost.landing, lost.status) == (Landing.ERROR_PAGE, 404)
    finally:
        browser.close()


def test_wrong_password_stops_on_the_sign_in_page(fake: FakeAS, tls: DevTLS) -> None:
    browser = html_browser(tls, Transcript(), LoginConfig("html-form", USER, "not the password"))
    try:
        result = browser.authorize(start(fake, "csrf"), REDIRECT_URI)
        assert (result.landing, result.status) == (Landing.ERROR_PAGE, 401)
        assert len(fake.posts("/csrf/login")) == 1
    finally:
        browser.close()


def test_visit_stops_at_the_first_page(fake: FakeAS, tls: DevTLS) -> None:
    browser = html_browser(tls, Transcript())
    try:
        page = browser.visit(start(fake, "csrf"), REDIRECT_URI)
        assert (page.landing, page.status) == (Landing.INTERACTION, 200)
        assert page.url.startswith(f"{fake.issuer}/csrf/login?")
        assert all(method == "GET" for method, _, _ in fake.seen)
        assert browser.visit(start(fake, "error"), REDIRECT_URI).landing is Landing.ERROR_PAGE
        # A page that submits itself is no interaction: visit goes on through it.
        browser.authorize(start(fake, "sso", "v1"), REDIRECT_URI)
        assert browser.visit(start(fake, "sso", "v2"), REDIRECT_URI).params == success(fake, "v2", "sso-code")
    finally:
        browser.close()


def test_page_rules() -> None:
    page = pages.parse_page(
        '<form action="/x"><input type="text" name="q"><button>Search</button></form>'
        '<a href="/signup">Don\'t have an account?</a><a href="#">Cancel</a>'
        "<a href=/no-access>No access? Ask your administrator</a>"
    )
    assert pages.deny_link(page) is None
    step = pages.next_step(page, approve=False, username=USER, password=SECRET)
    assert (step.kind, step.reason) == ("stuck", "no deny control on the page")
    consent = pages.parse_page(
        "<form method=post><button name=d value=1>Don&#39;t allow</button>"
        "<button name=d value=2>Allow access</button></form>"
    )
    [dont, allow] = consent.forms[0].submit_controls()
    assert (pages.classify(dont), pages.classify(allow)) == ("deny", "approve")


# -- html-form against Corridor and oidc-provider --------------------------------------------------


def test_html_form_against_corridor(driver: Driver) -> None:
    client = driver.add_client()
    username = driver.add_user()
    login = LoginConfig("html-form", username, CORRIDOR_PASSWORD)
    for approve in (True, False):
        response, flow = driver.par(client)
        assert response.status_code == 201, response.text
        url = (
            driver.url("/authorize")
            + "?"
            + urlencode({"client_id": client.client_id, "request_uri": flow.request_uri})
        )
        transcript = Transcript()
        browser = make_browser(
            login, transcript=transcript, allowed_hosts=LOOPBACK, ca_file=driver.as_.tls.ca_file
        )
        try:
            result = browser.authorize(url, client.redirect_uri, approve=approve)
        finally:
            browser.close()
        no_secret(transcript, CORRIDOR_PASSWORD)
        if approve:
            assert result.landing is Landing.SUCCESS, result
            assert result.params["state"] == flow.state and result.params["iss"] == driver.issuer
            flow.code = result.params["code"]
            assert driver.redeem(client, flow).status_code == 200
        else:
            assert result.landing is Landing.ERROR_REDIRECT, result
            assert result.params["error"] == "access_denied" and result.params["state"] == flow.state


@pytest.fixture(scope="module")
def oidc_provider(tls: DevTLS) -> Iterator[OidcProviderPeer]:
    with running_oidc_provider(tls) as peer:
        yield peer


def test_html_form_against_oidc_provider(oidc_provider: OidcProviderPeer) -> None:
    peer = oidc_provider
    client = FapiClient(
        peer.issuer,
        peer.client_id,
        redirect_uri=peer.redirect_uri,
        key=peer.client_key,
        ca_file=str(peer.ca_file),
    )
    try:
        for approve in (True, False):
            url, handle = client.start(peer.scope, resource=peer.resource)
            transcript = Transcript()
            browser = make_browser(
                LoginConfig("html-form", "carol", "any password"),
                transcript=transcript,
                allowed_hosts=LOOPBACK,
                ca_file=peer.ca_file,
            )
            try:
                result = browser.authorize(url, peer.redirect_uri, approve=approve)
            finally:
                browser.close()
            no_secret(transcript, "any password")
            if approve:
                assert result.landing is Landing.SUCCESS, result
                assert result.params["iss"] == peer.issuer and result.params["state"] == handle.state
                tokens = client.finish(result.url, handle, extra={"resource": peer.resource})
                assert tokens.token_type.lower() == "dpop"
            else:  # the development sign-in page's [ Cancel ]
                assert result.landing is Landing.ERROR_REDIRECT, result
                assert result.params["error"] == "access_denied" and result.params["iss"] == peer.issuer
    finally:
        client.close()


# -- chromium ------------------------------------------------------------------------------------


def chromium(tls: DevTLS, transcript: Transcript) -> Browser:
    chromium_or_skip()
    return make_browser(
        LoginConfig("chromium", USER, SECRET),
        transcript=transcript,
        allowed_hosts=LOOPBACK,
        ca_file=tls.ca_file,
    )


def test_chromium_approves_and_a_session_is_reused(fake: FakeAS, tls: DevTLS) -> None:
    transcript = Transcript()
    browser = chromium(tls, transcript)
    try:
        result = browser.authorize(start(fake, "csrf", "c1"), REDIRECT_URI)
        assert (result.landing, result.params) == (Landing.SUCCESS, success(fake, "c1", "csrf-code"))
        [login] = fake.posts("/csrf/login")
        assert login == [("csrf_token", dict(login)["csrf_token"]), ("username", USER), ("password", SECRET)]
        assert fake.posts("/csrf/consent") == [[("csrf_token", "consent-token"), ("decision", "approve")]]
        steps = [(e.method, e.url.split("?")[0], e.status, e.error) for e in transcript.exchanges]
        assert steps[0] == ("GET", f"{fake.issuer}/csrf/authorize", 303, "")
        assert ("POST", f"{fake.issuer}/csrf/login", 303, "") in steps
        assert steps[-1] == (
            "GET",
            REDIRECT_URI,
            None,
            "not requested: the redirect URI (the authorization response)",
        )
        no_secret(transcript)
        fake.seen.clear()
        again = browser.authorize(start(fake, "csrf", "c2"), REDIRECT_URI)
        assert again.params == success(fake, "c2", "csrf-code") and fake.posts("/csrf/login") == []
    finally:
        browser.close()


def test_chromium_denies_on_a_cancel_link_submits_a_self_submitting_page_and_waits(
    fake: FakeAS, tls: DevTLS
) -> None:
    transcript = Transcript()
    browser = chromium(tls, transcript)
    try:
        denied = browser.authorize(start(fake, "peer", "c3"), REDIRECT_URI, approve=False)
        assert (denied.landing, denied.params) == (
            Landing.ERROR_REDIRECT,
            {"error": "access_denied", "state": "c3", "iss": fake.issuer},
        )
        assert fake.paths() == ["/peer/authorize", "/peer/login", "/peer/abort"]
        fake.seen.clear()
        moved = browser.authorize(start(fake, "moved", "c4"), REDIRECT_URI)
        assert moved.params == success(fake, "c4", "moved-code")
        assert fake.posts("/moved/verify") == [[("username", USER), ("pass", SECRET)]]
        assert fake.posts("/moved/finish") == [[("ticket", "t-1")]]
        # A 503 with Retry-After on the sign-in POST: the sign-in page again, and once more.
        fake.seen.clear()
        throttled = browser.authorize(start(fake, "throttle", "c6"), REDIRECT_URI)
        assert throttled.params == success(fake, "c6", "throttle-code")
        assert fake.posts("/throttle/login") == [[("username", USER), ("password", SECRET)]] * 2
        no_secret(transcript)
    finally:
        browser.close()


def test_chromium_error_pages_redirect_uri_and_foreign_origins(fake: FakeAS, tls: DevTLS) -> None:
    hits: list[str] = []

    def client(path: str) -> tuple[int, str, bytes]:
        hits.append(path)
        return 200, "text/plain", b"the client"

    transcript = Transcript()
    browser = chromium(tls, transcript)
    try:
        error = browser.authorize(start(fake, "error"), REDIRECT_URI)
        assert (error.landing, error.status) == (
            Landing.ERROR_PAGE,
            400,
        ) and "unknown client_id" in error.text
        boom = browser.authorize(start(fake, "boom"), REDIRECT_URI)
        assert (boom.landing, boom.status) == (Landing.SERVER_ERROR, 500)
        visit = browser.visit(start(fake, "csrf"), REDIRECT_URI)
        assert (visit.landing, visit.status) == (Landing.INTERACTION, 200)
        with stub_server(client, tls=(tls.cert_file, tls.key_file)) as base:
            redirect_uri = base.replace("localhost", "127.0.0.1") + "/cb"
            result = browser.authorize(start(fake, "loop", "c5", to=redirect_uri), redirect_uri)
            assert (result.landing, result.params) == (Landing.SUCCESS, {"code": "c0de", "state": "c5"})
            assert hits == []  # a loopback redirect URI is not loaded either
        evil = browser.authorize(start(fake, "evil"), REDIRECT_URI)
        assert (evil.landing, evil.status, evil.url) == (
            Landing.FOREIGN_REDIRECT,
            302,
            "https://evil.example/steal",
        )
        [attempt] = [e for e in transcript.exchanges if "evil.example" in e.url]
        assert attempt.status is None and attempt.error == "not requested: a foreign origin"
    finally:
        browser.close()


def test_chromium_needs_selenium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "selenium", None)  # as if it were not installed
    with pytest.raises(LoginError, match=r"needs selenium \(pip install selenium\) and Debian's chromium"):
        make_browser(
            LoginConfig("chromium", USER, SECRET),
            transcript=Transcript(),
            allowed_hosts=LOOPBACK,
            ca_file=None,
        )


# -- manual ----------------------------------------------------------------------------------------


def manual(answers: str, transcript: Transcript | None = None) -> tuple[ManualBrowser, io.StringIO]:
    out = io.StringIO()
    browser = make_browser(
        LoginConfig("manual", USER, SECRET),
        transcript=transcript or Transcript(),
        allowed_hosts=LOOPBACK,
        ca_file=None,
        manual_input=io.StringIO(answers),
        manual_output=out,
    )
    assert isinstance(browser, ManualBrowser)
    return browser, out


def test_manual_reads_the_address_the_browser_was_sent_to() -> None:
    url = "https://localhost:8443/authorize?client_id=c1&request_uri=urn:x"
    transcript = Transcript()
    browser, out = manual(
        f"  {REDIRECT_URI}?dummy=1&code=abc&state=s&iss=https%3A%2F%2Flocalhost\n", transcript
    )
    result = browser.authorize(url, REDIRECT_URI + "?dummy=1")
    assert (result.landing, result.params) == (
        Landing.SUCCESS,
        {"code": "abc", "state": "s", "iss": "https://localhost"},
    )
    assert url in out.getvalue() and "APPROVE" in out.getvalue() and USER in out.getvalue()
    assert [e.url.split("?")[0] for e in transcript.exchanges] == [
        "https://localhost:8443/authorize",
        REDIRECT_URI,
    ]

    browser, out = manual("what?\nerror: unknown client\n")
    denied = browser.authorize(url, REDIRECT_URI, approve=False)
    assert "DENY" in out.getvalue() and "Not an address" in out.getvalue()
    assert (denied.landing, denied.text) == (Landing.ERROR_PAGE, "unknown client")


def test_manual_gives_up_on_an_empty_line_or_the_end_of_input() -> None:
    for answers in ("\n", ""):
        browser, _ = manual(answers)
        result = browser.authorize("https://localhost/authorize", REDIRECT_URI)
        assert result.landing is Landing.ERROR_PAGE and "gave up" in result.text


def test_manual_visit_and_other_places() -> None:
    browser, out = manual("sign-in\nhttps://evil.example/x?code=1\nhttps://localhost/login\n")
    assert browser.visit("https://localhost/authorize", REDIRECT_URI).landing is Landing.INTERACTION
    assert "Do NOT sign in" in out.getvalue()
    evil = browser.authorize("https://localhost/authorize", REDIRECT_URI)
    assert (evil.landing, evil.url) == (Landing.FOREIGN_REDIRECT, "https://evil.example/x")
    stayed = browser.authorize("https://localhost/authorize", REDIRECT_URI)
    assert (stayed.landing, stayed.url) == (Landing.ERROR_PAGE, "https://localhost/login")


def test_factory() -> None:
    transcript = Transcript()
    browser = make_browser(LOGIN, transcript=transcript, allowed_hosts=LOOPBACK, ca_file=None)
    assert isinstance(browser, HtmlFormBrowser)
    browser.close()
    with pytest.raises(LoginError, match="unknown login method"):
        make_browser(LoginConfig("telepathy"), transcript=transcript, allowed_hosts=LOOPBACK, ca_file=None)


def test_chromium_against_corridor_and_oidc_provider(driver: Driver, oidc_provider: OidcProviderPeer) -> None:
    """Real pages with a CSP, scripts and a blocked web font (oidc-provider's @import)."""
    chromium_or_skip()
    client = driver.add_client()
    username = driver.add_user()
    transcript = Transcript()
    browser = make_browser(
        LoginConfig("chromium", username, CORRIDOR_PASSWORD),
        transcript=transcript,
        allowed_hosts=LOOPBACK,
        ca_file=driver.as_.tls.ca_file,
    )
    try:
        for approve in (True, False):
            response, flow = driver.par(client)
            assert response.status_code == 201, response.text
            query = urlencode({"client_id": client.client_id, "request_uri": flow.request_uri})
            result = browser.authorize(
                driver.url("/authorize") + "?" + query, client.redirect_uri, approve=approve
            )
            if approve:
                assert result.landing is Landing.SUCCESS, result
                flow.code = result.params["code"]
                assert driver.redeem(client, flow).status_code == 200
            else:
                assert (result.landing, result.params["error"]) == (
                    Landing.ERROR_REDIRECT,
                    "access_denied",
                ), result
    finally:
        browser.close()
    no_secret(transcript, CORRIDOR_PASSWORD)

    peer = oidc_provider
    fapi = FapiClient(
        peer.issuer,
        peer.client_id,
        redirect_uri=peer.redirect_uri,
        key=peer.client_key,
        ca_file=str(peer.ca_file),
    )
    try:
        for approve in (True, False):  # a new browser each time: a signed-in one is not asked again
            browser = make_browser(
                LoginConfig("chromium", "dave", "any password"),
                transcript=Transcript(),
                allowed_hosts=LOOPBACK,
                ca_file=peer.ca_file,
            )
            try:
                url, handle = fapi.start(peer.scope, resource=peer.resource)
                result = browser.authorize(url, peer.redirect_uri, approve=approve)
            finally:
                browser.close()
            if approve:
                assert result.landing is Landing.SUCCESS, result
                assert fapi.finish(result.url, handle, extra={"resource": peer.resource}).access_token
            else:
                assert (result.landing, result.params["error"]) == (
                    Landing.ERROR_REDIRECT,
                    "access_denied",
                ), result
    finally:
        fapi.close()


def test_chromium_trusts_only_what_the_check_trusts(fake: FakeAS, tls: DevTLS, pki: TestPKI) -> None:
    chromium_or_skip()
    # A CA file that does not vouch for the server: the check refuses before Chromium starts.
    wrong = make_browser(
        LoginConfig("chromium", USER, SECRET),
        transcript=Transcript(),
        allowed_hosts=LOOPBACK,
        ca_file=pki.ca_file,
    )
    try:
        with pytest.raises(LoginError, match="does not verify with the configured CA file"):
            wrong.authorize(start(fake, "csrf"), REDIRECT_URI)
    finally:
        wrong.close()
    # No CA file: Chromium's own roots, which do not hold the development CA.
    transcript = Transcript()
    plain = make_browser(
        LoginConfig("chromium", USER, SECRET), transcript=transcript, allowed_hosts=LOOPBACK, ca_file=None
    )
    try:
        with pytest.raises(LoginError, match="ERR_CERT"):
            plain.authorize(start(fake, "csrf"), REDIRECT_URI)
    finally:
        plain.close()
    assert fake.paths() == []
