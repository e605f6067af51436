"""A load driver that runs complete FAPI 2.0 flows against a Corridor AS (issue 6, first part):

PAR (private_key_jwt + DPoP) -> /authorize -> consent -> callback (iss, state checked) ->
token (private_key_jwt + DPoP, nonce retries) -> one resource call with the DPoP-bound token
(UserInfo). Each virtual user signs in once and keeps its session, so the password hash is
not what is measured; consent happens in every flow.

Reports flows/s, p50/p99 latency per step, failures by reason, and the server's CPU
milliseconds per flow from /proc/<pid>/stat when ``--server-pid`` is given.

    python -m bench.driver --issuer https://localhost:8443 --client-id demo-client \\
        --key .corridor/demo-client-key.json --redirect-uri http://127.0.0.1:8765/callback \\
        --username demo --password-file .corridor/demo-user-password.txt --ca .corridor/tls/ca.pem \\
        --concurrency 8 --flows 200 --warmup 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import aiohttp

from corridor.core.dpop import make_proof
from corridor.core.jose import SigningKey
from corridor.core.pkce import new_verifier, s256_challenge
from corridor.core.randomness import new_secret_token

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: How often a virtual user sends its sign-in form while the AS answers 503 (busy).
LOGIN_ATTEMPTS = 10
_FORM = re.compile(r'<form method="post" action="([^"]+)">')
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class FlowFailure(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


@dataclass
class Target:
    issuer: str
    client_id: str
    key: SigningKey
    redirect_uri: str
    username: str
    password: str
    ca_file: str | None
    scope: str = "openid"
    #: RFC 8707 resource indicator sent at PAR and token; the resource call then goes to
    #: ``resource_url`` (a resource server) instead of the AS's UserInfo endpoint.
    resource: str | None = None
    resource_url: str | None = None


@dataclass
class Results:
    flows: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    #: Sign-ins answered 503 while every hashing slot was busy, then sent again (issue 13 B3).
    busy_logins: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    seconds: float = 0.0
    server_cpu_ms: float | None = None

    def report(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0

        return {
            "flows": self.flows,
            "failures": dict(self.failures),
            "busy_logins": self.busy_logins,
            "seconds": round(self.seconds, 3),
            "flows_per_second": round(self.flows / self.seconds, 2) if self.seconds else 0.0,
            "latency_ms": {
                step: {"p50": pct(v, 0.5), "p99": pct(v, 0.99), "mean": round(1000 * statistics.fmean(v), 2)}
                for step, v in sorted(self.latencies.items())
                if v
            },
            "server_cpu_ms_per_flow": round(self.server_cpu_ms / self.flows, 3)
            if self.server_cpu_ms is not None and self.flows
            else None,
        }


@dataclass
class Answer:
    """A read response: what the flow looks at (the body is read before timing stops)."""

    status_code: int
    headers: Any  # case-insensitive multidict
    text: str
    url: str

    def json(self) -> Any:
        return json.loads(self.text)


class Http:
    """One user agent on aiohttp (design.md 8: the driver must not be the bottleneck; aiohttp
    costs about a sixth of httpx's client CPU per request): its own connection pool and cookie
    jar, no automatic redirects."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=4),
            timeout=aiohttp.ClientTimeout(total=30),
            cookie_jar=aiohttp.CookieJar(),
        )

    async def _answer(self, response: aiohttp.ClientResponse) -> Answer:
        return Answer(response.status, response.headers, await response.text(), str(response.url))

    async def get(self, url: str, headers: dict[str, str] | None = None) -> Answer:
        async with self.session.get(url, headers=headers, allow_redirects=False) as response:
            return await self._answer(response)

    async def post(self, url: str, data: dict[str, str], headers: dict[str, str] | None = None) -> Answer:
        async with self.session.post(url, data=data, headers=headers, allow_redirects=False) as response:
            return await self._answer(response)

    async def aclose(self) -> None:
        await self.session.close()


