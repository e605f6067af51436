"""Every refusal of the client library is a typed exception naming the rule it enforces."""

from __future__ import annotations


class ClientError(Exception):
    """A FAPI 2.0 client rule refused what a server sent (or an operation failed)."""

    rule: str = ""

    def __init__(self, message: str, rule: str = "") -> None:
        super().__init__(f"{message} ({rule})" if rule else message)
        self.rule = rule or self.rule


class MetadataError(ClientError):
    """FAPI2 5.3.3.1-9/-11: unusable or non-matching server metadata."""


class AuthorizationResponseError(ClientError):
    """FAPI2 5.3.3.2-5 (iss), RFC 6749 4.1.2 (state), or an error the AS sent back."""

    def __init__(self, message: str, rule: str = "", error: str | None = None) -> None:
        super().__init__(message, rule)
        self.error = error


class TokenEndpointError(ClientError):
    """The AS refused a back-channel request (PAR, token, refresh); carries the OAuth error."""

    def __init__(self, message: str, error: str, status: int, rule: str = "RFC 6749 5.2") -> None:
        super().__init__(message, rule)
        self.error = error
        self.status = status


class SenderConstraintError(ClientError):
    """FAPI2 5.3.3.1-1, RFC 9449 5: a token that is not bound the way it was asked for."""


class IdTokenError(ClientError):
    """OIDC Core 3.1.3.7: an ID token that fails validation."""
