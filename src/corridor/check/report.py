# Why over 450 lines: the three report formats must say the same thing, so they are rendered
# side by side from one model (JSON, Markdown and the HTML template's filters).
"""The report of a check run in three formats that say the same: JSON (``--json``), Markdown
(``--markdown``) and one self-contained HTML file (``--html``), issue 14 "The report".

Layout (HTML and Markdown): the title; the opening facts (profile and version, role(s) tested,
variant(s), tool, date, issuer, metadata URL and its SHA-256); the facts table (each seed field
advertised vs proven, with the modules that prove it); the TLS table; the summary counts per
variant and in total, ending with :meth:`Report.summary_line`; then per variant a section with
every module (status, name, reason, clause, notes, duration and its transcript).

Every value came from the server under test and is untrusted (design.md 5c, issue 13 E1): the
HTML is escaped by Jinja2's autoescape and every value passes :func:`escape_controls` first (the
template's ``finalize``, so no expression can skip it); the Markdown escapes its inline markup,
table pipes and backticks, and puts transcripts in fenced blocks whose fence is longer than any
backtick run inside. The HTML loads nothing (a ``Content-Security-Policy`` of
``default-src 'none'``) and needs no script; transcripts are ``<details>`` (open for FAIL and
WARNING) and print expanded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape

from corridor.check.results import Exchange, ModuleResult, Report, Status, VariantReport
from corridor.core.text import escape_controls

__all__ = ["to_html", "to_json", "to_markdown"]

#: The opening facts, in the order shown, with their labels.
OPENING = (
    ("profile", "Profile"),
    ("version", "Version"),
    ("test_plan", "Test plan"),
    ("targets", "Conformance targets"),
    ("roles", "Role(s) tested"),
    ("variants", "Variant(s)"),
    ("tool", "Tool"),
    ("date", "Date"),
    ("issuer", "Issuer"),
    ("metadata_url", "Metadata URL"),
    ("metadata_sha256", "Metadata SHA-256"),
)
_TABLES = ("facts", "tls", "notes")
_FACT_KEYS = ("topic", "advertised", "proven", "verdict", "evidence")
_TLS_KEYS = ("origin", "versions", "tls12_accepted", "tls12_refused", "verdict", "note")

#: Verdict words to a CSS class (ours, never derived from the untrusted text itself).
_VERDICT_CLASS = {
    "proven": "ok",
    "pass": "ok",
    "passed": "ok",
    "ok": "ok",
    "contradicted": "bad",
    "fail": "bad",
    "failed": "bad",
    "not proven": "warn",
    "warning": "warn",
    "not tested": "none",
    "skipped": "none",
}
_STATUS_CLASS = {Status.PASS: "ok", Status.FAIL: "bad", Status.WARNING: "warn", Status.SKIPPED: "none"}


# --- JSON -----------------------------------------------------------------------------------


def to_json(report: Report) -> str:
    """The whole report as JSON (:meth:`Report.as_dict`), nothing left out; a value that is not
    JSON (a header fact of another type) is written as its ``str``."""
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


# --- The view both renderers share (raw, unescaped text) -------------------------------------


def _text(value: Any) -> str:
    """One value as one line of plain text (lists joined with commas, mappings as JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _items(value: Any) -> list[str]:
    """A value that should be a list of strings, as one."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [_text(item) for item in value]
    return [_text(value)]


def _verdict_class(verdict: str) -> str:
    return _VERDICT_CLASS.get(verdict.strip().lower(), "neutral")


def _extras(entry: Mapping[str, Any], known: Iterable[str]) -> str:
    """The members of a table row the renderers do not know, as ``key: value`` text."""
    skip = set(known)
    return "; ".join(f"{key}: {_text(value)}" for key, value in entry.items() if key not in skip)


@dataclass
class _Link:
    text: str
    anchor: str  # "" when no module of that name ran


@dataclass
class _Fact:
    topic: str
    advertised: str
    proven: str
    verdict: str
    verdict_class: str
    evidence: list[_Link]


@dataclass
class _Tls:
    origin: str
    versions: str
    accepted: str
    refused: str
    verdict: str
    verdict_class: str
    note: str


@dataclass
class _Exchange:
    number: int
    step: str
    method: str
    url: str
    at: str
    status: str
    request: list[str]
    response: list[str]
    error: str


@dataclass
class _Module:
    anchor: str
    name: str
    status: str
    status_class: str
    reason: str
    clause: str
    summary: str
    notes: list[str]
    duration: str
    facts: str
    exchanges: list[_Exchange]

    @property
    def open(self) -> bool:
        """FAIL and WARNING transcripts are shown open (the reader came for them)."""
        return self.status in (Status.FAIL.value, Status.WARNING.value)


@dataclass
class _Variant:
    anchor: str
    number: int
    name: str
    details: str
    counts: dict[str, int]
    total: int
    modules: list[_Module]


@dataclass
class _View:
    title: str
    opening: list[tuple[str, list[str]]]
    facts: list[_Fact]
    tls: list[_Tls]
    notes: list[str]
    variants: list[_Variant]
    counts: dict[str, int]
    total: int
    summary_line: str
    statuses: list[str] = field(default_factory=lambda: [status.value for status in Status])


def _lines(text: str) -> list[str]:
    """A body as its lines (CRLF taken as a line break; other controls stay for escaping)."""
    return text.replace("\r\n", "\n").split("\n")


def _message(headers: Mapping[str, str], body: str) -> list[str]:
    lines = [f"{_text(name)}: {_text(value)}" for name, value in headers.items()]
    if body:
        if lines:
            lines.append("")
        lines.extend(_lines(body))
    return lines


def _exchange(number: int, exchange: Exchange) -> _Exchange:
    return _Exchange(
        number=number,
        step=_text(exchange.step),
        method=_text(exchange.method),
        url=_text(exchange.url),
        at=f"+{exchange.at:.3f} s",
        status="" if exchange.status is None else str(exchange.status),
        request=_message(exchange.request_headers, exchange.request_body),
        response=_message(exchange.response_headers, exchange.response_body),
        error=_text(exchange.error),
    )


def _module(anchor: str, result: ModuleResult) -> _Module:
    status = Status(result.status)
    return _Module(
        anchor=anchor,
        name=_text(result.name),
        status=status.value,
        status_class=_STATUS_CLASS[status],
        reason=_text(result.reason),
        clause=_text(result.clause),
        summary=_text(result.summary),
        notes=_items(result.notes),
        duration=f"{result.seconds:.3f} s",
        facts=json.dumps(result.facts, ensure_ascii=False, default=str) if result.facts else "",
        exchanges=[_exchange(n, exchange) for n, exchange in enumerate(result.transcript, 1)],
    )


def _variant(number: int, variant: VariantReport) -> _Variant:
    counts = {status.value: n for status, n in variant.counts().items()}
    details = (
        f"client authentication {_text(variant.client_auth)}, sender constraint "
        f"{_text(variant.sender)}, {'OpenID Connect' if variant.openid else 'plain OAuth'}"
    )
    return _Variant(
        anchor=f"v{number}",
        number=number,
        name=_text(variant.name),
        details=details,
        counts=counts,
        total=sum(counts.values()),
        modules=[_module(f"v{number}-m{n}", result) for n, result in enumerate(variant.results, 1)],
    )


def _view(report: Report) -> _View:
    header: Mapping[str, Any] = report.header if isinstance(report.header, Mapping) else {}
    variants = [_variant(n, variant) for n, variant in enumerate(report.variants, 1)]
    anchors: dict[str, str] = {}
    for variant in variants:
        for module in variant.modules:
            anchors.setdefault(module.name, module.anchor)

    opening: list[tuple[str, list[str]]] = []
    for key, label in OPENING:
        value = header.get(key)
        if key == "variants" and not value:
            value = [variant.name for variant in variants]
        if value is None or value == "" or value == []:
            continue
        opening.append((label, _items(value) if key in ("variants", "targets") else [_text(value)]))
    known = {key for key, _ in OPENING} | set(_TABLES)
    for key, value in header.items():
        if key not in known:
            opening.append((_text(key), [_text(value)]))

    facts: list[_Fact] = []
    raw_facts = header.get("facts") or []
    if not isinstance(raw_facts, list):
        opening.append(("facts", [_text(raw_facts)]))
        raw_facts = []
    for entry in raw_facts:
        if not isinstance(entry, Mapping):
            entry = {"topic": entry}
        verdict = _text(entry.get("verdict"))
        proven = _text(entry.get("proven"))
        extra = _extras(entry, _FACT_KEYS)
        facts.append(
            _Fact(
                topic=_text(entry.get("topic")),
                advertised=_text(entry.get("advertised")),
                proven=f"{proven}; {extra}" if proven and extra else proven or extra,
                verdict=verdict,
                verdict_class=_verdict_class(verdict),
                evidence=[_Link(name, anchors.get(name, "")) for name in _items(entry.get("evidence"))],
            )
        )

    tls: list[_Tls] = []
    raw_tls = header.get("tls") or []
    if not isinstance(raw_tls, list):
        opening.append(("tls", [_text(raw_tls)]))
        raw_tls = []
    for entry in raw_tls:
        if not isinstance(entry, Mapping):
            entry = {"origin": entry}
        versions = entry.get("versions")
        if isinstance(versions, Mapping):
            shown = ", ".join(
                f"{_text(name)} "
                + ("accepted" if ok is True else "refused" if ok is False else f"({_text(ok)})")
                for name, ok in versions.items()
            )
        else:
            shown = _text(versions)
        verdict = _text(entry.get("verdict"))
        note, extra = _text(entry.get("note")), _extras(entry, _TLS_KEYS)
        tls.append(
            _Tls(
                origin=_text(entry.get("origin")),
                versions=shown,
                accepted=_text(entry.get("tls12_accepted")),
                refused=_text(entry.get("tls12_refused")),
                verdict=verdict,
                verdict_class=_verdict_class(verdict),
                note=f"{note}; {extra}" if note and extra else note or extra,
            )
        )

    counts = {status.value: n for status, n in report.counts().items()}
    profile = _text(header.get("profile")) or "FAPI 2.0 Security Profile"
    issuer = _text(header.get("issuer"))
    title = f"{profile} conformance report" + (f": {issuer}" if issuer else "")
    return _View(
        title=title,
        opening=opening,
        facts=facts,
        tls=tls,
        notes=_items(header.get("notes")),
        variants=variants,
        counts=counts,
        total=sum(counts.values()),
        summary_line=report.summary_line(),
    )


# --- Markdown -------------------------------------------------------------------------------

#: Inline Markdown that untrusted text must not start: emphasis, code spans, links and
#: images, strikethrough, table cells, math, and the backslash itself (CommonMark 2.4: any
#: ASCII punctuation may be backslash-escaped).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
_MD_LEADING = re.compile(r"^([#+\-=]|\d+(?=[.)]))")


def _neutralise_leading(match: re.Match[str]) -> str:
    """``# x`` becomes ``\\# x`` and ``1. x`` becomes ``1\\. x``: no block starts here."""
    mark = match.group(1)
    return mark + "\\" if mark[0].isdigit() else "\\" + mark


def _md(value: Any) -> str:
    """One untrusted value as inert inline Markdown on one line: controls and bidi characters
    escaped (issue 13 E1), HTML made entities, inline markup and pipes backslash-escaped, and
    no block markup (a heading, list, quote) at its start."""
    text = escape_controls(_text(value))
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_LEADING.sub(_neutralise_leading, text)


def _fence(lines: Iterable[str], info: str = "text") -> str:
    """A fenced code block (CommonMark 4.5) of untrusted lines: each line's controls escaped,
    the fence one backtick longer than the longest backtick run inside, so no line closes it."""
    body = "\n".join(escape_controls(line) for line in lines)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cell or " " for cell in cells) + " |"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(head), _row(["---"] * len(head)), *(_row(row) for row in rows), ""]


