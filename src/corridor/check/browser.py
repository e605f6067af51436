"""The user's part of a flow, behind one small contract so the modules need not know whether
a form filler, real Chromium or a person drives it (``[login] method``)."""

from __future__ import annotations

from typing import Protocol

from corridor.check.outcome import FrontChannelResult


class Browser(Protocol):
    """One user agent (its own cookies) for one module.

    Both methods start at ``url`` (the authorization endpoint with the front-channel
    parameters), follow the authorization server's own redirects, never follow a redirect to a
    foreign origin, and stop when the user agent is sent to ``redirect_uri`` (which need not
    exist: it is never requested)."""

    def visit(self, url: str, redirect_uri: str) -> FrontChannelResult:
        """Open ``url`` and stop at the first page (no sign-in): INTERACTION for a sign-in or
        consent page, else wherever it ended."""

    def authorize(self, url: str, redirect_uri: str, *, approve: bool = True) -> FrontChannelResult:
        """Open ``url``, sign in (if asked) and approve or deny (if asked)."""

    def close(self) -> None: ...
