# Why over 450 lines: one table of every event and outcome in words, beside the few functions
# that turn a record into sentences with it; split, a new event would be described in two places.
"""Traces in words (issue 16): each evidence record of a trace told as a step a person reads.

Pure functions from a readable record (:func:`corridor.audit.trace.readable`) to a :class:`Step`:
a title and sentences saying who acted, what the consent page showed, what was granted (the
``authorization_details`` in the sentences the consent page used), what was done at a resource
server (the action and its parameters, the answer), what was refused and by which rule or Cedar
policy (with the amounts compared for a payment over its limit), how the user signed in (acr,
amr, factor) and what the tokens are bound to. ``corridor audit trace`` prints the steps as text
(:meth:`Step.lines`, control and bidirectional characters escaped); ``/admin/trace`` renders the
same steps through autoescaped Jinja2 with ``|visible``.

The words of an ``authorization_details`` entry come from the AS's detail types (``describe``,
e.g. ``DetailTypes.describe``): this module does not import the policy layer. User names come from
``names`` (pseudonymous user id to user name, :func:`user_names`); an id without a name stays
the pseudonymous id."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from corridor.core.text import escape_controls
from corridor.store.protocols import Users

#: An ``authorization_details`` entry in words (the AS's ``DetailTypes.describe``).
Describe = Callable[[Mapping[str, Any]], str]

#: The event of the record a resource server writes right after its ``rs.access`` record with
#: what the route answered (same request_id, grant_id and token_jti).
RS_RESULT = "rs.result"

#: What each kind of sentence is about, as the page's headings and the text's labels say it.
LABELS: dict[str, str] = {
    "who": "Who",
    "sign_in": "Sign-in",
    "shown": "What was shown",
    "granted": "What was granted",
    "done": "What was done",
    "refused": "Why refused",
    "bound": "Bound to",
    "signed": "Signed",
}

_TITLES: dict[tuple[str, str], str] = {
    ("par", "accepted"): "The client pushed its authorization request",
    ("par", "refused"): "The pushed authorization request was refused",
    ("authorize", "accepted"): "The browser brought the request to the authorization endpoint",
    ("authorize", "refused"): "The authorization endpoint refused the request",
    ("interaction", "refused"): "The sign-in and consent pages refused a step",
    ("login", "succeeded"): "The user signed in",
    ("login", "refused"): "A sign-in was refused",
    ("passkey", "enrolled"): "The user added a passkey",
    ("passkey", "refused"): "Adding a passkey was refused",
    ("consent", "shown"): "The consent page was shown",
    ("consent", "granted"): "The user approved",
    ("consent", "denied"): "The user denied the request",
    ("consent", "refused"): "The consent was refused",
    ("code", "issued"): "An authorization code was issued",
    ("code.reuse_detected", "revoked"): "A used code came again: the grant was revoked",
    ("token.authorization_code", "issued"): "The code was exchanged for tokens",
    ("token.authorization_code", "refused"): "The code exchange was refused",
    ("token.refresh_token", "issued"): "The tokens were refreshed",
    ("token.refresh_token", "refused"): "A refresh was refused",
    ("token.client_credentials", "issued"): "The client got a token for itself (no user involved)",
    ("token.client_credentials", "refused"): "A client credentials request was refused",
    ("token", "refused"): "The token endpoint refused a request",
    ("introspection", "active"): "A resource server introspected the token: active",
    ("introspection", "inactive"): "A resource server introspected the token: not active",
    ("introspection", "refused"): "An introspection was refused",
    ("revocation.access_token", "revoked"): "The access token was revoked",
    ("revocation.grant", "revoked"): "The grant was revoked",
    ("revocation", "refused"): "A revocation was refused",
    ("userinfo", "allowed"): "UserInfo answered",
    ("userinfo", "refused"): "UserInfo refused the token",
    ("admin.login", "succeeded"): "An administrator signed in",
    ("admin.login", "refused"): "An administrator's sign-in was refused",
    ("admin.view", "shown"): "An administrator looked at a trace",
    ("rs.access", "allowed"): "The resource server allowed a request",
    ("rs.access", "refused"): "The resource server refused a request",
    (RS_RESULT, "completed"): "The resource server answered",
    (RS_RESULT, "succeeded"): "The resource server answered",
}

_FACTORS = {
    "password": "a password",
    "totp": "a TOTP code (a second factor)",
    "passkey": "a passkey",
}

#: What some rules mean, for a reader who does not know them by heart.
_RULE_WORDS = {
    "RFC 9470 3": "step-up: the sign-in behind the token is not strong or recent enough for this",
}

#: Events whose records say what the user or client was granted.
_GRANTING = {
    ("consent", "granted"),
    ("token.authorization_code", "issued"),
    ("token.refresh_token", "issued"),
    ("token.client_credentials", "issued"),
}


@dataclass(frozen=True)
class Sentence:
    """One thing a step says; ``kind`` is a key of :data:`LABELS`."""

    kind: str
    text: str

    @property
    def label(self) -> str:
        return LABELS[self.kind]


@dataclass(frozen=True)
class Step:
    """One record in words (issue 16): a title and its sentences, in reading order."""

    record_id: int | None
    event: str
    outcome: str
    when: str
    title: str
    sentences: tuple[Sentence, ...] = ()
    #: The granted ``authorization_details`` as JSON (the page shows it behind a disclosure).
    raw_details: str | None = None
    refused: bool = False
    shown: bool = False
    writer: str | None = field(default=None, compare=False)

    def groups(self) -> list[tuple[str, list[str]]]:
        """The sentences under their labels, in the order the labels first appear."""
        out: dict[str, list[str]] = {}
        for sentence in self.sentences:
            out.setdefault(sentence.label, []).append(sentence.text)
        return list(out.items())

    def lines(self) -> list[str]:
        """The step as text lines, every value's control and bidirectional characters escaped
        (issue 13 E1): a recorded newline cannot start a line of its own."""
        head = f"{self.when}  {self.event} {self.outcome}: {self.title}"
        out = [head]
        for label, texts in self.groups():
            out.extend(f"    {label}: {text}" for text in texts)
        return [escape_controls(line) for line in out]


def user_names(users: Users, records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The user name of every user id in ``records`` that the store still knows (for operators:
    the CLI and the admin page); unknown ids are left out and shown as the pseudonymous id."""
    names: dict[str, str] = {}
    for user_id in {str(r["user_id"]) for r in records if r.get("user_id")}:
        row = users.get(user_id)
        if row is not None and row.get("username"):
            names[user_id] = str(row["username"])
    return names


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def money(minor: int, currency: str) -> str:
    """Minor units in words: 6000, "EUR" -> "60.00 EUR"."""
    return f"{Decimal(minor) / 100:.2f} {currency}".strip()


