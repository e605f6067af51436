"""The ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corridor.audit import chain
from corridor.audit.events import Event
from corridor.core.randomness import new_id
from corridor.core.request_context import RequestFacts, current_facts, request_facts
from corridor.core.text import escaping_logger
from corridor.server.admin import AdminPages
from corridor.server.authority import AuthorizationServer, Exchange
from corridor.server.authorize import AuthorizationPages
from corridor.server.discovery import server_metadata
from corridor.server.enrolment import ENROL_PATH, EnrolmentPages
from corridor.server.health import HEALTH_PATH, READY_PATH, Readiness, healthz
from corridor.server.introspection import introspect, revoke
from corridor.server.metrics import UNMATCHED, Metrics
from corridor.server.mtls import registered_certificates
from corridor.server.pages import error_page
from corridor.server.par import pushed_authorization
from corridor.server.responses import NO_STORE, run_endpoint
from corridor.server.settings import is_loopback_url
from corridor.server.token import token
from corridor.server.userinfo import userinfo
from corridor.store.engine import DATABASE_UNAVAILABLE
from corridor.transport.certificates import ProxyCertificateHeaders

log = escaping_logger("corridor.server")  # issue 13 E1
access_log = escaping_logger("corridor.access")  # issue 13 E1

#: FAPI2 5.2.3-1: HSTS on every response, two years, subdomains included.
HSTS = "max-age=63072000; includeSubDomains"


def hsts_for(issuer: str) -> str:
    """HSTS for this issuer: ``preload`` (asking browsers to build the host into their lists,
    hstspreload.org) only for a public one; a loopback issuer cannot be preloaded (issue 18)."""
    return HSTS if is_loopback_url(issuer) else f"{HSTS}; preload"


class SecurityHeaders:
    """HSTS and no-sniff on every response; an unexpected exception becomes an opaque 500
    with an error id and a log line, never a stack trace (design.md 8).

    Outermost, it also opens the request's facts (core/request_context.py: the request id its
    evidence records take, ``X-Request-Id``), and when the answer is complete writes its access
    log line (method, path without query, status, latency, client address, client and rule when
    known) and, given ``metrics``, counts it by route (issue 18)."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None, hsts: str = HSTS) -> None:
        self.app = app
        self.metrics = metrics
        self.hsts = hsts.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 500
        arrived = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                for name, value in (
                    (b"strict-transport-security", self.hsts),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-request-id", facts.request_id.encode()),
                ):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        with request_facts() as facts:
            try:
                await self.app(scope, receive, send_with_headers)
            except Exception:
                error_id = new_id()
                log.exception(
                    "unexpected error %s on %s %s", error_id, scope.get("method"), scope.get("path")
                )
                if started:
                    raise
                response = JSONResponse(
                    {"error": "server_error", "error_description": f"unexpected error, id {error_id}"},
                    status_code=500,
                )
                facts.error = "server_error"
                await response(scope, receive, send_with_headers)
            finally:
                self._observe(scope, facts, status, time.perf_counter() - arrived)

    def _observe(self, scope: Scope, facts: RequestFacts, status: int, seconds: float) -> None:
        endpoint = facts.route or UNMATCHED
        if self.metrics is not None:
            self.metrics.request(endpoint, status, facts.error, seconds)
        client = scope.get("client")
        address = client[0] if client else None
        # Method, path and status only: queries and bodies may carry credentials.
        access_log.info(
            "%s %s %s %.1fms request=%s client=%s rule=%s",
            scope.get("method"),
            scope.get("path"),
            status,
            seconds * 1000,
            facts.request_id,
            facts.client_id,
            facts.rule,
            extra={
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "latency_ms": round(seconds * 1000, 3),
                "client_address": address,
                "client_id": facts.client_id,
                "rule": facts.rule,
                "endpoint": endpoint,
            },
        )


