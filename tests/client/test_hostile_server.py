"""corridor.client against a deliberately broken authorization server and resource server
(a small Starlette app on real TLS): every misbehaviour is refused with a typed exception,
and nonce rotation and refresh-token rotation are followed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corridor.client import FapiClient
from corridor.client.errors import (
    AuthorizationResponseError,
    ClientError,
    IdTokenError,
    MetadataError,
    SenderConstraintError,
)
from corridor.core.jose import SigningKey, read_header
from corridor.server.forms import parse_pairs
from corridor.transport.listeners import uvicorn_server
from corridor.transport.tls import DevTLS, server_ssl_context
from tests.support import decode_jwt, free_socket, ssl_context_of

REDIRECT = "https://client.example.org/cb"


class Hostile:
    """The server's state and the misbehaviour under test."""

    def __init__(self) -> None:
        self.issuer = ""
        self.key = SigningKey.generate("ES256")
        self.mode: set[str] = set()
        self.nonce = "nonce-1"
        self.rs_nonce = "rs-nonce-1"  # an RS keeps its own nonces (RFC 9449 9)
        self.seen: list[dict[str, Any]] = []  # what the client sent to /token and /api
        self.refresh_count = 0
        #: Message Signing tests: more metadata (e.g. authorization_signing_alg_values_supported),
        #: more published keys, and how often the JWKS was fetched.
        self.extra_metadata: dict[str, Any] = {}
        self.extra_keys: list[dict[str, Any]] = []
        self.jwks_fetches = 0

    def last_nonce(self) -> str | None:
        """The OIDC nonce of the latest pushed request."""
        pars = [s for s in self.seen if s.get("endpoint") == "par"]
        if pars and "request" in pars[-1]:  # FAPI 2.0 Message Signing: inside the request object
            nonce = decode_jwt(pars[-1]["request"])[1].get("nonce")
            return str(nonce) if nonce else None
        return str(pars[-1]["nonce"]) if pars and pars[-1].get("nonce") else None

    def id_token(self, client_id: str, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "u1",
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
        }
        if nonce:
            claims["nonce"] = nonce
        if "id_token_wrong_aud" in self.mode:
            claims["aud"] = "someone-else"
        if "id_token_wrong_nonce" in self.mode:
            claims["nonce"] = "not-yours"
        if "id_token_rs256" in self.mode:
            rsa = RSAKey.generate_key(2048)
            return jws.serialize_compact(
                {"alg": "RS256", "kid": self.key.kid}, json.dumps(claims), rsa, algorithms=["RS256"]
            )
        return self.key.sign(claims, "JWT")


def build_app(state: Hostile) -> Starlette:
    async def metadata(request: Request) -> Response:
        issuer = "https://evil.example" if "wrong_issuer" in state.mode else state.issuer
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": state.issuer + "/authorize",
                "pushed_authorization_request_endpoint": state.issuer + "/par",
                "token_endpoint": state.issuer + "/token",
                "jwks_uri": state.issuer + "/jwks",
                "authorization_response_iss_parameter_supported": True,
                **state.extra_metadata,
            }
        )

    async def jwks(request: Request) -> Response:
        state.jwks_fetches += 1
        return JSONResponse({"keys": [state.key.public_jwk, *state.extra_keys]})

    async def par(request: Request) -> Response:
        form = dict(parse_pairs((await request.body()).decode()))
        state.seen.append({"endpoint": "par", **form})
        return JSONResponse(
            {"request_uri": "urn:ietf:params:oauth:request_uri:x", "expires_in": 60}, status_code=201
        )

    def nonce_ok(request: Request, expected: str | None = None) -> bool:
        proof = request.headers.get("dpop", "")
        from corridor.core.b64 import b64url_decode

        try:
            claims = json.loads(b64url_decode(proof.split(".")[1]))
        except (ValueError, IndexError):
            return False
        return bool(claims.get("nonce") == (expected or state.nonce))

    async def token(request: Request) -> Response:
        form = dict(parse_pairs((await request.body()).decode()))
        state.seen.append({"endpoint": "token", **form, "dpop": request.headers.get("dpop")})
        if "nonce_without_header" in state.mode:
            return JSONResponse({"error": "use_dpop_nonce"}, status_code=400)
        if not nonce_ok(request):
            return JSONResponse(
                {"error": "use_dpop_nonce"}, status_code=400, headers={"DPoP-Nonce": state.nonce}
            )
        body: dict[str, Any] = {"access_token": f"at-{len(state.seen)}", "expires_in": 300, "scope": "openid"}
        body["token_type"] = "Bearer" if "bearer" in state.mode else "DPoP"
        if form.get("grant_type") == "authorization_code":
            body["refresh_token"] = "rt-0"
            body["id_token"] = state.id_token(
                str(form.get("client_id", "hostile-client")), state.last_nonce()
            )
        elif "rotate_refresh" in state.mode:
            state.refresh_count += 1
            body["refresh_token"] = f"rt-{state.refresh_count}"
        headers = {}
        if "rotate_nonce" in state.mode:
            state.nonce = state.nonce + "x"
            headers["DPoP-Nonce"] = state.nonce  # picked up from a 200 (C11)
        return JSONResponse(body, headers=headers)

    async def api(request: Request) -> Response:
        state.seen.append(
            {
                "endpoint": "api",
                "authorization": request.headers.get("authorization"),
                "dpop": request.headers.get("dpop"),
            }
        )
        if not nonce_ok(request, state.rs_nonce):
            return JSONResponse(
                {},
                status_code=401,
                headers={
                    "WWW-Authenticate": 'DPoP error="use_dpop_nonce", algs="ES256"',
                    "DPoP-Nonce": state.rs_nonce,
                },
            )
        return JSONResponse({"ok": True})

    async def resource_metadata(request: Request) -> Response:
        resource = "https://evil.example" if "wrong_resource" in state.mode else state.issuer
        return JSONResponse({"resource": resource, "authorization_servers": [state.issuer]})

    return Starlette(
        routes=[
            Route("/.well-known/oauth-protected-resource", resource_metadata),
            Route("/.well-known/openid-configuration", metadata),
            Route("/jwks", jwks),
            Route("/par", par, methods=["POST"]),
            Route("/token", token, methods=["POST"]),
            Route("/api", api),
        ]
    )


