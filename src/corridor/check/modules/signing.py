"""The Message Signing plan's modules that only run with ``fapi_request_method=signed_non_repudiation``
(``@VariantNotApplicable(FAPI2AuthRequestMethod=unsigned)`` in the OIDF suite): request objects
at PAR with one claim, the header or the signature wrong, and the ones that must be accepted.

The request object the check sends (:meth:`Party.request_object_claims`) is the suite's: every
authorization parameter, ``iss`` = client_id, ``aud`` = the issuer (a string), ``nbf`` = now,
``exp`` = now + 5 minutes, plus a ``jti`` and the header ``typ: oauth-authz-req+jwt``
(FAPI2-MS-FINAL-5.3.2). A module that must be refused may be refused at PAR (400 and the
expected error, RFC 9126 2.3, JAR 6) or at the authorization endpoint (an error page, or an
error redirect with the expected error: a JARM one, or a plain one where the suite allows it
because the request object could not be trusted)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corridor.check import flows, jwt
from corridor.check.module import Context, module, signed_only
from corridor.check.modules.requests import finish_flow, suite_value
from corridor.check.refusals import check_par_refusal, expect_refused_request
from corridor.check.session import Party, Pushed

PREFIX = "fapi2-security-profile-final-"
#: The suite's AddBadAudToRequestObject.
BAD_AUD = "https://www.other1.example.com/"


def _now(ctx: Context) -> int:
    return int(ctx.clock())


def _refused(
    ctx: Context,
    what: str,
    *,
    claims: Mapping[str, Any] | None = None,
    serialize: Any = None,
    par_errors: set[str],
    errors: set[str],
    plain_error: bool = False,
    expose_state: bool = False,
    party: Party | None = None,
) -> None:
    """AbstractFAPI2SPFinalPARExpectingAuthorizationEndpointPlaceholderOrCallback with one request
    object change: refused at PAR with ``par_errors``, or at the authorization endpoint."""
    party = party or ctx.first
    ctx.plain_jarm_error_allowed = plain_error
    ctx.step(f"PAR ({party.client_id}): {what}")
    pushed = party.par(claims=claims, serialize=serialize)
    url = None
    if expose_state and pushed.state is not None:
        # expose_state_in_authorization_endpoint_request: the state outside as well, so an error
        # redirect for a request object the server could not read can still carry it.
        url = party.front_channel(pushed, state=pushed.state)
    expect_refused_request(ctx, party, pushed, par_errors=par_errors, errors=errors, what=what, url=url)


# -- request objects that must be accepted ------------------------------------------------------------


@module(
    PREFIX + "ensure-request-object-with-multiple-aud-succeeds",
    "FAPI2-MS-FINAL-5.3.1-2, RFC 7519 4.1.3",
    applies=signed_only,
)
def multiple_aud(ctx: Context) -> None:
    """A request object whose aud is an array holding the issuer and two other values is
    accepted, and the flow (front channel with only client_id and request_uri) succeeds (the
    suite's FAPI2SPFinalEnsureServerAcceptsRequestObjectWithMultipleAud; FAPI2-MS-FINAL-5.3.1-2:
    aud is the issuer or an array containing it)."""
    party = ctx.first
    aud = [ctx.server.issuer, "https://other1.example.com", "invalid"]
    pushed = flows.push(ctx, party, claims={"aud": aud})
    result = ctx.authorize(party, pushed, url=party.front_channel(pushed, suite_parameters=False))
    finish_flow(ctx, party, pushed, result)


@module(
    PREFIX + "ensure-request-object-with-nbf-8-seconds-in-the-future-is-accepted",
    "FAPI2-SP-FINAL-5.3.2.1-13, FAPI2-MS-FINAL-5.3.1-3",
    applies=signed_only,
)
def nbf_8_seconds_ahead(ctx: Context) -> None:
    """A request object with nbf 8 seconds in the future (clock skew) is accepted and the flow
    succeeds; a refusal at PAR is a WARNING (the suite's
    FAPI2SPFinalEnsureRequestObjectWithNbf8SecondsInTheFutureIsAccepted; FAPI2 5.3.2.1-13)."""
    party = ctx.first
    ctx.step(f"PAR ({party.client_id}): nbf 8 s ahead")
    pushed = party.par(claims={"nbf": _now(ctx) + 8})
    if pushed.answer.status != 201:
        ctx.warn(
            f"PAR refused a request object with nbf 8 s in the future (HTTP {pushed.answer.status} "
            f"{pushed.answer.error or ''}): the server does not allow for clock skew (FAPI2 5.3.2.1-13)"
        )
        return
    flows.check_par_success(ctx, pushed)
    finish_flow(ctx, party, pushed, ctx.authorize(party, pushed))
    ctx.fact("request_object_nbf_skew_accepted", True)


# -- claims missing or out of bounds ----------------------------------------------------------------


@module(PREFIX + "ensure-request-object-without-exp-fails", "FAPI2-MS-FINAL-5.3.1-4", applies=signed_only)
def without_exp(ctx: Context) -> None:
    """A request object without exp is refused: PAR 400 invalid_request_object, or at the
    authorization endpoint invalid_request/invalid_request_uri/access_denied (the suite's
    FAPI2SPFinalEnsureRequestObjectWithoutExpFails; FAPI2-MS-FINAL-5.3.1-4)."""
    _refused(
        ctx,
        "a request object without exp",
        claims={"exp": jwt.DROP},
        par_errors={"invalid_request_object"},
        errors={"invalid_request", "invalid_request_uri", "access_denied"},
    )


@module(PREFIX + "ensure-request-object-without-nbf-fails", "FAPI2-MS-FINAL-5.3.1-3", applies=signed_only)
def without_nbf(ctx: Context) -> None:
    """A request object without nbf is refused: PAR 400 invalid_request_object, or at the
    authorization endpoint invalid_request/invalid_request_uri/access_denied (the suite's
    FAPI2SPFinalEnsureRequestObjectWithoutNbfFails; FAPI2-MS-FINAL-5.3.1-3)."""
    _refused(
        ctx,
        "a request object without nbf",
        claims={"nbf": jwt.DROP},
        par_errors={"invalid_request_object"},
        errors={"invalid_request", "invalid_request_uri", "access_denied"},
    )


@module(
    "corridor-ensure-request-object-without-aud-fails",
    "FAPI2-MS-FINAL-5.3.1-2, RFC 9101 4",
    applies=signed_only,
    extra=True,
)
def without_aud(ctx: Context) -> None:
    """A request object without aud is refused: PAR 400 invalid_request_object, or
    invalid_request_object/invalid_request_uri at the authorization endpoint (FAPI2-MS-FINAL-5.3.1-2:
    the AS shall require aud to be its issuer; not a module of the OIDF plan, which has the
    bad-aud case only)."""
    _refused(
        ctx,
        "a request object without aud",
        claims={"aud": jwt.DROP},
        par_errors={"invalid_request_object"},
        errors={"invalid_request_object", "invalid_request_uri"},
    )


@module(PREFIX + "ensure-expired-request-object-fails", "RFC 7519 4.1.4, JAR 6.2", applies=signed_only)
def expired(ctx: Context) -> None:
    """A request object whose exp passed an hour ago is refused: PAR 400 invalid_request_object,
    or invalid_request_object at the authorization endpoint (a plain error redirect is allowed)
    (the suite's FAPI2SPFinalEnsureExpiredRequestObjectFails; RFC 7519 4.1.4)."""
    _refused(
        ctx,
        "an expired request object",
        claims={"exp": _now(ctx) - 3600},
        par_errors={"invalid_request_object"},
        errors={"invalid_request_object"},
        plain_error=True,
    )


@module(
    PREFIX + "ensure-request-object-with-bad-aud-fails",
    "FAPI2-MS-FINAL-5.3.1-2, OIDC Core 6.1, RFC 7519 4.1.3",
    applies=signed_only,
)
def bad_aud(ctx: Context) -> None:
    """A request object for another audience is refused: PAR 400 invalid_request_object, or
    invalid_request_uri at the authorization endpoint (the suite's
    FAPI2SPFinalEnsureRequestObjectWithBadAudFails; FAPI2-MS-FINAL-5.3.1-2)."""
    _refused(
        ctx,
        "a request object for another audience",
        claims={"aud": BAD_AUD},
        par_errors={"invalid_request_object"},
        errors={"invalid_request_uri"},
    )


@module(
    PREFIX + "ensure-request-object-with-exp-over-60-fails", "FAPI2-MS-FINAL-5.3.1-4", applies=signed_only
)
def exp_over_60(ctx: Context) -> None:
    """A request object with exp 70 minutes after nbf is refused: PAR 400 invalid_request_object,
    or invalid_request_uri at the authorization endpoint (the suite's
    FAPI2SPFinalEnsureRequestObjectWithExpOver60Fails; FAPI2-MS-FINAL-5.3.1-4: at most 60 minutes)."""
    _refused(
        ctx,
        "a request object living 70 minutes",
        claims={"exp": _now(ctx) + 70 * 60},
        par_errors={"invalid_request_object"},
        errors={"invalid_request_uri"},
    )


@module(
    PREFIX + "ensure-request-object-with-nbf-over-60-fails", "FAPI2-MS-FINAL-5.3.1-3", applies=signed_only
)
def nbf_over_60(ctx: Context) -> None:
    """A request object with nbf 70 minutes in the past is refused: PAR 400
    invalid_request_object, or invalid_request_uri at the authorization endpoint (the suite's
    FAPI2SPFinalEnsureRequestObjectWithNbfOver60Fails; FAPI2-MS-FINAL-5.3.1-3: at most 60 minutes old)."""
    _refused(
        ctx,
        "a request object with nbf 70 minutes old",
        claims={"nbf": _now(ctx) - 70 * 60},
        par_errors={"invalid_request_object"},
        errors={"invalid_request_uri"},
    )


# -- the signature ----------------------------------------------------------------------------------


@module(
    PREFIX + "ensure-signed-request-object-with-RS256-fails", "FAPI2-SP-FINAL-5.4.1-1", applies=signed_only
)
def rs256(ctx: Context) -> None:
    """A request object signed with RS256 (by the client's own PS256 key) is refused: PAR 400
    invalid_request_object, or invalid_request_object at the authorization endpoint (a plain
    error redirect is allowed); skipped unless the client's key is PS256, as in the suite
    (FAPI2SPFinalEnsureSignedRequestObjectWithRS256Fails; FAPI2 5.4.1-1)."""
    party = ctx.first
    key = party.signing_key()
    alg = str(key.get("alg") or ("PS256" if key.get("kty") == "RSA" else ""))
    if alg != "PS256":
        ctx.skip(
            f"the first client's jwk_file is {alg or key.get('kty')!r}, not PS256: an RSA key is needed "
            "(not needed for certification)"
        )
    _refused(
        ctx,
        "a request object signed with RS256",
        serialize=lambda claims: party.request_object(claims, header={"alg": "RS256"}),
        par_errors={"invalid_request_object"},
        errors={"invalid_request_object"},
        plain_error=True,
    )


@module(
    PREFIX + "ensure-request-object-signature-algorithm-is-not-none",
    "FAPI2-MS-FINAL-5.3.1-1, RFC 9101 6.1",
    applies=signed_only,
)
def alg_none(ctx: Context) -> None:
    """An unsigned (alg none) request object is refused: PAR 400 invalid_request_object, or
    invalid_request_object at the authorization endpoint (a plain error redirect is allowed)
    (the suite's FAPI2SPFinalEnsureRequestObjectSignatureAlgorithmIsNotNone; FAPI2-MS-FINAL-5.3.1-1)."""
    _refused(
        ctx,
        "an alg none request object",
        serialize=lambda claims: jwt.unsigned({"alg": "none", "typ": "oauth-authz-req+jwt"}, claims),
        par_errors={"invalid_request_object"},
        errors={"invalid_request_object"},
        plain_error=True,
        expose_state=True,
    )


@module(
    PREFIX + "ensure-request-object-with-invalid-signature-fails",
    "FAPI2-MS-FINAL-5.3.1-1, JAR 6.2",
    applies=signed_only,
)
def invalid_signature(ctx: Context) -> None:
    """A request object whose signature has one bit changed is refused: PAR 400
    invalid_request_object, or invalid_request_object at the authorization endpoint (a plain
    error redirect is allowed) (the suite's FAPI2SPFinalEnsureRequestObjectWithInvalidSignatureFails;
    FAPI2-MS-FINAL-5.3.1-1: the AS verifies the signature)."""
    party = ctx.first
    _refused(
        ctx,
        "a request object with a bad signature",
        serialize=lambda claims: jwt.flip_signature(party.request_object(claims)),
        par_errors={"invalid_request_object"},
        errors={"invalid_request_object"},
        plain_error=True,
    )


@module(
    PREFIX + "ensure-matching-key-in-authorization-request",
    "FAPI2-MS-FINAL-5.3.1-1, OIDC Core 6.3.2",
    applies=signed_only,
)
def matching_key(ctx: Context) -> None:
    """Client 1's request object signed with client 2's key is refused: PAR 400 invalid_request
    or invalid_request_object, or invalid_request_object at the authorization endpoint (the
    suite's FAPI2SPFinalEnsureMatchingKeyInAuthorizationRequest; FAPI2-MS-FINAL-5.3.1-1: the key
    is the client's)."""
    party, other = ctx.first, ctx.second
    other_key = other.signing_key()
    _refused(
        ctx,
        "client 1's request object signed by client 2's key",
        serialize=lambda claims: party.request_object(claims, key=other_key),
        par_errors={"invalid_request", "invalid_request_object"},
        errors={"invalid_request_object"},
        expose_state=True,
    )


@module(
    PREFIX + "ensure-unsigned-request-at-par-endpoint-fails",
    "FAPI2-MS-FINAL-5.3.1-1, RFC 9101 10.5",
    applies=signed_only,
)
def unsigned_at_par(ctx: Context) -> None:
    """The parameters pushed without a request object by a client that must sign are refused:
    PAR 400 invalid_request, or invalid_request/invalid_request_object/invalid_request_uri at the
    authorization endpoint (the suite's FAPI2SPFinalEnsureUnsignedRequestAtParEndpointFails;
    FAPI2-MS-FINAL-5.3.1-1: the AS shall require signed request objects)."""
    party = ctx.first
    ctx.step(f"PAR ({party.client_id}): the parameters without a request object")
    pushed = party.par(signed=False)
    expect_refused_request(
        ctx,
        party,
        pushed,
        par_errors={"invalid_request"},
        errors={"invalid_request", "invalid_request_object", "invalid_request_uri"},
        what="an unsigned pushed request from a client that must sign",
    )
    if not 200 <= pushed.answer.status < 300:
        ctx.fact("signed_request_required_proven", True)


@module(
    PREFIX + "par-authorization-request-containing-request_uri",
    "RFC 9126 2.1, RFC 9101 4",
    applies=signed_only,
)
def request_uri_in_request_object(ctx: Context) -> None:
    """A request object that carries a request_uri is refused at PAR with 400
    invalid_request_object (the suite's FAPI2SPFinalPARRejectRequestUriInParAuthorizationRequest;
    RFC 9126 2.1, RFC 9101 4: no request_uri inside a request object)."""
    party = ctx.first
    ctx.step(f"PAR ({party.client_id}): a request_uri inside the request object")
    pushed: Pushed = party.par(request_uri="urn:ietf:params:oauth:request_uri:" + suite_value(43))
    if 200 <= pushed.answer.status < 300:
        ctx.fail(
            f"PAR accepted a request object with a request_uri (HTTP {pushed.answer.status}), "
            "400 invalid_request_object was expected (RFC 9126 2.1)"
        )
    check_par_refusal(ctx, pushed, errors={"invalid_request_object"})
