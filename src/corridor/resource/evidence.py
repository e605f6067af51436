"""What a resource server records of an action (issue 16): the tool and action, the parameters the
policy decided on, the values it compared, and once the route has run, its result.

Each route declares what is recorded (:class:`Recorded`): which parameters and result fields are
kept, and how a sensitive one is redacted (dropped, reduced to its last four characters, or kept as
a SHA-256 fingerprint). Whatever a route declares, some things are never stored (design.md 5c,
issue 16): a value under a secret's name (password, secret, token, assertion, code, PIN, CVV, key)
is dropped, a string that is a payment card number (13 to 19 digits passing the Luhn check) is
reduced to its last four digits wherever it appears, and every string is cut at
:data:`MAX_TEXT` characters, at most :data:`MAX_VALUES` values per record.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: A recorded string is cut here (a 64 KiB body cannot make a 64 KiB record).
MAX_TEXT = 256
#: At most this many values per parameters or result object, and this deep.
MAX_VALUES = 32
MAX_DEPTH = 4
#: Names under which a value is never stored, whatever a route declares.
SECRET_NAME = re.compile(
    r"pass(word|phrase)|secret|token|assertion|private|api_?key|cvv|cvc|csc"
    r"|^(code|pin|otp|auth_code|authorization_code)$",
    re.IGNORECASE,
)
#: A run of digits (spaces or dashes between) standing alone: not part of an IBAN or a word.
_DIGITS = re.compile(r"(?<![0-9A-Za-z])[0-9][0-9 -]{11,}[0-9](?![0-9A-Za-z])")


class Redaction(StrEnum):
    """How a declared value is kept."""

    #: Not stored: the record says only that it was there.
    DROP = "drop"
    #: Its last four characters (an account or card number an investigator must still tell apart).
    LAST4 = "last4"
    #: Its SHA-256, so two records can be compared without storing the value.
    SHA256 = "sha256"


@dataclass(frozen=True)
class Recorded:
    """A route's declaration of what its records keep (issue 16).

    ``parameters``: the names of the request values kept (empty: every value given, within the
    limits); ``result``: the result fields kept (empty: every field given); ``redact``: a
    redaction per name, in parameters and results alike."""

    parameters: tuple[str, ...] = ()
    result: tuple[str, ...] = ()
    redact: Mapping[str, Redaction] = field(default_factory=dict)

    def keep_parameters(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The parameters as recorded, and the names redacted."""
        return self._keep(values, self.parameters)

    def keep_result(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The result as recorded, and the names redacted."""
        return self._keep(values, self.result)

    def _keep(self, values: Mapping[str, Any], wanted: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
        names = list(wanted) or list(values)
        kept: dict[str, Any] = {}
        redacted: list[str] = []
        for name in names[:MAX_VALUES]:
            if name not in values:
                continue
            value, changed = _redacted(str(name), values[name], self.redact.get(name), 0)
            if changed:
                redacted.append(str(name))
            if value is not _DROPPED:
                kept[str(name)[:MAX_TEXT]] = value
        return kept, sorted(redacted)


#: Every route that declares nothing: all values given, under the rules that always hold.
EVERYTHING = Recorded()

_DROPPED = object()


def _redacted(name: str, value: Any, how: Redaction | None, depth: int) -> tuple[Any, bool]:
    """``value`` as it may be stored, and whether anything in it was redacted."""
    if how is Redaction.DROP or SECRET_NAME.search(name):
        return _DROPPED, True
    if how is Redaction.LAST4:
        return "…" + str(value)[-4:], True
    if how is Redaction.SHA256:
        return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest(), True
    return _bounded(value, depth)


def _bounded(value: Any, depth: int) -> tuple[Any, bool]:
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return value, False
    if isinstance(value, str):
        # Masked before it is cut to size (a number cut in two is not found), but at most a few
        # KiB of it: the scan stays cheap for any body.
        scanned = value[: MAX_TEXT * 16]
        masked = mask_card_numbers(scanned)
        return masked[:MAX_TEXT], masked != scanned
    if depth >= MAX_DEPTH:
        return "…", True
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        changed = False
        for key in list(value)[:MAX_VALUES]:
            kept, redacted = _redacted(str(key), value[key], None, depth + 1)
            changed = changed or redacted
            if kept is not _DROPPED:
                out[str(key)[:MAX_TEXT]] = kept
        return out, changed or len(value) > MAX_VALUES
    if isinstance(value, list | tuple):
        items = [_bounded(item, depth + 1) for item in list(value)[:MAX_VALUES]]
        return [item for item, _ in items], any(c for _, c in items) or len(value) > MAX_VALUES
    return str(value)[:MAX_TEXT], False


def mask_card_numbers(text: str) -> str:
    """Every payment card number in ``text`` reduced to its last four digits (PCI DSS 3.4: never
    stored whole): 13 to 19 digits passing the Luhn check, written whole or in groups separated by
    spaces or dashes; the whole run of digit groups it stands in is masked. Digits joined to letters
    (an IBAN, an identifier) are left as they are."""

    def mask(match: re.Match[str]) -> str:
        groups = [group for group in re.split(r"[ -]+", match.group(0)) if group]
        for first in range(len(groups)):
            joined = ""
            for group in groups[first:]:
                joined += group
                if len(joined) > 19:
                    break
                if len(joined) >= 13 and _luhn(joined):
                    return "…" + "".join(groups)[-4:]
        return match.group(0)

    return _DIGITS.sub(mask, text)


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        number = int(char)
        if position % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


@dataclass
class ActionFacts:
    """What one request did at the resource server, gathered while it runs: the action, its
    parameters (as recorded), the policy decision with the values it compared, and the result."""

    action: str
    recorded: Recorded = EVERYTHING
    parameters: dict[str, Any] = field(default_factory=dict)
    redacted: list[str] = field(default_factory=list)
    #: The Cedar context values the decision compared (request, payment entry, caps, spent).
    compared: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None

    @classmethod
    def of(
        cls, action: str, parameters: Mapping[str, Any] | None, recorded: Recorded = EVERYTHING
    ) -> ActionFacts:
        kept, redacted = recorded.keep_parameters(parameters or {})
        return cls(action, recorded, kept, redacted)

    def set_result(self, values: Mapping[str, Any]) -> None:
        kept, redacted = self.recorded.keep_result(values)
        self.result = kept
        self.redacted = sorted(set(self.redacted) | {f"result.{name}" for name in redacted})

    def detail(self) -> dict[str, Any]:
        """The ``action`` member of the record's detail."""
        tool, _, verb = self.action.partition(":")
        out: dict[str, Any] = {"name": self.action, "tool": tool, "parameters": self.parameters}
        if verb:
            out["action"] = verb
        if self.redacted:
            out["redacted"] = self.redacted
        return out


#: The Cedar context members an investigator needs to see what was compared (policy/cedar.py).
COMPARED = ("request", "payment", "tool_limit", "spent_minor", "acr", "sender_constraint")


def compared(context: Mapping[str, Any]) -> dict[str, Any]:
    """The values a decision compared, bounded and redacted like parameters."""
    kept, _ = EVERYTHING.keep_parameters({name: context[name] for name in COMPARED if name in context})
    return kept
