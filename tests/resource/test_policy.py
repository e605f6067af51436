"""Policy binding of tool actions (issue 8 part 2): Cedar decides from the token's grant and the
request's own values; every refusal names the policy that decided it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corridor.policy.cedar import DEFAULT_DENY, Policies, PolicyDecision, grant_context, minor_units

PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "100.00"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02120300000000202051"},
}
TOOL = {"type": "agent_tool", "tool": "list_accounts", "actions": ["read"], "purpose": "Show balances"}
POLICIES = Policies.load()


def context(details: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    given = {k: overrides.pop(k) for k in ("request", "spent_minor", "spent_by_entry") if k in overrides}
    base = grant_context(
        details,
        user="u1",
        scopes=["payments"],
        acr="password",
        auth_time=1.0,
        sender_constraint="dpop",
        **given,
    )
    return {**base, **overrides}


def pay(
    amount: str,
    currency: str = "EUR",
    creditor: str = "Merchant A",
    account: str = "DE02120300000000202051",
    **ctx: Any,
) -> PolicyDecision:
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
    """issue 13 D4: an agent_tool entry grants the actions it lists for its tool, nothing more.
    (This test used to assert that the tool's name alone, ``list_accounts``, was granted: the
    defect.)"""
    granted = POLICIES.decide(
        "agent-1", "list_accounts:read", "https://api.example", context([TOOL], scopes=[])
    )
    assert granted.allowed and granted.policies == ("corridor/permit-granted-tool-action",)
    for action in ("list_accounts", "list_accounts:delete", "list_accounts:", "delete_account:read"):
        other = POLICIES.decide("agent-1", action, "https://api.example", context([TOOL], scopes=[]))
        assert not other.allowed and other.policies == (DEFAULT_DENY,), action
    no_payment = POLICIES.decide(
        "agent-1", "make_payment", "https://api.example", context([TOOL], route_scope_granted=True)
    )
    assert not no_payment.allowed and no_payment.policies == (
        "corridor/forbid-payment-without-payment-grant",
    )


@pytest.mark.parametrize(
    ("entry", "allowed"),
    [
        ({"tool": "list_accounts", "actions": ["read"]}, {"list_accounts:read"}),
        (
            {"tool": "list_accounts", "actions": ["read", "export"]},
            {"list_accounts:read", "list_accounts:export"},
        ),
        ({"tool": "list_accounts", "actions": ["export"]}, {"list_accounts:export"}),
        ({"tool": "list_accounts", "actions": []}, set()),
        ({"tool": "list_accounts"}, set()),
        ({"tool": "list_accounts", "actions": "read"}, set()),
        ({"tool": "list_accounts", "actions": [7, None, "read"]}, {"list_accounts:read"}),
        ({"actions": ["read"]}, set()),
        ({"tool": "list_accounts:read", "actions": ["x"]}, set()),
    ],
)
def test_an_agent_tool_entry_grants_exactly_the_actions_it_lists(
    entry: dict[str, Any], allowed: set[str]
) -> None:
    """issue 13 D4: the consent page said "use the tool T to A, B": T:A and T:B, and only those;
    an entry without actions names none, so it grants none."""
    details = [{"type": "agent_tool", "purpose": "p", **entry}]
    for action in ("list_accounts", "list_accounts:read", "list_accounts:export", "list_accounts:delete"):
        decision = POLICIES.decide("agent-1", action, "https://api.example", context(details, scopes=[]))
        assert decision.allowed == (action in allowed), (entry, action)


def test_every_agent_tool_entry_counts() -> None:
    """issue 13 D4: two entries for two tools (or the same tool twice) each grant their own."""
    details = [
        {"type": "agent_tool", "tool": "list_accounts", "actions": ["read"], "purpose": "p"},
        {"type": "agent_tool", "tool": "statements", "actions": ["download"], "purpose": "p"},
        {"type": "agent_tool", "tool": "list_accounts", "actions": ["export"], "purpose": "p"},
    ]
    ctx = context(details, scopes=[])
    for action in ("list_accounts:read", "statements:download", "list_accounts:export"):
        assert POLICIES.decide("agent-1", action, "https://api.example", ctx).allowed, action
    for action in ("statements:read", "list_accounts:download", "statements"):
        assert not POLICIES.decide("agent-1", action, "https://api.example", ctx).allowed, action


def test_a_tool_action_is_decided_by_the_policies_of_its_tool(tmp_path: Path) -> None:
    """Cedar's action is the tool, so a deployment's forbid for the tool covers its every action."""
    extra = tmp_path / "extra.cedar"
    extra.write_text(
        '@id("bank/no-exports-at-password")\n'
        'forbid (principal, action == Action::"list_accounts", resource)\n'
        'when { context.action_name == "list_accounts:export" && context.acr == "password" };\n'
    )
    details = [{"type": "agent_tool", "tool": "list_accounts", "actions": ["read", "export"], "purpose": "p"}]
    policies = Policies.load([str(extra)])
    refused = policies.decide("agent-1", "list_accounts:export", "https://api.example", context(details))
    assert not refused.allowed and refused.policies == ("bank/no-exports-at-password",)
    assert policies.decide("agent-1", "list_accounts:read", "https://api.example", context(details)).allowed


SECOND = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "50.00"},
    "creditorName": "Merchant B",
}


def pay_two(
    amount: str, creditor: str, currency: str = "EUR", account: str = "", **kw: Any
) -> PolicyDecision:
    values = {
        "amount_minor": minor_units(amount),
        "currency": currency,
        "creditor": creditor,
        "creditor_account": account,
    }
    ctx = grant_context(
        [PAYMENT, SECOND],
        user="u1",
        scopes=["payments"],
        acr="password",
        auth_time=1.0,
        sender_constraint="dpop",
        request=values,
        **kw,
    )
    return POLICIES.decide("agent-1", "make_payment", "https://api.example", ctx)


def test_a_payment_may_go_to_any_approved_creditor() -> None:
    """issue 13 D4: the second approved payment_initiation entry counts (it was refused with
    corridor/forbid-payment-to-another-creditor); each entry with its own amount and currency."""
    second = pay_two("50.00", "Merchant B")
    assert second.allowed and second.payment_entry == 1
    first = pay_two("100.00", "Merchant A", account="DE02120300000000202051")
    assert first.allowed and first.payment_entry == 0
    over = pay_two("50.01", "Merchant B")
    assert not over.allowed and over.policies == ("corridor/forbid-payment-over-granted-amount",)
    usd = pay_two("1.00", "Merchant B", currency="USD")
    assert not usd.allowed and usd.policies == ("corridor/forbid-payment-in-another-currency",)
    other = pay_two("1.00", "Merchant C")
    assert not other.allowed and other.policies == ("corridor/forbid-payment-to-another-creditor",)
    # Merchant A's entry names an account: a payment to Merchant A elsewhere is refused.
    moved = pay_two("1.00", "Merchant A", account="DE89370400440532013000")
    assert not moved.allowed and moved.policies == ("corridor/forbid-payment-to-another-account",)


def test_each_payment_entry_counts_what_was_paid_against_it() -> None:
    """issue 13 D4: spent per entry (an entry not named has paid nothing); without per-entry
    figures the grant's total counts for each."""
    assert pay_two("50.00", "Merchant B", spent_minor=10000, spent_by_entry={0: 10000, 1: 0}).allowed
    assert pay_two("50.00", "Merchant B", spent_minor=10000, spent_by_entry={0: 10000}).allowed
    refused = pay_two("50.00", "Merchant B", spent_minor=10000)
    assert not refused.allowed and refused.policies == ("corridor/forbid-payment-over-granted-amount",)
    assert not pay_two("0.01", "Merchant B", spent_minor=5000, spent_by_entry={1: 5000}).allowed


