"""Token verification as a strategy (FAPI2 5.3.4-3), in the manner of Authlib's token validators:
a :class:`TokenVerifier` turns the token string into a verified :class:`AccessToken` or raises
``invalid_token``. Two for any FAPI 2.0 AS: local RFC 9068 JWT validation against the issuer's
JWKS, and RFC 7662 introspection, optionally with the AS's answer signed (RFC 9701, FAPI 2.0
Message Signing 5.5.2). (The AS verifies its own tokens with a third, in
server/userinfo.py.) The sender binding is checked after, by the protector."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx

from corridor.core import strictjson
from corridor.core.b64 import b64url_decode
from corridor.core.clock import Clock
from corridor.core.jose import FAPI_ALGORITHMS, JoseFailure, SigningKey, read_header, verify_jws
from corridor.core.randomness import new_id, token_hash
from corridor.core.rules import Rule
from corridor.resource.keys import IssuerKeys
from corridor.resource.tokens import AccessToken, ResourceError, access_token, number

AT_TYPES = ("at+jwt", "application/at+jwt")
#: RFC 9701 4 / 5: the signed introspection answer's media type and its JWT ``typ``.
INTROSPECTION_JWT = "application/token-introspection+jwt"
INTROSPECTION_TYPES = ("token-introspection+jwt", INTROSPECTION_JWT)


class TokenVerifier(Protocol):
    def verify(self, token: str) -> AccessToken:
        """FAPI2 5.3.4-3: the verified token, or a ResourceError (``invalid_token``)."""
        ...


@dataclass(frozen=True)
class Introspection:
    """RFC 7662 token validation: the RS calls the AS's introspection endpoint as a registered
    confidential client (private_key_jwt, ``aud`` = the issuer, FAPI2 5.3.2.1-8).

    Not cached by default, so a revoked token is refused at once (design.md 5b). A cache of
    ``cache_seconds`` means a revoked token may be accepted for at most that long.

    ``signed`` (FAPI 2.0 Message Signing 5.5.2, RFC 9701): ask for the answer as a JWT signed by
    the AS, verify it (``typ``, alg, the issuer's key from its JWKS, ``iss``, ``aud`` = this
    ``client_id``, ``iat`` at most ``signed_max_age`` seconds old) and refuse an unsigned one."""

    client_id: str
    key: SigningKey
    cache_seconds: float = 0.0
    signed: bool = False
    signed_max_age: int = 60


@dataclass(frozen=True)
class Audience:
    """What every token for this resource must say (RFC 9068 4): this resource in ``aud``, an
    ``iat`` not later than ``max_clock_skew`` seconds ahead."""

    resource: str
    max_clock_skew: int

    def accept(
        self, claims: Mapping[str, Any], issuer: str, now: float, *, jti: str | None = None
    ) -> AccessToken:
        """RFC 9068 4, FAPI2 5.3.4-3: iss, aud, exp, iat; then the claims a handler relies on
        (``jti``: the token's name when the claims may lawfully have none, RFC 7662 2.2)."""
        if claims.get("iss") != issuer:
            raise ResourceError("invalid_token", "iss does not match", rule=Rule.RFC_9068_4)
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.resource not in audiences:
            raise ResourceError(
                "invalid_token", "the token is meant for another resource", rule=Rule.RFC_9068_4
            )
        exp, iat = claims.get("exp"), claims.get("iat")
        if not number(exp) or exp <= now:
            raise ResourceError("invalid_token", "the access token has expired", rule=Rule.FAPI2_5_3_4_3)
        if not number(iat) or iat > now + self.max_clock_skew:
            raise ResourceError("invalid_token", "the access token iat is not valid", rule=Rule.RFC_9068_4)
        return access_token(claims, issuer, jti=jti)


class JWTVerifier:
    """RFC 9068 local validation: typ, alg, the issuer's signature, then :class:`Audience`."""

    def __init__(self, issuers: Mapping[str, IssuerKeys], audience: Audience, clock: Clock) -> None:
        self.issuers = issuers
        self.audience = audience
        self.clock = clock

    def verify(self, token: str) -> AccessToken:
        """RFC 9068 4: typ, alg, signature by the issuer, iss, aud, exp, iat."""
        now = self.clock.now()
        try:
            header = read_header(token)
        except JoseFailure as exc:
            raise ResourceError(
                "invalid_token", "the access token is not a JWT", rule=Rule.RFC_9068_4
            ) from exc
        if header.get("typ") not in AT_TYPES:
            raise ResourceError("invalid_token", "the access token typ must be at+jwt", rule=Rule.RFC_9068_4)
        if header["alg"] not in FAPI_ALGORITHMS:
            raise ResourceError("invalid_token", "the access token alg is not allowed", rule=Rule.FAPI2_5_4_1)
        unverified = _unverified_claims(token)
        claimed = unverified.get("iss")
        issuer = claimed if isinstance(claimed, str) else ""
        keys = self.issuers.get(issuer)
        if keys is None:
            raise ResourceError(
                "invalid_token", "the token comes from another issuer", rule=Rule.RFC_9068_4_FAPI2_6_3
            )
        try:
            try:
                verify_jws(token, header, keys.signing_keys())
            except JoseFailure:
                verify_jws(token, header, keys.signing_keys(refresh=True))
        except JoseFailure as exc:
            raise ResourceError(
                "invalid_token", "the access token signature is not valid", rule=Rule.RFC_9068_4
            ) from exc
        # The signature covers exactly the payload those claims were parsed from.
        return self.audience.accept(unverified, issuer, now)


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        claims = strictjson.loads(b64url_decode(token.split(".")[1]))
    except (ValueError, IndexError) as exc:
        raise ResourceError(
            "invalid_token", "the access token payload is not JSON", rule=Rule.RFC_9068_4
        ) from exc
    if not isinstance(claims, dict):
        raise ResourceError(
            "invalid_token", "the access token payload is not a JSON object", rule=Rule.RFC_9068_4
        )
    return claims


class IntrospectionVerifier:
    """RFC 7662: ask the (single) authorization server; ``active: false`` is invalid_token."""

    def __init__(
        self,
        config: Introspection,
        issuers: Mapping[str, IssuerKeys],
        audience: Audience,
        http: httpx.Client,
        clock: Clock,
    ) -> None:
        self.config = config
        self.issuers = issuers
        #: The first configured authorization server is the one asked.
        self.issuer = next(iter(issuers))
        self.audience = audience
        self.http = http
        self.clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any], dict[str, str] | None]] = {}

    def verify(self, token: str) -> AccessToken:
        """RFC 7662 2, 2.2: an active token, from a configured issuer, then :class:`Audience`."""
        now = self.clock.now()
        cache_key = token_hash(token)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > now:
            _, claims, signed = cached
        else:
            claims, signed = self._ask(token, now)
            if self.config.cache_seconds > 0:
                self._cache[cache_key] = (now + self.config.cache_seconds, claims, signed)
                if len(self._cache) > 100_000:
                    self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        if claims.get("active") is not True:
            raise ResourceError("invalid_token", "the access token is not active", rule=Rule.RFC_7662_2_2)
        issuer = claims.get("iss", self.issuer)
        if issuer not in self.issuers:
            raise ResourceError("invalid_token", "the token comes from another issuer", rule=Rule.FAPI2_6_3)
        # RFC 7662 2.2: jti is optional in an introspection answer (oidc-provider leaves it out
        # when the opaque token is its own identifier); the token is then named by its hash.
        access = self.audience.accept(claims, issuer, now, jti=cache_key)
        return replace(access, signed_introspection=signed) if signed is not None else access

    def _ask(self, token: str, now: float) -> tuple[dict[str, Any], dict[str, str] | None]:
        """RFC 7662 2.1, FAPI2 5.3.2.1-8: POST the token, authenticated with private_key_jwt; the
        answer, and what names the signed answer (when ``signed``)."""
        unavailable = ResourceError(
            "invalid_token", "the token cannot be checked now", rule=Rule.RFC_7662_2, status=503
        )
        try:
            endpoint = self.issuers[self.issuer].metadata().get("introspection_endpoint")
        except (httpx.HTTPError, ValueError):
            raise unavailable from None
        if not isinstance(endpoint, str) or not endpoint.startswith("https://"):
            raise ResourceError(
                "invalid_token", "the authorization server offers no introspection", rule=Rule.RFC_7662_2
            )
        client_id = self.config.client_id
        assertion = self.config.key.sign(
            {
                "iss": client_id,
                "sub": client_id,
                "aud": self.issuer,
                "jti": new_id(),
                "iat": int(now),
                "exp": int(now) + 60,
            },
            "JWT",
        )
        try:
            response = self.http.post(
                endpoint,
                data={
                    "token": token,
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": assertion,
                },
                headers={"Accept": INTROSPECTION_JWT if self.config.signed else "application/json"},
            )
        except httpx.HTTPError:
            raise unavailable from None
        if response.status_code != 200:
            return {}, None
        if self.config.signed:
            return self._signed_answer(response, now, unavailable)
        try:
            claims = strictjson.loads(response.content)
        except ValueError:
            raise unavailable from None
        return claims if isinstance(claims, dict) else {}, None

    def _signed_answer(
        self, response: httpx.Response, now: float, unavailable: ResourceError
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """RFC 9701 5, FAPI 2.0 Message Signing 5.5.2: the ``token_introspection`` of a JWT signed by
        the issuer (``typ``, alg allow-list, its JWKS key), naming it (``iss``), this resource
        server's client (``aud``), and fresh (``iat``). Anything else leaves the token unverified
        (401 ``invalid_token``); the issuer's keys out of reach is 503, as the AS itself is."""
        media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != INTROSPECTION_JWT:
            raise _refused("the introspection response is not signed", Rule.FAPI2_MS_5_5_2)
        try:
            jws = response.content.decode("ascii").strip()
            header = read_header(jws)
        except (UnicodeDecodeError, JoseFailure):
            raise _refused("the introspection response is not a JWS", Rule.RFC_9701_5) from None
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in INTROSPECTION_TYPES:
            raise _refused("the introspection response typ must be token-introspection+jwt", Rule.RFC_9701_5)
        if header["alg"] not in FAPI_ALGORITHMS:
            raise _refused("the introspection response alg is not allowed", Rule.FAPI2_5_4_1)
        keys = self.issuers[self.issuer]
        try:
            known = keys.signing_keys()
        except JoseFailure:
            raise unavailable from None
        try:
            try:
                payload = verify_jws(jws, header, known)
            except JoseFailure:
                payload = verify_jws(jws, header, keys.signing_keys(refresh=True))
            claims = strictjson.loads(payload)
        except (JoseFailure, ValueError):
            raise _refused("the introspection response signature is not valid", Rule.RFC_9701_5) from None
        if not isinstance(claims, dict) or claims.get("iss") != self.issuer:
            raise _refused("the introspection response comes from another issuer", Rule.RFC_9701_5)
        aud = claims.get("aud")
        if self.config.client_id not in (aud if isinstance(aud, list) else [aud]):
            raise _refused("the introspection response is meant for another client", Rule.RFC_9701_5)
        iat, skew = claims.get("iat"), self.audience.max_clock_skew
        if not number(iat) or iat > now + skew:
            raise _refused("the introspection response iat is not valid", Rule.RFC_9701_5)
        if now - iat > self.config.signed_max_age + skew:
            raise _refused("the introspection response is too old", Rule.RFC_9701_5)
        answer = claims.get("token_introspection")
        if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
            raise _refused("the introspection response has no token_introspection", Rule.RFC_9701_5)
        signed = {"sha256": hashlib.sha256(jws.encode()).hexdigest(), "alg": header["alg"], "jws": jws}
        if isinstance(header.get("kid"), str):
            signed["kid"] = header["kid"]
        return answer, signed


def _refused(description: str, rule: str) -> ResourceError:
    """The token is not verified: the AS's answer failed a check (RFC 6750 3.1 invalid_token)."""
    return ResourceError("invalid_token", description, rule=rule)
