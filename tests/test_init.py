"""``corridor init DIR`` (issue 18): a production configuration skeleton generated from the
settings class (every setting, its default, what it does), a private data directory, no
overwrite without --force, and a file that ``corridor serve`` refuses until it is filled in."""

from __future__ import annotations

import json
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from corridor.cli import main
from corridor.server.settings import Settings
from corridor.server.skeleton import render_skeleton, setting_descriptions
from tests.pki import TestPKI
from tests.test_cli_front_door import one_line_error, served
from tests.test_modes import SERVER_AUTH, assert_no_demo_objects
from tests.test_serve import CORRIDOR

PUBLIC = "https://as.example.com"


def init(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["init", *args])
    return result.exit_code, result.stdout, result.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_setting_has_a_description() -> None:
    """The skeleton's text comes from the class: a setting added without one fails here."""
    descriptions = setting_descriptions()
    assert set(descriptions) == set(Settings.model_fields)
    assert [name for name, text in descriptions.items() if len(text) < 10] == []
    assert descriptions["tls_key_file"] == descriptions["tls_cert_file"]  # one comment, two fields
    assert descriptions["code_lifetime"].startswith("FAPI2 5.3.2.1-11")


def test_every_setting_is_in_the_skeleton_with_its_default(tmp_path: Path) -> None:
    text = render_skeleton(tmp_path / "data")
    table = tomllib.loads(text)
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if default is None:
            assert f"\n# {name} =" in text, name  # unset: written commented out
        elif name == "data_dir":
            assert table[name] == str(tmp_path / "data")
        elif name in ("issuer", "tls_cert_file", "tls_key_file"):
            assert table[name] == "", name  # placeholders: serve refuses until they are set
        else:
            assert table[name] == (str(default) if isinstance(default, Path) else default), name


def test_the_skeleton_loads_back_to_the_defaults(tmp_path: Path) -> None:
    code, _, err = init(str(tmp_path / "etc"))
    assert code == 0, err
    config = tmp_path / "etc" / "corridor.toml"
    loaded = Settings.load(config, issuer=PUBLIC)
    expected = Settings(issuer=PUBLIC, data_dir=tmp_path / "etc" / "data")
    assert loaded.model_dump() == expected.model_dump()
    assert loaded.dev_mode is False and loaded.admin_require_mfa is True
    with pytest.raises(ValidationError, match="the issuer is not set"):
        Settings.load(config)


def test_init_writes_a_private_file_and_directory(tmp_path: Path) -> None:
    target, data = tmp_path / "etc" / "corridor", tmp_path / "var" / "lib" / "corridor"
    code, out, err = init(str(target), "--data-dir", str(data))
    assert code == 0, err
    config = target / "corridor.toml"
    assert mode(config) == 0o600 and mode(data) == 0o700 and mode(target) == 0o700
    assert tomllib.loads(config.read_text())["data_dir"] == str(data)
    assert f"corridor serve --config {config}" in out and "deploy/PRODUCTION.md" in out
    assert list(data.iterdir()) == []


def test_init_json_names_the_paths(tmp_path: Path) -> None:
    code, out, _ = init(str(tmp_path / "etc"), "--json")
    assert code == 0
    assert json.loads(out) == {
        "config_file": str(tmp_path / "etc" / "corridor.toml"),
        "data_dir": str(tmp_path / "etc" / "data"),
    }


def test_init_does_not_replace_a_configuration_without_force(tmp_path: Path) -> None:
    config = tmp_path / "corridor.toml"
    config.write_text('issuer = "https://mine.example"\n')
    result = subprocess.run([*CORRIDOR, "init", str(tmp_path)], capture_output=True, text=True, timeout=60)
    line = one_line_error(result, str(config), "exists", "--force")
    assert result.returncode == 1 and line
    assert config.read_text() == 'issuer = "https://mine.example"\n'
    code, _, err = init(str(tmp_path), "--force")
    assert code == 0, err
    assert "every setting" in config.read_text()


def test_init_on_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    code, _, err = init(str(tmp_path / "file"))
    assert code == 2 and "is a file" in err


def test_serve_refuses_the_skeleton_until_it_is_filled_in(tmp_path: Path) -> None:
    """The placeholders make ``corridor serve`` say what to set: the issuer, then TLS."""
    assert init(str(tmp_path))[0] == 0
    config = tmp_path / "corridor.toml"

    def serve() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CORRIDOR, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60
        )

    one_line_error(serve(), "configuration: issuer", "the issuer is not set")
    config.write_text(config.read_text().replace('issuer = ""', f'issuer = "{PUBLIC}"'))
    one_line_error(serve(), f"production mode (issuer {PUBLIC} is not a loopback URL)", "tls_cert_file")
    assert list((tmp_path / "data").iterdir()) == []


def test_the_filled_in_skeleton_serves_in_production_mode(tmp_path: Path, pki: TestPKI) -> None:
    """From ``corridor init`` to a running production server: the issuer and TLS files set, and
    nothing else changed; no demo objects, no local CA."""
    assert init(str(tmp_path))[0] == 0
    config, data = tmp_path / "corridor.toml", tmp_path / "data"
    cert = pki.issue("CN=as.example.com", dns="as.example.com", ip="127.0.0.1", eku=SERVER_AUTH)
    text = config.read_text()
    for name, value in (
        ("issuer", PUBLIC),
        ("tls_cert_file", cert.cert_file),
        ("tls_key_file", cert.key_file),
    ):
        text = text.replace(f'\n{name} = ""\n', f'\n{name} = "{value}"\n')
    config.write_text(text)
    with served(data, "--config", str(config), ca=pki.ca_file) as running:
        pass
    assert f"  mode:        production (issuer {PUBLIC} is not a loopback URL)\n" in running.output
    assert (data / "corridor.db").is_file() and not (data / "tls").exists()
    assert_no_demo_objects(data, f"sqlite:///{data / 'corridor.db'}")
