"""The agent tool runtime from the command line (run from the repository root):

    .venv/bin/python -m examples.agent_tool demo --auto-approve

Scenarios:

  demo     (the default) approve 100.00 EUR to "Merchant A", then: list_accounts();
           make_payment 60.00 (within the budget); 60.00 again (beyond it: 120 > 100);
           10.00 to "Merchant B" (another creditor). The API's Cedar policies decide each call.
  step-up  approve 1000.00, then make_payment 600.00: above the API's 500.00 threshold it asks
           for acr "mfa" (RFC 9470); the runtime sends the user through the AS again and retries
           once. Without a TOTP factor (`corridor user totp demo`) the token stays acr
           "password" and the runtime stops and says so.
  tools    print the tools as an agent framework sees them (JSON Schema), and exit.
  verify   verify the hash chains of the agent's trail (--trail), as `corridor audit verify` does
           the AS's: one line per chain, exit status 1 when one is broken.

By default the user approves in a browser: the runtime prints the authorization URL and waits
for the redirect on http://127.0.0.1:8765/callback. --auto-approve makes the runtime itself fill
in Corridor's login and consent pages as the demo user: a STAND-IN FOR A HUMAN, for demos and
tests only (a real agent never holds the user's password). With --totp-uri-file it also answers
the TOTP page (the otpauth:// URI `corridor user totp` printed; again a stand-in for the user's
phone); without it, it asks on the terminal.

Exit status: 0 when the scenario ran (refusals by the API are results, not failures); 1 when it
could not (unreachable API or AS, the user did not approve, a step-up that could not be satisfied).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp

from corridor.audit.sinks import verify_file
from corridor.client.errors import ClientError
from corridor.core.randomness import new_id

from .runtime import (
    DEMO_CALLS,
    STEP_UP_CALLS,
    TOOLS,
    AgentToolRuntime,
    ApprovalError,
    Approver,
    AutoApprover,
    BrowserApprover,
    Config,
    StepUpUnsatisfied,
    Trail,
    decimal,
    run,
)

DEFAULT_DATA_DIR = Path(".corridor")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.agent_tool",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", nargs="?", default="demo", choices=["demo", "step-up", "tools", "verify"])
    p.add_argument("--api", default="https://127.0.0.1:8444", help="the demo payments API")
    p.add_argument("--issuer", default="https://localhost:8443", help="the AS (the API must name it)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="the AS's data directory: the defaults of --ca, --key, --password-file, --trail (.corridor)",
    )
    p.add_argument("--ca", type=Path, help="CA file to trust (default DATA_DIR/tls/ca.pem)")
    p.add_argument("--client-id", default="demo-client")
    p.add_argument("--key", type=Path, help="the client's private JWK (DATA_DIR/demo-client-key.json)")
    p.add_argument("--redirect-uri", default="http://127.0.0.1:8765/callback")
    p.add_argument(
        "--trail", type=Path, help="the agent's evidence trail, JSON Lines (DATA_DIR/agent-trail.jsonl)"
    )
    p.add_argument("--budget", help="the amount the user approves (demo: 100.00, step-up: 1000.00)")
    p.add_argument("--currency", default="EUR")
    p.add_argument("--creditor", default="Merchant A")
    p.add_argument(
        "--auto-approve",
        action="store_true",
        help="fill in Corridor's login and consent pages as the user (a stand-in for a human)",
    )
    p.add_argument("--username", default="demo", help="--auto-approve: who signs in (demo)")
    p.add_argument(
        "--password-file", type=Path, help="--auto-approve: password (DATA_DIR/demo-user-password.txt)"
    )
    p.add_argument(
        "--totp-uri-file", type=Path, help="--auto-approve: the otpauth:// URI from `corridor user totp USER`"
    )
    p.add_argument("--timeout", type=float, default=300.0, help="browser mode: seconds to wait")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = functools.partial(print, flush=True)
    if args.scenario == "tools":
        out(json.dumps([vars(spec) for spec in TOOLS.values()], indent=2))
        return 0
    if args.scenario == "verify":
        return verify(Config(data_dir=args.data_dir, trail=args.trail).trail, out)
    try:
        budget = decimal(args.budget or ("1000.00" if args.scenario == "step-up" else "100.00"))
    except ValueError as exc:
        out(f"agent_tool: --budget: {exc}", file=sys.stderr)
        return 2
    config = Config(
        api=args.api.rstrip("/"),
        issuer=args.issuer,
        data_dir=args.data_dir,
        ca_file=args.ca,
        client_id=args.client_id,
        key_file=args.key,
        redirect_uri=args.redirect_uri,
        trail=args.trail,
        budget=budget,
        currency=args.currency,
        creditor=args.creditor,
    )
    assert config.ca_file is not None and config.trail is not None
    approver: Approver
    try:
        if args.auto_approve:
            password_file = args.password_file or args.data_dir / "demo-user-password.txt"
            totp = None
            if args.totp_uri_file:
                uri = args.totp_uri_file.read_text().strip()
                totp = pyotp.TOTP(parse_qs(urlsplit(uri).query)["secret"][0])
            approver = AutoApprover(
                args.username,
                password_file.read_text().strip(),
                ca_file=config.ca_file,
                redirect_uri=config.redirect_uri,
                totp=totp,
                out=out,
            )
        else:
            approver = BrowserApprover(config.redirect_uri, timeout=args.timeout, out=out)
    except (OSError, KeyError, ApprovalError) as exc:
        out(f"agent_tool: {exc}", file=sys.stderr)
        return 1

    if not config.ca_file.is_file():
        out(f"agent_tool: no CA file {config.ca_file}: is the AS running (make run)?", file=sys.stderr)
        return 1
    run_id = new_id()
    trail = Trail(config.trail, run_id)
    out(f"Agent tool runtime, run {run_id}: API {config.api}, AS {config.issuer}, client {config.client_id}")
    try:
        runtime = AgentToolRuntime(config, approver, trail, out=out)
    except OSError as exc:
        out(f"agent_tool: {exc}", file=sys.stderr)
        trail.close()
        return 1
    status = 0
    try:
        run(runtime, STEP_UP_CALLS if args.scenario == "step-up" else DEMO_CALLS)
    except StepUpUnsatisfied as exc:
        out(exc.result.line())
        out(f"\nstopped: {exc}")
        status = 1
    except (ClientError, ApprovalError, OSError, httpx.HTTPError) as exc:
        out(f"\nagent_tool: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 1
    finally:
        runtime.close()
        if isinstance(approver, AutoApprover):
            approver.close()
        trail.close()
    where = "" if args.data_dir == DEFAULT_DATA_DIR else f" --data-dir {args.data_dir}"
    if runtime.jtis:
        out("")
        for jti in runtime.jtis:
            out(f"access token jti: {jti}")
        out("read the whole story (from the repository root):")
        for jti in runtime.jtis:
            out(f"  corridor audit trace {jti}{where}")
    out(f"the agent's own trail: {config.trail} (JSON Lines; this run's records have request_id {run_id})")
    out(f"verify its hash chain: python -m examples.agent_tool verify --trail {config.trail}")
    return status


def verify(trail: Path | None, out: Callable[..., None]) -> int:
    """The chains of the trail file, one line each; 1 when one is broken (or there is no file)."""
    assert trail is not None
    if not trail.is_file():
        out(f"agent_tool: no trail {trail}", file=sys.stderr)
        return 1
    reports = verify_file(trail)
    for report in reports:
        out(report.line())
    return 0 if all(report.intact for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
