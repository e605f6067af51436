"""Every refusal of the client library is a typed exception naming the rule it enforces."""

from __future__ import annotations

import re

#: RFC 6749 5.2: error_description is printable ASCII without '"' and '\\'; a server's text is
#: shown as it sent it, but never with control characters (a forged line) nor at any length.
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
MAX_DESCRIPTION = 300


def server_description(value: object) -> str:
    """The server's ``error_description``, made safe to print: other characters escaped
    (``\\xNN``/``\\uNNNN``), cut at 300 characters; "" when it sent none or not a string."""
    if not isinstance(value, str):
        return ""
    safe = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), value)
    return safe if len(safe) <= MAX_DESCRIPTION else safe[: MAX_DESCRIPTION - 3] + "..."


class ClientError(Exception):
    """A FAPI 2.0 client rule refused what a server sent (or an operation failed)."""

    rule: str = ""

    def __init__(self, message: str, rule: str = "") -> None:
        super().__init__(f"{message} ({rule})" if rule else message)
        self.rule = rule or self.rule


class MetadataError(ClientError):
    """FAPI2 5.3.3.1-9/-11: unusable or non-matching server metadata."""


class AuthorizationResponseError(ClientError):
    """FAPI2 5.3.3.2-5 (iss), RFC 6749 4.1.2 (state), or an error the AS sent back (with its
    ``error_description``, RFC 6749 4.1.2.1, in ``description`` and the message)."""

    def __init__(self, message: str, rule: str = "", error: str | None = None, description: str = "") -> None:
        super().__init__(f"{message}: {description}" if description else message, rule)
        self.error = error
        self.description = description


class TokenEndpointError(ClientError):
    """The AS refused a back-channel request (PAR, token, refresh); carries the OAuth error and
    the server's ``error_description`` (RFC 6749 5.2), also in the message (issue 13 F6)."""

    def __init__(
        self, message: str, error: str, status: int, rule: str = "RFC 6749 5.2", description: str = ""
    ) -> None:
        super().__init__(f"{message}: {description}" if description else message, rule)
        self.error = error
        self.status = status
        self.description = description


class SenderConstraintError(ClientError):
    """FAPI2 5.3.3.1-1, RFC 9449 5: a token that is not bound the way it was asked for."""


class IdTokenError(ClientError):
    """OIDC Core 3.1.3.7: an ID token that fails validation."""
