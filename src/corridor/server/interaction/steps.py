"""GET of an interaction: the step the user is at (sign in, a second factor, or consent)."""

from __future__ import annotations

from starlette.responses import Response

from corridor.server.interaction.consent import consent_page
from corridor.server.interaction.password import login_page
from corridor.server.interaction.second_factor import factors_due, second_factor_page
from corridor.server.interaction.visit import Visit


def show(visit: Visit) -> Response:
    """Sign in without a usable session; a second factor when the request asks for more
    (RFC 9470); else the consent page."""
    session = visit.session()
    if session is None:
        return login_page(visit)
    user = visit.user(session["user_id"])
    due = factors_due(visit, session, user)
    if due:
        return second_factor_page(visit, user, due)
    return consent_page(visit, session, user)
