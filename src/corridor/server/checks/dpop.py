"""DPoP at the authorization server (RFC 9449 4.3, 5, 8, 10.1). The rules it shares with a
resource, the nonce and jti replay, come from corridor.resource.binding."""

from __future__ import annotations

import re

from corridor.core.errors import InvalidDPoPProof, OAuthError, UseDPoPNonce
from corridor.core.rules import Rule
from corridor.core.x509 import thumbprint_s256
from corridor.resource.binding import ProofPolicy
from corridor.server.authority import AuthorizationServer, Exchange

_JKT = re.compile(r"[A-Za-z0-9_-]{43}")


def proof_policy(server: AuthorizationServer, replay_prefix: str) -> ProofPolicy:
    """RFC 9449 8, 11.1: the AS's nonces and its replay cache (one key prefix per endpoint kind)."""
    assert server.nonces is not None
    return ProofPolicy.of(server.settings, server.nonces, server.store.replay, replay_prefix)


def check_dpop_proof(ex: Exchange) -> None:
    """RFC 9449 4.3 (D1-D12): verify a DPoP header if one is sent; nonce (8), then jti replay (11.1)."""
    values = ex.headers.getlist("dpop")
    if not values:
        return
    policy = proof_policy(ex.server, "d:")
    proof = policy.verify(values, method=ex.method, url=ex.endpoint_url, now=ex.now)
    if policy.nonce_missing(proof):
        raise UseDPoPNonce(policy.nonces.current())
    # RFC 9449 11.1: spent in the request's one write transaction (Exchange.unit_of_work).
    key, expires = policy.replay_entry(proof)
    ex.spend_once(key, expires, InvalidDPoPProof("the DPoP proof was already used", rule=Rule.RFC_9449_11_1))
    ex.dpop = proof
    ex.evidence.sender_constraint = "dpop"
    ex.evidence.key_thumbprint = proof.jkt


def bind_dpop_key(ex: Exchange) -> None:
    """RFC 9449 10.1, FAPI2 5.3.2.1-12: bind the code to ``dpop_jkt`` and/or the PAR proof's key."""
    jkt = ex.form.get("dpop_jkt")
    if jkt is not None and not _JKT.fullmatch(jkt):
        raise OAuthError(
            "invalid_request", "dpop_jkt must be a SHA-256 JWK thumbprint", rule=Rule.RFC_9449_10
        )
    if ex.dpop is not None:
        if jkt is not None and jkt != ex.dpop.jkt:
            raise InvalidDPoPProof("dpop_jkt does not match the DPoP proof key", rule=Rule.RFC_9449_10_1)
        jkt = ex.dpop.jkt
    ex.dpop_jkt = jkt
    if jkt is not None:
        ex.evidence.sender_constraint = "dpop"
        ex.evidence.key_thumbprint = jkt


def require_sender_constraint(ex: Exchange) -> None:
    """FAPI2 5.3.2.1-4/5, RFC 9449 5.2 (D19), RFC 8705 3: only sender-constrained tokens,
    bound as the client registered; never a bearer token."""
    assert ex.client is not None
    if ex.client.sender_constraint == "dpop":
        if ex.dpop is None:
            raise OAuthError(
                "invalid_dpop_proof",
                "a DPoP proof is required for this client",
                rule=Rule.FAPI2_5_3_2_1_4_RFC_9449_5_2,
            )
        ex.cnf = {"jkt": ex.dpop.jkt}
        return
    if ex.certificate is None:
        raise OAuthError(
            "invalid_request",
            "a TLS client certificate is required for certificate-bound tokens (use the mTLS endpoint)",
            rule=Rule.FAPI2_5_3_2_1_5_RFC_8705_3,
        )
    ex.cnf = {"x5t#S256": thumbprint_s256(ex.certificate)}
    ex.evidence.sender_constraint = "mtls"
    ex.evidence.key_thumbprint = ex.cnf["x5t#S256"]
