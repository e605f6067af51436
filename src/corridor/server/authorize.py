# Why over 450 lines: not split yet; issue 15 item 1 moves sign-in, second factor,
# passkeys and consent to server/interaction/ (work in progress on branch interaction, see wip/issue-15).
"""The authorization endpoint and its login and consent pages.

FAPI2 5.3.2.2-3: only pushed requests (``client_id`` + ``request_uri``); any other front-channel
parameter is ignored, never used or echoed (RFC 9101 5, RFC 9126 4, FAPI issue 340).
FAPI2 5.3.2.2-7: ``iss`` on every authorization response, success or error.
FAPI2 5.3.2.2-10/11: 303 after every form POST. RFC 9126 Note 3: the request_uri is
consumed when the authorization completes, not when the page loads.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.audit.log import Evidence
from corridor.core.errors import OAuthError
from corridor.core.randomness import new_id, new_secret_token, token_hash
from corridor.core.text import escape_controls
from corridor.server.authority import AuthorizationServer
from corridor.server.checks.identifiers import malformed_authorization_identifiers
from corridor.server.clients import ClientRecord
from corridor.server.forms import MAX_FIELDS, Form, read_form
from corridor.server.pages import error_page, render, template_version
from corridor.server.par import REQUEST_URI_PREFIX
from corridor.server.passkeys import PASSKEY_ACR, PasskeyRefused
from corridor.server.responses import authorization_response, redirect_303, source_address
from corridor.server.signin import retry_after, unchecked, waiting_message
from corridor.store.sql import Row, Store

SESSION_COOKIE = "__Host-corridor-session"
#: What the second-factor page says while the user's codes wait (issue 13 C2).
WRONG_CODES = "Too many wrong codes"
#: The level a TOTP second factor gives (design.md 5b: password < mfa < passkey).
TOTP_ACR = "mfa"
_INTERACTION_ID = re.compile(r"[0-9a-f]{32}")
_ASK_FOR_A_LINK = "Your first passkey is added with an enrolment link from your administrator."
#: The only front-channel parameters read beside a pushed request (RFC 9126 4, AS23).
FRONT_CHANNEL = frozenset({"client_id", "request_uri"})
#: How much of an ignored parameter's name the evidence record keeps (design.md 5c: bounded input).
IGNORED_NAME_LENGTH = 64


def cookie_header(name: str, value: str, max_age: int, same_site: str = "Lax") -> str:
    """A __Host- cookie: Secure, HttpOnly, Path=/, no Domain."""
    return f"{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={max_age}"


@dataclass(frozen=True)
class FrontChannel:
    """What GET /authorize reads: ``client_id`` and ``request_uri``, and the names of the rest."""

    client_id: str | None
    request_uri: str | None
    ignored: list[str]


def _evidence_name(name: str) -> str:
    """Issue 13 A1 / design.md 5c: an outside parameter's name for the evidence record, bounded
    and with control and formatting characters escaped (the value is never kept)."""
    return escape_controls(name)[:IGNORED_NAME_LENGTH]


def read_front_channel(raw_query: str) -> FrontChannel:
    """RFC 9126 4 / RFC 9101 5 (FAPI issue 340, AS23): ``client_id`` and ``request_uri`` once each
    (RFC 6749 3.1); every other parameter is ignored, whatever its value, and named in the record.

    Values are decoded leniently (an ignored value with invalid UTF-8 is still ignored; a used one
    with invalid UTF-8 matches no client and no pushed request)."""
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="replace", max_num_fields=MAX_FIELDS)
    except ValueError as exc:
        raise OAuthError("invalid_request", "the parameters cannot be parsed", rule="RFC 6749 3.1") from exc
    used: dict[str, str] = {}
    ignored: set[str] = set()
    for name, value in pairs:
        if name not in FRONT_CHANNEL:
            ignored.add(_evidence_name(name))
        elif name in used:
            raise OAuthError("invalid_request", f"parameter {name!r} is repeated", rule="RFC 6749 3.1")
        else:
            used[name] = value
    return FrontChannel(used.get("client_id") or None, used.get("request_uri") or None, sorted(ignored))


def _interaction_cookie(interaction_id: str) -> str:
    return f"__Host-ia-{interaction_id}"


class Refusal(Exception):
    """Ends a browser request with an error page or an error redirect."""

    def __init__(self, response: Response) -> None:
        self.response = response


class AuthorizationPages:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server

    # -- helpers ------------------------------------------------------------------------

    def _evidence(self, pushed: Row | None = None) -> Evidence:
        evidence = Evidence(issuer=self.server.settings.issuer, request_id=new_id())
        if pushed is not None:
            params = json.loads(pushed["parameters"])
            evidence.client_id = pushed["client_id"]
            evidence.redirect_uri = params.get("redirect_uri")
            evidence.scope = params.get("scope")
            evidence.authorization_details = params.get("authorization_details")
            evidence.resource = params.get("resources") or None
            if pushed["dpop_jkt"]:
                evidence.sender_constraint, evidence.key_thumbprint = "dpop", pushed["dpop_jkt"]
        return evidence

    def _refuse_page(
        self,
        evidence: Evidence,
        event: str,
        error: str,
        description: str,
        rule: str,
        source: str | None = None,
    ) -> Refusal:
        """``source``: the peer of a request that matched no pushed request yet (issue 13 B4 samples)."""
        self.server.audit.append(
            evidence,
            event,
            Outcome.REFUSED,
            self.server.now(),
            rule=rule,
            error=error,
            unauthenticated_source=source,
        )
        return Refusal(error_page(error, description))

    @staticmethod
    def _end_interaction(interaction_id: str, refusal: Refusal) -> Refusal:
        """An interaction that is over (completed, or its pushed request gone) takes its cookie
        with it, so a browser that loses many races does not carry their cookies past the 16 KiB
        cap on a request head (issue 13 B1)."""
        refusal.response.headers.append(
            "Set-Cookie", cookie_header(_interaction_cookie(interaction_id), "", 0)
        )
        return refusal

    def _refuse_redirect(
        self,
        evidence: Evidence,
        pushed_params: dict[str, Any],
        error: str,
        description: str,
        rule: str,
        event: Event = Event.AUTHORIZE,
    ) -> Refusal:
        """RFC 6749 4.1.2.1 + RFC 9207: an error redirect, only to a pushed, verified redirect_uri."""
        self.server.audit.append(evidence, event, Outcome.REFUSED, self.server.now(), rule=rule, error=error)
        params = {"error": error, "error_description": description}
        if "state" in pushed_params:
            params["state"] = pushed_params["state"]
        params["iss"] = self.server.settings.issuer
        return Refusal(authorization_response(pushed_params["redirect_uri"], params))

    # -- GET /authorize -------------------------------------------------------------------

    def authorize(self, query: FrontChannel, source: str | None = None) -> Response:
        """RFC 9126 4: the pushed request named by ``request_uri``, for ``client_id``; nothing
        else from the front channel is used or echoed (RFC 9101 5, AS23)."""
        server, now = self.server, self.server.now()
        evidence = self._evidence()
        client_id, request_uri = query.client_id, query.request_uri
        if malformed_authorization_identifiers(client_id, request_uri):
            raise self._refuse_page(
                evidence,
                Event.AUTHORIZE,
                "invalid_request",
                "Malformed client_id or request_uri.",
                "issue 13 B8",
                source,
            )
        evidence.client_id = client_id
        ignored = {"ignored_parameters": query.ignored} if query.ignored else {}
        evidence.detail = dict(ignored)
        if not request_uri:
            raise self._refuse_page(
                evidence,
                Event.AUTHORIZE,
                "invalid_request",
                "Authorization requests must be pushed first (PAR).",
                "FAPI2 5.3.2.2-3",
                source,
            )
        if not client_id or server.clients.get(client_id) is None:
            raise self._refuse_page(
                evidence, Event.AUTHORIZE, "invalid_request", "Unknown client.", "RFC 9126 4", source
            )
        pushed = None
        if request_uri.startswith(REQUEST_URI_PREFIX):
            pushed = server.store.get_pushed_request(token_hash(request_uri[len(REQUEST_URI_PREFIX) :]))
        if pushed is None or pushed["client_id"] != client_id:
            raise self._refuse_page(
                evidence,
                Event.AUTHORIZE,
                "invalid_request_uri",
                "The request_uri is unknown.",
                "RFC 9126 4",
                source,
            )
        evidence = self._evidence(pushed)
        evidence.detail = {**ignored, "par": pushed["ref_hash"]}
        if pushed["consumed_at"] is not None:
            raise self._refuse_page(
                evidence,
                Event.AUTHORIZE,
                "invalid_request_uri",
                "The request_uri was already used.",
                "FAPI2 5.3.2.2-12",
            )
        if now >= pushed["expires_at"]:
            raise self._refuse_page(
                evidence,
                Event.AUTHORIZE,
                "invalid_request_uri",
                "The request_uri has expired.",
                "FAPI2 5.3.2.2-12",
            )
        params = json.loads(pushed["parameters"])
        if "none" in params.get("prompt", "").split():
            raise self._refuse_redirect(
                evidence,
                params,
                "consent_required",
                "this server always asks for consent",
                "OIDC Core 3.1.2.6",
            )
        interaction_id, secret, csrf = new_id(), new_secret_token(), new_secret_token()
        lifetime = server.settings.interaction_lifetime
        server.store.save_interaction(
            interaction_id, token_hash(secret), pushed["ref_hash"], csrf, now, now + lifetime
        )
        if ignored:
            # Issue 13 A1: what the front channel carried beside the pushed request, by name only.
            evidence.detail["interaction"] = interaction_id
            server.audit.append(evidence, Event.AUTHORIZE, Outcome.ACCEPTED, now, rule="RFC 9126 4")
        return redirect_303(
            f"/interaction/{interaction_id}",
            headers={"Set-Cookie": cookie_header(_interaction_cookie(interaction_id), secret, lifetime)},
        )

    # -- the interaction -------------------------------------------------------------------

    def _load(self, request: Request, interaction_id: str) -> tuple[Row, Row, dict[str, Any]]:
        server, now = self.server, self.server.now()
        interaction = (
            server.store.get_interaction(interaction_id)
            if _INTERACTION_ID.fullmatch(interaction_id)
            else None
        )
        secret = request.cookies.get(_interaction_cookie(interaction_id), "")
        if (
            interaction is None
            or now >= interaction["expires_at"]
            or not hmac.compare_digest(token_hash(secret), interaction["secret_hash"])
        ):
            raise self._refuse_page(
                self._evidence(),
                Event.INTERACTION,
                "invalid_request",
                "This sign-in page has expired or belongs to another browser.",
                "RFC 9700 4.4",
                source_address(request),
            )
        pushed = server.store.get_pushed_request(interaction["ref_hash"])
        if pushed is None:  # issue 13 B6: purged once it expired (Store.purge_expired)
            raise self._end_interaction(
                interaction_id,
                self._refuse_page(
                    self._evidence(),
                    Event.INTERACTION,
                    "invalid_request_uri",
                    "This authorization request has expired; start again from the application.",
                    "FAPI2 5.3.2.2-12",
                ),
            )
        if pushed["consumed_at"] is not None:
            raise self._end_interaction(
                interaction_id,
                self._refuse_page(
                    self._evidence(pushed),
                    Event.INTERACTION,
                    "invalid_request_uri",
                    "This authorization request was already completed.",
                    "FAPI2 5.3.2.2-12",
                ),
            )
        self._check_pushed_request_alive(pushed, interaction, now)
        self._client(pushed, interaction)
        return interaction, pushed, json.loads(pushed["parameters"])

    def _client(self, pushed: Row, interaction: Row) -> ClientRecord:
        """RFC 6749 4.1.2.1 (issue 13 B6): a client removed during the interaction gets no page
        naming it, no code and no redirect."""
        client = self.server.clients.get(pushed["client_id"])
        if client is None:
            evidence = self._evidence(pushed)
            evidence.detail = {"interaction": interaction["id"], "par": pushed["ref_hash"]}
            raise self._refuse_page(
                evidence,
                Event.INTERACTION,
                "invalid_request",
                "The application is no longer registered here.",
                "RFC 6749 4.1.2.1",
            )
        return client

    def _check_pushed_request_alive(self, pushed: Row, interaction: Row, now: float) -> None:
        """FAPI2 5.3.2.2-12 / RFC 9126 2.2 (issue 13 D5): an interaction outlives its pushed
        request, which gives nothing after ``expires_in``; the consume checks it again atomically.

        An error page, not an error redirect: the request has ended, so neither its redirect_uri
        nor its state is acted on any more (as at GET /authorize for an expired request_uri)."""
        if now >= pushed["expires_at"]:
            evidence = self._evidence(pushed)
            evidence.detail = {"interaction": interaction["id"], "par": pushed["ref_hash"]}
            raise self._refuse_page(
                evidence,
                Event.INTERACTION,
                "invalid_request_uri",
                "This authorization request has expired; start again from the application.",
                "FAPI2 5.3.2.2-12",
            )

    def _session(self, request: Request, interaction: Row, params: dict[str, Any]) -> Row | None:
        """The browser's session, if it may be used for this request: live, of a user who still
        exists (issue 13 B6), and fresh enough for ``prompt=login`` and ``max_age``."""
        now = self.server.now()
        value = request.cookies.get(SESSION_COOKIE)
        session = self.server.store.get_browser_session(token_hash(value)) if value else None
        if session is None or now >= session["expires_at"]:
            return None
        if self.server.store.get_user(session["user_id"]) is None:
            return None
        signed_in_here = session["auth_time"] >= interaction["created_at"]
        if "login" in params.get("prompt", "").split() and not signed_in_here:
            return None
        if not self._within_max_age(params, session, signed_in_here, now):
            return None
        return session

    @staticmethod
    def _within_max_age(params: dict[str, Any], session: Row, signed_in_here: bool, now: float) -> bool:
        """OIDC Core 3.1.2.1: older than ``max_age`` means sign in again; a sign-in during this
        interaction is that fresh sign-in (so ``max_age=0`` completes, issue 13 B6)."""
        max_age = params.get("max_age")
        return max_age is None or signed_in_here or now - session["auth_time"] <= int(max_age)

    def _check_csrf(self, form: Form, interaction: Row, pushed: Row) -> None:
        if not hmac.compare_digest(form.get("csrf", "").encode(), interaction["csrf"].encode()):
            raise self._refuse_page(
                self._evidence(pushed),
                Event.INTERACTION,
                "invalid_request",
                "The form has expired; start again.",
                "CSRF",
            )

    def show(self, request: Request, interaction_id: str) -> Response:
        interaction, pushed, params = self._load(request, interaction_id)
        session = self._session(request, interaction, params)
        client = self._client(pushed, interaction)
        if session is None:
            return self._login_page(interaction_id, interaction, client.name)
        user = self.server.store.get_user(session["user_id"])
        factors = self._second_factors_due(params, session, user)
        if factors:
            return self._second_factor_page(interaction_id, interaction, client.name, params, user, factors)
        return self._consent_page(interaction_id, interaction, pushed, params, session)

    def _login_page(
        self,
        interaction_id: str,
        interaction: Row,
        client_name: str,
        status: int = 200,
        error: str | None = None,
    ) -> Response:
        """The password form and, where WebAuthn can work, "Sign in with a passkey"."""
        passkeys = self.server.passkeys
        return render(
            "login.html",
            status=status,
            scripts=passkeys.available,
            client_name=client_name,
            csrf=interaction["csrf"],
            action=f"/interaction/{interaction_id}/login",
            error=error,
            passkey_action=f"/interaction/{interaction_id}/passkey",
            passkey_options=passkeys.authentication_options(interaction_id, self.server.now())
            if passkeys.available
            else None,
        )

    # -- step-up: a second factor when the request asks for more (RFC 9470, OIDC Core 3.1.2.1) --------

    def _required_acr(self, params: dict[str, Any]) -> str | None:
        """The weakest of the requested ``acr_values`` this AS knows (any of them satisfies)."""
        return self.server.settings.acr.weakest(str(params.get("acr_values") or "").split())

    def _factors(self, user: Row | None, required: str) -> list[str]:
        """The user's second factors that reach ``required``: a passkey gives ``passkey``, a
        TOTP code ``mfa`` (design.md 5b orders the levels)."""
        levels = self.server.settings.acr
        factors: list[str] = []
        if user is None:
            return factors
        if (
            levels.reaches(PASSKEY_ACR, required)
            and self.server.passkeys.available
            and self.server.store.user_passkeys(user["id"])
        ):
            factors.append("passkey")
        if levels.reaches(TOTP_ACR, required) and user.get("totp_secret"):
            factors.append("totp")
        return factors

    def _second_factors_due(self, params: dict[str, Any], session: Row, user: Row | None) -> list[str]:
        """The factors to offer when the request asks for more than the session has. With none
        that reach it the request goes on at the session's level (acr_values are voluntary,
        OIDC Core 3.1.2.1): the token's ``acr`` tells the resource server the truth."""
        required = self._required_acr(params)
        if required is None or self.server.settings.acr.reaches(session["acr"], required):
            return []
        return self._factors(user, required)

    def _second_factor_page(
        self,
        interaction_id: str,
        interaction: Row,
        client_name: str,
        params: dict[str, Any],
        user: Row | None,
        factors: list[str],
        status: int = 200,
        error: str | None = None,
        then: str | None = None,
    ) -> Response:
        """The factors that reach the level asked for; ``then="enrol"`` returns to adding a passkey."""
        level = TOTP_ACR if then else self._required_acr(params) or TOTP_ACR
        if error is None and "totp" in factors and user is not None:
            waiting = self.server.sign_ins.second_factor_waiting(user["id"], self.server.now())
            error = waiting_message(waiting, WRONG_CODES) if waiting else None
        passkey_options = None
        if "passkey" in factors and user is not None:
            passkey_options = self.server.passkeys.authentication_options(
                interaction_id, self.server.now(), user["id"]
            )
        return render(
            "second_factor.html",
            status=status,
            scripts=passkey_options is not None,
            client_name=client_name,
            level=level,
            csrf=interaction["csrf"],
            action=f"/interaction/{interaction_id}/second-factor",
            error=error,
            totp="totp" in factors,
            then=then,
            passkey_action=f"/interaction/{interaction_id}/passkey",
            passkey_options=passkey_options,
        )

    def _second_factor_again(
        self,
        interaction_id: str,
        interaction: Row,
        client_name: str,
        params: dict[str, Any],
        user: Row | None,
        form: Form,
        error: str,
        status: int = 400,
    ) -> Response:
        """The second-factor page once more (400), for the same purpose as the failed attempt."""
        then = "enrol" if form.get("then") == "enrol" else None
        required = TOTP_ACR if then else self._required_acr(params) or TOTP_ACR
        return self._second_factor_page(
            interaction_id,
            interaction,
            client_name,
            params,
            user,
            self._factors(user, required),
            status=status,
            error=error,
            then=then,
        )

    @staticmethod
    def _next(interaction_id: str, form: Form) -> str:
        """Where a passed second factor goes on to: the interaction, or back to adding a passkey."""
        if form.get("then") == "enrol":
            return f"/interaction/{interaction_id}/passkey-enrol"
        return f"/interaction/{interaction_id}"

    def second_factor(self, request: Request, interaction_id: str, form: Form) -> Response:
        """RFC 6238 TOTP (server/signin.py): counted per user, one step either side, each code once."""
        server, now = self.server, self.server.now()
        interaction, pushed, params = self._load(request, interaction_id)
        self._check_csrf(form, interaction, pushed)
        session = self._session(request, interaction, params)
        if session is None:
            return redirect_303(f"/interaction/{interaction_id}")
        evidence = self._evidence(pushed)
        evidence.user_id = session["user_id"]
        user = server.store.get_user(session["user_id"])
        session_hash = token_hash(request.cookies.get(SESSION_COOKIE, ""))
        check = server.sign_ins.totp(user, form.get("code", ""), now)
        ok, waiting_until, evidence.detail = check.ok, check.waiting_until, check.detail
        if not ok:
            client = server.clients.get(pushed["client_id"])
            again = functools.partial(
                self._second_factor_again,
                interaction_id,
                interaction,
                client.name if client else "",
                params,
                user,
                form,
            )
            if waiting_until:  # not recorded one by one: the failure that began the wait was
                page = again(waiting_message(waiting_until, WRONG_CODES), status=429)
                page.headers["Retry-After"] = retry_after(waiting_until, now)
                return page
            server.audit.append(
                evidence, Event.LOGIN, Outcome.REFUSED, now, rule=check.rule, error="access_denied"
            )
            return again("That code is not right (or was already used).")
        if not server.settings.acr.reaches(session["acr"], TOTP_ACR):  # never lowers a passkey session
            server.store.raise_browser_session(session_hash, TOTP_ACR, now)
        evidence.detail = {
            "acr": TOTP_ACR,
            "factor": "totp",
            "interaction": interaction_id,
            "par": pushed["ref_hash"],
        }
        server.audit.append(evidence, Event.LOGIN, Outcome.SUCCEEDED, now)
        return redirect_303(self._next(interaction_id, form))

    # -- passkeys (WebAuthn, server/passkeys.py): sign-in, step-up and enrolment ---------------

    def passkey(self, request: Request, interaction_id: str, form: Form) -> Response:
        """A passkey assertion: signs in from the login page, or raises a signed-in session to
        ``passkey`` when the passkey is that user's (RFC 9470 step-up)."""
        server, now = self.server, self.server.now()
        interaction, pushed, params = self._load(request, interaction_id)
        self._check_csrf(form, interaction, pushed)
        session = self._session(request, interaction, params)
        evidence = self._evidence(pushed)
        user_id = session["user_id"] if session else None
        client = server.clients.get(pushed["client_id"])
        client_name = client.name if client else ""
        if not server.passkeys.available:
            raise self._refuse_page(
                evidence, Event.LOGIN, "invalid_request", "Passkeys cannot be used here.", "WebAuthn 5.1.4.1"
            )
        try:
            assertion = server.passkeys.authenticate(form.get("credential", ""), interaction_id, now, user_id)
        except PasskeyRefused as refusal:
            evidence.user_id = user_id
            evidence.detail = {"factor": "passkey", "reason": refusal.reason, "interaction": interaction_id}
            server.audit.append(
                evidence, Event.LOGIN, Outcome.REFUSED, now, rule=refusal.rule, error="access_denied"
            )
            if session is None:
                return self._login_page(
                    interaction_id, interaction, client_name, status=400, error=refusal.message
                )
            user = server.store.get_user(session["user_id"])
            return self._second_factor_again(
                interaction_id, interaction, client_name, params, user, form, refusal.message
            )
        passkey = assertion.passkey
        evidence.user_id = passkey["user_id"]
        evidence.detail = {
            "acr": PASSKEY_ACR,
            "factor": "passkey",
            "credential_id": passkey["credential_id"],
            "aaguid": passkey["aaguid"],
            "sign_count": assertion.sign_count,
            "backed_up": assertion.backed_up,
            "interaction": interaction_id,
            "par": pushed["ref_hash"],
        }
        headers = {}
        if session is None:
            secret, lifetime = new_secret_token(), server.settings.session_lifetime
            server.store.save_browser_session(
                token_hash(secret), passkey["user_id"], now, PASSKEY_ACR, now + lifetime
            )
            headers["Set-Cookie"] = cookie_header(SESSION_COOKIE, secret, lifetime)
        else:
            server.store.raise_browser_session(
                token_hash(request.cookies.get(SESSION_COOKIE, "")), PASSKEY_ACR, now
            )
        server.audit.append(evidence, Event.LOGIN, Outcome.SUCCEEDED, now)
        return redirect_303(self._next(interaction_id, form), headers=headers)

    def _has_strong_factor(self, user: Row) -> bool:
        return bool(user.get("totp_secret")) or bool(self.server.store.user_passkeys(user["id"]))

    def _may_enrol(self, user: Row, session: Row) -> bool:
        """A passkey is the strongest factor, so adding one takes the strongest proof the account
        already has (NIST SP 800-63B 6.1.2.1: binding a new authenticator needs the existing one).
        An account with only a password adds its first one here only with
        ``self_service_enrolment`` (issue 13 C4); otherwise through an operator's enrolment link
        (server/enrolment.py), so a password alone never reaches acr ``passkey``."""
        if self.server.settings.acr.reaches(session["acr"], TOTP_ACR):
            return True
        return bool(self.server.settings.self_service_enrolment) and not self._has_strong_factor(user)

    def _may_offer_enrolment(self, user: Row) -> bool:
        """Whether "Add a passkey" leads anywhere for this user (issue 13 C4)."""
        return self.server.passkeys.available and (
            bool(self.server.settings.self_service_enrolment) or self._has_strong_factor(user)
        )

    def _enrol_page(
        self,
        interaction_id: str,
        interaction: Row,
        client_name: str,
        user: Row,
        status: int = 200,
        error: str | None = None,
        ceremony: bool = True,
    ) -> Response:
        """The "Create a passkey" page; without ``ceremony`` only why not (issue 13 C4)."""
        passkeys = self.server.passkeys
        return render(
            "passkey_enrol.html",
            status=status,
            scripts=ceremony,
            client_name=client_name,
            username=user["username"],
            rp_id=passkeys.rp_id,
            csrf=interaction["csrf"],
            error=error,
            passkey_action=f"/interaction/{interaction_id}/passkey-enrol",
            passkey_options=passkeys.registration_options(user, interaction_id, self.server.now())
            if ceremony
            else None,
            back=f"/interaction/{interaction_id}",
        )

    def _enrolment(
        self, request: Request, interaction_id: str
    ) -> tuple[Row, Row, dict[str, Any], Row | None, Row | None, str]:
        interaction, pushed, params = self._load(request, interaction_id)
        session = self._session(request, interaction, params)
        user = self.server.store.get_user(session["user_id"]) if session else None
        client = self.server.clients.get(pushed["client_id"])
        return interaction, pushed, params, session, user, client.name if client else ""

    def show_enrolment(self, request: Request, interaction_id: str) -> Response:
        """GET: the "Create a passkey" page, after a second factor if the account has one."""
        interaction, _pushed, params, session, user, client_name = self._enrolment(request, interaction_id)
        if session is None or user is None or not self.server.passkeys.available:
            return redirect_303(f"/interaction/{interaction_id}")
        if not self._may_enrol(user, session) and not self._has_strong_factor(user):
            return self._enrol_page(
                interaction_id,
                interaction,
                client_name,
                user,
                status=403,
                error=_ASK_FOR_A_LINK,
                ceremony=False,
            )
        if not self._may_enrol(user, session):
            return self._second_factor_page(
                interaction_id,
                interaction,
                client_name,
                params,
                user,
                self._factors(user, TOTP_ACR),
                then="enrol",
            )
        return self._enrol_page(interaction_id, interaction, client_name, user)

    def enrol(self, request: Request, interaction_id: str, form: Form) -> Response:
        """POST: WebAuthn 7.1, a new passkey for the signed-in user. The session's level is not
        raised: the passkey proves itself when it is next used."""
        server, now = self.server, self.server.now()
        interaction, pushed, _params, session, user, client_name = self._enrolment(request, interaction_id)
        self._check_csrf(form, interaction, pushed)
        if session is None or user is None or not server.passkeys.available:
            return redirect_303(f"/interaction/{interaction_id}")
        evidence = self._evidence(pushed)
        evidence.user_id = user["id"]
        if not self._may_enrol(user, session) and not self._has_strong_factor(user):
            raise self._refuse_page(
                evidence,
                Event.PASSKEY,
                "access_denied",
                _ASK_FOR_A_LINK,
                "issue 13 C4 (self_service_enrolment off)",
            )
        if not self._may_enrol(user, session):
            raise self._refuse_page(
                evidence,
                Event.PASSKEY,
                "access_denied",
                "Confirm it is you with your second factor before adding a passkey.",
                "NIST SP 800-63B 6.1.2.1",
            )
        try:
            passkey = server.passkeys.register(form.get("credential", ""), user, interaction_id, now)
        except PasskeyRefused as refusal:
            evidence.detail = {"reason": refusal.reason, "interaction": interaction_id}
            server.audit.append(
                evidence, Event.PASSKEY, Outcome.REFUSED, now, rule=refusal.rule, error="invalid_request"
            )
            return self._enrol_page(
                interaction_id, interaction, client_name, user, status=400, error=refusal.message
            )
        evidence.detail = {
            "credential_id": passkey["credential_id"],
            "aaguid": passkey["aaguid"],
            "backed_up": passkey["backed_up"],
            "session_acr": session["acr"],
            "interaction": interaction_id,
            "par": pushed["ref_hash"],
        }
        server.audit.append(evidence, Event.PASSKEY, Outcome.ENROLLED, now)
        return redirect_303(f"/interaction/{interaction_id}")

    def _consent_page(
        self, interaction_id: str, interaction: Row, pushed: Row, params: dict[str, Any], session: Row
    ) -> Response:
        server = self.server
        client = self._client(pushed, interaction)
        user = server.store.get_user(session["user_id"])
        if user is None:  # removed since _session looked (issue 13 B6)
            raise self._refuse_page(
                self._evidence(pushed),
                Event.INTERACTION,
                "invalid_request",
                "This account is no longer available; start again from the application.",
                "issue 13 B6",
            )
        words = server.settings.scopes
        redirect = urlsplit(params["redirect_uri"])
        details = params.get("authorization_details") or []
        jkt = pushed["dpop_jkt"]
        known = server.resource_servers()
        # What the user is shown, as facts: rendered by the page and kept in the approval record.
        facts: dict[str, Any] = {
            "client_name": client.name,
            "client_id": client.client_id,
            "username": user["username"],
            "redirect_host": redirect.netloc,
            "scopes": [{"name": s, "words": words.get(s, s)} for s in params.get("scope", "").split()],
            "details": [
                {
                    "type": d.get("type"),
                    "words": server.detail_types.describe(d),
                    "type_version": server.detail_types.version(str(d.get("type"))),
                }
                for d in details
            ],
            "resources": [
                f"{known[r]['name']} ({r})" if r in known else r
                for r in (params.get("resources") or [server.default_audience()])
            ],
            "sender_constraint": (
                "the application's TLS client certificate"
                if client.sender_constraint == "mtls"
                else f"DPoP key {jkt}"
                if jkt
                else "a DPoP key the application proves at the token step"
            ),
        }
        page = render(
            "consent.html",
            form_targets=(f"{redirect.scheme}://{redirect.netloc}",),
            **facts,
            detail_json=[json.dumps(d, indent=2, sort_keys=True) for d in details],
            detail_words=[server.detail_types.describe_html(d) for d in details],  # issue 13 E3, E4
            csrf=interaction["csrf"],
            action=f"/interaction/{interaction_id}/consent",
            enrol=f"/interaction/{interaction_id}/passkey-enrol" if self._may_offer_enrolment(user) else None,
        )
        self._record_approval_surface(pushed, session, interaction_id, facts, bytes(page.body))
        return page

    def _record_approval_surface(
        self, pushed: Row, session: Row, interaction_id: str, facts: dict[str, Any], body: bytes
    ) -> None:
        """Issue 8 (design.md 5b): what the user saw, so a later reader knows what was approved:
        the SHA-256 of the exact body sent, the template version and the facts in normal form."""
        evidence = self._evidence(pushed)
        evidence.user_id = session["user_id"]
        evidence.detail = {
            "interaction": interaction_id,
            "par": pushed["ref_hash"],
            "approval_surface": {
                "surface": "consent_page",
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "template_version": template_version("consent.html"),
                "facts": facts,
            },
        }
        self.server.audit.append(evidence, Event.CONSENT, Outcome.SHOWN, self.server.now())

    def login(self, request: Request, interaction_id: str, form: Form) -> Response:
        server, now = self.server, self.server.now()
        interaction, pushed, _ = self._load(request, interaction_id)
        self._check_csrf(form, interaction, pushed)
        evidence = self._evidence(pushed)
        attempt = server.sign_ins.password(
            form.get("username", ""), form.get("password", ""), server.sign_ins.source(request), now
        )
        user = attempt.user
        if user is None:
            client = server.clients.get(pushed["client_id"])
            client_name = client.name if client else ""
            refused = unchecked(attempt, now)
            if refused:  # issue 13 C1, B3: waiting, or no hashing slot free: no password checked
                status, message, retry = refused
                page = self._login_page(interaction_id, interaction, client_name, status, message)
                page.headers["Retry-After"] = retry
                return page
            evidence.user_id, evidence.detail = attempt.user_id, attempt.detail
            server.audit.append(
                evidence, Event.LOGIN, Outcome.REFUSED, now, rule="credentials", error="access_denied"
            )
            return self._login_page(
                interaction_id, interaction, client_name, status=400, error="Wrong user name or password."
            )
        secret = new_secret_token()
        lifetime = server.settings.session_lifetime
        server.store.save_browser_session(token_hash(secret), user["id"], now, "password", now + lifetime)
        evidence.user_id = user["id"]
        evidence.detail = {"acr": "password", "interaction": interaction_id, "par": pushed["ref_hash"]}
        server.audit.append(evidence, Event.LOGIN, Outcome.SUCCEEDED, now)
        # FAPI2 5.3.2.2-10: 303 after a POST carrying credentials, never 307. With "Add a passkey
        # after signing in" ticked, on to the enrolment page (a second factor first if the account has one).
        return redirect_303(
            self._next(interaction_id, form),
            headers={"Set-Cookie": cookie_header(SESSION_COOKIE, secret, lifetime)},
        )

    def consent(self, request: Request, interaction_id: str, form: Form) -> Response:
        server, now = self.server, self.server.now()
        interaction, pushed, params = self._load(request, interaction_id)
        self._check_csrf(form, interaction, pushed)
        evidence = self._evidence(pushed)
        session = self._session(request, interaction, params)
        if session is None:
            return redirect_303(f"/interaction/{interaction_id}")
        evidence.user_id = session["user_id"]
        # The decision names its interaction, whose "consent shown" record says what was shown.
        evidence.detail = {
            "interaction": interaction_id,
            "par": pushed["ref_hash"],
            "approval_surface": "consent_page",
        }
        decision = form.get("decision")
        if decision not in ("approve", "deny"):
            raise self._refuse_page(
                evidence, Event.CONSENT, "invalid_request", "Choose Approve or Deny.", "consent"
            )
        clear = {"Set-Cookie": cookie_header(_interaction_cookie(interaction_id), "", 0)}
        reply: dict[str, str] | None = None
        with server.store.write() as conn:
            # Lost to another POST, reply stays None: refused after the transaction, as no write
            # may open inside one (issue 13 B7, design.md 4).
            if Store.consume_pushed_request(conn, pushed["ref_hash"], now):
                if decision == "deny":
                    server.audit.append(evidence, Event.CONSENT, Outcome.DENIED, now, conn=conn)
                    reply = {"error": "access_denied", "error_description": "the user denied the request"}
                else:
                    reply = {"code": self._issue_code(conn, evidence, pushed, params, session, now)}
        if reply is None:
            raise self._end_interaction(
                interaction_id,
                self._refuse_page(
                    evidence,
                    Event.CONSENT,
                    "invalid_request_uri",
                    "This authorization request was already completed.",
                    "FAPI2 5.3.2.2-12",
                ),
            )
        if "state" in params:
            reply["state"] = params["state"]
        reply["iss"] = server.settings.issuer  # RFC 9207 2
        response = authorization_response(params["redirect_uri"], reply)
        response.headers.update(clear)
        return response

    def _issue_code(
        self, conn: Any, evidence: Evidence, pushed: Row, params: dict[str, Any], session: Row, now: float
    ) -> str:
        server = self.server
        grant_id, code = new_id(), new_secret_token()
        Store.insert_grant(
            conn,
            id=grant_id,
            client_id=pushed["client_id"],
            user_id=session["user_id"],
            scope=params.get("scope", ""),
            authorization_details=json.dumps(params["authorization_details"])
            if params.get("authorization_details")
            else None,
            resources=json.dumps(params.get("resources") or []),
            auth_time=session["auth_time"],
            acr=session["acr"],
            created_at=now,
            expires_at=now + server.settings.grant_lifetime,
        )
        Store.insert_code(
            conn,
            code_hash=token_hash(code),
            grant_id=grant_id,
            client_id=pushed["client_id"],
            redirect_uri=params["redirect_uri"],
            code_challenge=params["code_challenge"],
            dpop_jkt=pushed["dpop_jkt"],
            nonce=params.get("nonce"),
            created_at=now,
            expires_at=now + server.settings.code_lifetime,
        )
        evidence.grant_id = grant_id
        server.audit.append(evidence, Event.CONSENT, Outcome.GRANTED, now, conn=conn)
        server.audit.append(evidence, Event.CODE, Outcome.ISSUED, now, conn=conn)
        return code

    # -- ASGI entry points -----------------------------------------------------------------

    async def get_authorize(self, request: Request) -> Response:
        try:
            query = read_front_channel(request.url.query)
        except OAuthError as error:
            return error_page(error.error, error.description)
        return await run_in_threadpool(self._guard, lambda: self.authorize(query, source_address(request)))

    async def get_interaction(self, request: Request) -> Response:
        interaction_id = request.path_params["interaction_id"]
        return await run_in_threadpool(self._guard, lambda: self.show(request, interaction_id))

    async def post_login(self, request: Request) -> Response:
        return await self._post(request, self.login)

    async def post_consent(self, request: Request) -> Response:
        return await self._post(request, self.consent)

    async def post_second_factor(self, request: Request) -> Response:
        return await self._post(request, self.second_factor)

    async def post_passkey(self, request: Request) -> Response:
        return await self._post(request, self.passkey)

    async def get_enrolment(self, request: Request) -> Response:
        interaction_id = request.path_params["interaction_id"]
        return await run_in_threadpool(self._guard, lambda: self.show_enrolment(request, interaction_id))

    async def post_enrolment(self, request: Request) -> Response:
        return await self._post(request, self.enrol)

    async def _post(self, request: Request, action: Any) -> Response:
        interaction_id = request.path_params["interaction_id"]
        try:
            form = await read_form(request)
        except OAuthError as error:
            return error_page(error.error, error.description)
        return await run_in_threadpool(self._guard, lambda: action(request, interaction_id, form))

    @staticmethod
    def _guard(call: Any) -> Response:
        try:
            response: Response = call()
        except Refusal as refusal:
            return refusal.response
        return response
