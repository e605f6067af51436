"""The trace page in words (issue 16), in headless Chromium: the steps of audit/words.py, the user
by name (not the pseudonymous id), the granted authorization_details as sentences with the raw
JSON only behind a closed ``<details>``, and each record's mark from its chain; a record edited in
the database shows NOT verified, and so do the records after it in its chain.

This module has an AS of its own (the fixtures of test_admin_page.py, module-scoped here): the
last test breaks its chain."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import update

from corridor.store import schema as t
from tests.server.test_admin_page import (  # noqa: F401 - the fixtures: this module's own AS
    admin_as,
    driver,
    signed_in_trace,
    story,
)
from tests.server.test_browser import ARTIFACTS, browser  # noqa: F401 - the Chromium fixture
from tests.support import Driver

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver


def marks(browser: WebDriver) -> dict[int, tuple[str, str]]:  # noqa: F811
    """Per record id on the page: (the mark's class, its words)."""
    from selenium.webdriver.common.by import By

    out = {}
    for li in browser.find_elements(By.CSS_SELECTOR, "li.event"):
        mark = li.find_element(By.CSS_SELECTOR, "p.mark")
        out[int(li.get_attribute("data-record") or 0)] = (
            (mark.get_attribute("class") or "").replace("mark", "").strip(),
            mark.text,
        )
    return out


def test_the_trace_page_tells_the_story_and_marks_an_edited_record(
    driver: Driver,  # noqa: F811
    browser: WebDriver,  # noqa: F811
) -> None:
    from selenium.webdriver.common.by import By

    grant, _ = story(driver)
    records = driver.as_.store.audit.records(grant_id=grant)
    user_id = next(r["user_id"] for r in records if r["user_id"])
    user = driver.as_.store.users.get(user_id)
    assert user is not None
    signed_in_trace(driver, browser, grant)

    text = browser.find_element(By.TAG_NAME, "body").text
    assert "The user approved" in text and "The code was exchanged for tokens" in text
    assert f"user {user['username']}, through client" in text
    assert user_id not in browser.page_source  # the operator reads the name, not the pseudonym
    assert "the grant rests on acr password, amr pwd" in text
    granted = [
        dd.text
        for li in browser.find_elements(By.CSS_SELECTOR, "li.event[data-event=consent][data-outcome=granted]")
        for dd in li.find_elements(By.XPATH, ".//dt[.='What was granted']/following-sibling::dd[1]")
    ]
    assert granted and "Pay up to 42.00 EUR in all to Merchant A" in granted[0]
    assert "What was shown" in text and "bound to DPoP key" in text

    # The raw JSON only behind the disclosure, closed: not shown until opened.
    disclosures = browser.find_elements(By.CSS_SELECTOR, "details.raw")
    assert disclosures and all(d.get_attribute("open") is None for d in disclosures)
    assert "creditorName" not in text
    source = browser.page_source
    outside = re.sub(r"<details class=\"raw\">.*?</details>", "", source, flags=re.DOTALL)
    assert "creditorName" in source and "creditorName" not in outside
    disclosures[0].find_element(By.TAG_NAME, "summary").click()
    assert "creditorName" in disclosures[0].find_element(By.TAG_NAME, "pre").text

    before = marks(browser)
    assert before and all(kind == "verified" for kind, _ in before.values()), before
    assert all(words.startswith("✔ verified") for _, words in before.values())
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "admin-trace-words.png"))

    # Edit the code record in the database: its hash no longer matches; later records of the same
    # chain are not proven either; the earlier ones still are.
    code = next(r for r in records if r["event"] == "code")
    with driver.as_.store.engine.begin() as conn:
        conn.execute(
            update(t.audit_records)
            .where(t.audit_records.c.id == code["id"])
            .values(scope="openid everything")
        )
    browser.refresh()
    after = marks(browser)
    assert after[code["id"]] == (
        "unverified",
        "✘ NOT verified: content does not match its hash (edited)",
    ), after
    writer = code["writer"]
    chain = {r["id"]: r for r in driver.as_.store.audit.records() if r["writer"] == writer}
    for record_id, (kind, words) in after.items():
        if record_id not in chain:
            assert kind == "verified", (record_id, words)  # another writer's chain is intact
        elif record_id < code["id"]:
            assert kind == "verified", (record_id, words)
        elif record_id > code["id"]:
            assert (kind, words) == (
                "unverified",
                f"✘ NOT verified: its chain is broken before it, at record #{code['seq']}",
            )
    assert any(record_id > code["id"] for record_id in after)  # the token and UserInfo records
    assert "NOT verified" in browser.find_element(By.TAG_NAME, "body").text
