"""Traces in words (issue 16): audit/words.py on the records a resource server writes (rs.access
with the action, its parameters and the policy's comparison; rs.result) and the AS's sign-ins."""

from __future__ import annotations

from typing import Any

from corridor.audit.words import Step, money, step
from corridor.core.rules import Rule
from corridor.policy.details import DetailTypes

JKT = "3gdgcxPeXZ1nM9vP0yJcYx0sQvFsm2fXlXmN1sVb2QY"
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "50.00"},
    "creditorName": "Merchant A",
}
PARAMETERS = {
    "amount": "12.00",
    "currency": "EUR",
    "creditor_name": "Merchant A",
    "creditor_account": "DE89370400440532013000",
    "reference": "Invoice 7",
}


def rs_record(outcome: str, detail: dict[str, Any], **columns: Any) -> dict[str, Any]:
    """A readable rs.access record as ResourceGuard.record writes it (the shape of issue 16)."""
    return {
        "id": 7,
        "time": 1767225600.0,
        "event": "rs.access",
        "outcome": outcome,
        "client_id": "c-agent",
        "user_id": "u-123",
        "scope": "payments",
        "grant_id": "g-1",
        "token_jti": "jti-1",
        "resource": "https://api.example.org",
        "sender_constraint": "dpop",
        "key_thumbprint": JKT,
        "authorization_details": [PAYMENT],
        "rule": None,
        "error": None,
        "detail": detail,
        **columns,
    }


def said(of: Step, label: str) -> list[str]:
    return dict(of.groups()).get(label, [])


def action(amount: str) -> dict[str, Any]:
    return {
        "name": "make_payment",
        "tool": "make_payment",
        "parameters": {**PARAMETERS, "amount": amount},
        "redacted": ["card_number"],
    }


def compared(amount_minor: int, spent_minor: int = 0) -> dict[str, Any]:
    return {
        "request": {
            "amount_minor": amount_minor,
            "currency": "EUR",
            "creditor": "Merchant A",
            "creditor_account": "",
        },
        "payment": {
            "limit_minor": 50000,
            "spent_minor": spent_minor,
            "currency": "EUR",
            "creditor": "Merchant A",
            "creditor_account": "",
            "entry": 0,
        },
        "spent_minor": spent_minor,
    }


def test_an_allowed_payment_says_the_action_its_parameters_and_the_binding() -> None:
    record = rs_record(
        "allowed",
        {
            "route": "/payments",
            "method": "POST",
            "status": 201,
            "tool_action": "make_payment",
            "action": action("12.00"),
            "policy": {"decision": "allow", "policies": [], "engine": "cedar", "compared": compared(1200)},
        },
    )
    told = step(record, names={"u-123": "alice"})
    assert told.title == "The resource server allowed a request" and not told.refused
    assert said(told, "Who") == ["user alice, through client c-agent"]
    assert said(told, "What was done") == [
        "the action make_payment with amount “12.00”, currency “EUR”, creditor_name “Merchant A”, "
        "creditor_account “DE89370400440532013000”, reference “Invoice 7” (card_number not recorded)",
        "POST /payments at https://api.example.org, answered 201",
        "Cedar allowed it",
        "12.00 EUR requested + 0.00 EUR already paid ≤ 500.00 EUR granted",
    ]
    assert said(told, "Bound to") == [f"bound to DPoP key {JKT}"]
    assert said(told, "Why refused") == []
    assert told.lines()[0] == "2026-01-01T00:00:00Z  rs.access allowed: The resource server allowed a request"


