# Why over 450 lines: the client's conversation with one AS (discovery, PAR, the authorization
# response checks, token, refresh, ID token) shares one configuration and one evidence trail;
# the async twin (client/aio.py) mirrors it method for method.
"""The FAPI 2.0 client: discovery from an authoritative issuer, PAR + PKCE, the authorization
response checks, token and refresh requests with private_key_jwt or mTLS, DPoP or
certificate-bound tokens, and ID token validation; with FAPI 2.0 Message Signing, a signed
request object at PAR and signed authorization responses (JARM, client/signing.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import ssl
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from corridor.client import signing
from corridor.client.errors import (
    AuthorizationResponseError,
    ClientError,
    IdTokenError,
    MetadataError,
    SenderConstraintError,
    TokenEndpointError,
    server_description,
)
from corridor.core import strictjson
from corridor.core.clock import Clock, SystemClock
from corridor.core.dpop import make_proof
from corridor.core.jose import FAPI_ALGORITHMS, JoseFailure, SigningKey, read_header, verify_with_keys
from corridor.core.pkce import new_verifier, s256_challenge
from corridor.core.randomness import new_secret_token

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MTLS_AUTH = ("tls_client_auth", "self_signed_tls_client_auth")
#: FAPI2 5.3.3.2-7: clients SHOULD NOT send nonces longer than 64 characters.
MAX_NONCE = 64


@dataclass(frozen=True)
class AuthorizationHandle:
    """What must come back with the authorization response (FAPI2 5.3.3.2-3/4: the PKCE
    verifier is bound to this request and to the user agent that started it)."""

    state: str
    code_verifier: str
    redirect_uri: str
    nonce: str | None
    scope: str
    request_uri: str
    #: RFC 8707 resources asked for; sent again at the token endpoint and on every refresh.
    resources: tuple[str, ...] = ()
    #: RFC 9396 details asked for (a step-up asks for them again).
    authorization_details: tuple[Mapping[str, Any], ...] = ()
    #: The response_mode asked for; ``jwt``/``query.jwt``: only a JARM response is accepted.
    response_mode: str | None = None
    #: FMS 5.3.2: the signed request object pushed (kept as evidence), or None.
    request_object: str | None = None


@dataclass(frozen=True)
class StepUp:
    """RFC 9470 3: a resource server's ``insufficient_user_authentication`` challenge."""

    acr_values: str | None
    max_age: int | None
    description: str = ""


_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)="((?:[^"\\]|\\.)*)"')


def step_up_challenge(response: httpx.Response) -> StepUp | None:
    """The step-up a resource server asks for in its 401 (RFC 9470 3), or None."""
    if response.status_code != 401:
        return None
    for challenge in response.headers.get_list("www-authenticate"):
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        if params.get("error") == "insufficient_user_authentication":
            max_age = params.get("max_age")
            return StepUp(
                params.get("acr_values") or None,
                int(max_age) if max_age and max_age.isdigit() else None,
                re.sub(r"\\(.)", r"\1", params.get("error_description", "")),
            )
    return None


@dataclass
class TokenSet:
    access_token: str
    token_type: str
    expires_at: float
    scope: str
    refresh_token: str | None = None
    id_token_claims: Mapping[str, Any] | None = None
    authorization_details: Sequence[Mapping[str, Any]] = ()
    resources: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)
    #: JARM: the verified signed authorization response (compact JWS), kept as evidence.
    authorization_response: str | None = None
    #: RFC 6749 4.4: the client credentials request these tokens answered (no refresh token:
    #: :meth:`FapiClient.refresh` asks again with it).
    client_credentials: Mapping[str, Any] | None = None


def _covers(resource: str, url: str) -> bool:
    """RFC 9728 3.3: the metadata's resource is the API the client called (same origin, path prefix)."""
    r, u = urlsplit(resource), urlsplit(url)
    if (r.scheme, r.netloc.lower()) != (u.scheme, u.netloc.lower()):
        return False
    prefix = r.path.rstrip("/")
    return u.path == prefix or u.path.startswith(prefix + "/") or not prefix


