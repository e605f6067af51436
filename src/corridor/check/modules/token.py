# Why over 450 lines: one file per group of the OIDF test plan (here: token endpoint, client
# assertion and PKCE); each module is a short function in the suite's order.
"""The token endpoint, client assertion and PKCE modules: what the suite sends to the token and
PAR endpoints when it tries another client's code, a used or expired code, a missing or wrong
PKCE verifier, and private_key_jwt assertions that are wrong in one way each (RS256, no
assertion, expired, a foreign ``aud``, no ``sub``, ``nbf`` in the future, ``aud`` as an array,
the PAR URL or the token URL), with the suite's pass conditions."""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from typing import Any

from corridor.check import flows, jwt, refusals
from corridor.check.module import Context, module, private_key_jwt_only
from corridor.check.outcome import Landing
from corridor.check.session import JWT_BEARER, Party, Pushed

PREFIX = "fapi2-security-profile-final-"

#: RFC 7636 4.1: the characters of a code_verifier.
VERIFIER_CHARS = string.ascii_letters + string.digits + "-._~"
#: An audience that names another server (the suite's AddWrongAudToClientAssertionClaims).
FOREIGN_AUDIENCE = "https://other-server.example/api/userinfo"


# -- shared checks ------------------------------------------------------------------------------


def expect_refused_request(ctx: Context, party: Party, pushed: Pushed, *, errors: set[str]) -> str:
    """:func:`corridor.check.refusals.expect_refused_request` with the same errors at PAR and at
    the authorization endpoint; returns where the request was refused (for the report)."""
    result = refusals.expect_refused_request(
        ctx, party, pushed, par_errors=errors, errors=errors, what="the request"
    )
    if result is None:
        return "PAR endpoint"
    if result.landing is Landing.ERROR_PAGE:
        return "authorization endpoint (error page)"
    return "authorization endpoint (error redirect)"


def key_alg(party: Party) -> str:
    """The algorithm of the client's configured key (its ``alg``, else its type's FAPI one)."""
    key = party.config.jwk or {}
    if key.get("alg"):
        return str(key["alg"])
    return {"RSA": "PS256", "EC": "ES256", "OKP": "EdDSA"}.get(str(key.get("kty")), "")


def push(ctx: Context, party: Party, **kwargs: Any) -> Pushed:
    """flows.push, noting the assertion algorithm the server accepted (private_key_jwt)."""
    pushed = flows.push(ctx, party, **kwargs)
    if party.variant.client_auth == "private_key_jwt":
        ctx.fact("assertion_alg", key_alg(party))
    return pushed


def authorized_code(ctx: Context, party: Party) -> tuple[Pushed, str]:
    """A normal PAR and front channel, with the suite's checks: the code and its request."""
    pushed = push(ctx, party)
    result = ctx.authorize(party, pushed)
    return pushed, flows.check_authorization_success(ctx, party, pushed, result)


def assertion_auth(
    party: Party, *, header: dict[str, Any] | None = None, **claims: Any
) -> Callable[[], dict[str, str]]:
    """Client authentication by an assertion with these claims (made afresh per attempt: a
    DPoP nonce retry must not reuse a jti). ``nbf`` = ``iat`` as the suite's assertions have."""

    def fields() -> dict[str, str]:
        now = int(party.clock())
        made = {"nbf": now, **{k: (v(now) if callable(v) else v) for k, v in claims.items()}}
        return {
            "client_assertion_type": JWT_BEARER,
            "client_assertion": party.assertion(header=header, **made),
        }

    return fields


def random_verifier() -> str:
    """The suite's CreateRandomCodeVerifier: 128 characters, every RFC 7636 4.1 character allowed."""
    return "".join(secrets.choice(VERIFIER_CHARS) for _ in range(128))


# -- the token endpoint ------------------------------------------------------------------------


