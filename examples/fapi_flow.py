"""Walk through one FAPI 2.0 flow by hand against a Corridor AS (or any FAPI 2.0 AS).

    python examples/fapi_flow.py --issuer https://localhost:8443 --client-id demo-client \\
        --key .corridor/demo-client-key.json --ca .corridor/tls/ca.pem \\
        --redirect-uri http://127.0.0.1:8765/callback

It pushes the request (PAR, private_key_jwt, PKCE S256, DPoP with the server's nonce),
prints the URL to open, reads the callback URL you paste (or, with --username and
--password-file, fills in Corridor's login and consent forms itself), checks `iss` and
`state`, redeems the code for a DPoP-bound token and calls UserInfo with it.
--authorization-details JSON|@FILE asks for RFC 9396 details (e.g. a payment_initiation).
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import sys
import time
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

from corridor.client.login import read_authorization_details
from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey
from corridor.core.pkce import new_verifier, s256_challenge
from corridor.core.randomness import new_secret_token

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        #: What the client trusts; the browser of fill_in_forms trusts the same.
        self.verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=args.ca) if args.ca else True
        self.http = httpx.Client(verify=self.verify, timeout=20)
        self.meta = self.http.get(args.issuer + "/.well-known/openid-configuration").json()
        if self.meta["issuer"] != args.issuer:  # FAPI2 5.3.3.1-11
            sys.exit(f"metadata issuer {self.meta['issuer']!r} differs from {args.issuer!r}")
        self.issuer = args.issuer
        self.client_id = args.client_id
        self.key = SigningKey(json.loads(Path(args.key).read_text()))
        self.dpop_key = SigningKey.generate("ES256")
        self.nonce: str | None = None

    def assertion(self) -> dict[str, str]:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.issuer,  # FAPI2 5.3.3.1-5
            "jti": new_secret_token(),
            "iat": now,
            "exp": now + 60,
        }
        return {"client_assertion_type": JWT_BEARER, "client_assertion": self.key.sign(claims, "JWT")}

    def post(self, endpoint: str, form: dict[str, str]) -> httpx.Response:
        """POST with client authentication and a fresh DPoP proof, retrying once for a nonce."""
        url = self.meta[endpoint]
        for _ in range(2):
            proof = make_proof(self.dpop_key, "POST", url, nonce=self.nonce)
            response = self.http.post(url, data={**form, **self.assertion()}, headers={"DPoP": proof})
            self.nonce = response.headers.get("DPoP-Nonce", self.nonce)
            if response.status_code != 400 or response.json().get("error") != "use_dpop_nonce":
                return response
        return response


def found(pattern: str, page: httpx.Response) -> str:
    """The first group of ``pattern`` on ``page``, unescaped; the page must have it."""
    match = re.search(pattern, page.text)
    if match is None:
        sys.exit(f"unexpected page {page.url} ({page.status_code}): no {pattern!r}")
    return unescape(match.group(1))


def fill_in_forms(client: Client, url: str, username: str, password: str, redirect_uri: str) -> str:
    """Play the browser on Corridor's own pages: sign in, then Approve."""
    browser = httpx.Client(verify=client.verify, timeout=20)
    page = browser.get(url, follow_redirects=True)
    for fields in ({"username": username, "password": password}, {"decision": "approve"}):
        if "username" in fields and 'name="username"' not in page.text:
            continue
        action = found(r'<form method="post" action="([^"]+)"', page)
        csrf = found(r'name="csrf" value="([^"]+)"', page)
        page = browser.post(urljoin(str(page.url), action), data={"csrf": csrf, **fields})
        while page.status_code == 303 and not page.headers["location"].startswith(redirect_uri):
            page = browser.get(urljoin(str(page.url), page.headers["location"]))
    if page.status_code != 303:
        sys.exit(f"the pages did not redirect back: {page.status_code}")
    return str(page.headers["location"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issuer", default="https://localhost:8443")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--key", required=True, help="the client's private JWK (JSON file)")
    parser.add_argument("--ca", help="CA file to trust (Corridor dev mode: .corridor/tls/ca.pem)")
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--scope", default="openid profile")
    parser.add_argument("--username", help="fill in the login form as this user")
    parser.add_argument("--password-file", help="file holding that user's password")
    parser.add_argument(
        "--authorization-details",
        metavar="JSON|@FILE",
        help="RFC 9396 authorization_details: a JSON array of objects, or @FILE holding one",
    )
    args = parser.parse_args()
    args.authorization_details = authorization_details(args.authorization_details)
    try:
        flow(args)
    except httpx.HTTPError as exc:  # issue 13 F1: one line saying what to do, not a traceback
        sys.exit(unreachable(args, exc))


def authorization_details(value: str | None) -> list[dict[str, Any]] | None:
    """--authorization-details JSON|@FILE (RFC 9396 2), else one line and exit 1."""
    if value is None:
        return None
    try:
        return read_authorization_details(value)
    except ValueError as exc:
        sys.exit(f"--authorization-details: {exc}")


def unreachable(args: argparse.Namespace, exc: httpx.HTTPError) -> str:
    """What went wrong talking to the AS, in one line."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        return (
            f"{args.issuer}: its TLS certificate is not trusted ({reason}); give --ca with the CA that "
            "issued it (Corridor dev mode: --ca .corridor/tls/ca.pem)"
        )
    return f"{args.issuer}: {reason}; is the server running there? (--issuer, --ca)"


def flow(args: argparse.Namespace) -> None:
    """PAR, the pages, the token request and UserInfo, as the module docstring says."""
    client = Client(args)
    verifier, state = new_verifier(), new_secret_token()
    request = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": args.redirect_uri,
        "scope": args.scope,
        "state": state,
        "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if args.authorization_details:
        request["authorization_details"] = json.dumps(args.authorization_details)
    pushed = client.post("pushed_authorization_request_endpoint", request)
    print(f"PAR -> {pushed.status_code} {pushed.text}")
    if pushed.status_code != 201:
        sys.exit(1)
    url = (
        client.meta["authorization_endpoint"]
        + "?"
        + urlencode({"client_id": client.client_id, "request_uri": pushed.json()["request_uri"]})
    )
    print(f"\nOpen this URL in a browser that trusts the CA:\n  {url}\n")
    if args.username and args.password_file:
        callback = fill_in_forms(
            client, url, args.username, Path(args.password_file).read_text().strip(), args.redirect_uri
        )
    else:
        callback = input("Paste the URL your browser was sent back to: ").strip()
    params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    if params.get("iss") != client.issuer:  # FAPI2 5.3.3.2-5, RFC 9207
        sys.exit(f"authorization response iss {params.get('iss')!r} is not {client.issuer!r}")
    if params.get("state") != state:
        sys.exit("state does not match")
    if "error" in params:
        sys.exit(f"authorization refused: {params['error']}")
    print("callback -> code received, iss and state checked")
    tokens = client.post(
        "token_endpoint",
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": args.redirect_uri,
            "code_verifier": verifier,
        },
    )
    print(f"token -> {tokens.status_code}")
    body: dict[str, Any] = tokens.json()
    print(json.dumps({k: (v[:12] + "..." if k.endswith("token") else v) for k, v in body.items()}, indent=2))
    if tokens.status_code != 200:
        sys.exit(1)
    userinfo_url = client.meta["userinfo_endpoint"]
    for _ in range(2):
        proof = make_proof(
            client.dpop_key, "GET", userinfo_url, nonce=client.nonce, access_token=body["access_token"]
        )
        info = client.http.get(
            userinfo_url, headers={"Authorization": f"DPoP {body['access_token']}", "DPoP": proof}
        )
        client.nonce = info.headers.get("DPoP-Nonce", client.nonce)
        if info.status_code != 401 or "use_dpop_nonce" not in info.headers.get("WWW-Authenticate", ""):
            break
    print(f"userinfo -> {info.status_code} {info.text}")


if __name__ == "__main__":
    main()
