"""A protected test API (Starlette + corridor.resource) on its own TLS port."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corridor.core.clock import Clock
from corridor.policy.cedar import minor_units
from corridor.resource.asgi import ProtectedResource, decide, protected, require
from corridor.resource.guard import ResourceGuard, ResourceSettings, insufficient_scope
from corridor.transport.listeners import uvicorn_server
from corridor.transport.tls import TLS12_CIPHERS, DevTLS
from tests.support import free_socket

#: The API's external URL; DPoP proofs name it (RFC 9449 4.3-9), whatever port serves it here.
PUBLIC_URL = "https://api.example.org"


@protected(require(scope="accounts"))
async def accounts(request: Request) -> Response:
    token = request.state.access_token
    return JSONResponse(
        {"accounts": ["DE89 3704 0044 0532 0130 00"], "sub": token.subject, "client": token.client_id}
    )


@protected(require(scope="payments", details={"type": "payment_initiation"}))
async def payments(request: Request) -> Response:
    """The amount asked for must be covered by a granted payment_initiation entry."""
    token = request.state.access_token
    form = await request.json()
    try:
        amount, currency = Decimal(str(form["amount"])), str(form["currency"])
    except (KeyError, InvalidOperation, TypeError):
        return JSONResponse({"error": "invalid_request"}, status_code=400)
    for entry in token.authorization_details:
        granted = entry.get("instructedAmount", {})
        if (
            entry.get("type") == "payment_initiation"
            and granted.get("currency") == currency
            and amount <= Decimal(str(granted.get("amount", "0")))
        ):
            return JSONResponse({"status": "accepted", "amount": str(amount)}, status_code=201)
    raise insufficient_scope("the payment exceeds the authorized amount")


@protected(require(acr="mfa"))
async def admin(request: Request) -> Response:
    return JSONResponse({"ok": True})


@protected(require(acr="passkey"))
async def vault(request: Request) -> Response:
    """A route only a passkey sign-in may use (step-up to the strongest level, RFC 9470)."""
    return JSONResponse({"ok": True, "acr": request.state.access_token.claims["acr"]})


@protected(require(action="list_accounts:read"))
async def tool_read(request: Request) -> Response:
    """A tool action with no scope of its own: only an agent_tool entry can grant it (issue 13 D4)."""
    return JSONResponse({"ok": True})


@protected(require(action="list_accounts:export"))
async def tool_export(request: Request) -> Response:
    return JSONResponse({"ok": True})


@protected(require(action="list_accounts"))
async def tool_bare(request: Request) -> Response:
    """A route that names the tool but not which of its actions it performs."""
    return JSONResponse({"ok": True})


@protected(require())
async def tool_pay(request: Request) -> Response:
    """A payment decided by the policies alone (no scope): any approved payment_initiation entry
    may cover it (issue 13 D4); the answer names the entry it went against."""
    body = await request.json()
    values = {
        "amount_minor": minor_units(str(body.get("amount"))),
        "currency": str(body.get("currency")),
        "creditor": str(body.get("creditorName")),
        "creditor_account": "",
    }
    if values["amount_minor"] is None:
        return JSONResponse({"error": "invalid_request"}, status_code=400)
    decision = decide(request, "make_payment", values=values)
    return JSONResponse({"status": "accepted", "entry": decision.payment_entry}, status_code=201)


@dataclass
class RunningRS:
    url: str
    guard: ResourceGuard
    port: int


@contextmanager
def running_api(
    settings: ResourceSettings | Callable[[str], ResourceSettings],
    tls: DevTLS,
    client_ca: Path | str,
    clock: Clock | None = None,
) -> Iterator[RunningRS]:
    """The test API behind ProtectedResource, on HTTPS with an optional client certificate."""
    sock = free_socket()
    port = sock.getsockname()[1]
    url = f"https://localhost:{port}"
    if callable(settings):
        settings = settings(url)  # settings that name the API's own URL
    guard = ResourceGuard(settings, clock=clock)
    app = Starlette(
        routes=[
            Route("/accounts", accounts),
            Route("/payments", payments, methods=["POST"]),
            Route("/admin", admin),
            Route("/vault", vault),
            Route("/tools/read", tool_read),
            Route("/tools/export", tool_export),
            Route("/tools/bare", tool_bare),
            Route("/tools/pay", tool_pay, methods=["POST"]),
        ]
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    context.verify_mode = ssl.CERT_OPTIONAL  # certificate-bound tokens (RFC 8705 3)
    context.load_verify_locations(str(client_ca))
    server = uvicorn_server(
        ProtectedResource(app, guard), "127.0.0.1", port, context, log_level="warning", lifespan="off"
    )
    # uvicorn annotates int | None but hands it to asyncio.wait_for, which takes float seconds.
    server.config.timeout_graceful_shutdown = 0.2  # type: ignore[assignment]
    thread = threading.Thread(target=asyncio.run, args=(server.serve([sock]),), daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.02)
    try:
        yield RunningRS(url, guard, port)
    finally:
        server.should_exit = True
        thread.join(10)