def _quoted(value: Any) -> str:
    if value is None:
        return "not given"
    if isinstance(value, str):
        return f"“{value}”"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def steps(
    records: Iterable[Mapping[str, Any]],
    describe: Describe | None = None,
    names: Mapping[str, str] | None = None,
) -> list[Step]:
    """Every record in words, in the order given."""
    return [step(record, describe, names) for record in records]


def step(
    record: Mapping[str, Any], describe: Describe | None = None, names: Mapping[str, str] | None = None
) -> Step:
    """One readable record as a :class:`Step`."""
    event, outcome = str(record.get("event")), str(record.get("outcome"))
    raw = record.get("detail")
    detail: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    said: list[Sentence] = []
    who = _who(record, names or {})
    if who:
        said.append(Sentence("who", who))
    said += [Sentence("sign_in", s) for s in _sign_in(event, detail)]
    said += [Sentence("shown", s) for s in _shown(detail)]
    raw_details = None
    if (event, outcome) in _GRANTING:
        said += [Sentence("granted", s) for s in _granted(record, describe)]
        details = record.get("authorization_details")
        if details:
            raw_details = json.dumps(details, indent=2, sort_keys=True, ensure_ascii=False)
    said += [Sentence("done", s) for s in _done(event, record, detail)]
    refused = outcome in ("refused", "denied") or bool(record.get("error"))
    if refused:  # an allowed record's rule names the permits that allowed it (in "done")
        said += [Sentence("refused", s) for s in _refused(record, detail)]
    compared = _compared(detail)
    if compared:
        said += [Sentence("refused" if refused else "done", s) for s in compared]
    bound = _bound(record)
    if bound:
        said.append(Sentence("bound", bound))
    said += [Sentence("signed", s) for s in _signed(detail)]
    moment = record.get("time")
    return Step(
        record_id=record.get("id"),
        event=event,
        outcome=outcome,
        when=iso(float(moment)) if isinstance(moment, int | float) else "",
        title=_TITLES.get((event, outcome), f"{event} {outcome}"),
        sentences=tuple(said),
        raw_details=raw_details,
        refused=refused,
        shown=outcome == "shown",
        writer=record.get("writer"),
    )


def _who(record: Mapping[str, Any], names: Mapping[str, str]) -> str:
    parts = []
    user = record.get("user_id")
    if user:
        parts.append(f"user {names.get(str(user), str(user))}")
    if record.get("client_id"):
        parts.append(f"client {record['client_id']}")
    detail = record.get("detail")
    if isinstance(detail, Mapping) and detail.get("actor") == "client" and not user:
        return f"client {record.get('client_id')}, acting for itself: no user was involved"
    return ", through ".join(parts)


