"""A scratch form-filling browser for the module tests (a copy of the lead's /tmp/scratch
sbrowser.py, typed; the lead unifies the copies at merge): follows the authorization server's
redirects with a cookie jar, signs in on a password form, approves or denies on a consent form,
and stops when sent to the redirect URI."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

from corridor.check import outcome
from corridor.check.config import CheckConfig
from corridor.check.http import RecordingClient, Transcript, ssl_context


class Forms(HTMLParser):
    """The forms of a page: action, method, named fields (type, value) and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append(
                {"action": a.get("action") or "", "method": a.get("method") or "get", "fields": {}}
            )
        elif tag in ("input", "button") and self.forms:
            kind = a.get("type") or ("text" if tag == "input" else "submit")
            name = a.get("name")
            fields = self.forms[-1]["fields"]
            assert isinstance(fields, dict)
            if kind != "submit" and name:
                fields[name] = (kind, a.get("value") or "")


class ScratchBrowser:
    """One user agent for one module (the :class:`corridor.check.browser.Browser` contract)."""

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

    def visit(self, url: str, redirect_uri: str) -> outcome.FrontChannelResult:
        location, response = self._go("GET", url, redirect_uri)
        if location:
            return outcome.callback(location, redirect_uri)
        forms = Forms()
        forms.feed(response.text)
        return outcome.page(response, has_form=bool(forms.forms), text=response.text[:200])

    def authorize(self, url: str, redirect_uri: str, *, approve: bool = True) -> outcome.FrontChannelResult:
        location, response = self._go("GET", url, redirect_uri)
        for _ in range(4):
            if location:
                return outcome.callback(location, redirect_uri)
            forms = Forms()
            forms.feed(response.text)
            if not forms.forms or response.status_code >= 400:
                return outcome.page(response, has_form=bool(forms.forms), text=response.text[:200])
            form = forms.forms[0]
            fields = form["fields"]
            assert isinstance(fields, dict)
            data = {name: value for name, (kind, value) in fields.items() if kind == "hidden"}
            if any(kind == "password" for kind, _ in fields.values()):
                data["username"] = self.username
                data["password"] = self.password
            else:
                data["decision"] = "approve" if approve else "deny"
            location, response = self._go(
                "POST", urljoin(str(response.url), str(form["action"])), redirect_uri, data
            )
        return outcome.page(response, has_form=True)
