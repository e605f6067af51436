"""One request to an interaction page: the interaction, its pushed request, the browser session.

RFC 9700 4.4: an interaction belongs to the browser that began it (its cookie); RFC 9126 Note 3:
the pushed request is consumed when the authorization completes, so every page checks it again.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field

from starlette.requests import Request

from corridor.audit.events import Event, Outcome
from corridor.audit.log import Evidence
from corridor.core.randomness import token_hash
from corridor.core.request_context import current_request_id
from corridor.core.rules import Rule
from corridor.server.authority import AuthorizationServer
from corridor.server.clients import ClientRecord
from corridor.server.forms import Form
from corridor.server.interaction import storage
from corridor.server.interaction.browser import SESSION_COOKIE, Refusal, end_interaction, interaction_cookie
from corridor.server.interaction.contract import PushedFacts
from corridor.server.pages import error_page
from corridor.server.responses import source_address
from corridor.store.sql import Row

_INTERACTION_ID = re.compile(r"[0-9a-f]{32}")


def refuse_page(
    server: AuthorizationServer,
    evidence: Evidence,
    event: str,
    error: str,
    description: str,
    rule: str,
    source: str | None = None,
) -> Refusal:
    """An error page and its evidence record. ``source``: the peer of a request that matched no
    pushed request yet (issue 13 B4 samples)."""
    server.audit.append(
        evidence, event, Outcome.REFUSED, server.now(), rule=rule, error=error, unauthenticated_source=source
    )
    return Refusal(error_page(error, description))


@dataclass(frozen=True)
class Visit:
    """An interaction page request whose interaction and pushed request are alive."""

    server: AuthorizationServer
    request: Request
    interaction_id: str
    interaction: Row
    pushed: PushedFacts
    client: ClientRecord
    #: Users this request read, by id (issue 19: the session check, the step and the consent
    #: page of one request read the session's user once).
    _users: dict[str, Row | None] = field(default_factory=dict, compare=False, repr=False)

    @property
    def path(self) -> str:
        return f"/interaction/{self.interaction_id}"

    def evidence(self) -> Evidence:
        return self.pushed.evidence(self.server.settings.issuer)

    def traced(self) -> Evidence:
        """Evidence naming this interaction and its pushed request."""
        evidence = self.evidence()
        evidence.detail = {"interaction": self.interaction_id, "par": self.pushed.ref_hash}
        return evidence

    def refuse(self, evidence: Evidence, event: str, error: str, description: str, rule: str) -> Refusal:
        return refuse_page(self.server, evidence, event, error, description, rule)

    def check_csrf(self, form: Form) -> None:
        """The form was served by this interaction (its CSRF token, compared in constant time)."""
        if not hmac.compare_digest(form.get("csrf", "").encode(), self.interaction["csrf"].encode()):
            raise self.refuse(
                self.evidence(),
                Event.INTERACTION,
                "invalid_request",
                "The form has expired; start again.",
                "CSRF",
            )

    def user(self, user_id: str) -> Row | None:
        """The user ``user_id`` as this request read it (once), None if there is none."""
        if user_id not in self._users:
            self._users[user_id] = storage.find_user(self.server, user_id)
        return self._users[user_id]

    def session_cookie(self) -> str:
        return self.request.cookies.get(SESSION_COOKIE, "")

    def session(self) -> Row | None:
        """The browser's session, if it may be used for this request: live, of a user who still
        exists (issue 13 B6) and is not disabled (issue 18: ``user disable`` ends the sessions,
        and this refuses one begun in the same instant), and fresh enough for ``prompt=login``
        and ``max_age``."""
        now = self.server.now()
        session = storage.find_session(self.server, self.request.cookies.get(SESSION_COOKIE))
        if session is None or now >= session["expires_at"]:
            return None
        user = self.user(session["user_id"])
        if user is None or user.get("disabled_at") is not None:
            return None
        signed_in_here = session["auth_time"] >= self.interaction["created_at"]
        if "login" in self.pushed.prompt and not signed_in_here:
            return None
        if not self.within_max_age(session, signed_in_here, now):
            return None
        return session

    def within_max_age(self, session: Row, signed_in_here: bool, now: float) -> bool:
        """OIDC Core 3.1.2.1: older than ``max_age`` means sign in again; a sign-in during this
        interaction is that fresh sign-in (so ``max_age=0`` completes, issue 13 B6)."""
        max_age = self.pushed.max_age
        return max_age is None or signed_in_here or now - session["auth_time"] <= max_age

    def next_page(self, form: Form) -> str:
        """Where a passed sign-in step goes on to: the interaction, or back to adding a passkey."""
        if form.get("then") == "enrol":
            return f"{self.path}/passkey-enrol"
        return self.path


def _expired(server: AuthorizationServer, evidence: Evidence, event: str = Event.INTERACTION) -> Refusal:
    return refuse_page(
        server,
        evidence,
        event,
        "invalid_request_uri",
        "This authorization request has expired; start again from the application.",
        Rule.FAPI2_5_3_2_2_12,
    )


def load(server: AuthorizationServer, request: Request, interaction_id: str) -> Visit:
    """The interaction of this browser and its pushed request, still unused and alive, of a
    client that is still registered; otherwise an error page."""
    now = server.now()
    fresh = Evidence(issuer=server.settings.issuer, request_id=current_request_id())
    interaction, row = (
        storage.find_interaction_and_pushed(server, interaction_id)
        if _INTERACTION_ID.fullmatch(interaction_id)
        else (None, None)
    )
    secret = request.cookies.get(interaction_cookie(interaction_id), "")
    if (
        interaction is None
        or now >= interaction["expires_at"]
        or not hmac.compare_digest(token_hash(secret), interaction["secret_hash"])
    ):
        raise refuse_page(
            server,
            fresh,
            Event.INTERACTION,
            "invalid_request",
            "This sign-in page has expired or belongs to another browser.",
            Rule.RFC_9700_4_4,
            source_address(request),
        )
    if row is None:  # issue 13 B6: purged once it expired (Store.purge_expired)
        raise end_interaction(interaction_id, _expired(server, fresh))
    pushed = PushedFacts.of(row)
    traced = pushed.evidence(server.settings.issuer)
    if row["consumed_at"] is not None:
        raise end_interaction(
            interaction_id,
            refuse_page(
                server,
                traced,
                Event.INTERACTION,
                "invalid_request_uri",
                "This authorization request was already completed.",
                Rule.FAPI2_5_3_2_2_12,
            ),
        )
    traced.detail = {"interaction": interaction["id"], "par": pushed.ref_hash}
    if now >= pushed.expires_at:
        # FAPI2 5.3.2.2-12 / RFC 9126 2.2 (issue 13 D5): an interaction outlives its pushed
        # request, which gives nothing after ``expires_in``; the consume checks it again
        # atomically. An error page, not an error redirect: the request has ended, so neither its
        # redirect_uri nor its state is acted on any more (as at GET /authorize).
        raise _expired(server, traced)
    client = server.clients.get(pushed.client_id)
    if client is None:
        # RFC 6749 4.1.2.1 (issue 13 B6): a client removed during the interaction gets no page
        # naming it, no code and no redirect.
        raise refuse_page(
            server,
            traced,
            Event.INTERACTION,
            "invalid_request",
            "The application is no longer registered here.",
            Rule.RFC_6749_4_1_2_1,
        )
    return Visit(server, request, interaction_id, interaction, pushed, client)
