"""The authorization server's signing keys, as a resource server sees them: metadata
(RFC 8414 / OIDC Discovery) and its ``jwks_uri``, fetched over TLS with certificate checks
(FAPI2 5.2.1), cached, and refetched on an unknown ``kid`` at most every so often."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from corridor.core import strictjson
from corridor.core.clock import Clock
from corridor.core.jose import JoseFailure, check_public_jwk

WELL_KNOWN = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


class IssuerKeys:
    def __init__(
        self,
        issuer: str,
        http: httpx.Client,
        clock: Clock,
        cache_seconds: float = 300,
        min_refetch_interval: float = 30,
    ) -> None:
        self.issuer = issuer
        self.http = http
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.min_refetch_interval = min_refetch_interval
        self._lock = threading.RLock()  # keys() holds it while _fetch() reads metadata()
        self._keys: list[dict[str, Any]] = []
        self._fetched_at = -1e18
        self._jwks_uri: str | None = None
        self._metadata: dict[str, Any] | None = None

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 3: the metadata, whose issuer must be exactly the configured one (FAPI2 5.3.3.1-11)."""
        with self._lock:
            if self._metadata is not None:
                return self._metadata
        for path in WELL_KNOWN:
            response = self.http.get(self.issuer + path, headers={"Accept": "application/json"})
            if response.status_code != 200:
                continue
            metadata = strictjson.loads(response.content)  # bounded (issue 13 B5)
            if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
                raise JoseFailure("the authorization server metadata names another issuer")
            with self._lock:
                self._metadata = metadata
            return metadata
        raise JoseFailure("the authorization server metadata is not available")

    def _metadata_jwks_uri(self) -> str:
        jwks_uri = self.metadata().get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise JoseFailure("the authorization server metadata has no https jwks_uri")
        return jwks_uri

    def _fetch(self) -> list[dict[str, Any]]:
        if self._jwks_uri is None:
            self._jwks_uri = self._metadata_jwks_uri()
        response = self.http.get(self._jwks_uri, headers={"Accept": "application/json"})
        data = strictjson.loads(response.content)  # bounded (issue 13 B5)
        keys = []
        for key in data.get("keys", []) if isinstance(data, dict) else []:
            try:
                check_public_jwk(key)
            except JoseFailure:
                continue  # keys of other types or sizes are simply not usable (FAPI2 5.4.1)
            keys.append(key)
        return keys

    def signing_keys(self, refresh: bool = False) -> list[dict[str, Any]]:
        """Cached keys; ``refresh`` (an unknown kid) refetches unless that happened recently."""
        now = self.clock.now()
        with self._lock:
            age = now - self._fetched_at
            stale = age > self.cache_seconds or (refresh and age > self.min_refetch_interval)
            if not stale:
                return self._keys
            try:
                self._keys = self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                if not self._keys:
                    raise JoseFailure("the authorization server's keys cannot be fetched") from exc
                return self._keys  # keep serving with the keys we have
            self._fetched_at = now
            return self._keys