def test_two_entries_for_one_creditor_either_may_pay() -> None:
    """The same creditor approved twice: a payment that fits either entry goes against it."""
    small = {**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "10.00"}}
    big = {**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "80.00"}}
    values = {
        "amount_minor": 7000,
        "currency": "EUR",
        "creditor": "Merchant A",
        "creditor_account": "DE02120300000000202051",
    }
    ctx = context([small, big], request=values)
    decision = POLICIES.decide("agent-1", "make_payment", "https://api.example", ctx)
    assert decision.allowed


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
    assert minor_units("100") == 10000 and minor_units("0.01") == 1 and minor_units("1.5") == 150
    assert minor_units("1.001") is None and minor_units("-1") is None and minor_units("NaN") is None


@pytest.mark.parametrize(
    "odd",
    [
        "1e30",
        "1E2",
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        "-0",
        "+1",
        "-0.00",
        "9" * 40,
        "1" + "0" * 15,
        "1.000",
        "0.001",
        "1.",
        ".5",
        " 1",
        "1 ",
        "01",
        "1_000",
        "\u0661",
        "",
        "0x10",
    ],
)
def test_minor_units_of_odd_decimals_is_none(odd: str) -> None:
    """issue 13 F7: every odd decimal string is None, never an exception (1e30 raised)."""
    assert minor_units(odd) is None


@given(st.one_of(st.text(), st.decimals().map(str), st.floats().map(str), st.integers().map(str), st.none()))
def test_minor_units_never_raises(value: Any) -> None:
    """issue 13 F7: any input gives None or the exact amount in cents."""
    result = minor_units(value)
    if result is not None:
        assert isinstance(value, str)
        assert 0 <= result < 10**17
        assert Decimal(value) * 100 == result


@given(st.integers(min_value=0, max_value=10**15 - 1), st.integers(min_value=0, max_value=99))
def test_minor_units_of_plain_amounts(whole: int, cents: int) -> None:
    assert minor_units(f"{whole}.{cents:02d}") == whole * 100 + cents
    if cents % 10 == 0:
        assert minor_units(f"{whole}.{cents // 10}") == whole * 100 + cents


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
