"""examples/agent_tool end to end, run the way README.md says: ``corridor serve`` and
``corridor demo-api`` as processes (as tests/resource/test_demo_api.py starts them), then
``python -m examples.agent_tool ... --auto-approve`` from the repository root with the dev-mode
files of that data directory. Checked: the four scripted calls and what the API decided, the AS's
story of the grant (``corridor audit trace JTI --json``), the agent's own hash-chained trail
in a JSON Lines file (``python -m examples.agent_tool verify``), and step-up with and without a
TOTP factor."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corridor.audit.sinks import read_records
from corridor.audit.trace import readable
from tests.resource.test_demo_api import DemoAPI, demo_api
from tests.support import RunningAS, free_socket
from tests.test_serve import CORRIDOR, corridor, serve

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    running: RunningAS
    api: DemoAPI
    data_dir: Path

    def agent(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The README's command, pointed at this stack (its API, AS and data directory)."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "examples.agent_tool",
                *args,
                "--data-dir",
                str(self.data_dir),
                "--api",
                self.api.url,
                "--issuer",
                self.running.issuer,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def trace(self, ident: str, *extra: str) -> list[dict[str, Any]]:
        result = corridor("audit", "trace", ident, "--json", *extra, data_dir=self.data_dir)
        assert result.returncode == 0, result.stderr
        records: list[dict[str, Any]] = json.loads(result.stdout)
        return records


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("agent-tool") / "data"
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    url = f"https://127.0.0.1:{port}"
    # As in test_demo_api.py: registered before the AS starts (dev mode then adds none of its own).
    name, scope = "Demo payments API", "accounts payments"
    assert corridor("db", "upgrade", data_dir=data_dir).returncode == 0  # issue 13 F2
    added = corridor("resource", "add", url, "--name", name, "--scope", scope, data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    with serve(data_dir) as (running, _), demo_api(data_dir, port, running.issuer) as api:
        yield Stack(running, api, data_dir)


def run_id(stdout: str) -> str:
    match = re.search(r"^Agent tool runtime, run ([0-9a-f]{32}):", stdout, re.M)
    assert match, stdout
    return match.group(1)


def jtis(stdout: str) -> list[str]:
    return re.findall(r"^access token jti: (\S+)$", stdout, re.M)


def calls(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(r"(list_accounts|make_payment)\(", line)]


def agent_records(stack: Stack, run: str) -> list[dict[str, Any]]:
    """One run's records from the agent's JSON Lines trail, their JSON members parsed."""
    records = read_records(stack.data_dir / "agent-trail.jsonl")
    return readable(record for record in records if record["request_id"] == run)


def test_demo_scenario(stack: Stack) -> None:
    result = stack.agent("demo", "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr, result.stderr

    # The four calls, one line each, with what the API's policies decided.
    lines = calls(out)
    assert len(lines) == 4, out
    assert lines[0].startswith("list_accounts() -> allowed 200"), lines[0]
    assert lines[1].startswith(
        'make_payment(amount="60.00", currency="EUR", creditor="Merchant A") -> allowed 201'
    ), lines[1]
    assert lines[2].startswith(
        'make_payment(amount="60.00", currency="EUR", creditor="Merchant A") -> refused 403'
    )
    assert "insufficient_scope" in lines[2]
    # Beyond the payment grant and the agent's own cap (limits.max_amount): both policies say no.
    assert lines[2].endswith(
        "corridor/forbid-payment-over-granted-amount, corridor/forbid-payment-over-tool-limit"
    ), lines[2]
    assert lines[3].startswith(
        'make_payment(amount="10.00", currency="EUR", creditor="Merchant B") -> refused 403'
    )
    assert lines[3].endswith("corridor/forbid-payment-to-another-creditor"), lines[3]
    # The consent page the stand-in approved said it in words.
    assert "consent page shows (agent_tool): Let the agent use the tool “make_payment”" in out
    assert "consent page shows (payment_initiation): Pay up to 100.00 EUR in all to Merchant A" in out

    [jti] = jtis(out)
    assert f"corridor audit trace {jti} --data-dir {stack.data_dir}" in out
    trail = stack.data_dir / "agent-trail.jsonl"
    assert f"python -m examples.agent_tool verify --trail {trail}" in out

    # The AS's side: the whole story of the grant from the token's jti.
    story = stack.trace(jti)
    events = [(r["event"], r["outcome"]) for r in story]
    for step in (
        ("par", "accepted"),
        ("consent", "shown"),
        ("consent", "granted"),
        ("code", "issued"),
        ("token.authorization_code", "issued"),
    ):
        assert step in events, events
    assert events.index(("par", "accepted")) < events.index(("consent", "shown"))
    assert events.index(("consent", "granted")) < events.index(("token.authorization_code", "issued"))
    shown = next(r for r in story if r["event"] == "consent")["detail"]["approval_surface"]["facts"]
    assert [d["type"] for d in shown["details"]] == ["agent_tool", "agent_tool", "payment_initiation"]
    access = [r for r in story if r["event"] == "rs.access" and r["token_jti"] == jti]
    decisions = [
        (r["detail"].get("tool_action"), r["detail"]["route"], r["outcome"], r["rule"]) for r in access
    ]
    assert decisions == [
        (
            "list_accounts:read",
            "/accounts",
            "allowed",
            "Cedar: corridor/permit-by-route-scope, corridor/permit-granted-tool-action",
        ),
        (
            "make_payment",
            "/payments",
            "allowed",
            "Cedar: corridor/permit-by-route-scope, corridor/permit-granted-tool-action",
        ),
        (
            "make_payment",
            "/payments",
            "refused",
            "Cedar: corridor/forbid-payment-over-granted-amount, corridor/forbid-payment-over-tool-limit",
        ),
        ("make_payment", "/payments", "refused", "Cedar: corridor/forbid-payment-to-another-creditor"),
    ], decisions
    assert access[-1]["detail"]["policy"]["policies"] == ["corridor/forbid-payment-to-another-creditor"]
    issued = next(r for r in story if r["event"] == "token.authorization_code")
    par = next(r for r in story if r["event"] == "par")["detail"]["par"]

    # The agent's side, in its own database, with the evidence fields filled.
    run = run_id(out)
    mine = agent_records(stack, run)
    assert [(r["event"], r["outcome"]) for r in mine] == [
        ("agent.metadata", "checked"),
        ("agent.metadata", "checked"),
        ("agent.authorization_request", "pushed"),
        ("agent.authorization_response", "accepted"),
        ("agent.token", "received"),
        ("agent.tool_call", "allowed"),
        ("agent.tool_call", "allowed"),
        ("agent.tool_call", "refused"),
        ("agent.tool_call", "refused"),
    ]
    assert all(r["writer"].startswith("agent:") for r in mine)
    resource_meta, as_meta = mine[0]["detail"], mine[1]["detail"]
    assert resource_meta["source"] == stack.api.url + "/.well-known/oauth-protected-resource"
    assert resource_meta["authorization_servers"] == [stack.running.issuer]
    assert as_meta["source"] == stack.running.issuer + "/.well-known/openid-configuration"
    assert as_meta["issuer_check"] == "exact match" and len(as_meta["sha256"]) == 64
    # The pushed request is the one the AS recorded (the same hash of its reference).
    assert mine[2]["detail"]["par"] == par
    response = mine[3]["detail"]
    assert response["iss"] == stack.running.issuer and response["iss_check"] == "matches"
    for record in mine:
        assert record["issuer"] == stack.running.issuer
        assert record["client_id"] == "demo-client"
        assert record["resource"] == stack.api.url
        assert record["sender_constraint"] == "dpop"
        assert record["key_thumbprint"] == issued["key_thumbprint"]
        assert [d["type"] for d in record["authorization_details"]] == [
            "agent_tool",
            "agent_tool",
            "payment_initiation",
        ]
        assert "accounts" in record["scope"].split() and "payments" in record["scope"].split()
    assert [r["token_jti"] for r in mine[4:]] == [jti] * 5
    assert mine[4]["detail"]["acr"] == "password" and mine[4]["detail"]["cnf_jkt"] == issued["key_thumbprint"]
    assert mine[4]["user_id"] == issued["user_id"]
    tool_calls = [r["detail"] for r in mine[5:]]
    assert [(d["tool"], d["action"], d["status"]) for d in tool_calls] == [
        ("list_accounts", "read", 200),
        ("make_payment", "initiate", 201),
        ("make_payment", "initiate", 403),
        ("make_payment", "initiate", 403),
    ]
    assert tool_calls[3]["arguments"] == {"amount": "10.00", "currency": "EUR", "creditor": "Merchant B"}
    assert tool_calls[2]["policies"] == [
        "corridor/forbid-payment-over-granted-amount",
        "corridor/forbid-payment-over-tool-limit",
    ]
    assert "refused by policy" in tool_calls[2]["error_description"]
    assert mine[7]["error"] == "insufficient_scope"
    assert (
        mine[7]["rule"]
        == "Cedar: corridor/forbid-payment-over-granted-amount, corridor/forbid-payment-over-tool-limit"
    )
    # No secret in the agent's trail: no code, no token, no password.
    dump = json.dumps(mine)
    assert "code=" not in dump and "eyJ" not in dump
    password = (stack.data_dir / "demo-user-password.txt").read_text().strip()
    assert password not in dump

    # The run is one writer's chain in the file, and `verify` proves it intact.
    assert f"this run's records have request_id {run}" in out
    assert len({r["writer"] for r in mine}) == 1
    verified = stack.agent("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert re.search(r"^agent:\S+: 9 records, intact$", verified.stdout, re.M), verified.stdout


def test_every_seed_field_at_every_hop(stack: Stack) -> None:
    """Issue 16: one agent payment, and the grant's trace (``corridor audit trace GRANT_ID``) has
    all twelve fields of the seed: user, client, AS, RS, scope, sender-constraining method and key,
    issuer, redirect URI, tool name, requested action with its parameters, approval surface with
    the page hash, enforcement decision; and the agent's own records say where its metadata came
    from (issuer, URL, time, hash)."""
    result = stack.agent("demo", "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    [jti] = jtis(result.stdout)
    issued = next(r for r in stack.trace(jti) if r["event"] == "token.authorization_code")
    grant = issued["grant_id"]
    story = stack.trace(grant)
    assert {r["grant_id"] for r in story if r["event"].startswith("rs.")} == {grant}  # no guessing
    by_event = {(r["event"], r["outcome"]): r for r in story}
    shown, granted = by_event[("consent", "shown")], by_event[("consent", "granted")]
    access = [r for r in story if r["event"] == "rs.access"]
    paid = next(r for r in access if r["outcome"] == "allowed" and r["detail"]["route"] == "/payments")
    over = next(r for r in access if "forbid-payment-over-granted-amount" in (r["rule"] or ""))

    # 1 user, 2 client: the same at the AS and the RS.
    user, client = issued["user_id"], issued["client_id"]
    assert user and client == "demo-client"
    assert {r["user_id"] for r in [granted, *access]} == {user}
    assert {r["client_id"] for r in story if r["client_id"]} == {client}
    # 3 the AS and 7 the issuer: every AS record, and the issuer every RS record accepted.
    assert {r["issuer"] for r in story} == {stack.running.issuer}
    # 4 the RS: the audience of the token and the resource of every decision.
    assert {r["resource"] for r in access} == {stack.api.url}
    # 5 scope.
    assert {"accounts", "payments"} <= set(issued["scope"].split())
    assert all(set(r["scope"].split()) == set(issued["scope"].split()) for r in access)
    # 6 the sender constraint, method and key, the same at the token endpoint and at the RS.
    assert (issued["sender_constraint"], len(issued["key_thumbprint"])) == ("dpop", 43)
    assert {(r["sender_constraint"], r["key_thumbprint"]) for r in access} == {
        ("dpop", issued["key_thumbprint"])
    }
    # 8 the redirect URI the code went to.
    code = by_event[("code", "issued")]
    assert code["redirect_uri"] and code["redirect_uri"].startswith("http")
    assert by_event[("par", "accepted")]["redirect_uri"] == code["redirect_uri"]
    # 9 the tool, 10 the requested action with its parameters, and what it did.
    assert [r["detail"]["action"]["tool"] for r in access] == ["list_accounts", *["make_payment"] * 3]
    parameters = paid["detail"]["action"]["parameters"]
    assert parameters["reference"].startswith("Agent run ")
    assert {k: v for k, v in parameters.items() if k != "reference"} == {
        "amount": "60.00",
        "currency": "EUR",
        "creditor_name": "Merchant A",
        "creditor_account": None,  # none given: the grant's entry names no account either
    }
    done = next(r for r in story if r["event"] == "rs.result")
    assert done["request_id"] == paid["request_id"] and done["detail"]["result"]["status"] == "accepted"
    # 11 the approval surface: what the page said, and the hash of the page itself.
    surface = shown["detail"]["approval_surface"]
    assert len(surface["body_sha256"]) == 64
    words = [d["words"] for d in surface["facts"]["details"]]
    assert "Pay up to 100.00 EUR in all to Merchant A" in " ".join(words)
    # 12 the enforcement decision, with the policy and the amounts it compared.
    assert paid["outcome"] == "allowed" and paid["detail"]["policy"]["decision"] == "allow"
    assert over["outcome"] == "refused" and over["error"] == "insufficient_scope"
    compared = over["detail"]["policy"]["compared"]
    assert compared["request"]["amount_minor"] == 6000
    assert (compared["payment"]["spent_minor"], compared["payment"]["limit_minor"]) == (6000, 10000)
    # And the client's side: where its metadata came from, when, and its hash.
    mine = agent_records(stack, run_id(result.stdout))
    (fetched,) = [r for r in mine if r["detail"].get("kind") == "authorization_server"]
    assert (fetched["event"], fetched["issuer"]) == ("agent.metadata", stack.running.issuer)
    assert fetched["detail"]["source"] == stack.running.issuer + "/.well-known/openid-configuration"
    assert fetched["detail"]["fetched_at"] > 0 and len(fetched["detail"]["sha256"]) == 64


def test_an_evidence_pack_of_an_agent_payment_is_proven_offline(stack: Stack, tmp_path: Path) -> None:
    """Issue 16: the grant of a real agent payment as an evidence pack; ``verify-pack`` proves it
    with no database, and refuses it once the payment's amount is changed in it."""
    result = stack.agent("demo", "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    [jti] = jtis(result.stdout)
    grant = next(r for r in stack.trace(jti) if r["event"] == "token.authorization_code")["grant_id"]
    out = tmp_path / "pack.json"
    made = corridor("audit", "pack", grant, "--out", str(out), data_dir=stack.data_dir)
    assert made.returncode == 0, made.stdout + made.stderr

    def verify_pack() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CORRIDOR, "audit", "verify-pack", str(out)],
            cwd=tmp_path,  # nowhere near the data directory or its database
            capture_output=True,
            text=True,
            timeout=60,
        )

    proven = verify_pack()
    assert proven.returncode == 0 and "all records proven" in proven.stdout, proven.stdout + proven.stderr
    pack = json.loads(out.read_text())
    paid = next(r for r in pack["records"] if r["event"] == "rs.access" and '"amount":"60.00"' in r["detail"])
    paid["detail"] = paid["detail"].replace('"amount":"60.00"', '"amount":"6.00"')
    out.write_text(json.dumps(pack))
    refused = verify_pack()
    assert refused.returncode == 1
    assert (
        f"record {paid['writer']} #{paid['seq']} (rs.access): content does not match its hash (edited)"
        in refused.stdout
    ), refused.stdout