@module(PREFIX + "ensure-client-id-in-token-endpoint", "RFC 6749 5.2, FAPI2-SP-FINAL-5.3.2.1-6")
def client_id_in_token_endpoint(ctx: Context) -> None:
    """Client 1's code sent with client 2's client_id is refused (invalid_client or
    invalid_grant). The token request names client 2 (private_key_jwt: an assertion with client 2
    as iss and sub, signed by client 1's key; mTLS: client 1's certificate). Suite:
    FAPI2SPFinalEnsureClientIdInTokenEndpoint."""
    first, second = ctx.first, ctx.second
    pushed, code = authorized_code(ctx, first)
    ctx.step("token (client 1's code, client 2's client_id)")
    auth: bool | Callable[[], dict[str, str]] = False
    if ctx.variant.client_auth == "private_key_jwt":
        auth = assertion_auth(first, iss=second.client_id, sub=second.client_id)
    response = first.token(code, pushed, auth=auth, client_id=second.client_id)
    flows.check_token_error(
        ctx,
        response,
        flows.refused_with("invalid_client", "invalid_grant"),
        accepted="tokens were issued for another client's client_id (RFC 6749 5.2, FAPI2-SP-FINAL-5.3.2.1-6)",
    )


@module(PREFIX + "ensure-authorization-code-is-bound-to-client", "RFC 6749 4.1.3, FAPI2-SP-FINAL-5.3.2.1-6")
def code_bound_to_client(ctx: Context) -> None:
    """Client 1's code redeemed by client 2 is refused with invalid_grant. Client 2 sends
    client 1's code, redirect_uri and verifier with its own credentials, certificate and DPoP
    key; 400 is required. Suite: FAPI2SPFinalEnsureAuthorizationCodeIsBoundToClient."""
    pushed, code = authorized_code(ctx, ctx.first)
    ctx.step("token (client 1's code redeemed by client 2)")
    response = ctx.second.token(code, pushed)
    flows.check_token_error(
        ctx,
        response,
        flows.refused_with("invalid_grant", invalid_client_401=False),
        accepted="another client redeemed the code (RFC 6749 4.1.3: the code is bound to its client)",
    )
    ctx.fact("code_bound_to_client", True)


@module(
    PREFIX + "attempt-reuse-authorization-code-after-one-second", "FAPI2-SP-FINAL-5.3.2.2-9, RFC 6749 4.1.2"
)
def reuse_code(ctx: Context) -> None:
    """A used code redeemed again a second later is refused with invalid_grant. After a
    complete flow the same code is sent again (a fresh assertion); the first access token SHOULD
    then be refused by the resource (RFC 6749 4.1.2: a WARNING if not). Suite:
    FAPI2SPFinalAttemptReuseAuthorizationCodeAfterOneSecond."""
    party = ctx.first
    pushed, code = authorized_code(ctx, party)
    ctx.step(f"token ({party.client_id})")
    tokens = flows.check_token_success(ctx, party, party.token(code, pushed), pushed)
    if flows.has_resource(ctx):
        flows.check_resource_success(ctx, party.call_resource(tokens))
    time.sleep(1)  # the suite's WaitForOneSecond: not a lifetime, the code is simply used
    ctx.step("token (the same code again)")
    flows.check_token_error(
        ctx,
        party.token(code, pushed),
        flows.refused_with("invalid_grant", invalid_client_401=False),
        accepted="the used code was redeemed again (FAPI2-SP-FINAL-5.3.2.2-9)",
    )
    ctx.fact("code_reuse_refused", True)
    if not flows.has_resource(ctx):
        ctx.note("no resource configured: whether the first access token was revoked is not tested")
        return
    ctx.step("resource (the first access token, after the reuse)")
    response = party.call_resource(tokens)
    revoked = 400 <= response.status_code <= 499
    ctx.fact("code_reuse_revokes_tokens", revoked)
    if not revoked:
        ctx.warn(
            f"the access token from the reused code still works (HTTP {response.status_code}); "
            "RFC 6749 4.1.2 says it SHOULD be revoked"
        )


