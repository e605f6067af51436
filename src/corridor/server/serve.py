"""Running the AS on uvicorn with our own TLS context."""

from __future__ import annotations

import ssl

import uvicorn
from starlette.types import ASGIApp


def uvicorn_server(
    app: ASGIApp, host: str, port: int, ssl_context: ssl.SSLContext, log_level: str = "info"
) -> uvicorn.Server:
    """A uvicorn server whose TLS context is ours (TLS 1.2+ with BCP 195 suites only).

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
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    config.load()
    config.ssl = ssl_context
    return uvicorn.Server(config)
