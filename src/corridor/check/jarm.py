"""Reading a JARM authorization response the way the OIDF suite's client does
(``AbstractFAPI2SPFinalServerTestModule.processCallbackForJARM``): the JWT from the query's
``response`` parameter (``response_mode=jwt`` is ``query.jwt`` for ``code``, JARM 2.3.1), nothing
else in the query (RejectNonJarmResponsesInUrlQuery, JARM 2.1), signed with a FAPI algorithm
(FAPI2ValidateJarmSigningAlg, FAPI2-SP-FINAL-5.4.1-1) by a key of the server's JWKS named by
``kid`` (ValidateJARMSignatureUsingKid), ``iss`` the issuer, ``aud`` the client, ``exp`` not
passed (ValidateJARMResponse, JARM 2.4), and ``exp`` within 10 minutes (ValidateJARMExpRecommendations,
a WARNING). The response's parameters are then the JWT's claims without the JWT's own
(``aud``, ``exp``, ``nbf``, ``iat``, ``jti``, ``sub``): ``iss`` stays and is RFC 9207's ``iss``
(ExtractAuthorizationEndpointResponseFromJARMResponse)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from corridor.check.outcome import FrontChannelResult, Landing
from corridor.core.jose import FAPI_ALGORITHMS, JoseFailure, read_header, verify_with_keys

#: The suite's clock skew for JARM times (ValidateJARMResponse: 5 minutes).
SKEW = 300
#: JARM 2.1 RECOMMENDED maximum lifetime.
MAX_LIFETIME = 600
#: Claims of the JWT itself, not response parameters.
JWT_CLAIMS = frozenset({"aud", "exp", "nbf", "iat", "jti", "sub"})


class JarmProblem(ValueError):
    """The response is not an acceptable JARM response (the module FAILs with this reason)."""


@dataclass
class JarmResponse:
    """A verified JARM response: the response parameters and what the report may say."""

    result: FrontChannelResult
    header: dict[str, Any]
    claims: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    #: True when a plain (non-JARM) error response was accepted where the suite allows it.
    plain: bool = False


def _query(url: str, redirect_uri: str) -> dict[str, str]:
    own = {k for k, _ in parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True)}
    return {k: v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True) if k not in own}


def _as_parameter(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def read(
    result: FrontChannelResult,
    *,
    redirect_uri: str,
    issuer: str,
    client_id: str,
    jwks: Mapping[str, Any],
    now: float,
    allow_plain_error: bool = False,
) -> JarmResponse:
    """Verify the JARM response the user agent brought back to ``redirect_uri``; raise
    :class:`JarmProblem` with the reason when it is not one."""
    query = _query(result.url, redirect_uri)
    if "response" not in query:
        if allow_plain_error and "error" in query:
            # processCallbackForJARM: a plain error is allowed where the request object itself
            # could not be trusted (expired, RS256, alg none, bad signature).
            return JarmResponse(result, {}, {}, plain=True)
        if "response" in result.fragment:
            raise JarmProblem(
                "the JARM response came in the URL fragment; response_mode=jwt with code is query.jwt "
                "(JARM 2.3.4, ExtractJARMFromURLQuery)"
            )
        got = ", ".join(sorted(query)) or "nothing"
        raise JarmProblem(
            f"response_mode=jwt was asked for but the authorization response is not a JARM response "
            f"(no response parameter; the query has {got}) (FAPI2-MS-FINAL-5.4.1, JARM 2.3.1)"
        )
    others = sorted(set(query) - {"response"})
    if others:
        raise JarmProblem(
            f"the JARM response's query also has {', '.join(others)} outside the JWT "
            "(RejectNonJarmResponsesInUrlQuery, JARM 2.1)"
        )
    token = query["response"]
    try:
        header = read_header(token)
    except JoseFailure as exc:
        raise JarmProblem(f"the JARM response is not a JWS: {exc} (JARM 2.1)") from exc
    alg = header.get("alg")
    if alg not in FAPI_ALGORITHMS:
        raise JarmProblem(
            f"the JARM response is signed with {alg!r}, not PS256/ES256/EdDSA "
            "(FAPI2ValidateJarmSigningAlg, FAPI2-SP-FINAL-5.4.1-1)"
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JarmProblem("the JARM response's header has no kid (ValidateJARMSignatureUsingKid)")
    keys = jwks.get("keys", [])
    candidates: Sequence[Mapping[str, Any]] = [
        k for k in (keys if isinstance(keys, list) else []) if isinstance(k, Mapping) and k.get("kid") == kid
    ]
    if not candidates:
        raise JarmProblem(
            f"no key with kid {kid!r} in the server's JWKS signs the JARM response (JARM 2.4-5)"
        )
    try:
        claims = verify_with_keys(token, header, list(candidates))
    except JoseFailure as exc:
        raise JarmProblem(
            f"the JARM response's signature does not verify with the server's key {kid!r}: {exc} (JARM 2.4-5)"
        ) from exc
    if "iss" not in claims:
        raise JarmProblem("the JARM response has no iss (JARM 2.1, RFC 9207 2, FAPI2-SP-FINAL-5.3.2.2-7)")
    if claims.get("iss") != issuer:
        raise JarmProblem(f"the JARM response's iss {claims.get('iss')!r} is not the issuer (JARM 2.4-2)")
    aud = claims.get("aud")
    if not (aud == client_id or (isinstance(aud, list) and client_id in aud)):
        raise JarmProblem(f"the JARM response's aud {aud!r} is not the client_id {client_id!r} (JARM 2.4-3)")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise JarmProblem("the JARM response has no numeric exp (JARM 2.1)")
    if exp < now - SKEW:
        raise JarmProblem(f"the JARM response expired {int(now - exp)} s ago (JARM 2.4-4)")
    iat = claims.get("iat")
    if iat is not None and (not isinstance(iat, (int, float)) or iat > now + SKEW or iat < now - 86400):
        raise JarmProblem("the JARM response's iat is not a time of the last day (ValidateJARMResponse)")
    warnings = []
    if exp > now + MAX_LIFETIME + SKEW:
        warnings.append(
            f"the JARM response lives {int(exp - now)} s; JARM 2.1 recommends 10 minutes at most "
            "(ValidateJARMExpRecommendations)"
        )
    params = {name: _as_parameter(value) for name, value in claims.items() if name not in JWT_CLAIMS}
    if "error" in params:
        landing = Landing.ERROR_REDIRECT
    elif "code" in params:
        landing = Landing.SUCCESS
    else:
        landing = Landing.ERROR_REDIRECT
    decoded = dataclasses.replace(result, landing=landing, params=params, fragment={})
    return JarmResponse(decoded, dict(header), claims, warnings)