@module(
    PREFIX + "ensure-token-endpoint-fails-with-expired-auth-code",
    "FAPI2-SP-FINAL-5.3.2.1-11",
    slow=True,
)
def expired_code(ctx: Context) -> None:
    """A code first redeemed 62 s after it was issued is refused with invalid_grant. 60 s is
    the longest lifetime allowed, 2 s are for clock skew. Suite:
    FAPI2SPFinalAttemptToUseExpiredAuthCode."""
    party = ctx.first
    pushed, code = authorized_code(ctx, party)
    ctx.step("waiting 62 s")
    ctx.wait(62)
    ctx.step(f"token ({party.client_id}, 62 s later)")
    flows.check_token_error(
        ctx,
        party.token(code, pushed),
        flows.refused_with("invalid_grant", invalid_client_401=False),
        accepted="a code 62 s old was redeemed (FAPI2-SP-FINAL-5.3.2.1-11: at most 60 s)",
    )
    ctx.fact("code_lifetime_enforced", True)


# -- client assertions (private_key_jwt) -------------------------------------------------------


def _refused_assertion(
    ctx: Context, auth: Callable[[], dict[str, str]], *, errors: set[str], accepted: str
) -> None:
    """A normal flow whose token request authenticates with ``auth``; the suite's checks. In the
    client credentials profile the token request is the client credentials grant (no code)."""
    party = ctx.first
    if ctx.variant.client_credentials:
        ctx.step(f"token ({party.client_id}, client credentials, a bad assertion)")
        response = party.client_credentials(auth=auth)
    else:
        pushed, code = authorized_code(ctx, party)
        ctx.step(f"token ({party.client_id}, a bad assertion)")
        response = party.token(code, pushed, auth=auth)
    flows.check_token_error(ctx, response, flows.refused_with(*errors), accepted=accepted)


@module(
    PREFIX + "ensure-signed-client-assertion-with-RS256-fails",
    "FAPI2-SP-FINAL-5.4.1-1, 5.3.2.1-6",
    applies=private_key_jwt_only,
)
def assertion_rs256(ctx: Context) -> None:
    """A client assertion signed with RS256 is refused with invalid_client. The client's RSA
    key signs it with RS256 instead of PS256; skipped, as the suite does, when the client's key
    is not a PS256 (RSA) key. Suite: FAPI2SPFinalEnsureSignedClientAssertionWithRS256Fails."""
    alg = key_alg(ctx.first)
    if alg != "PS256":
        ctx.skip(f"needs an RSA (PS256) client key to sign with RS256; the first client's key is {alg}")
    _refused_assertion(
        ctx,
        assertion_auth(ctx.first, header={"alg": "RS256"}),
        errors={"invalid_client"},
        accepted="a client assertion signed with RS256 was accepted (FAPI2-SP-FINAL-5.4.1-1)",
    )
    ctx.fact("assertion_rs256_refused", True)


@module(
    PREFIX + "ensure-client-assertion-in-token-endpoint",
    "FAPI2-SP-FINAL-5.3.2.1-3/6, OIDC Core 9",
    applies=private_key_jwt_only,
)
def assertion_required(ctx: Context) -> None:
    """A token request without a client assertion is refused (invalid_client or
    invalid_request). It carries only client_id; 401 is allowed for invalid_client. Suite:
    FAPI2SPFinalEnsureClientAssertionInTokenEndpoint."""
    party = ctx.first
    _refused_assertion(
        ctx,
        lambda: {"client_id": party.client_id},
        errors={"invalid_client", "invalid_request"},
        accepted="tokens were issued without client authentication (FAPI2-SP-FINAL-5.3.2.1-3)",
    )


