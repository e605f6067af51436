"""The consent page's sentences (issue 18): the headline by the first detail type (or the scopes),
how long the grant lasts, whether the app can act while the user is away, which key the tokens
are bound to, and what a grant asked for again after a step-up has spent.

Each sentence comes as plain text (kept in the approval record, audit/words.py tells it) and,
where a value from outside is in it, as HTML with that value escaped in its own ``<bdi>`` (issue
13 E3, E4)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from corridor.core.text import escape_controls
from corridor.policy.details import DetailTypes

#: Scopes that say who the user is or how long access lasts, not what the app may do: the
#: headline names them only when nothing else is asked (the lifetime sentences say the rest).
IDENTITY_SCOPES = ("openid", "offline_access")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _lower_first(words: str) -> str:
    return words[:1].lower() + words[1:]


def _joined(phrases: Sequence[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def headline(
    client_name: str,
    details: Sequence[Mapping[str, Any]],
    scope_words: Sequence[tuple[str, str]],
    types: DetailTypes,
) -> tuple[str, Markup]:
    """What is asked, in one question: by the first detail entry's type, else by the scopes'
    words (``scope_words``: (name, words) pairs), never "access your data?". The client's name
    is registered text: its control and bidirectional formatting characters are shown escaped
    (issue 13 E1), and it sits in its own ``<bdi>`` (E3)."""
    client_name = escape_controls(client_name)
    said = types.headline(details[0]) if details else None
    if said is None and details:
        said = ("do what is listed below", Markup("do what is listed below"))
    if said is None:
        doing = [w for n, w in scope_words if n not in IDENTITY_SCOPES] or [
            w for n, w in scope_words if n == "openid"
        ]
        phrase = _joined([_lower_first(w) for w in doing]) if doing else "sign you in"
        said = (phrase, escape(phrase))
    text, html = said
    more = len(details) - 1
    tail = f" (and {more} more, listed below)" if more > 0 else ""
    return (
        f"Allow {client_name} to {text}{tail}?",
        Markup("Allow <strong><bdi>%s</bdi></strong> to %s%s?") % (client_name, html, tail),
    )


def duration(seconds: int) -> str:
    """A lifetime in words: whole days, else hours, else minutes."""
    for unit, size in (("day", 86_400), ("hour", 3600)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


def moment(when: float) -> str:
    """A moment in words, in UTC: "3 January 2027 at 14:05 UTC"."""
    t = time.gmtime(when)
    return f"{t.tm_mday} {MONTHS[t.tm_mon - 1]} {t.tm_year} at {t.tm_hour:02d}:{t.tm_min:02d} UTC"


def lifetime(grant_lifetime: int, now: float) -> str:
    """How long the grant lasts if approved now (the grant's ``expires_at`` is set at approval to
    ``grant_lifetime`` after it, authorization_code.py)."""
    return f"for {duration(grant_lifetime)}, until {moment(now + grant_lifetime)}"


def while_away() -> str:
    """Whether the app can act without the user: every code is redeemed with a refresh token
    (token.py, RFC 6749 6), valid as long as the grant; so it always can, and the page says so."""
    return (
        "It can act while you are away: it receives a refresh token and can get new access "
        "until the grant ends, without asking you again."
    )


def sender_constraint(mtls: bool, thumbprint: str | None) -> str:
    """Who can use the tokens (RFC 9449, RFC 8705), in words; a key or certificate by the last 4
    characters of its thumbprint (the page shows the whole thumbprint behind a disclosure). An
    mTLS token is bound to the certificate of the token request, so the one this request came
    with (``certificate_thumbprint``) is named as that, not promised."""
    if mtls:
        said = "Only the app holding its TLS client certificate can use this"
        return f"{said} (it asked with certificate …{thumbprint[-4:]})." if thumbprint else f"{said}."
    if thumbprint:
        return f"Only the app holding key …{thumbprint[-4:]} can use this."
    return "Only the app holding the DPoP key it proves when it collects the tokens can use this."


def step_up(acr_values: Sequence[str], details: Sequence[Mapping[str, Any]]) -> str | None:
    """RFC 9470: a request asking for a stronger sign-in (a resource server's
    ``insufficient_user_authentication``) makes a new grant. What this AS knows of its spending
    is that it is new: nothing spent (a resource server keeps budgets per grant, the demo API's
    ledger; what earlier grants paid counts against them, not against this one)."""
    if not any(v != "password" for v in acr_values):
        return None
    payments = [
        d["instructedAmount"]
        for d in details
        if d.get("type") == "payment_initiation" and isinstance(d.get("instructedAmount"), Mapping)
    ]
    asked = f"You were asked to sign in more strongly ({' '.join(acr_values)}). This grant is new"
    if not payments:
        return f"{asked}: nothing has been done with it yet."
    spent = "; ".join(f"0.00 {m.get('currency')} of {m.get('amount')} {m.get('currency')}" for m in payments)
    return (
        f"{asked}: spent so far {spent}. Payments made with your earlier grants do not count "
        "against this one; the service that took them keeps them."
    )
