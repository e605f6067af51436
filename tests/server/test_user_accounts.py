"""Issue 18: the ``corridor user`` operator commands through the real CLI (click's runner, the
shipped ``main`` group) against a running AS on both databases, and what they change where the
user meets it: the sign-in page over HTTPS, the browser session, introspection and refresh.

``user add`` / ``user passwd`` go through the password policy (NIST SP 800-63B 5.1.1.2,
tests/server/test_password_policy.py for each rule); sign-in verifies the NFKC form; ``user
disable`` stops the account acting now (no sign-in, sessions ended, grants and access tokens
revoked); ``user totp`` never replaces a secret silently nor writes one world-readable."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner, Result

from corridor.cli import main
from corridor.core.randomness import new_id, token_hash
from corridor.core.rules import Rule
from corridor.server.authorization_code import complete
from corridor.server.interaction.contract import InteractionResult, PushedFacts
from corridor.server.par import REQUEST_URI_PREFIX
from corridor.store.sql import Store
from tests.support import Browser, Client, Driver, RunningAS, postgres_database

GOOD = "tangerine lantern oboe"
WRONG_PAGE = "Wrong user name or password."


def cli(running: RunningAS, *args: str, stdin: str | bytes | None = None) -> Result:
    """``corridor ARGS`` in this process, on the AS's database, as an operator runs it."""
    env = {"CORRIDOR_DATABASE_URL": running.store.url}
    return CliRunner().invoke(main, [*args, "--data-dir", str(running.data_dir)], input=stdin, env=env)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def one_line_error(result: Result, message: str) -> None:
    """design.md 6: exit status 1, one line, no traceback."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.stderr.splitlines() == [f"Error: {message}"], result.stderr
    assert result.stdout == ""


def new_name() -> str:
    return "u" + new_id()[:10]


def add(running: RunningAS, password: str = GOOD) -> str:
    name = new_name()
    ok(cli(running, "user", "add", name, "--password-stdin", stdin=password + "\n"))
    return name


def login_page(
    driver: Driver, client: Client, browser: Browser, resource: str | None = None
) -> tuple[Any, httpx.Response]:
    response, flow = driver.par(client, extra={"resource": resource} if resource else None)
    assert response.status_code == 201, response.text
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    return flow, page


def sign_in(driver: Driver, client: Client, name: str, password: str, browser: Browser | None = None) -> Any:
    """The login form over HTTPS: the next page (consent when signed in)."""
    browser = browser or driver.browser()
    _flow, page = login_page(driver, client, browser)
    assert 'name="password"' in page.text, page.text
    return browser.submit(page, {"username": name, "password": password})


def signed_in(page: httpx.Response) -> bool:
    return page.status_code == 200 and 'value="approve"' in page.text


def tokens_of(
    driver: Driver, client: Client, name: str, browser: Browser, resource: str | None = None
) -> dict[str, Any]:
    """A whole flow as ``name`` in ``browser`` (signing in if it has no session)."""
    flow, page = login_page(driver, client, browser, resource)
    if 'name="password"' in page.text:
        page = browser.submit(page, {"username": name, "password": GOOD})
    assert signed_in(page), page.text
    final = browser.submit(page, {"decision": "approve"}, follow=False)
    assert final.status_code == 303
    flow.code = re.search(r"[?&]code=([^&]+)", final.headers["location"]).group(1)  # type: ignore[union-attr]
    response = driver.redeem(client, flow)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


@pytest.fixture
def introspector(driver: Driver) -> tuple[Client, str]:
    """A resource server of its own with an introspection client (RFC 7662)."""
    rs_client = driver.add_client()
    resource = f"https://rs-{new_id()[:8]}.example.org/api"
    driver.as_.store.clients.add_resource_server(resource, "RS", [], rs_client.client_id, 0.0)
    return rs_client, resource


def active(driver: Driver, rs_client: Client, token: str) -> bool:
    return bool(driver.introspect(rs_client, token).json()["active"])


def refresh(driver: Driver, client: Client, tokens: dict[str, Any]) -> tuple[int, str]:
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    response = driver.token_request(client, form)
    return response.status_code, response.json().get("error", "")


# -- user add and the policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password,message",
    [
        (
            "zqxjvkw",
            "the password has 7 characters; it needs at least 8 "
            "(15 or more recommended: a few unrelated words make a good one)",
        ),
        ("password1", "the password is in a list of commonly used or breached passwords; choose another"),
        ("QWERTY123", "the password is in a list of commonly used or breached passwords; choose another"),
        ("{name} is my password", "the password contains the user name; choose one that does not"),
        ("tab\tin the middle", "the password contains a control character (a tab, line end or similar)"),
        ("z" * 10_000, "the password is longer than 1024 characters"),
        ("", "the password has 0 characters; it needs at least 8 "
         "(15 or more recommended: a few unrelated words make a good one)"),
    ],
)  # fmt: skip
def test_user_add_refuses_a_password_the_policy_refuses(driver: Driver, password: str, message: str) -> None:
    name = new_name()
    typed = password.format(name=name.upper())
    one_line_error(cli(driver.as_, "user", "add", name, "--password-stdin", stdin=typed + "\n"), message)
    assert driver.as_.store.users.by_name(name) is None


def test_user_add_reads_one_utf8_line_and_says_what_is_wrong_with_the_input(driver: Driver) -> None:
    name = new_name()
    one_line_error(
        cli(driver.as_, "user", "add", name, "--password-stdin", stdin=""),
        "no password on standard input (e.g. echo 'PASSWORD' | corridor user ...)",
    )
    one_line_error(
        cli(driver.as_, "user", "add", name, "--password-stdin", stdin=b"caf\xe9 au lait noir\n"),
        "the password is not UTF-8 text",
    )
    assert driver.as_.store.users.by_name(name) is None
    # A Windows line end is a line end; 64 characters are accepted (5.1.1.2), and --json.
    added = ok(cli(driver.as_, "user", "add", name, "--password-stdin", "--json", stdin="x7" * 32 + "\r\n"))
    user = driver.as_.store.users.by_name(name)
    assert user is not None and json.loads(added) == {"sub": user["id"], "username": name}
    assert PasswordHasher().verify(user["password_hash"], "x7" * 32)


def test_a_password_set_in_composed_form_signs_in_typed_decomposed_or_in_fullwidth(driver: Driver) -> None:
    """NIST SP 800-63B 5.1.1.2: NFKC before hashing and before verifying, through the sign-in page."""
    client = driver.add_client()
    name = add(driver.as_, "Crème brûlée Über 42")
    decomposed = "Cre\u0300me bru\u0302le\u0301e U\u0308ber 42"
    # "Cre" and the digits in fullwidth forms, an ideographic space, fullwidth U + combining diaeresis
    fullwidth = "\uff23\uff52\uff45\u0300me\u3000brûlée \uff35\u0308ber \uff14\uff12"
    for typed in ("Crème brûlée Über 42", decomposed, fullwidth):
        assert signed_in(sign_in(driver, client, name, typed)), typed
    refused = sign_in(driver, client, name, "Creme brulee Uber 42")
    assert refused.status_code == 400 and WRONG_PAGE in refused.text


def test_a_hash_made_before_nfkc_signs_in_once_the_old_way_and_is_rehashed(driver: Driver) -> None:
    """A non-ASCII password set before normalisation was hashed as typed: it still signs in, and
    the stored hash becomes the NFKC form's, so the typed form and its NFKC form both work after."""
    client, name = driver.add_client(), new_name()
    typed = "\uff26\uff55\uff4c\uff4c width lantern"  # fullwidth "Full"
    legacy = PasswordHasher().hash(typed)
    driver.as_.store.users.add(new_id(), name, legacy, driver.now())
    assert signed_in(sign_in(driver, client, name, typed))
    user = driver.as_.store.users.by_name(name)
    assert user is not None and user["password_hash"] != legacy
    assert PasswordHasher().verify(user["password_hash"], "Full width lantern")
    assert signed_in(sign_in(driver, client, name, "Full width lantern"))
    assert signed_in(sign_in(driver, client, name, typed))
    again = driver.as_.store.users.by_name(name)
    assert again is not None and again["password_hash"] == user["password_hash"]  # no rehash each time


