"""The report renderers of ``corridor check`` (issue 14 "The report"): JSON that hides nothing,
Markdown and HTML in which no value from the server under test is live (design.md 5c, issue 13
E1), and an HTML file that a real Chromium shows, runs no script in, loads nothing for and
prints with every transcript expanded."""

from __future__ import annotations

import base64
import datetime
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from corridor.check.report import CSP, to_html, to_json, to_markdown
from corridor.check.results import Exchange, ModuleResult, Report, Status, VariantReport
from corridor.core.text import has_unsafe_characters
from tests.server.test_browser import chromium_or_skip
from tests.stubserver import stub_server

ARTIFACTS = Path(__file__).parent.parent.parent / "test-artifacts"

PWN = "window.__pwned = 1; document.title = 'pwned'"
SCRIPT = f"<script>{PWN}</script>"
IMG = f'<img src=x onerror="{PWN}">'
BREAKOUT = "</pre></details></section>"
CONTROLS = "\x1b[31mred\x1b[0m \u202egnp.exe\u202c \x00\x07\u2028\u2066"
MARKUP = "a | b `tick` ``` ```` ````` *em* _u_ [x](javascript:alert(1)) ~~s~~ $x$ & &amp;"
HOSTILE = f"{SCRIPT}{IMG}{BREAKOUT}{CONTROLS}{MARKUP}"
#: Lines that would close a shorter fence and start a heading of the server's choosing.
FENCE_BREAK = "```\n## forged heading\n`````\n  ```` \n"
BIG = ("0123456789" * 100 + "\n") * 10  # a 10 kB body of 10 lines
BIG_LINE = "0123456789" * 100

HAPPY = "fapi2-security-profile-final-happy-flow"
PKCE = "fapi2-security-profile-final-ensure-plain-pkce-rejected"
HOLDER = "fapi2-security-profile-final-ensure-holder-of-key-required"
REFRESH = "fapi2-security-profile-final-refresh-token"
CODE_REUSE = "fapi2-security-profile-final-ensure-authorization-code-is-bound-to-client"
STATUSES = [s.value for s in Status]


def hostile_exchange(step: str = "token") -> Exchange:
    return Exchange(
        step=f"{step} {CONTROLS}",
        method="POST",
        url=f"https://as.example/token?x={SCRIPT}&y=|`",
        request_headers={"content-type": "application/x-www-form-urlencoded", "x-evil": HOSTILE},
        request_body=f"grant_type=authorization_code&code=abcdef…[redacted]&v={MARKUP}",
        status=400,
        response_headers={"content-type": "text/html", "x-injected": f"a\r\nSet-Cookie: {CONTROLS}"},
        response_body=f"<!doctype html>{HOSTILE}\r\n{MARKUP}\n{FENCE_BREAK}" + BIG,
        error=f"ReadError: {SCRIPT}",
        at=0.125,
    )


