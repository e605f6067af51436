"""Issue 18, operator CLI: `client update`, `resource show` / `list --json`, `grant list` /
`show` / `revoke` and `token revoke`, through the real command (click's runner, in this process)
against a running AS on the same database, on SQLite and PostgreSQL. Errors are one line and
exit 1; an empty list says so, or prints [] with --json.

The AS here keeps no registration cache (``registration_cache_seconds`` 0), so a changed
registration counts at the next request; with the default (2 s) it counts within that."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from corridor.cli import main
from corridor.core.jose import SigningKey
from corridor.core.randomness import new_id
from tests.support import REDIRECT_URI, RESOURCE, Client, Driver, decode_jwt

AS_SETTINGS = {"registration_cache_seconds": 0}


def cli(driver: Driver, *args: str, stdin: str | None = None) -> Result:
    """``corridor ARGS --data-dir DIR`` on the AS's database, as an operator runs it."""
    return CliRunner().invoke(
        main,
        [*args, "--data-dir", str(driver.as_.data_dir)],
        # The AS's settings, as a shared configuration file gives them.
        env={"CORRIDOR_DATABASE_URL": driver.as_.store.url, "CORRIDOR_REGISTRATION_CACHE_SECONDS": "0"},
        input=stdin,
        catch_exceptions=False,
    )


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.stderr)
    return result.stdout


