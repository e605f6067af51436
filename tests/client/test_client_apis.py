"""corridor.client calling APIs: from an API's URL to its AS (RFC 9728), DPoP-bound calls with
the RS's nonce (sync and async httpx), refresh before expiry."""

from __future__ import annotations

import asyncio
import ssl

import httpx

from corridor.client import FapiClient
from corridor.resource.guard import ResourceSettings
from corridor.server.tls import DevTLS
from tests.client.test_client_flow import consent
from tests.pki import TestPKI
from tests.resource.api import running_api
from tests.support import Driver, decode_jwt


def test_from_an_api_url_to_a_token_for_it(driver: Driver, tls: DevTLS, pki: TestPKI) -> None:
    """RFC 9728: the API's challenge names its metadata, which names the AS; the client gets a
    token for that API (RFC 8707 resource) and calls it, answering the API's own DPoP nonce."""

    def settings(url: str) -> ResourceSettings:
        return ResourceSettings(
            resource=url,
            authorization_servers=(driver.issuer,),
            public_url=url,
            scopes_supported=("accounts",),
            ca_file=str(tls.ca_file),
        )

    with running_api(settings, tls, pki.ca_file, clock=driver.as_.clock) as api:
        driver.as_.store.add_resource_server(api.url, "Discovered API", ["accounts"], None, 0.0)
        metadata = FapiClient.discover_resource(api.url + "/accounts", ca_file=str(tls.ca_file))
        assert metadata["resource"] == api.url
        assert metadata["authorization_servers"] == [driver.issuer]
        registered = driver.add_client()
        client = FapiClient(
            metadata["authorization_servers"][0],
            registered.client_id,
            redirect_uri=registered.redirect_uri,
            key=registered.key,
            ca_file=str(tls.ca_file),
        )
        url, handle = client.start("openid accounts", resource=metadata["resource"])
        tokens = client.finish(consent(driver, url), handle)
        assert decode_jwt(tokens.access_token)[1]["aud"] == api.url
        context = ssl.create_default_context(cafile=str(tls.ca_file))
        with httpx.Client(verify=context, auth=client.auth(tokens)) as http:
            response = http.get(api.url + "/accounts")
        assert response.status_code == 200, response.text
        assert client.nonces[api.url] == api.guard.nonces.current()  # learnt from the challenge


def test_async_client_and_refresh_before_expiry(driver: Driver) -> None:
    registered = driver.add_client()
    client = FapiClient(
        driver.issuer,
        registered.client_id,
        redirect_uri=registered.redirect_uri,
        key=registered.key,
        ca_file=str(driver.as_.tls.ca_file),
        clock=driver.as_.clock,
    )
    url, handle = client.start("openid profile")
    tokens = client.finish(consent(driver, url), handle)
    auth = client.auth(tokens)
    driver.as_.clock.advance(290)  # within 30 s of expiry: the auth refreshes first
    context = ssl.create_default_context(cafile=str(driver.as_.tls.ca_file))

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(verify=context, auth=auth) as http:
            return await http.get(client.endpoint("userinfo_endpoint"))

    response = asyncio.run(call())
    assert response.status_code == 200, response.text
    assert auth.tokens.access_token != tokens.access_token


def test_async_client_full_flow(driver: Driver) -> None:
    from corridor.client.aio import AsyncFapiClient

    registered = driver.add_client()
    context = ssl.create_default_context(cafile=str(driver.as_.tls.ca_file))

    async def flow() -> httpx.Response:
        client = AsyncFapiClient(
            driver.issuer,
            registered.client_id,
            redirect_uri=registered.redirect_uri,
            key=registered.key,
            ca_file=str(driver.as_.tls.ca_file),
        )
        url, handle = await client.start("openid profile")
        callback = await asyncio.to_thread(consent, driver, url)
        tokens = await client.finish(callback, handle)
        tokens = await client.refresh(tokens)
        async with httpx.AsyncClient(verify=context, auth=client.auth(tokens)) as http:
            response = await http.get(client.sync.endpoint("userinfo_endpoint"))
        await client.aclose()
        return response

    assert asyncio.run(flow()).status_code == 200
