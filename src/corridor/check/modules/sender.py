# Why over 450 lines: one file per group of the OIDF test plan (here: DPoP, holder-of-key and
# the resource checks of the happy flow); each module is a short function, and the group reads
# as the suite's list in the suite's order.
"""Sender-constrained tokens (FAPI2 5.3.2.1-4/5/12/13, 5.3.4-2/5; RFC 9449; RFC 8705): the
suite's DPoP modules, its holder-of-key module, and the resource-server checks its happy flow
makes (the access token in the query, another client's token with this client's key or
certificate).

DPoP keys are made as the suite's GenerateDpopKey makes them: PS256 (an RSA key) unless the
server's ``dpop_signing_alg_values_supported`` lacks it, then the first algorithm listed."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from corridor.check import flows, jwt
from corridor.check.module import Context, dpop_only, module
from corridor.check.outcome import EndpointAnswer, challenge
from corridor.check.session import KNOWN, Party, Pushed, Tokens, origin
from corridor.core.b64 import b64url_decode, b64url_encode
from corridor.core.dpop import access_token_hash

_KTY_FOR_ALG = {"PS256": "RSA", "RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
#: What the suite's DPoP negative checks accept as a refusal at the resource
#: (EnsureHttpStatusCodeIs400or401) and as a success (EnsureHttpStatusCodeIs200or201).
REFUSED = frozenset({400, 401})
ACCEPTED = frozenset({200, 201})
#: DisallowAccessTokenInQuery: 400, 401 or 414 is a refusal of a token in the query.
QUERY_REFUSED = frozenset({400, 401, 414})
#: RFC 6749 5.2 error, error_description and error_uri characters
#: (ValidateError*FromTokenEndpointResponseError).
_ERROR_CHARS = frozenset(chr(c) for c in (0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F)))
_DESCRIPTION_CHARS = _ERROR_CHARS | {"\t", "\n", "\r"}
_URI_CHARS = _ERROR_CHARS - {" "}
_DPOP_ERRORS = {"invalid_request": {400}, "invalid_grant": {400}, "invalid_dpop_proof": {400}}


# -- keys and thumbprints -------------------------------------------------------------------


def suite_dpop_key(ctx: Context, alg: str | None = None) -> dict[str, Any]:
    """GenerateDpopKey: PS256 unless the server does not list it, then its first DPoP algorithm
    (ES256 when that is none we can make). The key's ``alg`` names the proof's algorithm."""
    if alg is None:
        listed = ctx.server.metadata.get("dpop_signing_alg_values_supported")
        alg = "PS256"
        if isinstance(listed, list) and listed and "PS256" not in listed:
            alg = str(listed[0])
    if alg not in _KTY_FOR_ALG or alg == "RS256":
        alg = "ES256"
    key = jwt.generate(_KTY_FOR_ALG[alg])
    key["alg"] = alg
    return key


def thumbprint(key: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint (RFC 9449 10 ``dpop_jkt``)."""
    return str(jwt.import_private(key).thumbprint())


def mangled(jkt: str) -> str:
    """AddInvalidDpopJktToAuthorizationEndpointRequest: every byte of the thumbprint XOR 0x5A
    (a well-formed thumbprint of no key the client holds)."""
    return b64url_encode(bytes(b ^ 0x5A for b in b64url_decode(jkt)))


def use_suite_key(ctx: Context, party: Party) -> dict[str, Any]:
    party.dpop_key = suite_dpop_key(ctx)
    return party.dpop_key


# -- the resource, the suite's way ------------------------------------------------------------------

Build = Callable[[str | None], list[tuple[str, str]]]


@dataclass
class Call:
    """One resource call (after at most one nonce retry)."""

    response: httpx.Response | None
    error: str = ""
    #: The server asked for a nonce (use_dpop_nonce) and the call was retried with it.
    retried: bool = False

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code

    def describe(self) -> str:
        if self.response is None:
            return f"no HTTP answer ({self.error})"
        text = f"HTTP {self.response.status_code}"
        for scheme in ("DPoP", "Bearer"):
            params = challenge(self.response.headers, scheme)
            if params and params.get("error"):
                text += f" {scheme} error={params['error']}"
                if params.get("error_description"):
                    text += f" ({params['error_description'][:80]})"
                break
        return text