def test_the_trace_of_an_agent_payment_in_words(stack: Stack) -> None:
    """Issue 16: the text trace of the grant tells the story: who signed in and how, what the page
    showed, what the agent did with which parameters and what came of it, and a refused over-limit
    payment with the Cedar policy and the amounts it compared."""
    result = stack.agent("demo", "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    [jti] = jtis(result.stdout)
    grant = next(r for r in stack.trace(jti) if r["event"] == "token.authorization_code")["grant_id"]
    told = corridor("audit", "trace", grant, data_dir=stack.data_dir)
    assert told.returncode == 0, told.stderr
    steps = [step.strip() for step in re.split(r"\n(?=\d{4}-)", told.stdout)]
    signed_in = next(s for s in steps if " login succeeded: " in s)
    assert "Who: user demo, through client demo-client" in signed_in
    assert "Sign-in: with a password: acr password, amr pwd" in signed_in
    shown = next(s for s in steps if " consent shown: " in s)
    assert "What was shown: Pay up to 100.00 EUR in all to Merchant A" in shown
    assert re.search(r"What was shown: page SHA-256 [0-9a-f]{64}", shown)
    paid, answered, over, other = [s for s in steps if " rs." in s.splitlines()[0]][1:]
    assert "What was done: the action make_payment with amount “60.00”" in paid
    assert "creditor_name “Merchant A”, currency “EUR”" in paid and "Why refused" not in paid
    assert "Cedar allowed it (corridor/permit-by-route-scope, corridor/permit-granted-tool-action)" in paid
    assert re.search(r"the result: payment_id “[0-9a-f-]{36}”, status “accepted”", answered)
    assert (
        "Why refused: refused (insufficient_scope) by the Cedar policies "
        "corridor/forbid-payment-over-granted-amount, corridor/forbid-payment-over-tool-limit"
    ) in over
    assert "Why refused: 60.00 EUR requested + 60.00 EUR already paid > 100.00 EUR granted" in over
    assert "Why refused: the creditor “Merchant B” asked, the grant names “Merchant A”" in other
    assert all("Bound to: bound to DPoP key " in s for s in steps[1:])


def test_a_second_run_gets_its_own_budget(stack: Stack) -> None:
    """Each run's grant names the run, so the demo API's per-grant spending starts again."""
    result = stack.agent("demo", "--auto-approve")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(" -> ")[1].split(":")[0] for line in calls(result.stdout)] == [
        "allowed 200",
        "allowed 201",
        "refused 403 insufficient_scope",
        "refused 403 insufficient_scope",
    ]


