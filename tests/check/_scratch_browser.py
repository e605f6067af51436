"""A test-only stand-in for the html-form login driver (the lead swaps it for the real one):
follows the authorization server's redirects with a cookie jar, fills the first form of each
page (the password form with the configured user, else the consent form's decision) and stops
when the user agent is sent to the redirect URI."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

from corridor.check import outcome
from corridor.check.config import CheckConfig
from corridor.check.http import RecordingClient, Transcript, ssl_context
from corridor.check.outcome import FrontChannelResult


@dataclass
class _Form:
    action: str
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(_Form(a.get("action", "")))
        elif tag in ("input", "button") and self.forms:
            kind = a.get("type") or ("text" if tag == "input" else "submit")
            if kind != "submit" and a.get("name"):
                self.forms[-1].fields[a["name"]] = (kind, a.get("value", ""))


def _forms(text: str) -> list[_Form]:
    parser = _Forms()
    parser.feed(text)
    return parser.forms


class ScratchBrowser:
    """One user agent (its own cookies) over the checker's recording HTTP client."""

    def __init__(self, config: CheckConfig, transcript: Transcript) -> None:
        self.client = RecordingClient(transcript, config.allowed_hosts(), ssl_context(config.ca_file))
        self.username = config.login.username
        self.password = config.login.password

    def close(self) -> None:
        self.client.close()

    def _go(
        self, method: str, url: str, redirect_uri: str, data: dict[str, str] | None = None
    ) -> tuple[str, httpx.Response]:
        """Follow the server's redirects; ("callback", last) when sent to the redirect URI."""
        for _ in range(10):
            response = self.client.request(method, url, data=data)
            if response.status_code in (301, 302, 303, 307, 308):
                location = urljoin(url, response.headers["location"])
                if outcome.same_endpoint(location, redirect_uri):
                    return location, response
                method, url, data = "GET", location, None
                continue
            return "", response
        raise RuntimeError("too many redirects")

    def visit(self, url: str, redirect_uri: str) -> FrontChannelResult:
        location, response = self._go("GET", url, redirect_uri)
        if location:
            return outcome.callback(location, redirect_uri)
        return outcome.page(response, has_form=bool(_forms(response.text)), text=response.text[:200])

    def authorize(self, url: str, redirect_uri: str, *, approve: bool = True) -> FrontChannelResult:
        location, response = self._go("GET", url, redirect_uri)
        for _ in range(4):
            if location:
                return outcome.callback(location, redirect_uri)
            forms = _forms(response.text)
            if not forms or response.status_code >= 400:
                return outcome.page(response, has_form=bool(forms), text=response.text[:200])
            form = forms[0]
            data = {name: value for name, (kind, value) in form.fields.items() if kind == "hidden"}
            if any(kind == "password" for kind, _ in form.fields.values()):
                data["username"], data["password"] = self.username, self.password
            else:
                data["decision"] = "approve" if approve else "deny"
            location, response = self._go("POST", urljoin(str(response.url), form.action), redirect_uri, data)
        return outcome.page(response, has_form=True)
