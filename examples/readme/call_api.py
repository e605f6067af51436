from typing import Any

import httpx

from corridor.client import AuthorizationHandle, FapiClient
from corridor.core.jose import SigningKey


def make_client(issuer: str, client_id: str, private_jwk: dict[str, Any], **options: Any) -> FapiClient:
    """private_key_jwt with the client's key, DPoP-bound tokens (options: ca_file, auth_method, ...)."""
    return FapiClient(
        issuer, client_id, redirect_uri="https://app.example/cb", key=SigningKey(private_jwk), **options
    )


def begin(client: FapiClient, api: str) -> tuple[str, AuthorizationHandle]:
    """PAR; send the user to the URL (only client_id and request_uri), keep the handle with their session."""
    return client.start("openid accounts", resource=api)


def finish(client: FapiClient, callback_url: str, handle: AuthorizationHandle, api: str, **tls: Any) -> Any:
    """Check iss and state, redeem the code, call the API: a DPoP proof per request, nonces, refresh."""
    tokens = client.finish(callback_url, handle)
    with httpx.Client(auth=client.auth(tokens), **tls) as http:
        return http.get(f"{api}/accounts").json()
