"""design.md 8: an unexpected exception is an opaque 500 with an error id, never a trace."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from corridor.server.app import SecurityHeaders


async def broken(request: Request) -> Response:
    raise RuntimeError("secret internal detail")


async def call(path: str) -> httpx.Response:
    app = Starlette(routes=[Route("/boom", broken)])
    app.add_middleware(SecurityHeaders)  # as create_app does: inside Starlette's own error middleware
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://localhost") as http:
        return await http.get(path)


def test_unexpected_exception_is_opaque(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="corridor.server"):
        response = asyncio.run(call("/boom"))
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "server_error"
    error_id = body["error_description"].rsplit(" ", 1)[1]
    assert "secret internal detail" not in response.text and "Traceback" not in response.text
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert error_id in caplog.text  # the log line names the same id, with the detail for operators