# -- user show, user list ---------------------------------------------------------------------------


def test_user_show_says_state_factors_and_grants_and_no_secret(driver: Driver) -> None:
    client, browser = driver.add_client(), driver.browser()
    name = add(driver.as_)
    shown = json.loads(ok(cli(driver.as_, "user", "show", name, "--json")))
    user = driver.as_.store.users.by_name(name)
    assert user is not None
    assert shown == {
        "sub": user["id"],
        "username": name,
        "created": shown["created"],
        "password_changed": None,
        "disabled": False,
        "disabled_since": None,
        "totp": False,
        "passkeys": 0,
        "active_grants": 0,
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["created"])
    ok(cli(driver.as_, "user", "totp", name))
    tokens_of(driver, client, name, browser)
    tokens_of(driver, client, name, browser)
    text = ok(cli(driver.as_, "user", "show", name))
    assert "totp: yes\n" in text and "active grants: 2\n" in text and "disabled: no\n" in text
    secret = driver.as_.store.users.by_name(name)["totp_secret"]  # type: ignore[index]
    as_json = ok(cli(driver.as_, "user", "show", name, "--json"))
    for output in (text, as_json):
        assert secret not in output and "argon2" not in output and GOOD not in output
    one_line_error(cli(driver.as_, "user", "show", "nobody-here"), "no user 'nobody-here'")
    one_line_error(
        cli(driver.as_, "user", "show", "not a name"),
        "user name 'not a name': not a user name under RFC 8265 UsernameCaseMapped (DISALLOWED/spaces)",
    )


