"""The suite's standard steps, shared by the modules: the checks on every PAR response,
authorization response, token response and resource response (AbstractFAPI2SPFinalServerTestModule
in the OIDF suite), and the whole authorization-code flow built from them."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from corridor.check.module import Context
from corridor.check.outcome import EndpointAnswer, FrontChannelResult, Landing
from corridor.check.session import Party, Pushed, Tokens
from corridor.core.jose import FAPI_ALGORITHMS, JoseFailure, read_header, verify_with_keys

#: The suite's floor for Shannon-estimated entropy of codes, tokens and request_uri values
#: (128 bits required, 96 measured, "a bit of slop": EnsureMinimum*Entropy).
MIN_ENTROPY_BITS = 96.0
#: RFC 6749 10.10 / FAPI2 5.4.1-4: 128 bits of length at least (EnsureMinimum*Length).
MIN_LENGTH_BITS = 128


def shannon_bits(value: str) -> float:
    """Shannon entropy per character times the length (the suite's estimate)."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    per_char = -sum((c / n) * math.log2(c / n) for c in counts.values())
    return per_char * n


def check_entropy(ctx: Context, what: str, value: str, *, clause: str) -> None:
    """FAPI2 5.4.1-4: at least 128 bits (as far as a black box can tell)."""
    if len(value.encode()) * 8 < MIN_LENGTH_BITS:
        ctx.fail(f"the {what} is shorter than 128 bits ({len(value)} characters) ({clause})")
    bits = shannon_bits(value)
    if bits <= MIN_ENTROPY_BITS:
        ctx.fail(f"the {what} does not look random enough ({bits:.0f} bits estimated) ({clause})")


# -- PAR ------------------------------------------------------------------------------------


def push(ctx: Context, party: Party, **kwargs: Any) -> Pushed:
    """PAR that must succeed: 201 with request_uri and expires_in (RFC 9126 2.2)."""
    ctx.step(f"PAR ({party.client_id})")
    pushed = party.par(**kwargs)
    check_par_success(ctx, pushed)
    return pushed


def check_par_success(ctx: Context, pushed: Pushed) -> None:
    answer = pushed.answer
    if answer.status != 201:
        ctx.fail(
            f"PAR refused: HTTP {answer.status} {answer.error or ''} "
            f"{_description(answer)}(RFC 9126 2.2: 201 expected)".replace("  ", " ")
        )
    if not pushed.request_uri:
        ctx.fail("PAR response has no request_uri (RFC 9126 2.2)")
    expires_in = pushed.expires_in
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        ctx.fail("PAR response has no positive integer expires_in (RFC 9126 2.2)")
    if expires_in >= 600:
        ctx.fail(f"PAR expires_in is {expires_in} s, must be under 600 s (FAPI2 5.3.2.2-12)")
    ctx.fact("par_expires_in", expires_in)
    content_type = pushed.response.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        ctx.fail(f"PAR response content type is {content_type!r}, not application/json (RFC 9126 2.2)")
    check_entropy(ctx, "request_uri", pushed.request_uri, clause="RFC 9126 7.1")


def _description(answer: EndpointAnswer) -> str:
    text = answer.body.get("error_description")
    return f"({str(text)[:120]}) " if isinstance(text, str) and text else ""


def check_par_refused(
    ctx: Context, pushed: Pushed, *, errors: set[str], statuses: frozenset[int] = frozenset({400})
) -> None:
    """The suite's CallPAREndpoint + CheckPAREndpointResponse{400|401} + error checks."""
    answer = pushed.answer
    if answer.status < 400:
        ctx.fail(f"PAR accepted the request (HTTP {answer.status}), a refusal was expected")
    if answer.status >= 500:
        ctx.fail(f"PAR failed with a server error (HTTP {answer.status})")
    if answer.status not in statuses:
        ctx.fail(f"PAR refused with HTTP {answer.status}, expected {sorted(statuses)}")
    if answer.error not in errors:
        ctx.fail(f"PAR refused with error={answer.error!r}, expected {' or '.join(sorted(errors))}")


# -- the authorization response ---------------------------------------------------------------


def check_authorization_success(
    ctx: Context, party: Party, pushed: Pushed, result: FrontChannelResult
) -> str:
    """onAuthorizationCallbackResponse: parameters in the query, state, iss (RFC 9207, FAPI2
    5.3.2.2-7), the code's length and entropy (FAPI2 5.4.1-4). Returns the code."""
    if result.landing is not Landing.SUCCESS:
        ctx.fail(f"no code: {result.describe()}{_page_reason(result)}")
    check_matching_callback_parameters(ctx, pushed.redirect_uri or party.config.redirect_uri, result)
    check_response_common(ctx, pushed, result)
    code = result.code or ""
    check_entropy(ctx, "authorization code", code, clause="FAPI2-SP-FINAL-5.4.1-4")
    return code


def check_matching_callback_parameters(ctx: Context, redirect_uri: str, result: FrontChannelResult) -> None:
    """The suite's CheckMatchingCallbackParameters: the redirect URI's own query parameters
    (``?dummy1=lorem&dummy2=ipsum``) come back unchanged (RFC 6749 3.1.2)."""
    got = dict(parse_qsl(urlsplit(result.url).query, keep_blank_values=True))
    for name, value in parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True):
        if got.get(name) != value:
            ctx.fail(
                f"the redirect URI's own query parameter {name}={value} did not come back "
                "in the authorization response (RFC 6749 3.1.2)"
            )


