"""Typed authorization_details (issue 8 part 1, RFC 9396): each type's JSON Schema at PAR, the
metadata, the consent page in words, the granted entries in the token response, the access
token and introspection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corridor.policy.details import AuthorizationDetailsError, DetailTypes
from tests.support import Driver, decode_jwt

PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02120300000000202051"},
    "remittanceInformationUnstructured": "Invoice 42",
}
ACCOUNTS = {
    "type": "account_information",
    "accounts": ["acc-1", "acc-2"],
    "permissions": ["balances", "transactions"],
    "expiry": "2027-01-31T00:00:00Z",
}
TOOL = {
    "type": "agent_tool",
    "tool": "make_payment",
    "actions": ["initiate"],
    "locations": ["https://rs.example.org/api"],
    "limits": {"max_calls": 3, "max_amount": {"currency": "EUR", "amount": "200.00"}},
    "purpose": "Pay this month's invoices",
}


def assert_refused(driver: Driver, details: Any, where: str) -> None:
    response, _ = driver.par(driver.add_client(), extra={"authorization_details": json.dumps(details)})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_authorization_details"
    assert where in body["error_description"], body


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ({**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": 123.5}}, "instructedAmount/amount"),
        ({**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "1.234"}}, "instructedAmount/amount"),
        ({**PAYMENT, "instructedAmount": {"currency": "eur", "amount": "1.00"}}, "instructedAmount/currency"),
        ({k: v for k, v in PAYMENT.items() if k != "creditorName"}, "'creditorName' is a required property"),
        ({**PAYMENT, "creditorAccount": {"iban": "not an iban"}}, "creditorAccount/iban"),
        ({**PAYMENT, "surprise": True}, "Additional properties"),
        ({**ACCOUNTS, "permissions": ["everything"]}, "permissions/0"),
        ({**ACCOUNTS, "permissions": []}, "permissions"),
        ({**ACCOUNTS, "expiry": "next tuesday"}, "expiry"),
        ({**TOOL, "tool": "Make Payment!"}, "tool"),
        ({**TOOL, "actions": []}, "actions"),
        ({**TOOL, "limits": {"max_calls": 0}}, "limits/max_calls"),
        ({k: v for k, v in TOOL.items() if k != "purpose"}, "'purpose' is a required property"),
        ({**TOOL, "locations": ["not a uri"]}, "locations/0"),
    ],
)
def test_par_refuses_an_entry_its_schema_refuses(driver: Driver, entry: dict[str, Any], where: str) -> None:
    """RFC 9396 5: invalid_authorization_details, naming the entry and the member."""
    assert_refused(driver, [PAYMENT, entry] if entry["type"] != "payment_initiation" else [entry], where)


def test_par_refuses_an_unknown_type(driver: Driver) -> None:
    assert_refused(driver, [{"type": "wire_everything"}], "not supported")


def test_metadata_lists_the_types(driver: Driver) -> None:
    metadata = driver.http.get(driver.url("/.well-known/oauth-authorization-server")).json()
    assert metadata["acr_values_supported"] == ["password", "mfa", "passkey"]  # what this AS can make true
    assert metadata["authorization_details_types_supported"] == [
        "payment_initiation",
        "account_information",
        "agent_tool",
    ]


def test_consent_page_says_each_entry_in_words(driver: Driver) -> None:
    client = driver.add_client()
    response, flow = driver.par(
        client, extra={"authorization_details": json.dumps([PAYMENT, ACCOUNTS, TOOL])}
    )
    assert response.status_code == 201, response.text
    browser = driver.browser()
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    page = browser.submit(page, {"username": driver.add_user(), "password": "correct horse battery staple"})
    # Each value sits in its own <bdi> (issue 13 E3, tests/server/test_consent_text.py); the words:
    text = page.text.replace("<bdi>", "").replace("</bdi>", "")
    assert (
        "Pay up to 123.50 EUR in all to Merchant A (account DE02120300000000202051), reference “Invoice 42”"
        in text
    )
    assert "Read the balances, transactions of the accounts acc-1, acc-2 until 2027-01-31T00:00:00Z" in text
    assert (
        "Let the agent use the tool “make_payment” to initiate at https://rs.example.org/api, "
        "at most 200.00 EUR in all, at most 3 calls, for: Pay this month&#39;s invoices" in text
    )


def test_granted_entries_reach_token_response_access_token_and_introspection(driver: Driver) -> None:
    client = driver.add_client()
    details = [PAYMENT, ACCOUNTS, TOOL]
    _, tokens = driver.full_flow(client, extra={"authorization_details": json.dumps(details)})
    assert tokens["authorization_details"] == details
    assert decode_jwt(tokens["access_token"])[1]["authorization_details"] == details
    introspected = driver.introspect(client, tokens["access_token"]).json()
    assert introspected["active"] is True and introspected["authorization_details"] == details


def test_a_deployment_adds_its_own_type(tmp_path: Path) -> None:
    spec = {
        "type": "ticket_purchase",
        "schema": {
            "type": "object",
            "required": ["type", "event"],
            "properties": {"type": {"type": "string"}, "event": {"type": "string", "maxLength": 40}},
            "additionalProperties": False,
        },
        "template": "Buy a ticket for {{ event }}",
    }
    path = tmp_path / "ticket.json"
    path.write_text(json.dumps(spec))
    types = DetailTypes.configured(["ticket_purchase", "payment_initiation"], [str(path)])
    entries = types.parse(json.dumps([{"type": "ticket_purchase", "event": "<Opera>"}]))
    assert types.describe(entries[0]) == "Buy a ticket for <Opera>"  # plain text; pages escape it
    with pytest.raises(AuthorizationDetailsError, match="event"):
        types.parse(json.dumps([{"type": "ticket_purchase", "event": "x" * 41}]))
    with pytest.raises(ValueError, match="without a schema"):
        DetailTypes.configured(["nobody_declared_this"])


def test_the_record_of_what_was_shown_matches_the_page(driver: Driver) -> None:
    """Issue 8 approval surface: the SHA-256 of the exact body, the template version and the
    facts in words are recorded when the consent page is shown; the decision names the same
    interaction."""
    import hashlib

    client = driver.add_client()
    response, flow = driver.par(client, extra={"authorization_details": json.dumps([PAYMENT, TOOL])})
    assert response.status_code == 201
    browser = driver.browser()
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    page = browser.submit(page, {"username": driver.add_user(), "password": "correct horse battery staple"})
    final = browser.submit(page, {"decision": "approve"}, follow=False)
    assert final.status_code == 303
    grant_records = [
        r
        for r in driver.as_.store.audit.records()
        if r["event"] == "consent" and r["client_id"] == client.client_id
    ]
    shown = [r for r in grant_records if r["outcome"] == "shown"]
    granted = [r for r in grant_records if r["outcome"] == "granted"]
    assert len(shown) == 1 and len(granted) == 1
    surface = json.loads(shown[0]["detail"])
    granted_detail = json.loads(granted[0]["detail"])
    assert granted_detail["interaction"] == surface["interaction"]
    recorded = surface["approval_surface"]
    assert recorded["body_sha256"] == hashlib.sha256(page.content).hexdigest()
    assert len(recorded["template_version"]) == 16
    words = [d["words"] for d in recorded["facts"]["details"]]
    assert words[0] == (
        "Pay up to 123.50 EUR in all to Merchant A (account DE02120300000000202051), reference “Invoice 42”"
    )
    assert words[1].startswith("Let the agent use the tool “make_payment” to initiate")
    assert all(d["type_version"] for d in recorded["facts"]["details"])
    assert recorded["facts"]["client_id"] == client.client_id


def test_each_showing_of_the_consent_page_is_rendered_once_and_recorded_with_its_bytes(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 (the consent page rendered and hashed once per showing): a reload renders the page
    once more and records it once more, each record with the SHA-256 of the body that showing sent
    (each has its own style nonce, so no two bodies are the same); Approve still completes."""
    import hashlib

    from corridor.server import pages
    from corridor.server.interaction import consent

    renders: list[str] = []
    render = pages.render

    def counted(template: str, *args: Any, **kwargs: Any) -> Any:
        renders.append(template)
        return render(template, *args, **kwargs)

    monkeypatch.setattr(consent, "render", counted)
    client = driver.add_client()
    response, flow = driver.par(client, extra={"authorization_details": json.dumps([PAYMENT])})
    assert response.status_code == 201
    browser = driver.browser()
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    first = browser.submit(page, {"username": driver.add_user(), "password": "correct horse battery staple"})
    again = browser.get(str(first.url))
    assert first.status_code == again.status_code == 200
    assert renders == ["consent.html", "consent.html"]
    assert first.content != again.content
    shown = [
        json.loads(r["detail"])["approval_surface"]
        for r in driver.as_.store.audit.records()
        if r["event"] == "consent" and r["outcome"] == "shown" and r["client_id"] == client.client_id
    ]
    assert [s["body_sha256"] for s in shown] == [
        hashlib.sha256(first.content).hexdigest(),
        hashlib.sha256(again.content).hexdigest(),
    ]
    final = browser.submit(again, {"decision": "approve"}, follow=False)
    assert final.status_code == 303 and "code=" in final.headers["location"]
