"""The README's resource-server snippets (examples/readme/, included verbatim: tests/test_docs.py)
run as written: the app answers its RFC 9728 metadata and refuses a call without a token with the
challenge naming it. The client snippet runs a real flow in tests/resource/test_by_hand.py."""

from __future__ import annotations

import asyncio

import httpx
from examples.readme import protect_api, tool_actions

from corridor.resource.asgi import ProtectedResource


def test_the_protected_api_of_the_readme_runs() -> None:
    paths = {getattr(r, "path", None) for r in protect_api.app.routes}
    assert tool_actions.accounts.__name__ == "accounts"  # imported: its routes are on the same app
    assert {"/payments", "/accounts", "/transfers"} <= paths
    asyncio.run(asks(protect_api.asgi_app))


async def asks(app: ProtectedResource) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.example.com") as http:
        meta = await http.get("/.well-known/oauth-protected-resource")
        assert meta.status_code == 200, meta.text
        assert meta.json()["resource"] == "https://api.example.com"
        assert meta.json()["authorization_servers"] == ["https://as.example.com"]
        for method, path in (("POST", "/payments"), ("GET", "/accounts"), ("POST", "/transfers")):
            refused = await http.request(method, path)
            assert refused.status_code == 401, (path, refused.text)
            challenge = refused.headers["www-authenticate"]
            assert (
                'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'
                in challenge
            )