class VirtualUser:
    """One user agent and one client instance: signs in once, then runs flows."""

    def __init__(self, target: Target, results: Results, http: Http) -> None:
        self.t, self.results, self.http = target, results, http
        self.dpop_key = SigningKey.generate("ES256")
        self.nonce: str | None = None
        self.resource_nonce: str | None = None
        self.metadata: dict[str, Any] = {}

    def resource_parameter(self) -> dict[str, str]:
        return {"resource": self.t.resource} if self.t.resource else {}

    async def timed(self, step: str, coro: Any) -> Answer:
        start = time.perf_counter()
        response: Answer = await coro
        self.results.latencies[step].append(time.perf_counter() - start)
        return response

    def assertion(self) -> dict[str, str]:
        now = int(time.time())
        claims = {
            "iss": self.t.client_id,
            "sub": self.t.client_id,
            "aud": self.t.issuer,
            "jti": new_secret_token(),
            "iat": now,
            "exp": now + 60,
        }
        return {"client_assertion_type": JWT_BEARER, "client_assertion": self.t.key.sign(claims, "JWT")}

    async def post_dpop(self, step: str, url: str, form: dict[str, str]) -> Answer:
        for _ in range(3):
            proof = make_proof(self.dpop_key, "POST", url, nonce=self.nonce)
            response = await self.timed(
                step, self.http.post(url, data={**form, **self.assertion()}, headers={"DPoP": proof})
            )
            self.nonce = response.headers.get("dpop-nonce", self.nonce)
            if response.status_code == 400 and response.json().get("error") == "use_dpop_nonce":
                continue
            return response
        raise FlowFailure(step, "nonce retries exhausted")

    async def start(self) -> None:
        response = await self.http.get(self.t.issuer + "/.well-known/openid-configuration")
        self.metadata = response.json()
        if self.metadata.get("issuer") != self.t.issuer:
            raise FlowFailure("metadata", "issuer mismatch")

    async def follow(self, step: str, response: Answer) -> Answer:
        """Follow the AS's own redirects (interaction pages, resumption) until a page or the
        redirect to the client's callback, which is returned unfollowed."""
        for _ in range(10):
            location = response.headers.get("location", "")
            if response.status_code not in (302, 303) or location.startswith(self.t.redirect_uri):
                return response
            response = await self.timed(step, self.http.get(urljoin(str(response.url), location)))
        raise FlowFailure(step, "too many redirects")

    async def submit(self, step: str, page: Answer, fields: dict[str, str]) -> Answer:
        action, csrf = _FORM.search(page.text), _CSRF.search(page.text)
        if not action or not csrf:
            raise FlowFailure(step, f"no form (status {page.status_code})")
        url = urljoin(str(page.url), unescape(action.group(1)))
        return await self.timed(step, self.http.post(url, data={"csrf": unescape(csrf.group(1)), **fields}))

    async def sign_in(self, page: Answer) -> Answer:
        """Sign in as a person would: while every password-hashing slot is busy the AS answers
        503 with Retry-After (issue 13 B3), so wait that long and send the form again."""
        for _ in range(LOGIN_ATTEMPTS):
            login = await self.submit(
                "login", page, {"username": self.t.username, "password": self.t.password}
            )
            if login.status_code != 503:
                return await self.follow("interaction", login)
            self.results.busy_logins += 1
            await asyncio.sleep(float(login.headers.get("retry-after", "1")))
            page = login
        raise FlowFailure("login", f"still busy after {LOGIN_ATTEMPTS} attempts")

    async def flow(self) -> None:
        m = self.metadata
        verifier, state = new_verifier(), new_secret_token()
        par = await self.post_dpop(
            "par",
            m["pushed_authorization_request_endpoint"],
            {
                "response_type": "code",
                "client_id": self.t.client_id,
                "redirect_uri": self.t.redirect_uri,
                "scope": self.t.scope,
                "state": state,
                "code_challenge": s256_challenge(verifier),
                "code_challenge_method": "S256",
                **self.resource_parameter(),
            },
        )
        if par.status_code != 201:
            raise FlowFailure("par", f"status {par.status_code}")
        query = urlencode({"client_id": self.t.client_id, "request_uri": par.json()["request_uri"]})
        page = await self.follow(
            "interaction",
            await self.timed("authorize", self.http.get(f"{m['authorization_endpoint']}?{query}")),
        )
        if 'name="password"' in page.text:  # first flow of this user: sign in (then the session is kept)
            page = await self.sign_in(page)
        final = await self.follow("interaction", await self.submit("consent", page, {"decision": "approve"}))
        location = final.headers.get("location", "")
        if not location.startswith(self.t.redirect_uri):
            raise FlowFailure("consent", f"status {final.status_code}")
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if params.get("iss") != self.t.issuer or params.get("state") != state or "code" not in params:
            raise FlowFailure("callback", "iss, state or code")
        token = await self.post_dpop(
            "token",
            m["token_endpoint"],
            {
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": self.t.redirect_uri,
                "code_verifier": verifier,
                **self.resource_parameter(),
            },
        )
        if token.status_code != 200 or token.json().get("token_type") != "DPoP":
            raise FlowFailure("token", f"status {token.status_code}")
        access_token = token.json()["access_token"]
        url = self.t.resource_url or m["userinfo_endpoint"]
        # The AS and a resource server keep separate DPoP nonces (RFC 9449 9).
        nonce = self.resource_nonce if self.t.resource_url else self.nonce
        for _ in range(2):
            proof = make_proof(self.dpop_key, "GET", url, nonce=nonce, access_token=access_token)
            response = await self.timed(
                "resource",
                self.http.get(url, headers={"Authorization": f"DPoP {access_token}", "DPoP": proof}),
            )
            nonce = response.headers.get("dpop-nonce", nonce)
            if response.status_code != 401:
                break
        if self.t.resource_url:
            self.resource_nonce = nonce
        else:
            self.nonce = nonce
        if response.status_code != 200:
            raise FlowFailure("resource", f"status {response.status_code}")