class Resource:
    """Calls of one access token at the configured resource (or userinfo), as the suite's
    CallProtectedResourceAllowingDpopNonceError: the headers are built anew for a retry with
    the server's nonce after ``use_dpop_nonce`` (RFC 9449 9), once."""

    def __init__(self, ctx: Context, party: Party, tokens: Tokens) -> None:
        self.ctx = ctx
        self.party = party
        self.tokens = tokens
        self.url = party.resource_url()
        self.method = party.resource_method()
        self.key: Mapping[str, Any] = tokens.dpop_key or party.dpop_key
        #: Fapi2DPoPNegativeConditions.FixedJtiClaim's remembered jti (dropped on a nonce retry).
        self.fixed_jti: str | None = None

    @property
    def dpop(self) -> bool:
        return self.party.variant.sender == "dpop"

    def known_nonce(self) -> str | None:
        return self.party.nonces.get(origin(self.url))

    def forget_nonce(self) -> None:
        self.party.nonces.pop(origin(self.url), None)

    def proof(
        self,
        nonce: str | None,
        *,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        key: Mapping[str, Any] | None = None,
        ath: bool = True,
        iat_offset: float = 0,
    ) -> str:
        """CreateDpopProofSteps for the resource: htm, htu, ath, the nonce if one is known."""
        return self.party.proof(
            self.method,
            self.url,
            access_token=self.tokens.access_token if ath else None,
            nonce=nonce,
            key=key or self.key,
            claims=claims,
            header=header,
            iat_offset=iat_offset,
        )

    def authorization(self, scheme: str | None = None) -> tuple[str, str]:
        return (
            "Authorization",
            f"{scheme or ('DPoP' if self.dpop else 'Bearer')} {self.tokens.access_token}",
        )

    def standard(self, **proof: Any) -> Build:
        """The Authorization header and (DPoP) a proof made with ``proof``'s changes."""

        def build(nonce: str | None) -> list[tuple[str, str]]:
            headers = [self.authorization()]
            if self.dpop:
                headers.append(("DPoP", self.proof(nonce, **proof)))
            return headers

        return build

    def fixed(self) -> str:
        """FixedJtiClaim: the same jti until a nonce retry drops it."""
        if self.fixed_jti is None:
            self.fixed_jti = _alphanumeric(15)
        return self.fixed_jti

    def call(
        self,
        build: Build,
        *,
        nonce: Any = KNOWN,
        certificate: bool | None = None,
        params: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> Call:
        """Send; once more with the new nonce if the server asks for one (a fixed jti is
        dropped then, as the suite does)."""
        use_cert = self.party.variant.sender == "mtls" if certificate is None else certificate
        first = self.known_nonce() if nonce is KNOWN else nonce
        retried = False
        response: httpx.Response | None = None
        for attempt in range(2):
            headers = build(first if attempt == 0 else self.known_nonce())
            try:
                response = self.party.http(certificate=use_cert).request(
                    self.method, self.url, headers=headers, params=params
                )
            except httpx.TransportError as exc:
                return Call(None, f"{type(exc).__name__}: {exc}"[:200], retried)
            self.party.learn_nonce(self.url, response)
            # The suite retries when the answer is use_dpop_nonce with a DPoP-Nonce header.
            if (
                retry
                and attempt == 0
                and self.party.asks_for_nonce(response)
                and response.headers.get("dpop-nonce")
            ):
                self.party.nonce_challenges.append(self.url)
                self.fixed_jti = None
                retried = True
                continue
            break
        return Call(response, "", retried)


def _alphanumeric(length: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _default_alg(key: Mapping[str, Any]) -> str:
    kty = str(key.get("kty"))
    return str(key.get("alg") or {"RSA": "PS256", "EC": "ES256", "OKP": "EdDSA"}.get(kty, ""))


def check_resource_call(ctx: Context, call: Call) -> None:
    """EnsureHttpStatusCodeIs200or201 and CheckForDateHeaderInResourceResponse."""
    if call.response is None:
        ctx.fail(f"the resource call failed: {call.error}")
    flows.check_resource_success(ctx, call.response)


# -- the flows of these modules ---------------------------------------------------------------------

DPoPArg = bool | Callable[[str, str], str | None]


def code_for(ctx: Context, party: Party, **par: Any) -> tuple[Pushed, str]:
    """PAR (``par`` as for Party.par) that must succeed, and the user's approval: the code."""
    pushed = flows.push(ctx, party, **par)
    result = ctx.authorize(party, pushed)
    return pushed, flows.check_authorization_success(ctx, party, pushed, result)


def run_flow(
    ctx: Context,
    party: Party,
    *,
    par_dpop: DPoPArg = False,
    par: Mapping[str, Any] | None = None,
    token_dpop: DPoPArg | None = None,
    resource: Callable[[Resource], Build] | None = None,
) -> tuple[Tokens, Resource | None]:
    """AbstractFAPI2SPFinalServerTestModule's flow for one client: PAR (with a DPoP proof when
    the module binds the code, ``useDpopAuthCodeBinding``), the user, the token request and a
    resource call, each with the suite's checks. In the client credentials profile the token
    request is the client credentials grant (no PAR, no user)."""
    if ctx.variant.client_credentials:
        ctx.step(f"token ({party.client_id}, client credentials)")
        tokens = flows.check_token_success(ctx, party, party.client_credentials(dpop=token_dpop), None)
    else:
        pushed, code = code_for(ctx, party, dpop=par_dpop, **dict(par or {}))
        ctx.step(f"token ({party.client_id})")
        tokens = flows.check_token_success(ctx, party, party.token(code, pushed, dpop=token_dpop), pushed)
    if party.variant.sender == "dpop":
        ctx.fact("dpop_alg", _default_alg(party.dpop_key))
    if not flows.has_resource(ctx):
        return tokens, None
    at = Resource(ctx, party, tokens)
    ctx.step("resource")
    check_resource_call(ctx, at.call(resource(at) if resource else at.standard()))
    return tokens, at


def _proof_with(party: Party, **changes: Any) -> Callable[[str, str], str]:
    """A DPoP-at-the-AS callable for Party.par / Party.token: this party's key, ``changes``."""
    return lambda method, url: party.proof(method, url, **changes)


# -- DPoP proofs' time claims (FAPI2 5.3.2.1-13) ------------------------------------------------------


@module(
    "fapi2-security-profile-final-check-dpop-proof-nbf-exp",
    "RFC 9449 4.2, FAPI2-SP-FINAL-5.3.2.1-13",
    applies=dpop_only,
)
def check_dpop_proof_nbf_exp(ctx: Context) -> None:
    """DPoP proofs that carry nbf (now) and exp (five minutes ahead) are accepted at the token
    endpoint and the resource (FAPI2SPFinalCheckDpopProofNbfExp; RFC 9449 4.2 lets a proof
    carry other claims)."""
    party = ctx.first
    use_suite_key(ctx, party)

    def times() -> dict[str, Any]:
        now = int(party.clock())
        return {"nbf": now, "exp": now + 300}  # SetDpopNbfToNow, SetDpopExpToFiveMinutesInFuture

    run_flow(
        ctx,
        party,
        token_dpop=lambda method, url: party.proof(method, url, claims=times()),
        resource=lambda at: at.standard(claims=times()),
    )


def _iat_module(ctx: Context, offset: int) -> None:
    party = ctx.first
    use_suite_key(ctx, party)
    proof = _proof_with(party, iat_offset=offset)
    _, at = run_flow(
        ctx, party, par_dpop=proof, token_dpop=proof, resource=lambda at: at.standard(iat_offset=offset)
    )
    where = ([] if ctx.variant.client_credentials else ["PAR"]) + ["token"] + (["resource"] if at else [])
    ctx.fact("dpop_clock_window", {"iat_offset_s": offset, "accepted_at": where})
    ctx.note(f"DPoP proofs with iat {offset:+d} s were accepted at {', '.join(where)}")


@module(
    "fapi2-security-profile-final-ensure-dpopproof-with-iat-10seconds-before-succeeds",
    "FAPI2-SP-FINAL-5.3.2.1-13, RFC 9449 11.1",
    applies=dpop_only,
)
def dpop_iat_10_seconds_before(ctx: Context) -> None:
    """DPoP proofs whose iat is 10 s in the past are accepted at PAR, the token endpoint and
    the resource (FAPI2SPFinalEnsureDpopProofWithIat10SecondsBeforeSucceeds, FAPI2 5.3.2.1-13)."""
    _iat_module(ctx, -10)


@module(
    "fapi2-security-profile-final-ensure-dpopproof-with-iat-10seconds-after-succeeds",
    "FAPI2-SP-FINAL-5.3.2.1-13",
    applies=dpop_only,
)
def dpop_iat_10_seconds_after(ctx: Context) -> None:
    """DPoP proofs whose iat is in the future are accepted at PAR, the token endpoint and the
    resource (FAPI2SPFinalEnsureDpopProofWithIat10SecondsAfterSucceeds, FAPI2 5.3.2.1-13:
    accept up to 10 s ahead; the suite sends 8 s ahead, SetDpopIatTo8SecondsInFuture, and so
    does this module)."""
    _iat_module(ctx, 8)


# -- binding the code to the DPoP key (RFC 9449 10.1, FAPI2 5.3.2.1-12) --------------------------------


@module(
    "fapi2-security-profile-final-ensure-mismatched-dpop-jkt-fails",
    "RFC 9449 10.1, FAPI2-SP-FINAL-5.3.2.1-12",
    applies=dpop_only,
)
def mismatched_dpop_jkt_fails(ctx: Context) -> None:
    """A pushed request whose dpop_jkt is not the thumbprint of the key of its own DPoP proof
    is refused at PAR with 400 invalid_request or invalid_dpop_proof
    (FAPI2SPFinalEnsureMismatchedDpopJktFails, EnsurePARInvalidRequestOrInvalidDpopProof;
    RFC 9449 10.1)."""
    party = ctx.first
    key = use_suite_key(ctx, party)
    ctx.step(f"PAR ({party.client_id}): a DPoP proof and another key's dpop_jkt")
    pushed = party.par(dpop=True, dpop_jkt=mangled(thumbprint(key)))
    flows.check_par_refused(ctx, pushed, errors={"invalid_request", "invalid_dpop_proof"})


@module(
    "fapi2-security-profile-final-ensure-token-endpoint-fails-with-mismatched-dpop-proof-jkt",
    "RFC 9449 10.1, FAPI2-SP-FINAL-5.3.2.1-12",
    applies=dpop_only,
)
def token_fails_with_mismatched_dpop_proof_jkt(ctx: Context) -> None:
    """A code bound by the DPoP proof at PAR is not redeemed with a proof by another key: 400
    invalid_request, invalid_grant or invalid_dpop_proof
    (FAPI2SPFinalEnsureTokenEndpointFailsWithMismatchedDpopProofJkt,
    CheckTokenEndpointReturnedInvalidRequestGrantOrDPopProofError; RFC 9449 10.1)."""
    party = ctx.first
    key = use_suite_key(ctx, party)
    pushed, code = code_for(ctx, party, dpop=True)
    ctx.step(f"token ({party.client_id}): a proof by another key")
    # The suite generates a new key for every token request (GenerateDpopKey), retries too.
    response = party.token(
        code, pushed, dpop=lambda method, url: party.proof(method, url, key=suite_dpop_key(ctx, key["alg"]))
    )
    flows.check_token_error(ctx, response, flows.refused_with(*_DPOP_ERRORS))


@module(
    "fapi2-security-profile-final-ensure-token-endpoint-fails-with-mismatched-dpop-jkt",
    "RFC 9449 10.1, FAPI2-SP-FINAL-5.3.2.1-12",
    applies=dpop_only,
)
def token_fails_with_mismatched_dpop_jkt(ctx: Context) -> None:
    """A code bound by a dpop_jkt at PAR (no DPoP proof there) is not redeemed with a proof by
    a key of another thumbprint: 400 invalid_request, invalid_grant or invalid_dpop_proof
    (FAPI2SPFinalEnsureTokenEndpointFailsWithMismatchedDpopJkt; RFC 9449 10.1)."""
    party = ctx.first
    key = use_suite_key(ctx, party)
    pushed, code = code_for(ctx, party, dpop_jkt=mangled(thumbprint(key)))
    ctx.step(f"token ({party.client_id}): a proof by a key that is not dpop_jkt's")
    response = party.token(code, pushed)
    flows.check_token_error(ctx, response, flows.refused_with(*_DPOP_ERRORS))


@module(
    "fapi2-security-profile-final-ensure-dpopproof-at-par-endpoint-binding-success",
    "RFC 9449 10.1, FAPI2-SP-FINAL-5.3.2.1-12",
    applies=dpop_only,
)
def dpop_proof_at_par_binding_success(ctx: Context) -> None:
    """A code bound by the DPoP proof at PAR is redeemed with a proof by the same key, and the
    token works at the resource (FAPI2SPFinalEnsureDpopProofAtParEndpointBindingSuccess;
    RFC 9449 10.1)."""
    party = ctx.first
    use_suite_key(ctx, party)
    run_flow(ctx, party, par_dpop=True)


@module(
    "fapi2-security-profile-final-ensure-dpop-auth-code-binding-success",
    "RFC 9449 10.1, FAPI2-SP-FINAL-5.3.2.1-12",
    applies=dpop_only,
)
def dpop_auth_code_binding_success(ctx: Context) -> None:
    """A pushed request with both a DPoP proof and the matching dpop_jkt succeeds, the code is
    redeemed with a proof by that key, and the token works at the resource
    (FAPI2SPFinalEnsureDpopAuthCodeBindingSuccess; RFC 9449 10.1)."""
    party = ctx.first
    key = use_suite_key(ctx, party)
    run_flow(ctx, party, par_dpop=True, par={"dpop_jkt": thumbprint(key)})


# -- a token request without the holder-of-key mechanism (FAPI2 5.3.2.1-4/5) -----------------------------

#: TLS-level answers the suite takes as "a client certificate is required"
#: (CallTokenEndpointAllowingTLSFailure).
_TLS_REFUSALS = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


def _holder_of_key_errors(ctx: Context) -> dict[str, set[int]]:
    """ValidateTokenEndpointResponseWith{Dpop, MTLS, PrivateKeyAndMTLSHolderOfKey}."""
    if ctx.variant.sender == "dpop":
        return _DPOP_ERRORS
    if ctx.variant.client_auth == "mtls":
        return {"invalid_request": {400}, "invalid_client": {400, 401}}
    return {"invalid_request": {400}, "invalid_grant": {400}, "invalid_client": {400, 401}}


@module(
    "fapi2-security-profile-final-ensure-holder-of-key-required",
    "FAPI2-SP-FINAL-5.3.2.1-4, FAPI2-SP-FINAL-5.3.2.1-5, RFC 9449 5, RFC 8705 3, RFC 6749 5.2",
)
def holder_of_key_required(ctx: Context) -> None:
    """A token request without the sender-constraining mechanism (DPoP: no DPoP proof; mTLS:
    no client certificate, even when it also authenticates the client) is refused, never
    answered with a bearer token (FAPI2SPFinalEnsureHolderOfKeyRequired; FAPI2 5.3.2.1-4/5).
    The suite module's TLS checks of the endpoints are the corridor-tls modules here."""
    party = ctx.first
    dpop = ctx.variant.sender == "dpop"
    if dpop:
        use_suite_key(ctx, party)
    pushed, code = code_for(ctx, party)
    if dpop:
        ctx.step(f"token ({party.client_id}): no DPoP proof")
        response = party.token(code, pushed, dpop=False)
        missing = "a DPoP proof"
    else:
        # RemoveMTLSCertificates: no certificate at all, also when it is the client's authentication.
        ctx.step(f"token ({party.client_id}): no client certificate")
        missing = "a client certificate"
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pushed.redirect_uri,
            "code_verifier": pushed.verifier,
            **party.client_auth(),
        }
        try:
            response = party.http(certificate=False).post(party.endpoint("token_endpoint"), data=form)
        except _TLS_REFUSALS as exc:
            ctx.note(f"the TLS connection was refused without a certificate ({type(exc).__name__})")
            ctx.fact("holder_of_key_enforced", True)
            return
    check_holder_of_key_refused(ctx, response, missing)
    ctx.fact("holder_of_key_enforced", True)


def check_holder_of_key_refused(ctx: Context, response: httpx.Response, missing: str) -> None:
    """EnsureHttpStatusCodeIs4xx (FAIL), CheckTokenEndpointHttpStatus400or401 and
    CheckTokenEndpointReturnedJsonContentType (WARNING), then the error, its status and the
    RFC 6749 5.2 character sets of error, error_description and error_uri."""
    answer = EndpointAnswer.of(response)
    status = answer.status
    if status == 200 and isinstance(answer.body.get("access_token"), str):
        ctx.fail(
            f"a token request without {missing} was answered with an access token "
            f"(token_type {answer.body.get('token_type')!r}): not sender-constrained "
            "(FAPI2-SP-FINAL-5.3.2.1-4)"
        )
    if not 400 <= status <= 499:
        ctx.fail(
            f"a token request without {missing} answered HTTP {status}, "
            "a 4xx refusal was expected (RFC 6749 5.2)"
        )
    if status not in (400, 401):
        ctx.warn(f"the refusal without {missing} is HTTP {status}, not 400 or 401 (RFC 6749 5.2)")
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        ctx.warn(
            f"the refusal without {missing} is not JSON ({content_type or 'no content type'}) "
            "(OIDC Core 3.1.3.4)"
        )
        return
    expected = _holder_of_key_errors(ctx)
    error = answer.error
    if not error:
        ctx.fail(f"the refusal without {missing} has no error (RFC 6749 5.2)")
    if error not in expected:
        ctx.fail(
            f"a token request without {missing} was refused with error={error!r}, "
            f"expected {' or '.join(sorted(expected))} (RFC 6749 5.2)"
        )
    if status not in expected[error]:
        ctx.fail(
            f"error={error} came with HTTP {status}, "
            f"expected {' or '.join(map(str, sorted(expected[error])))} (RFC 6749 5.2)"
        )
    check_error_characters(ctx, answer)
    ctx.note(f"the token request without {missing} was refused: HTTP {status} error={error}")


def check_error_characters(ctx: Context, answer: EndpointAnswer) -> None:
    """ValidateError{,Description,Uri}FromTokenEndpointResponseError (RFC 6749 5.2 character
    sets) and CheckErrorDescriptionFromTokenEndpointResponseErrorContainsCRLFTAB (WARNING)."""
    error = answer.body.get("error")
    if not isinstance(error, str) or not error or not set(error) <= _ERROR_CHARS:
        ctx.fail("error holds characters outside %x20-21 / %x23-5B / %x5D-7E (RFC 6749 5.2)")
    description = answer.body.get("error_description")
    if isinstance(description, str) and description:
        if not set(description) <= _DESCRIPTION_CHARS:
            ctx.fail("error_description holds characters RFC 6749 5.2 does not allow")
        if {"\t", "\n", "\r"} & set(description):
            ctx.warn("error_description contains CR, LF or TAB")
    uri = answer.body.get("error_uri")
    if isinstance(uri, str) and uri and (not set(uri) <= _URI_CHARS or "://" not in uri):
        ctx.fail("error_uri is not a URI of the characters RFC 6749 5.2 allows")


# -- the suite's DPoP negative checks at the resource (RFC 9449 4.3, 7) --------------------------------


@dataclass(frozen=True)
class Probe:
    """One block of FAPI2SPFinalDpopNegativeTests: a request to the resource and the outcome
    the suite wants (EnsureHttpStatusCodeIs400or401 or EnsureHttpStatusCodeIs200or201)."""

    name: str
    clause: str
    #: What is sent, for the reason line ("a proof without typ").
    what: str
    build: Callable[[Resource], Build]
    expect_success: bool = False
    #: The suite's ``shouldFail``: a wrong outcome FAILs; otherwise it is a WARNING.
    must: bool = True
    #: callResourceEndpointStepsForIatAndNonceTests: no nonce at first; a server that then
    #: asks for one is expected to accept the retried proof (WARNING otherwise).
    iat: bool = False
    #: Only with an RSA DPoP key (the suite's RS256 block).
    rsa_only: bool = False


def _with(**proof: Any) -> Callable[[Resource], Build]:
    return lambda at: at.standard(**proof)


def _signed_then(change: Callable[[str], str]) -> Callable[[Resource], Build]:
    """A valid proof, changed after signing."""

    def make(at: Resource) -> Build:
        return lambda nonce: [at.authorization(), ("DPoP", change(at.proof(nonce)))]

    return make


def _header_name(name: str) -> Callable[[Resource], Build]:
    return lambda at: lambda nonce: [at.authorization(), (name, at.proof(nonce))]


def _two_proofs(at: Resource) -> Build:
    """MultipleProofs: two valid proofs, two DPoP header fields."""
    return lambda nonce: [at.authorization(), ("DPoP", at.proof(nonce)), ("DPoP", at.proof(nonce))]


def _drop_signature(proof: str) -> str:
    """NotWellformedDPoP: header.payload, no signature part."""
    return ".".join(proof.split(".")[:2])


def _rename_alg(proof: str) -> str:
    """SignDpopAndRemoveAlg: the signed header's "alg" renamed "alg2"."""
    head, rest = proof.split(".", 1)
    text = b64url_decode(head).decode().replace('"alg"', '"alg2"')
    return b64url_encode(text.encode()) + "." + rest


def _alg_none(at: Resource) -> Build:
    """SignDpopProofWithNone: {"alg": "none", "typ": "dpop+jwt"} (no jwk), the same claims."""

    def build(nonce: str | None) -> list[tuple[str, str]]:
        _, claims = jwt.decode_unverified(at.proof(nonce))
        return [at.authorization(), ("DPoP", jwt.unsigned({"alg": "none", "typ": "dpop+jwt"}, claims))]

    return build


def _rs256(at: Resource) -> Build:
    """ChangeSignAlgorithm: the RSA key signs RS256 (its JWK loses the PS256 ``alg`` it had)."""
    key = {name: value for name, value in at.key.items() if name != "alg"}
    return at.standard(header={"alg": "RS256"}, key=key)


def _private_jwk(at: Resource) -> Build:
    return at.standard(header={"jwk": dict(at.key)})


def _htu(change: Callable[[str], str]) -> Callable[[Resource], Build]:
    return lambda at: at.standard(claims={"htu": change(at.url)})


def _with_query_and_fragment(url: str) -> str:
    """AddQueryAndFragmentToDpopHtu (when the URL has no query)."""
    if "?" in url:
        return url
    return url + "?allthedoorsonthisspaceshiphavebeen#programmedtohaveacheeryandsunnydisposition"


def _without_query(url: str) -> str:
    """RemoveQueryAndFragmentFromDpopHtu."""
    return url[: url.rindex("?")] if url.rfind("?") > 0 else url


def _other_url(url: str) -> str:
    """SetDpopHtuToDifferentUrl."""
    return _without_query(url) + "ohnonotagain"


def _upper_case(url: str) -> str:
    """DpopHtuUpperCase: host and scheme in upper case (as the suite replaces them)."""
    parts = httpx.URL(url)
    return url.replace(parts.host, parts.host.upper()).replace(parts.scheme, parts.scheme.upper())


def _default_port(url: str) -> str:
    """DpopHtuWithPort: the scheme's default port written out (when the URL has none)."""
    parts = httpx.URL(url)
    if parts.port is not None:
        return url
    return f"{parts.scheme}://{parts.host}:{443 if parts.scheme == 'https' else 80}{parts.path}"


def _iat_shift(seconds: int) -> Callable[[Resource], Build]:
    return lambda at: at.standard(iat_offset=seconds)


def _fixed_jti(at: Resource) -> Build:
    return lambda nonce: [at.authorization(), ("DPoP", at.proof(nonce, claims={"jti": at.fixed()}))]


def _wrong_ath(at: Resource) -> Build:
    """SetDpopAccessTokenHashToIncorrectValue: the hash of another (random) token."""
    return at.standard(claims={"ath": access_token_hash(_alphanumeric(10))})


def _other_key(at: Resource) -> Build:
    """GenerateNewSignKey: a proof by a new key of the same algorithm."""

    def build(nonce: str | None) -> list[tuple[str, str]]:
        key = suite_dpop_key(at.ctx, _default_alg(at.key))
        return [at.authorization(), ("DPoP", at.proof(nonce, key=key))]

    return build


def _extra_members(at: Resource) -> Build:
    """AddExtraClaimsToHeader, AddExtraClaimsToClaims."""

    def build(nonce: str | None) -> list[tuple[str, str]]:
        later = int(at.party.clock()) + 3600
        proof = at.proof(nonce, header={"tx_id": later}, claims={"tx_id_key": later})
        return [at.authorization(), ("DPoP", proof)]

    return build


def _no_proof(scheme: str) -> Callable[[Resource], Build]:
    return lambda at: lambda nonce: [at.authorization(scheme)]


def _flip_all(proof: str) -> str:
    """InvalidateDpopProofSignature: every byte of the signature XOR 0x5A."""
    head, payload, signature = proof.split(".")
    return f"{head}.{payload}.{b64url_encode(bytes(b ^ 0x5A for b in b64url_decode(signature)))}"


DROP = jwt.DROP

#: FAPI2SPFinalDpopNegativeTests, block for block, in its order: 24 refusals (23 without an
#: RSA DPoP key: the RS256 block runs only with one) and 8 acceptances.
PROBES: tuple[Probe, ...] = (
    Probe(
        "dpop-header-upper-case",
        "RFC 9449 4.1, RFC 9110 5.1",
        "a proof in a header named DPOP",
        _header_name("DPOP"),
        expect_success=True,
        must=False,
    ),
    Probe("two-dpop-headers", "RFC 9449 4.3-1", "two DPoP header fields", _two_proofs),
    Probe("not-a-jws", "RFC 9449 4.3-2", "a proof without its signature part", _signed_then(_drop_signature)),
    Probe("typ-missing", "RFC 9449 4.2, 4.3-3", "a proof without typ", _with(header={"typ": DROP})),
    Probe("alg-missing", "RFC 9449 4.2, 4.3-3", "a proof without alg", _signed_then(_rename_alg)),
    Probe("jwk-missing", "RFC 9449 4.2, 4.3-3", "a proof without jwk", _with(header={"jwk": DROP})),
    Probe("jti-missing", "RFC 9449 4.2, 4.3-3", "a proof without jti", _with(claims={"jti": DROP})),
    Probe("htm-missing", "RFC 9449 4.2, 4.3-3", "a proof without htm", _with(claims={"htm": DROP})),
    Probe("htu-missing", "RFC 9449 4.2, 4.3-3", "a proof without htu", _with(claims={"htu": DROP})),
    Probe("iat-missing", "RFC 9449 4.2, 4.3-3", "a proof without iat", _with(claims={"iat": DROP})),
    Probe("ath-missing", "RFC 9449 4.2, 7.1", "a proof without ath", _with(ath=False)),
    Probe(
        "typ-wrong",
        "RFC 9449 4.3-4",
        "a proof with typ dpop+jwt+wrongyousee",
        _with(header={"typ": "dpop+jwt+wrongyousee"}),
    ),
    Probe(
        "alg-rs256",
        "FAPI2-SP-FINAL-5.4.1-1, RFC 9449 4.3-5",
        "a proof signed RS256",
        _rs256,
        rsa_only=True,
    ),
    Probe("alg-none", "FAPI2-SP-FINAL-5.4.1-1, RFC 9449 4.3-5", "an unsigned proof (alg none)", _alg_none),
    Probe("signature-invalid", "RFC 9449 4.3-6", "a proof with a broken signature", _signed_then(_flip_all)),
    Probe("jwk-private", "RFC 9449 4.3-7", "a proof whose jwk holds the private key", _private_jwk),
    Probe("htm-wrong", "RFC 9449 4.3-8", "a proof with htm PUT", _with(claims={"htm": "PUT"})),
    Probe(
        "htu-with-query-fragment",
        "RFC 9449 4.3-9",
        "a proof whose htu has a query and fragment",
        _htu(_with_query_and_fragment),
        expect_success=True,
    ),
    Probe(
        "htu-without-query-fragment",
        "RFC 9449 4.3-9",
        "a proof whose htu lacks the URL's query",
        _htu(_without_query),
        expect_success=True,
    ),
    Probe("htu-other-url", "RFC 9449 4.3-9", "a proof for another URL", _htu(_other_url)),
    Probe(
        "iat-hour-ahead",
        "RFC 9449 4.3-11, 11.1",
        "a proof with iat one hour ahead",
        _iat_shift(3600),
        iat=True,
    ),
    Probe(
        "iat-hour-ago", "RFC 9449 4.3-11, 11.1", "a proof with iat one hour ago", _iat_shift(-3600), iat=True
    ),
    Probe(
        "jti-first-use", "RFC 9449 4.3-11", "a proof with a new (fixed) jti", _fixed_jti, expect_success=True
    ),
    # The suite makes a replay a WARNING (shouldFail false: RFC 9449 11.1 "can"); issue 14 asks
    # that a replayed proof accepted at the resource FAILs, so it does here.
    Probe(
        "jti-replay",
        "RFC 9449 4.3-11, 11.1, FAPI2-SP-FINAL 6.2",
        "a second proof with the same jti",
        _fixed_jti,
    ),
    Probe("ath-wrong", "RFC 9449 4.3-12, 7.1", "a proof whose ath is another token's hash", _wrong_ath),
    Probe("key-other", "RFC 9449 4.3-12, 7.1", "a proof by a key the token is not bound to", _other_key),
    Probe(
        "extra-members",
        "RFC 9449 4.2",
        "a proof with extra header and claim members",
        _extra_members,
        expect_success=True,
    ),
    Probe(
        "htu-upper-case",
        "RFC 9449 4.3-9, RFC 3986 6.2.2",
        "a proof whose htu has scheme and host in upper case",
        _htu(_upper_case),
        expect_success=True,
        must=False,
    ),
    Probe(
        "htu-default-port",
        "RFC 9449 4.3-9, RFC 3986 6.2.3",
        "a proof whose htu names the default port",
        _htu(_default_port),
        expect_success=True,
        must=False,
    ),
    Probe(
        "no-proof",
        "FAPI2-SP-FINAL-5.3.4-5, RFC 9449 7.1",
        "the DPoP scheme without a proof",
        _no_proof("DPoP"),
    ),
    Probe(
        "no-proof-bearer", "RFC 9449 7.2", "the token as a Bearer token, without a proof", _no_proof("Bearer")
    ),
    Probe(
        "correct-proof",
        "RFC 9449 7.1",
        "a correct proof (after all the others)",
        _with(),
        expect_success=True,
    ),
)


@module(
    "fapi2-security-profile-final-dpop-negative-tests",
    "RFC 9449 4.3, 7.1, 7.2, 11.1; FAPI2-SP-FINAL-5.3.4-5",
    applies=dpop_only,
)
def dpop_negative_tests(ctx: Context) -> None:
    """The resource accepts a DPoP-bound token only with a correct proof: the suite's calls
    with bad proofs or none (24 with an RSA DPoP key, 23 without: the RS256 one needs it) are
    refused with 400 or 401, its 8 good ones are accepted; each is named in a note
    (FAPI2SPFinalDpopNegativeTests, Fapi2DPoPNegativeConditions; RFC 9449 4.3, 7)."""
    if not flows.has_resource(ctx):
        ctx.skip(
            "no resource to call: none is configured (or userinfo, which needs an openid token) "
            "and the server has no userinfo endpoint"
            if ctx.variant.openid
            else "no resource to call: none is configured (userinfo needs an openid token)"
        )
    party = ctx.first
    use_suite_key(ctx, party)
    _, at = run_flow(ctx, party)
    assert at is not None
    failures: list[str] = []
    ran = 0
    for probe in PROBES:
        if probe.rsa_only and at.key.get("kty") != "RSA":
            ctx.note(
                f"{probe.name}: not run (the DPoP key is {at.key.get('kty')}; "
                "the suite runs it with RSA keys only)"
            )
            continue
        ran += 1
        ctx.step(f"resource: {probe.name}")
        if probe.iat:
            at.forget_nonce()  # the suite starts these without a nonce
            call = at.call(probe.build(at), nonce=None)
        else:
            call = at.call(probe.build(at))
        expect_success, must = probe.expect_success, probe.must
        if probe.iat and call.retried:
            # The server asked for a nonce: it may rely on the nonce, not iat, for freshness.
            expect_success, must = True, False
        wanted = ACCEPTED if expect_success else REFUSED
        outcome = call.describe()
        if call.status in wanted:
            ctx.note(
                f"{probe.name} ({probe.clause}): {'accepted' if expect_success else 'refused'}, {outcome}"
            )
            continue
        if expect_success:
            reason = f"{probe.name}: {probe.what} was not accepted ({outcome}); it must be ({probe.clause})"
        elif call.status in ACCEPTED:
            reason = (
                f"{probe.name}: {probe.what} was accepted ({outcome}), "
                f"a 400 or 401 refusal was expected ({probe.clause})"
            )
        else:
            reason = (
                f"{probe.name}: {probe.what} answered {outcome}, "
                f"a 400 or 401 refusal was expected ({probe.clause})"
            )
        ctx.note(("FAIL " if must else "WARNING ") + reason)
        if must:
            failures.append(reason)
        else:
            ctx.warn(reason)
    ctx.fact("dpop_negative_checks", {"run": ran, "failed": len(failures)})
    if failures:
        more = (
            f" (+{len(failures) - 1} more: {', '.join(f.split(':')[0] for f in failures[1:])})"
            if len(failures) > 1
            else ""
        )
        ctx.fail(failures[0] + more)


# -- the resource checks of the suite's happy flow (FAPI2 5.3.4-2, RFC 8705 3, RFC 9449 7) ---------------


def refuse_token_in_query(ctx: Context, party: Party, tokens: Tokens) -> None:
    """DisallowAccessTokenInQuery (FAPI2SPFinalHappyFlow, first client): the access token only
    in the query (``?access_token=``, with the DPoP proof or the certificate as usual, no
    Authorization header) is refused with 400, 401 or 414 (FAPI2-SP-FINAL-5.3.4-2)."""
    at = Resource(ctx, party, tokens)
    ctx.step("resource: access token in the query")
    build: Build = (lambda nonce: [("DPoP", at.proof(nonce))]) if at.dpop else (lambda nonce: [])
    call = at.call(build, params={"access_token": tokens.access_token}, retry=False)
    if call.response is None:
        ctx.fail(f"the resource call with the access token in the query failed: {call.error}")
    status = call.response.status_code
    if status < 400:
        ctx.fail(
            f"the resource accepted the access token in the query (HTTP {status}) (FAPI2-SP-FINAL-5.3.4-2)"
        )
    if status not in QUERY_REFUSED:
        ctx.fail(
            f"the resource answered the access token in the query with HTTP {status}, "
            "expected 400, 401 or 414 (FAPI2-SP-FINAL-5.3.4-2)"
        )
    ctx.fact("query_token_refused", True)
    ctx.note(f"the access token in the query was refused: {call.describe()}")


def refuse_other_clients_token(ctx: Context, first: Party, tokens: Tokens) -> None:
    """switchToClient1AndTryClient2AccessToken (AbstractFAPI2SPFinalMultipleClient): the second
    client's token with the first client's DPoP key or certificate is refused with a 4xx
    (RFC 8705 3, RFC 9449 7.1; FAPI2-SP-FINAL-5.3.4-5)."""
    at = Resource(ctx, first, tokens)
    at.key = first.dpop_key
    what = "DPoP key" if at.dpop else "client certificate"
    ctx.step(f"resource: the second client's token with the first client's {what}")
    call = at.call(at.standard(), retry=at.dpop, certificate=first.variant.sender == "mtls")
    if call.response is None:
        ctx.fail(f"the resource call with another client's token failed: {call.error}")
    status = call.response.status_code
    if not 400 <= status <= 499:
        ctx.fail(
            f"the resource answered HTTP {status} to the second client's token used with the first "
            f"client's {what}, a 4xx refusal was expected (RFC 8705 3, RFC 9449 7.1)"
        )
    ctx.note(f"the second client's token with the first client's {what} was refused: {call.describe()}")