def test_a_refused_payment_over_the_limit_names_the_policy_and_the_amounts_compared() -> None:
    over = compared(60000)
    over["payment"]["limit_minor"] = 50000
    record = rs_record(
        "refused",
        {
            "route": "/payments",
            "method": "POST",
            "tool_action": "make_payment",
            "action": action("600.00"),
            "policy": {
                "decision": "deny",
                "policies": ["corridor/forbid-payment-over-granted-amount"],
                "engine": "cedar",
                "compared": over,
            },
        },
        rule="Cedar: corridor/forbid-payment-over-granted-amount",
        error="insufficient_scope",
    )
    told = step(record)
    assert told.refused and told.title == "The resource server refused a request"
    assert said(told, "Why refused") == [
        "refused (insufficient_scope) by the Cedar policy corridor/forbid-payment-over-granted-amount",
        "600.00 EUR requested + 0.00 EUR already paid > 500.00 EUR granted",
    ]
    assert said(told, "Who") == ["user u-123, through client c-agent"]  # no name known: the pseudonym


def test_the_amounts_of_the_issue_example_and_a_cumulative_limit() -> None:
    """The brief's figures: 60000 minor units asked against a limit of 50000 (i.e. /100)."""
    asked = compared(6000)
    asked["payment"]["limit_minor"] = 5000
    policy: dict[str, Any] = {"decision": "deny", "policies": ["p"], "engine": "cedar", "compared": asked}
    detail = {"route": "/payments", "method": "POST", "policy": policy}
    assert said(step(rs_record("refused", detail, rule="Cedar: p")), "Why refused")[1] == (
        "60.00 EUR requested + 0.00 EUR already paid > 50.00 EUR granted"
    )
    policy["compared"] = compared(3000, spent_minor=3000)
    policy["compared"]["payment"]["limit_minor"] = 5000
    assert said(step(rs_record("refused", detail, rule="Cedar: p")), "Why refused")[1] == (
        "30.00 EUR requested + 30.00 EUR already paid > 50.00 EUR granted"
    )
    assert money(5, "EUR") == "0.05 EUR" and money(123450, "EUR") == "1234.50 EUR"


def test_another_creditor_is_said() -> None:
    other = compared(1000)
    other["request"]["creditor"] = "Merchant B"
    detail = {"policy": {"decision": "deny", "policies": ["p1", "p2"], "compared": other}}
    told = step(rs_record("refused", detail, rule="Cedar: p1, p2", error="insufficient_scope"))
    assert said(told, "Why refused") == [
        "refused (insufficient_scope) by the Cedar policies p1, p2",
        "10.00 EUR requested + 0.00 EUR already paid ≤ 500.00 EUR granted",
        "the creditor “Merchant B” asked, the grant names “Merchant A”",
    ]


def test_a_step_up_refusal_names_rfc_9470() -> None:
    record = rs_record(
        "refused",
        {"route": "/payments", "method": "POST", "tool_action": "make_payment"},
        rule=Rule.RFC_9470_3,
        error="insufficient_user_authentication",
    )
    told = step(record)
    assert said(told, "Why refused") == [
        "refused (insufficient_user_authentication) under RFC 9470 3 (step-up: the sign-in behind "
        "the token is not strong or recent enough for this)"
    ]
    assert said(told, "What was done") == [
        "the action make_payment",
        "POST /payments at https://api.example.org",
    ]


def test_the_current_rs_shape_without_action_or_comparison() -> None:
    """The record ResourceGuard.record writes before the extension: tool_action and policy only."""
    record = rs_record(
        "refused",
        {
            "route": "/payments",
            "method": "POST",
            "tool_action": "make_payment",
            "policy": {"decision": "deny", "policies": ["corridor/forbid-payment-to-another-creditor"]},
        },
        rule="Cedar: corridor/forbid-payment-to-another-creditor",
        error="insufficient_scope",
    )
    told = step(record)
    assert said(told, "What was done")[0] == "the action make_payment"
    assert said(told, "Why refused") == [
        "refused (insufficient_scope) by the Cedar policy corridor/forbid-payment-to-another-creditor"
    ]


def test_the_result_record_says_what_the_route_answered() -> None:
    record = rs_record(
        "completed",
        {
            "route": "/payments",
            "method": "POST",
            "status": 201,
            "action": "make_payment",
            "result": {"payment_id": "6f8b389b", "status": "accepted"},
        },
        event="rs.result",
    )
    told = step(record)
    assert told.title == "The resource server answered" and not told.refused
    assert said(told, "What was done") == [
        "the action make_payment",
        "POST /payments at https://api.example.org, answered 201",
        "the result: payment_id “6f8b389b”, status “accepted”",
    ]


