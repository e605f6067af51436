"""What a resource server's records keep of an action (issue 16, resource/evidence.py): the
declared parameters and result, and the rules that hold whatever a route declares: no value under
a secret's name, no whole card number, no unbounded text."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from corridor.resource.evidence import (
    MAX_DEPTH,
    MAX_TEXT,
    MAX_VALUES,
    ActionFacts,
    Recorded,
    Redaction,
    compared,
    mask_card_numbers,
)

CARD = "4111111111111111"  # a Luhn-valid test card number


def luhn_complete(prefix: str) -> str:
    """``prefix`` with the check digit that makes it pass the Luhn check."""
    for digit in "0123456789":
        candidate = prefix + digit
        total = 0
        for position, char in enumerate(reversed(candidate)):
            n = int(char) * (2 if position % 2 else 1)
            total += n - 9 if n > 9 else n
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def test_declared_parameters_and_result_are_kept_and_nothing_else() -> None:
    recorded = Recorded(parameters=("amount", "currency"), result=("payment_id",))
    facts = ActionFacts.of("make_payment", {"amount": "1.00", "currency": "EUR", "note": "x"}, recorded)
    facts.set_result({"payment_id": "p1", "internal": "y"})
    assert facts.parameters == {"amount": "1.00", "currency": "EUR"}
    assert facts.result == {"payment_id": "p1"}
    assert facts.detail() == {
        "name": "make_payment",
        "tool": "make_payment",
        "parameters": {"amount": "1.00", "currency": "EUR"},
    }
    assert ActionFacts.of("list_accounts:read", None).detail() == {
        "name": "list_accounts:read",
        "tool": "list_accounts",
        "action": "read",
        "parameters": {},
    }


def test_declared_redactions() -> None:
    recorded = Recorded(
        redact={"iban": Redaction.LAST4, "email": Redaction.SHA256, "note": Redaction.DROP},
    )
    facts = ActionFacts.of(
        "pay", {"iban": "DE89370400440532013000", "email": "a@example.com", "note": "n"}, recorded
    )
    assert facts.parameters == {
        "iban": "…3000",
        "email": "sha256:" + hashlib.sha256(b"a@example.com").hexdigest(),
    }
    assert facts.redacted == ["email", "iban", "note"]


def test_secrets_are_never_recorded_whatever_the_route_declares() -> None:
    names = ["password", "client_secret", "access_token", "refreshToken", "cvv", "pin", "otp", "apiKey",
             "code", "private_key", "client_assertion"]  # fmt: skip
    recorded = Recorded(parameters=(*names, "currency_code", "postal_code", "footprint"))
    values = {name: "s3cr3t-value" for name in names}
    values.update(currency_code="EUR", postal_code="10115", footprint="big")
    facts = ActionFacts.of("act", values, recorded)
    assert facts.parameters == {"currency_code": "EUR", "postal_code": "10115", "footprint": "big"}
    assert sorted(facts.redacted) == sorted(names)
    nested = ActionFacts.of("act", {"card": {"number": CARD, "cvc": "123"}, "list": [f"pan {CARD}"]})
    assert nested.parameters == {"card": {"number": "…1111"}, "list": ["pan …1111"]}
    assert "s3cr3t" not in json.dumps(facts.detail()) and CARD not in json.dumps(nested.detail())


def test_card_numbers_are_masked_and_other_numbers_are_not() -> None:
    assert mask_card_numbers(f"card {CARD} ok") == "card …1111 ok"
    assert mask_card_numbers("4111 1111 1111 1111") == "…1111"
    assert mask_card_numbers("4111-1111-1111-1111") == "…1111"
    assert mask_card_numbers("4111111111111112") == "4111111111111112"  # fails the Luhn check
    assert mask_card_numbers("DE89370400440532013000") == "DE89370400440532013000"  # an IBAN
    assert mask_card_numbers("order 12345") == "order 12345"


@given(st.text(alphabet="0123456789", min_size=12, max_size=18), st.text(max_size=20))
def test_no_luhn_valid_card_number_survives(prefix: str, around: str) -> None:
    card = luhn_complete(prefix)
    text = f"{around} {card} {around}"
    masked = ActionFacts.of("act", {"note": text}).parameters["note"]
    assert card not in masked


def test_records_are_bounded() -> None:
    huge = {
        "long": "x" * 10_000,
        "deep": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}},
        "wide": {f"k{i}": i for i in range(100)},
        **{f"p{i}": i for i in range(100)},
    }
    facts = ActionFacts.of("act", huge)
    encoded = json.dumps(facts.detail())
    assert len(encoded) < 16_000
    assert len(facts.parameters) <= MAX_VALUES
    assert len(facts.parameters["long"]) == MAX_TEXT
    deep = facts.parameters["deep"]
    for _ in range(MAX_DEPTH - 1):
        deep = deep[next(iter(deep))]
    assert deep == {"d": "…"}
    assert len(facts.parameters["wide"]) == MAX_VALUES


def test_the_compared_values_are_the_decision_inputs_without_the_rest() -> None:
    context = {
        "request": {"amount_minor": 60000, "currency": "EUR"},
        "payment": {"limit_minor": 50000, "spent_minor": 0},
        "spent_minor": 0,
        "granted_actions": ["make_payment"],
        "user": "pseudonym",
    }
    assert compared(context) == {
        "request": {"amount_minor": 60000, "currency": "EUR"},
        "payment": {"limit_minor": 50000, "spent_minor": 0},
        "spent_minor": 0,
    }
