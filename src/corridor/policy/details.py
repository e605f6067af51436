"""RFC 9396 authorization_details: parsing and type validation.

Issue 2 checks structure and known types; typed JSON Schemas per type come with
the evidence layer (issue 8) and plug into ``validate_entry``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from corridor.core import strictjson

MAX_ENTRIES = 16


class AuthorizationDetailsError(ValueError):
    """RFC 9396 5: ``invalid_authorization_details``."""


def parse_authorization_details(text: str, supported_types: Collection[str]) -> list[dict[str, Any]]:
    """RFC 9396 2: a JSON array of objects, each with a supported string ``type``."""
    try:
        value = strictjson.loads(text)
    except ValueError as exc:
        raise AuthorizationDetailsError("authorization_details is not JSON") from exc
    if not isinstance(value, list) or not value:
        raise AuthorizationDetailsError("authorization_details must be a non-empty JSON array")
    if len(value) > MAX_ENTRIES:
        raise AuthorizationDetailsError("too many authorization_details entries")
    for entry in value:
        validate_entry(entry, supported_types)
    return value


def validate_entry(entry: Any, supported_types: Collection[str]) -> None:
    if not isinstance(entry, dict):
        raise AuthorizationDetailsError("each authorization_details entry must be a JSON object")
    kind = entry.get("type")
    if not isinstance(kind, str):
        raise AuthorizationDetailsError("each authorization_details entry needs a string type")
    if kind not in supported_types:
        raise AuthorizationDetailsError(f"authorization_details type {kind!r} is not supported")
    for common in ("locations", "actions", "datatypes", "privileges"):
        if common in entry and not (
            isinstance(entry[common], list) and all(isinstance(x, str) for x in entry[common])
        ):
            raise AuthorizationDetailsError(f"{common} must be an array of strings (RFC 9396 2.2)")
    if "identifier" in entry and not isinstance(entry["identifier"], str):
        raise AuthorizationDetailsError("identifier must be a string (RFC 9396 2.2)")
