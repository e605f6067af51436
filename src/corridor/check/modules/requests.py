# Why over 450 lines: one file per group of the OIDF test plan (here: the authorization
# request and PAR refusals); each module is a short function, and the group reads as the suite's
# list in the suite's order.
"""The suite's modules about the authorization request itself: optional and oversized
``state``/``nonce``, values inside (pushed) and outside (front channel) the request, missing or
unregistered ``redirect_uri``, forbidden response types, requests that skip PAR, the life and
binding of a ``request_uri``, the PAR endpoint's refusals, and refresh tokens.

Outcomes follow the suite: a request that must be refused may be refused at PAR (400 with the
expected error) or at the authorization endpoint, by an error page (the suite asks for a
screenshot; we accept it and say so in a note) or by an error redirect with the expected error;
a code is a FAIL. Every error redirect is also held to RFC 9207 (``iss`` on error responses too)
and to OAuth 2.0 Multiple Response Types 5 (no error in the fragment)."""

from __future__ import annotations

import dataclasses
import json
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from corridor.check import flows, jwt
from corridor.check.module import Context, module, openid_only
from corridor.check.outcome import EndpointAnswer, FrontChannelResult, Landing
from corridor.check.refusals import (
    check_error_redirect,
    check_par_refusal,
    check_refused_at_authorization_endpoint,
    error_page_accepted,
    expect_refused_request,
    response_parameters,
)
from corridor.check.session import Party, Pushed, Tokens, new_state, new_verifier, s256

_ALPHANUMERIC = string.ascii_letters + string.digits
#: CheckForUnexpectedParametersInErrorResponseFromAuthorizationEndpoint (OIDC Core 3.1.2.6, RFC 9207).
#: RFC 6749 A.12/A.17 (VSCHAR): what an access or refresh token may be made of.
_VSCHAR = frozenset(chr(c) for c in range(0x20, 0x7F))
#: RFC 6749 5.2: the characters an ``error`` value may use (%x20-21 / %x23-5B / %x5D-7E).


def suite_value(length: int) -> str:
    """A state or nonce as the suite makes them (CreateRandomStateValue/CreateRandomNonceValue):
    alphanumeric, and when longer than 10 characters ending in ``-._~`` so that every URL-safe
    character is exercised."""
    if length > 10:
        return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length - 4)) + "-._~"
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def scope_of(party: Party) -> str:
    """The scope the party asks for in this variant (as :meth:`Party.par` sends it)."""
    scope = list(party.config.scope)
    if not party.variant.openid:
        scope = [s for s in scope if s != "openid"]
    elif "openid" not in scope:
        scope.insert(0, "openid")
    return " ".join(scope)


def finish_flow(
    ctx: Context,
    party: Party,
    pushed: Pushed,
    result: FrontChannelResult,
    *,
    call_resource: bool = True,
    **token_params: Any,
) -> Tokens:
    """The rest of a successful flow with the suite's checks: the authorization response, the
    token request and response, and a resource call."""
    code = flows.check_authorization_success(ctx, party, pushed, result)
    ctx.step(f"token ({party.client_id})")
    tokens = flows.check_token_success(ctx, party, party.token(code, pushed, **token_params), pushed)
    if call_resource and flows.has_resource(ctx):
        ctx.step("resource")
        flows.check_resource_success(ctx, party.call_resource(tokens))
    return tokens


# -- state and nonce -----------------------------------------------------------------------------


@module(
    "fapi2-security-profile-final-ensure-authorization-request-without-state-success",
    "RFC 6749 4.1.1 (state is optional), FAPI2-SP-FINAL-5.3.2.2 Note 4",
)
def without_state(ctx: Context) -> None:
    """A pushed request without state succeeds, and no state comes back (the suite's
    FAPI2SPFinalEnsureAuthorizationRequestWithoutStateSuccess; FAPI2 5.3.2.2 Note 4: PKCE, not
    state, protects against CSRF)."""
    flows.code_flow(ctx, ctx.first, par={"state": None})


@module(
    "fapi2-security-profile-final-ensure-authorization-request-without-nonce-success",
    "OIDC Core 3.1.2.1 (nonce is optional for the code flow)",
    applies=openid_only,
)
def without_nonce(ctx: Context) -> None:
    """An openid request without nonce succeeds and the ID token has no nonce (the suite's
    FAPI2SPFinalEnsureAuthorizationRequestWithoutNonceSuccess; OIDC Core 3.1.2.1)."""
    flows.code_flow(ctx, ctx.first, par={"nonce": None})


@module(
    "fapi2-security-profile-final-ensure-authorization-request-with-64-char-nonce-success",
    "FAPI2-SP-FINAL-5.3.2.2-14",
    applies=openid_only,
)
def nonce_64(ctx: Context) -> None:
    """A 64-character nonce is accepted and comes back unchanged in the ID token (the suite's
    FAPI2SPFinalEnsureAuthorizationRequestWith64CharNonceSuccess; FAPI2 5.3.2.2-14)."""
    flows.code_flow(ctx, ctx.first, par={"nonce": suite_value(64)})


@module("fapi2-security-profile-final-ensure-other-scope-order-succeeds", "RFC 6749 3.3", applies=openid_only)
def other_scope_order(ctx: Context) -> None:
    """The scope in reverse order succeeds: the order of scope values does not matter (the
    suite's FAPI2SPFinalEnsureOtherScopeOrderSucceeds; RFC 6749 3.3)."""
    flows.code_flow(ctx, ctx.first, par={"scope": " ".join(reversed(scope_of(ctx.first).split()))})


# -- the claims parameter (OIDC Core 5.5) ----------------------------------------------------------

