"""Configuration: defaults < TOML file < CORRIDOR_* environment < explicit flags; FAPI bounds enforced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from corridor.server.settings import Settings


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "corridor.toml"
    config.write_text('issuer = "https://as.example.com"\npar_lifetime = 60\naccess_token_lifetime = 600\n')
    monkeypatch.setenv("CORRIDOR_PAR_LIFETIME", "45")
    settings = Settings.load(config, access_token_lifetime=120)
    assert settings.issuer == "https://as.example.com"
    assert settings.par_lifetime == 45  # environment beats the file
    assert settings.access_token_lifetime == 120  # flags beat everything
    assert settings.code_lifetime == 60
    assert settings.database_url.endswith("/.corridor/corridor.db")


@pytest.mark.parametrize(
    "override",
    [
        {"code_lifetime": 61},  # FAPI2 5.3.2.1-11
        {"par_lifetime": 600},  # FAPI2 5.3.2.2-12
        {"max_clock_skew": 61},  # FAPI2 5.3.2.1-13
        {"issuer": "http://as.example.com"},
        {"issuer": "https://as.example.com/?x=1"},
        {"signing_alg": "RS256"},  # FAPI2 5.4.1
        # What a password, a TOTP code and a passkey give must be levels, weakest first.
        {"acr_levels": ["password", "mfa"]},
        {"acr_levels": ["password", "passkey", "mfa"]},
        {"acr_levels": ["password", "mfa", "mfa", "passkey"]},
    ],
)
def test_fapi_bounds(override: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(**override)


def test_unknown_setting_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "corridor.toml"
    config.write_text("isuer = 'typo'\n")
    with pytest.raises(ValidationError):
        Settings.load(config)


def test_more_acr_levels_may_be_named_around_the_built_in_ones() -> None:
    levels = ["password", "mfa", "hardware_key", "passkey", "in_person"]
    assert Settings(acr_levels=levels).acr_levels == levels
