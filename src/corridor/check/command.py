"""``corridor check``: the command line of the conformance checker."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from corridor.check.config import ConfigError, load_config, select_variants
from corridor.check.results import ModuleResult, Report, Status

EPILOG = """\
\b
Examples:
  corridor check as.toml                       # private_key_jwt + DPoP + openid
  corridor check as.toml --all-variants --html report.html
  corridor check as.toml --only fapi2-security-profile-final-happy-flow -v
  corridor check ms.toml --plan message-signing  # JAR + JARM (clients "...+jar+jarm")
Exit status: 0 when no module failed, 1 when one did, 2 for a configuration error.
"""


def _line(result: ModuleResult, prefix: str = "") -> str:
    return f"{result.status.value:<8} {prefix}{result.name}: {result.reason}"


@click.command("check", epilog=EPILOG)
@click.argument("config_file", metavar="CONFIG.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--client-auth",
    type=click.Choice(["private_key_jwt", "mtls"]),
    default=None,
    help="Client authentication of the variant [default: private_key_jwt].",
)
@click.option(
    "--sender",
    type=click.Choice(["dpop", "mtls"]),
    default=None,
    help="Sender constraint of the variant [default: dpop].",
)
@click.option(
    "--openid/--plain-oauth",
    "openid",
    default=None,
    help="OpenID Connect (openid scope, ID tokens) or plain OAuth [default: --openid].",
)
@click.option(
    "--plan",
    type=click.Choice(["security-profile", "message-signing", "client-credentials"]),
    default=None,
    help="fapi2-security-profile-final-test-plan, fapi2-message-signing-final-test-plan with "
    "signed_non_repudiation + jarm, or fapi2-security-profile-final-client-credentials-grant-test-plan "
    "(plain OAuth, tokens by the client credentials grant) "
    "[default: the configuration's plan, else security-profile].",
)
@click.option(
    "--all-variants",
    is_flag=True,
    help="All the plan's variants (8; 4 for client-credentials), a report section each.",
)
@click.option(
    "--slow",
    is_flag=True,
    help="Also the modules that wait (code after 62 s, request_uri after expires_in + 1 s).",
)
@click.option("--only", "only", default="", metavar="MODULE[,MODULE...]", help="Run only these modules.")
@click.option(
    "--list", "list_modules", is_flag=True, help="List the modules of the selected variant(s) and exit."
)
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report as JSON.",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report as one self-contained HTML file.",
)
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report as Markdown.",
)
@click.option(
    "--workers", type=click.IntRange(1, 32), default=6, show_default=True, help="Modules run at once."
)
@click.option("-v", "--verbose", is_flag=True, help="Show each module as it finishes, and its notes.")
def check(
    config_file: Path,
    client_auth: str | None,
    sender: str | None,
    openid: bool | None,
    plan: str | None,
    all_variants: bool,
    slow: bool,
    only: str,
    list_modules: bool,
    json_file: Path | None,
    html_file: Path | None,
    markdown_file: Path | None,
    workers: int,
    verbose: bool,
) -> None:
    """Test a FAPI 2.0 authorization server (and resource server) from the outside.

    Runs the OpenID Foundation's fapi2-security-profile-final-test-plan (fapi_profile=plain_fapi),
    or with --plan message-signing its fapi2-message-signing-final-test-plan (signed request
    objects at PAR and JARM responses), or with --plan client-credentials its
    fapi2-security-profile-final-client-credentials-grant-test-plan, module for module under
    the suite's names, against the issuer of CONFIG.toml, and reports each module as PASS, FAIL,
    WARNING or SKIPPED, then the proven facts (sender constraint, PAR, PKCE, RFC 9207 iss,
    lifetimes, audiences, clock window, algorithms, DPoP nonces, TLS).
    """
    from corridor.check import runner

    try:
        config = load_config(config_file)
        variants = select_variants(
            config,
            all_variants=all_variants,
            client_auth=client_auth,
            sender=sender,
            openid=openid,
            plan=plan,
        )
        names = tuple(name.strip() for name in only.split(",") if name.strip())
        selected = {variant: runner.modules_for(variant, names) for variant in variants}
        if list_modules:
            for variant, specs in selected.items():
                click.echo(f"# {variant.name}: {len(specs)} modules")
                for spec in specs:
                    flag = " (--slow)" if spec.slow else ""
                    click.echo(f"{spec.name}{flag}")
            return
        for variant in variants:
            config.clients_for(variant)
    except ConfigError as exc:
        click.echo(f"corridor check: {exc}", err=True)
        sys.exit(2)
    report = run_check(config, variants, names, slow=slow, workers=workers, verbose=verbose)
    _write(report, json_file, html_file, markdown_file)
    for section in report.variants:
        if len(report.variants) > 1:
            click.echo(f"# {section.name}")
        for result in section.results:
            click.echo(_line(result))
            if verbose:
                for note in result.notes:
                    click.echo(f"         - {note}")
    click.echo(report.summary_line())
    sys.exit(1 if report.counts()[Status.FAIL] else 0)


def run_check(
    config: Any, variants: Any, names: tuple[str, ...], *, slow: bool, workers: int, verbose: bool
) -> Report:
    from corridor.check import facts, runner
    from corridor.check.login import make_browser
    from corridor.check.modules.transport import tls_opening

    def new_browser(transcript: Any) -> Any:
        return make_browser(
            config.login, transcript=transcript, allowed_hosts=config.allowed_hosts(), ca_file=config.ca_file
        )

    def progress(variant: Any, result: ModuleResult) -> None:
        if verbose:
            click.echo(f"  [{variant.name}] {_line(result)}", err=True)

    try:
        reports, servers, _ = runner.run(
            config, variants, new_browser, only=names, slow=slow, workers=workers, on_result=progress
        )
    except runner.DiscoveryError as exc:
        click.echo(f"corridor check: discovery failed: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("corridor check: interrupted; no report written", err=True)
        sys.stderr.flush()
        # Modules still running (a --slow wait) must not hold the exit up.
        os._exit(130)
    header = facts.opening(config, servers, reports, tls=tls_opening(reports))
    return Report(header, reports)


def _write(
    report: Report, json_file: Path | None, html_file: Path | None, markdown_file: Path | None
) -> None:
    import corridor.check.report as render

    for path, text in (
        (json_file, render.to_json),
        (html_file, render.to_html),
        (markdown_file, render.to_markdown),
    ):
        if path is not None:
            try:
                path.write_text(text(report))
            except OSError as exc:
                click.echo(f"corridor check: cannot write {path}: {exc.strerror}", err=True)
                sys.exit(2)