@module(
    PREFIX + "ensure-client-assertion-with-exp-is-5-minutes-in-past-fails",
    "OIDC Core 9, RFC 7523 3",
    applies=private_key_jwt_only,
)
def assertion_expired(ctx: Context) -> None:
    """A client assertion that expired 5 minutes ago is refused (invalid_client or
    invalid_request). Suite: FAPI2SPFinalEnsureClientAssertionWithExpIs5MinutesInPastFails."""
    _refused_assertion(
        ctx,
        assertion_auth(ctx.first, exp=lambda now: now - 300),
        errors={"invalid_client", "invalid_request"},
        accepted="a client assertion that expired 5 minutes ago was accepted (RFC 7523 3)",
    )
    ctx.fact("assertion_expired_refused", True)


@module(
    PREFIX + "ensure-client-assertion-with-wrong-aud-fails",
    "FAPI2-SP-FINAL-5.3.2.1-8, RFC 7523 3",
    applies=private_key_jwt_only,
)
def assertion_wrong_aud(ctx: Context) -> None:
    """A client assertion for another server (aud) is refused (invalid_client or
    invalid_request). Suite: FAPI2SPFinalEnsureClientAssertionWithWrongAudFails."""
    _refused_assertion(
        ctx,
        assertion_auth(ctx.first, aud=FOREIGN_AUDIENCE),
        errors={"invalid_client", "invalid_request"},
        accepted="a client assertion for another server (aud) was accepted (FAPI2-SP-FINAL-5.3.2.1-8)",
    )
    ctx.fact("assertion_audience_refused", "another server's URL")


@module(
    PREFIX + "ensure-client-assertion-with-no-sub-fails",
    "OIDC Core 9, RFC 7523 3",
    applies=private_key_jwt_only,
)
def assertion_without_sub(ctx: Context) -> None:
    """A client assertion without sub is refused (invalid_client or invalid_request). Without
    sub, a signed request object could pass for an assertion. Suite:
    FAPI2SPFinalEnsureClientAssertionWithNoSubFails."""
    _refused_assertion(
        ctx,
        assertion_auth(ctx.first, sub=jwt.DROP),
        errors={"invalid_client", "invalid_request"},
        accepted="a client assertion without sub was accepted (RFC 7523 3, OIDC Core 9)",
    )
    ctx.fact("assertion_sub_required", True)


@module(
    PREFIX + "par-ensure-jwt-client-assertions-nbf-8-seconds-in-the-future-is-accepted",
    "FAPI2-SP-FINAL-5.3.2.1-13",
    applies=private_key_jwt_only,
)
def assertion_nbf_8s(ctx: Context) -> None:
    """A PAR client assertion with iat and nbf 8 s in the future is accepted. 10 s is what
    every server must tolerate; the whole flow then completes, and a refusal at PAR is a
    WARNING, as in the suite. Suite:
    FAPI2SPFinalPAREnsureJWTClientAssertionWithIatNbf8SecondsInTheFutureIsAccepted."""
    party = ctx.first
    ctx.step(f"PAR ({party.client_id}, assertion iat/nbf +8 s)")
    pushed = party.par(auth=assertion_auth(party, iat=lambda now: now + 8, nbf=lambda now: now + 8))
    if pushed.answer.status != 201:
        ctx.fact("assertion_nbf_8s_accepted", False)
        ctx.warn(
            f"PAR refused a client assertion with nbf 8 s in the future (HTTP {pushed.answer.status} "
            f"{pushed.answer.error or ''}): the server does not seem to allow clock skew "
            "(FAPI2-SP-FINAL-5.3.2.1-13)"
        )
        return
    flows.check_par_success(ctx, pushed)
    ctx.fact("assertion_alg", key_alg(party))
    ctx.fact("assertion_nbf_8s_accepted", True)
    result = ctx.authorize(party, pushed)
    code = flows.check_authorization_success(ctx, party, pushed, result)
    ctx.step(f"token ({party.client_id})")
    tokens = flows.check_token_success(ctx, party, party.token(code, pushed), pushed)
    if flows.has_resource(ctx):
        flows.check_resource_success(ctx, party.call_resource(tokens))


