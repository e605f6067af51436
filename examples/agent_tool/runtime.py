"""A small AI-agent tool runtime on top of ``corridor.client``.

The runtime offers an agent two tools, ``list_accounts()`` and ``make_payment(amount, currency,
creditor)``, backed by the demo payments API (``examples/payments_api``). Before the first call
it gets a DPoP-bound access token for the API whose authorization request says exactly what the
agent may do (RFC 9396 ``authorization_details``): one ``agent_tool`` entry per tool and one
``payment_initiation`` entry, the budget the user approves. The API's Cedar policies then decide
every call inside that grant; the runtime never pre-checks, it reports what the API decided.

Step-up (RFC 9470): a call refused with 401 ``insufficient_user_authentication`` sends the user
through the authorization server again with the ``acr_values`` the API asked for, and the call
is retried once with the new token. If the new token is still not strong enough the runtime
stops and says so; it never loops.

The runtime keeps its own side of the evidence trail: each step (metadata discovery, the
authorization request and response, the token, each tool call, each step-up) is an evidence
record hash-chained by ``corridor.audit.log.AuditLog`` into its own JSON Lines file
(``corridor.audit.sinks.JsonLinesSink``: no database, no schema). It never records a secret (no
code, token, password or TOTP code).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import re
import ssl
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jsonschema
import pyotp

from corridor.audit.log import AuditLog, Evidence
from corridor.audit.sinks import JsonLinesSink
from corridor.client.errors import AuthorizationResponseError, ClientError
from corridor.client.flow import AuthorizationHandle, FapiClient, StepUp, TokenSet, step_up_challenge
from corridor.client.login import LoopbackCallback
from corridor.core.jose import SigningKey

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
SCOPE = "openid accounts payments"
POLICY_TEXT = re.compile(r"refused by policy: (.+)$")


# -- the tools, as an agent framework would see them ------------------------------------------------


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    #: The ``agent_tool`` action the user grants for it.
    action: str
    #: JSON Schema of the arguments (what an LLM's function-calling interface is given).
    parameters: Mapping[str, Any]


AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$"

TOOLS: dict[str, ToolSpec] = {
    "list_accounts": ToolSpec(
        "list_accounts",
        "List the user's accounts and the payments made so far.",
        "read",
        {"type": "object", "properties": {}, "additionalProperties": False},
    ),
    "make_payment": ToolSpec(
        "make_payment",
        "Pay an amount to a creditor from the user's account (only within what the user approved).",
        "initiate",
        {
            "type": "object",
            "required": ["amount", "currency", "creditor"],
            "properties": {
                "amount": {"type": "string", "pattern": AMOUNT_PATTERN},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "creditor": {"type": "string", "minLength": 1, "maxLength": 140},
            },
            "additionalProperties": False,
        },
    ),
}


@dataclass(frozen=True)
class ToolResult:
    tool: str
    arguments: Mapping[str, Any]
    #: "allowed" (the API did it), "refused" (the API said no), "step_up_unsatisfied".
    outcome: str
    status: int
    error: str | None = None
    description: str = ""
    #: The Cedar policies the API named when it refused.
    policies: tuple[str, ...] = ()
    body: Any = None

    def line(self) -> str:
        """One line for people: the call and what the API decided."""
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.arguments.items())
        call = f"{self.tool}({args})"
        if self.outcome == "allowed":
            return f"{call} -> allowed {self.status}: {summary(self.tool, self.body)}"
        why = ", ".join(self.policies) or self.description
        return f"{call} -> {self.outcome} {self.status} {self.error or ''}: {why}".replace("  ", " ")


def summary(tool: str, body: Any) -> str:
    if not isinstance(body, dict):
        return "done"
    if tool == "list_accounts":
        accounts, payments = body.get("accounts") or [], body.get("payments") or []
        return f"{len(accounts)} account(s), {len(payments)} payment(s) so far"
    payment = body.get("payment") or {}
    amount = payment.get("instructedAmount") or {}
    return (
        f"payment {payment.get('paymentId', '?')} {payment.get('status', '?')}, "
        f"{amount.get('amount')} {amount.get('currency')} to {payment.get('creditorName')}"
    )


# -- configuration ------------------------------------------------------------------------------------


@dataclass
class Config:
    api: str = "https://127.0.0.1:8444"
    issuer: str = "https://localhost:8443"
    data_dir: Path = Path(".corridor")
    ca_file: Path | None = None  # default: <data_dir>/tls/ca.pem
    client_id: str = "demo-client"
    key_file: Path | None = None  # default: <data_dir>/demo-client-key.json
    redirect_uri: str = "http://127.0.0.1:8765/callback"
    trail: Path | None = None  # default: <data_dir>/agent-trail.jsonl
    budget: Decimal = Decimal("100.00")
    currency: str = "EUR"
    creditor: str = "Merchant A"
    purpose: str = "Pay the user's invoices from Merchant A"

    def __post_init__(self) -> None:
        self.ca_file = self.ca_file or self.data_dir / "tls" / "ca.pem"
        self.key_file = self.key_file or self.data_dir / "demo-client-key.json"
        self.trail = self.trail or self.data_dir / "agent-trail.jsonl"


def authorization_details(config: Config, run_id: str) -> list[dict[str, Any]]:
    """What the user is asked to approve: one agent_tool entry per tool, and the budget."""
    budget = {"currency": config.currency, "amount": f"{config.budget:.2f}"}
    return [
        {
            "type": "agent_tool",
            "tool": "list_accounts",
            "actions": [TOOLS["list_accounts"].action],
            "locations": [config.api],
            "purpose": "See the user's account and the payments made",
        },
        {
            "type": "agent_tool",
            "tool": "make_payment",
            "actions": [TOOLS["make_payment"].action],
            "locations": [config.api],
            "limits": {"max_amount": budget},
            "purpose": config.purpose,
        },
        {
            "type": "payment_initiation",
            "instructedAmount": budget,
            "creditorName": config.creditor,
            # Names this run in the words the user approves (the demo API keeps each grant's
            # budget apart by the token's grant_id anyway).
            "remittanceInformationUnstructured": f"Agent run {run_id[:12]}",
        },
    ]


# -- the user's side: who approves ------------------------------------------------------------------


class ApprovalError(Exception):
    """The user (or the stand-in for one) did not get through the authorization pages."""


class Approver(Protocol):
    def approve(self, url: str) -> str:
        """Send the user to ``url``; return the authorization response URL (the redirect)."""


class BrowserApprover:
    """A person approves in a browser; the response arrives on the loopback redirect URI
    (RFC 8252 7.3), received by :class:`corridor.client.login.LoopbackCallback`."""

    def __init__(self, redirect_uri: str, *, timeout: float = 300.0, out: Callable[[str], None] = print):
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname != "127.0.0.1" or parts.path != "/callback":
            raise ApprovalError(
                "the browser mode needs a loopback redirect URI http://127.0.0.1:PORT/callback"
            )
        self.port = parts.port or 80
        self.timeout = timeout
        self.out = out

    def approve(self, url: str) -> str:
        try:
            callback = LoopbackCallback(self.port)  # listening before the URL is shown
        except OSError as exc:
            raise ApprovalError(f"cannot listen on 127.0.0.1:{self.port}: {exc}") from exc
        self.out(
            "\nOpen this URL in a browser that trusts the CA, sign in and approve:\n"
            f"  {url}\n  (waiting up to {self.timeout:.0f} s for the redirect to {callback.redirect_uri})"
        )
        received = callback.wait(self.timeout)
        if received is None:
            raise ApprovalError(f"no authorization response within {self.timeout:.0f} s")
        return received


_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_DETAIL_WORDS = re.compile(r'<li class="detail" data-type="([^"]*)">(.*?)\s*<details>', re.S)
_TAG = re.compile(r"<[^>]*>")
_PAGE_ERROR = re.compile(r'<p class="error" role="alert">(.*?)</p>', re.S)
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


class AutoApprover:
    """A STAND-IN FOR A HUMAN, for demos and tests: plays the browser on Corridor's own pages
    (sign in as the demo user, a TOTP code if the AS asks for one, then Approve), keeping one
    browser session across authorizations as a browser would. A real agent never holds the
    user's password: the user approves in their own browser (:class:`BrowserApprover`)."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        ca_file: Path,
        redirect_uri: str,
        totp: pyotp.TOTP | None = None,
        out: Callable[[str], None] = print,
    ) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))
        self.browser = httpx.Client(verify=context, timeout=20, follow_redirects=False)
        self.username, self.password = username, password
        self.redirect_uri = redirect_uri
        self.totp = totp
        self.out = out
        #: What the last consent page showed, in words (type, words).
        self.shown: list[tuple[str, str]] = []

    def _code(self) -> str:
        if self.totp is not None:
            return self.totp.now()
        if sys.stdin.isatty():
            return input("    the AS asks for a TOTP code: code from your authenticator app: ").strip()
        raise ApprovalError(
            "the AS asks for a TOTP code and there is no --totp-uri-file (and no terminal to ask)"
        )

    def approve(self, url: str) -> str:
        self.out(f"  [auto-approve] signing in as {self.username!r} and approving (a stand-in for the user)")
        page = self.browser.get(url)
        answered: set[str] = set()
        for _ in range(12):
            if page.status_code in (302, 303):
                location = urljoin(str(page.url), page.headers["location"])
                if location.split("?", 1)[0] == self.redirect_uri:
                    return location
                page = self.browser.get(location)
                continue
            text = page.text
            action, csrf = _FORM_ACTION.search(text), _CSRF.search(text)
            if action is None or csrf is None:
                title = _TITLE.search(text)
                shown = html.unescape(title.group(1)) if title else text[:200]
                raise ApprovalError(f"the AS answered {page.status_code}: {shown}")
            if 'name="username"' in text:
                step, fields = "login", {"username": self.username, "password": self.password}
            elif 'name="code"' in text:
                self.out("  [auto-approve] the AS asks for a second factor (TOTP)")
                step, fields = "second_factor", {"code": self._code()}
            elif 'name="decision"' in text:
                # Each value sits in its own <bdi> (issue 13 E3): the words are the text without tags.
                self.shown = [
                    (t, html.unescape(_TAG.sub("", w)).strip()) for t, w in _DETAIL_WORDS.findall(text)
                ]
                for kind, words in self.shown:
                    self.out(f"    consent page shows ({kind}): {words}")
                step, fields = "consent", {"decision": "approve"}
            else:
                raise ApprovalError(f"an unexpected page ({page.status_code})")
            if step in answered:  # the same form again: the answer was refused; never loop
                error = _PAGE_ERROR.search(text)
                raise ApprovalError(
                    f"the {step} page refused: {html.unescape(error.group(1)) if error else page.status_code}"
                )
            answered.add(step)
            page = self.browser.post(
                urljoin(str(page.url), html.unescape(action.group(1))),
                data={"csrf": html.unescape(csrf.group(1)), **fields},
            )
        raise ApprovalError("the authorization pages did not redirect back")

    def close(self) -> None:
        self.browser.close()


