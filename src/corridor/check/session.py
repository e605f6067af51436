# Why over 450 lines: one client's whole conversation (PAR, front channel, token, resource)
# with every knob a negative module turns; the knobs and the happy path share one state.
"""One configured client talking to the server under test, the way the OIDF suite's client
does: PAR with the suite's parameters, the front channel (with ``response_type``, ``scope``
and ``redirect_uri`` beside ``client_id`` and ``request_uri``, on purpose), the token and
resource requests, private_key_jwt assertions and DPoP proofs with every knob a negative
module needs, and one retry on ``use_dpop_nonce`` (RFC 9449 8, 9)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from corridor.check import jwt
from corridor.check.config import CheckConfig, ClientConfig, Variant
from corridor.check.http import RecordingClient, Transcript, ssl_context
from corridor.check.outcome import EndpointAnswer, challenge
from corridor.core.b64 import b64url_encode
from corridor.core.dpop import access_token_hash

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: A sentinel: "use the nonce this party last learnt for that origin".
KNOWN: Any = object()


def new_state() -> str:
    return secrets.token_urlsafe(24)


def new_verifier() -> str:
    return secrets.token_urlsafe(48)


def s256(verifier: str) -> str:
    return b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest())


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class Server:
    """The authorization server as its metadata describes it (fetched once per run)."""

    issuer: str
    metadata: Mapping[str, Any]
    metadata_url: str
    metadata_sha256: str
    jwks: Mapping[str, Any]

    def endpoint(self, name: str, *, mtls: bool = False) -> str:
        """RFC 8705 5: a client using mTLS uses the alias where one is published."""
        if mtls:
            aliases = self.metadata.get("mtls_endpoint_aliases")
            if isinstance(aliases, Mapping) and isinstance(aliases.get(name), str):
                return str(aliases[name])
        value = self.metadata.get(name)
        return value if isinstance(value, str) else ""


@dataclass
class Pushed:
    """A pushed authorization request and what must come back with its response."""

    response: httpx.Response
    answer: EndpointAnswer
    params: dict[str, str]
    verifier: str
    #: The DPoP key the code is bound to (dpop_jkt or a DPoP header at PAR), if any.
    bound_key: Mapping[str, Any] | None = None
    #: The signed request object that carried ``params`` (Message Signing), if any.
    request_object: str | None = None

    @property
    def ok(self) -> bool:
        return self.answer.status == 201 and isinstance(self.answer.body.get("request_uri"), str)

    @property
    def request_uri(self) -> str:
        return str(self.answer.body.get("request_uri", ""))

    @property
    def expires_in(self) -> Any:
        return self.answer.body.get("expires_in")

    @property
    def state(self) -> str | None:
        return self.params.get("state")

    @property
    def nonce(self) -> str | None:
        return self.params.get("nonce")

    @property
    def redirect_uri(self) -> str:
        return self.params.get("redirect_uri", "")


@dataclass
class Tokens:
    access_token: str
    token_type: str
    body: dict[str, Any]
    refresh_token: str | None = None
    id_token: str | None = None
    #: The DPoP key the access token is bound to (DPoP sender constraint).
    dpop_key: Mapping[str, Any] | None = None


@dataclass
class Party:
    """A configured client of one variant, inside one module run."""

    config: ClientConfig
    variant: Variant
    server: Server
    transcript: Transcript
    check: CheckConfig
    clock: Callable[[], float] = time.time
    dpop_key: dict[str, Any] = field(default_factory=lambda: jwt.generate("EC"))
    nonces: dict[str, str] = field(default_factory=dict)
    #: Set when a server asked for a DPoP nonce (RFC 9449 8/9): the report says nonces are used.
    nonce_challenges: list[str] = field(default_factory=list)
    _clients: dict[bool, RecordingClient] = field(default_factory=dict)

    # -- transport ------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def uses_mtls(self) -> bool:
        """Client authentication or token binding by certificate (RFC 8705 2, 3)."""
        return self.variant.client_auth == "mtls" or self.variant.sender == "mtls"

    @property
    def has_certificate(self) -> bool:
        return self.config.cert_file is not None and self.config.cert_key_file is not None

    def http(self, *, certificate: bool | None = None) -> RecordingClient:
        """The HTTP client: with this party's certificate when it uses mTLS (or when asked)."""
        use_cert = (self.uses_mtls if certificate is None else certificate) and self.has_certificate
        if use_cert not in self._clients:
            cert = (
                (Path(str(self.config.cert_file)), Path(str(self.config.cert_key_file))) if use_cert else None
            )
            self._clients[use_cert] = RecordingClient(
                self.transcript, self.check.allowed_hosts(), ssl_context(self.check.ca_file, cert)
            )
        return self._clients[use_cert]

    def endpoint(self, name: str) -> str:
        return self.server.endpoint(name, mtls=self.uses_mtls)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    # -- client authentication (FAPI2 5.3.2.1-6/-8) ---------------------------------------

    def assertion_claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.server.issuer,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + 60,
        }
        return jwt.merge(claims, overrides)

    def assertion(self, *, header: Mapping[str, Any] | None = None, **claims: Any) -> str:
        """A private_key_jwt client assertion (OIDC Core 9, RFC 7523 3) with ``aud`` = the issuer
        as a string (FAPI2 5.3.3.1-5) unless a module overrides a claim."""
        key = self.config.jwk
        if key is None:
            raise ValueError(f"client {self.client_id} has no jwk_file")
        base_header = {"alg": str(key.get("alg") or _default_alg(key)), "typ": "JWT"}
        if key.get("kid"):
            base_header["kid"] = str(key["kid"])
        return jwt.sign(key, self.assertion_claims(**claims), jwt.merge(base_header, header or {}))

    def client_auth(self, **assertion_claims: Any) -> dict[str, str]:
        """The form fields of this variant's client authentication."""
        if self.variant.client_auth == "mtls":
            return {"client_id": self.client_id}
        return {
            "client_assertion_type": JWT_BEARER,
            "client_assertion": self.assertion(**assertion_claims),
        }

    # -- DPoP (RFC 9449) ------------------------------------------------------------------

    def proof(
        self,
        htm: str,
        htu: str,
        *,
        access_token: str | None = None,
        nonce: Any = KNOWN,
        key: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        iat_offset: float = 0,
    ) -> str:
        """A DPoP proof by ``key`` (default: this party's DPoP key) for ``htm`` ``htu``."""
        key = key or self.dpop_key
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(24),
            "htm": htm,
            "htu": htu,
            "iat": int(self.clock() + iat_offset),
        }
        known = self.nonces.get(origin(htu)) if nonce is KNOWN else nonce
        if known is not None:
            body["nonce"] = known
        if access_token is not None:
            body["ath"] = access_token_hash(access_token)
        head = {"typ": "dpop+jwt", "alg": _default_alg(key), "jwk": jwt.public(key)}
        return jwt.sign(key, jwt.merge(body, claims or {}), jwt.merge(head, header or {}))

    def learn_nonce(self, url: str, response: httpx.Response) -> str | None:
        """RFC 9449 8.2: keep the latest ``DPoP-Nonce`` of each origin."""
        nonce: str | None = response.headers.get("dpop-nonce")
        if nonce:
            self.nonces[origin(url)] = nonce
        return nonce

    @staticmethod
    def asks_for_nonce(response: httpx.Response) -> bool:
        """``use_dpop_nonce`` from an AS (400, JSON) or an RS (401, WWW-Authenticate)."""
        if response.status_code == 400:
            return EndpointAnswer.of(response).error == "use_dpop_nonce"
        if response.status_code == 401:
            dpop = challenge(response.headers, "DPoP")  # RFC 9449 9: the DPoP scheme's error
            return dpop is not None and dpop.get("error") == "use_dpop_nonce"
        return False

    # -- requests -------------------------------------------------------------------------

    def post_form(
        self,
        endpoint: str,
        form: Mapping[str, Any],
        *,
        auth: bool | Callable[[], dict[str, str]] = True,
        dpop: bool | Callable[[str, str], str | None] = False,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
        url: str | None = None,
        certificate: bool | None = None,
    ) -> httpx.Response:
        """A form POST to a metadata endpoint with client authentication and (optionally) a
        DPoP proof, retried once when the server asks for a nonce (a new assertion too: its
        ``jti`` was spent). ``certificate=False``: without this party's TLS client certificate
        (a proof-of-possession or client-authentication module leaves it out)."""
        target = url or self.endpoint(endpoint)
        response: httpx.Response | None = None
        for attempt in range(2):
            fields = {k: v for k, v in form.items() if v is not None}
            if auth is True:
                fields.update(self.client_auth())
            elif callable(auth):
                fields.update(auth())
            sent = dict(headers or {})
            proof = None
            if dpop is True:
                proof = self.proof(method, target)
            elif callable(dpop):
                proof = dpop(method, target)
            if proof is not None:
                sent["DPoP"] = proof
            response = self.http(certificate=certificate).request(method, target, data=fields, headers=sent)
            before = self.nonces.get(origin(target))
            self.learn_nonce(target, response)
            if attempt == 0 and proof is not None and self.asks_for_nonce(response):
                self.nonce_challenges.append(target)
                if self.nonces.get(origin(target)) not in (None, before) or before is None:
                    continue
            break
        assert response is not None
        return response

    # -- request objects (RFC 9101, FAPI2 Message Signing 5.3.2) ---------------------------

    def request_object_claims(self, params: Mapping[str, str], **overrides: Any) -> dict[str, Any]:
        """The authorization parameters as request object claims (``claims`` and
        ``authorization_details`` as JSON, OIDC Core 6.1) with ``iss`` = client_id, ``aud`` = the
        issuer as a string, ``nbf`` = now, ``exp`` = now + 5 minutes (FAPI2-MS-FINAL-5.3.2-2/3/4)
        and a fresh ``jti``; ``overrides`` set or (:data:`jwt.DROP`) remove claims."""
        now = int(self.clock())
        claims: dict[str, Any] = {}
        for name, value in params.items():
            if name in ("claims", "authorization_details"):
                try:
                    claims[name] = json.loads(value)
                    continue
                except ValueError:
                    pass
            claims[name] = value
        claims.update(
            {
                "iss": self.client_id,
                "aud": self.server.issuer,
                "client_id": self.client_id,
                "nbf": now,
                "exp": now + 300,
                "jti": secrets.token_urlsafe(24),
            }
        )
        return jwt.merge(claims, overrides)

    def signing_key(self) -> Mapping[str, Any]:
        """The key request objects are signed with: the client's jwk_file."""
        if self.config.jwk is None:
            raise ValueError(f"client {self.client_id} has no jwk_file to sign request objects with")
        return self.config.jwk

    def request_object(
        self,
        claims: Mapping[str, Any],
        *,
        header: Mapping[str, Any] | None = None,
        key: Mapping[str, Any] | None = None,
    ) -> str:
        """A request object signed by ``key`` (default: this client's), header ``typ``
        ``oauth-authz-req+jwt`` (FAPI2-MS-FINAL-5.3.2-5), ``alg`` and ``kid`` of the key."""
        key = key or self.signing_key()
        base: dict[str, Any] = {"alg": _default_alg(key), "typ": "oauth-authz-req+jwt"}
        if key.get("kid"):
            base["kid"] = str(key["kid"])
        return jwt.sign(key, claims, jwt.merge(base, header or {}))

    def par(
        self,
        *,
        remove: tuple[str, ...] = (),
        dpop: bool | Callable[[str, str], str | None] = False,
        auth: bool | Callable[[], dict[str, str]] = True,
        signed: bool | None = None,
        claims: Mapping[str, Any] | None = None,
        serialize: Callable[[Mapping[str, Any]], str] | None = None,
        outside: Mapping[str, str] | None = None,
        **params: Any,
    ) -> Pushed:
        """RFC 9126 2.1 with the suite's parameters: response_type=code, client_id,
        redirect_uri, scope, state, nonce (openid), PKCE S256 (FAPI2 5.3.2.2-1/-5/-6), and
        ``response_mode=jwt`` in a JARM variant (FAPI2-MS-FINAL-5.4.2-1).

        In a signed variant (or with ``signed=True``) the parameters travel in a signed request
        object, the body has only ``request`` and the client authentication (RFC 9126 3, the
        suite's BuildRequestObjectPostToPAREndpoint): ``claims`` overrides its claims,
        ``serialize`` makes the JWT from the claims instead (a negative module's bad one).
        ``outside`` adds form fields beside it (or beside the plain parameters)."""
        verifier = new_verifier()
        scope = list(self.config.scope)
        if not self.variant.openid:
            scope = [s for s in scope if s != "openid"]
        elif "openid" not in scope:
            scope.insert(0, "openid")
        base: dict[str, Any] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.config.redirect_uri,
            "scope": " ".join(scope),
            "state": new_state(),
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        if self.variant.openid:
            base["nonce"] = new_state()
        if self.variant.jarm:
            base["response_mode"] = "jwt"
        for name in remove:
            base.pop(name, None)
        base.update(params)
        if "code_verifier" in base:  # a module that pins the verifier
            verifier = str(base.pop("code_verifier"))
        fields = {k: str(v) for k, v in base.items() if v is not None}
        request_object = None
        form: dict[str, str] = dict(fields)
        if self.variant.signed if signed is None else signed:
            ro_claims = self.request_object_claims(fields, **dict(claims or {}))
            request_object = serialize(ro_claims) if serialize is not None else self.request_object(ro_claims)
            form = {"request": request_object}
        form.update(outside or {})
        response = self.post_form("pushed_authorization_request_endpoint", form, auth=auth, dpop=dpop)
        bound = self.dpop_key if dpop is True else None
        return Pushed(response, EndpointAnswer.of(response), fields, verifier, bound, request_object)

    def front_channel(self, pushed: Pushed, *, suite_parameters: bool = True, **extra: str | None) -> str:
        """The authorization request URL: ``client_id`` and ``request_uri``, plus (as the suite
        does in almost every module) ``response_type``, ``scope`` and ``redirect_uri``."""
        query: dict[str, str] = {"client_id": self.client_id, "request_uri": pushed.request_uri}
        if suite_parameters:
            for name in ("response_type", "scope", "redirect_uri"):
                if name in pushed.params:
                    query[name] = pushed.params[name]
        for name, value in extra.items():
            if value is None:
                query.pop(name, None)
            else:
                query[name] = value
        endpoint = self.server.endpoint("authorization_endpoint")
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)

    def token(
        self,
        code: str,
        pushed: Pushed,
        *,
        remove: tuple[str, ...] = (),
        auth: bool | Callable[[], dict[str, str]] = True,
        dpop: bool | Callable[[str, str], str | None] | None = None,
        **params: Any,
    ) -> httpx.Response:
        """RFC 6749 4.1.3 with the PKCE verifier (RFC 7636 4.5) and the variant's binding."""
        form: dict[str, Any] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pushed.redirect_uri,
            "code_verifier": pushed.verifier,
        }
        if self.variant.client_auth == "mtls":
            form["client_id"] = self.client_id
        for name in remove:
            form.pop(name, None)
        form.update(params)
        if dpop is None:
            dpop = self.variant.sender == "dpop"
        return self.post_form("token_endpoint", form, auth=auth, dpop=dpop)

    def client_credentials(
        self,
        *,
        auth: bool | Callable[[], dict[str, str]] = True,
        dpop: bool | Callable[[str, str], str | None] | None = None,
        certificate: bool | None = None,
        **params: Any,
    ) -> httpx.Response:
        """RFC 6749 4.4.2 with the client's scope and the variant's binding (the suite's
        CallTokenEndpoint with grant_type=client_credentials)."""
        form: dict[str, Any] = {"grant_type": "client_credentials", "scope": " ".join(self.config.scope)}
        if self.variant.client_auth == "mtls":
            form["client_id"] = self.client_id
        form.update(params)
        if dpop is None:
            dpop = self.variant.sender == "dpop"
        return self.post_form("token_endpoint", form, auth=auth, dpop=dpop, certificate=certificate)

    def refresh(self, refresh_token: str, *, dpop_key: Mapping[str, Any] | None = None) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        use_dpop: bool | Callable[[str, str], str | None] = self.variant.sender == "dpop"
        if use_dpop and dpop_key is not None:
            use_dpop = lambda m, u: self.proof(m, u, key=dpop_key)  # noqa: E731
        return self.post_form("token_endpoint", form, dpop=use_dpop)

    def tokens(self, response: httpx.Response) -> Tokens | None:
        body = EndpointAnswer.of(response).body
        token = body.get("access_token")
        if response.status_code != 200 or not isinstance(token, str):
            return None
        refresh = body.get("refresh_token")
        id_token = body.get("id_token")
        return Tokens(
            token,
            str(body.get("token_type", "")),
            body,
            refresh if isinstance(refresh, str) else None,
            id_token if isinstance(id_token, str) else None,
            self.dpop_key if self.variant.sender == "dpop" else None,
        )

    def resource_url(self) -> str:
        resource = self.check.resource
        if resource is None or resource.url == "userinfo":
            # The mTLS alias only for certificate-bound tokens (the suite's resource calls
            # present the certificate only then).
            return self.server.endpoint("userinfo_endpoint", mtls=self.variant.sender == "mtls")
        return resource.url

    def resource_method(self) -> str:
        resource = self.check.resource
        return resource.method if resource is not None and resource.url != "userinfo" else "GET"

    def call_resource(
        self,
        tokens: Tokens,
        *,
        scheme: str | None = None,
        proof: Callable[[str, str], str | None] | None = None,
        headers: Mapping[str, str] | None = None,
        url: str | None = None,
        certificate: bool | None = None,
        retry_nonce: bool = True,
        query_token: bool = False,
    ) -> httpx.Response:
        """A resource request with the token in the Authorization header (FAPI2 5.3.4-1),
        a proof with ``ath`` (RFC 9449 7) for DPoP, one retry on ``use_dpop_nonce``."""
        target = url or self.resource_url()
        method = self.resource_method()
        dpop = self.variant.sender == "dpop"
        used_scheme = scheme or ("DPoP" if dpop else "Bearer")
        response: httpx.Response | None = None
        for attempt in range(2):
            sent = {} if query_token else {"Authorization": f"{used_scheme} {tokens.access_token}"}
            sent.update(headers or {})
            made = None
            if proof is not None:
                made = proof(method, target)
            elif dpop:
                made = self.proof(method, target, access_token=tokens.access_token, key=tokens.dpop_key)
            if made is not None:
                sent["DPoP"] = made
            params = {"access_token": tokens.access_token} if query_token else None
            # The suite presents the client certificate at the resource only for certificate-bound
            # tokens (requestProtectedResource), not for DPoP with mTLS client authentication.
            client = self.http(
                certificate=self.variant.sender == "mtls" if certificate is None else certificate
            )
            response = client.request(method, target, headers=sent, params=params)
            before = self.nonces.get(origin(target))
            self.learn_nonce(target, response)
            if (
                attempt == 0
                and retry_nonce
                and made is not None
                and proof is None
                and self.asks_for_nonce(response)
                and self.nonces.get(origin(target)) != before
            ):
                self.nonce_challenges.append(target)
                continue
            break
        assert response is not None
        return response


def _default_alg(key: Mapping[str, Any]) -> str:
    if key.get("alg"):
        return str(key["alg"])
    return {"RSA": "PS256", "EC": "ES256", "OKP": "EdDSA"}.get(str(key.get("kty")), "ES256")
