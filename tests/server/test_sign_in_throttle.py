"""Sign-in throttling (issue 13 C1, design.md 5c): per account and per source address, with the
state in the database, so it holds across a restart and between instances. After 5 consecutive
failures an account waits (30 s, doubling, at most 15 min); while it waits no password is
checked, not even the right one, and the form says until when. A source address spraying many
accounts is slowed the same way after more failures. Both sign-in forms: /authorize's and
/admin/login. Sources are told apart by X-Forwarded-For from a trusted proxy (127.0.0.1 here)."""

from __future__ import annotations

import json
import multiprocessing
import ssl
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from corridor.store import schema
from corridor.transport.tls import DevTLS
from tests.support import PASSWORD, Browser, Client, Driver, RunningAS, running_as

ADMIN = "throttle-admin"
_addresses = count(1)


def new_source() -> str:
    """A fresh source address (TEST-NET-2), so tests do not share the per-source count."""
    n = next(_addresses)
    return f"198.51.{n // 250}.{n % 250 + 1}"


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, database: str) -> Iterator[RunningAS]:
    data_dir = tmp_path_factory.mktemp("throttle-as")
    with running_as(
        data_dir,
        tls,
        database_url=database,
        trusted_proxies=["127.0.0.1"],
        admin_users=[ADMIN],
        par_lifetime=599,  # the waits below pass 90 s, and a pushed request ends with its lifetime (D5)
    ) as running:
        yield running


@pytest.fixture
def driver(throttled: RunningAS) -> Iterator[Driver]:
    start = throttled.clock._offset
    d = Driver(throttled)
    yield d
    throttled.clock.advance(start - throttled.clock._offset)
    d.http.close()


def login_page(driver: Driver, client: Client, source: str) -> tuple[Browser, httpx.Response]:
    _, flow = driver.par(client)
    browser = driver.browser()
    browser.http.headers["X-Forwarded-For"] = source
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    assert page.status_code == 200 and 'name="password"' in page.text
    return browser, page


def waits(response: httpx.Response, seconds: int) -> bool:
    """A 429 whose Retry-After is the wait just begun (less the wall time the test took since)."""
    return response.status_code == 429 and seconds - 5 <= int(response.headers["retry-after"]) <= seconds


def throttle_row(running: RunningAS, key: str) -> dict[str, Any] | None:
    table = schema.sign_in_throttle
    with running.store.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.key == key)).mappings().first()
    return dict(row) if row else None


def throttle_failures(running: RunningAS, key: str) -> int:
    """The failure count of ``key``'s throttle row, which the caller expects to exist."""
    row = throttle_row(running, key)
    assert row is not None, key
    return int(row["failures"])


def refusals(running: RunningAS, event: str, source: str) -> list[dict[str, Any]]:
    return [
        r
        for r in running.store.audit.records()
        if r["event"] == event
        and r["outcome"] == "refused"
        and json.loads(r["detail"] or "{}").get("source") == source
    ]


def test_five_failures_then_even_the_right_password_waits(driver: Driver) -> None:
    client, source = driver.add_client(), new_source()
    username = driver.add_user()
    user = driver.as_.store.users.by_name(username)
    assert user is not None
    browser, page = login_page(driver, client, source)
    for _ in range(5):
        page = browser.submit(page, {"username": username, "password": "wrong"})
        assert page.status_code == 400 and "Wrong user name or password" in page.text
    # The sixth attempt, with the right password: refused without checking it, for 30 s.
    waiting = browser.submit(page, {"username": username, "password": PASSWORD})
    assert waits(waiting, 30), waiting.text
    assert "Too many failed sign-ins" in waiting.text and "UTC" in waiting.text
    assert "__Host-corridor-session" not in waiting.headers.get("set-cookie", "")
    row = throttle_row(driver.as_, f"user:{user['id']}")
    assert row is not None and row["failures"] == 5
    assert abs(row["locked_until"] - (driver.now() + 30)) < 5
    # 50 more tries change nothing: none is checked, none is counted.
    for _ in range(10):
        waiting = browser.submit(waiting, {"username": username, "password": PASSWORD})
        assert waiting.status_code == 429
    assert throttle_failures(driver.as_, f"user:{user['id']}") == 5
    # The failures are in the trail with the account (as user_id) and the source.
    failed = refusals(driver.as_, "login", source)
    assert [r["user_id"] for r in failed] == [user["id"]] * 5
    assert json.loads(failed[-1]["detail"])["locked_until"] == pytest.approx(row["locked_until"])
    # After the wait one more wrong password doubles it.
    driver.as_.clock.advance(31)
    page = browser.submit(waiting, {"username": username, "password": "wrong"})
    assert page.status_code == 400
    waiting = browser.submit(page, {"username": username, "password": PASSWORD})
    assert waits(waiting, 60)
    # After that wait the right password signs in and the count starts again.
    driver.as_.clock.advance(61)
    consent = browser.submit(waiting, {"username": username, "password": PASSWORD})
    assert consent.status_code == 200 and 'value="approve"' in consent.text
    assert throttle_row(driver.as_, f"user:{user['id']}") is None


def test_an_unknown_name_waits_the_same_way(driver: Driver) -> None:
    """No account enumeration: a name that does not exist is throttled exactly like one that does,
    and the trail keeps a keyed hash of it, not the name (it may be a mistyped password)."""
    client, source = driver.add_client(), new_source()
    browser, page = login_page(driver, client, source)
    name = "nobody-" + source
    for _ in range(5):
        page = browser.submit(page, {"username": name, "password": "wrong"})
        assert page.status_code == 400
    waiting = browser.submit(page, {"username": name, "password": "wrong"})
    assert waits(waiting, 30)
    failed = refusals(driver.as_, "login", source)
    assert len(failed) == 5 and {r["user_id"] for r in failed} == {None}
    account = json.loads(failed[0]["detail"])["account"]
    assert account.startswith("name:") and len(account) == 5 + 64 and name not in json.dumps(failed)


