"""Server-rendered pages (Jinja2): strict CSP with a per-response style nonce,
anti-framing headers, no caching (FAPI2 5.2.3, design.md 3)."""

from __future__ import annotations

import functools
import hashlib
import secrets
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from corridor.core.request_context import note_refusal
from corridor.core.text import escape_controls
from corridor.server.responses import NO_STORE

_env = Environment(
    loader=PackageLoader("corridor.server", "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)
#: Issue 13 E1: ``{{ value|visible }}`` shows a recorded value's control and bidirectional
#: formatting characters escaped (the evidence page); the value itself stays exact.
_env.filters["visible"] = escape_controls


def render(
    template: str,
    status: int = 200,
    form_targets: tuple[str, ...] = (),
    scripts: bool = False,
    **context: Any,
) -> HTMLResponse:
    """A page whose forms may post only to this origin and, after a decision, redirect only
    to ``form_targets`` (CSP form-action also governs the redirect that follows a POST).
    Only pages with a WebAuthn ceremony (``scripts``) may run script: their own, by nonce."""
    nonce = secrets.token_urlsafe(16)
    html = _env.get_template(template).render(style_nonce=nonce, **context)
    form_action = " ".join(("'self'", *form_targets))
    script_src = f"script-src 'nonce-{nonce}'; " if scripts else ""
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; {script_src}form-action {form_action}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    headers = {**NO_STORE, "Content-Security-Policy": csp, "X-Frame-Options": "DENY"}
    return HTMLResponse(html, status_code=status, headers=headers)


def error_page(error: str, description: str, status: int = 400) -> HTMLResponse:
    """The safe error page used whenever no redirect target is trusted (RFC 9700 4.11)."""
    note_refusal(None, error)  # for the request's log line and metrics (issue 18)
    return render("error.html", status=status, error=error, description=description)


@functools.cache
def template_version(name: str) -> str:
    """A short hash of a page template's source (with its base), recorded with what it showed."""
    source = "".join(
        _env.loader.get_source(_env, template)[0]  # type: ignore[union-attr]
        for template in (name, "base.html")
    )
    return hashlib.sha256(source.encode()).hexdigest()[:16]
