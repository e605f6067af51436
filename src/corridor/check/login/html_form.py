"""``[login] method = "html-form"``: a user agent without script, on the check's own recording
HTTP client (one cookie jar per browser).

It follows the authorization server's redirects itself (RecordingClient never does), at most
:data:`MAX_HOPS` in a row:

- a ``Location`` at the redirect URI (``outcome.same_endpoint``) ends the flow *without
  requesting it* (the redirect URI need not exist): ``outcome.callback(...)``;
- a ``Location`` elsewhere is followed only to an allowed host (the configuration's issuer and
  resource hosts, loopback) over https (http only to loopback); any other origin is not
  contacted and ends as :attr:`Landing.FOREIGN_REDIRECT`, which no module counts as a refusal;
- 301/302/303 turn a POST into a GET; 307/308 repeat the method and the body (RFC 9110
  15.4.2-15.4.9).

On a page it signs in, approves or denies after :mod:`corridor.check.login.pages`; a 429 or 503
with ``Retry-After`` answering a form it submitted (a sign-in throttle) is waited for (at most
the Retry-After, never more than :data:`MAX_RETRY_WAIT` s) and the form sent again, up to
:data:`RETRIES` times. Any other page ends as ``outcome.page(...)``: ERROR_PAGE for a 4xx or a
page with no form, SERVER_ERROR for a 5xx, INTERACTION for a form it could not go on with.

The password never reaches the transcript: the transcript cuts its value wherever it appears
and the name of the password input the form uses (``Transcript.add_secret``)."""

from __future__ import annotations

import email.utils
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from corridor.check import outcome
from corridor.check.config import LoginConfig
from corridor.check.http import RecordingClient, Transcript, ssl_context
from corridor.check.login import pages
from corridor.check.outcome import FrontChannelResult, Landing

MAX_HOPS = 15
#: Pages the user acts on in one flow (sign-in steps, consent, interstitials).
MAX_ACTIONS = 10
MAX_RETRY_WAIT = 5.0
#: A busy or throttling server (429/503 + Retry-After) is asked again this many times; the waits
#: are jittered so that modules running at once do not come back together.
RETRIES = 8
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
FORM_TYPE = "application/x-www-form-urlencoded"


