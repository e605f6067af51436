"""Nothing secret in the evidence trail (issue 16): after a flow with a password and a TOTP code,
a refresh, an introspection and resource-server decisions, no record (nor the grant's trace, nor
its export) holds a token, a code, a verifier, a client assertion or DPoP proof (no JWT at all), a
password, a TOTP secret, or any private key."""

from __future__ import annotations

import json
import re

from corridor.resource.evidence import ActionFacts
from corridor.resource.guard import ResourceGuard, ResourceSettings
from corridor.resource.tokens import access_token
from tests.server.test_audit_chain import audit, driver
from tests.server.test_step_up import enrolled, start
from tests.support import PASSWORD, Driver, decode_jwt

__all__ = ["driver"]

API = "https://api.example.org"
#: A JWS or JWE in compact form (every token, assertion and proof here is one).
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.")


def test_no_secret_in_any_record(driver: Driver) -> None:
    client, browser = driver.add_client(), driver.browser()
    username, totp = enrolled(driver)
    flow, page = start(driver, client, browser, username)
    consent = browser.submit(page, {"code": totp.at(driver.now())})
    final = browser.submit(consent, {"decision": "approve"}, follow=False)
    assert final.status_code == 303
    flow.code = final.headers["location"].split("code=", 1)[1].split("&", 1)[0]
    tokens = driver.redeem(client, flow).json()
    refreshed = driver.token_request(
        client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    ).json()
    assert driver.introspect(client, tokens["access_token"]).json()["active"] is True
    claims = decode_jwt(tokens["access_token"])[1]
    settings = ResourceSettings(resource=API, authorization_servers=(driver.issuer,), public_url=API)
    guard = ResourceGuard(settings, clock=driver.as_.clock)
    # A route that was handed secrets among its values: they are never recorded.
    facts = ActionFacts.of(
        "make_payment",
        {
            "amount": "1.00",
            "password": PASSWORD,
            "access_token": tokens["access_token"],
            "note": "4111111111111111",
        },
    )
    guard.record(
        route="/pay", method="POST", access=access_token(claims, driver.issuer), error=None, facts=facts
    )
    secrets = {
        "code": flow.code,
        "verifier": flow.verifier,
        "request_uri": flow.request_uri.rsplit(":", 1)[1],
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "refreshed": refreshed["access_token"],
        "password": PASSWORD,
        "totp_secret": totp.secret,
        "card": "4111111111111111",
        "client_key": client.key.private_jwk()["d"],
        "dpop_key": client.dpop_key.private_jwk()["d"],
    }
    assert driver.as_.server is not None
    secrets["as_key"] = driver.as_.server.keys.signing.private_jwk()["d"]
    trail = json.dumps([dict(r) for r in driver.as_.store.audit.records()] + guard.decisions)
    trace = audit(driver.as_, "trace", claims["grant_id"], "--json").stdout
    export = audit(driver.as_, "export").stdout
    assert claims["grant_id"] in trace and "totp" in trail  # the step-up is on record, its secret not
    for where, text in (("trail", trail), ("trace", trace), ("export", export)):
        for name, secret in secrets.items():
            assert secret not in text, (where, name)
        assert not JWT.search(text), (where, JWT.search(text))
