"""A load driver that runs complete FAPI 2.0 flows against a Corridor AS (issue 6, first part):

PAR (private_key_jwt + DPoP) -> /authorize -> consent -> callback (iss, state checked) ->
token (private_key_jwt + DPoP, nonce retries) -> one resource call with the DPoP-bound token
(a resource server, or UserInfo) -> with ``--refresh`` (issue 19's second flow shape) a
refresh_token grant at the token endpoint (private_key_jwt + DPoP). Each virtual user signs in
once and keeps its session, so the password hash is not what is measured; consent happens in
every flow.

Reports flows/s, p50/p99 latency per step, failures by reason, and the server's CPU
milliseconds per flow from /proc/<pid>/stat when ``--server-pid`` is given.

``--phased`` (issue 19) measures the CPU of each endpoint instead: the virtual users run their
flows in step (every user takes step k, then every user step k+1, ...) and the server's CPU read
before and after each step, summed over the rounds and divided by the calls, is that endpoint's
CPU per call (PAR, authorize, interaction pages, sign-in, consent, token, UserInfo, refresh,
introspection).

    python -m bench.driver --issuer https://localhost:8443 --client-id demo-client \\
        --key .corridor/demo-client-key.json --redirect-uri http://127.0.0.1:8765/callback \\
        --username demo --password-file .corridor/demo-user-password.txt --ca .corridor/tls/ca.pem \\
        --concurrency 8 --flows 200 --warmup 20 [--refresh] [--phased]
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
#: The phased run's sign-in rounds: each user signs in this often, in fresh user agents.
SIGN_IN_ROUNDS = 3
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
    #: Issue 19's second shape: after the resource call, a refresh_token grant (DPoP).
    refresh: bool = False


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
        #: URLs requested (the phased run names each step by them).
        self.requested: list[str] = []

    async def _answer(self, response: aiohttp.ClientResponse) -> Answer:
        return Answer(response.status, response.headers, await response.text(), str(response.url))

    async def get(self, url: str, headers: dict[str, str] | None = None) -> Answer:
        self.requested.append(url)
        async with self.session.get(url, headers=headers, allow_redirects=False) as response:
            return await self._answer(response)

    async def post(self, url: str, data: dict[str, str], headers: dict[str, str] | None = None) -> Answer:
        self.requested.append(url)
        async with self.session.post(url, data=data, headers=headers, allow_redirects=False) as response:
            return await self._answer(response)

    async def aclose(self) -> None:
        await self.session.close()


@dataclass
class Flow:
    """One authorization in progress in one user agent, from PAR to its last token."""

    http: Http
    verifier: str = field(default_factory=new_verifier)
    state: str = field(default_factory=new_secret_token)
    request_uri: str = ""
    #: The user agent's last answer from the AS (a redirect or a page).
    response: Answer | None = None
    code: str = ""
    access_token: str = ""
    refresh_token: str = ""

    @property
    def answer(self) -> Answer:
        assert self.response is not None
        return self.response


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

    async def post_dpop(self, step: str, url: str, form: dict[str, str], http: Http | None = None) -> Answer:
        for _ in range(3):
            proof = make_proof(self.dpop_key, "POST", url, nonce=self.nonce)
            response = await self.timed(
                step,
                (http or self.http).post(url, data={**form, **self.assertion()}, headers={"DPoP": proof}),
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

    def redirect_of_as(self, flow: Flow) -> bool:
        """The AS's answer is a redirect to the AS (not to the client's callback)."""
        location = flow.answer.headers.get("location", "")
        return flow.answer.status_code in (302, 303) and not location.startswith(self.t.redirect_uri)

    async def hop(self, flow: Flow, step: str) -> bool:
        """Follow one of the AS's own redirects (interaction pages, resumption); False at a
        page or at the redirect to the client's callback, which is not followed."""
        if not self.redirect_of_as(flow):
            return False
        location = flow.answer.headers["location"]
        flow.response = await self.timed(step, flow.http.get(urljoin(flow.answer.url, location)))
        return True

    async def follow(self, step: str, flow: Flow) -> None:
        """Follow the AS's own redirects until a page or the redirect to the client's callback."""
        for _ in range(10):
            if not await self.hop(flow, step):
                return
        raise FlowFailure(step, "too many redirects")

    async def submit(self, step: str, http: Http, page: Answer, fields: dict[str, str]) -> Answer:
        action, csrf = _FORM.search(page.text), _CSRF.search(page.text)
        if not action or not csrf:
            raise FlowFailure(step, f"no form (status {page.status_code})")
        url = urljoin(str(page.url), unescape(action.group(1)))
        return await self.timed(step, http.post(url, data={"csrf": unescape(csrf.group(1)), **fields}))

    async def post_sign_in(self, flow: Flow) -> None:
        """Sign in as a person would: while every password-hashing slot is busy the AS answers
        503 with Retry-After (issue 13 B3), so wait that long and send the form again."""
        page = flow.answer
        for _ in range(LOGIN_ATTEMPTS):
            login = await self.submit(
                "login", flow.http, page, {"username": self.t.username, "password": self.t.password}
            )
            if login.status_code != 503:
                flow.response = login
                return
            self.results.busy_logins += 1
            await asyncio.sleep(float(login.headers.get("retry-after", "1")))
            page = login
        raise FlowFailure("login", f"still busy after {LOGIN_ATTEMPTS} attempts")

    async def sign_in(self, flow: Flow) -> None:
        await self.post_sign_in(flow)
        await self.follow("interaction", flow)

    async def push(self, flow: Flow) -> None:
        """PAR (RFC 9126) with private_key_jwt and a DPoP proof."""
        par = await self.post_dpop(
            "par",
            self.metadata["pushed_authorization_request_endpoint"],
            {
                "response_type": "code",
                "client_id": self.t.client_id,
                "redirect_uri": self.t.redirect_uri,
                "scope": self.t.scope,
                "state": flow.state,
                "code_challenge": s256_challenge(flow.verifier),
                "code_challenge_method": "S256",
                **self.resource_parameter(),
            },
            flow.http,
        )
        if par.status_code != 201:
            raise FlowFailure("par", f"status {par.status_code}")
        flow.request_uri = par.json()["request_uri"]

    async def authorize(self, flow: Flow) -> None:
        query = urlencode({"client_id": self.t.client_id, "request_uri": flow.request_uri})
        flow.response = await self.timed(
            "authorize", flow.http.get(f"{self.metadata['authorization_endpoint']}?{query}")
        )

    @staticmethod
    def at_sign_in(flow: Flow) -> bool:
        return 'name="password"' in flow.answer.text

    async def post_consent(self, flow: Flow) -> None:
        flow.response = await self.submit("consent", flow.http, flow.answer, {"decision": "approve"})

    def callback(self, flow: Flow) -> None:
        """The redirect to the client: ``iss`` (RFC 9207), ``state`` and the code."""
        final = flow.answer
        location = final.headers.get("location", "")
        if not location.startswith(self.t.redirect_uri):
            raise FlowFailure("consent", f"status {final.status_code}")
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if params.get("iss") != self.t.issuer or params.get("state") != flow.state or "code" not in params:
            raise FlowFailure("callback", "iss, state or code")
        flow.code = params["code"]

    async def redeem(self, flow: Flow) -> None:
        token = await self.post_dpop(
            "token",
            self.metadata["token_endpoint"],
            {
                "grant_type": "authorization_code",
                "code": flow.code,
                "redirect_uri": self.t.redirect_uri,
                "code_verifier": flow.verifier,
                **self.resource_parameter(),
            },
            flow.http,
        )
        if token.status_code != 200 or token.json().get("token_type") != "DPoP":
            raise FlowFailure("token", f"status {token.status_code}")
        body = token.json()
        flow.access_token = body["access_token"]
        flow.refresh_token = body.get("refresh_token", "")

    async def call_resource(self, flow: Flow) -> None:
        """One call with the DPoP-bound access token: the resource server, or UserInfo."""
        access_token = flow.access_token
        url = self.t.resource_url or self.metadata["userinfo_endpoint"]
        # The AS and a resource server keep separate DPoP nonces (RFC 9449 9).
        nonce = self.resource_nonce if self.t.resource_url else self.nonce
        for _ in range(2):
            proof = make_proof(self.dpop_key, "GET", url, nonce=nonce, access_token=access_token)
            response = await self.timed(
                "resource",
                flow.http.get(url, headers={"Authorization": f"DPoP {access_token}", "DPoP": proof}),
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

    async def refresh(self, flow: Flow) -> None:
        """RFC 6749 6 as a FAPI 2.0 confidential client does it: private_key_jwt and a DPoP
        proof with the same key (RFC 9449 5: the new access token is bound to it; the refresh
        token of a confidential client is bound to the client, not to the key). A refresh token
        in the answer replaces the old one (rotation); neither server rotates for this client."""
        if not flow.refresh_token:
            raise FlowFailure("token", "no refresh token")
        answer = await self.post_dpop(
            "refresh",
            self.metadata["token_endpoint"],
            {"grant_type": "refresh_token", "refresh_token": flow.refresh_token, **self.resource_parameter()},
            flow.http,
        )
        if answer.status_code != 200 or answer.json().get("token_type") != "DPoP":
            raise FlowFailure("refresh", f"status {answer.status_code}")
        body = answer.json()
        flow.access_token = body["access_token"]
        flow.refresh_token = body.get("refresh_token", flow.refresh_token)

    async def introspect(self, flow: Flow) -> None:
        """RFC 7662 2: the client asks about its own access token (private_key_jwt)."""
        url = self.metadata.get("introspection_endpoint")
        if not url:
            raise FlowFailure("introspection", "no introspection_endpoint in the metadata")
        answer = await self.timed(
            "introspection", flow.http.post(url, data={"token": flow.access_token, **self.assertion()})
        )
        if answer.status_code != 200 or answer.json().get("active") is not True:
            raise FlowFailure("introspection", f"status {answer.status_code}")

    async def flow(self) -> None:
        flow = Flow(self.http)
        await self.push(flow)
        await self.authorize(flow)
        await self.follow("interaction", flow)
        if self.at_sign_in(flow):  # first flow of this user: sign in (then the session is kept)
            await self.sign_in(flow)
        await self.post_consent(flow)
        await self.follow("interaction", flow)
        self.callback(flow)
        await self.redeem(flow)
        await self.call_resource(flow)
        if self.t.refresh:
            await self.refresh(flow)


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


@dataclass
class Phase:
    """One step of the phased run, over all its rounds (a call: one flow's step, its DPoP nonce
    or busy sign-in retries included)."""

    name: str
    calls: int = 0
    #: HTTP requests sent (DPoP nonce retries and busy sign-ins included) and what they asked.
    requests: int = 0
    paths: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu_ms: float | None = None

    def report(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(q: float) -> float:
            return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else 0.0

        return {
            "calls": self.calls,
            "requests": self.requests,
            "paths": dict(self.paths),
            "failures": dict(self.failures),
            "seconds": round(self.seconds, 3),
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "server_cpu_ms_per_call": round(self.server_cpu_ms / self.calls, 3)
            if self.server_cpu_ms is not None and self.calls
            else None,
        }


@dataclass
class Phased:
    """The phased run: its measured steps in order, and every failed flow (any step)."""

    phases: list[Phase] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    busy_logins: int = 0

    def report(self) -> dict[str, Any]:
        return {
            "phases": [{"name": p.name, **p.report()} for p in self.phases],
            "failures": dict(self.failures),
            "busy_logins": self.busy_logins,
        }


def path_kind(url: str, authorization_endpoint: str) -> str:
    """A request's endpoint, its variable parts named (``/interaction/{id}/consent``)."""
    path = urlsplit(url).path
    authorize = urlsplit(authorization_endpoint).path
    if path.startswith(authorize + "/"):
        return authorize + "/{id}"
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "interaction":
        parts[2] = "{id}"
    return "/".join(parts)


async def phased(
    target: Target,
    *,
    concurrency: int,
    flows: int,
    server_pid: int | tuple[int, ...] | None = None,
    sign_ins: int = SIGN_IN_ROUNDS,
    introspection: bool = True,
) -> Phased:
    """The CPU of each endpoint (issue 19), at the flows' concurrency: ``concurrency`` virtual
    users each run one flow at a time, all in step: every user takes step k, then every user
    step k+1, ... and the server's CPU (/proc, as :func:`run`) is read before and after each
    step and summed over the rounds (``flows`` / ``concurrency`` of them). The steps: PAR,
    authorize, each redirect of the AS's own (named by its path), consent, each redirect after
    it, token (code), the resource call (UserInfo unless ``target.resource_url``), refresh,
    introspection. First, ``sign_ins`` rounds of the sign-in POST, each user in a fresh user
    agent (the last one's session is kept for the flows, as in :func:`run`).

    One flow at a time per user, not many open at once: oidc-provider keeps one grant per client
    in a browser session, so a newer authorization in the same session voids the older codes."""
    pids = (server_pid,) if isinstance(server_pid, int) else (server_pid or ())
    context = ssl.create_default_context(cafile=target.ca_file)
    users: list[VirtualUser] = []
    for _ in range(concurrency):
        user = VirtualUser(target, Results(), Http(context))
        await user.start()
        users.append(user)
    authorize_url = users[0].metadata["authorization_endpoint"]
    out = Phased()
    measured: dict[str, Phase] = {}
    current: dict[VirtualUser, Flow] = {}

    async def phase(name: str | None, step: Any, *, measure: bool = True) -> None:
        """``step(user, flow)`` for every user's current flow, all at once; a flow that fails
        leaves its round; a step that returns False made no call. ``name`` None: named by the
        paths the step requested."""
        results = Results()
        sent = {flow.http: len(flow.http.requested) for flow in current.values()}

        async def one(user: VirtualUser, flow: Flow) -> None:
            user.results = results
            try:
                done = await step(user, flow)
            except FlowFailure as failure:
                results.failures[f"{failure.step}: {failure.reason}"] += 1
                del current[user]
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                results.failures[type(exc).__name__] += 1
                del current[user]
            else:
                results.flows += done is not False

        cpu_before = cpu_ms(*pids) if pids else None
        start = time.perf_counter()
        await asyncio.gather(*(one(user, flow) for user, flow in list(current.items())))
        seconds = time.perf_counter() - start
        cpu = cpu_ms(*pids) - cpu_before if cpu_before is not None else None
        out.failures.update(results.failures)
        out.busy_logins += results.busy_logins
        paths: Counter[str] = Counter()
        for http, before in sent.items():
            paths.update(path_kind(url, authorize_url) for url in http.requested[before:])
        if not measure or not paths:
            return
        label = name or " + ".join(f"GET {p}" for p in sorted(paths))
        if label not in measured:
            measured[label] = Phase(label, server_cpu_ms=0.0 if pids else None)
            out.phases.append(measured[label])
        total = measured[label]
        total.calls += results.flows
        total.requests += sum(paths.values())
        total.paths.update(paths)
        total.failures.update(results.failures)
        total.latencies += [v for values in results.latencies.values() for v in values]
        total.seconds += seconds
        if total.server_cpu_ms is not None and cpu is not None:
            total.server_cpu_ms += cpu

    async def hops() -> None:
        """Follow the AS's redirects, one at a time for all users, each hop its own step."""
        for _ in range(10):
            if not any(user.redirect_of_as(flow) for user, flow in current.items()):
                return
            await phase(None, lambda user, flow: user.hop(flow, "interaction"))
        raise RuntimeError("more than 10 redirects")

    async def to_page(user: VirtualUser, flow: Flow) -> None:
        await user.push(flow)
        await user.authorize(flow)
        await user.follow("interaction", flow)
        if not user.at_sign_in(flow):
            raise FlowFailure("login", "no sign-in page")

    async def finish(user: VirtualUser, flow: Flow) -> None:
        await user.follow("interaction", flow)
        await user.post_consent(flow)
        await user.follow("interaction", flow)
        user.callback(flow)

    async def consent(user: VirtualUser, flow: Flow) -> None:
        if user.at_sign_in(flow):
            raise FlowFailure("consent", "the session was not kept")
        await user.post_consent(flow)

    async def callback(user: VirtualUser, flow: Flow) -> None:
        user.callback(flow)

    try:
        for _ in range(sign_ins):  # each user in a fresh user agent, up to the sign-in page
            for user in users:
                await user.http.aclose()
                user.http = Http(context)
            current = {user: Flow(user.http) for user in users}
            await phase("signed out: PAR, authorize, sign-in page", to_page, measure=False)
            await phase("sign-in POST", lambda user, flow: user.post_sign_in(flow))
            await phase("signed in: consent, callback", finish, measure=False)
        for _ in range(max(1, round(flows / concurrency))):
            current = {user: Flow(user.http) for user in users}
            await phase("PAR", lambda user, flow: user.push(flow))
            await phase("authorize", lambda user, flow: user.authorize(flow))
            await hops()
            await phase("consent POST", consent)
            await hops()
            await phase("callback", callback, measure=False)
            await phase("token (code)", lambda user, flow: user.redeem(flow))
            resource = "resource (RS)" if target.resource_url else "userinfo"
            await phase(resource, lambda user, flow: user.call_resource(flow))
            await phase("token (refresh)", lambda user, flow: user.refresh(flow))
            if introspection:
                await phase("introspection", lambda user, flow: user.introspect(flow))
    finally:
        for user in users:
            await user.http.aclose()
    return out


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
    parser.add_argument("--refresh", action="store_true", help="end each flow with a refresh_token grant")
    parser.add_argument("--phased", action="store_true", help="CPU per endpoint, one step at a time")
    parser.add_argument("--no-introspection", action="store_true", help="--phased without introspection")
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
        args.refresh,
    )
    if args.phased:
        phases = asyncio.run(
            phased(
                target,
                concurrency=args.concurrency,
                flows=args.flows,
                server_pid=tuple(args.server_pid or ()),
                introspection=not args.no_introspection,
            )
        )
        print(json.dumps(phases.report(), indent=2))
        return
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
