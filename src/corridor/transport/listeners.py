"""Listeners on uvicorn with our own TLS contexts. Every listener (the AS's main and mTLS
listeners, a resource server's) is built by :func:`uvicorn_server`, with the same input and time
bounds (design.md 5c): :class:`BoundedHttpToolsProtocol`; :func:`bind`, :func:`run_loop` and
:func:`run_workers` give it sockets, an event loop and forked workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, cast

import uvicorn
import uvloop
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from corridor.core.text import escaping_logger
from corridor.transport.certificates import TLSExtensionHttpToolsProtocol

log = escaping_logger("corridor.serve")  # issue 13 E1
#: uvicorn's loggers (its error log quotes what it refuses); its access log is off (below).
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

#: design.md 5c: the request line and headers, 16 KiB in all.
MAX_REQUEST_HEAD_BYTES = 16 * 1024


class ListenerTimeouts(Protocol):
    """Where the time limits are configured (the AS's ``Settings``, design.md 5c)."""

    @property
    def request_head_timeout(self) -> float: ...
    @property
    def request_body_timeout(self) -> float: ...
    @property
    def keep_alive_timeout(self) -> float: ...


@dataclass(frozen=True)
class ListenerLimits:
    """How much and how long a connection may take (design.md 5c, issue 13 B1 and B2)."""

    max_head_bytes: int = MAX_REQUEST_HEAD_BYTES
    head_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0

    @classmethod
    def from_settings(cls, settings: ListenerTimeouts) -> ListenerLimits:
        return cls(
            head_timeout=settings.request_head_timeout,
            body_timeout=settings.request_body_timeout,
            keep_alive_timeout=settings.keep_alive_timeout,
        )


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing an oversized head."""


class BoundedHttpToolsProtocol(TLSExtensionHttpToolsProtocol):
    """uvicorn's httptools protocol (with the TLS extension) with bounded input and time.

    httptools (llhttp) has no size limit (h11 has ``h11_max_incomplete_event_size``) and
    accumulates a header value by concatenation, so one client streaming a huge header costs
    memory and stalls the event loop for everyone. Here the bytes of a request head are counted
    as they arrive and the head is refused (431, then close) once it is over the cap; a head
    that completes inside one read is measured from what the parser made of it. One timer per
    connection bounds the time to a complete head (from the handshake, or from the first byte
    after an idle keep-alive) and then to a complete body; uvicorn's own keep-alive timer closes
    idle connections between requests.
    """

    limits: ClassVar[ListenerLimits] = ListenerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._head_too_large = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm(self.limits.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            if self._deadline is None:  # the first byte after an idle keep-alive
                self._arm(self.limits.head_timeout, self._head_timed_out)
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.limits.max_head_bytes:
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._disarm()
        if self._parsed_head_size() > self.limits.max_head_bytes:
            self._head_too_large = True
            raise _HeadTooLarge  # the parser stops; uvicorn answers through send_400_response
        super().on_headers_complete()
        self._arm(self.limits.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse_head()
            return
        super().send_400_response(msg)

    def _parsed_head_size(self) -> int:
        """The request line and headers as sent, less optional whitespace."""
        line = len(self.parser.get_method()) + len(self.url) + len(b"  HTTP/1.1\r\n")
        return line + sum(len(name) + len(value) + 4 for name, value in self.headers) + 2

    def _refuse_head(self) -> None:
        """design.md 5c, RFC 6585 5: request line and headers over the cap."""
        self._reading_head = False
        self._disarm()
        log.warning("request head from %s over %d bytes: 431", self._peer(), self.limits.max_head_bytes)
        self._answer_and_close(431, "Request line and headers are over 16 KiB.")

    def _head_timed_out(self) -> None:
        """design.md 5c, RFC 9110 15.5.9: no complete request head in time."""
        self._deadline = None
        if self.transport.is_closing():
            return
        idle = self._head_bytes == 0  # e.g. a browser's preconnected socket: closed silently
        if not idle and (self.cycle is None or self.cycle.response_complete):
            self._answer_and_close(408, "No complete request in time.")
        else:  # nothing to answer, or a response is still being written (no status line inside it)
            self.transport.close()

    def _body_timed_out(self) -> None:
        """design.md 5c: the request body did not arrive in time; the app sees a disconnect."""
        self._deadline = None
        if not self.transport.is_closing():
            log.warning("request body from %s not complete in time; closing", self._peer())
            self.transport.close()

    def _answer_and_close(self, status: int, message: str) -> None:
        body = message.encode("ascii")
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(content))
        self.transport.close()

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _peer(self) -> str:
        return self.client[0] if self.client else "?"


def bounded_protocol(limits: ListenerLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for one listener (uvicorn instantiates it per connection)."""
    return cast(
        "type[BoundedHttpToolsProtocol]",
        type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits}),
    )


def uvicorn_server(
    app: ASGIApp,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    log_level: str = "info",
    lifespan: Literal["on", "off"] = "on",
    limits: ListenerLimits | None = None,
) -> uvicorn.Server:
    """A uvicorn server whose TLS context is ours (TLS 1.2+ with BCP 195 suites only) and whose
    protocol hands the client certificate to the app (transport/certificates.py) and bounds what a
    connection may send and for how long (:class:`BoundedHttpToolsProtocol`).

    uvicorn builds its own context from file names; it has no minimum-version or
    cipher-policy knobs that cover everything we need, so we load the config and
    put our context in its place before the server starts. ``ssl_context`` None serves plain
    HTTP: only for the metrics listener, on loopback by default (server/serve.py).
    """
    limits = limits or ListenerLimits()
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
        # Issue 18: uvicorn's loggers propagate to the root handler of core/logs.py (one format).
        log_config=None,
        lifespan=lifespan,
        http=bounded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type]  # a float works
        timeout_graceful_shutdown=3,
    )
    config.load()
    config.ssl = ssl_context  # None: plain HTTP (the loopback metrics listener only, issue 18)
    for name in UVICORN_LOGGERS:  # issue 13 E1: after load(), which configures them
        escaping_logger(name)
    return uvicorn.Server(config)


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


def run_workers(count: int, worker: Callable[[int], None], *, min_uptime: float = 2.0) -> int:
    """Run ``worker`` in ``count`` forked processes that share the sockets bound before the call;
    each is given its index (0 to ``count - 1``; a replacement takes the index of the one it
    replaces), e.g. to pick a socket of its own (the metrics listener, issue 18).

    Each worker is a whole AS (its own event loop, pool and caches; everything shared lives in the
    database, design.md 5b), so the parent only supervises: SIGTERM/SIGINT go to every worker, and
    a worker that dies is replaced, unless workers keep dying right after starting (then all stop
    and the exit status is 1). Call it before anything opens database connections or threads.
    """
    children: dict[int, float] = {}
    indexes: dict[int, int] = {}
    stopping = False
    quick_deaths = 0

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                worker(index)
            except BaseException:  # a worker must never return into the supervisor
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        children[pid] = time.monotonic()
        indexes[pid] = index

    def stop(signum: int, _: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(count):
            spawn(index)
        failed = False
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started, index = children.pop(pid, None), indexes.pop(pid, 0)
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
            spawn(index)
        return 1 if failed else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
