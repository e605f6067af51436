"""The whole FAPI 2.0 code flow through real HTTPS, and what it leaves in the store."""

from __future__ import annotations

from tests.support import Driver, decode_jwt


def test_full_flow_issues_dpop_bound_jwt_access_token(driver: Driver) -> None:
    client = driver.add_client()
    flow, tokens = driver.full_flow(client, extra={"nonce": "n-0S6_WzA2Mj"})
    assert flow.callback["iss"] == driver.issuer
    assert flow.callback["state"] == flow.state
    assert tokens["token_type"] == "DPoP"
    assert tokens["expires_in"] == 300
    header, claims = decode_jwt(tokens["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert claims["cnf"] == {"jkt": client.dpop_key.thumbprint()}
    assert claims["client_id"] == client.client_id
    assert claims["iss"] == driver.issuer
    assert claims["aud"] == driver.issuer
    assert claims["scope"] == "openid accounts"
    assert claims["acr"] == "password"
    for claim in ("sub", "exp", "iat", "jti", "auth_time"):
        assert claim in claims
    _, id_claims = decode_jwt(tokens["id_token"])
    assert id_claims["nonce"] == "n-0S6_WzA2Mj"
    assert id_claims["aud"] == client.client_id
    assert len(tokens["refresh_token"]) >= 43