def cpu_ms(*pids: int) -> float:
    """utime + stime of processes, in milliseconds (/proc/<pid>/stat fields 14 and 15)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total * 1000 / os.sysconf("SC_CLK_TCK")


async def run(
    target: Target,
    *,
    concurrency: int,
    flows: int,
    warmup: int = 0,
    server_pid: int | tuple[int, ...] | None = None,
) -> Results:
    """Run ``warmup`` flows (not counted), then ``flows`` flows over ``concurrency`` users.

    ``server_pid``: the server's process (or worker processes) whose CPU time is read."""
    pids = (server_pid,) if isinstance(server_pid, int) else (server_pid or ())
    context = ssl.create_default_context(cafile=target.ca_file)
    results, scratch = Results(), Results()
    probe = Http(context)
    try:
        await probe.get(target.issuer + "/jwks")
    finally:
        await probe.aclose()
    users = []
    for _ in range(concurrency):
        http = Http(context)
        user = VirtualUser(target, scratch, http)
        await user.start()
        users.append(user)
    queue: asyncio.Queue[bool] = asyncio.Queue()

    async def worker(user: VirtualUser) -> None:
        while True:
            try:
                counted = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            user.results = results if counted else scratch
            try:
                await user.flow()
                user.results.flows += 1
            except FlowFailure as failure:
                user.results.failures[f"{failure.step}: {failure.reason}"] += 1
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                user.results.failures[f"{type(exc).__name__}"] += 1

    for _ in range(warmup):
        queue.put_nowait(False)
    await asyncio.gather(*(worker(u) for u in users))
    for _ in range(flows):
        queue.put_nowait(True)
    cpu_before = cpu_ms(*pids) if pids else None
    start = time.perf_counter()
    await asyncio.gather(*(worker(u) for u in users))
    results.seconds = time.perf_counter() - start
    if pids and cpu_before is not None:
        results.server_cpu_ms = cpu_ms(*pids) - cpu_before
    for user in users:
        await user.http.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--key", required=True, help="the client's private JWK (JSON)")
    parser.add_argument("--redirect-uri", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--scope", default="openid")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--flows", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--resource", help="RFC 8707 resource indicator to ask for")
    parser.add_argument("--resource-url", help="URL of the resource call (default: UserInfo)")
    parser.add_argument("--server-pid", type=int, action="append", help="repeat for worker processes")
    args = parser.parse_args()
    target = Target(
        args.issuer,
        args.client_id,
        SigningKey(json.loads(Path(args.key).read_text())),
        args.redirect_uri,
        args.username,
        Path(args.password_file).read_text().strip(),
        args.ca,
        args.scope,
        args.resource,
        args.resource_url,
    )
    results = asyncio.run(
        run(
            target,
            concurrency=args.concurrency,
            flows=args.flows,
            warmup=args.warmup,
            server_pid=tuple(args.server_pid or ()),
        )
    )
    print(json.dumps(results.report(), indent=2))


if __name__ == "__main__":
    main()
