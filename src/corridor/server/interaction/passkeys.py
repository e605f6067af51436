"""Passkeys during an interaction (WebAuthn, server/passkeys.py): sign-in, step-up and enrolment."""

from __future__ import annotations

from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.core.rules import Rule
from corridor.server.forms import Form
from corridor.server.interaction import storage
from corridor.server.interaction.browser import SESSION_COOKIE, cookie_header
from corridor.server.interaction.contract import AMR
from corridor.server.interaction.password import login_page
from corridor.server.interaction.second_factor import (
    TOTP_ACR,
    factors,
    second_factor_again,
    second_factor_page,
)
from corridor.server.interaction.visit import Visit
from corridor.server.pages import render
from corridor.server.passkeys import PASSKEY_ACR, PasskeyRefused
from corridor.server.responses import redirect_303
from corridor.store.sql import Row

DISABLED = "This account is disabled. Ask your administrator."
ASK_FOR_A_LINK = "Your first passkey is added with an enrolment link from your administrator."


def sign_in(visit: Visit, form: Form) -> Response:
    """POST: a passkey assertion signs in from the login page, or raises a signed-in session to
    ``passkey`` when the passkey is that user's (RFC 9470 step-up)."""
    server, now = visit.server, visit.server.now()
    visit.check_csrf(form)
    session = visit.session()
    evidence = visit.evidence()
    user_id = session["user_id"] if session else None
    if not server.passkeys.available:
        raise visit.refuse(
            evidence, Event.LOGIN, "invalid_request", "Passkeys cannot be used here.", Rule.WEBAUTHN_5_1_4_1
        )
    try:
        assertion = server.passkeys.authenticate(
            form.get("credential", ""), visit.interaction_id, now, user_id
        )
    except PasskeyRefused as refusal:
        evidence.user_id = user_id
        evidence.detail = {"factor": "passkey", "reason": refusal.reason, "interaction": visit.interaction_id}
        server.audit.append(
            evidence, Event.LOGIN, Outcome.REFUSED, now, rule=refusal.rule, error="access_denied"
        )
        if session is None:
            return login_page(visit, status=400, error=refusal.message)
        user = storage.find_user(server, session["user_id"])
        return second_factor_again(visit, user, form, refusal.message)
    passkey = assertion.passkey
    evidence.user_id = passkey["user_id"]
    owner = storage.find_user(server, passkey["user_id"])
    if owner is None or owner.get("disabled_at") is not None:
        # Issue 18: a disabled account signs in with no factor. The answer may say so: only the
        # holder of the account's passkey gets this far, so it tells a stranger nothing.
        evidence.detail = {"factor": "passkey", "reason": "disabled", "interaction": visit.interaction_id}
        rule = Rule.ISSUE_18_ACCOUNT_DISABLED
        server.audit.append(evidence, Event.LOGIN, Outcome.REFUSED, now, rule=rule, error="access_denied")
        return login_page(visit, status=403, error=DISABLED)
    evidence.detail = {
        "acr": PASSKEY_ACR,
        "amr": list(AMR[PASSKEY_ACR]),  # issue 16: RFC 8176 methods, recorded with the sign-in
        "factor": "passkey",
        "credential_id": passkey["credential_id"],
        "aaguid": passkey["aaguid"],
        "sign_count": assertion.sign_count,
        "backed_up": assertion.backed_up,
        "interaction": visit.interaction_id,
        "par": visit.pushed.ref_hash,
    }
    headers = {}
    if session is None:
        secret, lifetime = storage.start_session(server, passkey["user_id"], PASSKEY_ACR, now)
        headers["Set-Cookie"] = cookie_header(SESSION_COOKIE, secret, lifetime)
    else:
        storage.raise_session(server, visit.session_cookie(), PASSKEY_ACR, now)
    server.audit.append(evidence, Event.LOGIN, Outcome.SUCCEEDED, now)
    return redirect_303(visit.next_page(form), headers=headers)


# -- enrolment: a new passkey for the signed-in user ------------------------------------------------


def has_strong_factor(visit: Visit, user: Row) -> bool:
    return bool(user.get("totp_secret")) or storage.has_passkeys(visit.server, user["id"])


