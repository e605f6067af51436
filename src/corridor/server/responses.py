"""Renderers of the one error model (design.md 3), and the endpoint runner."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from corridor.audit.events import Outcome
from corridor.core.errors import OAuthError
from corridor.core.request_context import note_refusal
from corridor.core.text import escaping_logger
from corridor.server.authority import AuthorizationServer, Exchange
from corridor.server.forms import read_form
from corridor.server.offload import off_loop
from corridor.transport.certificates import peer_certificate
from corridor.transport.trust import via_mtls_listener

log = escaping_logger("corridor.server")  # issue 13 E1

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class FastJSONResponse(JSONResponse):
    """Starlette's JSONResponse with orjson's encoder (issue 19: about 20x faster on a token
    response). The bytes are the same as Starlette's compact ``json.dumps`` for every body the AS
    sends (str keys, str/int/bool/None/list/dict values: tests/server/test_routes.py); what orjson
    refuses (integers beyond 64 bits, non-str keys) is encoded by Starlette's own encoder."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return super().render(content)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return FastJSONResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})


def error_json(error: OAuthError) -> JSONResponse:
    """RFC 6749 5.2 / RFC 9126 2.3 / RFC 9449 7: the JSON error body."""
    note_refusal(error.rule, error.error)  # for the request's log line and metrics (issue 18)
    return json_response(error.body(), status=error.status, headers=error.headers)


def redirect_303(location: str, headers: dict[str, str] | None = None) -> Response:
    """FAPI2 5.3.2.2-10/11: 303 See Other, never 307."""
    return Response(status_code=303, headers={"Location": location, **NO_STORE, **(headers or {})})


def authorization_response(redirect_uri: str, params: dict[str, str]) -> Response:
    """RFC 6749 4.1.2: ``params`` appended to the registered URI's query (the plain parameters
    with RFC 9207 ``iss``, or JARM 2.3.1's one ``response``; server/jarm.py)."""
    separator = "&" if "?" in redirect_uri else "?"
    return redirect_303(redirect_uri + separator + urlencode(params))


def source_address(request: Request) -> str | None:
    """The peer address of the connection (behind a proxy: the proxy's; issue 13 B4 counts
    unauthenticated refusals per source, so a proxy makes all of them one source)."""
    return request.client.host if request.client is not None else None


def nonce_headers(server: AuthorizationServer) -> dict[str, str]:
    """RFC 9449 8: hand out the current nonce on every response, so clients follow rotation."""
    if server.settings.dpop_nonce_required and server.nonces is not None:
        return {"DPoP-Nonce": server.nonces.current()}
    return {}


async def run_endpoint(
    request: Request,
    server: AuthorizationServer,
    path: str,
    event: str,
    handler: Callable[[Exchange], Response],
) -> Response:
    """Read the form, run the handler off the event loop, render OAuthError as JSON and
    record every refusal in the audit log with the rule that decided it."""
    try:
        form = await read_form(request)
    except OAuthError as error:
        error.headers = {**nonce_headers(server), **error.headers}
        return error_json(error)
    endpoint_url = server.endpoints.url(path, via_mtls_listener(request.scope))
    exchange = Exchange.begin(
        server, endpoint_url, request.method, request.headers, form, peer_certificate(request.scope)
    )

    def call() -> Response:
        try:
            response = handler(exchange)
            if exchange.single_use:  # an endpoint that wrote nothing still spends its jti
                with exchange.unit_of_work():
                    pass
        except OAuthError as error:
            # One write transaction: the refusal's record, and the single-use keys its checks
            # passed (a refused request's proof and assertion are spent too; design.md 4).
            with exchange.unit_of_work(refusing=True) if exchange.single_use else nullcontext() as uow:
                server.audit.append(
                    exchange.evidence,
                    event,
                    Outcome.REFUSED,
                    exchange.now,
                    rule=error.rule,
                    error=error.error,
                    conn=uow,
                    # issue 13 B4: before a client authenticated, refusals are sampled per source.
                    unauthenticated_source=source_address(request) if exchange.client is None else None,
                )
            error.headers = {**nonce_headers(server), **error.headers}
            response = error_json(error)
        else:
            for name, value in nonce_headers(server).items():
                response.headers.setdefault(name, value)
        response.headers["X-Request-Id"] = exchange.evidence.request_id
        return response

    return await off_loop(call)
