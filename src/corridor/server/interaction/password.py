"""Password sign-in during an interaction (server/signin.py checks and throttles it)."""

from __future__ import annotations

from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.core.rules import Rule
from corridor.server.forms import Form
from corridor.server.interaction import storage
from corridor.server.interaction.browser import SESSION_COOKIE, cookie_header
from corridor.server.interaction.contract import AMR
from corridor.server.interaction.visit import Visit
from corridor.server.pages import render
from corridor.server.responses import redirect_303
from corridor.server.signin import unchecked

#: The level a password gives (design.md 5b: password < mfa < passkey).
PASSWORD_ACR = "password"


def login_page(visit: Visit, status: int = 200, error: str | None = None) -> Response:
    """The password form and, where WebAuthn can work, "Sign in with a passkey"."""
    passkeys = visit.server.passkeys
    return render(
        "login.html",
        status=status,
        scripts=passkeys.available,
        client_name=visit.client.name,
        csrf=visit.interaction["csrf"],
        action=f"{visit.path}/login",
        error=error,
        passkey_action=f"{visit.path}/passkey",
        passkey_options=passkeys.authentication_options(visit.interaction_id, visit.server.now())
        if passkeys.available
        else None,
    )


def sign_in(visit: Visit, form: Form) -> Response:
    """POST: NIST SP 800-63B 5.1.1 a memorized secret, counted before it is checked (issue 13 C1)."""
    server, now = visit.server, visit.server.now()
    visit.check_csrf(form)
    evidence = visit.evidence()
    attempt = server.sign_ins.password(
        form.get("username", ""), form.get("password", ""), server.sign_ins.source(visit.request), now
    )
    user = attempt.user
    if user is None:
        refused = unchecked(attempt, now)
        if refused:  # issue 13 C1, B3: waiting, or no hashing slot free: no password checked
            status, message, retry = refused
            page = login_page(visit, status, message)
            page.headers["Retry-After"] = retry
            return page
        evidence.user_id, evidence.detail = attempt.user_id, attempt.detail
        server.audit.append(
            evidence, Event.LOGIN, Outcome.REFUSED, now, rule=Rule.CREDENTIALS, error="access_denied"
        )
        return login_page(visit, status=400, error="Wrong user name or password.")
    secret, lifetime = storage.start_session(server, user["id"], PASSWORD_ACR, now)
    evidence.user_id = user["id"]
    evidence.detail = {
        "acr": PASSWORD_ACR,
        "amr": list(AMR[PASSWORD_ACR]),  # issue 16: RFC 8176 methods, recorded with the sign-in
        "factor": "password",
        "interaction": visit.interaction_id,
        "par": visit.pushed.ref_hash,
    }
    server.audit.append(evidence, Event.LOGIN, Outcome.SUCCEEDED, now)
    # FAPI2 5.3.2.2-10: 303 after a POST carrying credentials, never 307. With "Add a passkey
    # after signing in" ticked, on to the enrolment page (a second factor first if the account has one).
    return redirect_303(
        visit.next_page(form), headers={"Set-Cookie": cookie_header(SESSION_COOKIE, secret, lifetime)}
    )
