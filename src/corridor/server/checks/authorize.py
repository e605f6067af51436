"""The named checks of GET /authorize (RFC 9126 4, FAPI2 5.3.2.2): the request names a pushed
request of a known client, unused and alive, that this server can answer.

A check raises an ``OAuthError``; the endpoint shows it as an error page, or, for an
``ErrorRedirect`` once the pushed request and its redirect_uri are trusted, as an error redirect
with ``iss`` (RFC 6749 4.1.2.1, RFC 9207).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corridor.audit.log import Evidence
from corridor.core.errors import OAuthError
from corridor.core.randomness import token_hash
from corridor.core.rules import Rule
from corridor.server.authority import AuthorizationServer
from corridor.server.checks.identifiers import malformed_authorization_identifiers
from corridor.server.clients import ClientRecord
from corridor.server.interaction import storage
from corridor.server.interaction.contract import PushedFacts
from corridor.server.par import REQUEST_URI_PREFIX
from corridor.store.sql import Row


class ErrorRedirect(OAuthError):
    """A refusal told to the client at the pushed request's verified redirect_uri (RFC 6749 4.1.2.1)."""


@dataclass
class AuthorizationRequest:
    """One GET /authorize travelling through its checks (the front channel's Exchange)."""

    server: AuthorizationServer
    now: float
    evidence: Evidence
    client_id: str | None
    request_uri: str | None
    #: The names of the front-channel parameters that were ignored (issue 13 A1).
    ignored: list[str] = field(default_factory=list)
    client: ClientRecord | None = None
    #: The stored pushed request, once the request_uri named one of this client.
    row: Row | None = None
    pushed: PushedFacts | None = None

    def ignored_detail(self) -> dict[str, Any]:
        return {"ignored_parameters": self.ignored} if self.ignored else {}


def check_identifiers(req: AuthorizationRequest) -> None:
    """Issue 13 B8, RFC 6749 A.1, RFC 9126 2.2: client_id and request_uri are 1 to 255 visible
    ASCII characters, checked before they reach the store or the record."""
    if malformed_authorization_identifiers(req.client_id, req.request_uri):
        raise OAuthError("invalid_request", "Malformed client_id or request_uri.", rule=Rule.ISSUE_13_B8)
    req.evidence.client_id = req.client_id
    req.evidence.detail = req.ignored_detail()


def require_pushed_request(req: AuthorizationRequest) -> None:
    """FAPI2 5.3.2.2-3: only pushed requests (a request_uri from PAR)."""
    if not req.request_uri:
        raise OAuthError(
            "invalid_request", "Authorization requests must be pushed first (PAR).", rule=Rule.FAPI2_5_3_2_2_3
        )


def require_known_client(req: AuthorizationRequest) -> None:
    """RFC 9126 4: the client_id names a registered client."""
    req.client = req.server.clients.get(req.client_id) if req.client_id else None
    if req.client is None:
        raise OAuthError("invalid_request", "Unknown client.", rule=Rule.RFC_9126_4)


def find_pushed_request(req: AuthorizationRequest) -> None:
    """RFC 9126 4: the request_uri is one this server issued, for this client."""
    assert req.request_uri is not None
    row = None
    if req.request_uri.startswith(REQUEST_URI_PREFIX):
        reference = req.request_uri[len(REQUEST_URI_PREFIX) :]
        row = storage.find_pushed_request(req.server, token_hash(reference))
    if row is None or row["client_id"] != req.client_id:
        raise OAuthError("invalid_request_uri", "The request_uri is unknown.", rule=Rule.RFC_9126_4)
    req.row, req.pushed = row, PushedFacts.of(row)
    req.evidence = req.pushed.evidence(req.server.settings.issuer)
    req.evidence.detail = {**req.ignored_detail(), "par": row["ref_hash"]}


def require_unused(req: AuthorizationRequest) -> None:
    """FAPI2 5.3.2.2-12: a request_uri is used once."""
    assert req.row is not None
    if req.row["consumed_at"] is not None:
        raise OAuthError(
            "invalid_request_uri", "The request_uri was already used.", rule=Rule.FAPI2_5_3_2_2_12
        )


def require_unexpired(req: AuthorizationRequest) -> None:
    """FAPI2 5.3.2.2-12, RFC 9126 2.2: a request_uri lives ``expires_in`` seconds."""
    assert req.pushed is not None
    if req.now >= req.pushed.expires_at:
        raise OAuthError("invalid_request_uri", "The request_uri has expired.", rule=Rule.FAPI2_5_3_2_2_12)


def refuse_prompt_none(req: AuthorizationRequest) -> None:
    """OIDC Core 3.1.2.6: ``prompt=none`` cannot be met, as this server always asks for consent."""
    assert req.pushed is not None
    if "none" in req.pushed.prompt:
        raise ErrorRedirect(
            "consent_required", "this server always asks for consent", rule=Rule.OIDC_CORE_3_1_2_6
        )