def test_user_list_marks_disabled_users(driver: Driver) -> None:
    name = add(driver.as_)
    ok(cli(driver.as_, "user", "disable", name))
    listed = json.loads(ok(cli(driver.as_, "user", "list", "--json")))
    [mine] = [row for row in listed if row["username"] == name]
    assert mine["disabled"] is True and set(mine) == {"sub", "username", "created", "disabled"}
    assert f"{name}\t{mine['sub']}\tdisabled\n" in ok(cli(driver.as_, "user", "list"))


# -- user passwd ------------------------------------------------------------------------------------


def test_user_passwd_sets_a_new_password_and_ends_the_sessions(driver: Driver) -> None:
    client, browser = driver.add_client(), driver.browser()
    name = add(driver.as_)
    tokens_of(driver, client, name, browser)  # a browser session and one grant
    new = "violet harbour quartz"
    out = ok(cli(driver.as_, "user", "passwd", name, "--password-stdin", stdin=new + "\n"))
    assert out == (
        f"changed the password of {name}; ended 1 sign-in session\n"
        "1 grant to applications kept; revoke them with --revoke-grants "
        f"or corridor grant revoke --user {name}\n"
    )
    _flow, page = login_page(driver, client, browser)  # the same browser: its session has ended
    assert 'name="password"' in page.text
    assert sign_in(driver, client, name, GOOD).status_code == 400  # the old password
    assert signed_in(sign_in(driver, client, name, new))
    shown = json.loads(ok(cli(driver.as_, "user", "show", name, "--json")))
    assert shown["password_changed"] is not None and shown["active_grants"] == 1


