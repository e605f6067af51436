"""Enrolment links (issue 13 C4): an operator binds a user's first strong factor.

Outside dev mode a user who has only a password cannot add a passkey from the sign-in pages
(``self_service_enrolment`` is off): a password alone must not reach acr ``passkey``. The
operator runs ``corridor user enrol NAME``, which prints ``{issuer}/enrol?token=...``: 256
random bits (only their SHA-256 is stored), good for ``enrolment_link_lifetime`` seconds (15
minutes), used once. The user opens it, types the account's password (the link travels by mail
or chat, so it is not enough alone) and creates a passkey; one POST carries both. The link is
spent in the same transaction that stores the passkey (one conditional UPDATE: unspent, unexpired,
this user's), so two posts of one link bind at most one passkey. The secret is in the query of
the GET and the body of the POST, never in a logged path (corridor.server.app logs paths only).
"""

from __future__ import annotations

import hmac
import re
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.audit.log import Evidence
from corridor.core.errors import OAuthError
from corridor.core.randomness import new_secret_token, token_hash
from corridor.core.request_context import current_request_id
from corridor.core.rules import Rule
from corridor.server.authority import AuthorizationServer
from corridor.server.forms import Form, read_form
from corridor.server.interaction.browser import cookie_header
from corridor.server.pages import error_page, render
from corridor.server.passkeys import PasskeyRefused
from corridor.server.responses import redirect_303
from corridor.server.settings import Settings
from corridor.server.signin import unchecked
from corridor.store.sql import Row, Store

ENROL_PATH = "/enrol"
CSRF_COOKIE = "__Host-corridor-enrol-csrf"
#: What new_secret_token makes (43 base64url characters); anything else is not looked up.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_UNUSABLE = "This enrolment link is unknown, used or expired. Ask your administrator for a new one."


def issue_link(store: Store, settings: Settings, user: Row, now: float) -> str:
    """Issue 13 C4: a single-use link binding ``user``'s first strong factor (128+ bits)."""
    token = new_secret_token()
    store.users.add_enrolment_link(token_hash(token), user["id"], now, now + settings.enrolment_link_lifetime)
    return f"{settings.issuer}{ENROL_PATH}?{urlencode({'token': token})}"


def _binding(link_hash: str) -> str:
    """What the WebAuthn challenge is bound to (server/passkeys.py): this link, not an interaction."""
    return f"enrol:{link_hash}"


