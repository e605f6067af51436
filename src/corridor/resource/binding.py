"""Sender binding at a protected resource, one module for every resource Corridor serves (an API
behind ResourceGuard, the AS's UserInfo): where the token is (RFC 6750 2.1, RFC 9449 7.1),
that its request comes from the key or certificate it is bound to (RFC 9449 4.3, 7, 9, 11.1;
RFC 8705 3), and the challenge a refusal is answered with (RFC 6750 3, RFC 9449 7.1).

The AS's own proof check at PAR and token (server/checks/dpop.py) shares what is the same rule
there, :class:`ProofPolicy`: the RFC 9449 4.3 checks in the server's iat window, the nonce
(RFC 9449 8 at the AS, 9 at a resource) and jti replay (RFC 9449 11.1); it renders its own errors."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509

from corridor.core.dpop import DPoPProof, verify_proof
from corridor.core.errors import OAuthError, safe_description
from corridor.core.jose import FAPI_ALGORITHMS
from corridor.core.nonces import DPoPNonces
from corridor.core.randomness import token_hash
from corridor.core.replay import ReplayCache
from corridor.core.rules import Rule
from corridor.core.x509 import thumbprint_s256
from corridor.resource.tokens import AccessToken, ResourceError

ALGS = " ".join(FAPI_ALGORITHMS)

# -- where the token is --------------------------------------------------------------------------


def refuse_token_elsewhere(token_elsewhere: bool) -> None:
    """FAPI2 5.3.4-2, RFC 6750 2.3: never a token in the query (nor, RFC 6750 2.2, a form body)."""
    if token_elsewhere:
        raise ResourceError(
            "invalid_request",
            "access tokens go in the Authorization header",
            rule=Rule.FAPI2_5_3_4_2_RFC_6750_2_3,
        )


def require_credentials(authorizations: Sequence[str]) -> None:
    """RFC 6750 3: a request without credentials gets a bare challenge (no error code)."""
    if not authorizations:
        raise ResourceError("", rule=Rule.RFC_6750_3)


def require_one_authorization(authorizations: Sequence[str]) -> None:
    """RFC 6750 2.1, 3.1, RFC 9449 7.1: one Authorization header; more is a malformed request."""
    if len(authorizations) != 1:
        raise ResourceError("invalid_request", "one Authorization header", rule=Rule.RFC_6750_2_1, status=400)


def split_credentials(authorization: str) -> tuple[str, str]:
    """FAPI2 5.3.4-1, RFC 9449 7.1, RFC 6750 2.1: ``DPoP token`` or ``Bearer token`` (the scheme
    case-insensitive, one token); returns the lower-case scheme and the token."""
    scheme, _, token = authorization.partition(" ")
    scheme, token = scheme.lower(), token.strip()
    if scheme not in ("dpop", "bearer") or not token or " " in token:
        raise ResourceError(
            "invalid_request", "use the DPoP or Bearer scheme", rule=Rule.FAPI2_5_3_4_1, status=400
        )
    return scheme, token


def read_authorization(authorizations: Sequence[str], *, token_elsewhere: bool = False) -> tuple[str, str]:
    """FAPI2 5.3.4-1/-2: the scheme and the token of the request's one Authorization header."""
    refuse_token_elsewhere(token_elsewhere)
    require_credentials(authorizations)
    require_one_authorization(authorizations)
    return split_credentials(authorizations[0])


# -- DPoP (RFC 9449) -----------------------------------------------------------------------------


class ProofSettings(Protocol):
    """The DPoP settings an AS and a resource both have."""

    @property
    def dpop_nonce_required(self) -> bool: ...
    @property
    def max_clock_skew(self) -> int: ...
    @property
    def dpop_max_age(self) -> int: ...