def _md_link(link: _Link) -> str:
    return f"[{_md(link.text)}](#{link.anchor})" if link.anchor else _md(link.text)


def _md_exchange(exchange: _Exchange) -> list[str]:
    lines = [f"[{exchange.number}] step: {exchange.step}  ({exchange.at})"]
    lines.append(f"{exchange.method} {exchange.url}")
    lines.extend(exchange.request)
    lines.append("")
    if exchange.status:
        lines.append(f"=> HTTP {exchange.status}")
        lines.extend(exchange.response)
    if exchange.error:
        lines.append(f"=> error: {exchange.error}")
    return [_fence(lines), ""]


def _md_module(module: _Module) -> list[str]:
    out = [
        f'<a id="{module.anchor}"></a>',
        "",
        f"### {module.status} · {_md(module.name)}",
        "",
        f"- **Status:** {module.status}",
        f"- **Reason:** {_md(module.reason)}",
        f"- **Clause:** {_md(module.clause)}",
    ]
    if module.summary:
        out.append(f"- **Summary:** {_md(module.summary)}")
    if module.notes:
        out.append("- **Notes:**")
        out.extend(f"  - {_md(note)}" for note in module.notes)
    out.append(f"- **Duration:** {module.duration}")
    if module.facts:
        out.append(f"- **Facts:** {_md(module.facts)}")
    out.append("")
    if module.exchanges:
        count = len(module.exchanges)
        out.extend([f"**Transcript** ({count} exchange{'s' if count != 1 else ''}):", ""])
        for exchange in module.exchanges:
            out.extend(_md_exchange(exchange))
    else:
        out.extend(["**Transcript:** no HTTP exchange recorded.", ""])
    return out