# -- the agent's own evidence trail --------------------------------------------------------------------


class Trail:
    """The agent's side of the story, hash-chained (writer ``agent:<host>:<pid>:…``) in its own
    JSON Lines file, one record a line. ``request_id`` of every record is the run id, and
    ``python -m examples.agent_tool verify`` checks the file's chains."""

    def __init__(self, path: Path, run_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sink = JsonLinesSink(path)
        self.log = AuditLog(self.sink, role="agent")
        self.run_id = run_id

    def record(
        self,
        evidence: Evidence,
        event: str,
        outcome: str,
        *,
        rule: str | None = None,
        error: str | None = None,
        **detail: Any,
    ) -> None:
        detail = {k: v for k, v in detail.items() if v is not None}
        self.log.append(
            dataclasses.replace(evidence, detail={**detail, "run": self.run_id}),
            event,
            outcome,
            time.time(),
            rule=rule,
            error=error,
        )

    def close(self) -> None:
        self.sink.close()


# -- the runtime ------------------------------------------------------------------------------------------


class StepUpUnsatisfied(Exception):
    """The API asked for a stronger authentication and the new token still was not enough."""

    def __init__(self, result: ToolResult, wanted: StepUp, acr: str | None) -> None:
        super().__init__(
            f"step-up could not be satisfied: the API asks for acr {wanted.acr_values!r}, the new "
            f"token has acr {acr!r} (without a second factor the AS signs the user in with a password "
            f"only; enrol one with `corridor user totp USER`)"
        )
        self.result, self.wanted, self.acr = result, wanted, acr


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT access token, for correlation only (the API verifies it; the client
    treats it as opaque and trusts nothing in it)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def par_hash(authorize_url: str) -> str | None:
    """The hash under which Corridor records the pushed request (``detail.par`` of its records):
    SHA-256, base64url, of the request_uri's reference (it is not itself recorded)."""
    request_uri = parse_qs(urlsplit(authorize_url).query).get("request_uri", [""])[0]
    if not request_uri.startswith(REQUEST_URI_PREFIX):
        return None
    digest = hashlib.sha256(request_uri[len(REQUEST_URI_PREFIX) :].encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class AgentToolRuntime:
    """Tools for one user, one API, one grant (and the step-ups it needs)."""

    def __init__(
        self, config: Config, approver: Approver, trail: Trail, *, out: Callable[[str], None] = print
    ) -> None:
        self.config, self.approver, self.trail, self.out = config, approver, trail, out
        assert config.ca_file is not None and config.key_file is not None
        self.ca_file = str(config.ca_file)
        self.key = SigningKey(json.loads(Path(config.key_file).read_text()))
        #: The DPoP key the tokens are bound to (RFC 9449), made once for the whole run.
        self.dpop_key = SigningKey.generate("ES256")
        self.client: FapiClient | None = None
        self.handle: AuthorizationHandle | None = None
        self.tokens: TokenSet | None = None
        self.http: httpx.Client | None = None
        #: Every access token's jti this run received (the last is the current one).
        self.jtis: list[str] = []
        self.evidence = Evidence(
            issuer=config.issuer,
            request_id=trail.run_id,
            client_id=config.client_id,
            redirect_uri=config.redirect_uri,
            scope=SCOPE,
            authorization_details=authorization_details(config, trail.run_id),
            resource=config.api,
            sender_constraint="dpop",
            key_thumbprint=self.dpop_key.thumbprint(),
        )

    # -- discovery -----------------------------------------------------------------------------------

    def connect(self) -> None:
        """RFC 9728 from the API's URL to its AS (which must be the one configured), then the AS's
        metadata with the exact issuer check (FAPI2 5.3.3.1-11)."""
        config, evidence = self.config, self.evidence
        source = config.api.rstrip("/") + "/.well-known/oauth-protected-resource"
        try:
            resource = FapiClient.discover_resource(config.api, ca_file=self.ca_file)
        except ClientError as exc:
            self.trail.record(
                evidence, "agent.metadata", "refused", rule=exc.rule, kind="protected_resource", source=source
            )
            raise
        servers = list(resource.get("authorization_servers") or [])
        listed = config.issuer in servers
        self.trail.record(
            evidence,
            "agent.metadata",
            "checked" if listed else "refused",
            rule=None if listed else "RFC 9728 3 (the configured AS is not one the API names)",
            kind="protected_resource",
            source=source,
            resource=resource.get("resource"),
            authorization_servers=servers,
            issuer_check="listed" if listed else "not listed",
        )
        self.out(f"  API metadata: {source} names {', '.join(servers)}")
        if not listed:
            raise ClientError(f"the API names {servers}, not the configured AS {config.issuer}", "RFC 9728")
        client = FapiClient(
            config.issuer,
            config.client_id,
            redirect_uri=config.redirect_uri,
            key=self.key,
            dpop_key=self.dpop_key,
            ca_file=self.ca_file,
        )
        self.client = client
        try:
            client.discover()
        except ClientError as exc:
            self.trail.record(
                evidence, "agent.metadata", "refused", rule=exc.rule, kind="authorization_server"
            )
            raise
        self.trail.record(
            evidence,
            "agent.metadata",
            "checked",
            kind="authorization_server",
            **client.metadata_evidence,
            issuer_check="exact match",
        )
        self.out(f"  AS metadata: {client.metadata_evidence['source']} (issuer matches exactly)")

    # -- authorization ------------------------------------------------------------------------------

    def authorize(self, wanted: StepUp | None = None) -> TokenSet:
        """PAR (with the tools and the budget), the user's approval, iss/state checks, the token.
        With ``wanted``: the same request again with the API's acr_values / max_age (RFC 9470 4)."""
        if self.client is None:
            self.connect()
        assert self.client is not None
        client, evidence = self.client, self.evidence
        if wanted is None:
            details = evidence.authorization_details
            url, handle = client.start(SCOPE, resource=self.config.api, authorization_details=details)
        else:
            assert self.handle is not None
            url, handle = client.step_up(self.handle, wanted)
        self.handle = handle
        par = par_hash(url)
        self.trail.record(
            evidence,
            "agent.authorization_request",
            "pushed",
            par=par,
            acr_values=wanted.acr_values if wanted else None,
            max_age=wanted.max_age if wanted else None,
            step_up=wanted is not None,
            dpop_jkt=client.dpop_key.thumbprint(),
        )
        if wanted is None:
            self.out(f"  asking for: {SCOPE} at {self.config.api}")
            for entry in evidence.authorization_details:
                self.out(f"    - {describe(entry)}")
        callback = self.approver.approve(url)
        params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        iss = params.get("iss")
        iss_check = "missing" if iss is None else "matches" if iss == client.issuer else "differs"
        # FapiClient.finish checks iss (FAPI2 5.3.3.2-5, RFC 9207) and state, then redeems the code.
        response = {"par": par, "iss": iss, "iss_check": iss_check}
        try:
            tokens = client.finish(callback, handle)
        except AuthorizationResponseError as exc:
            self.trail.record(
                evidence,
                "agent.authorization_response",
                "refused",
                rule=exc.rule,
                error=exc.error or "invalid_response",
                **response,
            )
            raise
        except ClientError as exc:
            self.trail.record(
                evidence, "agent.authorization_response", "accepted", **response, state_check="matches"
            )
            self.trail.record(
                evidence, "agent.token", "refused", rule=exc.rule, error=getattr(exc, "error", None), par=par
            )
            raise
        self.trail.record(
            evidence, "agent.authorization_response", "accepted", **response, state_check="matches"
        )
        self.out(f"  authorization response: iss {iss} {iss_check} the issuer, state matches")
        claims = jwt_claims(tokens.access_token)
        jti = str(claims.get("jti", "")) or None
        evidence.token_jti = jti
        if tokens.id_token_claims:
            evidence.user_id = str(tokens.id_token_claims.get("sub"))
        evidence.scope = tokens.scope or evidence.scope
        self.trail.record(
            evidence,
            "agent.token",
            "received",
            par=par,
            token_type=tokens.token_type,
            cnf_jkt=(claims.get("cnf") or {}).get("jkt"),
            acr=claims.get("acr"),
            auth_time=claims.get("auth_time"),
            expires_at=int(tokens.expires_at),
            granted_authorization_details=list(tokens.authorization_details) or None,
            step_up=wanted is not None,
        )
        if jti:
            self.jtis.append(jti)
        self.out(
            f"  token: {tokens.token_type}-bound to key {evidence.key_thumbprint}, "
            f"acr {claims.get('acr')}, jti {jti}"
        )
        self.tokens = tokens
        if self.http is not None:
            self.http.close()
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.http = httpx.Client(verify=context, timeout=20, auth=client.auth(tokens))
        return tokens

    # -- tools ----------------------------------------------------------------------------------------

    def list_accounts(self) -> ToolResult:
        return self.invoke("list_accounts", {})

    def make_payment(self, amount: str, currency: str, creditor: str) -> ToolResult:
        return self.invoke("make_payment", {"amount": amount, "currency": currency, "creditor": creditor})

    def invoke(self, tool: str, arguments: Mapping[str, Any]) -> ToolResult:
        """What an agent framework calls with a model's tool call: checked against the tool's
        schema, sent to the API with the grant's token, stepped up once when the API asks."""
        spec = TOOLS.get(tool)
        if spec is None:
            raise ValueError(f"no tool {tool!r}")
        jsonschema.validate(dict(arguments), dict(spec.parameters))
        if self.tokens is None:
            self.authorize()
        result, wanted = self._call(spec, arguments)
        if wanted is None:
            return result
        # RFC 9470: once through the AS with what the API asked for, then one retry.
        self.trail.record(
            self.evidence,
            "agent.step_up",
            "started",
            tool=tool,
            acr_values=wanted.acr_values,
            max_age=wanted.max_age,
            reason=wanted.description,
        )
        self.out(f"  step-up: the API asks for acr {wanted.acr_values!r} ({wanted.description})")
        try:
            self.authorize(wanted)
        except (ApprovalError, ClientError) as exc:
            self.trail.record(
                self.evidence,
                "agent.step_up",
                "unsatisfied",
                rule="RFC 9470 4",
                error="insufficient_user_authentication",
                tool=tool,
                reason=str(exc),
            )
            raise
        retried, again = self._call(spec, arguments, retry=True)
        acr = jwt_claims(self.tokens.access_token).get("acr") if self.tokens else None
        if again is not None:
            unsatisfied = dataclasses.replace(retried, outcome="step_up_unsatisfied")
            self.trail.record(
                self.evidence,
                "agent.step_up",
                "unsatisfied",
                rule="RFC 9470 (one step-up per call)",
                error="insufficient_user_authentication",
                tool=tool,
                acr_values=again.acr_values,
                token_acr=acr,
            )
            raise StepUpUnsatisfied(unsatisfied, again, acr)
        self.trail.record(self.evidence, "agent.step_up", "satisfied", tool=tool, token_acr=acr)
        return retried

    def _call(
        self, spec: ToolSpec, arguments: Mapping[str, Any], *, retry: bool = False
    ) -> tuple[ToolResult, StepUp | None]:
        assert self.http is not None
        api = self.config.api.rstrip("/")
        if spec.name == "list_accounts":
            method, url, body = "GET", api + "/accounts", None
        else:
            method, url = "POST", api + "/payments"
            body = {
                "amount": arguments["amount"],
                "currency": arguments["currency"],
                "creditorName": arguments["creditor"],
                "remittanceInformation": f"Agent run {self.trail.run_id[:12]}",
            }
        try:
            response = self.http.request(method, url, json=body)
        except httpx.HTTPError as exc:
            self.trail.record(
                self.evidence,
                "agent.tool_call",
                "failed",
                error="unreachable",
                tool=spec.name,
                action=spec.action,
                arguments=dict(arguments),
                method=method,
                url=url,
                reason=str(exc),
            )
            raise
        try:
            answer = response.json()
        except ValueError:
            answer = None
        error = description = None
        if isinstance(answer, dict) and response.status_code >= 400:
            error, description = answer.get("error"), answer.get("error_description")
        if response.status_code >= 400 and error is None:
            challenge = response.headers.get("www-authenticate", "")
            params = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', challenge))
            error, description = params.get("error"), params.get("error_description")
        match = POLICY_TEXT.search(str(description or ""))
        policies = tuple(p.strip() for p in match.group(1).split(",")) if match else ()
        wanted = step_up_challenge(response)
        outcome = "allowed" if response.status_code < 400 else "refused"
        result = ToolResult(
            spec.name,
            dict(arguments),
            outcome,
            response.status_code,
            str(error) if error else None,
            str(description or ""),
            policies,
            answer if outcome == "allowed" else None,
        )
        self.trail.record(
            self.evidence,
            "agent.tool_call",
            "step_up_required" if wanted else outcome,
            rule=("Cedar: " + ", ".join(policies)) if policies else None,
            error=result.error,
            tool=spec.name,
            action=spec.action,
            arguments=dict(arguments),
            method=method,
            url=url,
            status=response.status_code,
            error_description=description or None,
            policies=list(policies) or None,
            retry_after_step_up=retry,
        )
        return result, wanted

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.client is not None:
            self.client.close()


def describe(entry: Mapping[str, Any]) -> str:
    if entry.get("type") == "agent_tool":
        limits = entry.get("limits") or {}
        money = limits.get("max_amount")
        extra = f", at most {money['amount']} {money['currency']}" if money else ""
        return f"agent_tool {entry['tool']}: {', '.join(entry['actions'])}{extra}"
    if entry.get("type") == "payment_initiation":
        money = entry["instructedAmount"]
        return (
            f"payment_initiation: up to {money['amount']} {money['currency']} in all "
            f"to {entry['creditorName']}"
        )
    return json.dumps(entry)


# -- scenarios ---------------------------------------------------------------------------------------------

#: The scripted calls of `demo`: within the budget, beyond it, to another creditor.
DEMO_CALLS: Sequence[tuple[str, dict[str, str]]] = (
    ("list_accounts", {}),
    ("make_payment", {"amount": "60.00", "currency": "EUR", "creditor": "Merchant A"}),
    ("make_payment", {"amount": "60.00", "currency": "EUR", "creditor": "Merchant A"}),
    ("make_payment", {"amount": "10.00", "currency": "EUR", "creditor": "Merchant B"}),
)
#: `step-up`: a payment above the demo API's threshold (500.00) inside a 1000.00 budget.
STEP_UP_CALLS: Sequence[tuple[str, dict[str, str]]] = (
    ("make_payment", {"amount": "600.00", "currency": "EUR", "creditor": "Merchant A"}),
)


def run(runtime: AgentToolRuntime, calls: Sequence[tuple[str, dict[str, str]]]) -> list[ToolResult]:
    results = []
    runtime.connect()
    runtime.authorize()
    runtime.out("")
    for tool, arguments in calls:
        result = runtime.invoke(tool, arguments)
        runtime.out(result.line())
        results.append(result)
    return results


def decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {text!r}") from exc
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"not an amount with at most two decimals: {text!r}")
    return value


__all__ = [
    "DEMO_CALLS",
    "STEP_UP_CALLS",
    "TOOLS",
    "AgentToolRuntime",
    "ApprovalError",
    "AutoApprover",
    "BrowserApprover",
    "Config",
    "StepUpUnsatisfied",
    "ToolResult",
    "Trail",
]
