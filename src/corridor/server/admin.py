"""The evidence trail as a page people can look at (issue 8 part 4): ``/admin/trace?id=ID`` shows
a grant's, token's or request's story as a timeline (who, what was shown, what was granted, what
was done, what was refused and why). Only users named in ``admin_users`` may sign in, with
their strongest enrolled factor (a TOTP code after the password; ``admin_require_mfa``, on
outside dev mode, refuses admins without one); the session is stored in the database (so every
instance accepts it and a sign-out ends it everywhere) and ends after ``admin_session_idle``
seconds unused or ``admin_session_lifetime`` in all; the login form is CSRF-protected by a
double-submit cookie, the later forms by the session's own token; every view is itself an audit
record."""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.audit.log import Evidence
from corridor.audit.trace import chain_marks, readable, trace
from corridor.audit.words import steps, user_names
from corridor.core.errors import OAuthError
from corridor.core.randomness import new_secret_token, token_hash
from corridor.core.request_context import current_request_id
from corridor.core.rules import Rule
from corridor.server.authority import AuthorizationServer
from corridor.server.forms import read_form
from corridor.server.interaction.browser import cookie_header
from corridor.server.interaction.contract import AMR
from corridor.server.interaction.second_factor import TOTP_ACR, WRONG_CODES
from corridor.server.pages import error_page, render
from corridor.server.passkeys import PASSKEY_ACR, PasskeyRefused
from corridor.server.responses import redirect_303
from corridor.server.signin import retry_after, unchecked, waiting_message
from corridor.store.sql import Row

ADMIN_COOKIE = "__Host-corridor-admin"
CSRF_COOKIE = "__Host-corridor-admin-csrf"
#: How long an admin may take between the password and the second factor.
SECOND_FACTOR_SECONDS = 300


def _admin_cookie(name: str, value: str, max_age: int) -> str:
    return cookie_header(name, value, max_age, same_site="Strict")


