"""The login drivers (``[login] method``): the user's part of a flow behind the
:class:`~corridor.check.browser.Browser` protocol.

- ``html-form``: :class:`HtmlFormBrowser`, the check's own HTTP client with a cookie jar;
- ``chromium``: :class:`ChromiumBrowser`, real headless Chromium (selenium, imported lazily);
- ``manual``: :class:`ManualBrowser`, a person who pastes the address the browser was sent to.

Every driver starts at the authorization URL, follows only the authorization server's own
redirects (allowed hosts), never requests the redirect URI and never contacts a foreign
origin (:attr:`~corridor.check.outcome.Landing.FOREIGN_REDIRECT`)."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from corridor.check.browser import Browser
from corridor.check.config import LoginConfig
from corridor.check.http import Transcript
from corridor.check.login.chromium import ChromiumBrowser  # selenium itself only when one starts
from corridor.check.login.errors import LoginError
from corridor.check.login.html_form import HtmlFormBrowser
from corridor.check.login.manual import ManualBrowser

__all__ = ["Browser", "ChromiumBrowser", "HtmlFormBrowser", "LoginError", "ManualBrowser", "make_browser"]


def make_browser(
    login: LoginConfig,
    *,
    transcript: Transcript,
    allowed_hosts: frozenset[str],
    ca_file: Path | None,
    manual_input: TextIO | None = None,
    manual_output: TextIO | None = None,
) -> Browser:
    """A new user agent (its own cookies) for ``login.method``; :class:`LoginError` when the
    method cannot run here (chromium without selenium or the Debian packages)."""
    if login.method == "html-form":
        return HtmlFormBrowser(login, transcript=transcript, allowed_hosts=allowed_hosts, ca_file=ca_file)
    if login.method == "chromium":
        return ChromiumBrowser(login, transcript=transcript, allowed_hosts=allowed_hosts, ca_file=ca_file)
    if login.method == "manual":
        return ManualBrowser(
            login,
            transcript=transcript,
            allowed_hosts=allowed_hosts,
            input=manual_input,
            output=manual_output,
        )
    raise LoginError(f"unknown login method {login.method!r}")
