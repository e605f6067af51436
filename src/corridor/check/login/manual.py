"""``[login] method = "manual"``: a person is the user agent. Each authorization URL is printed
(to ``output``, stderr by default) with what to do; the person answers with one line on
``input`` (stdin by default):

- the address the browser was sent to (the redirect URI with the response: it need not load);
- ``sign-in`` when the browser shows a sign-in or consent page (``visit()`` asks for that);
- ``error`` or ``error: what the page says`` when the server showed an error page;
- an empty line (or end of input): the person gave up, an ERROR_PAGE saying so.

A pasted address that is neither the redirect URI nor on an allowed host is a
FOREIGN_REDIRECT; one on the authorization server is where the person stopped (ERROR_PAGE, or
INTERACTION for ``visit()``). Prompts never overlap: modules that run at the same time wait for
one another's person."""

from __future__ import annotations

import sys
import threading
from typing import ClassVar, TextIO
from urllib.parse import urlsplit

import httpx

from corridor.check import outcome
from corridor.check.config import LoginConfig
from corridor.check.http import Transcript
from corridor.check.login.html_form import foreign
from corridor.check.outcome import FrontChannelResult, Landing

ATTEMPTS = 3
INTERACTION_WORDS = frozenset({"sign-in", "signin", "sign in", "login", "consent", "interaction"})


class ManualBrowser:
    """The manual user agent (the ``Browser`` protocol)."""

    _prompt_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        login: LoginConfig,
        *,
        transcript: Transcript,
        allowed_hosts: frozenset[str] = frozenset(),
        input: TextIO | None = None,
        output: TextIO | None = None,
    ) -> None:
        self.login = login
        self.transcript = transcript
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.input = input if input is not None else sys.stdin
        self.output = output if output is not None else sys.stderr
        transcript.add_secret(login.password)

    def visit(self, url: str, redirect_uri: str) -> FrontChannelResult:
        task = (
            "Do NOT sign in. If the browser shows a sign-in or consent page, type: sign-in\n"
            f"If it was sent on to {redirect_uri} (the page need not load), paste that address."
        )
        return self._ask(url, redirect_uri, task, visit=True)

    def authorize(self, url: str, redirect_uri: str, *, approve: bool = True) -> FrontChannelResult:
        who = f" as {self.login.username}" if self.login.username else ""
        if approve:
            task = f"Sign in{who} and APPROVE the request."
        else:
            task = (
                f"DENY the request: press Cancel (or Deny) on the sign-in page if it has one, "
                f"otherwise sign in{who} and press Deny on the consent page."
            )
        task += f"\nThe browser is then sent to {redirect_uri} (the page need not load): paste that address."
        return self._ask(url, redirect_uri, task, visit=False)

    def close(self) -> None:
        pass

    def _ask(self, url: str, redirect_uri: str, task: str, *, visit: bool) -> FrontChannelResult:
        self.transcript.record(
            httpx.Request("GET", url), None, "manual login: opened by the person, not by the check"
        )
        with self._prompt_lock:
            print(
                "\n[corridor check] Open this address in a browser (a fresh private window is best):",
                file=self.output,
            )
            print(f"  {url}", file=self.output)
            print(task, file=self.output)
            print(
                'If the server shows an error page, type: error (or "error: what it says").', file=self.output
            )
            print("An empty line gives up.", file=self.output)
            for _ in range(ATTEMPTS):
                print("> ", end="", file=self.output, flush=True)
                line = self.input.readline()
                answer = line.strip().strip("'\"<>").strip()
                if not answer:
                    return FrontChannelResult(
                        Landing.ERROR_PAGE, url, text="manual login: no answer, the person gave up"
                    )
                result = self._read(answer, url, redirect_uri, visit=visit)
                if result is not None:
                    return result
                print(
                    "Not an address, 'sign-in' or 'error'. Paste the whole address from the address bar.",
                    file=self.output,
                )
        return FrontChannelResult(Landing.ERROR_PAGE, url, text="manual login: no usable answer")

    def _read(self, answer: str, url: str, redirect_uri: str, *, visit: bool) -> FrontChannelResult | None:
        lowered = answer.lower()
        if lowered in INTERACTION_WORDS:
            return FrontChannelResult(
                Landing.INTERACTION, url, text="manual login: a sign-in or consent page"
            )
        if lowered == "error" or lowered.startswith(("error:", "error ")):
            said = answer[5:].lstrip(": ").strip()
            return FrontChannelResult(Landing.ERROR_PAGE, url, text=said or "manual login: an error page")
        parts = urlsplit(answer)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            if outcome.same_endpoint(answer, redirect_uri):  # a custom-scheme redirect URI
                return self._pasted(answer, redirect_uri)
            return None
        if outcome.same_endpoint(answer, redirect_uri):
            return self._pasted(answer, redirect_uri)
        host = (parts.hostname or "").lower()
        if self.allowed_hosts and host not in self.allowed_hosts:
            return foreign(answer, None)
        landing = Landing.INTERACTION if visit else Landing.ERROR_PAGE
        return FrontChannelResult(
            landing, answer, text="manual login: the browser stayed on the authorization server"
        )

    def _pasted(self, answer: str, redirect_uri: str) -> FrontChannelResult:
        self.transcript.record(
            httpx.Request("GET", answer), None, "manual login: pasted by the person, not requested"
        )
        return outcome.callback(answer, redirect_uri)
