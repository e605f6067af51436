"""Traces in words (issue 16): ``corridor audit trace ID`` tells a real flow as a story (who, what
was shown, what was granted, how the user signed in, what the tokens are bound to), on both
databases; the golden text below is normalised for ids, hashes and times only."""

from __future__ import annotations

import json
import re

from corridor.audit.events import Event, Outcome
from corridor.core.randomness import new_id
from tests.server.test_audit_chain import audit, driver  # noqa: F401 - the AS of its own, both databases
from tests.support import Driver, decode_jwt

PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "42.00"},
    "creditorName": "Merchant A",
    "remittanceInformationUnstructured": "Invoice 7",
}

GOLDEN = """\
<TIME>  par accepted: The client pushed its authorization request
    Who: client <CLIENT>
    Bound to: bound to DPoP key <JKT>
<TIME>  login succeeded: The user signed in
    Who: user <USER>, through client <CLIENT>
    Sign-in: with a password: acr password, amr pwd
    Bound to: bound to DPoP key <JKT>
<TIME>  consent shown: The consent page was shown
    Who: user <USER>, through client <CLIENT>
    What was shown: the question “Allow Test client <CLIENT4> to pay up to 42.00 EUR to Merchant A?”
    What was shown: the application “Test client <CLIENT4>” asks to
    What was shown: Confirm who you are (your user identifier) (scope openid)
    What was shown: Read your account list and balances (scope accounts)
    What was shown: Initiate payments from your accounts (scope payments)
    What was shown: Pay up to 42.00 EUR in all to Merchant A, reference “Invoice 7”
    What was shown: at <ISSUER>
    What was shown: its tokens bound to DPoP key <JKT>
    What was shown: the grant lasts for 30 days, until <DATE>
    What was shown: It can act while you are away: it receives a refresh token and can get new access \
until the grant ends, without asking you again.
    What was shown: Only the app holding key …<JKT4> can use this.
    What was shown: page SHA-256 <SHA256>, template <VERSION>
    Bound to: bound to DPoP key <JKT>
<TIME>  consent granted: The user approved
    Who: user <USER>, through client <CLIENT>
    Sign-in: the grant rests on acr password, amr pwd, signed in at <TIME>
    What was granted: the scopes openid accounts payments
    What was granted: Pay up to 42.00 EUR in all to Merchant A, reference “Invoice 7”
    Bound to: bound to DPoP key <JKT>
<TIME>  code issued: An authorization code was issued
    Who: user <USER>, through client <CLIENT>
    Sign-in: the grant rests on acr password, amr pwd, signed in at <TIME>
    Bound to: bound to DPoP key <JKT>
<TIME>  token.authorization_code issued: The code was exchanged for tokens
    Who: user <USER>, through client <CLIENT>
    What was granted: the scopes openid accounts payments
    What was granted: Pay up to 42.00 EUR in all to Merchant A, reference “Invoice 7”
    Bound to: bound to DPoP key <JKT>
<TIME>  userinfo allowed: UserInfo answered
    Who: user <USER>, through client <CLIENT>
    Bound to: bound to DPoP key <JKT>
"""


def story(driver: Driver) -> tuple[str, str, dict[str, str]]:  # noqa: F811
    """A real flow by a named user with a payment, its token used at UserInfo: (grant id, jti,
    the values to normalise)."""
    client = driver.add_client()
    username = driver.add_user("ada-" + new_id()[:6])
    extra = {"scope": "openid accounts payments", "authorization_details": json.dumps([PAYMENT])}
    response, flow = driver.par(client, extra=extra)
    assert response.status_code == 201, response.text
    assert driver.authorize(client, flow, username=username).status_code == 303 and flow.code
    tokens = driver.redeem(client, flow)
    assert tokens.status_code == 200, tokens.text
    token = tokens.json()["access_token"]
    proof = driver.proof(client, "GET", driver.htu("/userinfo"), access_token=token)
    used = driver.http.get(driver.url("/userinfo"), headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert used.status_code == 200
    claims = decode_jwt(token)[1]
    grant = next(
        r["grant_id"] for r in driver.as_.store.audit.records(token_jti=claims["jti"]) if r["grant_id"]
    )
    values = {
        claims["cnf"]["jkt"]: "<JKT>",
        "…" + claims["cnf"]["jkt"][-4:]: "…<JKT4>",
        client.client_id: "<CLIENT>",
        client.client_id[-4:]: "<CLIENT4>",
        driver.issuer: "<ISSUER>",
        username: "<USER>",
    }
    return grant, claims["jti"], values


def normalised(text: str, values: dict[str, str]) -> str:
    for value, name in values.items():
        text = text.replace(value, name)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<TIME>", text)
    text = re.sub(r"SHA-256 [0-9a-f]{64}", "SHA-256 <SHA256>", text)
    text = re.sub(r"\d{1,2} [A-Z][a-z]+ \d{4} at \d\d:\d\d UTC", "<DATE>", text)
    return re.sub(r"template [0-9a-f]{16}", "template <VERSION>", text)


def test_the_text_trace_of_a_real_flow_is_a_story(driver: Driver) -> None:  # noqa: F811
    grant, jti, values = story(driver)
    result = audit(driver.as_, "trace", grant)
    assert result.returncode == 0, result.stderr
    assert normalised(result.stdout, values) == GOLDEN
    # The same story from the token's jti, and with --pseudonymous the user's id, not the name.
    by_jti = audit(driver.as_, "trace", jti)
    assert by_jti.returncode == 0 and normalised(by_jti.stdout, values) == GOLDEN
    username = next(value for value, name in values.items() if name == "<USER>")
    user = driver.as_.store.users.by_name(username)
    assert user is not None and user["id"] not in result.stdout  # operators read the name
    pseudonymous = audit(driver.as_, "trace", grant, "--pseudonymous")
    assert pseudonymous.returncode == 0
    assert f"Who: user {user['id']}, through client" in pseudonymous.stdout
    assert username not in pseudonymous.stdout


def test_the_amr_of_the_sign_in_is_recorded_with_the_grant(driver: Driver) -> None:  # noqa: F811
    """Issue 16: the sign-in's RFC 8176 amr is evidence, in the sign-in record and in the records
    that issue the grant and its code (with the acr and auth_time the grant rests on)."""
    grant, _, _ = story(driver)
    records = driver.as_.store.audit.records(grant_id=grant)
    for event, outcome in ((Event.CONSENT, Outcome.GRANTED), (Event.CODE, Outcome.ISSUED)):
        detail = json.loads(
            next(r["detail"] for r in records if (r["event"], r["outcome"]) == (event, outcome))
        )
        assert (detail["acr"], detail["amr"]) == ("password", ["pwd"]) and detail["auth_time"] > 0
    interaction = json.loads(records[0]["detail"])["interaction"]
    login = next(
        r for r in driver.as_.store.audit.records(interaction=interaction) if r["event"] == Event.LOGIN
    )
    assert json.loads(login["detail"])["amr"] == ["pwd"]
