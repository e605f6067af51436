"""Consent: the page, the record of what it showed (the approval surface), and the decision."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.core.rules import Rule
from corridor.server.forms import Form
from corridor.server.interaction import consent_words
from corridor.server.interaction.contract import Decision, InteractionResult
from corridor.server.interaction.passkeys import may_offer_enrolment
from corridor.server.interaction.visit import Visit
from corridor.server.pages import render, template_version
from corridor.server.responses import redirect_303
from corridor.store.sql import Row

#: The approval surface of this AS: the consent page (issue 8, design.md 5b).
CONSENT_PAGE = "consent_page"
DECISIONS: dict[str | None, Decision] = {"approve": "approve", "deny": "deny"}


def shown_facts(visit: Visit, user: Row) -> dict[str, Any]:
    """What the user is shown, as facts: rendered by the page and kept in the approval record."""
    server, client, pushed = visit.server, visit.client, visit.pushed
    words = server.settings.scopes
    known = server.resource_servers()
    jkt = pushed.dpop_jkt
    scopes = [(s, words.get(s, s)) for s in (pushed.scope or "").split()]
    details = pushed.authorization_details or []
    mtls = client.sender_constraint == "mtls"
    thumbprint = pushed.certificate_thumbprint if mtls else jkt
    return {
        # Issue 18: the question, the lifetime, acting while away, the key, a step-up's spending.
        "headline": consent_words.headline(client.name, details, scopes, server.detail_types)[0],
        "lifetime": consent_words.lifetime(server.settings.grant_lifetime, server.now()),
        "while_away": consent_words.while_away(),
        "sender_words": consent_words.sender_constraint(mtls, thumbprint),
        "key_thumbprint": thumbprint,
        "step_up": consent_words.step_up(pushed.acr_values, details),
        "client_name": client.name,
        "client_id": client.client_id,
        "username": user["username"],
        "redirect_host": urlsplit(pushed.redirect_uri).netloc,
        "scopes": [{"name": name, "words": said} for name, said in scopes],
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
            for r in (pushed.resources or [server.default_audience()])
        ],
        "sender_constraint": (
            "the application's TLS client certificate"
            if mtls
            else f"DPoP key {jkt}"
            if jkt
            else "a DPoP key the application proves at the token step"
        ),
    }


def consent_page(visit: Visit, session: Row, user: Row | None) -> Response:
    """The consent page, recorded as shown: rendered once, and the record holds the SHA-256 of
    exactly the bytes sent. ``user``: the session's user as this request read it (steps.show)."""
    server = visit.server
    if user is None:  # removed since the session was looked up (issue 13 B6)
        raise visit.refuse(
            visit.evidence(),
            Event.INTERACTION,
            "invalid_request",
            "This account is no longer available; start again from the application.",
            Rule.ISSUE_13_B6,
        )
    redirect = urlsplit(visit.pushed.redirect_uri)
    details = visit.pushed.authorization_details or []
    facts = shown_facts(visit, user)
    scopes = [(s["name"], s["words"]) for s in facts["scopes"]]
    client_is_mtls = visit.client.sender_constraint == "mtls"
    page = render(
        "consent.html",
        form_targets=(f"{redirect.scheme}://{redirect.netloc}",),
        **facts,
        mtls=client_is_mtls,
        headline_html=consent_words.headline(facts["client_name"], details, scopes, server.detail_types)[1],
        detail_json=[json.dumps(d, indent=2, sort_keys=True) for d in details],
        detail_words=[server.detail_types.describe_html(d) for d in details],  # issue 13 E3, E4
        csrf=visit.interaction["csrf"],
        action=f"{visit.path}/consent",
        enrol=f"{visit.path}/passkey-enrol" if may_offer_enrolment(visit, user) else None,
    )
    record_approval_surface(visit, session, facts, bytes(page.body))
    return page


def record_approval_surface(visit: Visit, session: Row, facts: dict[str, Any], body: bytes) -> None:
    """Issue 8 (design.md 5b): what the user saw, so a later reader knows what was approved:
    the SHA-256 of the exact body sent, the template version and the facts in normal form."""
    evidence = visit.traced()
    evidence.user_id = session["user_id"]
    evidence.detail["approval_surface"] = {
        "surface": CONSENT_PAGE,
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "template_version": template_version("consent.html"),
        "facts": facts,
    }
    visit.server.audit.append(evidence, Event.CONSENT, Outcome.SHOWN, visit.server.now())


def decide(visit: Visit, form: Form) -> InteractionResult | Response:
    """POST: Approve or Deny, by the signed-in user; without a usable session, back to the page."""
    visit.check_csrf(form)
    session = visit.session()
    if session is None:
        return redirect_303(visit.path)
    decision = form.get("decision")
    if decision not in DECISIONS:
        evidence = visit.traced()
        evidence.user_id = session["user_id"]
        evidence.detail["approval_surface"] = CONSENT_PAGE
        raise visit.refuse(evidence, Event.CONSENT, "invalid_request", "Choose Approve or Deny.", "consent")
    return InteractionResult.of_session(visit.interaction_id, session, DECISIONS[decision], CONSENT_PAGE)