def test_step_up_without_a_second_factor_stops(stack: Stack) -> None:
    """The demo user has no TOTP: the AS signs in with a password again, the token stays acr
    password, the API refuses again, and the runtime stops after one step-up (no loop)."""
    result = stack.agent("step-up", "--auto-approve")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "step-up: the API asks for acr 'mfa'" in out
    assert "stopped: step-up could not be satisfied" in out, out
    [line] = calls(out)
    assert line.startswith(
        'make_payment(amount="600.00", currency="EUR", creditor="Merchant A") -> step_up_unsatisfied 401'
    ), line
    assert len(jtis(out)) == 2
    mine = agent_records(stack, run_id(out))
    assert [(r["event"], r["outcome"]) for r in mine][2:] == [
        ("agent.authorization_request", "pushed"),
        ("agent.authorization_response", "accepted"),
        ("agent.token", "received"),
        ("agent.tool_call", "step_up_required"),
        ("agent.step_up", "started"),
        ("agent.authorization_request", "pushed"),
        ("agent.authorization_response", "accepted"),
        ("agent.token", "received"),
        ("agent.tool_call", "step_up_required"),
        ("agent.step_up", "unsatisfied"),
    ]
    assert mine[7]["detail"]["acr_values"] == "mfa" and mine[7]["detail"]["step_up"] is True
    assert mine[-1]["detail"]["token_acr"] == "password"