def build_report() -> Report:
    fail = ModuleResult(
        name=PKCE,
        status=Status.FAIL,
        reason=f"the token endpoint accepted a plain code_verifier {SCRIPT} {CONTROLS}",
        clause="FAPI2-SP-FINAL-5.3.2.2-7",
        summary=f"summary {MARKUP}",
        notes=[f"note {IMG}", f"# heading? {MARKUP}", "1. not a list"],
        transcript=[
            Exchange(
                step="par",
                method="POST",
                url="https://as.example/par",
                status=201,
                response_headers={"content-type": "application/json"},
                response_body='{"request_uri": "urn:…[redacted]", "expires_in": 60}',
                at=0.01,
            ),
            hostile_exchange(),
        ],
        facts={"pkce": {"plain": "accepted", "evil": SCRIPT}},
        seconds=1.5,
    )
    passed = ModuleResult(
        name=HAPPY,
        status=Status.PASS,
        reason="the flow completed",
        clause="FAPI2-SP-FINAL-5.3.1.2",
        transcript=[hostile_exchange("authorize")],
        seconds=0.75,
    )
    warning = ModuleResult(
        name=REFRESH,
        status=Status.WARNING,
        reason=f"refresh token rotated {MARKUP}",
        clause="FAPI2-SP-FINAL-5.3.2.1-5",
        transcript=[
            Exchange(
                step="refresh",
                method="POST",
                url="https://as.example/token",
                error=f"ConnectError: {CONTROLS}",
            )
        ],
    )
    skipped = ModuleResult(
        name="fapi2-security-profile-final-par-attempt-reuse-request_uri-after-expiry",
        status=Status.SKIPPED,
        reason="waits 61 s: run with --slow",
        clause="FAPI2-SP-FINAL-5.3.2.2-10",
    )
    holder = ModuleResult(
        name=HOLDER,
        status=Status.PASS,
        reason="a bearer use was refused",
        clause="RFC9449-7.1",
        transcript=[Exchange(step="resource", method="GET", url="https://rs.example/accounts", status=401)],
    )
    reuse = ModuleResult(
        name=CODE_REUSE,
        status=Status.FAIL,
        reason="code redeemed by another client",
        clause="RFC6749-4.1.3",
    )
    header: dict[str, Any] = {
        "profile": "FAPI 2.0 Security Profile",
        "version": "Final (2025-02-22)",
        "test_plan": "fapi2-security-profile-final-test-plan (fapi_profile=plain_fapi)",
        "roles": ["authorization server", "resource server"],
        "variants": ["private_key_jwt + dpop + openid", "mtls + mtls + plain_oauth"],
        "tool": "corridor check 0.1.0",
        "date": "2026-12-02T01:23:45Z",
        "issuer": "https://as.example",
        "metadata_url": "https://as.example/.well-known/openid-configuration",
        "metadata_sha256": "ab" * 32,
        "facts": [
            {
                "topic": "Sender-constraining methods",
                "advertised": "DPoP (ES256 PS256 EdDSA), mTLS-bound",
                "proven": "a bearer token request was refused; a proof by another key was refused",
                "verdict": "proven",
                "evidence": [HOLDER, HAPPY],
            },
            {
                "topic": f"PKCE S256 {SCRIPT}",
                "advertised": f"S256 {MARKUP}",
                "proven": f"plain accepted {IMG}",
                "verdict": "contradicted",
                "evidence": [PKCE, "a-module-that-did-not-run"],
            },
            {
                "topic": "PAR mandatory",
                "advertised": "true",
                "proven": "",
                "verdict": "not tested",
                "evidence": [],
            },
        ],
        "tls": [
            {
                "origin": "https://as.example:443",
                "versions": {"TLSv1": False, "TLSv1.1": False, "TLSv1.2": True, "TLSv1.3": True},
                "tls12_accepted": ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"],
                "tls12_refused": ["AES128-SHA"],
                "verdict": "proven",
                "note": f"note {CONTROLS}",
            },
        ],
        "notes": [f"a note {SCRIPT}", MARKUP],
        "observed_by": f"an unknown key {IMG}",
    }
    return Report(
        header=header,
        variants=[
            VariantReport(
                name="private_key_jwt + dpop + openid",
                client_auth="private_key_jwt",
                sender="dpop",
                openid=True,
                results=[passed, fail, warning, skipped, holder],
            ),
            VariantReport(
                name="mtls + mtls + plain_oauth",
                client_auth="mtls",
                sender="mtls",
                openid=False,
                results=[ModuleResult(name=HAPPY, status=Status.PASS, reason="ok", clause="5.3.1.2"), reuse],
            ),
        ],
    )


# --- JSON -----------------------------------------------------------------------------------


def test_json_is_the_whole_report_and_round_trips() -> None:
    report = build_report()
    text = to_json(report)
    assert json.loads(text) == report.as_dict()
    assert text.startswith('{\n  "header": {')
    # Nothing hidden or cut: the 10 kB body and the hostile values are there exactly.
    bodies = [
        e["response_body"]
        for v in json.loads(text)["variants"]
        for r in v["results"]
        for e in r["transcript"]
    ]
    assert any(body.endswith(BIG) and HOSTILE in body for body in bodies)
    assert json.loads(text)["summary"] == report.summary_line()


def test_json_writes_a_value_of_another_type_as_text() -> None:
    when = datetime.datetime(2026, 12, 2, 1, 23, 45, tzinfo=datetime.UTC)
    report = Report(header={"date": when}, variants=[])
    assert json.loads(to_json(report))["header"]["date"] == str(when)


# --- HTML, as text --------------------------------------------------------------------------

ALLOWED_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "main",
    "section",
    "h1",
    "h2",
    "h3",
    "h4",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "ul",
    "li",
    "dl",
    "dt",
    "dd",
    "p",
    "a",
    "code",
    "pre",
    "strong",
    "span",
    "div",
    "details",
    "summary",
}
ALLOWED_ATTRIBUTES = {
    "lang",
    "charset",
    "http-equiv",
    "content",
    "name",
    "class",
    "id",
    "href",
    "open",
    "scope",
}