def to_markdown(report: Report) -> str:
    """The report as Markdown (GitHub-flavoured tables), every value inert."""
    view = _view(report)
    out = [f"# {_md(view.title)}", ""]
    if view.opening:
        rows = [[f"**{_md(label)}**", "; ".join(_md(v) for v in values)] for label, values in view.opening]
        out.extend(_table(["Fact", "Value"], rows))

    out.extend(["## Facts proven", ""])
    if view.facts:
        rows = [
            [
                _md(fact.topic),
                _md(fact.advertised),
                _md(fact.proven),
                f"**{_md(fact.verdict)}**" if fact.verdict else "",
                ", ".join(_md_link(link) for link in fact.evidence),
            ]
            for fact in view.facts
        ]
        out.extend(_table(["Topic", "Advertised", "Proven", "Verdict", "Evidence"], rows))
    else:
        out.extend(["No facts recorded.", ""])

    out.extend(["## TLS", ""])
    if view.tls:
        rows = [
            [
                _md(t.origin),
                _md(t.versions),
                _md(t.accepted),
                _md(t.refused),
                f"**{_md(t.verdict)}**" if t.verdict else "",
                _md(t.note),
            ]
            for t in view.tls
        ]
        head = ["Origin", "Versions", "TLS 1.2 suites accepted", "TLS 1.2 suites refused", "Verdict", "Note"]
        out.extend(_table(head, rows))
    else:
        out.extend(["No TLS checks recorded.", ""])

    if view.notes:
        out.extend(["## Notes", "", *(f"- {_md(note)}" for note in view.notes), ""])

    out.extend(["## Summary", ""])
    rows = [
        [f"[{_md(v.name)}](#{v.anchor})", *(str(v.counts[s]) for s in view.statuses), str(v.total)]
        for v in view.variants
    ]
    rows.append(["**Total**", *(f"**{view.counts[s]}**" for s in view.statuses), f"**{view.total}**"])
    out.extend(_table(["Variant", *view.statuses, "Modules"], rows))
    out.extend([view.summary_line, ""])

    for variant in view.variants:
        out.extend(
            [
                f'<a id="{variant.anchor}"></a>',
                "",
                f"## Variant {variant.number}: {_md(variant.name)}",
                "",
                _md(variant.details),
                "",
            ]
        )
        if variant.modules:
            rows = [
                [f"**{m.status}**", f"[{_md(m.name)}](#{m.anchor})", _md(m.reason)] for m in variant.modules
            ]
            out.extend(_table(["Status", "Module", "Reason"], rows))
        else:
            out.extend(["No modules ran.", ""])
        for module in variant.modules:
            out.extend(_md_module(module))
    return "\n".join(out).rstrip("\n") + "\n"