def test_a_tool_action_and_the_agents_own_cap() -> None:
    """An action of a tool (``list_accounts:read``), and a payment over the agent_tool cap: the
    cap counts what the grant paid in all (``spent_minor``), the entry what was paid against it."""
    listed = step(
        rs_record(
            "allowed",
            {
                "action": {
                    "name": "list_accounts:read",
                    "tool": "list_accounts",
                    "action": "read",
                    "parameters": {},
                }
            },
        )
    )
    assert said(listed, "What was done") == ["the action read of the tool list_accounts"]
    over = compared(6000, spent_minor=1000)
    over["spent_minor"] = 6000
    over["tool_limit"] = {"limit_minor": 10000, "currency": "EUR"}
    record = rs_record(
        "refused",
        {
            "policy": {
                "decision": "deny",
                "policies": ["corridor/forbid-payment-over-tool-limit"],
                "compared": over,
            }
        },
        rule="Cedar: tool-limit",
        error="insufficient_scope",
    )
    assert said(step(record), "Why refused")[1:] == [
        "60.00 EUR requested + 10.00 EUR already paid ≤ 500.00 EUR granted",
        "60.00 EUR requested + 60.00 EUR already paid > 100.00 EUR the agent's tool limit",
    ]


def test_a_certificate_binding_in_words() -> None:
    told = step(rs_record("allowed", {}, sender_constraint="mtls", key_thumbprint="x5t-abc"))
    assert said(told, "Bound to") == ["bound to the client certificate with SHA-256 thumbprint x5t-abc"]


def test_a_grant_in_the_consent_page_words_with_its_sign_in() -> None:
    types = DetailTypes.configured(["payment_initiation"])
    record = {
        "id": 3,
        "time": 1767225600.0,
        "event": "consent",
        "outcome": "granted",
        "user_id": "u-123",
        "client_id": "c-1",
        "scope": "openid payments",
        "authorization_details": [PAYMENT],
        "detail": {"acr": "mfa", "amr": ["pwd", "otp", "mfa"], "auth_time": 1767225590.0},
    }
    told = step(record, types.describe, {"u-123": "alice"})
    assert said(told, "What was granted") == [
        "the scopes openid payments",
        types.describe(PAYMENT),
    ]
    assert said(told, "What was granted")[1].startswith("Pay up to 50.00 EUR in all to Merchant A")
    assert said(told, "Sign-in") == [
        "the grant rests on acr mfa, amr pwd otp mfa, signed in at 2025-12-31T23:59:50Z"
    ]
    assert told.raw_details is not None and '"creditorName": "Merchant A"' in told.raw_details


def test_a_sign_in_says_its_factor_acr_and_amr() -> None:
    record = {"time": 0.0, "event": "login", "outcome": "succeeded", "user_id": "u-1", "detail": {}}
    record["detail"] = {"acr": "mfa", "amr": ["pwd", "otp", "mfa"], "factor": "totp"}
    assert said(step(record), "Sign-in") == ["with a TOTP code (a second factor): acr mfa, amr pwd otp mfa"]
    record["detail"] = {"acr": "passkey", "amr": ["hwk", "user"], "factor": "passkey"}
    assert said(step(record), "Sign-in") == ["with a passkey: acr passkey, amr hwk user"]


def test_control_and_bidi_characters_stay_escaped_in_the_text() -> None:
    record = rs_record("allowed", {"route": "/a\nb\u202e", "method": "GET"}, user_id="u\x1b[2J")
    lines = step(record).lines()
    assert "    What was done: GET /a\\x0ab\\u202e at https://api.example.org" in lines
    assert "    Who: user u\\x1b[2J, through client c-agent" in lines
    assert not any("\n" in line or "\x1b" in line or "\u202e" in line for line in lines)
