"""The evidence trail as a page people can look at (issue 8 part 4): ``/admin/trace?id=ID`` shows
a grant's, token's or request's story as a timeline (who, what was shown, what was granted, what
was done, what was refused and why). Only users named in ``admin_users`` may sign in; the
session is a short-lived cookie signed with a secret kept in the database (so every instance
accepts it); the login form is CSRF-protected by a double-submit cookie; every view is itself
an audit record."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from corridor.audit.log import Evidence
from corridor.audit.trace import readable, trace
from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.errors import OAuthError
from corridor.core.randomness import new_id, new_secret_token
from corridor.server.authority import AuthorizationServer
from corridor.server.authorize import cookie_header
from corridor.server.forms import read_form
from corridor.server.pages import error_page, render
from corridor.server.responses import redirect_303
from corridor.server.signin import unchecked

ADMIN_COOKIE = "__Host-corridor-admin"
CSRF_COOKIE = "__Host-corridor-admin-csrf"
ADMIN_SESSION_SECONDS = 1800


def _admin_cookie(name: str, value: str, max_age: int) -> str:
    return cookie_header(name, value, max_age, same_site="Strict")


class AdminPages:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self._mac_key: bytes | None = None

    def _key(self) -> bytes:
        """The cookie MAC key: a secret in the database (shared by every instance), read once."""
        if self._mac_key is None:
            secret = self.server.store.secret("admin_cookie", new_secret_token, self.server.now())
            self._mac_key = hashlib.sha256(secret.encode()).digest()
        return self._mac_key

    def _issue(self, user_id: str) -> str:
        body = b64url_encode(json.dumps([user_id, int(self.server.now()) + ADMIN_SESSION_SECONDS]).encode())
        mac = b64url_encode(hmac.new(self._key(), body.encode(), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def _admin(self, request: Request) -> dict[str, Any] | None:
        """The signed-in administrator, or None (bad signature, expired, no longer an admin)."""
        value = request.cookies.get(ADMIN_COOKIE, "")
        body, _, mac = value.partition(".")
        if not body or not mac:
            return None
        expected = b64url_encode(hmac.new(self._key(), body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, mac):
            return None
        try:
            user_id, expires = json.loads(b64url_decode(body))
        except (ValueError, TypeError):
            return None
        if not isinstance(expires, int) or expires <= self.server.now():
            return None
        user = self.server.store.get_user(str(user_id))
        if user is None or user["username"] not in self.server.settings.admin_users:
            return None
        return user

    def _login_page(self, next_url: str, error: str | None = None, status: int = 200) -> Response:
        csrf = new_secret_token()
        page = render("admin_login.html", status=status, csrf=csrf, next=next_url, error=error)
        page.headers.append("Set-Cookie", _admin_cookie(CSRF_COOKIE, csrf, 600))
        return page

    async def get_trace(self, request: Request) -> Response:
        return await run_in_threadpool(self.show_trace, request)

    def show_trace(self, request: Request) -> Response:
        ident = request.query_params.get("id", "")[:256]
        admin = self._admin(request)
        if admin is None:
            return self._login_page(f"/admin/trace?id={quote(ident)}")
        now = self.server.now()
        evidence = Evidence(issuer=self.server.settings.issuer, request_id=new_id(), user_id=admin["id"])
        evidence.detail = {"viewed": ident, "surface": "admin_trace_page"}
        self.server.audit.append(evidence, "admin.view", "shown", now)
        events = [_timeline_entry(r) for r in readable(trace(self.server.store, ident))] if ident else []
        return render("admin_trace.html", ident=ident, admin=admin["username"], events=events)

    async def post_login(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except OAuthError as error:
            return error_page(error.error, error.description)
        return await run_in_threadpool(self.login, request, form)

    def login(self, request: Request, form: Any) -> Response:
        server, now = self.server, self.server.now()
        next_url = form.get("next", "/admin/trace")
        if not next_url.startswith("/admin/") or next_url.startswith("//"):
            next_url = "/admin/trace"  # never an open redirect
        cookie_csrf = request.cookies.get(CSRF_COOKIE, "")
        if not cookie_csrf or not hmac.compare_digest(cookie_csrf.encode(), form.get("csrf", "").encode()):
            return self._login_page(next_url, "The form has expired; sign in again.", status=400)
        attempt = server.sign_ins.password(
            form.get("username", ""), form.get("password", ""), server.sign_ins.source(request), now
        )
        refused = unchecked(attempt, now)
        if refused:  # issue 13 C1, B3: waiting, or no hashing slot free: no password checked
            status, message, retry = refused
            page = self._login_page(next_url, message, status)
            page.headers["Retry-After"] = retry
            return page
        user = attempt.user
        ok = user is not None and user["username"] in server.settings.admin_users
        evidence = Evidence(issuer=server.settings.issuer, request_id=new_id())
        if not ok:
            evidence.user_id, evidence.detail = attempt.user_id, attempt.detail
            server.audit.append(
                evidence, "admin.login", "refused", now, rule="credentials", error="access_denied"
            )
            return self._login_page(next_url, "Wrong user name or password, or not an administrator.", 400)
        assert user is not None
        evidence.user_id = user["id"]
        server.audit.append(evidence, "admin.login", "succeeded", now)
        response = redirect_303(next_url)  # 303 after a credential POST, never 307
        response.headers.append(
            "Set-Cookie", _admin_cookie(ADMIN_COOKIE, self._issue(user["id"]), ADMIN_SESSION_SECONDS)
        )
        response.headers.append("Set-Cookie", _admin_cookie(CSRF_COOKIE, "", 0))
        return response


_TITLES = {
    "par": "Pushed authorization request",
    "login": "Sign-in",
    "consent": "Consent",
    "code": "Authorization code",
    "token.authorization_code": "Token (code exchange)",
    "token.refresh_token": "Token (refresh)",
    "userinfo": "UserInfo",
    "rs.access": "Resource server decision",
    "introspection": "Introspection",
    "revocation": "Revocation",
}


def _timeline_entry(record: dict[str, Any]) -> dict[str, Any]:
    """One record in the words of the page: who, what was shown, granted, done, and why."""
    raw = record.get("detail")
    detail: dict[str, Any] = raw if isinstance(raw, dict) else {}
    surface = detail.get("approval_surface") if isinstance(detail.get("approval_surface"), dict) else None
    who = ", ".join(
        f"{label} {record[name]}"
        for label, name in (("user", "user_id"), ("client", "client_id"))
        if record.get(name)
    )
    entry: dict[str, Any] = {
        "event": record["event"],
        "outcome": record["outcome"],
        "kind": record["outcome"] if record["outcome"] in ("refused", "denied", "shown") else "ok",
        "title": _TITLES.get(record["event"], record["event"]),
        "iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record["time"])),
        "who": who,
    }
    if surface:
        facts = surface.get("facts", {})
        entry["shown"] = [f"{s['words']} ({s['name']})" for s in facts.get("scopes", [])] + [
            d["words"] for d in facts.get("details", [])
        ]
        entry["page_hash"] = surface.get("body_sha256", "")
        entry["template"] = surface.get("template_version", "")
    if record["event"] in ("consent", "token.authorization_code", "token.refresh_token") and record[
        "outcome"
    ] in (
        "granted",
        "issued",
    ):
        details = record.get("authorization_details") or []
        entry["granted"] = "; ".join(
            [f"scope {record['scope']}" if record.get("scope") else ""]
            + [json.dumps(d, sort_keys=True) for d in details]
        ).strip("; ")
    if detail.get("tool_action") or detail.get("route"):
        entry["action"] = " ".join(
            str(x) for x in (detail.get("tool_action"), detail.get("method"), detail.get("route")) if x
        )
    reasons = []
    if record.get("error"):
        reasons.append(f"{record['error']} ({record.get('rule')})")
    policy = detail.get("policy") if isinstance(detail.get("policy"), dict) else None
    if policy:
        reasons.append(f"policy {policy.get('decision')}: {', '.join(policy.get('policies', []))}")
    entry["why"] = "; ".join(reasons)
    if record.get("sender_constraint"):
        entry["binding"] = f"{record['sender_constraint']} {record.get('key_thumbprint') or ''}".strip()
    return entry
