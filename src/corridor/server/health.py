"""Liveness and readiness for load balancers and orchestrators (issue 18; docs/observability.md).

``/healthz`` answers while the process serves requests: no database, no keys, nothing to wait
for. ``/readyz`` answers 200 when this instance can serve a flow: it started (migrations, keys,
the nonce secret), has a signing key loaded, and its database answers a trivial read within
``readiness_timeout`` seconds; otherwise 503 with one short reason. The database read runs in a
worker thread with a time bound, and probes arriving while one read is still out wait for that
one (at most one thread per process is ever held by a hung database), so a hung database stalls
neither the event loop nor the thread pool. Neither endpoint is audited or throttled; both keep
the security headers and say ``Cache-Control: no-store``.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corridor.core.text import escaping_logger
from corridor.server.authority import AuthorizationServer
from corridor.server.metrics import CONTENT_TYPE_LATEST

log = escaping_logger("corridor.server")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
_NO_STORE = {"Cache-Control": "no-store"}


async def healthz(_: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"}, headers=_NO_STORE)


class Readiness:
    """The readiness probe of one AS: one database read in flight at a time, bounded in time."""

    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self._read: asyncio.Task[None] | None = None

    async def reason(self) -> str | None:
        """Why this instance is not ready, or None when it is."""
        server = self.server
        if server.nonces is None:
            return "starting"
        if not server.keys.loaded:
            return "keys"
        if self._read is None or self._read.done():
            self._read = asyncio.ensure_future(run_in_threadpool(server.store.ping))
        try:
            await asyncio.wait_for(asyncio.shield(self._read), server.settings.readiness_timeout)
        except TimeoutError:
            log.warning("readiness: no answer from the database in %ss", server.settings.readiness_timeout)
            server.metrics.database_errors.labels("readiness").inc()
            return "database"
        except Exception as exc:  # whatever the driver raised: not ready, one line (never a 500)
            log.warning("readiness: database unavailable (%s)", type(exc).__name__)
            server.metrics.database_errors.labels("readiness").inc()
            return "database"
        return None

    async def endpoint(self, _: Request) -> Response:
        reason = await self.reason()
        if reason is None:
            return JSONResponse({"status": "ready"}, headers=_NO_STORE)
        self.server.metrics.not_ready.labels(reason).inc()
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503, headers=_NO_STORE)


def observability_app(server: AuthorizationServer) -> Starlette:
    """The metrics listener's app (``metrics_port``, plain HTTP on ``metrics_host``): the
    Prometheus text format at ``/metrics``, and the same ``/healthz`` and ``/readyz`` as the
    main listener (for probes that should not need TLS)."""
    readiness = Readiness(server)

    async def metrics(_: Request) -> Response:
        return Response(server.metrics.exposition(), media_type=CONTENT_TYPE_LATEST, headers=_NO_STORE)

    async def not_found(_: Request, __: Exception) -> Response:
        return JSONResponse({"error": "not_found"}, status_code=404)

    return Starlette(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route(HEALTH_PATH, healthz, methods=["GET"]),
            Route(READY_PATH, readiness.endpoint, methods=["GET"]),
        ],
        exception_handlers={404: not_found},
    )