def _form_value(value: Any) -> Any:
    """A parameter as a form field: a list stays repeated (resource), a structure is JSON
    (authorization_details, RFC 9396 2), a number is its text."""
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return json.dumps(value)
    return value if isinstance(value, str | list) else str(value)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class FapiClient:
    """One registered client at one authorization server."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        *,
        redirect_uri: str = "",
        key: SigningKey | None = None,
        auth_method: str = "private_key_jwt",
        sender_constraint: str = "dpop",
        certificate: tuple[str, str] | None = None,
        ca_file: str | None = None,
        use_mtls_endpoint_aliases: bool = False,
        dpop_key: SigningKey | None = None,
        clock: Clock | None = None,
        timeout: float = 20.0,
        signed_request: bool = False,
        response_mode: str | None = None,
        request_object_lifetime: int = signing.DEFAULT_REQUEST_OBJECT_LIFETIME,
    ) -> None:
        if auth_method == "private_key_jwt" and key is None:
            raise ClientError("private_key_jwt needs the client's signing key", "FAPI2 5.3.3.1-2")
        if signed_request:
            signing.require_key(key)
        signing.check_options(response_mode, request_object_lifetime)
        if (auth_method in MTLS_AUTH or sender_constraint == "mtls") and certificate is None:
            raise ClientError("mTLS needs a client certificate (cert_file, key_file)", "RFC 8705 2")
        self.issuer = issuer  # compared exactly, never normalized (FAPI2 5.3.3.1-11)
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.key = key
        self.auth_method = auth_method
        self.sender_constraint = sender_constraint
        self.use_aliases = (
            use_mtls_endpoint_aliases or auth_method in MTLS_AUTH or sender_constraint == "mtls"
        )
        self.dpop_key = dpop_key or SigningKey.generate("ES256")
        self.clock = clock or SystemClock()
        # C1 / FAPI2 5.2.1: TLS 1.2+ with certificate checks (RFC 9525), never switched off.
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if certificate is not None:
            context.load_cert_chain(*certificate)
        self.http = httpx.Client(verify=context, timeout=timeout, follow_redirects=False)
        #: RFC 9449 8/9: the latest nonce per origin (AS and each RS keep their own).
        self.nonces: dict[str, str] = {}
        self.metadata: dict[str, Any] = {}
        #: Where the metadata came from, when, and the SHA-256 of what was received.
        self.metadata_evidence: dict[str, Any] = {}
        self._jwks: list[dict[str, Any]] = []
        #: FMS 5.3.2: push every authorization parameter in a signed request object.
        self.signed_request = signed_request
        #: FMS 5.4.2-1: ``jwt`` (or ``query.jwt``) asks for JARM; None sends no response_mode.
        self.response_mode = response_mode
        self.request_object_lifetime = request_object_lifetime
        #: The latest verified JARM response (compact JWS), for a caller to keep as evidence.
        self.last_authorization_response: str | None = None

    @staticmethod
    def discover_resource(
        resource_url: str, *, ca_file: str | None = None, timeout: float = 20.0
    ) -> dict[str, Any]:
        """RFC 9728: from an API's URL to its authorization servers. The metadata location comes
        from the ``resource_metadata`` parameter of the API's challenge, or the well-known path;
        its ``resource`` must be the API's identifier (RFC 9728 3.3)."""
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with httpx.Client(verify=context, timeout=timeout, follow_redirects=False) as http:
            location = None
            try:
                probe = http.get(resource_url)
            except httpx.HTTPError as exc:
                raise MetadataError(f"the API is unreachable over TLS: {exc}", "RFC 9728 5") from exc
            for challenge in probe.headers.get_list("www-authenticate"):
                match = re.search(r'resource_metadata="([^"]+)"', challenge)
                if match:
                    location = match.group(1)
                    break
            parts = urlsplit(resource_url)
            origin = f"{parts.scheme}://{parts.netloc}"
            location = location or origin + "/.well-known/oauth-protected-resource" + parts.path.rstrip("/")
            if not location.startswith("https://"):
                raise MetadataError("resource metadata must come over https", "RFC 9728 3")
            response = http.get(location)
            if response.status_code != 200 and location != origin + "/.well-known/oauth-protected-resource":
                response = http.get(origin + "/.well-known/oauth-protected-resource")
        try:
            metadata = strictjson.loads(response.content)
        except ValueError as exc:
            raise MetadataError("resource metadata is not JSON", "RFC 9728 3.2") from exc
        if not isinstance(metadata, dict) or not isinstance(metadata.get("resource"), str):
            raise MetadataError("resource metadata has no resource", "RFC 9728 2")
        if not _covers(metadata["resource"], resource_url):
            raise MetadataError("resource metadata describes another resource", "RFC 9728 3.3")
        servers = metadata.get("authorization_servers")
        if not isinstance(servers, list) or not servers or not all(isinstance(s, str) for s in servers):
            raise MetadataError("resource metadata names no authorization server", "RFC 9728 2")
        return metadata

    # -- configuration from an authoritative issuer (C12-C14) ----------------------------------------

    def discover(self) -> dict[str, Any]:
        """FAPI2 5.3.3.1-9/-11: metadata from the issuer's well-known URL; ``issuer`` must match."""
        for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            url = self.issuer + path
            try:
                response = self.http.get(url, headers={"Accept": "application/json"})
            except httpx.HTTPError as exc:
                raise MetadataError(f"metadata unreachable over TLS: {exc}", "FAPI2 5.3.3.1-10") from exc
            if response.status_code != 200:
                continue
            try:
                metadata = strictjson.loads(response.content)
            except ValueError as exc:
                raise MetadataError("metadata is not JSON", "RFC 8414 3.2") from exc
            if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
                raise MetadataError("metadata names another issuer", "FAPI2 5.3.3.1-11, RFC 8414 3.3")
            self.metadata = metadata
            self.metadata_evidence = {
                "source": url,
                "fetched_at": self.clock.now(),
                "sha256": hashlib.sha256(response.content).hexdigest(),
            }
            return metadata
        raise MetadataError("no metadata at the issuer's well-known URLs", "FAPI2 5.3.3.1-9")

    def endpoint(self, name: str) -> str:
        """C3/C10/C12: only endpoints from metadata; the mTLS alias when this client uses mTLS."""
        if not self.metadata:
            self.discover()
        aliases = self.metadata.get("mtls_endpoint_aliases") or {}
        url = aliases.get(name) if self.use_aliases and isinstance(aliases, dict) else None
        url = url or self.metadata.get(name)
        if not isinstance(url, str) or not url.startswith("https://"):
            raise MetadataError(f"metadata has no https {name}", "FAPI2 5.3.3.1-9")
        return url

    # -- authorization (C17-C21) -------------------------------------------------------------------

    def start(
        self,
        scope: str = "openid",
        *,
        resource: str | Sequence[str] | None = None,
        authorization_details: Sequence[Mapping[str, Any]] | None = None,
        nonce: str | None = None,
        acr_values: str | None = None,
        max_age: int | None = None,
        extra: Mapping[str, Any] | None = None,
        signed_request: bool | None = None,
        response_mode: str | None = None,
    ) -> tuple[str, AuthorizationHandle]:
        """PAR with PKCE S256 (fresh verifier), then the URL to send the user to: only
        ``client_id`` and ``request_uri`` (FAPI2 5.3.3.2-6). ``acr_values`` / ``max_age``: what
        a step-up asks for (RFC 9470 4). ``signed_request`` / ``response_mode`` override the
        client's options for this request (FMS 5.3.2: all parameters in a signed request
        object; FMS 5.4.2-1: ``jwt`` asks for JARM; ``query`` asks for a plain response)."""
        if not self.redirect_uri:
            raise ClientError("a code flow needs the client's redirect_uri", "RFC 6749 3.1.2")
        signed = self.signed_request if signed_request is None else signed_request
        mode = response_mode or self.response_mode
        signing.check_options(mode, self.request_object_lifetime)
        if signed:
            signing.require_key(self.key)
        if nonce is not None and len(nonce) > MAX_NONCE:
            raise ClientError("nonce longer than 64 characters", "FAPI2 5.3.3.2-7")
        if "openid" in scope.split() and nonce is None:
            nonce = new_secret_token()
        verifier, state = new_verifier(), new_secret_token()
        form: dict[str, Any] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if nonce:
            form["nonce"] = nonce
        resources = (resource,) if isinstance(resource, str) else tuple(resource or ())
        if resources:
            form["resource"] = list(resources)
        if authorization_details:
            form["authorization_details"] = list(authorization_details)
        if acr_values:
            form["acr_values"] = acr_values
        if max_age is not None:
            form["max_age"] = max_age
        if self.sender_constraint == "dpop":
            form["dpop_jkt"] = self.dpop_key.thumbprint()  # RFC 9449 10: bind the code to our key
        if mode:
            form["response_mode"] = mode
        form.update(extra or {})
        jar = None
        if signed:
            assert self.key is not None
            # RFC 9101 4: one value stays a string, several are a JSON array (RFC 8707 2).
            if len(resources) == 1:
                form["resource"] = resources[0]
            jar = signing.request_object(
                self.key,
                client_id=self.client_id,
                issuer=self.issuer,
                params=form,
                now=self.clock.now(),
                lifetime=self.request_object_lifetime,
            )
            # FMS 5.3.2-1: nothing outside the request object but client_id (and client authentication).
            pushed: dict[str, Any] = {"client_id": self.client_id, "request": jar}
        else:
            pushed = {k: _form_value(v) for k, v in form.items()}
        body = self._post("pushed_authorization_request_endpoint", pushed, dpop=False, expect=201)
        request_uri = body.get("request_uri")
        if not isinstance(request_uri, str):
            raise TokenEndpointError("PAR answer has no request_uri", "invalid_response", 201, "RFC 9126 2.2")
        url = self.endpoint("authorization_endpoint")
        query = urlencode({"client_id": self.client_id, "request_uri": request_uri})
        handle = AuthorizationHandle(
            state,
            verifier,
            self.redirect_uri,
            nonce,
            scope,
            request_uri,
            resources,
            tuple(authorization_details or ()),
            mode,
            jar,
        )
        return f"{url}{'&' if '?' in url else '?'}{query}", handle

    def step_up(self, handle: AuthorizationHandle, challenge: StepUp) -> tuple[str, AuthorizationHandle]:
        """RFC 9470 4: ask again for what ``handle`` asked for, with the authentication the
        resource server wants; send the user to the returned URL and :meth:`finish` as usual."""
        return self.start(
            handle.scope,
            resource=handle.resources or None,
            authorization_details=handle.authorization_details or None,
            acr_values=challenge.acr_values,
            max_age=challenge.max_age,
            signed_request=handle.request_object is not None,
            response_mode=handle.response_mode,
        )

    def finish(
        self, callback_url: str, handle: AuthorizationHandle, *, extra: Mapping[str, str] | None = None
    ) -> TokenSet:
        """C19 / RFC 9207: ``iss`` required and exact; ``state`` must match; then redeem the code.
        JARM (``handle.response_mode`` jwt): the parameters come only from the verified
        ``response`` JWT (FMS 5.4.2), never from the URL; the JWS is kept on the TokenSet."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback_url).query, keep_blank_values=True).items()}
        jarm = None
        if handle.response_mode in signing.JARM_MODES:
            jarm = params.get("response")
            if not jarm:
                error = params.get("error")
                plain = f" (a plain error {server_description(error)!r})" if error is not None else ""
                raise AuthorizationResponseError(
                    f"JARM was asked for, but the authorization response has no signed response{plain}",
                    signing.RULE_JARM_MODE,
                )
            claims = signing.verify_jarm(
                jarm,
                issuer=self.issuer,
                client_id=self.client_id,
                server_keys=lambda refresh: self.server_keys(refresh=refresh),
                advertised_algs=self.metadata.get("authorization_signing_alg_values_supported"),
                now=self.clock.now(),
            )
            self.last_authorization_response = jarm  # verified: evidence, even of an error response
            # JARM 2.1: the response parameters are the JWT's claims (iss doubles as RFC 9207's).
            params = {k: v for k, v in claims.items() if isinstance(v, str)}
        iss = params.get("iss")
        if iss is None:
            raise AuthorizationResponseError(
                "the authorization response has no iss", "FAPI2 5.3.3.2-5, RFC 9207 2.4"
            )
        if iss != self.issuer:
            raise AuthorizationResponseError(
                "the authorization response comes from another issuer", "FAPI2 5.3.3.2-5, RFC 9207 2.4"
            )
        if not hmac.compare_digest(params.get("state", "").encode(), handle.state.encode()):
            raise AuthorizationResponseError(
                "state does not match this request", "RFC 6749 4.1.2, FAPI2 5.3.3.2-4"
            )
        if "error" in params:
            raise AuthorizationResponseError(
                f"the authorization server refused: {server_description(params['error'])}",
                "RFC 6749 4.1.2.1",
                error=params["error"],
                description=server_description(params.get("error_description")),
            )
        code = params.get("code")
        if not code:
            raise AuthorizationResponseError("the authorization response has no code", "RFC 6749 4.1.2")
        body = self._post(
            "token_endpoint",
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": handle.redirect_uri,
                "code_verifier": handle.code_verifier,
                **({"resource": list(handle.resources)} if handle.resources else {}),
                **(extra or {}),
            },
        )
        tokens = self._token_set(body, nonce=handle.nonce, expect_id_token="openid" in handle.scope.split())
        tokens.resources = handle.resources
        tokens.authorization_response = jarm
        return tokens

    def client_credentials(
        self,
        scope: str = "",
        *,
        resource: str | Sequence[str] | None = None,
        authorization_details: Sequence[Mapping[str, Any]] | None = None,
    ) -> TokenSet:
        """RFC 6749 4.4 under FAPI 2.0: a sender-constrained token for the client itself (no user,
        no refresh token, no ID token), for ``scope``, ``resource`` (RFC 8707) and typed
        ``authorization_details`` (RFC 9396 6)."""
        form: dict[str, Any] = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        resources = (resource,) if isinstance(resource, str) else tuple(resource or ())
        if resources:
            form["resource"] = list(resources)
        if authorization_details:
            form["authorization_details"] = json.dumps(list(authorization_details))
        body = self._post("token_endpoint", form)
        tokens = self._token_set(body, nonce=None, expect_id_token=False)
        if tokens.refresh_token is not None or tokens.id_token_claims is not None:
            raise TokenEndpointError(
                "a client credentials response carries a refresh or ID token", "invalid_response", 200
            )  # RFC 6749 4.4.3
        tokens.resources = resources
        tokens.client_credentials = dict(form)
        return tokens

    def refresh(self, tokens: TokenSet) -> TokenSet:
        """C9: uses a rotated refresh token when the server sends one, keeps the old one otherwise;
        client credentials tokens are asked for again (RFC 6749 4.4.3: they have no refresh token)."""
        asked = tokens.client_credentials
        if asked is not None:
            return self.client_credentials(
                str(asked.get("scope", "")),
                resource=tokens.resources,
                authorization_details=json.loads(asked["authorization_details"])
                if "authorization_details" in asked
                else None,
            )
        if not tokens.refresh_token:
            raise ClientError("no refresh token", "RFC 6749 6")
        form: dict[str, Any] = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        if tokens.resources:
            form["resource"] = list(tokens.resources)  # RFC 8707 2.2: the same API, not another one
        body = self._post("token_endpoint", form)
        fresh = self._token_set(body, nonce=None, expect_id_token=False)
        fresh.resources = tokens.resources
        if fresh.refresh_token is None:
            fresh.refresh_token = tokens.refresh_token
        return fresh

    # -- requests to the AS ---------------------------------------------------------------------------

    def client_authentication(self) -> dict[str, str]:
        """C5/C8: private_key_jwt with aud = the issuer as a string, a fresh jti and a short exp;
        or only client_id for mTLS (the certificate is on the connection)."""
        if self.auth_method in MTLS_AUTH:
            return {"client_id": self.client_id}
        assert self.key is not None
        now = int(self.clock.now())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.issuer,
            "jti": new_secret_token(),
            "iat": now,
            "exp": now + 60,
        }
        return {"client_assertion_type": JWT_BEARER, "client_assertion": self.key.sign(claims, "JWT")}

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """C22: a fresh proof (new jti) with the latest nonce of that origin."""
        return make_proof(
            self.dpop_key,
            method,
            url,
            nonce=self.nonces.get(_origin(url)),
            access_token=access_token,
            iat=self.clock.now(),
        )

    def remember_nonce(self, url: str, response: httpx.Response) -> None:
        """C11: pick up a new nonce from any response."""
        nonce = response.headers.get("dpop-nonce")
        if nonce:
            self.nonces[_origin(url)] = nonce

    def _post(
        self, endpoint: str, form: dict[str, Any], *, dpop: bool = True, expect: int = 200
    ) -> dict[str, Any]:
        url = self.endpoint(endpoint)
        use_dpop = self.sender_constraint == "dpop" and (
            dpop or endpoint != "pushed_authorization_request_endpoint"
        )
        for attempt in range(2):
            headers = {"DPoP": self.proof("POST", url)} if use_dpop else {}
            try:
                response = self.http.post(url, data={**form, **self.client_authentication()}, headers=headers)
            except httpx.HTTPError as exc:
                raise ClientError(f"{endpoint} unreachable: {exc}") from exc
            previous = self.nonces.get(_origin(url))
            self.remember_nonce(url, response)
            body = self._json(response)
            if response.status_code == expect:
                return body
            error = str(body.get("error", "invalid_response"))
            if error == "use_dpop_nonce" and use_dpop and attempt == 0:
                if self.nonces.get(_origin(url)) in (None, previous):
                    raise ClientError("use_dpop_nonce without a new DPoP-Nonce header", "RFC 9449 8")
                continue  # RFC 9449 8: one retry with the server's nonce
            raise TokenEndpointError(
                f"{endpoint} refused: {error}",
                error,
                response.status_code,
                description=server_description(body.get("error_description")),
            )
        raise ClientError("the server kept asking for another DPoP nonce", "RFC 9449 8")

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = strictjson.loads(response.content) if response.content else {}
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}

    # -- token responses -------------------------------------------------------------------------------

    def _token_set(self, body: Mapping[str, Any], *, nonce: str | None, expect_id_token: bool) -> TokenSet:
        access_token, token_type = body.get("access_token"), body.get("token_type")
        if not isinstance(access_token, str) or not isinstance(token_type, str):
            raise TokenEndpointError("the token response is incomplete", "invalid_response", 200)
        if self.sender_constraint == "dpop" and token_type.lower() != "dpop":
            # RFC 9449 5: a client that asked for DPoP discards anything else.
            raise SenderConstraintError("the server issued a bearer token to a DPoP request", "RFC 9449 5")
        expires_in = body.get("expires_in")
        claims = None
        id_token = body.get("id_token")
        if isinstance(id_token, str):
            claims = self.validate_id_token(id_token, nonce)
        elif expect_id_token:
            raise IdTokenError("openid was requested but no id_token came back", "OIDC Core 3.1.3.3")
        refresh_token = body.get("refresh_token")
        details = body.get("authorization_details")
        return TokenSet(
            access_token=access_token,
            token_type=token_type,
            expires_at=self.clock.now() + (expires_in if isinstance(expires_in, int | float) else 60),
            scope=str(body.get("scope", "")),
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
            id_token_claims=claims,
            authorization_details=tuple(details) if isinstance(details, list) else (),
            raw=dict(body),
        )

    def server_keys(self, refresh: bool = False) -> list[dict[str, Any]]:
        if not self._jwks or refresh:
            response = self.http.get(self.endpoint("jwks_uri"))
            keys = self._json(response).get("keys")
            self._jwks = [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []
        return self._jwks

    def validate_id_token(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        """OIDC Core 3.1.3.7 with FAPI algorithms only (FAPI2 5.4.1): signature, iss, aud, exp, iat, nonce."""
        try:
            header = read_header(id_token)
            if header["alg"] not in FAPI_ALGORITHMS:
                raise IdTokenError("the ID token alg is not allowed", "FAPI2 5.4.1-1b")
            try:
                claims = verify_with_keys(id_token, header, self.server_keys())
            except JoseFailure:
                claims = verify_with_keys(id_token, header, self.server_keys(refresh=True))
        except JoseFailure as exc:
            raise IdTokenError(f"the ID token is not valid: {exc}", "OIDC Core 3.1.3.7") from exc
        now = self.clock.now()
        aud = claims.get("aud")
        if claims.get("iss") != self.issuer:
            raise IdTokenError("the ID token comes from another issuer", "OIDC Core 3.1.3.7-2")
        if not (aud == self.client_id or (isinstance(aud, list) and self.client_id in aud)):
            raise IdTokenError("the ID token is for another audience", "OIDC Core 3.1.3.7-3")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp <= now:
            raise IdTokenError("the ID token has expired", "OIDC Core 3.1.3.7-9")
        if not isinstance(iat, int | float) or iat > now + 60:
            raise IdTokenError("the ID token iat is not valid", "OIDC Core 3.1.3.7-10")
        if nonce is not None and claims.get("nonce") != nonce:
            raise IdTokenError("the ID token nonce does not match", "OIDC Core 3.1.3.7-11")
        return claims

    # -- calling APIs ----------------------------------------------------------------------------------

    def auth(self, tokens: TokenSet) -> FapiAuth:
        return FapiAuth(self, tokens)

    def close(self) -> None:
        self.http.close()


class FapiAuth(httpx.Auth):
    """C6: the token in the Authorization header (DPoP with a fresh proof and ``ath``, or Bearer
    for certificate-bound tokens), one retry for an RS nonce, and refresh before expiry.
    Works with ``httpx.Client`` and ``httpx.AsyncClient``."""

    def __init__(self, client: FapiClient, tokens: TokenSet) -> None:
        self.client = client
        self.tokens = tokens

    def _needs_refresh(self) -> bool:
        renewable = self.tokens.refresh_token is not None or self.tokens.client_credentials is not None
        return self.tokens.expires_at - 30 < self.client.clock.now() and renewable

    def _authorize(self, request: httpx.Request) -> None:
        token = self.tokens.access_token
        url = str(request.url.copy_with(query=None, fragment=None))
        if self.client.sender_constraint == "dpop":
            request.headers["Authorization"] = f"DPoP {token}"
            request.headers["DPoP"] = self.client.proof(request.method, url, access_token=token)
        else:
            request.headers["Authorization"] = f"Bearer {token}"

    @staticmethod
    def _nonce_challenge(response: httpx.Response) -> bool:
        challenge = response.headers.get("www-authenticate", "")
        return (
            response.status_code == 401
            and 'error="use_dpop_nonce"' in challenge
            and "dpop-nonce" in response.headers
        )

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._needs_refresh():
            self.tokens = self.client.refresh(self.tokens)
        self._authorize(request)
        response = yield request
        self.client.remember_nonce(str(request.url), response)
        if self._nonce_challenge(response):
            self._authorize(request)  # RFC 9449 9: once, with the resource server's nonce
            retried = yield request
            self.client.remember_nonce(str(request.url), retried)  # issue 13 F6: kept for the next

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._needs_refresh():
            # The token endpoint is called with the client's own connection, off the event loop.
            self.tokens = await asyncio.to_thread(self.client.refresh, self.tokens)
        self._authorize(request)
        response = yield request
        self.client.remember_nonce(str(request.url), response)
        if self._nonce_challenge(response):
            self._authorize(request)
            retried = yield request
            self.client.remember_nonce(str(request.url), retried)


__all__ = ["AuthorizationHandle", "FapiAuth", "FapiClient", "StepUp", "TokenSet", "step_up_challenge"]
