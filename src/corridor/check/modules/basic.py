"""Discovery, the happy flow and the user's refusal: the suite's well-behaved-client modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corridor.check import flows
from corridor.check.module import Context, module
from corridor.check.modules import sender
from corridor.check.outcome import Landing
from corridor.check.session import Tokens
from corridor.core.jose import FAPI_ALGORITHMS

MTLS_METHODS = {"tls_client_auth", "self_signed_tls_client_auth"}
ALLOWED_AUTH = {"private_key_jwt", *MTLS_METHODS}


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def auth_method_problems(ctx: Context, meta: Mapping[str, Any]) -> list[str]:
    """token_endpoint_auth_methods_supported: the variant's method, and only FAPI ones."""
    problems = []
    auth_methods = _strings(meta.get("token_endpoint_auth_methods_supported")) or []
    if ctx.variant.client_auth == "private_key_jwt" and "private_key_jwt" not in auth_methods:
        problems.append(
            "token_endpoint_auth_methods_supported lacks private_key_jwt (FAPI2-SP-FINAL-5.3.2.1-6)"
        )
    if ctx.variant.client_auth == "mtls" and not MTLS_METHODS & set(auth_methods):
        problems.append(
            "token_endpoint_auth_methods_supported lacks an mTLS method (FAPI2-SP-FINAL-5.3.2.1-6)"
        )
    others = [m for m in auth_methods if m not in ALLOWED_AUTH]
    if others:
        problems.append(
            f"token_endpoint_auth_methods_supported offers {', '.join(others)} (FAPI2-SP-FINAL-5.3.2.1-6)"
        )
    return problems


def algorithm_problems(meta: Mapping[str, Any], names: tuple[str, ...]) -> list[str]:
    """Each of these metadata members, when present, a list of FAPI algorithms only (FAPI2 5.4.1-1)."""
    problems = []
    for name in names:
        listed = _strings(meta.get(name))
        if meta.get(name) is not None and listed is None:
            problems.append(f"{name} is not a list of strings")
        bad = [a for a in listed or [] if a not in FAPI_ALGORITHMS]
        if bad:
            problems.append(f"{name} offers {', '.join(bad)} (FAPI2-SP-FINAL-5.4.1-1)")
    return problems


@module(
    "fapi2-security-profile-final-discovery-end-point-verification",
    "FAPI2-SP-FINAL-5.3.2.1-1, RFC 8414 2/3, OIDC Discovery 3/4",
)
def discovery(ctx: Context) -> None:
    """The server's metadata has what FAPI 2.0 needs: the issuer exactly, PAR, S256, iss in
    responses, only code, only FAPI client authentication methods and algorithms, and the
    variant's sender constraint (the suite's FAPI2SPFinalDiscoveryEndpointVerification;
    FAPI2 5.3.2.1-1, RFC 8414 2)."""
    meta = ctx.server.metadata
    problems: list[str] = []
    if meta.get("issuer") != ctx.server.issuer:
        problems.append("issuer is not the configured issuer (RFC 8414 3.3)")
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "pushed_authorization_request_endpoint",
    ):
        value = meta.get(name)
        if not isinstance(value, str) or not value.startswith("https://"):
            problems.append(f"{name} is missing or not https (RFC 8414 2, RFC 9126 5)")
    if (
        _strings(meta.get("response_types_supported")) is None
        or "code" not in meta["response_types_supported"]
    ):
        problems.append("response_types_supported lacks code (FAPI2-SP-FINAL-5.3.2.2-1)")
    methods = _strings(meta.get("code_challenge_methods_supported")) or []
    if "S256" not in methods:
        problems.append("code_challenge_methods_supported lacks S256 (FAPI2-SP-FINAL-5.3.2.2-5)")
    if meta.get("authorization_response_iss_parameter_supported") is not True:
        problems.append("authorization_response_iss_parameter_supported is not true (RFC 9207 3)")
    problems += auth_method_problems(ctx, meta)
    for name in (
        "token_endpoint_auth_signing_alg_values_supported",
        "id_token_signing_alg_values_supported",
        "dpop_signing_alg_values_supported",
    ):
        algs = meta.get(name)
        if algs is None:
            continue
        listed = _strings(algs)
        if listed is None:
            problems.append(f"{name} is not a list of strings")
            continue
        if name == "token_endpoint_auth_signing_alg_values_supported" and ctx.variant.client_auth == "mtls":
            continue
        bad = [a for a in listed if a not in FAPI_ALGORITHMS]
        if bad:
            problems.append(f"{name} offers {', '.join(bad)} (FAPI2-SP-FINAL-5.4.1-1)")
    if ctx.variant.signed or ctx.variant.jarm:
        # FAPI2-MS-FINAL 5.3/5.4 with FAPI2 5.4.1-1: signed requests and responses use the
        # FAPI algorithms only (the suite's discovery module checks no Message Signing metadata).
        problems += algorithm_problems(
            meta,
            ("request_object_signing_alg_values_supported", "authorization_signing_alg_values_supported"),
        )
    if ctx.variant.jarm:
        modes = _strings(meta.get("response_modes_supported"))
        if modes is not None and not {"jwt", "query.jwt"} & set(modes):
            problems.append("response_modes_supported lacks jwt (FAPI2-MS-FINAL-5.4.1, JARM 3)")
    if ctx.variant.sender == "dpop" and _strings(meta.get("dpop_signing_alg_values_supported")) is None:
        problems.append("dpop_signing_alg_values_supported is missing (RFC 9449 5.1)")
    if ctx.variant.sender == "mtls" and meta.get("tls_client_certificate_bound_access_tokens") is not True:
        problems.append("tls_client_certificate_bound_access_tokens is not true (RFC 8705 3.3)")
    grants = _strings(meta.get("grant_types_supported"))
    if grants is not None:
        if "authorization_code" not in grants:
            problems.append("grant_types_supported lacks authorization_code")
        if "password" in grants:
            problems.append("grant_types_supported offers password (FAPI2-SP-FINAL-5.3.2.1-2)")
        if "implicit" in grants:
            problems.append("grant_types_supported offers implicit (FAPI2-SP-FINAL-5.3.2.2-1)")
    scopes = meta.get("scopes_supported")
    if scopes is not None and _strings(scopes) is None:
        problems.append("scopes_supported is not a list of strings (RFC 8414 2)")
    listed_scopes = _strings(scopes)
    if ctx.variant.openid and listed_scopes is not None and "openid" not in listed_scopes:
        problems.append("scopes_supported lacks openid (OIDC Discovery 3)")
    if meta.get("require_pushed_authorization_requests") is not True:
        ctx.warn(
            "require_pushed_authorization_requests is not true (RFC 9126 5; FAPI2 5.3.2.2-3 requires PAR)"
        )
    if problems:
        ctx.fail("; ".join(problems[:4]) + (f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""))


