"""The checker's HTTP: every request and response is recorded in the module's transcript with
secrets cut to a prefix, redirects are never followed by httpx itself, and only the configured
hosts (and loopback) are contacted."""

from __future__ import annotations

import contextlib
import html
import json
import ssl
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import httpx

from corridor.check.results import Exchange

#: Form fields, query parameters and JSON members whose values are secrets.
SECRET_NAMES = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "code",
        "code_verifier",
        "client_assertion",
        "password",
        "request_uri",
        "otp",
        "totp",
        "csrf",
        "csrf_token",
        "_csrf",
    }
)
#: Headers whose values are secrets (the scheme of Authorization is kept).
SECRET_HEADERS = frozenset({"authorization", "dpop", "cookie", "set-cookie"})
#: Headers whose values are URLs (their secret query parameters are cut like a URL's).
URL_HEADERS = frozenset({"location", "content-location", "refresh"})
PASSWORD_NAMES = frozenset({"password"})
PREFIX = 6
MAX_BODY = 4000
#: Pages are kept shorter: their opening (title, form) tells the story, and there are many.
MAX_PAGE = 1500


#: The largest response body read from the server under test (it is not trusted: a hostile or
#: broken server must not make the checker hold gigabytes); metadata, pages and tokens are far
#: smaller.
MAX_RESPONSE = 1 << 20


class ResponseTooLarge(httpx.HTTPError):
    """A response body over :data:`MAX_RESPONSE`: read no further."""

    def __init__(self, url: str) -> None:
        super().__init__(f"the response from {url} is larger than {MAX_RESPONSE} bytes; not read")


class HostNotAllowed(httpx.HTTPError):
    """A request to a host the configuration does not name."""

    def __init__(self, host: str) -> None:
        super().__init__(f"refusing to contact {host!r}: only loopback and the configured hosts")


def cut(value: str, name: str = "", passwords: frozenset[str] = PASSWORD_NAMES) -> str:
    """A secret cut to a prefix (passwords entirely)."""
    if name.lower() in passwords:
        return "[redacted]"
    if len(value) <= PREFIX:
        return "[redacted]"
    return value[:PREFIX] + "…[redacted]"


def redact_pairs(
    pairs: list[tuple[str, str]], passwords: frozenset[str] = PASSWORD_NAMES
) -> list[tuple[str, str]]:
    """``passwords``: field names whose values go entirely (a login form may call its password
    input anything)."""
    return [
        (k, cut(v, k, passwords) if k.lower() in SECRET_NAMES or k.lower() in passwords else v)
        for k, v in pairs
    ]


def _encode(pairs: list[tuple[str, str]]) -> str:
    """A query or form body again, with the redaction marks left readable."""
    return (
        urlencode(pairs)
        .replace(quote_plus("…[redacted]"), "…[redacted]")
        .replace(quote_plus("[redacted]"), "[redacted]")
    )


def redact_url(url: str, passwords: frozenset[str] = PASSWORD_NAMES) -> str:
    parts = urlsplit(url)
    query = _encode(redact_pairs(parse_qsl(parts.query, keep_blank_values=True), passwords))
    fragment = parts.fragment
    if "=" in fragment:
        fragment = _encode(redact_pairs(parse_qsl(fragment, keep_blank_values=True), passwords))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, fragment))