def test_user_passwd_revoke_grants_revokes_refresh_and_access_tokens(
    driver: Driver, introspector: tuple[Client, str]
) -> None:
    rs_client, resource = introspector
    client, browser = driver.add_client(), driver.browser()
    name = add(driver.as_)
    issued = tokens_of(driver, client, name, browser, resource)
    assert active(driver, rs_client, issued["access_token"])
    command = ["user", "passwd", name, "--password-stdin", "--revoke-grants", "--json"]
    out = ok(cli(driver.as_, *command, stdin="new pass phrase\n"))
    assert json.loads(out) == {
        "username": name,
        "sessions_ended": 1,
        "grants_revoked": 1,
        "access_tokens_revoked": 1,
        "grants_kept": 0,
    }
    assert not active(driver, rs_client, issued["access_token"])
    assert refresh(driver, client, issued) == (400, "invalid_grant")


def test_user_passwd_errors_change_nothing(driver: Driver) -> None:
    name = add(driver.as_)
    before = driver.as_.store.users.by_name(name)
    one_line_error(
        cli(driver.as_, "user", "passwd", name, "--password-stdin", stdin="iloveyou\n"),
        "the password is in a list of commonly used or breached passwords; choose another",
    )
    one_line_error(
        cli(driver.as_, "user", "passwd", name, "--password-stdin", stdin=f"{name} again\n"),
        "the password contains the user name; choose one that does not",
    )
    one_line_error(
        cli(driver.as_, "user", "passwd", "nobody-here", "--password-stdin", stdin="violet harbour\n"),
        "no user 'nobody-here'",
    )
    assert driver.as_.store.users.by_name(name) == before
    missing = cli(driver.as_, "user", "passwd", name)
    assert missing.exit_code == 2 and "--password-stdin" in missing.stderr  # click's usage error


# -- user disable, user enable ----------------------------------------------------------------------


def test_user_disable_stops_the_account_acting_now(driver: Driver, introspector: tuple[Client, str]) -> None:
    """No sign-in (the same page as a wrong password), sessions ended, every grant and access
    token revoked (introspection inactive at once, refresh invalid_grant); enable lets the user
    sign in again and leaves the revoked grants revoked."""
    rs_client, resource = introspector
    client, browser = driver.add_client(), driver.browser()
    name = add(driver.as_)
    issued = tokens_of(driver, client, name, browser, resource)
    other = tokens_of(driver, client, name, browser)  # a second grant, same session
    assert active(driver, rs_client, issued["access_token"])

    out = ok(cli(driver.as_, "user", "disable", name))
    assert out == (
        f"disabled {name}; ended 1 sign-in session; revoked 2 grants and 2 access tokens\n"
        "access tokens that a resource server checks without introspection stay valid until they "
        "expire (access_token_lifetime)\n"
    )
    assert not active(driver, rs_client, issued["access_token"])
    assert refresh(driver, client, issued) == (400, "invalid_grant")
    assert refresh(driver, client, other) == (400, "invalid_grant")
    _flow, page = login_page(driver, client, browser)
    assert 'name="password"' in page.text  # the session ended
    right = sign_in(driver, client, name, GOOD)
    wrong = sign_in(driver, client, name, "not the password")
    assert (right.status_code, wrong.status_code) == (400, 400)
    assert WRONG_PAGE in right.text and WRONG_PAGE in wrong.text  # no account enumeration
    refusals = [
        r for r in driver.as_.store.audit.records() if r["event"] == "login" and r["outcome"] == "refused"
    ]
    assert json.loads(refusals[-2]["detail"])["account_disabled"] is True
    assert json.loads(refusals[-2]["detail"]).keys() == json.loads(refusals[-1]["detail"]).keys()

    again = json.loads(ok(cli(driver.as_, "user", "disable", name, "--json")))
    assert again["already_disabled"] is True and again["grants_revoked"] == 0
    assert json.loads(ok(cli(driver.as_, "user", "show", name, "--json")))["disabled"] is True

    assert ok(cli(driver.as_, "user", "enable", name)) == f"enabled {name}\n"
    assert ok(cli(driver.as_, "user", "enable", name)) == f"{name} was not disabled\n"
    assert signed_in(sign_in(driver, client, name, GOOD))
    assert refresh(driver, client, issued) == (400, "invalid_grant")  # revoked stays revoked
    for command in ("disable", "enable"):
        one_line_error(cli(driver.as_, "user", command, "nobody-here"), "no user 'nobody-here'")