def _page_reason(result: FrontChannelResult) -> str:
    if result.error:
        description = result.params.get("error_description", "")
        return f" ({description[:120]})" if description else ""
    return f": {result.text[:120]}" if result.text else ""


def check_response_common(ctx: Context, pushed: Pushed, result: FrontChannelResult) -> None:
    """Checks on every authorization response, success or error."""
    if result.fragment:
        ctx.fail("authorization response parameters in the URL fragment (OIDC Core 3.3.2.5, OAuth2 RT 5)")
    if pushed.state is not None and result.params.get("state") != pushed.state:
        ctx.fail("the state in the authorization response is not the pushed state (RFC 6749 4.1.2)")
    if pushed.state is None and "state" in result.params:
        ctx.fail("the authorization response has a state the request did not have (RFC 6749 4.1.2)")
    check_iss(ctx, result)


def check_iss(ctx: Context, result: FrontChannelResult) -> None:
    """RFC 9207 2 / FAPI2 5.3.2.2-7: ``iss`` is present and is the issuer, exactly."""
    iss = result.params.get("iss")
    if iss is None:
        ctx.fail("no iss in the authorization response (RFC 9207 2, FAPI2-SP-FINAL-5.3.2.2-7)")
    if iss != ctx.server.issuer:
        ctx.fail(f"iss {iss!r} in the authorization response is not the issuer (RFC 9207 2)")
    ctx.fact("iss_on_success" if result.landing is Landing.SUCCESS else "iss_on_error", True)


# -- the token response ---------------------------------------------------------------------------


def check_token_success(
    ctx: Context, party: Party, response: httpx.Response, pushed: Pushed | None
) -> Tokens:
    """processTokenEndpointResponse: 200, the access token's type and binding, its entropy,
    expires_in, the refresh token's entropy, the ID token (openid) or none (plain OAuth)."""
    answer = EndpointAnswer.of(response)
    if answer.status != 200:
        ctx.fail(
            f"token request refused: HTTP {answer.status} {answer.error or ''} {_description(answer)}".strip()
        )
    tokens = party.tokens(response)
    if tokens is None:
        ctx.fail("token response has no access_token (RFC 6749 5.1)")
    expected = "DPoP" if party.variant.sender == "dpop" else "Bearer"
    if tokens.token_type.lower() != expected.lower():
        ctx.fail(
            f"token_type is {tokens.token_type!r}, expected {expected} "
            f"({'RFC 9449 5' if expected == 'DPoP' else 'RFC 8705 3'}, FAPI2-SP-FINAL-5.3.2.1-4)"
        )
    check_entropy(ctx, "access token", tokens.access_token, clause="FAPI2-SP-FINAL-5.4.1-4")
    expires_in = answer.body.get("expires_in")
    if expires_in is None:
        ctx.warn("token response has no expires_in (RFC 6749 5.1 RECOMMENDED)")
    elif not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        ctx.fail(f"expires_in {expires_in!r} is not a positive integer (RFC 6749 5.1)")
    if tokens.refresh_token is not None:
        check_entropy(ctx, "refresh token", tokens.refresh_token, clause="RFC 6749 10.10")
    scope = answer.body.get("scope")
    if scope is not None and not isinstance(scope, str):
        ctx.fail("scope in the token response is not a string (RFC 6749 5.1)")
    if party.variant.openid and pushed is not None:
        if tokens.id_token is None:
            ctx.fail(
                "no id_token in the token response for an openid request (OIDC Core 3.1.3.3, FAPI2 5.3.2.3)"
            )
        check_id_token(ctx, party, tokens.id_token, pushed)
    elif not party.variant.openid and tokens.id_token is not None:
        ctx.fail(
            "an id_token was issued for a request without the openid scope (ExpectNoIdTokenInTokenResponse)"
        )
    ctx.fact("token_type", tokens.token_type)
    return tokens