def refused(result: Result, *words: str) -> str:
    """One line on stderr, exit 1 (click.ClickException), no traceback."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def as_json(result: Result) -> Any:
    return json.loads(ok(result))


def flow(driver: Driver, client: Client, username: str | None = None) -> dict[str, Any]:
    """A full flow (PAR, sign-in, consent, token) for ``username``; the tokens and their grant id."""
    response, started = driver.par(client)
    assert response.status_code == 201, response.text
    final = driver.authorize(client, started, username=username)
    assert final.status_code == 303 and started.code, final.text
    tokens = driver.redeem(client, started)
    assert tokens.status_code == 200, tokens.text
    body: dict[str, Any] = tokens.json()
    jti = decode_jwt(body["access_token"])[1]["jti"]
    row = driver.as_.store.grants.access_token(jti)
    assert row is not None
    return {**body, "jti": jti, "grant_id": row["grant_id"]}


def active(driver: Driver, client: Client, token: str) -> bool:
    answer: bool = driver.introspect(client, token).json()["active"]
    return answer


def refresh(driver: Driver, client: Client, refresh_token: str) -> tuple[int, str]:
    response = driver.token_request(client, {"grant_type": "refresh_token", "refresh_token": refresh_token})
    return response.status_code, response.json().get("error", "")


# -- client update ----------------------------------------------------------------------------


def test_client_update_changes_only_the_options_given(driver: Driver) -> None:
    """The new redirect URI and scope count at the next PAR; keys, sender constraint and the
    rest stay as registered."""
    client = driver.add_client()
    before = as_json(cli(driver, "client", "show", client.client_id))
    new_uri = "https://client.example.org/new-cb"
    after = as_json(
        cli(
            driver,
            "client",
            "update",
            client.client_id,
            "--redirect-uri",
            new_uri,
            "--scope",
            "openid accounts",
            "--name",
            "Renamed",
            "--json",
        )
    )
    assert after["redirect_uris"] == [new_uri] and after["scope"] == "openid accounts"
    assert after["client_name"] == "Renamed"
    unchanged = {k: v for k, v in before.items() if k not in ("redirect_uris", "scope", "client_name")}
    assert {k: after[k] for k in unchanged} == unchanged
    assert as_json(cli(driver, "client", "show", client.client_id)) == after
    assert driver.par(client)[0].json()["error"] == "invalid_request"  # the old URI, now unknown
    moved = Client(client.client_id, client.key, client.dpop_key, new_uri)
    assert driver.par(moved)[0].status_code == 201
    text = ok(cli(driver, "client", "update", client.client_id, "--redirect-uri", REDIRECT_URI))
    assert text.strip() == (
        f"updated {client.client_id}; running servers use it within registration_cache_seconds (0 s)"
    )
    assert driver.par(client)[0].status_code == 201


def test_client_update_replaces_keys_and_sender_constraint(driver: Driver, tmp_path: Path) -> None:
    """--jwks-file replaces the registered keys: the new key authenticates, the old one no more;
    --sender-constraint mtls makes it an mTLS-bound client (RFC 8705 3)."""
    client = driver.add_client()
    new_key = SigningKey.generate("ES256")
    jwks = tmp_path / "new.jwks.json"
    jwks.write_text(json.dumps({"keys": [new_key.public_jwk]}))
    ok(cli(driver, "client", "update", client.client_id, "--jwks-file", str(jwks)))
    assert driver.par(client)[0].json()["error"] == "invalid_client"
    rekeyed = Client(client.client_id, new_key, client.dpop_key)
    assert driver.par(rekeyed)[0].status_code == 201
    meta = as_json(cli(driver, "client", "update", client.client_id, "--sender-constraint", "mtls", "--json"))
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert meta["dpop_bound_access_tokens"] is False
    assert meta["jwks"] == {"keys": [new_key.public_jwk]}
    uri = as_json(
        cli(
            driver,
            "client",
            "update",
            client.client_id,
            "--jwks-uri",
            "https://client.example.org/jwks",
            "--json",
        )
    )
    assert uri["jwks_uri"] == "https://client.example.org/jwks" and "jwks" not in uri
    modes = as_json(
        cli(
            driver,
            "client",
            "update",
            client.client_id,
            "--response-mode",
            "jwt",
            "--resource",
            RESOURCE,
            "--json",
        )
    )
    assert modes["response_modes"] == ["jwt"] and modes["resources"] == [RESOURCE]
    lifted = as_json(
        cli(driver, "client", "update", client.client_id, "--any-response-mode", "--all-resources", "--json")
    )
    assert "response_modes" not in lifted and lifted["resources"] == []


def test_client_update_refuses_what_client_add_refuses(driver: Driver, tmp_path: Path) -> None:
    """The same validation as `client add` (build_client_metadata); a refused update changes nothing."""
    client = driver.add_client()
    before = as_json(cli(driver, "client", "show", client.client_id))
    both = tmp_path / "k.json"
    both.write_text(json.dumps({"keys": [client.key.public_jwk]}))
    cases = [
        (("--redirect-uri", "http://client.example.org/cb"), "invalid_redirect_uri"),
        (("--redirect-uri", "https://client.example.org/cb#frag"), "invalid_redirect_uri"),
        (("--scope", "openid launch-missiles"), "unknown scope(s): launch-missiles"),
        (("--jwks-uri", "http://client.example.org/jwks"), "jwks_uri must be an https URL"),
        (("--jwks-file", str(both), "--jwks-uri", "https://x.example/j"), "not both"),
        (("--auth-method", "tls_client_auth"), "tls_client_auth needs exactly one of"),
        (("--tls-client-auth-san-dns", "client.example.org"), "subject parameters belong to tls_client_auth"),
        (("--resource", "https://unknown.example.org/api"), "unknown resource server(s)"),
        (("--resource", RESOURCE, "--all-resources"), "not both"),
        (("--response-mode", "jwt", "--any-response-mode"), "not both"),
        (("--name", " "), "--name must not be empty"),
        ((), "nothing to change"),
    ]
    for args, words in cases:
        refused(cli(driver, "client", "update", client.client_id, *args), words)
    assert as_json(cli(driver, "client", "show", client.client_id)) == before
    refused(cli(driver, "client", "update", "c-nobody", "--scope", "openid"), "no client 'c-nobody'")


# -- resource show / list --json --------------------------------------------------------------


def test_resource_show_and_list_json(driver: Driver) -> None:
    identifier = f"https://rs-{new_id()[:8]}.example.org/api"
    ok(cli(driver, "resource", "add", identifier, "--name", "Ledger", "--scope", "accounts payments"))
    listed = as_json(cli(driver, "resource", "list", "--json"))
    mine = [r for r in listed if r["identifier"] == identifier]
    assert len(mine) == 1 and mine[0]["scopes"] == ["accounts", "payments"] and mine[0]["name"] == "Ledger"
    shown = as_json(cli(driver, "resource", "show", identifier, "--json"))
    assert shown == mine[0] and shown["introspection_client_id"] is None
    text = ok(cli(driver, "resource", "show", identifier))
    assert f"identifier: {identifier}\n" in text and "scopes: accounts payments\n" in text
    assert f"{identifier}\tLedger\taccounts payments" in ok(cli(driver, "resource", "list"))
    refused(cli(driver, "resource", "show", "https://nowhere.example.org/"), "no resource server")


@pytest.mark.parametrize(
    ("command", "empty", "empty_json"),
    [
        ("resource list", "no resource servers\n", "[]\n"),
        ("client list", "no clients (add one with corridor client add)\n", "[]\n"),
        ("grant list", "no grants\n", "[]\n"),
        ("user list", "no users (add one with corridor user add NAME --password-stdin)\n", "[]\n"),
        ("keys list", "no keys yet (corridor serve makes the first one)\n", "[]\n"),
        ("audit checkpoints", "no checkpoints\n", ""),  # --json: JSON Lines, to append elsewhere
    ],
)
def test_an_empty_list_says_so(tmp_path: Path, command: str, empty: str, empty_json: str) -> None:
    runner = CliRunner()
    data = str(tmp_path / "data")
    assert runner.invoke(main, ["db", "upgrade", "--data-dir", data]).exit_code == 0
    env = {"CORRIDOR_DATABASE_URL": ""}
    text = runner.invoke(main, [*command.split(), "--data-dir", data], env=env)
    assert (text.exit_code, text.stdout) == (0, empty)
    json_out = runner.invoke(main, [*command.split(), "--json", "--data-dir", data], env=env)
    assert (json_out.exit_code, json_out.stdout) == (0, empty_json)


# -- grant list / show ------------------------------------------------------------------------


def test_grant_list_and_show(driver: Driver) -> None:
    client = driver.add_client()
    username = driver.add_user()
    tokens = flow(driver, client, username)
    grant_id = tokens["grant_id"]
    listed = as_json(cli(driver, "grant", "list", "--client", client.client_id, "--json"))
    assert [g["id"] for g in listed] == [grant_id]
    assert listed[0]["user"] == username and listed[0]["client_id"] == client.client_id
    assert listed[0]["state"] == "active" and listed[0]["scope"] == "openid accounts"
    assert as_json(cli(driver, "grant", "list", "--user", username, "--json")) == listed
    line = ok(cli(driver, "grant", "list", "--client", client.client_id)).strip()
    assert line.startswith(
        f"{grant_id}\t{username}\t{client.client_id}\topenid accounts\t"
    ) and line.endswith("\tactive")
    shown = as_json(cli(driver, "grant", "show", grant_id, "--json"))
    assert shown["id"] == grant_id and shown["authorization_details"] is None
    assert shown["refresh_token"] is True
    assert [t["jti"] for t in shown["access_tokens"]] == [tokens["jti"]]
    assert shown["access_tokens"][0]["sender_constraint"] == "dpop"
    text = ok(cli(driver, "grant", "show", grant_id))
    assert f"id: {grant_id}\n" in text and "outstanding access tokens: 1\n" in text and tokens["jti"] in text
    assert len(as_json(cli(driver, "grant", "list", "--limit", "1", "--json"))) == 1
    # Empty lists say so.
    other = driver.add_client()
    assert ok(cli(driver, "grant", "list", "--client", other.client_id)) == "no grants\n"
    assert ok(cli(driver, "grant", "list", "--client", other.client_id, "--json")) == "[]\n"
    refused(cli(driver, "grant", "show", "no-such-grant"), "no grant 'no-such-grant'")
    refused(cli(driver, "grant", "list", "--user", "nobody-here"), "no user 'nobody-here'")
    assert cli(driver, "grant", "list", "--limit", "0").exit_code == 2  # click's usage error


# -- grant revoke / token revoke --------------------------------------------------------------


def test_grant_revoke_stops_its_tokens_at_once(driver: Driver) -> None:
    """RFC 7009 2.1: the operator revokes a grant; at the next request introspection answers
    inactive and the refresh token is refused (invalid_grant); an evidence record says so."""
    client = driver.add_client()
    tokens = flow(driver, client)
    assert active(driver, client, tokens["access_token"])
    out = ok(cli(driver, "grant", "revoke", tokens["grant_id"]))
    assert out.strip() == f"revoked 1 grant(s) and 1 live access token(s): {tokens['grant_id']}"
    assert not active(driver, client, tokens["access_token"])
    assert not active(driver, client, tokens["refresh_token"])
    assert refresh(driver, client, tokens["refresh_token"]) == (400, "invalid_grant")
    shown = as_json(cli(driver, "grant", "show", tokens["grant_id"], "--json"))
    assert shown["state"] == "revoked" and shown["revoked_reason"] == "revoked_by_operator"
    assert shown["access_tokens"] == []
    records = [
        r
        for r in driver.as_.store.audit.records(grant_id=tokens["grant_id"])
        if r["event"] == "revocation.grant"
    ]
    assert len(records) == 1 and records[0]["outcome"] == "revoked"
    assert records[0]["writer"].startswith("cli:") and json.loads(records[0]["detail"])["by"] == "operator"
    again = ok(cli(driver, "grant", "revoke", tokens["grant_id"]))
    assert again.strip() == f"grant {tokens['grant_id']} was already revoked"


def test_grant_revoke_by_user_and_by_client(driver: Driver) -> None:
    """--user revokes every live grant of the user, --client every one of the client; others stay."""
    first, second = driver.add_client(), driver.add_client()
    username, bystander = driver.add_user(), driver.add_user()
    mine = [flow(driver, first, username), flow(driver, second, username)]
    kept = flow(driver, first, bystander)
    revoked = as_json(cli(driver, "grant", "revoke", "--user", username, "--json"))
    assert sorted(revoked["revoked"]) == sorted(t["grant_id"] for t in mine) and revoked["access_tokens"] == 2
    for tokens, client in zip(mine, (first, second), strict=True):
        assert not active(driver, client, tokens["access_token"])
        assert refresh(driver, client, tokens["refresh_token"]) == (400, "invalid_grant")
    assert active(driver, first, kept["access_token"])
    assert ok(cli(driver, "grant", "revoke", "--user", username)) == "no live grants to revoke\n"
    assert as_json(cli(driver, "grant", "revoke", "--client", first.client_id, "--json")) == {
        "revoked": [kept["grant_id"]],
        "access_tokens": 1,
    }
    assert not active(driver, first, kept["access_token"])
    assert refresh(driver, first, kept["refresh_token"]) == (400, "invalid_grant")


def test_grant_revoke_refusals(driver: Driver) -> None:
    client = driver.add_client()
    username = driver.add_user()
    refused(cli(driver, "grant", "revoke"), "exactly one of ID, --user NAME, --client ID")
    refused(cli(driver, "grant", "revoke", "g1", "--client", client.client_id), "exactly one of")
    refused(
        cli(driver, "grant", "revoke", "--user", username, "--client", client.client_id), "exactly one of"
    )
    refused(cli(driver, "grant", "revoke", "no-such-grant"), "no grant 'no-such-grant'")
    refused(cli(driver, "grant", "revoke", "--user", "nobody-here"), "no user 'nobody-here'")
    refused(cli(driver, "grant", "revoke", "--client", "c-nobody"), "no client 'c-nobody'")


def test_token_revoke_stops_one_access_token(driver: Driver) -> None:
    """`corridor token revoke JTI`: that access token is inactive at once; the grant and its
    refresh token stay (RFC 7009 2.1 revokes the token given)."""
    client = driver.add_client()
    tokens = flow(driver, client)
    out = as_json(cli(driver, "token", "revoke", tokens["jti"], "--json"))
    assert out == {"jti": tokens["jti"], "revoked": True, "grant_id": tokens["grant_id"]}
    assert not active(driver, client, tokens["access_token"])
    assert refresh(driver, client, tokens["refresh_token"])[0] == 200
    records = driver.as_.store.audit.records(token_jti=tokens["jti"])
    assert [r["event"] for r in records if r["writer"].startswith("cli:")] == ["revocation.access_token"]
    assert (
        ok(cli(driver, "token", "revoke", tokens["jti"])).strip()
        == f"access token {tokens['jti']} was already revoked"
    )
    refused(cli(driver, "token", "revoke", "no-such-jti"), "no access token with jti 'no-such-jti'")


def test_revoke_all_is_one_transaction_with_its_records(driver: Driver) -> None:
    """The store function `grant revoke` calls: exactly one selector; inside a unit of work a
    failure after it (e.g. the evidence record) leaves the grant and its tokens live."""
    store = driver.as_.store
    for selectors in ({}, {"grant_id": "g", "client_id": "c"}):
        with pytest.raises(ValueError, match="exactly one of"):
            store.grants.revoke_all(driver.now(), "test", **selectors)
    client = driver.add_client()
    tokens = flow(driver, client)
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        assert [g["id"] for g in uow.grants.revoke_all(driver.now(), "test", client_id=client.client_id)] == [
            tokens["grant_id"]
        ]
        raise RuntimeError("the record could not be written")
    assert active(driver, client, tokens["access_token"])
    assert refresh(driver, client, tokens["refresh_token"])[0] == 200


# -- issue 20, 1: client credentials clients ----------------------------------------------------------


def test_a_client_credentials_client_from_the_cli(driver: Driver, tmp_path: Path) -> None:
    """`client add --grant-type client_credentials` needs no redirect URI; its grants list with no
    user; `client update --grant-type` switches a client to the code flow only with redirect URIs."""
    key = SigningKey.generate("ES256")
    jwks = tmp_path / "cc.jwks.json"
    jwks.write_text(json.dumps({"keys": [key.public_jwk]}))
    common = ("client", "add", "--name", "Agent", "--jwks-file", str(jwks), "--scope", "accounts")
    meta = as_json(cli(driver, *common, "--grant-type", "client_credentials", "--json"))
    assert meta["grant_types"] == ["client_credentials"] and meta["redirect_uris"] == []
    assert meta["response_types"] == []
    refused(
        cli(driver, *common, "--grant-type", "client_credentials", "--redirect-uri", REDIRECT_URI),
        "invalid_redirect_uri",
        "redirect URIs belong to the authorization_code grant",
    )
    refused(cli(driver, *common), "invalid_redirect_uri", "at least one redirect URI is required")
    refused(
        cli(driver, *common, "--grant-type", "refresh_token", "--grant-type", "client_credentials"),
        "refresh_token needs authorization_code",
    )
    assert cli(driver, *common, "--grant-type", "password").exit_code == 2  # not a choice
    client = Client(meta["client_id"], key, SigningKey.generate("ES256"), "")
    answer = driver.token_request(client, {"grant_type": "client_credentials", "scope": "accounts"})
    assert answer.status_code == 200, answer.text
    (listed,) = as_json(cli(driver, "grant", "list", "--client", client.client_id, "--json"))
    assert listed["user"] is None and listed["sub"] is None and listed["acr"] is None
    line = ok(cli(driver, "grant", "list", "--client", client.client_id)).strip()
    assert line.split("\t")[1] == "(no user: client credentials)"
    trace = ok(cli(driver, "audit", "trace", listed["id"]))
    assert "The client got a token for itself (no user involved)" in trace
    assert f"client {client.client_id}, acting for itself: no user was involved" in trace
    refused(
        cli(driver, "client", "update", client.client_id, "--grant-type", "authorization_code"),
        "at least one redirect URI is required",
    )
    both = as_json(
        cli(
            driver,
            "client",
            "update",
            client.client_id,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--redirect-uri",
            REDIRECT_URI,
            "--json",
        )
    )
    assert both["grant_types"] == ["authorization_code", "refresh_token"]
    again = driver.token_request(client, {"grant_type": "client_credentials", "scope": "accounts"})
    assert again.status_code == 400 and again.json()["error"] == "unauthorized_client"
    back = as_json(
        cli(driver, "client", "update", client.client_id, "--grant-type", "client_credentials", "--json")
    )
    assert back["grant_types"] == ["client_credentials"] and back["redirect_uris"] == []
