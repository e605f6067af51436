"""corridor.client calling APIs: from an API's URL to its AS (RFC 9728), DPoP-bound calls with
the RS's nonce (sync and async httpx), refresh before expiry."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from corridor.client import FapiClient
from corridor.client.errors import AuthorizationResponseError, TokenEndpointError
from corridor.resource.guard import ResourceSettings
from corridor.transport.tls import DevTLS
from tests.client.test_client_flow import consent, make_client
from tests.pki import TestPKI
from tests.resource.api import running_api
from tests.support import PASSWORD, Driver, decode_jwt


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
        driver.as_.store.clients.add_resource_server(api.url, "Discovered API", ["accounts"], None, 0.0)
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


# -- issue 13 F6: the server's words and its nonces are kept ------------------------------------------


def test_the_servers_error_description_reaches_the_exception(driver: Driver) -> None:
    """issue 13 F6: the AS says what is wrong (RFC 6749 5.2 error_description); the exception
    used to say only invalid_authorization_details."""
    registered = driver.add_client()
    client = make_client(driver, registered)
    details = [{"type": "payment_initiation", "creditorName": "Merchant A"}]
    with pytest.raises(TokenEndpointError) as refused:
        client.start("openid payments", authorization_details=details)
    assert (refused.value.error, refused.value.status) == ("invalid_authorization_details", 400)
    assert "'instructedAmount' is a required property" in refused.value.description
    assert "'instructedAmount' is a required property" in str(refused.value)
    assert str(refused.value).startswith("pushed_authorization_request_endpoint refused: ")


def test_an_authorization_error_carries_its_description(driver: Driver) -> None:
    """The same for an error in the authorization response (RFC 6749 4.1.2.1)."""
    registered = driver.add_client()
    client = make_client(driver, registered)
    url, handle = client.start("openid")
    browser = driver.browser()
    page = browser.get(url)
    page = browser.submit(page, {"username": driver.add_user(), "password": PASSWORD})
    final = browser.submit(page, {"decision": "deny"}, follow=False)
    assert final.status_code == 303, final.text
    with pytest.raises(AuthorizationResponseError) as refused:
        client.finish(final.headers["location"], handle)
    assert refused.value.error == "access_denied"
    assert refused.value.description == "the user denied the request"
    assert "access_denied: the user denied the request" in str(refused.value)


def test_a_nonce_given_on_the_retried_response_is_used_next(
    driver: Driver, tls: DevTLS, pki: TestPKI
) -> None:
    """issue 13 F6, RFC 9449 9: the RS's nonce moves on while the client retries; the retried
    response's DPoP-Nonce is the one the next request uses (it was dropped, so the next request
    was challenged again)."""

    def settings(url: str) -> ResourceSettings:
        return ResourceSettings(
            resource=url,
            authorization_servers=(driver.issuer,),
            public_url=url,
            scopes_supported=("accounts",),
            ca_file=str(tls.ca_file),
        )

    with running_api(settings, tls, pki.ca_file, clock=driver.as_.clock) as api:
        driver.as_.store.clients.add_resource_server(api.url, "Nonce API", ["accounts"], None, 0.0)
        registered = driver.add_client()
        client = make_client(driver, registered, clock=driver.as_.clock)
        url, handle = client.start("openid accounts", resource=api.url)
        tokens = client.finish(consent(driver, url), handle)
        seen: list[tuple[int, str | None, str | None]] = []

        def watch(response: httpx.Response) -> None:
            proof = decode_jwt(response.request.headers["dpop"])[1]
            seen.append((response.status_code, proof.get("nonce"), response.headers.get("dpop-nonce")))
            if len(seen) == 1:
                # Between the challenge and the retry the RS's nonce window moves on: the nonce
                # just given is stale by the time the retry arrives, and the RS gives a new one.
                driver.as_.clock.advance(3 * api.guard.settings.nonce_step)

        context = ssl.create_default_context(cafile=str(tls.ca_file))
        with httpx.Client(
            verify=context, auth=client.auth(tokens), event_hooks={"response": [watch]}
        ) as http:
            first = http.get(api.url + "/accounts")
            assert first.status_code == 401  # the retry was answered use_dpop_nonce, with a new nonce
            assert [s[0] for s in seen] == [401, 401]
            newest = seen[1][2]
            assert newest is not None and newest != seen[0][2]
            assert client.nonces[api.url] == newest
            second = http.get(api.url + "/accounts")
        assert second.status_code == 200, second.text
        assert seen[2] == (200, newest, None)  # at once with the retried response's nonce
        assert len(seen) == 3