#: OIDC Core 5.1, as the suite lists them.
STANDARD_CLAIMS = (
    "sub",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
)
#: ID token members that are not identity claims (ValidateIdTokenStandardClaims).
ID_TOKEN_MEMBERS = frozenset(
    {"iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "c_hash", "at_hash", "s_hash"}
    | {"jti", "nbf", "verified_claims", "sid", "sid_hash"}
)
_BOOLEAN_CLAIMS = frozenset({"email_verified", "phone_number_verified"})
_EXTRA_CLAIMS = frozenset({"_claim_names", "_claim_sources", "txn"})


def claim_requests(names: list[str]) -> dict[str, Any]:
    """OIDC Core 5.5.1: every form of an individual claim request in turn (null, {}, essential
    true, an unknown member that must be ignored, essential false), as the suite does."""
    forms: list[Callable[[], Any]] = [
        lambda: None,
        lambda: {},
        lambda: {"essential": True},
        lambda: {suite_value(10): suite_value(10)},
        lambda: {"essential": False},
    ]
    return {name: forms[i % len(forms)]() for i, name in enumerate(names)}


def claim_problem(name: str, value: Any) -> str | None:
    """AbstractValidateOpenIdStandardClaims: the type OIDC Core 5.1 gives each standard claim."""
    if name in _BOOLEAN_CLAIMS:
        return None if isinstance(value, bool) else "is not a boolean"
    if name == "updated_at":
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "is not a number"
    if name == "address":
        if not isinstance(value, dict):
            return "is not a JSON object"
        bad = [k for k, v in value.items() if not (isinstance(v, str) and v.strip())]
        return f"has members that are not strings: {', '.join(bad)}" if bad else None
    if name in ("_claim_names", "_claim_sources"):
        return None if isinstance(value, dict) else "is not a JSON object"
    if not isinstance(value, str) or not value.strip() or value.strip().lower() == "null":
        return "is not a string with content"
    if name == "birthdate" and not _birthdate_ok(value):
        return "is not YYYY-MM-DD, 0000-MM-DD or YYYY"
    return None


def _birthdate_ok(value: str) -> bool:
    import datetime

    if len(value) == 4 and value.isdigit():
        return 1850 <= int(value) <= datetime.date.today().year
    try:
        if value.startswith("0000-"):
            datetime.date.fromisoformat("2000" + value[4:])
            return True
        parsed = datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10 and 1850 <= parsed.year <= datetime.date.today().year


def _check_claims(ctx: Context, claims: Mapping[str, Any], where: str) -> list[str]:
    """Type-check the standard claims (FAIL); return the names the suite does not know."""
    unknown = []
    for name, value in claims.items():
        if name in STANDARD_CLAIMS or name in _EXTRA_CLAIMS:
            problem = claim_problem(name, value)
            if problem:
                ctx.fail(f"{name} in the {where} {problem} (OIDC Core 5.1)")
        else:
            unknown.append(name)
    return unknown


@module(
    "fapi2-security-profile-final-test-claims-parameter-identity-claims",
    "OIDC Core 5.5, 5.1, 5.3.2",
    applies=openid_only,
)
def claims_parameter(ctx: Context) -> None:
    """Identity claims asked for with the claims parameter come back in the ID token or from
    userinfo (the suite's FAPI2SPFinalTestClaimsParameterIdentityClaims; OIDC Core 5.5): skipped
    unless the server advertises claims_parameter_supported and standard claims."""
    meta = ctx.server.metadata
    supported = meta.get("claims_parameter_supported")
    if supported is not None and not isinstance(supported, bool):
        ctx.fail("claims_parameter_supported in the metadata is not a boolean (OIDC Discovery 3)")
    if not supported:
        ctx.skip(
            "the server does not advertise claims_parameter_supported (permitted), so the claims "
            "parameter cannot be tested"
        )
    listed = meta.get("claims_supported")
    if listed is not None and not (isinstance(listed, list) and all(isinstance(c, str) for c in listed)):
        ctx.fail("claims_supported in the metadata is not an array of strings (OIDC Discovery 3)")
    standard = [c for c in (listed or []) if c in STANDARD_CLAIMS]
    if not standard:
        ctx.skip(
            "claims_supported lists no standard OpenID Connect claims (permitted), so claims cannot be tested"
        )
    requested = {
        "id_token": claim_requests(standard),
        "userinfo": claim_requests(standard),
        # OIDC Core 5.5: members that are not understood must be ignored.
        suite_value(10): {suite_value(10): None},
    }
    party = ctx.first
    pushed = flows.push(ctx, party, claims=json.dumps(requested))
    result = ctx.authorize(party, pushed)
    tokens = finish_flow(ctx, party, pushed, result, call_resource=False)
    assert tokens.id_token is not None  # check_token_success insists on it for openid
    id_claims = jwt.decode_unverified(tokens.id_token)[1]
    identity = {k: v for k, v in id_claims.items() if k not in ID_TOKEN_MEMBERS}
    unknown_in_id_token = _check_claims(ctx, identity, "ID token")
    userinfo_url = meta.get("userinfo_endpoint")
    if isinstance(userinfo_url, str) and userinfo_url:
        ctx.step("userinfo")
        response = party.call_resource(tokens, url=userinfo_url)
        if response.status_code != 200:
            ctx.fail(f"userinfo answered HTTP {response.status_code}, 200 was expected (OIDC Core 5.3.2)")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            ctx.fail(f"userinfo answered {content_type!r}, not application/json (OIDC Core 5.3.2)")
        userinfo = EndpointAnswer.of(response).body
        unknown = _check_claims(ctx, userinfo, "userinfo response")
        if unknown:
            ctx.warn(
                f"the userinfo response has claims the suite does not know: {', '.join(sorted(unknown))}"
            )
        if not isinstance(userinfo.get("sub"), str):
            ctx.fail("the userinfo response has no sub (OIDC Core 5.3.2)")
        updated_at = userinfo.get("updated_at")
        if isinstance(updated_at, (int, float)) and not 631152000 <= updated_at <= ctx.clock() + 300:
            ctx.fail("updated_at in the userinfo response is before 1990 or in the future (OIDC Core 5.1)")
        if userinfo.get("sub") != id_claims.get("sub"):
            ctx.fail("the userinfo sub is not the ID token's sub (OIDC Core 5.3.2)")
        for name, value in userinfo.items():
            if name in identity and identity[name] != value:
                ctx.fail(f"{name} differs between the ID token and the userinfo response")
            identity[name] = value
    missing = sorted(set(requested["userinfo"]) - set(identity))
    if missing:
        ctx.warn(
            f"claims listed in claims_supported and requested were not returned: {', '.join(missing)} "
            "(OIDC Core 5.5; check the test user has them and consent covers them)"
        )
    if unknown_in_id_token:
        ctx.warn(f"the ID token has claims the suite does not know: {', '.join(sorted(unknown_in_id_token))}")


# -- the token type at the resource ------------------------------------------------------------------


def invert_case(text: str) -> str:
    """SetAccessTokenTypeToInvertedCase: ``DPoP`` becomes ``dpOp``, ``Bearer`` ``bEARER``."""
    return text.swapcase()


@module("fapi2-security-profile-final-access-token-type-header-case-sensitivity", "RFC 9110 11.1")
def token_type_case(ctx: Context) -> None:
    """The resource accepts the token with the authentication scheme in another letter case:
    scheme names are case-insensitive (the suite's FAPI2SPFinalAccessTokenTypeHeaderCaseSensitivity;
    RFC 9110 11.1)."""
    if not flows.has_resource(ctx):
        ctx.skip("no resource configured and no userinfo_endpoint: nothing to call")
    party = ctx.first
    _, tokens = flows.code_flow(ctx, party, call_resource=False)
    scheme = invert_case(tokens.token_type)
    ctx.note(f"the resource was called with the scheme {scheme!r} (token_type {tokens.token_type!r})")
    ctx.step(f"resource with the scheme {scheme}")
    flows.check_resource_success(ctx, party.call_resource(tokens, scheme=scheme))


# -- values inside (pushed) and outside (front channel) the request ------------------------------------


def _inside_outside(ctx: Context, name: str) -> None:
    """The suite's Ensure Different {Nonce,State} Inside And Outside Request Object: the pushed
    request has one value, the front channel another. Refusing (invalid_request, or an error
    page) is fine; going on is fine if the pushed value is the one used (RFC 9101 5)."""
    party = ctx.first
    pushed = flows.push(ctx, party)
    outside = suite_value(10)
    url = (
        party.front_channel(pushed, nonce=outside)
        if name == "nonce"
        else party.front_channel(pushed, state=outside)
    )
    result = ctx.authorize(party, pushed, url=url)
    if result.landing is Landing.ERROR_PAGE:
        error_page_accepted(ctx, result, f"a different {name} on the front channel")
        return
    if result.landing is Landing.ERROR_REDIRECT:
        check_error_redirect(ctx, result, errors={"invalid_request"}, state=pushed.state)
        return
    # A code: the checks compare with the pushed state and nonce (the ID token's nonce too).
    finish_flow(ctx, party, pushed, result)


@module(
    "fapi2-security-profile-final-ensure-different-nonce-inside-and-outside-request-object",
    "RFC 9126 4, RFC 9101 5, OIDC Core 6.1",
    applies=openid_only,
)
def nonce_inside_outside(ctx: Context) -> None:
    """A nonce on the front channel that differs from the pushed one is refused or ignored: the
    ID token carries the pushed nonce (the suite's
    FAPI2SPFinalEnsureDifferentNonceInsideAndOutsideRequestObject; RFC 9101 5)."""
    _inside_outside(ctx, "nonce")


@module(
    "fapi2-security-profile-final-ensure-different-state-inside-and-outside-request-object",
    "RFC 9126 4, RFC 9101 5",
)
def state_inside_outside(ctx: Context) -> None:
    """A state on the front channel that differs from the pushed one is refused or ignored: the
    pushed state comes back (the suite's
    FAPI2SPFinalEnsureDifferentStateInsideAndOutsideRequestObject; RFC 9101 5)."""
    _inside_outside(ctx, "state")


def _long_value(ctx: Context, name: str, length: int) -> None:
    """The suite's long nonce/state modules: either the whole value is accepted and comes back
    unchanged, or the request is refused with invalid_request (at PAR: FAIL otherwise; at the
    authorization endpoint: WARNING otherwise)."""
    party = ctx.first
    ctx.step(f"PAR ({party.client_id})")
    value = suite_value(length)
    pushed = party.par(nonce=value) if name == "nonce" else party.par(state=value)
    if not 200 <= pushed.answer.status < 300:
        check_par_refusal(ctx, pushed, errors={"invalid_request"})
        ctx.note(f"PAR refused a {length}-character {name} with invalid_request")
        return
    flows.check_par_success(ctx, pushed)
    result = ctx.authorize(party, pushed)
    if result.landing is Landing.ERROR_PAGE:
        error_page_accepted(ctx, result, f"a {length}-character {name}")
        return
    if result.landing is Landing.ERROR_REDIRECT:
        check_error_redirect(ctx, result, errors={"invalid_request"}, state=pushed.state, error_warns=True)
        if name == "state":
            ctx.warn(
                "rejecting a state of this length may cause interoperability problems (FAPI2 5.3.2.2 Note 4)"
            )
        return
    finish_flow(ctx, party, pushed, result)


@module(
    "fapi2-security-profile-final-ensure-authorization-request-with-long-nonce",
    "FAPI2-SP-FINAL-5.3.2.2-14",
    applies=openid_only,
)
def long_nonce(ctx: Context) -> None:
    """A 384-character nonce is either used whole (never truncated) or refused with
    invalid_request (the suite's FAPI2SPFinalEnsureAuthorizationRequestWithLongNonce; FAPI2
    5.3.2.2-14: longer than 64 may be refused)."""
    _long_value(ctx, "nonce", 384)


@module(
    "fapi2-security-profile-final-ensure-authorization-request-with-long-state",
    "FAPI2-SP-FINAL-5.3.2.2 Note 4",
)
def long_state(ctx: Context) -> None:
    """A 1000-character state comes back unchanged (refusing it with invalid_request is only
    warned about) (the suite's FAPI2SPFinalEnsureAuthorizationRequestWithLongState; FAPI2
    5.3.2.2 Note 4)."""
    _long_value(ctx, "state", 1000)


@module("fapi2-security-profile-final-state-only-outside-request-object-not-used", "RFC 9126 4, RFC 9101 5")
def state_only_outside(ctx: Context) -> None:
    """A pushed request without state and a state on the front channel: the outside state is
    not used (no state comes back), or the request is refused (the suite's
    FAPI2SPFinalStateOnlyOutsideRequestObjectNotUsed; RFC 9101 5)."""
    party = ctx.first
    pushed = flows.push(ctx, party, state=None)
    outside = suite_value(10)
    result = ctx.authorize(party, pushed, url=party.front_channel(pushed, state=outside))
    if result.landing is Landing.ERROR_PAGE:
        error_page_accepted(ctx, result, "a state only on the front channel")
        return
    if result.landing is Landing.ERROR_REDIRECT:
        # The suite compares the state only when one comes back (with the one that was sent).
        params = response_parameters(ctx, result)
        check_error_redirect(
            ctx,
            result,
            errors={"invalid_request", "invalid_request_object", "invalid_request_uri", "access_denied"},
            state=outside,
            check_state="state" in params,
        )
        return
    finish_flow(ctx, party, pushed, result)


# -- redirect_uri -----------------------------------------------------------------------------------


@module(
    "fapi2-security-profile-final-ensure-request-object-without-redirect-uri-fails",
    "FAPI2-SP-FINAL-5.3.2.2-6",
)
def par_without_redirect_uri(ctx: Context) -> None:
    """A pushed request without redirect_uri (the front channel still has it, as the suite
    sends it) is refused: at PAR, or at the authorization endpoint (the suite's
    FAPI2SPFinalEnsureRequestObjectWithoutRedirectUriFails; FAPI2 5.3.2.2-6)."""
    party = ctx.first
    ctx.step(f"PAR ({party.client_id})")
    pushed = party.par(redirect_uri=None)
    expect_refused_request(
        ctx,
        party,
        pushed,
        par_errors={"invalid_request", "invalid_request_object"},
        errors={"invalid_request", "invalid_request_object"},
        what="a pushed request without redirect_uri",
        url=party.front_channel(pushed, redirect_uri=party.config.redirect_uri),
        redirect_uri=party.config.redirect_uri,
    )


def unregistered_redirect_uri(registered: str) -> str:
    """The registered redirect URI with a random path segment appended (CreateBadRedirectUriByAppending)."""
    parts = urlsplit(registered)
    path = parts.path.rstrip("/") + "/" + suite_value(10)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


@module("fapi2-security-profile-final-plain-fapi-tolerate-unregistered-redirect-uri", "RFC 9126 2.4")
def tolerate_unregistered_redirect_uri(ctx: Context) -> None:
    """An unregistered redirect_uri in a pushed request is refused (PAR: invalid_request, or
    an error page), or, as RFC 9126 2.4 allows for authenticated PAR, used: the code then comes to
    that URI, never an error (the suite's FAPI2SPFinalTolerateUnregisteredRedirectUri)."""
    party = ctx.first
    bad = unregistered_redirect_uri(party.config.redirect_uri)
    ctx.step(f"PAR ({party.client_id})")
    pushed = party.par(redirect_uri=bad)
    if not 200 <= pushed.answer.status < 300:
        check_par_refusal(ctx, pushed, errors={"invalid_request", "invalid_request_object"})
        return
    flows.check_par_success(ctx, pushed)
    result = ctx.authorize(party, pushed, redirect_uri=bad)
    if result.landing is Landing.ERROR_PAGE:
        error_page_accepted(ctx, result, "an unregistered redirect_uri")
        return
    if result.landing is Landing.ERROR_REDIRECT:
        ctx.fail(
            f"the server redirected an error (error={result.error}) to the unregistered redirect_uri; "
            "once it accepted the URI the flow must succeed there (RFC 9126 2.4)"
        )
    finish_flow(ctx, party, pushed, result)


@module(
    "fapi2-security-profile-final-ensure-redirect-uri-in-authorization-request",
    "FAPI2-SP-FINAL-5.3.2.2-6, RFC 6749 3.1.2.3",
)
def redirect_uri_in_authorization_request(ctx: Context) -> None:
    """A request without redirect_uri anywhere is refused (PAR: invalid_request, or an error
    page), or served with the single registered redirect URI as the default (the suite's
    FAPI2SPFinalEnsureRedirectUriInAuthorizationRequest; FAPI2 5.3.2.2-6 requires refusal)."""
    party = ctx.first
    ctx.step(f"PAR ({party.client_id})")
    pushed = party.par(redirect_uri=None)
    if not 200 <= pushed.answer.status < 300:
        check_par_refusal(ctx, pushed, errors={"invalid_request", "invalid_request_object"})
        return
    flows.check_par_success(ctx, pushed)
    # The front channel carries no redirect_uri either (it was in neither request).
    result = ctx.authorize(party, pushed, redirect_uri=party.config.redirect_uri)
    if result.landing is Landing.ERROR_PAGE:
        error_page_accepted(ctx, result, "a request without redirect_uri")
        return
    finish_flow(ctx, party, pushed, result, redirect_uri=party.config.redirect_uri)


# -- PAR is mandatory; response types -----------------------------------------------------------------


def unpushed_request(party: Party) -> tuple[dict[str, str], str]:
    """Everything a pushed request would carry, for the front channel instead (no client
    authentication: that is not a front-channel parameter), and the PKCE verifier."""
    verifier = new_verifier()
    params = {
        "client_id": party.client_id,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "redirect_uri": party.config.redirect_uri,
        "response_type": "code",
        "scope": scope_of(party),
        "state": new_state(),
    }
    if party.variant.openid:
        params["nonce"] = new_state()
    if party.variant.jarm:
        params["response_mode"] = "jwt"
    return params, verifier


@module(
    "fapi2-security-profile-final-ensure-unsigned-authorization-request-without-using-par-fails",
    "FAPI2-SP-FINAL-5.3.2.2-3",
)
def unpushed_request_fails(ctx: Context) -> None:
    """An authorization request with all its parameters on the front channel and no
    request_uri yields no code: an error page or invalid_request (the suite's
    FAPI2SPFinalEnsureUnsignedAuthorizationRequestWithoutUsingParFails; FAPI2 5.3.2.2-3)."""
    party = ctx.first
    params, _ = unpushed_request(party)
    endpoint = ctx.server.endpoint("authorization_endpoint")
    url = endpoint + ("&" if "?" in endpoint else "?") + urlencode(sorted(params.items()))
    ctx.step("authorization endpoint")
    result = ctx.response(
        party, ctx.browser().authorize(url, party.config.redirect_uri), party.config.redirect_uri
    )
    if result.landing in (Landing.ERROR_PAGE, Landing.ERROR_REDIRECT):
        ctx.fact("par_required_proven", True)
    # The suite compares the state only when one comes back.
    params_back = result.params if "error" in result.params else result.fragment
    check_refused_at_authorization_endpoint(
        ctx,
        result,
        errors={"invalid_request"},
        state=params["state"],
        check_state="state" in params_back,
        what="an unpushed authorization request",
    )


def _response_type_fails(ctx: Context, response_type: str) -> None:
    party = ctx.first
    ctx.step(f"PAR ({party.client_id})")
    pushed = party.par(response_type=response_type)
    expect_refused_request(
        ctx,
        party,
        pushed,
        par_errors={"unsupported_response_type", "invalid_request", "unauthorized_client"},
        errors={"unsupported_response_type", "invalid_request"},
        what=f"response_type={response_type}",
        par_any_4xx=True,
        par_error_warns=True,
        fragment_allowed=True,
    )


@module("fapi2-security-profile-final-ensure-response-type-code-idtoken-fails", "FAPI2-SP-FINAL-5.3.2.2-1")
def response_type_code_id_token(ctx: Context) -> None:
    """response_type=code id_token is refused: at PAR (4xx), by an error page, or by
    unsupported_response_type/invalid_request (the suite's FAPI2SPFinalEnsureResponseTypeCodeIdTokenFails;
    FAPI2 5.3.2.2-1: only code)."""
    _response_type_fails(ctx, "code id_token")


@module("fapi2-security-profile-final-ensure-response-type-token-fails", "FAPI2-SP-FINAL-5.3.2.2-1")
def response_type_token(ctx: Context) -> None:
    """response_type=token is refused: at PAR (4xx), by an error page, or by
    unsupported_response_type/invalid_request (the suite's FAPI2SPFinalEnsureResponseTypeTokenFails;
    FAPI2 5.3.2.2-1: only code)."""
    _response_type_fails(ctx, "token")


# -- refresh tokens (RFC 6749 6, FAPI2 5.3.2.1-9) -------------------------------------------------------


def _transport_refused(exc: httpx.HTTPError) -> bool:
    """A dropped TLS handshake is an acceptable refusal of a request without a certificate
    (CallTokenEndpointAllowingTLSFailure); a timeout is not."""
    return isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.TimeoutException)


