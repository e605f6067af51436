# Why over 450 lines: the DevTools interception that keeps the browser on allowed hosts
# and off the redirect URI is one state machine; split, its invariants would be in two places.
"""``[login] method = "chromium"``: real headless Chromium (Debian ``chromium`` +
``chromium-driver``) through selenium, for sign-in pages that need script.

What Chromium may do is what the check may do:

- **No foreign origin.** Every request of the page (navigations and subresources) is paused
  with the DevTools protocol (``Fetch.enable`` at the request stage, on the page's own DevTools
  connection) and failed unless it goes to an allowed host (https; http only to loopback);
  ``--host-resolver-rules`` also resolves no other name, for whatever the page target does not
  see. A main-frame navigation to such an origin ends as :attr:`Landing.FOREIGN_REDIRECT`.
- **The redirect URI is never requested.** A request to it (scheme, host, port and path,
  ``outcome.same_endpoint``) is failed before it leaves the browser; for the main frame its URL
  (with the fragment) is the authorization response, ``outcome.callback(...)``.
- **Trust.** Chromium keeps its own root store and trusts nothing more, except the one server
  key the check itself verified: before starting, the check opens TLS to the authorization
  URL's origin with the configured ``ca_file`` (as its HTTP client does) and passes the SHA-256
  of that certificate's public key in ``--ignore-certificate-errors-spki-list``. No check is
  switched off (no ``--ignore-certificate-errors``), and a key the CA file does not vouch for
  is never pinned.

Each main-frame navigation is recorded into the transcript (method, URL redacted, status,
response headers; a form's body with the password cut out). One Chromium process and profile
per browser (own cookies), started at the first use and removed by :meth:`close`."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import secrets
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from corridor.check import outcome
from corridor.check.config import LoginConfig
from corridor.check.http import HostNotAllowed, Transcript, ssl_context
from corridor.check.login import pages
from corridor.check.login.errors import LoginError
from corridor.check.login.html_form import (
    MAX_ACTIONS,
    MAX_RETRY_WAIT,
    RETRIES,
    followable,
    foreign,
    page_result,
    retry_after,
)
from corridor.check.outcome import FrontChannelResult

NEEDS = (
    "the chromium login method needs selenium (pip install selenium) and Debian's chromium + chromium-driver"
)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
#: How long a page may take to load, or to start navigating after a click.
TIMEOUT = 15.0
#: A page is settled when no main-frame navigation has been under way for this long.
QUIET = 0.3
#: How long a 2xx page without a form may take to render one (script-built pages).
RENDER_WAIT = 1.5


def require_selenium() -> Any:
    """The selenium webdriver module, or :class:`LoginError` with what to install."""
    try:
        from selenium import webdriver
    except ImportError as exc:
        raise LoginError(NEEDS) from exc
    return webdriver


def find_binaries(chromium: str | None = None, chromedriver: str | None = None) -> tuple[str, str]:
    browser = chromium or next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    driver = chromedriver or shutil.which("chromedriver")
    if not browser or not driver:
        raise LoginError(NEEDS)
    return browser, driver


def spki_pin(url: str, ca_file: Path | None, timeout: float = 10.0) -> str | None:
    """The base64 SHA-256 of the public key of the certificate ``url``'s origin presents,
    verified first with the check's own trust (``ca_file``); None without a CA file or for http."""
    parts = urlsplit(url)
    if parts.scheme != "https" or ca_file is None or not parts.hostname:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    host, port = parts.hostname, parts.port or 443
    context = ssl_context(ca_file)
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:  # ssl.SSLError is an OSError
        raise LoginError(f"TLS to {host}:{port} does not verify with the configured CA file: {exc}") from exc
    if der is None:
        raise LoginError(f"{host}:{port} presented no certificate")
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _headers(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, dict):
        return []
    out: list[tuple[str, str]] = []
    for name, value in raw.items():
        if str(name).startswith(":"):
            continue
        for line in str(value).split("\n"):
            out.append((str(name), line))
    return out