def test_one_source_spraying_many_accounts_is_slowed(driver: Driver) -> None:
    client, source = driver.add_client(), new_source()
    browser, page = login_page(driver, client, source)
    for _ in range(20):  # one wrong password for each of 20 accounts: no account reaches 5
        page = browser.submit(page, {"username": driver.add_user(), "password": "wrong"})
        assert page.status_code == 400
    fresh = driver.add_user()
    waiting = browser.submit(page, {"username": fresh, "password": PASSWORD})
    assert waits(waiting, 30)
    assert throttle_failures(driver.as_, f"source:{source}") == 20
    # Another source is not slowed by it.
    other, page = login_page(driver, client, new_source())
    assert other.submit(page, {"username": fresh, "password": PASSWORD}).status_code == 200
    driver.as_.clock.advance(31)
    browser, page = login_page(driver, client, source)
    assert 'value="approve"' in browser.submit(page, {"username": fresh, "password": PASSWORD}).text


def admin_login(http: httpx.Client, driver: Driver, username: str, password: str) -> httpx.Response:
    page = http.get(driver.url("/admin/trace"))
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    return http.post(
        driver.url("/admin/login"),
        data={"csrf": csrf, "next": "/admin/trace", "username": username, "password": password},
    )


def test_the_admin_sign_in_is_throttled_too(driver: Driver) -> None:
    if driver.as_.store.users.by_name(ADMIN) is None:
        driver.add_user(ADMIN)
        driver.as_.store.users.set_totp_secret(ADMIN, "JBSWY3DPEHPK3PXP")  # admins have a second factor (C3)
    source = new_source()
    http = driver.as_.http(follow_redirects=False, headers={"X-Forwarded-For": source})
    for _ in range(5):
        refused = admin_login(http, driver, ADMIN, "wrong")
        assert refused.status_code == 400 and "Wrong user name or password" in refused.text
    waiting = admin_login(http, driver, ADMIN, PASSWORD)
    assert waits(waiting, 30)
    assert "Too many failed sign-ins" in waiting.text
    assert "__Host-corridor-admin=" not in " ".join(waiting.headers.get_list("set-cookie"))
    assert len(refusals(driver.as_, "admin.login", source)) == 5
    driver.as_.clock.advance(31)
    assert admin_login(http, driver, ADMIN, PASSWORD).status_code == 303  # on to the code


def test_the_wait_survives_a_restart(tmp_path: Path, tls: DevTLS, database: str) -> None:
    """The count is in the database: a new process on the same database still makes it wait."""
    source = new_source()
    with running_as(tmp_path / "a", tls, database_url=database, trusted_proxies=["127.0.0.1"]) as first:
        driver = Driver(first)
        client, username = driver.add_client(), driver.add_user()
        browser, page = login_page(driver, client, source)
        for _ in range(5):
            page = browser.submit(page, {"username": username, "password": "wrong"})
            assert page.status_code == 400
        driver.http.close()
    with running_as(tmp_path / "b", tls, database_url=database, trusted_proxies=["127.0.0.1"]) as second:
        driver = Driver(second)
        browser, page = login_page(driver, client, new_source())
        waiting = browser.submit(page, {"username": username, "password": PASSWORD})
        assert waiting.status_code == 429, waiting.text
        second.clock.advance(31)
        browser, page = login_page(driver, client, new_source())
        assert 'value="approve"' in browser.submit(page, {"username": username, "password": PASSWORD}).text
        driver.http.close()


def _post_after_barrier(
    url: str, form: dict[str, str], cookies: dict[str, str], ca: str, barrier: Any
) -> int:
    headers = {"X-Forwarded-For": form.pop("source")}
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=60, cookies=cookies) as http:
        http.get(url.split("/interaction/", 1)[0] + "/jwks")  # connect before the barrier
        barrier.wait()
        return http.post(url, data=form, headers=headers).status_code


def test_parallel_guesses_cannot_slip_past_the_count(tmp_path: Path, tls: DevTLS, database: str) -> None:
    """Seven processes post a wrong password for one account at once: each attempt is counted
    before its password is checked, so exactly five are checked (400) and two wait (429); the
    database holds five failures and the trail five records."""
    with running_as(
        tmp_path, tls, database_url=database, trusted_proxies=["127.0.0.1"], password_hash_concurrency=16
    ) as running:
        driver = Driver(running)
        client, username, source = driver.add_client(), driver.add_user(), new_source()
        user = running.store.users.by_name(username)
        assert user is not None
        browser, page = login_page(driver, client, source)
        action, csrf = browser.form_of(page)
        form = {"csrf": csrf, "username": username, "password": "wrong", "source": source}
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, ProcessPoolExecutor(7, mp_context=context) as pool:
            barrier = manager.Barrier(7)
            futures = [
                pool.submit(
                    _post_after_barrier,
                    browser.base + action,
                    dict(form),
                    dict(browser.http.cookies),
                    str(running.tls.ca_file),
                    barrier,
                )
                for _ in range(7)
            ]
            statuses = sorted(f.result() for f in futures)
        assert statuses == [400] * 5 + [429] * 2
        assert throttle_failures(running, f"user:{user['id']}") == 5
        assert len(refusals(running, "login", source)) == 5
        driver.http.close()
