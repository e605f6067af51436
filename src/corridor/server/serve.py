"""Running the AS on uvicorn with our own TLS contexts: the main listener (no client
certificates) and the mTLS listener for the RFC 8705 endpoint aliases."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Literal

import uvicorn
from starlette.types import ASGIApp

from corridor.core.certificates import TLSExtensionProtocol
from corridor.server.authority import AuthorizationServer
from corridor.server.mtls import MarkListener, MtlsTrust


def uvicorn_server(
    app: ASGIApp,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    log_level: str = "info",
    lifespan: Literal["on", "off"] = "on",
) -> uvicorn.Server:
    """A uvicorn server whose TLS context is ours (TLS 1.2+ with BCP 195 suites only) and whose
    protocol hands the client certificate to the app (core/certificates.py).

    uvicorn builds its own context from file names; it has no minimum-version or
    cipher-policy knobs that cover everything we need, so we load the config and
    put our context in its place before the server starts.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
        # uvicorn's access log prints query strings (request_uri, codes in callbacks);
        # corridor.server.app logs method, path and status instead.
        access_log=False,
        lifespan=lifespan,
        http=TLSExtensionProtocol,
        timeout_graceful_shutdown=3,
    )
    config.load()
    config.ssl = ssl_context
    return uvicorn.Server(config)


class Listeners:
    """The main listener and the mTLS listener of one AS process, serving one app."""

    def __init__(
        self,
        app: ASGIApp,
        server: AuthorizationServer,
        main_context: ssl.SSLContext,
        trust: MtlsTrust,
        log_level: str = "info",
    ) -> None:
        settings = server.settings
        server.mtls_trust = trust
        self.main = uvicorn_server(app, settings.host, settings.port, main_context, log_level)
        self.mtls = uvicorn_server(
            MarkListener(app),
            settings.mtls_host,
            settings.mtls_port,
            trust.listener_context,
            log_level,
            lifespan="off",
        )

    async def serve(self, main_sockets: Any = None, mtls_sockets: Any = None) -> None:
        """Serve both; the main server owns signals and the lifespan, and stops the other."""
        mtls = asyncio.create_task(self.mtls._serve(mtls_sockets))  # no signal capture of its own
        try:
            await self.main.serve(main_sockets)
        finally:
            self.mtls.should_exit = True
            await mtls

    def run(self) -> None:
        asyncio.run(self.serve())
