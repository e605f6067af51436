"""Putting the guard in front of an API: a pure ASGI middleware, a FastAPI dependency and a
Starlette decorator. The verified token reaches handlers as ``request.state.access_token``
(an :class:`AccessToken`), or as the dependency's value."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corridor.core.json_limits import MAX_SIZE, JSONLimitError, check_json_limits
from corridor.core.randomness import new_id
from corridor.core.rules import Rule
from corridor.policy.cedar import PolicyDecision
from corridor.resource.binding import challenge
from corridor.resource.evidence import EVERYTHING, ActionFacts, Recorded
from corridor.resource.guard import METADATA_PATH, Requirement, ResourceGuard, requirement
from corridor.resource.tokens import AccessToken, ResourceError
from corridor.transport.certificates import ProxyCertificateHeaders, peer_certificate

STATE_KEY = "access_token"
GUARD_KEY = "corridor.guard"
REFUSED_KEY = "corridor.refused"
POLICY_KEY = "corridor.policy"
#: The request's :class:`ActionFacts` (issue 16): action, parameters, compared values, result.
ACTION_KEY = "corridor.action"
REQUEST_ID_KEY = "corridor.request_id"
MAX_FORM = 64 * 1024


def error_response(guard: ResourceGuard, error: ResourceError | None) -> Response:
    """RFC 6750 3 / RFC 9449 7.1 with the RFC 9728 resource_metadata parameter."""
    refusal = error if error is not None and error.error else None  # else no credentials: bare
    status = 401 if error is None else error.status
    body = refusal.body() if refusal is not None else {}
    response = JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
    for name, value in challenge(refusal, resource_metadata=guard.settings.metadata_url):
        response.headers.append(name, value)
    return response


class ProtectedResource:
    """ASGI middleware: serves RFC 9728 metadata, authenticates every other request, and turns
    a route's refusal (raised by :func:`require`) into the right challenge; records each decision."""

    def __init__(
        self,
        app: ASGIApp,
        guard: ResourceGuard,
        *,
        public_paths: Iterable[str] = (),
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.guard = guard
        self.public_paths = frozenset(public_paths)
        # Certificates from a trusted TLS-terminating proxy, as at the AS (design.md 5).
        self.certificates = ProxyCertificateHeaders(self._protected, trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == METADATA_PATH:
            await JSONResponse(self.guard.metadata(), headers={"Cache-Control": "max-age=300"})(
                scope, receive, send
            )
            return
        if scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        await self.certificates(scope, receive, send)

    async def _protected(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = self.guard
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        receive, form_token = await _form_has_token(scope, receive)
        if form_token:
            query["access_token"] = ""  # RFC 6750 2.2 form-body tokens are refused like query tokens
        certificate = peer_certificate(scope)
        route = scope["path"]
        state = scope.setdefault("state", {})
        request_id = state.setdefault(REQUEST_ID_KEY, new_id())
        access: AccessToken | None = None

        async def record(error: ResourceError | None, **more: Any) -> None:
            """The decision's record (off the event loop: a sink with a database blocks)."""
            await run_in_threadpool(
                functools.partial(
                    guard.record,
                    route=route,
                    method=scope["method"],
                    access=access,
                    error=error,
                    request_id=request_id,
                    **more,
                )
            )

        try:
            # Key fetches and replay-cache writes may block: off the event loop.
            access = await run_in_threadpool(
                guard.authenticate, scope["method"], scope["path"], headers, certificate, query
            )
        except ResourceError as error:
            if error.error:
                await record(error)
            await error_response(guard, error)(scope, receive, send)
            return
        try:
            receive = await _bounded_json_body(scope, receive)
        except ResourceError as error:
            await record(error)
            await error_response(guard, error)(scope, receive, send)
            return
        state[STATE_KEY] = access
        state[GUARD_KEY] = guard
        status = 0
        recorded = False

        async def allowed() -> None:
            """Token and route requirements passed; the record keeps the status the route answered
            (a 404 or 422 after a valid token is not an authorization decision of ours), and the
            action with its parameters; its result, when the route gave one, follows it."""
            nonlocal recorded
            if recorded or state.get(REFUSED_KEY):
                return
            recorded = True
            await record(None, status=status, facts=state.get(ACTION_KEY), policy=state.get(POLICY_KEY))

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # The decision is on record before the answer is complete: a client holding the
                # whole response can rely on its record being there (and a crash between the two
                # loses an answer, never the record of one given).
                await allowed()
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except ResourceError as error:
            _use_token_scheme(error, access)
            await record(error, facts=state.get(ACTION_KEY))
            if status:
                raise
            await error_response(guard, error)(scope, receive, send)
            return
        await allowed()  # a route that ended without a last body message


def _content_type(scope: Scope) -> bytes:
    value: bytes = dict(scope["headers"]).get(b"content-type", b"")
    return value.split(b";")[0].strip().lower()


async def _read_ahead(receive: Receive, limit: int) -> tuple[bytes, Receive]:
    """The body, read until its end or just past ``limit`` bytes, and a receive that replays it."""
    messages: list[Message] = []
    body = b""
    while True:
        message = await receive()
        messages.append(message)
        body += message.get("body", b"")
        if not message.get("more_body") or len(body) > limit:
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return body, replay


async def _form_has_token(scope: Scope, receive: Receive) -> tuple[Receive, bool]:
    """Look into a form body for access_token (then replay the body to the app)."""
    if scope["method"] in ("GET", "HEAD") or _content_type(scope) != b"application/x-www-form-urlencoded":
        return receive, False
    body, replay = await _read_ahead(receive, MAX_FORM)
    found = any(
        name == "access_token" for name, _ in parse_qsl(body.decode("latin-1"), keep_blank_values=True)
    )
    return replay, found


async def _bounded_json_body(scope: Scope, receive: Receive) -> Receive:
    """Issue 13 B5: a JSON body (``application/json`` or ``+json``) is at most 64 KiB and 32
    levels deep before the app parses it (then it is replayed to the app)."""
    content_type = _content_type(scope)
    if content_type != b"application/json" and not content_type.endswith(b"+json"):
        return receive
    body, replay = await _read_ahead(receive, MAX_SIZE)
    if len(body) > MAX_SIZE:
        raise ResourceError(
            "invalid_request", "the JSON body is too large", rule=Rule.ISSUE_13_B5, status=413
        )
    try:
        check_json_limits(body)
    except JSONLimitError as exc:
        raise ResourceError(
            "invalid_request", f"the body: {exc}", rule=Rule.ISSUE_13_B5, status=400
        ) from None
    return replay


def require(
    scope: str | Iterable[str] = (),
    details: Any = (),
    acr: str | None = None,
    max_age: int | None = None,
    action: str | None = None,
    recorded: Recorded = EVERYTHING,
) -> Callable[[Request], AccessToken]:
    """A route's requirement, as a FastAPI dependency: ``Depends(require(scope="payments"))``.

    ``action``: the tool action the route performs (issue 8), ``tool:action`` for an agent tool
    (``list_accounts:read``: granted by an ``agent_tool`` entry for ``list_accounts`` that lists
    ``read``); the Cedar policies decide it from the token alone. A route whose decision depends
    on the request's values (an amount, say) calls :func:`decide` with them instead.
    ``recorded``: what the records keep of the route's result (issue 16, resource/evidence.py).

    Returns the verified :class:`AccessToken`; raises a :class:`ResourceError` (rendered by
    :class:`ProtectedResource`) when the token does not cover the route."""
    needed: Requirement = requirement(scope, details, acr, max_age)

    def dependency(request: Request) -> AccessToken:
        access, guard = _verified(request)
        guard.authorize(access, needed)
        if action is not None:
            facts = ActionFacts.of(action, None, recorded)
            request.scope["state"][ACTION_KEY] = facts
            decision = guard.decide_action(access, action, route_scopes=needed.scopes, facts=facts)
            request.scope["state"][POLICY_KEY] = decision
        return access

    return dependency


def decide(
    request: Request,
    action: str,
    *,
    values: Mapping[str, Any] | None = None,
    scopes: Iterable[str] = (),
    spent_minor: int = 0,
    spent_by_entry: Mapping[int, int] | None = None,
    parameters: Mapping[str, Any] | None = None,
    recorded: Recorded = EVERYTHING,
) -> PolicyDecision:
    """Inside a route: the Cedar decision for ``action`` with the request's own ``values``
    (e.g. ``{"amount_minor": 5000, "currency": "EUR", "creditor": "Merchant A"}``) and what the
    grant already spent, in all and per payment_initiation entry; refused ->
    :class:`ResourceError` (403), recorded with the policy ids. An allowed payment's decision
    names the entry it goes against (``payment_entry``).

    Issue 16: the record keeps the action's ``parameters`` (``values`` when none are given) as the
    route's ``recorded`` declaration says (what is kept, what is redacted), and the values the
    policy compared; :func:`result` adds what the route did."""
    access, guard = _verified(request)
    facts = ActionFacts.of(action, values if parameters is None else parameters, recorded)
    request.scope["state"][ACTION_KEY] = facts
    decision = guard.decide_action(
        access,
        action,
        route_scopes=frozenset(scopes),
        request=values,
        spent_minor=spent_minor,
        spent_by_entry=spent_by_entry,
        facts=facts,
    )
    request.scope["state"][POLICY_KEY] = decision
    return decision


def result(request: Request, values: Mapping[str, Any]) -> None:
    """Issue 16: what the route's action did (e.g. ``{"payment_id": ..., "status": "accepted"}``),
    recorded once the route has answered as an ``rs.result`` record after its decision's
    ``rs.access`` record, with the same request id; kept as the route's declaration says."""
    facts = request.scope.get("state", {}).get(ACTION_KEY)
    if not isinstance(facts, ActionFacts):
        raise RuntimeError("result() follows the route's decision: require(action=...) or decide()")
    facts.set_result(values)


def _verified(request: Request) -> tuple[AccessToken, ResourceGuard]:
    access = request.scope.get("state", {}).get(STATE_KEY)
    guard = request.scope.get("state", {}).get(GUARD_KEY)
    if not isinstance(access, AccessToken) or not isinstance(guard, ResourceGuard):
        raise RuntimeError("require() and decide() need the ProtectedResource middleware in front of the app")
    return access, guard


async def resource_error_handler(request: Request, exc: Exception) -> Response:
    """For frameworks that catch route exceptions themselves (Starlette, FastAPI):
    ``app.add_exception_handler(ResourceError, resource_error_handler)``."""
    assert isinstance(exc, ResourceError)
    return refuse(request, exc)


def refuse(request: Request, error: ResourceError) -> Response:
    """Record a route's refusal and render its challenge, in the scheme the token is used with."""
    state = request.scope.setdefault("state", {})
    guard = state.get(GUARD_KEY)
    assert isinstance(guard, ResourceGuard), "the ProtectedResource middleware is not in front of the app"
    state[REFUSED_KEY] = True
    access = state.get(STATE_KEY)
    _use_token_scheme(error, access)
    source = request.client.host if request.client is not None else None
    guard.record(
        route=request.url.path,
        method=request.method,
        access=access,
        error=error,
        source=source,
        facts=state.get(ACTION_KEY),
        policy=state.get(POLICY_KEY),
        request_id=state.get(REQUEST_ID_KEY),
    )
    return error_response(guard, error)


def _use_token_scheme(error: ResourceError, access: AccessToken | None) -> None:
    """RFC 9449 7.1 / RFC 6750 3: DPoP for DPoP-bound tokens, Bearer for certificate-bound ones."""
    if isinstance(access, AccessToken):
        error.scheme = access.scheme


def protected(
    needed: Callable[[Request], AccessToken],
) -> Callable[[Callable[..., Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """The same for plain Starlette endpoints: ``@protected(require(scope="accounts"))``."""

    def decorate(endpoint: Callable[..., Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            try:
                needed(request)
                return await endpoint(request)
            except ResourceError as error:
                return refuse(request, error)

        return wrapper

    return decorate


__all__ = [
    "ProtectedResource",
    "decide",
    "error_response",
    "protected",
    "require",
    "resource_error_handler",
    "result",
]