def _sign_in(event: str, detail: Mapping[str, Any]) -> list[str]:
    """How the user signed in: the factor of a sign-in record, or the acr/amr a grant rests on."""
    acr, amr = detail.get("acr"), detail.get("amr")
    methods = f", amr {' '.join(str(m) for m in amr)}" if isinstance(amr, list) and amr else ""
    if event in ("login", "admin.login"):
        factor = detail.get("factor") or ("password" if acr == "password" else None)
        said = f"with {_FACTORS.get(str(factor), str(factor))}" if factor else "sign-in"
        if acr:
            said += f": acr {acr}{methods}"
        return [said]
    if acr and event in ("consent", "code"):
        when = detail.get("auth_time")
        at = f", signed in at {iso(float(when))}" if isinstance(when, int | float) else ""
        return [f"the grant rests on acr {acr}{methods}{at}"]
    return []


def _shown(detail: Mapping[str, Any]) -> list[str]:
    surface = detail.get("approval_surface")
    if not isinstance(surface, Mapping):
        return []
    given = surface.get("facts")
    facts: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    said = []
    if facts.get("headline"):  # issue 18: the page's question
        said.append(f"the question {_quoted(facts['headline'])}")
    if facts.get("client_name"):
        said.append(f"the application {_quoted(facts['client_name'])} asks to")
    said += [f"{s.get('words')} (scope {s.get('name')})" for s in facts.get("scopes") or []]
    said += [str(d.get("words")) for d in facts.get("details") or []]
    if facts.get("resources"):
        said.append(f"at {', '.join(str(r) for r in facts['resources'])}")
    if facts.get("sender_constraint"):
        said.append(f"its tokens bound to {facts['sender_constraint']}")
    if facts.get("lifetime"):
        said.append(f"the grant lasts {facts['lifetime']}")
    said += [str(facts[k]) for k in ("while_away", "sender_words", "step_up") if facts.get(k)]
    said.append(
        f"page SHA-256 {surface.get('body_sha256')}, template {surface.get('template_version') or '?'}"
    )
    return said


def _granted(record: Mapping[str, Any], describe: Describe | None) -> list[str]:
    said = []
    if record.get("scope"):
        said.append(f"the scopes {record['scope']}")
    for entry in record.get("authorization_details") or []:
        if isinstance(entry, Mapping) and describe is not None:
            said.append(describe(entry))
        else:
            said.append(json.dumps(entry, sort_keys=True, ensure_ascii=False))
    resource = record.get("resource")
    if resource:
        targets = resource if isinstance(resource, list) else [resource]
        said.append(f"for {', '.join(str(r) for r in targets)}")
    return said


def _done(event: str, record: Mapping[str, Any], detail: Mapping[str, Any]) -> list[str]:
    said = []
    action = detail.get("action")
    if isinstance(action, Mapping):
        said.append(_action(action))
    elif detail.get("tool_action") or isinstance(action, str):  # rs.result names it only
        said.append(f"the action {detail.get('tool_action') or action}")
    if detail.get("route"):
        where = f" at {record['resource']}" if isinstance(record.get("resource"), str) else ""
        answer = f", answered {detail['status']}" if detail.get("status") else ""
        said.append(f"{detail.get('method')} {detail['route']}{where}{answer}")
    result = detail.get("result")
    if event == RS_RESULT and isinstance(result, Mapping):
        said.append("the result: " + ", ".join(f"{k} {_quoted(v)}" for k, v in sorted(result.items())))
    policy = detail.get("policy")
    if isinstance(policy, Mapping) and policy.get("decision") == "allow":
        policies = ", ".join(str(p) for p in policy.get("policies") or [])
        said.append(f"Cedar allowed it{f' ({policies})' if policies else ''}")
    return said


def _action(action: Mapping[str, Any]) -> str:
    """The action and its parameters: the action make_payment with amount “12.00”, …"""
    name, tool, verb = action.get("name"), action.get("tool"), action.get("action")
    if verb and tool:
        said = f"the action {verb} of the tool {tool}"
    elif tool and tool != name:
        said = f"the action {name} of the tool {tool}"
    else:
        said = f"the action {name}"
    parameters = action.get("parameters")
    if isinstance(parameters, Mapping) and parameters:
        said += " with " + ", ".join(f"{k} {_quoted(v)}" for k, v in parameters.items())
    redacted = action.get("redacted")
    if isinstance(redacted, list) and redacted:
        said += f" ({', '.join(str(r) for r in redacted)} not recorded)"
    return said