class Structure(HTMLParser):
    """Every tag and attribute the page has, and the text of <title>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.ends: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self.ends.append(tag)
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def test_html_has_no_live_value() -> None:
    report = build_report()
    page = to_html(report)
    assert "<script" not in page.lower() and "<img" not in page.lower()
    structure = Structure()
    structure.feed(page)
    assert set(structure.tags) <= ALLOWED_TAGS, set(structure.tags) - ALLOWED_TAGS
    assert {name for name, _ in structure.attributes} <= ALLOWED_ATTRIBUTES
    hrefs = [value or "" for name, value in structure.attributes if name == "href"]
    assert hrefs and all(re.fullmatch(r"#v\d+(-m\d+)?", href) for href in hrefs), hrefs
    # The hostile closing tags stayed text: every section, details and pre closes what it opened.
    for tag in ("details", "section", "pre"):
        assert structure.tags.count(tag) == structure.ends.count(tag), tag
    # No control or bidi character reaches the page raw (newlines of the layout aside)...
    assert not has_unsafe_characters(page.replace("\n", ""))
    # ...they are shown escaped, and the markup is shown as text.
    assert "\\u202egnp.exe\\u202c" in page and "\\x1b[31mred" in page and "\\x00\\x07\\u2028" in page
    assert "&lt;script&gt;window.__pwned = 1; document.title = &#39;pwned&#39;&lt;/script&gt;" in page
    assert "a\\x0d\\x0aSet-Cookie:" in page  # a header's CRLF cannot start a forged line
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP.replace(chr(39), "&#39;")}">' in page
    assert CSP.startswith("default-src 'none'; style-src 'unsafe-inline'")
    assert structure.title == "FAPI 2.0 Security Profile conformance report: https://as.example"
    assert page.count(BIG_LINE) == 2 * 10  # two hostile exchanges, ten lines each: none cut, none twice


def test_html_layout() -> None:
    report = build_report()
    page = to_html(report)
    order = [
        "Profile",
        "Role(s) tested",
        "Metadata SHA-256",
        'id="facts"',
        'id="tls"',
        'id="summary"',
        'id="summary-line"',
        'id="v1"',
        'id="v1-m1"',
        'id="v2"',
        'id="v2-m2"',
    ]
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert f'<p class="summary-line" id="summary-line">{report.summary_line()}</p>' in page
    assert report.summary_line() == "conformance: 3 passed, 2 failed, 1 warnings, 1 skipped of 7 modules"
    # Evidence links to the module's first section; a module that did not run is plain text.
    assert f'<a href="#v1-m5"><code>{HOLDER}</code></a>' in page
    assert f'<a href="#v1-m2"><code>{PKCE}</code></a>' in page
    assert "<code>a-module-that-did-not-run</code>" in page
    # Transcripts: open for FAIL and WARNING, closed otherwise; each status says its word.
    assert re.search(r'id="v1-m2">\s*<h3><span class="status bad">FAIL</span>', page)
    opens = re.findall(r'<details class="transcript"( open)?>', page)
    assert opens == ["", " open", " open", ""]  # PASS, FAIL, WARNING (v1), PASS (holder-of-key)
    assert "TLSv1 refused, TLSv1.1 refused, TLSv1.2 accepted, TLSv1.3 accepted" in page
    assert "an unknown key &lt;img" in page  # a header key the renderer does not know is shown


# --- Markdown -------------------------------------------------------------------------------


def split_fences(markdown: str) -> tuple[list[str], list[str]]:
    """CommonMark 4.5 fenced code blocks (backtick fences at the margin): the blocks' contents
    and the lines outside them."""
    blocks: list[str] = []
    outside: list[str] = []
    fence: str | None = None
    current: list[str] = []
    for line in markdown.split("\n"):
        if fence is None:
            opening = re.match(r"(`{3,})([^`]*)$", line)
            if opening:
                fence, current = opening.group(1), []
            else:
                outside.append(line)
        elif re.fullmatch(rf" {{0,3}}`{{{len(fence)},}}\s*", line):
            blocks.append("\n".join(current))
            fence = None
        else:
            current.append(line)
    assert fence is None, "a fence was left open"
    return blocks, outside


def unescaped(pattern: str, text: str) -> list[str]:
    """Occurrences of ``pattern`` not preceded by an escaping backslash."""
    return re.findall(rf"(?<!\\)(?:\\\\)*{pattern}", text)


def test_markdown_has_no_live_value() -> None:
    report = build_report()
    markdown = to_markdown(report)
    assert not has_unsafe_characters(markdown.replace("\n", ""))
    blocks, outside = split_fences(markdown)
    # One block per exchange: no hostile backtick run closed a fence early or opened one.
    assert len(blocks) == sum(len(r.transcript) for v in report.variants for r in v.results) == 5
    assert any(BIG.rstrip("\n") in block and "\\u202egnp.exe" in block for block in blocks)
    assert any("`````" in block and SCRIPT in block for block in blocks)  # shown as code, inert
    assert sum(block.count(FENCE_BREAK) for block in blocks) == 2
    assert "## forged heading" not in outside
    text = "\n".join(outside)
    assert "<script" not in text and "<img" not in text and "&lt;script&gt;" in text
    tags = re.findall(r"<[^>]*>", text)  # only our anchors, <a id="v1-m2"></a>
    assert tags and all(re.fullmatch(r'<a id="v\d+(-m\d+)?">|</a>', tag) for tag in tags), tags
    assert "\\\\u202egnp.exe" in text  # the escape shown (its backslash escaped for Markdown)
    assert not unescaped("`", text)
    assert not unescaped(r"\[x\]", text) and "\\[x\\](javascript:alert(1))" in text
    for line in outside:
        if line.startswith("|"):  # a table row: exactly its columns, no pipe from a value
            cells = re.split(r"(?<!\\)\|", line)
            header = next(
                h
                for h in outside[: outside.index(line) + 1][::-1]
                if h.startswith("| ") and outside[outside.index(h) + 1].startswith("| ---")
            )
            assert len(cells) == len(re.split(r"(?<!\\)\|", header)), line
        # No untrusted value starts a block: every line is ours at its start.
        assert not re.match(r"(\\?#\s*heading|\d+\. not)", line), line
    assert "  - \\# heading?" in markdown and "  - 1\\. not a list" in markdown


def test_markdown_layout() -> None:
    report = build_report()
    markdown = to_markdown(report)
    lines = markdown.split("\n")
    assert lines[0] == "# FAPI 2.0 Security Profile conformance report: https://as.example"
    order = [
        "| **Profile** |",
        "## Facts proven",
        "## TLS",
        "## Notes",
        "## Summary",
        "## Variant 1: private\\_key\\_jwt + dpop + openid",
        f"### FAIL · {PKCE}",
        "## Variant 2",
    ]
    positions = [markdown.index(marker) for marker in order]
    assert positions == sorted(positions)
    # The summary section ends with the exact summary line.
    summary = lines.index(report.summary_line())
    assert lines[summary + 1 : summary + 3] == ["", '<a id="v1"></a>']
    assert "| **Total** | **3** | **2** | **1** | **1** | **7** |" in lines
    assert f"[{HOLDER}](#v1-m5), [{HAPPY}](#v1-m1)" in markdown
    assert f"[{PKCE}](#v1-m2), a\\-module-that-did-not-run" not in markdown  # only a leading - escaped
    assert f"[{PKCE}](#v1-m2), a-module-that-did-not-run" in markdown
    assert '<a id="v2-m2"></a>' in lines and f"### FAIL · {CODE_REUSE}" in lines
    for status in STATUSES:
        assert f"- **Status:** {status}" in lines


def test_renderers_take_whatever_the_header_holds() -> None:
    odd = Report(
        header={
            "facts": "not a list",
            "tls": [{"origin": "https://x", "versions": ["TLSv1.3"]}, "bare"],
            "notes": "one note",
            "roles": "authorization server",
            "variants": [],
            "seen": {"nested": [1, 2]},
        },
        variants=[VariantReport(name="v", client_auth="mtls", sender="dpop", openid=True)],
    )
    for render in (to_html, to_markdown):
        out = render(odd)
        assert "not a list" in out and "TLSv1.3" in out and "bare" in out and "one note" in out
        assert "No facts recorded." in out and "No modules ran." in out
        assert "conformance: 0 passed, 0 failed, 0 warnings, 0 skipped of 0 modules" in out
    assert json.loads(to_json(odd))["header"]["seen"] == {"nested": [1, 2]}
    empty = Report(header={})
    assert "<title>FAPI 2.0 Security Profile conformance report</title>" in to_html(empty)
    assert to_markdown(empty).startswith("# FAPI 2.0 Security Profile conformance report\n")


# --- HTML in real Chromium ------------------------------------------------------------------


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    binary, chromedriver = chromium_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1000,1000",
    ):
        options.add_argument(flag)
    web = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    web.set_page_load_timeout(30)
    # Before any page script could run: record CSP violations (a CDP script is not page content).
    web.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "window.__violations = []; document.addEventListener('securitypolicyviolation',"
            " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
        },
    )
    try:
        yield web
    finally:
        web.quit()


def visible(web: Any, element_id: str) -> bool:
    return bool(
        web.execute_script(
            "const e = document.getElementById(arguments[0]);"
            "return e.checkVisibility({contentVisibilityAuto: true})"
            " && e.getBoundingClientRect().height > 0;",
            element_id,
        )
    )


def test_html_report_in_chromium(chromium: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    report = build_report()
    path = tmp_path / "report.html"
    path.write_text(to_html(report), encoding="utf-8")
    chromium.get(path.as_uri())

    assert chromium.title == "FAPI 2.0 Security Profile conformance report: https://as.example"
    # Nothing ran, nothing was parsed into markup, nothing was fetched, nothing was even tried.
    assert chromium.execute_script("return window.__pwned") is None
    assert (
        chromium.execute_script(
            "return document.querySelectorAll('script, img, iframe, object, embed, link, form, input, base')"
            ".length"
        )
        == 0
    )
    assert chromium.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert chromium.execute_script("return window.__violations") == []

    facts = chromium.find_element(By.CSS_SELECTOR, "#facts table")
    assert facts.is_displayed()
    for topic in ("Sender-constraining methods", f"PKCE S256 {SCRIPT}", "PAR mandatory"):
        assert topic in facts.text
    body = chromium.find_element(By.TAG_NAME, "body").text
    for variant in report.variants:
        for result in variant.results:
            assert result.name in body
    assert report.summary_line() in body
    # The FAIL module's transcript is open and shows the hostile values as text, escaped.
    assert visible(chromium, "v1-m2-transcript") and not visible(chromium, "v1-m1-transcript")
    transcript = chromium.find_element(By.ID, "v1-m2-transcript").text
    assert SCRIPT in transcript and "\\u202egnp.exe\\u202c" in transcript and "\u202e" not in transcript
    assert BREAKOUT in transcript and "</details>" in transcript

    # Print: every transcript expanded, the closed PASS one too.
    chromium.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert chromium.execute_script("return matchMedia('print').matches") is True
    assert visible(chromium, "v1-m2-transcript") and visible(chromium, "v1-m1-transcript")
    chromium.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    assert not visible(chromium, "v1-m1-transcript")

    pdf = base64.b64decode(chromium.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})["data"])
    assert pdf.startswith(b"%PDF-") and len(pdf) > 20_000
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
    assert pages >= 5, pages  # four expanded hostile transcripts of 10 kB each do not fit on fewer
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "check-report.pdf").write_bytes(pdf)
    assert chromium.execute_script("return window.__violations") == []


def test_the_page_policy_stops_what_escaping_might_miss(chromium: Any, tmp_path: Path) -> None:
    """Were a value ever to slip through unescaped, the page's CSP still stops it: an injected
    script does not run and an injected image is not fetched (and, as a control, without the
    policy the same injection does both, so this test can fail)."""
    seen: list[str] = []

    def answer(path: str) -> tuple[int, str, bytes]:
        seen.append(path)
        return 404, "text/plain", b""

    with stub_server(answer) as url:
        injection = f'<body><script>window.__ran = 1</script><img src="{url}/leak">'
        page = to_html(build_report()).replace("<body>", injection, 1)

        guarded = tmp_path / "guarded.html"
        guarded.write_text(page, encoding="utf-8")
        chromium.get(guarded.as_uri())
        assert chromium.execute_script("return window.__ran") is None
        # Chromium lists the blocked fetch as a resource entry that never sent its request.
        attempts = chromium.execute_script(
            "return performance.getEntriesByType('resource')"
            ".map(e => [e.name, e.requestStart, e.responseStatus])"
        )
        assert attempts == [[f"{url}/leak", 0, 0]], attempts
        violations = chromium.execute_script("return window.__violations")
        assert any(v.startswith("script-src") for v in violations), violations
        assert any(v.startswith("img-src") and "/leak" in v for v in violations), violations
        assert seen == []

        bare = tmp_path / "bare.html"
        unguarded = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
        assert unguarded != page
        bare.write_text(unguarded, encoding="utf-8")
        chromium.get(bare.as_uri())
        assert chromium.execute_script("return window.__ran") == 1
        assert seen == ["/leak"]