def _is_json(response: httpx.Response) -> bool:
    content_type = str(response.headers.get("content-type", ""))
    return content_type.split(";")[0].strip().lower() == "application/json"


def refresh_grant(
    ctx: Context,
    party: Party,
    refresh_token: str,
    *,
    scope: str | None,
    first_id_token: str | None,
    title: str = "refresh",
) -> Tokens:
    """RefreshTokenRequestSteps: the refresh grant with client authentication and (DPoP) a new
    key (a confidential client's refresh token is not bound to its DPoP key, RFC 9449 5), and the
    suite's checks on the response, the new ID token against the first (OIDC Core 12.2)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope is not None:
        form["scope"] = scope
    # OIDC Core 12.2: the new ID token's iat is the time it was issued: let a second pass.
    ctx.wait(1)
    key = jwt.generate("EC") if party.variant.sender == "dpop" else None
    ctx.step(f"{title} ({party.client_id})")
    proof = (lambda m, u: party.proof(m, u, key=key)) if key is not None else False
    response = party.post_form("token_endpoint", form, dpop=proof)
    answer = EndpointAnswer.of(response)
    if answer.status != 200:
        ctx.fail(
            f"the refresh request was refused: HTTP {answer.status} {answer.error or ''} (RFC 6749 6)".strip()
        )
    if not _is_json(response):
        ctx.fail("the refresh response is not application/json (RFC 6749 5.1)")
    cache = [
        v.strip().lower() for value in response.headers.get_list("cache-control") for v in value.split(",")
    ]
    if "no-store" not in cache:
        ctx.fail("the refresh response lacks Cache-Control: no-store (RFC 6749 5.1)")
    tokens = party.tokens(response)
    if tokens is None:
        ctx.fail("the refresh response has no access_token (RFC 6749 5.1)")
    expected = "DPoP" if party.variant.sender == "dpop" else "Bearer"
    if tokens.token_type.lower() != expected.lower():
        ctx.fail(
            f"the refreshed token_type is {tokens.token_type!r}, expected {expected} (RFC 9449 5, RFC 6750)"
        )
    flows.check_entropy(ctx, "refreshed access token", tokens.access_token, clause="FAPI2-SP-FINAL-5.4.1-4")
    if not set(tokens.access_token) <= _VSCHAR:
        ctx.fail("the refreshed access token has characters outside %x20-7E (RFC 6749 A.12)")
    expires_in = answer.body.get("expires_in")
    if expires_in is None:
        ctx.warn("the refresh response has no expires_in (RFC 6749 5.1 RECOMMENDED)")
    elif not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        ctx.fail(
            f"expires_in {expires_in!r} in the refresh response is not a positive integer (RFC 6749 5.1)"
        )
    if tokens.refresh_token is not None:
        flows.check_entropy(ctx, "new refresh token", tokens.refresh_token, clause="RFC 6749 10.10")
    if not party.variant.openid and tokens.id_token is not None:
        ctx.fail("an id_token was issued on refresh for a request without the openid scope")
    if tokens.id_token is not None and first_id_token is not None:
        compare_id_tokens(ctx, first_id_token, tokens.id_token)
    return dataclasses.replace(tokens, dpop_key=key if key is not None else tokens.dpop_key)


def compare_id_tokens(ctx: Context, first: str, second: str) -> None:
    """CompareIdTokenClaims (OIDC Core 12.2): same iss, sub, aud (and azp, auth_time); a new iat."""
    a, b = jwt.decode_unverified(first)[1], jwt.decode_unverified(second)[1]
    for name in ("iss", "sub"):
        if name not in b or a.get(name) != b.get(name):
            ctx.fail(f"the refreshed ID token's {name} is not the first one's (OIDC Core 12.2)")
    if "iat" not in b or a.get("iat") == b.get("iat"):
        ctx.fail("the refreshed ID token's iat is not the time it was issued (OIDC Core 12.2)")
    aud_a, aud_b = a.get("aud"), b.get("aud")
    same_aud = (
        set(aud_a) == set(aud_b) if isinstance(aud_a, list) and isinstance(aud_b, list) else aud_a == aud_b
    )
    if not same_aud:
        ctx.fail("the refreshed ID token's aud is not the first one's (OIDC Core 12.2)")
    if "auth_time" in b and a.get("auth_time") != b.get("auth_time"):
        ctx.fail("the refreshed ID token's auth_time is not the original authentication's (OIDC Core 12.2)")
    if a.get("azp") != b.get("azp"):
        ctx.fail("the refreshed ID token's azp is not the first one's (OIDC Core 12.2)")


def _refresh_without_client_auth(ctx: Context, party: Party, refresh_token: str, key: Any) -> None:
    """RFC 6749 6: a confidential client authenticates when it refreshes (skipped for mTLS +
    mTLS, where the proof-of-possession step already leaves the certificate out)."""
    variant = party.variant
    if variant.client_auth == "mtls" and variant.sender == "mtls":
        return
    ctx.step("refresh without client authentication")
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": scope_of(party)}
    proof = (lambda m, u: party.proof(m, u, key=key)) if variant.sender == "dpop" else False
    try:
        if variant.client_auth == "mtls":
            # The client_id stays; the certificate, which is the authentication, goes.
            form["client_id"] = party.client_id
            response = party.post_form("token_endpoint", form, auth=False, dpop=proof, certificate=False)
        else:
            response = party.post_form("token_endpoint", form, auth=False, dpop=proof)
    except httpx.HTTPError as exc:
        if variant.client_auth == "mtls" and _transport_refused(exc):
            ctx.note("the refresh without a client certificate was refused in the TLS handshake")
            return
        raise
    flows.check_token_error(
        ctx,
        response,
        flows.refused_with("invalid_request", "invalid_grant", "invalid_client"),
        what="a refresh without client authentication",
    )


def _refresh_without_proof(ctx: Context, party: Party, refresh_token: str) -> None:
    """FAPI2 5.3.2.1-6: a sender-constrained refresh without proof of possession fails (no DPoP
    proof; or no certificate, where a dropped handshake is an acceptable refusal)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": scope_of(party)}
    if party.variant.sender == "mtls":
        ctx.step("refresh without the client certificate")
        try:
            response = party.post_form("token_endpoint", form, certificate=False)
        except httpx.HTTPError as exc:
            if _transport_refused(exc):
                ctx.note("the refresh without a client certificate was refused in the TLS handshake")
                return
            raise
        if party.variant.client_auth == "mtls":
            allowed = flows.refused_with("invalid_request", "invalid_client")
        else:
            allowed = flows.refused_with("invalid_request", "invalid_grant", "invalid_client")
        flows.check_token_error(
            ctx, response, allowed, what="a refresh without the certificate", json_warns=True
        )
        return
    ctx.step("refresh without a DPoP proof")
    response = party.post_form("token_endpoint", form, dpop=False)
    flows.check_token_error(
        ctx,
        response,
        flows.refused_with("invalid_request", "invalid_grant", "invalid_dpop_proof"),
        what="a refresh without a DPoP proof",
    )


