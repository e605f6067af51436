"""The README's resource-server snippets (examples/readme/, included verbatim: tests/test_docs.py)
run as written: the app answers its RFC 9728 metadata and refuses a call without a token with the
challenge naming it. The client snippet runs a real flow in tests/resource/test_by_hand.py."""

from __future__ import annotations

import asyncio

import httpx
from examples.readme import protect_api, tool_actions


def test_the_protected_api_of_the_readme_runs() -> None:
    assert tool_actions.app is protect_api.app  # the tool routes are on the same app
    asyncio.run(asks(protect_api.asgi_app))


async def asks(app: protect_api.ProtectedResource) -> None:
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
