"""The narrow contract of the interaction (issue 15, 1): the pushed request's facts in, the
user's sign-in and decision out. The code-issuing step reads nothing else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from corridor.audit.log import Evidence
from corridor.core.request_context import current_request_id
from corridor.store.sql import Row

Decision = Literal["approve", "deny"]

#: RFC 8176 2: the authentication methods each level stands for (a TOTP code or a passkey comes
#: after the password or instead of it; a passkey always verifies its user, WebAuthn 6.2.3).
AMR: dict[str, tuple[str, ...]] = {
    "password": ("pwd",),
    "mfa": ("pwd", "otp", "mfa"),
    "passkey": ("hwk", "user"),
}


@dataclass(frozen=True)
class PushedFacts:
    """What the pushed request asked for (RFC 9126 2.1), as PAR checked and kept it."""

    #: The pushed request's id in the trail: the hash of its reference.
    ref_hash: str
    client_id: str
    redirect_uri: str
    scope: str | None
    authorization_details: list[dict[str, Any]] | None
    resources: tuple[str, ...]
    acr_values: tuple[str, ...]
    max_age: int | None
    prompt: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    dpop_jkt: str | None
    #: RFC 8705 3.1: the SHA-256 thumbprint of the certificate an mTLS-bound client pushed with.
    certificate_thumbprint: str | None
    #: JARM 2.3: ``jwt`` or ``query.jwt`` for a signed response, ``query`` or None for a plain one.
    response_mode: str | None
    #: FAPI2 5.3.2.2-12: after this it gives nothing.
    expires_at: float

    @classmethod
    def of(cls, pushed: Row) -> PushedFacts:
        params = json.loads(pushed["parameters"])
        max_age = params.get("max_age")
        return cls(
            ref_hash=pushed["ref_hash"],
            client_id=pushed["client_id"],
            redirect_uri=params["redirect_uri"],
            scope=params.get("scope"),
            authorization_details=params.get("authorization_details"),
            resources=tuple(params.get("resources") or ()),
            acr_values=tuple(str(params.get("acr_values") or "").split()),
            max_age=None if max_age is None else int(max_age),
            prompt=tuple(params.get("prompt", "").split()),
            state=params.get("state"),
            nonce=params.get("nonce"),
            code_challenge=params.get("code_challenge"),
            dpop_jkt=pushed["dpop_jkt"],
            certificate_thumbprint=params.get("certificate_thumbprint"),
            response_mode=params.get("response_mode"),
            expires_at=pushed["expires_at"],
        )

    def evidence(self, issuer: str) -> Evidence:
        """A new evidence record about this request: client, redirect, what it asks, its key."""
        evidence = Evidence(issuer=issuer, request_id=current_request_id())
        evidence.client_id = self.client_id
        evidence.redirect_uri = self.redirect_uri
        evidence.scope = self.scope
        evidence.authorization_details = self.authorization_details
        evidence.resource = list(self.resources) or None
        if self.dpop_jkt:
            evidence.sender_constraint, evidence.key_thumbprint = "dpop", self.dpop_jkt
        elif self.certificate_thumbprint:
            evidence.sender_constraint, evidence.key_thumbprint = "mtls", self.certificate_thumbprint
        return evidence


@dataclass(frozen=True)
class InteractionResult:
    """Who signed in, how (OIDC Core 2 ``acr``, RFC 8176 ``amr``, ``auth_time``), what they decided
    and on which approval surface (the consent page whose "shown" record says what it showed)."""

    interaction_id: str
    user: str
    acr: str
    amr: tuple[str, ...]
    auth_time: float
    decision: Decision
    approval_surface: str

    @classmethod
    def of_session(
        cls, interaction_id: str, session: Row, decision: Decision, approval_surface: str
    ) -> InteractionResult:
        acr = session["acr"]
        return cls(
            interaction_id=interaction_id,
            user=session["user_id"],
            acr=acr,
            amr=AMR.get(acr, ()),
            auth_time=session["auth_time"],
            decision=decision,
            approval_surface=approval_surface,
        )
