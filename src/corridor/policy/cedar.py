"""Policy binding of tool actions at the resource server (issue 8 part 2), decided by Cedar
(``cedarpy``), design.md 5b.

The request Cedar sees:

* principal ``Agent::"<client_id>"`` (the client acting for the user, who is in the context);
* action ``Action::"<tool>"``: what the route declares it does, e.g. ``make_payment``, or a tool
  and one of its actions, ``list_accounts:read`` (the Cedar action is then the tool, so policies
  written for the tool apply to every action of it; ``context.action_name`` is the whole name);
* resource ``Api::"<resource identifier>"``;
* context: the token's facts (``user``, ``scopes``, ``acr``, ``auth_time``, ``sender_constraint``),
  what its authorization details granted, reduced to values Cedar can compare
  (``granted_actions``: the ``tool:action`` names of ``agent_tool`` entries, one per listed
  action, and ``make_payment`` when a ``payment_initiation`` entry was granted;
  ``tool_limit``: an ``agent_tool`` make_payment entry's ``limits.max_amount``;
  ``payment``: the ``payment_initiation`` entry this payment is for: its limit in minor units,
  currency, creditor, account, index and what was already paid against it; ``spent_minor``: what
  the grant has already paid in all), and the request's own values (``request``: e.g. the payment
  amount, currency and creditor).

What the user approved is enforced entry by entry, as the consent page said it (issue 13 D4):
an ``agent_tool`` entry grants exactly the actions it lists for its tool (the tool's name alone
grants nothing; an entry without actions grants nothing, as its sentence names none), and a
payment may go when it fits any approved ``payment_initiation`` entry (same creditor, account and
currency, and within that entry's amount, counting what was already paid against that entry).

Corridor's default policies allow an action only inside what was granted; every refusal comes
from an explicit ``forbid`` with its own id (or is the default deny when no ``permit`` applies),
so the record names the policy that decided. Policy sets are parsed once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
  context.request.amount_minor + context.payment.spent_minor > context.payment.limit_minor
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
    #: For a payment: the index (in the token's authorization_details) of the payment_initiation
    #: entry it was decided against, so the API charges what it pays to that entry.
    payment_entry: int | None = None

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
            "action": f'Action::"{_quote(tool_of(action))}"',
            "resource": f'Api::"{_quote(resource)}"',
            "context": {**context, "action_name": action},
        }
        result = cedarpy.is_authorized(request, self.policy_set, [])
        reasons = tuple(sorted(self.names.get(r, r) for r in result.diagnostics.reasons))  # stable records
        errors = tuple(str(e) for e in result.diagnostics.errors)
        if result.allowed:
            payment = context.get("payment") if "request" in context else None
            entry = payment.get("entry") if isinstance(payment, Mapping) else None
            return PolicyDecision(True, reasons, errors, entry if isinstance(entry, int) else None)
        return PolicyDecision(False, reasons or (DEFAULT_DENY,), errors)


def tool_of(action: str) -> str:
    """The tool of a ``tool:action`` name (the whole name when it has no action part)."""
    return action.partition(":")[0]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


#: A plain decimal amount: no sign, exponent, spaces or leading zeros, at most two fractional
#: digits (the built-in types' AMOUNT, policy/detail_types.py) and 15 integral ones, so that
#: amounts in minor units, and sums of two, stay far inside Cedar's 64-bit Long.
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?", re.ASCII)


def minor_units(amount: object) -> int | None:
    """A decimal string amount in minor units (cents); None when it is not one (issue 13 F7:
    also for ``1e30``, ``NaN``, ``Infinity``, ``-0``, huge digit strings, more than two decimals,
    and anything that is not a string)."""
    if not isinstance(amount, str) or _AMOUNT.fullmatch(amount) is None:
        return None
    whole, _, cents = amount.partition(".")
    return int(whole) * 100 + int(cents.ljust(2, "0") or "0")


def grant_context(
    authorization_details: Iterable[Mapping[str, Any]],
    *,
    user: str,
    scopes: Iterable[str],
    acr: str | None,
    auth_time: float | None,
    sender_constraint: str,
    spent_minor: int = 0,
    request: Mapping[str, Any] | None = None,
    spent_by_entry: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """The token's facts and its grant, in the shape the policies read.

    ``spent_minor``: what the grant has paid in all; ``spent_by_entry``: what it has paid against
    each payment_initiation entry (by index; an entry missing there has paid nothing). Without
    ``spent_by_entry`` every entry counts ``spent_minor`` (the safe side for an API that does
    not keep them apart). ``request``: the payment's values,
    used to pick the entry it is for."""
    details = list(authorization_details)
    granted_actions: set[str] = set()
    for entry in details:
        granted_actions.update(tool_actions(entry))
    payments = [
        _payment_entry(index, entry, spent_minor, spent_by_entry)
        for index, entry in enumerate(details)
        if entry.get("type") == "payment_initiation"
    ]
    payment_grants = [p for p in payments if p is not None]
    if payment_grants:
        granted_actions.add("make_payment")
    caps = [c for c in (_tool_cap(entry) for entry in details) if c is not None]
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
    if payment_grants:
        context["payment"] = _best(payment_grants, lambda p: _payment_fit(p, request))
    if caps:
        context["tool_limit"] = _best(caps, lambda c: _cap_fit(c, request, spent_minor))
    if request is not None:
        context["request"] = dict(request)
    return context


def tool_actions(entry: Mapping[str, Any]) -> set[str]:
    """issue 13 D4: the ``tool:action`` names an ``agent_tool`` entry grants: one per listed
    action, as its consent sentence says them; the tool alone, or no actions, grants nothing."""
    tool, actions = entry.get("tool"), entry.get("actions")
    if entry.get("type") != "agent_tool" or not isinstance(tool, str) or not tool or ":" in tool:
        return set()
    if not isinstance(actions, list):
        return set()
    return {f"{tool}:{action}" for action in actions if isinstance(action, str) and action}


def _payment_entry(
    index: int, entry: Mapping[str, Any], spent_minor: int, spent_by_entry: Mapping[int, int] | None
) -> dict[str, Any] | None:
    amount = entry.get("instructedAmount")
    if not isinstance(amount, Mapping):
        return None
    limit = minor_units(amount.get("amount"))
    if limit is None:
        return None
    account = entry.get("creditorAccount")
    return {
        "entry": index,
        "limit_minor": limit,
        "currency": str(amount.get("currency")),
        "creditor": str(entry.get("creditorName")),
        "creditor_account": str(account.get("iban", "")) if isinstance(account, Mapping) else "",
        "spent_minor": spent_minor if spent_by_entry is None else spent_by_entry.get(index, 0),
    }


def _tool_cap(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The agent's own cap: an ``agent_tool`` make_payment entry's ``limits.max_amount``."""
    if entry.get("type") != "agent_tool" or entry.get("tool") != "make_payment":
        return None
    limits = entry.get("limits")
    money = limits.get("max_amount") if isinstance(limits, Mapping) else None
    if not isinstance(money, Mapping):
        return None
    limit = minor_units(money.get("amount"))
    if limit is None:
        return None
    return {"limit_minor": limit, "currency": str(money.get("currency"))}


def _payment_fit(payment: Mapping[str, Any], request: Mapping[str, Any] | None) -> tuple[bool, ...]:
    """How far a request matches one payment entry, most telling first (all True: it fits)."""
    if request is None:
        return ()
    amount = request.get("amount_minor")
    return (
        request.get("creditor") == payment["creditor"],
        request.get("currency") == payment["currency"],
        payment["creditor_account"] in ("", request.get("creditor_account")),
        isinstance(amount, int) and amount + payment["spent_minor"] <= payment["limit_minor"],
    )


def _cap_fit(cap: Mapping[str, Any], request: Mapping[str, Any] | None, spent: int) -> tuple[bool, ...]:
    if request is None:
        return ()
    amount = request.get("amount_minor")
    return (
        request.get("currency") == cap["currency"],
        isinstance(amount, int) and amount + spent <= cap["limit_minor"],
    )


def _best(candidates: list[dict[str, Any]], fit: Any) -> dict[str, Any]:
    """An entry the request fits entirely, else the one it comes closest to (so the policy that
    refuses names the first thing that differs), else the first."""
    return max(candidates, key=lambda c: (all(fit(c)), fit(c)))
