"""Identifiers named on the front channel, checked before any lookup or record (issue 13 B8)."""

from __future__ import annotations

from corridor.core.identifiers import is_vschar_identifier

#: Our request_uri values are the RFC 9126 prefix and 43 characters; 255 leaves room.
MAX_REQUEST_URI = 255


def malformed_authorization_identifiers(client_id: str | None, request_uri: str | None) -> bool:
    """Issue 13 B8, RFC 6749 A.1, RFC 9126 2.2: a client_id or request_uri that is sent must be
    1 to 255 visible ASCII characters (a missing one is the caller's own refusal)."""
    return any(
        value is not None and not is_vschar_identifier(value, MAX_REQUEST_URI)
        for value in (client_id, request_uri)
    )