def _refused(record: Mapping[str, Any], detail: Mapping[str, Any]) -> list[str]:
    said = []
    rule, error = record.get("rule"), record.get("error")
    code = f" ({error})" if error else ""
    if isinstance(rule, str) and rule.startswith("Cedar: "):
        ids = rule.removeprefix("Cedar: ")
        plural = "policies" if "," in ids else "policy"
        said.append(f"refused{code} by the Cedar {plural} {ids}")
    elif rule:
        meaning = _RULE_WORDS.get(str(rule))
        said.append(f"refused{code} under {rule}{f' ({meaning})' if meaning else ''}")
    elif error:
        said.append(f"refused{code}")
    policy = detail.get("policy")
    if isinstance(policy, Mapping) and policy.get("decision") == "deny" and not str(rule).startswith("Cedar"):
        said.append(f"Cedar denied it: {', '.join(str(p) for p in policy.get('policies') or [])}")
    if detail.get("reason"):
        said.append(f"reason: {detail['reason']}")
    return said


#: What a payment must match in the grant's entry, and the word for it.
_MATCHED = (("currency", "currency"), ("creditor", "creditor"), ("creditor_account", "account"))


def _compared(detail: Mapping[str, Any]) -> list[str]:
    """What a payment decision compared (issue 16; the Cedar context of policy/cedar.py): the
    request against the grant's payment entry (what was paid against that entry) and against the
    agent's own cap (``tool_limit``, what the grant paid in all)."""
    policy = detail.get("policy")
    if not isinstance(policy, Mapping) or not isinstance(policy.get("compared"), Mapping):
        return []
    compared: Mapping[str, Any] = policy["compared"]
    request, payment = compared.get("request"), compared.get("payment")
    if not isinstance(request, Mapping):
        return []
    currency = str(request.get("currency") or "")
    amount = request.get("amount_minor")
    if not isinstance(amount, int):
        return []
    said = []
    if isinstance(payment, Mapping):
        spent = payment.get("spent_minor", compared.get("spent_minor", 0))
        said += _against(amount, currency, spent, payment, "granted")
        for name, what in (
            ("currency", "currency"),
            ("creditor", "creditor"),
            ("creditor_account", "account"),
        ):
            asked, allowed = request.get(name), payment.get(name)
            if allowed and asked != allowed:
                said.append(f"the {what} {_quoted(asked or '')} asked, the grant names {_quoted(allowed)}")
    elif "payment" in compared or policy.get("decision") == "deny":
        said.append(f"{money(amount, currency)} requested; no payment the grant allows covers it")
    cap = compared.get("tool_limit")
    if isinstance(cap, Mapping):
        said += _against(amount, currency, compared.get("spent_minor", 0), cap, "the agent's tool limit")
    return said


def _against(amount: int, currency: str, spent: Any, limit: Mapping[str, Any], what: str) -> list[str]:
    """``60.00 EUR requested + 0.00 EUR already paid > 50.00 EUR granted``."""
    ceiling = limit.get("limit_minor")
    if not isinstance(ceiling, int) or not isinstance(spent, int):
        return []
    sign = ">" if amount + spent > ceiling else "≤"
    granted = str(limit.get("currency") or currency)
    return [
        f"{money(amount, currency)} requested + {money(spent, currency)} already paid "
        f"{sign} {money(ceiling, granted)} {what}"
    ]


def _bound(record: Mapping[str, Any]) -> str | None:
    """The sender constraint in words (RFC 9449 6, RFC 8705 3)."""
    constraint, thumbprint = record.get("sender_constraint"), record.get("key_thumbprint")
    if not constraint:
        return None
    if constraint == "dpop":
        return f"bound to DPoP key {thumbprint}" if thumbprint else "bound to a DPoP key"
    if constraint == "mtls":
        if thumbprint:
            return f"bound to the client certificate with SHA-256 thumbprint {thumbprint}"
        return "bound to the client certificate"
    return f"bound by {constraint} {thumbprint or ''}".strip()


def _signed(detail: Mapping[str, Any]) -> list[str]:
    """Issue 17 (FAPI 2.0 Message Signing): the signed messages a record names. A request object
    was verified with the client's registered key before the pushed request was accepted; a
    response was signed by the AS with the key named."""
    said = []
    request = detail.get("request_object")
    if isinstance(request, Mapping):
        kid = request.get("kid")
        said.append(
            f"request signed by client key {kid or '(no kid)'} (verified): {request.get('signer')}'s key "
            f"with thumbprint {request.get('key_thumbprint')}, {request.get('alg')}, "
            f"request object SHA-256 {request.get('sha256')}"
        )
    for name, what in (("authorization_response", "authorization response"), ("signed_response", "response")):
        response = detail.get(name)
        if isinstance(response, Mapping):
            mode = f", response_mode {response['mode']}" if response.get("mode") else ""
            said.append(
                f"{what} signed by the AS ({response.get('kid')}): {response.get('alg')}{mode}, "
                f"SHA-256 {response.get('sha256')}"
            )
    return said
