"""Running the AS on uvicorn: the main listener (no client certificates), the mTLS listener
for the RFC 8705 endpoint aliases, and, when ``metrics_port`` is set, the plain-HTTP metrics
listener (issue 18, server/health.py), all built by
:func:`corridor.transport.listeners.uvicorn_server` with the same input and time bounds
(design.md 5c)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from starlette.types import ASGIApp

from corridor.server.authority import AuthorizationServer
from corridor.server.health import observability_app
from corridor.transport.listeners import ListenerLimits, run_loop, uvicorn_server
from corridor.transport.trust import MarkListener, MtlsTrust


class Listeners:
    """The main listener and the mTLS listener of one AS process, serving one app, and its
    metrics listener when ``metrics_port`` is set (with ``--workers N`` each worker is given a
    socket of its own, ``metrics_port + i`` for worker ``i``: per-process metrics)."""

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
        self.metrics = None
        if settings.metrics_port is not None:
            self.metrics = uvicorn_server(
                observability_app(server),
                settings.metrics_host,
                settings.metrics_port,
                None,
                log_level,
                lifespan="off",
                limits=limits,
            )

    async def serve(
        self, main_sockets: Any = None, mtls_sockets: Any = None, metrics_sockets: Any = None
    ) -> None:
        """Serve all; the main server owns signals and the lifespan, and stops the others."""
        others = [(self.mtls, mtls_sockets)] + ([(self.metrics, metrics_sockets)] if self.metrics else [])
        # no signal capture of their own
        tasks = [asyncio.create_task(server._serve(sockets)) for server, sockets in others]
        try:
            await self.main.serve(main_sockets)
        finally:
            for server, _ in others:
                server.should_exit = True
            await asyncio.gather(*tasks)

    def run(self) -> None:
        run_loop(self.serve())