@module("fapi2-security-profile-final-happy-flow", "FAPI2-SP-FINAL-5.3.2.2, 5.3.2.1-4/5, RFC 9207")
def happy_flow(ctx: Context) -> None:
    """Both clients complete an authorization code flow with PAR, PKCE and sender-constrained
    tokens, and call the resource; every response passes the suite's checks. The resource
    refuses the first client's token in the query (DisallowAccessTokenInQuery, FAPI2 5.3.4-2)
    and the second client's token with the first client's key or certificate (RFC 8705 3,
    RFC 9449 7.1); the second client binds its code by dpop_jkt (RFC 9449 10.1). The suite's
    FAPI2SPFinalHappyFlow; FAPI2 5.3.2.2, 5.3.2.1-4/5."""
    issued: list[Tokens] = []
    for party in (ctx.first, ctx.second):
        par: dict[str, Any] = {}
        if party is ctx.second and ctx.variant.sender == "dpop":
            # The second client binds its code by dpop_jkt alone (RFC 9449 10.1), as the suite's.
            par["dpop_jkt"] = sender.thumbprint(party.dpop_key)
        _, tokens = flows.code_flow(ctx, party, par=par)
        if party is ctx.first and flows.has_resource(ctx):
            sender.refuse_token_in_query(ctx, party, tokens)  # DisallowAccessTokenInQuery
        issued.append(tokens)
    if flows.has_resource(ctx):
        sender.refuse_other_clients_token(ctx, ctx.first, issued[1])
    ctx.fact("happy_flow", True)


@module(
    "fapi2-security-profile-final-user-rejects-authentication", "FAPI2-SP-FINAL-5.3.2.2-7, RFC 6749 4.1.2.1"
)
def user_rejects(ctx: Context) -> None:
    """The user denies: the server redirects back with error=access_denied, the state and
    iss (RFC 9207: iss on error responses too), or shows an error page (the suite's
    FAPI2SPFinalUserRejectsAuthentication; FAPI2 5.3.2.2-7, RFC 6749 4.1.2.1)."""
    party = ctx.first
    pushed = flows.push(ctx, party)
    result = ctx.authorize(party, pushed, approve=False)
    if result.landing is Landing.SUCCESS:
        ctx.fail("the server issued a code although the user denied")
    if result.landing is Landing.SERVER_ERROR:
        ctx.fail(f"the server failed when the user denied (HTTP {result.status})")
    if result.landing is Landing.ERROR_PAGE:
        ctx.warn("the server showed an error page instead of redirecting back with access_denied")
        return
    if result.landing is Landing.FOREIGN_REDIRECT:
        ctx.fail(f"after the user denied, {result.describe()}")
    if result.landing is Landing.INTERACTION:
        ctx.fail("the user agent was left on a sign-in or consent page after denying")
    flows.check_response_common(ctx, pushed, result)
    if result.error != "access_denied":
        ctx.fail(f"error={result.error!r} after the user denied, expected access_denied (RFC 6749 4.1.2.1)")
