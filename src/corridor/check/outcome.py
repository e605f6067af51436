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


#: RFC 9110 5.6.2 tchar (token characters) and RFC 9110 11.2 token68 characters.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TOKEN68 = frozenset("-._~+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_OWS = " \t"
#: The params key under which a challenge's token68 (``Basic dXNlcjpwdw==``) is returned.
TOKEN68 = ""


class _Cursor:
    """A position in one header field value."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> int:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1
        return self.pos - start

    def take(self, allowed: frozenset[str]) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in allowed:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str | None:
        """RFC 9110 5.6.4 quoted-string (the cursor is on the opening quote), unescaped;
        None (cursor unmoved) when it is not closed."""
        start, out, i = self.pos, [], self.pos + 1
        while i < len(self.text):
            ch = self.text[i]
            if ch == "\\" and i + 1 < len(self.text):
                out.append(self.text[i + 1])
                i += 2
                continue
            if ch == '"':
                self.pos = i + 1
                return "".join(out)
            out.append(ch)
            i += 1
        self.pos = start
        return None

    def to_comma(self) -> None:
        """Skip a malformed element: to the next comma outside a quoted string."""
        while not self.done() and self.peek() != ",":
            if self.peek() == '"' and self.quoted() is not None:
                continue
            self.pos += 1

    def starts_challenge(self) -> bool:
        """Does a challenge (``auth-scheme`` then a space, a comma or the end, and no ``=``)
        start here?"""
        if self.starts_param():
            return False
        mark = self.pos
        name = self.take(_TCHAR)
        found = bool(name) and self.peek() in ("", ",", " ", "\t")
        self.pos = mark
        return found

    def starts_param(self) -> bool:
        """Does an auth-param (``token BWS "="``) start here, rather than a new challenge?"""
        mark = self.pos
        name = self.take(_TCHAR)
        self.skip(_OWS)
        found = bool(name) and self.peek() == "="
        self.pos = mark
        return found


def parse_challenges(value: str) -> list[tuple[str, dict[str, str]]]:
    """RFC 9110 11.6.1: ``WWW-Authenticate = #challenge``, ``challenge = auth-scheme
    [ 1*SP ( token68 / #auth-param ) ]``, ``auth-param = token BWS "=" BWS ( token /
    quoted-string )``. Several challenges share one field value, separated by commas like the
    auth-params themselves: an element ``token SP ...`` or a lone ``token`` that is not
    followed by ``=`` starts a new challenge. Parameter names are case-insensitive (returned in
    lower case, first occurrence kept); the scheme is returned as sent (compare it
    case-insensitively, RFC 9110 11.1); a token68 is returned under the key :data:`TOKEN68`.
    Malformed elements are skipped, never raised on."""
    cursor = _Cursor(value)
    challenges: list[tuple[str, dict[str, str]]] = []
    while True:
        cursor.skip(_OWS + ",")
        if cursor.done():
            return challenges
        scheme = cursor.take(_TCHAR)
        if not scheme:
            cursor.to_comma()
            continue
        params: dict[str, str] = {}
        challenges.append((scheme, params))
        spaces = cursor.skip(_OWS)
        if cursor.done() or cursor.peek() == ",":
            continue
        if not spaces:  # e.g. "Basic=...": not a challenge
            challenges.pop()
            cursor.to_comma()
            continue
        # token68: its characters, then "="s, then the end of the element.
        mark = cursor.pos
        token68 = cursor.take(_TOKEN68)
        token68 += cursor.take(frozenset("="))
        cursor.skip(_OWS)
        if token68 and (cursor.done() or cursor.peek() == ","):
            params[TOKEN68] = token68
            continue
        cursor.pos = mark
        _params(cursor, params)


def _params(cursor: _Cursor, params: dict[str, str]) -> None:
    """``#auth-param`` up to the next challenge (the cursor is then on it, or at the end)."""
    while True:
        name = cursor.take(_TCHAR)
        cursor.skip(_OWS)
        if not name or cursor.peek() != "=":
            cursor.to_comma()
        else:
            cursor.pos += 1
            cursor.skip(_OWS)
            if cursor.peek() == '"':
                value = cursor.quoted()
                if value is None:  # an unclosed quote: the rest of the value is lost
                    cursor.pos = len(cursor.text)
                    return
            else:
                value = cursor.take(_TCHAR)
            params.setdefault(name.lower(), value)
            cursor.skip(_OWS)
            if not cursor.done() and cursor.peek() != ",":
                cursor.to_comma()  # junk after a value
        # Past the commas (empty list elements are allowed, RFC 9110 5.6.1): a param, the
        # next challenge, or junk to skip?
        while True:
            cursor.skip(_OWS + ",")
            if cursor.done() or cursor.starts_challenge():
                return
            if cursor.starts_param():
                break
            cursor.to_comma()


def www_authenticate(headers: httpx.Headers) -> list[tuple[str, dict[str, str]]]:
    """Every challenge of every ``WWW-Authenticate`` field, in order (RFC 9110 11.6.1; see
    :func:`parse_challenges`)."""
    challenges: list[tuple[str, dict[str, str]]] = []
    for value in headers.get_list("www-authenticate"):
        challenges.extend(parse_challenges(value))
    return challenges


def challenge(headers: httpx.Headers, scheme: str) -> dict[str, str] | None:
    """The params of the first challenge of ``scheme`` (compared case-insensitively, RFC 9110
    11.1), or None."""
    for name, params in www_authenticate(headers):
        if name.lower() == scheme.lower():
            return params
    return None