def _par_assertion_refused(ctx: Context, what: str, clause: str, **claims: Any) -> None:
    """A PAR whose assertion has ``claims``: 400 or 401 with invalid_request or invalid_client
    (EnsureHttpStatusCodeIs400or401, CheckErrorFromParEndpointResponseErrorInvalidClientOrInvalidRequest)."""
    party = ctx.first
    ctx.step(f"PAR ({party.client_id}, assertion with {what})")
    pushed = party.par(auth=assertion_auth(party, **claims))
    answer = pushed.answer
    if 200 <= answer.status < 300:
        ctx.fail(f"PAR accepted a client assertion with {what} (HTTP {answer.status}) ({clause})")
    flows.check_par_refused(
        ctx, pushed, errors={"invalid_client", "invalid_request"}, statuses=frozenset({400, 401})
    )


@module(
    PREFIX + "par-ensure-jwt-client-assertions-nbf-over-60-seconds-in-the-future-fails",
    "FAPI2-SP-FINAL-5.3.2.1-13",
    applies=private_key_jwt_only,
)
def assertion_nbf_62s(ctx: Context) -> None:
    """A PAR client assertion with iat, nbf and exp 62 s in the future is refused. Beyond
    60 s no server may accept it: 400 or 401, invalid_request or invalid_client. Suite:
    FAPI2SPFinalPAREnsureJWTClientAssertionWithIatNbfOver60SecondsInTheFutureFails."""
    _par_assertion_refused(
        ctx,
        "iat/nbf 62 s in the future",
        "FAPI2-SP-FINAL-5.3.2.1-13",
        iat=lambda now: now + 62,
        nbf=lambda now: now + 62,
        exp=lambda now: now + 60 + 62,
    )
    ctx.fact("assertion_nbf_62s_refused", True)


@module(PREFIX + "par-test-array-as-audience-fails", "FAPI2-SP-FINAL-5.3.2.1-8", applies=private_key_jwt_only)
def assertion_aud_array(ctx: Context) -> None:
    """A PAR client assertion with aud as an array is refused. aud = [issuer, token endpoint]:
    400 or 401, invalid_request or invalid_client. Suite:
    FAPI2SPFinalPAREndpointAsArrayAudienceFails."""
    aud = [ctx.server.issuer, ctx.first.endpoint("token_endpoint")]
    _par_assertion_refused(ctx, "aud as an array", "FAPI2-SP-FINAL-5.3.2.1-8", aud=aud)
    ctx.fact("assertion_audience_refused", "an array holding the issuer")
    ctx.fact("assertion_audience_rule", "issuer string only")


@module(
    PREFIX + "par-test-par-endpoint-url-as-audience-fails",
    "FAPI2-SP-FINAL-5.3.2.1-8",
    applies=private_key_jwt_only,
)
def assertion_aud_par(ctx: Context) -> None:
    """A PAR client assertion with aud = the PAR endpoint URL is refused. RFC 9126 2 allowed
    it, FAPI 2.0 Final does not: 400 or 401, invalid_request or invalid_client. Suite:
    FAPI2SPFinalPAREndpointAsAudienceFails."""
    aud = ctx.server.endpoint("pushed_authorization_request_endpoint")
    _par_assertion_refused(ctx, "aud = the PAR endpoint URL", "FAPI2-SP-FINAL-5.3.2.1-8", aud=aud)
    ctx.fact("assertion_audience_refused", "the PAR endpoint URL")
    ctx.fact("assertion_audience_rule", "issuer string only")


@module(
    PREFIX + "par-test-token-endpoint-url-as-audience-fails",
    "FAPI2-SP-FINAL-5.3.2.1-8",
    applies=private_key_jwt_only,
)
def assertion_aud_token(ctx: Context) -> None:
    """A PAR client assertion with aud = the token endpoint URL is refused. 400 or 401,
    invalid_request or invalid_client. Suite: FAPI2SPFinalPARTokenEndpointAsAudienceFails."""
    aud = ctx.server.endpoint("token_endpoint")
    _par_assertion_refused(ctx, "aud = the token endpoint URL", "FAPI2-SP-FINAL-5.3.2.1-8", aud=aud)
    ctx.fact("assertion_audience_refused", "the token endpoint URL")
    ctx.fact("assertion_audience_rule", "issuer string only")


