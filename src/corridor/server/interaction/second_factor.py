"""The second factor: a step-up when the request asks for more than the session has
(RFC 9470, OIDC Core 3.1.2.1), with a TOTP code (RFC 6238) or a passkey."""

from __future__ import annotations

from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.server.forms import Form
from corridor.server.interaction import storage
from corridor.server.interaction.contract import AMR
from corridor.server.interaction.visit import Visit
from corridor.server.pages import render
from corridor.server.passkeys import PASSKEY_ACR
from corridor.server.responses import redirect_303
from corridor.server.signin import retry_after, waiting_message
from corridor.store.sql import Row

#: What the second-factor page says while the user's codes wait (issue 13 C2).
WRONG_CODES = "Too many wrong codes"
#: The level a TOTP second factor gives (design.md 5b: password < mfa < passkey).
TOTP_ACR = "mfa"


def required_acr(visit: Visit) -> str | None:
    """The weakest of the requested ``acr_values`` this AS knows (any of them satisfies)."""
    return visit.server.settings.acr.weakest(visit.pushed.acr_values)


def factors(visit: Visit, user: Row | None, required: str) -> list[str]:
    """The user's second factors that reach ``required``: a passkey gives ``passkey``, a
    TOTP code ``mfa`` (design.md 5b orders the levels)."""
    server, levels = visit.server, visit.server.settings.acr
    found: list[str] = []
    if user is None:
        return found
    if (
        levels.reaches(PASSKEY_ACR, required)
        and server.passkeys.available
        and storage.has_passkeys(server, user["id"])
    ):
        found.append("passkey")
    if levels.reaches(TOTP_ACR, required) and user.get("totp_secret"):
        found.append("totp")
    return found


def factors_due(visit: Visit, session: Row, user: Row | None) -> list[str]:
    """The factors to offer when the request asks for more than the session has. With none
    that reach it the request goes on at the session's level (acr_values are voluntary,
    OIDC Core 3.1.2.1): the token's ``acr`` tells the resource server the truth."""
    required = required_acr(visit)
    if required is None or visit.server.settings.acr.reaches(session["acr"], required):
        return []
    return factors(visit, user, required)


def second_factor_page(
    visit: Visit,
    user: Row | None,
    offered: list[str],
    status: int = 200,
    error: str | None = None,
    then: str | None = None,
) -> Response:
    """The factors that reach the level asked for; ``then="enrol"`` returns to adding a passkey."""
    server = visit.server
    level = TOTP_ACR if then else required_acr(visit) or TOTP_ACR
    if error is None and "totp" in offered and user is not None:
        waiting = server.sign_ins.second_factor_waiting(user["id"], server.now())
        error = waiting_message(waiting, WRONG_CODES) if waiting else None
    passkey_options = None
    if "passkey" in offered and user is not None:
        passkey_options = server.passkeys.authentication_options(
            visit.interaction_id, server.now(), user["id"]
        )
    return render(
        "second_factor.html",
        status=status,
        scripts=passkey_options is not None,
        client_name=visit.client.name,
        level=level,
        csrf=visit.interaction["csrf"],
        action=f"{visit.path}/second-factor",
        error=error,
        totp="totp" in offered,
        then=then,
        passkey_action=f"{visit.path}/passkey",
        passkey_options=passkey_options,
    )


def second_factor_again(
    visit: Visit, user: Row | None, form: Form, error: str, status: int = 400
) -> Response:
    """The second-factor page once more (400), for the same purpose as the failed attempt."""
    then = "enrol" if form.get("then") == "enrol" else None
    required = TOTP_ACR if then else required_acr(visit) or TOTP_ACR
    return second_factor_page(
        visit, user, factors(visit, user, required), status=status, error=error, then=then
    )


def check_code(visit: Visit, form: Form) -> Response:
    """POST: RFC 6238 TOTP (server/signin.py): counted per user, one step either side, each code once."""
    server, now = visit.server, visit.server.now()
    visit.check_csrf(form)
    session = visit.session()
    if session is None:
        return redirect_303(visit.path)
    evidence = visit.evidence()
    evidence.user_id = session["user_id"]
    user = storage.find_user(server, session["user_id"])
    check = server.sign_ins.totp(user, form.get("code", ""), now)
    evidence.detail = check.detail
    if not check.ok:
        if check.waiting_until:  # not recorded one by one: the failure that began the wait was
            page = second_factor_again(
                visit, user, form, waiting_message(check.waiting_until, WRONG_CODES), status=429
            )
            page.headers["Retry-After"] = retry_after(check.waiting_until, now)
            return page
        server.audit.append(
            evidence, Event.LOGIN, Outcome.REFUSED, now, rule=check.rule, error="access_denied"
        )
        return second_factor_again(visit, user, form, "That code is not right (or was already used).")
    if not server.settings.acr.reaches(session["acr"], TOTP_ACR):  # never lowers a passkey session
        storage.raise_session(server, visit.session_cookie(), TOTP_ACR, now)
    evidence.detail = {
        "acr": TOTP_ACR,
        "amr": list(AMR[TOTP_ACR]),  # issue 16: RFC 8176 methods, recorded with the sign-in
        "factor": "totp",
        "interaction": visit.interaction_id,
        "par": visit.pushed.ref_hash,
    }
    server.audit.append(evidence, Event.LOGIN, Outcome.SUCCEEDED, now)
    return redirect_303(visit.next_page(form))