def _refresh_flow(ctx: Context, party: Party, *, first_client: bool) -> tuple[Tokens, str]:
    """One client's part of FAPI2SPFinalRefreshToken: a flow with prompt=consent (offline_access,
    OIDC Core 11), the refresh, the lost-refresh-token retry when the server rotated, the
    negative refreshes (first client only), and the resource with the refreshed token."""
    scope = scope_of(party)
    par: dict[str, Any] = {"prompt": "consent"} if "offline_access" in scope.split() else {}
    pushed = flows.push(ctx, party, **par)
    result = ctx.authorize(party, pushed)
    tokens = finish_flow(ctx, party, pushed, result, call_resource=False)
    refresh_token = tokens.refresh_token
    grants = ctx.server.metadata.get("grant_types_supported")
    advertised = isinstance(grants, list) and "refresh_token" in grants
    if refresh_token is None:
        extra = (
            "; the metadata lists refresh_token in grant_types_supported, so the server may issue "
            "refresh tokens to other clients or need offline_access in the configured scope"
            if advertised
            else ""
        )
        ctx.skip(f"no refresh token was issued to {party.client_id}: refresh tokens cannot be tested{extra}")
    if not advertised:
        ctx.warn(
            "a refresh token was issued but grant_types_supported lacks refresh_token (OIDC Discovery 3)"
        )
    if not set(refresh_token) <= _VSCHAR:
        ctx.fail("the refresh token has characters outside %x20-7E (RFC 6749 A.17)")
    refreshed = refresh_grant(
        ctx, party, refresh_token, scope=scope if first_client else None, first_id_token=tokens.id_token
    )
    current = refreshed.refresh_token or refresh_token
    if current != refresh_token:
        # FAPI2 5.3.2.1-9 (no rotation) aside: a rotating server must let a lost response be retried.
        ctx.note("the server rotated the refresh token; the previous one is used again after 30 s")
        ctx.wait(30)
        refreshed = refresh_grant(
            ctx,
            party,
            refresh_token,
            scope=scope if first_client else None,
            first_id_token=tokens.id_token,
            title="refresh with the previous refresh token (FAPI2 5.3.2.1-9)",
        )
        current = refreshed.refresh_token or refresh_token
    if first_client:
        _refresh_without_client_auth(ctx, party, current, refreshed.dpop_key)
        _refresh_without_proof(ctx, party, current)
    if flows.has_resource(ctx):
        ctx.step("resource with the refreshed token")
        flows.check_resource_success(ctx, party.call_resource(refreshed))
    return refreshed, current


