"""Running the AS on uvicorn with our own TLS contexts: the main listener (no client
certificates) and the mTLS listener for the RFC 8705 endpoint aliases."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

import uvicorn
import uvloop
from starlette.types import ASGIApp

from corridor.core.certificates import TLSExtensionHttpToolsProtocol
from corridor.core.text import escaping_logger
from corridor.server.authority import AuthorizationServer
from corridor.server.mtls import MarkListener, MtlsTrust

log = escaping_logger("corridor.serve")  # issue 13 E1
#: uvicorn's loggers (its error log quotes what it refuses); its access log is off (below).
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


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
        http=TLSExtensionHttpToolsProtocol,
        timeout_graceful_shutdown=3,
    )
    config.load()
    config.ssl = ssl_context
    for name in UVICORN_LOGGERS:  # issue 13 E1: after load(), which configures them
        escaping_logger(name)
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
        run_loop(self.serve())


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the server's event loop: uvloop (libuv, TLS in Cython), a dependency for speed."""
    uvloop.run(main)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket that forked workers inherit and accept on together."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_workers(count: int, worker: Callable[[], None], *, min_uptime: float = 2.0) -> int:
    """Run ``worker`` in ``count`` forked processes that share the sockets bound before the call.

    Each worker is a whole AS (its own event loop, pool and caches; everything shared lives in the
    database, design.md 5b), so the parent only supervises: SIGTERM/SIGINT go to every worker, and
    a worker that dies is replaced, unless workers keep dying right after starting (then all stop
    and the exit status is 1). Call it before anything opens database connections or threads.
    """
    children: dict[int, float] = {}
    stopping = False
    quick_deaths = 0

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                worker()
            except BaseException:  # a worker must never return into the supervisor
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        children[pid] = time.monotonic()

    def stop(signum: int, _: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(count):
            spawn()
        failed = False
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if started is None or stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            log.warning("worker %d exited (status %d); starting another", pid, code)
            quick_deaths = quick_deaths + 1 if time.monotonic() - started < min_uptime else 0
            if quick_deaths >= 3:
                log.error("workers keep dying at start; stopping")
                failed = True
                stop(signal.SIGTERM, None)
                continue
            spawn()
        return 1 if failed else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
