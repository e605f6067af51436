"""Policy binding of tool actions (issue 8 part 2): Cedar decides from the token's grant and the
request's own values; every refusal names the policy that decided it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corridor.policy.cedar import DEFAULT_DENY, Policies, grant_context, minor_units

PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "100.00"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02120300000000202051"},
}
TOOL = {"type": "agent_tool", "tool": "list_accounts", "actions": ["read"], "purpose": "Show balances"}
POLICIES = Policies.load()


def context(details: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    base = grant_context(
        details, user="u1", scopes=["payments"], acr="password", auth_time=1.0, sender_constraint="dpop"
    )
    return {**base, **overrides}


def pay(
    amount: str,
    currency: str = "EUR",
    creditor: str = "Merchant A",
    account: str = "DE02120300000000202051",
    **ctx: Any,
):  # type: ignore[no-untyped-def]
    values = {
        "amount_minor": minor_units(amount),
        "currency": currency,
        "creditor": creditor,
        "creditor_account": account,
    }
    return POLICIES.decide(
        "agent-1", "make_payment", "https://api.example", context([PAYMENT], request=values, **ctx)
    )


def test_a_payment_inside_the_grant_is_allowed() -> None:
    decision = pay("100.00")
    assert decision.allowed and decision.policies == ("corridor/permit-granted-tool-action",)


@pytest.mark.parametrize(
    ("arguments", "policy"),
    [
        ({"amount": "100.01"}, "corridor/forbid-payment-over-granted-amount"),
        ({"amount": "60.00", "spent_minor": 4001}, "corridor/forbid-payment-over-granted-amount"),
        ({"amount": "1.00", "currency": "USD"}, "corridor/forbid-payment-in-another-currency"),
        ({"amount": "1.00", "creditor": "Merchant B"}, "corridor/forbid-payment-to-another-creditor"),
        (
            {"amount": "1.00", "account": "DE89370400440532013000"},
            "corridor/forbid-payment-to-another-account",
        ),
        ({"amount": "1.00", "sender_constraint": "none"}, "corridor/forbid-without-sender-constraint"),
    ],
)
def test_a_payment_outside_the_grant_is_refused_by_a_named_policy(
    arguments: dict[str, Any], policy: str
) -> None:
    decision = pay(**arguments)
    assert not decision.allowed
    assert decision.policies == (policy,)
    assert decision.rule == f"Cedar: {policy}"


def test_cumulative_spend_exactly_at_the_limit_is_allowed() -> None:
    assert pay("40.00", spent_minor=6000).allowed


def test_agent_tool_actions_are_what_was_granted() -> None:
    granted = POLICIES.decide("agent-1", "list_accounts", "https://api.example", context([TOOL], scopes=[]))
    assert granted.allowed and granted.policies == ("corridor/permit-granted-tool-action",)
    other = POLICIES.decide("agent-1", "delete_account", "https://api.example", context([TOOL], scopes=[]))
    assert not other.allowed and other.policies == (DEFAULT_DENY,)
    no_payment = POLICIES.decide(
        "agent-1", "make_payment", "https://api.example", context([TOOL], route_scope_granted=True)
    )
    assert not no_payment.allowed and no_payment.policies == (
        "corridor/forbid-payment-without-payment-grant",
    )


def test_a_deployment_adds_its_own_policy(tmp_path: Path) -> None:
    extra = tmp_path / "extra.cedar"
    extra.write_text(
        '@id("bank/large-payments-need-mfa")\n'
        'forbid (principal, action == Action::"make_payment", resource)\n'
        'when { context has request && context.request.amount_minor > 5000 && context.acr == "password" };\n'
    )
    policies = Policies.load([str(extra)])
    values = {
        "amount_minor": 6000,
        "currency": "EUR",
        "creditor": "Merchant A",
        "creditor_account": "DE02120300000000202051",
    }
    decision = policies.decide(
        "agent-1", "make_payment", "https://api.example", context([PAYMENT], request=values)
    )
    assert not decision.allowed and decision.policies == ("bank/large-payments-need-mfa",)
    mfa = policies.decide(
        "agent-1", "make_payment", "https://api.example", context([PAYMENT], request=values, acr="mfa")
    )
    assert mfa.allowed


def test_minor_units() -> None:
    assert minor_units("100") == 10000 and minor_units("0.01") == 1
    assert minor_units("1.001") is None and minor_units("-1") is None and minor_units("NaN") is None


def test_an_agent_tool_cap_limits_payments_too() -> None:
    """limits.max_amount of the agent_tool entry is a cap of its own, below the payment grant."""
    tool = {
        "type": "agent_tool",
        "tool": "make_payment",
        "actions": ["initiate"],
        "limits": {"max_amount": {"currency": "EUR", "amount": "50.00"}},
        "purpose": "Pay small invoices",
    }
    values = {
        "amount_minor": 6000,
        "currency": "EUR",
        "creditor": "Merchant A",
        "creditor_account": "DE02120300000000202051",
    }
    refused = POLICIES.decide(
        "agent-1", "make_payment", "https://api.example", context([PAYMENT, tool], request=values)
    )
    assert not refused.allowed and refused.policies == ("corridor/forbid-payment-over-tool-limit",)
    values["amount_minor"] = 5000
    assert POLICIES.decide(
        "agent-1", "make_payment", "https://api.example", context([PAYMENT, tool], request=values)
    ).allowed
