"""A small HTML-form user agent for the check tests until the login drivers land (a copy of the
lead's scratch browser, typed): follows redirects with a cookie jar, signs in on the first
password form, approves or denies on the consent form, stops at the redirect URI."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

from corridor.check import outcome
from corridor.check.config import CheckConfig
from corridor.check.http import RecordingClient, Transcript, ssl_context
from corridor.check.outcome import FrontChannelResult


class Forms(HTMLParser):
    """The forms of a page: action, method, named fields (type, value) and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self._fields: dict[str, tuple[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._fields = {}
            self.forms.append({"action": a.get("action", ""), "fields": self._fields})
        elif tag in ("input", "button") and self.forms:
            kind = a.get("type", "text" if tag == "input" else "submit")
            if kind != "submit" and a.get("name"):
                self._fields[a["name"]] = (kind, a.get("value", ""))


class ScratchBrowser:
    """The Browser contract (visit, authorize, close) over a RecordingClient."""

    def __init__(self, config: CheckConfig, transcript: Transcript) -> None:
        self.client = RecordingClient(transcript, config.allowed_hosts(), ssl_context(config.ca_file))
        self.username = config.login.username
        self.password = config.login.password

    def close(self) -> None:
        self.client.close()

    def _go(
        self, method: str, url: str, redirect_uri: str, data: dict[str, str] | None = None
    ) -> tuple[str, httpx.Response]:
        for _ in range(10):
            response = self.client.request(method, url, data=data, cookies=self.client.http.cookies)
            self.client.http.cookies.update(response.cookies)
            if response.status_code in (301, 302, 303, 307):
                location = urljoin(url, response.headers["location"])
                if outcome.same_endpoint(location, redirect_uri):
                    return location, response
                method, url, data = "GET", location, None
                continue
            return "", response
        raise RuntimeError("too many redirects")

    def _page(self, response: httpx.Response) -> tuple[Forms, FrontChannelResult]:
        forms = Forms()
        forms.feed(response.text)
        return forms, outcome.page(response, has_form=bool(forms.forms), text=response.text[:200])

    def visit(self, url: str, redirect_uri: str) -> FrontChannelResult:
        landed, response = self._go("GET", url, redirect_uri)
        if landed:
            return outcome.callback(landed, redirect_uri)
        return self._page(response)[1]

    def authorize(self, url: str, redirect_uri: str, *, approve: bool = True) -> FrontChannelResult:
        landed, response = self._go("GET", url, redirect_uri)
        for _ in range(4):
            if landed:
                return outcome.callback(landed, redirect_uri)
            forms, result = self._page(response)
            if not forms.forms or response.status_code >= 400:
                return result
            form = forms.forms[0]
            fields = form["fields"]
            assert isinstance(fields, dict)
            data = {name: value for name, (kind, value) in fields.items() if kind == "hidden"}
            if any(kind == "password" for kind, _ in fields.values()):
                data["username"] = self.username
                data["password"] = self.password
            else:
                data["decision"] = "approve" if approve else "deny"
            landed, response = self._go(
                "POST", urljoin(str(response.url), str(form["action"])), redirect_uri, data
            )
        return outcome.page(response, has_form=True)