@dataclass(frozen=True)
class ProofPolicy:
    """How one server accepts DPoP proofs: its nonces (RFC 9449 9: each server its own), its
    replay cache under its own key prefix, and the iat window (RFC 9449 11.1, FAPI2 5.3.2.1-13)."""

    nonces: DPoPNonces
    nonce_required: bool
    replay: ReplayCache
    replay_prefix: str
    max_future: float
    max_past: float

    @classmethod
    def of(
        cls, settings: ProofSettings, nonces: DPoPNonces, replay: ReplayCache, replay_prefix: str
    ) -> ProofPolicy:
        """A server's policy from its settings: nonces if required, iat from ``max_clock_skew``
        ahead (FAPI2 5.3.2.1-13) to ``dpop_max_age`` back (RFC 9449 11.1)."""
        return cls(
            nonces,
            settings.dpop_nonce_required,
            replay,
            replay_prefix,
            settings.max_clock_skew,
            settings.dpop_max_age,
        )

    def verify(
        self, proofs: Sequence[str], *, method: str, url: str, now: float, access_token: str | None = None
    ) -> DPoPProof:
        """RFC 9449 4.3 (D1-D10, with ``ath`` D13 when a token is given), in this server's iat window."""
        return verify_proof(
            proofs,
            method=method,
            url=url,
            now=now,
            max_future=self.max_future,
            max_past=self.max_past,
            access_token=access_token,
        )

    def nonce_missing(self, proof: DPoPProof) -> bool:
        """RFC 9449 8 (AS), 9 (resource): a nonce is required and the proof has none this server
        issued recently."""
        return self.nonce_required and (proof.nonce is None or not self.nonces.is_valid(proof.nonce))

    def replay_entry(self, proof: DPoPProof) -> tuple[str, float]:
        """RFC 9449 11.1: the proof's replay key (its key and jti, under this server's prefix) and
        how long it must be remembered: while a proof with that iat could still be accepted."""
        key = self.replay_prefix + token_hash(f"{proof.jkt}\x00{proof.jti}")
        return key, proof.iat + self.max_past + self.max_future

    def first_use(self, proof: DPoPProof, now: float) -> bool:
        """RFC 9449 11.1: this key's jti is unseen while a proof with that iat could be accepted."""
        key, expires = self.replay_entry(proof)
        return self.replay.remember_once(key, expires, now)


def require_dpop_scheme(scheme: str) -> None:
    """RFC 9449 7.2: a DPoP-bound token is presented with the DPoP scheme, never as Bearer."""
    if scheme != "dpop":
        raise ResourceError(
            "invalid_token", "a DPoP-bound token must use the DPoP scheme", rule=Rule.RFC_9449_7_2
        )


def require_proof(proofs: Sequence[str]) -> None:
    """RFC 9449 7.1: a request with a DPoP-bound token carries a DPoP proof."""
    if not proofs:
        raise ResourceError("invalid_dpop_proof", "a DPoP proof is required", rule=Rule.RFC_9449_7_1)


def verified_proof(
    proofs: Sequence[str], *, method: str, url: str, token: str, now: float, policy: ProofPolicy
) -> DPoPProof:
    """RFC 9449 4.3 (D1-D10) and 7 (D13, ``ath``): one valid proof, for this method (``htm``),
    this URL (``htu``) and this token."""
    try:
        return policy.verify(proofs, method=method, url=url, now=now, access_token=token)
    except OAuthError as exc:
        raise ResourceError("invalid_dpop_proof", exc.description, rule=exc.rule) from exc


def require_resource_nonce(proof: DPoPProof, policy: ProofPolicy) -> None:
    """RFC 9449 9: the resource's own nonce; a fresh one travels in DPoP-Nonce with the refusal."""
    if policy.nonce_missing(proof):
        raise ResourceError(
            "use_dpop_nonce",
            "a DPoP nonce is required",
            rule=Rule.RFC_9449_9,
            headers={"DPoP-Nonce": policy.nonces.current()},
        )