class RouteLabel:
    """Innermost: notes the path template of the route that matched (Starlette's router puts it
    in the scope it was given), the bounded label of the request's metrics and log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            facts = current_facts()
            if facts is not None and isinstance(route, Route):
                facts.route = route.path


RETRY_AFTER_SECONDS = 5


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """503 with Retry-After (RFC 9110 15.6.4) instead of a 500: the request may be retried as is.
    Pages get the safe error page, endpoints the OAuth JSON error (``temporarily_unavailable``)."""
    server: AuthorizationServer | None = getattr(request.app.state, "corridor_server", None)
    if server is not None:  # issue 18: DB errors and outage 503s
        server.metrics.database_errors.labels("request").inc()
        server.metrics.unavailable.inc()
    facts = current_facts()
    if facts is not None:
        facts.error = "temporarily_unavailable"
    log.warning("database unavailable: %s %s: %s", request.method, request.url.path, type(exc).__name__)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    description = "The service is temporarily unavailable. Try again in a few seconds."
    if request.url.path.startswith(("/authorize", "/interaction/", "/admin/", "/enrol")):
        page = error_page("temporarily_unavailable", description, status=503)
        page.headers.update(headers)
        return page
    body = {"error": "temporarily_unavailable", "error_description": description}
    return JSONResponse(body, status_code=503, headers={**NO_STORE, **headers})


def create_app(
    server: AuthorizationServer, purge_interval: float = 600.0, trust_refresh_interval: float = 5.0
) -> Starlette:
    """Build the AS application. ``server.start()`` runs at startup (migrations, keys)."""
    pages = AuthorizationPages(server)
    admin = AdminPages(server)
    enrolment = EnrolmentPages(server)

    def endpoint(path: str, event: str, handler: Callable[[Exchange], Response]) -> Any:
        async def call(request: Request) -> Response:
            return await run_endpoint(request, server, path, event, handler)

        return call

    async def metadata(_: Request) -> Response:
        return JSONResponse(server_metadata(server), headers={"Cache-Control": "max-age=300"})

    async def jwks(_: Request) -> Response:
        keys = await run_in_threadpool(server.keys.public_jwks, True)
        return JSONResponse(keys, headers={"Cache-Control": "max-age=300"})

    async def userinfo_endpoint(request: Request) -> Response:
        return await userinfo(request, server)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "not_found"}, status_code=404)

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "method_not_allowed"}, status_code=405)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(server.start)

        async def every(
            seconds: float, what: str, job: Callable[[], object], first_wait: bool = False
        ) -> None:
            # A failed round is retried next round; requests go on, and what was loaded stays.
            if first_wait:
                await asyncio.sleep(seconds)
            while True:
                try:
                    await run_in_threadpool(job)
                except DATABASE_UNAVAILABLE as exc:  # an outage: one line, not a traceback a minute
                    server.metrics.database_errors.labels(what).inc()
                    log.warning("%s: database unavailable (%s)", what, type(exc).__name__)
                except Exception:
                    log.exception("%s failed", what)
                await asyncio.sleep(seconds)

        def purge() -> None:
            server.purge()

        def flush_refusals() -> None:
            server.audit.flush(server.now())

        def checkpoint() -> None:
            now = server.now()
            chain.checkpoint(server.store, server.keys.signing, server.settings.issuer, now)
            server.metrics.checkpointed(now)

        def follow_registrations() -> None:
            # The mTLS trust store follows client registration (transport/trust.py).
            if server.mtls_trust is not None:
                server.mtls_trust.refresh(registered_certificates(server.store))

        tasks = [
            asyncio.create_task(every(purge_interval, "purge", purge)),
            asyncio.create_task(
                every(trust_refresh_interval, "mTLS trust store refresh", follow_registrations)
            ),
            asyncio.create_task(
                every(server.settings.audit_checkpoint_interval, "audit checkpoint", checkpoint, True)
            ),
            # Aggregate records of unauthenticated refusals once their window closed (issue 13 B4).
            asyncio.create_task(
                every(server.settings.audit_refusal_window, "audit refusal counts", flush_refusals, True)
            ),
            # Rotations made by another instance or the CLI (server/keys.py).
            asyncio.create_task(
                every(server.settings.key_refresh_interval, "signing key reload", server.keys.reload, True)
            ),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            server.close()

    readiness = Readiness(server)
    routes = [
        # Issue 18: liveness and readiness (server/health.py); never audited or throttled.
        Route(HEALTH_PATH, healthz, methods=["GET"]),
        Route(READY_PATH, readiness.endpoint, methods=["GET"]),
        Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
        Route("/jwks", jwks, methods=["GET"]),
        Route("/par", endpoint("/par", Event.PAR, pushed_authorization), methods=["POST"]),
        Route("/token", endpoint("/token", Event.TOKEN, token), methods=["POST"]),
        Route("/introspect", endpoint("/introspect", Event.INTROSPECTION, introspect), methods=["POST"]),
        Route("/revoke", endpoint("/revoke", Event.REVOCATION, revoke), methods=["POST"]),
        Route("/userinfo", userinfo_endpoint, methods=["GET", "POST"]),
        Route("/authorize", pages.get_authorize, methods=["GET"]),
        Route("/interaction/{interaction_id}", pages.get_interaction, methods=["GET"]),
        Route("/interaction/{interaction_id}/login", pages.post_login, methods=["POST"]),
        Route("/interaction/{interaction_id}/consent", pages.post_consent, methods=["POST"]),
        Route("/interaction/{interaction_id}/second-factor", pages.post_second_factor, methods=["POST"]),
        Route("/interaction/{interaction_id}/passkey", pages.post_passkey, methods=["POST"]),
        Route("/interaction/{interaction_id}/passkey-enrol", pages.get_enrolment, methods=["GET"]),
        Route("/interaction/{interaction_id}/passkey-enrol", pages.post_enrolment, methods=["POST"]),
        Route(ENROL_PATH, enrolment.get, methods=["GET"]),
        Route(ENROL_PATH, enrolment.post, methods=["POST"]),
        Route("/admin/trace", admin.get_trace, methods=["GET"]),
        Route("/admin/login", admin.post_login, methods=["POST"]),
        Route("/admin/second-factor", admin.post_second_factor, methods=["POST"]),
        Route("/admin/passkey", admin.post_passkey, methods=["POST"]),
        Route("/admin/logout", admin.post_logout, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            404: not_found,
            405: method_not_allowed,
            **dict.fromkeys(DATABASE_UNAVAILABLE, database_unavailable),
        },
    )
    app.state.corridor_server = server
    app.add_middleware(RouteLabel)
    app.add_middleware(ProxyCertificateHeaders, trusted_proxies=server.settings.trusted_proxies)
    app.add_middleware(SecurityHeaders, metrics=server.metrics, hsts=hsts_for(server.settings.issuer))
    return app
