"""The OAuthError family: the one model of a protocol rejection (design.md 3).

A check raises an ``OAuthError`` naming the OAuth error code, a short description
that leaks nothing, and the rule it enforces (for example ``FAPI2 5.3.2.1-8``).
Renderers (JSON body, redirect, RS challenge, HTML page) turn it into a response.
"""

from __future__ import annotations

import re

from corridor.core.rules import Rule

# RFC 6749 5.2: error_description is %x20-21 / %x23-5B / %x5D-7E; anything else (including
# characters echoed from a hostile request) is replaced, so the text is also header-safe.
_NOT_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def safe_description(text: str) -> str:
    return _NOT_DESCRIPTION.sub("?", text)[:300]


class OAuthError(Exception):
    """A rejection with an OAuth error code, an HTTP status and the rule that decided it."""

    status: int = 400

    def __init__(
        self,
        error: str,
        description: str = "",
        *,
        rule: str = "",
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = safe_description(description)
        self.rule = rule
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


def invalid_request(description: str, rule: str = "RFC 6749 5.2") -> OAuthError:
    return OAuthError("invalid_request", description, rule=rule)


class InvalidClient(OAuthError):
    """RFC 6749 5.2: client authentication failed, 401. WWW-Authenticate names the scheme the
    client used in the Authorization header (Basic), and is absent when it used none: a
    private_key_jwt or mTLS client gets no resource-access challenge to misread."""

    status = 401

    def __init__(self, description: str, *, rule: str = "RFC 6749 5.2", basic: bool = False) -> None:
        headers = {"WWW-Authenticate": 'Basic realm="corridor", error="invalid_client"'} if basic else {}
        super().__init__("invalid_client", description, rule=rule, headers=headers)


class InvalidDPoPProof(OAuthError):
    """RFC 9449 5: a DPoP proof failed one of the checks of section 4.3."""

    def __init__(self, description: str, *, rule: str = "RFC 9449 4.3") -> None:
        super().__init__("invalid_dpop_proof", description, rule=rule)


class UseDPoPNonce(OAuthError):
    """RFC 9449 8: the server requires a nonce; the response carries a fresh DPoP-Nonce."""

    def __init__(self, nonce: str, description: str = "A DPoP nonce is required") -> None:
        super().__init__("use_dpop_nonce", description, rule=Rule.RFC_9449_8, headers={"DPoP-Nonce": nonce})