def require_bound_key(proof: DPoPProof, access: AccessToken) -> None:
    """RFC 9449 7.1, 6.1 (D14): the proof is signed by the key the token's cnf.jkt names."""
    if not hmac.compare_digest(proof.jkt, access.thumbprint):
        raise ResourceError("invalid_token", "Invalid DPoP key binding", rule=Rule.RFC_9449_7_1_6_1)


def require_unused_proof(proof: DPoPProof, policy: ProofPolicy, now: float) -> None:
    """RFC 9449 11.1 (D11): a proof is used once."""
    if not policy.first_use(proof, now):
        raise ResourceError("invalid_dpop_proof", "the DPoP proof was already used", rule=Rule.RFC_9449_11_1)


def check_dpop_binding(
    access: AccessToken,
    scheme: str,
    *,
    method: str,
    url: str,
    proofs: Sequence[str],
    token: str,
    now: float,
    policy: ProofPolicy,
) -> None:
    """RFC 9449 7 (D1-D14): the DPoP scheme, a proof for this request and this token, by the bound key."""
    require_dpop_scheme(scheme)
    require_proof(proofs)
    proof = verified_proof(proofs, method=method, url=url, token=token, now=now, policy=policy)
    require_resource_nonce(proof, policy)
    require_bound_key(proof, access)
    require_unused_proof(proof, policy, now)


# -- certificates (RFC 8705) ---------------------------------------------------------------------


def require_bearer_scheme(scheme: str) -> None:
    """RFC 8705 3: a certificate-bound token is presented with the Bearer scheme."""
    if scheme != "bearer":
        raise ResourceError(
            "invalid_token",
            "a certificate-bound token uses the Bearer scheme",
            rule=Rule.RFC_8705_3,
            scheme="Bearer",
        )


def require_bound_certificate(access: AccessToken, certificate: x509.Certificate | None) -> None:
    """RFC 8705 3 (M5): the certificate of this connection is the one cnf.x5t#S256 names."""
    if certificate is None or not hmac.compare_digest(thumbprint_s256(certificate), access.thumbprint):
        raise ResourceError(
            "invalid_token",
            "the client certificate does not match the token binding",
            rule=Rule.RFC_8705_3,
            scheme="Bearer",
        )


def check_certificate_binding(access: AccessToken, scheme: str, certificate: x509.Certificate | None) -> None:
    """RFC 8705 3: the Bearer scheme, over a connection with the bound certificate."""
    require_bearer_scheme(scheme)
    require_bound_certificate(access, certificate)


# -- the challenge -------------------------------------------------------------------------------


def challenge(
    error: ResourceError | None,
    *,
    resource_metadata: str | None = None,
    bare_schemes: Sequence[str] = ("DPoP", "Bearer"),
) -> list[tuple[str, str]]:
    """RFC 6750 3, RFC 9449 7.1, RFC 9728 5.1: one WWW-Authenticate per scheme (``error``,
    ``error_description``, the error's own parameters, ``algs`` for DPoP, ``resource_metadata``
    when the resource publishes it), and the error's headers (DPoP-Nonce, RFC 9449 9).
    Without an error (no credentials), a bare challenge for each of ``bare_schemes``."""
    metadata = [f'resource_metadata="{resource_metadata}"'] if resource_metadata else []
    if error is None:
        return [("WWW-Authenticate", _header(scheme, [], metadata)) for scheme in bare_schemes]
    params = [f'error="{error.error}"']
    if error.description:
        params.append(f'error_description="{safe_description(error.description)}"')
    params += [f'{k}="{safe_description(v)}"' for k, v in error.params.items()]
    return [("WWW-Authenticate", _header(error.scheme, params, metadata)), *error.headers.items()]


def _header(scheme: str, params: list[str], metadata: list[str]) -> str:
    algs = [f'algs="{ALGS}"'] if scheme == "DPoP" else []
    return " ".join([scheme, ", ".join([*params, *algs, *metadata])]).rstrip()
