"""The benchmark's resource server: one protected route, ``GET /accounts`` (scope ``accounts``),
in front of which ``corridor.resource`` checks the DPoP-bound JWT access token (RFC 9068) and
its proof (RFC 9449, with resource-server nonces). It accepts tokens from every issuer it is
given, so the same resource server serves the Corridor and the oidc-provider runs of
``make bench``; its CPU is not the AS's and is not counted in the AS's CPU per flow.

    python -m bench.resource --port 9444 --issuer https://localhost:9443 \\
        --issuer https://localhost:9543 --cert cert.pem --key key.pem --ca ca.pem
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corridor.resource.asgi import ProtectedResource, protected, require
from corridor.resource.guard import ResourceGuard, ResourceSettings
from corridor.transport.tls import server_ssl_context

SCOPE = "accounts"


def create_app(resource: str, issuers: tuple[str, ...], ca_file: str) -> ProtectedResource:
    guard = ResourceGuard(
        ResourceSettings(
            resource=resource,
            authorization_servers=issuers,
            public_url=resource,
            resource_name="Corridor benchmark API",
            scopes_supported=(SCOPE,),
            ca_file=ca_file,
        )
    )

    @protected(require(scope=SCOPE))
    async def accounts(request: Request) -> Response:
        access = request.state.access_token
        return JSONResponse({"accounts": [{"id": "acc-1", "owner": access.subject}]})

    return ProtectedResource(Starlette(routes=[Route("/accounts", accounts)]), guard)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--resource", help="resource identifier (default https://127.0.0.1:PORT)")
    parser.add_argument("--issuer", action="append", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True, help="CA bundle for the issuers' TLS")
    args = parser.parse_args()
    resource = args.resource or f"https://127.0.0.1:{args.port}"
    config = uvicorn.Config(
        create_app(resource, tuple(args.issuer), args.ca),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off",
    )
    config.load()
    config.ssl = server_ssl_context(args.cert, args.key)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