@module(
    "fapi2-security-profile-final-refresh-token",
    "FAPI2-SP-FINAL-5.3.2.1-9, 5.3.2.1-6, RFC 6749 6, RFC 9449 5",
)
def refresh_token(ctx: Context) -> None:
    """Both clients refresh their tokens (a new DPoP key; the same certificate); a refresh
    without client authentication or proof of possession fails; client 1 cannot use client 2's
    access token (with its own key) or refresh token (the suite's FAPI2SPFinalRefreshToken;
    RFC 6749 6, FAPI2 5.3.2.1-9, RFC 9449 5)."""
    first, second = ctx.first, ctx.second
    first_tokens, _ = _refresh_flow(ctx, first, first_client=True)
    second_tokens, second_refresh = _refresh_flow(ctx, second, first_client=False)
    if flows.has_resource(ctx):
        ctx.step("client 2's access token with client 1's key")
        stolen = dataclasses.replace(second_tokens, dpop_key=first_tokens.dpop_key)
        response = first.call_resource(stolen)
        if not 400 <= response.status_code <= 499:
            ctx.fail(
                f"the resource answered HTTP {response.status_code} to client 2's access token used with "
                "client 1's key or certificate, a 4xx was expected (RFC 9449 7, RFC 8705 3)"
            )
    ctx.step("client 2's refresh token with client 1")
    key = first_tokens.dpop_key
    proof = (lambda m, u: first.proof(m, u, key=key)) if first.variant.sender == "dpop" else False
    response = first.post_form(
        "token_endpoint", {"grant_type": "refresh_token", "refresh_token": second_refresh}, dpop=proof
    )
    flows.check_token_error(
        ctx, response, flows.refused_with("invalid_grant"), what="client 2's refresh token used by client 1"
    )