def followable(url: str, allowed_hosts: frozenset[str]) -> bool:
    """May the user agent go to ``url``: an allowed host, over https (http: loopback only)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host not in allowed_hosts:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK)


def foreign(url: str, status: int | None) -> FrontChannelResult:
    """A redirect the user agent did not follow (neither the AS's nor the redirect URI)."""
    parts = urlsplit(url)
    # Only the origin and path: a foreign URL may carry a code or a token.
    shown = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return FrontChannelResult(
        Landing.FOREIGN_REDIRECT, shown, status=status, text=f"redirect to {shown} not followed"
    )


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds from ``Retry-After`` (delay-seconds or an HTTP-date, RFC 9110 10.2.3)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def page_result(response: httpx.Response, *, has_form: bool, text: str, password: str) -> FrontChannelResult:
    """``outcome.page`` with the password kept out of the excerpt (a page may echo a form)."""
    if len(password) >= 4:
        text = text.replace(password, "[redacted]")
    return outcome.page(response, has_form=has_form, text=text)


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    form: tuple[tuple[str, str], ...] | None = None


class HtmlFormBrowser:
    """The html-form user agent (the ``Browser`` protocol)."""

    def __init__(
        self,
        login: LoginConfig,
        *,
        transcript: Transcript,
        allowed_hosts: frozenset[str],
        ca_file: Path | None = None,
        timeout: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.login = login
        self.transcript = transcript
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.http = RecordingClient(transcript, self.allowed_hosts, ssl_context(ca_file), timeout=timeout)
        self._sleep = sleep
        transcript.add_secret(login.password)

    # -- the Browser protocol -------------------------------------------------------------

    def visit(self, url: str, redirect_uri: str) -> FrontChannelResult:
        return self._run(url, redirect_uri, approve=True, act=False)

    def authorize(self, url: str, redirect_uri: str, *, approve: bool = True) -> FrontChannelResult:
        return self._run(url, redirect_uri, approve=approve, act=True)

    def close(self) -> None:
        self.http.close()

    # -- the flow ---------------------------------------------------------------------------

    def _send(self, request: _Request) -> httpx.Response:
        if request.form is None:
            return self.http.request(request.method, request.url)
        body = urlencode(list(request.form))
        if request.method == "GET":
            parts = urlsplit(request.url)
            return self.http.get(urlunsplit((parts.scheme, parts.netloc, parts.path, body, "")))
        return self.http.request(
            request.method, request.url, content=body.encode(), headers={"content-type": FORM_TYPE}
        )

    def _run(self, url: str, redirect_uri: str, *, approve: bool, act: bool) -> FrontChannelResult:
        if outcome.same_endpoint(url, redirect_uri):
            return outcome.callback(url, redirect_uri)
        request = _Request("GET", url)
        response = self._send(request)
        hops = actions = retries = 0
        passwords_sent = 0
        submitted = False  # the last request was a form the user submitted
        while True:
            if response.status_code in REDIRECTS and "location" in response.headers:
                hops += 1
                target = str(response.url.join(response.headers["location"]))
                if outcome.same_endpoint(target, redirect_uri):
                    return outcome.callback(target, redirect_uri)
                if not followable(target, self.allowed_hosts):
                    return foreign(target, response.status_code)
                if hops > MAX_HOPS:
                    return page_result(
                        response,
                        has_form=False,
                        text=f"more than {MAX_HOPS} redirects in a row",
                        password=self.login.password,
                    )
                keep = response.status_code in (307, 308) and request.method != "GET"
                request = _Request(request.method, target, request.form) if keep else _Request("GET", target)
                response = self._send(request)
                continue
            hops = 0
            if (
                submitted
                and response.status_code in (429, 503)
                and retries < RETRIES
                and (wait := retry_after(response)) is not None
            ):
                retries += 1
                self._sleep(min(wait, MAX_RETRY_WAIT) * (0.5 + secrets.randbelow(1000) / 1000))
                response = self._send(request)
                continue
            page = pages.parse_page(response.text) if _is_html(response) else None
            if response.status_code >= 300 or page is None:
                text = page.excerpt() if page is not None else response.text[:300]
                return page_result(response, has_form=False, text=text, password=self.login.password)
            step = pages.next_step(
                page, approve=approve, username=self.login.username, password=self.login.password
            )
            if step.kind == "stuck" or (not act and step.interaction):
                text = page.excerpt() if not step.reason or not act else f"{step.reason}: {page.excerpt()}"
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
            page_url = str(response.url)
            if step.kind == "refresh":
                target = pages.link_target(page_url, page, step.url) if step.url else page_url
                request, submitted = _Request("GET", target), False
            elif step.kind == "link":
                assert step.link is not None
                request, submitted = _Request("GET", pages.link_target(page_url, page, step.link.href)), False
            else:
                assert step.form is not None
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
                target = pages.form_target(page_url, page, step.form)
                method = "POST" if step.form.method == "post" else "GET"
                request = _Request(method, target, tuple(step.form.entries(step.button, step.fill)))
                submitted, retries = True, 0
            if outcome.same_endpoint(request.url, redirect_uri):
                # A form (form_post-like) or link to the client: the user agent is sent there.
                result = outcome.callback(request.url, redirect_uri)
                return replace(result, text=f"{request.method} to the redirect URI (not sent)")
            if not followable(request.url, self.allowed_hosts):
                return foreign(request.url, None)
            response = self._send(request)


def _is_html(response: httpx.Response) -> bool:
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml") or (
        not kind and b"<form" in response.content[:65536]
    )
