"""The suite's outcome vocabulary: what a front-channel answer, a refused token request and a
refused resource call look like, judged on the responses alone.

Front channel (RFC 6749 4.1.2 / 4.1.2.1, RFC 9207): the user agent ends either

- at the client's redirect URI with ``code`` (a *success*) or with ``error`` (an *error
  redirect*), parameters in the query (the fragment is wrong for the code flow); or
- on a page of the authorization server that is not a step of signing in or consenting: an
  *error page* (any 4xx, or a page with no form to go on with);
- a 5xx is a *server error*, never an acceptable refusal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx


class Landing(StrEnum):
    SUCCESS = "success"  # redirect to the client with code
    ERROR_REDIRECT = "error_redirect"  # redirect to the client with error
    ERROR_PAGE = "error_page"  # the AS refused on a page of its own
    SERVER_ERROR = "server_error"  # 5xx: never an acceptable answer
    INTERACTION = "interaction"  # a login or consent page (a driver's visit() may stop there)
    #: The AS sent the user agent to an origin that is neither its own (nor another allowed host)
    #: nor the redirect URI: not followed, and never an acceptable refusal (an error page is the
    #: AS's own page; an error redirect goes to the client's redirect URI).
    FOREIGN_REDIRECT = "foreign_redirect"


@dataclass(frozen=True)
class FrontChannelResult:
    """Where the user agent ended."""

    landing: Landing
    #: The final URL (the callback URL, or the AS page's URL).
    url: str
    #: Callback parameters from the query (``code``, ``state``, ``iss``, ``error`` ...).
    params: dict[str, str] = field(default_factory=dict)
    #: Callback parameters found in the fragment (wrong for the code flow).
    fragment: dict[str, str] = field(default_factory=dict)
    #: The HTTP status of the last AS response (pages only).
    status: int | None = None
    #: A short, plain-text excerpt of an error page.
    text: str = ""

    @property
    def code(self) -> str | None:
        return self.params.get("code")

    @property
    def error(self) -> str | None:
        return self.params.get("error")

    def describe(self) -> str:
        if self.landing is Landing.SUCCESS:
            return "the authorization server redirected back with a code"
        if self.landing is Landing.ERROR_REDIRECT:
            return f"the authorization server redirected back with error={self.error}"
        if self.landing is Landing.ERROR_PAGE:
            return f"the authorization server showed an error page (HTTP {self.status})"
        if self.landing is Landing.SERVER_ERROR:
            return f"the authorization server failed with HTTP {self.status}"
        if self.landing is Landing.FOREIGN_REDIRECT:
            parts = urlsplit(self.url)
            origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else parts.scheme + ":"
            return f"the authorization server sent the user agent to a foreign origin, not followed: {origin}"
        return f"the authorization server showed a sign-in or consent page (HTTP {self.status})"


def same_endpoint(url: str, redirect_uri: str) -> bool:
    """Is ``url`` the redirect URI (scheme, host, port and path; its own query kept aside)?"""
    a, b = urlsplit(url), urlsplit(redirect_uri)
    return (a.scheme, (a.hostname or "").lower(), a.port, a.path or "/") == (
        b.scheme,
        (b.hostname or "").lower(),
        b.port,
        b.path or "/",
    )


def callback(url: str, redirect_uri: str) -> FrontChannelResult:
    """Classify the URL the user agent was sent to at the client (its redirect URI).

    The redirect URI's own query parameters (``?dummy1=lorem``) are not response parameters."""
    parts = urlsplit(url)
    own = {k for k, _ in parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True)}
    params = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in own}
    fragment = dict(parse_qsl(parts.fragment, keep_blank_values=True)) if "=" in parts.fragment else {}
    if "error" in params:
        landing = Landing.ERROR_REDIRECT
    elif "code" in params:
        landing = Landing.SUCCESS
    elif "error" in fragment:
        landing = Landing.ERROR_REDIRECT
    else:
        landing = Landing.SUCCESS if "code" in fragment else Landing.ERROR_REDIRECT
    return FrontChannelResult(landing, url, params, fragment)


def page(response: httpx.Response, *, has_form: bool, text: str = "") -> FrontChannelResult:
    """Classify a page the authorization server answered with (no redirect to the client)."""
    status = response.status_code
    if status >= 500:
        landing = Landing.SERVER_ERROR
    elif status >= 400 or not has_form:
        landing = Landing.ERROR_PAGE
    else:
        landing = Landing.INTERACTION
    return FrontChannelResult(landing, str(response.url), status=status, text=text[:300])


@dataclass(frozen=True)
class EndpointAnswer:
    """A back-channel answer (PAR, token, resource) read the way the suite reads it."""

    status: int
    body: dict[str, Any]
    headers: httpx.Headers

    @property
    def error(self) -> str | None:
        value = self.body.get("error")
        return value if isinstance(value, str) else None

    @classmethod
    def of(cls, response: httpx.Response) -> EndpointAnswer:
        body: Any = {}
        if response.content:
            try:
                body = json.loads(response.content)
            except ValueError:
                body = {}
        return cls(response.status_code, body if isinstance(body, dict) else {}, response.headers)


def refusal_problem(
    answer: EndpointAnswer, *, statuses: set[int], errors: set[str] | None = None
) -> str | None:
    """None when ``answer`` is a refusal with one of ``statuses`` and (if given) ``errors``;
    otherwise one line saying what is wrong (the suite's CheckTokenEndpointHttpStatus*/
    CheckErrorFromTokenEndpointResponseError* conditions)."""
    if answer.status < 400:
        return f"expected a refusal, got HTTP {answer.status}"
    if answer.status >= 500:
        return f"expected a refusal, got a server error (HTTP {answer.status})"
    problems = []
    if answer.status not in statuses:
        problems.append(f"HTTP {answer.status}, expected {' or '.join(map(str, sorted(statuses)))}")
    if errors is not None and answer.error not in errors:
        problems.append(f"error={answer.error!r}, expected {' or '.join(sorted(errors))}")
    return "; ".join(problems) or None


def www_authenticate(headers: httpx.Headers) -> list[tuple[str, dict[str, str]]]:
    """Parse every ``WWW-Authenticate`` challenge into (scheme, params) (RFC 9110 11.6.1)."""
    challenges: list[tuple[str, dict[str, str]]] = []
    for value in headers.get_list("www-authenticate"):
        rest = value.strip()
        while rest:
            scheme, _, rest = rest.partition(" ")
            params: dict[str, str] = {}
            rest = rest.strip()
            while rest:
                name, eq, after = rest.partition("=")
                if not eq or " " in name.strip() or "," in name:
                    break
                after = after.lstrip()
                if after.startswith('"'):
                    end, i, buf = -1, 1, []
                    while i < len(after):
                        ch = after[i]
                        if ch == "\\" and i + 1 < len(after):
                            buf.append(after[i + 1])
                            i += 2
                            continue
                        if ch == '"':
                            end = i
                            break
                        buf.append(ch)
                        i += 1
                    val = "".join(buf)
                    after = after[end + 1 :] if end >= 0 else ""
                else:
                    val, _, after = after.partition(",")
                    val = val.strip()
                    after = "," + after if _ else ""
                params[name.strip().lower()] = val
                after = after.lstrip()
                if after.startswith(","):
                    after = after[1:].lstrip()
                rest = after
                # A token followed by a space and no '=' starts the next challenge.
                head = rest.split(" ", 1)[0]
                if rest and "=" not in head:
                    break
            challenges.append((scheme.strip(), params))
    return challenges
