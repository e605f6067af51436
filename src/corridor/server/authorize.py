"""The authorization endpoint and its interaction pages.

FAPI2 5.3.2.2-3: only pushed requests (``client_id`` + ``request_uri``); any other front-channel
parameter is ignored, never used or echoed (RFC 9101 5, RFC 9126 4, FAPI issue 340).
FAPI2 5.3.2.2-7: ``iss`` on every authorization response, success or error.
FAPI2 5.3.2.2-10/11: 303 after every form POST. RFC 9126 Note 3: the request_uri is
consumed when the authorization completes, not when the page loads.

GET /authorize runs the named checks of ``AUTHORIZATION`` (server/checks/authorize.py), then
starts an interaction (server/interaction/); the interaction's result and the pushed request's
facts become a code in server/authorization_code.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from corridor.audit.events import Event, Outcome
from corridor.audit.log import Evidence
from corridor.core.errors import OAuthError
from corridor.core.request_context import current_request_id
from corridor.core.rules import Rule
from corridor.core.text import escape_controls
from corridor.server import authorization_code
from corridor.server.authority import AuthorizationServer
from corridor.server.checks import run
from corridor.server.checks.authorize import (
    AuthorizationRequest,
    ErrorRedirect,
    check_identifiers,
    find_pushed_request,
    refuse_prompt_none,
    require_known_client,
    require_pushed_request,
    require_unexpired,
    require_unused,
)
from corridor.server.forms import MAX_FIELDS, Form, read_form
from corridor.server.interaction import consent, passkeys, password, second_factor, steps, storage, visit
from corridor.server.interaction.browser import Refusal, cookie_header, interaction_cookie
from corridor.server.interaction.contract import InteractionResult
from corridor.server.jarm import authorization_reply
from corridor.server.offload import off_loop
from corridor.server.pages import error_page
from corridor.server.responses import redirect_303, source_address

#: The only front-channel parameters read beside a pushed request (RFC 9126 4, AS23).
FRONT_CHANNEL = frozenset({"client_id", "request_uri"})
#: How much of an ignored parameter's name the evidence record keeps (design.md 5c: bounded input).
IGNORED_NAME_LENGTH = 64

AUTHORIZATION = (
    check_identifiers,  # issue 13 B8
    require_pushed_request,  # FAPI2 5.3.2.2-3
    require_known_client,  # RFC 9126 4
    find_pushed_request,  # RFC 9126 4
    require_unused,  # FAPI2 5.3.2.2-12
    require_unexpired,  # FAPI2 5.3.2.2-12
    refuse_prompt_none,  # OIDC Core 3.1.2.6
)


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
        raise OAuthError(
            "invalid_request", "the parameters cannot be parsed", rule=Rule.RFC_6749_3_1
        ) from exc
    used: dict[str, str] = {}
    ignored: set[str] = set()
    for name, value in pairs:
        if name not in FRONT_CHANNEL:
            ignored.add(_evidence_name(name))
        elif name in used:
            raise OAuthError("invalid_request", f"parameter {name!r} is repeated", rule=Rule.RFC_6749_3_1)
        else:
            used[name] = value
    return FrontChannel(used.get("client_id") or None, used.get("request_uri") or None, sorted(ignored))


Action = Callable[[visit.Visit, Form], Response]


class AuthorizationPages:
    """GET /authorize and the interaction's routes."""

    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server

    # -- GET /authorize -------------------------------------------------------------------

    def authorize(self, query: FrontChannel, source: str | None = None) -> Response:
        """RFC 9126 4: the pushed request named by ``request_uri``, for ``client_id``; nothing
        else from the front channel is used or echoed (RFC 9101 5, AS23)."""
        server = self.server
        req = AuthorizationRequest(
            server=server,
            now=server.now(),
            evidence=Evidence(issuer=server.settings.issuer, request_id=current_request_id()),
            client_id=query.client_id,
            request_uri=query.request_uri,
            ignored=query.ignored,
        )
        try:
            run(AUTHORIZATION, req)
        except OAuthError as error:
            if isinstance(error, ErrorRedirect) and req.pushed is not None:
                raise self._refuse_redirect(req, error) from None
            # Issue 13 B4: a request that matched no pushed request is counted by its source.
            unmatched = source if req.pushed is None else None
            raise visit.refuse_page(
                server, req.evidence, Event.AUTHORIZE, error.error, error.description, error.rule, unmatched
            ) from None
        assert req.pushed is not None
        interaction_id, secret = storage.start_interaction(server, req.pushed.ref_hash, req.now)
        if req.ignored:
            # Issue 13 A1: what the front channel carried beside the pushed request, by name only.
            req.evidence.detail["interaction"] = interaction_id
            server.audit.append(
                req.evidence, Event.AUTHORIZE, Outcome.ACCEPTED, req.now, rule=Rule.RFC_9126_4
            )
        lifetime = server.settings.interaction_lifetime
        return redirect_303(
            f"/interaction/{interaction_id}",
            headers={"Set-Cookie": cookie_header(interaction_cookie(interaction_id), secret, lifetime)},
        )

    def _refuse_redirect(self, req: AuthorizationRequest, error: OAuthError) -> Refusal:
        """RFC 6749 4.1.2.1 + RFC 9207: an error redirect, only to a pushed, verified redirect_uri;
        signed (JARM) when the pushed request asked for it (the OIDF suite requires errors as JARM)."""
        server, pushed = self.server, req.pushed
        assert pushed is not None
        now = server.now()
        params = {"error": error.error, "error_description": error.description}
        with server.store.unit_of_work() as uow:  # the signed response (JARM) and its record
            response = authorization_reply(server, uow, req.evidence, pushed, params, now)
            server.audit.append(
                req.evidence,
                Event.AUTHORIZE,
                Outcome.REFUSED,
                now,
                rule=error.rule,
                error=error.error,
                conn=uow,
            )
        return Refusal(response)

    # -- the interaction -------------------------------------------------------------------

    def show(self, request: Request, interaction_id: str) -> Response:
        return steps.show(visit.load(self.server, request, interaction_id))

    def consent(self, current: visit.Visit, form: Form) -> Response:
        """POST: the decision, then the code (or the denial) from the result alone."""
        result = consent.decide(current, form)
        if not isinstance(result, InteractionResult):
            return result
        return authorization_code.complete(self.server, current.pushed, result)

    # -- ASGI entry points -----------------------------------------------------------------

    async def get_authorize(self, request: Request) -> Response:
        try:
            query = read_front_channel(request.url.query)
        except OAuthError as error:
            return error_page(error.error, error.description)
        return await off_loop(lambda: self._guard(lambda: self.authorize(query, source_address(request))))

    async def get_interaction(self, request: Request) -> Response:
        interaction_id = request.path_params["interaction_id"]
        return await off_loop(lambda: self._guard(lambda: self.show(request, interaction_id)))

    async def get_enrolment(self, request: Request) -> Response:
        interaction_id = request.path_params["interaction_id"]
        return await off_loop(
            lambda: self._guard(
                lambda: passkeys.show_enrolment(visit.load(self.server, request, interaction_id))
            )
        )

    async def post_login(self, request: Request) -> Response:
        return await self._post(request, password.sign_in)

    async def post_second_factor(self, request: Request) -> Response:
        return await self._post(request, second_factor.check_code)

    async def post_passkey(self, request: Request) -> Response:
        return await self._post(request, passkeys.sign_in)

    async def post_enrolment(self, request: Request) -> Response:
        return await self._post(request, passkeys.enrol)

    async def post_consent(self, request: Request) -> Response:
        return await self._post(request, self.consent)

    async def _post(self, request: Request, action: Action) -> Response:
        interaction_id = request.path_params["interaction_id"]
        try:
            form = await read_form(request)
        except OAuthError as error:
            return error_page(error.error, error.description)
        return await off_loop(
            lambda: self._guard(lambda: action(visit.load(self.server, request, interaction_id), form))
        )

    @staticmethod
    def _guard(call: Callable[[], Response]) -> Response:
        try:
            return call()
        except Refusal as refusal:
            return refusal.response