@contextmanager
def serving_hostile(tls: DevTLS) -> Iterator[Hostile]:
    """The hostile server on a free port over real TLS, until the block ends."""
    state = Hostile()
    sock = free_socket()
    state.issuer = f"https://localhost:{sock.getsockname()[1]}"
    server = uvicorn_server(
        build_app(state),
        "127.0.0.1",
        sock.getsockname()[1],
        server_ssl_context(tls.cert_file, tls.key_file),
        log_level="warning",
        lifespan="off",
    )
    # uvicorn annotates int | None but hands it to asyncio.wait_for, which takes float seconds.
    server.config.timeout_graceful_shutdown = 0.2  # type: ignore[assignment]
    thread = threading.Thread(target=asyncio.run, args=(server.serve([sock]),), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def hostile(tls: DevTLS) -> Iterator[Hostile]:
    with serving_hostile(tls) as state:
        yield state


@pytest.fixture
def client(hostile: Hostile, tls: DevTLS) -> Iterator[FapiClient]:
    hostile.mode = set()
    hostile.nonce = "nonce-1"
    hostile.seen.clear()
    hostile.extra_metadata = {}
    hostile.extra_keys = []
    c = FapiClient(
        hostile.issuer,
        "hostile-client",
        redirect_uri=REDIRECT,
        key=SigningKey.generate("ES256"),
        ca_file=str(tls.ca_file),
    )
    yield c
    c.close()


def callback(hostile: Hostile, handle: Any, **over: str) -> str:
    params = {"code": "c0de", "state": handle.state, "iss": hostile.issuer, **over}
    return (
        REDIRECT + "?" + "&".join(f"{k}={httpx.QueryParams({k: v})[k]}" for k, v in params.items() if v != "")
    )


def test_baseline_works(client: FapiClient, hostile: Hostile) -> None:
    """Positive control: the same server, behaving, gives tokens."""
    _, handle = client.start("openid")
    tokens = client.finish(callback(hostile, handle), handle)
    assert tokens.token_type == "DPoP" and tokens.id_token_claims is not None


def test_metadata_with_another_issuer(client: FapiClient, hostile: Hostile) -> None:
    hostile.mode = {"wrong_issuer"}
    with pytest.raises(MetadataError, match=r"5\.3\.3\.1-11"):
        client.discover()


@pytest.mark.parametrize("over", [{"iss": ""}, {"iss": "https://evil.example"}, {"state": "forged"}])
def test_bad_authorization_responses(client: FapiClient, hostile: Hostile, over: dict[str, str]) -> None:
    _, handle = client.start("openid")
    with pytest.raises(AuthorizationResponseError):
        client.finish(callback(hostile, handle, **over), handle)
    assert not [s for s in hostile.seen if s["endpoint"] == "token"]  # /token was never called


def test_error_response_is_typed(client: FapiClient, hostile: Hostile) -> None:
    _, handle = client.start("openid")
    with pytest.raises(AuthorizationResponseError) as refused:
        client.finish(callback(hostile, handle, code="", error="access_denied"), handle)
    assert refused.value.error == "access_denied"


def test_bearer_token_after_a_dpop_request(client: FapiClient, hostile: Hostile) -> None:
    """C4 / RFC 9449 5."""
    hostile.mode = {"bearer"}
    _, handle = client.start("openid")
    with pytest.raises(SenderConstraintError):
        client.finish(callback(hostile, handle), handle)


@pytest.mark.parametrize("mode", ["id_token_rs256", "id_token_wrong_aud", "id_token_wrong_nonce"])
def test_bad_id_tokens(client: FapiClient, hostile: Hostile, mode: str) -> None:
    hostile.mode = {mode}
    _, handle = client.start("openid")
    with pytest.raises(IdTokenError):
        client.finish(callback(hostile, handle), handle)


def test_use_dpop_nonce_without_a_nonce_header(client: FapiClient, hostile: Hostile) -> None:
    hostile.mode = {"nonce_without_header"}
    _, handle = client.start("openid")
    with pytest.raises(ClientError, match=r"RFC 9449 8\)"):
        client.finish(callback(hostile, handle), handle)


def test_follows_nonce_rotation_and_refresh_rotation(client: FapiClient, hostile: Hostile) -> None:
    """C9, C11: a rotated AS nonce (from a 200) and a rotated refresh token are used next time;
    the RS's nonce challenge is answered once; every proof has a fresh jti (C22)."""
    hostile.mode = {"rotate_nonce", "rotate_refresh"}
    _, handle = client.start("openid")
    tokens = client.finish(callback(hostile, handle), handle)
    first_refresh = client.refresh(tokens)
    assert first_refresh.refresh_token == "rt-1"
    second = client.refresh(first_refresh)
    assert second.refresh_token == "rt-2"
    refresh_forms = [
        s for s in hostile.seen if s["endpoint"] == "token" and s.get("grant_type") == "refresh_token"
    ]
    assert [f["refresh_token"] for f in refresh_forms][-2:] == ["rt-0", "rt-1"]
    # After the code exchange rotated the nonce, the refreshes needed no further retry.
    assert len(refresh_forms) == 2
    with httpx.Client(
        verify=ssl_context_of(client.http),
        auth=client.auth(second),
    ) as http:
        response = http.get(hostile.issuer + "/api")
    assert response.status_code == 200
    api_calls = [s for s in hostile.seen if s["endpoint"] == "api"]
    assert len(api_calls) == 2  # one challenge, one retry with the RS nonce
    jtis = {
        json.loads(__import__("corridor.core.b64", fromlist=["b"]).b64url_decode(s["dpop"].split(".")[1]))[
            "jti"
        ]
        for s in hostile.seen
        if s.get("dpop")
    }
    assert len(jtis) == len([s for s in hostile.seen if s.get("dpop")])
    assert read_header(api_calls[-1]["dpop"])["typ"] == "dpop+jwt"


def test_tls_certificate_checks(hostile: Hostile, tls: DevTLS, tmp_path: Any) -> None:
    """C1 / FAPI2 5.2.1: an untrusted CA or a certificate for another host aborts the client."""
    from corridor.transport.tls import ensure_dev_tls

    untrusted = FapiClient(hostile.issuer, "c", redirect_uri=REDIRECT, key=SigningKey.generate("ES256"))
    with pytest.raises(MetadataError):
        untrusted.discover()  # the system trust store does not know the dev CA
    other = ensure_dev_tls(tmp_path / "other", hostnames=("other.example",))
    sock = free_socket()
    port = sock.getsockname()[1]
    state = Hostile()
    state.issuer = f"https://localhost:{port}"
    server = uvicorn_server(
        build_app(state),
        "127.0.0.1",
        port,
        server_ssl_context(other.cert_file, other.key_file),
        log_level="warning",
        lifespan="off",
    )
    thread = threading.Thread(target=asyncio.run, args=(server.serve([sock]),), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        wrong_host = FapiClient(
            state.issuer,
            "c",
            redirect_uri=REDIRECT,
            key=SigningKey.generate("ES256"),
            ca_file=str(other.ca_file),
        )
        with pytest.raises(MetadataError):
            wrong_host.discover()  # the certificate names other.example, not localhost
        right_host = FapiClient(
            f"https://127.0.0.1:{port}",
            "c",
            redirect_uri=REDIRECT,
            key=SigningKey.generate("ES256"),
            ca_file=str(other.ca_file),
        )
        with pytest.raises(MetadataError, match="another issuer"):
            right_host.discover()  # positive control: TLS passes (127.0.0.1 is in the certificate)
    finally:
        server.should_exit = True
        thread.join(10)


def test_resource_metadata_for_another_resource(client: FapiClient, hostile: Hostile, tls: DevTLS) -> None:
    """RFC 9728 3.3: metadata whose resource is not the API called is refused."""
    hostile.mode = {"wrong_resource"}
    with pytest.raises(MetadataError, match=r"9728 3\.3"):
        FapiClient.discover_resource(hostile.issuer + "/api", ca_file=str(tls.ca_file))
    hostile.mode = set()
    metadata = FapiClient.discover_resource(hostile.issuer + "/api", ca_file=str(tls.ca_file))
    assert metadata["authorization_servers"] == [hostile.issuer]  # positive control