def test_a_session_of_a_user_disabled_meanwhile_cannot_approve(driver: Driver) -> None:
    """Visit.session: a session that outlived the disable (begun in the same instant) is no
    session; the consent POST goes back to the login form and no code is issued."""
    client, browser = driver.add_client(), driver.browser()
    name = add(driver.as_)
    consent = sign_in(driver, client, name, GOOD, browser)
    assert signed_in(consent)
    user = driver.as_.store.users.by_name(name)
    assert user is not None and driver.as_.store.users.set_disabled(user["id"], driver.now())
    final = browser.submit(consent, {"decision": "approve"})
    assert final.status_code == 200 and 'name="password"' in final.text
    assert driver.as_.store.grants.count_active(user["id"], driver.now()) == 0


def test_the_grant_unit_refuses_a_user_disabled_after_the_page_was_checked(driver: Driver) -> None:
    """authorization_code.complete: the user row locked in the unit that makes the grant (the race
    that Visit.session cannot see): access_denied to the client, a consent-denied record."""
    client = driver.add_client()
    name = add(driver.as_)
    response, flow = driver.par(client)
    assert response.status_code == 201
    reference = flow.request_uri.removeprefix(REQUEST_URI_PREFIX)
    row = driver.as_.store.requests.pushed(token_hash(reference))
    assert row is not None
    pushed = PushedFacts.of(row)
    user = driver.as_.store.users.by_name(name)
    assert user is not None and driver.as_.store.users.set_disabled(user["id"], driver.now())
    session = {"user_id": user["id"], "acr": "password", "auth_time": driver.now()}
    result = InteractionResult.of_session(new_id(), session, "approve", "consent_page")
    assert driver.as_.server is not None
    reply = complete(driver.as_.server, pushed, result)
    assert reply.status_code == 303
    location = reply.headers["location"]
    assert "error=access_denied" in location and "code=" not in location
    assert driver.as_.store.grants.count_active(user["id"], driver.now()) == 0
    denied = [r for r in driver.as_.store.audit.records() if r["event"] == "consent"][-1]
    assert denied["outcome"] == "denied" and denied["rule"] == Rule.ISSUE_18_ACCOUNT_DISABLED


# -- user totp --------------------------------------------------------------------------------------


def test_user_totp_refuses_to_replace_a_secret_without_replace(driver: Driver) -> None:
    name = add(driver.as_)
    first = ok(cli(driver.as_, "user", "totp", name)).strip()
    assert first.startswith("otpauth://totp/") and f":{name}?" in first
    secret = driver.as_.store.users.by_name(name)["totp_secret"]  # type: ignore[index]
    one_line_error(
        cli(driver.as_, "user", "totp", name),
        f"{name} already has a TOTP secret; give --replace to replace it (the old one stops working)",
    )
    assert driver.as_.store.users.by_name(name)["totp_secret"] == secret  # type: ignore[index]
    replaced = json.loads(ok(cli(driver.as_, "user", "totp", name, "--replace", "--json")))
    new_secret = driver.as_.store.users.by_name(name)["totp_secret"]  # type: ignore[index]
    assert replaced["replaced"] is True and new_secret != secret
    assert pyotp.parse_uri(replaced["provisioning_uri"]).secret == new_secret
    assert (
        ok(cli(driver.as_, "user", "totp", name, "--remove")) == f"removed the TOTP second factor of {name}\n"
    )
    one_line_error(cli(driver.as_, "user", "totp", name, "--remove"), f"{name} has no TOTP second factor")
    one_line_error(cli(driver.as_, "user", "totp", "nobody-here"), "no user 'nobody-here'")


