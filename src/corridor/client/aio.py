"""The same client for asyncio code: every method of :class:`FapiClient` as a coroutine, run
off the event loop (the protocol work is small; the point is never to block the loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from corridor.client.flow import AuthorizationHandle, FapiAuth, FapiClient, TokenSet


class AsyncFapiClient:
    """``await client.start(...)``, ``await client.finish(...)``, ``await client.refresh(...)``;
    ``client.auth(tokens)`` works with ``httpx.AsyncClient``. The options are those of
    :class:`FapiClient` (``signed_request=True``, ``response_mode="jwt"`` for Message Signing),
    and so are ``start``'s (a per-request ``signed_request`` / ``response_mode``)."""

    def __init__(self, issuer: str, client_id: str, **options: Any) -> None:
        self.sync = FapiClient(issuer, client_id, **options)

    async def discover(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.sync.discover)

    async def start(self, scope: str = "openid", **options: Any) -> tuple[str, AuthorizationHandle]:
        return await asyncio.to_thread(lambda: self.sync.start(scope, **options))

    async def finish(
        self, callback_url: str, handle: AuthorizationHandle, extra: Mapping[str, str] | None = None
    ) -> TokenSet:
        return await asyncio.to_thread(lambda: self.sync.finish(callback_url, handle, extra=extra))

    @property
    def last_authorization_response(self) -> str | None:
        """The latest verified JARM response (FMS 5.4.2), as on :class:`FapiClient`."""
        return self.sync.last_authorization_response

    async def refresh(self, tokens: TokenSet) -> TokenSet:
        return await asyncio.to_thread(self.sync.refresh, tokens)

    def auth(self, tokens: TokenSet) -> FapiAuth:
        return self.sync.auth(tokens)

    @staticmethod
    async def discover_resource(resource_url: str, **options: Any) -> dict[str, Any]:
        return await asyncio.to_thread(lambda: FapiClient.discover_resource(resource_url, **options))

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)


__all__ = ["AsyncFapiClient"]
