"""corridor.resource in front of tokens from a certified FAPI 2.0 server we did not write:
panva's oidc-provider (FAPI 2.0 profile) issues a DPoP-bound JWT access token; our RS accepts
it with its proof and refuses it when the proof is wrong."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest

from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey
from corridor.resource.guard import ResourceSettings
from corridor.transport.tls import DevTLS
from tests.interop.peer import OidcProviderPeer
from tests.pki import TestPKI
from tests.resource.api import PUBLIC_URL, RunningRS, running_api


@pytest.fixture(scope="module")
def api(oidc_provider: OidcProviderPeer, tls: DevTLS, pki: TestPKI) -> Iterator[RunningRS]:
    settings = ResourceSettings(
        resource=oidc_provider.resource,
        authorization_servers=(oidc_provider.issuer,),
        public_url=PUBLIC_URL,
        ca_file=str(tls.ca_file),
        # oidc-provider's FAPI profile issues tokens without acr levels of ours; nonces stay on.
    )
    with running_api(settings, tls, pki.ca_file) as running:
        yield running


def call(
    api: RunningRS, token: str, key: SigningKey, *, nonce: str | None, url: str | None = None
) -> httpx.Response:
    proof = make_proof(key, "GET", url or PUBLIC_URL + "/accounts", nonce=nonce, access_token=token)
    context = ssl.create_default_context(cafile=api.guard.settings.ca_file)
    with httpx.Client(verify=context, timeout=20) as http:
        return http.get(api.url + "/accounts", headers={"Authorization": f"DPoP {token}", "DPoP": proof})


def test_oidc_provider_token_accepted_with_its_proof(api: RunningRS, oidc_provider: OidcProviderPeer) -> None:
    token, key = oidc_provider.dpop_token()
    first = call(api, token, key, nonce=None)  # RFC 9449 9: the RS asks for its own nonce
    assert first.status_code == 401 and 'error="use_dpop_nonce"' in first.headers["www-authenticate"]
    response = call(api, token, key, nonce=first.headers["dpop-nonce"])
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == "alice"
    assert response.json()["client"] == oidc_provider.client_id


def test_oidc_provider_token_refused_with_a_wrong_proof(
    api: RunningRS, oidc_provider: OidcProviderPeer
) -> None:
    token, key = oidc_provider.dpop_token()
    nonce = api.guard.nonces.current()
    other = call(api, token, SigningKey.generate("ES256"), nonce=nonce)
    assert other.status_code == 401
    assert other.headers["www-authenticate"].startswith('DPoP error="invalid_token"')  # key binding (D14)
    wrong_htu = call(api, token, key, nonce=nonce, url="https://elsewhere.example/accounts")
    assert wrong_htu.status_code == 401
    assert wrong_htu.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert call(api, token, key, nonce=nonce).status_code == 200  # positive control