def test_user_totp_output_is_a_file_only_its_owner_can_read_whatever_the_umask(
    driver: Driver, tmp_path: Path
) -> None:
    name = add(driver.as_)
    target = tmp_path / "totp.txt"
    target.write_text("old\n")
    target.chmod(0o644)  # an existing loose file is made private, not left readable
    previous = os.umask(0)
    try:
        out = ok(cli(driver.as_, "user", "totp", name, "--output", str(target)))
    finally:
        os.umask(previous)
    assert out == f"wrote the provisioning URI of {name} to {target} (mode 0600)\n"
    assert "otpauth" not in out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    secret = driver.as_.store.users.by_name(name)["totp_secret"]  # type: ignore[index]
    assert pyotp.parse_uri(target.read_text().strip()).secret == secret
    unwritable = tmp_path / "missing-dir" / "totp.txt"
    result = cli(driver.as_, "user", "totp", name, "--replace", "--output", str(unwritable))
    one_line_error(result, f"{unwritable}: cannot write it: No such file or directory")
    assert driver.as_.store.users.by_name(name)["totp_secret"] == secret  # type: ignore[index]


# -- the other commands: --json, empty lists, errors ------------------------------------------------


def test_user_passkeys_enrol_and_remove_with_json_and_their_errors(driver: Driver) -> None:
    name = add(driver.as_)
    assert ok(cli(driver.as_, "user", "passkeys", name)) == f"{name} has no passkeys\n"
    assert json.loads(ok(cli(driver.as_, "user", "passkeys", name, "--json"))) == []
    one_line_error(
        cli(driver.as_, "user", "passkeys", name, "--remove", "nope"), f"{name} has no passkey 'nope'"
    )
    one_line_error(cli(driver.as_, "user", "passkeys", "nobody-here"), "no user 'nobody-here'")
    one_line_error(cli(driver.as_, "user", "enrol", "nobody-here"), "no user 'nobody-here'")
    link = json.loads(ok(cli(driver.as_, "user", "enrol", name, "--json")))
    assert link["username"] == name and "/enrol?token=" in link["link"] and link["expires_in"] == 900
    removed = json.loads(ok(cli(driver.as_, "user", "remove", name, "--json")))
    assert removed == {"username": name, "sessions_ended": 0, "grants_revoked": 0, "access_tokens_revoked": 0}
    one_line_error(cli(driver.as_, "user", "remove", name), f"no user '{name}'")


def test_user_remove_revokes_the_grants_and_ends_the_sessions(
    driver: Driver, introspector: tuple[Client, str]
) -> None:
    client, browser = driver.add_client(), driver.browser()
    name = add(driver.as_)
    tokens = tokens_of(driver, client, name, browser)
    assert (
        ok(cli(driver.as_, "user", "remove", name)) == f"removed {name}; revoked 1 grant and 1 access token\n"
    )
    assert refresh(driver, client, tokens) == (400, "invalid_grant")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A new installation (``corridor db upgrade``) with no users, on either database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'corridor.db'}"
        yield _Installed(url, tmp_path)
        return
    with postgres_database(request.getfixturevalue("postgres_admin")) as url:
        yield _Installed(url, tmp_path)


class _Installed:
    def __init__(self, url: str, data_dir: Path) -> None:
        self.store = Store(url)
        self.url = url
        self.data_dir = data_dir
        self.store.migrate()


def test_an_empty_user_list_says_so_and_json_is_an_empty_list(empty: Any) -> None:
    assert (
        ok(cli(empty, "user", "list")) == "no users (add one with corridor user add NAME --password-stdin)\n"
    )
    assert json.loads(ok(cli(empty, "user", "list", "--json"))) == []
    empty.store.close()
