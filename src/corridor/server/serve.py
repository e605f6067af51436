"""Running the AS on uvicorn: the main listener (no client certificates) and the mTLS listener
for the RFC 8705 endpoint aliases, both built by :func:`corridor.transport.listeners.uvicorn_server`
with the same input and time bounds (design.md 5c)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from starlette.types import ASGIApp

from corridor.server.authority import AuthorizationServer
from corridor.transport.listeners import ListenerLimits, run_loop, uvicorn_server
from corridor.transport.trust import MarkListener, MtlsTrust


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
        limits = ListenerLimits.from_settings(settings)
        self.main = uvicorn_server(app, settings.host, settings.port, main_context, log_level, limits=limits)
        self.mtls = uvicorn_server(
            MarkListener(app),
            settings.mtls_host,
            settings.mtls_port,
            trust.listener_context,
            log_level,
            lifespan="off",
            limits=limits,
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
        run_loop(self.serve())
