"""corridor.client with FAPI 2.0 Message Signing against our own AS, through real HTTPS: a
client registered with require_signed_request_object and response_modes ["jwt"] completes
JAR at PAR (FMS 5.3.1/5.3.2) and JARM (FMS 5.4.1/5.4.2); the AS refuses that client's
unsigned PAR, and keeps both signed messages as evidence by their SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from corridor.client import FapiClient
from corridor.client.aio import AsyncFapiClient
from corridor.client.errors import TokenEndpointError
from corridor.core.jose import read_header, verify_with_keys
from tests.client.test_client_flow import consent
from tests.support import Client, Driver, decode_jwt


def ms_client(driver: Driver) -> tuple[Client, FapiClient]:
    registered = driver.add_client(require_signed_request_object=True, response_modes=("jwt",))
    client = FapiClient(
        driver.issuer,
        registered.client_id,
        redirect_uri=registered.redirect_uri,
        key=registered.key,
        ca_file=str(driver.as_.tls.ca_file),
        signed_request=True,
        response_mode="jwt",
    )
    return registered, client


def test_jar_and_jarm_with_our_as(driver: Driver) -> None:
    registered, client = ms_client(driver)
    try:
        url, handle = client.start("openid accounts")
        assert set(parse_qs(urlsplit(url).query)) == {"client_id", "request_uri"}
        callback = consent(driver, url)
        # FMS 5.4.1 NOTE / JARM 2.3.1: only the JWT, iss inside it and not beside it.
        assert set(parse_qs(urlsplit(callback).query)) == {"response"}
        tokens = client.finish(callback, handle)
        assert tokens.token_type == "DPoP"
        assert decode_jwt(tokens.access_token)[1]["cnf"] == {"jkt": client.dpop_key.thumbprint()}
        assert tokens.id_token_claims is not None and tokens.id_token_claims["nonce"] == handle.nonce

        jarm = tokens.authorization_response
        assert jarm is not None and jarm == client.last_authorization_response
        header = read_header(jarm)
        assert header["alg"] in client.metadata["authorization_signing_alg_values_supported"]
        claims = verify_with_keys(jarm, header, client.server_keys())
        assert claims["iss"] == driver.issuer and claims["aud"] == registered.client_id
        assert claims["state"] == handle.state and isinstance(claims["code"], str)
        assert 0 < claims["exp"] - driver.as_.clock.now() <= 600  # JARM 2.1: short-lived
    finally:
        client.close()


def test_the_as_keeps_the_request_object_and_the_jarm_response(driver: Driver) -> None:
    registered, client = ms_client(driver)
    try:
        url, handle = client.start("openid")
        tokens = client.finish(consent(driver, url), handle)
        assert handle.request_object and tokens.authorization_response
        for jws, kind in (
            (handle.request_object, "request_object"),
            (tokens.authorization_response, "authorization_response"),
        ):
            kept = driver.as_.store.messages.get(hashlib.sha256(jws.encode()).hexdigest())
            assert kept is not None, kind
            assert (kept["kind"], kept["client_id"], kept["jws"]) == (kind, registered.client_id, jws)
    finally:
        client.close()


def test_our_as_refuses_the_same_clients_unsigned_par(driver: Driver) -> None:
    """FMS 5.3.1-1: a client registered with require_signed_request_object must sign."""
    _, client = ms_client(driver)
    try:
        with pytest.raises(TokenEndpointError) as refused:
            client.start("openid", signed_request=False)
        assert (refused.value.status, refused.value.error) == (400, "invalid_request")
        url, _ = client.start("openid")  # positive control: signed, it is accepted
        assert "request_uri=" in url
    finally:
        client.close()


def test_the_async_client_with_our_as(driver: Driver) -> None:
    registered = driver.add_client(require_signed_request_object=True, response_modes=("jwt",))

    async def run() -> None:
        client = AsyncFapiClient(
            driver.issuer,
            registered.client_id,
            redirect_uri=registered.redirect_uri,
            key=registered.key,
            ca_file=str(driver.as_.tls.ca_file),
            signed_request=True,
            response_mode="jwt",
        )
        try:
            url, handle = await client.start("openid")
            callback = await asyncio.to_thread(consent, driver, url)
            tokens = await client.finish(callback, handle)
            assert tokens.authorization_response == client.last_authorization_response is not None
        finally:
            await client.aclose()

    asyncio.run(run())