# -- the life and binding of a request_uri (RFC 9126) -------------------------------------------------------


@module(
    "fapi2-security-profile-final-par-ensure-reused-request-uri-prior-to-auth-completion-succeeds",
    "FAPI2-SP-FINAL-5.3.2.2 Note 3",
)
def reuse_before_completion(ctx: Context) -> None:
    """A request_uri opened once (the user stops at the sign-in page) still works when opened
    again: one-time use is enforced at authorization, not at the first visit (the suite's
    FAPI2SPFinalPAREnsureServerAcceptsReusedRequestUriBeforeAuthenticationCompletion; FAPI2
    5.3.2.2 Note 3, a recommendation: a refusal is a WARNING)."""
    party = ctx.first
    pushed = flows.push(ctx, party)
    browser = ctx.browser()
    url = party.front_channel(pushed)
    ctx.step("authorization endpoint (first visit, no sign-in)")
    first = browser.visit(url, pushed.redirect_uri)
    if first.landing is Landing.SUCCESS:
        ctx.fail("the first visit already ended with a code (no sign-in page): the module cannot test reuse")
    if first.landing is not Landing.INTERACTION:
        ctx.fail(f"the first visit did not reach a sign-in page: {first.describe()}")
    result = ctx.authorize(party, pushed, url=url, browser=browser)
    if result.landing is Landing.ERROR_PAGE:
        ctx.warn(
            "the server refused the request_uri on the second visit, before authorization completed "
            "(an error page)"
        )
        error_page_accepted(ctx, result, "the second visit")
        return
    if result.landing is Landing.ERROR_REDIRECT:
        ctx.warn("the server refused the request_uri on the second visit, before authorization completed")
        check_error_redirect(ctx, result, errors={"invalid_request_uri"}, state=pushed.state)
        return
    finish_flow(ctx, party, pushed, result)