class AdminPages:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server

    # -- sessions (issue 13 C3): stored, so sign-out and expiry hold on every instance ----------

    def _session(self, request: Request) -> tuple[Row, Row] | None:
        """The session and its administrator, or None (unknown, signed out, idle too long, past
        its lifetime, no longer an admin, or disabled). Half-signed-in sessions are returned too."""
        settings, now = self.server.settings, self.server.now()
        value = request.cookies.get(ADMIN_COOKIE, "")
        session = (
            self.server.store.requests.admin_session(token_hash(value)) if 0 < len(value) <= 128 else None
        )
        if session is None or now >= session["expires_at"]:
            return None
        if now >= session["last_seen_at"] + settings.admin_session_idle:
            return None
        user = self.server.store.users.get(session["user_id"])
        if user is None or user["username"] not in settings.admin_users:
            return None
        if user.get("disabled_at") is not None:  # issue 18: a session begun as it was disabled
            return None
        return session, user

    def _required_acr(self, user: Row) -> str | None:
        """Issue 13 C3: the admin's strongest enrolled factor (a passkey, where WebAuthn can work
        here, else TOTP); with ``admin_require_mfa`` at least ``mfa`` even if none is enrolled."""
        if self.server.passkeys.available and self.server.store.users.passkeys(user["id"]):
            return PASSKEY_ACR
        if user.get("totp_secret") or self.server.settings.admin_require_mfa:
            return TOTP_ACR
        return None

    def _second_factor_due(self, user: Row, acr: str) -> bool:
        required = self._required_acr(user)
        return required is not None and not self.server.settings.acr.reaches(acr, required)

    def _login_page(self, next_url: str, error: str | None = None, status: int = 200) -> Response:
        csrf = new_secret_token()
        page = render("admin_login.html", status=status, csrf=csrf, next=next_url, error=error)
        page.headers.append("Set-Cookie", _admin_cookie(CSRF_COOKIE, csrf, 600))
        return page

    def _second_factor_page(
        self, session: Row, user: Row, next_url: str, error: str | None = None, status: int = 200
    ) -> Response:
        """The strongest factor the admin has: the passkey ceremony, or the TOTP form."""
        server = self.server
        passkey_options = None
        if self._required_acr(user) == PASSKEY_ACR:
            passkey_options = server.passkeys.authentication_options(
                _ceremony(session), server.now(), user["id"]
            )
        elif error is None:
            waiting = server.sign_ins.second_factor_waiting(user["id"], server.now())
            error = waiting_message(waiting, WRONG_CODES) if waiting else None
        return render(
            "admin_second_factor.html",
            status=status,
            scripts=passkey_options is not None,
            csrf=session["csrf"],
            next=next_url,
            error=error,
            passkey_options=passkey_options,
            passkey_action=f"/admin/passkey?next={quote(next_url)}",
        )

    async def get_trace(self, request: Request) -> Response:
        return await run_in_threadpool(self.show_trace, request)

    def show_trace(self, request: Request) -> Response:
        ident = request.query_params.get("id", "")[:256]
        here = f"/admin/trace?id={quote(ident)}"
        signed_in = self._session(request)
        if signed_in is None:
            return self._login_page(here)
        session, admin = signed_in
        if self._second_factor_due(admin, session["acr"]):
            return self._second_factor_page(session, admin, here)
        now = self.server.now()
        self.server.store.requests.update_admin_session(session["id_hash"], last_seen_at=now)
        evidence = Evidence(
            issuer=self.server.settings.issuer, request_id=current_request_id(), user_id=admin["id"]
        )
        evidence.detail = {"viewed": ident, "surface": "admin_trace_page"}
        self.server.audit.append(evidence, Event.ADMIN_VIEW, Outcome.SHOWN, now)
        records = readable(trace(self.server.store, ident)) if ident else []
        # Issue 16: the story in words (audit/words.py, the same steps as `corridor audit trace`),
        # users by name for the operator, and each record's mark from its chain.
        names = user_names(self.server.store.users, records)
        events = steps(records, self.server.detail_types.describe, names)
        marks = chain_marks(self.server.store, records)
        return render(
            "admin_trace.html",
            ident=ident,
            admin=admin["username"],
            events=events,
            marks=marks,
            csrf=session["csrf"],
        )

    async def post_login(self, request: Request) -> Response:
        return await self._post(request, self.login)

    async def post_second_factor(self, request: Request) -> Response:
        return await self._post(request, self.second_factor)

    async def post_passkey(self, request: Request) -> Response:
        return await self._post(request, self.passkey)

    async def post_logout(self, request: Request) -> Response:
        return await self._post(request, self.logout)

    async def _post(self, request: Request, action: Any) -> Response:
        try:
            form = await read_form(request)
        except OAuthError as error:
            return error_page(error.error, error.description)
        return await run_in_threadpool(action, request, form)

    @staticmethod
    def _next(form: Any, request: Request | None = None) -> str:
        default = request.query_params.get("next", "/admin/trace") if request is not None else "/admin/trace"
        next_url = str(form.get("next", default))
        if not next_url.startswith("/admin/") or next_url.startswith("//"):
            return "/admin/trace"  # never an open redirect
        return next_url

    def login(self, request: Request, form: Any) -> Response:
        server, now = self.server, self.server.now()
        next_url = self._next(form)
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
        evidence = Evidence(issuer=server.settings.issuer, request_id=current_request_id())
        if not ok:
            evidence.user_id, evidence.detail = attempt.user_id, attempt.detail
            server.audit.append(
                evidence,
                Event.ADMIN_LOGIN,
                Outcome.REFUSED,
                now,
                rule=Rule.CREDENTIALS,
                error="access_denied",
            )
            return self._login_page(next_url, "Wrong user name or password, or not an administrator.", 400)
        assert user is not None
        evidence.user_id = user["id"]
        due = self._second_factor_due(user, "password")
        if due and self._required_acr(user) == TOTP_ACR and not user.get("totp_secret"):
            server.audit.append(
                evidence,
                Event.ADMIN_LOGIN,
                Outcome.REFUSED,
                now,
                rule=Rule.ISSUE_13_C3_ADMIN_REQUIRE_MFA,
                error="access_denied",
            )
            message = "Administrators need a second factor: enrol one with `corridor user totp NAME`."
            return self._login_page(next_url, message, 403)
        secret = new_secret_token()
        lifetime = SECOND_FACTOR_SECONDS if due else server.settings.admin_session_lifetime
        server.store.requests.save_admin_session(
            id_hash=token_hash(secret),
            user_id=user["id"],
            acr="password",
            csrf=new_secret_token(),
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
        if not due:
            evidence.detail = {"acr": "password", "amr": list(AMR["password"]), "factor": "password"}
            server.audit.append(evidence, Event.ADMIN_LOGIN, Outcome.SUCCEEDED, now)
        response = redirect_303(next_url)  # 303 after a credential POST, never 307
        cookie_lifetime = server.settings.admin_session_lifetime
        response.headers.append("Set-Cookie", _admin_cookie(ADMIN_COOKIE, secret, cookie_lifetime))
        response.headers.append("Set-Cookie", _admin_cookie(CSRF_COOKIE, "", 0))
        return response

    def second_factor(self, request: Request, form: Any) -> Response:
        """Issue 13 C3: the admin's TOTP code after the password (counted per user, C2)."""
        server, now = self.server, self.server.now()
        next_url = self._next(form)
        signed_in = self._session(request)
        if signed_in is None:
            return self._login_page(next_url, "Sign in again.", status=400)
        session, user = signed_in
        if not hmac.compare_digest(session["csrf"].encode(), form.get("csrf", "").encode()):
            return self._second_factor_page(session, user, next_url, "The form has expired.", 400)
        if not self._second_factor_due(user, session["acr"]):
            return redirect_303(next_url)
        if self._required_acr(user) != TOTP_ACR:  # the admin has a passkey: nothing weaker
            return self._second_factor_page(session, user, next_url, "Use your passkey.", 400)
        check = server.sign_ins.totp(user, form.get("code", ""), now)
        evidence = Evidence(
            issuer=server.settings.issuer, request_id=current_request_id(), user_id=user["id"]
        )
        if check.waiting_until:
            page = self._second_factor_page(
                session, user, next_url, waiting_message(check.waiting_until, WRONG_CODES), 429
            )
            page.headers["Retry-After"] = retry_after(check.waiting_until, now)
            return page
        if not check.ok:
            evidence.detail = check.detail
            server.audit.append(
                evidence, Event.ADMIN_LOGIN, Outcome.REFUSED, now, rule=check.rule, error="access_denied"
            )
            return self._second_factor_page(
                session, user, next_url, "That code is not right (or was already used).", 400
            )
        server.store.requests.update_admin_session(
            session["id_hash"],
            acr=TOTP_ACR,
            last_seen_at=now,
            expires_at=now + server.settings.admin_session_lifetime,
        )
        evidence.detail = {"acr": TOTP_ACR, "amr": list(AMR[TOTP_ACR]), "factor": "totp"}
        server.audit.append(evidence, Event.ADMIN_LOGIN, Outcome.SUCCEEDED, now)
        return redirect_303(next_url)

    def passkey(self, request: Request, form: Any) -> Response:
        """Issue 13 C3: the admin's passkey after the password (WebAuthn 7.2, server/passkeys.py),
        its challenge bound to this half-signed-in session."""
        server, now = self.server, self.server.now()
        next_url = self._next(form, request)
        signed_in = self._session(request)
        if signed_in is None:
            return self._login_page(next_url, "Sign in again.", status=400)
        session, user = signed_in
        if not hmac.compare_digest(session["csrf"].encode(), form.get("csrf", "").encode()):
            return self._second_factor_page(session, user, next_url, "The form has expired.", 400)
        if not self._second_factor_due(user, session["acr"]) or not server.passkeys.available:
            return redirect_303(next_url)
        evidence = Evidence(
            issuer=server.settings.issuer, request_id=current_request_id(), user_id=user["id"]
        )
        try:
            assertion = server.passkeys.authenticate(
                form.get("credential", ""), _ceremony(session), now, user["id"]
            )
        except PasskeyRefused as refusal:
            evidence.detail = {"factor": "passkey", "reason": refusal.reason}
            server.audit.append(
                evidence, Event.ADMIN_LOGIN, Outcome.REFUSED, now, rule=refusal.rule, error="access_denied"
            )
            return self._second_factor_page(session, user, next_url, refusal.message, 400)
        server.store.requests.update_admin_session(
            session["id_hash"],
            acr=PASSKEY_ACR,
            last_seen_at=now,
            expires_at=now + server.settings.admin_session_lifetime,
        )
        evidence.detail = {
            "acr": PASSKEY_ACR,
            "amr": list(AMR[PASSKEY_ACR]),
            "factor": "passkey",
            "credential_id": assertion.passkey["credential_id"],
        }
        server.audit.append(evidence, Event.ADMIN_LOGIN, Outcome.SUCCEEDED, now)
        return redirect_303(next_url)

    def logout(self, request: Request, form: Any) -> Response:
        """Issue 13 C3: sign-out (POST, the session's CSRF token): the stored session is removed,
        so the cookie is worthless everywhere, and the cookie is cleared."""
        signed_in = self._session(request)
        if signed_in is not None:
            session, user = signed_in
            if not hmac.compare_digest(session["csrf"].encode(), form.get("csrf", "").encode()):
                return error_page("invalid_request", "The form has expired; sign out again.")
            self.server.store.requests.remove_admin_session(session["id_hash"])
            evidence = Evidence(
                issuer=self.server.settings.issuer, request_id=current_request_id(), user_id=user["id"]
            )
            self.server.audit.append(evidence, Event.ADMIN_LOGOUT, Outcome.SUCCEEDED, self.server.now())
        response = redirect_303("/admin/trace")
        response.headers.append("Set-Cookie", _admin_cookie(ADMIN_COOKIE, "", 0))
        return response


def _ceremony(session: Row) -> str:
    """What an admin's passkey challenge is bound to: this session (never an interaction)."""
    return f"admin:{session['id_hash']}"