# --- HTML -----------------------------------------------------------------------------------


def _finalize(value: Any) -> Any:
    """Every ``{{ expression }}`` of the template: controls and bidi characters escaped (issue
    13 E1) before autoescape escapes the HTML; already-safe markup (from :func:`_block`) kept."""
    if isinstance(value, Markup):
        return value
    return escape_controls(_text(value))


def _block(lines: Iterable[str]) -> Markup:
    """Untrusted lines for a ``<pre>``: each escaped (controls, then HTML), line breaks kept."""
    return Markup("\n").join(escape(escape_controls(line)) for line in lines)


_CSS = """
:root { --ok: #1a7f37; --bad: #c62828; --warn: #9a6700; --none: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: #1f2328; background: #fff; margin: 0 auto; max-width: 72rem; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.3rem; margin: 2rem 0 .75rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 0; overflow-wrap: anywhere; }
h4 { font-size: .95rem; margin: .75rem 0 .25rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; }
th { background: #f6f8fa; }
table.opening th { width: 12rem; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; }
code, pre { font: .85rem/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: .5rem; margin: .25rem 0 .5rem;
  white-space: pre-wrap; overflow-wrap: anywhere; }
.status, .verdict { display: inline-block; font-weight: bold; padding: 0 .4rem; border-radius: .25rem;
  border: 1px solid currentColor; white-space: nowrap; -webkit-print-color-adjust: exact;
  print-color-adjust: exact; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); }
.none, .neutral { color: var(--none); }
.status.ok { background: #dafbe1; } .status.bad { background: #ffebe9; }
.status.warn { background: #fff8c5; } .status.none { background: #eaeef2; }
.summary-line { font: bold 1rem ui-monospace, "DejaVu Sans Mono", monospace; }
section.module { border: 1px solid var(--line); border-left: .4rem solid var(--none);
  border-radius: .25rem; padding: .6rem .8rem; margin: .8rem 0; }
section.module.ok { border-left-color: var(--ok); } section.module.bad { border-left-color: var(--bad); }
section.module.warn { border-left-color: var(--warn); }
section.module, section.module * { color: #1f2328; }
section.module .status.ok { color: var(--ok); } section.module .status.bad { color: var(--bad); }
section.module .status.warn { color: var(--warn); } section.module .status.none { color: var(--none); }
dl.fields { display: grid; grid-template-columns: 7rem 1fr; gap: .15rem .75rem; margin: .5rem 0; }
dl.fields dt { font-weight: bold; } dl.fields dd { margin: 0; overflow-wrap: anywhere; }
dl.fields ul { margin: 0; padding-left: 1.1rem; }
details > summary { cursor: pointer; font-weight: bold; margin: .3rem 0; }
.exchange { border-top: 1px dashed var(--line); padding-top: .4rem; margin-top: .4rem; }
.exchange-head { margin: 0 0 .2rem; overflow-wrap: anywhere; }
.exchange-head .at { color: var(--none); }
.error { color: var(--bad); font-weight: bold; overflow-wrap: anywhere; }
.muted { color: var(--none); }
.print-only { display: none; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  a { color: inherit; text-decoration: none; }
  h2 { break-after: avoid; } h3, .exchange-head { break-after: avoid; }
  tr, .status { break-inside: avoid; }
  /* Print every transcript expanded: a closed <details> keeps its content in
     ::details-content (content-visibility: hidden); make it visible. */
  details::details-content { content-visibility: visible; display: block; }
  details > summary { list-style: none; }
  details > summary::-webkit-details-marker { display: none; }
  @supports not selector(::details-content) { .closed-hint { display: block; } }
}
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="light">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ v.title }}</title>
<style>{% raw %}@CSS@{% endraw %}</style>
</head>
<body>
<header>
<h1>{{ v.title }}</h1>
{% if v.opening %}
<table class="opening" id="opening">
{% for label, values in v.opening %}
<tr><th scope="row">{{ label }}</th><td>
{%- if values|length > 1 %}<ul>{% for value in values %}<li>{{ value }}</li>{% endfor %}</ul>
{%- else %}{% for value in values %}{{ value }}{% endfor %}{% endif -%}
</td></tr>
{% endfor %}
</table>
{% endif %}
</header>
<main>
<section id="facts">
<h2>Facts proven</h2>
{% if v.facts %}
<table class="facts">
<thead><tr><th>Topic</th><th>Advertised</th><th>Proven</th><th>Verdict</th><th>Evidence</th></tr></thead>
<tbody>
{% for f in v.facts %}
<tr><td>{{ f.topic }}</td><td>{{ f.advertised }}</td><td>{{ f.proven }}</td>
<td>{% if f.verdict %}<span class="verdict {{ f.verdict_class }}">{{ f.verdict }}</span>{% endif %}</td>
<td>{% for link in f.evidence %}{% if not loop.first %}, {% endif %}
{%- if link.anchor %}<a href="#{{ link.anchor }}"><code>{{ link.text }}</code></a>
{%- else %}<code>{{ link.text }}</code>{% endif %}{% endfor %}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="muted">No facts recorded.</p>
{% endif %}
</section>
<section id="tls">
<h2>TLS</h2>
{% if v.tls %}
<table class="tls">
<thead><tr><th>Origin</th><th>Versions</th><th>TLS 1.2 suites accepted</th><th>TLS 1.2 suites refused</th>
<th>Verdict</th><th>Note</th></tr></thead>
<tbody>
{% for t in v.tls %}
<tr><td>{{ t.origin }}</td><td>{{ t.versions }}</td><td>{{ t.accepted }}</td><td>{{ t.refused }}</td>
<td>{% if t.verdict %}<span class="verdict {{ t.verdict_class }}">{{ t.verdict }}</span>{% endif %}</td>
<td>{{ t.note }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="muted">No TLS checks recorded.</p>
{% endif %}
</section>
{% if v.notes %}
<section id="notes">
<h2>Notes</h2>
<ul>{% for note in v.notes %}<li>{{ note }}</li>{% endfor %}</ul>
</section>
{% endif %}
<section id="summary">
<h2>Summary</h2>
<table class="summary">
<thead><tr><th>Variant</th>{% for s in v.statuses %}<th>{{ s }}</th>{% endfor %}<th>Modules</th></tr></thead>
<tbody>
{% for variant in v.variants %}
<tr><td><a href="#{{ variant.anchor }}">{{ variant.name }}</a></td>
{%- for s in v.statuses %}<td class="n">{{ variant.counts[s] }}</td>{% endfor %}
<td class="n">{{ variant.total }}</td></tr>
{% endfor %}
<tr class="total"><td>Total</td>{% for s in v.statuses %}<td class="n">{{ v.counts[s] }}</td>{% endfor %}
<td class="n">{{ v.total }}</td></tr>
</tbody>
</table>
<p class="summary-line" id="summary-line">{{ v.summary_line }}</p>
</section>
{% for variant in v.variants %}
<section class="variant" id="{{ variant.anchor }}">
<h2>Variant {{ variant.number }}: {{ variant.name }}</h2>
<p class="muted">{{ variant.details }}</p>
{% if variant.modules %}
<table class="index">
<thead><tr><th>Status</th><th>Module</th><th>Reason</th></tr></thead>
<tbody>
{% for m in variant.modules %}
<tr><td><span class="status {{ m.status_class }}">{{ m.status }}</span></td>
<td><a href="#{{ m.anchor }}"><code>{{ m.name }}</code></a></td><td>{{ m.reason }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="muted">No modules ran.</p>
{% endif %}
{% for m in variant.modules %}
<section class="module {{ m.status_class }}" id="{{ m.anchor }}">
<h3><span class="status {{ m.status_class }}">{{ m.status }}</span> <code>{{ m.name }}</code></h3>
<dl class="fields">
<dt>Status</dt><dd>{{ m.status }}</dd>
<dt>Reason</dt><dd>{{ m.reason }}</dd>
<dt>Clause</dt><dd>{{ m.clause }}</dd>
{% if m.summary %}<dt>Summary</dt><dd>{{ m.summary }}</dd>{% endif %}
{% if m.notes %}
<dt>Notes</dt><dd><ul>{% for note in m.notes %}<li>{{ note }}</li>{% endfor %}</ul></dd>
{% endif %}
<dt>Duration</dt><dd>{{ m.duration }}</dd>
{% if m.facts %}<dt>Facts</dt><dd><code>{{ m.facts }}</code></dd>{% endif %}
</dl>
{% if m.exchanges %}
<details class="transcript"{% if m.open %} open{% endif %}>
<summary>Transcript ({{ m.exchanges|length }} exchange{% if m.exchanges|length != 1 %}s{% endif %})</summary>
<div class="transcript-body" id="{{ m.anchor }}-transcript">
{% for e in m.exchanges %}
<div class="exchange">
<p class="exchange-head">{{ e.number }}. <strong>{{ e.step }}</strong> <span class="at">({{ e.at }})</span>
<code>{{ e.method }} {{ e.url }}</code>
{%- if e.status %} &rarr; <strong>HTTP {{ e.status }}</strong>{% endif %}</p>
<h4>Request</h4>
{% if e.request %}<pre>{{ e.request|block }}</pre>
{% else %}<p class="muted">No headers or body.</p>{% endif %}
{% if e.status %}
<h4>Response: HTTP {{ e.status }}</h4>
{% if e.response %}<pre>{{ e.response|block }}</pre>
{% else %}<p class="muted">No headers or body.</p>{% endif %}
{% endif %}
{% if e.error %}<p class="error">Error: {{ e.error }}</p>{% endif %}
</div>
{% endfor %}
</div>
</details>
{% if not m.open %}<p class="print-only closed-hint muted">Transcript collapsed: this browser prints closed
sections closed; open it before printing.</p>{% endif %}
{% else %}
<p class="muted">No HTTP exchange recorded.</p>
{% endif %}
</section>
{% endfor %}
</section>
{% endfor %}
</main>
</body>
</html>
"""

#: The page loads nothing, runs nothing and sends nothing, even if a value escaped its escaping.
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_ENV = Environment(autoescape=True, finalize=_finalize, undefined=StrictUndefined, trim_blocks=True)
_ENV.filters["block"] = _block
_HTML = _ENV.from_string(_TEMPLATE.replace("@CSS@", _CSS))


def to_html(report: Report) -> str:
    """The report as one self-contained HTML file: inline CSS, no script, no external asset
    (CSP ``default-src 'none'``), transcripts collapsible and printed expanded."""
    return _HTML.render(v=_view(report), csp=CSP)