def check_id_token(ctx: Context, party: Party, id_token: str, pushed: Pushed) -> dict[str, Any]:
    """OIDC Core 3.1.3.7 and FAPI2 5.4.1: a PS256/ES256/EdDSA signature by a key of the
    server's JWKS, iss, aud, exp, iat, sub, nonce."""
    try:
        header = read_header(id_token)
    except JoseFailure as exc:
        ctx.fail(f"the id_token is not a JWS: {exc}")
    alg = header.get("alg")
    if alg not in FAPI_ALGORITHMS:
        ctx.fail(f"the id_token is signed with {alg!r}, not PS256/ES256/EdDSA (FAPI2-SP-FINAL-5.4.1-1)")
    if not isinstance(header.get("kid"), str):
        ctx.fail("the id_token header has no kid (OIDC Core 10.1)")
    keys = ctx.server.jwks.get("keys", [])
    try:
        claims = verify_with_keys(id_token, header, list(keys) if isinstance(keys, list) else [])
    except JoseFailure as exc:
        ctx.fail(f"the id_token signature does not verify with the server's JWKS: {exc}")
    now = ctx.clock()  # the checker's clock (a test moves it with the server's)
    if claims.get("iss") != ctx.server.issuer:
        ctx.fail("id_token iss is not the issuer (OIDC Core 3.1.3.7-2)")
    aud = claims.get("aud")
    if not (aud == party.client_id or (isinstance(aud, list) and party.client_id in aud)):
        ctx.fail("id_token aud does not contain the client_id (OIDC Core 3.1.3.7-3)")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != party.client_id:
        ctx.fail("id_token with several audiences has no azp of the client (OIDC Core 3.1.3.7-4/5)")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, (int, float)) or exp < now - 300:
        ctx.fail("id_token exp is missing or in the past (OIDC Core 3.1.3.7-9)")
    if not isinstance(iat, (int, float)) or abs(iat - now) > 300:
        ctx.fail("id_token iat is missing or more than 5 minutes off (OIDC Core 3.1.3.7-10)")
    if not isinstance(claims.get("sub"), str) or not claims.get("sub"):
        ctx.fail("id_token has no sub (OIDC Core 2)")
    if pushed.nonce is not None and claims.get("nonce") != pushed.nonce:
        ctx.fail("id_token nonce is not the pushed nonce (OIDC Core 3.1.3.7-11)")
    if pushed.nonce is None and "nonce" in claims:
        ctx.fail("id_token has a nonce the request did not have (OIDC Core 2)")
    ctx.fact("id_token_alg", alg)
    return claims


#: RFC 6749 5.2: the characters allowed in ``error``, ``error_description`` and ``error_uri``
#: (the suite's ValidateError*FromTokenEndpointResponseError conditions).
ERROR_CHARS = re.compile(r"[\x20-\x21\x23-\x5B\x5D-\x7E]+")
DESCRIPTION_CHARS = re.compile(r"[\x09\x0A\x0D\x20-\x21\x23-\x5B\x5D-\x7E]+")
URI_CHARS = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


def refused_with(*errors: str, invalid_client_401: bool = True) -> dict[str, frozenset[int]]:
    """The statuses each error may come with (RFC 6749 5.2): 400, and 401 for invalid_client
    (the suite's CheckTokenEndpointHttpStatus400Allowing401ForInvalidClientError)."""
    return {
        error: frozenset({400, 401}) if error == "invalid_client" and invalid_client_401 else frozenset({400})
        for error in errors
    }


