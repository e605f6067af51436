"""The authorization response to the client's redirect_uri (RFC 6749 4.1.2, 4.1.2.1), plain with
``iss`` (RFC 9207 2), or signed by the AS as one JWT (JARM, FAPI 2.0 Message Signing 5.4.1).

A signed response is kept as evidence (issue 17: the AS cannot later deny what it answered): its
SHA-256, ``kid``, ``alg`` and mode go into the decision's record, and the JWS itself into the
signed messages store, in the unit of work of that decision.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from starlette.responses import Response

from corridor.audit.log import Evidence
from corridor.server.authority import AuthorizationServer
from corridor.server.clients import JARM_MODES
from corridor.server.interaction.contract import PushedFacts
from corridor.server.responses import authorization_response
from corridor.store.protocols import UnitOfWork

#: The kind under which signed authorization responses are kept (store/messages.py).
KIND = "authorization_response"


@dataclass(frozen=True)
class SignedResponse:
    """One JARM response (JARM 2.1) as sent, and what the evidence record says of it."""

    jws: str
    kid: str
    alg: str
    #: The response_mode the pushed request asked for (``jwt`` or ``query.jwt``).
    mode: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.jws.encode("ascii")).hexdigest()

    def evidence(self) -> dict[str, str]:
        return {"sha256": self.sha256, "kid": self.kid, "alg": self.alg, "mode": self.mode}


def is_jarm(pushed: PushedFacts) -> bool:
    """JARM 2.3.1, 2.3.4: ``jwt`` (for response_type code: ``query.jwt``) or ``query.jwt``."""
    return pushed.response_mode in JARM_MODES


def sign_response(
    server: AuthorizationServer, client_id: str, params: dict[str, str], mode: str, now: float
) -> SignedResponse:
    """JARM 2.1: ``iss``, ``aud`` = client_id, a short ``exp`` (JARM recommends 10 minutes at most;
    settings ``jarm_lifetime``), ``iat``, and every response parameter, signed by the active key
    with its ``kid`` in the header (the OIDF suite requires it). The alg is the key's; PAR refused a
    client whose ``authorization_signed_response_alg`` differs (server/checks/par.py, JARM 3)."""
    key = server.keys.signing
    issued = int(now)
    claims = {
        "iss": server.settings.issuer,
        "aud": client_id,
        "exp": issued + server.settings.jarm_lifetime,
        "iat": issued,
        **params,
    }
    # JARM defines no media type; "JWT" (RFC 7519 5.1), as for ID tokens (server/tokens.py).
    return SignedResponse(key.sign(claims, "JWT"), key.kid, key.alg, mode)


def authorization_reply(
    server: AuthorizationServer,
    uow: UnitOfWork,
    evidence: Evidence,
    pushed: PushedFacts,
    params: dict[str, str],
    now: float,
) -> Response:
    """The 303 to the pushed request's redirect_uri with ``params`` (``code``, or ``error`` and
    ``error_description``) and ``state``.

    Plain: the parameters and ``iss`` (RFC 9207 2) in the query. JARM: only ``response`` = the
    signed JWT in the query (JARM 2.3.1); ``iss`` is inside the JWT only (FAPI2 MS 5.4.1 note,
    RFC 9207 4; the OIDF suite fails any other query parameter). The JWS is kept in ``uow`` and
    its hash named in ``evidence.detail`` before the caller appends the record."""
    reply = dict(params)
    if pushed.state is not None:
        reply["state"] = pushed.state
    if not is_jarm(pushed):
        reply["iss"] = server.settings.issuer
        return authorization_response(pushed.redirect_uri, reply)
    assert pushed.response_mode is not None
    signed = sign_response(server, pushed.client_id, reply, pushed.response_mode, now)
    # A successful response carries the code, so the kept JWS does too. A code is single-use,
    # lives code_lifetime (60 s at most, FAPI2 5.3.2.1-11), and is redeemed only by the
    # authenticated client with the PKCE verifier (FAPI2 5.3.2.2-5) and, when pushed with DPoP,
    # the DPoP key it is bound to (RFC 9449 10): a copy of it at rest redeems nothing.
    uow.messages.keep(signed.sha256, KIND, pushed.client_id, signed.jws, now)
    evidence.detail["authorization_response"] = signed.evidence()
    return authorization_response(pushed.redirect_uri, {"response": signed.jws})