def test_step_up_with_totp(stack: Stack, tmp_path: Path) -> None:
    """With a TOTP factor (`corridor user totp`) the AS asks for a code in the same browser
    session, the new token has acr mfa, and the retried payment goes through."""
    password_file = tmp_path / "password.txt"
    password_file.write_text("agent user password\n")
    added = corridor(
        "user", "add", "agent-user", "--password-stdin", data_dir=stack.data_dir, stdin="agent user password"
    )
    assert added.returncode == 0, added.stderr
    uri_file = tmp_path / "totp-uri.txt"  # as the README says: a 0600 file, never world-readable
    enrolled = corridor("user", "totp", "agent-user", "--output", str(uri_file), data_dir=stack.data_dir)
    assert enrolled.returncode == 0, enrolled.stderr
    assert "otpauth" not in enrolled.stdout and stat.S_IMODE(uri_file.stat().st_mode) == 0o600
    result = stack.agent(
        "step-up",
        "--auto-approve",
        "--username",
        "agent-user",
        "--password-file",
        str(password_file),
        "--totp-uri-file",
        str(uri_file),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "the AS asks for a second factor (TOTP)" in out
    [line] = calls(out)
    assert line.startswith(
        'make_payment(amount="600.00", currency="EUR", creditor="Merchant A") -> allowed 201'
    ), line
    first, second = jtis(out)
    story = stack.trace(second)
    issued = next(r for r in story if r["event"] == "token.authorization_code")
    assert issued["token_jti"] == second
    access = [r for r in story if r["event"] == "rs.access" and r["token_jti"] == second]
    assert [(r["outcome"], r["detail"]["status"]) for r in access] == [("allowed", 201)]
    mine = agent_records(stack, run_id(out))
    tokens = [r for r in mine if r["event"] == "agent.token"]
    assert [t["detail"]["acr"] for t in tokens] == ["password", "mfa"]
    assert [t["token_jti"] for t in tokens] == [first, second]
    assert (mine[-1]["event"], mine[-1]["outcome"]) == ("agent.step_up", "satisfied")
