"""The ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corridor.core.certificates import ProxyCertificateHeaders
from corridor.core.randomness import new_id
from corridor.server.authority import AuthorizationServer, Exchange
from corridor.server.authorize import AuthorizationPages
from corridor.server.discovery import server_metadata
from corridor.server.introspection import introspect, revoke
from corridor.server.par import pushed_authorization
from corridor.server.responses import run_endpoint
from corridor.server.token import token
from corridor.server.userinfo import userinfo

log = logging.getLogger("corridor.server")
access_log = logging.getLogger("corridor.access")

#: FAPI2 5.2.3-1: HSTS on every response (preload-ready).
HSTS = "max-age=63072000; includeSubDomains; preload"


class SecurityHeaders:
    """HSTS and no-sniff on every response; an unexpected exception becomes an opaque 500
    with an error id and a log line, never a stack trace (design.md 8)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # Method, path and status only: queries and bodies may carry credentials.
                access_log.info("%s %s %s", scope.get("method"), scope.get("path"), message["status"])
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                for name, value in (
                    (b"strict-transport-security", HSTS.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            error_id = new_id()
            log.exception("unexpected error %s on %s %s", error_id, scope.get("method"), scope.get("path"))
            if started:
                raise
            response = JSONResponse(
                {"error": "server_error", "error_description": f"unexpected error, id {error_id}"},
                status_code=500,
            )
            await response(scope, receive, send_with_headers)


def create_app(
    server: AuthorizationServer, purge_interval: float = 600.0, trust_refresh_interval: float = 5.0
) -> Starlette:
    """Build the AS application. ``server.start()`` runs at startup (migrations, keys)."""
    pages = AuthorizationPages(server)

    def endpoint(path: str, event: str, handler: Callable[[Exchange], Response]) -> Any:
        async def call(request: Request) -> Response:
            return await run_endpoint(request, server, path, event, handler)

        return call

    async def metadata(_: Request) -> Response:
        return JSONResponse(server_metadata(server), headers={"Cache-Control": "max-age=300"})

    async def jwks(_: Request) -> Response:
        return JSONResponse(server.keys.public_jwks(), headers={"Cache-Control": "max-age=300"})

    async def userinfo_endpoint(request: Request) -> Response:
        return await userinfo(request, server)

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "not_found"}, status_code=404)

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "method_not_allowed"}, status_code=405)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(server.start)

        async def purge() -> None:
            while True:
                try:
                    await run_in_threadpool(server.store.purge_expired, server.now())
                except Exception:  # a failed purge is retried next round; requests go on
                    log.exception("purge failed")
                await asyncio.sleep(purge_interval)

        async def follow_registrations() -> None:
            # The mTLS trust store follows client registration (server/mtls.py).
            while server.mtls_trust is not None:
                try:
                    await run_in_threadpool(server.mtls_trust.refresh, server.store)
                except Exception:  # retried next round; the old trust store stays in force
                    log.exception("mTLS trust store refresh failed")
                await asyncio.sleep(trust_refresh_interval)

        tasks = [asyncio.create_task(purge()), asyncio.create_task(follow_registrations())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            server.close()

    routes = [
        Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
        Route("/jwks", jwks, methods=["GET"]),
        Route("/par", endpoint("/par", "par", pushed_authorization), methods=["POST"]),
        Route("/token", endpoint("/token", "token", token), methods=["POST"]),
        Route("/introspect", endpoint("/introspect", "introspection", introspect), methods=["POST"]),
        Route("/revoke", endpoint("/revoke", "revocation", revoke), methods=["POST"]),
        Route("/userinfo", userinfo_endpoint, methods=["GET", "POST"]),
        Route("/authorize", pages.get_authorize, methods=["GET"]),
        Route("/interaction/{interaction_id}", pages.get_interaction, methods=["GET"]),
        Route("/interaction/{interaction_id}/login", pages.post_login, methods=["POST"]),
        Route("/interaction/{interaction_id}/consent", pages.post_consent, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed},
    )
    app.add_middleware(ProxyCertificateHeaders, trusted_proxies=server.settings.trusted_proxies)
    app.add_middleware(SecurityHeaders)
    return app
