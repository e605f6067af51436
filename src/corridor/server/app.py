"""The ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corridor.audit import chain
from corridor.audit.events import Event
from corridor.core.randomness import new_id
from corridor.core.request_context import RequestFacts, close_facts, current_facts, open_facts
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
from corridor.server.offload import off_loop
from corridor.server.pages import error_page
from corridor.server.par import pushed_authorization
from corridor.server.responses import FastJSONResponse, json_response, run_endpoint
from corridor.server.settings import is_loopback_url
from corridor.server.token import token
from corridor.server.userinfo import userinfo
from corridor.store.engine import DATABASE_UNAVAILABLE
from corridor.transport.certificates import ForwardedCertificates

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
        self.headers = ((b"strict-transport-security", hsts.encode()), *_FIXED_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 500
        arrived = time.perf_counter()
        facts, token = open_facts()

        async def send_with_headers(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                headers += [header for header in self.headers if header[0] not in names]
                if b"x-request-id" not in names:
                    headers.append((b"x-request-id", facts.request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            error_id = new_id()
            log.exception("unexpected error %s on %s %s", error_id, scope.get("method"), scope.get("path"))
            if started:
                raise
            response = FastJSONResponse(
                {"error": "server_error", "error_description": f"unexpected error, id {error_id}"},
                status_code=500,
            )
            facts.error = "server_error"
            await response(scope, receive, send_with_headers)
        finally:
            self._observe(scope, facts, status, time.perf_counter() - arrived)
            close_facts(token)

    def _observe(self, scope: Scope, facts: RequestFacts, status: int, seconds: float) -> None:
        endpoint = facts.route or UNMATCHED
        if self.metrics is not None:
            self.metrics.request(endpoint, status, facts.error, seconds)
        if not access_log.isEnabledFor(logging.INFO):  # e.g. log_level warning: no line to build
            return
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


#: With HSTS (:class:`SecurityHeaders`), on every response: FAPI2 5.2.3, RFC 9700 4.16.
_FIXED_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))

RETRY_AFTER_SECONDS = 5

#: The pages among the paths (the 503 of an outage is the safe error page there, JSON elsewhere).
PAGE_PREFIXES = ("/authorize", "/interaction/", "/admin/", "/enrol")


def database_unavailable(server: AuthorizationServer, request: Request, exc: Exception) -> Response:
    """503 with Retry-After (RFC 9110 15.6.4) instead of a 500: the request may be retried as is.
    Pages get the safe error page, endpoints the OAuth JSON error (``temporarily_unavailable``)."""
    server.metrics.database_errors.labels("request").inc()  # issue 18: DB errors and outage 503s
    server.metrics.unavailable.inc()
    facts = current_facts()
    if facts is not None:
        facts.error = "temporarily_unavailable"
    log.warning("database unavailable: %s %s: %s", request.method, request.url.path, type(exc).__name__)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    description = "The service is temporarily unavailable. Try again in a few seconds."
    if request.url.path.startswith(PAGE_PREFIXES):
        page = error_page("temporarily_unavailable", description, status=503)
        page.headers.update(headers)
        return page
    body = {"error": "temporarily_unavailable", "error_description": description}
    return json_response(body, status=503, headers=headers)


Handler = Callable[[Request], Awaitable[Response]]
Lifespan = Callable[[], AbstractAsyncContextManager[None]]

#: The path template of the interaction's routes, ``/interaction/{interaction_id}`` plus these.
INTERACTION = "/interaction/"


class Routes:
    """The AS's routes as one ASGI callable (issue 19: instead of Starlette's router and its
    middleware stack, which cost a regex match per route and a wrapper per layer per request).

    A path is looked up in a dictionary; the interaction's paths
    (``/interaction/{interaction_id}[/step]``, the id one path segment) are split directly. A
    path that matches nothing is a JSON 404, a method the path does not serve a JSON 405; GET
    also answers HEAD (as Starlette's routes did). On the way in, a forwarded client certificate
    is taken only from a trusted proxy (transport/certificates.py); the route's template becomes
    the label of the request's metrics and log line. An unavailable database is a 503 with
    Retry-After (:func:`database_unavailable`); anything else unexpected is left to
    :class:`SecurityHeaders`, outside. ``lifespan`` runs around the ASGI lifespan protocol."""

    def __init__(
        self,
        server: AuthorizationServer,
        routes: dict[str, dict[str, Handler]],
        lifespan: Lifespan,
        trusted_proxies: Iterable[str] = (),
    ) -> None:
        self.server = server
        self.lifespan = lifespan
        self.certificates = ForwardedCertificates(trusted_proxies)
        self.exact: dict[str, dict[str, Handler]] = {}
        #: ``/interaction/{interaction_id}`` and its steps, by the part after the id ("" for none).
        self.interaction: dict[str, tuple[str, dict[str, Handler]]] = {}
        for template, methods in routes.items():
            methods = dict(methods)
            if "GET" in methods:
                methods.setdefault("HEAD", methods["GET"])
            if template.startswith(INTERACTION + "{interaction_id}"):
                step = template[len(INTERACTION + "{interaction_id}") :]
                self.interaction[step] = (template, methods)
            else:
                assert "{" not in template, template
                self.exact[template] = methods

    def match(self, path: str) -> tuple[str, dict[str, Handler], dict[str, str]] | None:
        """The route template, its handlers by method, and the path parameters."""
        methods = self.exact.get(path)
        if methods is not None:
            return path, methods, {}
        if path.startswith(INTERACTION):
            interaction_id, slash, step = path[len(INTERACTION) :].partition("/")
            if interaction_id:
                found = self.interaction.get(slash + step)
                if found is not None:
                    return found[0], found[1], {"interaction_id": interaction_id}
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":  # no websockets here
            await send({"type": "websocket.close", "code": 1000})
            return
        scope = self.certificates.scope(scope)
        found = self.match(scope["path"])
        if found is None:
            response: Response = FastJSONResponse({"error": "not_found"}, status_code=404)
        else:
            template, methods, params = found
            facts = current_facts()
            if facts is not None:
                facts.route = template
            handler = methods.get(scope["method"])
            if handler is None:
                response = FastJSONResponse({"error": "method_not_allowed"}, status_code=405)
            else:
                scope["path_params"] = params
                request = Request(scope, receive)
                try:
                    response = await handler(request)
                except DATABASE_UNAVAILABLE as exc:
                    response = database_unavailable(self.server, request, exc)
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol around ``self.lifespan``."""
        started = False
        await receive()  # lifespan.startup
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except BaseException:
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            await send({"type": failed, "message": traceback.format_exc()})
            raise
        await send({"type": "lifespan.shutdown.complete"})


def create_app(
    server: AuthorizationServer, purge_interval: float = 600.0, trust_refresh_interval: float = 5.0
) -> ASGIApp:
    """Build the AS application. ``server.start()`` runs at startup (migrations, keys)."""
    pages = AuthorizationPages(server)
    admin = AdminPages(server)
    enrolment = EnrolmentPages(server)

    def endpoint(path: str, event: str, handler: Callable[[Exchange], Response]) -> Any:
        async def call(request: Request) -> Response:
            return await run_endpoint(request, server, path, event, handler)

        return call

    async def metadata(_: Request) -> Response:
        return FastJSONResponse(server_metadata(server), headers={"Cache-Control": "max-age=300"})

    async def jwks(_: Request) -> Response:
        keys = await off_loop(lambda: server.keys.public_jwks(True))
        return FastJSONResponse(keys, headers={"Cache-Control": "max-age=300"})

    async def userinfo_endpoint(request: Request) -> Response:
        return await userinfo(request, server)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
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
    routes: dict[str, dict[str, Handler]] = {
        # Issue 18: liveness and readiness (server/health.py); never audited or throttled.
        HEALTH_PATH: {"GET": healthz},
        READY_PATH: {"GET": readiness.endpoint},
        "/.well-known/openid-configuration": {"GET": metadata},
        "/.well-known/oauth-authorization-server": {"GET": metadata},
        "/jwks": {"GET": jwks},
        "/par": {"POST": endpoint("/par", Event.PAR, pushed_authorization)},
        "/token": {"POST": endpoint("/token", Event.TOKEN, token)},
        "/introspect": {"POST": endpoint("/introspect", Event.INTROSPECTION, introspect)},
        "/revoke": {"POST": endpoint("/revoke", Event.REVOCATION, revoke)},
        "/userinfo": {"GET": userinfo_endpoint, "POST": userinfo_endpoint},
        "/authorize": {"GET": pages.get_authorize},
        "/interaction/{interaction_id}": {"GET": pages.get_interaction},
        "/interaction/{interaction_id}/login": {"POST": pages.post_login},
        "/interaction/{interaction_id}/consent": {"POST": pages.post_consent},
        "/interaction/{interaction_id}/second-factor": {"POST": pages.post_second_factor},
        "/interaction/{interaction_id}/passkey": {"POST": pages.post_passkey},
        "/interaction/{interaction_id}/passkey-enrol": {
            "GET": pages.get_enrolment,
            "POST": pages.post_enrolment,
        },
        ENROL_PATH: {"GET": enrolment.get, "POST": enrolment.post},
        "/admin/trace": {"GET": admin.get_trace},
        "/admin/login": {"POST": admin.post_login},
        "/admin/second-factor": {"POST": admin.post_second_factor},
        "/admin/passkey": {"POST": admin.post_passkey},
        "/admin/logout": {"POST": admin.post_logout},
    }
    app = Routes(server, routes, lifespan, server.settings.trusted_proxies)
    return SecurityHeaders(app, metrics=server.metrics, hsts=hsts_for(server.settings.issuer))
