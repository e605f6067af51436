"""The authorization_details types Corridor ships (RFC 9396 2): a JSON Schema each, validated with
``jsonschema``, and a short template that says an entry in words on the consent page.

* ``payment_initiation``: the RFC 9396 example shape (design.md 5b), amounts as decimal strings;
* ``account_information``: which accounts, which permissions, until when;
* ``agent_tool``: a tool an agent may call for the user: its name, actions, where (locations),
  limits and purpose.

Each also has a ``headline``: what the consent page's heading asks when the entry is the first one
(issue 18), the words after "Allow <client> to" ("pay up to 100.00 EUR to Merchant A").

A deployment adds its own types as JSON files (``authorization_details_type_files``) with the same
members: ``type``, ``schema``, ``template`` and, optionally, ``headline``.
"""

from __future__ import annotations

from typing import Any

#: RFC 9396 2.2 common data fields, allowed in every type.
COMMON: dict[str, Any] = {
    "type": {"type": "string"},
    "locations": {
        "type": "array",
        "items": {"type": "string", "format": "uri", "maxLength": 2048},
        "maxItems": 8,
    },
    "actions": {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 16},
    "datatypes": {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 16},
    "identifier": {"type": "string", "maxLength": 256},
    "privileges": {"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 16},
}

#: A decimal string with at most two fractional digits (design.md 5b: never a float).
AMOUNT = {"type": "string", "pattern": "^(0|[1-9][0-9]{0,11})(\\.[0-9]{1,2})?$"}
CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$"}
MONEY = {
    "type": "object",
    "required": ["currency", "amount"],
    "properties": {"currency": CURRENCY, "amount": AMOUNT},
    "additionalProperties": False,
}
TEXT = {"type": "string", "minLength": 1, "maxLength": 140}

BUILTIN: dict[str, dict[str, Any]] = {
    "payment_initiation": {
        "schema": {
            "type": "object",
            "required": ["type", "instructedAmount", "creditorName"],
            "properties": {
                **COMMON,
                "instructedAmount": MONEY,
                "creditorName": TEXT,
                "creditorAccount": {
                    "type": "object",
                    "properties": {
                        "iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"},
                        "bic": {"type": "string", "pattern": "^[A-Z0-9]{8}([A-Z0-9]{3})?$"},
                    },
                    "minProperties": 1,
                    "additionalProperties": False,
                },
                "remittanceInformationUnstructured": TEXT,
            },
            "additionalProperties": False,
        },
        "template": (
            "Pay up to {{ instructedAmount.amount }} {{ instructedAmount.currency }} in all to "
            "{{ creditorName }}{% if creditorAccount and creditorAccount.iban %} "
            "(account {{ creditorAccount.iban }}){% endif %}"
            "{% if remittanceInformationUnstructured %}, reference “{{ remittanceInformationUnstructured }}”"
            "{% endif %}"
        ),
        "headline": (
            "pay up to {{ instructedAmount.amount }} {{ instructedAmount.currency }} to {{ creditorName }}"
        ),
    },
    "account_information": {
        "schema": {
            "type": "object",
            "required": ["type", "permissions"],
            "properties": {
                **COMMON,
                "accounts": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1, "maxLength": 64},
                    "maxItems": 32,
                },
                "permissions": {
                    "type": "array",
                    "items": {"enum": ["balances", "transactions", "details"]},
                    "minItems": 1,
                    "uniqueItems": True,
                },
                "expiry": {"type": "string", "format": "date-time"},
            },
            "additionalProperties": False,
        },
        "template": (
            "Read the {{ permissions | join(', ') }} of "
            "{% if accounts %}the accounts {{ accounts | join(', ') }}{% else %}all your accounts{% endif %}"
            "{% if expiry %} until {{ expiry }}{% endif %}"
        ),
        "headline": (
            "read the {{ permissions | join(' and ') }} of "
            "{% if accounts %}the accounts {{ accounts | join(', ') }}{% else %}all your accounts{% endif %}"
        ),
    },
    "agent_tool": {
        "schema": {
            "type": "object",
            "required": ["type", "tool", "actions", "purpose"],
            "properties": {
                **COMMON,
                "tool": {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,63}$"},
                "actions": {**COMMON["actions"], "minItems": 1},
                "limits": {
                    "type": "object",
                    "properties": {
                        "max_calls": {"type": "integer", "minimum": 1, "maximum": 100000},
                        "max_amount": MONEY,
                    },
                    "additionalProperties": False,
                },
                "purpose": TEXT,
            },
            "additionalProperties": False,
        },
        "template": (
            "Let the agent use the tool “{{ tool }}” to {{ actions | join(', ') }}"
            "{% if locations %} at {{ locations | join(', ') }}{% endif %}"
            "{% if limits and limits.max_amount %}, at most {{ limits.max_amount.amount }} "
            "{{ limits.max_amount.currency }} in all{% endif %}"
            "{% if limits and limits.max_calls %}, at most {{ limits.max_calls }} calls{% endif %}"
            ", for: {{ purpose }}"
        ),
        "headline": "let its agent use the tool “{{ tool }}” to {{ actions | join(', ') }}",
    },
}