@module(
    "fapi2-security-profile-final-par-attempt-reuse-request_uri",
    "RFC 9126 7.3, FAPI2-SP-FINAL-5.3.2.2 Note 3",
)
def reuse_request_uri(ctx: Context) -> None:
    """After a completed flow the same request_uri gives no second code: an error page or
    invalid_request_uri (the suite's FAPI2SPFinalPARAttemptReuseRequestUri; RFC 9126 7.3
    SHOULD: a second code is a WARNING)."""
    party = ctx.first
    pushed = flows.push(ctx, party)
    browser = ctx.browser()
    finish_flow(ctx, party, pushed, ctx.authorize(party, pushed, browser=browser))
    ctx.step("authorization endpoint (the same request_uri again)")
    # The server no longer knows the request (nor its response_mode): a plain error is allowed.
    ctx.plain_jarm_error_allowed = True
    result = ctx.authorize(party, pushed, browser=browser)
    if result.landing is Landing.ERROR_PAGE:
        error_page_accepted(ctx, result, "the request_uri used again")
        return
    if result.landing is Landing.ERROR_REDIRECT:
        check_error_redirect(
            ctx, result, errors={"invalid_request_uri"}, state=pushed.state, check_state=False
        )
        return
    if result.landing is Landing.SUCCESS:
        ctx.warn(
            "the request_uri was accepted a second time and gave another code "
            "(RFC 9126 7.3: one-time use SHOULD)"
        )
        finish_flow(ctx, party, pushed, result)
        return
    ctx.fail(f"the request_uri used again: {result.describe()}")


