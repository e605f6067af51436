"""What the consent page shows cannot be rearranged or marked up by a client (issue 13 E3, E4).

E3: control and bidirectional formatting characters are refused in every string of the built-in
authorization_details types (a U+202E in ``creditorName`` made the page read "Merchant Ato 9.00
EUR"), and every value is isolated in its own ``<bdi>`` on the page, for custom types too.
E4: the sentence templates are autoescaped; a hostile value in a custom type is inert text in
real headless Chromium.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from corridor.transport.tls import DevTLS
from tests.pki import TestPKI
from tests.server.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.server.test_details import ACCOUNTS, PAYMENT, TOOL
from tests.support import PASSWORD, RESOURCE, Client, Driver, Flow, RunningAS, running_as

#: A deployment's own type with one free-text member (its schema bounds only the length).
NOTE_TYPE = {
    "type": "note",
    "schema": {
        "type": "object",
        "required": ["type", "note"],
        "properties": {"type": {"type": "string"}, "note": {"type": "string", "maxLength": 200}},
        "additionalProperties": False,
    },
    "template": "Keep the note “{{ note }}” for you",
}
HOSTILE = "<img src=x onerror=\"document.title='pwned'\"></bdi><script>document.title='pwned'</script>"
RLO = "Merchant A\u202eRUE 00.9"


@pytest.fixture(scope="module")
def as_server(
    tmp_path_factory: pytest.TempPathFactory, tls: DevTLS, pki: TestPKI, database: str
) -> Iterator[RunningAS]:
    """The shared AS of tests/conftest.py, plus the custom ``note`` type."""
    data_dir = tmp_path_factory.mktemp("as")
    type_file = data_dir / "note.json"
    type_file.write_text(json.dumps(NOTE_TYPE))
    with running_as(
        data_dir,
        tls,
        mtls_ca_file=str(pki.ca_file),
        database_url=database,
        authorization_details_types=["payment_initiation", "account_information", "agent_tool", "note"],
        authorization_details_type_files=[str(type_file)],
    ) as running:
        running.store.clients.add_resource_server(RESOURCE, "Test API", ["accounts", "payments"], None, 0.0)
        yield running


def consent_page(driver: Driver, details: list[dict[str, Any]]) -> str:
    client = driver.add_client()
    response, flow = driver.par(client, extra={"authorization_details": json.dumps(details)})
    assert response.status_code == 201, response.text
    agent = driver.browser()
    page = agent.get(
        driver.url("/authorize"), params={"client_id": client.client_id, "request_uri": flow.request_uri}
    )
    page = agent.submit(page, {"username": driver.add_user(), "password": PASSWORD})
    assert page.status_code == 200 and "Approve" in page.text, page.text[:300]
    agent.http.close()
    return page.text


# -- E3 at PAR -------------------------------------------------------------------------------------

UNSAFE = [
    "\u202e",
    "\u202d",
    "\u2066",
    "\u2069",
    "\u200e",
    "\u200f",
    "\n",
    "\x1b[31m",
    "\x00",
    "\x85",
    "\x7f",
]


def with_value(entry: dict[str, Any], path: str, value: str) -> dict[str, Any]:
    """A copy of ``entry`` whose string at ``path`` (a/b/0) gets ``value`` inserted in the middle."""
    copy: dict[str, Any] = json.loads(json.dumps(entry))
    *parents, last = path.split("/")
    target: Any = copy
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key: Any = int(last) if isinstance(target, list) else last
    text = target[key]
    target[key] = text[: len(text) // 2] + value + text[len(text) // 2 :]
    return copy


@pytest.mark.parametrize("char", UNSAFE, ids=[f"U+{ord(c[0]):04X}" for c in UNSAFE])
@pytest.mark.parametrize(
    ("entry", "path"),
    [
        (PAYMENT, "creditorName"),
        (PAYMENT, "remittanceInformationUnstructured"),
        (TOOL, "purpose"),
        (TOOL, "actions/0"),
        (ACCOUNTS, "accounts/1"),
        ({**PAYMENT, "identifier": "payment-1"}, "identifier"),
        ({**PAYMENT, "privileges": ["owner"]}, "privileges/0"),
        ({**ACCOUNTS, "datatypes": ["statements"]}, "datatypes/0"),
    ],
    ids=lambda v: v if isinstance(v, str) else v["type"],
)
def test_par_refuses_control_and_bidi_characters_in_built_in_types(
    driver: Driver, entry: dict[str, Any], path: str, char: str
) -> None:
    """Issue 13 E3: invalid_authorization_details naming where; nothing pushed."""
    client = driver.add_client()
    details = [with_value(entry, path, char)]
    response, _ = driver.par(client, extra={"authorization_details": json.dumps(details)})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_authorization_details"
    assert (
        f"at {path}: control and bidirectional formatting characters are not allowed"
        in (body["error_description"])
    ), body


def test_the_same_entries_without_them_are_accepted(driver: Driver) -> None:
    """Positive control: non-ASCII text itself is fine (an Arabic or accented creditor name)."""
    client = driver.add_client()
    entry = {**PAYMENT, "creditorName": "مؤسسة العربية — Café Zoë"}
    response, _ = driver.par(client, extra={"authorization_details": json.dumps([entry, ACCOUNTS, TOOL])})
    assert response.status_code == 201, response.text


# -- E3 on the page --------------------------------------------------------------------------------


def test_each_value_is_isolated_on_the_consent_page(driver: Driver) -> None:
    """Issue 13 E3: every value of a sentence is in its own <bdi>, built-in types and custom ones
    (a custom type may accept a U+202E; it then reorders nothing outside its <bdi>)."""
    text = consent_page(driver, [PAYMENT, {"type": "note", "note": RLO}])
    assert (
        "Pay up to <bdi>123.50</bdi> <bdi>EUR</bdi> in all to <bdi>Merchant A</bdi> "
        "(account <bdi>DE02120300000000202051</bdi>), reference “<bdi>Invoice 42</bdi>”"
    ) in text
    assert f"Keep the note “<bdi>{RLO}</bdi>” for you" in text
    # The other values from outside: client name and id, user name, redirect host, resources.
    assert re.search(r"<strong><bdi>Test client [0-9a-f]{4}</bdi></strong>", text)
    assert re.search(r"<code><bdi>c-[0-9a-f]+</bdi></code>", text)
    assert "<code><bdi>client.example.org</bdi></code>" in text
    assert f"<li><code><bdi>{driver.issuer}</bdi></code></li>" in text  # the default audience


# -- E4 ------------------------------------------------------------------------------------------


def test_a_hostile_value_is_escaped_inside_its_bdi(driver: Driver) -> None:
    """Issue 13 E4: the autoescaped template escapes the value; its </bdi> cannot close the element."""
    text = consent_page(driver, [{"type": "note", "note": HOSTILE}])
    escaped = HOSTILE.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace("'", "&#39;")
    assert f"Keep the note “<bdi>{escaped}</bdi>” for you" in text
    assert "<img" not in text and "<script>document" not in text


def open_consent_in_chromium(driver: Driver, web: Any, details: list[dict[str, Any]]) -> tuple[Client, Flow]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    client = driver.add_client()
    response, flow = driver.par(client, extra={"authorization_details": json.dumps(details)})
    assert response.status_code == 201, response.text
    web.get(
        driver.url("/authorize")
        + "?"
        + urlencode({"client_id": client.client_id, "request_uri": flow.request_uri})
    )
    web.find_element(By.NAME, "username").send_keys(driver.add_user())
    web.find_element(By.NAME, "password").send_keys(PASSWORD)
    web.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(web, 15).until(
        expected_conditions.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Approve']"))
    )
    return client, flow


def test_a_hostile_value_is_inert_in_chromium(driver: Driver, browser: Any) -> None:  # noqa: F811
    """Issue 13 E4, in a real browser: no img or script element came from the value, nothing ran,
    and the value is shown literally, whole, inside one <bdi>."""
    from selenium.webdriver.common.by import By

    open_consent_in_chromium(driver, browser, [{"type": "note", "note": HOSTILE}])
    title = browser.title
    assert title != "pwned" and title.startswith("Allow ") and "to do what is listed below?" in title
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.find_elements(By.CSS_SELECTOR, "body script") == []
    detail = browser.find_element(By.CSS_SELECTOR, "li.detail[data-type=note]")
    isolated = detail.find_elements(By.TAG_NAME, "bdi")
    assert [element.text for element in isolated] == [HOSTILE]
    assert detail.text.startswith(f"Keep the note “{HOSTILE}” for you")
    assert browser.execute_script("return document.title") == title


def test_an_override_stays_inside_its_bdi_in_chromium(driver: Driver, browser: Any) -> None:  # noqa: F811
    """Issue 13 E3, in a real browser: a U+202E in a custom type's value is isolated: the <bdi>
    holds it and the sentence text around it is unchanged."""
    from selenium.webdriver.common.by import By

    open_consent_in_chromium(driver, browser, [{"type": "note", "note": RLO}])
    detail = browser.find_element(By.CSS_SELECTOR, "li.detail[data-type=note]")
    isolated = detail.find_elements(By.TAG_NAME, "bdi")
    assert [element.get_attribute("textContent") for element in isolated] == [RLO]
    assert (
        browser.execute_script("return getComputedStyle(arguments[0]).unicodeBidi", isolated[0]) == "isolate"
    )
