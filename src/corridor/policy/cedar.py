"""Policy binding of tool actions at the resource server (issue 8 part 2), decided by Cedar
(``cedarpy``), design.md 5b.

The request Cedar sees:

* principal ``Agent::"<client_id>"`` (the client acting for the user, who is in the context);
* action ``Action::"<tool action>"`` (what the route declares it does, e.g. ``make_payment``);
* resource ``Api::"<resource identifier>"``;
* context: the token's facts (``user``, ``scopes``, ``acr``, ``auth_time``, ``sender_constraint``),
  what its authorization details granted, reduced to values Cedar can compare
  (``granted_actions``: the tool names, and ``tool:action`` names, of ``agent_tool`` entries;
  ``tool_limit``: an ``agent_tool`` make_payment entry's ``limits.max_amount``;
  ``payment``: the granted limit in minor units, currency and creditor, when a
  ``payment_initiation`` entry was granted; ``spent_minor``: what the grant has already paid),
  and the request's own values (``request``: e.g. the payment amount, currency and creditor).

Corridor's default policies allow an action only inside what was granted; every refusal comes
from an explicit ``forbid`` with its own id (or is the default deny when no ``permit`` applies),
so the record names the policy that decided. Policy sets are parsed once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import cedarpy

DEFAULT_DENY = "default-deny (no permit policy applies)"

#: Corridor's policies. Each has an ``@id``; the decision record names it.
DEFAULT_POLICIES = """
@id("corridor/permit-by-route-scope")
permit (principal, action, resource)
when { context.route_scope_granted };

@id("corridor/permit-granted-tool-action")
permit (principal, action, resource)
when { context.granted_actions.contains(context.action_name) };

@id("corridor/forbid-without-sender-constraint")
forbid (principal, action, resource)
unless { context.sender_constraint == "dpop" || context.sender_constraint == "mtls" };

@id("corridor/forbid-payment-without-payment-grant")
forbid (principal, action == Action::"make_payment", resource)
unless { context has payment };

@id("corridor/forbid-payment-over-granted-amount")
forbid (principal, action == Action::"make_payment", resource)
when {
  context has payment && context has request &&
  context.request.amount_minor + context.spent_minor > context.payment.limit_minor
};

@id("corridor/forbid-payment-in-another-currency")
forbid (principal, action == Action::"make_payment", resource)
when { context has payment && context has request && context.request.currency != context.payment.currency };

@id("corridor/forbid-payment-to-another-creditor")
forbid (principal, action == Action::"make_payment", resource)
when { context has payment && context has request && context.request.creditor != context.payment.creditor };

@id("corridor/forbid-payment-over-tool-limit")
forbid (principal, action == Action::"make_payment", resource)
when {
  context has tool_limit && context has request &&
  (context.request.currency != context.tool_limit.currency ||
   context.request.amount_minor + context.spent_minor > context.tool_limit.limit_minor)
};

@id("corridor/forbid-payment-to-another-account")
forbid (principal, action == Action::"make_payment", resource)
when {
  context has payment && context has request && context.payment.creditor_account != "" &&
  context.request.creditor_account != context.payment.creditor_account
};
"""


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    #: The ids of the policies that determined the decision (permits when allowed, forbids when
    #: refused), or the default deny.
    policies: tuple[str, ...]
    errors: tuple[str, ...] = ()

    @property
    def rule(self) -> str:
        return "Cedar: " + ", ".join(self.policies)


@dataclass
class Policies:
    """A parsed policy set (Corridor's defaults plus a deployment's files) and the map from
    Cedar's positional ids back to the ``@id`` names."""

    texts: list[str] = field(default_factory=lambda: [DEFAULT_POLICIES])

    def __post_init__(self) -> None:
        source = "\n".join(self.texts)
        self.policy_set = cedarpy.PolicySet.from_str(source)
        static = json.loads(cedarpy.policies_to_json_str(source)).get("staticPolicies", {})
        self.names = {
            positional: str(body.get("annotations", {}).get("id") or positional)
            for positional, body in static.items()
        }

    @classmethod
    def load(cls, files: Iterable[str] = ()) -> Policies:
        return cls([DEFAULT_POLICIES, *(Path(f).read_text() for f in files)])

    def decide(
        self, principal: str, action: str, resource: str, context: Mapping[str, Any]
    ) -> PolicyDecision:
        request = {
            "principal": f'Agent::"{_quote(principal)}"',
            "action": f'Action::"{_quote(action)}"',
            "resource": f'Api::"{_quote(resource)}"',
            "context": {**context, "action_name": action},
        }
        result = cedarpy.is_authorized(request, self.policy_set, [])
        reasons = tuple(sorted(self.names.get(r, r) for r in result.diagnostics.reasons))  # stable records
        errors = tuple(str(e) for e in result.diagnostics.errors)
        if result.allowed:
            return PolicyDecision(True, reasons, errors)
        return PolicyDecision(False, reasons or (DEFAULT_DENY,), errors)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def minor_units(amount: str) -> int | None:
    """A decimal string amount in minor units (cents); None when it is not one."""
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError):
        return None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        return None
    return int(value * 100)


def grant_context(
    authorization_details: Iterable[Mapping[str, Any]],
    *,
    user: str,
    scopes: Iterable[str],
    acr: str | None,
    auth_time: float | None,
    sender_constraint: str,
    spent_minor: int = 0,
) -> dict[str, Any]:
    """The token's facts and its grant, in the shape the policies read."""
    granted_actions: set[str] = set()
    payment: dict[str, Any] | None = None
    tool_limit: dict[str, Any] | None = None
    for entry in authorization_details:
        kind = entry.get("type")
        if kind == "agent_tool":
            for action in entry.get("actions") or []:
                granted_actions.add(f"{entry.get('tool')}:{action}")
            granted_actions.add(str(entry.get("tool")))
            raw_limits = entry.get("limits")
            limits: Mapping[str, Any] = raw_limits if isinstance(raw_limits, Mapping) else {}
            raw_money = limits.get("max_amount")
            money = raw_money if isinstance(raw_money, Mapping) else None
            if entry.get("tool") == "make_payment" and money is not None:
                limit = minor_units(str(money.get("amount")))
                if limit is not None:  # the agent's own cap, on top of the payment grant
                    tool_limit = {"limit_minor": limit, "currency": str(money.get("currency"))}
        elif kind == "payment_initiation" and payment is None:
            amount = entry.get("instructedAmount") or {}
            limit = minor_units(str(amount.get("amount")))
            if limit is not None:
                account = entry.get("creditorAccount") or {}
                payment = {
                    "limit_minor": limit,
                    "currency": str(amount.get("currency")),
                    "creditor": str(entry.get("creditorName")),
                    "creditor_account": str(account.get("iban", "")) if isinstance(account, Mapping) else "",
                }
                granted_actions.add("make_payment")
    context: dict[str, Any] = {
        "user": user,
        "scopes": sorted(scopes),
        "acr": acr or "",
        "auth_time": int(auth_time or 0),
        "sender_constraint": sender_constraint,
        "granted_actions": sorted(granted_actions),
        "spent_minor": spent_minor,
        "route_scope_granted": False,
    }
    if payment is not None:
        context["payment"] = payment
    if tool_limit is not None:
        context["tool_limit"] = tool_limit
    return context