@module(
    "fapi2-security-profile-final-par-attempt-to-use-expired-request_uri",
    "FAPI2-SP-FINAL-5.3.2.2-12, RFC 9126 2.2",
    slow=True,
)
def expired_request_uri(ctx: Context) -> None:
    """A request_uri used after its expires_in (+1 s) gives no code: an error page or
    invalid_request_uri (the suite's FAPI2SPFinalPARAttemptToUseExpiredRequestUri; RFC 9126 2.2,
    FAPI2 5.3.2.2-12)."""
    party = ctx.first
    pushed = flows.push(ctx, party)
    expires_in = int(pushed.expires_in)
    if expires_in > 30 * 60:
        ctx.skip(f"expires_in is {expires_in} s, too long to wait for")
    ctx.note(f"waited {expires_in + 1} s (expires_in + 1) before using the request_uri")
    ctx.wait(expires_in + 1)
    ctx.plain_jarm_error_allowed = True  # the request, and its response_mode, is gone
    result = ctx.authorize(party, pushed)
    if result.landing is Landing.ERROR_PAGE:
        error_page_accepted(ctx, result, "the expired request_uri")
    elif result.landing is Landing.ERROR_REDIRECT:
        check_error_redirect(
            ctx, result, errors={"invalid_request_uri"}, state=pushed.state, check_state=False
        )
    else:
        ctx.fail(
            f"the request_uri was used {expires_in + 1} s after PAR (expires_in {expires_in}): "
            f"{result.describe()}"
        )
    ctx.fact("par_expiry_enforced", True)


@module("fapi2-security-profile-final-par-attempt-to-use-request_uri-for-different-client", "RFC 9126 2.2, 4")
def request_uri_other_client(ctx: Context) -> None:
    """Client 1's request_uri with client 2's client_id on the front channel gives no code: an
    error page or invalid_request/invalid_request_object/invalid_request_uri (the suite's
    FAPI2SPFinalPAREnsureRequestUriIsBoundToClient; RFC 9126 2.2: a request_uri is bound to its client)."""
    party = ctx.first
    pushed = flows.push(ctx, party)
    ctx.plain_jarm_error_allowed = True  # as the suite: the request is not the client's
    result = ctx.authorize(party, pushed, url=party.front_channel(pushed, client_id=ctx.second.client_id))
    check_refused_at_authorization_endpoint(
        ctx,
        result,
        errors={"invalid_request", "invalid_request_object", "invalid_request_uri"},
        state=pushed.state,
        check_state=False,
        what="client 1's request_uri for client 2",
    )


# -- the PAR endpoint's refusals ---------------------------------------------------------------------------


@module(
    "fapi2-security-profile-final-par-authorization-request-containing-request_uri-form-param",
    "RFC 9126 2.1",
)
def request_uri_in_par(ctx: Context) -> None:
    """A request_uri parameter inside a pushed request is refused with 400 invalid_request
    (or invalid_request_object, request_uri_not_supported) (the suite's
    FAPI2SPFinalPARRejectRequestUriInParAuthorizationFormParams; RFC 9126 2.1)."""
    party = ctx.first
    ctx.step(f"PAR ({party.client_id})")
    # Beside the request object in a signed variant (AddBadRequestUriToRequestParameters).
    pushed = party.par(outside={"request_uri": "urn:ietf:params:oauth:request_uri:" + suite_value(43)})
    if 200 <= pushed.answer.status < 300:
        ctx.fail(
            f"PAR accepted a request with a request_uri parameter (HTTP {pushed.answer.status}), RFC 9126 2.1"
        )
    check_par_refusal(
        ctx, pushed, errors={"invalid_request", "invalid_request_object", "request_uri_not_supported"}
    )


@module("fapi2-security-profile-final-par-attempt-invalid-http-method", "RFC 9126 2.1, 2.3")
def par_invalid_method(ctx: Context) -> None:
    """A pushed request sent with PUT instead of POST is refused (the suite's
    FAPI2SPFinalPARRejectInvalidHttpVerb accepts any 4xx or 5xx; RFC 9126 2.1 expects 405)."""
    party = ctx.first
    params, _ = unpushed_request(party)
    ctx.step("PAR with PUT")
    response = party.post_form("pushed_authorization_request_endpoint", params, method="PUT")
    status = response.status_code
    if status < 400 or status >= 600:
        ctx.fail(f"PAR answered HTTP {status} to PUT, an error was expected (RFC 9126 2.1)")
    if status >= 500:
        ctx.warn(f"PAR answered PUT with a server error (HTTP {status}); RFC 9126 2.1 expects 405")
    elif status != 405:
        ctx.note(
            f"PAR answered PUT with HTTP {status}; RFC 9126 2.1 expects 405 (the suite accepts any error)"
        )


@module("fapi2-security-profile-final-par-without-duplicate-parameters", "RFC 9126 4, RFC 9101 5")
def without_duplicate_parameters(ctx: Context) -> None:
    """The front channel with only client_id and request_uri succeeds (the suite's
    FAPI2SPFinalParWithoutDuplicateParameters; RFC 9101 5, FAPI WG issue 315)."""
    party = ctx.first
    pushed = flows.push(ctx, party)
    result = ctx.authorize(party, pushed, url=party.front_channel(pushed, suite_parameters=False))
    finish_flow(ctx, party, pushed, result)
