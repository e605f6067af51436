"""One protector for every protected resource, in the manner of Authlib's ``ResourceProtector``:
the token from the Authorization header (FAPI2 5.3.4-1/-2), verified by a strategy (FAPI2
5.3.4-3: a :class:`~corridor.resource.verifiers.TokenVerifier`), then bound to this sender
(FAPI2 5.3.4-5: RFC 9449 7 or RFC 8705 3, corridor.resource.binding)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from corridor.core.clock import Clock
from corridor.resource.binding import (
    ProofPolicy,
    check_certificate_binding,
    check_dpop_binding,
    read_authorization,
)
from corridor.resource.tokens import AccessToken, ResourceError
from corridor.resource.verifiers import TokenVerifier


@dataclass(frozen=True)
class ResourceRequest:
    """What the protector needs of one request, whatever framework carried it."""

    method: str
    #: The absolute URL the client called, from the public URL (DPoP ``htu``, RFC 9449 4.3-9).
    url: str
    #: The values of every Authorization header, and of every DPoP header.
    authorization: Sequence[str]
    dpop: Sequence[str]
    #: The client certificate of this connection (RFC 8705 3), if any.
    certificate: x509.Certificate | None
    #: An ``access_token`` was sent in the query or a form body (FAPI2 5.3.4-2).
    token_elsewhere: bool = False


def header_values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    """Every value of one header (names compared case-insensitively, RFC 9110 5.1)."""
    return [v for k, v in headers if k.lower() == name]


@dataclass(frozen=True)
class ResourceProtector:
    """FAPI2 5.3.4-1/-2/-3/-5: read the token, verify it with ``verifier``, check its binding
    (DPoP proofs as ``proofs`` accepts them)."""

    verifier: TokenVerifier
    proofs: ProofPolicy
    clock: Clock

    def authenticate(self, request: ResourceRequest) -> AccessToken:
        """The verified, sender-bound token; a refusal after verification carries it (``access``)."""
        scheme, token = read_authorization(request.authorization, token_elsewhere=request.token_elsewhere)
        access = self.verifier.verify(token)
        try:
            self.check_binding(access, scheme, token, request)
        except ResourceError as error:
            error.access = access
            raise
        return access

    def check_binding(self, access: AccessToken, scheme: str, token: str, request: ResourceRequest) -> None:
        """FAPI2 5.3.4-5: the key (cnf.jkt, RFC 9449 7) or certificate (cnf.x5t#S256, RFC 8705 3)."""
        if access.sender_constraint == "dpop":
            check_dpop_binding(
                access,
                scheme,
                method=request.method,
                url=request.url,
                proofs=request.dpop,
                token=token,
                now=self.clock.now(),
                policy=self.proofs,
            )
        else:
            check_certificate_binding(access, scheme, request.certificate)
