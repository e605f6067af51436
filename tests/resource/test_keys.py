"""The RS's view of the AS keys: metadata issuer check, cache, rate-limited refetch on an
unknown kid (against a real HTTPS server whose JWKS changes)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corridor.core.clock import MovableClock
from corridor.core.jose import JoseFailure, SigningKey
from corridor.resource.keys import IssuerKeys
from corridor.transport.tls import DevTLS
from tests.stubserver import stub_server


class FakeAS:
    """Serves RFC 8414 metadata and a JWKS that a test can change; counts JWKS fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.issuer = ""
        self.claimed_issuer: str | None = None
        self.jwks_fetches = 0


@pytest.fixture
def fake_as(tls: DevTLS) -> Iterator[FakeAS]:
    state = FakeAS()

    def answer(path: str) -> tuple[int, str, bytes]:
        if path == "/.well-known/oauth-authorization-server":
            body: dict[str, Any] = {
                "issuer": state.claimed_issuer or state.issuer,
                "jwks_uri": state.issuer + "/jwks",
            }
        elif path == "/jwks":
            state.jwks_fetches += 1
            body = {"keys": state.keys}
        else:
            return 404, "text/plain", b""
        return 200, "application/json", json.dumps(body).encode()

    with stub_server(answer, (tls.cert_file, tls.key_file)) as url:
        state.issuer = url
        yield state


def keys_for(fake_as: FakeAS, ca: Path, clock: MovableClock) -> IssuerKeys:
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=10)
    return IssuerKeys(fake_as.issuer, http, clock, cache_seconds=300, min_refetch_interval=30)


def test_unknown_kid_refetch_is_rate_limited(fake_as: FakeAS, tls: DevTLS) -> None:
    old, new = SigningKey.generate("ES256"), SigningKey.generate("ES256")
    fake_as.keys = [old.public_jwk]
    clock = MovableClock()
    keys = keys_for(fake_as, tls.ca_file, clock)
    assert [k["kid"] for k in keys.signing_keys()] == [old.kid]
    fake_as.keys = [old.public_jwk, new.public_jwk]  # the AS rotates
    assert [k["kid"] for k in keys.signing_keys(refresh=True)] == [old.kid]  # too soon after the last fetch
    clock.advance(31)
    assert [k["kid"] for k in keys.signing_keys(refresh=True)] == [old.kid, new.kid]
    assert fake_as.jwks_fetches == 2
    keys.signing_keys()
    keys.signing_keys(refresh=True)  # within 30 s again: still served from the cache
    assert fake_as.jwks_fetches == 2
    clock.advance(301)
    keys.signing_keys()  # the cache lifetime ends
    assert fake_as.jwks_fetches == 3


def test_metadata_must_name_the_configured_issuer(fake_as: FakeAS, tls: DevTLS) -> None:
    """RFC 8414 3.3: metadata claiming another issuer is refused (a mix-up defence)."""
    fake_as.keys = [SigningKey.generate("ES256").public_jwk]
    fake_as.claimed_issuer = "https://evil.example"
    with pytest.raises(JoseFailure):
        keys_for(fake_as, tls.ca_file, MovableClock()).signing_keys()


def test_keys_of_other_types_are_left_out(fake_as: FakeAS, tls: DevTLS) -> None:
    good = SigningKey.generate("ES256")
    fake_as.keys = [{"kty": "oct", "k": "c2VjcmV0"}, {**good.public_jwk, "kid": "g"}]
    assert [k["kid"] for k in keys_for(fake_as, tls.ca_file, MovableClock()).signing_keys()] == ["g"]