# -- PKCE --------------------------------------------------------------------------------------


@module(PREFIX + "par-ensure-pkce-required", "FAPI2-SP-FINAL-5.3.2.2-5, RFC 7636 4.4.1")
def pkce_required(ctx: Context) -> None:
    """A pushed request without PKCE is refused with invalid_request. No code_challenge or
    code_challenge_method; the refusal may come at PAR or at the authorization endpoint (an
    error page is accepted). Suite: FAPI2SPFinalPAREnsurePKCERequired."""
    party = ctx.first
    ctx.step(f"PAR ({party.client_id}, no PKCE)")
    pushed = party.par(remove=("code_challenge", "code_challenge_method"))
    ctx.fact(
        "pkce_missing_refused_at", expect_refused_request(ctx, party, pushed, errors={"invalid_request"})
    )


@module(PREFIX + "ensure-pkce-code-verifier-required", "FAPI2-SP-FINAL-5.3.2.2-5, RFC 7636 4.6")
def pkce_verifier_required(ctx: Context) -> None:
    """A token request without code_verifier is refused with invalid_grant. 400 is required.
    Suite: FAPI2SPFinalPAREnsurePKCECodeVerifierRequired."""
    party = ctx.first
    pushed, code = authorized_code(ctx, party)
    ctx.step(f"token ({party.client_id}, no code_verifier)")
    flows.check_token_error(
        ctx,
        party.token(code, pushed, remove=("code_verifier",)),
        flows.refused_with("invalid_grant", invalid_client_401=False),
        accepted="tokens were issued without a code_verifier (RFC 7636 4.6, FAPI2-SP-FINAL-5.3.2.2-5)",
    )
    ctx.fact("pkce_verifier_required", True)


@module(PREFIX + "incorrect-pkce-code-verifier-rejected", "FAPI2-SP-FINAL-5.3.2.2-5, RFC 7636 4.6")
def pkce_wrong_verifier(ctx: Context) -> None:
    """A token request with a wrong code_verifier is refused with invalid_grant. The verifier
    is another random one of 128 characters; 400 is required. Suite:
    FAPI2SPFinalPARIncorrectPKCECodeVerifierRejected."""
    party = ctx.first
    pushed, code = authorized_code(ctx, party)
    ctx.step(f"token ({party.client_id}, another code_verifier)")
    flows.check_token_error(
        ctx,
        party.token(code, pushed, code_verifier=random_verifier()),
        flows.refused_with("invalid_grant", invalid_client_401=False),
        accepted="tokens were issued for a wrong code_verifier (RFC 7636 4.6, FAPI2-SP-FINAL-5.3.2.2-5)",
    )
    ctx.fact("pkce_verifier_checked", True)


@module(PREFIX + "par-plain-pkce-rejected", "FAPI2-SP-FINAL-5.3.2.2-5, RFC 7636 4.4.1")
def pkce_plain(ctx: Context) -> None:
    """A pushed request with plain PKCE is refused with invalid_request. The challenge is the
    verifier, code_challenge_method=plain; the refusal may come at PAR or at the authorization
    endpoint (an error page is accepted). Suite: FAPI2SPFinalPAREnsurePlainPKCERejected."""
    party = ctx.first
    verifier = random_verifier()
    ctx.step(f"PAR ({party.client_id}, plain PKCE)")
    pushed = party.par(code_challenge=verifier, code_challenge_method="plain", code_verifier=verifier)
    ctx.fact("pkce_plain_refused_at", expect_refused_request(ctx, party, pushed, errors={"invalid_request"}))
