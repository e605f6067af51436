"""Refusals the suite accepts for a request that must not yield a code: an error page of the
authorization server (the suite asks for a screenshot; accepted here with a note), an error
redirect with the expected error, the state and RFC 9207 ``iss``, or a refusal already at PAR
(AbstractFAPI2SPFinalPARExpectingAuthorizationEndpointPlaceholderOrCallback)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from corridor.check import flows
from corridor.check.module import Context
from corridor.check.outcome import FrontChannelResult, Landing
from corridor.check.session import Party, Pushed

ERROR_RESPONSE_PARAMETERS = frozenset(
    {"error", "error_description", "error_uri", "state", "session_state", "iss"}
)


def error_page_accepted(ctx: Context, result: FrontChannelResult, what: str) -> None:
    """The suite's placeholder: an error page is an acceptable refusal, to be reviewed."""
    excerpt = f": {result.text[:160]}" if result.text else ""
    ctx.note(
        f"{what}: the authorization server showed an error page (HTTP {result.status}){excerpt}; "
        "the suite asks for a screenshot of it"
    )


def response_parameters(
    ctx: Context, result: FrontChannelResult, *, fragment_allowed: bool = False
) -> dict[str, str]:
    """The parameters of an error redirect: the query (OAuth 2.0 Multiple Response Types 5:
    never an error in the fragment of a code-flow response), or the fragment where the suite
    allows it (the response-type modules: DetectWhetherErrorResponseIsInQueryOrFragment)."""
    if "error" in result.params:
        return result.params
    if "error" in result.fragment:
        if not fragment_allowed:
            ctx.fail(
                "the error came back in the URL fragment, not the query (OAuth 2.0 Multiple Response Types 5)"
            )
        return result.fragment
    return result.params


def check_error_state(ctx: Context, params: Mapping[str, str], expected: str | None) -> None:
    """The suite's CheckStateInAuthorizationResponse on an error response (RFC 6749 4.1.2.1):
    the state that was sent comes back; it may be missing when the error is
    ``invalid_request_object`` or ``invalid_request_uri`` (the state was inside what was refused)."""
    actual = params.get("state")
    if not expected:
        if actual:
            ctx.fail("the error response has a state although none was sent (RFC 6749 4.1.2.1)")
        return
    if actual == expected:
        return
    if not actual and params.get("error") in ("invalid_request_object", "invalid_request_uri"):
        return
    if not actual:
        ctx.fail("the error response lacks the state that was sent (RFC 6749 4.1.2.1)")
    ctx.fail("the state in the error response is not the one sent (RFC 6749 4.1.2.1)")


def check_error_redirect(
    ctx: Context,
    result: FrontChannelResult,
    *,
    errors: set[str],
    state: str | None,
    check_state: bool = True,
    error_warns: bool = False,
    fragment_allowed: bool = False,
) -> dict[str, str]:
    """An error redirect back to the client: ``error`` present and one of ``errors`` (FAIL, or
    WARNING where the suite only warns), the state (when the suite checks it), ``iss`` (RFC 9207
    2), and only the parameters an error response has (WARNING). Returns the parameters."""
    params = response_parameters(ctx, result, fragment_allowed=fragment_allowed)
    if "code" in result.params or "code" in result.fragment:
        ctx.fail("the error response also carries a code")
    if check_state:
        check_error_state(ctx, params, state)
    error = params.get("error")
    if not error:
        ctx.fail("the authorization server redirected back without a code and without an error")
    flows.check_iss(ctx, dataclasses.replace(result, params=dict(params)))
    unexpected = sorted(set(params) - ERROR_RESPONSE_PARAMETERS)
    if unexpected:
        ctx.warn(f"the error response has unexpected parameters {', '.join(unexpected)} (OIDC Core 3.1.2.6)")
    if error not in errors:
        message = f"the authorization server answered error={error!r}, expected {' or '.join(sorted(errors))}"
        if error_warns:
            ctx.warn(message)
        else:
            ctx.fail(message)
    return dict(params)


def check_refused_at_authorization_endpoint(
    ctx: Context,
    result: FrontChannelResult,
    *,
    errors: set[str],
    state: str | None,
    what: str,
    check_state: bool = True,
    error_warns: bool = False,
    fragment_allowed: bool = False,
) -> None:
    """A request the authorization endpoint must refuse: an error page, or an error redirect
    with one of ``errors``; never a code, a server error or a sign-in left hanging."""
    if result.landing is Landing.SUCCESS:
        ctx.fail(f"{what}: the authorization server issued a code, a refusal was expected")
    if result.landing is Landing.SERVER_ERROR:
        ctx.fail(f"{what}: {result.describe()}, a refusal was expected")
    if result.landing is Landing.INTERACTION:
        ctx.fail(f"{what}: the user agent was left on a sign-in or consent page")
    if result.landing is Landing.ERROR_PAGE:
        error_page_accepted(ctx, result, what)
        return
    check_error_redirect(
        ctx,
        result,
        errors=errors,
        state=state,
        check_state=check_state,
        error_warns=error_warns,
        fragment_allowed=fragment_allowed,
    )


def check_par_refusal(
    ctx: Context, pushed: Pushed, *, errors: set[str], error_warns: bool = False, any_4xx: bool = False
) -> None:
    """The suite's AbstractEnsureSpecifiedErrorFromPushedAuthorizationEndpointResponse: HTTP 400
    with one of ``errors`` (RFC 9126 2.3); ``any_4xx`` + ``error_warns``: the response-type
    modules' EnsureHttpStatusCodeIs4xx (FAIL) with the error only warned about."""
    answer = pushed.answer
    if any_4xx:
        if not 400 <= answer.status <= 499:
            ctx.fail(f"PAR answered HTTP {answer.status}, a 4xx refusal was expected (RFC 9126 2.3)")
    elif answer.status != 400:
        ctx.fail(f"PAR answered HTTP {answer.status}, 400 was expected (RFC 9126 2.3)")
    if answer.error not in errors:
        message = (
            f"PAR refused with error={answer.error!r}, expected {' or '.join(sorted(errors))} (RFC 9126 2.3)"
        )
        if error_warns:
            ctx.warn(message)
        else:
            ctx.fail(message)


def expect_refused_request(
    ctx: Context,
    party: Party,
    pushed: Pushed,
    *,
    par_errors: set[str],
    errors: set[str],
    what: str,
    url: str | None = None,
    redirect_uri: str | None = None,
    par_error_warns: bool = False,
    par_any_4xx: bool = False,
    error_warns: bool = False,
    fragment_allowed: bool = False,
) -> FrontChannelResult | None:
    """The suite's AbstractFAPI2SPFinalPARExpectingAuthorizationEndpointPlaceholderOrCallback
    for a request that must not yield a code: refused at PAR (400 + one of ``par_errors``), or
    accepted there (the usual PAR checks) and refused at the authorization endpoint (error page,
    or an error redirect with one of ``errors``, the pushed state and ``iss``)."""
    if not 200 <= pushed.answer.status < 300:
        check_par_refusal(ctx, pushed, errors=par_errors, error_warns=par_error_warns, any_4xx=par_any_4xx)
        return None
    flows.check_par_success(ctx, pushed)
    result = ctx.authorize(party, pushed, url=url, redirect_uri=redirect_uri)
    check_refused_at_authorization_endpoint(
        ctx,
        result,
        errors=errors,
        state=pushed.state,
        what=what,
        error_warns=error_warns,
        fragment_allowed=fragment_allowed,
    )
    return result
