"""Issue 13 B7: "Approve" posted twice at once for one interaction, by two OS processes. One post
wins (303 to the client with a code), the other gets the safe "already completed" page; the
database holds one grant and one code; and the server still serves a full flow afterwards (the
losing worker must not be left waiting on the process's write lock)."""

from __future__ import annotations

import multiprocessing
import ssl
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import func, select

from corridor.store import schema
from tests.support import PASSWORD, Driver

ROUNDS = 8
#: A hung worker must fail the test, not the session: well above a normal consent POST.
TIMEOUT = 20


def _post_after_barrier(
    url: str, form: dict[str, str], cookies: dict[str, str], ca: str, barrier: Any
) -> tuple[int, str, str, str]:
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=TIMEOUT, cookies=cookies) as http:
        http.get(url.split("/interaction/", 1)[0] + "/jwks")  # connect before the barrier
        barrier.wait()
        response = http.post(url, data=form)
        cookie = response.headers.get("set-cookie", "")
        return response.status_code, response.headers.get("location", ""), response.text, cookie


def _count(driver: Driver, table: Any, client_id: str) -> int:
    with driver.as_.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(table.c.client_id == client_id)).scalar_one())


def test_approve_posted_twice_at_once_grants_once_and_the_server_goes_on(driver: Driver) -> None:
    """Issue 13 B7, FAPI2 5.3.2.2-12: one pushed request completes once; the refusal is a page."""
    context = multiprocessing.get_context("spawn")
    ca = str(driver.as_.tls.ca_file)
    username = driver.add_user()
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        for _ in range(ROUNDS):
            client = driver.add_client()
            response, flow = driver.par(client)
            assert response.status_code == 201, response.text
            browser = driver.browser()
            page = browser.get(
                driver.url("/authorize"),
                params={"client_id": client.client_id, "request_uri": flow.request_uri},
            )
            page = browser.submit(page, {"username": username, "password": PASSWORD})
            assert page.status_code == 200 and 'name="decision"' in page.text, page.text
            action, csrf = browser.form_of(page)
            form = {"csrf": csrf, "decision": "approve"}
            cookies = dict(browser.http.cookies)
            barrier = manager.Barrier(2)
            futures = [
                pool.submit(_post_after_barrier, browser.base + action, form, cookies, ca, barrier)
                for _ in range(2)
            ]
            results = sorted((f.result(timeout=2 * TIMEOUT) for f in futures), key=lambda r: r[0])
            (won, location, _, won_cookie), (lost, _, body, lost_cookie) = results
            assert (won, lost) == (303, 400), results
            assert location.startswith(client.redirect_uri), location
            callback = parse_qs(urlsplit(location).query)
            assert callback["state"] == [flow.state] and len(callback["code"]) == 1
            assert "invalid_request_uri" in body and "already completed" in body
            # Both browsers are done with the interaction: its cookie is cleared on either answer
            # (a browser that loses many races must not pile them up past the 16 KiB head cap).
            for cookie in (won_cookie, lost_cookie):
                assert cookie.startswith("__Host-ia-") and "Max-Age=0" in cookie, cookie
            assert _count(driver, schema.grants, client.client_id) == 1
            assert _count(driver, schema.authorization_codes, client.client_id) == 1
            browser.http.close()
    # Not wedged: a whole flow (pages, consent, token) on the same server, on every write path.
    client = driver.add_client()
    _flow, tokens = driver.full_flow(client)
    assert tokens["token_type"] == "DPoP"
    assert _count(driver, schema.access_tokens, client.client_id) == 1
