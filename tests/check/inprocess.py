"""An in-process Corridor (tests/support.py ``running_as``: real uvicorn over TLS, a real
SQLite file, an injectable clock) prepared for ``corridor check``: a user, two clients per
requested variant pair, and the check's configuration file; plus a way to run modules against
it with the server's clock (so ``--slow`` modules never sleep). Faults are made by the tests
(monkeypatching one step of corridor.server) to prove that a module can FAIL."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corridor.check import runner
from corridor.check.config import DEFAULT_VARIANT, CheckConfig, Variant, load_config
from corridor.check.http import Transcript
from corridor.check.login import make_browser
from corridor.check.results import ModuleResult
from corridor.core.jose import SigningKey
from corridor.transport.tls import DevTLS
from tests.check.corridor_stack import REDIRECTS, SCOPE, write_config
from tests.pki import TestPKI
from tests.support import PASSWORD, Driver, RunningAS, running_as


def register(
    running: RunningAS, directory: Path, pairs: Sequence[str] = ("private_key_jwt+dpop",)
) -> tuple[str, list[dict[str, object]]]:
    """A user and two clients per variant pair in ``running``, each with its own key and
    self-signed certificate (all of them also in ``directory/certificates.pem``, for a resource
    server to trust); returns the user name and the check's ``[[clients]]`` entries."""
    driver = Driver(running)
    username = driver.add_user()
    pki = TestPKI(directory / "pki")
    entries: list[dict[str, object]] = []
    for pair in pairs:
        auth, sender = pair.split("+")
        for n, redirect in enumerate(REDIRECTS, start=1):
            cert = pki.self_signed(f"CN=check {auth} {sender} {n}")  # no "+" in a DN (RFC 4514)
            # PS256 for the first client (the suite's RS256-assertion module needs an RSA key).
            key = SigningKey.generate("PS256" if n == 1 else "ES256")
            # The certificate is registered (x5c) beside the signing key: mTLS-bound tokens and
            # Corridor's mTLS listener trust registered self-signed certificates (design.md 5).
            jwks = {"keys": [cert.jwk()] if auth == "mtls" else [key.public_jwk, cert.jwk()]}
            client = driver.add_client(
                scope=SCOPE,
                redirect_uris=(redirect,),
                jwks=jwks,
                key=key,
                auth_method="self_signed_tls_client_auth" if auth == "mtls" else "private_key_jwt",
                sender_constraint=sender,
            )
            jwk_file = directory / f"{client.client_id}.jwk.json"
            jwk_file.write_text(json.dumps(client.key.private_jwk()))
            entries.append(
                {
                    "client_id": client.client_id,
                    "jwk_file": jwk_file.name,
                    "cert_file": str(cert.cert_file),
                    "cert_key_file": str(cert.key_file),
                    "redirect_uri": redirect,
                    "scope": SCOPE,
                    "variants": [pair],
                }
            )
    (directory / "certificates.pem").write_text(
        "".join(Path(str(entry["cert_file"])).read_text() for entry in entries)
    )
    return username, entries


def prepare(
    running: RunningAS,
    directory: Path,
    *,
    pairs: Sequence[str] = ("private_key_jwt+dpop",),
    resource: str = "",
) -> Path:
    """:func:`register`, then the check's configuration (resource: ``userinfo`` by default)."""
    username, entries = register(running, directory, pairs)
    path = directory / "check.toml"
    write_config(
        path, running.issuer, running.tls.ca_file, resource or "userinfo", username, PASSWORD, entries
    )
    return path


def run_modules(
    config_path: Path,
    names: Sequence[str],
    *,
    running: RunningAS | None = None,
    variant: Variant = DEFAULT_VARIANT,
    slow: bool = False,
) -> dict[str, ModuleResult]:
    """Run ``names`` in ``variant``; with ``running``, the check's clock is the server's and a
    ``--slow`` wait moves it instead of sleeping."""
    config: CheckConfig = load_config(config_path)

    def new_browser(transcript: Transcript) -> Any:
        return make_browser(
            config.login, transcript=transcript, allowed_hosts=config.allowed_hosts(), ca_file=config.ca_file
        )

    extra: dict[str, Any] = {}
    if running is not None:
        extra = {"clock": running.clock.now, "sleep": running.clock.advance}
    reports, _, _ = runner.run(config, [variant], new_browser, only=names, slow=slow, workers=2, **extra)
    return {result.name: result for result in reports[0].results}


@contextmanager
def checked_corridor(
    directory: Path, tls: DevTLS, *, pairs: Sequence[str] = ("private_key_jwt+dpop",), **settings: Any
) -> Iterator[tuple[RunningAS, Path]]:
    """An in-process Corridor on a fresh data directory, prepared for the check."""
    data_dir = directory / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with running_as(data_dir, tls, **settings) as running:
        yield running, prepare(running, directory, pairs=pairs)
