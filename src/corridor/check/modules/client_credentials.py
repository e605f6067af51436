"""The client credentials plan (the suite's
``fapi2-security-profile-final-client-credentials-grant-test-plan``,
``fapi_profile=fapi_client_credentials_grant``, plain OAuth): the modules of the Security Profile
plan that do not need PAR, a user or a code, with the token obtained by RFC 6749 4.4. They
carry the suite's names and pass conditions; the suite's profile-specific discovery checks
(ClientCredentialsOnlyDiscoveryEndpointChecks) replace the code-flow ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from corridor.check import flows
from corridor.check.config import CLIENT_CREDENTIALS
from corridor.check.module import MODULES, Context, module
from corridor.check.modules import sender, token
from corridor.check.modules.basic import _strings, algorithm_problems, auth_method_problems
from corridor.check.modules.requests import invert_case
from corridor.check.session import Party, Tokens

PREFIX = "fapi2-security-profile-final-"


def client_credentials_module(
    name: str, clause: str
) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register a module of this plan under the suite's name."""
    return module(PREFIX + name, clause, profile=CLIENT_CREDENTIALS)


def tokens_of(ctx: Context, party: Party) -> Tokens:
    """RFC 6749 4.4 with the suite's token response checks (no ID token: plain OAuth); a refresh
    token is a WARNING (RFC 6749 4.4.3: it SHOULD NOT be included)."""
    ctx.step(f"token ({party.client_id}, client credentials)")
    tokens = flows.check_token_success(ctx, party, party.client_credentials(), None)
    if tokens.refresh_token is not None:
        ctx.warn("a refresh token was issued with the client credentials grant (RFC 6749 4.4.3: SHOULD NOT)")
    flows.record_algorithms(ctx, party)
    return tokens


@client_credentials_module(
    "discovery-end-point-verification", "FAPI2-SP-FINAL-5.3.2.1-1, RFC 8414 2/3, RFC 6749 4.4"
)
def discovery(ctx: Context) -> None:
    """The server's metadata has what a client credentials client needs under FAPI 2.0: the
    issuer exactly, an https token endpoint and JWKS, client_credentials among the grant types,
    only FAPI client authentication methods and algorithms, and the variant's sender constraint
    (the suite's FAPI2SPFinalDiscoveryEndpointVerification with ClientCredentialsOnlyDiscoveryEndpointChecks;
    FAPI2 5.3.2.1-1, RFC 8414 2)."""
    meta = ctx.server.metadata
    problems: list[str] = []
    if meta.get("issuer") != ctx.server.issuer:
        problems.append("issuer is not the configured issuer (RFC 8414 3.3)")
    for name in ("token_endpoint", "jwks_uri"):
        value = meta.get(name)
        if not isinstance(value, str) or not value.startswith("https://"):
            problems.append(f"{name} is missing or not https (RFC 8414 2)")
    grants = _strings(meta.get("grant_types_supported"))
    # RFC 8414 2: an absent grant_types_supported means ["authorization_code", "implicit"].
    if grants is None or "client_credentials" not in grants:
        problems.append("grant_types_supported lacks client_credentials (RFC 8414 2, RFC 6749 4.4)")
    elif "password" in grants:
        problems.append("grant_types_supported offers password (FAPI2-SP-FINAL-5.3.2.1-2)")
    problems += auth_method_problems(ctx, meta)
    problems += algorithm_problems(
        meta, ("token_endpoint_auth_signing_alg_values_supported", "dpop_signing_alg_values_supported")
    )
    if ctx.variant.sender == "dpop" and _strings(meta.get("dpop_signing_alg_values_supported")) is None:
        problems.append("dpop_signing_alg_values_supported is missing (RFC 9449 5.1)")
    if ctx.variant.sender == "mtls" and meta.get("tls_client_certificate_bound_access_tokens") is not True:
        problems.append("tls_client_certificate_bound_access_tokens is not true (RFC 8705 3.3)")
    if problems:
        ctx.fail("; ".join(problems[:4]) + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""))


@client_credentials_module("happy-flow", "RFC 6749 4.4, FAPI2-SP-FINAL-5.3.2.1-4/5/6")
def happy_flow(ctx: Context) -> None:
    """Both clients get a sender-constrained access token with the client credentials grant
    and, when a resource is configured, call it; the resource refuses the second client's token
    with the first client's DPoP key or certificate (RFC 9449 7.1, RFC 8705 3). The suite's
    FAPI2SPFinalHappyFlow in the fapi_client_credentials_grant profile."""
    issued = [tokens_of(ctx, party) for party in (ctx.first, ctx.second)]
    if flows.has_resource(ctx):
        for party, tokens in zip((ctx.first, ctx.second), issued, strict=True):
            ctx.step(f"resource ({party.client_id})")
            flows.check_resource_success(ctx, party.call_resource(tokens))
        sender.refuse_other_clients_token(ctx, ctx.first, issued[1])
    ctx.fact("client_credentials", True)
    ctx.fact("happy_flow", True)


@client_credentials_module("access-token-type-header-case-sensitivity", "RFC 9110 11.1")
def token_type_case(ctx: Context) -> None:
    """The resource accepts a client credentials token with the authentication scheme in
    another letter case (the suite's FAPI2SPFinalAccessTokenTypeHeaderCaseSensitivity)."""
    if not flows.has_resource(ctx):
        ctx.skip("no resource configured: nothing to call (UserInfo needs a user's openid token)")
    party = ctx.first
    tokens = tokens_of(ctx, party)
    scheme = invert_case(tokens.token_type)
    ctx.step(f"resource with the scheme {scheme}")
    flows.check_resource_success(ctx, party.call_resource(tokens, scheme=scheme))


@client_credentials_module(
    "ensure-holder-of-key-required",
    "FAPI2-SP-FINAL-5.3.2.1-4, FAPI2-SP-FINAL-5.3.2.1-5, RFC 9449 5, RFC 8705 3",
)
def holder_of_key_required(ctx: Context) -> None:
    """A client credentials request without the sender-constraining mechanism (DPoP: no
    proof; mTLS: no client certificate) is refused, never answered with a bearer token
    (FAPI2SPFinalEnsureHolderOfKeyRequired; FAPI2 5.3.2.1-4/5)."""
    party = ctx.first
    if ctx.variant.sender == "dpop":
        ctx.step(f"token ({party.client_id}): client credentials, no DPoP proof")
        response = party.client_credentials(dpop=False)
        missing = "a DPoP proof"
    else:
        ctx.step(f"token ({party.client_id}): client credentials, no client certificate")
        missing = "a client certificate"
        try:
            response = party.client_credentials(certificate=False)
        except sender._TLS_REFUSALS as exc:
            ctx.note(f"the TLS connection was refused without a certificate ({type(exc).__name__})")
            ctx.fact("holder_of_key_enforced", True)
            return
    sender.check_holder_of_key_refused(ctx, response, missing)
    ctx.fact("holder_of_key_enforced", True)


# The suite runs its DPoP proof time modules and its client assertion modules under this
# profile too, unchanged but for the token request (modules/sender.py's run_flow and
# modules/token.py make it a client credentials request in this profile).
for _shared_module in (
    sender.check_dpop_proof_nbf_exp,
    sender.dpop_iat_10_seconds_before,
    sender.dpop_iat_10_seconds_after,
    token.assertion_rs256,
    token.assertion_required,
    token.assertion_expired,
    token.assertion_wrong_aud,
    token.assertion_without_sub,
):
    _spec = next(spec for spec in MODULES if spec.run is _shared_module)
    MODULES.append(dataclasses.replace(_spec, profile=CLIENT_CREDENTIALS))