def check_token_error(
    ctx: Context,
    response: httpx.Response,
    allowed: Mapping[str, frozenset[int]],
    *,
    what: str = "the token request",
    accepted: str | None = None,
    json_warns: bool = False,
) -> None:
    """The suite's checks on a refused token request, each a FAILURE unless said: an error in
    ``allowed`` with one of its statuses (CheckTokenEndpointHttpStatus400/401,
    CheckErrorFromTokenEndpointResponseError*), a JSON body (CheckTokenEndpointReturnedJsonContentType;
    WARNING with ``json_warns``, where a TLS terminator may answer), the characters of
    ``error``, ``error_description`` (CR, LF or TAB: WARNING) and ``error_uri`` (RFC 6749 5.2).
    ``accepted`` is the reason when the server answered 200."""
    answer = EndpointAnswer.of(response)
    if answer.status == 200:
        ctx.fail(accepted or f"{what} was accepted (HTTP 200), a refusal was expected")
    if answer.status >= 500:
        ctx.fail(f"{what} failed with a server error (HTTP {answer.status})")
    content_type = response.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        message = (
            f"{what} was refused without a JSON body ({content_type or 'no content type'}, RFC 6749 5.2)"
        )
        if not json_warns:
            ctx.fail(message)
        ctx.warn(message)
        return
    problems: list[str] = []
    error = answer.body.get("error")
    if not isinstance(error, str) or not error:
        problems.append(f"{what} was answered HTTP {answer.status} without an error code (RFC 6749 5.2)")
    elif not ERROR_CHARS.fullmatch(error):
        problems.append("error has characters outside %x20-21 / %x23-5B / %x5D-7E (RFC 6749 5.2)")
    elif error not in allowed:
        problems.append(f"error={error!r}, expected {' or '.join(sorted(allowed))} (RFC 6749 5.2)")
    elif answer.status not in allowed[error]:
        statuses = " or ".join(map(str, sorted(allowed[error])))
        problems.append(f"HTTP {answer.status} for error={error}, expected {statuses} (RFC 6749 5.2)")
    description = answer.body.get("error_description")
    if isinstance(description, str) and description:
        if any(c in description for c in "\r\n\t"):
            ctx.warn("error_description contains CR, LF or TAB (not recommended, RFC 6749 5.2)")
        if not DESCRIPTION_CHARS.fullmatch(description):
            problems.append("error_description has characters RFC 6749 5.2 does not allow")
    error_uri = answer.body.get("error_uri")
    if isinstance(error_uri, str) and error_uri:
        parts = urlsplit(error_uri)
        if not URI_CHARS.fullmatch(error_uri) or not parts.scheme or not parts.netloc:
            problems.append("error_uri is not a URI of the characters RFC 6749 5.2 allows")
    if problems:
        ctx.fail(f"{what}: " + "; ".join(problems))


# -- the resource ----------------------------------------------------------------------------------


def check_resource_success(ctx: Context, response: httpx.Response) -> None:
    """EnsureHttpStatusCodeIs200or201 and CheckForDateHeaderInResourceResponse."""
    ctx.step("resource")
    if response.status_code not in (200, 201):
        www = response.headers.get("www-authenticate", "")
        ctx.fail(f"the resource refused the token: HTTP {response.status_code} {www[:160]}".strip())
    if not response.headers.get("date"):
        ctx.fail("the resource response has no Date header (RFC 7231 7.1.1.2)")


def has_resource(ctx: Context) -> bool:
    """A resource to call: the configured one, else (``url = "userinfo"`` or none) the userinfo
    endpoint, but only for openid tokens (OIDC Core 5.3: userinfo needs the openid scope; a
    plain OAuth token is refused there with insufficient_scope, rightly)."""
    resource = ctx.config.resource
    if resource is not None and resource.url != "userinfo":
        return True
    return ctx.variant.openid and bool(ctx.server.metadata.get("userinfo_endpoint"))


# -- the whole flow ----------------------------------------------------------------------------------


def record_algorithms(ctx: Context, party: Party) -> None:
    """For the report: the algorithms of assertions and DPoP proofs the server accepted."""
    accepted = set(ctx.facts.get("accepted_algs", []))
    if party.variant.client_auth == "private_key_jwt" and party.config.jwk is not None:
        accepted.add(f"client assertion {party.config.jwk.get('alg') or _alg_of(party.config.jwk)}")
    if party.variant.sender == "dpop":
        accepted.add(f"DPoP proof {_alg_of(party.dpop_key)}")
    ctx.fact("accepted_algs", sorted(accepted))


def _alg_of(key: Mapping[str, Any]) -> str:
    return str(
        key.get("alg") or {"RSA": "PS256", "EC": "ES256", "OKP": "EdDSA"}.get(str(key.get("kty")), "?")
    )


def code_flow(
    ctx: Context, party: Party, *, par: dict[str, Any] | None = None, call_resource: bool = True
) -> tuple[Pushed, Tokens]:
    """PAR, the front channel with the user, the token request and (if configured) a resource
    call, each step with the suite's checks."""
    pushed = push(ctx, party, **(par or {}))
    result = ctx.authorize(party, pushed)
    code = check_authorization_success(ctx, party, pushed, result)
    ctx.step(f"token ({party.client_id})")
    tokens = check_token_success(ctx, party, party.token(code, pushed), pushed)
    record_algorithms(ctx, party)
    if call_resource and has_resource(ctx):
        ctx.step("resource")
        check_resource_success(ctx, party.call_resource(tokens))
    return pushed, tokens