class _Tap:
    """Our own DevTools connection to the page: the request filter and the navigation log."""

    def __init__(
        self, ws_url: str, frame_id: str, transcript: Transcript, allowed_hosts: frozenset[str]
    ) -> None:
        import websocket  # selenium's own dependency (websocket-client)

        self.frame_id = frame_id
        self.transcript = transcript
        self.allowed_hosts = allowed_hosts
        self.ws = websocket.create_connection(ws_url, suppress_origin=True)
        self.cond = threading.Condition()
        self.redirect_uri = ""
        self.callback: str | None = None
        self.foreign: tuple[str, int | None] | None = None
        self.navigations = 0
        self.loading = False
        self.changed = time.monotonic()
        self.status: int | None = None
        self.url = ""
        self.headers: list[tuple[str, str]] = []
        self.error = ""
        self._pending: dict[str, dict[str, Any]] = {}
        self._last_redirect: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._replies: dict[int, dict[str, Any]] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="corridor-check-cdp", daemon=True)
        self._thread.start()
        for method, params in (
            ("Network.enable", {}),
            ("Page.enable", {}),
            ("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
        ):
            self.call(method, params)

    # -- the wire -----------------------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        ident = next(self._ids)
        with self._send_lock:
            self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        return ident

    def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        ident = self.send(method, params)
        deadline = time.monotonic() + timeout
        with self.cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise LoginError(f"Chromium did not answer {method}")
                self.cond.wait(left)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise LoginError(f"Chromium refused {method}: {reply['error']}")
        result = reply.get("result", {})
        return result if isinstance(result, dict) else {}

    def _loop(self) -> None:
        while True:
            try:
                message = json.loads(self.ws.recv())
            except Exception:  # the connection closed (close() or Chromium gone)
                with self.cond:
                    self._closed = True
                    self.cond.notify_all()
                return
            if "id" in message:
                with self.cond:
                    self._replies[int(message["id"])] = message
                    self.cond.notify_all()
                continue
            method, params = message.get("method", ""), message.get("params", {})
            try:
                self._event(method, params)
            except Exception as exc:  # a malformed event must not stop the filter
                self.transcript.record(httpx.Request("GET", "about:blank"), None, f"DevTools event: {exc}")

    # -- events ---------------------------------------------------------------------------------

    def arm(self, redirect_uri: str) -> None:
        with self.cond:
            self.redirect_uri = redirect_uri
            self.callback = None
            self.foreign = None
            self.error = ""

    def _event(self, method: str, p: dict[str, Any]) -> None:
        if method == "Fetch.requestPaused":
            self._paused(p)
        elif (
            method == "Network.requestWillBeSent"
            and p.get("type") == "Document"
            and self._main(p)
            and urlsplit(str(p.get("request", {}).get("url", ""))).scheme in ("http", "https")
        ):  # not Chromium's own pages (chrome://new-tab-page, about:blank)
            self._request(p)
        elif method == "Network.responseReceived" and p.get("requestId") in self._pending:
            self._response(p)
        elif method == "Network.loadingFailed" and p.get("requestId") in self._pending:
            self._failed(p)
        elif method == "Page.loadEventFired" or (
            method == "Page.frameStoppedLoading" and p.get("frameId") == self.frame_id
        ):
            with self.cond:
                if not self._pending:
                    self.loading = False
                self.changed = time.monotonic()
                self.cond.notify_all()

    def _main(self, p: dict[str, Any]) -> bool:
        return p.get("frameId") in (None, self.frame_id)

    def _paused(self, p: dict[str, Any]) -> None:
        request = p.get("request", {})
        url = str(request.get("url", "")) + str(request.get("urlFragment", ""))
        main = p.get("resourceType") == "Document" and self._main(p)
        scheme = urlsplit(url).scheme
        with self.cond:
            redirect_uri = self.redirect_uri
        if redirect_uri and outcome.same_endpoint(url, redirect_uri):
            self.send("Fetch.failRequest", {"requestId": p["requestId"], "errorReason": "BlockedByClient"})
            if main:
                with self.cond:
                    self.callback = url
                    self.cond.notify_all()
            return
        if scheme in ("http", "https", "ws", "wss") and not followable(url, self.allowed_hosts):
            self.send("Fetch.failRequest", {"requestId": p["requestId"], "errorReason": "BlockedByClient"})
            if main:
                with self.cond:
                    status = self._last_redirect.get(str(p.get("networkId", "")))
                    self.foreign = (url, status)
                    self.cond.notify_all()
            return
        self.send("Fetch.continueRequest", {"requestId": p["requestId"]})

    def _request(self, p: dict[str, Any]) -> None:
        rid = str(p["requestId"])
        request = p.get("request", {})
        redirect = p.get("redirectResponse")
        if isinstance(redirect, dict) and rid in self._pending:
            self._record(self._pending.pop(rid), redirect)
            self._last_redirect[rid] = int(redirect.get("status", 0)) or 0
        elif not isinstance(redirect, dict):  # a new navigation replaces any still under way
            for other in list(self._pending):
                self._record(self._pending.pop(other), None, "Chromium: replaced by another navigation")
        self._pending[rid] = {
            "method": request.get("method", "GET"),
            "url": str(request.get("url", "")) + str(request.get("urlFragment", "")),
            "headers": _headers(request.get("headers")),
            "body": request.get("postData", "") if isinstance(request.get("postData"), str) else "",
        }
        with self.cond:
            if not isinstance(redirect, dict):
                self.navigations += 1
                self.error = ""
            self.loading = True
            self.changed = time.monotonic()
            self.cond.notify_all()

    def _response(self, p: dict[str, Any]) -> None:
        rid = str(p["requestId"])
        response = p.get("response", {})
        self._record(self._pending.pop(rid), response)
        with self.cond:
            self.status = int(response.get("status", 0)) or None
            self.url = str(response.get("url", ""))
            self.headers = _headers(response.get("headers"))
            self.changed = time.monotonic()
            self.cond.notify_all()

    def _failed(self, p: dict[str, Any]) -> None:
        rid = str(p["requestId"])
        entry = self._pending.pop(rid)
        with self.cond:
            redirect_uri = self.redirect_uri
        if redirect_uri and outcome.same_endpoint(entry["url"], redirect_uri):
            error = "not requested: the redirect URI (the authorization response)"
        elif not followable(entry["url"], self.allowed_hosts):
            error = "not requested: a foreign origin"
        else:
            error = f"Chromium: {p.get('errorText', 'failed')}"
        self._record(entry, None, error)
        with self.cond:
            if not error.startswith("not requested") and "ERR_ABORTED" not in error:
                self.error = error  # (an aborted navigation gave way to another one)
            self.loading = bool(self._pending)
            self.changed = time.monotonic()
            self.cond.notify_all()

    def _record(self, entry: dict[str, Any], response: dict[str, Any] | None, error: str = "") -> None:
        try:
            request = httpx.Request(
                entry["method"], entry["url"], headers=entry["headers"], content=entry["body"].encode()
            )
        except (ValueError, TypeError, httpx.InvalidURL):
            request = httpx.Request(entry["method"], "about:blank")
        answer = None
        if response is not None:
            answer = httpx.Response(
                int(response.get("status", 0)) or 0,
                headers=_headers(response.get("headers")),
                request=request,
            )
        self.transcript.record(request, answer, error)

    # -- waiting --------------------------------------------------------------------------------

    def settle(self, navigations_before: int, timeout: float) -> bool:
        """Wait until the redirect URI or a foreign origin is reached, or a navigation started
        after ``navigations_before`` has finished and stayed finished for :data:`QUIET`.
        False: no navigation started in ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.callback is not None or self.foreign is not None or self._closed:
                    return True
                now = time.monotonic()
                if self.navigations > navigations_before and not self.loading:
                    if now - self.changed >= QUIET:
                        return True
                    self.cond.wait(QUIET - (now - self.changed))
                    continue
                if now >= deadline:
                    return self.navigations > navigations_before
                self.cond.wait(min(deadline - now, QUIET))

    def drain(self, timeout: float = 2.0) -> None:
        """Wait for the navigations under way to be recorded (a blocked one ends in a
        ``loadingFailed`` just after it was stopped)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self._pending and not self._closed and (left := deadline - time.monotonic()) > 0:
                self.cond.wait(left)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.ws.close()


class ChromiumBrowser:
    """The chromium user agent (the ``Browser`` protocol)."""

    def __init__(
        self,
        login: LoginConfig,
        *,
        transcript: Transcript,
        allowed_hosts: frozenset[str],
        ca_file: Path | None = None,
        chromium: str | None = None,
        chromedriver: str | None = None,
        timeout: float = TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._webdriver = require_selenium()
        self.chromium, self.chromedriver = find_binaries(chromium, chromedriver)
        self.login = login
        self.transcript = transcript
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.ca_file = ca_file
        self.timeout = timeout
        self._sleep = sleep
        self._driver: Any = None
        self._tap: _Tap | None = None
        self._profile: str | None = None
        transcript.add_secret(login.password)

    # -- the Browser protocol -------------------------------------------------------------

    def visit(self, url: str, redirect_uri: str) -> FrontChannelResult:
        return self._run(url, redirect_uri, approve=True, act=False)

    def authorize(self, url: str, redirect_uri: str, *, approve: bool = True) -> FrontChannelResult:
        return self._run(url, redirect_uri, approve=approve, act=True)

    def close(self) -> None:
        if self._tap is not None:
            self._tap.close()
            self._tap = None
        if self._driver is not None:
            try:
                self._driver.quit()
            finally:
                self._driver = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    # -- Chromium -----------------------------------------------------------------------------

    def _start(self, url: str) -> tuple[Any, _Tap]:
        if self._driver is not None and self._tap is not None:
            return self._driver, self._tap
        from selenium.webdriver.chrome.service import Service

        pin = spki_pin(url, self.ca_file)
        names = sorted(h for h in self.allowed_hosts if h and not _is_ip(h))
        rules = ", ".join(["MAP * ~NOTFOUND", *(f"EXCLUDE {h}" for h in names)])
        self._profile = tempfile.mkdtemp(prefix="corridor-check-chromium-")
        options = self._webdriver.ChromeOptions()
        options.binary_location = self.chromium
        flags = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-domain-reliability",
            "--dns-prefetch-disable",
            "--no-pings",
            "--disable-quic",
            f"--host-resolver-rules={rules}",
            f"--user-data-dir={self._profile}",
            "--window-size=900,1000",
        ]
        if pin is not None:
            flags.append(f"--ignore-certificate-errors-spki-list={pin}")
        for flag in flags:
            options.add_argument(flag)
        try:
            driver = self._webdriver.Chrome(
                service=Service(executable_path=self.chromedriver), options=options
            )
        except Exception as exc:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None
            raise LoginError(f"{NEEDS}: Chromium did not start ({exc})") from exc
        self._driver = driver
        driver.set_page_load_timeout(self.timeout)
        address = driver.capabilities.get("goog:chromeOptions", {}).get("debuggerAddress", "")
        frame_id = driver.current_window_handle
        with urllib.request.urlopen(f"http://{address}/json", timeout=10) as answer:
            targets = json.loads(answer.read())
        target = next((t for t in targets if t.get("id") == frame_id), None)
        if target is None:
            raise LoginError("Chromium's page is not on its DevTools list")
        self._tap = _Tap(target["webSocketDebuggerUrl"], frame_id, self.transcript, self.allowed_hosts)
        return driver, self._tap

    def _run(self, url: str, redirect_uri: str, *, approve: bool, act: bool) -> FrontChannelResult:
        if outcome.same_endpoint(url, redirect_uri):
            return outcome.callback(url, redirect_uri)
        if not followable(url, self.allowed_hosts):
            raise HostNotAllowed(urlsplit(url).hostname or url)
        driver, tap = self._start(url)
        tap.arm(redirect_uri)
        before = tap.navigations
        self._navigate(driver, url)
        actions = retries = passwords_sent = 0
        submitted = False
        form_page = url
        while True:
            moved = tap.settle(before, self.timeout)
            if tap.callback is not None:
                tap.drain()
                return outcome.callback(tap.callback, redirect_uri)
            if tap.foreign is not None:
                tap.drain()
                return foreign(*tap.foreign)
            if tap.error:
                raise LoginError(f"Chromium could not load a page of the authorization server: {tap.error}")
            html = driver.page_source
            page = pages.parse_page(html)
            status = tap.status or 200
            response = httpx.Response(
                status, headers=tap.headers, request=httpx.Request("GET", tap.url or url)
            )
            if not moved:
                return page_result(
                    response,
                    has_form=True,
                    text=f"nothing happened after the last step: {page.excerpt()}",
                    password=self.login.password,
                )
            if (
                submitted
                and status in (429, 503)
                and retries < RETRIES
                and (wait := retry_after(response)) is not None
            ):
                retries += 1
                self._sleep(min(wait, MAX_RETRY_WAIT) * (0.5 + secrets.randbelow(1000) / 1000))
                before, passwords_sent = tap.navigations, 0
                # The form again (a fresh one: a CSRF token may be single-use).
                self._navigate(driver, form_page)
                continue
            if status >= 300:
                return page_result(
                    response, has_form=False, text=page.excerpt(), password=self.login.password
                )
            page = self._rendered(driver, page)
            step = pages.next_step(
                page, approve=approve, username=self.login.username, password=self.login.password
            )
            if step.kind == "stuck" or (not act and step.interaction):
                text = f"{step.reason}: {page.excerpt()}" if act and step.reason else page.excerpt()
                return page_result(
                    response, has_form=step.form is not None, text=text, password=self.login.password
                )
            actions += 1
            if actions > MAX_ACTIONS:
                return page_result(
                    response,
                    has_form=True,
                    text=f"still on a form after {MAX_ACTIONS} steps: {page.excerpt()}",
                    password=self.login.password,
                )
            if step.kind == "sign_in":
                if passwords_sent:
                    return page_result(
                        response,
                        has_form=True,
                        text=f"the sign-in page came back (wrong password?): {page.excerpt()}",
                        password=self.login.password,
                    )
                passwords_sent += 1
                if step.password is not None and step.password.name:
                    self.transcript.add_secret(name=step.password.name)
            before = tap.navigations
            submitted = step.kind in ("sign_in", "identifier", "press", "auto")
            form_page = tap.url or url
            self._act(driver, tap, step, before)

    def _rendered(self, driver: Any, page: pages.Page) -> pages.Page:
        """A 2xx page without a form may still be building one with script: look again."""
        deadline = time.monotonic() + RENDER_WAIT
        while not page.forms and page.refresh is None and time.monotonic() < deadline:
            self._sleep(0.25)
            page = pages.parse_page(driver.page_source)
        return page

    def _navigate(self, driver: Any, url: str) -> None:
        from selenium.common.exceptions import WebDriverException

        with contextlib.suppress(WebDriverException):  # a blocked or failed navigation: the tap knows
            driver.get(url)

    def _act(self, driver: Any, tap: _Tap, step: pages.Step, before: int) -> None:
        from selenium.common.exceptions import WebDriverException

        if step.kind in ("auto", "refresh"):
            # The page does it itself; if it has not started within a moment, do it for it.
            if tap.settle(before, 3.0) or tap.navigations > before:
                return
            if step.kind == "refresh":
                driver.execute_script(
                    "window.location.assign(arguments[0] || window.location.href)", step.url
                )
            else:
                assert step.form is not None
                driver.execute_script(
                    "document.querySelectorAll('form')[arguments[0]].submit()", step.form.index
                )
            return
        if step.kind == "link":
            assert step.link is not None
            element = driver.execute_script(
                "return document.querySelectorAll('a[href]')[arguments[0]]", step.link.index
            )
            self._click(driver, element)
            return
        assert step.form is not None
        form = driver.execute_script(
            "return document.querySelectorAll('form')[arguments[0]]", step.form.index
        )

        def control(position: int) -> Any:
            return driver.execute_script(
                "return arguments[0].querySelectorAll('input,button,select,textarea')[arguments[1]]",
                form,
                position,
            )

        for position, value in step.fill.items():
            element = control(position)
            try:
                element.clear()
                element.send_keys(value)
            except WebDriverException:
                driver.execute_script("arguments[0].value = arguments[1]", element, value)
        if step.button is not None:
            self._click(driver, control(step.button.position))
        else:
            driver.execute_script(
                "arguments[0].requestSubmit ? arguments[0].requestSubmit() : arguments[0].submit()", form
            )

    def _click(self, driver: Any, element: Any) -> None:
        from selenium.common.exceptions import WebDriverException

        try:
            element.click()
        except WebDriverException:
            driver.execute_script("arguments[0].click()", element)


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True