def may_enrol(visit: Visit, user: Row, session: Row) -> bool:
    """A passkey is the strongest factor, so adding one takes the strongest proof the account
    already has (NIST SP 800-63B 6.1.2.1: binding a new authenticator needs the existing one).
    An account with only a password adds its first one here only with
    ``self_service_enrolment`` (issue 13 C4); otherwise through an operator's enrolment link
    (server/enrolment.py), so a password alone never reaches acr ``passkey``."""
    settings = visit.server.settings
    if settings.acr.reaches(session["acr"], TOTP_ACR):
        return True
    return bool(settings.self_service_enrolment) and not has_strong_factor(visit, user)


def may_offer_enrolment(visit: Visit, user: Row) -> bool:
    """Whether "Add a passkey" leads anywhere for this user (issue 13 C4)."""
    return visit.server.passkeys.available and (
        bool(visit.server.settings.self_service_enrolment) or has_strong_factor(visit, user)
    )


def enrol_page(
    visit: Visit, user: Row, status: int = 200, error: str | None = None, ceremony: bool = True
) -> Response:
    """The "Create a passkey" page; without ``ceremony`` only why not (issue 13 C4)."""
    passkeys = visit.server.passkeys
    return render(
        "passkey_enrol.html",
        status=status,
        scripts=ceremony,
        client_name=visit.client.name,
        username=user["username"],
        rp_id=passkeys.rp_id,
        csrf=visit.interaction["csrf"],
        error=error,
        passkey_action=f"{visit.path}/passkey-enrol",
        passkey_options=passkeys.registration_options(user, visit.interaction_id, visit.server.now())
        if ceremony
        else None,
        back=visit.path,
    )


def _signed_in(visit: Visit) -> tuple[Row | None, Row | None]:
    session = visit.session()
    user = storage.find_user(visit.server, session["user_id"]) if session else None
    return session, user


def show_enrolment(visit: Visit) -> Response:
    """GET: the "Create a passkey" page, after a second factor if the account has one."""
    session, user = _signed_in(visit)
    if session is None or user is None or not visit.server.passkeys.available:
        return redirect_303(visit.path)
    if not may_enrol(visit, user, session) and not has_strong_factor(visit, user):
        return enrol_page(visit, user, status=403, error=ASK_FOR_A_LINK, ceremony=False)
    if not may_enrol(visit, user, session):
        return second_factor_page(visit, user, factors(visit, user, TOTP_ACR), then="enrol")
    return enrol_page(visit, user)


def enrol(visit: Visit, form: Form) -> Response:
    """POST: WebAuthn 7.1, a new passkey for the signed-in user. The session's level is not
    raised: the passkey proves itself when it is next used."""
    server, now = visit.server, visit.server.now()
    session, user = _signed_in(visit)
    visit.check_csrf(form)
    if session is None or user is None or not server.passkeys.available:
        return redirect_303(visit.path)
    evidence = visit.evidence()
    evidence.user_id = user["id"]
    if not may_enrol(visit, user, session) and not has_strong_factor(visit, user):
        raise visit.refuse(
            evidence,
            Event.PASSKEY,
            "access_denied",
            ASK_FOR_A_LINK,
            Rule.ISSUE_13_C4_SELF_SERVICE_ENROLMENT_OFF,
        )
    if not may_enrol(visit, user, session):
        raise visit.refuse(
            evidence,
            Event.PASSKEY,
            "access_denied",
            "Confirm it is you with your second factor before adding a passkey.",
            "NIST SP 800-63B 6.1.2.1",
        )
    try:
        passkey = server.passkeys.register(form.get("credential", ""), user, visit.interaction_id, now)
    except PasskeyRefused as refusal:
        evidence.detail = {"reason": refusal.reason, "interaction": visit.interaction_id}
        server.audit.append(
            evidence, Event.PASSKEY, Outcome.REFUSED, now, rule=refusal.rule, error="invalid_request"
        )
        return enrol_page(visit, user, status=400, error=refusal.message)
    evidence.detail = {
        "credential_id": passkey["credential_id"],
        "aaguid": passkey["aaguid"],
        "backed_up": passkey["backed_up"],
        "session_acr": session["acr"],
        "interaction": visit.interaction_id,
        "par": visit.pushed.ref_hash,
    }
    server.audit.append(evidence, Event.PASSKEY, Outcome.ENROLLED, now)
    return redirect_303(visit.path)
