"""Shared by the interop tests: the user's part of the flow (login and consent pages),
which no OAuth client library does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from corridor.transport.tls import DevTLS
from tests.interop.peer import OidcProviderPeer, running_oidc_provider
from tests.support import PASSWORD, Browser, RunningAS

#: Given the authorization URL a client library built and a user name, log in, approve,
#: and return the Location of the final 303 (the authorization response to the client).
Consent = Callable[[str, str], str]


@pytest.fixture
def consent(as_server: RunningAS) -> Consent:
    def run(authorization_url: str, username: str) -> str:
        assert authorization_url.startswith(as_server.issuer + "/authorize?"), authorization_url
        browser = Browser(as_server)
        try:
            page = browser.get(authorization_url)
            assert page.status_code == 200, page.text
            assert 'name="username"' in page.text, page.text
            page = browser.submit(page, {"username": username, "password": PASSWORD})
            assert page.status_code == 200, page.text
            final = browser.submit(page, {"decision": "approve"}, follow=False)
            assert final.status_code == 303, final.text
            location = final.headers["location"]
            assert urlsplit(location).netloc == "client.example.org", location
            return location
        finally:
            browser.http.close()

    return run


@pytest.fixture(scope="module")
def oidc_provider(tls: DevTLS) -> Iterator[OidcProviderPeer]:
    """panva's oidc-provider in its FAPI 2.0 profile, issuing DPoP-bound JWT access tokens
    for ``RESOURCE`` (tests/interop/peer.py); stopped at the end of the module."""
    with running_oidc_provider(tls) as peer:
        yield peer
