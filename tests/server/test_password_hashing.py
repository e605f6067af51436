"""Bounded password hashing (issue 13 B3, design.md 5c): each check costs 64 MiB of Argon2, so
at most ``password_hash_concurrency`` run at once in a process; beyond that an attempt is
answered 503 with Retry-After at once (never queued, never counted by the throttle), on both
sign-in forms, and service is normal again when a slot is free."""

from __future__ import annotations

import multiprocessing
import ssl
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
import pytest

from corridor.transport.tls import DevTLS
from tests.support import PASSWORD, Driver, RunningAS, running_as

ADMIN = "hashing-admin"

#: The bound is only seen while a real 64 MiB hash runs (tests/conftest.py FAST_HASHER otherwise).
pytestmark = pytest.mark.production_argon2


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory, tls: DevTLS) -> Iterator[RunningAS]:
    data_dir = tmp_path_factory.mktemp("hashing-as")
    with running_as(
        data_dir, tls, password_hash_concurrency=1, admin_users=[ADMIN], admin_require_mfa=False
    ) as running:
        yield running


def login_page(driver: Driver) -> tuple[Any, httpx.Response]:
    client = driver.add_client()
    _, flow = driver.par(client)
    browser = driver.browser()
    page = browser.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    assert page.status_code == 200
    return browser, page


def admin_form(http: httpx.Client, driver: Driver) -> dict[str, str]:
    page = http.get(driver.url("/admin/trace"))
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    return {"csrf": csrf, "next": "/admin/trace", "username": ADMIN}


def test_a_full_bound_answers_503_with_retry_after(one_slot: RunningAS) -> None:
    driver = Driver(one_slot)
    username = driver.add_user()
    driver.add_user(ADMIN)
    assert one_slot.server is not None
    sign_ins = one_slot.server.sign_ins
    assert sign_ins.hashing_slots == 1
    browser, page = login_page(driver)
    admin = one_slot.http(follow_redirects=False)
    form = admin_form(admin, driver)
    sign_ins._hashing.acquire()  # another sign-in is hashing
    try:
        busy = browser.submit(page, {"username": username, "password": PASSWORD})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
        assert "The server is busy" in busy.text and 'name="password"' in busy.text
        admin_busy = admin.post(driver.url("/admin/login"), data={**form, "password": PASSWORD})
        assert admin_busy.status_code == 503 and admin_busy.headers["retry-after"] == "2"
        assert "The server is busy" in admin_busy.text
    finally:
        sign_ins._hashing.release()
    # Not counted by the throttle, and normal service once the slot is free.
    assert one_slot.store.replay.throttle_state("source:127.0.0.1", driver.now())["failures"] == 0
    consent = browser.submit(busy, {"username": username, "password": PASSWORD})
    assert consent.status_code == 200 and 'value="approve"' in consent.text
    signed_in = admin.post(
        driver.url("/admin/login"), data={**admin_form(admin, driver), "password": PASSWORD}
    )
    assert signed_in.status_code == 303
    driver.http.close()


def _post_after_barrier(
    url: str, form: dict[str, str], cookies: dict[str, str], ca: str, barrier: Any
) -> int:
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=30, cookies=cookies) as http:
        http.get(url.split("/admin/", 1)[0] + "/jwks")  # connect before the barrier
        barrier.wait()
        return http.post(url, data=form).status_code


def test_concurrent_posts_beyond_the_bound_are_refused_not_queued(one_slot: RunningAS) -> None:
    """Six processes post the admin form at once against one slot: the ones that find it taken
    get 503 at once; none waits for the others' 64 MiB."""
    driver = Driver(one_slot)
    if one_slot.store.users.by_name(ADMIN) is None:
        driver.add_user(ADMIN)
    http = one_slot.http(follow_redirects=False)
    forms = [admin_form(http, driver) for _ in range(6)]
    cookies = dict(http.cookies)
    context = multiprocessing.get_context("spawn")
    ca = str(one_slot.tls.ca_file)
    with context.Manager() as manager, ProcessPoolExecutor(6, mp_context=context) as pool:
        barrier = manager.Barrier(6)
        # One CSRF cookie for all (the last form's); each form carries that value.
        csrf = cookies["__Host-corridor-admin-csrf"]
        futures = [
            pool.submit(
                _post_after_barrier,
                driver.url("/admin/login"),
                {**form, "csrf": csrf, "password": "wrong"},
                cookies,
                ca,
                barrier,
            )
            for form in forms
        ]
        statuses = sorted(f.result() for f in futures)
    assert set(statuses) <= {400, 503} and 503 in statuses and 400 in statuses, statuses
    again = http.post(driver.url("/admin/login"), data={**admin_form(http, driver), "password": PASSWORD})
    assert again.status_code == 303
    driver.http.close()
