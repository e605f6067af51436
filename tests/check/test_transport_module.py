"""The TLS module catches a listener that still speaks TLS 1.1 (FAPI2 5.2.1, RFC 8996): the same
in-process Corridor PASSes with its own TLS context and FAILs with one that allows TLS 1.1."""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path

import pytest

import tests.support
from corridor.check.results import Status
from corridor.transport.tls import DevTLS, server_ssl_context
from tests.check.inprocess import checked_corridor, run_modules

TLS = "corridor-tls-bcp195"


def permissive_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():  # the point is a listener that still allows TLS 1.0/1.1
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


@pytest.mark.parametrize("permissive", [False, True])
def test_tls_11_accepted_fails_the_tls_module(
    tmp_path: Path, tls: DevTLS, monkeypatch: pytest.MonkeyPatch, permissive: bool
) -> None:
    monkeypatch.setattr(
        tests.support, "server_ssl_context", permissive_context if permissive else server_ssl_context
    )
    with checked_corridor(tmp_path, tls) as (running, config):
        results = run_modules(config, [TLS], running=running)
    result = results[TLS]
    if not permissive:
        assert result.status is Status.PASS, result.reason
        rows = result.facts["tls"]
        assert rows and all(row["versions"]["TLS 1.1"] is False for row in rows), rows
    else:
        assert result.status is Status.FAIL
        assert "TLS 1.1" in result.reason
        # Positive control: the probe really spoke TLS 1.1 to this listener.
        assert any(row["versions"]["TLS 1.1"] is True for row in result.facts["tls"])