class EnrolmentPages:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server

    def _live_link(self, token: str, now: float) -> tuple[Row, Row] | None:
        """The unspent, unexpired link and its user, who still exists (the spend checks the link
        again, atomically)."""
        if not _TOKEN.fullmatch(token):
            return None
        link = self.server.store.users.enrolment_link(token_hash(token))
        if link is None or link["consumed_at"] is not None or now >= link["expires_at"]:
            return None
        user = self.server.store.users.get(link["user_id"])
        return (link, user) if user is not None else None

    def _refuse(self, evidence: Evidence, rule: str, description: str = _UNUSABLE) -> Response:
        self.server.audit.append(
            evidence, Event.PASSKEY, Outcome.REFUSED, self.server.now(), rule=rule, error="access_denied"
        )
        return error_page("access_denied", description)

    def _page(
        self, token: str, link: Row, user: Row, csrf: str, status: int = 200, error: str | None = None
    ) -> Response:
        server = self.server
        page = render(
            "enrol_link.html",
            status=status,
            scripts=True,
            username=user["username"],
            rp_id=server.passkeys.rp_id,
            csrf=csrf,
            enrol_token=token,
            error=error,
            passkey_action=ENROL_PATH,
            passkey_options=server.passkeys.registration_options(
                user, _binding(link["token_hash"]), server.now()
            ),
        )
        page.headers.append("Set-Cookie", cookie_header(CSRF_COOKIE, csrf, 900, same_site="Strict"))
        return page

    def show(self, request: Request) -> Response:
        """GET /enrol?token=...: the password and "Create a passkey", or a safe error page."""
        server = self.server
        if request.query_params.get("done") == "1":
            return render("enrol_link.html", done=True)
        evidence = Evidence(issuer=server.settings.issuer, request_id=current_request_id())
        if not server.passkeys.available:
            return error_page("invalid_request", "Passkeys cannot be used here.")
        token = request.query_params.get("token", "")
        found = self._live_link(token, server.now())
        if found is None:
            return self._refuse(evidence, Rule.ISSUE_13_C4_ENROLMENT_LINK)
        return self._page(token, *found, new_secret_token())

    def enrol(self, request: Request, form: Form) -> Response:
        """POST /enrol: the account's password and a WebAuthn 7.1 registration, then the link is spent."""
        server, now = self.server, self.server.now()
        evidence = Evidence(issuer=server.settings.issuer, request_id=current_request_id())
        cookie_csrf = request.cookies.get(CSRF_COOKIE, "")
        if not cookie_csrf or not hmac.compare_digest(cookie_csrf.encode(), form.get("csrf", "").encode()):
            return error_page("invalid_request", "The form has expired; open the link again.")
        if not server.passkeys.available:
            return error_page("invalid_request", "Passkeys cannot be used here.")
        token = form.get("token", "")
        found = self._live_link(token, now)
        if found is None:
            return self._refuse(evidence, Rule.ISSUE_13_C4_ENROLMENT_LINK)
        link, user = found
        evidence.user_id = user["id"]
        attempt = server.sign_ins.password(  # throttled and bounded like every sign-in (C1, B3)
            user["username"], form.get("password", ""), server.sign_ins.source(request), now
        )
        refused = unchecked(attempt, now)
        if refused:
            status, message, retry = refused
            page = self._page(token, link, user, cookie_csrf, status=status, error=message)
            page.headers["Retry-After"] = retry
            return page
        signed = attempt.user
        if signed is None or signed["id"] != user["id"]:
            evidence.detail = attempt.detail
            server.audit.append(
                evidence, Event.PASSKEY, Outcome.REFUSED, now, rule=Rule.CREDENTIALS, error="access_denied"
            )
            return self._page(token, link, user, cookie_csrf, status=400, error="Wrong password.")
        try:
            passkey = server.passkeys.verify_registration(
                form.get("credential", ""), user, _binding(link["token_hash"]), now
            )
        except PasskeyRefused as refusal:
            evidence.detail = {"reason": refusal.reason, "via": "enrolment_link"}
            server.audit.append(
                evidence, Event.PASSKEY, Outcome.REFUSED, now, rule=refusal.rule, error="invalid_request"
            )
            return self._page(token, link, user, cookie_csrf, status=400, error=refusal.message)
        stored = server.store.users.add_passkey_with_link(link["token_hash"], now, **passkey)
        if stored is None:  # spent or expired since _live_link looked: a racing post won
            return self._refuse(evidence, Rule.ISSUE_13_C4_ENROLMENT_LINK_USED)
        if stored is False:
            evidence.detail = {"reason": "credential already registered", "via": "enrolment_link"}
            server.audit.append(
                evidence,
                Event.PASSKEY,
                Outcome.REFUSED,
                now,
                rule=Rule.WEBAUTHN_7_1_STEP_25,
                error="invalid_request",
            )
            return self._page(
                token, link, user, cookie_csrf, status=400, error="This passkey is already registered."
            )
        evidence.detail = {
            "credential_id": passkey["credential_id"],
            "aaguid": passkey["aaguid"],
            "backed_up": passkey["backed_up"],
            "via": "enrolment_link",
            "link_created_at": link["created_at"],
        }
        server.audit.append(evidence, Event.PASSKEY, Outcome.ENROLLED, now)
        response = redirect_303(f"{ENROL_PATH}?done=1")  # FAPI2 5.3.2.2-10: 303 after a credential POST
        response.headers.append("Set-Cookie", cookie_header(CSRF_COOKIE, "", 0, same_site="Strict"))
        return response

    # -- ASGI entry points ---------------------------------------------------------------------

    async def get(self, request: Request) -> Response:
        return await run_in_threadpool(self.show, request)

    async def post(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except OAuthError as error:
            return error_page(error.error, error.description)
        return await run_in_threadpool(self.enrol, request, form)