def redact_headers(headers: Mapping[str, str] | httpx.Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    items = headers.multi_items() if isinstance(headers, httpx.Headers) else list(headers.items())
    for name, value in items:
        lower = name.lower()
        if lower in SECRET_HEADERS:
            if lower == "authorization" and " " in value:
                scheme, _, rest = value.partition(" ")
                value = f"{scheme} {cut(rest)}"
            else:
                value = cut(value)
        elif lower in URL_HEADERS:  # a redirect to the client carries the code in its query
            value = redact_url(value)
        out[lower] = value if lower not in out else f"{out[lower]}, {value}"
    return out


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (cut(v, k) if k.lower() in SECRET_NAMES and isinstance(v, str) else _redact_json(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


def redact_body(content: bytes, content_type: str, passwords: frozenset[str] = PASSWORD_NAMES) -> str:
    if not content:
        return ""
    text = content[: MAX_BODY * 4].decode("utf-8", "replace")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        text = _encode(redact_pairs(parse_qsl(text, keep_blank_values=True), passwords))
    elif kind.endswith("json"):
        with contextlib.suppress(ValueError):
            text = json.dumps(_redact_json(json.loads(text)), ensure_ascii=False)
    elif kind.endswith("jwt") or (text.count(".") == 2 and " " not in text.strip()):
        text = cut(text.strip())
    limit = MAX_PAGE if kind == "text/html" else MAX_BODY
    if len(text) > limit:
        text = text[:limit] + f"… [{len(content)} bytes in all]"
    return text


class Transcript:
    """The module's requests and responses, in order (thread-safe: a module may use threads)."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.step = ""
        self._passwords: frozenset[str] = PASSWORD_NAMES
        self._secrets: tuple[str, ...] = ()

    def add_secret(self, value: str = "", *, name: str = "") -> None:
        """Keep a secret out of every later entry: ``name`` is a form field whose values go
        entirely (a password input called ``pass_phrase``); ``value`` (4 characters or more) is
        cut wherever it appears, plain or percent-encoded (the login password)."""
        with self._lock:
            if name:
                self._passwords = self._passwords | {name.lower()}
            if len(value) >= 4:
                forms = {value, quote(value, safe=""), quote_plus(value), html.escape(value)}
                self._secrets = tuple(sorted(set(self._secrets) | forms, key=len, reverse=True))

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def record(self, request: httpx.Request, response: httpx.Response | None, error: str = "") -> None:
        request_type = request.headers.get("content-type", "")
        passwords = self._passwords
        exchange = Exchange(
            step=self.step,
            method=request.method,
            url=redact_url(str(request.url), passwords),
            request_headers=redact_headers(
                {k: v for k, v in request.headers.items() if k.lower() not in _BORING_REQUEST}
            ),
            request_body=redact_body(
                request.content if _has_content(request) else b"", request_type, passwords
            ),
            at=time.monotonic() - self.started,
            error=error,
        )
        if response is not None:
            exchange.status = response.status_code
            exchange.response_headers = redact_headers(response.headers)
            exchange.response_body = redact_body(
                response.content, response.headers.get("content-type", ""), passwords
            )
        if self._secrets:
            exchange.url = self._scrub(exchange.url)
            exchange.request_body = self._scrub(exchange.request_body)
            exchange.response_body = self._scrub(exchange.response_body)
            exchange.error = self._scrub(exchange.error)
            exchange.request_headers = {k: self._scrub(v) for k, v in exchange.request_headers.items()}
            exchange.response_headers = {k: self._scrub(v) for k, v in exchange.response_headers.items()}
        with self._lock:
            self.exchanges.append(exchange)


_BORING_REQUEST = frozenset({"accept-encoding", "connection", "user-agent", "host", "content-length"})


def _has_content(request: httpx.Request) -> bool:
    try:
        _ = request.content
    except httpx.RequestNotRead:
        return False
    return True


def ssl_context(ca_file: Path | None, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


#: Seconds a pooled connection may idle before it is closed rather than reused.
KEEPALIVE_EXPIRY = 2.0


class RecordingClient:
    """An httpx client that records into a transcript and refuses foreign hosts.

    Redirects are returned, never followed (the login drivers follow the ones they may)."""

    def __init__(
        self,
        transcript: Transcript,
        allowed_hosts: frozenset[str],
        context: ssl.SSLContext,
        *,
        timeout: float = 20.0,
    ) -> None:
        self.transcript = transcript
        self.allowed_hosts = allowed_hosts
        # A pooled connection is dropped after 2 s idle, before a server's keep-alive timeout
        # (uvicorn's 5 s, httpx's own expiry is also 5 s): reusing one the server is closing
        # just then fails as "Server disconnected without sending a response" (seen under load).
        self.http = httpx.Client(
            verify=context,
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY),
        )

    def allowed(self, url: str) -> bool:
        return (urlsplit(url).hostname or "").lower() in self.allowed_hosts

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if not self.allowed(url):
            raise HostNotAllowed(urlsplit(url).hostname or url)
        request = self.http.build_request(method, url, **kwargs)
        try:
            response = self.http.send(request, stream=True)
            try:
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE:
                        raise ResponseTooLarge(redact_url(str(request.url)))
                    chunks.append(chunk)
                response._content = b"".join(chunks)  # what Response.read() keeps, bounded
            finally:
                response.close()
        except httpx.HTTPError as exc:
            self.transcript.record(request, None, f"{type(exc).__name__}: {exc}")
            raise
        self.transcript.record(request, response)
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self.http.close()
